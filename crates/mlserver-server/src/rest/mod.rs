//! The V2 REST API (axum), MLServer's routes.

mod body;
mod handlers;

use std::sync::Arc;

use std::time::Instant;

use axum::extract::Request;
use axum::http::StatusCode;
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
    /// MLServer's `root_path`: the routes answer under it too.
    pub root_path: String,
}

/// The REST routes' templates, for the trailing-slash redirect.
const ROUTES: &[&str] = &[
    "/v2/health/live",
    "/v2/health/ready",
    "/v2",
    "/v2/models/{name}",
    "/v2/models/{name}/versions/{version}",
    "/v2/models/{name}/ready",
    "/v2/models/{name}/versions/{version}/ready",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/generate",
    "/v2/models/{name}/versions/{version}/infer",
    "/v2/models/{name}/versions/{version}/generate",
    "/v2/repository/index",
    "/v2/repository/models/{name}/load",
    "/v2/repository/models/{name}/unload",
    "/v2/models/{name}/infer_stream",
    "/v2/models/{name}/generate_stream",
    "/v2/models/{name}/versions/{version}/infer_stream",
    "/v2/models/{name}/versions/{version}/generate_stream",
];

/// The REST router. With a `root_path` (MLServer's setting, for a proxy
/// that serves the API under a prefix), every route also answers under it,
/// as Starlette routes a request whose path starts with its root path.
pub fn router(state: AppState, options: RestOptions) -> Router {
    use handlers::*;
    let routes = Router::new()
        .route(ROUTES[0], get(live))
        .route(ROUTES[1], get(ready))
        .route(ROUTES[2], get(server_metadata))
        .route(ROUTES[3], get(model_metadata))
        .route(ROUTES[4], get(model_version_metadata))
        .route(ROUTES[5], get(model_ready))
        .route(ROUTES[6], get(model_version_ready))
        .route(ROUTES[7], post(infer))
        .route(ROUTES[8], post(infer))
        .route(ROUTES[9], post(infer_version))
        .route(ROUTES[10], post(infer_version))
        .route(ROUTES[11], post(repository_index))
        .route(ROUTES[12], post(repository_load))
        .route(ROUTES[13], post(repository_unload))
        .route(ROUTES[14], post(infer_stream))
        .route(ROUTES[15], post(infer_stream))
        .route(ROUTES[16], post(infer_stream_version))
        .route(ROUTES[17], post(infer_stream_version));
    let prefix = root_prefix(&options.root_path);
    let routes = match &prefix {
        Some(prefix) => Router::new().nest(prefix, routes.clone()).merge(routes),
        None => routes,
    };
    let router = routes
        .fallback(move |request: Request| not_found(request, prefix.clone()))
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

/// `root_path` as a route prefix: `/prefix`, or `None` for none.
fn root_prefix(root_path: &str) -> Option<String> {
    let trimmed = root_path.trim_matches('/');
    (!trimmed.is_empty()).then(|| format!("/{trimmed}"))
}

/// Whether `path` is one of the routes (under `prefix`, or not).
fn is_route(path: &str, prefix: Option<&str>) -> bool {
    let path = prefix
        .and_then(|p| path.strip_prefix(p))
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    ROUTES.iter().any(|template| {
        let parts: Vec<&str> = template.split('/').collect();
        parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
    })
}

/// An unknown path is a 404, except one that is a route with a trailing
/// slash: MLServer (Starlette's `redirect_slashes`) answers those with a 307
/// to the route.
async fn not_found(request: Request, prefix: Option<String>) -> Response {
    let uri = request.uri();
    let path = uri.path();
    let trimmed = path.trim_end_matches('/');
    if trimmed.len() < path.len() && !trimmed.is_empty() && is_route(trimmed, prefix.as_deref()) {
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let location = format!("http://{host}{trimmed}{query}");
        if let Ok(location) = http::HeaderValue::try_from(location) {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            response
                .headers_mut()
                .insert(http::header::LOCATION, location);
            return response;
        }
    }
    error_response(
        StatusCode::NOT_FOUND,
        format!("Not Found: no route for {path}"),
    )
}

async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_their_templates_under_a_prefix_too() {
        assert!(is_route("/v2/models/iris", None));
        assert!(is_route("/v2/models/iris/versions/1/infer", None));
        assert!(!is_route("/v2/models", None));
        assert!(!is_route("/v2/models//infer", None));
        assert!(is_route("/api/v2/models/iris", Some("/api")));
        assert!(is_route("/v2/models/iris", Some("/api")));
        assert_eq!(root_prefix("/api/"), Some("/api".into()));
        assert_eq!(root_prefix("/"), None);
        assert_eq!(root_prefix(""), None);
    }
}
