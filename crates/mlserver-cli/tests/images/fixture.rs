//! The real parts of the image tests, set up once per test run.
//!
//! - A private `dockerd` (Debian's `docker.io`, installed when missing) on
//!   its own socket and data root, without iptables or a bridge: containers
//!   run on the host network or on none. It stops when the test process
//!   exits, however it exits (a watchdog shell waits on a pipe from us).
//! - No image registry is reachable, so the base images are made here: a
//!   `debootstrap --variant=minbase` of the machine's Debian release stands
//!   in for `debian:bookworm-slim` (cached under `target/image-tests/`), and
//!   a stand-in for `rust:*-slim-bookworm` whose `cargo` copies the
//!   `mlserver` binary under test (compiling the workspace inside an image
//!   would need the Rust toolchain image that cannot be pulled). The root
//!   `Dockerfile` is then built for real on them, target by target: the
//!   server, `py-slim` and `py` images the other tests build on and run.
//! - Buildah (Debian's `buildah`, vfs storage, chroot isolation) for the
//!   Docker-less path; what it builds is handed to the daemon to run.
//!
//! The base images trust the machine's certificate authorities (this
//! sandbox reaches PyPI through a TLS proxy with its own CA), as a
//! company's base image would.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub(crate) use mlserver_tests::missing_real_part;

pub(crate) const MLSERVER: &str = env!("CARGO_BIN_EXE_mlserver");

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Where the tests keep what outlives a run (the Debian root filesystem).
fn cache_dir() -> PathBuf {
    let dir = workspace().join("target/image-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`; panics with its output unless it succeeds.
pub(crate) fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn write(dir: &Path, name: &str, contents: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, contents).unwrap();
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian packages the way the Python clients are installed: by
/// the test setup itself, so a fresh clone needs only `cargo test`. Needs
/// root and apt-get (CI has both). One install at a time.
fn apt_install(packages: &[&str]) -> Result<(), String> {
    static APT: Mutex<()> = Mutex::new(());
    let _one = APT.lock().unwrap_or_else(|e| e.into_inner());
    if !is_root() || Command::new("apt-get").arg("--version").output().is_err() {
        return Err(format!(
            "{packages:?} are missing, and installing them needs root and apt-get"
        ));
    }
    eprintln!("installing Debian's {packages:?} for the image tests ...");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -qq --no-install-recommends {}",
            packages.join(" ")
        ))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "apt-get install {packages:?} failed:\n{}",
            text(&out)
        ));
    }
    Ok(())
}

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

fn tool(candidates: &[&str], package: &str) -> Result<PathBuf, String> {
    if let Some(p) = find(candidates) {
        return Ok(p);
    }
    apt_install(&[package])?;
    find(candidates).ok_or_else(|| format!("{package} installed but {candidates:?} not found"))
}

/// The private Docker daemon.
pub(crate) struct Docker {
    pub host: String,
    dir: PathBuf,
    /// Closing it (at process exit) stops the daemon: see [`Docker::start`].
    _watchdog: Option<Mutex<ChildStdin>>,
    _shell: Option<Mutex<Child>>,
}

/// The daemon, started on first use; `None` after [`missing_real_part`]
/// when it cannot start (a failure under `MLSERVER_TEST_STRICT`).
pub(crate) fn docker(what: &str) -> Option<&'static Docker> {
    static DOCKER: OnceLock<Result<Docker, String>> = OnceLock::new();
    match DOCKER.get_or_init(Docker::start) {
        Ok(d) => Some(d),
        Err(why) => {
            missing_real_part(what, &format!("no Docker daemon could start: {why}"));
            None
        }
    }
}

