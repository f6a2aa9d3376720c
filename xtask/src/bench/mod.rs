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
mod options;
mod procfs;
mod real;
pub mod release;
mod report;
mod servers;
mod stats;

use std::fs;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use loadgen::{Outcome, Scenario};
use report::{Meta, ServerResult, Startup};
use servers::{Kind, Paths};

use loadgen::measure_payload;
pub use options::{Options, USAGE};
use report::{now, outcome_of, progress_line};

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

/// The loopback floor, on a quiet machine like every server's start.
fn measure_floor(duration: Duration) -> Result<Outcome> {
    procfs::start_when_quiet("loopback floor");
    let floor = floor::measure(duration).context("measuring the loopback floor")?;
    eprintln!("{}", progress_line("bare TCP round trip", &floor));
    Ok(floor)
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
