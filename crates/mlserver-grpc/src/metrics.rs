//! gRPC metrics: py_grpc_prometheus' series (`grpc_server_*`), recorded by a
//! tower layer that also writes the access log line of each call.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
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
    msg_received: Family<Counter>,
    msg_sent: Family<Counter>,
    /// The series of each of [`KNOWN_CALLS`]' methods, in order.
    calls: Vec<CallSeries>,
}

/// The series a call of one known method records, each found in its family
/// at its first use (so a series appears once used, as before) and kept: a
/// family lookup builds a key and takes a lock, three times per call.
#[derive(Default)]
struct CallSeries {
    started: OnceLock<Arc<Counter>>,
    handling: OnceLock<Arc<Histogram>>,
    /// `grpc_code="OK"`, what almost every call ends with; other codes are
    /// looked up.
    handled_ok: OnceLock<Arc<Counter>>,
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
            // As py_grpc_prometheus counts them: the messages of streams
            // only (a unary call's one message each way is in `started`).
            msg_received: registry.counter(
                "grpc_server_msg_received",
                "Total number of RPC stream messages received on the server.",
                &grpc,
            )?,
            msg_sent: registry.counter(
                "grpc_server_msg_sent",
                "Total number of gRPC stream messages sent by the server.",
                &grpc,
            )?,
            calls: KNOWN_CALLS
                .iter()
                .flat_map(|(_, methods)| methods.iter().map(|_| CallSeries::default()))
                .collect(),
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

/// [`GrpcObserveLayer`]'s service: records each call's metrics and access log line.
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
    /// The method's place in [`KNOWN_CALLS`] (`None`: unknown).
    call: Option<usize>,
    started: Instant,
}

impl CallRecord {
    fn finish(self, code: Option<i32>) {
        let code_name = code.map_or("UNKNOWN", code_name);
        let elapsed = self.started.elapsed();
        let ms = elapsed.as_secs_f64() * 1000.0;
        let (service, method) = (self.service, self.method);
        // Successful health probes apart (see the REST access log).
        if code == Some(0)
            && matches!(
                method,
                "ServerLive" | "ServerReady" | "ModelReady" | "Check"
            )
        {
            tracing::info!(target: "mlserver_access::probe", "gRPC /{service}/{method} {code_name} {ms:.3}ms");
        } else {
            tracing::info!(target: "mlserver_access", "gRPC /{service}/{method} {code_name} {ms:.3}ms");
        }
        if let Some(m) = &self.metrics {
            let labels = [self.grpc_type, self.service, self.method];
            let series = self.call.map(|i| &m.calls[i]);
            let handled = || {
                m.handled
                    .with(&[self.grpc_type, self.service, self.method, code_name])
            };
            match series.filter(|_| code == Some(0)) {
                Some(s) => s.handled_ok.get_or_init(handled).inc(),
                None => handled().inc(),
            }
            let handling = || m.handling.with(&labels);
            let seconds = elapsed.as_secs_f64();
            match series {
                Some(s) => s.handling.get_or_init(handling).observe(seconds),
                None => handling().observe(seconds),
            }
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
            "ModelConfig",
            "ModelStatistics",
        ],
    ),
    ("grpc.health.v1.Health", &["Check", "Watch"]),
    (
        "grpc.reflection.v1.ServerReflection",
        &["ServerReflectionInfo"],
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        &["ServerReflectionInfo"],
    ),
    (
        "inference.model_repository.ModelRepositoryService",
        &[
            "RepositoryIndex",
            "RepositoryModelLoad",
            "RepositoryModelUnload",
        ],
    ),
];

/// `/service/method` as static labels (no copies per call), and the
/// method's place in [`KNOWN_CALLS`].
fn call_labels(path: &str) -> (&'static str, &'static str, Option<usize>) {
    const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
    if path == MODEL_INFER {
        // The call nearly every request is, found without a search.
        return (
            "inference.GRPCInferenceService",
            "ModelInfer",
            Some(MODEL_INFER_CALL),
        );
    }
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .unwrap_or(("", ""));
    let mut first = 0;
    for (s, methods) in KNOWN_CALLS {
        if *s == service {
            if let Some(m) = methods.iter().position(|m| *m == method) {
                return (s, methods[m], Some(first + m));
            }
            break;
        }
        first += methods.len();
    }
    ("unknown", "unknown", None)
}

