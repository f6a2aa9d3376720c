//! `cargo xtask bench --many-models N`: N models in one folder, as
//! ModelMesh packs many into one pod. Measured per server: the time from
//! spawning it to all N reported `READY` by the repository index, RSS then
//! (and per model), the index's latency, an inference's on a random one of
//! the N with all loaded, and RSS after those inferences.
//!
//! Four setups: ours on N copies of the bundled iris ONNX model (MLServer
//! 1.7.1 has no ONNX runtime, so it cannot serve that folder), ours on N
//! copies of an XGBoost model file (`mlserver_xgboost.XGBoostModel`, served
//! natively; a 3-class, 3-round model of `mlserver-trees`' fixtures); and, on one
//! folder of N Python `bench_models.SumModel`s, MLServer 1.7.1 at its fastest
//! (`parallel_workers=0`, metrics off) and ours through its Python worker
//! (defaults: one worker): the same Python code under both servers.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::loadgen::http_client;
use super::procfs;
use super::servers::{free_port, ours_on, write_python_settings, Kind, Paths, Running};
use super::stats::percentile;

/// How long a server may take to report all N models ready.
const LOAD_TIMEOUT: Duration = Duration::from_secs(180);
const INDEX_CALLS: usize = 20;
const INFER_CALLS: usize = 500;

/// One of the setups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    OursOnnx,
    OursTrees,
    OursPython,
    Mlserver,
}

