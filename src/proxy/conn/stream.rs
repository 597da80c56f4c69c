//! The accepted stream as Pingora sees it (every read and write of an HTTP/1 connection, from
//! accept to close): it ends a read that would pass the head deadline, serves first the bytes
//! the keep-alive wait read early, owns the connection's slot in the per-address count, and
//! passes everything else through to the inner stream.

use std::fmt;
use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID, UniqueIDType, ALPN,
};
use pingora_limits::inflight::Guard;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::deadline::{HeaderClock, HEADER_TIMEOUT};
use crate::metrics::METRICS;
use crate::proxy::framing::ReceivedLine;

/// Bytes of the next request read while waiting for it (`GuardedStream::next_request`),
/// served to Pingora's parser before anything else is read from the socket.
#[derive(Default)]
pub(super) struct Early {
    bytes: Vec<u8>,
    at: usize,
}

/// The most a wait for the next request reads: Pingora's first read of a head is 4 KiB too.
const EARLY_READ: usize = 4096;

/// Writes smaller than this are gathered until a flush (or until the next would not fit), as
/// Pingora's L4 write buffer of the same size did: a response head and a small body go out in
/// one send.
const GATHER: usize = 1460;

/// The writes of the response being sent, on a stream with no L4 write buffer below it (plain
/// HTTP listeners, `server::CLIENT_WRITE_BUFFER`). Allocated by the first small write and freed
/// once sent, so an idle connection holds none.
#[derive(Default)]
pub(super) struct Gather {
    /// Off on TLS streams: OpenSSL writes into Pingora's buffer there.
    pub(super) on: bool,
    bytes: Vec<u8>,
    sent: usize,
}

impl Gather {
    pub(super) fn new(on: bool) -> Gather {
        Gather {
            on,
            ..Gather::default()
        }
    }
}

/// The accepted stream with its header deadline and its connection slot.
pub struct GuardedStream {
    pub(super) inner: Stream,
    pub clock: HeaderClock,
    /// The timer of the head deadline being read, with the deadline it was armed for.
    pub(super) timer: Option<(u64, Pin<Box<tokio::time::Sleep>>)>,
    pub(super) early: Early,
    /// The current request line as read from the socket, before Pingora's parser could
    /// rewrite it; restarted for each request (`next_request`). Pingora's pipelining is off, so
    /// every request head starts at the first read of its session.
    pub(super) line: ReceivedLine,
    pub(super) out: Gather,
    pub(super) _slot: Option<Guard>,
}

impl GuardedStream {
    /// The guard of a downstream stream, when it is one of ours (HTTP/1).
    pub fn of(stream: Option<&Stream>) -> Option<&GuardedStream> {
        stream?.as_any().downcast_ref::<GuardedStream>()
    }

    /// The length of the current request line as the client sent it (`framing::ReceivedLine`).
    pub fn received_line_len(&self) -> Option<usize> {
        self.line.length()
    }

    /// One read of at most `EARLY_READ` bytes into a stack buffer; what arrived is kept in a
    /// heap buffer of its own size.
    pub(super) fn poll_early(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let mut space = [MaybeUninit::<u8>::uninit(); EARLY_READ];
        let mut buf = ReadBuf::uninit(&mut space);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf))?;
        let got = buf.filled();
        if !got.is_empty() {
            self.clock.on_bytes(super::now_ms());
            self.early = Early {
                bytes: got.to_vec(),
                at: 0,
            };
        }
        Poll::Ready(Ok(got.len()))
    }
}

impl GuardedStream {
    /// Sends what was gathered, then frees the buffer.
    fn poll_send_gathered(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let out = &mut self.out;
        while out.sent < out.bytes.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &out.bytes[out.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            out.sent += n;
        }
        if out.bytes.capacity() > 0 {
            out.bytes = Vec::new();
            out.sent = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes; true when they are to be gathered, false when they are
    /// too many and go straight to the socket.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<std::io::Result<bool>> {
        if self.out.bytes.len() + len > GATHER {
            ready!(self.poll_send_gathered(cx))?;
        }
        if len >= GATHER {
            return Poll::Ready(Ok(false));
        }
        if self.out.bytes.capacity() == 0 {
            self.out.bytes.reserve_exact(GATHER);
        }
        Poll::Ready(Ok(true))
    }
}

impl Drop for GuardedStream {
    /// What was gathered but never flushed (a response cut off by an origin failure is closed
    /// without a flush) goes out if the socket takes it now, as it would have without gathering.
    fn drop(&mut self) {
        if self.out.sent < self.out.bytes.len() {
            let _ = self.poll_send_gathered(&mut Context::from_waker(std::task::Waker::noop()));
        }
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
            this.line.feed(&early[..n]);
            this.early.at += n;
            if this.early.at == this.early.bytes.len() {
                this.early = Early::default();
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(deadline) = this.clock.deadline_ms() {
            let now = super::now_ms();
            let expired = now >= deadline || {
                if this.timer.as_ref().is_none_or(|(at, _)| *at != deadline) {
                    let at = super::epoch() + Duration::from_millis(deadline);
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
            this.clock.on_bytes(super::now_ms());
            this.line.feed(&buf.filled()[before..]);
        }
        res
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.out.on && ready!(this.poll_room(cx, buf.len()))? {
            this.out.bytes.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_send_gathered(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_send_gathered(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.out.on {
            let len = bufs.iter().map(|b| b.len()).sum();
            if ready!(this.poll_room(cx, len))? {
                for b in bufs {
                    this.out.bytes.extend_from_slice(b);
                }
                return Poll::Ready(Ok(len));
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.out.on || self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        // What was gathered goes first; a failure shows in the shutdown that follows.
        let _ = std::future::poll_fn(|cx| self.poll_send_gathered(cx)).await;
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
