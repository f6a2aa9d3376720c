//! MLServer's Python runtimes, unchanged, behind the Rust server.
//!
//! An `implementation` that no Rust runtime registers (`models.MyModel`,
//! `mlserver_sklearn.SKLearnModel`) is a Python import path. Such models run
//! in worker processes started by the server with the interpreter of the
//! active environment (or `MLSERVER_PYTHON`, or the model's
//! `parameters.environment_path` / `environment_tarball`): `parallel_workers`
//! processes per environment, every model of an environment in each of them.
//! The Python side (the package `python/mlserver_rs_worker/`, embedded in
//! the binary) uses the real `mlserver` package, so user code sees exactly
//! the objects it sees under MLServer. Server and workers speak over a Unix
//! socket with the V2 protobuf messages and raw tensor bytes; calls are
//! multiplexed.
//!
//! ```no_run
//! # fn settings() -> mlserver_settings::Settings { unimplemented!() }
//! # let env = mlserver_settings::EnvSource::from_process();
//! let mut runtimes = mlserver_runtime::RuntimeRegistry::new();
//! let config = mlserver_python::PythonConfig::from_settings(&settings(), &env);
//! mlserver_python::install(&mut runtimes, config);
//! ```

mod environment;
mod frame;
mod metrics;
mod pool;
mod repository;
mod shm;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use mlserver_proto::convert::{decode_infer_response, encode_infer_request};
use mlserver_proto::inference::ModelInferResponse;
use mlserver_runtime::{
    async_trait, CustomRequest, CustomResponse, CustomRoute, DynModel, MLModel, MLServerError,
    ModelContext, RuntimeFactory, RuntimeRegistry, StreamingModel,
};
use mlserver_settings::{EnvSource, ModelSettings, Settings};
use mlserver_types::{InferenceRequest, InferenceResponse, MetadataModelResponse};
use prost::Message;
use tracing::info;

use crate::pool::{ModelKey, Pool};
use crate::worker::Lent;

/// The worker package's modules, written next to the sockets at first use.
const WORKER_PACKAGE: &str = "mlserver_rs_worker";
/// `(file name, source)` of each of the package's modules.
macro_rules! worker_modules {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../python/mlserver_rs_worker/", $name)))),*]
    };
}
const WORKER_MODULES: &[(&str, &str)] = worker_modules![
    "__init__.py",
    "__main__.py",
    "calls.py",
    "connection.py",
    "custom.py",
    "fast.py",
    "mlserver_api.py",
    "repository.py",
    "shm.py",
    "sklearn_handover.py",
    "sklearn_probes.py",
    "tensors.py",
    "wire.py",
];

/// How Python workers are started.
#[derive(Debug, Clone)]
pub struct PythonConfig {
    /// The interpreter of the default environment.
    pub python: PathBuf,
    /// Worker processes per environment (`parallel_workers`; 0 means 1:
    /// Python code always runs out of the server process).
    pub workers: usize,
    /// Put first on the workers' `sys.path`, as `mlserver start` does.
    pub models_root: PathBuf,
    /// Where `environment_tarball`s are unpacked (`environments_dir`).
    pub environments_dir: PathBuf,
    /// How long a new worker may take to connect back (120 s with
    /// [`PythonConfig::from_settings`]).
    pub start_timeout: Duration,
    /// `parallel_workers_timeout`: how long a stopping worker may take.
    pub stop_timeout: Duration,
    /// Names of the Rust runtimes, quoted when an import fails.
    pub rust_runtimes: Vec<String>,
    /// The `mlserver` logger logs at DEBUG in the workers (`debug`).
    pub debug: bool,
    /// How long a worker goes on reading its socket after answering, when
    /// requests arrive closer together than that (`worker_busy_poll_us`;
    /// zero: never).
    pub busy_poll: Duration,
    /// The ODH fork's production mode: the models folder and the working
    /// directory are not put on the workers' `sys.path`, and a model's
    /// folder is not added when its class is imported (MLServer's
    /// `ModelSettings.implementation` adds it): classes come from the
    /// image's environment only.
    pub production: bool,
    /// The workers' fast paths (see the worker's `fast.py`): on unless
    /// `MLSERVER_RS_FAST_PATHS=0`, which leaves MLServer's own steps only
    /// (and tensors inside the socket's frames), to rule the fast paths out
    /// when an answer looks wrong.
    pub fast_paths: bool,
    /// Bytes of each of a worker's two shared memory areas (tensors to it,
    /// tensors from it); 0: none, tensors go inside the socket's frames.
    /// 64 MiB with [`PythonConfig::from_settings`]; backed only where used.
    pub shared_memory: usize,
    /// MLServer's `metrics_dir` with `parallel_workers` above 0 (as
    /// MLServer uses it): the workers' `prometheus_client` runs in
    /// multiprocess mode and writes its `*_{pid}.db` files there, removed
    /// when the worker is gone. `/metrics` still asks the workers
    /// themselves; the files are for what reads them beside the server.
    pub metrics_dir: Option<PathBuf>,
}

