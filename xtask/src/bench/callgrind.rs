//! `--callgrind`: instructions per request, counted by valgrind's callgrind
//! in the server process. Unlike CPU time, the count does not move with
//! what else the machine is doing, so the ratio to the yardstick is the same
//! from run to run; it leaves out the kernel's share (syscalls, TCP).
//!
//! The server runs under `valgrind --tool=callgrind`; the load generator
//! sends a counted warm-up, waits until nothing is in flight, zeroes the
//! counters (`callgrind_control --zero`), sends the measured requests, and
//! dumps (`callgrind_control --dump`). The dump's total divided by the
//! measured requests is the figure; the dump files stay in
//! `target/bench/callgrind/` for `callgrind_annotate`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::loadgen::{Bursts, Endpoints, Outcome, Scenario};

/// `cmd`, run under callgrind writing its dumps into `dir`.
pub fn wrap(cmd: &Command, dir: &Path) -> Result<Command> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let out_file = format!(
        "--callgrind-out-file={}",
        dir.join("callgrind.out.%p").display()
    );
    Ok(wrap_in(cmd, &["valgrind", "--tool=callgrind", &out_file]))
}

/// `cmd` run by `wrapper` (a program and its arguments), with the same
/// environment and working folder.
pub fn wrap_in(cmd: &Command, wrapper: &[&str]) -> Command {
    let mut wrapped = Command::new(wrapper[0]);
    wrapped
        .args(&wrapper[1..])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(cwd) = cmd.get_current_dir() {
        wrapped.current_dir(cwd);
    }
    wrapped
}

/// Counted requests per client: enough for a steady average, few enough
/// that valgrind's slowdown keeps a scenario to seconds.
fn requests_per_client(scenario: &Scenario) -> (u64, u64) {
    let total: u64 = if scenario.n >= 1024 { 160 } else { 3200 };
    let per_client = total.div_ceil(scenario.concurrency as u64);
    (per_client.div_ceil(4), per_client)
}

/// Measures `scenario` against a server running under [`wrap`].
pub async fn measure(
    scenario: &Scenario,
    endpoints: &Endpoints,
    server_pid: u32,
    dir: &Path,
) -> Result<Outcome> {
    let (warmup, measured) = requests_per_client(scenario);
    let mut bursts = Bursts::new(scenario, endpoints).await?;
    bursts.send(warmup).await?;
    control(server_pid, "--zero")?;
    let mut outcome = bursts.send(measured).await?;
    control(server_pid, "--dump")?;
    let total = total_instructions(&newest_dump(dir, server_pid)?)?;
    outcome.instructions_per_req = Some(total as f64 / outcome.requests.max(1) as f64);
    Ok(outcome)
}

fn control(pid: u32, action: &str) -> Result<()> {
    let out = Command::new("callgrind_control")
        .arg(action)
        .arg(pid.to_string())
        .output()
        .context("running callgrind_control (from valgrind)")?;
    if !out.status.success() {
        bail!(
            "callgrind_control {action} {pid} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The dump with the highest sequence number: `callgrind.out.<pid>.<n>`.
fn newest_dump(dir: &Path, pid: u32) -> Result<PathBuf> {
    let prefix = format!("callgrind.out.{pid}.");
    fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u64 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
        .with_context(|| format!("no callgrind dump for pid {pid} in {}", dir.display()))
}

/// The `totals:` (or older `summary:`) line of a dump: instructions (Ir).
fn total_instructions(dump: &Path) -> Result<u64> {
    let text = fs::read_to_string(dump)?;
    parse_total(&text).with_context(|| format!("no totals line in {}", dump.display()))
}

fn parse_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_total_of_a_dump() {
        let dump = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\n\nfn=(1) main\n5 100\n\ntotals: 6674566\n";
        assert_eq!(parse_total(dump), Some(6674566));
        assert_eq!(parse_total("summary: 42 7\n"), Some(42));
        assert_eq!(parse_total("events: Ir\n"), None);
    }

    #[test]
    fn wraps_program_arguments_environment_and_folder() {
        let dir = std::env::temp_dir().join(format!("xtask-cg-{}", std::process::id()));
        let mut cmd = Command::new("/bin/server");
        cmd.args(["start", "models"])
            .env("MLSERVER_HTTP_PORT", "1234")
            .current_dir("/tmp");
        let w = wrap(&cmd, &dir).unwrap();
        assert_eq!(w.get_program(), "valgrind");
        let args: Vec<_> = w
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[0], "--tool=callgrind");
        assert!(args[1].ends_with("callgrind.out.%p"));
        assert_eq!(&args[2..], ["/bin/server", "start", "models"]);
        assert!(w
            .get_envs()
            .any(|(k, v)| k == "MLSERVER_HTTP_PORT" && v == Some("1234".as_ref())));
        assert_eq!(w.get_current_dir(), Some(Path::new("/tmp")));
        assert!(dir.is_dir());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn small_scenarios_count_more_requests() {
        let sc = super::super::loadgen::scenarios();
        let small = sc.iter().find(|s| s.n == 16 && s.concurrency == 1).unwrap();
        assert_eq!(requests_per_client(small), (800, 3200));
        let big = sc.iter().find(|s| s.n == 65536).unwrap();
        assert_eq!(requests_per_client(big), (5, 20));
    }
}
