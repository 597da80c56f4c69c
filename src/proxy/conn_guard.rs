//! Per-connection defences that Pingora has no hook for (accept, header read): a cap on the
//! connections one client address holds open, and a deadline on the whole request head.
//!
//! Pingora times header reads out per `read()` only, so a client that sends one byte every
//! few seconds (slowloris) holds a connection forever. `Guarded` wraps the proxy application
//! and every accepted stream: the stream enforces the deadline kept by a `HeaderClock`, and
//! owns the connection's slot in the per-address count, which is given back when it closes.
//! request_filter and logging move the clock through a request (`started`, `finished`).
//!
//! `Guarded` also runs the HTTP/1 keep-alive loop itself, so that between two requests a
//! connection holds only its stream: Pingora's own loop waits for the next request inside its
//! whole per-request state machine (tens of KiB per idle client). Here the first bytes of the
//! next request are read into the stream's own small buffer (`next_request`), and Pingora's
//! request handling starts only once they are there.
//!
//! The clock and the admission decision are pure; only `GuardedStream` touches IO.

use std::fmt;
use std::future::Future;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use once_cell::sync::Lazy;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::listeners::ConnectionFilter;
use pingora::protocols::http::ServerSession;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use pingora_limits::inflight::{Guard, Inflight};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::METRICS;
use crate::state::Store;

/// Label of connections closed because their request head did not arrive in time.
pub const HEADER_TIMEOUT: &str = "header_timeout";
/// Label of connections refused because their address already holds its share.
pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";

const READING: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;
const OFF: u8 = 3;

/// Where a connection stands between requests, and the deadline of the head being read.
///
/// `Reading` (from accept, or from the first byte after a response): the head must be complete
/// by the deadline. `Busy` (request_filter ran): body and response have their own timeouts.
/// `Idle` (after logging): waiting for a next request, under the keep-alive timeout; the first
/// byte starts a new deadline. Atomics, because the proxy phases reach it by shared reference.
#[derive(Debug)]
pub struct HeaderClock {
    phase: AtomicU8,
    /// Milliseconds since `epoch` by which the head must be complete, while `Reading`.
    deadline_ms: AtomicU64,
    timeout_ms: u64,
}

impl HeaderClock {
    /// A clock for a connection accepted at `now_ms`, or one that never expires (`None`).
    pub fn new(timeout: Option<Duration>, now_ms: u64) -> HeaderClock {
        let timeout_ms = timeout.map_or(0, |t| t.as_millis() as u64);
        HeaderClock {
            phase: AtomicU8::new(if timeout.is_some() { READING } else { OFF }),
            deadline_ms: AtomicU64::new(now_ms.saturating_add(timeout_ms)),
            timeout_ms,
        }
    }

    /// Bytes arrived at `now_ms`: the first ones after a response start a new deadline.
    pub fn on_bytes(&self, now_ms: u64) {
        if self
            .phase
            .compare_exchange(IDLE, READING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.deadline_ms
                .store(now_ms.saturating_add(self.timeout_ms), Ordering::Release);
        }
    }

