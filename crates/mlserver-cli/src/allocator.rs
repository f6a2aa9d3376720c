//! The global allocator, and the purge that gives a burst's memory back.
//!
//! Every binary built on this crate (the default `mlserver` and custom
//! runtime binaries alike) allocates through mimalloc: a small request
//! makes a few dozen short-lived allocations, and mimalloc serves them in a
//! fraction of glibc's instructions. Built without transparent huge pages
//! (`no_thp`): with them, the idle server's RSS grew from 12 to 19 MiB. Turn
//! the `mimalloc` feature off to keep the system allocator (for example to
//! use a heap profiler).
//!
//! mimalloc hands freed memory back lazily, and a thread's heap can only be
//! collected by that thread. After a burst of large requests, the async
//! workers that served it go to sleep with the burst's pages still in their
//! heaps (pages freed into them by other threads included), and they stay
//! resident for as long as the workers sleep: 12 MiB of them after a burst
//! of 64Ki-element tensors, on a server idle at 2.5 MiB of heap. So, in
//! rounds of [`ROUND`]:
//! - a thread of ours collects its own heap and purges every arena's freed
//!   memory, then starts a new round;
//! - a worker that parks in a round it has not collected in collects first
//!   (under load, workers park often, so they collect by themselves);
//! - a worker asleep since before the round, that parked with work done since
//!   its last collect, is woken to collect: the purge thread spawns a task
//!   for it on its runtime, which collects on whichever worker runs it.
//!   tokio wakes the worker that parked last, so to reach the others the
//!   task keeps its worker (asleep, at most [`HOLD_AT_MOST`]) until no
//!   worker owing a collect sleeps: the next one spawned goes to another.
//!
//! A server that does nothing is not woken: a worker woken to collect does
//! not owe one when it parks again.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often freed memory is handed back.
const ROUND: Duration = Duration::from_secs(5);

/// How long a task spawned to collect keeps its worker, at most.
const HOLD_AT_MOST: Duration = Duration::from_millis(2);

/// The current round, bumped by the purge thread.
static ROUND_NO: AtomicU64 = AtomicU64::new(0);

/// An async worker thread that has parked owing a collect at least once.
struct Worker {
    runtime: tokio::runtime::Handle,
    /// Parked with work done since its last collect, and not woken since.
    asleep_owing: AtomicBool,
}

static WORKERS: Mutex<Vec<Arc<Worker>>> = Mutex::new(Vec::new());

#[derive(Default)]
struct ThreadState {
    /// Registered in [`WORKERS`] at the first park that owed a collect.
    worker: Option<Arc<Worker>>,
    collected_round: u64,
    /// Woken by a collecting task: the next park owes nothing.
    woken_to_collect: bool,
}

thread_local! {
    static STATE: RefCell<ThreadState> = RefCell::default();
}

/// Adds the purge's hooks to an async runtime whose workers serve requests:
/// the server's own and the inference workers'.
pub(crate) fn install(builder: &mut tokio::runtime::Builder) {
    builder
        .on_thread_park(on_park)
        .on_thread_unpark(on_unpark)
        .on_thread_stop(on_stop);
}

/// Starts the purge thread.
pub(crate) fn spawn_purge() {
    let spawned = std::thread::Builder::new()
        .name("mlserver-purge".into())
        .spawn(|| loop {
            std::thread::sleep(ROUND);
            ROUND_NO.fetch_add(1, Relaxed);
            // SAFETY: mi_collect has no preconditions; it only walks
            // mimalloc's own structures (this thread's heap and the arenas).
            unsafe { libmimalloc_sys::mi_collect(true) };
            let owing: Vec<tokio::runtime::Handle> = lock_workers()
                .iter()
                .filter(|w| w.asleep_owing.load(Relaxed))
                .map(|w| w.runtime.clone())
                .collect();
            for runtime in owing {
                drop(runtime.spawn(async { collect_here() }));
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("could not start the allocator purge thread: {e}");
    }
}

fn lock_workers() -> std::sync::MutexGuard<'static, Vec<Arc<Worker>>> {
    WORKERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn on_park() {
    let round = ROUND_NO.load(Relaxed);
    STATE.with_borrow_mut(|state| {
        if state.collected_round != round {
            collect(state, round);
        } else if !std::mem::take(&mut state.woken_to_collect) {
            if state.worker.is_none() {
                state.worker = register();
            }
            if let Some(worker) = &state.worker {
                worker.asleep_owing.store(true, Relaxed);
            }
        }
    });
}

fn on_unpark() {
    STATE.with_borrow(|state| {
        if let Some(worker) = &state.worker {
            if worker.asleep_owing.load(Relaxed) {
                worker.asleep_owing.store(false, Relaxed);
            }
        }
    });
}

fn on_stop() {
    if let Some(worker) = STATE.with_borrow_mut(|state| state.worker.take()) {
        lock_workers().retain(|w| !Arc::ptr_eq(w, &worker));
    }
}

/// The calling worker, in [`WORKERS`] (park hooks run inside the runtime).
fn register() -> Option<Arc<Worker>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let worker = Arc::new(Worker {
        runtime,
        asleep_owing: AtomicBool::new(false),
    });
    lock_workers().push(worker.clone());
    Some(worker)
}

fn collect(state: &mut ThreadState, round: u64) {
    state.collected_round = round;
    // SAFETY: as above; collects the calling thread's heap, then the arenas.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// The task the purge thread spawns for a sleeping worker that owes a
/// collect: collects on the worker running it, then keeps that worker
/// until no owing worker sleeps, so that the runtime wakes another one for
/// the next such task (see the module's documentation).
fn collect_here() {
    let round = ROUND_NO.load(Relaxed);
    STATE.with_borrow_mut(|state| {
        if state.collected_round != round {
            collect(state, round);
        }
        state.woken_to_collect = true;
    });
    let until = Instant::now() + HOLD_AT_MOST;
    while Instant::now() < until && lock_workers().iter().any(|w| w.asleep_owing.load(Relaxed)) {
        std::thread::sleep(Duration::from_micros(100));
    }
}
