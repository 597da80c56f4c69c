//! Per-connection defences that Pingora has no hook for (accept, header read, the wait between
//! two requests): `Guarded` wraps the proxy application and every accepted stream, and ties
//! together the concerns that live in the modules below.
//!
//! - `cap`: a cap on the connections one client address holds open, checked at accept.
//! - `deadline`: a deadline on the whole request head (Pingora only times out each read).
//! - `stream`: `GuardedStream`, the wrapper that enforces the deadline, owns the connection's
//!   slot in the per-address count (given back when it closes), and serves early-read bytes.
//! - `keepalive`: the HTTP/1 keep-alive loop, run here instead of in Pingora so that an idle
//!   connection holds only its stream (why, and what to re-check on a Pingora upgrade, is in
//!   that module's comment).
//!
//! request_filter and logging move the clock through a request (`started`, `finished`). The
//! clock and the admission decision are pure; only `GuardedStream` touches IO.

mod cap;
mod deadline;
mod keepalive;
mod stream;

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;

pub use cap::{admit, AcceptFilter, Admission, TOO_MANY_CONNECTIONS};
pub use deadline::{HeaderClock, HEADER_TIMEOUT};
pub use stream::GuardedStream;

use crate::metrics::METRICS;
use crate::proxy::framing::ReceivedLine;
use crate::state::Store;

/// The proxy application behind the per-connection guards.
pub struct Guarded<A> {
    pub app: Arc<A>,
    pub store: Store,
}

/// The instant connection clocks count milliseconds from (one for the process, so that each
/// connection's stream need not carry it).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since `epoch()`.
fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl<A> Guarded<A> {
    pub fn new(app: A, store: Store) -> Guarded<A> {
        Guarded {
            app: Arc::new(app),
            store,
        }
    }
}

fn peer_ip(stream: &Stream) -> Option<IpAddr> {
    let digest = stream.get_socket_digest()?;
    digest.peer_addr()?.as_inet().map(|a| a.ip())
}

/// What an HTTP/2 client sends first (RFC 9113 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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
        let admission = trusted.map(|(ip, trusted)| admit(&cap::OPEN, ip, limits.max_connections_per_ip, trusted));
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
        let options = self.app.server_options();
        let mut http1 = matches!(alpn, None | Some(ALPN::H1)) && options.is_none_or(|o| !o.force_custom);
        let mut stream = stream;
        let plaintext = stream.get_ssl_digest().is_none();
        if http1 && plaintext && options.is_some_and(|o| o.h2c) {
            // A plaintext listener with h2c: HTTP/2 only when the connection opens with its
            // preface (as Pingora decides); HTTP/1.1 clients keep this loop and its deadlines.
            // The wait for the first bytes is under the header timeout.
            let mut preface = [0u8; H2_PREFACE.len()];
            match tokio::time::timeout(limits.header_timeout, stream.try_peek(&mut preface)).await {
                Ok(Ok(peeked)) => http1 = !(peeked && preface == *H2_PREFACE),
                Ok(Err(_)) | Err(_) => return None,
            }
        }
        let clock = HeaderClock::new(http1.then_some(limits.header_timeout), now_ms());
        let guarded = Box::new(GuardedStream {
            inner: stream,
            clock,
            timer: None,
            early: stream::Early::default(),
            line: ReceivedLine::default(),
            out: stream::Gather::new(plaintext),
            _slot: slot,
        });
        if !http1 {
            return self.app.process_new(guarded, shutdown).await;
        }
        // The connection goes on in a task of its own, and Pingora's (which also holds the
        // accept's handshake future, 2.5 KiB) ends: an idle keep-alive connection is then only
        // this task, its stream and the socket. Same runtime and thread; shutdown reaches it
        // through the watch, as it reached Pingora's.
        tokio::spawn(Arc::clone(self).serve_http1(guarded, Duration::from_secs(keepalive), shutdown.clone()));
        None
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}