impl PythonConfig {
    /// From server settings; the interpreter is `MLSERVER_PYTHON`, else the
    /// active virtualenv's or conda environment's `python`, else the
    /// `python` beside the server's own executable (the wheel installs it
    /// into a venv's `bin/`: `venv/bin/mlserver-rs` serves that venv's models
    /// without the venv being activated), else `python3`.
    pub fn from_settings(settings: &Settings, env: &EnvSource) -> Self {
        let python = env
            .get("MLSERVER_PYTHON")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("VIRTUAL_ENV").map(|v| PathBuf::from(v).join("bin/python"))
            })
            .or_else(|| {
                std::env::var_os("CONDA_PREFIX").map(|v| PathBuf::from(v).join("bin/python"))
            })
            .or_else(python_beside_executable)
            .unwrap_or_else(|| PathBuf::from("python3"));
        PythonConfig {
            python,
            workers: settings.parallel_workers.max(1),
            models_root: settings.model_repository_root.clone(),
            environments_dir: settings.environments_dir.clone(),
            start_timeout: Duration::from_secs(120),
            stop_timeout: Duration::from_secs(settings.parallel_workers_timeout.max(1)),
            rust_runtimes: Vec::new(),
            debug: settings.debug,
            busy_poll: Duration::from_micros(settings.worker_busy_poll_us),
            production: false,
            fast_paths: env.get("MLSERVER_RS_FAST_PATHS") != Some("0"),
            shared_memory: 64 << 20,
            metrics_dir: (settings.parallel_workers > 0).then(|| settings.metrics_dir.clone()),
        }
    }

    /// `MLSERVER_ENV_TARBALL`, as MLServer's image activates it before the
    /// server starts: a packed environment (conda-pack) found at that path
    /// is unpacked under `environments_dir` (once per content) and becomes
    /// the default environment of every Python model. Returns its
    /// interpreter, or `None` when the variable is unset or names no file
    /// (the images set it to `/mnt/models/environment.tar.gz` whether or not
    /// a model ships one).
    pub fn activate_env_tarball(
        &mut self,
        env: &EnvSource,
    ) -> Result<Option<PathBuf>, MLServerError> {
        let Some(tarball) = env.get("MLSERVER_ENV_TARBALL").filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let tarball = PathBuf::from(tarball);
        if !tarball.is_file() {
            tracing::debug!(
                "MLSERVER_ENV_TARBALL: no environment at {}",
                tarball.display()
            );
            return Ok(None);
        }
        let python = environment::unpack("MLSERVER_ENV_TARBALL", &tarball, &self.environments_dir)?;
        self.python = python.clone();
        Ok(Some(python))
    }
}

/// `python` in the folder of the running executable, if there is one.
fn python_beside_executable() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let python = exe.parent()?.join("python");
    python.is_file().then_some(python)
}

/// Serves Python import paths from `runtimes`' fallback: registered Rust
/// runtimes keep priority.
pub fn install(runtimes: &mut RuntimeRegistry, mut config: PythonConfig) -> Python {
    config.rust_runtimes = runtimes.names().map(str::to_owned).collect();
    let pools = Arc::new(Pools::new(config));
    let python = Python {
        pools: pools.clone(),
    };
    runtimes.set_fallback(Arc::new(move |implementation: &str| {
        if !is_import_path(implementation) {
            return None;
        }
        let pools = pools.clone();
        let implementation = implementation.to_owned();
        let factory: RuntimeFactory = Arc::new(move |ctx: ModelContext| {
            let pools = pools.clone();
            let implementation = implementation.clone();
            async move {
                PythonModel::load_in(pools, &implementation, ctx)
                    .await
                    .map(|m| Arc::new(m) as DynModel)
            }
            .boxed()
        });
        Some(factory)
    }));
    python
}

