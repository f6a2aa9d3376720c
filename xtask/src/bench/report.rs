//! The markdown report: one table per scenario with each server's figures
//! and the ratios of ours to MLServer's best and to the yardstick, then
//! startup and memory.

use std::fmt::Write;
use std::time::Duration;

use super::loadgen::{Outcome, Scenario};
use super::servers::Kind;
use super::stats::median;

/// What one server did.
pub struct ServerResult {
    pub kind: Kind,
    pub startup: Option<Startup>,
    /// Memory after the last scenario (`--settle`).
    pub settled: Option<Settled>,
    /// Per scenario name; missing when skipped.
    pub outcomes: Vec<(&'static str, Outcome)>,
    pub error: Option<String>,
}

/// RSS after the load stopped: how long until it was within 2x of idle
/// (if it got there), and what it was at the end of the wait.
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    pub waited: Duration,
    pub within_2x_after: Option<Duration>,
    pub rss: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct Startup {
    pub ready_after: Duration,
    pub idle_rss: u64,
    pub processes: usize,
}

impl ServerResult {
    fn outcome(&self, scenario: &str) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .find(|(n, _)| *n == scenario)
            .map(|(_, o)| o)
    }

    fn peak_rss(&self) -> Option<u64> {
        self.outcomes.iter().map(|(_, o)| o.peak_rss).max()
    }
}

pub struct Meta {
    pub machine: String,
    pub when: String,
    pub warmup: Duration,
    pub duration: Duration,
    /// Rounds whose medians the figures are.
    pub rounds: usize,
    /// The loopback floor (see `floor.rs`), when concurrency-1 scenarios ran.
    pub floor: Option<Outcome>,
}

/// One scenario's outcomes over several rounds: each figure is the median
/// of the rounds' figures (so one disturbed round moves nothing); failures
/// add up; memory is the largest seen.
pub fn median_outcome(rounds: &[Outcome]) -> Outcome {
    let m =
        |f: fn(&Outcome) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0);
    let d = |f: fn(&Outcome) -> Duration| {
        median(&rounds.iter().map(f).collect::<Vec<_>>()).unwrap_or_default()
    };
    Outcome {
        requests: rounds.iter().map(|o| o.requests).sum(),
        errors: rounds.iter().map(|o| o.errors).sum(),
        invalid: rounds.iter().map(|o| o.invalid).sum(),
        first_problem: rounds.iter().find_map(|o| o.first_problem.clone()),
        rps: m(|o| o.rps),
        p50: d(|o| o.p50),
        p99: d(|o| o.p99),
        cpu_us_per_req: m(|o| o.cpu_us_per_req),
        peak_rss: rounds.iter().map(|o| o.peak_rss).max().unwrap_or(0),
        instructions_per_req: median(
            &rounds
                .iter()
                .filter_map(|o| o.instructions_per_req)
                .collect::<Vec<_>>(),
        ),
    }
}