    /// The head is complete (request_filter).
    pub fn started(&self) {
        let _ = self
            .phase
            .compare_exchange(READING, BUSY, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// The response is done (logging); the connection may wait for another request.
    pub fn finished(&self) {
        let _ = self
            .phase
            .compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// The deadline of the head being read, if one is being read.
    pub fn deadline_ms(&self) -> Option<u64> {
        (self.phase.load(Ordering::Acquire) == READING).then(|| self.deadline_ms.load(Ordering::Acquire))
    }
}

/// Whether an address may open one more connection.
#[must_use]
pub enum Admission {
    /// Not counted: the cap is off, or the peer is a trusted proxy (one carries many clients).
    Uncounted,
    /// Counted: the slot is given back when the guard is dropped with the connection.
    Counted(Guard),
    /// The address already holds its share.
    Refused,
}

pub fn admit(counter: &Inflight, ip: IpAddr, max: u32, trusted: bool) -> Admission {
    if max == 0 || trusted {
        return Admission::Uncounted;
    }
    let (slot, open) = counter.incr(ip, 1);
    if open > max as isize {
        return Admission::Refused;
    }
    Admission::Counted(slot)
}

/// Connections open per client address, shared by every listener of the process. A count-min
/// sketch: it never under-counts, and may over-count at very high address cardinality.
static OPEN: Lazy<Inflight> = Lazy::new(Inflight::new);

/// The proxy application behind the per-connection guards.
pub struct Guarded<A> {
    pub app: Arc<A>,
    pub store: Store,
    epoch: Instant,
}

impl<A> Guarded<A> {
    pub fn new(app: A, store: Store) -> Guarded<A> {
        Guarded {
            app: Arc::new(app),
            store,
            epoch: Instant::now(),
        }
    }
}

fn peer_ip(stream: &Stream) -> Option<IpAddr> {
    let digest = stream.get_socket_digest()?;
    digest.peer_addr()?.as_inet().map(|a| a.ip())
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let (limits, trusted, keepalive) = {
            let snap = self.store.load();
            let ip = peer_ip(&stream);
            (
                snap.conn_limits,
                ip.map(|ip| (ip, snap.trusted_proxies.contains(ip))),
                snap.client_keepalive_secs,
            )
        };
        let admission = trusted.map(|(ip, trusted)| admit(&OPEN, ip, limits.max_connections_per_ip, trusted));
        let slot = match admission {
            Some(Admission::Counted(slot)) => Some(slot),
            Some(Admission::Refused) => {
                METRICS
                    .connection_refusals
                    .with_label_values(&[TOO_MANY_CONNECTIONS])
                    .inc();
                return None;
            }
            Some(Admission::Uncounted) | None => None,
        };
        // An HTTP/2 connection carries many requests at once: its streams are not timed here.
        let alpn = stream.selected_alpn_proto();
        let http1 = matches!(alpn, None | Some(ALPN::H1))
            && self.app.server_options().is_none_or(|o| !o.h2c && !o.force_custom);
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let clock = HeaderClock::new(http1.then_some(limits.header_timeout), now_ms);
        let guarded = Box::new(GuardedStream {
            inner: stream,
            clock,
            epoch: self.epoch,
            timer: None,
            early: Early::default(),
            _slot: slot,
        });
        if !http1 {
            return self.app.process_new(guarded, shutdown).await;
        }
        self.serve_http1(guarded, Duration::from_secs(keepalive), shutdown)
            .await;
        None
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}

impl<A: HttpServerApp + Send + Sync + 'static> Guarded<A> {
    /// One HTTP/1 connection, request after request, as Pingora's own loop does it, except
    /// that the wait for the next request holds only the stream (see the module comment).
    async fn serve_http1(self: &Arc<Self>, mut conn: Box<GuardedStream>, idle: Duration, shutdown: &ShutdownWatch) {
        let mut shutdown = shutdown.clone();
        let mut settings = None;
        let mut first = true;
        let mut keepalive = KeepAlive::default();
        loop {
            // The session is built and moved into Pingora's (boxed) request future in one
            // statement, so this future never has room for a session of its own.
            let request = self.app.process_new_http(
                self.session(conn, settings.take(), first, *shutdown.borrow()),
                &shutdown,
            );
            let Some(reused) = request.await else { return };
            first = false;
            let (stream, next_settings) = reused.consume();
            settings = next_settings;
            // The stream handed back is the one given: ours.
            let Ok(next) = stream.into_any().downcast::<GuardedStream>() else {
                return;
            };
            conn = next;
            if !conn.next_request(&mut keepalive, idle, &mut shutdown).await {
                return;
            }
        }
    }

    /// The HTTP/1 session of one request: on a fresh connection Pingora's defaults (60 s
    /// keep-alive, none while shutting down; the proxy then sets the configured one for each
    /// request), afterwards what the previous request left for the next.
    fn session(
        &self,
        conn: Box<GuardedStream>,
        settings: Option<HttpPersistentSettings>,
        first: bool,
        shutting_down: bool,
    ) -> ServerSession {
        let mut session = ServerSession::new_http1(conn);
        if first {
            session.set_keepalive((!shutting_down).then_some(60));
            session.set_keepalive_reuses_remaining(self.app.server_options().and_then(|o| o.keepalive_request_limit));
        } else if let Some(settings) = settings {
            settings.apply_to_session(&mut session);
        }
        session
    }
}

/// Refuses, at accept and before any TLS handshake, addresses already at their connection cap
/// (effective with Pingora's `connection_filter` feature; the count itself is kept by
/// `Guarded`, which also refuses when this filter does not run).
pub struct AcceptFilter {
    pub store: Store,
}

impl fmt::Debug for AcceptFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcceptFilter")
    }
}

