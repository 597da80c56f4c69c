//! The admin listener, for operators: the admin API under `/api`, the live decision stream,
//! and the security console (a page served at `/`). Binds to loopback unless the configuration
//! says otherwise.
//!
//! Access (docs/operations.md): everything that tells who is refused or changes anything needs
//! the bearer token, compared by digest in constant time; reads too, since the ban list and the
//! offenders name the clients being watched. Only the probes (`/healthz`, `/readyz`), the
//! console's static page and assets, and the OpenAPI document answer without it. State changes
//! are also refused when the browser says they come from another site (`Origin`,
//! `Sec-Fetch-Site`). The token is never a cookie: a page on another site cannot make the
//! browser send it.
//!
//! Routing is one table (`ROUTES`), one row per method and path; `openapi.json` describes the
//! same rows and a test holds the two together.

mod api;
pub mod board;
mod console;
mod legacy;
mod stream;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use pingora::apps::{HttpServerApp, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora_http::ResponseHeader;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::metrics::METRICS;
use crate::reload::Reloader;
use crate::state::Store;
use crate::telemetry::feed::{DecisionFeed, Subscription};
use board::OffenderBoard;

/// How long `readyz` waits for each proxy listener to accept a connection.
const LISTENER_PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// Largest request body the admin API reads, in bytes.
const MAX_BODY: usize = 64 * 1024;
/// The OpenAPI 3 document of every route below.
pub const OPENAPI: &str = include_str!("openapi.json");

pub struct AdminApp {
    pub store: Store,
    pub reloader: Arc<Reloader>,
    /// SHA-256 of the token; `None` turns every call but the open ones off.
    pub token_digest: Option<[u8; 32]>,
    pub feed: Arc<DecisionFeed>,
    pub board: Arc<OffenderBoard>,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who reaches the listener.
    Open,
    /// The bearer token.
    Token,
    /// The bearer token, and not from another site.
    Change,
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    ConsolePage,
    ConsoleScript,
    ConsoleStyle,
    OpenApi,
    Bans,
    AddBan,
    /// `DELETE /api/bans/{id}`.
    LiftBan,
    Offenders,
    Policy,
    Reload,
    Stats,
    Fleet,
    CachePurge,
    DecisionStream,
    LegacyStatus,
    LegacyBans,
    LegacyAddBan,
    LegacyLiftBan,
    LegacyReload,
}

pub struct RouteDef {
    pub method: Method,
    /// A `{id}` segment matches one non-empty path segment.
    pub path: &'static str,
    pub access: Access,
    pub route: Route,
}

const fn def(method: Method, path: &'static str, access: Access, route: Route) -> RouteDef {
    RouteDef {
        method,
        path,
        access,
        route,
    }
}

/// Every route of the admin listener, one row each.
pub const ROUTES: &[RouteDef] = &[
    def(Method::GET, "/healthz", Access::Open, Route::Healthz),
    def(Method::GET, "/readyz", Access::Open, Route::Readyz),
    def(Method::GET, "/", Access::Open, Route::ConsolePage),
    def(Method::GET, "/console.js", Access::Open, Route::ConsoleScript),
    def(Method::GET, "/console.css", Access::Open, Route::ConsoleStyle),
    def(Method::GET, "/api/openapi.json", Access::Open, Route::OpenApi),
    def(Method::GET, "/api/bans", Access::Token, Route::Bans),
    def(Method::POST, "/api/bans", Access::Change, Route::AddBan),
    def(Method::DELETE, "/api/bans/{id}", Access::Change, Route::LiftBan),
    def(Method::GET, "/api/offenders", Access::Token, Route::Offenders),
    def(Method::GET, "/api/policy", Access::Token, Route::Policy),
    def(Method::POST, "/api/reload", Access::Change, Route::Reload),
    def(Method::GET, "/api/stats", Access::Token, Route::Stats),
    def(Method::GET, "/api/fleet", Access::Token, Route::Fleet),
    def(Method::POST, "/api/cache/purge", Access::Change, Route::CachePurge),
    def(
        Method::GET,
        "/api/decisions/stream",
        Access::Token,
        Route::DecisionStream,
    ),
    def(Method::GET, "/status", Access::Token, Route::LegacyStatus),
    def(Method::GET, "/bans", Access::Token, Route::LegacyBans),
    def(Method::POST, "/bans", Access::Change, Route::LegacyAddBan),
    def(Method::DELETE, "/bans", Access::Change, Route::LegacyLiftBan),
    def(Method::POST, "/reload", Access::Change, Route::LegacyReload),
];

/// The route for a method and path, and the `{id}` segment when the path has one.
pub fn find_route<'p>(method: &Method, path: &'p str) -> Option<(&'static RouteDef, Option<&'p str>)> {
    ROUTES
        .iter()
        .filter(|r| r.method == method)
        .find_map(|r| match r.path.strip_suffix("{id}") {
            Some(prefix) => path
                .strip_prefix(prefix)
                .filter(|id| !id.is_empty() && !id.contains('/'))
                .map(|id| (r, Some(id))),
            None => (r.path == path).then_some((r, None)),
        })
}

