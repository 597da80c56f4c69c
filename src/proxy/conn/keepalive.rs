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
//!   keep-alive off for a request that starts during shutdown; `next_request` returns false once
//!   the shutdown watch has changed (`IdleClock` watches it for every idle connection), and
//!   `session` sets keep-alive off when it has.
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use pingora::apps::{HttpPersistentSettings, HttpServerApp};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use tokio::sync::Notify;

use super::stream::GuardedStream;
use super::Guarded;
use crate::proxy::framing::ReceivedLine;

impl<A: HttpServerApp + Send + Sync + 'static> Guarded<A> {
    /// One HTTP/1 connection, request after request, as Pingora's own loop does it, except
    /// that the wait for the next request holds only the stream (see the module comment).
    pub(super) async fn serve_http1(
        self: Arc<Self>,
        mut conn: Box<GuardedStream>,
        idle: Duration,
        shutdown: ShutdownWatch,
    ) {
        let mut settings = None;
        let mut first = true;
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
            if !conn.next_request(idle, &shutdown).await {
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
            // This loop has waited for the next request under `server.client_keepalive`, and
            // the rest of its head is under the head deadline: Pingora's per-read keep-alive
            // timeout on the head (a timer set up for every request) would only duplicate
            // them. Infinite is still keep-alive; the proxy sets the configured value again
            // once the head is read (request_filter).
            if session.get_keepalive().is_some_and(|s| s > 0) {
                session.set_keepalive(Some(0));
            }
        }
        session
    }
}

/// Seconds of keep-alive deadlines the idle clock tells apart; a longer keep-alive wakes its
/// connection once per turn of the wheel, which finds its deadline not yet due and waits again.
const SLOTS: usize = 64;

/// The keep-alive deadlines of every idle connection of the process, to the second. An idle
/// connection waits on the slot of the second its deadline falls in, with the waiter inline in
/// its own future; one thread wakes each slot when its second has come. So an idle connection
/// holds no timer and no allocation for its keep-alive timeout (a tokio timer per connection
/// was about 130 bytes of each idle connection's memory), and the clock's thread wakes once a
/// second, whatever the number of connections.
struct IdleClock {
    slots: [Notify; SLOTS],
    /// Set, and every slot woken, when the server starts shutting down: idle connections
    /// then close at once, with no shutdown waiter of their own.
    shutting_down: AtomicBool,
    watching: AtomicBool,
}

impl IdleClock {
    fn get() -> &'static IdleClock {
        static CLOCK: OnceLock<IdleClock> = OnceLock::new();
        CLOCK.get_or_init(|| {
            std::thread::Builder::new()
                .name("palisade-idle-clock".into())
                .spawn(|| IdleClock::get().run())
                .expect("spawn the idle clock thread");
            IdleClock {
                slots: std::array::from_fn(|_| Notify::new()),
                shutting_down: AtomicBool::new(false),
                watching: AtomicBool::new(false),
            }
        })
    }

    /// Wakes the slot of each second as it ends: a waiter woken by it is past its deadline
    /// (or a turn of the wheel early).
    fn run(&self) {
        let mut done = 0u64;
        loop {
            let next = Duration::from_secs(done + 1);
            if let Some(wait) = next.checked_sub(super::epoch().elapsed()) {
                std::thread::sleep(wait);
            }
            let now = super::epoch().elapsed().as_secs();
            for second in done + 1..=now.min(done + SLOTS as u64) {
                self.slots[second as usize % SLOTS].notify_waiters();
            }
            done = done.max(now);
        }
    }

    /// Watch the server's shutdown (once per process: there is one shutdown for all
    /// services), in a task of the calling runtime.
    fn watch(&'static self, shutdown: &ShutdownWatch) {
        // Read first: every idle wait asks, and a swap would write the shared line each time.
        if self.watching.load(Ordering::Acquire) || self.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    return;
                }
            }
            self.shutting_down.store(true, Ordering::Release);
            for slot in &self.slots {
                slot.notify_waiters();
            }
        });
    }

    fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// The slot to wait on for a deadline `deadline_ms` after the epoch: the one of the first
    /// whole second at or after it.
    fn slot(&self, deadline_ms: u64) -> &Notify {
        &self.slots[(deadline_ms.div_ceil(1000) as usize) % SLOTS]
    }
}

impl GuardedStream {
    /// Waits for the next request on a kept-alive connection, holding no buffer meanwhile.
    /// True when its first bytes have arrived (and are kept for the parser); false when the
    /// client closed, `idle` passed first, or the server is shutting down.
    async fn next_request(&mut self, idle: Duration, shutdown: &ShutdownWatch) -> bool {
        if *shutdown.borrow() {
            return false;
        }
        // The previous head's deadline timer is done with; an idle connection keeps no timer
        // of its own (the first bytes start a new deadline, and a timer only if it is needed).
        self.timer = None;
        self.line = ReceivedLine::default();
        // Under load the next request is often there already: no clock, no waiters.
        let first = std::future::poll_fn(|cx| Poll::Ready(self.poll_early(cx))).await;
        if let Poll::Ready(read) = first {
            return matches!(read, Ok(n) if n > 0);
        }
        let clock = IdleClock::get();
        clock.watch(shutdown);
        let deadline = super::now_ms().saturating_add(idle.as_millis() as u64).max(1);
        loop {
            let woken = clock.slot(deadline).notified();
            tokio::pin!(woken);
            // Registered before the flag is read, so a shutdown that starts now still wakes it.
            woken.as_mut().enable();
            if clock.shutting_down() || *shutdown.borrow() {
                return false;
            }
            tokio::select! {
                biased;
                read = std::future::poll_fn(|cx| self.poll_early(cx)) => return matches!(read, Ok(n) if n > 0),
                () = &mut woken => {
                    // A turn of the wheel early when the keep-alive is longer than it.
                    if super::now_ms() >= deadline {
                        return false;
                    }
                }
            }
        }
    }
}
