//! The serving side of mlserver-rs: the model registry and repository, the
//! transport-independent [`DataPlane`], and the V2 REST and gRPC APIs.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use mlserver_server::Server;
//! use mlserver_settings::{EnvSource, Settings};
//!
//! let env = Arc::new(EnvSource::from_process());
//! let settings = mlserver_settings::load_settings("models".as_ref(), &env).unwrap();
//! let server = Server::new(settings, mlserver_runtime::RuntimeRegistry::new(), env).unwrap();
//! let listeners = server.bind().await?;
//! server.serve(listeners, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod batching;
mod cache;
mod cloudevents;
mod cors;
mod custom;
mod dataplane;
mod error;
mod executor;
mod grpc;
mod headers;
mod metrics;
mod registry;
mod repository;
mod request_id;
mod rest;
mod server;
mod trace;

pub use cache::ResponseCache;
pub use cors::{cors_layer, CorsError};
pub use custom::{CustomRoutes, V2_ROUTES};
pub use dataplane::{DataPlane, BUILTIN_EXTENSIONS};
pub use error::ApiError;
pub use executor::Executor;
pub use grpc::{max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES};
pub use metrics::ServerMetrics;
pub use registry::{LoadedModel, ModelRegistry, Slot, SlotState, Version};
pub use repository::{ModelRepository, Serving};
pub use rest::{router, AppState, RestOptions, DEFAULT_MAX_BODY_BYTES};
pub use server::{Listeners, Server, ServerError, SHUTDOWN_GRACE};
pub use trace::{Protocol, TraceLayer, TARGET as TRACE_TARGET};
