//! Wiring: settings -> registry, repository, data plane -> listeners.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mlserver_runtime::RuntimeRegistry;
use mlserver_settings::{EnvSource, RuntimeSecurity, Settings};
use tokio::net::TcpListener;
use tracing::{debug, error, info, warn};

use crate::body_deadline::{BodyRules, DeadlineBody, Protocol};
use crate::budget::{BudgetCheck, Charge, MemoryBudget, Refusal};
use crate::checked_body::CheckedBody;
use crate::connections::{self, ConnectionLimits, Protocols};
use crate::unary_body::UnaryCheck;
use mlserver_core::{
    CloudEvents, DataPlane, Executor, ModelRegistry, ModelRepository, Readiness, ResponseCache,
    ServerMetrics, Serving, WorkerRuntimeHook,
};
use mlserver_grpc::{self as grpc, GrpcMetricFamilies, GrpcState};
use mlserver_rest::{
    self as rest, cors_layer, metrics_router, AppState, CorsError, RestMetricFamilies, RestOptions,
};

/// Settings that cannot be served as they are.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `cors_settings` that are not valid.
    #[error(transparent)]
    Cors(#[from] CorsError),
    /// A metric family that clashes.
    #[error("metrics: {0}")]
    Metrics(#[from] mlserver_metrics::MetricsError),
    /// Settings the ODH fork's production mode refuses.
    #[error("{0}")]
    Security(String),
    /// The inference thread pool did not start.
    #[error("could not start {0} inference worker threads: {1}")]
    Workers(usize, std::io::Error),
}

/// An MLServer-compatible server for one models folder.
pub struct Server {
    settings: Arc<Settings>,
    max_body_bytes: usize,
    dataplane: Arc<DataPlane>,
    repository: Arc<ModelRepository>,
    cors: Option<tower_http::cors::CorsLayer>,
    rest_metrics: Option<Arc<RestMetricFamilies>>,
    grpc_metrics: Option<Arc<GrpcMetricFamilies>>,
}

impl Server {
    /// A server for `settings.model_repository_root`, with `MLSERVER_MODEL_*`
    /// defaults taken from `env`.
    pub fn new(
        settings: Settings,
        runtimes: RuntimeRegistry,
        env: Arc<EnvSource>,
    ) -> Result<Self, ServerError> {
        Self::with_security(settings, runtimes, env, RuntimeSecurity::Development)
    }

    /// [`Server::new`] in the given runtime security mode (`mlserver start`
    /// reads it from the image: [`RuntimeSecurity::of_image`]). In
    /// production mode CORS origins must be named, and only allowlisted
    /// implementations load.
    pub fn with_security(
        settings: Settings,
        runtimes: RuntimeRegistry,
        env: Arc<EnvSource>,
        security: RuntimeSecurity,
    ) -> Result<Self, ServerError> {
        Self::build(settings, runtimes, env, security, None)
    }

    /// [`Server::with_security`], with `hook` added to the builder of the
    /// inference workers' runtime (`parallel_workers`), as the binary adds
    /// it to its own: `mlserver start` installs its allocator's thread
    /// hooks there.
    pub fn with_worker_runtime(
        settings: Settings,
        runtimes: RuntimeRegistry,
        env: Arc<EnvSource>,
        security: RuntimeSecurity,
        hook: WorkerRuntimeHook,
    ) -> Result<Self, ServerError> {
        Self::build(settings, runtimes, env, security, Some(hook))
    }

    fn build(
        settings: Settings,
        runtimes: RuntimeRegistry,
        env: Arc<EnvSource>,
        security: RuntimeSecurity,
        worker_runtime: Option<WorkerRuntimeHook>,
    ) -> Result<Self, ServerError> {
        let security = Arc::new(security);
        if let Some(cors) = &settings.cors_settings {
            security
                .check_cors(&cors.allow_origins, cors.allow_origin_regex.as_deref())
                .map_err(ServerError::Security)?;
        }
        let metrics = match settings.metrics_endpoint {
            Some(_) => Some(Arc::new(ServerMetrics::new()?)),
            None => None,
        };
        // The transports' families, on the same registry.
        let (rest_metrics, grpc_metrics) = match &metrics {
            Some(m) => (
                Some(Arc::new(RestMetricFamilies::new(
                    m.registry(),
                    &settings.metrics_rest_server_prefix,
                )?)),
                Some(Arc::new(GrpcMetricFamilies::new(m.registry())?)),
            ),
            None => (None, None),
        };
        let threads = settings.inference_threads();
        let executor = Executor::new(
            threads,
            metrics.as_ref().map(|m| m.parallel_queue()),
            worker_runtime,
        )
        .map_err(|e| ServerError::Workers(threads, e))?;
        let serving = Serving {
            executor: Arc::new(executor),
            cache: settings
                .cache_enabled
                .then(|| Arc::new(ResponseCache::new(settings.cache_size))),
            metrics: metrics.clone(),
            cloudevents: Some(Arc::new(CloudEvents::new(&settings.server_name))),
            strict_inputs: settings.strict_inputs,
            inference_timeout: settings.inference_timeout.and_then(seconds),
            security: security.clone(),
        };
        let cors = settings
            .cors_settings
            .as_ref()
            .map(cors_layer)
            .transpose()?;
        // REST serves the V2 API on these paths: no model may take them.
        let registry = Arc::new(ModelRegistry::with_reserved_routes(mlserver_rest::V2_PATHS));
        let root = PathBuf::from(&settings.model_repository_root);
        let repository = Arc::new(ModelRepository::new(
            root,
            env,
            runtimes,
            registry.clone(),
            serving,
        ));
        let dataplane = Arc::new(
            DataPlane::new(
                registry,
                settings.server_name.clone(),
                settings.server_version.clone(),
                &settings.extensions,
                metrics,
            )
            .with_security(security)
            .with_readiness(Readiness {
                strict: settings.strict_readiness,
                empty_registry_ready: settings.empty_registry_readiness,
            }),
        );
        Ok(Server {
            settings: Arc::new(settings),
            max_body_bytes: rest::DEFAULT_MAX_BODY_BYTES,
            dataplane,
            repository,
            cors,
            rest_metrics,
            grpc_metrics,
        })
    }

    /// Limits request bodies (compressed and decompressed) to `bytes`.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The settings it serves with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The data plane the transports call.
    pub fn dataplane(&self) -> &Arc<DataPlane> {
        &self.dataplane
    }

    /// The model repository.
    pub fn repository(&self) -> &Arc<ModelRepository> {
        &self.repository
    }

    /// The REST service, for embedding or testing without a socket.
    pub fn rest_router(&self) -> rest::RestService {
        let state = AppState {
            dataplane: self.dataplane.clone(),
            repository: self.repository.clone(),
            body_limits: rest::BodyLimits {
                max_bytes: self.max_body_bytes,
                max_decompression_ratio: self.settings.max_decompression_ratio,
            },
        };
        rest::router(
            state,
            RestOptions {
                gzip: self.settings.gzip_enabled,
                cors: self.cors.clone(),
                metrics: self.rest_metrics.clone(),
                root_path: self.settings.root_path.clone(),
                trace: self.settings.tracing_server.is_some(),
            },
        )
    }

    /// The gRPC services, for embedding or testing.
    pub fn grpc_service(&self) -> grpc::GrpcService {
        let state = GrpcState {
            dataplane: self.dataplane.clone(),
            repository: self.repository.clone(),
        };
        grpc::service(
            state,
            grpc::GrpcOptions {
                max_message_bytes: grpc::max_message_bytes(self.settings.grpc_max_message_length),
                max_decompression_ratio: self.settings.max_decompression_ratio,
                gzip: self.settings.gzip_enabled,
                metrics: self.grpc_metrics.clone(),
                trace: self.settings.tracing_server.is_some(),
            },
        )
    }

    /// Binds `host:http_port`, `host:grpc_port` and, unless metrics are
    /// off, `host:metrics_port` from settings.
    pub async fn bind(&self) -> std::io::Result<Listeners> {
        let host = &self.settings.host;
        let metrics = match self.settings.metrics_endpoint {
            Some(_) => Some(bind(&format!("{host}:{}", self.settings.metrics_port)).await?),
            None => None,
        };
        Ok(Listeners {
            http: bind(&format!("{host}:{}", self.settings.http_port)).await?,
            grpc: bind(&format!("{host}:{}", self.settings.grpc_port)).await?,
            metrics,
        })
    }

    /// Serves until `shutdown` resolves: starts listening first, then loads
    /// the models (all at once, unless `load_models_at_startup` is false).
    /// On shutdown, stops accepting, lets in-flight requests finish, cuts
    /// those still running near the end of `shutdown_timeout` (they get
    /// 503 / UNAVAILABLE), then unloads every model, all within
    /// `shutdown_timeout`.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let http_addr: SocketAddr = listeners.http.local_addr()?;
        let grpc_addr: SocketAddr = listeners.grpc.local_addr()?;
        let limits = Arc::new(self.connection_limits());
        match &limits.memory_budget {
            Some(budget) => info!(
                "memory budget for requests in flight: {:.0} MiB (memory_budget)",
                budget.limit() as f64 / 1048576.0
            ),
            None => warn!("no memory budget for requests in flight: set memory_budget"),
        }
        match connections::raise_open_files_limit() {
            // Each connection is a descriptor; models, workers and logs
            // need some too.
            Some(open)
                if limits.max_connections < tokio::sync::Semaphore::MAX_PERMITS
                    && open < (limits.max_connections as u64).saturating_add(256) =>
            {
                warn!(
                "the open files limit is {open}: fewer than max_connections ({}) plus what models need; \
                 connections past it wait or fail (raise it with ulimit -n, or lower max_connections)",
                limits.max_connections
                )
            }
            Some(open) => debug!("open files limit: {open}"),
            None => {}
        }

        // One shutdown signal, fanned out to every listener.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });

        let http = connections::serve(
            listeners.http,
            Protocols::Http1And2,
            limits.clone(),
            self.rest_router(),
            rest_body,
            stop_rx.clone(),
        );
        let grpc_service = self.grpc_service();
        let grpc = connections::serve(
            listeners.grpc,
            Protocols::Http2Only,
            limits.clone(),
            grpc_service,
            grpc_body,
            stop_rx.clone(),
        );
        info!("HTTP server running on http://{http_addr}");
        info!("gRPC server running on http://{grpc_addr}");
        let metrics_server = match (
            listeners.metrics,
            self.dataplane.metrics(),
            &self.settings.metrics_endpoint,
        ) {
            (Some(listener), Some(metrics), Some(endpoint)) => {
                let addr = listener.local_addr()?;
                info!("Metrics server running on http://{addr}{endpoint}");
                let router = metrics_router(metrics.clone(), endpoint);
                Some(tokio::spawn(connections::serve(
                    listener,
                    Protocols::Http1And2,
                    limits.clone(),
                    router,
                    |body, _, _, _| axum::body::Body::new(body),
                    stop_rx.clone(),
                )))
            }
            // Metrics off: a listener handed in is closed, not served.
            _ => None,
        };

        // The models on disk are registered before any connection is
        // served (the listeners' futures have not been polled yet): a
        // client that finds the server live and asks for one of them hears
        // "not ready yet", not "not found".
        let found = match self.settings.load_models_at_startup {
            true => Some(self.repository.find_all().await),
            false => None,
        };
        let loader = {
            let repository = self.repository.clone();
            let dataplane = self.dataplane.clone();
            tokio::spawn(async move {
                if let Some(found) = found {
                    let failures = repository.load_found(found).await;
                    if !failures.is_empty() {
                        error!(
                            "{} model(s) failed to load; the server stays up but reports not ready",
                            failures.len()
                        );
                    }
                }
                dataplane.mark_started();
            })
        };

        // Shutdown, within `shutdown_timeout` from the signal: requests in
        // flight finish while the servers drain; what is left when the
        // unload reserve begins is cut (503 / UNAVAILABLE), its connections
        // get a moment to carry that answer, then the models unload.
        let grace = seconds(self.settings.shutdown_timeout).unwrap_or(Duration::ZERO);
        let reserve = unload_reserve(grace);
        // Boxed, so dropping it closes the connections still open.
        let mut servers = Box::pin(async { tokio::join!(http, grpc) });
        let signalled = {
            let stop = stopped(stop_rx.clone());
            async move {
                stop.await;
                tokio::time::Instant::now()
            }
        };
        let drained = tokio::select! {
            _ = &mut servers => true,
            began = signalled => {
                let deadline = began + grace;
                tokio::select! {
                    _ = &mut servers => true,
                    () = tokio::time::sleep_until(deadline - reserve) => {
                        warn!(
                            "requests still in flight {:?} after shutdown began; cutting them",
                            grace - reserve
                        );
                        self.dataplane.cut_requests();
                        let flush = (reserve / 4).min(Duration::from_secs(1));
                        let _ = tokio::time::timeout(flush, &mut servers).await;
                        false
                    }
                }
            }
        };
        let deadline = tokio::time::Instant::now() + if drained { grace } else { reserve };
        // Streams still open end now, releasing their models.
        self.dataplane.cut_requests();
        drop(servers);
        info!("HTTP and gRPC servers stopped; unloading models");
        loader.abort();
        if tokio::time::timeout_at(deadline, self.repository.unload_all())
            .await
            .is_err()
        {
            warn!("models still unloading when shutdown_timeout ran out; exiting without them");
        }
        if let Some(metrics) = metrics_server {
            metrics.abort();
        }
        Ok(())
    }

    /// The connection limits from settings.
    fn connection_limits(&self) -> ConnectionLimits {
        let s = &self.settings;
        ConnectionLimits {
            // 0: no limit of ours (the descriptors' only).
            max_connections: match s.max_connections {
                0 => tokio::sync::Semaphore::MAX_PERMITS,
                n => n,
            },
            http1_keep_alive: seconds(s.http_keep_alive_timeout),
            header_read: seconds(s.http_header_timeout),
            handshake: seconds(s.connection_handshake_timeout),
            request_body_idle: seconds(s.http_body_timeout),
            request_body_min_rate: (s.http_body_min_rate > 0).then_some(s.http_body_min_rate),
            http2_idle: seconds(s.http2_idle_timeout),
            http2_keepalive_interval: seconds(s.http2_keepalive_interval),
            http2_keepalive_timeout: seconds(s.http2_keepalive_timeout)
                .unwrap_or(Duration::from_secs(20)),
            max_concurrent_streams: (s.grpc_max_concurrent_streams > 0)
                .then_some(s.grpc_max_concurrent_streams),
            memory_budget: MemoryBudget::from_setting(s.memory_budget),
            max_body_bytes: (self.max_body_bytes as u64)
                .max(grpc::max_message_bytes(s.grpc_max_message_length) as u64),
        }
    }
}

