//! Accepting and serving connections, with the limits a server that any
//! client can reach needs: what `axum::serve` and tonic's server do (HTTP/1
//! and HTTP/2 through hyper, TCP_NODELAY), plus a bound on open
//! connections, accept errors that back off instead of spinning, timeouts
//! for slow headers and bodies, idle connections closed, HTTP/2 keepalive
//! pings, and a bound on concurrent HTTP/2 streams.
//!
//! Neither `axum::serve` nor tonic's `Server` exposes these: `axum::serve`
//! sets no timer (so hyper's header timeout never runs) and has no idle
//! timeout or connection bound; tonic has keepalive and stream limits but
//! no idle close, no connection bound and no accept backoff. Both loop on
//! `EMFILE` with no pause. Serving connections here, with hyper-util's
//! connection builder as both do, puts the three listeners under one set
//! of rules.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};

use crate::budget::{Charge, MemoryBudget};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Wraps a request's body (its head, the limits, the request's charge
/// against the memory budget) for the service.
pub(crate) type BodyFn<ReqBody> =
    fn(Incoming, &http::request::Parts, &ConnectionLimits, Option<Arc<Charge>>) -> ReqBody;

/// The limits every connection is served with, from settings.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections each listener holds open at most; more wait in the
    /// kernel's backlog until one closes.
    pub max_connections: usize,
    /// An HTTP/1 connection with no request for this long is closed
    /// (uvicorn's `timeout_keep_alive`, which MLServer runs with: 5 s).
    pub http1_keep_alive: Option<Duration>,
    /// A client must send a request's headers within this time (hyper's
    /// header read timeout: slow-header clients are cut off).
    pub header_read: Option<Duration>,
    /// An HTTP/2-only (gRPC) connection must send the connection preface
    /// within this time (see [`HandshakeDeadline`]).
    pub handshake: Option<Duration>,
    /// A REST request body that sends nothing for this long fails
    /// (408-like: the request ends with an error, the connection closes).
    pub request_body_idle: Option<Duration>,
    /// Once `request_body_idle` has passed, a request body must have
    /// arrived at this many bytes a second on average (see
    /// [`crate::body_deadline`]).
    pub request_body_min_rate: Option<u64>,
    /// An HTTP/2 (gRPC) connection with no stream open for this long is
    /// closed with a GOAWAY; clients reconnect when they need to.
    pub http2_idle: Option<Duration>,
    /// HTTP/2 keepalive pings every this often...
    pub http2_keepalive_interval: Option<Duration>,
    /// ...and the connection is closed if one is not answered in this time.
    pub http2_keepalive_timeout: Duration,
    /// Concurrent streams an HTTP/2 client may open on one connection.
    pub max_concurrent_streams: Option<u32>,
    /// What requests in flight may hold together (`memory_budget`; see
    /// [`crate::budget`]); `None`: no bound but each request's own.
    pub memory_budget: Option<Arc<MemoryBudget>>,
    /// The largest REST body and gRPC message: a declared length above it
    /// is refused by that limit, unread, so it is not charged.
    pub max_body_bytes: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            http1_keep_alive: Some(Duration::from_secs(5)),
            header_read: Some(Duration::from_secs(10)),
            handshake: Some(Duration::from_secs(10)),
            request_body_idle: Some(Duration::from_secs(60)),
            request_body_min_rate: Some(64 * 1024),
            http2_idle: Some(Duration::from_secs(60)),
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: Some(1024),
            memory_budget: None,
            max_body_bytes: u64::MAX,
        }
    }
}

/// Which HTTP versions a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocols {
    /// HTTP/1.1, and HTTP/2 with prior knowledge (REST, metrics).
    Http1And2,
    /// HTTP/2 only (gRPC).
    Http2Only,
}

