//! One API connection's time limits after its TLS handshake, upstream's
//! (Go's `http.Server` as kube-apiserver's secure serving configures it):
//! how long a connection may sit with nothing open, how long a client has
//! to send a request's headers over HTTP/1.1, and its preface and first
//! SETTINGS over HTTP/2.
//!
//! hyper has no idle timeout for HTTP/2, and its HTTP/1.1 header timeout
//! starts the moment a connection goes idle (so an idle keep-alive
//! connection was cut at 32 s instead of upstream's 90 s). So the
//! connection is watched from outside: [`Tracked`] counts what is open (an
//! HTTP/2 stream, an HTTP/1.1 exchange, from the request until its
//! response body ends or is dropped), [`Counted`] notes when bytes arrive,
//! and [`Activity::deadline`] says what expires next.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The client preface every HTTP/2 connection starts with.
const PREFACE_LEN: u64 = 24;
/// The preface and the header of the frame after it (SETTINGS, which the
/// HTTP/2 codec checks).
const PREFACE_AND_FRAME_HEADER_LEN: u64 = PREFACE_LEN + 9;

/// A connection's time limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// For the TLS handshake. Go bounds it by the smallest of the server's
    /// read, read-header and write timeouts; upstream sets only
    /// `ReadHeaderTimeout`, so 32 s.
    pub handshake: Duration,
    /// With nothing open: upstream's `IdleTimeout`, 90 s, for HTTP/1.1
    /// keep-alive and HTTP/2 alike (it "matches http.DefaultTransport
    /// keep-alive timeout", so a client's pooled connection is not closed
    /// under it as it sends). An idle HTTP/2 connection is shut down
    /// gracefully (GOAWAY), an HTTP/1.1 one closed.
    pub idle: Duration,
    /// For an HTTP/1.1 request's headers: upstream's `ReadHeaderTimeout`,
    /// 32 s, counted from the end of the handshake for a connection's
    /// first request and from the first byte of each later one.
    pub header_read: Duration,
    /// For the HTTP/2 client preface after the handshake (Go's fixed
    /// `prefaceTimeout`, 10 s).
    pub preface: Duration,
    /// For the client's first SETTINGS frame after its preface (Go's
    /// fixed `firstSettingsTimeout`, 2 s).
    pub first_settings: Duration,
}

impl Timeouts {
    /// kube-apiserver's.
    pub const UPSTREAM: Timeouts = Timeouts {
        handshake: Duration::from_secs(32),
        idle: Duration::from_secs(90),
        header_read: Duration::from_secs(32),
        preface: Duration::from_secs(10),
        first_settings: Duration::from_secs(2),
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::UPSTREAM
    }
}

/// What happens when a deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The client did not speak in time: the connection is dropped, as Go
    /// closes it on a read deadline.
    Close,
    /// Nothing open for the idle timeout: a graceful shutdown (HTTP/2
    /// GOAWAY; an idle HTTP/1.1 connection simply closes).
    Shutdown,
}

/// "Not yet", in the millisecond fields of [`Activity`].
const NEVER: u64 = u64::MAX;

/// What one connection has open and when bytes arrived, shared by its
/// service, its transport and the task that serves it.
#[derive(Debug)]
pub struct Activity {
    /// The end of the TLS handshake; the fields below count milliseconds
    /// from it.
    start: Instant,
    http2: bool,
    open: AtomicUsize,
    /// When `open` last fell to zero; [`NEVER`] before the first request.
    idle_since: AtomicU64,
    /// The first byte read since `idle_since` (HTTP/1.1's next request
    /// has begun), or [`NEVER`].
    read_while_idle: AtomicU64,
    bytes: AtomicU64,
    /// When the HTTP/2 preface had arrived, and the header of the frame
    /// after it.
    preface_at: AtomicU64,
    first_frame_at: AtomicU64,
    /// Rung when a deadline may have moved earlier or a count fell to
    /// zero, so the serving task recomputes it.
    changed: Notify,
}

impl Activity {
    /// A connection whose handshake just ended, speaking HTTP/2 when ALPN
    /// chose `h2` (Go picks the protocol by ALPN alone).
    pub fn new(http2: bool) -> Arc<Self> {
        Self::starting_at(Instant::now(), http2)
    }

