//! The HTTP/1 keep-alive loop (between two requests on one connection, and around each call
//! into Pingora's request handling), run by `Guarded` instead of Pingora's own so that an idle
//! connection holds only its stream.

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
}