/// Serves `listener` with `service` until `stop` turns true: then stops
/// accepting, asks every connection to finish (HTTP/1: after its current
/// request; HTTP/2: a GOAWAY, then after its open streams) and returns
/// once all have closed. Dropping the future closes every connection at
/// once (the shutdown grace is the caller's).
///
/// `body` adapts each request body to what `service` takes (the REST
/// listener puts its idle timeout there).
pub(crate) async fn serve<S, B, ReqBody>(
    listener: TcpListener,
    protocols: Protocols,
    limits: Arc<ConnectionLimits>,
    service: S,
    body: BodyFn<ReqBody>,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<Request<ReqBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ReqBody: Send + 'static,
{
    let builder = Arc::new(connection_builder(protocols, &limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut accept_errors = RateLimitedLog::new();
    let mut backoff = Backoff::new();
    let mut full = RateLimitedLog::new();
    loop {
        // A free slot first, so a flood waits in the backlog rather than
        // in file descriptors.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                full.note(|n| {
                    warn!(
                        "{} connections open on {}: new ones wait until one closes ({n} waits)",
                        limits.max_connections,
                        local_addr(&listener)
                    )
                });
                tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    _ = stop.wait_for(|s| *s) => break,
                    Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.reset();
                accepted
            }
            Err(e) if is_per_connection(&e) => {
                debug!("a connection failed before it was accepted: {e}");
                continue;
            }
            Err(e) => {
                // Out of descriptors (EMFILE, ENFILE) or memory: the
                // listener is fine, the process is not, for now. Retrying
                // at once spins a core; waiting lets connections close.
                let pause = backoff.next();
                accept_errors.note(|n| {
                    warn!(
                        "cannot accept connections on {}: {e} ({n} times); retrying in {pause:?}",
                        local_addr(&listener)
                    )
                });
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!("could not set TCP_NODELAY on a connection from {peer}: {e}");
        }
        connections.spawn(serve_connection(
            stream,
            peer,
            protocols,
            builder.clone(),
            limits.clone(),
            service.clone(),
            body,
            stop.clone(),
            slot,
        ));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

fn connection_builder(
    protocols: Protocols,
    limits: &ConnectionLimits,
) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if protocols == Protocols::Http2Only {
        builder = builder.http2_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout(limits))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(limits.http2_keepalive_timeout)
        .max_concurrent_streams(limits.max_concurrent_streams);
    builder
}

/// hyper's header read timeout, unless the idle close already bounds it.
/// A request whose head is still arriving is not open (its service has not
/// been called), so an HTTP/1 connection sending a head for the keep-alive
/// timeout is idle (see [`Activity::idle`]), and it is dropped one more
/// keep-alive timeout later: with the defaults (5 s, 10 s) that is the
/// header timeout. hyper's timer costs a boxed sleep and a timer-wheel
/// entry per request (about 1,000 instructions).
fn header_read_timeout(limits: &ConnectionLimits) -> Option<Duration> {
    match (limits.header_read, limits.http1_keep_alive) {
        (Some(header), Some(idle)) if idle * 2 <= header => None,
        (header, _) => header,
    }
}

/// One connection: served until it ends, it has been idle too long, or
/// the server stops (then gracefully).
#[allow(clippy::too_many_arguments)]
async fn serve_connection<S, B, ReqBody>(
    stream: TcpStream,
    peer: SocketAddr,
    protocols: Protocols,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<ConnectionLimits>,
    service: S,
    body: BodyFn<ReqBody>,
    mut stop: watch::Receiver<bool>,
    _slot: tokio::sync::OwnedSemaphorePermit,
) where
    S: tower::Service<Request<ReqBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ReqBody: Send + 'static,
{
    let activity = Arc::new(Activity::new(protocols == Protocols::Http2Only));
    // The header that says a body is compressed: gRPC's on the gRPC port,
    // HTTP's elsewhere. Static names: a `&str` is parsed on every lookup.
    static GRPC_ENCODING: http::HeaderName = http::HeaderName::from_static("grpc-encoding");
    let encoding_header = match protocols {
        Protocols::Http2Only => &GRPC_ENCODING,
        Protocols::Http1And2 => &http::header::CONTENT_ENCODING,
    };
    let hyper_service = {
        let activity = activity.clone();
        let limits = limits.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let open = activity.open(request.version() == http::Version::HTTP_2);
            let (mut parts, b) = request.into_parts();
            // Held by the body while it arrives, by a compressed request
            // (what it inflates to is charged too) and by the response
            // until it has been sent.
            let charge = limits.memory_budget.clone().map(Charge::new);
            // Only a compressed body has more to charge than its bytes (an
            // extension is an allocation: plain requests go without).
            let compressed = parts.headers.contains_key(encoding_header);
            if let Some(charge) = charge.as_ref().filter(|_| compressed) {
                parts.extensions.insert(charge.clone());
            }
            let b = body(b, &parts, &limits, charge.clone());
            let request = Request::from_parts(parts, b);
            let mut service = service.clone();
            async move {
                let response = tower::Service::call(&mut service, request).await?;
                Ok::<_, Infallible>(response.map(|body| Tracked {
                    body,
                    _open: open,
                    _charge: charge,
                }))
            }
        })
    };
    // HTTP/1 heads have hyper's header timeout and the idle close; HTTP/2
    // has no timer at all until its preface is read.
    let handshake = match protocols {
        Protocols::Http2Only => limits.handshake,
        Protocols::Http1And2 => None,
    };
    let stream = HandshakeDeadline::new(stream, HTTP2_PREFACE_LEN, handshake);
    let connection = builder.serve_connection(TokioIo::new(stream), hyper_service);
    tokio::pin!(connection);
    let idle = activity.idle(&limits);
    tokio::pin!(idle);
    let mut closing = false;
    // After an idle HTTP/1 connection is asked to close: when it is dropped
    // if it has not closed by then.
    let mut cut: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    debug!("connection from {peer} ended: {e}");
                }
                return;
            }
            () = &mut idle, if !closing => {
                debug!("closing the idle connection from {peer}");
                closing = true;
                connection.as_mut().graceful_shutdown();
                // hyper closes an HTTP/1 connection at once when it waits
                // for a head, finishes writing an answer a client is slow
                // to read, and goes on reading a head that is arriving (on
                // a connection's first request it does): a slow head is
                // cut one keep-alive timeout later (see
                // `header_read_timeout`), and so is a reader that stalls.
                if let (false, Some(grace)) =
                    (activity.http2.load(Ordering::Relaxed), limits.http1_keep_alive)
                {
                    cut = Some(Box::pin(tokio::time::sleep(grace)));
                }
            }
            () = async { cut.as_mut().expect("armed").await }, if cut.is_some() => {
                debug!("dropping the connection from {peer}: it did not close when idle");
                return;
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The HTTP/2 client connection preface's length (`PRI * HTTP/2.0...`).
const HTTP2_PREFACE_LEN: usize = 24;

pin_project_lite::pin_project! {
    /// A connection whose first `needed` bytes must arrive before a
    /// deadline: reading fails with `TimedOut` past it, and hyper closes the
    /// connection. Once they have arrived, it costs one branch per read.
    struct HandshakeDeadline<T> {
        #[pin]
        inner: T,
        needed: usize,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<T> HandshakeDeadline<T> {
    fn new(inner: T, needed: usize, timeout: Option<Duration>) -> Self {
        HandshakeDeadline {
            inner,
            needed,
            deadline: timeout.map(|t| Box::pin(tokio::time::sleep(t))),
        }
    }
}

impl<T: tokio::io::AsyncRead> tokio::io::AsyncRead for HandshakeDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let Some(deadline) = this.deadline else {
            return this.inner.poll_read(cx, buf);
        };
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no connection preface within the handshake timeout",
            )));
        }
        let before = buf.filled().len();
        let read = std::task::ready!(this.inner.poll_read(cx, buf));
        let got = buf.filled().len() - before;
        *this.needed = this.needed.saturating_sub(got);
        if *this.needed == 0 {
            *this.deadline = None;
        }
        Poll::Ready(read)
    }
}

