//! The runtime side of mlserver-rs: the [`MLModel`] trait a custom runtime
//! implements (MLServer's "extend `MLModel`, override `load` and `predict`"),
//! the [`RuntimeRegistry`] that maps model-settings' `implementation` names to
//! runtimes, and [`MLServerError`], the error every layer shares.

mod blocking;
mod custom;
mod error;
mod model;
mod native;
mod registry;
mod source;

pub use async_trait::async_trait;
pub use blocking::{blocking, on_compute_lane, OnComputeLane};
pub use custom::{CustomRequest, CustomResponse, CustomRoute};
pub use error::{panic_message, ErrorStatus, MLServerError};
pub use mlserver_metrics as metrics;
pub use model::{
    metadata_from_settings, DynModel, Handover, MLModel, ModelContext, ModelMetrics, RequestStream,
    ResponseStream, RuntimeFactory, StreamingModel,
};
pub use native::{Native, NativeModel};
pub use registry::{FallbackResolver, RuntimeRegistry};
pub use source::ModelSource;

/// Settings types runtimes read, re-exported so a runtime crate needs no
/// direct dependency on the settings crate.
pub use mlserver_settings::{ModelParameters, ModelSettings, ModelUri};
