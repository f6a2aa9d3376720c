//! `cargo xtask bench --real-models`: models as users serve them, with
//! batches of 1 and 64 rows at concurrency 1 and 32, over REST JSON: three
//! scikit-learn models (a logistic regression, a 100-tree gradient boosting
//! regressor and a 100-tree random forest classifier), an XGBoost multiclass
//! classifier and a LightGBM binary classifier, on 20 features.
//!
//! Served three ways, from the same files under the same implementation
//! names (`mlserver_sklearn.SKLearnModel`, `mlserver_xgboost.XGBoostModel`,
//! `mlserver_lightgbm.LightGBMModel`): by MLServer 1.7.1 with its runtimes
//! (its fastest and its default configuration), by ours through its Python
//! worker with the same runtimes (defaults, `parameters.extra.native:
//! false`), and by ours natively (defaults: the scikit-learn pickles loaded
//! by a worker and handed over, the XGBoost and LightGBM files read as they
//! are). Every server must answer the library's own predictions (checked on
//! a sample of replies).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use serde_json::{json, Value};

use super::loadgen::{http_client, Outcome, Payload, Transport, Window};
use super::options::Options;
use super::servers::{free_port, pip_install, write_python_settings, Kind, Paths, Running};
use super::{report, stats};

/// What the venv needs on top of MLServer: its scikit-learn runtime and the
/// tree libraries (`xgboost-cpu`: `xgboost` without NVIDIA's NCCL).
const PACKAGES: &[&str] = &[
    "mlserver-sklearn==1.7.1",
    "xgboost-cpu==3.2.*",
    "lightgbm==4.7.*",
];
/// MLServer's tree runtimes, without their dependencies (which would add
/// `xgboost` and NCCL beside `xgboost-cpu`).
const NO_DEPS: &[&str] = &[
    "--no-deps",
    "mlserver-xgboost==1.7.1",
    "mlserver-lightgbm==1.7.1",
];
const MODELS: [&str; 5] = ["lr", "gbm", "rf", "xgb", "lgb"];
const BATCHES: [usize; 2] = [1, 64];
const CONCURRENCY: [usize; 2] = [1, 32];

/// One way of serving the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    MlserverFast,
    MlserverDefault,
    OursPython,
    OursNative,
}

impl Setup {
    fn label(self) -> &'static str {
        match self {
            Setup::MlserverFast => "MLServer 1.7.1 + its runtimes, fastest",
            Setup::MlserverDefault => "MLServer 1.7.1 + its runtimes, defaults",
            Setup::OursPython => "mlserver-rs, Python worker + MLServer's runtimes",
            Setup::OursNative => "**mlserver-rs**, native (same files)",
        }
    }
}

/// The setups `servers` asks for, in report order.
fn setups(servers: &[Kind]) -> Vec<Setup> {
    [
        (Kind::MlserverFast, Setup::MlserverFast),
        (Kind::MlserverDefault, Setup::MlserverDefault),
        (Kind::OursPython, Setup::OursPython),
        (Kind::Ours, Setup::OursNative),
    ]
    .into_iter()
    .filter(|(k, _)| servers.contains(k))
    .map(|(_, s)| s)
    .collect()
}

/// One measured combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Case {
    model: &'static str,
    batch: usize,
    concurrency: usize,
}

impl Case {
    fn all() -> Vec<Case> {
        let mut out = Vec::new();
        for model in MODELS {
            for batch in BATCHES {
                for concurrency in CONCURRENCY {
                    out.push(Case {
                        model,
                        batch,
                        concurrency,
                    });
                }
            }
        }
        out
    }

    fn name(self) -> String {
        format!("{}-b{}-c{}", self.model, self.batch, self.concurrency)
    }
}

/// A model's rows and its library's predictions, from `make_real_models.py`.
#[derive(Debug)]
struct Reference {
    rows: Vec<Vec<f32>>,
    predict: Vec<f64>,
}

/// The file and implementation `model` is served with, and whether `setup`
/// turns the native runtimes off for it.
fn served_as(model: &str, setup: Setup) -> (&'static str, &'static str, bool) {
    let (file, implementation) = match model {
        "xgb" => ("model.json", "mlserver_xgboost.XGBoostModel"),
        "lgb" => ("model.bst", "mlserver_lightgbm.LightGBMModel"),
        _ => ("model.joblib", "mlserver_sklearn.SKLearnModel"),
    };
    (file, implementation, setup == Setup::OursPython)
}

