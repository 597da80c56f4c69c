//! The admin listener: status for operators, and the state-changing operations (reload, ban,
//! unban) behind a bearer token compared in constant time. Binds to loopback unless the
//! configuration says otherwise; a wrong or missing token is answered 401 and logged.
//!
//! `GET /healthz` · `GET /status` · `GET /bans` · `POST /reload` ·
//! `POST /bans?ip=ADDR&for=DURATION|forever` · `DELETE /bans?ip=ADDR` (or `id=IDENTITY`)

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::enforce::offenders::{now_ms, Actor};
use crate::metrics::METRICS;
use crate::policy::rules::query_value;
use crate::reload::Reloader;
use crate::state::Store;

pub struct AdminApp {
    pub store: Store,
    pub reloader: Arc<Reloader>,
    /// SHA-256 of the token; `None` turns state-changing calls off.
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
                json!({"error": "no admin token is configured; state changes are off"}),
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
                json!({"actor": actor.to_string(), "kind": p.kind, "rules": p.rules, "reason": p.reason,
                       "bans": p.bans, "strikes": p.strikes, "first_seen_ms": p.first_seen, "last_seen_ms": p.last_seen,
                       "seconds_left": p.until.map(|u| u.saturating_sub(now) / 1000)})
            })
            .collect();
        reply(StatusCode::OK, json!({ "bans": list }))
    }

    fn change_ban(&self, session: &ServerSession, add: bool) -> Response<Vec<u8>> {
        let query = session.req_header().uri.query();
        let actor = match (query_value(query, "ip"), query_value(query, "id")) {
            (Some(ip), None) => match ip.parse::<IpAddr>() {
                Ok(ip) => Actor::Ip(ip),
                Err(_) => return reply(StatusCode::BAD_REQUEST, json!({"error": "ip is not an address"})),
            },
            (None, Some(id)) if !id.is_empty() => Actor::Id(id.to_string()),
            _ => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "give ip=ADDRESS or id=IDENTITY"}),
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
        let shown = actor.to_string();
        self.store
            .load()
            .offenders
            .set(actor, ban, "banned by an operator", now_ms());
        reply(StatusCode::OK, json!({"actor": shown, "banned": add}))
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        match (&method, path.as_str()) {
            (&Method::GET, "/healthz") => reply(StatusCode::OK, json!({"ok": true})),
            (&Method::GET, "/status") => self.status(),
            (&Method::GET, "/bans") => self.bans(),
            (&Method::POST, "/reload") | (&Method::POST, "/bans") | (&Method::DELETE, "/bans") => {
                if let Some(denied) = self.refusal(session) {
                    return denied;
                }
                if path == "/reload" {
                    match self.reloader.reload() {
                        Ok(generation) => reply(StatusCode::OK, json!({"reloaded": true, "generation": generation})),
                        Err(errors) => reply(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            json!({"reloaded": false, "errors": errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>()}),
                        ),
                    }
                } else {
                    self.change_ban(session, method == Method::POST)
                }
            }
            _ => reply(StatusCode::NOT_FOUND, json!({"error": "unknown admin endpoint"})),
        }
    }
}
