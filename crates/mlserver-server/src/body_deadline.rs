//! Request bodies that must keep arriving: not quiet for longer than
//! `http_body_timeout`, and, once that long has passed, at no less than
//! `http_body_min_rate` bytes a second on average. The first rule alone
//! lets a body dripped at a byte a second hold its connection, its
//! request slot and its buffer for a day; the second bounds a body of n
//! bytes to `http_body_timeout` plus n at the minimum rate.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Buf;
use tokio::time::Instant;

/// What a body must keep to (from settings).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BodyRules {
    /// Longest silence (`http_body_timeout`); also the grace before the
    /// minimum rate applies.
    pub(crate) idle: Option<Duration>,
    /// Average bytes a second once `idle` has passed (`http_body_min_rate`).
    pub(crate) min_rate: Option<u64>,
}

impl BodyRules {
    /// Whether a body is held to anything at all.
    pub(crate) fn any(&self) -> bool {
        self.idle.is_some() || self.min_rate.is_some()
    }
}

/// How a body that broke a rule fails: REST reads the error's message
/// (400), gRPC the status (`DEADLINE_EXCEEDED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Rest,
    Grpc,
}

/// A body that broke a rule.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyTooSlow {
    #[error("the request body sent nothing for {0:?}: timed out")]
    Quiet(Duration),
    #[error(
        "the request body arrived slower than {rate} bytes/s ({received} bytes in {elapsed:?}): timed out"
    )]
    Slow {
        rate: u64,
        received: u64,
        elapsed: Duration,
    },
}

pin_project_lite::pin_project! {
    /// `body`, held to `rules`. The clock is read and the timer armed only
    /// when the body has nothing ready: a small body, read with the
    /// headers, costs neither (tower-http's `TimeoutBody` arms one per
    /// read).
    pub(crate) struct DeadlineBody<B> {
        #[pin]
        body: B,
        rules: BodyRules,
        protocol: Protocol,
        // When the body first had to be waited for.
        started: Option<Instant>,
        // When the timer was last armed: after the last frame, within
        // a poll.
        last: Option<Instant>,
        received: u64,
        #[pin]
        timer: Option<tokio::time::Sleep>,
    }
}

impl<B> DeadlineBody<B> {
    pub(crate) fn new(body: B, rules: BodyRules, protocol: Protocol) -> Self {
        DeadlineBody {
            body,
            rules,
            protocol,
            started: None,
            last: None,
            received: 0,
            timer: None,
        }
    }
}

/// When the body next breaks a rule if nothing more arrives.
fn next_deadline(
    rules: &BodyRules,
    started: Instant,
    last: Instant,
    received: u64,
) -> Option<Instant> {
    let quiet = rules.idle.map(|idle| last + idle);
    let slow = rules.min_rate.filter(|&r| r > 0).map(|rate| {
        let grace = rules.idle.unwrap_or_default();
        let earned = Duration::from_secs_f64(received as f64 / rate as f64);
        started + grace + earned
    });
    match (quiet, slow) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.as_mut().poll_frame(cx) {
            if let Some(Ok(frame)) = &frame {
                if let Some(data) = frame.data_ref() {
                    *this.received += data.remaining() as u64;
                }
            }
            this.timer.set(None);
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.timer.is_none() {
            if !this.rules.any() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let started = *this.started.get_or_insert(now);
            *this.last = Some(now);
            let Some(at) = next_deadline(this.rules, started, now, *this.received) else {
                return Poll::Pending;
            };
            this.timer.set(Some(tokio::time::sleep_until(at)));
        }
        let timer = this.timer.as_mut().as_pin_mut().expect("armed above");
        if timer.poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Nothing arrived since the timer was armed (a frame disarms
        // it), so the rule it was armed for is broken.
        let now = Instant::now();
        let armed = this.last.unwrap_or(now);
        let quiet = this.rules.idle.filter(|&idle| now >= armed + idle);
        let broken = match (quiet, this.rules.min_rate) {
            (Some(idle), _) => BodyTooSlow::Quiet(idle),
            (None, rate) => BodyTooSlow::Slow {
                rate: rate.unwrap_or_default(),
                received: *this.received,
                elapsed: now - this.started.unwrap_or(now),
            },
        };
        Poll::Ready(Some(Err(match this.protocol {
            Protocol::Rest => Box::new(broken),
            // tonic finds a Status in the error and answers it.
            Protocol::Grpc => Box::new(tonic::Status::deadline_exceeded(broken.to_string())),
        })))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use http_body_util::BodyExt;
    use std::convert::Infallible;

    type Frames =
        futures::stream::BoxStream<'static, Result<http_body::Frame<bytes::Bytes>, Infallible>>;

    fn body(frames: Frames, rules: BodyRules) -> DeadlineBody<http_body_util::StreamBody<Frames>> {
        DeadlineBody::new(
            http_body_util::StreamBody::new(frames),
            rules,
            Protocol::Rest,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_body_times_out_and_a_ready_one_never_arms_the_timer() {
        let rules = BodyRules {
            idle: Some(Duration::from_secs(1)),
            min_rate: Some(1000),
        };
        let ready = DeadlineBody::new(
            http_body_util::Full::new(bytes::Bytes::from_static(b"abc")),
            rules,
            Protocol::Rest,
        );
        assert_eq!(
            ready.collect().await.unwrap().to_bytes(),
            bytes::Bytes::from_static(b"abc")
        );
        let started = Instant::now();
        let e = body(Box::pin(futures::stream::pending()), rules)
            .collect()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("sent nothing"), "{e}");
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    /// A byte every half second never trips the silence rule; the rate
    /// rule cuts it once the grace has passed.
    #[tokio::test(start_paused = true)]
    async fn a_dripped_body_is_cut_by_the_minimum_rate() {
        let rules = BodyRules {
            idle: Some(Duration::from_secs(1)),
            min_rate: Some(100),
        };
        let drip = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Some((
                Ok(http_body::Frame::data(bytes::Bytes::from_static(b"x"))),
                (),
            ))
        });
        let started = Instant::now();
        let e = body(Box::pin(drip), rules).collect().await.unwrap_err();
        assert!(e.to_string().contains("slower than 100 bytes/s"), "{e}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    /// A body at the minimum rate or faster arrives whole, however long.
    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_rate_arrives() {
        let rules = BodyRules {
            idle: Some(Duration::from_secs(1)),
            min_rate: Some(100),
        };
        let steady = futures::stream::iter(0..60).then(|_| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(http_body::Frame::data(bytes::Bytes::from(vec![0u8; 60])))
        });
        let whole = body(Box::pin(steady), rules).collect().await.unwrap();
        assert_eq!(whole.to_bytes().len(), 3600);
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_bodies_fail_with_deadline_exceeded() {
        let rules = BodyRules {
            idle: Some(Duration::from_secs(1)),
            min_rate: None,
        };
        let quiet = DeadlineBody::new(
            http_body_util::StreamBody::new(futures::stream::pending::<
                Result<http_body::Frame<bytes::Bytes>, Infallible>,
            >()),
            rules,
            Protocol::Grpc,
        );
        let e = quiet.collect().await.unwrap_err();
        let status = e.downcast_ref::<tonic::Status>().expect("a status");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    }
}
