//! Bounded inflating of gzip-compressed gRPC messages, ahead of tonic.
//!
//! tonic inflates a compressed message whole before it checks the size, so
//! a 4 MB message of gzip'd zeros becomes gigabytes (with
//! `grpc_max_message_length: -1`, which ModelMesh sets, without any
//! bound). This layer takes the inflating over: each compressed message is
//! inflated with [`mlserver_core::inflate`]'s limit (the message limit, and
//! `max_decompression_ratio` times its compressed size beyond 16 MiB),
//! large ones on a blocking thread, and handed on uncompressed, so tonic
//! never inflates. A message past its limit ends the call with
//! RESOURCE_EXHAUSTED, one that does not inflate with INVALID_ARGUMENT.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{Request, Response};
use http_body::{Body, Frame};
use mlserver_core::budget::{Charge, PER_BODY_BYTE};
use mlserver_core::inflate::{inflate_limit, inflate_off_workers, Encoding, InflateError};
use tonic::Status;

/// A gRPC message's prefix: the compressed flag and a big-endian length.
const PREFIX: usize = 5;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Inflates gzip'd request messages with bounds, for the services behind
/// it (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct InflateLayer {
    max_message_bytes: usize,
    max_ratio: f64,
}

impl InflateLayer {
    /// Messages inflate to at most `max_message_bytes` (the gRPC message
    /// limit; unlimited is capped at `u32::MAX`, the most a message can
    /// say it holds), and at most `max_ratio` times their compressed size
    /// beyond 16 MiB (`max_decompression_ratio`; 0: only the limit).
    pub fn new(max_message_bytes: usize, max_ratio: f64) -> Self {
        InflateLayer {
            max_message_bytes: max_message_bytes.min(u32::MAX as usize),
            max_ratio,
        }
    }
}

impl<S> tower::Layer<S> for InflateLayer {
    type Service = InflateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InflateService {
            inner,
            layer: *self,
        }
    }
}

/// The service [`InflateLayer`] makes.
#[derive(Debug, Clone)]
pub struct InflateService<S> {
    inner: S,
    layer: InflateLayer,
}

impl<S, B, ResBody> tower::Service<Request<B>> for InflateService<S>
where
    S: tower::Service<Request<InflatingBody<B>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // gzip is ours to inflate; identity needs nothing; any other
        // encoding goes on untouched, for tonic to refuse as unsupported.
        let gzip = request
            .headers()
            .get("grpc-encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        if gzip {
            request.headers_mut().remove("grpc-encoding");
        }
        let layer = self.layer;
        // The request's charge against the memory budget (set by the
        // server): the most a message may inflate to is charged before
        // inflating it; what it inflated to stays charged for a unary call,
        // not for a stream's every message.
        let charge = request.extensions().get::<Arc<Charge>>().cloned();
        let keep = !request.uri().path().ends_with("/ModelStreamInfer");
        self.inner.call(request.map(|body| {
            InflatingBody::new(body, gzip.then_some(layer)).charged(charge.map(|c| (c, keep)))
        }))
    }
}

type Inflating = Pin<Box<dyn Future<Output = Result<Vec<u8>, InflateError>> + Send>>;

pin_project_lite::pin_project! {
    /// A request body whose compressed messages come out inflated.
    pub struct InflatingBody<B> {
        #[pin]
        inner: B,
        // None: passed through as it is.
        layer: Option<InflateLayer>,
        buffered: BytesMut,
        // The request's charge, and whether inflated messages stay charged.
        charge: Option<(Arc<Charge>, bool)>,
        // The message being inflated, its compressed size, and what was
        // charged for it.
        inflating: Option<(Inflating, usize, u64)>,
        ready: VecDeque<Bytes>,
        trailers: Option<http::HeaderMap>,
        ended: bool,
    }
}

impl<B> InflatingBody<B> {
    fn charged(mut self, charge: Option<(Arc<Charge>, bool)>) -> Self {
        self.charge = charge;
        self
    }

    fn new(inner: B, layer: Option<InflateLayer>) -> Self {
        InflatingBody {
            inner,
            layer,
            buffered: BytesMut::new(),
            charge: None,
            inflating: None,
            ready: VecDeque::new(),
            trailers: None,
            ended: false,
        }
    }
}

/// The prefix of an uncompressed message of `len` bytes.
fn prefix(len: usize) -> Bytes {
    let mut p = BytesMut::with_capacity(PREFIX);
    p.put_u8(0);
    p.put_u32(len as u32);
    p.freeze()
}

fn too_large(compressed: usize, limit: usize, max_message: usize) -> Status {
    if limit < max_message {
        Status::resource_exhausted(format!(
            "a gzip message of {compressed} bytes inflates past {limit} bytes: \
             max_decompression_ratio times its size, or 16 MiB"
        ))
    } else {
        Status::resource_exhausted(format!(
            "a gzip message inflates past the message limit of {limit} bytes"
        ))
    }
}

