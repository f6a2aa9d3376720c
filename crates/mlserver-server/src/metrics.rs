//! MLServer's Prometheus metrics: the families, the REST middleware, the
//! gRPC layer and the `/metrics` endpoint served on `metrics_port`.
//!
//! Unlike MLServer (#1151), every family, including `batch_request_queue`,
//! `parallel_request_queue` and runtimes' custom metrics, is exposed whatever
//! `parallel_workers` is: there is one process and one registry.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use mlserver_metrics::{Counter, Family, Gauge, Histogram, Registry, Summary, DEFAULT_BUCKETS};

/// The `app_name` label of the REST series (starlette_exporter's default).
const APP_NAME: &str = "mlserver";

/// Every series the server itself records.
pub struct ServerMetrics {
    registry: Registry,
    infer_success: Family<Counter>,
    infer_failure: Family<Counter>,
    infer_duration: Family<Summary>,
    batch_queue: Family<Histogram>,
    parallel_queue: Arc<Histogram>,
    rest_requests: Family<Counter>,
    rest_duration: Family<Histogram>,
    rest_in_progress: Family<Gauge>,
    grpc_started: Family<Counter>,
    grpc_handled: Family<Counter>,
    grpc_handling: Family<Histogram>,
    load_success: Family<Counter>,
    load_failure: Family<Counter>,
    unloads: Family<Counter>,
    loaded: Arc<Gauge>,
}

impl ServerMetrics {
    /// Registers MLServer's families; REST ones take `rest_prefix`
    /// (`metrics_rest_server_prefix`, `rest_server` by default).
    pub fn new(rest_prefix: &str) -> Result<Self, mlserver_metrics::MetricsError> {
        let r = Registry::new();
        let model = ["model", "version"];
        let rest = ["app_name", "method", "path", "status_code"];
        let grpc = ["grpc_type", "grpc_service", "grpc_method"];
        let grpc_code = ["grpc_type", "grpc_service", "grpc_method", "grpc_code"];
        Ok(ServerMetrics {
            infer_success: r.counter(
                "model_infer_request_success",
                "Model infer request success count",
                &model,
            )?,
            infer_failure: r.counter(
                "model_infer_request_failure",
                "Model infer request failure count",
                &model,
            )?,
            infer_duration: r.summary(
                "model_infer_request_duration",
                "Model infer request duration",
                &model,
            )?,
            batch_queue: r.histogram(
                "batch_request_queue",
                "counter of request queue batch size",
                &["model_name", "model_version"],
                DEFAULT_BUCKETS,
            )?,
            parallel_queue: r
                .histogram(
                    "parallel_request_queue",
                    "counter of request queue size for workers",
                    &[],
                    DEFAULT_BUCKETS,
                )?
                .with(&[]),
            rest_requests: r.counter(
                &format!("{rest_prefix}_requests"),
                "HTTP requests",
                &rest,
            )?,
            rest_duration: r.histogram(
                &format!("{rest_prefix}_request_duration_seconds"),
                "HTTP request duration, in seconds",
                &rest,
                DEFAULT_BUCKETS,
            )?,
            rest_in_progress: r.gauge(
                &format!("{rest_prefix}_requests_in_progress"),
                "Total HTTP requests currently in progress",
                &["app_name", "method"],
            )?,
            grpc_started: r.counter(
                "grpc_server_started",
                "Total number of RPCs started on the server.",
                &grpc,
            )?,
            grpc_handled: r.counter(
                "grpc_server_handled",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &grpc_code,
            )?,
            grpc_handling: r.histogram(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                &grpc,
                DEFAULT_BUCKETS,
            )?,
            load_success: r.counter(
                "model_load_success",
                "Model loads (and reloads) that succeeded",
                &model,
            )?,
            load_failure: r.counter("model_load_failure", "Model loads that failed", &model)?,
            unloads: r.counter("model_unload", "Model versions unloaded", &model)?,
            loaded: r
                .gauge("loaded_models", "Model versions loaded and serving", &[])?
                .with(&[]),
            registry: r,
        })
    }