#[async_trait]
impl ConnectionFilter for AcceptFilter {
    async fn should_accept(&self, addr: Option<&std::net::SocketAddr>) -> bool {
        let Some(ip) = addr.map(|a| a.ip()) else { return true };
        let snap = self.store.load();
        let max = snap.conn_limits.max_connections_per_ip;
        if max == 0 || snap.trusted_proxies.contains(ip) {
            return true;
        }
        // Counting this one and giving it back at once reads the current count.
        let (slot, open) = OPEN.incr(ip, 1);
        drop(slot);
        let ok = open <= max as isize;
        if !ok {
            METRICS
                .connection_refusals
                .with_label_values(&[TOO_MANY_CONNECTIONS])
                .inc();
        }
        ok
    }
}

/// The keep-alive timer of one connection, armed once and kept across requests: registering a
/// timer for every wait between two requests cost about 1,000 instructions per request. A
/// timer armed for an earlier wait fires before the current deadline and is then moved to it,
/// so a busy connection re-arms about once per keep-alive period instead of once per request.
#[derive(Default)]
struct KeepAlive {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl KeepAlive {
    /// The connection's timer, firing at `deadline` or earlier (never later).
    fn timer(&mut self, deadline: tokio::time::Instant) -> &mut Pin<Box<tokio::time::Sleep>> {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep
    }
}

/// Bytes of the next request read while waiting for it (`GuardedStream::next_request`),
/// served to Pingora's parser before anything else is read from the socket.
#[derive(Default)]
struct Early {
    bytes: Vec<u8>,
    at: usize,
}

/// The most a wait for the next request reads: Pingora's first read of a head is 4 KiB too.
const EARLY_READ: usize = 4096;

/// The accepted stream with its header deadline and its connection slot.
pub struct GuardedStream {
    inner: Stream,
    pub clock: HeaderClock,
    epoch: Instant,
    timer: Option<(u64, Pin<Box<tokio::time::Sleep>>)>,
    early: Early,
    _slot: Option<Guard>,
}

impl GuardedStream {
    /// The guard of a downstream stream, when it is one of ours (HTTP/1).
    pub fn of(stream: Option<&Stream>) -> Option<&GuardedStream> {
        stream?.as_any().downcast_ref::<GuardedStream>()
    }
}

impl GuardedStream {
    /// Waits for the next request on a kept-alive connection, holding no buffer meanwhile.
    /// True when its first bytes have arrived (and are kept for the parser); false when the
    /// client closed, `idle` passed first, or the server is shutting down.
    async fn next_request(&mut self, keepalive: &mut KeepAlive, idle: Duration, shutdown: &mut ShutdownWatch) -> bool {
        if *shutdown.borrow() {
            return false;
        }
        // The previous head's deadline timer is done with; an idle connection keeps no timer
        // of its own (the first bytes start a new deadline, and a timer only if it is needed).
        self.timer = None;
        let deadline = tokio::time::Instant::now() + idle;
        // Under load the next request is often there already: no timer, no shutdown waiter.
        let first = std::future::poll_fn(|cx| Poll::Ready(self.poll_early(cx))).await;
        if let Poll::Ready(read) = first {
            return matches!(read, Ok(n) if n > 0);
        }
        let timer = keepalive.timer(deadline);
        loop {
            tokio::select! {
                biased;
                read = std::future::poll_fn(|cx| self.poll_early(cx)) => return matches!(read, Ok(n) if n > 0),
                _ = shutdown.changed() => return false,
                () = timer.as_mut() => {
                    // Armed for an earlier wait: this wait's deadline is later.
                    if tokio::time::Instant::now() >= deadline {
                        return false;
                    }
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }

    /// One read of at most `EARLY_READ` bytes into a stack buffer; what arrived is kept in a
    /// heap buffer of its own size.
    fn poll_early(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let mut space = [MaybeUninit::<u8>::uninit(); EARLY_READ];
        let mut buf = ReadBuf::uninit(&mut space);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf))?;
        let got = buf.filled();
        if !got.is_empty() {
            self.clock.on_bytes(self.epoch.elapsed().as_millis() as u64);
            self.early = Early {
                bytes: got.to_vec(),
                at: 0,
            };
        }
        Poll::Ready(Ok(got.len()))
    }
}

impl fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedStream").field("inner", &self.inner).finish()
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let early = &this.early.bytes[this.early.at..];
        if !early.is_empty() {
            let n = early.len().min(buf.remaining());
            buf.put_slice(&early[..n]);
            this.early.at += n;
            if this.early.at == this.early.bytes.len() {
                this.early = Early::default();
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(deadline) = this.clock.deadline_ms() {
            let now = this.epoch.elapsed().as_millis() as u64;
            let expired = now >= deadline || {
                if this.timer.as_ref().is_none_or(|(at, _)| *at != deadline) {
                    let at = this.epoch + Duration::from_millis(deadline);
                    this.timer = Some((deadline, Box::pin(tokio::time::sleep_until(at.into()))));
                }
                this.timer.as_mut().is_some_and(|(_, t)| t.as_mut().poll(cx).is_ready())
            };
            if expired {
                METRICS.connection_refusals.with_label_values(&[HEADER_TIMEOUT]).inc();
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request head not complete before the header timeout",
                )));
            }
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.on_bytes(this.epoch.elapsed().as_millis() as u64);
        }
        res
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: pingora::protocols::SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn a_new_connection_must_send_its_head_in_time() {
        let c = HeaderClock::new(Some(T), 1_000);
        assert_eq!(c.deadline_ms(), Some(11_000));
        // Trickling bytes does not move the deadline.
        c.on_bytes(5_000);
        c.on_bytes(10_999);
        assert_eq!(c.deadline_ms(), Some(11_000));
    }

