//! A span per REST request when `tracing_server` is set: named after the
//! route (`POST /v2/models/{name}/infer`), the child of the caller's
//! `traceparent`, the status recorded.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Instrument;

/// The tower layer making the spans (a route layer: the route is known).
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
        let route = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| request.uri().path().to_owned());
        let span = tracing::info_span!(
            target: mlserver_core::trace::TARGET,
            "request",
            otel.name = format!("{} {route}", request.method()),
            otel.kind = "server",
            http.request.method = %request.method(),
            http.route = %route,
            url.path = %request.uri().path(),
            http.response.status_code = tracing::field::Empty,
        );
        mlserver_core::trace::set_parent(&span, request.headers());
        let future = self.inner.call(request);
        let recording = span.clone();
        Box::pin(
            async move {
                let response = future.await?;
                recording.record("http.response.status_code", response.status().as_u16());
                Ok(response)
            }
            .instrument(span),
        )
    }
}
