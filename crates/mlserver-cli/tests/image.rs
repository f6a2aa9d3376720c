//! `mlserver dockerfile` and `mlserver build` for real.
//!
//! The build test starts its own `dockerd` (Debian's docker.io, installed by
//! the test when missing) on a private socket, without iptables or a bridge.
//! No registry is reachable, so the base image is made here: the `mlserver`
//! binary under test, `/bin/sh` and their shared libraries, imported with
//! `docker import`. `mlserver build` (bollard, no docker CLI) then builds a
//! folder with embedded settings on top, and `docker run` shows the image
//! serves the embedded model with the embedded port while a runtime env var
//! still overrides. Where no daemon can start, the test says so loudly.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn mlserver() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mlserver"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write(dir: &Path, name: &str, contents: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, contents).unwrap();
}

#[test]
fn dockerfile_writes_refuses_and_prints() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "requirements.txt", "numpy\n");
    let out = mlserver()
        .args(["dockerfile", "-i"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let dockerfile = std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("pip install --no-cache-dir -r /tmp/requirements.txt"));
    for ignore in [".dockerignore", "Dockerfile.dockerignore"] {
        let t = std::fs::read_to_string(dir.path().join(ignore)).unwrap();
        assert!(t.contains("__pycache__") && !t.contains("*.so"), "{t}");
    }
    // Ours: regenerated freely.
    let again = mlserver()
        .arg("dockerfile")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again));

    // Not ours: refused without --force, and nothing is written.
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    let refused = mlserver()
        .args(["dockerfile", "-i"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--force"), "{}", text(&refused));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap(),
        "FROM scratch\n"
    );
    let forced = mlserver()
        .args(["dockerfile", "--force"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(forced.status.success(), "{}", text(&forced));

    // --stdout prints and writes nothing.
    let other = tempfile::tempdir().unwrap();
    let printed = mlserver()
        .args(["dockerfile", "--stdout"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&printed.stdout).contains("FROM ${MLSERVER_IMAGE}"));
    assert!(!other.path().join("Dockerfile").exists());
}

#[test]
fn build_without_a_daemon_says_so_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = mlserver()
        .args(["build", "-t", "x:y"])
        .arg(dir.path())
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no.sock", dir.path().display()),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot reach a Docker daemon") && err.contains("mlserver dockerfile"),
        "{err}"
    );
}

fn find_dockerd() -> Option<PathBuf> {
    ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The test's real part, installed the way the Python clients are: from the
/// distribution's registry, by the test setup itself, so a fresh clone needs
/// only `cargo test --workspace`. Needs root and apt-get (CI has both).
fn install_docker_io() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root || Command::new("apt-get").arg("--version").output().is_err() {
        return;
    }
    eprintln!("installing Debian's docker.io for the image build test ...");
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -qq --no-install-recommends docker.io >/dev/null",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("could not install docker.io");
    }
}

