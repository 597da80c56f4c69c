//! The admin listener, for operators. Everything it tells is behind a bearer token compared in
//! constant time, reads included: the ban list names the clients and accounts being refused,
//! and whoever reads it learns who is being watched. Only the probes a load balancer or
//! systemd needs, `healthz` and `readyz`, answer without it. Binds to loopback unless the
//! configuration says otherwise; a wrong or missing token is answered 401 and logged.
//!
//! Open: `GET /healthz` · `GET /readyz`.
//! With the token: `GET /status` · `GET /bans` · `POST /reload` ·
//! `POST /bans?ip=ADDR&for=DURATION|forever` (or `id=IDENTITY`, or `pseudonym=hmac:HEX`) ·
//! `DELETE /bans?ip=ADDR` (or `id=IDENTITY`, or `pseudonym=hmac:HEX`) ·
//! `POST /cache/purge` with `{"key": …}` or `{"prefix": …}` (`crate::cache::purge`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::enforce::identity::Pseudonym;
use crate::enforce::offenders::{now_ms, Actor};
use crate::metrics::METRICS;
use crate::policy::rules::query_value;
use crate::reload::Reloader;
use crate::state::Store;

/// How long `readyz` waits for each proxy listener to accept a connection.
const LISTENER_PROBE_TIMEOUT: Duration = Duration::from_millis(250);

pub struct AdminApp {
    pub store: Store,
    pub reloader: Arc<Reloader>,
    /// SHA-256 of the token; `None` turns every call but the probes off.
    pub token_digest: Option<[u8; 32]>,
}

/// Digest of a token; tokens are compared by digest so the comparison time does not depend
/// on how many leading bytes match.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Vec<u8>> {
    let mut text = body.to_string().into_bytes();
    text.push(b'\n');
    let len = text.len();
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CONTENT_LENGTH, len)
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(text)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

impl AdminApp {
    /// `None` when the request carries the right token, else the refusal to send.
    fn refusal(&self, session: &ServerSession) -> Option<Response<Vec<u8>>> {
        let refused = |reason: &str| METRICS.admin_refusals.with_label_values(&[reason]).inc();
        let Some(expected) = &self.token_digest else {
            refused("no_token_configured");
            return Some(reply(
                StatusCode::FORBIDDEN,
                json!({"error": "no admin token is configured; only /healthz and /readyz answer"}),
            ));
        };
        let given = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
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

    fn status(&self) -> Response<Vec<u8>> {
        let s = self.store.load();
        reply(
            StatusCode::OK,
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "generation": s.generation,
                "shadow_policy": s.shadow.as_ref().map(|p| json!({"hash": p.hash, "sources": p.sources})),
                "policy": {"hash": s.policy.hash, "rules": s.policy.rules.len(), "limits": s.policy.limits.len(), "sources": s.policy.sources},
                "pools": s.pools.values().map(|p| json!({
                    "name": &*p.name,
                    "backends": p.backends.iter().map(|b| json!({"address": b.to_string(), "healthy": p.healthy(*b)})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "penalties": s.offenders.list().len(),
            }),
        )
    }

    fn bans(&self) -> Response<Vec<u8>> {
        let now = now_ms();
        let list: Vec<_> = self
            .store
            .load()
            .offenders
            .list()
            .into_iter()
            .filter(|(_, p)| p.active(now))
            .map(|(actor, p)| {
                json!({"actor": shown(&actor), "kind": p.kind, "rules": p.rules, "reason": p.reason,
                       "bans": p.bans, "strikes": p.strikes, "first_seen_ms": p.first_seen, "last_seen_ms": p.last_seen,
                       "seconds_left": p.until.map(|u| u.saturating_sub(now) / 1000)})
            })
            .collect();
        reply(StatusCode::OK, json!({ "bans": list }))
    }

    fn change_ban(&self, session: &ServerSession, add: bool) -> Response<Vec<u8>> {
        let query = session.req_header().uri.query();
        let offenders = self.store.load().offenders.clone();
        let given = (
            query_value(query, "ip"),
            query_value(query, "id"),
            query_value(query, "pseudonym"),
        );
        let actor = match given {
            (Some(ip), None, None) => match ip.parse::<IpAddr>() {
                Ok(ip) => Actor::Ip(ip),
                Err(_) => return reply(StatusCode::BAD_REQUEST, json!({"error": "ip is not an address"})),
            },
            // The value is read once, here, and only its pseudonym is kept.
            (None, Some(id), None) if !id.is_empty() => Actor::Id(offenders.pseudonym(id.as_bytes())),
            (None, None, Some(p)) => match Pseudonym::parse(p.strip_prefix("id:").unwrap_or(p)) {
                Some(p) => Actor::Id(p),
                None => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error": "pseudonym is not hmac: and 32 hex digits, as GET /bans shows it"}),
                    )
                }
            },
            _ => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "give one of ip=ADDRESS, id=IDENTITY or pseudonym=hmac:HEX"}),
                )
            }
        };
        let ban = if add {
            match query_value(query, "for") {
                Some("forever") => Some(None),
                Some(d) => match humantime::parse_duration(d) {
                    Ok(d) if !d.is_zero() => Some(Some(d)),
                    _ => {
                        return reply(
                            StatusCode::BAD_REQUEST,
                            json!({"error": "give for=DURATION (e.g. 30m) or for=forever"}),
                        )
                    }
                },
                None => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error": "give for=DURATION (e.g. 30m) or for=forever"}),
                    )
                }
            }
        } else {
            None
        };
        log::warn!("admin: {} {actor}", if add { "banned" } else { "unbanned" });
        let text = shown(&actor);
        offenders.set(actor, ban, "banned by an operator", now_ms());
        reply(StatusCode::OK, json!({"actor": text, "banned": add}))
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
}

