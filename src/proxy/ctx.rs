//! Per-request state carried across phases, and the `logging` phase's record of the request:
//! metrics, then one telemetry event.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use pingora::prelude::Session;

use super::facts::RequestId;
use super::outcome::Outcome;
use super::routes::Route;
use super::tls::ServerName;
use crate::enforce::offenders::now_ms;
use crate::metrics::{status_class, METRICS};
use crate::stage::{Done, Ledger};
use crate::state::Snapshot;
use crate::telemetry::event;
use crate::telemetry::feed::{DecisionFeed, FeedEvent};
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
    pub request_id: RequestId,
    /// `request_id` as the header value sent upstream and to the client; shares its bytes.
    pub request_id_value: HeaderValue,
    /// What the security stages decided and noticed, and what they hold until the request ends.
    pub ledger: Ledger,
    pub backend: Option<SocketAddr>,
    pub upstream_start: Option<Instant>,
    pub upstream_time: Option<Duration>,
    pub tries: u8,
    /// Why Palisade answered itself or could not complete the request, for telemetry.
    pub outcome: Option<Outcome>,
    /// Body bytes and WebSocket frames counted against the request's limits.
    pub intake: super::limits::Intake,
    /// The body was read and judged in request_filter; its replay upstream is not judged again.
    pub body_inspected: bool,
    /// The upgraded stream's messages, when a stage asked for them.
    pub tunnel: Option<Box<super::tunnel::Tunnel>>,
    /// The response body's encoder, when the route compresses this response.
    pub encoder: Option<Box<crate::traffic::compress::Encoder>>,
    /// How the cache answered (`crate::cache::status`), on caching routes.
    pub cache: Option<&'static str>,
}

impl RequestCtx {
    /// The largest message an upgraded stream's relay holds, when a stage asked for messages:
    /// the stages' cap, within the route's `max_websocket_message`.
    pub fn message_cap(&self) -> Option<usize> {
        let max = self.ledger.wants.messages?;
        Some(
            self.intake
                .max_websocket_message()
                .map_or(max, |c| max.min(usize::try_from(c).unwrap_or(usize::MAX))),
        )
    }

    pub fn new(start: Instant) -> Self {
        RequestCtx {
            start,
            snap: None,
            route: None,
            peer: None,
            peer_trusted: false,
            client_ip: None,
            host: String::new(),
            request_id: RequestId::default(),
            request_id_value: HeaderValue::from_static(""),
            ledger: Ledger::default(),
            backend: None,
            upstream_start: None,
            upstream_time: None,
            tries: 0,
            outcome: None,
            intake: Default::default(),
            body_inspected: false,
            tunnel: None,
            encoder: None,
            cache: None,
        }
    }

    pub fn route(&self) -> Option<&Route> {
        self.snap.as_ref()?.routes.get(self.route?)
    }
}

/// Count findings in `palisade_findings_total`.
fn count_findings(findings: &[crate::stage::Finding]) {
    for f in findings {
        METRICS.findings.with_label_values(&[f.stage, &f.rule, f.action]).inc();
    }
}

/// Queue the findings of an upgraded stream's messages now, as an alert of their own: a chat
/// connection may stay open for hours, and its alerts cannot wait for its end.
pub fn emit_findings(session: &Session, ctx: &mut RequestCtx, telemetry: &Telemetry) {
    if ctx.ledger.findings.is_empty() {
        return;
    }
    let findings = std::mem::take(&mut ctx.ledger.findings);
    count_findings(&findings);
    let Some(snap) = ctx.snap.clone() else { return };
    if !telemetry.enabled() {
        return;
    }
    let mut rec = event::Record::capture(session.req_header(), &snap.redaction, &snap.policy);
    rec.start = SystemTime::now();
    rec.request_id = ctx.request_id.clone();
    rec.host = ctx.host.clone();
    rec.client_ip = ctx.client_ip;
    rec.peer = ctx.peer;
    rec.status = session.response_written().map_or(0, |r| r.status.as_u16());
    rec.route = ctx.route().map(|r| r.name.clone());
    rec.generation = snap.generation;
    rec.findings = findings;
    telemetry.emit(rec, &snap.offenders, snap.policy.bans.as_ref(), now_ms());
}

