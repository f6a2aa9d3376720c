//! A pool of Python workers for one environment: every model of the pool is
//! loaded in every worker (as in MLServer's homogeneous pools), requests go
//! to the least busy live worker, and a worker that dies is replaced and
//! gets its models back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use mlserver_runtime::MLServerError;
use tracing::{error, info, warn};

use crate::frame;
use crate::worker::{Spawn, Worker};

/// `(name, version)`, the version empty when unversioned.
pub(crate) type ModelKey = (String, String);

pub(crate) struct Pool {
    spec: Spawn,
    workers: RwLock<Vec<Arc<Worker>>>,
    /// The load message of every model in the pool, replayed into a
    /// replacement worker, with the generation of the load that put it
    /// there: a reload's old instance must not unload its successor.
    models: Mutex<BTreeMap<ModelKey, (u64, Vec<u8>)>>,
    generations: std::sync::atomic::AtomicU64,
    next: AtomicUsize,
    closed: AtomicBool,
    stop_timeout: Duration,
}

impl Pool {
    /// Starts `size` workers (all or none).
    pub(crate) async fn start(
        spec: Spawn,
        size: usize,
        stop_timeout: Duration,
    ) -> Result<Arc<Pool>, MLServerError> {
        let started = join_all((0..size.max(1)).map(|_| Worker::spawn(&spec))).await;
        let mut workers = Vec::new();
        let mut failure = None;
        for w in started {
            match w {
                Ok(w) => workers.push(w),
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            join_all(workers.iter().map(|w| w.stop(stop_timeout))).await;
            return Err(e);
        }
        info!(
            python = %spec.python.display(),
            pids = ?workers.iter().map(|w| w.pid).collect::<Vec<_>>(),
            "started {} Python worker(s)",
            workers.len()
        );
        let pool = Arc::new(Pool {
            spec,
            workers: RwLock::new(workers.clone()),
            models: Mutex::default(),
            generations: std::sync::atomic::AtomicU64::new(1),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            stop_timeout,
        });
        for (slot, worker) in workers.into_iter().enumerate() {
            tokio::spawn(supervise(pool.clone(), slot, worker));
        }
        Ok(pool)
    }

    pub(crate) fn workers(&self) -> Vec<Arc<Worker>> {
        self.workers.read().expect("workers lock").clone()
    }

    /// Loads a model into every worker and returns the load's generation
    /// and the first worker's reply. On failure the model's previous load
    /// (a reload's old instance, still serving in the workers) stays.
    pub(crate) async fn load(
        &self,
        key: ModelKey,
        message: Vec<u8>,
    ) -> Result<(u64, Bytes), MLServerError> {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let previous = self
            .models
            .lock()
            .expect("models lock")
            .insert(key.clone(), (generation, message.clone()));
        let workers: Vec<_> = self.workers().into_iter().filter(|w| w.alive()).collect();
        let results = join_all(workers.iter().map(|w| load_into(w, &key, &message))).await;
        // A worker that dies meanwhile gets the model from the replay into
        // its replacement; any other failure is the model's own.
        let loaded = results.iter().filter(|r| r.is_ok()).count();
        let reply = results.iter().find_map(|r| r.as_ref().ok().cloned());
        let failure = results.into_iter().find_map(|r| match r {
            Err(MLServerError::WorkerLost(_)) if loaded > 0 => None,
            Err(e) => Some(e),
            Ok(_) => None,
        });
        let failure = failure.or_else(|| {
            (loaded == 0).then(|| {
                MLServerError::Unavailable("no live Python worker to load the model into".into())
            })
        });
        let Some(e) = failure else {
            return Ok((generation, reply.unwrap_or_default()));
        };
        match previous {
            // The workers kept the old instance (Python swaps only after a
            // successful load): the pool keeps its entry.
            Some(previous) => {
                self.models
                    .lock()
                    .expect("models lock")
                    .insert(key, previous);
            }
            None => self.unload(&key, generation).await,
        }
        Err(e)
    }

    /// Unloads a model from every worker that has it, unless a later load
    /// (a reload) has replaced `generation`.
    pub(crate) async fn unload(&self, key: &ModelKey, generation: u64) {
        {
            let mut models = self.models.lock().expect("models lock");
            match models.get(key) {
                Some((current, _)) if *current == generation => {
                    models.remove(key);
                }
                Some(_) => return,
                None => {}
            }
        }
        let body = serde_json::json!({"name": key.0, "version": key.1}).to_string();
        let workers = self.workers();
        join_all(workers.iter().filter(|w| w.has(key)).map(|w| async {
            w.mark_loaded(key.clone(), false);
            if let Err(e) = w.call(frame::UNLOAD, body.as_bytes()).await {
                warn!(model = %key.0, pid = w.pid, "unload in the Python worker failed: {e}");
            }
        }))
        .await;
    }

    /// Whether some live worker serves the model.
    pub(crate) fn serves(&self, key: &ModelKey) -> bool {
        self.workers().iter().any(|w| w.alive() && w.has(key))
    }

    /// One call to the least busy live worker serving the model.
    pub(crate) async fn call(
        &self,
        key: &ModelKey,
        kind: u8,
        body: &[u8],
    ) -> Result<Bytes, MLServerError> {
        self.pick(key)?.call(kind, body).await
    }

    /// The least busy live worker serving the model.
    pub(crate) fn pick(&self, key: &ModelKey) -> Result<Arc<Worker>, MLServerError> {
        let worker = {
            let workers = self.workers.read().expect("workers lock");
            let n = workers.len();
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            (0..n)
                .map(|i| &workers[(start + i) % n])
                .filter(|w| w.alive() && w.has(key))
                .min_by_key(|w| w.in_flight())
                .cloned()
        };
        worker.ok_or_else(|| {
            MLServerError::Unavailable(format!(
                "no live Python worker serves model {} right now (restarting)",
                key.0
            ))
        })
    }

    /// Stops every worker (they exit when their socket closes).
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let workers = self.workers();
        join_all(workers.iter().map(|w| w.stop(self.stop_timeout))).await;
    }
}

