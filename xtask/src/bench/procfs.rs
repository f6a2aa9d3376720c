//! What `/proc` says about a server's whole process tree: CPU time
//! (utime + stime) and resident memory, summed over the process and all of
//! its descendants (MLServer's worker processes, for instance).

use std::collections::HashMap;
use std::fs;

/// The fields of `/proc/<pid>/stat` the bench uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

/// Parses one `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    // After the name: state(3) ppid(4) ... utime(14) stime(15) ... rss(24).
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { rest.get(n - 3)?.parse().ok() };
    Some(Stat {
        pid,
        ppid: field(4)? as u32,
        cpu_ticks: field(14)? + field(15)?,
        rss_pages: field(24)?,
    })
}

/// Every process now running.
fn all_stats() -> Vec<Stat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|s| parse_stat(&s))
        .collect()
}

/// `root` and its descendants among `stats` (`root` first when present).
pub fn tree(stats: &[Stat], root: u32) -> Vec<Stat> {
    let mut children: HashMap<u32, Vec<&Stat>> = HashMap::new();
    for s in stats {
        children.entry(s.ppid).or_default().push(s);
    }
    let mut out: Vec<Stat> = stats.iter().filter(|s| s.pid == root).copied().collect();
    let mut i = 0;
    while i < out.len() {
        let pid = out[i].pid;
        if let Some(kids) = children.get(&pid) {
            out.extend(kids.iter().map(|s| **s));
        }
        i += 1;
    }
    out
}

/// A snapshot of a process tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeUsage {
    pub processes: usize,
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
}

pub fn tree_usage(root: u32) -> TreeUsage {
    let stats = all_stats();
    let t = tree(&stats, root);
    let page = page_size();
    TreeUsage {
        processes: t.len(),
        cpu_ticks: t.iter().map(|s| s.cpu_ticks).sum(),
        rss_bytes: t.iter().map(|s| s.rss_pages * page).sum(),
    }
}

/// `getconf <name>`, or `default` when it cannot be had.
fn getconf(name: &str, default: u64) -> u64 {
    std::process::Command::new("getconf")
        .arg(name)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(default)
}

/// The pids of `root`'s process tree.
pub fn tree_pids(root: u32) -> Vec<u32> {
    tree(&all_stats(), root).iter().map(|s| s.pid).collect()
}

pub fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| getconf("PAGESIZE", 4096))
}

/// Clock ticks per second (`USER_HZ`).
pub fn clock_ticks() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| getconf("CLK_TCK", 100))
}

/// The machine, for the report: CPU count and model, kernel.
pub fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {}", kernel.trim())
}

/// Whether `pid` is a process that still runs (a zombie no longer does:
/// in a container nothing may ever reap it).
pub fn running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let close = s.rfind(')')?;
            s[close + 1..].split_whitespace().next().map(|st| st != "Z")
        })
        .unwrap_or(false)
}

/// Busy and total clock ticks of all CPUs, from `/proc/stat`'s first line
/// (idle and iowait count as not busy).
pub fn parse_cpu_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.strip_prefix("cpu ")?.split_whitespace();
    let ticks: Vec<u64> = fields.by_ref().map_while(|f| f.parse().ok()).collect();
    if ticks.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user and nice).
    let total: u64 = ticks.iter().take(8).sum();
    Some((total - ticks[3] - ticks[4], total))
}

fn cpu_ticks() -> Option<(u64, u64)> {
    parse_cpu_line(fs::read_to_string("/proc/stat").ok()?.lines().next()?)
}

/// Waits, up to `max`, until the machine's CPUs are mostly idle over a
/// 200 ms window (a server that just stopped can leave seconds of work
/// behind: MLServer's workers exiting, their memory being freed), so the
/// next server's start-up is not timed against its predecessor's
/// teardown. Returns how long it waited.
pub fn wait_until_quiet(max: std::time::Duration) -> std::time::Duration {
    let started = std::time::Instant::now();
    while started.elapsed() < max {
        let Some((busy0, total0)) = cpu_ticks() else {
            break;
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        let Some((busy1, total1)) = cpu_ticks() else {
            break;
        };
        let (busy, total) = (busy1 - busy0, total1 - total0);
        if total == 0 || (busy as f64) < 0.1 * total as f64 {
            break;
        }
    }
    started.elapsed()
}

/// `0`, `0,2`, `0-1,3`: the CPU list syntax of `taskset -c`.
pub fn parse_cpu_list(list: &str) -> anyhow::Result<Vec<usize>> {
    let bad = || anyhow::anyhow!("not a CPU list (like 0 or 0-1,3): {list:?}");
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        let (first, last): (usize, usize) = match part.split_once('-') {
            Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
            None => {
                let n = part.parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        if first > last || last >= libc::CPU_SETSIZE as usize {
            return Err(bad());
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Pins the calling thread to `cpus`; threads and processes it starts
/// afterwards inherit the mask.
pub fn pin_to(cpus: &[usize]) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set, CPU_SET is given indices
    // below CPU_SETSIZE (checked by parse_cpu_list), and the set outlives the
    // call that reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        anyhow::bail!(
            "could not pin to CPU(s) {cpus:?}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Waits for the machine to go quiet before `what` starts, and says so.
pub fn start_when_quiet(what: &str) {
    let waited = wait_until_quiet(std::time::Duration::from_secs(5));
    eprintln!(
        "==> {what}: starting (after {:.1} s for the machine to go quiet)",
        waited.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let line = "4242 (tokio (x) y) S 17 4242 17 0 -1 4194560 1041 0 0 0 \
                    25 7 0 0 20 0 5 0 12345 123456789 2048 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                pid: 4242,
                ppid: 17,
                cpu_ticks: 32,
                rss_pages: 2048
            }
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn our_own_stat_parses() {
        let own = fs::read_to_string("/proc/self/stat").unwrap();
        let s = parse_stat(&own).unwrap();
        assert_eq!(s.pid, std::process::id());
        assert!(s.rss_pages > 0);
    }

    #[test]
    fn tree_takes_descendants_only() {
        let s = |pid, ppid| Stat {
            pid,
            ppid,
            cpu_ticks: 1,
            rss_pages: 1,
        };
        let stats = [s(1, 0), s(10, 1), s(11, 10), s(12, 11), s(20, 1), s(13, 10)];
        let mut pids: Vec<u32> = tree(&stats, 10).iter().map(|s| s.pid).collect();
        pids.sort();
        assert_eq!(pids, [10, 11, 12, 13]);
        assert!(tree(&stats, 99).is_empty());
    }

    #[test]
    fn cpu_line_counts_idle_and_iowait_as_not_busy() {
        let line = "cpu  100 5 20 800 40 0 3 7 50 0";
        assert_eq!(parse_cpu_line(line), Some((135, 975)));
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4 5"), None);
        assert_eq!(parse_cpu_line("cpu  1 2"), None);
    }

    #[test]
    fn a_reaped_process_is_not_running() {
        assert!(running(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!running(pid));
    }

    #[test]
    fn cpu_lists_read_like_taskset() {
        assert_eq!(parse_cpu_list("0").unwrap(), [0]);
        assert_eq!(parse_cpu_list("3,0-1").unwrap(), [0, 1, 3]);
        assert_eq!(parse_cpu_list("1,1").unwrap(), [1]);
        for bad in ["", "a", "2-1", "0-", "99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }
}
