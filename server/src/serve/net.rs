//! The accept loop: TCP_NODELAY, a connection limit, an idle timeout on the socket (suspended
//! while a request is being handled, see [`Busy`]), a header timeout, TLS (rustls) when
//! configured, and graceful shutdown that lets in-flight transfers finish up to a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::ServeError;
use super::app::ClientAddr;
use super::config::Limits;

/// hyper's read buffer limit, which bounds a request head: one that does not fit is refused
/// with 431. Not an exact head size: hyper checks it between reads, so a head somewhat larger
/// can pass (about 100 KB did, 130 KB was refused); what matters is that it is bounded.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Loads a PEM certificate chain and private key into a rustls server config (HTTP/1.1).
pub(crate) fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |what: &Path, e: &dyn std::fmt::Display| ServeError::Config {
        message: format!("TLS {}: {e}", what.display()),
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(cert, &e))?;
    if certs.is_empty() {
        return Err(err(cert, &"no certificate in the file"));
    }
    super::config::check_private(key, "TLS private key")?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| err(cert, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until the first signal, then waits up to the grace period for
/// open connections to finish; a second signal ends the wait at once (the operator who presses
/// Ctrl-C twice means it).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut signals: Signals,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let http = Arc::new(http_builder(&limits));
    let mut shutdown = Box::pin(signals.recv());
    loop {
        // Wait for a free connection slot before accepting: further clients wait in the
        // kernel's backlog instead of costing memory here.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let busy = Busy::new();
        let io = Idle::new(tcp, limits.idle_timeout, busy.clone());
        let app = app.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let handshake_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                handle(app.clone(), addr, &busy, req)
            });
            match acceptor {
                None => {
                    let conn = http.serve_connection(TokioIo::new(io), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, %addr, "connection ended with an error");
                    }
                }
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, %addr, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn = http.serve_connection(TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, %addr, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop((shutdown, listener));
    tracing::info!(
        grace_secs = limits.shutdown_grace.as_secs(),
        "shutting down: no new connections; finishing in-flight requests (a second signal \
         stops them now)"
    );
    tokio::select! {
        r = tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()) => {
            if r.is_err() {
                tracing::warn!("shutdown grace period over; closing the remaining connections");
            }
        }
        () = signals.recv() => {
            tracing::warn!("second signal: closing the remaining connections now");
        }
    }
}

/// hyper's HTTP/1.1 connection settings: the header timeout, the head size limit, keep-alive.
fn http_builder(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // A request head (line and headers) that outgrows this is refused with 431.
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    http
}

/// Hands one request from the client at `addr` to `app`, with the connection [`Busy`] from
/// now (hyper calls the service) until the response head is ready.
fn handle(
    app: Router,
    addr: SocketAddr,
    busy: &Busy,
    mut req: hyper::Request<Incoming>,
) -> impl Future<Output = Result<Response, Infallible>> + Send + use<> {
    // Taken here, not inside the future, so the request counts from the moment hyper has it;
    // dropped with the future, so a response that is ready, or a request that hyper abandons
    // (the client left), both end it.
    let working = busy.start();
    req.extensions_mut().insert(ClientAddr(addr));
    let req = req.map(|body| axum::body::Body::new(PeerBody::new(body, busy.clone())));
    let response = app.oneshot(req);
    async move {
        let _working = working;
        response.await
    }
}

/// Whether the server side of a connection is working on a request, shared by the
/// connection's [`Idle`] socket and the service that handles its requests.
///
/// A connection is busy from the moment hyper hands a request to the service until the
/// response head is ready, so an admin call that computes for minutes before it answers
/// (a master key rotation over many files, an audit verification) is not cut as idle: no byte
/// moves, but it is the server that owes them. Two things are not busy:
///
/// - waiting for a request head (the header timeout's business: a slowloris stays cut);
/// - a handler waiting for more of its request body ([`PeerBody`]): then the client owes the
///   bytes, and a client that stops sending its body is cut as before.
///
/// Once the response head is ready, its body moves bytes and the idle rule applies again,
/// counted from the moment the connection stopped being busy.
#[derive(Debug, Clone)]
pub(crate) struct Busy(Arc<Mutex<BusyState>>);

