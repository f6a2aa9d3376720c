//! REST metrics: starlette_exporter's series (`rest_server_*`, prefix from
//! `metrics_rest_server_prefix`), recorded around each route's handler, and the
//! `/metrics` endpoint served on `metrics_port`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::response::{IntoResponse, Response};
use mlserver_core::ServerMetrics;
use mlserver_metrics::{
    Counter, Family, Gauge, Histogram, MetricsError, Registry, DEFAULT_BUCKETS,
};

/// The `app_name` label of the REST series (starlette_exporter's default).
const APP_NAME: &str = "mlserver";

/// The REST families.
pub struct RestMetricFamilies {
    requests: Family<Counter>,
    duration: Family<Histogram>,
    in_progress: Family<Gauge>,
}

impl RestMetricFamilies {
    /// Registers them on `registry`, named after `prefix`
    /// (`metrics_rest_server_prefix`, `rest_server` by default).
    pub fn new(registry: &Registry, prefix: &str) -> Result<Self, MetricsError> {
        let rest = ["app_name", "method", "path", "status_code"];
        Ok(RestMetricFamilies {
            requests: registry.counter(
                &format!("{prefix}_requests"),
                "Total HTTP requests",
                &rest,
            )?,
            duration: registry.histogram(
                &format!("{prefix}_request_duration_seconds"),
                "HTTP request duration, in seconds",
                &rest,
                DEFAULT_BUCKETS,
            )?,
            in_progress: registry.gauge(
                &format!("{prefix}_requests_in_progress"),
                "Total HTTP requests currently in progress",
                &["app_name", "method"],
            )?,
        })
    }
}

/// A request answered outside the V2 routes (a model's custom endpoint),
/// counted under its route's template as starlette_exporter counts a
/// request its route matched. Templates come from loaded models, so a
/// client cannot add series.
pub(crate) async fn record_unrouted<F: Future<Output = Response>>(
    metrics: Option<&RestMetricFamilies>,
    method: &http::Method,
    template: &str,
    answer: F,
) -> Response {
    let Some(metrics) = metrics else {
        return answer.await;
    };
    let method = METHODS[method_index(method)];
    let started = Instant::now();
    let in_progress = InProgress::start(metrics.in_progress.with(&[APP_NAME, method]));
    let response = answer.await;
    drop(in_progress);
    let status = response.status();
    let labels = [APP_NAME, method, template, status.as_str()];
    metrics.requests.with(&labels).inc();
    metrics
        .duration
        .with(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The metrics server's router: `GET {endpoint}`.
pub fn metrics_router(metrics: Arc<ServerMetrics>, endpoint: &str) -> axum::Router {
    let endpoint = if endpoint.starts_with('/') {
        endpoint.to_owned()
    } else {
        format!("/{endpoint}")
    };
    axum::Router::new().route(
        &endpoint,
        axum::routing::get(move |headers: http::HeaderMap| {
            let metrics = metrics.clone();
            async move {
                let accept = headers
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok());
                let format = mlserver_metrics::Format::negotiate(accept);
                (
                    [(http::header::CONTENT_TYPE, format.content_type())],
                    metrics.render_all_as(format).await,
                )
                    .into_response()
            }
        }),
    )
}

/// REST metrics around one route's handler: starlette_exporter's series,
/// with the route template (axum's `MatchedPath`) as `path`. Health probes
/// are not counted, as in MLServer.
///
/// Each route's handler service is wrapped before axum boxes it, rather
/// than added with `Router::route_layer`: a route layer is one more boxed
/// service per route, which axum clones and whose future it boxes on every
/// request (about 1,000 instructions a call).
#[derive(Clone)]
pub struct RestMetrics<S> {
    inner: S,
    /// `None`: metrics are off.
    series: Option<Arc<RouteSeries>>,
}

impl<S> RestMetrics<S> {
    /// `inner`, the service of one route, recording into `metrics` (none:
    /// passed through). Each wrapped route keeps the series it records into.
    pub fn new(metrics: Option<&Arc<RestMetricFamilies>>, inner: S) -> Self {
        RestMetrics {
            inner,
            series: metrics.map(|metrics| {
                Arc::new(RouteSeries {
                    metrics: metrics.clone(),
                    found: RwLock::default(),
                    in_progress: Default::default(),
                })
            }),
        }
    }
}

/// How many (path, method, status) series a route keeps at hand; others
/// (a route answering many statuses) are looked up in the families.
const ROUTE_SERIES: usize = 32;

/// The series one route has recorded into, kept: a request then records
/// after a scan of a few entries, where finding them in the families
/// builds a key and hashes it, three times a request.
struct RouteSeries {
    metrics: Arc<RestMetricFamilies>,
    found: RwLock<Vec<FoundSeries>>,
    /// `requests_in_progress` by method (see [`METHODS`]).
    in_progress: [OnceLock<Arc<Gauge>>; METHODS.len()],
}

struct FoundSeries {
    // Held, so the template's address (the key) is not reused.
    path: MatchedPath,
    method: &'static str,
    status: http::StatusCode,
    requests: Arc<Counter>,
    duration: Arc<Histogram>,
}

impl RouteSeries {
    fn in_progress(&self, method: usize) -> Arc<Gauge> {
        self.in_progress[method]
            .get_or_init(|| self.metrics.in_progress.with(&[APP_NAME, METHODS[method]]))
            .clone()
    }

    fn record(
        &self,
        path: &MatchedPath,
        method: &'static str,
        status: http::StatusCode,
        secs: f64,
    ) {
        let same = |s: &FoundSeries| {
            std::ptr::eq(s.path.as_str(), path.as_str())
                && std::ptr::eq(s.method, method)
                && s.status == status
        };
        if let Some(s) = self
            .found
            .read()
            .expect("series lock")
            .iter()
            .find(|s| same(s))
        {
            s.requests.inc();
            s.duration.observe(secs);
            return;
        }
        let template = mlserver_template(path.as_str());
        let labels = [APP_NAME, method, &template, status.as_str()];
        let found = FoundSeries {
            path: path.clone(),
            method,
            status,
            requests: self.metrics.requests.with(&labels),
            duration: self.metrics.duration.with(&labels),
        };
        found.requests.inc();
        found.duration.observe(secs);
        let mut kept = self.found.write().expect("series lock");
        if kept.len() < ROUTE_SERIES && !kept.iter().any(same) {
            kept.push(found);
        }
    }
}

/// A REST request being counted: what its series need once it answers.
struct RestRecord {
    series: Arc<RouteSeries>,
    // The route is an Arc'd template: no copy.
    path: MatchedPath,
    method: &'static str,
    started: Instant,
    _in_progress: InProgress,
}

impl RestRecord {
    fn finish(self, status: http::StatusCode) {
        let secs = self.started.elapsed().as_secs_f64();
        self.series.record(&self.path, self.method, status, secs);
    }
}

impl<S, B> tower::Service<http::Request<B>> for RestMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RestMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let record = self
            .series
            .as_ref()
            .and_then(|series| {
                let path = request.extensions().get::<MatchedPath>()?;
                Some((series, path))
            })
            .filter(|(_, p)| {
                let p = p.as_str();
                p != "/v2/health/live" && p != "/v2/health/ready"
            })
            .map(|(series, path)| {
                let method = method_index(request.method());
                RestRecord {
                    series: series.clone(),
                    path: path.clone(),
                    method: METHODS[method],
                    started: Instant::now(),
                    _in_progress: InProgress::start(series.in_progress(method)),
                }
            });
        RestMetricsFuture {
            inner: self.inner.call(request),
            record,
        }
    }
}

