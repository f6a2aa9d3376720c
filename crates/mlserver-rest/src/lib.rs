//! The V2 REST API (axum), MLServer's routes: a thin adapter that decodes
//! HTTP requests, calls the serving core's [`DataPlane`] and encodes its
//! answers, with its own status mapping ([`ApiError`]).

mod cors;
mod error;
mod headers;
mod metrics;
mod openapi;
mod trace;

pub use body::BodyLimits;
pub use cors::{cors_layer, CorsError};
pub use error::ApiError;
pub use metrics::{metrics_router, RestMetricFamilies, RestMetrics};
pub use trace::TraceLayer;

mod body;
mod handlers;

use std::sync::Arc;

use std::time::Instant;

use axum::extract::{Request, State};
use axum::handler::{Handler, HandlerService};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get_service, post_service, MethodRouter};
use axum::Router;
use tower::Layer;
use tower_http::compression::predicate::{And, NotForContentType, Predicate, SizeAbove};
use tower_http::compression::{Compression, CompressionLayer};

use crate::error::error_response;
use mlserver_core::{DataPlane, ModelRepository};

/// Default limit on a request body, compressed or not.
pub const DEFAULT_MAX_BODY_BYTES: usize = mlserver_core::DEFAULT_MAX_REQUEST_BYTES;

/// What the REST handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The data plane the handlers call.
    pub dataplane: Arc<DataPlane>,
    /// The repository behind the repository extension.
    pub repository: Arc<ModelRepository>,
    /// The limits on a request body, compressed or not.
    pub body_limits: BodyLimits,
}

/// What wraps the REST routes, from settings.
#[derive(Clone, Default)]
pub struct RestOptions {
    /// Compresses responses of 500 bytes or more for clients that accept
    /// gzip (MLServer's `gzip_enabled`).
    pub gzip: bool,
    /// MLServer's `cors_settings`, as a layer (`None`: no CORS headers).
    pub cors: Option<tower_http::cors::CorsLayer>,
    /// The `rest_server_*` families (`None`: metrics off).
    pub metrics: Option<Arc<RestMetricFamilies>>,
    /// MLServer's `root_path`: the routes answer under it too.
    pub root_path: String,
    /// `tracing_server` is set: a span per request (see `crate::trace`).
    pub trace: bool,
}

/// Declares the V2 routes once, as `path => method(handler)`: the router
/// is built from the table ([`v2_router`]) and the paths are data
/// ([`V2_PATHS`]) for the trailing-slash redirect, the API document's test
/// and the check that keeps models' custom routes off them.
macro_rules! v2_routes {
    ($($path:literal => $method:ident($handler:ident)),* $(,)?) => {
        /// The V2 API's REST routes, every one this adapter serves: no
        /// model's custom route may take one (give them to
        /// `mlserver_core::ModelRegistry::with_reserved_routes`).
        pub const V2_PATHS: &[&str] = &[$($path),*];

        fn v2_router(e: &Endpoints<'_>) -> Router<AppState> {
            use handlers::*;
            Router::new()$(.route($path, e.$method($handler)))*
        }
    };
}

v2_routes! {
    "/v2/health/live" => get(live),
    "/v2/health/ready" => get(ready),
    "/v2" => get(server_metadata),
    "/v2/models/{name}" => get(model_metadata),
    "/v2/models/{name}/versions/{version}" => get(model_version_metadata),
    "/v2/models/{name}/ready" => get(model_ready),
    "/v2/models/{name}/versions/{version}/ready" => get(model_version_ready),
    "/v2/models/{name}/infer" => post(infer),
    "/v2/models/{name}/generate" => post(infer),
    "/v2/models/{name}/versions/{version}/infer" => post(infer_version),
    "/v2/models/{name}/versions/{version}/generate" => post(infer_version),
    "/v2/repository/index" => post(repository_index),
    "/v2/repository/models/{name}/load" => post(repository_load),
    "/v2/repository/models/{name}/unload" => post(repository_unload),
    "/v2/models/{name}/infer_stream" => post(infer_stream),
    "/v2/models/{name}/generate_stream" => post(infer_stream),
    "/v2/models/{name}/versions/{version}/infer_stream" => post(infer_stream_version),
    "/v2/models/{name}/versions/{version}/generate_stream" => post(infer_stream_version),
    "/v2/models/stats" => get(all_statistics),
    "/v2/models/{name}/stats" => get(model_statistics),
    "/v2/models/{name}/versions/{version}/stats" => get(model_version_statistics),
    "/v2/models/{name}/config" => get(model_config),
    "/v2/models/{name}/versions/{version}/config" => get(model_version_config),
    "/v2/docs" => get(docs),
    "/v2/docs/dataplane.json" => get(openapi_document),
    "/v2/models/{name}/docs" => get(model_docs),
    "/v2/models/{name}/docs/dataplane.json" => get(model_openapi_document),
    "/v2/models/{name}/versions/{version}/docs" => get(model_version_docs),
    "/v2/models/{name}/versions/{version}/docs/dataplane.json" => get(model_version_openapi_document),
    "/v2/runtimes" => get(runtimes),
}

