//! `cargo xtask bench`'s options and their parsing.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::loadgen::{self, Scenario};
use super::procfs;
use super::servers::Kind;

pub const USAGE: &str = "\
cargo xtask bench [--quick] [--only SERVERS] [--scenario NAMES] [--warmup S] [--duration S]
                  [--repeat N] [--no-build] [--out FILE] [--callgrind] [--cpus LIST]
                  [--settle S] [--many-models N] [--real-models]

  --quick            1 s warm-up and 2 s per scenario (default: 2 s and 10 s), 5 s settle
  --settle S         after the last scenario, watch each server's RSS for S seconds
                     (default 30; 0: not at all): when it is back within 2x of idle
  --only SERVERS     comma-separated: mlserver (both configurations), mlserver-fast,
                     mlserver-default, ours (defaults), ours-fast (parallel_workers=0, metrics
                     off), ours-python (MLServer's Python models in our workers), triton-python
                     (Triton 2.51.0, Python backend), yardstick (default: all)
  --scenario NAMES   comma-separated substrings of scenario names, e.g. sum16,grpc-raw
                     (scenarios: sum16-rest-json-c1, sum16-rest-json-c32, sum16-grpc-raw-c1,
                     sum16-grpc-raw-c32, echo64k-rest-json-c8, echo64k-rest-binary-c8,
                     echo64k-grpc-raw-c8, echo64k-grpc-typed-c8)
  --warmup S, --duration S   seconds (fractions allowed)
  --repeat N         N rounds (each starts every server again, in turn) and the median of
                     each figure: one disturbed round on a shared machine moves nothing
  --no-build         use the release binaries already in target/release
  --out FILE         report path (default target/bench/report.md)
  --callgrind        count the instructions per request of ours, ours-fast and yardstick
                     under valgrind's callgrind (repeatable where CPU time is not; default
                     servers: ours,yardstick; a fixed number of requests, no timings)
  --cpus LIST        pin the load generator and every server to these CPUs (e.g. 0 or
                     0-1,3): with one CPU, a request at concurrency 1 involves no wake-up
                     of another CPU, which on a VM can cost more than the request itself

  --many-models N     instead of the scenarios: N models in one folder (ModelMesh's way),
                     time to all ready, RSS, index and inference latency: ours on N iris
                     ONNX models and on N XGBoost model files, and MLServer (mlserver-fast)
                     beside ours-python on N Python SumModels

  --real-models       instead of the scenarios: a scikit-learn logistic regression and a
                     100-tree gradient boosting regressor, an XGBoost multiclass classifier
                     and a LightGBM binary classifier, batches of 1 and 64 rows, c=1 and
                     c=32, REST JSON: MLServer with its runtimes (mlserver-fast,
                     mlserver-default), ours-python with the same runtimes, and ours natively
                     (scikit-learn exported to ONNX, the tree files as they are: ours);
                     --repeat, --warmup, --duration apply

The MLServer venv (mlserver==1.7.1) is made once under target/bench/venv, Triton's
(nvidia-pytriton==0.7.0, which ships tritonserver 2.51.0, and numpy) under
target/bench/triton-venv.";

#[derive(Debug, Clone)]
pub struct Options {
    pub warmup: Duration,
    pub duration: Duration,
    pub servers: Vec<Kind>,
    pub scenario_filter: Vec<String>,
    pub build: bool,
    pub out: Option<PathBuf>,
    pub callgrind: bool,
    /// CPUs the whole bench is pinned to (empty: not pinned).
    pub cpus: Vec<usize>,
    pub rounds: usize,
    /// How long RSS is watched after the last scenario.
    pub settle: Duration,
    /// `--many-models N`: the many-models measurement instead of the scenarios.
    pub many_models: Option<usize>,
    /// `--real-models`: the scikit-learn models instead of the scenarios.
    pub real_models: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            servers: Kind::ALL.to_vec(),
            scenario_filter: Vec::new(),
            build: true,
            out: None,
            callgrind: false,
            cpus: Vec::new(),
            rounds: 1,
            settle: Duration::from_secs(30),
            many_models: None,
            real_models: false,
        };
        let mut only = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().with_context(|| format!("{a} needs a value"));
            match a.as_str() {
                "--quick" => {
                    o.warmup = Duration::from_secs(1);
                    o.duration = Duration::from_secs(2);
                    o.settle = Duration::from_secs(5);
                }
                "--settle" => o.settle = secs(value()?)?,
                "--warmup" => o.warmup = secs(value()?)?,
                "--duration" => o.duration = secs(value()?)?,
                "--only" => {
                    let mut kinds = Vec::new();
                    for name in value()?.split(',').map(str::trim) {
                        match name {
                            "mlserver" => kinds.extend([Kind::MlserverFast, Kind::MlserverDefault]),
                            _ => kinds.push(
                                *Kind::ALL.iter().find(|k| k.id() == name).with_context(|| {
                                    format!("unknown server {name:?}\n\n{USAGE}")
                                })?,
                            ),
                        }
                    }
                    o.servers = Kind::ALL
                        .into_iter()
                        .filter(|k| kinds.contains(k))
                        .collect();
                    only = true;
                }
                "--scenario" => {
                    o.scenario_filter = value()?.split(',').map(|s| s.trim().to_owned()).collect()
                }
                "--no-build" => o.build = false,
                "--many-models" => {
                    let v = value()?;
                    o.many_models = Some(v.parse().ok().filter(|n| *n >= 1).with_context(|| {
                        format!("--many-models needs a count of 1 or more, not {v}")
                    })?)
                }
                "--callgrind" => o.callgrind = true,
                "--real-models" => o.real_models = true,
                "--repeat" => {
                    let v = value()?;
                    o.rounds =
                        v.parse().ok().filter(|n| *n >= 1).with_context(|| {
                            format!("--repeat needs a count of 1 or more, not {v}")
                        })?
                }
                "--out" => o.out = Some(PathBuf::from(value()?)),
                "--cpus" => o.cpus = procfs::parse_cpu_list(value()?)?,
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown option {other:?}\n\n{USAGE}"),
            }
        }
        if o.real_models && (o.callgrind || o.many_models.is_some()) {
            bail!(
                "--real-models is a measurement of its own: not with --callgrind or --many-models"
            );
        }
        if o.callgrind {
            if !only {
                o.servers = vec![Kind::Ours, Kind::Yardstick];
            }
            if let Some(k) = o
                .servers
                .iter()
                .find(|k| !k.is_built_here() || k.needs_venv())
            {
                bail!(
                    "--callgrind counts our binaries and the yardstick only, not {}",
                    k.id()
                );
            }
        }
        Ok(o)
    }

    pub(super) fn scenarios(&self) -> Vec<Scenario> {
        loadgen::scenarios()
            .into_iter()
            .filter(|s| {
                self.scenario_filter.is_empty()
                    || self
                        .scenario_filter
                        .iter()
                        .any(|f| s.name.contains(f.as_str()))
            })
            .collect()
    }
}

fn secs(v: &str) -> Result<Duration> {
    let s: f64 = v
        .parse()
        .with_context(|| format!("not a number of seconds: {v}"))?;
    Ok(Duration::from_secs_f64(s))
}