#[derive(Debug)]
struct BusyState {
    /// Requests handed to the service whose response head is not ready yet.
    handling: usize,
    /// Request bodies whose reader waits for the client.
    waiting_for_peer: usize,
    /// When the connection last stopped being busy (at first: when it was accepted).
    quiet_since: Instant,
}

impl BusyState {
    fn busy(&self) -> bool {
        // HTTP/1.1 handles one request at a time, so this is "one request, and its handler is
        // not waiting for the client"; a body that outlives its request only makes it less busy.
        self.handling > self.waiting_for_peer
    }
}

/// Marks a request as being handled until dropped ([`Busy::start`]).
#[derive(Debug)]
pub(crate) struct Working(Busy);

impl Busy {
    pub(crate) fn new() -> Self {
        Busy(Arc::new(Mutex::new(BusyState {
            handling: 0,
            waiting_for_peer: 0,
            quiet_since: Instant::now(),
        })))
    }

    /// A request is being handled until the returned guard is dropped.
    pub(crate) fn start(&self) -> Working {
        self.update(|s| s.handling += 1);
        Working(self.clone())
    }

    /// `None` while busy; otherwise when the connection last stopped being busy.
    fn quiet_since(&self) -> Option<Instant> {
        let s = self.lock();
        (!s.busy()).then_some(s.quiet_since)
    }

    fn update(&self, change: impl FnOnce(&mut BusyState)) {
        let mut s = self.lock();
        let was_busy = s.busy();
        change(&mut s);
        if was_busy && !s.busy() {
            s.quiet_since = Instant::now();
        }
    }

    fn lock(&self) -> MutexGuard<'_, BusyState> {
        // The state is two counters and an instant, each update a single step: a panic while
        // it was held cannot have left it half-changed.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        self.0.update(|s| s.handling -= 1);
    }
}

/// A request body that tells [`Busy`] when its reader waits for the client.
///
/// The flag is set while the last poll returned `Pending`. A reader that gives up on a frame
/// (a timeout around `frame()`) and keeps the body leaves it set until the body is polled
/// again or dropped: the connection then counts as idle-able, as it did before requests made
/// it busy, which errs on the side of cutting.
struct PeerBody<B> {
    inner: B,
    busy: Busy,
    waiting: bool,
}

impl<B> PeerBody<B> {
    fn new(inner: B, busy: Busy) -> Self {
        PeerBody {
            inner,
            busy,
            waiting: false,
        }
    }

    fn set_waiting(&mut self, waiting: bool) {
        if self.waiting != waiting {
            self.waiting = waiting;
            self.busy.update(|s| {
                if waiting {
                    s.waiting_for_peer += 1;
                } else {
                    s.waiting_for_peer -= 1;
                }
            });
        }
    }
}

impl<B> HttpBody for PeerBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        this.set_waiting(polled.is_pending());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for PeerBody<B> {
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

/// A connection closed once neither direction has made progress for `limit`, while its server
/// side is not [`Busy`]: a read or a write waiting longer than that fails with
/// [`io::ErrorKind::TimedOut`].
///
/// Progress in *either* direction counts. A read timeout alone would cut every long download:
/// hyper keeps a read pending while it writes a response (to notice a client that leaves), and
/// a client that only receives never completes a read. A write timeout alone would miss a
/// client that stalls its upload. Here a download that keeps moving, however slowly, and an
/// upload that keeps arriving both live; a peer that stops reading or sending is cut.
///
/// Time spent busy does not count: the deadline is `limit` after the later of the last
/// progress and the end of the last busy stretch. While busy, the timer only looks again one
/// `limit` later.
pub(crate) struct Idle<S> {
    inner: S,
    limit: Duration,
    /// When a read or write last completed.
    last: Instant,
    /// Whether a request is being handled on this connection.
    busy: Busy,
    /// Fires at or before the deadline (progress moves the deadline later; the timer is
    /// re-armed when it fires, not on every byte); polled only while an operation waits.
    timer: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    pub(crate) fn new(inner: S, limit: Duration, busy: Busy) -> Self {
        let last = Instant::now();
        Idle {
            inner,
            limit,
            last,
            busy,
            timer: Box::pin(tokio::time::sleep_until(last + limit)),
        }
    }

