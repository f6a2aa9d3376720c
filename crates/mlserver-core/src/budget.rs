//! A memory budget for the requests in flight (`memory_budget`).
//!
//! Each request's limit alone (512 MiB by default) does not bound the sum
//! over concurrent requests: a handful of large bodies takes a pod with a
//! 2 GiB limit down. Every request holds a [`Charge`] against one
//! [`MemoryBudget`] for as long as it is in flight: the transports charge
//! its body as it arrives (see `mlserver-server`'s `BudgetBody`), REST and
//! gRPC what a gzip'd body or message may inflate to. What the budget cannot take is refused at once, and
//! the requests already in flight go on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes charged per body byte: the body and the tensors it decodes to.
pub const PER_BODY_BYTE: u64 = 2;

/// The share of the memory limit the budget takes when not set: 3/5,
/// enough for one request of the default 512 MiB limit (charged 1 GiB)
/// beside small ones under KServe's default 2 GiB limit; the rest is the
/// models' and the server's.
const AUTOMATIC_SHARE: (u64, u64) = (3, 5);

/// The bytes requests in flight may hold together.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// `memory_budget` when set, else 3/5 of the process's cgroup memory
    /// limit (v2 `memory.max`, v1 `memory.limit_in_bytes`), else of the
    /// machine's memory; `None` when none can be read.
    pub fn from_setting(bytes: u64) -> Option<Arc<Self>> {
        if bytes > 0 {
            return Some(Self::new(bytes));
        }
        let (num, den) = AUTOMATIC_SHARE;
        memory_limit().map(|limit| Self::new(limit / den * num))
    }

    /// The budget's size in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The memory one request holds against the budget, given back when the
/// last holder (its body, its response) drops it.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<MemoryBudget>,
    bytes: AtomicU64,
}

impl Charge {
    /// An empty charge against `budget`.
    pub fn new(budget: Arc<MemoryBudget>) -> Arc<Self> {
        Arc::new(Charge {
            budget,
            bytes: AtomicU64::new(0),
        })
    }

    /// Gives `bytes` of the charge back (no more than it holds).
    pub fn shrink(&self, bytes: u64) {
        let given = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held - bytes.min(held))
            })
            .map(|held| bytes.min(held))
            .unwrap_or(0);
        self.budget.give_back(given);
    }

    /// Adds `bytes`, or refuses when the budget has not that much left.
    pub fn grow(&self, bytes: u64) -> Result<(), BudgetExhausted> {
        if self.budget.try_take(bytes) {
            self.bytes.fetch_add(bytes, Ordering::AcqRel);
            Ok(())
        } else {
            Err(BudgetExhausted {
                wanted: bytes,
                used: self.budget.used(),
                limit: self.budget.limit,
            })
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(*self.bytes.get_mut());
    }
}

/// A request the budget cannot take.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server's memory budget for requests in flight is exhausted: this request needs {wanted} \
     more bytes, {used} of {limit} are in use (memory_budget); retry later"
)]
pub struct BudgetExhausted {
    wanted: u64,
    used: u64,
    limit: u64,
}

/// The memory limit of this process's cgroup (as `/proc/self/cgroup`
/// names it, v2 or v1), else of the machine.
fn memory_limit() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let number = |v: String| v.trim().parse::<u64>().ok();
    let own = read("/proc/self/cgroup").and_then(|groups| {
        groups.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let path = path.trim_end_matches('/');
            match controllers {
                "" => read(&format!("/sys/fs/cgroup{path}/memory.max")).and_then(number),
                c if c.split(',').any(|c| c == "memory") => read(&format!(
                    "/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"
                ))
                .and_then(number),
                _ => None,
            }
        })
    });
    let machine = read("/proc/meminfo").and_then(|info| {
        info.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    // "max" (v2) does not parse; an unlimited v1 group reports a huge
    // number: the machine bounds both.
    match (own, machine) {
        (Some(c), Some(m)) => Some(c.min(m)),
        (c, m) => c.or(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_and_are_given_back() {
        let budget = MemoryBudget::new(100);
        let a = Charge::new(budget.clone());
        a.grow(60).unwrap();
        let b = Charge::new(budget.clone());
        assert!(b.grow(50).is_err(), "60 + 50 > 100");
        b.grow(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        b.shrink(15);
        assert_eq!(budget.used(), 25);
        b.shrink(1000);
        assert_eq!(budget.used(), 0);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