/// The request of `case`, and the values it must answer.
fn payload(case: Case, reference: &Reference) -> Payload {
    let rows = &reference.rows[..case.batch];
    let width = rows.first().map_or(0, Vec::len);
    let data: Vec<f32> = rows.iter().flatten().copied().collect();
    let body = json!({"inputs": [{"name": "input", "shape": [case.batch, width],
                                  "datatype": "FP32", "data": data}]});
    let expected = reference.predict[..case.batch]
        .iter()
        .map(|v| *v as f32)
        .collect();
    Payload::rest_json(
        case.model,
        Bytes::from(body.to_string()),
        "predict",
        expected,
    )
}

/// What one setup measured in one round.
struct Measured {
    ready_after: Duration,
    idle_rss: u64,
    outcomes: Vec<(Case, Outcome)>,
}

/// Runs every setup `servers` asks for, `opts.rounds` times; the markdown
/// report (medians of rounds).
pub async fn run(opts: &Options, paths: &Paths, venv: &Path) -> Result<String> {
    let setups = setups(&opts.servers);
    if setups.is_empty() {
        bail!(
            "--real-models runs mlserver-fast, mlserver-default, ours-python and ours; \
             --only named none of them"
        );
    }
    let files = prepare(paths, venv)?;
    let references: serde_json::Map<String, Value> =
        serde_json::from_slice(&fs::read(files.join("requests.json"))?)?;
    let reference = |model: &str| -> Result<Reference> {
        let v = references
            .get(model)
            .with_context(|| format!("no {model} in requests.json"))?;
        let numbers =
            |v: &Value| -> Option<Vec<f64>> { v.as_array()?.iter().map(Value::as_f64).collect() };
        let rows = v["rows"].as_array().and_then(|rows| {
            rows.iter()
                .map(|r| Some(numbers(r)?.into_iter().map(|x| x as f32).collect()))
                .collect::<Option<Vec<Vec<f32>>>>()
        });
        match (rows, numbers(&v["predict"])) {
            (Some(rows), Some(predict)) => Ok(Reference { rows, predict }),
            _ => bail!("{model} in requests.json lacks rows or predict"),
        }
    };
    let refs: Vec<(&str, Reference)> = MODELS
        .iter()
        .map(|m| Ok((*m, reference(m)?)))
        .collect::<Result<_>>()?;
    let mut rounds: Vec<Vec<(Setup, Result<Measured, String>)>> = Vec::new();
    for round in 1..=opts.rounds {
        if opts.rounds > 1 {
            eprintln!("=== round {round} of {}", opts.rounds);
        }
        let mut results = Vec::new();
        for &setup in &setups {
            tokio::task::block_in_place(|| super::procfs::start_when_quiet(setup.label()));
            let measured = measure(setup, opts, paths, venv, &files, &refs).await;
            if let Err(e) = &measured {
                eprintln!("!!! {}: {e:#}", setup.label());
            }
            results.push((setup, measured.map_err(|e| format!("{e:#}"))));
        }
        rounds.push(results);
    }
    Ok(render(opts, &setups, &rounds))
}

