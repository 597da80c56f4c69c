//! Who is asking and what they asked for (request_filter, first step): the socket peer, the
//! client behind trusted proxies, the request id, the normalised host, and the request facts
//! the security stages read. The pure parts live in `facts`; this reads them off the session.

use std::net::{IpAddr, Ipv4Addr};

use http::header;
use pingora::http::RequestHeader;
use pingora::prelude::*;

use super::ctx::RequestCtx;
use super::facts;
use crate::stage::RequestFacts;
use crate::state::Snapshot;

/// Names looked up on every request, parsed once (a `&str` name is parsed at each lookup).
pub static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");

/// Fill in the context's peer, client address, request id and host.
///
/// Without a socket address (not possible on TCP listeners) the client is 0.0.0.0, which only
/// matches rules written for it: fail open on identity, closed on limits.
pub fn identify(session: &Session, ctx: &mut RequestCtx, snap: &Snapshot) -> Result<()> {
    ctx.peer = session.client_addr().and_then(|a| a.as_inet()).copied();
    let req = session.req_header();
    let peer_ip = ctx.peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
    ctx.peer_trusted = snap.trusted_proxies.contains(peer_ip);
    // What only a trusted peer may tell is not even looked up for the others.
    ctx.client_ip = Some(if ctx.peer_trusted {
        facts::client_ip(
            peer_ip,
            &snap.trusted_proxies,
            req.headers.get_all(&X_FORWARDED_FOR).iter().map(|v| v.as_bytes()),
            req.headers.get_all(header::FORWARDED).iter().map(|v| v.as_bytes()),
        )
    } else {
        peer_ip
    });
    let incoming_id = if snap.trust_incoming_request_id && ctx.peer_trusted {
        req.headers.get(&snap.request_id_header)
    } else {
        None
    };
    ctx.request_id = match incoming_id {
        Some(v) if facts::acceptable_request_id(v.as_bytes()) => {
            facts::RequestId::from(String::from_utf8_lossy(v.as_bytes()).into_owned())
        }
        _ => facts::new_request_id(),
    };
    ctx.request_id_value = ctx
        .request_id
        .header_value()
        .map_err(|_| Error::explain(ErrorType::InternalError, "request id"))?;
    let raw_host = req
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    ctx.host = crate::host::normalize(raw_host);
    Ok(())
}

/// The facts the stages read, borrowed from the request head and the context.
pub fn request_facts<'a>(
    req: &'a RequestHeader,
    client_ip: Option<IpAddr>,
    host: &'a str,
    path: &'a str,
    route: &'a str,
) -> RequestFacts<'a> {
    RequestFacts {
        client_ip: client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        method: req.method.as_str(),
        host,
        path,
        route,
        query: req.uri.query(),
        headers: &req.headers,
        content_length: req
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
    }
}
