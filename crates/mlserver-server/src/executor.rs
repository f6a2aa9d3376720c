//! Where predictions run: MLServer's `parallel_workers`, without its cost.
//!
//! MLServer runs `parallel_workers` processes, each an event loop running
//! many async predictions, and loads every model into each one, so memory
//! grows as models x workers (its most reported problem). Here the workers
//! are the threads of a dedicated async runtime that share the one loaded
//! copy of each model: at most `parallel_workers` predictions compute at
//! once, while predictions that await (I/O, a remote call) interleave on
//! them as they do in MLServer's worker event loops. Because predictions
//! never run on the threads that accept connections, a runtime that
//! computes inside `predict` without `blocking()` still cannot stall health
//! checks, metadata or metrics.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::FutureExt;
use mlserver_metrics::Histogram;
use mlserver_runtime::{panic_message, DynModel, MLServerError};
use mlserver_types::{InferenceRequest, InferenceResponse};

/// Runs `predict` calls, inline or on the worker pool.
pub struct Executor {
    pool: Option<Pool>,
}

struct Pool {
    runtime: Option<tokio::runtime::Runtime>,
    workers: usize,
    /// Predictions dispatched to the pool and not finished.
    in_flight_now: Arc<AtomicUsize>,
    /// MLServer's `parallel_request_queue`: predictions in flight, observed
    /// at each dispatch.
    in_flight: Option<Arc<Histogram>>,
}

impl Executor {
    /// Predictions run on the task that received the request
    /// (`parallel_workers: 0`).
    pub fn inline() -> Self {
        Executor { pool: None }
    }

    /// A pool of `workers` threads; `0` means [`Executor::inline`].
    pub fn new(workers: usize, in_flight: Option<Arc<Histogram>>) -> std::io::Result<Self> {
        if workers == 0 {
            return Ok(Self::inline());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("mlserver-worker")
            .enable_all()
            .build()?;
        Ok(Executor {
            pool: Some(Pool {
                runtime: Some(runtime),
                workers,
                in_flight_now: Arc::default(),
                in_flight,
            }),
        })
    }

    /// The number of worker threads (0: inline).
    pub fn workers(&self) -> usize {
        self.pool.as_ref().map_or(0, |p| p.workers)
    }

    /// Runs one `predict`. A panic in the runtime fails this request only.
    pub async fn predict(
        &self,
        model_name: &str,
        runtime: &DynModel,
        request: InferenceRequest,
    ) -> Result<InferenceResponse, MLServerError> {
        let panicked = |payload: &(dyn std::any::Any + Send)| {
            MLServerError::internal(format!(
                "model {model_name} panicked during inference: {}",
                panic_message(payload)
            ))
        };
        let Some(pool) = &self.pool else {
            return AssertUnwindSafe(runtime.predict(request))
                .catch_unwind()
                .await
                .map_err(|p| panicked(&*p))?;
        };
        let in_flight = pool.in_flight_now.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(h) = &pool.in_flight {
            h.observe(in_flight as f64);
        }
        let done = InFlight(pool.in_flight_now.clone());
        let handle = pool
            .runtime
            .as_ref()
            .expect("the pool runtime lives as long as the executor")
            .handle();
        let runtime = runtime.clone();
        let task = handle.spawn(async move {
            let _done = done;
            runtime.predict(request).await
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(panicked(&*e.into_panic())),
            Err(_) => Err(MLServerError::Unavailable(
                "the prediction was cancelled: the server is shutting down".into(),
            )),
        }
    }
}

/// Counts a prediction out of the pool when its task ends, however it ends.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks stop, which is not
        // allowed from async code (where the server usually drops this).
        if let Some(rt) = self.pool.as_mut().and_then(|p| p.runtime.take()) {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlserver_runtime::{async_trait, MLModel, ModelContext};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    struct Busy {
        running: AtomicUsize,
        max_seen: AtomicUsize,
    }

    #[async_trait]
    impl MLModel for Busy {
        async fn load(_: ModelContext) -> Result<Self, MLServerError> {
            unreachable!()
        }
        async fn predict(&self, r: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_seen.fetch_max(now, Ordering::SeqCst);
            // Blocks its thread on purpose: a runtime that forgot blocking().
            std::thread::sleep(Duration::from_millis(20));
            self.running.fetch_sub(1, Ordering::SeqCst);
            if r.id.as_deref() == Some("panic") {
                panic!("boom");
            }
            Ok(InferenceResponse::default())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn busy_workers_bound_concurrency_and_panics_are_contained() {
        let model = Arc::new(Busy {
            running: AtomicUsize::new(0),
            max_seen: AtomicUsize::new(0),
        });
        let runtime: DynModel = model.clone();
        let executor = Arc::new(Executor::new(2, None).unwrap());
        let calls = (0..8).map(|i| {
            let executor = executor.clone();
            let runtime = runtime.clone();
            async move {
                let request = InferenceRequest {
                    id: Some(if i == 3 { "panic" } else { "ok" }.to_owned()),
                    ..Default::default()
                };
                executor.predict("busy", &runtime, request).await
            }
        });
        let results = futures::future::join_all(calls).await;
        assert_eq!(model.max_seen.load(Ordering::SeqCst), 2);
        let err = results[3].as_ref().unwrap_err().to_string();
        assert!(err.contains("panicked") && err.contains("boom"), "{err}");
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 7);
        drop(executor);
    }
}