    /// The registry, also given to runtimes for their custom metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one inference call. `version` is the version the caller
    /// named, `None` rendering as `"None"`, as MLServer labels it.
    pub fn observe_infer(&self, model: &str, version: Option<&str>, started: Instant, ok: bool) {
        let labels = [model, version.unwrap_or("None")];
        if ok {
            self.infer_success.with(&labels).inc();
        } else {
            self.infer_failure.with(&labels).inc();
        }
        self.infer_duration
            .with(&labels)
            .observe(started.elapsed().as_secs_f64());
    }

    /// `batch_request_queue` for one model version (`""` when unversioned).
    pub fn batch_queue(&self, model: &str, version: Option<&str>) -> Arc<Histogram> {
        self.batch_queue.with(&[model, version.unwrap_or("")])
    }

    pub fn parallel_queue(&self) -> Arc<Histogram> {
        self.parallel_queue.clone()
    }

    pub fn observe_load(&self, model: &str, version: Option<&str>, ok: bool) {
        let labels = [model, version.unwrap_or("")];
        if ok {
            self.load_success.with(&labels).inc();
        } else {
            self.load_failure.with(&labels).inc();
        }
    }

    pub fn observe_unload(&self, model: &str, version: Option<&str>) {
        self.unloads.with(&[model, version.unwrap_or("")]).inc();
    }

    pub fn set_loaded(&self, count: usize) {
        self.loaded.set(count as i64);
    }

    /// The Prometheus text exposition of the server's own families.
    pub fn render(&self) -> String {
        self.registry.render()
    }

