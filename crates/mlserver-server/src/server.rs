//! Wiring: settings -> registry, repository, data plane -> listeners.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mlserver_runtime::RuntimeRegistry;
use mlserver_settings::{EnvSource, Settings};
use tokio::net::TcpListener;
use tracing::{error, info};

use tokio_stream::wrappers::TcpListenerStream;

use crate::dataplane::DataPlane;
use crate::grpc::{self, GrpcState};
use crate::registry::ModelRegistry;
use crate::repository::ModelRepository;
use crate::rest::{self, AppState};

/// An MLServer-compatible server for one models folder.
pub struct Server {
    settings: Arc<Settings>,
    max_body_bytes: usize,
    dataplane: Arc<DataPlane>,
    repository: Arc<ModelRepository>,
}

impl Server {
    /// A server for `settings.model_repository_root`, with `MLSERVER_MODEL_*`
    /// defaults taken from `env`.
    pub fn new(settings: Settings, runtimes: RuntimeRegistry, env: Arc<EnvSource>) -> Self {
        let registry = Arc::new(ModelRegistry::new());
        let root = PathBuf::from(&settings.model_repository_root);
        let repository = Arc::new(ModelRepository::new(root, env, runtimes, registry.clone()));
        let dataplane = Arc::new(DataPlane::new(
            registry,
            settings.server_name.clone(),
            settings.server_version.clone(),
            &settings.extensions,
        ));
        Server {
            settings: Arc::new(settings),
            max_body_bytes: rest::DEFAULT_MAX_BODY_BYTES,
            dataplane,
            repository,
        }
    }

    /// Limits request bodies (compressed and decompressed) to `bytes`.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn dataplane(&self) -> &Arc<DataPlane> {
        &self.dataplane
    }

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
        rest::router(state, self.settings.gzip_enabled)
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

    /// Binds `host:http_port` and `host:grpc_port` from settings.
    pub async fn bind(&self) -> std::io::Result<Listeners> {
        let host = &self.settings.host;
        Ok(Listeners {
            http: bind(&format!("{host}:{}", self.settings.http_port)).await?,
            grpc: bind(&format!("{host}:{}", self.settings.grpc_port)).await?,
        })
    }

    /// Serves until `shutdown` resolves: starts listening first, then loads
    /// the models (all at once, unless `load_models_at_startup` is false).
    /// On shutdown, stops accepting, lets in-flight requests finish, then
    /// unloads every model.
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

        let http = axum::serve(listeners.http, self.rest_router())
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future();
        let grpc = tonic::transport::Server::builder()
            .add_routes(self.grpc_routes())
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listeners.grpc),
                stopped(stop_rx.clone()),
            );
        info!("HTTP server running on http://{http_addr}");
        info!("gRPC server running on http://{grpc_addr}");

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

        let (http, grpc) = tokio::join!(http, grpc);
        info!("HTTP and gRPC servers stopped; unloading models");
        loader.abort();
        self.repository.unload_all().await;
        http?;
        grpc.map_err(|e| std::io::Error::other(format!("gRPC server failed: {e}")))
    }
}

/// The sockets a [`Server`] serves on. Bound before serving, so a caller
/// (a test, a supervisor) can pick port 0 and read the real addresses.
pub struct Listeners {
    pub http: TcpListener,
    pub grpc: TcpListener,
}

impl Listeners {
    /// Both on free ports of `ip` (tests: `127.0.0.1`).
    pub async fn ephemeral(ip: &str) -> std::io::Result<Self> {
        Ok(Listeners {
            http: bind(&format!("{ip}:0")).await?,
            grpc: bind(&format!("{ip}:0")).await?,
        })
    }
}

async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("could not listen on {addr}: {e}")))
}