impl<B> Body for InflatingBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let Some(layer) = *this.layer else {
            return this.inner.poll_frame(cx).map_err(Into::into);
        };
        loop {
            if let Some(ready) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(ready))));
            }
            if let Some((inflating, compressed, reserved)) = this.inflating.as_mut() {
                let result = ready!(inflating.as_mut().poll(cx));
                let (compressed, reserved) = (*compressed, *reserved);
                *this.inflating = None;
                if let Some((charge, keep)) = this.charge.as_ref() {
                    let kept = match (&result, *keep) {
                        (Ok(message), true) => (message.len() as u64).saturating_mul(PER_BODY_BYTE),
                        _ => 0,
                    };
                    charge.shrink(reserved - kept.min(reserved));
                }
                match result {
                    Ok(message) => {
                        this.ready.push_back(prefix(message.len()));
                        this.ready.push_back(Bytes::from(message));
                        continue;
                    }
                    Err(InflateError::TooLarge { limit }) => {
                        let status = too_large(compressed, limit, layer.max_message_bytes);
                        return Poll::Ready(Some(Err(Box::new(status))));
                    }
                    Err(e) => {
                        let status = Status::invalid_argument(format!("invalid gzip message: {e}"));
                        return Poll::Ready(Some(Err(Box::new(status))));
                    }
                }
            }
            // A whole message buffered: hand it on, inflating it first if
            // it is compressed.
            if this.buffered.len() >= PREFIX {
                let compressed_flag = this.buffered[0];
                let len = u32::from_be_bytes(this.buffered[1..PREFIX].try_into().expect("4 bytes"))
                    as usize;
                if len > layer.max_message_bytes {
                    return Poll::Ready(Some(Err(Box::new(Status::resource_exhausted(format!(
                        "a message of {len} bytes exceeds the message limit of {} bytes",
                        layer.max_message_bytes
                    ))))));
                }
                if this.buffered.len() >= PREFIX + len {
                    let mut message = this.buffered.split_to(PREFIX + len);
                    if compressed_flag == 0 {
                        return Poll::Ready(Some(Ok(Frame::data(message.freeze()))));
                    }
                    message.advance(PREFIX);
                    let limit = inflate_limit(len, layer.max_message_bytes, layer.max_ratio);
                    let reserved = (limit as u64).saturating_mul(PER_BODY_BYTE);
                    if let Some((charge, _)) = this.charge.as_ref() {
                        if let Err(e) = charge.grow(reserved) {
                            let status = Status::resource_exhausted(e.to_string());
                            return Poll::Ready(Some(Err(Box::new(status))));
                        }
                    }
                    let work = inflate_off_workers(Encoding::Gzip, message.freeze(), limit);
                    *this.inflating = Some((Box::pin(work), len, reserved));
                    continue;
                }
            }
            if *this.ended {
                if !this.buffered.is_empty() {
                    // A truncated message: tonic reports it as such.
                    let rest = this.buffered.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.buffered.extend_from_slice(&data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            *this.trailers = Some(trailers);
                        }
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => *this.ended = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.layer {
            None => self.inner.is_end_stream(),
            Some(_) => {
                self.ended
                    && self.buffered.is_empty()
                    && self.inflating.is_none()
                    && self.ready.is_empty()
                    && self.trailers.is_none()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Write;

    fn message(compressed: bool, payload: &[u8]) -> Vec<u8> {
        let mut m = vec![u8::from(compressed)];
        m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// The body, fed `chunk` bytes at a time, collected.
    async fn through(
        wire: Vec<u8>,
        chunk: usize,
        layer: InflateLayer,
    ) -> Result<Vec<u8>, BoxError> {
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = wire
            .chunks(chunk)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let inner = http_body_util::StreamBody::new(futures::stream::iter(chunks));
        let body = InflatingBody::new(inner, Some(layer));
        Ok(body.collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn compressed_messages_come_out_plain_in_order() {
        let big: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut wire = message(true, &gzip(b"hello"));
        wire.extend(message(false, b"plain"));
        wire.extend(message(true, &gzip(&big)));
        let mut expected = message(false, b"hello");
        expected.extend(message(false, b"plain"));
        expected.extend(message(false, &big));
        for chunk in [1, 3, 7, 4096, usize::MAX] {
            let out = through(
                wire.clone(),
                chunk.min(wire.len()),
                InflateLayer::new(1 << 30, 32.0),
            )
            .await
            .unwrap();
            assert_eq!(out, expected, "chunks of {chunk}");
        }
    }

    fn status_of(e: BoxError) -> Status {
        *e.downcast::<Status>().expect("a tonic Status")
    }

    #[tokio::test]
    async fn bombs_and_garbage_end_with_their_status() {
        let bomb = gzip(&vec![0u8; 40 << 20]);
        let wire = message(true, &bomb);
        let e = status_of(
            through(wire.clone(), 65536, InflateLayer::new(1 << 30, 32.0))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(
            e.message().contains("max_decompression_ratio"),
            "{}",
            e.message()
        );
        // Without a ratio, the message limit still holds.
        let e = status_of(
            through(wire, 65536, InflateLayer::new(1 << 20, 0.0))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("message limit"), "{}", e.message());
        let e = status_of(
            through(
                message(true, b"not gzip"),
                4,
                InflateLayer::new(1 << 20, 32.0),
            )
            .await
            .unwrap_err(),
        );
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        // A declared length past the limit is refused before it is buffered.
        let mut huge = vec![1u8];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        let e = status_of(
            through(huge, 5, InflateLayer::new(1 << 20, 32.0))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    }
}