impl Setup {
    fn label(self) -> &'static str {
        match self {
            Setup::OursOnnx => "**mlserver-rs**, iris ONNX models",
            Setup::OursTrees => "**mlserver-rs**, XGBoost model files (native)",
            Setup::OursPython => "mlserver-rs, MLServer's Python models (one worker)",
            Setup::Mlserver => "MLServer 1.7.1, fastest, the same Python models",
        }
    }

    /// A request body for one of its models.
    fn body(self) -> Value {
        match self {
            Setup::OursOnnx => json!({"inputs": [{"name": "input", "shape": [1, 4],
                "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}),
            Setup::OursTrees => json!({"inputs": [{"name": "input", "shape": [1, 8],
                "datatype": "FP32", "data": [0.5, -1.0, 2.0, 0.0, 1.5, -0.5, 0.25, 3.0]}]}),
            _ => json!({"inputs": [{"name": "input", "shape": [1, 16],
                "datatype": "FP32", "data": (0..16).map(|i| i as f32).collect::<Vec<_>>()}]}),
        }
    }
}

/// What one setup measured.
struct Measured {
    setup: Setup,
    ready_after: Option<Duration>,
    loaded: usize,
    rss_ready: u64,
    index: (Duration, Duration),
    infer: (Duration, Duration),
    rss_after: u64,
}

/// The setups `servers` asks for (all by default).
fn setups(servers: &[Kind]) -> Vec<Setup> {
    let mut out = Vec::new();
    if servers.contains(&Kind::Ours) {
        out.push(Setup::OursOnnx);
        out.push(Setup::OursTrees);
    }
    if servers.contains(&Kind::OursPython) {
        out.push(Setup::OursPython);
    }
    if servers.contains(&Kind::MlserverFast) {
        out.push(Setup::Mlserver);
    }
    out
}

/// Whether the setups for `servers` need the MLServer venv.
pub fn needs_venv(servers: &[Kind]) -> bool {
    setups(servers)
        .iter()
        .any(|s| !matches!(s, Setup::OursOnnx | Setup::OursTrees))
}

/// Runs every setup `servers` asks for with `n` models; the markdown report.
pub async fn run(n: usize, servers: &[Kind], paths: &Paths, venv: Option<&Path>) -> Result<String> {
    let setups = setups(servers);
    if setups.is_empty() {
        bail!("--many-models runs ours, ours-python and mlserver-fast; --only named none of them");
    }
    let mut results = Vec::new();
    for setup in setups {
        tokio::task::block_in_place(|| super::procfs::start_when_quiet(setup.label()));
        eprintln!("==> {n} models: {}", setup.label());
        match measure(setup, n, paths, venv).await {
            Ok(m) => results.push(Ok(m)),
            Err(e) => {
                eprintln!("!!! {}: {e:#}", setup.label());
                results.push(Err((setup, format!("{e:#}"))));
            }
        }
    }
    Ok(render(n, &results))
}

async fn measure(setup: Setup, n: usize, paths: &Paths, venv: Option<&Path>) -> Result<Measured> {
    let (http, grpc, metrics) = (free_port()?, free_port()?, free_port()?);
    let folder = write_folder(setup, n, paths, [http, grpc, metrics])?;
    let release = paths.target.join("release").join("mlserver");
    let mut cmd = match setup {
        Setup::OursOnnx | Setup::OursTrees => ours_on(paths, &folder, [http, grpc, metrics]),
        Setup::OursPython => {
            let venv = venv.context("the Python models need the venv")?;
            let mut cmd = Command::new(&release);
            cmd.arg("start")
                .arg(&folder)
                .env("MLSERVER_PYTHON", venv.join("bin").join("python"));
            cmd
        }
        Setup::Mlserver => {
            let venv = venv.context("MLServer needs its venv")?;
            let mut cmd = Command::new(venv.join("bin").join("mlserver"));
            cmd.args(["start", "."]).current_dir(&folder);
            cmd
        }
    };
    cmd.env("PYTHONPATH", paths.root.join("bench").join("python"));
    let started = Instant::now();
    let mut running = Running::spawn(
        cmd,
        paths,
        &format!("many-models-{setup:?}"),
        [http, grpc, metrics],
    )?;
    let result = measure_running(setup, n, &running, started).await;
    tokio::task::block_in_place(|| running.stop());
    result
}

async fn measure_running(
    setup: Setup,
    n: usize,
    running: &Running,
    started: Instant,
) -> Result<Measured> {
    let client = http_client(1)?;
    let base = &running.endpoints.http;
    let index = || {
        let request = client
            .post(format!("{base}/v2/repository/index"))
            .header("content-type", "application/json")
            .body("{}");
        async move {
            let response = request.send().await?.error_for_status()?;
            let models: Vec<Value> = serde_json::from_slice(&response.bytes().await?)?;
            let ready: Vec<String> = models
                .iter()
                .filter(|m| m["state"] == "READY")
                .filter_map(|m| m["name"].as_str().map(str::to_owned))
                .collect();
            anyhow::Ok(ready)
        }
    };
    let mut ready = Vec::new();
    let ready_after = loop {
        if !procfs::running(running.pid) {
            bail!("the server exited; see {}", running.log.display());
        }
        if let Ok(names) = index().await {
            ready = names;
            if ready.len() >= n {
                break Some(started.elapsed());
            }
        }
        if started.elapsed() > LOAD_TIMEOUT {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let loaded = ready.len();
    if loaded == 0 {
        bail!("no model was ready after {} s", LOAD_TIMEOUT.as_secs());
    }
    eprintln!(
        "    {loaded} of {n} ready{}",
        ready_after.map_or_else(
            || format!(" after the {} s limit", LOAD_TIMEOUT.as_secs()),
            |t| format!(" after {:.2} s", t.as_secs_f64())
        )
    );
    let rss_ready = procfs::tree_usage(running.pid).rss_bytes;
    let mut index_times = Vec::with_capacity(INDEX_CALLS);
    for _ in 0..INDEX_CALLS {
        let t = Instant::now();
        index().await?;
        index_times.push(t.elapsed());
    }
    let body = serde_json::to_vec(&setup.body())?;
    let mut infer_times = Vec::with_capacity(INFER_CALLS);
    let mut random = Xorshift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..INFER_CALLS {
        let model = &ready[random.below(loaded)];
        let t = Instant::now();
        let response = client
            .post(format!("{base}/v2/models/{model}/infer"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        let status = response.status();
        response.bytes().await?;
        if !status.is_success() {
            bail!("inference on {model} answered {status}");
        }
        infer_times.push(t.elapsed());
    }
    Ok(Measured {
        setup,
        ready_after,
        loaded,
        rss_ready,
        index: p50_p99(index_times),
        infer: p50_p99(infer_times),
        rss_after: procfs::tree_usage(running.pid).rss_bytes,
    })
}

fn p50_p99(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (percentile(&times, 50.0), percentile(&times, 99.0))
}

/// The folder of `n` models for `setup`, with a settings.json for the
/// Python setups (the ports; for MLServer, its fastest configuration).
fn write_folder(setup: Setup, n: usize, paths: &Paths, ports: [u16; 3]) -> Result<PathBuf> {
    let dir = paths.work.join("many-models").join(format!("{setup:?}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let onnx = fs::read(
        paths
            .root
            .join("examples")
            .join("models")
            .join("iris-onnx")
            .join("model.onnx"),
    )
    .context("reading the bundled iris model")?;
    let xgboost = fs::read(
        paths
            .root
            .join("crates/mlserver-trees/tests/fixtures")
            .join("softprob.ubj"),
    )
    .context("reading the XGBoost fixture")?;
    for i in 0..n {
        let model = dir.join(format!("m{i}"));
        fs::create_dir_all(&model)?;
        let settings = match setup {
            Setup::OursOnnx => {
                fs::write(model.join("model.onnx"), &onnx)?;
                json!({"name": format!("m{i}"), "implementation": "onnx",
                       "parameters": {"uri": "./model.onnx"}})
            }
            Setup::OursTrees => {
                fs::write(model.join("model.bst"), &xgboost)?;
                json!({"name": format!("m{i}"), "implementation": "mlserver_xgboost.XGBoostModel"})
            }
            _ => json!({"name": format!("m{i}"), "implementation": "bench_models.SumModel"}),
        };
        fs::write(model.join("model-settings.json"), settings.to_string())?;
    }
    if !matches!(setup, Setup::OursOnnx | Setup::OursTrees) {
        write_python_settings(&dir, ports, setup == Setup::Mlserver)?;
    }
    Ok(dir)
}

fn render(n: usize, results: &[Result<Measured, (Setup, String)>]) -> String {
    let mib = |b: u64| b as f64 / 1048576.0;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut md = format!(
        "## Many models\n\n{n} models in one folder; ready: from spawning the server to the \
         repository index reporting all {n} `READY` (limit {} s); RSS of the process tree; index \
         and inference latency over one keep-alive connection ({INDEX_CALLS} index calls, \
         {INFER_CALLS} inferences on random models).\n\n\
         | server | ready s | ready models | RSS at ready MiB | KiB per model | index p50 / p99 ms | \
         infer p50 / p99 ms | RSS after MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        LOAD_TIMEOUT.as_secs()
    );
    for r in results {
        match r {
            Ok(m) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.1} | {:.0} | {:.1} / {:.1} | {:.2} / {:.2} | {:.1} |",
                    m.setup.label(),
                    m.ready_after.map_or_else(
                        || "not all".to_owned(),
                        |t| format!("{:.2}", t.as_secs_f64())
                    ),
                    m.loaded,
                    mib(m.rss_ready),
                    m.rss_ready as f64 / 1024.0 / m.loaded.max(1) as f64,
                    ms(m.index.0),
                    ms(m.index.1),
                    ms(m.infer.0),
                    ms(m.infer.1),
                    mib(m.rss_after),
                );
            }
            Err((setup, e)) => {
                let _ = writeln!(
                    md,
                    "| {} | failed: {} | | | | | | |",
                    setup.label(),
                    e.replace('|', "/")
                );
            }
        }
    }
    md
}

/// A small deterministic generator for picking models: the same sequence
/// in every run and for every server.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_stay_in_range_and_spread() {
        let mut r = Xorshift(0x9E37_79B9_7F4A_7C15);
        let picks: Vec<usize> = (0..1000).map(|_| r.below(10)).collect();
        assert!(picks.iter().all(|p| *p < 10));
        for k in 0..10 {
            assert!(picks.iter().filter(|p| **p == k).count() > 50, "{k}");
        }
    }

    #[test]
    fn setups_follow_only() {
        assert_eq!(
            setups(&Kind::ALL),
            vec![
                Setup::OursOnnx,
                Setup::OursTrees,
                Setup::OursPython,
                Setup::Mlserver
            ]
        );
        assert_eq!(
            setups(&[Kind::Ours]),
            vec![Setup::OursOnnx, Setup::OursTrees]
        );
        assert!(!needs_venv(&[Kind::Ours, Kind::Yardstick]));
        assert!(needs_venv(&[Kind::MlserverFast]));
    }
}
