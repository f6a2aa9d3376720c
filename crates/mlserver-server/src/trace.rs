//! One span per REST and gRPC request, for MLServer's `tracing_server`
//! (OpenTelemetry): named after the route, a child of the caller's W3C
//! `traceparent` when it sends one, with the response status recorded. The
//! inference runs inside it, and the request's `parameters.headers` get its
//! own `traceparent`, so a Python worker (or anything the model calls)
//! continues the trace. Only installed when tracing is on: otherwise no
//! span is made.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use mlserver_types::{InferenceRequest, Parameters};
use opentelemetry::propagation::{Extractor, Injector};
use serde_json::Value;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of the request spans (what an exporter's filter selects).
pub const TARGET: &str = "mlserver_trace";

/// Set once a server with tracing on builds its layers.
static ON: AtomicBool = AtomicBool::new(false);

struct HeaderReader<'a>(&'a http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderWriter<'a>(&'a mut serde_json::Map<String, Value>);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), Value::String(value));
    }
}

/// The current request span's context in the request's
/// `parameters.headers` (`traceparent`, `tracestate`), for the runtime.
pub(crate) fn inject(request: &mut InferenceRequest) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let context = tracing::Span::current().context();
    let parameters = request.parameters_mut();
    if !matches!(parameters.get(Parameters::HEADERS), Some(Value::Object(_))) {
        parameters.insert(Parameters::HEADERS, Value::Object(Default::default()));
    }
    if let Some(Value::Object(headers)) = parameters.0.get_mut(Parameters::HEADERS) {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&context, &mut HeaderWriter(headers))
        });
    }
}

/// Which protocol a layer serves.
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    Http,
    Grpc,
}

/// The tower layer making the spans.
#[derive(Debug, Clone, Copy)]
pub struct TraceLayer(pub Protocol);

impl TraceLayer {
    /// Tracing is on: spans are made from now on.
    pub fn new(protocol: Protocol) -> Self {
        ON.store(true, Ordering::Relaxed);
        TraceLayer(protocol)
    }
}

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Traced {
            inner,
            protocol: self.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
    protocol: Protocol,
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for Traced<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let span = match self.protocol {
            Protocol::Http => {
                let route = request
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| request.uri().path().to_owned());
                tracing::info_span!(
                    target: TARGET,
                    "request",
                    otel.name = format!("{} {route}", request.method()),
                    otel.kind = "server",
                    http.request.method = %request.method(),
                    http.route = %route,
                    url.path = %request.uri().path(),
                    http.response.status_code = tracing::field::Empty,
                )
            }
            Protocol::Grpc => {
                let path = request.uri().path().trim_start_matches('/').to_owned();
                let (service, method) = path.split_once('/').unwrap_or((&path, ""));
                tracing::info_span!(
                    target: TARGET,
                    "request",
                    otel.name = %path,
                    otel.kind = "server",
                    rpc.system = "grpc",
                    rpc.service = %service,
                    rpc.method = %method,
                    rpc.grpc.status_code = tracing::field::Empty,
                )
            }
        };
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderReader(request.headers()))
        });
        let _ = span.set_parent(parent);
        let protocol = self.protocol;
        let future = self.inner.call(request);
        let recording = span.clone();
        Box::pin(
            async move {
                let response = future.await?;
                match protocol {
                    Protocol::Http => {
                        recording.record("http.response.status_code", response.status().as_u16());
                    }
                    Protocol::Grpc => {
                        // A trailers-only reply (an error) has it here; a
                        // success sends 0 in the trailers.
                        let code = response
                            .headers()
                            .get("grpc-status")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<i64>().ok())
                            .unwrap_or(0);
                        recording.record("rpc.grpc.status_code", code);
                    }
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}
