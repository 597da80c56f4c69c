//! Per-request state carried across phases, and the `logging` phase's record of the request:
//! metrics, then one telemetry event.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pingora::prelude::Session;

use super::routes::Route;
use super::tls::ServerName;
use crate::enforce::{Mode, Verdict};
use crate::metrics::{status_class, METRICS};
use crate::state::Snapshot;
use crate::telemetry::event::{self, Event};
use crate::telemetry::Telemetry;

pub struct RequestCtx {
    pub start: Instant,
    /// The snapshot this request was decided with; a reload mid-request does not change it.
    pub snap: Option<Arc<Snapshot>>,
    pub route: Option<usize>,
    pub peer: Option<SocketAddr>,
    pub peer_trusted: bool,
    pub client_ip: Option<IpAddr>,
    pub host: String,
    pub request_id: String,
    pub verdict: Verdict,
    pub backend: Option<SocketAddr>,
    pub upstream_start: Option<Instant>,
    pub upstream_time: Option<Duration>,
    pub tries: u8,
    /// What the shadow policy would have decided: decision word and rule.
    pub shadow: Option<(&'static str, Option<Arc<str>>)>,
    /// Concurrency slots held until the request ends (dropping the context frees them).
    pub slots: crate::enforce::inflight::Slots,
    /// Why Palisade answered with an error, for telemetry (`no_route`, `upstream_timeout`, …).
    pub error: Option<&'static str>,
}

impl RequestCtx {
    pub fn new(start: Instant) -> Self {
        RequestCtx {
            start,
            snap: None,
            route: None,
            peer: None,
            peer_trusted: false,
            client_ip: None,
            host: String::new(),
            request_id: String::new(),
            verdict: Verdict::allow(),
            backend: None,
            upstream_start: None,
            upstream_time: None,
            tries: 0,
            slots: Default::default(),
            shadow: None,
            error: None,
        }
    }

    pub fn route(&self) -> Option<&Route> {
        self.snap.as_ref()?.routes.get(self.route?)
    }
}

/// Count the request in metrics and queue its telemetry event.
pub fn record(session: &Session, ctx: &RequestCtx, snap: &Snapshot, telemetry: &Telemetry) {
    let elapsed = ctx.start.elapsed();
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let route = ctx.route();
    let route_label = route.map_or("none", |r| &*r.name);
    let decision = ctx.verdict.label();
    METRICS
        .requests
        .with_label_values(&[route_label, status_class(status), decision])
        .inc();
    METRICS
        .request_duration
        .with_label_values(&[route_label])
        .observe(elapsed.as_secs_f64());
    if let (Some(r), Some(t)) = (route, ctx.upstream_time) {
        METRICS
            .upstream_duration
            .with_label_values(&[&r.pool.name])
            .observe(t.as_secs_f64());
    }
    if let Some(rule) = &ctx.verdict.rule {
        if decision != "allow" {
            METRICS.decisions.with_label_values(&[rule, decision]).inc();
        }
    }
    if !telemetry.enabled() {
        return;
    }
    let req = session.req_header();
    let headers: BTreeMap<String, String> = snap
        .redaction
        .headers
        .iter()
        .filter_map(|h| Some((h.as_str().to_string(), req.headers.get(h)?.to_str().ok()?.to_string())))
        .collect();
    let tls = session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .map(|d| event::Tls {
            version: d.version.to_string(),
            server_name: d.extension.get::<ServerName>().map(|n| n.0.clone()),
        });
    let v = &ctx.verdict;
    let ev = Event {
        timestamp: SystemTime::now() - elapsed,
        schema_version: event::SCHEMA_VERSION,
        event: event::EventInfo {
            id: ctx.request_id.clone(),
            action: if ctx.error.is_some() && decision == "allow" {
                "error"
            } else {
                decision
            },
            duration_us: elapsed.as_micros() as u64,
            reason: ctx.error.map(str::to_string),
        },
        client: event::Address {
            ip: ctx.client_ip,
            port: None,
        },
        source: event::Address {
            ip: ctx.peer.map(|p| p.ip()),
            port: ctx.peer.map(|p| p.port()),
        },
        http: event::Http {
            version: match req.version {
                http::Version::HTTP_09 => "0.9",
                http::Version::HTTP_10 => "1.0",
                http::Version::HTTP_2 => "2",
                http::Version::HTTP_3 => "3",
                _ => "1.1",
            },
            request: event::HttpRequest {
                method: req.method.as_str().to_string(),
                bytes: session.body_bytes_read() as u64,
                headers,
            },
            response: event::HttpResponse {
                status_code: status,
                bytes: session.body_bytes_sent() as u64,
            },
        },
        url: event::Url {
            domain: ctx.host.clone(),
            path: req.uri.path().to_string(),
            query: event::redact_query(req.uri.query(), snap.redaction.query, &snap.redaction.query_allowlist),
        },
        user_agent: event::UserAgent {
            original: req
                .headers
                .get(http::header::USER_AGENT)
                .map(|u| String::from_utf8_lossy(u.as_bytes()).into_owned())
                .unwrap_or_default(),
        },
        tls,
        palisade: event::Palisade {
            route: route.map(|r| r.name.clone()),
            decision: event::Decision {
                action: decision,
                rule: v.rule.clone(),
                mode: if v.mode == Mode::Monitor { "monitor" } else { "enforce" },
                matched: v.matched.clone(),
                counter: v.counter,
                also: v.also.clone(),
            },
            upstream: route.map(|r| event::Upstream {
                pool: r.pool.name.clone(),
                address: ctx.backend.map(|a| a.to_string()),
                duration_us: ctx.upstream_time.map(|t| t.as_micros() as u64),
            }),
            shadow: ctx.shadow.as_ref().map(|(action, rule)| event::Shadow {
                action,
                rule: rule.clone(),
            }),
            policy: event::PolicyRef {
                hash: snap.policy.hash.clone(),
                generation: snap.generation,
                shadow_hash: snap.shadow.as_ref().map(|s| s.hash.clone()),
            },
        },
    };
    telemetry.emit(ev);
}