/// The Python side [`install`] set up, for what else runs in its workers.
#[derive(Clone)]
pub struct Python {
    pools: Arc<Pools>,
}

impl Python {
    /// MLServer's `model_repository_implementation`: the user's
    /// `ModelRepository` class, made as MLServer's factory makes it
    /// (`cls(root=model_repository_root, **model_repository_implementation_args)`)
    /// in a worker process of its own, asked for the server's models.
    pub fn model_source(
        &self,
        implementation: &str,
        args: serde_json::Map<String, serde_json::Value>,
        root: &std::path::Path,
        env: Arc<EnvSource>,
    ) -> Arc<dyn mlserver_runtime::ModelSource> {
        Arc::new(repository::PythonRepository::new(
            self.pools.clone(),
            implementation,
            args,
            root,
            env,
        ))
    }
}

/// `module.Class`, `package.module.Class`: dotted Python identifiers.
fn is_import_path(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            let mut chars = p.chars();
            chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
                && chars.all(|c| c.is_alphanumeric() || c == '_')
        })
}

/// The pools, one per environment, started with their first model and
/// stopped with their last.
struct Pools {
    config: PythonConfig,
    /// The worker script and the sockets live here while the server runs.
    runtime_dir: std::sync::OnceLock<Result<tempfile::TempDir, String>>,
    pools: std::sync::Mutex<HashMap<PoolKey, PoolEntry>>,
    /// The workers' metrics are on the server's `/metrics` (set up with the
    /// first model, which brings the server's registry).
    metrics_exposed: std::sync::Once,
}

/// Which pool serves a model: its environment's interpreter and, as
/// MLServer's `inference_pool_gid`, a group of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    python: PathBuf,
    /// `None`: the environment's shared pool.
    group: Option<String>,
    /// How many workers it runs.
    workers: usize,
}

impl PoolKey {
    /// MLServer's rules: `parameters.inference_pool_gid` names a dedicated
    /// pool (shared by the models that name the same one, per environment);
    /// `autogenerate_inference_pool_gid` gives the model a pool of its own;
    /// the deprecated model-level `parallel_workers <= 0` takes the model
    /// out of the pool, where MLServer runs it in the server process: Python
    /// cannot run inside this server, so it gets a single worker of its own
    /// (the guide's `MLSERVER_MODEL_PARALLEL_WORKERS=0` for debugging: one
    /// process, its output alone).
    fn for_model(python: PathBuf, settings: &ModelSettings, workers: usize) -> Self {
        let parameters = settings.parameters.as_ref();
        let model = || {
            format!(
                "model:{}:{}",
                settings.name,
                settings.version().unwrap_or_default()
            )
        };
        let (group, workers) = if settings.parallel_workers.is_some_and(|n| n <= 0) {
            (Some(model()), 1)
        } else if let Some(gid) = parameters.and_then(|p| p.inference_pool_gid.clone()) {
            (Some(format!("gid:{gid}")), workers)
        } else if parameters.is_some_and(|p| p.autogenerate_inference_pool_gid) {
            (Some(model()), workers)
        } else {
            (None, workers)
        };
        PoolKey {
            python,
            group,
            workers,
        }
    }
}

impl Pools {
    fn new(config: PythonConfig) -> Self {
        Pools {
            config,
            runtime_dir: std::sync::OnceLock::new(),
            pools: std::sync::Mutex::new(HashMap::new()),
            metrics_exposed: std::sync::Once::new(),
        }
    }

    /// The pools that have started.
    fn started(&self) -> Vec<Arc<Pool>> {
        self.pools
            .lock()
            .expect("pools lock")
            .values()
            .filter_map(|e| e.pool.get().cloned())
            .collect()
    }

