//! REST metrics: starlette_exporter's series (`rest_server_*`, prefix from
//! `metrics_rest_server_prefix`), recorded by a route layer, and the
//! `/metrics` endpoint served on `metrics_port`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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
            requests: registry.counter(&format!("{prefix}_requests"), "HTTP requests", &rest)?,
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

/// REST metrics (a route layer, on matched routes): starlette_exporter's
/// series, with the route template as `path`. Health probes are not
/// counted, as in MLServer. A plain tower layer rather than
/// `middleware::from_fn`, which clones the route and boxes two futures per
/// request.
#[derive(Clone)]
pub struct RestMetricsLayer {
    /// The families it records into.
    pub metrics: Arc<RestMetricFamilies>,
}

impl<S> tower::Layer<S> for RestMetricsLayer {
    type Service = RestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RestMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RestMetrics<S> {
    inner: S,
    metrics: Arc<RestMetricFamilies>,
}

/// A REST request being counted: what its series need once it answers.
struct RestRecord {
    metrics: Arc<RestMetricFamilies>,
    // The route is an Arc'd template: no copy.
    path: MatchedPath,
    method: &'static str,
    started: Instant,
    _in_progress: InProgress,
}

impl RestRecord {
    fn finish(self, status: http::StatusCode) {
        let labels = [APP_NAME, self.method, self.path.as_str(), status.as_str()];
        self.metrics.requests.with(&labels).inc();
        self.metrics
            .duration
            .with(&labels)
            .observe(self.started.elapsed().as_secs_f64());
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
        let path = request.extensions().get::<MatchedPath>().cloned();
        let record = path
            .filter(|p| {
                let p = p.as_str();
                p != "/v2/health/live" && p != "/v2/health/ready"
            })
            .map(|path| {
                let method = method_label(request.method());
                let gauge = self.metrics.in_progress.with(&[APP_NAME, method]);
                RestRecord {
                    metrics: self.metrics.clone(),
                    path,
                    method,
                    started: Instant::now(),
                    _in_progress: InProgress::start(gauge),
                }
            });
        RestMetricsFuture {
            inner: self.inner.call(request),
            record,
        }
    }
}

/// The `method` label: the standard methods by name, any other as
/// `other`. A method is whatever token a client sends, so naming each one
/// would let any caller add series without end (starlette_exporter, under
/// MLServer, does: 19 series per made-up method).
fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_use_starlette_exporters_names() {
        let registry = Registry::new();
        RestMetricFamilies::new(&registry, "rest_server").unwrap();
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
}
