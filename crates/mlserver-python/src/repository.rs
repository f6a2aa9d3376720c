//! MLServer's `model_repository_implementation`: a user's `ModelRepository`
//! class (its `list()` and `find(name)`) as the source of the server's
//! models, run in a worker process of its own (the worker's `repository.py`).
//!
//! MLServer runs the class in its own process; here it gets one worker,
//! started at first use and again if it dies, so a repository that blocks
//! or crashes costs its calls, not the server.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use mlserver_runtime::{ErrorStatus, MLServerError, ModelSource};
use mlserver_settings::{EnvSource, ModelSettings};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::worker::Worker;
use crate::{frame, worker, Pools};

pub(crate) struct PythonRepository {
    pools: Arc<Pools>,
    implementation: String,
    args: Map<String, Value>,
    root: String,
    env: Arc<EnvSource>,
    worker: tokio::sync::Mutex<Option<Arc<Worker>>>,
}

/// One model of the class's answer: its `ModelSettings` as set, and the
/// file they were read from (MLServer's `_source`).
#[derive(Deserialize)]
struct Described {
    settings: Map<String, Value>,
    source: Option<String>,
}

impl PythonRepository {
    pub(crate) fn new(
        pools: Arc<Pools>,
        implementation: &str,
        args: Map<String, Value>,
        root: &Path,
        env: Arc<EnvSource>,
    ) -> Self {
        PythonRepository {
            pools,
            implementation: implementation.to_owned(),
            args,
            root: root.display().to_string(),
            env,
            worker: tokio::sync::Mutex::new(None),
        }
    }

    /// The repository's worker, started when there is none alive.
    async fn worker(&self) -> Result<Arc<Worker>, MLServerError> {
        let mut slot = self.worker.lock().await;
        if let Some(worker) = slot.as_ref().filter(|w| w.alive()) {
            return Ok(worker.clone());
        }
        let spec = worker::Spawn {
            // Its files would outlive nothing: it records no metrics.
            metrics_dir: None,
            ..self.pools.spawn_spec(self.pools.config.python.clone())?
        };
        let worker = Worker::spawn(&spec).await?;
        *slot = Some(worker.clone());
        Ok(worker)
    }

    async fn ask(&self, op: &str, name: &str) -> Result<Vec<ModelSettings>, MLServerError> {
        let message = serde_json::json!({
            "op": op,
            "name": name,
            "implementation": self.implementation,
            "root": self.root,
            "args": self.args,
        });
        let reply = self
            .worker()
            .await?
            .call(frame::REPOSITORY, message.to_string().as_bytes())
            .await
            .map_err(|e| self.failed(op, e))?;
        let described: Vec<Described> = serde_json::from_slice(&reply).map_err(|e| {
            MLServerError::internal(format!(
                "model_repository_implementation {}: unreadable answer to {op}(): {e}",
                self.implementation
            ))
        })?;
        described
            .into_iter()
            .map(|d| {
                let source = d.source.as_deref().map(Path::new);
                ModelSettings::from_repository(d.settings, source, &self.env).map_err(|e| {
                    MLServerError::internal(format!(
                        "model_repository_implementation {}: invalid model settings from {op}(): {e}",
                        self.implementation
                    ))
                })
            })
            .collect()
    }

    /// The class's error, named: its status stays (an `MLServerError` the
    /// class raised with a status answers with it, as under MLServer).
    fn failed(&self, op: &str, error: MLServerError) -> MLServerError {
        let message = format!(
            "model_repository_implementation {} failed in {op}(): {error}",
            self.implementation
        );
        match error.status() {
            ErrorStatus::Internal => MLServerError::internal(message),
            _ => error,
        }
    }
}

impl ModelSource for PythonRepository {
    fn list(&self) -> BoxFuture<'_, Result<Vec<ModelSettings>, MLServerError>> {
        self.ask("list", "").boxed()
    }

    fn find<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ModelSettings>, MLServerError>> {
        async move {
            match self.ask("find", name).await {
                // MLServer's repositories raise `ModelNotFound` (404): the
                // server says so in its own words.
                Err(e) if e.status() == ErrorStatus::NotFound => Ok(Vec::new()),
                other => other,
            }
        }
        .boxed()
    }
}