    fn runtime_dir(&self) -> Result<PathBuf, MLServerError> {
        let dir = self.runtime_dir.get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("mlserver-rs-")
                .tempdir()
                .map_err(|e| format!("cannot create a folder for the Python workers: {e}"))?;
            let package = dir.path().join(WORKER_PACKAGE);
            std::fs::create_dir(&package)
                .and_then(|()| {
                    WORKER_MODULES
                        .iter()
                        .try_for_each(|(name, source)| std::fs::write(package.join(name), source))
                })
                .map_err(|e| format!("cannot write the Python worker's modules: {e}"))?;
            Ok(dir)
        });
        dir.as_ref()
            .map(|d| d.path().to_owned())
            .map_err(|e| MLServerError::internal(e.clone()))
    }

    /// How a worker of the interpreter `python` starts.
    fn spawn_spec(&self, python: PathBuf) -> Result<worker::Spawn, MLServerError> {
        let dir = self.runtime_dir()?;
        let mut python_path = Vec::new();
        if !self.config.production {
            python_path.push(self.config.models_root.clone());
            if let Ok(cwd) = std::env::current_dir() {
                python_path.push(cwd);
            }
        }
        // The worker package's folder, first: `-m` finds it there
        // whatever the models or the environment hold.
        python_path.insert(0, dir.clone());
        Ok(worker::Spawn {
            python,
            module: WORKER_PACKAGE,
            socket_dir: dir,
            fast_paths: self.config.fast_paths,
            shared_memory: self.config.shared_memory,
            python_path,
            start_timeout: self.config.start_timeout,
            debug: self.config.debug,
            busy_poll: self.config.busy_poll,
            production: self.config.production,
            metrics_dir: self.config.metrics_dir.clone(),
        })
    }

    /// The pool for `python`, started if needed; counted until released.
    /// Only the pool's own first users wait for it to start: the map is
    /// locked just to count, so other environments load meanwhile.
    async fn acquire(&self, key: &PoolKey) -> Result<Arc<Pool>, MLServerError> {
        let cell = {
            let mut pools = self.pools.lock().expect("pools lock");
            let entry = pools.entry(key.clone()).or_default();
            entry.users += 1;
            entry.pool.clone()
        };
        let started = cell
            .get_or_try_init(|| async {
                let spec = self.spawn_spec(key.python.clone())?;
                if let Some(group) = &key.group {
                    info!(python = %key.python.display(), group, workers = key.workers, "starting a dedicated Python worker pool");
                }
                Pool::start(spec, key.workers, self.config.stop_timeout).await
            })
            .await
            .cloned();
        if started.is_err() {
            // Not started: the next user tries again.
            self.release(key).await;
        }
        started
    }

    /// Drops one user of the pool; the last one stops its workers.
    async fn release(&self, key: &PoolKey) {
        let closing = {
            let mut pools = self.pools.lock().expect("pools lock");
            match pools.get_mut(key) {
                Some(entry) if entry.users > 1 => {
                    entry.users -= 1;
                    None
                }
                Some(_) => pools.remove(key).and_then(|e| e.pool.get().cloned()),
                None => None,
            }
        };
        if let Some(pool) = closing {
            info!(python = %key.python.display(), "stopping the Python workers: no model left");
            pool.close().await;
        }
    }
}

/// One environment's pool: started once by its first user.
#[derive(Default)]
struct PoolEntry {
    pool: Arc<tokio::sync::OnceCell<Arc<Pool>>>,
    users: usize,
}

/// A model served by Python workers.
pub struct PythonModel {
    pools: Arc<Pools>,
    pool_key: PoolKey,
    pool: Arc<Pool>,
    key: ModelKey,
    /// This instance's load in the pool (see `Pool::unload`).
    generation: u64,
    metadata: Option<MetadataModelResponse>,
    /// The class overrides `predict_stream`.
    streams: bool,
    /// Its `@custom_handler` methods: the route and the method's name.
    custom: Vec<(CustomRoute, String)>,
}

