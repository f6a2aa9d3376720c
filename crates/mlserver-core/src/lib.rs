//! The serving core of mlserver-rs, which knows no HTTP or gRPC: the model
//! registry and the repository that loads into it, the per-model pipeline
//! (executor, adaptive batcher, response cache, CloudEvents headers,
//! metrics) and the [`DataPlane`], whose one unary call
//! ([`DataPlane::infer`]) and one streaming call
//! ([`DataPlane::infer_stream`]) every transport makes. The transports
//! (`mlserver-rest`, `mlserver-grpc`) decode, call it, and encode.

mod batching;
pub mod budget;
mod cache;
mod cloudevents;
mod custom;
mod dataplane;
mod error;
mod executor;
pub mod headers;
pub mod inflate;
mod metrics;
mod pipeline;
mod registry;
mod repository;
mod request_id;
mod statistics;
pub mod trace;
mod triton;

pub use cache::ResponseCache;
pub use cloudevents::CloudEvents;
pub use custom::{CustomRoutes, CustomTarget};
pub use dataplane::{DataPlane, ServingStream, BUILTIN_EXTENSIONS};
pub use error::ServingError;
pub use executor::{Executor, WorkerRuntimeHook};
pub use metrics::ServerMetrics;
pub use pipeline::LoadedModel;
pub use registry::{ModelRegistry, Readiness, Slot, SlotState, Version};
pub use repository::{FoundModels, ModelRepository, Serving};

/// The default limit on a request (a REST body, compressed or not; a gRPC
/// message each way): large enough for real tensors, where gRPC's own 4
/// MiB is not.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 512 * 1024 * 1024;