/// Digest of a token; tokens are compared by digest so the comparison time does not depend
/// on how many leading bytes match.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON answer.
pub(crate) fn reply(status: StatusCode, body: serde_json::Value) -> Response<Vec<u8>> {
    let mut text = body.to_string().into_bytes();
    text.push(b'\n');
    let len = text.len();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, len)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(text)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

/// What the router answers: a whole response, or the decision stream.
enum Answer {
    Whole(Response<Vec<u8>>),
    Stream(Subscription),
}

/// True when the browser says a request comes from another site: a `Sec-Fetch-Site` other
/// than `same-origin` or `none`, or an `Origin` that is not this listener's own.
fn cross_site(headers: &http::HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return true;
        }
    }
    match headers.get(header::ORIGIN) {
        None => false,
        Some(origin) => {
            let host = headers.get(header::HOST).map_or(&b""[..], |h| h.as_bytes());
            let origin = origin.as_bytes();
            let own = |scheme: &[u8]| origin.strip_prefix(scheme) == Some(host);
            host.is_empty() || !(own(b"http://") || own(b"https://"))
        }
    }
}

impl AdminApp {
    /// `None` when the request carries the right token, else the refusal to send.
    fn refusal(&self, session: &ServerSession) -> Option<Response<Vec<u8>>> {
        let refused = |reason: &str| METRICS.admin_refusals.with_label_values(&[reason]).inc();
        let Some(expected) = &self.token_digest else {
            refused("no_token_configured");
            return Some(reply(
                StatusCode::FORBIDDEN,
                json!({"error": "no admin token is configured; only the probes and the console page answer"}),
            ));
        };
        let given = session
            .req_header()
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(digest);
        match given {
            Some(d) if constant_time_eq(&d, expected) => None,
            other => {
                refused(if other.is_some() {
                    "wrong_token"
                } else {
                    "missing_token"
                });
                let peer = session.client_addr().map(|a| a.to_string()).unwrap_or_default();
                log::warn!(
                    "admin: refused {} {} from {peer}: missing or wrong token",
                    session.req_header().method,
                    session.req_header().uri.path()
                );
                Some(reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "missing or wrong bearer token"}),
                ))
            }
        }
    }

    /// Ready when the configuration is loaded (it is, or this listener would not run) and every
    /// proxy listener accepts connections: Pingora binds them as their services start, and
    /// during a hot upgrade only once the old process has handed them over.
    async fn ready(&self) -> Response<Vec<u8>> {
        let snap = self.store.load();
        let listeners: Vec<SocketAddr> = snap.loaded.config.listeners.iter().map(|l| l.address).collect();
        let mut down = 0;
        for addr in listeners {
            let probe = tokio::time::timeout(LISTENER_PROBE_TIMEOUT, tokio::net::TcpStream::connect(reachable(addr)));
            if !matches!(probe.await, Ok(Ok(_))) {
                down += 1;
            }
        }
        let status = if down == 0 {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        reply(
            status,
            json!({"ready": down == 0, "generation": snap.generation, "listeners_not_accepting": down}),
        )
    }

    async fn answer(&self, session: &mut ServerSession) -> Answer {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        let Some((def, id)) = find_route(&method, &path) else {
            let known_path = ROUTES.iter().any(|r| find_route(&r.method, &path).is_some());
            return Answer::Whole(if known_path {
                reply(
                    StatusCode::METHOD_NOT_ALLOWED,
                    json!({"error": "method not allowed here"}),
                )
            } else {
                reply(StatusCode::NOT_FOUND, json!({"error": "unknown admin endpoint"}))
            });
        };
        if def.access == Access::Change && cross_site(&session.req_header().headers) {
            METRICS.admin_refusals.with_label_values(&["cross_site"]).inc();
            log::warn!("admin: refused {method} {path}: sent from another site");
            return Answer::Whole(reply(
                StatusCode::FORBIDDEN,
                json!({"error": "state changes are refused from another site"}),
            ));
        }
        if def.access != Access::Open {
            if let Some(denied) = self.refusal(session) {
                return Answer::Whole(denied);
            }
        }
        let query = session.req_header().uri.query().map(str::to_string);
        let query = query.as_deref();
        Answer::Whole(match def.route {
            Route::Healthz => reply(StatusCode::OK, json!({"ok": true})),
            Route::Readyz => self.ready().await,
            Route::ConsolePage => console::page(),
            Route::ConsoleScript => console::script(),
            Route::ConsoleStyle => console::style(),
            Route::OpenApi => console::asset(OPENAPI, "application/json"),
            Route::Bans => api::bans(self),
            Route::AddBan => match read_body(session).await {
                Ok(body) => api::add_ban(self, &body),
                Err(refusal) => refusal,
            },
            Route::LiftBan => api::lift_ban(self, id.unwrap_or_default()),
            Route::Offenders => api::offenders(self, query),
            Route::Policy => api::policy(self),
            Route::Reload => api::reload(self),
            Route::Stats => api::stats(self),
            Route::Fleet => reply(StatusCode::OK, crate::fleet::status::admin_view()),
            Route::CachePurge => match read_body(session).await {
                Ok(body) => crate::cache::purge::answer(&body),
                Err(refusal) => refusal,
            },
            Route::DecisionStream => return Answer::Stream(self.feed.subscribe()),
            Route::LegacyStatus => legacy::status(self),
            Route::LegacyBans => legacy::bans(self),
            Route::LegacyAddBan => legacy::change_ban(self, query, true),
            Route::LegacyLiftBan => legacy::change_ban(self, query, false),
            Route::LegacyReload => legacy::reload(self),
        })
    }
}

