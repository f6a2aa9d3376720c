//! Response headers a model sets (`parameters.headers`) go back over gRPC
//! as *trailing* metadata, as MLServer's servicer sends them
//! (`context.set_trailing_metadata`). tonic's unary handlers can only set
//! initial metadata, so a handler leaves them in the response's extensions
//! and this layer adds them to the trailers, next to `grpc-status`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// The metadata to send in the trailers of this response, in order: a
/// later entry replaces an earlier one of the same name.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrailingMetadata(pub http::HeaderMap);

/// A tower layer that sends a response's trailing metadata in the
/// gRPC trailers (where MLServer puts response headers).
#[derive(Debug, Clone, Copy, Default)]
pub struct TrailingMetadataLayer;

impl<S> tower::Layer<S> for TrailingMetadataLayer {
    type Service = WithTrailingMetadata<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithTrailingMetadata { inner }
    }
}

/// [`TrailingMetadataLayer`]'s service: the model's response headers as trailing metadata.
#[derive(Debug, Clone)]
pub struct WithTrailingMetadata<S> {
    inner: S,
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for WithTrailingMetadata<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Unpin + Send + 'static,
{
    type Response = http::Response<TrailedBody<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let extra = response
                .extensions_mut()
                .remove::<TrailingMetadata>()
                .map(|t| t.0)
                .filter(|m| !m.is_empty());
            Ok(response.map(|inner| TrailedBody { inner, extra }))
        })
    }
}

/// A response body whose trailers get the extra metadata.
pub struct TrailedBody<B> {
    inner: B,
    extra: Option<http::HeaderMap>,
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for TrailedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(mut frame))) => {
                let extra = if frame.is_trailers() {
                    self.extra.take()
                } else {
                    None
                };
                if let (Some(trailers), Some(mut ours)) = (frame.trailers_mut(), extra) {
                    // tonic's few (the status) go into the response's
                    // prepared map, rather than each of ours into theirs.
                    // The call's own status stays the one tonic wrote (ours
                    // have no `grpc-*`); other names of tonic's give way to
                    // ours.
                    let theirs = std::mem::take(trailers);
                    mlserver_core::headers::merge_headers(&mut ours, theirs, |ours, name| {
                        name.as_str().starts_with("grpc-") || !ours.contains_key(name)
                    });
                    *trailers = ours;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
