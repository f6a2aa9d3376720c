//! The servers under test: how each is prepared, started on free loopback
//! ports, waited for, and stopped.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::loadgen::{grpc_channel, http_client, Endpoints, Transport};
use super::procfs;

pub const MLSERVER_VERSION: &str = "1.7.1";
/// uvloop 0.22 crashes MLServer 1.7.1's workers.
const PIP_PACKAGES: &[&str] = &["mlserver==1.7.1", "uvloop<0.22"];
/// The PyPI wheel that ships `tritonserver` 2.51.0 with its Python backend
/// (and a backend stub per Python version, 3.8 to 3.13).
const PYTRITON: &str = "nvidia-pytriton==0.7.0";
/// What goes into the Triton venv, with `--no-deps`: the wheel (only its
/// binaries are used, not its Python API, whose dependencies are left out)
/// and numpy for the models and `triton_python_backend_utils` (the wheel
/// asks for numpy<2).
const TRITON_PIP_ARGS: &[&str] = &["--no-deps", PYTRITON, "numpy<2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// MLServer with `parallel_workers=0`, metrics off, debug off.
    MlserverFast,
    /// MLServer with its defaults (one worker process, metrics, debug on in 1.7.1).
    MlserverDefault,
    /// Our `mlserver` (release) serving `bench/models/`, defaults.
    Ours,
    /// The same with `parallel_workers=0` and metrics off (as MLServer's fastest).
    OursFast,
    /// Our `mlserver` serving MLServer's Python models (`bench/python/`)
    /// in its Python workers, with the same venv: same Python code,
    /// MLServer vs us.
    OursPython,
    /// NVIDIA Triton 2.51.0 (from the `nvidia-pytriton` wheel) serving the
    /// same computation as `bench/python/` through its Python backend
    /// (`bench/triton/`), CPU only: the other Python-serving server.
    TritonPython,
    Yardstick,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::MlserverFast,
        Kind::MlserverDefault,
        Kind::Ours,
        Kind::OursFast,
        Kind::OursPython,
        Kind::TritonPython,
        Kind::Yardstick,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Kind::MlserverFast => "mlserver-fast",
            Kind::MlserverDefault => "mlserver-default",
            Kind::Ours => "ours",
            Kind::OursFast => "ours-fast",
            Kind::OursPython => "ours-python",
            Kind::TritonPython => "triton-python",
            Kind::Yardstick => "yardstick",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::MlserverFast => "MLServer 1.7.1, fastest",
            Kind::MlserverDefault => "MLServer 1.7.1, defaults",
            Kind::Ours => "**mlserver-rs**, defaults",
            Kind::OursFast => "mlserver-rs, fastest",
            Kind::OursPython => "mlserver-rs, MLServer's Python models",
            Kind::TritonPython => "Triton 2.51.0, Python backend",
            Kind::Yardstick => "yardstick",
        }
    }

    pub fn is_mlserver(self) -> bool {
        matches!(self, Kind::MlserverFast | Kind::MlserverDefault)
    }

    /// Whether it runs the Python models (and needs the venv).
    pub fn needs_venv(self) -> bool {
        self.is_mlserver() || self == Kind::OursPython
    }

    /// Whether it runs binaries this workspace builds (ours, the yardstick).
    pub fn is_built_here(self) -> bool {
        matches!(
            self,
            Kind::Ours | Kind::OursFast | Kind::OursPython | Kind::Yardstick
        )
    }

    /// Whether it is sent requests over `transport`: MLServer has no
    /// binary extension (MLServer#324); ours with the Python models is
    /// compared with Triton's Python backend there.
    pub fn serves(self, transport: Transport) -> bool {
        !(self.is_mlserver() && transport == Transport::RestBinary)
    }
}

/// Paths the bench uses.
pub struct Paths {
    pub root: PathBuf,
    pub target: PathBuf,
    /// `target/bench`
    pub work: PathBuf,
}

impl Paths {
    pub fn new() -> Paths {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask sits in the workspace")
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let work = target.join("bench");
        Paths { root, target, work }
    }
}

/// Makes (or remakes) the venv at `venv` from `$PYTHON` (else `python3`)
/// and installs `packages` (pip arguments) into it.
fn new_venv(venv: &Path, packages: &[&str]) -> Result<()> {
    eprintln!("==> creating {} with {packages:?} (once)", venv.display());
    let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&base)
        .args(["-m", "venv", "--clear"])
        .arg(venv)
        .status()
        .with_context(|| format!("running {base}"))?;
    if !status.success() {
        bail!("{base} -m venv failed");
    }
    pip_install(&venv.join("bin").join("python"), packages)
}