/// An actor as the admin API shows it: an address, or `id:` and the whole pseudonym (which
/// `pseudonym=` takes back).
fn shown(actor: &Actor) -> String {
    match actor {
        Actor::Ip(ip) => ip.to_string(),
        Actor::Id(p) => format!("id:{}", p.full()),
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

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        match (&method, path.as_str()) {
            (&Method::GET, "/healthz") => return reply(StatusCode::OK, json!({"ok": true})),
            (&Method::GET, "/readyz") => return self.ready().await,
            (&Method::POST, "/cache/purge") => {
                return match self.refusal(session) {
                    Some(denied) => denied,
                    None => crate::cache::purge::answer(session).await,
                }
            }
            (&Method::GET, "/status" | "/bans") | (&Method::POST, "/reload" | "/bans") | (&Method::DELETE, "/bans") => {
            }
            _ => return reply(StatusCode::NOT_FOUND, json!({"error": "unknown admin endpoint"})),
        }
        // Reads tell who is banned and why: they need the token as much as changes do.
        if let Some(denied) = self.refusal(session) {
            return denied;
        }
        match (&method, path.as_str()) {
            (&Method::GET, "/status") => self.status(),
            (&Method::GET, "/bans") => self.bans(),
            (&Method::POST, "/reload") => match self.reloader.reload() {
                Ok(generation) => reply(StatusCode::OK, json!({"reloaded": true, "generation": generation})),
                Err(errors) => reply(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"reloaded": false, "errors": errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>()}),
                ),
            },
            _ => self.change_ban(session, method == Method::POST),
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
    fn identities_are_shown_whole_so_they_can_be_given_back() {
        let p = crate::enforce::identity::IdentityKey::new(b"0123456789abcdef").pseudonym(b"s");
        let text = shown(&Actor::Id(p));
        assert_eq!(text, format!("id:{}", p.full()));
        assert_eq!(Pseudonym::parse(text.strip_prefix("id:").expect("prefix")), Some(p));
        assert_eq!(shown(&Actor::Ip("2001:db8::1".parse().expect("ip"))), "2001:db8::1");
    }
}