impl PythonModel {
    async fn load_in(
        pools: Arc<Pools>,
        implementation: &str,
        ctx: ModelContext,
    ) -> Result<Self, MLServerError> {
        let settings = ctx.settings();
        pools
            .metrics_exposed
            .call_once(|| metrics::expose(&pools, ctx.metrics_registry()));
        let python = environment::interpreter(&pools.config, settings).await?;
        let pool_key = PoolKey::for_model(python, settings, pools.config.workers);
        let pool = pools.acquire(&pool_key).await?;
        let key: ModelKey = (
            settings.name.clone(),
            settings.version().unwrap_or_default().to_owned(),
        );
        let message = load_message(settings, ctx.handover_requested())?;
        let (generation, loaded) = match pool.load(key.clone(), message).await {
            Ok(loaded) => loaded,
            Err(e) => {
                pools.release(&pool_key).await;
                return Err(explain_load_failure(implementation, &pools.config, e));
            }
        };
        let loaded: LoadReply = serde_json::from_slice(&loaded).unwrap_or_default();
        if let Some(handover) = loaded.handover {
            ctx.offer_handover(Ok(bytes::Bytes::from(handover.get().to_owned())));
        } else if let Some(reason) = loaded.no_handover {
            ctx.offer_handover(Err(reason));
        }
        let streams = loaded.streams;
        let custom = loaded
            .custom
            .into_iter()
            .map(|h| (CustomRoute::new(&h.method, &h.path), h.handler))
            .collect();
        let metadata = match pool
            .call(
                &key,
                frame::METADATA,
                serde_json::json!({"name": key.0, "version": key.1})
                    .to_string()
                    .as_bytes(),
            )
            .await
        {
            Ok(body) => serde_json::from_slice::<MetadataModelResponse>(&body).ok(),
            Err(_) => None,
        };
        Ok(PythonModel {
            pools,
            pool_key,
            pool,
            key,
            generation,
            metadata,
            streams,
            custom,
        })
    }
}

/// The settings a worker gets: model-settings as MLServer would read them
/// from the file, plus the file's path (`_source`), which MLServer uses to
/// import the class from the model's folder and to resolve `uri`; and
/// whether a native runtime waits for the model's parameters.
fn load_message(settings: &ModelSettings, handover: bool) -> Result<Vec<u8>, MLServerError> {
    let message = serde_json::json!({
        "settings": settings,
        "source": settings.source.as_ref().map(|p| p.display().to_string()),
        "handover": handover,
    });
    serde_json::to_vec(&message)
        .map_err(|e| MLServerError::internal(format!("cannot serialise model settings: {e}")))
}

/// What a worker says of a model it loaded.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct LoadReply {
    /// The class overrides `predict_stream`.
    streams: bool,
    /// Its `@custom_handler` methods.
    custom: Vec<CustomHandler>,
    /// The fitted parameters, when asked for and the model has them in a
    /// form a native runtime reads (`sklearn_handover.py`), as the worker
    /// wrote them.
    handover: Option<Box<serde_json::value::RawValue>>,
    /// Why there is no hand-over, when one was asked for.
    no_handover: Option<String>,
}

#[derive(serde::Deserialize)]
struct CustomHandler {
    method: String,
    path: String,
    handler: String,
}

fn explain_load_failure(
    implementation: &str,
    config: &PythonConfig,
    error: MLServerError,
) -> MLServerError {
    let message = error.to_string();
    let import_failed = [
        "ModuleNotFoundError",
        "ImportError",
        "No module named",
        "cannot import name",
    ]
    .iter()
    .any(|m| message.contains(m));
    if import_failed {
        return MLServerError::bad_request(format!(
            "implementation '{implementation}' is neither a Rust runtime (registered: {}) nor importable by Python ({}): {message}",
            config.rust_runtimes.join(", "),
            config.python.display()
        ));
    }
    error
}