/// The REST service: the router, compressed when `gzip_enabled`.
pub type RestService = Compression<Router, GzipPolicy>;

/// Which responses are gzipped: with `gzip_enabled`, 500 bytes or more and
/// neither gRPC nor server-sent events (MLServer's `GZipMiddleware` minimum
/// size; a stream must reach the client as it is written).
#[derive(Clone)]
pub struct GzipPolicy {
    enabled: bool,
    sizes: And<And<SizeAbove, NotForContentType>, NotForContentType>,
}

impl GzipPolicy {
    fn new(enabled: bool) -> Self {
        GzipPolicy {
            enabled,
            sizes: SizeAbove::new(500)
                .and(NotForContentType::GRPC)
                .and(NotForContentType::SSE),
        }
    }
}

impl Predicate for GzipPolicy {
    fn should_compress<B>(&self, response: &http::Response<B>) -> bool
    where
        B: axum::body::HttpBody,
    {
        self.enabled && self.sizes.should_compress(response)
    }
}

/// The V2 routes' handlers, each wrapped in the REST metrics before axum
/// boxes it (see [`RestMetrics`]).
struct Endpoints<'a> {
    state: &'a AppState,
    metrics: Option<&'a Arc<RestMetricFamilies>>,
}

impl Endpoints<'_> {
    fn get<H: Handler<T, AppState>, T: 'static>(&self, handler: H) -> MethodRouter<AppState> {
        self.with_405(get_service(self.metered(handler)))
    }

    fn post<H: Handler<T, AppState>, T: 'static>(&self, handler: H) -> MethodRouter<AppState> {
        self.with_405(post_service(self.metered(handler)))
    }

    fn metered<H: Handler<T, AppState>, T: 'static>(
        &self,
        handler: H,
    ) -> RestMetrics<HandlerService<H, T, AppState>> {
        RestMetrics::new(self.metrics, handler.with_state(self.state.clone()))
    }

    /// Other methods on the route: a 405, not counted (starlette_exporter
    /// counts only requests their route matched fully, under MLServer).
    fn with_405(&self, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
        route.fallback_service(method_not_allowed.with_state(self.state.clone()))
    }
}

/// The REST service. With a `root_path` (MLServer's setting, for a proxy
/// that serves the API under a prefix), every route also answers under it,
/// as Starlette routes a request whose path starts with its root path.
pub fn router(state: AppState, options: RestOptions) -> RestService {
    let e = Endpoints {
        state: &state,
        metrics: options.metrics.as_ref(),
    };
    let routes = v2_router(&e);
    let prefix = root_prefix(&options.root_path);
    let routes = match &prefix {
        Some(prefix) => Router::new().nest(prefix, routes.clone()).merge(routes),
        None => routes,
    };
    let metrics = options.metrics.clone();
    let router = routes
        .fallback(move |State(state): State<AppState>, request: Request| {
            not_found(state, request, prefix.clone(), metrics.clone())
        })
        .with_state(state);
    let router = if options.trace {
        router.route_layer(TraceLayer::enabled())
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
    let router = if tracing::enabled!(target: "mlserver_access", tracing::Level::INFO) {
        router.layer(middleware::from_fn(access_log))
    } else {
        router
    };
    // Around the router rather than through `Router::layer`, which wraps
    // and boxes every route once more. The layer is there with gzip off
    // too (it then compresses nothing), so the service has one type.
    CompressionLayer::new()
        .compress_when(GzipPolicy::new(options.gzip))
        .layer(router)
}

/// One line per request at target `mlserver_access`: method, path, status
/// and latency (shown with `debug`, as MLServer shows uvicorn's access log,
/// or with `RUST_LOG=mlserver_access=info`).
///
/// A health probe that succeeds (`GET /v2/health/live`, `.../ready`, a
/// model's `ready`) logs at `mlserver_access::probe` instead, which the log
/// setup turns off unless `debug` is on, as the ODH fork filters them: a
/// kubelet probing every few seconds would drown the requests.
async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    if method == axum::http::Method::GET && status < 400 && is_health_probe(&path) {
        tracing::info!(target: "mlserver_access::probe", "{method} {path} {status} {elapsed:.3}ms");
    } else {
        tracing::info!(target: "mlserver_access", "{method} {path} {status} {elapsed:.3}ms");
    }
    response
}

