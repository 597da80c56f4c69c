//! On-disk shape and checks of the `limits:` section of `palisade.yaml` and of the per-route
//! `routes[].limits` overrides. The defaults are the named constants in `proxy::limits`.

use serde::Deserialize;

/// Pingora parses at most this many header fields; more are its own 400.
pub const PINGORA_MAX_HEADERS: usize = 256;
/// Pingora reads at most about this many head bytes; more are its own 400.
pub const PINGORA_MAX_HEAD_BYTES: usize = 1024 * 1024 - 1;

use super::error::Collector;
use super::types::{ByteSize, Dur};

/// `limits:` in `palisade.yaml`: what one client may send, and how slowly.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Longest request target (414 beyond).
    pub max_uri_length: Option<ByteSize>,
    /// All request header lines together (431 beyond).
    pub max_header_bytes: Option<ByteSize>,
    /// Request header fields (431 beyond).
    pub max_headers: Option<usize>,
    /// Largest request body (413 beyond).
    pub max_body: Option<ByteSize>,
    /// Largest WebSocket message a client may send; the tunnel is closed beyond it.
    pub max_websocket_message: Option<ByteSize>,
    /// Slowest request body, in bytes per second, after `body_rate_grace` (408 below it); 0 is off.
    pub min_body_rate: Option<ByteSize>,
    pub body_rate_grace: Option<Dur>,
    /// From a connection's first byte to a complete request head; the connection is closed after.
    pub header_timeout: Option<Dur>,
    /// Connections open at once from one client address; 0 is off.
    pub max_connections_per_ip: Option<u32>,
}

/// `routes[].limits`: the body limits of `limits:`, for one route. Head limits are global: the
/// head is checked before routing, so that nothing routes on a head that is refused.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RouteLimitsSection {
    pub max_body: Option<ByteSize>,
    pub max_websocket_message: Option<ByteSize>,
    pub min_body_rate: Option<ByteSize>,
    pub body_rate_grace: Option<Dur>,
}

/// Check the global section and every route's overrides.
pub fn validate(global: &LimitsSection, routes: &[(usize, Option<&RouteLimitsSection>)], c: &mut Collector<'_>) {
    let g = global;
    if g.max_uri_length
        .is_some_and(|u| u.0 < 16 || u.0 as usize > PINGORA_MAX_HEAD_BYTES)
    {
        c.field(
            "limits.max_uri_length",
            format!("must be between 16 bytes and {PINGORA_MAX_HEAD_BYTES} bytes (Pingora's own limit)"),
        );
    }
    if g.max_header_bytes
        .is_some_and(|h| h.0 < 256 || h.0 as usize > PINGORA_MAX_HEAD_BYTES)
    {
        c.field(
            "limits.max_header_bytes",
            format!("must be between 256 bytes and {PINGORA_MAX_HEAD_BYTES} bytes (Pingora's own limit)"),
        );
    }
    if g.max_headers.is_some_and(|h| h == 0 || h > PINGORA_MAX_HEADERS) {
        c.field(
            "limits.max_headers",
            format!("must be between 1 and {PINGORA_MAX_HEADERS} (Pingora parses no more)"),
        );
    }
    if g.header_timeout
        .is_some_and(|d| d.0 < std::time::Duration::from_millis(100))
    {
        c.field("limits.header_timeout", "must be at least 100ms");
    }
    check_sizes("limits", [g.max_body, g.max_websocket_message], c);
    for (i, r) in routes {
        if let Some(r) = r {
            check_sizes(&format!("routes[{i}].limits"), [r.max_body, r.max_websocket_message], c);
        }
    }
}

fn check_sizes(p: &str, sizes: [Option<ByteSize>; 2], c: &mut Collector<'_>) {
    for (key, v) in ["max_body", "max_websocket_message"].iter().zip(sizes) {
        if v.is_some_and(|v| v.0 == 0) {
            c.field(&format!("{p}.{key}"), "must be at least 1 byte");
        }
    }
}