#[async_trait]
impl MLModel for PythonModel {
    /// Python models are created by the resolver [`install`] sets up, which
    /// knows their worker pool; this entry point has no pool to use.
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        Err(MLServerError::internal(format!(
            "model {}: Python models are loaded through mlserver_python::install",
            ctx.name()
        )))
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let worker = self.pool.pick(&self.key)?;
        let mut lent = Lent::new(worker.shared());
        let body = infer_body(&self.key, request, &mut lent);
        let reply = worker.call_lending(frame::INFER, &body, lent).await?;
        decode_reply(reply, Some(&worker))
    }

    /// Streaming when the class overrides `predict_stream`.
    fn streaming(&self) -> Option<&dyn StreamingModel> {
        self.streams.then_some(self as &dyn StreamingModel)
    }

    /// MLServer's classes handle `outputs` themselves; MLServer returns what
    /// they give.
    fn selects_outputs(&self) -> bool {
        true
    }

    /// `predict` encodes the request, sends it to a worker process and
    /// decodes the reply: no Python runs here.
    fn predicts_elsewhere(&self) -> bool {
        true
    }

    fn custom_routes(&self) -> Vec<CustomRoute> {
        self.custom.iter().map(|(route, _)| route.clone()).collect()
    }

    /// A `@custom_handler` method, called in a worker with the request as
    /// FastAPI passes it under MLServer. Unlike MLServer's, it works with
    /// any `parallel_workers` (MLServer's hang with workers: its queue
    /// cannot pickle the request).
    async fn handle_custom(&self, request: CustomRequest) -> Result<CustomResponse, MLServerError> {
        let Some((_, handler)) = self
            .custom
            .iter()
            .find(|(route, _)| *route == request.route)
        else {
            return Err(MLServerError::internal(format!(
                "model {}: no handler for {} {}",
                self.key.0, request.route.method, request.route.path
            )));
        };
        let meta = serde_json::json!({
            "name": self.key.0,
            "version": self.key.1,
            "handler": handler,
            "method": request.route.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "path_params": request.path_params,
        });
        let body = frame::infer_body(Some(&meta), &request.body);
        let reply = self.pool.call(&self.key, frame::CUSTOM, &body).await?;
        let bad = |e: &dyn std::fmt::Display| {
            MLServerError::internal(format!("unreadable custom endpoint reply: {e}"))
        };
        let (meta, body) = frame::split_infer_body(reply).map_err(|e| bad(&e))?;
        let meta = meta.unwrap_or_default();
        let headers = meta["headers"]
            .as_array()
            .map(|h| {
                h.iter()
                    .filter_map(|kv| Some((kv[0].as_str()?.to_owned(), kv[1].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(CustomResponse {
            status: meta["status"].as_u64().unwrap_or(200) as u16,
            headers,
            body,
        })
    }

    async fn unload(&self) -> Result<(), MLServerError> {
        self.pool.unload(&self.key, self.generation).await;
        self.pools.release(&self.pool_key).await;
        Ok(())
    }

    fn ready(&self) -> bool {
        self.pool.serves(&self.key)
    }

    async fn metadata(&self) -> Option<MetadataModelResponse> {
        self.metadata.clone()
    }
}

#[async_trait]
impl StreamingModel for PythonModel {
    /// The class's own `predict_stream`, in one worker: requests go to it as
    /// they arrive, responses come back as it yields them.
    async fn predict_stream(
        &self,
        mut requests: mlserver_runtime::RequestStream,
    ) -> Result<mlserver_runtime::ResponseStream, MLServerError> {
        use futures::StreamExt;
        let worker = self.pool.pick(&self.key)?;
        let open = serde_json::json!({
            "name": self.key.0,
            "version": self.key.1,
            "window": frame::STREAM_WINDOW,
        })
        .to_string();
        let worker::OpenStream {
            call,
            replies,
            credits,
        } = worker.open_stream(open.as_bytes()).await?;
        let key = self.key.clone();
        let cancel = CancelOnDrop {
            worker: Some(worker.clone()),
            call,
        };
        // Requests go on only as the worker's generator takes them (its
        // credits), so a client cannot queue an unbounded stream in it.
        let sender = worker.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                match credits.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => return, // the stream ended
                }
                let body = infer_body(&key, request, &mut Lent::new(None));
                if sender.send(frame::STREAM_ITEM, call, &body).is_err() {
                    return;
                }
            }
            let _ = sender.send(frame::STREAM_END, call, b"");
        });
        let responses = tokio_stream_from(replies).map(move |reply| {
            // Owned by the stream: dropped (and the worker told) with it.
            let _cancel = &cancel;
            if reply.is_ok() {
                // Taken: the worker may produce one more.
                let _ = worker.send(frame::CREDIT, call, &frame::credit(1));
            }
            reply.and_then(|r| decode_reply(r, Some(&worker)))
        });
        Ok(Box::pin(responses))
    }
}

