//! An MLServer-compatible server: the serving core (`mlserver-core`) behind
//! the V2 REST (`mlserver-rest`) and gRPC (`mlserver-grpc`) APIs and the
//! metrics endpoint, on their listeners, with MLServer's settings and its
//! shutdown.
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

mod body_deadline;
mod budget;
mod checked_body;
mod connections;
mod server;
mod unary_body;

pub use budget::{BudgetExhausted, Charge, MemoryBudget};
pub use connections::ConnectionLimits;
pub use mlserver_core::trace::TARGET as TRACE_TARGET;
pub use mlserver_core::{
    DataPlane, Executor, LoadedModel, ModelRegistry, ModelRepository, ResponseCache, ServerMetrics,
    Serving, Slot, SlotState, Version, WorkerRuntimeHook, BUILTIN_EXTENSIONS,
};
pub use mlserver_grpc::{max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES};
pub use mlserver_rest::{
    cors_layer, router, ApiError, AppState, CorsError, RestOptions, DEFAULT_MAX_BODY_BYTES,
};
pub use server::{Listeners, Server, ServerError};
