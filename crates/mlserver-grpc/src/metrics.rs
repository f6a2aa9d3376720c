//! gRPC metrics: py_grpc_prometheus' series (`grpc_server_*`), recorded by a
//! tower layer that also writes the access log line of each call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use mlserver_metrics::{Counter, Family, Histogram, MetricsError, Registry, DEFAULT_BUCKETS};

/// The gRPC families.
pub struct GrpcMetricFamilies {
    started: Family<Counter>,
    handled: Family<Counter>,
    handling: Family<Histogram>,
}

impl GrpcMetricFamilies {
    /// Registers them on `registry`.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let grpc = ["grpc_type", "grpc_service", "grpc_method"];
        let grpc_code = ["grpc_type", "grpc_service", "grpc_method", "grpc_code"];
        Ok(GrpcMetricFamilies {
            started: registry.counter(
                "grpc_server_started",
                "Total number of RPCs started on the server.",
                &grpc,
            )?,
            handled: registry.counter(
                "grpc_server_handled",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &grpc_code,
            )?,
            handling: registry.histogram(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                &grpc,
                DEFAULT_BUCKETS,
            )?,
        })
    }
}

/// A tower layer for the gRPC server: py_grpc_prometheus' series (when
/// metrics are on) and the access log line of each call.
#[derive(Clone)]
pub struct GrpcObserveLayer {
    /// The `grpc_server_*` families (`None`: metrics off, access log only).
    pub metrics: Option<Arc<GrpcMetricFamilies>>,
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
    metrics: Option<Arc<GrpcMetricFamilies>>,
}

/// What is needed to record a call once its status is known.
struct CallRecord {
    metrics: Option<Arc<GrpcMetricFamilies>>,
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
            m.handled
                .with(&[self.grpc_type, self.service, self.method, code_name])
                .inc();
            m.handling.with(&labels).observe(elapsed.as_secs_f64());
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
            m.started
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