/// Each server's results over the rounds (every round ran the same servers
/// in the same order): medians per scenario, see [`median_outcome`].
pub fn median_of_rounds(rounds: Vec<Vec<ServerResult>>) -> Vec<ServerResult> {
    let mut rounds = rounds.into_iter();
    let Some(first) = rounds.next() else {
        return Vec::new();
    };
    let mut per_server: Vec<Vec<ServerResult>> = first.into_iter().map(|r| vec![r]).collect();
    for round in rounds {
        for (all, r) in per_server.iter_mut().zip(round) {
            all.push(r);
        }
    }
    per_server
        .into_iter()
        .map(|runs| {
            let started: Vec<Startup> = runs.iter().filter_map(|r| r.startup).collect();
            let startup = (!started.is_empty()).then(|| Startup {
                ready_after: median(&started.iter().map(|s| s.ready_after).collect::<Vec<_>>())
                    .unwrap_or_default(),
                idle_rss: median(&started.iter().map(|s| s.idle_rss).collect::<Vec<_>>())
                    .unwrap_or_default(),
                processes: started[0].processes,
            });
            let settles: Vec<Settled> = runs.iter().filter_map(|r| r.settled).collect();
            let settled = (!settles.is_empty()).then(|| Settled {
                waited: settles[0].waited,
                // A round that never got back counts as the longest wait.
                within_2x_after: median(
                    &settles
                        .iter()
                        .map(|s| s.within_2x_after.unwrap_or(Duration::MAX))
                        .collect::<Vec<_>>(),
                )
                .filter(|d| *d != Duration::MAX),
                rss: median(&settles.iter().map(|s| s.rss).collect::<Vec<_>>()).unwrap_or_default(),
            });
            let mut outcomes: Vec<(&'static str, Outcome)> = Vec::new();
            for (name, _) in &runs[0].outcomes {
                let of_scenario: Vec<Outcome> = runs
                    .iter()
                    .filter_map(|r| r.outcome(name).cloned())
                    .collect();
                outcomes.push((name, median_outcome(&of_scenario)));
            }
            ServerResult {
                kind: runs[0].kind,
                startup,
                settled,
                outcomes,
                error: runs.iter().find_map(|r| r.error.clone()),
            }
        })
        .collect()
}

pub fn ratio(r: f64) -> String {
    if !r.is_finite() {
        "–".into()
    } else if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}

/// The errors cell: `0`, or the counts and the first problem seen.
fn problems(o: &Outcome) -> String {
    if o.errors + o.invalid == 0 {
        return "0".to_owned();
    }
    format!(
        "{} failed, {} wrong: {}",
        o.errors,
        o.invalid,
        first_line(o.first_problem.as_deref().unwrap_or(""))
    )
}

/// A message's first line, safe inside a table cell.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").replace('|', "/")
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// The four figures a table compares, for ratios.
fn figures(o: &Outcome) -> [f64; 4] {
    [
        o.rps,
        o.p50.as_secs_f64(),
        o.p99.as_secs_f64(),
        o.cpu_us_per_req,
    ]
}

/// The best of MLServer's configurations in each column, if any ran.
fn mlserver_best(servers: &[ServerResult], scenario: &str) -> Option<[f64; 4]> {
    let mlserver: Vec<[f64; 4]> = servers
        .iter()
        .filter(|s| s.kind.is_mlserver())
        .filter_map(|s| s.outcome(scenario))
        .map(figures)
        .collect();
    (!mlserver.is_empty()).then(|| {
        [
            mlserver.iter().map(|f| f[0]).fold(f64::MIN, f64::max),
            mlserver.iter().map(|f| f[1]).fold(f64::MAX, f64::min),
            mlserver.iter().map(|f| f[2]).fold(f64::MAX, f64::min),
            mlserver.iter().map(|f| f[3]).fold(f64::MAX, f64::min),
        ]
    })
}

pub fn render(meta: &Meta, servers: &[ServerResult], scenarios: &[Scenario]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# mlserver-rs benchmark\n");
    let _ = writeln!(
        md,
        "{}; {}; warm-up {} s, measured {} s per scenario{}. Closed-loop load from \
         `cargo xtask bench` on the same machine. Server CPU is utime+stime of the \
         server's whole process tree over the measured window, divided by requests. \
         Ratios are ours (mlserver-rs with its defaults) ÷ theirs: above 1 is better for req/s, below 1 is better for \
         latency and CPU. \"MLServer best\" takes the better of its two configurations \
         in each column. The Python rows compare our Python workers (MLServer's Python \
         models) with MLServer and with Triton's Python backend running the same \
         computation.\n",
        meta.machine,
        meta.when,
        meta.warmup.as_secs_f64(),
        meta.duration.as_secs_f64(),
        if meta.rounds > 1 {
            format!(
                "; {} rounds, each starting every server in turn: every figure is the \
                 median of the rounds' (requests and errors are totals)",
                meta.rounds
            )
        } else {
            String::new()
        }
    );
    if meta.floor.is_some() {
        let _ = writeln!(
            md,
            "The loopback floor in the concurrency-1 tables is the least a request and its \
             reply cost on this machine: two threads of one process sending 64 bytes back \
             and forth over loopback TCP with blocking reads, no HTTP, no runtime, no server, \
             measured on its own before the servers{}. No server's latency at concurrency 1 \
             can be below it; on a VM its p99 is mostly the wake-up of a sleeping CPU.\n",
            if meta.rounds > 1 {
                " in every round"
            } else {
                ""
            }
        );
    }
    let ours = servers.iter().find(|s| s.kind == Kind::Ours);
    let ours_python = servers.iter().find(|s| s.kind == Kind::OursPython);
    let triton_python = servers.iter().find(|s| s.kind == Kind::TritonPython);
    let yardstick = servers.iter().find(|s| s.kind == Kind::Yardstick);
    for sc in scenarios {
        let _ = writeln!(md, "## {}\n\n{}\n", sc.name, sc.describe());
        let _ = writeln!(
            md,
            "| server | req/s | p50 ms | p99 ms | server CPU µs/req | errors |\n|---|---:|---:|---:|---:|---|"
        );
        let mut any = false;
        for s in servers {
            let Some(o) = s.outcome(sc.name) else {
                continue;
            };
            any = true;
            let problems = problems(o);
            let _ = writeln!(
                md,
                "| {} | {:.0} | {} | {} | {:.0} | {} |",
                s.kind.label(),
                o.rps,
                ms(o.p50),
                ms(o.p99),
                o.cpu_us_per_req,
                problems
            );
        }
        if !any {
            let _ = writeln!(md, "| (not run) | | | | | |");
        }
        if let (Some(floor), 1) = (&meta.floor, sc.concurrency) {
            let _ = writeln!(
                md,
                "| *loopback floor: bare TCP round trip, no server* | {:.0} | {} | {} | | |",
                floor.rps,
                ms(floor.p50),
                ms(floor.p99)
            );
        }
        if let Some(ours) = ours.and_then(|s| s.outcome(sc.name)) {
            let ours = figures(ours);
            if let Some(best) = mlserver_best(servers, sc.name) {
                ratio_row(&mut md, "ours ÷ MLServer best", ours, best);
            }
            if let Some(y) = yardstick.and_then(|s| s.outcome(sc.name)) {
                ratio_row(&mut md, "ours ÷ yardstick", ours, figures(y));
            }
        }
        // Same Python code: MLServer's Python models in our workers against
        // MLServer itself.
        if let (Some(py), Some(best)) = (
            ours_python.and_then(|s| s.outcome(sc.name)),
            mlserver_best(servers, sc.name),
        ) {
            ratio_row(
                &mut md,
                "ours (Python models) ÷ MLServer best",
                figures(py),
                best,
            );
        }
        // Python code under both: our Python workers against Triton's
        // Python backend.
        if let (Some(py), Some(triton)) = (
            ours_python.and_then(|s| s.outcome(sc.name)),
            triton_python.and_then(|s| s.outcome(sc.name)),
        ) {
            ratio_row(
                &mut md,
                "ours (Python models) ÷ Triton (Python backend)",
                figures(py),
                figures(triton),
            );
        }
        md.push('\n');
    }
    let _ = writeln!(md, "## Startup and memory\n");
    let _ = writeln!(
        md,
        "Ready: from spawning the process to `/v2/health/ready` and both models' ready \
         endpoints answering 200. RSS: summed over the process tree; idle is 1 s after \
         ready, loaded is the largest seen during the measured windows; settled is the \
         RSS at the end of the wait after the last scenario (`--settle`), and within 2x \
         is how long after the last scenario it first was at most twice the idle RSS.\n"
    );
    let _ = writeln!(
        md,
        "| server | ready ms | processes | idle RSS MiB | loaded RSS MiB | settled RSS MiB | within 2x of idle after |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for s in servers {
        match (&s.startup, &s.error) {
            (Some(st), _) => {
                let (settled, within) = match &s.settled {
                    Some(d) => (
                        format!("{} (at {:.0} s)", mib(d.rss), d.waited.as_secs_f64()),
                        d.within_2x_after.map_or_else(
                            || format!("not in {:.0} s", d.waited.as_secs_f64()),
                            |t| format!("{:.1} s", t.as_secs_f64()),
                        ),
                    ),
                    None => ("–".into(), "–".into()),
                };
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {} | {} | {} | {settled} | {within} |",
                    s.kind.label(),
                    st.ready_after.as_secs_f64() * 1e3,
                    st.processes,
                    mib(st.idle_rss),
                    s.peak_rss().map_or("–".into(), mib)
                );
            }
            (None, Some(e)) => {
                let first = first_line(e);
                let _ = writeln!(md, "| {} | failed: {first} | | | | | |", s.kind.label());
            }
            (None, None) => {}
        }
    }
    md
}

