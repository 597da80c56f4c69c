//! The HTTP/1 keep-alive loop (between two requests on one connection, and around each call
//! into Pingora's request handling), run by `Guarded` instead of Pingora's own so that an idle
//! connection holds only its stream.
//!
//! # Why Pingora's loop is replaced
//!
//! Pingora waits for a client's next request inside `HttpProxy::process_new_http`, that is,
//! inside the boxed per-request future (the whole proxy state machine), with the session and
//! its 4 KiB header buffer allocated: tens of KiB for every idle keep-alive client (94 KiB per
//! connection measured, 7 KiB with this loop; docs/performance.md). Here, after a response, the
//! stream is taken back and the first bytes of the next request are read into the stream's own
//! small buffer (`next_request`); only then is a session built and Pingora called, and its
//! parser reads those bytes first.
//!
//! # What to re-check on a Pingora upgrade
//!
//! This mirrors Pingora 0.9.1; read these again in the new version and keep them in step:
//!
//! - `pingora-core` `apps/mod.rs`, `impl<T: HttpServerApp> ServerApp for T`, `process_new`: the
//!   HTTP/1 branch this loop replaces. The first session gets `set_keepalive(Some(60))`
//!   (`None` once shutdown has started) and `set_keepalive_reuses_remaining(
//!   server_options.keepalive_request_limit)`; each later one is `ServerSession::new_http1` on
//!   the stream from `ReusedHttpStream::consume`, plus `HttpPersistentSettings::apply_to_session`
//!   (keep-alive timeout, reuses left minus one, the user context of
//!   `persist_connection_context`/`on_connection_reuse`, the pipelining flag and prefix). Also
//!   its protocol choice, which `Guarded::process_new` copies to decide what is HTTP/1: ALPN
//!   `h2` and prior-knowledge h2c (`HttpServerOptions::h2c`, never on TLS) and `force_custom` go
//!   to Pingora's own `process_new`.
//! - `pingora-proxy` `lib.rs`, `HttpProxy::process_new_http` → `handle_new_request` (reads the
//!   head with `read_request`, racing the shutdown notice) → `process_request` → `finish`, which
//!   calls `HttpSession::finish`/`reuse` (`pingora-core` `protocols/http/v1/server.rs`). A
//!   stream comes back only if `will_keepalive()`; `reuse` drains an unread body and refuses
//!   reuse when bytes past the body were read and pipelining is off. This loop relies on: the
//!   stream handed back is the `GuardedStream` it gave (downcast, else the connection ends), and
//!   `None` means Pingora already closed or answered.
//! - `Connection: close` and HTTP/1.0 without keep-alive: `respect_keepalive` turns keep-alive
//!   off when the head is parsed, so `finish` returns `None` and this loop ends. An answer sent
//!   with keep-alive off (`set_keepalive(None)`, e.g. framing refusals) ends it the same way.
//! - Keep-alive timeout: Pingora applies it in `read_request_buf` as a timeout on each read of
//!   a head (`KeepaliveStatus::Timeout`; `Some(0)` is infinite, and `respect_keepalive` makes it
//!   infinite after every HTTP/1.1 request since `get_keepalive_values` is a stub). Here the
//!   wait between requests has its own timeout, `server.client_keepalive`, and the rest of the
//!   head is under the head deadline (`deadline.rs`).
//! - Shutdown: Pingora's loop stops at `await_shutdown` in `handle_new_request` and sets
//!   keep-alive off for a request that starts during shutdown; `next_request` returns false when
//!   the shutdown watch changes, and `session` sets keep-alive off when it has.
//! - Upgrades (101): the session becomes a tunnel until one side closes and is not handed back
//!   for reuse; if a new version hands back an upgraded stream, this loop would read tunnel
//!   bytes as a request head.
//! - Pipelining: off (`HttpSession::set_pipelining_enabled` is never called). If it is turned
//!   on, the next request's first bytes may already sit in `HttpPersistentSettings`'s pipelined
//!   prefix, and `next_request` would wait on the socket for bytes that never come; the
//!   request-line record (`framing::ReceivedLine`) also assumes each head starts at the first
//!   read of its session.
//! - `HttpSession::set_abort_on_close`: set to false for every session (see `session`); check
//!   that the default and the FIN handling of `read_body_or_idle` have not changed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use pingora::apps::{HttpPersistentSettings, HttpServerApp};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;

use super::stream::GuardedStream;
use super::Guarded;
use crate::proxy::framing::ReceivedLine;

impl<A: HttpServerApp + Send + Sync + 'static> Guarded<A> {
    /// One HTTP/1 connection, request after request, as Pingora's own loop does it, except
    /// that the wait for the next request holds only the stream (see the module comment).
    pub(super) async fn serve_http1(
        self: &Arc<Self>,
        mut conn: Box<GuardedStream>,
        idle: Duration,
        shutdown: &ShutdownWatch,
    ) {
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
        // A client may half-close once its request is sent (`shutdown(SHUT_WR)`, as HTTP/1.0
        // tools do): it still waits for the answer. Pingora's default turns that FIN, seen
        // while the response is pending, into an error that drops the response; this keeps it
        // pending so the answer is written, and the connection then closes (RFC 9112 9.6).
        session.set_abort_on_close(false);
        if first {
            session.set_keepalive((!shutting_down).then_some(60));
            session.set_keepalive_reuses_remaining(self.app.server_options().and_then(|o| o.keepalive_request_limit));
        } else if let Some(settings) = settings {
            settings.apply_to_session(&mut session);
        }
        session
    }
}

/// The keep-alive timer of one connection, armed once and kept across requests: registering a
/// timer for every wait between two requests cost about 1,000 instructions per request. A
/// timer armed for an earlier wait fires before the current deadline and is then moved to it,
/// so a busy connection re-arms about once per keep-alive period instead of once per request.
#[derive(Default)]
pub(super) struct KeepAlive {
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
        self.line = ReceivedLine::default();
        // Under load the next request is often there already: no clock, timer or shutdown
        // waiter.
        let first = std::future::poll_fn(|cx| Poll::Ready(self.poll_early(cx))).await;
        if let Poll::Ready(read) = first {
            return matches!(read, Ok(n) if n > 0);
        }
        let deadline = tokio::time::Instant::now() + idle;
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
}