/// Installs what the venv lacks and writes the models (once per run).
fn prepare(paths: &Paths, venv: &Path) -> Result<PathBuf> {
    let python = venv.join("bin").join("python");
    let has = Command::new(&python)
        .args([
            "-c",
            "import mlserver_sklearn, sklearn, joblib, xgboost, lightgbm, \
             mlserver_xgboost, mlserver_lightgbm",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("==> installing {PACKAGES:?} into {} (once)", venv.display());
        pip_install(&python, PACKAGES)?;
        pip_install(&python, NO_DEPS)?;
    }
    let files = paths.work.join("real-models").join("files");
    let _ = fs::remove_dir_all(&files);
    fs::create_dir_all(&files)?;
    let status = Command::new(&python)
        .arg(paths.root.join("bench").join("make_real_models.py"))
        .arg(&files)
        .status()?;
    if !status.success() {
        bail!("bench/make_real_models.py failed");
    }
    Ok(files)
}

/// The folder `setup` serves: both models with their model-settings.json,
/// and for the Python setups a settings.json with the ports.
fn write_folder(setup: Setup, paths: &Paths, files: &Path, ports: [u16; 3]) -> Result<PathBuf> {
    let dir = paths.work.join("real-models").join(format!("{setup:?}"));
    let _ = fs::remove_dir_all(&dir);
    for model in MODELS {
        let folder = dir.join(model);
        fs::create_dir_all(&folder)?;
        let (file, implementation, python_only) = served_as(model, setup);
        fs::copy(files.join(model).join(file), folder.join(file))?;
        let mut settings = json!({"name": model, "implementation": implementation,
                                  "parameters": {"uri": format!("./{file}")}});
        if python_only {
            settings["parameters"]["extra"] = json!({"native": false});
        }
        fs::write(folder.join("model-settings.json"), settings.to_string())?;
    }
    write_python_settings(&dir, ports, setup == Setup::MlserverFast)?;
    Ok(dir)
}

async fn measure(
    setup: Setup,
    opts: &Options,
    paths: &Paths,
    venv: &Path,
    files: &Path,
    refs: &[(&str, Reference)],
) -> Result<Measured> {
    let ports = [free_port()?, free_port()?, free_port()?];
    let folder = write_folder(setup, paths, files, ports)?;
    let cmd = match setup {
        Setup::OursNative | Setup::OursPython => {
            let mut cmd = Command::new(paths.target.join("release").join("mlserver"));
            cmd.arg("start")
                .arg(&folder)
                .env("MLSERVER_PYTHON", venv.join("bin").join("python"));
            cmd
        }
        Setup::MlserverFast | Setup::MlserverDefault => {
            let mut cmd = Command::new(venv.join("bin").join("mlserver"));
            cmd.args(["start", "."]).current_dir(&folder);
            cmd
        }
    };
    let started = Instant::now();
    let mut running = Running::spawn(cmd, paths, &format!("real-models-{setup:?}"), ports)?;
    let result = measure_running(setup, opts, &running, started, refs).await;
    tokio::task::block_in_place(|| running.stop());
    result
}

async fn measure_running(
    setup: Setup,
    opts: &Options,
    running: &Running,
    started: Instant,
    refs: &[(&str, Reference)],
) -> Result<Measured> {
    let client = http_client(1)?;
    for model in MODELS {
        let url = format!("{}/v2/models/{model}/ready", running.endpoints.http);
        loop {
            if !super::procfs::running(running.pid) {
                bail!("the server exited; see {}", running.log.display());
            }
            if started.elapsed() > Duration::from_secs(180) {
                bail!(
                    "{model} not ready after 180 s; see {}",
                    running.log.display()
                );
            }
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    let ready_after = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = running.usage().rss_bytes;
    eprintln!(
        "==> {}: ready after {:.2} s, idle RSS {:.1} MiB",
        setup.label(),
        ready_after.as_secs_f64(),
        idle_rss as f64 / 1048576.0
    );
    let mut outcomes = Vec::new();
    for case in Case::all() {
        let (_, reference) = refs
            .iter()
            .find(|(m, _)| *m == case.model)
            .context("a model without reference")?;
        let window = Window {
            concurrency: case.concurrency,
            server_pid: running.pid,
            warmup: opts.warmup,
            duration: opts.duration,
        };
        let measured = super::loadgen::measure_payload(
            payload(case, reference),
            Transport::RestJson,
            running.endpoints.clone(),
            window,
        )
        .await;
        outcomes.push((case, report::outcome_of(&case.name(), measured)));
    }
    Ok(Measured {
        ready_after,
        idle_rss,
        outcomes,
    })
}

/// Per setup and case, the median of the rounds that measured it.
fn median_outcome(
    rounds: &[Vec<(Setup, Result<Measured, String>)>],
    setup: Setup,
    case: Case,
) -> Option<Outcome> {
    let found: Vec<Outcome> = rounds
        .iter()
        .flatten()
        .filter(|(s, _)| *s == setup)
        .filter_map(|(_, m)| m.as_ref().ok())
        .flat_map(|m| m.outcomes.iter())
        .filter(|(c, _)| *c == case)
        .map(|(_, o)| o.clone())
        .collect();
    (!found.is_empty()).then(|| report::median_outcome(&found))
}

fn render(
    opts: &Options,
    setups: &[Setup],
    rounds: &[Vec<(Setup, Result<Measured, String>)>],
) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut md = format!(
        "## Real models\n\n{}; {}. Models from `bench/make_real_models.py` on 20 FP32 \
         features: `lr` a scikit-learn logistic regression (3 classes), `gbm` a scikit-learn \
         gradient boosting regressor (100 trees of depth 3), `rf` a scikit-learn random \
         forest classifier (100 trees of depth 8, 3 classes), all three from their \
         `model.joblib`, `xgb` an XGBoost classifier \
         (3 classes, 100 rounds of depth 6) from its `model.json`, `lgb` a LightGBM binary \
         classifier (100 trees of 31 leaves) from its text `model.bst`; \
         REST JSON, batch b rows, concurrency c; {} s warm-up, {} s measured, median of {} \
         round(s). CPU: the server's process tree (workers included) per request. Every \
         server answers the library's predictions (a sample of replies is checked).\n\n",
        super::procfs::machine(),
        report::now(),
        opts.warmup.as_secs_f64(),
        opts.duration.as_secs_f64(),
        opts.rounds,
    );
    md.push_str("| server | ready s | idle RSS MiB |\n|---|---:|---:|\n");
    for &setup in setups {
        let measured: Vec<&Measured> = rounds
            .iter()
            .flatten()
            .filter(|(s, _)| *s == setup)
            .filter_map(|(_, m)| m.as_ref().ok())
            .collect();
        let ready = stats::median(&measured.iter().map(|m| m.ready_after).collect::<Vec<_>>());
        let rss = stats::median(&measured.iter().map(|m| m.idle_rss).collect::<Vec<_>>());
        match (ready, rss) {
            (Some(r), Some(b)) => {
                let _ = writeln!(
                    md,
                    "| {} | {:.2} | {:.1} |",
                    setup.label(),
                    r.as_secs_f64(),
                    b as f64 / 1048576.0
                );
            }
            _ => {
                let why = rounds
                    .iter()
                    .flatten()
                    .find_map(|(s, m)| (*s == setup).then(|| m.as_ref().err()).flatten())
                    .map_or("no round", String::as_str);
                let _ = writeln!(
                    md,
                    "| {} | failed: {} | |",
                    setup.label(),
                    why.replace('|', "/")
                );
            }
        }
    }
    md.push_str(
        "\n| case | server | req/s | p50 ms | p99 ms | CPU µs/req | req/s vs MLServer best |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for case in Case::all() {
        let best = [Setup::MlserverFast, Setup::MlserverDefault]
            .into_iter()
            .filter_map(|s| median_outcome(rounds, s, case))
            .filter(|o| o.errors + o.invalid == 0)
            .map(|o| o.rps)
            .fold(None, |b: Option<f64>, r| Some(b.map_or(r, |b| b.max(r))));
        for &setup in setups {
            let Some(o) = median_outcome(rounds, setup, case) else {
                continue;
            };
            let problems = if o.errors + o.invalid > 0 {
                format!(
                    " ({} failed, {} wrong: {})",
                    o.errors,
                    o.invalid,
                    o.first_problem.as_deref().unwrap_or("").replace('|', "/")
                )
            } else {
                String::new()
            };
            let vs = match best {
                Some(b) if b > 0.0 && !setup_is_mlserver(setup) => super::report::ratio(o.rps / b),
                _ => String::new(),
            };
            let _ = writeln!(
                md,
                "| {} | {}{} | {:.0} | {:.2} | {:.2} | {:.0} | {} |",
                case.name(),
                setup.label(),
                problems,
                o.rps,
                ms(o.p50),
                ms(o.p99),
                o.cpu_us_per_req,
                vs
            );
        }
    }
    md
}

fn setup_is_mlserver(setup: Setup) -> bool {
    matches!(setup, Setup::MlserverFast | Setup::MlserverDefault)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Reference {
        Reference {
            rows: (0..64).map(|r| vec![r as f32; 20]).collect(),
            predict: (0..64).map(f64::from).collect(),
        }
    }

    #[test]
    fn cases_and_setups() {
        assert_eq!(Case::all().len(), 20);
        assert_eq!(Case::all()[0].name(), "lr-b1-c1");
        assert_eq!(
            setups(&Kind::ALL),
            [
                Setup::MlserverFast,
                Setup::MlserverDefault,
                Setup::OursPython,
                Setup::OursNative
            ]
        );
        assert_eq!(setups(&[Kind::Ours, Kind::Yardstick]), [Setup::OursNative]);
    }

    #[test]
    fn every_setup_asks_for_predict_on_the_same_file() {
        let case = Case {
            model: "lr",
            batch: 64,
            concurrency: 32,
        };
        let body: Value = serde_json::from_slice(payload(case, &reference()).body()).unwrap();
        assert_eq!(body["inputs"][0]["shape"], json!([64, 20]));
        assert_eq!(body["inputs"][0]["data"].as_array().unwrap().len(), 64 * 20);
        assert!(body.get("outputs").is_none());
        assert_eq!(
            served_as("rf", Setup::OursNative),
            ("model.joblib", "mlserver_sklearn.SKLearnModel", false)
        );
        assert!(served_as("xgb", Setup::OursPython).2);
    }
}
