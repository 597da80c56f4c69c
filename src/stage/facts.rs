//! What a stage may look at of a request (request_filter onwards), borrowed from the request
//! head. Nothing here is a Pingora type: stages stay testable without sockets.

use std::net::IpAddr;

/// What the policy may look at, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub client_ip: IpAddr,
    pub method: &'a str,
    /// Lower case, without port.
    pub host: &'a str,
    /// Decoded and dot-segment free (`proxy::facts::normalize_path`).
    pub path: &'a str,
    pub route: &'a str,
    /// Raw query string, without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    /// Declared body length; `None` for chunked or absent.
    pub content_length: Option<u64>,
}