/// `ModelInfer`'s place in [`KNOWN_CALLS`] (checked by a test).
const MODEL_INFER_CALL: usize = 5;

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
    S: tower::Service<http::Request<CountedBody<B>>, Response = http::Response<ResBody>>,
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
        let (service, method, call) = call_labels(request.uri().path());
        // py-grpc-prometheus' names, which MLServer's series carry.
        let grpc_type = match method {
            "ModelStreamInfer" | "ServerReflectionInfo" => "BIDI_STREAMING",
            "Watch" => "SERVER_STREAMING",
            _ => "UNARY",
        };
        let (request_streams, response_streams) = match grpc_type {
            "BIDI_STREAMING" => (true, true),
            "SERVER_STREAMING" => (false, true),
            _ => (false, false),
        };
        let counter = |streams: bool, family: fn(&GrpcMetricFamilies) -> &Family<Counter>| {
            let m = self.metrics.as_ref().filter(|_| streams)?;
            Some(MessageCount {
                frames: MessageFrames::default(),
                counter: family(m).with(&[grpc_type, service, method]),
            })
        };
        let received = counter(request_streams, |m| &m.msg_received);
        let sent = counter(response_streams, |m| &m.msg_sent);
        let record = CallRecord {
            metrics: self.metrics.clone(),
            grpc_type,
            service,
            method,
            call,
            started: Instant::now(),
        };
        if let Some(m) = &record.metrics {
            let started = || m.started.with(&[grpc_type, service, method]);
            match call {
                Some(i) => m.calls[i].started.get_or_init(started).inc(),
                None => started().inc(),
            }
        }
        let future = self.inner.call(request.map(|inner| CountedBody {
            inner,
            count: received,
        }));
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
                sent,
            }))
        })
    }
}

/// A response body that records its call when the trailers (the gRPC status)
/// go by, or when it is dropped without them (a cancelled call).
pub struct ObservedBody<B> {
    inner: B,
    record: Option<CallRecord>,
    /// The stream's messages, counted as they go out (streams only).
    sent: Option<MessageCount>,
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
                if let (Some(data), Some(sent)) = (frame.data_ref(), &mut self.sent) {
                    sent.feed(data);
                }
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

/// A stream's messages and the counter they go to.
struct MessageCount {
    frames: MessageFrames,
    counter: Arc<Counter>,
}

impl MessageCount {
    fn feed(&mut self, data: &[u8]) {
        let messages = self.frames.feed(data);
        if messages > 0 {
            self.counter.inc_by(messages as f64);
        }
    }
}

/// Finds where gRPC's length-prefixed messages start in a body's bytes,
/// however its frames cut them: a message is counted once its 5-byte
/// prefix (flag, big-endian length) has gone by.
#[derive(Default)]
struct MessageFrames {
    /// Bytes of the current message's payload still to come.
    remaining: u64,
    prefix: [u8; 5],
    prefix_len: usize,
}

impl MessageFrames {
    /// The number of messages whose prefix completes in `data`.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut messages = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = data.len().min(self.remaining as usize);
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = data.len().min(5 - self.prefix_len);
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == 5 {
                messages += 1;
                self.prefix_len = 0;
                let p = self.prefix;
                self.remaining = u64::from(u32::from_be_bytes([p[1], p[2], p[3], p[4]]));
            }
        }
        messages
    }
}

pin_project_lite::pin_project! {
    /// A request body whose messages are counted as they come in (streams
    /// only; other calls pass through).
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        count: Option<MessageCount>,
    }
}

impl<B: HttpBody<Data = Bytes>> HttpBody for CountedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(count)) = (&polled, this.count.as_mut()) {
            if let Some(data) = frame.data_ref() {
                count.feed(data);
            }
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
    fn messages_are_counted_however_frames_cut_them() {
        let mut body = Vec::new();
        for len in [0u32, 3, 300] {
            body.push(0);
            body.extend_from_slice(&len.to_be_bytes());
            body.extend(std::iter::repeat_n(7u8, len as usize));
        }
        for chunk in [1, 2, 4, 5, 6, 64, body.len()] {
            let mut frames = MessageFrames::default();
            let counted: u64 = body.chunks(chunk).map(|c| frames.feed(c)).sum();
            assert_eq!(counted, 3, "chunks of {chunk}");
        }
    }

    #[test]
    fn grpc_labels_are_the_calls_we_serve() {
        let labels = |path| {
            let (service, method, _) = call_labels(path);
            (service, method)
        };
        assert_eq!(
            labels("/inference.GRPCInferenceService/ModelInfer"),
            ("inference.GRPCInferenceService", "ModelInfer")
        );
        assert_eq!(
            labels("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
        assert_eq!(
            labels("/inference.model_repository.ModelRepositoryService/RepositoryIndex"),
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
            assert_eq!(call_labels(path), ("unknown", "unknown", None), "{path}");
        }
    }

    #[test]
    fn every_known_call_has_its_own_place() {
        let mut places = Vec::new();
        for (service, methods) in KNOWN_CALLS {
            for method in *methods {
                let (s, m, place) = call_labels(&format!("/{service}/{method}"));
                assert_eq!((s, m), (*service, *method));
                places.push(place.expect("known"));
            }
        }
        let expected: Vec<usize> = (0..places.len()).collect();
        assert_eq!(places, expected, "in KNOWN_CALLS' order, once each");
        // The shortcut names the place the search finds.
        let mut first = 0;
        for (service, methods) in KNOWN_CALLS {
            if *service == "inference.GRPCInferenceService" {
                let m = methods.iter().position(|m| *m == "ModelInfer").unwrap();
                assert_eq!(MODEL_INFER_CALL, first + m);
            }
            first += methods.len();
        }
    }
}
