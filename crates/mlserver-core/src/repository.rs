//! Loading and unloading models found on disk: MLServer's model repository.

use crate::ServingError;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::FutureExt;
use mlserver_runtime::{
    metadata_from_settings, panic_message, MLServerError, ModelContext, ModelSource,
    RuntimeRegistry,
};
use mlserver_settings::{EnvSource, ModelSettings, RuntimeSecurity};
use mlserver_types::{ModelState, RepositoryIndexItem};
use tracing::{error, info, warn};

use crate::batching::{batching_enabled, BatchedModel, Batcher};
use crate::cache::ResponseCache;
use crate::cloudevents::CloudEvents;
use crate::executor::{Executor, PredictCost};
use crate::metrics::ServerMetrics;
use crate::pipeline::LoadedModel;
use crate::registry::{ModelRegistry, SlotState, Version};
use crate::statistics::Statistics;

/// How loaded models are served: shared by every model of a server.
#[derive(Clone)]
pub struct Serving {
    /// Where predictions run.
    pub executor: Arc<Executor>,
    /// The server's response cache (`cache_enabled`); models opt in.
    pub cache: Option<Arc<ResponseCache>>,
    /// The server's metrics (load counters, per-model histograms), unless off.
    pub metrics: Option<Arc<ServerMetrics>>,
    /// MLServer's CloudEvents headers on every inference (`None`: none).
    pub cloudevents: Option<Arc<CloudEvents>>,
    /// `strict_inputs`: every model checks requests against its metadata.
    pub strict_inputs: bool,
    /// `inference_timeout`: how long an inference may take, unless the
    /// model's settings say otherwise (`None`: as long as it takes).
    pub inference_timeout: Option<Duration>,
    /// Which implementations may load (the ODH fork's production mode).
    pub security: Arc<RuntimeSecurity>,
}

impl Default for Serving {
    /// Inline predictions, no cache, no metrics.
    fn default() -> Self {
        Serving {
            executor: Arc::new(Executor::inline()),
            cache: None,
            cloudevents: None,
            strict_inputs: false,
            metrics: None,
            inference_timeout: None,
            security: Arc::default(),
        }
    }
}

/// How long an unload waits for in-flight requests before unloading anyway.
const UNLOAD_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Refuses names that read as paths. Models are found by the `name` in
/// their settings, never by joining a name onto a folder, but callers do
/// build paths from names (ModelMesh's adapter writes
/// `_mlserver_models/<name>/`), so a name like `../x` is an error, not a
/// lookup.
fn check_model_name(name: &str) -> Result<(), ServingError> {
    let path_like =
        name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']);
    if path_like {
        return Err(ServingError::bad_request(format!(
            "invalid model name {name:?}: a name must not be empty, '.', '..', or contain '/', '\\' or NUL"
        )));
    }
    Ok(())
}

/// The models folder, the runtimes that can serve it, and what is loaded.
pub struct ModelRepository {
    root: PathBuf,
    env: Arc<EnvSource>,
    runtimes: RuntimeRegistry,
    registry: Arc<ModelRegistry>,
    serving: Serving,
    /// Serialises load/unload per model name, so a reload racing an unload
    /// cannot leave a half-registered model behind.
    name_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Set once, before serving: models come from it, not from the folder.
    source: std::sync::OnceLock<Arc<dyn ModelSource>>,
}

/// The models a scan found, by name, registered as loading
/// ([`ModelRepository::find_all`]).
#[derive(Debug, Default)]
pub struct FoundModels(BTreeMap<String, Vec<ModelSettings>>);

impl ModelRepository {
    /// A repository loading `settings`' models from its models folder into
    /// `registry`, with `runtimes` and how models are served.
    pub fn new(
        root: PathBuf,
        env: Arc<EnvSource>,
        runtimes: RuntimeRegistry,
        registry: Arc<ModelRegistry>,
        serving: Serving,
    ) -> Self {
        ModelRepository {
            root,
            env,
            runtimes,
            registry,
            serving,
            name_locks: Mutex::default(),
            source: std::sync::OnceLock::new(),
        }
    }

    /// Takes its models from `source` rather than from its folder (call it
    /// before the server starts). A second source is refused.
    pub fn use_source(&self, source: Arc<dyn ModelSource>) -> Result<(), ServingError> {
        self.source.set(source).map_err(|_| {
            ServingError::Runtime(MLServerError::internal(
                "the model repository already has a source",
            ))
        })
    }

    /// The registry it loads into.
    pub fn registry(&self) -> &Arc<ModelRegistry> {
        &self.registry
    }