/// The `method` labels: the standard methods by name, any other as
/// `other`. A method is whatever token a client sends, so naming each one
/// would let any caller add series without end (starlette_exporter, under
/// MLServer, does: 19 series per made-up method).
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT", "other",
];

/// The index of a request method's label in [`METHODS`].
fn method_index(method: &http::Method) -> usize {
    use http::Method;
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::HEAD => 4,
        Method::OPTIONS => 5,
        Method::PATCH => 6,
        Method::TRACE => 7,
        Method::CONNECT => 8,
        _ => 9,
    }
}

pin_project_lite::pin_project! {
    /// The route's future; records the request when it answers. Dropped
    /// unanswered (the client went away), only the in-progress gauge moves.
    pub struct RestMetricsFuture<F> {
        #[pin]
        inner: F,
        record: Option<RestRecord>,
    }
}

impl<F, E> Future for RestMetricsFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Some(record), Ok(response)) = (this.record.take(), &result) {
            record.finish(response.status());
        }
        Poll::Ready(result)
    }
}

/// Counts a request in progress until dropped, also when the client goes
/// away and the handler is cancelled.
struct InProgress(Arc<Gauge>);

impl InProgress {
    fn start(gauge: Arc<Gauge>) -> Self {
        gauge.inc();
        InProgress(gauge)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A V2 route's template as MLServer's FastAPI routes name their
/// parameters (`/v2/models/{model_name}/versions/{model_version}/infer`),
/// so `path` labels (and the dashboards keyed on them) match MLServer's.
fn mlserver_template(path: &str) -> std::borrow::Cow<'_, str> {
    if path.contains("/v2/") && path.contains("{name}") {
        path.replace("{name}", "{model_name}")
            .replace("{version}", "{model_version}")
            .into()
    } else {
        path.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_use_starlette_exporters_names() {
        let registry = Registry::new();
        let families = RestMetricFamilies::new(&registry, "rest_server").unwrap();
        // Families appear with their first sample.
        assert_eq!(registry.render(), "");
        let labels = ["mlserver", "POST", "/v2/models/{model_name}/infer", "200"];
        families.requests.with(&labels).inc();
        families.duration.with(&labels).observe(0.01);
        let text = registry.render();
        assert!(
            text.contains("# TYPE rest_server_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE rest_server_requests_total counter"),
            "{text}"
        );
    }

    #[test]
    fn path_labels_name_parameters_as_mlserver_does() {
        for (ours, theirs) in [
            ("/v2/models/{name}/infer", "/v2/models/{model_name}/infer"),
            (
                "/v2/models/{name}/versions/{version}/infer",
                "/v2/models/{model_name}/versions/{model_version}/infer",
            ),
            (
                "/prefix/v2/repository/models/{name}/load",
                "/prefix/v2/repository/models/{model_name}/load",
            ),
            ("/v2", "/v2"),
            ("/my/{name}/handler", "/my/{name}/handler"),
        ] {
            assert_eq!(mlserver_template(ours), theirs);
        }
    }
}
