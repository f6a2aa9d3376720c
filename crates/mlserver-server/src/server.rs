//! Wiring: settings -> registry, repository, data plane -> listeners.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use mlserver_runtime::RuntimeRegistry;
use mlserver_settings::{EnvSource, Settings};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tracing::{error, info, warn};

use mlserver_core::{
    CloudEvents, DataPlane, Executor, ModelRegistry, ModelRepository, ResponseCache, ServerMetrics,
    Serving,
};
use mlserver_grpc::{self as grpc, GrpcMetricFamilies, GrpcObserveLayer, GrpcState};
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
        let executor = Executor::new(
            settings.parallel_workers,
            metrics.as_ref().map(|m| m.parallel_queue()),
        )
        .map_err(|e| ServerError::Workers(settings.parallel_workers, e))?;
        let serving = Serving {
            executor: Arc::new(executor),
            cache: settings
                .cache_enabled
                .then(|| Arc::new(ResponseCache::new(settings.cache_size))),
            metrics: metrics.clone(),
            cloudevents: Some(Arc::new(CloudEvents::new(&settings.server_name))),
            strict_inputs: settings.strict_inputs,
        };
        let cors = settings
            .cors_settings
            .as_ref()
            .map(cors_layer)
            .transpose()?;
        let registry = Arc::new(ModelRegistry::new());
        let root = PathBuf::from(&settings.model_repository_root);
        let repository = Arc::new(ModelRepository::new(
            root,
            env,
            runtimes,
            registry.clone(),
            serving,
        ));
        let dataplane = Arc::new(DataPlane::new(
            registry,
            settings.server_name.clone(),
            settings.server_version.clone(),
            &settings.extensions,
            metrics,
        ));
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

    /// The REST router, for embedding or testing without a socket.
    pub fn rest_router(&self) -> axum::Router {
        let state = AppState {
            dataplane: self.dataplane.clone(),
            repository: self.repository.clone(),
            max_body_bytes: self.max_body_bytes,
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
    pub fn grpc_routes(&self) -> tonic::service::Routes {
        let state = GrpcState {
            dataplane: self.dataplane.clone(),
            repository: self.repository.clone(),
        };
        grpc::routes(
            state,
            grpc::max_message_bytes(self.settings.grpc_max_message_length),
            self.settings.gzip_enabled,
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
    /// On shutdown, stops accepting, lets in-flight requests finish (for
    /// up to [`SHUTDOWN_GRACE`]), then unloads every model.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let http_addr: SocketAddr = listeners.http.local_addr()?;
        let grpc_addr: SocketAddr = listeners.grpc.local_addr()?;

        // One shutdown signal, fanned out to both servers.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });

        let http = axum::serve(no_delay_http(listeners.http), self.rest_router())
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future();
        let grpc = tonic::transport::Server::builder()
            .layer(GrpcObserveLayer {
                metrics: self.grpc_metrics.clone(),
            })
            .layer(grpc::TrailingMetadataLayer)
            .layer(tower::util::option_layer(
                self.settings
                    .tracing_server
                    .is_some()
                    .then(grpc::TraceLayer::enabled),
            ))
            .add_routes(self.grpc_routes())
            .serve_with_incoming_shutdown(no_delay_grpc(listeners.grpc), stopped(stop_rx.clone()));
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
                let stop = stopped(stop_rx.clone());
                Some(tokio::spawn(async move {
                    axum::serve(no_delay_http(listener), router)
                        .with_graceful_shutdown(stop)
                        .await
                }))
            }
            // Metrics off: a listener handed in is closed, not served.
            _ => None,
        };

        let loader = {
            let repository = self.repository.clone();
            let dataplane = self.dataplane.clone();
            let load = self.settings.load_models_at_startup;
            tokio::spawn(async move {
                if load {
                    let failures = repository.load_all().await;
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

        let servers = async { tokio::join!(http, grpc) };
        let grace = {
            let stop = stopped(stop_rx.clone());
            async move {
                stop.await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            }
        };
        let (http, grpc) = tokio::select! {
            done = servers => done,
            () = grace => {
                // A stream a client keeps open (or a request that never
                // ends) must not hold the process up until it is killed.
                warn!(
                    "requests still in flight {SHUTDOWN_GRACE:?} after shutdown began; closing their connections"
                );
                (Ok(()), Ok(()))
            }
        };
        // Streams still open end now, releasing their models (their
        // connections' tasks outlive the servers' futures).
        self.dataplane.end_streams();
        info!("HTTP and gRPC servers stopped; unloading models");
        loader.abort();
        self.repository.unload_all().await;
        if let Some(metrics) = metrics_server {
            match metrics.await {
                Ok(Err(e)) => error!("metrics server failed: {e}"),
                Err(e) => error!("metrics server task failed: {e}"),
                Ok(Ok(())) => {}
            }
        }
        http?;
        grpc.map_err(|e| std::io::Error::other(format!("gRPC server failed: {e}")))
    }
}

/// How long a shutdown waits for requests in flight before it closes their
/// connections: MLServer stops its gRPC server with the same grace.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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

// Every accepted connection gets TCP_NODELAY, as MLServer's get (asyncio
// and grpcio set it). With Nagle's algorithm on, a small write that follows
// one not yet acknowledged waits for the peer's ACK, which a delayed ACK
// holds up to 40 ms: each event of a streamed response after the first, or
// the tail of a large one. Neither `axum::serve` on a listener nor tonic on
// an incoming stream sets it by itself.

fn no_delay_http(
    listener: TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            warn!("could not set TCP_NODELAY on an HTTP connection: {e}");
        }
    })
}

fn no_delay_grpc(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("could not listen on {addr}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use futures::StreamExt;

    async fn loopback() -> (TcpListener, SocketAddr) {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    #[tokio::test]
    async fn accepted_connections_do_not_wait_for_acks() {
        let (listener, addr) = loopback().await;
        let mut http = no_delay_http(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = http.accept().await;
        assert!(accepted.nodelay().unwrap());

        let (listener, addr) = loopback().await;
        let mut grpc = no_delay_grpc(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = grpc.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap());

        // What the fix is for: a listener as it comes leaves Nagle on.
        let (listener, addr) = loopback().await;
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (plain, _) = listener.accept().await.unwrap();
        assert!(!plain.nodelay().unwrap());
    }
}