    #[test]
    fn the_deadline_is_off_while_a_request_runs_and_restarts_with_the_next_head() {
        let c = HeaderClock::new(Some(T), 0);
        c.started();
        assert_eq!(c.deadline_ms(), None, "body and response have their own timeouts");
        c.on_bytes(50_000);
        assert_eq!(c.deadline_ms(), None, "body bytes do not start a header deadline");
        c.finished();
        assert_eq!(
            c.deadline_ms(),
            None,
            "an idle keep-alive connection has the keep-alive timeout"
        );
        c.on_bytes(90_000);
        assert_eq!(c.deadline_ms(), Some(100_000));
        c.on_bytes(95_000);
        assert_eq!(c.deadline_ms(), Some(100_000));
    }

    #[test]
    fn a_clock_without_timeout_never_expires() {
        let c = HeaderClock::new(None, 0);
        c.on_bytes(1);
        c.finished();
        c.on_bytes(2);
        assert_eq!(c.deadline_ms(), None);
    }

    #[test]
    fn admission_caps_each_address_and_gives_slots_back() {
        let counter = Inflight::new();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let counted = |a: &Admission| matches!(a, Admission::Counted(_));
        let first = admit(&counter, a, 2, false);
        let second = admit(&counter, a, 2, false);
        assert!(counted(&first) && counted(&second));
        assert!(
            matches!(admit(&counter, a, 2, false), Admission::Refused),
            "3rd over the cap"
        );
        assert!(
            counted(&admit(&counter, b, 2, false)),
            "another address has its own share"
        );
        assert!(
            matches!(admit(&counter, a, 2, true), Admission::Uncounted),
            "trusted proxies are not capped"
        );
        assert!(
            matches!(admit(&counter, a, 0, false), Admission::Uncounted),
            "0 turns the cap off"
        );
        drop(second);
        assert!(
            counted(&admit(&counter, a, 2, false)),
            "a closed connection gives its slot back"
        );
        drop(first);
    }
}
