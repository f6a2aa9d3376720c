//! Request bodies checked frame by frame as they arrive: one wrapper for
//! every check ([`crate::budget`]'s charge, [`crate::unary_body`]'s one
//! message), so a body costs one layer however many checks it has.

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Bytes;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A check on a request body's data, run on each frame as it arrives.
pub(crate) trait FrameCheck {
    /// A refusal decided from the request's head, answered before the first
    /// frame is read.
    fn refused(&mut self) -> Option<BoxError> {
        None
    }

    /// Checks one data frame; an error ends the body with it.
    fn data(&mut self, data: &[u8]) -> Result<(), BoxError>;
}

impl<A: FrameCheck, B: FrameCheck> FrameCheck for (A, B) {
    fn refused(&mut self) -> Option<BoxError> {
        self.0.refused().or_else(|| self.1.refused())
    }

    fn data(&mut self, data: &[u8]) -> Result<(), BoxError> {
        self.0.data(data)?;
        self.1.data(data)
    }
}

pin_project_lite::pin_project! {
    /// `body`, each data frame passed through `check`.
    pub(crate) struct CheckedBody<B, C> {
        #[pin]
        body: B,
        check: C,
    }
}

impl<B, C> CheckedBody<B, C> {
    pub(crate) fn new(body: B, check: C) -> Self {
        CheckedBody { body, check }
    }
}

impl<B, C> http_body::Body for CheckedBody<B, C>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    C: FrameCheck,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if let Some(e) = this.check.refused() {
            return Poll::Ready(Some(Err(e)));
        }
        let frame = match this.body.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            if let Err(e) = this.check.data(data) {
                return Poll::Ready(Some(Err(e)));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