impl Docker {
    fn start() -> Result<Docker, String> {
        // A developer's daemon kept between runs (its layer cache makes the
        // image builds quick): `MLSERVER_TEST_DOCKER_HOST=unix:///path.sock`.
        if let Ok(host) = std::env::var("MLSERVER_TEST_DOCKER_HOST") {
            let docker = Docker {
                host,
                dir: std::env::temp_dir(),
                _watchdog: None,
                _shell: None,
            };
            return match docker.try_run(&["version"]) {
                out if out.status.success() => Ok(docker),
                out => Err(format!(
                    "MLSERVER_TEST_DOCKER_HOST does not answer: {}",
                    text(&out)
                )),
            };
        }
        let dockerd = tool(&["/usr/sbin/dockerd", "/usr/bin/dockerd"], "docker.io")?;
        // Short path: unix socket paths are limited to about 100 bytes.
        let dir = tempfile::Builder::new()
            .prefix("mlsd")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?
            .keep();
        let sock = dir.join("d.sock");
        // The shell starts dockerd, then blocks reading our pipe; when this
        // process exits the pipe closes and the shell stops the daemon
        // (which stops its containers) and removes its files. Statics are
        // never dropped, so nothing else could.
        let script = format!(
            "{dockerd} --host unix://{sock} --data-root {dir}/data --exec-root {dir}/exec \
             --pidfile {dir}/dockerd.pid --iptables=false --ip6tables=false --bridge=none \
             >{dir}/dockerd.log 2>&1 </dev/null & d=$!; read _; kill $d; wait $d; rm -rf {dir}",
            dockerd = dockerd.display(),
            sock = sock.display(),
            dir = dir.display(),
        );
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not run dockerd: {e}"))?;
        let stdin = shell.stdin.take().unwrap();
        let docker = Docker {
            host: format!("unix://{}", sock.display()),
            dir,
            _watchdog: Some(Mutex::new(stdin)),
            _shell: Some(Mutex::new(shell)),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !docker.try_run(&["version"]).status.success() {
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(docker.dir.join("dockerd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                return Err(format!(
                    "dockerd did not come up in 60 s:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(docker)
    }

    /// The docker CLI against this daemon (test setup and running images;
    /// `mlserver build` under test goes through bollard).
    pub(crate) fn cli(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", &self.host)
            // The classic builder: the daemon is Debian's 20.10, without
            // buildx; it is also what Kaniko-style builders implement.
            .env("DOCKER_BUILDKIT", "0");
        cmd
    }

    pub(crate) fn try_run(&self, args: &[&str]) -> Output {
        self.cli().args(args).output().expect("docker CLI")
    }

    /// Runs the docker CLI; panics with its output on failure.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        run_ok(self.cli().args(args))
    }

    /// `mlserver build` (the code under test) against this daemon, with
    /// the host network for `RUN` steps (pip reaches PyPI) and `args`.
    pub(crate) fn mlserver_build(&self, folder: &Path, tag: &str, args: &[&str]) -> Output {
        Command::new(MLSERVER)
            .args(["build", "-t", tag, "--network", "host"])
            .args(args)
            .arg(folder)
            .env("DOCKER_HOST", &self.host)
            .output()
            .unwrap()
    }

    /// Starts a container, removed when the returned guard drops.
    pub(crate) fn start_container(
        &self,
        args: &[&str],
        image: &str,
        command: &[&str],
    ) -> Container<'_> {
        let name = format!(
            "mlserver-e2e-{}-{}",
            std::process::id(),
            CONTAINERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut all = vec!["run", "-d", "--name", &name];
        all.extend_from_slice(args);
        all.push(image);
        all.extend_from_slice(command);
        self.ok(&all);
        Container { docker: self, name }
    }
}

static CONTAINERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A running container; removed on drop, however the test ends.
pub(crate) struct Container<'a> {
    docker: &'a Docker,
    pub name: String,
}

impl Container<'_> {
    pub(crate) fn logs(&self) -> String {
        text(&self.docker.try_run(&["logs", &self.name]))
    }

    /// `docker exec` with `stdin` on standard input; the command's output.
    pub(crate) fn exec(&self, command: &[&str], stdin: &str) -> Output {
        let mut child = self
            .docker
            .cli()
            .args(["exec", "-i", &self.name])
            .args(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a Python script (`tests/images/*.py`) with the image's
    /// `python` inside the container, on its own network (the server's
    /// ports stay the ones the image or manifest says); returns its stdout
    /// as JSON.
    pub(crate) fn python(&self, script: &str, args: &[&str]) -> serde_json::Value {
        let source = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/images")
                .join(script),
        )
        .unwrap();
        let mut command = vec!["python", "-"];
        command.extend_from_slice(args);
        let out = self.exec(&command, &source);
        assert!(
            out.status.success(),
            "{script} {args:?} failed in {}:\n{}\n--- container log\n{}",
            self.name,
            text(&out),
            self.logs()
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{}", text(&out)))
    }

    /// Waits until `check` passes, or panics with the container's log.
    pub(crate) fn wait_for(&self, what: &str, within: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !check() {
            let state = self
                .docker
                .try_run(&["inspect", "-f", "{{.State.Running}}", &self.name]);
            let stopped = String::from_utf8_lossy(&state.stdout).trim() == "false";
            if stopped || Instant::now() > deadline {
                panic!(
                    "{}: {what} {}\n--- container log\n{}",
                    self.name,
                    if stopped {
                        "never happened: the container exited"
                    } else {
                        "timed out"
                    },
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.docker.try_run(&["rm", "-f", &self.name]);
    }
}

/// The machine's Debian release (`bookworm`), which the base images copy.
fn debian_release() -> String {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    os.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "bookworm".into())
}

/// A tar of a minimal Debian root filesystem: `debootstrap --variant=minbase`
/// plus the machine's certificate authorities, made once and cached.
fn debian_rootfs() -> Result<PathBuf, String> {
    let release = debian_release();
    let tar = cache_dir().join(format!("debian-{release}-minbase.tar"));
    if tar.exists() {
        return Ok(tar);
    }
    let debootstrap = tool(&["/usr/sbin/debootstrap"], "debootstrap")?;
    let root = tempfile::tempdir_in(cache_dir()).map_err(|e| e.to_string())?;
    eprintln!("debootstrap {release} (minbase) for the image tests ...");
    let out = Command::new(debootstrap)
        .args(["--variant=minbase", &release])
        .arg(root.path())
        .arg("http://deb.debian.org/debian")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("debootstrap failed:\n{}", text(&out)));
    }
    // The machine's CAs: where update-ca-certificates (run when an image
    // installs ca-certificates) looks for local ones, and the bundle itself.
    let local = root.path().join("usr/local/share/ca-certificates");
    std::fs::create_dir_all(&local).map_err(|e| e.to_string())?;
    if let Ok(entries) = std::fs::read_dir("/usr/local/share/ca-certificates") {
        for entry in entries.flatten() {
            let _ = std::fs::copy(entry.path(), local.join(entry.file_name()));
        }
    }
    let bundle = root.path().join("etc/ssl/certs");
    std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
    let _ = std::fs::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        bundle.join("ca-certificates.crt"),
    );
    let partial = tar.with_extension("partial");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "rm -rf {root}/var/cache/apt/archives/*.deb {root}/var/lib/apt/lists/* \
             && tar -C {root} -cf {partial} .",
            root = root.path().display(),
            partial = partial.display()
        ))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "packing the root filesystem failed:\n{}",
            text(&out)
        ));
    }
    std::fs::rename(&partial, &tar).map_err(|e| e.to_string())?;
    Ok(tar)
}

