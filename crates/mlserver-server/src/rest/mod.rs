//! The V2 REST API (axum), MLServer's routes.

mod body;
mod handlers;

use std::sync::Arc;

use std::time::Instant;

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;

use crate::dataplane::DataPlane;
use crate::error::error_response;
use crate::metrics::{RestMetricsLayer, ServerMetrics};
use crate::repository::ModelRepository;

/// Default limit on a request body, compressed or not.
pub const DEFAULT_MAX_BODY_BYTES: usize = 512 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub dataplane: Arc<DataPlane>,
    pub repository: Arc<ModelRepository>,
    pub max_body_bytes: usize,
}

/// What wraps the REST routes, from settings.
#[derive(Clone, Default)]
pub struct RestOptions {
    /// Compresses responses of 500 bytes or more for clients that accept
    /// gzip (MLServer's `gzip_enabled`).
    pub gzip: bool,
    pub cors: Option<tower_http::cors::CorsLayer>,
    pub metrics: Option<Arc<ServerMetrics>>,
}

/// The REST router.
pub fn router(state: AppState, options: RestOptions) -> Router {
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
    let router = match options.metrics {
        // On matched routes only, where the route template is known.
        Some(metrics) => router.route_layer(RestMetricsLayer { metrics }),
        None => router,
    };
    let router = if options.gzip {
        let predicate = SizeAbove::new(500)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::SSE);
        router.layer(CompressionLayer::new().compress_when(predicate))
    } else {
        router
    };
    let router = match options.cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    // Logging is set up before the server starts and never changes, so the
    // access log's middleware (a boxed future per request) is only there
    // when its lines would be written.
    if tracing::enabled!(target: "mlserver_access", tracing::Level::INFO) {
        router.layer(middleware::from_fn(access_log))
    } else {
        router
    }
}

/// One line per request at target `mlserver_access`: method, path, status
/// and latency (shown with `debug`, as MLServer shows uvicorn's access log,
/// or with `RUST_LOG=mlserver_access=info`).
async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        target: "mlserver_access",
        "{method} {path} {} {:.3}ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    response
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
