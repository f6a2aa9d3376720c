//! `cargo xtask bench`: the real MLServer, our `mlserver` and a minimal
//! yardstick, one after the other on free loopback ports, under the same
//! load from the same code; a markdown report with ratios.
//!
//! The load generator runs in this process; server CPU and memory come from
//! `/proc` for the server's process tree only, so the load generator's own
//! CPU is never counted. Run it under the shared build lock:
//! `flock /work/.build.lock cargo xtask bench`.

mod callgrind;
mod floor;
mod loadgen;
mod many;
mod procfs;
mod real;
pub mod release;
mod report;
mod servers;
mod stats;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use loadgen::{Outcome, Scenario, Transport};
use report::{Meta, ServerResult, Startup};
use servers::{Kind, Paths};

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

    fn scenarios(&self) -> Vec<Scenario> {
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

pub fn run(opts: Options) -> Result<()> {
    let paths = Paths::new();
    fs::create_dir_all(&paths.work)?;
    let scenarios = opts.scenarios();
    if scenarios.is_empty() {
        bail!("no scenario matches {:?}", opts.scenario_filter);
    }
    if opts.build && opts.servers.iter().any(|k| k.is_built_here()) {
        release::build_release(&paths)?;
    }
    if let Some(n) = opts.many_models {
        let venv = if many::needs_venv(&opts.servers) {
            Some(servers::mlserver_venv(&paths)?)
        } else {
            None
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let md = rt.block_on(many::run(n, &opts.servers, &paths, venv.as_deref()))?;
        return write_report(&opts, &paths, &md);
    }
    if opts.real_models {
        // The models are trained and exported with the venv's scikit-learn.
        let venv = servers::mlserver_venv(&paths)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let md = rt.block_on(real::run(&opts, &paths, &venv))?;
        return write_report(&opts, &paths, &md);
    }
    let venv = if opts.servers.iter().any(|k| k.needs_venv()) {
        Some(servers::mlserver_venv(&paths)?)
    } else {
        None
    };
    // Triton's venv: if it cannot be made, Triton's rows say why and the
    // other servers still run.
    let triton = opts
        .servers
        .contains(&Kind::TritonPython)
        .then(|| servers::triton_venv(&paths).map_err(|e| format!("{e:#}")));
    // Before pinning, which hides the other CPUs.
    let machine = procfs::machine();
    // After the build: only what is measured runs on the pinned CPUs.
    // Threads and processes started from here on inherit the mask.
    if !opts.cpus.is_empty() {
        procfs::pin_to(&opts.cpus)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rounds = Vec::new();
    let mut floors = Vec::new();
    let at_concurrency_1 = scenarios.iter().any(|s| s.concurrency == 1);
    for round in 1..=opts.rounds {
        if opts.rounds > 1 {
            eprintln!("=== round {round} of {}", opts.rounds);
        }
        if at_concurrency_1 && !opts.callgrind {
            floors.push(measure_floor(opts.duration)?);
        }
        let mut results = Vec::new();
        for &kind in &opts.servers {
            results.push(rt.block_on(bench_server(
                kind,
                &opts,
                &scenarios,
                &paths,
                venv.as_deref(),
                triton.as_ref(),
            )));
        }
        rounds.push(results);
    }
    let results = report::median_of_rounds(rounds);
    let meta = Meta {
        machine: match opts.cpus.as_slice() {
            [] => machine,
            cpus => format!("{machine}; everything pinned to CPU(s) {cpus:?} (`--cpus`)"),
        },
        when: now(),
        warmup: opts.warmup,
        duration: opts.duration,
        rounds: opts.rounds,
        floor: (!floors.is_empty()).then(|| report::median_outcome(&floors)),
    };
    let md = if opts.callgrind {
        report::render_instructions(&meta, &results, &scenarios)
    } else {
        report::render(&meta, &results, &scenarios)
    };
    write_report(&opts, &paths, &md)
}

fn write_report(opts: &Options, paths: &Paths, md: &str) -> Result<()> {
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| paths.work.join("report.md"));
    fs::write(&out, md).with_context(|| format!("writing {}", out.display()))?;
    println!("{md}");
    eprintln!("report written to {}", out.display());
    Ok(())
}

fn now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The loopback floor, on a quiet machine like every server's start.
fn measure_floor(duration: Duration) -> Result<Outcome> {
    procfs::start_when_quiet("loopback floor");
    let floor = floor::measure(duration).context("measuring the loopback floor")?;
    eprintln!("{}", progress_line("bare TCP round trip", &floor));
    Ok(floor)
}

/// A measurement's outcome (a failure to measure counts as one failed
/// request, with its reason), after printing its progress line.
fn outcome_of(name: &str, measured: Result<Outcome>) -> Outcome {
    let outcome = measured.unwrap_or_else(|e| Outcome {
        errors: 1,
        first_problem: Some(format!("{e:#}")),
        ..Default::default()
    });
    eprintln!(
        "{}  cpu {:>7.1} µs/req{}",
        progress_line(name, &outcome),
        outcome.cpu_us_per_req,
        match &outcome.first_problem {
            Some(p) => format!(
                "  ({} failed, {} wrong: {p})",
                outcome.errors, outcome.invalid
            ),
            None => String::new(),
        }
    );
    outcome
}

/// One measurement's progress line: requests, rate and latencies.
fn progress_line(name: &str, o: &Outcome) -> String {
    format!(
        "    {name:<24} {:>8} reqs {:>8.0} req/s  p50 {:>8.3} ms  p99 {:>8.3} ms",
        o.requests,
        o.rps,
        o.p50.as_secs_f64() * 1e3,
        o.p99.as_secs_f64() * 1e3,
    )
}

async fn bench_server(
    kind: Kind,
    opts: &Options,
    scenarios: &[Scenario],
    paths: &Paths,
    venv: Option<&std::path::Path>,
    triton: Option<&Result<servers::Triton, String>>,
) -> ServerResult {
    let mut result = ServerResult {
        kind,
        startup: None,
        settled: None,
        outcomes: Vec::new(),
        error: None,
    };
    let triton = match triton {
        Some(Err(e)) if kind == Kind::TritonPython => {
            eprintln!("!!! {}: {e}", kind.id());
            result.error = Some(format!("could not install Triton: {e}"));
            return result;
        }
        Some(Ok(t)) => Some(t),
        _ => None,
    };
    tokio::task::block_in_place(|| procfs::start_when_quiet(kind.id()));
    let callgrind_dir = opts
        .callgrind
        .then(|| paths.work.join("callgrind").join(kind.id()));
    let mut running =
        match servers::start(kind, paths, venv, triton, callgrind_dir.as_deref()).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("!!! {}: {e:#}", kind.id());
                result.error = Some(format!("{e:#}"));
                return result;
            }
        };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = running.usage();
    result.startup = Some(Startup {
        ready_after: running.ready_after,
        idle_rss: idle.rss_bytes,
        processes: idle.processes,
    });
    eprintln!(
        "    ready after {:.1} ms, {} process(es), idle RSS {:.1} MiB (log: {})",
        running.ready_after.as_secs_f64() * 1e3,
        idle.processes,
        idle.rss_bytes as f64 / 1048576.0,
        running.log.display()
    );
    for sc in scenarios {
        if !kind.serves(sc.transport) {
            continue; // MLServer has no binary extension (MLServer#324).
        }
        let measured = match &callgrind_dir {
            Some(dir) => callgrind::measure(sc, &running.endpoints, running.pid, dir).await,
            None => measure(*sc, running.endpoints.clone(), running.pid, opts).await,
        };
        result
            .outcomes
            .push((sc.name, outcome_of(sc.name, measured)));
    }
    if callgrind_dir.is_none() && !opts.settle.is_zero() {
        let settled = settle(&running, idle.rss_bytes, opts.settle).await;
        eprintln!(
            "    RSS {:.1} MiB {:.0} s after the last scenario; {}",
            settled.rss as f64 / 1048576.0,
            settled.waited.as_secs_f64(),
            settled.within_2x_after.map_or_else(
                || "never within 2x of idle".to_owned(),
                |t| format!("within 2x of idle after {:.1} s", t.as_secs_f64())
            )
        );
        result.settled = Some(settled);
    }
    tokio::task::block_in_place(|| running.stop());
    result
}