/// A duration setting in seconds; 0 (or less, or not a number) is off.
fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value > 0.0).then(|| Duration::from_secs_f64(value))
}

/// The deadlines request bodies are held to (see [`crate::body_deadline`]).
fn body_rules(limits: &ConnectionLimits) -> BodyRules {
    BodyRules {
        idle: limits.request_body_idle,
        min_rate: limits.request_body_min_rate,
    }
}

/// The `Content-Length` a request declares, if any.
fn declared_length(parts: &http::request::Parts) -> Option<u64> {
    parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A REST request body, held to `http_body_timeout` and
/// `http_body_min_rate`, and charged to the memory budget.
fn rest_body(
    body: hyper::body::Incoming,
    parts: &http::request::Parts,
    limits: &ConnectionLimits,
    charge: Option<Arc<Charge>>,
) -> axum::body::Body {
    let rules = body_rules(limits);
    let budget = || {
        BudgetCheck::new(
            charge.clone(),
            declared_length(parts),
            limits.max_body_bytes,
            Refusal::Rest,
        )
    };
    match (rules.any(), charge.is_some()) {
        (true, true) => axum::body::Body::new(CheckedBody::new(
            DeadlineBody::new(body, rules, Protocol::Rest),
            budget(),
        )),
        (true, false) => axum::body::Body::new(DeadlineBody::new(body, rules, Protocol::Rest)),
        (false, true) => axum::body::Body::new(CheckedBody::new(body, budget())),
        (false, false) => axum::body::Body::new(body),
    }
}

/// A gRPC request body: a unary call's message is held to the REST
/// body's deadlines (ending with DEADLINE_EXCEEDED) and to being the only
/// one (see [`crate::unary_body`]). `ModelStreamInfer`'s is held to
/// neither, its requests come when the client has them; server
/// reflection's stream to the deadlines only. A unary call's bytes are
/// charged to the memory budget.
fn grpc_body(
    body: hyper::body::Incoming,
    parts: &http::request::Parts,
    limits: &ConnectionLimits,
    charge: Option<Arc<Charge>>,
) -> CheckedBody<DeadlineBody<hyper::body::Incoming>, (UnaryCheck, BudgetCheck)> {
    let path = parts.uri.path();
    let inference_stream = path.ends_with("/ModelStreamInfer");
    let rules = match inference_stream {
        true => BodyRules::default(),
        false => body_rules(limits),
    };
    let one_message = !inference_stream && !path.ends_with("/ServerReflectionInfo");
    let budget = BudgetCheck::new(
        // A stream's messages are charged only while they are read, not
        // for the stream's whole life.
        charge.filter(|_| one_message),
        declared_length(parts),
        limits.max_body_bytes,
        Refusal::Grpc,
    );
    CheckedBody::new(
        DeadlineBody::new(body, rules, Protocol::Grpc),
        (UnaryCheck::new(one_message), budget),
    )
}

/// The part of `shutdown_timeout` kept for cutting requests and unloading
/// models: 5 s, or a quarter of a shorter grace.
fn unload_reserve(grace: Duration) -> Duration {
    (grace / 4).min(Duration::from_secs(5))
}

/// The sockets a [`Server`] serves on. Bound before serving, so a caller
/// (a test, a supervisor) can pick port 0 and read the real addresses.
pub struct Listeners {
    /// The REST listener (`http_port`).
    pub http: TcpListener,
    /// The gRPC listener (`grpc_port`).
    pub grpc: TcpListener,
    /// `None`: no metrics server (also when settings turn metrics off).
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// All three on free ports of `ip` (tests: `127.0.0.1`).
    pub async fn ephemeral(ip: &str) -> std::io::Result<Self> {
        Ok(Listeners {
            http: bind(&format!("{ip}:0")).await?,
            grpc: bind(&format!("{ip}:0")).await?,
            metrics: Some(bind(&format!("{ip}:0")).await?),
        })
    }
}

async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("could not listen on {addr}: {e}")))
}