/// The request body, up to `MAX_BODY` bytes.
async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, Response<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(reply(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        json!({"error": format!("the body is larger than {MAX_BODY} bytes")}),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("could not read the body: {e}")}),
                ))
            }
        }
    }
}

/// Where to connect to reach a listener: a wildcard address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

/// A whole response, written as Pingora's `ServeHttp` apps write theirs.
async fn write_whole(session: &mut ServerSession, response: Response<Vec<u8>>) -> bool {
    let (parts, body) = response.into_parts();
    let head: ResponseHeader = parts.into();
    if let Err(e) = session.write_response_header(Box::new(head)).await {
        log::debug!("admin: could not write the answer: {e}");
        return false;
    }
    if !body.is_empty() {
        if let Err(e) = session.write_response_body(Bytes::from(body), true).await {
            log::debug!("admin: could not write the answer: {e}");
            return false;
        }
    }
    true
}

#[async_trait]
impl HttpServerApp for AdminApp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                log::debug!("admin: could not read a request: {e}");
                return None;
            }
        }
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        match self.answer(&mut session).await {
            Answer::Whole(response) => {
                if !write_whole(&mut session, response).await {
                    return None;
                }
            }
            Answer::Stream(subscription) => {
                // A stream ends with its connection: never reused.
                stream::serve(&mut session, subscription, shutdown.clone()).await;
                return None;
            }
        }
        let settings = pingora::apps::HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(e) => {
                log::debug!("admin: could not finish a request: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_probed_on_loopback() {
        let at = |s: &str| reachable(s.parse().expect("addr")).to_string();
        assert_eq!(at("0.0.0.0:443"), "127.0.0.1:443");
        assert_eq!(at("[::]:443"), "[::1]:443");
        assert_eq!(at("192.0.2.7:80"), "192.0.2.7:80");
    }

    #[test]
    fn routes_match_whole_paths_and_one_id_segment() {
        let found = |m: Method, p: &str| find_route(&m, p).map(|(d, id)| (d.route, id.map(str::to_string)));
        assert_eq!(found(Method::GET, "/api/bans"), Some((Route::Bans, None)));
        assert_eq!(
            found(Method::DELETE, "/api/bans/0123abcd"),
            Some((Route::LiftBan, Some("0123abcd".into())))
        );
        assert_eq!(found(Method::DELETE, "/api/bans/"), None);
        assert_eq!(found(Method::DELETE, "/api/bans/a/b"), None);
        assert_eq!(found(Method::GET, "/api/bansx"), None);
        assert_eq!(found(Method::PUT, "/api/bans"), None);
    }

    /// Every route is in the OpenAPI document with its method, and the document names no
    /// route the router lacks.
    #[test]
    fn the_openapi_document_and_the_router_agree() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "post", "delete", "put", "patch"].contains(&method.as_str()) {
                    documented.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
        let mut routed: Vec<String> = ROUTES.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
        // Open routes are exactly those the document marks with `security: []`.
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
            let open = op["security"].as_array().is_some_and(|s| s.is_empty());
            assert_eq!(open, r.access == Access::Open, "{} {}", r.method, r.path);
        }
    }

    fn session_with(headers: &[(&str, &str)]) -> bool {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            );
        }
        cross_site(&map)
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        assert!(!session_with(&[]), "curl sends neither header");
        assert!(!session_with(&[
            ("host", "127.0.0.1:9101"),
            ("origin", "http://127.0.0.1:9101")
        ]));
        assert!(!session_with(&[("sec-fetch-site", "same-origin")]));
        assert!(session_with(&[
            ("host", "127.0.0.1:9101"),
            ("origin", "https://evil.example")
        ]));
        assert!(session_with(&[("sec-fetch-site", "cross-site")]));
        assert!(session_with(&[("sec-fetch-site", "same-site")]));
        assert!(
            session_with(&[("origin", "http://127.0.0.1:9101")]),
            "no Host to compare with"
        );
    }
}
