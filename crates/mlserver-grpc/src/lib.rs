//! The V2 gRPC API: `inference.GRPCInferenceService` (data plane and model
//! repository), MLServer's legacy `inference.model_repository` service, and
//! `grpc.health.v1.Health` for Kubernetes probes. Backed by the same
//! [`DataPlane`] and [`ModelRepository`] as REST, so both transports see
//! one registry and fail with the same errors.

mod headers;
mod health;
mod inference;
mod inflate;
mod legacy;
mod metrics;
mod status;
mod trace;
mod trailers;

use std::sync::Arc;

use mlserver_proto::health::health_server::HealthServer;
use mlserver_proto::inference::grpc_inference_service_server::GrpcInferenceServiceServer;
use mlserver_proto::inference::model_repository::model_repository_service_server::ModelRepositoryServiceServer;
use tonic::codec::CompressionEncoding;
use tonic::service::Routes;

use mlserver_core::{DataPlane, ModelRepository};

pub use inflate::{InflateLayer, InflateService, InflatingBody};
pub use metrics::{GrpcMetricFamilies, GrpcObserve, GrpcObserveLayer};
pub use status::to_status;
pub use trace::{TraceLayer, Traced};
pub use trailers::{TrailingMetadataLayer, WithTrailingMetadata};

/// What the gRPC services share.
#[derive(Clone)]
pub struct GrpcState {
    /// The data plane the services call.
    pub dataplane: Arc<DataPlane>,
    /// The repository behind the repository extension.
    pub repository: Arc<ModelRepository>,
}

/// Message size limits from `grpc_max_message_length`: unset means
/// [`DEFAULT_MAX_MESSAGE_BYTES`] (gRPC's own 4 MiB default is too small for
/// real tensors), `-1` (or any negative) means unlimited, as ModelMesh sets
/// it, because its `mm` container enforces the limit.
pub fn max_message_bytes(setting: Option<i64>) -> usize {
    match setting {
        None => DEFAULT_MAX_MESSAGE_BYTES,
        Some(n) if n < 0 => usize::MAX,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

/// The default receive and send limit: as large as the REST body limit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = mlserver_core::DEFAULT_MAX_REQUEST_BYTES;

/// Every gRPC service. Requests may be gzip-compressed: serve the routes
/// behind an [`InflateLayer`], which inflates them with bounds (the
/// services do not inflate themselves). Replies are compressed for clients
/// that accept gzip when `gzip` is on.
pub fn routes(state: GrpcState, max_message_bytes: usize, gzip: bool) -> Routes {
    let inference =
        GrpcInferenceServiceServer::new(inference::InferenceService::new(state.clone()))
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
    let inference = if gzip {
        inference.send_compressed(CompressionEncoding::Gzip)
    } else {
        inference
    };
    let legacy = ModelRepositoryServiceServer::new(legacy::LegacyRepositoryService::new(
        state.repository.clone(),
    ));
    let health = HealthServer::new(health::HealthService::new(state.dataplane.clone()));
    let routes = Routes::new(inference)
        .add_service(legacy)
        .add_service(health);
    add_reflection(routes)
}

/// Server reflection (`grpc.reflection.v1` and the `v1alpha` older clients
/// such as grpcurl ask first) over every package we serve, so tools can
/// list and call the services without `.proto` files.
fn add_reflection(routes: Routes) -> Routes {
    // Each version lists both reflection services, as every service we
    // serve: a client of either sees the whole server.
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(mlserver_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
            .include_reflection_service(false)
    };
    match (builder().build_v1(), builder().build_v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => routes.add_service(v1).add_service(v1alpha),
        // The descriptors are ours, compiled in: a failure is a build bug,
        // and the rest of the server still works without reflection.
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("gRPC server reflection is off: {e}");
            routes
        }
    }
}

/// What the gRPC service is built with besides its state, from settings
/// (the counterpart of `mlserver_rest::RestOptions`).
#[derive(Clone, Default)]
pub struct GrpcOptions {
    /// Message limit in bytes ([`max_message_bytes`] of
    /// `grpc_max_message_length`).
    pub max_message_bytes: usize,
    /// `max_decompression_ratio` for gzip'd messages (see [`InflateLayer`]).
    pub max_decompression_ratio: f64,
    /// `gzip_enabled`: replies compressed for clients that accept gzip.
    pub gzip: bool,
    /// The `grpc_server_*` families (`None`: metrics off, access log only).
    pub metrics: Option<Arc<GrpcMetricFamilies>>,
    /// `tracing_server` is set: a span per call.
    pub trace: bool,
}

/// The gRPC service with its layers: metrics and the access log outermost
/// (they see every call, refusals included), the model's response headers
/// as trailing metadata, spans when tracing is on, bounded inflating of
/// gzip'd messages, then [`routes`].
pub type GrpcService = GrpcObserve<
    WithTrailingMetadata<
        tower::util::Either<Traced<InflateService<Routes>>, InflateService<Routes>>,
    >,
>;

/// Every gRPC service behind its layers (see [`GrpcService`]), assembled
/// here as REST's are in `mlserver_rest::router`.
pub fn service(state: GrpcState, options: GrpcOptions) -> GrpcService {
    tower::ServiceBuilder::new()
        .layer(GrpcObserveLayer {
            metrics: options.metrics,
        })
        .layer(TrailingMetadataLayer)
        .option_layer(options.trace.then(TraceLayer::enabled))
        .layer(InflateLayer::new(
            options.max_message_bytes,
            options.max_decompression_ratio,
        ))
        .service(routes(state, options.max_message_bytes, options.gzip))
}
