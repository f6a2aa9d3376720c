//! Where predictions run: MLServer's `parallel_workers`, without its cost.
//!
//! MLServer runs `parallel_workers` processes, each an event loop running
//! many async predictions, and loads every model into each one, so memory
//! grows as models x workers (its most reported problem). Here the workers
//! are the threads of a dedicated async runtime that share the one loaded
//! copy of each model, and they are the one lane for computing: at most
//! `parallel_workers` predictions compute at once, while predictions that
//! await (I/O, a remote call) interleave on them as they do in MLServer's
//! worker event loops. A runtime's [`blocking`](mlserver_runtime::blocking)
//! work computes in place on that lane (see `mlserver_runtime`'s
//! `on_compute_lane`), inside the bound, instead of on tokio's unbounded
//! blocking pool. Because such predictions never run on the threads that
//! accept connections, a runtime that computes inside `predict` without
//! `blocking()` still cannot stall health checks, metadata or metrics.
//!
//! The one exception, by design: handing a prediction to another thread
//! costs two cross-thread wake-ups, more than a small model's whole
//! prediction (a row sum, a lookup). So each model's predictions are timed,
//! and a model whose predictions take on average under [`INLINE_BELOW`]
//! runs on the request's own task (its `blocking()` work there too): it
//! cannot stall anything for longer than that. A model starts on the pool
//! until it has been measured, and moves back to it as soon as its average
//! grows. A model whose `predict` only awaits work done elsewhere (a Python
//! worker process: `MLModel::predicts_elsewhere`) always runs on the
//! request's task, and with `parallel_workers: 0` every prediction does
//! (there is no lane; `blocking()` uses tokio's blocking pool).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use mlserver_metrics::Histogram;
use mlserver_runtime::{
    on_compute_lane, panic_message, DynModel, MLServerError, RequestStream, ResponseStream,
};
use mlserver_types::{InferenceRequest, InferenceResponse};

use crate::statistics::PredictTiming;

/// Predictions averaging less than this run inline on the request's task.
pub(crate) const INLINE_BELOW: Duration = Duration::from_micros(100);

/// A model's recent prediction time: an exponentially weighted average, in
/// nanoseconds of wall time (`u64::MAX` until the first prediction).
#[derive(Debug)]
pub struct PredictCost {
    average_ns: AtomicU64,
}

impl Default for PredictCost {
    fn default() -> Self {
        PredictCost {
            average_ns: AtomicU64::new(u64::MAX),
        }
    }
}

impl PredictCost {
    fn cheap(&self) -> bool {
        self.average_ns.load(Ordering::Relaxed) < INLINE_BELOW.as_nanos() as u64
    }

    fn record(&self, took: Duration) {
        let sample = took.as_nanos().min(u64::MAX as u128 / 2) as u64;
        let old = self.average_ns.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        // A lost update between racing predictions only skews the average.
        self.average_ns.store(new, Ordering::Relaxed);
    }
}

/// What a binary adds to the builder of the inference workers' runtime,
/// as it does to its own async runtime (its allocator's thread hooks, for
/// example, which hand the memory these threads free back to the system
/// when they go idle).
pub type WorkerRuntimeHook = fn(&mut tokio::runtime::Builder);

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
    /// `configure`, when given, adds to the pool's runtime builder.
    pub fn new(
        workers: usize,
        in_flight: Option<Arc<Histogram>>,
        configure: Option<WorkerRuntimeHook>,
    ) -> std::io::Result<Self> {
        if workers == 0 {
            return Ok(Self::inline());
        }
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder
            .worker_threads(workers)
            .thread_name("mlserver-worker")
            .enable_all();
        if let Some(configure) = configure {
            configure(&mut builder);
        }
        let runtime = builder.build()?;
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

    /// Runs one `predict`, timing it into `cost`. A panic in the runtime
    /// fails this request only.
    pub async fn predict(
        &self,
        model_name: &str,
        runtime: &DynModel,
        cost: &Arc<PredictCost>,
        request: InferenceRequest,
    ) -> Result<InferenceResponse, MLServerError> {
        self.predict_timed(model_name, runtime, cost, request)
            .await
            .map(|(response, _)| response)
    }

    /// [`Executor::predict`], with how long the prediction waited for a
    /// worker and ran (Triton's statistics).
    pub(crate) async fn predict_timed(
        &self,
        model_name: &str,
        runtime: &DynModel,
        cost: &Arc<PredictCost>,
        request: InferenceRequest,
    ) -> Result<(InferenceResponse, PredictTiming), MLServerError> {
        let panicked = |payload: &(dyn std::any::Any + Send)| {
            MLServerError::internal(format!(
                "model {model_name} panicked during inference: {}",
                panic_message(payload)
            ))
        };
        let Some(pool) = self
            .pool
            .as_ref()
            .filter(|_| !cost.cheap() && !runtime.predicts_elsewhere())
        else {
            // A prediction in another process (a Python worker) is still a
            // call in flight, as MLServer's dispatcher counts its messages.
            let _in_flight = self
                .pool
                .as_ref()
                .filter(|_| runtime.predicts_elsewhere())
                .map(Pool::dispatched);
            // A cheap model's `blocking()` work stays here too (the
            // documented exception to the lane's bound); with no pool, or
            // for a prediction made elsewhere, it goes to tokio's pool.
            let lane = self.pool.is_some() && !runtime.predicts_elsewhere();
            let started = Instant::now();
            let predict = AssertUnwindSafe(runtime.predict(request)).catch_unwind();
            let result = match lane {
                true => on_compute_lane(predict).await,
                false => predict.await,
            }
            .map_err(|p| panicked(&*p))?;
            let infer = started.elapsed();
            // Only successes: fast failures must not make a model look cheap.
            if result.is_ok() {
                cost.record(infer);
            }
            return result.map(|r| {
                (
                    r,
                    PredictTiming {
                        queue: Duration::ZERO,
                        infer,
                    },
                )
            });
        };
        let done = pool.dispatched();
        let handle = pool
            .runtime
            .as_ref()
            .expect("the pool runtime lives as long as the executor")
            .handle();
        let runtime = runtime.clone();
        let cost = cost.clone();
        let queued = Instant::now();
        let task = handle.spawn(async move {
            let _done = done;
            let started = Instant::now();
            let result = on_compute_lane(runtime.predict(request)).await;
            let infer = started.elapsed();
            if result.is_ok() {
                cost.record(infer);
            }
            result.map(|r| {
                (
                    r,
                    PredictTiming {
                        queue: started.duration_since(queued),
                        infer,
                    },
                )
            })
        });
        // A caller that stops waiting (a deadline, a cut, a client gone)
        // cancels the prediction with it: the task is aborted at its next
        // await (a Python call sends its worker a cancel then).
        let mut task = AbortOnDrop(task);
        match (&mut task.0).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(panicked(&*e.into_panic())),
            Err(_) => Err(MLServerError::Unavailable(
                "the prediction was cancelled: the server is shutting down".into(),
            )),
        }
    }
}