async fn load_into(
    worker: &Worker,
    key: &ModelKey,
    message: &[u8],
) -> Result<Bytes, MLServerError> {
    let reply = worker.call(frame::LOAD, message).await?;
    worker.mark_loaded(key.clone(), true);
    Ok(reply)
}

/// Loads and unloads that landed while a replacement replayed, before it was
/// in the rotation, reach it now (later ones find it in the rotation).
async fn reconcile(pool: &Pool, worker: &Worker, attempted: &std::collections::HashSet<ModelKey>) {
    let (missing, extra) = {
        let models = pool.models.lock().expect("models lock");
        let missing: Vec<(ModelKey, Vec<u8>)> = models
            .iter()
            .filter(|(k, _)| !worker.has(k) && !attempted.contains(*k))
            .map(|(k, (_, m))| (k.clone(), m.clone()))
            .collect();
        let extra: Vec<ModelKey> = worker
            .loaded()
            .into_iter()
            .filter(|k| !models.contains_key(k))
            .collect();
        (missing, extra)
    };
    for (key, message) in missing {
        if let Err(e) = load_into(worker, &key, &message).await {
            error!(model = %key.0, "loading into the replacement worker failed: {e}");
        }
    }
    for key in extra {
        worker.mark_loaded(key.clone(), false);
        let body = serde_json::json!({"name": key.0, "version": key.1}).to_string();
        if let Err(e) = worker.call(frame::UNLOAD, body.as_bytes()).await {
            warn!(model = %key.0, "unload in the replacement worker failed: {e}");
        }
    }
}

/// Watches the worker in `slot`; when it dies, starts a replacement, loads
/// the pool's models into it and puts it in the rotation.
async fn supervise(pool: Arc<Pool>, slot: usize, mut worker: Arc<Worker>) {
    // Workers that die young (a model whose load kills the process) are
    // replaced ever more slowly, up to 30 s apart, instead of in a tight loop.
    let mut started = std::time::Instant::now();
    let mut backoff = Duration::ZERO;
    loop {
        worker.exited().await;
        if pool.closed.load(Ordering::Acquire) {
            return;
        }
        backoff = if started.elapsed() < Duration::from_secs(30) {
            (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(30))
        } else {
            Duration::ZERO
        };
        error!(
            pid = worker.pid,
            "Python worker died; starting a replacement in {backoff:?} and reloading its models"
        );
        tokio::time::sleep(backoff).await;
        let mut delay = Duration::from_millis(200);
        let replacement = loop {
            if pool.closed.load(Ordering::Acquire) {
                return;
            }
            match Worker::spawn(&pool.spec).await {
                Ok(w) => break w,
                Err(e) => {
                    error!(
                        "could not start a replacement Python worker: {e}; retrying in {delay:?}"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        };
        // Replay loads until the worker has every model of the pool (a load
        // may land while we replay). A model that fails to reload is not
        // retried: the other workers (if any) serve it, and it reports not
        // ready otherwise.
        let mut attempted = std::collections::HashSet::new();
        loop {
            let missing: Vec<(ModelKey, Vec<u8>)> = pool
                .models
                .lock()
                .expect("models lock")
                .iter()
                .filter(|(k, _)| !replacement.has(k) && !attempted.contains(*k))
                .map(|(k, (_, m))| (k.clone(), m.clone()))
                .collect();
            if missing.is_empty() || !replacement.alive() {
                break;
            }
            for (key, message) in missing {
                if let Err(e) = load_into(&replacement, &key, &message).await {
                    error!(model = %key.0, "reloading into the replacement worker failed: {e}");
                }
                attempted.insert(key);
            }
        }
        if pool.closed.load(Ordering::Acquire) {
            replacement.stop(pool.stop_timeout).await;
            return;
        }
        info!(pid = replacement.pid, "replacement Python worker ready");
        pool.workers.write().expect("workers lock")[slot] = replacement.clone();
        reconcile(&pool, &replacement, &attempted).await;
        worker = replacement;
        started = std::time::Instant::now();
    }
}
