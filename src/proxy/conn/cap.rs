//! The per-address connection cap (accept, before any TLS handshake or request): whether one
//! client address may open one more connection, and the accept-time filter that refuses it.
//!
//! The count is kept for the life of each connection by the slot `GuardedStream` owns, since
//! Pingora's `connection_filter` hook sees accepts but not closes.

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use once_cell::sync::Lazy;
use pingora::listeners::ConnectionFilter;
use pingora_limits::inflight::{Guard, Inflight};

use crate::metrics::METRICS;
use crate::state::Store;

/// Label of connections refused because their address already holds its share.
pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
/// A connection a security stage refused at accept (`Stage::on_connect`).
pub const REFUSED_BY_STAGE: &str = "refused_by_stage";

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
pub(super) static OPEN: Lazy<Inflight> = Lazy::new(Inflight::new);

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
        // A trusted proxy's connections carry many clients: they are judged per request.
        if snap.trusted_proxies.contains(ip) {
            return true;
        }
        if snap
            .pipeline
            .connect(ip, crate::enforce::offenders::now_ms())
            .enforced()
        {
            METRICS.connection_refusals.with_label_values(&[REFUSED_BY_STAGE]).inc();
            return false;
        }
        let max = snap.conn_limits.max_connections_per_ip;
        if max == 0 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