/// A dockerd on a private socket, stopped by its PID when dropped.
struct Daemon {
    child: Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Result<Daemon, String> {
        let dockerd = find_dockerd()
            .or_else(|| {
                install_docker_io();
                find_dockerd()
            })
            .ok_or("dockerd is not installed and Debian's docker.io could not be installed")?;
        // Short path: unix socket paths are limited to about 100 bytes.
        let dir = tempfile::Builder::new()
            .prefix("mlsd")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        let sock = dir.path().join("d.sock");
        let log =
            std::fs::File::create(dir.path().join("dockerd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(dockerd)
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("could not run dockerd: {e}"))?;
        let daemon = Daemon {
            child,
            host: format!("unix://{}", sock.display()),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if daemon.docker(&["version"]).status.success() {
                return Ok(daemon);
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(daemon._dir.path().join("dockerd.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                return Err(format!(
                    "dockerd did not come up in 60 s:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `mlserver build` (the code under test, through bollard) against this
    /// daemon, on the imported base image.
    fn mlserver_build(&self, folder: &Path, tag: &str) -> Output {
        mlserver()
            .args([
                "build",
                "-t",
                tag,
                "--build-arg",
                "MLSERVER_IMAGE=mlserver-rs:e2e-base",
            ])
            .arg(folder)
            .env("DOCKER_HOST", &self.host)
            .output()
            .unwrap()
    }

    /// The docker CLI against this daemon (test setup only: the build under
    /// test goes through bollard).
    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .output()
            .expect("docker CLI")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM by PID, then wait: dockerd stops its containers first.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Files of `binary`'s closure: itself plus what `ldd` lists.
fn with_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    let mut files = vec![binary.to_path_buf()];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = line
            .split("=>")
            .last()
            .and_then(|s| s.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(p) = path {
            files.push(PathBuf::from(p));
        }
    }
    files
}

/// A root filesystem tar: the mlserver binary at /usr/local/bin, /bin/sh,
/// their libraries, and the folders the image contract needs.
fn base_rootfs() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = |path: &str, mode: u32, uid: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(0);
        h.set_size(0);
        tar.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    for (path, mode, uid) in [
        ("bin", 0o755, 0),
        ("tmp", 0o1777, 0),
        ("usr/local/bin", 0o755, 0),
        ("opt/mlserver", 0o775, 1000),
        ("mnt/models", 0o775, 1000),
    ] {
        dir(path, mode, uid);
    }
    let mlserver = PathBuf::from(env!("CARGO_BIN_EXE_mlserver"));
    let sh = std::fs::canonicalize("/bin/sh").expect("/bin/sh");
    let mut add = |source: &Path, target: &str| {
        let data = std::fs::read(source).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, target, data.as_slice()).unwrap();
    };
    add(&mlserver, "usr/local/bin/mlserver");
    add(&sh, "bin/sh");
    let mut libs: Vec<PathBuf> = with_libraries(&mlserver)
        .into_iter()
        .skip(1)
        .chain(with_libraries(&sh).into_iter().skip(1))
        .collect();
    libs.sort();
    libs.dedup();
    for lib in libs {
        let real = std::fs::canonicalize(&lib).unwrap();
        add(&real, lib.to_str().unwrap().trim_start_matches('/'));
    }
    tar.into_inner().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn build_and_run_an_image_with_embedded_settings() {
    let daemon = match Daemon::start() {
        Ok(d) => d,
        Err(why) => {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 SKIPPING the image build test: no Docker daemon could start.\n{why}\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            return;
        }
    };

    // The base image, imported from a folder-made root filesystem.
    let mut import = Command::new("docker")
        .args(["import", "-", "mlserver-rs:e2e-base"])
        .env("DOCKER_HOST", &daemon.host)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    import
        .stdin
        .take()
        .unwrap()
        .write_all(&base_rootfs())
        .unwrap();
    let out = import.wait_with_output().unwrap();
    assert!(out.status.success(), "docker import: {}", text(&out));

    // A folder whose settings become the image's defaults.
    let (http, grpc, metrics) = (free_port(), free_port(), free_port());
    let folder = tempfile::tempdir().unwrap();
    write(
        folder.path(),
        "settings.json",
        &format!(
            r#"{{"host": "127.0.0.1", "http_port": {http}, "grpc_port": {grpc}, "metrics_port": {metrics}, "server_name": "embedded-name"}}"#
        ),
    );
    write(
        folder.path(),
        "model-settings.json",
        r#"{"name": "embedded-sum", "implementation": "sum"}"#,
    );
    write(folder.path(), ".dockerignore", "*.secret\n");
    write(folder.path(), "token.secret", "do not ship");
    let tag = "mlserver-e2e:embedded";
    let out = daemon.mlserver_build(folder.path(), tag);
    let log = text(&out);
    assert!(out.status.success(), "mlserver build failed:\n{log}");
    assert!(
        log.contains("Step 1/") && log.contains("Built image sha256:"),
        "{log}"
    );
    assert!(log.contains(tag), "{log}");

    // The ignored file is not in the image; the .env is.
    let probe = daemon.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        tag,
        "/bin/sh",
        "-c",
        "test ! -e /opt/mlserver/token.secret && test -s /opt/mlserver/.env",
    ]);
    assert!(probe.status.success(), "{}", text(&probe));

    // Run it on an empty models folder, with one runtime env override.
    let name = format!("mlserver-e2e-{http}");
    let run = daemon.docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "--name",
        &name,
        "-e",
        "MLSERVER_SERVER_NAME=from-env",
        tag,
    ]);
    assert!(run.status.success(), "docker run: {}", text(&run));
    let client = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{http}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client
            .get(format!("{base}/v2/models/embedded-sum/ready"))
            .send()
            .map(|r| r.status().as_u16() == 200)
            .unwrap_or(false);
        if ready {
            break;
        }
        if Instant::now() > deadline {
            let logs = daemon.docker(&["logs", &name]);
            let _ = daemon.docker(&["rm", "-f", &name]);
            panic!(
                "the container never served embedded-sum on :{http}\n{}",
                text(&logs)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let meta: serde_json::Value = client
        .get(format!("{base}/v2"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let infer: serde_json::Value = client
        .post(format!("{base}/v2/models/embedded-sum/infer"))
        .json(&serde_json::json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let _ = daemon.docker(&["rm", "-f", &name]);
    assert_eq!(
        meta["name"], "from-env",
        "runtime env overrides the embedded server_name"
    );
    assert_eq!(
        infer["outputs"][0]["data"],
        serde_json::json!([6.0]),
        "{infer}"
    );

    // A failing RUN step fails the build with Docker's message.
    write(folder.path(), "model-settings.json", "{ not json");
    let out = daemon.mlserver_build(folder.path(), "mlserver-e2e:broken");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("returned a non-zero code"),
        "{}",
        text(&out)
    );
}