/// Tells the worker to stop a stream's generator when the response stream
/// is dropped (the client went away); a finished stream ignores it.
struct CancelOnDrop {
    worker: Option<Arc<worker::Worker>>,
    call: u64,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(worker) = &self.worker {
            let _ = worker.send(frame::STREAM_CANCEL, self.call, b"");
        }
    }
}

/// An inference body for the worker: a JSON header with the request's
/// headers (and, for a JSON request, its id), then the request itself. A
/// request that came as JSON goes as the client's own text, which the worker
/// reads as MLServer's REST server does (`str`, `int`, `None` and nesting
/// as written); any other as protobuf with raw tensor contents, which the
/// worker reads with MLServer's gRPC converters. Raw contents that `lent`
/// takes go through shared memory: the header's `shm` lists, for each raw
/// entry in order, its `[offset, length]` there, or `null` for one left in
/// the message; a JSON text it takes is at `json_shm`.
fn infer_body(key: &ModelKey, mut request: InferenceRequest, lent: &mut Lent) -> Vec<u8> {
    let headers = request
        .parameters
        .as_mut()
        .and_then(|p| p.remove("headers"));
    if let Some(json) = request.json.take() {
        let mut meta = serde_json::json!({
            "json": true,
            "name": key.0,
            "version": key.1,
            "headers": headers,
            "id": request.id,
        });
        // A large text goes through shared memory too (`json_shm`).
        if let Some(offset) = lent.lend(&json) {
            meta["json_shm"] = serde_json::json!([offset, json.len()]);
            return frame::infer_body(Some(&meta), b"");
        }
        return frame::infer_body(Some(&meta), &json);
    }
    let version = (!key.1.is_empty()).then_some(key.1.as_str());
    let mut message = encode_infer_request(&key.0, version, request, true);
    let mut shared = Vec::new();
    let mut kept = Vec::new();
    for raw in std::mem::take(&mut message.raw_input_contents) {
        match lent.lend(&raw) {
            Some(offset) => shared.push(serde_json::json!([offset, raw.len()])),
            None => {
                shared.push(serde_json::Value::Null);
                kept.push(raw);
            }
        }
    }
    message.raw_input_contents = kept;
    let mut meta = serde_json::Map::new();
    if let Some(headers) = headers {
        meta.insert("headers".into(), headers);
    }
    if shared.iter().any(|s| !s.is_null()) {
        meta.insert("shm".into(), serde_json::Value::Array(shared));
    }
    let meta = (!meta.is_empty()).then_some(serde_json::Value::Object(meta));
    frame::infer_body(meta.as_ref(), &message.encode_to_vec())
}

/// A worker's inference reply back to a response, headers included. Raw
/// contents in the worker's shared area (the header's `shm`, as in
/// [`infer_body`]) are read from there and released once decoded.
fn decode_reply(
    reply: bytes::Bytes,
    worker: Option<&Arc<worker::Worker>>,
) -> Result<InferenceResponse, MLServerError> {
    let bad = |e: &dyn std::fmt::Display| {
        MLServerError::internal(format!("unreadable reply from the Python worker: {e}"))
    };
    let (meta, message) = frame::split_infer_body(reply).map_err(|e| bad(&e))?;
    let mut meta = meta.unwrap_or_default();
    let mut response = if meta.get("json") == Some(&serde_json::Value::Bool(true)) {
        // MLServer's REST answer, which the V2 types cannot hold as it is
        // (see `InferenceResponse::json`): what can be read of it, and the
        // text to send.
        let mut response = serde_json::from_slice::<InferenceResponse>(&message)
            .unwrap_or_else(|_| lenient_response(&message));
        response.json = Some(message);
        response
    } else {
        let mut message = ModelInferResponse::decode(message).map_err(|e| bad(&e))?;
        if let Some(shared) = meta.get("shm").and_then(serde_json::Value::as_array) {
            let regions = shared_regions(shared, worker).map_err(|e| bad(&e))?;
            let mut inline = std::mem::take(&mut message.raw_output_contents).into_iter();
            message.raw_output_contents = regions
                .into_iter()
                .map(|r| r.or_else(|| inline.next()).unwrap_or_default())
                .collect();
        }
        decode_infer_response(message).map_err(|e| bad(&e))?
    };
    if let Some(headers) = meta.get_mut("headers").map(serde_json::Value::take) {
        response.parameters_mut().insert("headers", headers);
    }
    Ok(response)
}