/// `--callgrind`: instructions per request, one table per scenario.
pub fn render_instructions(
    meta: &Meta,
    servers: &[ServerResult],
    scenarios: &[Scenario],
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# mlserver-rs benchmark: instructions per request\n");
    let _ = writeln!(
        md,
        "{}; {}. Each server runs under valgrind's callgrind; after a counted warm-up the \
         counters are zeroed with nothing in flight, the measured requests are sent and \
         the counters dumped. Instructions are user-space instructions of the server's \
         process (all threads) divided by the measured requests: they do not vary with \
         the machine's load as CPU time does, and they leave out the kernel's share. \
         Dumps: `target/bench/callgrind/`.\n",
        meta.machine, meta.when
    );
    let ours = servers.iter().find(|s| s.kind == Kind::Ours);
    let yardstick = servers.iter().find(|s| s.kind == Kind::Yardstick);
    for sc in scenarios {
        let _ = writeln!(md, "## {}\n\n{}\n", sc.name, sc.describe());
        let _ = writeln!(
            md,
            "| server | instructions/req | requests | errors |\n|---|---:|---:|---|"
        );
        for s in servers {
            if let Some(e) = &s.error {
                let first = first_line(e);
                let _ = writeln!(md, "| {} | failed: {first} | | |", s.kind.label());
                continue;
            }
            let Some(o) = s.outcome(sc.name) else {
                continue;
            };
            let problems = problems(o);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                s.kind.label(),
                o.instructions_per_req
                    .map_or("–".into(), |i| format!("{i:.0}")),
                o.requests,
                problems
            );
        }
        let per_req = |s: Option<&ServerResult>| s?.outcome(sc.name)?.instructions_per_req;
        if let (Some(o), Some(y)) = (per_req(ours), per_req(yardstick)) {
            let _ = writeln!(md, "| *ours ÷ yardstick* | {} | | |", ratio(o / y));
        }
        md.push('\n');
    }
    md
}