    fn name_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.name_locks.lock().expect("name locks");
        locks.entry(name.to_owned()).or_default().clone()
    }

    /// Every model there is: the source's list, else everything on disk,
    /// scanned off the reactor. Settings files that do not parse keep the
    /// server not ready until a scan finds them fixed (or gone).
    async fn scan(&self) -> Result<mlserver_settings::ScanResult, ServingError> {
        if let Some(source) = self.source.get() {
            return Ok(mlserver_settings::ScanResult {
                models: source.list().await?,
                errors: Vec::new(),
            });
        }
        let root = self.root.clone();
        let env = self.env.clone();
        let scan = tokio::task::spawn_blocking(move || mlserver_settings::scan_models(&root, &env))
            .await
            .unwrap_or_else(|e| {
                error!("model repository scan failed: {e}");
                mlserver_settings::ScanResult::default()
            });
        self.registry.set_invalid_settings(scan.errors.len());
        Ok(scan)
    }

    /// Every model on disk, each registered as loading: from then on a
    /// client asking for one hears that it is not ready yet (400, which
    /// clients retry, as from MLServer, whose start lists the models before
    /// it listens), never that it does not exist. The server calls this
    /// before it answers anyone, and [`ModelRepository::load_found`] after.
    /// A source that fails leaves the server up with no models, logged.
    pub async fn find_all(&self) -> FoundModels {
        let scan = match self.scan().await {
            Ok(scan) => scan,
            Err(e) => {
                error!("the model repository could not list its models: {e}");
                return FoundModels::default();
            }
        };
        for (path, reason) in &scan.errors {
            error!("skipping {}: {reason}", path.display());
        }
        let mut by_name: BTreeMap<String, Vec<ModelSettings>> = BTreeMap::new();
        for settings in scan.models {
            let version = settings.version().map(str::to_owned);
            self.registry.begin_load(&settings.name, &version);
            by_name
                .entry(settings.name.clone())
                .or_default()
                .push(settings);
        }
        FoundModels(by_name)
    }

    /// Loads the models [`ModelRepository::find_all`] found, concurrently.
    /// Failures are logged and recorded per model; they do not stop the
    /// others.
    pub async fn load_found(&self, found: FoundModels) -> Vec<ServingError> {
        let loads = found.0.into_iter().map(|(name, versions)| async move {
            let lock = self.name_lock(&name);
            let _guard = lock.lock().await;
            self.load_versions(versions).await
        });
        join_all(loads)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect()
    }

    /// Loads every model found on disk ([`ModelRepository::find_all`], then
    /// [`ModelRepository::load_found`]).
    pub async fn load_all(&self) -> Vec<ServingError> {
        let found = self.find_all().await;
        self.load_found(found).await
    }

    /// (Re)loads every version of `name` found on disk and unloads versions
    /// no longer there. Returns once all are ready (or failed).
    pub async fn load(&self, name: &str) -> Result<(), ServingError> {
        check_model_name(name)?;
        let lock = self.name_lock(name);
        let _guard = lock.lock().await;
        let found: Vec<ModelSettings> = match self.source.get() {
            Some(source) => source.find(name).await?,
            None => self
                .scan()
                .await?
                .models
                .into_iter()
                .filter(|m| m.name == name)
                .collect(),
        };
        if found.is_empty() {
            // A failed load of it, whose files are gone since, goes too.
            for version in self.registry.versions(name) {
                self.registry.forget_failed(name, &version);
            }
            return Err(ServingError::ModelNotFound(name.to_owned()));
        }
        let on_disk: Vec<Version> = found
            .iter()
            .map(|m| m.version().map(str::to_owned))
            .collect();
        let result = self.load_versions(found).await;
        for stale in self.registry.versions(name) {
            if !on_disk.contains(&stale) {
                info!(model = name, version = ?stale, "unloading version no longer on disk");
                self.unload_version(name, &stale).await;
            }
        }
        result
    }

    /// Loads one model from settings given directly (not from disk).
    pub async fn load_settings(&self, settings: ModelSettings) -> Result<(), ServingError> {
        let lock = self.name_lock(&settings.name);
        let _guard = lock.lock().await;
        self.load_version(settings).await
    }

    async fn load_versions(&self, versions: Vec<ModelSettings>) -> Result<(), ServingError> {
        let results = join_all(versions.into_iter().map(|s| self.load_version(s))).await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(drop)
    }

    async fn load_version(&self, settings: ModelSettings) -> Result<(), ServingError> {
        let name = settings.name.clone();
        let version = settings.version().map(str::to_owned);
        self.registry.begin_load(&name, &version);
        let started = Instant::now();
        let result = match self.instantiate(settings).await {
            // Its custom endpoints, before it serves: a clash fails the load.
            Ok(model) => match self.registry.custom_routes().claim(
                &name,
                version.as_deref(),
                model.runtime.custom_routes(),
            ) {
                Ok(()) => Ok(model),
                Err(e) => {
                    let _ = model.runtime.unload().await;
                    Err(e)
                }
            },
            Err(e) => Err(e),
        };
        if let Some(m) = &self.serving.metrics {
            m.observe_load(&name, version.as_deref(), result.is_ok());
        }
        match result {
            Ok(model) => {
                let old = self.registry.finish_load(&name, &version, Arc::new(model));
                self.update_loaded_gauge();
                if let Some(old) = old {
                    unload_instance(old).await;
                }
                info!(
                    model = %name,
                    version = version.as_deref().unwrap_or(""),
                    "Loaded model {name} in {:.1?}",
                    started.elapsed()
                );
                Ok(())
            }
            Err(e) => {
                error!(model = %name, version = version.as_deref().unwrap_or(""), "Couldn't load model {name}: {e}");
                self.registry.fail_load(&name, &version, e.to_string());
                self.update_loaded_gauge();
                Err(e)
            }
        }
    }

    async fn instantiate(&self, settings: ModelSettings) -> Result<LoadedModel, ServingError> {
        let implementation = settings.implementation.clone().ok_or_else(|| {
            ServingError::bad_request(format!(
                "model {} has no `implementation` in its model-settings (or MLSERVER_MODEL_IMPLEMENTATION)",
                settings.name
            ))
        })?;
        let parameters = settings.parameters.as_ref();
        self.serving
            .security
            .check_model(
                &implementation,
                parameters.and_then(|p| p.environment_tarball.as_deref()),
                parameters.and_then(|p| p.environment_path.as_deref()),
            )
            .map_err(|e| {
                warn!(model = %settings.name, "Rejected untrusted model implementation '{implementation}'.");
                ServingError::bad_request(e.to_string())
            })?;
        let factory = self.runtimes.resolve(&implementation).ok_or_else(|| {
            let known: Vec<&str> = self.runtimes.names().collect();
            ServingError::bad_request(format!(
                "no runtime is registered for implementation '{implementation}' (model {}); registered runtimes: {}",
                settings.name,
                known.join(", ")
            ))
        })?;
        let batch_time = if batching_enabled(settings.max_batch_size, settings.max_batch_time) {
            Some(
                Duration::try_from_secs_f64(settings.max_batch_time).map_err(|_| {
                    ServingError::bad_request(format!(
                        "model {}: max_batch_time {} is not a valid number of seconds",
                        settings.name, settings.max_batch_time
                    ))
                })?,
            )
        } else {
            None
        };
        let settings = Arc::new(settings);
        let mut ctx = ModelContext::new(settings.clone());
        if let Some(m) = &self.serving.metrics {
            ctx = ctx.with_metrics_registry(m.registry().clone());
        }
        let load_ctx = ctx.clone();
        let runtime = AssertUnwindSafe(factory(ctx))
            .catch_unwind()
            .await
            .map_err(|p| {
                ServingError::internal(format!(
                    "runtime panicked while loading: {}",
                    panic_message(&*p)
                ))
            })??;
        let metadata = match AssertUnwindSafe(runtime.metadata()).catch_unwind().await {
            Ok(Some(m)) => m,
            Ok(None) => metadata_from_settings(&settings),
            Err(p) => {
                return Err(ServingError::internal(format!(
                    "runtime panicked in metadata(): {}",
                    panic_message(&*p)
                )))
            }
        };
        let runtime_checks = runtime.checks_inputs();
        let cost = Arc::new(PredictCost::default());
        let statistics = Arc::new(Statistics::default());
        let batcher = batch_time.map(|max_batch_time| {
            info!(
                model = %settings.name,
                "adaptive batching on: up to {} requests or {:?}",
                settings.max_batch_size,
                max_batch_time
            );
            Batcher::spawn(
                BatchedModel {
                    name: settings.name.clone(),
                    runtime: runtime.clone(),
                    executor: self.serving.executor.clone(),
                    cost: cost.clone(),
                    statistics: statistics.clone(),
                },
                settings.max_batch_size,
                max_batch_time,
                self.serving
                    .metrics
                    .as_ref()
                    .map(|m| m.batch_queue(&settings.name, settings.version())),
            )
        });
        let cache = self
            .serving
            .cache
            .clone()
            .filter(|_| settings.cache_enabled);
        // The model's own setting wins, 0 (or less) turning it off.
        let timeout = match settings.inference_timeout {
            Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
            Some(_) => None,
            None => self.serving.inference_timeout,
        };
        Ok(LoadedModel::new(
            settings,
            runtime,
            metadata,
            self.serving.executor.clone(),
            cost,
            batcher,
            cache,
        )
        .with_statistics(statistics)
        .with_rules(
            self.serving.strict_inputs || runtime_checks,
            self.serving.cloudevents.clone(),
        )
        .with_timeout(timeout)
        .with_index_reason(load_ctx.index_reason().unwrap_or_default()))
    }

    fn update_loaded_gauge(&self) {
        if let Some(m) = &self.serving.metrics {
            m.set_loaded(self.registry.ready_count());
        }
    }

    /// Unloads every version of `name`.
    pub async fn unload(&self, name: &str) -> Result<(), ServingError> {
        check_model_name(name)?;
        let lock = self.name_lock(name);
        let _guard = lock.lock().await;
        let versions = self.registry.versions(name);
        if versions.is_empty() {
            return Err(ServingError::ModelNotFound(name.to_owned()));
        }
        for version in versions {
            self.unload_version(name, &version).await;
        }
        info!(model = name, "Unloaded all versions of model {name}");
        Ok(())
    }

    async fn unload_version(&self, name: &str, version: &Version) {
        if let Some(model) = self.registry.begin_unload(name, version) {
            self.update_loaded_gauge();
            unload_instance(model).await;
            if let Some(m) = &self.serving.metrics {
                m.observe_unload(name, version.as_deref());
            }
        }
        self.registry.remove(name, version);
    }

    /// Unloads everything (shutdown).
    pub async fn unload_all(&self) {
        let names: std::collections::BTreeSet<String> = self
            .registry
            .snapshot()
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        join_all(names.iter().map(|n| self.unload(n))).await;
    }

    /// Forgets the failed loads whose settings are no longer on disk, as
    /// MLServer does (its index lists what is on disk): an agent that
    /// deletes a model's folder after a failed load (Seldon Core's, KServe's
    /// TrainedModel agent) leaves nothing behind, and the server is ready
    /// again. A name being loaded or unloaded right now is left alone.
    fn forget_failed_gone(&self, on_disk: &[ModelSettings]) {
        for (name, version, slot) in self.registry.snapshot() {
            let gone = !on_disk
                .iter()
                .any(|m| m.name == name && m.version() == version.as_deref());
            if !gone || !matches!(slot.state, SlotState::Failed(_)) {
                continue;
            }
            let lock = self.name_lock(&name);
            let Ok(_guard) = lock.try_lock() else {
                continue;
            };
            if self.registry.forget_failed(&name, &version) {
                info!(model = %name, "forgetting the failed load of {name}: its settings are gone");
            }
        }
    }

    /// The repository index: every model on disk or registered, with state.
    /// Fails when the source does.
    pub async fn index(&self, ready_only: bool) -> Result<Vec<RepositoryIndexItem>, ServingError> {
        let scan = self.scan().await?;
        self.forget_failed_gone(&scan.models);
        let mut items: BTreeMap<(String, Version), (ModelState, String)> = BTreeMap::new();
        for m in &scan.models {
            items.insert(
                (m.name.clone(), m.version().map(str::to_owned)),
                (ModelState::Unavailable, String::new()),
            );
        }
        for (path, reason) in &scan.errors {
            let name = path
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            items.entry((name, None)).or_insert((
                ModelState::Unavailable,
                format!("invalid {}: {reason}", path.display()),
            ));
        }
        for (name, version, slot) in self.registry.snapshot() {
            items.insert((name, version), slot.index_state());
        }
        Ok(items
            .into_iter()
            .filter(|(_, (state, _))| !ready_only || *state == ModelState::Ready)
            .map(|((name, version), (state, reason))| RepositoryIndexItem {
                name,
                version,
                state,
                reason,
            })
            .collect())
    }
}

/// Waits (bounded) for in-flight requests to release the instance, then
/// calls the runtime's `unload`.
async fn unload_instance(model: Arc<LoadedModel>) {
    let deadline = Instant::now() + UNLOAD_DRAIN_TIMEOUT;
    while Arc::strong_count(&model) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let name = model.name().to_owned();
    match AssertUnwindSafe(model.runtime.unload())
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(model = %name, "unload failed: {e}"),
        Err(p) => warn!(model = %name, "runtime panicked in unload: {}", panic_message(&*p)),
    }
}