impl Executor {
    /// Runs a streaming runtime's `predict_stream` ([`MLModel::streaming`](mlserver_runtime::MLModel::streaming))
    /// where predictions run (on
    /// the pool, else on the caller's task), its responses forwarded as
    /// they come. A panic, in `predict_stream` or while producing a
    /// response, becomes the stream's last item.
    pub fn stream(
        &self,
        model_name: &str,
        runtime: DynModel,
        requests: RequestStream,
    ) -> ResponseStream {
        let name = model_name.to_owned();
        let elsewhere = runtime.predicts_elsewhere();
        let panicked = move |payload: Box<dyn std::any::Any + Send>| {
            MLServerError::internal(format!(
                "model {name} panicked during a stream: {}",
                panic_message(&*payload)
            ))
        };
        let produce = async move {
            let Some(streaming) = runtime.streaming() else {
                return futures::stream::once(async {
                    Err(MLServerError::internal("the model does not stream"))
                })
                .boxed();
            };
            match AssertUnwindSafe(streaming.predict_stream(requests))
                .catch_unwind()
                .await
            {
                Ok(Ok(stream)) => AssertUnwindSafe(stream)
                    .catch_unwind()
                    .map(move |item| item.unwrap_or_else(|p| Err(panicked(p))))
                    .boxed(),
                Ok(Err(e)) => futures::stream::once(async move { Err(e) }).boxed(),
                Err(p) => futures::stream::once(async move { Err(panicked(p)) }).boxed(),
            }
        };
        let Some(pool) = self.pool.as_ref().filter(|_| !elsewhere) else {
            return futures::stream::once(produce).flatten().boxed();
        };
        // On the pool: a task drives the stream, a small channel carries
        // the responses (so a slow client holds the runtime back rather
        // than piling responses up).
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let handle = pool
            .runtime
            .as_ref()
            .expect("the pool runtime lives as long as the executor")
            .handle();
        handle.spawn(on_compute_lane(async move {
            let mut responses = produce.await;
            loop {
                // The consumer may go away while the runtime has nothing to
                // say (a generator waiting for credit): the stream must be
                // dropped then too, which stops the runtime's generator.
                let item = tokio::select! {
                    item = responses.next() => item,
                    () = tx.closed() => return,
                };
                let Some(item) = item else { return };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        }));
        tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
    }
}

/// Aborts a pool task when whoever waits for it goes away.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts a prediction out of the pool when its task ends, however it ends.
struct InFlight(Arc<AtomicUsize>);

impl Pool {
    /// One more prediction in flight, observed in `parallel_request_queue`
    /// (counting itself, as MLServer's dispatcher does) until dropped.
    fn dispatched(&self) -> InFlight {
        let in_flight = self.in_flight_now.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(h) = &self.in_flight {
            h.observe(in_flight as f64);
        }
        InFlight(self.in_flight_now.clone())
    }
}

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

    /// Sleeps until cancelled; its flag says whether the future was dropped.
    struct Stuck(Arc<std::sync::atomic::AtomicBool>);

    struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl MLModel for Stuck {
        async fn load(_: ModelContext) -> Result<Self, MLServerError> {
            unreachable!()
        }
        async fn predict(&self, _: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
            let _flag = SetOnDrop(self.0.clone());
            std::future::pending().await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_stops_waiting_cancels_the_prediction() {
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let runtime: DynModel = Arc::new(Stuck(dropped.clone()));
        let executor = Executor::new(1, None, None).unwrap();
        let cost = Arc::new(PredictCost::default());
        // Not cheap, so it runs on the pool.
        cost.record(Duration::from_secs(1));
        let call = executor.predict("stuck", &runtime, &cost, InferenceRequest::default());
        let waited = tokio::time::timeout(Duration::from_millis(50), call).await;
        assert!(waited.is_err());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "the pool task still runs"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn busy_workers_bound_concurrency_and_panics_are_contained() {
        let model = Arc::new(Busy {
            running: AtomicUsize::new(0),
            max_seen: AtomicUsize::new(0),
        });
        let runtime: DynModel = model.clone();
        let executor = Arc::new(Executor::new(2, None, None).unwrap());
        let cost = Arc::new(PredictCost::default());
        let calls = (0..8).map(|i| {
            let executor = executor.clone();
            let runtime = runtime.clone();
            let cost = cost.clone();
            async move {
                let request = InferenceRequest {
                    id: Some(if i == 3 { "panic" } else { "ok" }.to_owned()),
                    ..Default::default()
                };
                executor.predict("busy", &runtime, &cost, request).await
            }
        });
        let results = futures::future::join_all(calls).await;
        assert_eq!(model.max_seen.load(Ordering::SeqCst), 2);
        let err = results[3].as_ref().unwrap_err().to_string();
        assert!(err.contains("panicked") && err.contains("boom"), "{err}");
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 7);
        assert!(!cost.cheap());
        drop(executor);
    }

    /// Computes through `blocking()`, as the ONNX runtime does, counting
    /// how many of its computations overlap.
    struct Blocking {
        running: Arc<AtomicUsize>,
        max_seen: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl MLModel for Blocking {
        async fn load(_: ModelContext) -> Result<Self, MLServerError> {
            unreachable!()
        }
        async fn predict(&self, _: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
            let (running, max_seen) = (self.running.clone(), self.max_seen.clone());
            mlserver_runtime::blocking(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(InferenceResponse::default())
            })
            .await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_work_computes_within_parallel_workers() {
        for workers in [1, 4] {
            let model = Blocking {
                running: Arc::default(),
                max_seen: Arc::default(),
            };
            let max_seen = model.max_seen.clone();
            let runtime: DynModel = Arc::new(model);
            let executor = Arc::new(Executor::new(workers, None, None).unwrap());
            let cost = Arc::new(PredictCost::default());
            let calls = (0..10).map(|_| {
                let (executor, runtime, cost) = (executor.clone(), runtime.clone(), cost.clone());
                async move {
                    executor
                        .predict("blocking", &runtime, &cost, InferenceRequest::default())
                        .await
                }
            });
            let results = futures::future::join_all(calls).await;
            assert!(results.iter().all(Result::is_ok));
            let max = max_seen.load(Ordering::SeqCst);
            // Before the lane, a pool task awaiting tokio's blocking pool
            // freed its thread: all ten computed at once.
            assert!(
                max <= workers,
                "{max} computed at once with {workers} workers"
            );
            if workers > 1 {
                assert!(max > 1, "the pool's threads compute side by side");
            }
        }
    }

    /// Answers with the name of the thread its `predict` ran on.
    struct ThreadName {
        elsewhere: bool,
    }

    #[async_trait]
    impl MLModel for ThreadName {
        async fn load(_: ModelContext) -> Result<Self, MLServerError> {
            unreachable!()
        }
        async fn predict(&self, _: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
            Ok(InferenceResponse {
                model_name: std::thread::current().name().unwrap_or("").to_owned(),
                ..Default::default()
            })
        }
        fn predicts_elsewhere(&self) -> bool {
            self.elsewhere
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn models_predicting_elsewhere_stay_off_the_pool() {
        let executor = Executor::new(1, None, None).unwrap();
        let here = std::thread::current().name().unwrap_or("").to_owned();
        for (elsewhere, expected) in [(false, "mlserver-worker"), (true, here.as_str())] {
            let runtime: DynModel = Arc::new(ThreadName { elsewhere });
            // Unmeasured, then slow: a model the pool would take.
            let cost = Arc::new(PredictCost::default());
            for round in 0..2 {
                let response = executor
                    .predict("m", &runtime, &cost, InferenceRequest::default())
                    .await
                    .unwrap();
                assert_eq!(response.model_name, expected, "elsewhere: {elsewhere}");
                if round == 0 {
                    cost.record(Duration::from_secs(1));
                }
            }
        }
    }

    #[test]
    fn cheap_models_are_learnt_and_unlearnt() {
        let cost = PredictCost::default();
        assert!(!cost.cheap(), "unmeasured models go to the pool");
        cost.record(Duration::from_micros(2));
        assert!(cost.cheap());
        for _ in 0..3 {
            cost.record(Duration::from_millis(5));
        }
        assert!(
            !cost.cheap(),
            "a model that slows down goes back to the pool"
        );
    }
}