/// The reply's regions of the worker's area, as bytes that release their
/// region when dropped (`None` where the entry is in the message).
fn shared_regions(
    shared: &[serde_json::Value],
    worker: Option<&Arc<worker::Worker>>,
) -> Result<Vec<Option<bytes::Bytes>>, String> {
    let mut out = Vec::with_capacity(shared.len());
    for entry in shared {
        if entry.is_null() {
            out.push(None);
            continue;
        }
        let (offset, len) = match entry.as_array().map(Vec::as_slice) {
            Some([o, l]) => (o.as_u64(), l.as_u64()),
            _ => (None, None),
        };
        let region = match (offset, len, worker) {
            (Some(offset), Some(len), Some(worker)) => SharedReply::new(worker, offset, len),
            _ => None,
        };
        out.push(Some(bytes::Bytes::from_owner(
            region.ok_or_else(|| format!("bad shared memory region {entry}"))?,
        )));
    }
    Ok(out)
}

/// A region of a worker's reply area, handed back to it when dropped.
struct SharedReply {
    worker: Arc<worker::Worker>,
    shared: Arc<worker::Shared>,
    offset: usize,
    len: usize,
}

impl SharedReply {
    fn new(worker: &Arc<worker::Worker>, offset: u64, len: u64) -> Option<Self> {
        let (offset, len) = (usize::try_from(offset).ok()?, usize::try_from(len).ok()?);
        let shared = worker.shared()?;
        shared.replies.slice(offset, len)?;
        Some(SharedReply {
            worker: worker.clone(),
            shared,
            offset,
            len,
        })
    }
}

impl AsRef<[u8]> for SharedReply {
    fn as_ref(&self) -> &[u8] {
        self.shared
            .replies
            .slice(self.offset, self.len)
            .expect("checked in SharedReply::new")
    }
}

impl Drop for SharedReply {
    fn drop(&mut self) {
        self.worker.release_reply(self.offset);
    }
}

/// The fields of a JSON answer other than its outputs, when its outputs do
/// not read as V2 tensors.
fn lenient_response(json: &[u8]) -> InferenceResponse {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        model_name: String,
        #[serde(default)]
        model_version: Option<String>,
        #[serde(default)]
        id: Option<String>,
    }
    let head: Option<Head> = serde_json::from_slice(json).ok();
    head.map(|h| InferenceResponse {
        model_name: h.model_name,
        model_version: h.model_version,
        id: h.id,
        ..Default::default()
    })
    .unwrap_or_default()
}

/// An unbounded receiver as a stream.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_of_the_worker_package_is_embedded() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("python")
            .join(WORKER_PACKAGE);
        let mut on_disk: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".py"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = WORKER_MODULES.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn one_variable_turns_the_fast_paths_off() {
        let settings = Settings::default();
        let config = |env: EnvSource| PythonConfig::from_settings(&settings, &env);
        let on = config(EnvSource::empty());
        assert!(on.fast_paths);
        assert_eq!(on.shared_memory, 64 << 20);
        assert!(!config(EnvSource::empty().with_var("MLSERVER_RS_FAST_PATHS", "0")).fast_paths);
        assert!(config(EnvSource::empty().with_var("MLSERVER_RS_FAST_PATHS", "1")).fast_paths);
    }

    #[test]
    fn import_paths_are_dotted_identifiers() {
        for ok in ["models.MyModel", "mlserver_sklearn.SKLearnModel", "a.b.C"] {
            assert!(is_import_path(ok), "{ok}");
        }
        for not in [
            "sum",
            "echo",
            ".x",
            "a..b",
            "a.b-c",
            "mlserver_onnx/OnnxModel",
            "",
        ] {
            assert!(!is_import_path(not), "{not}");
        }
    }
}
