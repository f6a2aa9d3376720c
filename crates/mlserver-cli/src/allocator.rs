//! The global allocator.
//!
//! Every binary built on this crate (the default `mlserver` and custom
//! runtime binaries alike) allocates through jemalloc: a small request
//! makes a few dozen short-lived allocations, and jemalloc serves them in a
//! fraction of glibc's instructions (turn the `jemalloc` feature off to keep
//! the system allocator, for example to use a heap profiler).
//!
//! Its background threads hand freed memory back to the system on their
//! own, from every thread's arenas, after a few seconds (the decay time):
//! after a burst of large requests the async workers go to sleep with the
//! burst's pages freed into their arenas, and nothing on those workers has
//! to wake to return them. Measured against mimalloc with a purge of our
//! own (175 lines that woke sleeping workers to collect their heaps): the
//! same instructions per small request (callgrind, sum16: REST 44,989 vs
//! 45,157, gRPC 78,355 vs 79,153 at c=1), the burst handed back as fast
//! (`a_burst_of_large_tensors_is_handed_back_once_idle`), 0.5 MiB more
//! heap when idle.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
