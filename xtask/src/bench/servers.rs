//! The servers under test: how each is prepared, started on free loopback
//! ports, waited for, and stopped.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::loadgen::{grpc_channel, http_client, Endpoints};
use super::procfs;

pub const MLSERVER_VERSION: &str = "1.7.1";
/// uvloop 0.22 crashes MLServer 1.7.1's workers.
const PIP_PACKAGES: &[&str] = &["mlserver==1.7.1", "uvloop<0.22"];

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
    Yardstick,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::MlserverFast,
        Kind::MlserverDefault,
        Kind::Ours,
        Kind::OursFast,
        Kind::OursPython,
        Kind::Yardstick,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Kind::MlserverFast => "mlserver-fast",
            Kind::MlserverDefault => "mlserver-default",
            Kind::Ours => "ours",
            Kind::OursFast => "ours-fast",
            Kind::OursPython => "ours-python",
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

/// Builds our server and the yardstick in release mode.
pub fn build_release(paths: &Paths) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("==> cargo build --release -p mlserver-cli -p yardstick");
    let status = Command::new(cargo)
        .current_dir(&paths.root)
        .args([
            "build",
            "--release",
            "-p",
            "mlserver-cli",
            "-p",
            "yardstick",
        ])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(())
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
    eprintln!(
        "==> creating {} with {PIP_PACKAGES:?} (once)",
        venv.display()
    );
    let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&base)
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .with_context(|| format!("running {base}"))?;
    if !status.success() {
        bail!("{base} -m venv failed");
    }
    pip_install(&python, PIP_PACKAGES)?;
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
        Kind::Yardstick => {
            let mut cmd = Command::new(paths.target.join("release").join("yardstick"));
            cmd.args([http.to_string(), grpc.to_string()]);
            cmd
        }
    };
    if let Some(dir) = callgrind {
        cmd = super::callgrind::wrap(&cmd, dir)?;
    } else if let (Ok(wrapper), false) = (std::env::var("BENCH_WRAP"), kind.is_mlserver()) {
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