/// The venv with the real MLServer, made on first use under `target/bench`.
pub fn mlserver_venv(paths: &Paths) -> Result<PathBuf> {
    let venv = paths.work.join("venv");
    let python = venv.join("bin").join("python");
    let check =
        format!("import mlserver, uvloop; assert mlserver.__version__ == '{MLSERVER_VERSION}'");
    let ok = |p: &Path| {
        Command::new(p)
            .args(["-c", &check])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if python.exists() && ok(&python) {
        return Ok(venv);
    }
    new_venv(&venv, PIP_PACKAGES)?;
    if !ok(&python) {
        bail!("could not install {PIP_PACKAGES:?} into {}", venv.display());
    }
    Ok(venv)
}

/// `python -m pip install` of `packages`, quietly.
pub fn pip_install(python: &Path, packages: &[&str]) -> Result<()> {
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages)
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    if !status.success() {
        bail!("pip could not install {packages:?}");
    }
    Ok(())
}

/// Triton from the `nvidia-pytriton` wheel in its venv, ready to start.
#[derive(Debug, Clone)]
pub struct Triton {
    /// `<site-packages>/pytriton/tritonserver`: `bin/tritonserver`,
    /// `backends/python/` (the backend, with the stub for the venv's Python
    /// copied in).
    pub home: PathBuf,
    /// The venv's `bin`, first on the server's PATH: the stub embeds
    /// Python without being told where it lives, and finds the venv's
    /// `python3` on PATH (and so the venv's site-packages, numpy).
    pub venv_bin: PathBuf,
    /// The folder of the venv's shared libpython, first on
    /// LD_LIBRARY_PATH: the stub links `libpython3.X.so.1.0` by name, and
    /// the loader would otherwise take the system's (Debian's 3.11.2 here,
    /// against pyenv's 3.11.7 standard library).
    pub libpython_dir: Option<PathBuf>,
}

/// What the venv's Python tells about itself (see [`PY_INFO`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PyInfo {
    /// `3.11`
    version: String,
    site_packages: PathBuf,
    /// sysconfig's LIBDIR and LDLIBRARY, when they name a shared libpython.
    libpython_dir: Option<PathBuf>,
}

/// Prints what [`PyInfo`] holds, one item a line; importing numpy checks it
/// is there.
const PY_INFO: &str = "import sys, sysconfig, numpy
print('%d.%d' % sys.version_info[:2])
print(sysconfig.get_paths()['purelib'])
print(sysconfig.get_config_var('LIBDIR') or '')
print(sysconfig.get_config_var('LDLIBRARY') or '')";

impl PyInfo {
    fn parse(out: &str) -> Result<PyInfo> {
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        let [version, site, libdir, ldlibrary] = lines[..] else {
            bail!("unexpected answer from the venv's Python: {out:?}");
        };
        let shared = ldlibrary.starts_with("libpython") && ldlibrary.contains(".so");
        Ok(PyInfo {
            version: version.to_owned(),
            site_packages: PathBuf::from(site),
            libpython_dir: (shared && !libdir.is_empty()).then(|| PathBuf::from(libdir)),
        })
    }
}

