//! The V2 REST API (axum), MLServer's routes.

mod body;
mod handlers;

use std::sync::Arc;

use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;

use crate::dataplane::DataPlane;
use crate::error::error_response;
use crate::repository::ModelRepository;

/// Default limit on a request body, compressed or not.
pub const DEFAULT_MAX_BODY_BYTES: usize = 512 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub dataplane: Arc<DataPlane>,
    pub repository: Arc<ModelRepository>,
    pub max_body_bytes: usize,
}

/// The REST router. `gzip` compresses responses of 500 bytes or more for
/// clients that accept gzip (MLServer's `gzip_enabled`).
pub fn router(state: AppState, gzip: bool) -> Router {
    use handlers::*;
    let router = Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_version_metadata),
        )
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_version_ready),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/generate", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version),
        )
        .route(
            "/v2/models/{name}/versions/{version}/generate",
            post(infer_version),
        )
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{name}/load", post(repository_load))
        .route(
            "/v2/repository/models/{name}/unload",
            post(repository_unload),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    if gzip {
        let predicate = SizeAbove::new(500)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::SSE);
        router.layer(CompressionLayer::new().compress_when(predicate))
    } else {
        router
    }
}

async fn not_found(uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!("Not Found: no route for {}", uri.path()),
    )
}

async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}