    fn progressed(&mut self) {
        self.last = Instant::now();
    }

    /// An operation is waiting: `TimedOut` once the connection has been idle (nothing moved,
    /// not busy) for `limit`, else keep waiting (the timer wakes the task).
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let next = match self.busy.quiet_since() {
                // The server owes the next bytes: nothing to cut. Look again a limit later
                // (a millisecond at least, so a zero limit cannot spin here).
                None => now + self.limit.max(Duration::from_millis(1)),
                Some(since) => {
                    let deadline = self.last.max(since) + self.limit;
                    if deadline <= now {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the connection was idle too long",
                        )));
                    }
                    deadline
                }
            };
            // Later than now, so the next poll registers the waker and returns Pending.
            self.timer.as_mut().reset(next);
        }
        Poll::Pending
    }

    /// Notes progress when `result` moved bytes (`moved`), or checks the deadline while it
    /// waits.
    fn track<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
        moved: impl FnOnce(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(Ok(v)) => {
                if moved(&v) {
                    self.progressed();
                }
                Poll::Ready(Ok(v))
            }
            Poll::Pending => self.waiting(cx),
            other => other,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len() > before;
        this.track(cx, result, |()| read)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.track(cx, result, |n| *n > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.track(cx, result, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.track(cx, result, |()| false)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.track(cx, result, |()| false)
    }
}

/// SIGTERM and Ctrl-C (SIGINT), listened for from the moment [`Signals::install`] returns:
/// a signal that arrives while the server is still starting (say, just after its banner)
/// starts the graceful shutdown instead of killing the process with no flush.
pub(crate) struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers. Call inside the runtime.
    pub(crate) fn install() -> io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Resolves on the next SIGTERM or Ctrl-C.
    pub(crate) async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The URL clients use for `addr`.
pub(crate) fn base_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMIT: Duration = Duration::from_secs(60);

    // The clock is paused: tokio advances it only when every task waits, so these run instantly
    // and measure the timer's own deadlines, not the machine.

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_cut_after_the_limit() {
        let (_peer, ours) = tokio::io::duplex(64);
        let mut idle = Idle::new(ours, LIMIT, Busy::new());
        let started = Instant::now();
        let err = idle.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_pushes_the_deadline_back() {
        let (mut peer, ours) = tokio::io::duplex(64);
        let mut idle = Idle::new(ours, LIMIT, Busy::new());
        let started = Instant::now();
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(LIMIT / 2).await;
                peer.write_all(b"x").await.unwrap();
            }
            // Then silence: the reader is cut one limit after the last byte.
            std::future::pending::<()>().await;
        });
        let mut got = [0; 1];
        for _ in 0..3 {
            idle.read_exact(&mut got).await.unwrap();
        }
        let err = idle.read(&mut got).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), LIMIT / 2 * 3 + LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_cannot_proceed_is_cut_too() {
        let (_peer, ours) = tokio::io::duplex(16);
        let mut idle = Idle::new(ours, LIMIT, Busy::new());
        // The peer never reads: the pipe fills, the write waits, and times out.
        let err = idle.write_all(&[0; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    /// `f`'s output; a panic instead of a hang when a connection that should be cut is not.
    async fn within_ten_limits<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(LIMIT * 10, f)
            .await
            .expect("still open after ten limits")
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_is_cut_only_a_limit_after_its_request_ends() {
        let (_peer, ours) = tokio::io::duplex(64);
        let busy = Busy::new();
        let mut idle = Idle::new(ours, LIMIT, busy.clone());
        let started = Instant::now();
        let working = busy.start();
        // The handler computes for three limits and a half, then its response is ready.
        let handling = LIMIT * 3 + LIMIT / 2;
        tokio::spawn(async move {
            tokio::time::sleep(handling).await;
            drop(working);
        });
        let err = within_ten_limits(idle.read(&mut [0; 8])).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), handling + LIMIT);
    }

    /// A body that never delivers anything: a client that stopped sending.
    struct Stalled;

    impl HttpBody for Stalled {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_waiting_for_its_request_body_is_not_busy() {
        use http_body_util::BodyExt;

        let (_peer, ours) = tokio::io::duplex(64);
        let busy = Busy::new();
        let mut idle = Idle::new(ours, LIMIT, busy.clone());
        let started = Instant::now();
        let working = busy.start();
        let mut body = PeerBody::new(Stalled, busy.clone());
        // The handler reads its body after computing for a limit and a half.
        tokio::spawn(async move {
            tokio::time::sleep(LIMIT + LIMIT / 2).await;
            let _ = body.frame().await;
            drop(working);
        });
        let err = within_ten_limits(idle.read(&mut [0; 8])).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), LIMIT + LIMIT / 2 + LIMIT);
    }

    /// Serves one connection through hyper exactly as [`serve`] does, over an in-memory pipe
    /// of `capacity` bytes; returns the client's end and the connection's outcome.
    fn connection(
        app: Router,
        capacity: usize,
    ) -> (
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<Result<(), hyper::Error>>,
    ) {
        let (client, server) = tokio::io::duplex(capacity);
        let busy = Busy::new();
        let io = Idle::new(server, LIMIT, busy.clone());
        let http = http_builder(&Limits {
            idle_timeout: LIMIT,
            ..Limits::default()
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            handle(app.clone(), addr, &busy, req)
        });
        let conn =
            tokio::spawn(async move { http.serve_connection(TokioIo::new(io), service).await });
        (client, conn)
    }

    /// Whether `e` was caused by [`Idle`] (a `TimedOut` I/O error in its chain).
    fn is_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if err
                .downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
            {
                return true;
            }
            cur = err.source();
        }
        false
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_outlives_the_limit_and_its_unread_body_does_not() {
        let slow = LIMIT * 3;
        let app = Router::new().route(
            "/slow",
            axum::routing::get(move || async move {
                tokio::time::sleep(slow).await;
                vec![7u8; 1 << 20]
            }),
        );
        let (mut client, conn) = connection(app, 16 * 1024);
        let started = Instant::now();
        client
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0; 1024];
            let n = client.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "the connection was closed: {head:?}");
            head.extend_from_slice(&buf[..n]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
        assert_eq!(started.elapsed(), slow, "the answer came when it was ready");
        // The client reads nothing more: the pipe fills, and the connection is cut one limit
        // after the last byte moved.
        let err = within_ten_limits(conn).await.unwrap().unwrap_err();
        assert!(is_timed_out(&err), "{err}");
        assert_eq!(started.elapsed(), slow + LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_body_that_stops_arriving_is_cut_after_the_limit() {
        let app = Router::new().route(
            "/upload",
            axum::routing::post(|body: axum::body::Body| async move {
                match axum::body::to_bytes(body, usize::MAX).await {
                    Ok(b) => format!("got {} bytes", b.len()),
                    Err(e) if is_timed_out(&e) => "timed out".to_owned(),
                    Err(e) => format!("failed: {e}"),
                }
            }),
        );
        let (mut client, conn) = connection(app, 16 * 1024);
        let started = Instant::now();
        client
            .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        // The handler waits for the other 90 bytes: the connection is not busy, so the read
        // times out one limit later, the handler sees its body fail, and its answer goes out
        // before the connection closes.
        let mut answer = Vec::new();
        within_ten_limits(client.read_to_end(&mut answer))
            .await
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.ends_with("\r\n\r\ntimed out"), "{answer}");
        assert_eq!(started.elapsed(), LIMIT);
        conn.await.unwrap().unwrap();
    }
}
