//! The `process_*` families Prometheus clients export about their own
//! process (the names and help texts of Python's `prometheus_client`), read
//! from `/proc` at scrape time. Empty on systems without `/proc`.

use crate::external::{ExternalFamily, ExternalSample};

/// The families, read now.
pub(crate) fn families() -> Vec<ExternalFamily> {
    let Some(stat) = Stat::read() else {
        return Vec::new();
    };
    // SAFETY: sysconf only reads configuration values.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    let page = if page > 0 { page as f64 } else { 4096.0 };
    let mut families = vec![
        family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            stat.vsize,
        ),
        family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            stat.rss_pages * page,
        ),
    ];
    if let Some(boot) = boot_time() {
        families.push(family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            boot + stat.start_ticks / ticks,
        ));
    }
    families.push(family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        (stat.utime + stat.stime) / ticks,
    ));
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        families.push(family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            // Less the descriptor read_dir itself holds open.
            fds.count().saturating_sub(1) as f64,
        ));
    }
    if let Some(max) = max_fds() {
        families.push(family(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        ));
    }
    families
}

fn family(name: &str, kind: &str, help: &str, value: f64) -> ExternalFamily {
    ExternalFamily {
        name: name.to_owned(),
        kind: kind.to_owned(),
        help: help.to_owned(),
        samples: vec![ExternalSample {
            name: name.to_owned(),
            labels: Vec::new(),
            value,
        }],
    }
}

/// The fields of `/proc/self/stat` the families need.
struct Stat {
    utime: f64,
    stime: f64,
    start_ticks: f64,
    vsize: f64,
    rss_pages: f64,
}

impl Stat {
    fn read() -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// The command name (field 2) is in parentheses and may hold spaces
    /// and parentheses itself: the fields are counted from the last `)`.
    fn parse(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        // Field 3 (state) is the first after the name.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

/// The system's boot time (`btime` in `/proc/stat`), seconds since the epoch.
fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft limit on open files (`/proc/self/limits`).
fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        Some(f64::INFINITY)
    } else {
        soft.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "1234 (a) b (c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 9000 123456789 321 18446744073709551615";
        let stat = Stat::parse(line).unwrap();
        assert_eq!(stat.utime, 250.0);
        assert_eq!(stat.stime, 50.0);
        assert_eq!(stat.start_ticks, 9000.0);
        assert_eq!(stat.vsize, 123456789.0);
        assert_eq!(stat.rss_pages, 321.0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_every_family() {
        let names: Vec<String> = families().into_iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "process_virtual_memory_bytes",
                "process_resident_memory_bytes",
                "process_start_time_seconds",
                "process_cpu_seconds_total",
                "process_open_fds",
                "process_max_fds",
            ]
        );
    }
}