/// Image names, each made at most once per run.
pub(crate) const DEBIAN: &str = "mlserver-test/debian:bookworm-slim";
pub(crate) const RUST_STAND_IN: &str = "mlserver-test/rust:stand-in";

/// Builds (once) what `name` needs and returns the name, or `None` after
/// [`missing_real_part`]. Known names: [`DEBIAN`], [`RUST_STAND_IN`], and
/// `mlserver-rs:test-<target>` for the root Dockerfile's targets.
pub(crate) fn image(what: &str, name: &'static str) -> Option<&'static str> {
    static BUILT: OnceLock<Mutex<std::collections::HashMap<&'static str, Result<(), String>>>> =
        OnceLock::new();
    let docker = docker(what)?;
    let needs = match name {
        DEBIAN => None,
        RUST_STAND_IN => Some(DEBIAN),
        _ => Some(RUST_STAND_IN),
    };
    if let Some(base) = needs {
        image(what, base)?;
    }
    // One build at a time: they share layers, and the machine has 2 cores.
    static BUILDING: Mutex<()> = Mutex::new(());
    let result = {
        let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        let built = BUILT.get_or_init(Default::default);
        let known = built.lock().unwrap().get(name).cloned();
        match known {
            Some(r) => r,
            None => {
                let r = make_image(docker, name);
                built.lock().unwrap().insert(name, r.clone());
                r
            }
        }
    };
    match result {
        Ok(()) => Some(name),
        Err(why) => {
            missing_real_part(what, &why);
            None
        }
    }
}

fn make_image(docker: &Docker, name: &str) -> Result<(), String> {
    let started = Instant::now();
    let result = match name {
        DEBIAN => {
            let rootfs = debian_rootfs()?;
            docker.ok(&[
                "import",
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change",
                r#"CMD ["bash"]"#,
                rootfs.to_str().unwrap(),
                DEBIAN,
            ]);
            Ok(())
        }
        RUST_STAND_IN => {
            let ctx = tempfile::tempdir().unwrap();
            // A stripped copy: the debug binary's symbols are most of it.
            run_ok(
                Command::new("objcopy")
                    .arg("--strip-debug")
                    .arg(MLSERVER)
                    .arg(ctx.path().join("mlserver")),
            );
            write(
                ctx.path(),
                "cargo",
                "#!/bin/sh\n# Stands in for `cargo build --release ... -p mlserver-cli`: the binary\n\
                 # under test, already built, where cargo would leave it.\n\
                 set -e\nmkdir -p target/release\ncp /stand-in/mlserver target/release/mlserver\n",
            );
            write(
                ctx.path(),
                "Dockerfile",
                &format!(
                    "FROM {DEBIAN}\nCOPY mlserver /stand-in/mlserver\nCOPY cargo /usr/local/bin/cargo\n\
                     RUN chmod 755 /usr/local/bin/cargo /stand-in/mlserver\n"
                ),
            );
            docker.ok(&[
                "build",
                "-q",
                "-t",
                RUST_STAND_IN,
                ctx.path().to_str().unwrap(),
            ]);
            Ok(())
        }
        _ => {
            let target = name
                .strip_prefix("mlserver-rs:test-")
                .unwrap_or_else(|| panic!("unknown test image {name}"));
            build_root_dockerfile(docker, target, name)
        }
    };
    eprintln!("image {name} ready in {:.0?}", started.elapsed());
    result
}

/// `docker build --target <target>` of the root Dockerfile on the stand-in
/// base images, with the host network for apt and pip.
fn build_root_dockerfile(docker: &Docker, target: &str, tag: &str) -> Result<(), String> {
    let out = docker.try_run(&[
        "build",
        "--network",
        "host",
        "--target",
        target,
        "--build-arg",
        &format!("RUST_IMAGE={RUST_STAND_IN}"),
        "--build-arg",
        &format!("RUNTIME_IMAGE={DEBIAN}"),
        "-t",
        tag,
        workspace().to_str().unwrap(),
    ]);
    if !out.status.success() {
        // The Dockerfile is under test: a failed step is a failure, not a
        // missing part.
        panic!(
            "building the root Dockerfile's {target} target failed:\n{}",
            text(&out)
        );
    }
    Ok(())
}

/// Buildah on a private vfs store, with chroot isolation: what CI without
/// a daemon runs.
pub(crate) struct Buildah {
    binary: PathBuf,
    store: tempfile::TempDir,
}

impl Buildah {
    /// Buildah, installed when missing; `None` after [`missing_real_part`].
    pub(crate) fn new(what: &str) -> Option<Buildah> {
        match tool(&["/usr/bin/buildah"], "buildah") {
            Ok(binary) => Some(Buildah {
                binary,
                store: tempfile::tempdir_in(cache_dir()).unwrap(),
            }),
            Err(why) => {
                missing_real_part(what, &format!("Buildah cannot be had: {why}"));
                None
            }
        }
    }

    pub(crate) fn cmd(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(self.store.path().join("root"))
            .arg("--runroot")
            .arg(self.store.path().join("run"))
            .args(["--storage-driver", "vfs"]);
        cmd
    }

    /// Copies an image from the daemon into this store as `localhost/<name>`.
    pub(crate) fn pull_from(&self, docker: &Docker, image: &str) -> String {
        let archive = self.store.path().join("pull.tar");
        docker.ok(&["save", "-o", archive.to_str().unwrap(), image]);
        let local = format!("localhost/{}", image.rsplit('/').next().unwrap());
        let id = run_ok(
            self.cmd()
                .args(["pull", "--quiet"])
                .arg(format!("docker-archive:{}", archive.display())),
        );
        run_ok(self.cmd().args(["tag", id.trim(), &local]));
        let _ = std::fs::remove_file(archive);
        local
    }

    /// Hands a built image to the daemon as `tag`, to run it.
    pub(crate) fn push_to(&self, docker: &Docker, image: &str, tag: &str) {
        let archive = self.store.path().join("push.tar");
        run_ok(
            self.cmd()
                .args(["push", "--quiet", image])
                .arg(format!("docker-archive:{}:{tag}", archive.display())),
        );
        docker.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
        let _ = std::fs::remove_file(archive);
    }
}

/// GETs `url` from the host; the status, or 0 when nothing answers.
pub(crate) fn get_status(url: &str) -> u16 {
    reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