/// Watches RSS for `wait` after the load stopped (the allocator's
/// background threads are what bring it back): when it first is within 2x of `idle`, and what
/// it is at the end.
async fn settle(running: &servers::Running, idle: u64, wait: Duration) -> report::Settled {
    let start = std::time::Instant::now();
    let mut within_2x_after = None;
    loop {
        let rss = running.usage().rss_bytes;
        if within_2x_after.is_none() && rss <= 2 * idle {
            within_2x_after = Some(start.elapsed());
        }
        if start.elapsed() >= wait {
            return report::Settled {
                waited: wait,
                within_2x_after,
                rss,
            };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs one scenario on a runtime of its own (see [`measure_payload`]).
async fn measure(
    scenario: Scenario,
    endpoints: loadgen::Endpoints,
    server_pid: u32,
    opts: &Options,
) -> Result<Outcome> {
    let payload = loadgen::payload(&scenario);
    let window = loadgen::Window {
        concurrency: scenario.concurrency,
        server_pid,
        warmup: opts.warmup,
        duration: opts.duration,
    };
    measure_payload(payload, scenario.transport, endpoints, window).await
}

/// Sends a prepared request on a runtime of its own. At concurrency 1 that
/// is a single thread: the request and the client's connection task then
/// share it, so the load generator adds no cross-thread wake-ups (and their
/// scheduling noise) to the latency it measures, whichever server it drives.
async fn measure_payload(
    payload: loadgen::Payload,
    transport: Transport,
    endpoints: loadgen::Endpoints,
    window: loadgen::Window,
) -> Result<Outcome> {
    tokio::task::spawn_blocking(move || {
        let mut builder = if window.concurrency == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            tokio::runtime::Builder::new_multi_thread()
        };
        let rt = builder.enable_all().build()?;
        rt.block_on(loadgen::run_payload(payload, transport, &endpoints, window))
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_options() {
        let o = Options::parse(&args("--repeat 3 --callgrind")).unwrap();
        assert_eq!(o.rounds, 3);
        assert_eq!(o.servers, [Kind::Ours, Kind::Yardstick]);
        assert!(Options::parse(&args("--repeat 0")).is_err());
        assert!(Options::parse(&args("--callgrind --only mlserver")).is_err());
        assert!(Options::parse(&args("--callgrind --only triton-python")).is_err());
        let o = Options::parse(&args("--only triton-python,ours-python")).unwrap();
        // In Kind::ALL's order, whatever the order given.
        assert_eq!(o.servers, [Kind::OursPython, Kind::TritonPython]);
        assert!(Options::parse(&[])
            .unwrap()
            .servers
            .contains(&Kind::TritonPython));
        let o =
            Options::parse(&args("--quick --only ours,mlserver --scenario sum16,typed")).unwrap();
        assert_eq!(o.duration, Duration::from_secs(2));
        assert_eq!(
            o.servers,
            [Kind::MlserverFast, Kind::MlserverDefault, Kind::Ours]
        );
        let names: Vec<_> = o.scenarios().iter().map(|s| s.name).collect();
        assert_eq!(names.len(), 5);
        assert!(names.contains(&"echo64k-grpc-typed-c8"));
        assert!(Options::parse(&args("--only nobody")).is_err());
        assert!(Options::parse(&args("--bogus")).is_err());
        assert_eq!(Options::parse(&args("--cpus 0-1")).unwrap().cpus, [0, 1]);
        assert!(Options::parse(&args("--cpus x")).is_err());
        assert_eq!(Options::parse(&[]).unwrap().scenarios().len(), 8);
    }
}