/// The decision as the console's live feed shows it.
fn feed_event(session: &Session, ctx: &RequestCtx, snap: &Snapshot, status: u16, route: Option<&Route>) -> FeedEvent {
    let req = session.req_header();
    let path = req.uri.path();
    let route_name = route.map_or("", |r| &*r.name);
    let facts = super::identify::request_facts(req, ctx.client_ip, &ctx.host, path, route_name);
    let verdict = &ctx.ledger.verdict;
    FeedEvent {
        time_ms: now_ms(),
        request_id: ctx.request_id.as_str().to_string(),
        client_ip: ctx.client_ip,
        identity: crate::enforce::request_identity(&snap.policy, &snap.offenders, &facts)
            .map(|p| format!("id:{}", p.full())),
        method: req.method.as_str().to_string(),
        host: ctx.host.clone(),
        path: path.to_string(),
        route: route.map(|r| r.name.to_string()),
        status,
        decision: verdict.label(),
        rule: verdict.rule().map(str::to_string),
    }
}

/// Count the request in metrics and queue its telemetry record. Runs last: it moves the
/// request id, host and verdict out of the context.
pub fn record(session: &Session, ctx: &mut RequestCtx, snap: &Snapshot, telemetry: &Telemetry, feed: &DecisionFeed) {
    let elapsed = ctx.start.elapsed();
    // One reading of the wall clock for the whole phase: the stages' end of request, the
    // record's start and the offender check of its alert.
    let wall = SystemTime::now();
    let wall_ms = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    // `snap` is the request's own snapshot whenever a route was found.
    let route = ctx.route.and_then(|i| snap.routes.get(i));
    let route_label = route.map_or("none", |r| &*r.name);
    snap.pipeline.done(
        &Done {
            client_ip: ctx.client_ip,
            status,
            now: wall_ms,
        },
        &mut ctx.ledger,
    );
    ctx.ledger.release();
    let verdict = &ctx.ledger.verdict;
    let decision = verdict.label();
    match route {
        Some(r) if verdict.is_allow() => r.allowed_requests(status).inc(),
        _ => METRICS
            .requests
            .with_label_values(&[route_label, status_class(status), decision])
            .inc(),
    }
    match route {
        Some(r) => r.request_duration().observe(elapsed.as_secs_f64()),
        None => METRICS
            .request_duration
            .with_label_values(&[route_label])
            .observe(elapsed.as_secs_f64()),
    }
    if let (Some(r), Some(t)) = (route, ctx.upstream_time) {
        r.upstream_duration().observe(t.as_secs_f64());
    }
    if let Some(rule) = verdict.rule().filter(|_| !verdict.is_allow()) {
        METRICS.decisions.with_label_values(&[rule, decision]).inc();
    }
    if !verdict.is_allow() && feed.wanted() {
        feed.publish(feed_event(session, ctx, snap, status, route));
    }
    count_findings(&ctx.ledger.findings);
    if !telemetry.enabled() {
        return;
    }
    let req = session.req_header();
    let tls = session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .map(|d| event::Tls {
            version: d.version.to_string(),
            server_name: d.extension.get::<ServerName>().map(|n| n.0.clone()),
        });
    // Logging is the last phase: what the record needs is moved out of the context, not copied.
    let mut rec = event::Record::capture(req, &snap.redaction, &snap.policy);
    rec.start = wall - elapsed;
    rec.duration_us = elapsed.as_micros() as u64;
    rec.request_id = std::mem::take(&mut ctx.request_id);
    rec.host = std::mem::take(&mut ctx.host);
    rec.client_ip = ctx.client_ip;
    rec.peer = ctx.peer;
    rec.bytes_in = session.body_bytes_read() as u64;
    rec.status = status;
    rec.bytes_out = session.body_bytes_sent() as u64;
    rec.error = ctx.outcome.map(Outcome::label);
    rec.route = route.map(|r| r.name.clone());
    rec.pool = route.map(|r| r.pool.name.clone());
    rec.backend = ctx.backend;
    rec.cache = ctx.cache;
    rec.upstream_us = ctx.upstream_time.map(|t| t.as_micros() as u64);
    rec.tls = tls;
    rec.shadow = ctx
        .ledger
        .shadow
        .take()
        .map(|v| (v.label(), v.decision.source.id().cloned()));
    rec.shadow_policy = snap.shadow.clone();
    rec.generation = snap.generation;
    rec.verdict = std::mem::take(&mut ctx.ledger.verdict);
    rec.findings = std::mem::take(&mut ctx.ledger.findings);
    telemetry.emit(rec, &snap.offenders, snap.policy.bans.as_ref(), wall_ms);
}