impl<T: tokio::io::AsyncWrite> tokio::io::AsyncWrite for HandshakeDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Whether requests are open on a connection, and since when it has had
/// none: what the idle timeouts go by. Bytes on the wire would be the
/// wrong measure: keepalive pings flow on an idle HTTP/2 connection, and
/// a long prediction sends nothing for minutes on a busy one.
struct Activity {
    started: Instant,
    open: AtomicUsize,
    /// Milliseconds after `started` when the last request ended.
    last_ms: AtomicU64,
    http2: std::sync::atomic::AtomicBool,
    became_idle: Notify,
}

impl Activity {
    fn new(http2: bool) -> Self {
        Activity {
            started: Instant::now(),
            open: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            http2: std::sync::atomic::AtomicBool::new(http2),
            became_idle: Notify::new(),
        }
    }

    /// A request starts; it is open until the guard (held by its response
    /// body) drops.
    fn open(self: &Arc<Self>, http2: bool) -> OpenRequest {
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.open.fetch_add(1, Ordering::AcqRel);
        OpenRequest(self.clone())
    }

    fn last_ms(&self) -> u64 {
        self.last_ms.load(Ordering::Acquire)
    }

    /// Resolves once the connection has had no open request for its idle
    /// timeout (never, when that timeout is off).
    async fn idle(&self, limits: &ConnectionLimits) {
        loop {
            let timeout = if self.http2.load(Ordering::Relaxed) {
                limits.http2_idle
            } else {
                limits.http1_keep_alive
            };
            let Some(timeout) = timeout else {
                return std::future::pending().await;
            };
            let became_idle = self.became_idle.notified();
            tokio::pin!(became_idle);
            became_idle.as_mut().enable();
            if self.open.load(Ordering::Acquire) > 0 {
                became_idle.await;
                continue;
            }
            let since = self.last_ms();
            let deadline = self.started + Duration::from_millis(since) + timeout;
            tokio::time::sleep_until(deadline).await;
            if self.open.load(Ordering::Acquire) == 0 && self.last_ms() == since {
                return;
            }
        }
    }
}