/// Whether `path` ends as a health or readiness route does.
fn is_health_probe(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').rsplit('/').take(5).collect();
    matches!(
        segments.as_slice(),
        ["live" | "ready", "health", "v2", ..]
            | ["ready", _, "models", "v2", ..]
            | ["ready", _, "versions", _, "models", ..]
    )
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
    V2_PATHS.iter().any(|template| {
        let parts: Vec<&str> = template.split('/').collect();
        parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
    })
}

/// A path that is no V2 route: a loaded model's custom endpoint, else a
/// 404, except a route with a trailing slash, which MLServer (Starlette's
/// `redirect_slashes`) answers with a 307 to the route.
async fn not_found(
    state: AppState,
    request: Request,
    prefix: Option<String>,
    metrics: Option<Arc<RestMetricFamilies>>,
) -> Response {
    let (parts, body) = request.into_parts();
    let uri = &parts.uri;
    let path = uri.path();
    let custom_path = prefix
        .as_deref()
        .and_then(|p| path.strip_prefix(p))
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path);
    let custom = state.dataplane.registry().custom_routes();
    if custom.serves_path(custom_path) {
        return match custom.find(parts.method.as_str(), custom_path) {
            Some(target) => {
                let template = target.route.path.clone();
                let answer = custom_endpoint(&state, target, custom_path, &parts, body);
                metrics::record_unrouted(metrics.as_deref(), &parts.method, &template, answer).await
            }
            // A method the route does not have: a 405, not counted.
            None => method_not_allowed().await,
        };
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.len() < path.len() && !trimmed.is_empty() && is_route(trimmed, prefix.as_deref()) {
        let host = parts
            .headers
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

/// A custom endpoint's call: the request as it came, the model's answer as
/// it gave it.
async fn custom_endpoint(
    state: &AppState,
    target: mlserver_core::CustomTarget,
    path: &str,
    parts: &http::request::Parts,
    body: axum::body::Body,
) -> Response {
    let charge = parts
        .extensions
        .get::<std::sync::Arc<mlserver_core::budget::Charge>>();
    let body = match body::read_body(
        &parts.headers,
        body,
        state.body_limits,
        charge.map(|c| &**c),
    )
    .await
    {
        Ok(b) => b,
        Err(e) => return crate::error::ApiError(e).into_response(),
    };
    // The body goes on inflated: its headers say so, or MLServer's
    // `Request.body()` in the handler would inflate it again.
    let inflated = parts.headers.contains_key(http::header::CONTENT_ENCODING);
    let headers = parts
        .headers
        .iter()
        .filter(|(k, _)| !inflated || *k != http::header::CONTENT_ENCODING)
        .filter_map(|(k, v)| {
            let v = if inflated && k == http::header::CONTENT_LENGTH {
                body.len().to_string()
            } else {
                v.to_str().ok()?.to_owned()
            };
            Some((k.as_str().to_owned(), v))
        })
        .collect();
    let query = parts.uri.query().unwrap_or_default();
    match state
        .dataplane
        .custom(target, path, query, headers, body)
        .await
    {
        Ok(answer) => {
            let mut response = Response::new(axum::body::Body::from(answer.body));
            *response.status_mut() =
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for (k, v) in answer.headers {
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::try_from(k),
                    http::HeaderValue::try_from(v),
                ) {
                    response.headers_mut().append(k, v);
                }
            }
            response
        }
        Err(e) => crate::error::ApiError(e).into_response(),
    }
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

    #[test]
    fn health_probes_are_told_apart() {
        for probe in [
            "/v2/health/live",
            "/v2/health/ready",
            "/v2/models/iris/ready",
            "/v2/models/iris/versions/1/ready",
            "/api/v2/health/ready/",
        ] {
            assert!(is_health_probe(probe), "{probe}");
        }
        for other in ["/v2/models/iris/infer", "/v2/models/ready", "/v2", "/ready"] {
            assert!(!is_health_probe(other), "{other}");
        }
    }
}
