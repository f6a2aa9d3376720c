//! Wiring: settings -> registry, repository, data plane -> listeners.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mlserver_runtime::RuntimeRegistry;
use mlserver_settings::{EnvSource, Settings};
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::dataplane::DataPlane;
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

    /// Binds `host:http_port` from settings.
    pub async fn bind_http(&self) -> std::io::Result<TcpListener> {
        let addr = format!("{}:{}", self.settings.host, self.settings.http_port);
        TcpListener::bind(&addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("could not listen on {addr}: {e}")))
    }

    /// Serves until `shutdown` resolves: starts listening first, then loads
    /// the models (all at once, unless `load_models_at_startup` is false).
    /// On shutdown, stops accepting, lets in-flight requests finish, then
    /// unloads every model.
    pub async fn serve(
        self,
        http: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr: SocketAddr = http.local_addr()?;
        info!("HTTP server running on http://{addr}");

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

        let result = axum::serve(http, self.rest_router())
            .with_graceful_shutdown(shutdown)
            .await;
        info!("HTTP server stopped; unloading models");
        loader.abort();
        self.repository.unload_all().await;
        result
    }
}