    /// The server's families and those of other processes (the Python
    /// workers' `mlserver.register`/`log` and `prometheus_client` metrics).
    pub async fn render_all(&self) -> String {
        self.registry.render_all().await
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
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render_all().await,
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
    pub metrics: Arc<ServerMetrics>,
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
    metrics: Arc<ServerMetrics>,
}

/// A REST request being counted: what its series need once it answers.
struct RestRecord {
    metrics: Arc<ServerMetrics>,
    // Both share (an Arc'd template, a standard method): no copies.
    path: MatchedPath,
    method: http::Method,
    started: Instant,
    _in_progress: InProgress,
}

impl RestRecord {
    fn finish(self, status: http::StatusCode) {
        let labels = [
            APP_NAME,
            self.method.as_str(),
            self.path.as_str(),
            status.as_str(),
        ];
        self.metrics.rest_requests.with(&labels).inc();
        self.metrics
            .rest_duration
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
                let method = request.method().clone();
                let gauge = self
                    .metrics
                    .rest_in_progress
                    .with(&[APP_NAME, method.as_str()]);
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

/// A tower layer for the gRPC server: py_grpc_prometheus' series (when
/// metrics are on) and the access log line of each call.
#[derive(Clone)]
pub struct GrpcObserveLayer {
    pub metrics: Option<Arc<ServerMetrics>>,
}

impl<S> tower::Layer<S> for GrpcObserveLayer {
    type Service = GrpcObserve<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcObserve {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcObserve<S> {
    inner: S,
    metrics: Option<Arc<ServerMetrics>>,
}

/// What is needed to record a call once its status is known.
struct CallRecord {
    metrics: Option<Arc<ServerMetrics>>,
    grpc_type: &'static str,
    service: &'static str,
    method: &'static str,
    started: Instant,
}

impl CallRecord {
    fn finish(self, code: Option<i32>) {
        let code_name = code.map_or("UNKNOWN", code_name);
        let elapsed = self.started.elapsed();
        tracing::info!(
            target: "mlserver_access",
            "gRPC /{}/{} {} {:.3}ms",
            self.service,
            self.method,
            code_name,
            elapsed.as_secs_f64() * 1000.0
        );
        if let Some(m) = &self.metrics {
            let labels = [self.grpc_type, self.service, self.method];
            m.grpc_handled
                .with(&[self.grpc_type, self.service, self.method, code_name])
                .inc();
            m.grpc_handling.with(&labels).observe(elapsed.as_secs_f64());
        }
    }
}

/// The services and methods served, as metric labels. Any other path is
/// counted as `unknown`: what clients send must not create series without
/// bound.
const KNOWN_CALLS: &[(&str, &[&str])] = &[
    (
        "inference.GRPCInferenceService",
        &[
            "ServerLive",
            "ServerReady",
            "ModelReady",
            "ServerMetadata",
            "ModelMetadata",
            "ModelInfer",
            "ModelStreamInfer",
            "RepositoryIndex",
            "RepositoryModelLoad",
            "RepositoryModelUnload",
        ],
    ),
    ("grpc.health.v1.Health", &["Check", "Watch"]),
    (
        "inference.model_repository.ModelRepositoryService",
        &[
            "RepositoryIndex",
            "RepositoryModelLoad",
            "RepositoryModelUnload",
        ],
    ),
];

/// `/service/method` as static labels (no copies per call).
fn call_labels(path: &str) -> (&'static str, &'static str) {
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .unwrap_or(("", ""));
    KNOWN_CALLS
        .iter()
        .find(|(s, _)| *s == service)
        .and_then(|(s, methods)| Some((*s, *methods.iter().find(|m| **m == method)?)))
        .unwrap_or(("unknown", "unknown"))
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    // A static name: a `&str` key would be parsed on every call.
    static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
    headers
        .get(&GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for GrpcObserve<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Unpin + Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = call_labels(request.uri().path());
        let grpc_type = match method {
            "ModelStreamInfer" => "bidi_stream",
            "Watch" => "server_stream",
            _ => "unary",
        };
        let record = CallRecord {
            metrics: self.metrics.clone(),
            grpc_type,
            service,
            method,
            started: Instant::now(),
        };
        if let Some(m) = &record.metrics {
            m.grpc_started
                .with(&[grpc_type, record.service, record.method])
                .inc();
        }
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            // A trailers-only reply (most errors) carries its status in the
            // headers; otherwise it comes in the trailers at the body's end.
            let record = match grpc_status(response.headers()) {
                Some(code) => {
                    record.finish(Some(code));
                    None
                }
                None => Some(record),
            };
            Ok(response.map(|body| ObservedBody {
                inner: body,
                record,
            }))
        })
    }
}

/// A response body that records its call when the trailers (the gRPC status)
/// go by, or when it is dropped without them (a cancelled call).
pub struct ObservedBody<B> {
    inner: B,
    record: Option<CallRecord>,
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.finish(Some(1)); // CANCELLED: the client went away.
        }
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for ObservedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(record) = self.record.take() {
                        record.finish(grpc_status(trailers));
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(record) = self.record.take() {
                    record.finish(Some(13));
                }
            }
            Poll::Ready(None) => {
                if let Some(record) = self.record.take() {
                    record.finish(None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// gRPC status code names, as py_grpc_prometheus labels them.
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_use_mlserver_names() {
        let m = ServerMetrics::new("rest_server").unwrap();
        m.observe_infer("iris", None, Instant::now(), true);
        m.observe_infer("iris", Some("2"), Instant::now(), false);
        let text = m.render();
        for line in [
            "model_infer_request_success_total{model=\"iris\",version=\"None\"} 1",
            "model_infer_request_failure_total{model=\"iris\",version=\"2\"} 1",
            "model_infer_request_duration_count{model=\"iris\",version=\"None\"} 1",
            "# TYPE rest_server_request_duration_seconds histogram",
            "# TYPE grpc_server_handled_total counter",
            "# TYPE parallel_request_queue histogram",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn grpc_labels_are_the_calls_we_serve() {
        assert_eq!(
            call_labels("/inference.GRPCInferenceService/ModelInfer"),
            ("inference.GRPCInferenceService", "ModelInfer")
        );
        assert_eq!(
            call_labels("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
        assert_eq!(
            call_labels("/inference.model_repository.ModelRepositoryService/RepositoryIndex"),
            (
                "inference.model_repository.ModelRepositoryService",
                "RepositoryIndex"
            )
        );
        // Unknown methods of known services, unknown services, odd paths.
        for path in [
            "/inference.GRPCInferenceService/Made-Up-1",
            "/inference.Other/ModelInfer",
            "/",
            "",
            "ModelInfer",
        ] {
            assert_eq!(call_labels(path), ("unknown", "unknown"), "{path}");
        }
    }
}
