//! Trace context for MLServer's `tracing_server` (OpenTelemetry): the
//! caller's W3C `traceparent` read from its headers, and the current
//! request span's own handed to the runtime in `parameters.headers`, so a
//! Python worker (or anything the model calls) continues the trace. The
//! transports make the spans; nothing here runs unless one turned tracing
//! on.

use std::sync::atomic::{AtomicBool, Ordering};

use mlserver_types::{InferenceRequest, Parameters};
use opentelemetry::propagation::{Extractor, Injector};
use serde_json::Value;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of the request spans (what an exporter's filter selects).
pub const TARGET: &str = "mlserver_trace";

/// Set once a transport with tracing on builds its span layer.
static ON: AtomicBool = AtomicBool::new(false);

/// Tracing is on: requests get the current span's context from now on.
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

struct HeaderReader<'a>(&'a http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The caller's trace context, from its headers (or gRPC metadata).
fn parent_context(headers: &http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderReader(headers)))
}

/// Makes `span` the child of the caller's context.
pub fn set_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    let _ = span.set_parent(parent_context(headers));
}

struct HeaderWriter<'a>(&'a mut serde_json::Map<String, Value>);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), Value::String(value));
    }
}

/// The current request span's context in the request's
/// `parameters.headers` (`traceparent`, `tracestate`), for the runtime.
pub fn inject(request: &mut InferenceRequest) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    // Onto the request's own headers, which must be in place first.
    crate::headers::materialize(request);
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