fn ratio_row(md: &mut String, label: &str, ours: [f64; 4], theirs: [f64; 4]) {
    let r: Vec<String> = ours.iter().zip(theirs).map(|(o, t)| ratio(o / t)).collect();
    let _ = writeln!(
        md,
        "| *{label}* | {} | {} | {} | {} | |",
        r[0], r[1], r[2], r[3]
    );
}

/// The current time, as the reports date their runs.
pub fn now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A measurement's outcome (a failure to measure counts as one failed
/// request, with its reason), after printing its progress line.
pub fn outcome_of(name: &str, measured: anyhow::Result<Outcome>) -> Outcome {
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
pub fn progress_line(name: &str, o: &Outcome) -> String {
    format!(
        "    {name:<24} {:>8} reqs {:>8.0} req/s  p50 {:>8.3} ms  p99 {:>8.3} ms",
        o.requests,
        o.rps,
        o.p50.as_secs_f64() * 1e3,
        o.p99.as_secs_f64() * 1e3,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_outcome_of_rounds() {
        let round = |rps: f64, p99_us: u64, errors: u64| Outcome {
            requests: 100,
            errors,
            rps,
            p99: Duration::from_micros(p99_us),
            cpu_us_per_req: rps / 100.0,
            peak_rss: rps as u64,
            ..Default::default()
        };
        let m = median_outcome(&[
            round(900.0, 5000, 0),
            round(1000.0, 250, 1),
            round(1100.0, 300, 0),
        ]);
        assert_eq!(m.rps, 1000.0);
        assert_eq!(m.p99, Duration::from_micros(300));
        assert_eq!(m.cpu_us_per_req, 10.0);
        assert_eq!((m.requests, m.errors, m.peak_rss), (300, 1, 1100));
        assert_eq!(m.instructions_per_req, None);
    }
    use crate::bench::loadgen::scenarios;

    #[test]
    fn ratios_read_well() {
        assert_eq!(ratio(123.4), "123x");
        assert_eq!(ratio(12.34), "12.3x");
        assert_eq!(ratio(1.234), "1.23x");
        assert_eq!(ratio(0.0456), "0.05x");
        assert_eq!(ratio(f64::INFINITY), "–");
    }

    #[test]
    fn renders_tables_with_ratios() {
        let sc = scenarios();
        let o = |rps: f64, cpu: f64| Outcome {
            requests: 10,
            rps,
            p50: Duration::from_micros(100),
            p99: Duration::from_micros(300),
            cpu_us_per_req: cpu,
            peak_rss: 20 << 20,
            ..Default::default()
        };
        let server = |kind, rps, cpu| ServerResult {
            kind,
            settled: None,
            startup: Some(Startup {
                ready_after: Duration::from_millis(12),
                idle_rss: 10 << 20,
                processes: 1,
            }),
            outcomes: vec![(sc[0].name, o(rps, cpu))],
            error: None,
        };
        let servers = [
            server(Kind::MlserverFast, 1000.0, 400.0),
            ServerResult {
                kind: Kind::MlserverDefault,
                startup: None,
                settled: None,
                outcomes: vec![],
                error: Some("did not start\nmore".into()),
            },
            server(Kind::Ours, 20000.0, 20.0),
            server(Kind::Yardstick, 25000.0, 16.0),
        ];
        let meta = Meta {
            machine: "2 CPUs".into(),
            when: "now".into(),
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            rounds: 1,
            floor: Some(Outcome {
                rps: 40000.0,
                p50: Duration::from_micros(20),
                p99: Duration::from_micros(250),
                ..Default::default()
            }),
        };
        let md = render(&meta, &servers, &sc[..2]);
        assert!(
            md.contains("| **mlserver-rs**, defaults | 20000 | 0.100 | 0.300 | 20 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| *ours ÷ MLServer best* | 20.0x | 1.00x | 1.00x | 0.05x | |"),
            "{md}"
        );
        assert!(
            md.contains("| *ours ÷ yardstick* | 0.80x | 1.00x | 1.00x | 1.25x | |"),
            "{md}"
        );
        assert!(md.contains("| (not run) |"), "{md}");
        // Beside the concurrency-1 table only.
        assert_eq!(
            md.matches(
                "| *loopback floor: bare TCP round trip, no server* | 40000 | 0.020 | 0.250 | | |"
            )
            .count(),
            1,
            "{md}"
        );
        assert!(md.contains("The loopback floor"), "{md}");
        assert!(
            md.contains("| **mlserver-rs**, defaults | 12 | 1 | 10.0 | 20.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| MLServer 1.7.1, defaults | failed: did not start | | | |"),
            "{md}"
        );
    }

    #[test]
    fn compares_our_python_workers_with_triton() {
        let sc = scenarios();
        let server = |kind, rps: f64, cpu: f64| ServerResult {
            kind,
            settled: None,
            startup: Some(Startup {
                ready_after: Duration::from_millis(900),
                idle_rss: 100 << 20,
                processes: 3,
            }),
            outcomes: vec![(
                sc[0].name,
                Outcome {
                    requests: 10,
                    rps,
                    p50: Duration::from_micros(400),
                    p99: Duration::from_micros(800),
                    cpu_us_per_req: cpu,
                    ..Default::default()
                },
            )],
            error: None,
        };
        let meta = Meta {
            machine: "2 CPUs".into(),
            when: "now".into(),
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            rounds: 1,
            floor: None,
        };
        let servers = [
            server(Kind::OursPython, 3000.0, 300.0),
            server(Kind::TritonPython, 2000.0, 600.0),
        ];
        let md = render(&meta, &servers, &sc[..2]);
        assert!(
            md.contains("| Triton 2.51.0, Python backend | 2000 | 0.400 | 0.800 | 600 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| *ours (Python models) ÷ Triton (Python backend)* | 1.50x | 1.00x | 1.00x | 0.50x | |"
            ),
            "{md}"
        );
        // Only where both ran, and no MLServer ratio without MLServer.
        assert_eq!(md.matches("÷ Triton").count(), 1, "{md}");
        assert!(!md.contains("÷ MLServer best"), "{md}");
        assert!(
            md.contains("| Triton 2.51.0, Python backend | 900 | 3 | 100.0 |"),
            "{md}"
        );
    }

    #[test]
    fn renders_instruction_counts_with_the_yardstick_ratio() {
        let sc = scenarios();
        let server = |kind, instructions| ServerResult {
            kind,
            startup: None,
            settled: None,
            outcomes: vec![(
                sc[0].name,
                Outcome {
                    requests: 3200,
                    instructions_per_req: Some(instructions),
                    ..Default::default()
                },
            )],
            error: None,
        };
        let meta = Meta {
            machine: "2 CPUs".into(),
            when: "now".into(),
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            rounds: 1,
            floor: None,
        };
        let md = render_instructions(
            &meta,
            &[
                server(Kind::Ours, 65000.0),
                server(Kind::Yardstick, 50000.0),
            ],
            &sc[..1],
        );
        assert!(
            md.contains("| **mlserver-rs**, defaults | 65000 | 3200 | 0 |"),
            "{md}"
        );
        assert!(md.contains("| *ours ÷ yardstick* | 1.30x | | |"), "{md}");
    }

    #[test]
    fn rounds_merge_into_medians_per_server_and_scenario() {
        let sc = scenarios();
        let run = |kind, ready_ms: u64, rps: f64| ServerResult {
            kind,
            settled: None,
            startup: Some(Startup {
                ready_after: Duration::from_millis(ready_ms),
                idle_rss: 10 << 20,
                processes: 1,
            }),
            outcomes: vec![(
                sc[0].name,
                Outcome {
                    requests: 10,
                    rps,
                    ..Default::default()
                },
            )],
            error: None,
        };
        let merged = median_of_rounds(vec![
            vec![run(Kind::Ours, 9, 100.0), run(Kind::Yardstick, 5, 300.0)],
            vec![run(Kind::Ours, 50, 120.0), run(Kind::Yardstick, 6, 10.0)],
            vec![run(Kind::Ours, 8, 110.0), run(Kind::Yardstick, 7, 200.0)],
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].kind, Kind::Ours);
        let o = merged[0].outcome(sc[0].name).unwrap();
        assert_eq!((o.rps, o.requests), (110.0, 30));
        assert_eq!(
            merged[0].startup.unwrap().ready_after,
            Duration::from_millis(9)
        );
        assert_eq!(merged[1].outcome(sc[0].name).unwrap().rps, 200.0);
    }
}