    fn starting_at(start: Instant, http2: bool) -> Arc<Self> {
        Arc::new(Self {
            start,
            http2,
            open: AtomicUsize::new(0),
            idle_since: AtomicU64::new(NEVER),
            read_while_idle: AtomicU64::new(NEVER),
            bytes: AtomicU64::new(0),
            preface_at: AtomicU64::new(NEVER),
            first_frame_at: AtomicU64::new(NEVER),
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    /// Requests (streams) open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Counts one request open until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::AcqRel);
        Open(Some(self.clone()))
    }

    fn end(&self) {
        // Cleared before the count falls, so a byte of the next request
        // read once it has fallen is kept.
        self.read_while_idle.store(NEVER, Ordering::Release);
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now_ms(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    fn read(&self, n: usize) {
        let n = n as u64;
        let before = self.bytes.fetch_add(n, Ordering::AcqRel);
        let after = before + n;
        if before < PREFACE_AND_FRAME_HEADER_LEN {
            let now = self.now_ms();
            if before < PREFACE_LEN && after >= PREFACE_LEN {
                self.preface_at.store(now, Ordering::Release);
            }
            if after >= PREFACE_AND_FRAME_HEADER_LEN {
                self.first_frame_at.store(now, Ordering::Release);
            }
            self.changed.notify_one();
        }
        if !self.http2
            && self.open() == 0
            && self.idle_since.load(Ordering::Acquire) != NEVER
            && self
                .read_while_idle
                .compare_exchange(NEVER, self.now_ms(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// The next deadline and what it brings, or `None` while something is
    /// open (a watch, an exec session, a request being answered).
    pub fn deadline(&self, t: &Timeouts) -> Option<(Instant, Expiry)> {
        let (at_ms, expiry) = self.deadline_ms(t)?;
        Some((self.start + Duration::from_millis(at_ms), expiry))
    }

    fn deadline_ms(&self, t: &Timeouts) -> Option<(u64, Expiry)> {
        if self.open() > 0 {
            return None;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NEVER / 2);
        let idle_since = self.idle_since.load(Ordering::Acquire);
        if self.http2 {
            let preface_at = self.preface_at.load(Ordering::Acquire);
            if preface_at == NEVER {
                return Some((ms(t.preface), Expiry::Close));
            }
            let first_frame_at = self.first_frame_at.load(Ordering::Acquire);
            if first_frame_at == NEVER {
                return Some((preface_at + ms(t.first_settings), Expiry::Close));
            }
            // Go starts the idle clock once the preface is read.
            let since = if idle_since == NEVER {
                first_frame_at
            } else {
                idle_since
            };
            return Some((since + ms(t.idle), Expiry::Shutdown));
        }
        if idle_since == NEVER {
            return Some((ms(t.header_read), Expiry::Close));
        }
        match self.read_while_idle.load(Ordering::Acquire) {
            NEVER => Some((idle_since + ms(t.idle), Expiry::Shutdown)),
            first_byte => Some((first_byte + ms(t.header_read), Expiry::Close)),
        }
    }

    /// Resolves when [`Activity::deadline`] may have changed.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// One open request; dropping it closes it.
#[derive(Debug)]
pub struct Open(Option<Arc<Activity>>);

impl Open {
    fn close(&mut self) {
        if let Some(activity) = self.0.take() {
            activity.end();
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.close();
    }
}

/// A transport that tells its [`Activity`] of the bytes it reads.
pub struct Counted<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Counted<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.activity.read(n);
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

/// A service whose requests count as open in an [`Activity`] until their
/// response bodies end or are dropped (a stream reset, a closed
/// connection).
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

type TrackedFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<hyper::Response<TrackedBody<B>>, E>> + Send>>;

impl<S, R, B> hyper::service::Service<R> for Tracked<S>
where
    S: hyper::service::Service<R, Response = hyper::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = hyper::Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<B, S::Error>;

    fn call(&self, request: R) -> Self::Future {
        let open = self.activity.begin();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| TrackedBody { body, open }))
        })
    }
}

/// A response body that keeps its request open while it lasts.
pub struct TrackedBody<B> {
    body: B,
    open: Open,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.open.close();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        handshake: Duration::from_secs(32),
        idle: Duration::from_secs(90),
        header_read: Duration::from_secs(32),
        preface: Duration::from_secs(10),
        first_settings: Duration::from_secs(2),
    };

    fn at(a: &Activity) -> Option<(u64, Expiry)> {
        a.deadline_ms(&T)
    }

    #[test]
    fn upstream_values() {
        assert_eq!(Timeouts::default(), T);
    }

    #[test]
    fn http1_first_request_has_the_header_timeout_from_the_handshake() {
        let a = Activity::new(false);
        assert_eq!(at(&a), Some((32_000, Expiry::Close)));
        // Its first bytes do not restart it (Go's deadline is set before
        // reading).
        a.read(10);
        assert_eq!(at(&a), Some((32_000, Expiry::Close)));
        let open = a.begin();
        assert_eq!(at(&a), None, "an open request has no deadline");
        drop(open);
        let (idle, expiry) = at(&a).expect("idle");
        assert_eq!(expiry, Expiry::Shutdown);
        assert!((90_000..91_000).contains(&idle), "{idle}");
    }

    #[test]
    fn http1_idle_connection_gets_the_idle_timeout_until_a_byte_arrives() {
        let a = Activity::starting_at(Instant::now() - Duration::from_secs(5), false);
        drop(a.begin());
        let (idle, expiry) = at(&a).expect("idle");
        assert_eq!(expiry, Expiry::Shutdown);
        assert!((95_000..96_000).contains(&idle), "{idle}");
        a.read(1);
        let (header, expiry) = at(&a).expect("header");
        assert_eq!(expiry, Expiry::Close);
        assert!((37_000..38_000).contains(&header), "{header}");
        // The next request's end starts a fresh idle period.
        let open = a.begin();
        a.read(100);
        assert_eq!(at(&a), None);
        drop(open);
        assert_eq!(at(&a).map(|(_, e)| e), Some(Expiry::Shutdown));
    }

    #[test]
    fn http2_preface_then_settings_then_idle() {
        let a = Activity::new(true);
        assert_eq!(at(&a), Some((10_000, Expiry::Close)));
        a.read(20);
        assert_eq!(at(&a), Some((10_000, Expiry::Close)));
        a.read(4);
        let (settings, expiry) = at(&a).expect("settings");
        assert_eq!(expiry, Expiry::Close);
        assert!((2_000..3_000).contains(&settings), "{settings}");
        a.read(9);
        let (idle, expiry) = at(&a).expect("idle");
        assert_eq!(expiry, Expiry::Shutdown);
        assert!((90_000..91_000).contains(&idle), "{idle}");
    }

    #[test]
    fn http2_stream_open_is_never_idle_and_its_end_restarts_the_clock() {
        let a = Activity::starting_at(Instant::now() - Duration::from_secs(200), true);
        a.read(64);
        let watch = a.begin();
        let get = a.begin();
        assert_eq!(at(&a), None);
        drop(get);
        assert_eq!(at(&a), None, "the watch is still open");
        // Frames on an idle HTTP/2 connection (PINGs) do not count as a
        // request beginning.
        drop(watch);
        a.read(17);
        let (idle, expiry) = at(&a).expect("idle");
        assert_eq!(expiry, Expiry::Shutdown);
        assert!((290_000..291_000).contains(&idle), "{idle}");
    }

    #[tokio::test]
    async fn a_response_body_keeps_its_request_open_until_it_ends() {
        use hyper::service::Service;
        struct Answer;
        impl Service<()> for Answer {
            type Response = hyper::Response<String>;
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
            fn call(&self, (): ()) -> Self::Future {
                std::future::ready(Ok(hyper::Response::new(String::from("body"))))
            }
        }
        let a = Activity::new(true);
        let service = Tracked::new(Answer, a.clone());
        let response = service.call(()).await.expect("response");
        assert_eq!(a.open(), 1, "the body is not sent yet");
        let mut body = response.into_body();
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(frame.is_some_and(|f| f.is_ok()));
        assert_eq!(a.open(), 1);
        let end = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(end.is_none());
        assert_eq!(a.open(), 0, "the body ended");
        drop(body);
        assert_eq!(a.open(), 0, "closed once");
        // A dropped future (the client reset the stream) closes it too.
        let pending = service.call(());
        assert_eq!(a.open(), 1);
        drop(pending);
        assert_eq!(a.open(), 0);
    }
}
