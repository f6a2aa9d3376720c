//! A span per gRPC call when `tracing_server` is set: named after the
//! method (`inference.GRPCInferenceService/ModelInfer`), the child of the
//! caller's `traceparent` metadata, the status recorded.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Instrument;

/// The tower layer making the spans.
#[derive(Debug, Clone, Copy)]
pub struct TraceLayer;

impl TraceLayer {
    /// Turns tracing on (spans are made from now on) and gives the layer.
    pub fn enabled() -> Self {
        mlserver_core::trace::enable();
        TraceLayer
    }
}

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Traced { inner }
    }
}

/// [`TraceLayer`]'s service: a span per call, joined to the caller's trace.
#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
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
        let path = request.uri().path().trim_start_matches('/').to_owned();
        let (service, method) = path.split_once('/').unwrap_or((&path, ""));
        let span = tracing::info_span!(
            target: mlserver_core::trace::TARGET,
            "request",
            otel.name = %path,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        mlserver_core::trace::set_parent(&span, request.headers());
        let future = self.inner.call(request);
        let recording = span.clone();
        Box::pin(
            async move {
                let response = future.await?;
                // A trailers-only reply (an error) has it here; a success
                // sends 0 in the trailers.
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0);
                recording.record("rpc.grpc.status_code", code);
                Ok(response)
            }
            .instrument(span),
        )
    }
}