/// The venv with Triton, made once under `target/bench/triton-venv`: the
/// wheel and numpy, and the backend stub built for the venv's Python copied
/// to where the Python backend looks for it (`backends/python/`), as the
/// wheel's own launcher does. A marker file says it is complete.
pub fn triton_venv(paths: &Paths) -> Result<Triton> {
    let venv = paths.work.join("triton-venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join(".bench-complete");
    let describe = || -> Result<PyInfo> {
        let out = Command::new(&python)
            .args(["-c", PY_INFO])
            .output()
            .with_context(|| format!("running {}", python.display()))?;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                python.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        PyInfo::parse(&String::from_utf8_lossy(&out.stdout))
    };
    let triton = |info: PyInfo| {
        let home = info.site_packages.join("pytriton").join("tritonserver");
        Triton {
            home,
            venv_bin: venv.join("bin"),
            libpython_dir: info.libpython_dir,
        }
    };
    let complete = fs::read_to_string(&marker).is_ok_and(|m| m.trim() == PYTRITON);
    if complete {
        if let Ok(info) = describe() {
            let t = triton(info);
            if t.server().exists() && t.stub().exists() {
                return Ok(t);
            }
        }
    }
    new_venv(&venv, TRITON_PIP_ARGS)?;
    let info = describe()?;
    let t = triton(info.clone());
    let stubs = t.home.join("python_backend_stubs");
    let stub = stubs.join(&info.version).join("triton_python_backend_stub");
    if !stub.exists() {
        let have: Vec<String> = fs::read_dir(&stubs)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        bail!(
            "{PYTRITON} has no Python backend stub for Python {} (it has {have:?}): \
             set PYTHON to one of those and remove {}",
            info.version,
            venv.display()
        );
    }
    fs::copy(&stub, t.stub()).with_context(|| format!("copying {}", stub.display()))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(t.stub(), fs::Permissions::from_mode(0o755))?;
    if !t.server().exists() {
        bail!("{PYTRITON} has no {}", t.server().display());
    }
    fs::write(&marker, PYTRITON)?;
    Ok(t)
}

impl Triton {
    pub fn server(&self) -> PathBuf {
        self.home.join("bin").join("tritonserver")
    }

    fn stub(&self) -> PathBuf {
        self.home
            .join("backends")
            .join("python")
            .join("triton_python_backend_stub")
    }

    /// `tritonserver`'s arguments: the model repository, loopback at
    /// `ports` (HTTP, gRPC, metrics: on, as Triton's default, CPU metrics
    /// only), CPU only (no pinned or CUDA memory pools), the wheel's
    /// backends, no verbose logging (info lines at startup and stop only).
    fn args(&self, repository: &Path, ports: [u16; 3]) -> Vec<String> {
        let [http, grpc, metrics] = ports;
        vec![
            format!("--model-repository={}", repository.display()),
            format!(
                "--backend-directory={}",
                self.home.join("backends").display()
            ),
            "--http-address=127.0.0.1".into(),
            format!("--http-port={http}"),
            "--grpc-address=127.0.0.1".into(),
            format!("--grpc-port={grpc}"),
            "--metrics-address=127.0.0.1".into(),
            format!("--metrics-port={metrics}"),
            // No GPU: don't try NVML and DCGM for GPU metrics.
            "--allow-gpu-metrics=false".into(),
            "--pinned-memory-pool-byte-size=0".into(),
            "--cuda-memory-pool-byte-size=0:0".into(),
            "--log-verbose=0".into(),
        ]
    }

    /// The command that starts Triton serving `repository`; the stub finds
    /// the venv's Python through PATH and LD_LIBRARY_PATH (see the fields).
    pub fn command(&self, repository: &Path, ports: [u16; 3]) -> Command {
        let mut cmd = Command::new(self.server());
        cmd.args(self.args(repository, ports));
        cmd.env("PATH", prepend(&self.venv_bin, std::env::var_os("PATH")));
        if let Some(dir) = &self.libpython_dir {
            cmd.env(
                "LD_LIBRARY_PATH",
                prepend(dir, std::env::var_os("LD_LIBRARY_PATH")),
            );
        }
        cmd
    }
}

/// `dir` before the entries of a PATH-like variable's value.
fn prepend(dir: &Path, rest: Option<std::ffi::OsString>) -> std::ffi::OsString {
    let mut out = dir.as_os_str().to_owned();
    if let Some(rest) = rest.filter(|r| !r.is_empty()) {
        out.push(":");
        out.push(rest);
    }
    out
}

/// The model repository Triton serves: `bench/triton/` copied under
/// `target/bench/triton-python/` (the stub writes `__pycache__` beside
/// `model.py`, and the source tree stays as it is).
fn triton_repository(paths: &Paths) -> Result<PathBuf> {
    let src = paths.root.join("bench").join("triton");
    let dir = paths.work.join(Kind::TritonPython.id()).join("models");
    let _ = fs::remove_dir_all(&dir);
    for model in TRITON_MODELS {
        for file in ["config.pbtxt", "1/model.py"] {
            let to = dir.join(model).join(file);
            fs::create_dir_all(to.parent().expect("a folder"))?;
            let from = src.join(model).join(file);
            fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        }
    }
    Ok(dir)
}

/// The models of `bench/triton/`.
const TRITON_MODELS: [&str; 2] = ["sum-model", "echo-model"];

/// settings.json for a folder of Python models: loopback and `ports`
/// (HTTP, gRPC, metrics); with `fastest`, MLServer's fastest configuration
/// (`parallel_workers=0`, metrics off, debug off).
pub fn write_python_settings(dir: &Path, ports: [u16; 3], fastest: bool) -> Result<()> {
    let [http, grpc, metrics] = ports;
    let mut settings = json!({"host": "127.0.0.1", "http_port": http,
                              "grpc_port": grpc, "metrics_port": metrics});
    if fastest {
        settings["parallel_workers"] = json!(0);
        settings["metrics_endpoint"] = json!(null);
        settings["debug"] = json!(false);
    }
    fs::write(
        dir.join("settings.json"),
        serde_json::to_vec_pretty(&settings)?,
    )?;
    Ok(())
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A started server.
pub struct Running {
    child: Child,
    pub pid: u32,
    pub endpoints: Endpoints,
    /// From spawning the process to REST and gRPC answering ready, with
    /// both models ready.
    pub ready_after: Duration,
    pub log: PathBuf,
}

/// Our release binary serving `models`, on loopback at `ports` (HTTP,
/// gRPC, metrics) given by environment variables.
pub fn ours_on(paths: &Paths, models: &Path, ports: [u16; 3]) -> Command {
    let [http, grpc, metrics] = ports;
    let mut cmd = Command::new(paths.target.join("release").join("mlserver"));
    cmd.arg("start")
        .arg(models)
        .env("MLSERVER_HOST", "127.0.0.1")
        .env("MLSERVER_HTTP_PORT", http.to_string())
        .env("MLSERVER_GRPC_PORT", grpc.to_string())
        .env("MLSERVER_METRICS_PORT", metrics.to_string());
    cmd
}

/// Starts `kind` on free ports and waits until it is ready.
/// With `callgrind`, the server runs under valgrind's callgrind, dumping
/// into that folder.
pub async fn start(
    kind: Kind,
    paths: &Paths,
    venv: Option<&Path>,
    triton: Option<&Triton>,
    callgrind: Option<&Path>,
) -> Result<Running> {
    let (http, grpc, metrics) = (free_port()?, free_port()?, free_port()?);
    let logs = paths.work.join("logs");
    fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{}.log", kind.id()));
    let mut cmd = match kind {
        Kind::MlserverFast | Kind::MlserverDefault => {
            let venv = venv.context("MLServer needs its venv")?;
            let dir = mlserver_folder(kind, paths, http, grpc, metrics)?;
            let mut cmd = Command::new(venv.join("bin").join("mlserver"));
            cmd.args(["start", "."])
                .current_dir(&dir)
                .env("PYTHONPATH", paths.root.join("bench").join("python"));
            cmd
        }
        Kind::Ours | Kind::OursFast => {
            let models = match kind {
                Kind::OursFast => ours_fast_folder(paths)?,
                _ => paths.root.join("bench").join("models"),
            };
            ours_on(paths, &models, [http, grpc, metrics])
        }
        Kind::OursPython => {
            let venv = venv.context("the Python models need the venv")?;
            // MLServer's own settings and model-settings, served by us.
            let dir = mlserver_folder(kind, paths, http, grpc, metrics)?;
            let mut cmd = Command::new(paths.target.join("release").join("mlserver"));
            cmd.arg("start")
                .arg(&dir)
                .env("MLSERVER_PYTHON", venv.join("bin").join("python"))
                .env("PYTHONPATH", paths.root.join("bench").join("python"));
            cmd
        }
        Kind::TritonPython => {
            let triton = triton.context("Triton needs its venv")?;
            triton.command(&triton_repository(paths)?, [http, grpc, metrics])
        }
        Kind::Yardstick => {
            let mut cmd = Command::new(paths.target.join("release").join("yardstick"));
            cmd.args([http.to_string(), grpc.to_string()]);
            cmd
        }
    };
    if let Some(dir) = callgrind {
        cmd = super::callgrind::wrap(&cmd, dir)?;
    } else if let (Ok(wrapper), true) = (std::env::var("BENCH_WRAP"), kind.is_built_here()) {
        // Profiling aid: BENCH_WRAP="strace -f -c -o FILE" (or perf record
        // ...) runs our binaries and the yardstick under that command.
        let words: Vec<&str> = wrapper.split_whitespace().collect();
        if !words.is_empty() {
            cmd = super::callgrind::wrap_in(&cmd, &words);
        }
    }
    let out = fs::File::create(&log)?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let endpoints = Endpoints {
        http: format!("http://127.0.0.1:{http}"),
        grpc: format!("http://127.0.0.1:{grpc}"),
    };
    let started = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let pid = child.id();
    let mut running = Running {
        child,
        pid,
        endpoints,
        ready_after: Duration::ZERO,
        log,
    };
    match wait_ready(&mut running, started).await {
        Ok(()) => Ok(running),
        Err(e) => {
            let tail = running.log_tail();
            running.stop();
            Err(anyhow::anyhow!(
                "{} did not become ready ({e:#}); its log ends:\n{tail}",
                kind.id()
            ))
        }
    }
}

/// settings.json and model-settings.json for MLServer, pointing at the
/// Python models in `bench/python/`.
fn mlserver_folder(
    kind: Kind,
    paths: &Paths,
    http: u16,
    grpc: u16,
    metrics: u16,
) -> Result<PathBuf> {
    let dir = paths.work.join(kind.id());
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    write_python_settings(&dir, [http, grpc, metrics], kind == Kind::MlserverFast)?;
    for (name, class) in [("sum-model", "SumModel"), ("echo-model", "EchoModel")] {
        let model_dir = dir.join(name);
        fs::create_dir_all(&model_dir)?;
        let ms = json!({"name": name, "implementation": format!("bench_models.{class}")});
        fs::write(
            model_dir.join("model-settings.json"),
            serde_json::to_vec_pretty(&ms)?,
        )?;
    }
    Ok(dir)
}

/// `bench/models/` plus a settings.json with `parallel_workers=0` and
/// metrics off.
fn ours_fast_folder(paths: &Paths) -> Result<PathBuf> {
    let dir = paths.work.join(Kind::OursFast.id());
    let _ = fs::remove_dir_all(&dir);
    for name in ["sum-model", "echo-model"] {
        fs::create_dir_all(dir.join(name))?;
        let file = Path::new(name).join("model-settings.json");
        fs::copy(
            paths.root.join("bench").join("models").join(&file),
            dir.join(&file),
        )?;
    }
    let settings = json!({"parallel_workers": 0, "metrics_endpoint": null});
    fs::write(
        dir.join("settings.json"),
        serde_json::to_vec_pretty(&settings)?,
    )?;
    Ok(dir)
}

pub async fn wait_ready(running: &mut Running, started: Instant) -> Result<()> {
    let client = http_client(1)?;
    let base = running.endpoints.http.clone();
    let urls = [
        format!("{base}/v2/health/ready"),
        format!("{base}/v2/models/sum-model/ready"),
        format!("{base}/v2/models/echo-model/ready"),
    ];
    let deadline = started + Duration::from_secs(180);
    let mut next = 0;
    while next < urls.len() {
        if let Some(status) = running.child.try_wait()? {
            bail!("exited with {status}");
        }
        if Instant::now() > deadline {
            bail!("not ready after 180 s");
        }
        match client
            .get(&urls[next])
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => next += 1,
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
    running.ready_after = started.elapsed();
    // gRPC must answer too before any scenario runs (not part of ready_after:
    // both servers start together and REST readiness is what users poll).
    let grpc_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let channel = grpc_channel(&running.endpoints.grpc).await?;
            let mut c = mlserver_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
            let r = c
                .server_ready(mlserver_proto::inference::ServerReadyRequest {})
                .await?;
            anyhow::Ok(r.into_inner().ready)
        };
        match attempt.await {
            Ok(true) => return Ok(()),
            _ if Instant::now() > grpc_deadline => bail!("gRPC not ready after 30 s"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

impl Running {
    /// Spawns `cmd`, listening on loopback at `ports` (HTTP, gRPC, metrics),
    /// its output to `target/bench/logs/<log_name>.log`, without waiting
    /// for readiness: for callers that decide themselves when a server is
    /// ready.
    pub fn spawn(
        mut cmd: Command,
        paths: &Paths,
        log_name: &str,
        ports: [u16; 3],
    ) -> Result<Running> {
        let logs = paths.work.join("logs");
        fs::create_dir_all(&logs)?;
        let log = logs.join(format!("{log_name}.log"));
        let endpoints = Endpoints {
            http: format!("http://127.0.0.1:{}", ports[0]),
            grpc: format!("http://127.0.0.1:{}", ports[1]),
        };
        let out = fs::File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        Ok(Running {
            pid: child.id(),
            child,
            endpoints,
            ready_after: Duration::ZERO,
            log,
        })
    }

    pub fn usage(&self) -> procfs::TreeUsage {
        procfs::tree_usage(self.pid)
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, a grace period, then SIGKILL for whatever is left of the
    /// process tree (by pid: only processes this server started).
    pub fn stop(&mut self) {
        let pids: Vec<u32> = procfs::tree_pids(self.pid);
        signal("TERM", &[self.pid]);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let left: Vec<u32> = pids
            .into_iter()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .collect();
        if !left.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
            signal("KILL", &left);
        }
        // Killed processes take a while to go (their memory is freed after
        // the signal): the next server must not start beside them.
        let deadline = Instant::now() + Duration::from_secs(10);
        while left.iter().any(|&p| procfs::running(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

fn signal(sig: &str, pids: &[u32]) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::loadgen::scenarios;

    #[test]
    fn reads_what_the_venv_python_says() {
        let info =
            PyInfo::parse("3.11\n/v/lib/python3.11/site-packages\n/py/lib\nlibpython3.11.so\n")
                .unwrap();
        assert_eq!(info.version, "3.11");
        assert_eq!(
            info.site_packages,
            Path::new("/v/lib/python3.11/site-packages")
        );
        assert_eq!(info.libpython_dir.as_deref(), Some(Path::new("/py/lib")));
        // A static Python: no libpython to put first.
        let info = PyInfo::parse("3.12\n/v/sp\n/usr/lib\nlibpython3.12.a\n").unwrap();
        assert_eq!(info.libpython_dir, None);
        assert!(PyInfo::parse("3.11\n").is_err());
    }

    #[test]
    fn starts_triton_cpu_only_on_loopback_with_the_venv_first() {
        let t = Triton {
            home: PathBuf::from("/sp/pytriton/tritonserver"),
            venv_bin: PathBuf::from("/venv/bin"),
            libpython_dir: Some(PathBuf::from("/py/lib")),
        };
        let args = t.args(Path::new("/repo"), [8000, 8001, 8002]);
        for want in [
            "--model-repository=/repo",
            "--backend-directory=/sp/pytriton/tritonserver/backends",
            "--http-address=127.0.0.1",
            "--http-port=8000",
            "--grpc-port=8001",
            "--metrics-port=8002",
            "--pinned-memory-pool-byte-size=0",
            "--cuda-memory-pool-byte-size=0:0",
            "--log-verbose=0",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
        }
        let cmd = t.command(Path::new("/repo"), [1, 2, 3]);
        assert_eq!(
            cmd.get_program(),
            "/sp/pytriton/tritonserver/bin/tritonserver"
        );
        let env = |name: &str| {
            cmd.get_envs()
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v)
                .map(|v| v.to_string_lossy().into_owned())
        };
        assert!(env("PATH").unwrap().starts_with("/venv/bin"));
        assert!(env("LD_LIBRARY_PATH").unwrap().starts_with("/py/lib"));
        assert_eq!(
            prepend(Path::new("/a"), Some("/b:/c".into())),
            std::ffi::OsString::from("/a:/b:/c")
        );
        assert_eq!(
            prepend(Path::new("/a"), Some("".into())),
            std::ffi::OsString::from("/a")
        );
    }

    /// The checked-in model configurations declare what the load generator
    /// sends and checks: FP32 `input` of any `[rows, n]` as it comes (no
    /// batching dimension), FP32 `output`, the Python backend on one CPU
    /// instance.
    #[test]
    fn triton_models_take_the_bench_requests_as_they_are() {
        let root = Paths::new().root.join("bench").join("triton");
        for sc in scenarios() {
            assert!(TRITON_MODELS.contains(&sc.model.name()), "{}", sc.name);
        }
        for model in TRITON_MODELS {
            let config = fs::read_to_string(root.join(model).join("config.pbtxt")).unwrap();
            let lines: Vec<&str> = config
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .collect();
            for want in [
                format!("name: \"{model}\""),
                "backend: \"python\"".into(),
                "max_batch_size: 0".into(),
                "name: \"input\"".into(),
                "name: \"output\"".into(),
                "dims: [ -1, -1 ]".into(),
                "kind: KIND_CPU".into(),
                "count: 1".into(),
            ] {
                assert!(lines.contains(&want.as_str()), "{model}: no {want}");
            }
            assert_eq!(
                lines
                    .iter()
                    .filter(|l| **l == "data_type: TYPE_FP32")
                    .count(),
                2,
                "{model}"
            );
            let code = fs::read_to_string(root.join(model).join("1").join("model.py")).unwrap();
            assert!(code.contains("class TritonPythonModel"), "{model}");
            assert!(code.contains("\"input\"") && code.contains("\"output\""));
        }
    }
}