/// An open request; dropping it (its response body done or dropped)
/// records when the connection last did something.
struct OpenRequest(Arc<Activity>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        let activity = &self.0;
        let now = activity.started.elapsed().as_millis() as u64;
        // Never 0 once a request has ended, so "ended at 0" and "none yet"
        // do not compare equal across one.
        activity.last_ms.store(now.max(1), Ordering::Release);
        if activity.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            activity.became_idle.notify_waiters();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request open until it has been sent
    /// (a stream is a request in progress for as long as it runs).
    struct Tracked<B> {
        #[pin]
        body: B,
        _open: OpenRequest,
        _charge: Option<Arc<Charge>>,
    }
}

impl<B: http_body::Body> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Errors of one incoming connection (it was reset before we took it),
/// not of the listener: the next accept is fine.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

fn local_addr(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "a listener".to_owned(), |a| a.to_string())
}

/// Pauses between failed accepts: 5 ms doubling to 1 s, back to the start
/// after a success.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Backoff(Self::FIRST)
    }

    fn next(&mut self) -> Duration {
        let pause = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        pause
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

/// A log line at most once a second, with how often its event happened
/// since the last one: a flood must not flood the log too.
struct RateLimitedLog {
    last: Option<Instant>,
    count: u64,
}

impl RateLimitedLog {
    fn new() -> Self {
        RateLimitedLog {
            last: None,
            count: 0,
        }
    }

    fn note(&mut self, log: impl FnOnce(u64)) {
        self.count += 1;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            log(self.count);
            self.count = 0;
            self.last = Some(Instant::now());
        }
    }
}

/// Raises the soft limit on open files to the hard one, as Go's runtime
/// does for every program: the soft limit (often 1024) is a relic of
/// `select()`, and a server holding thousands of connections needs more.
/// Returns the limit in force.
pub(crate) fn raise_open_files_limit() -> Option<u64> {
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Some(raised.rlim_cur);
            }
        }
        Some(limit.rlim_cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::new();
        let pauses: Vec<_> = (0..10).map(|_| b.next()).collect();
        assert_eq!(pauses[0], Duration::from_millis(5));
        assert_eq!(pauses[1], Duration::from_millis(10));
        assert_eq!(*pauses.last().unwrap(), Duration::from_secs(1));
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(5));
    }

    #[test]
    fn rate_limited_log_counts_what_it_skips() {
        let mut log = RateLimitedLog::new();
        let mut lines = Vec::new();
        for _ in 0..5 {
            log.note(|n| lines.push(n));
        }
        assert_eq!(lines, vec![1]);
        log.last = Some(Instant::now() - Duration::from_secs(2));
        log.note(|n| lines.push(n));
        assert_eq!(lines, vec![1, 5]);
    }

    #[test]
    fn hypers_header_timer_runs_only_when_the_idle_close_is_later() {
        let limits = |keep_alive: Option<u64>, header: Option<u64>| ConnectionLimits {
            http1_keep_alive: keep_alive.map(Duration::from_secs),
            header_read: header.map(Duration::from_secs),
            ..ConnectionLimits::default()
        };
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(header_read_timeout(&limits(Some(5), Some(10))), None);
        assert_eq!(header_read_timeout(&limits(Some(6), Some(10))), secs(10));
        assert_eq!(header_read_timeout(&limits(Some(10), Some(10))), secs(10));
        assert_eq!(header_read_timeout(&limits(Some(30), Some(10))), secs(10));
        assert_eq!(header_read_timeout(&limits(None, Some(10))), secs(10));
        assert_eq!(header_read_timeout(&limits(Some(5), None)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_open_requests_and_then_the_timeout() {
        let limits = ConnectionLimits {
            http1_keep_alive: Some(Duration::from_secs(5)),
            ..ConnectionLimits::default()
        };
        let activity = Arc::new(Activity::new(false));
        let open = activity.open(false);
        let idle = activity.idle(&limits);
        tokio::pin!(idle);
        // A request open for a minute: not idle.
        tokio::select! {
            () = &mut idle => panic!("idle with a request open"),
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        drop(open);
        let ended = Instant::now();
        idle.await;
        assert!(ended.elapsed() >= Duration::from_secs(5));
    }
}
