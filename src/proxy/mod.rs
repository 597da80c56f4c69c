//! The one `ProxyHttp` implementation. Each phase gathers request facts, calls a pure function
//! (routing, `enforce::evaluate`, client identity) and acts on the result; no security logic
//! lives here.
//!
//! Phases: request_filter (identity, routing, policy) → upstream_peer (balancing, timeouts)
//! → upstream_request_filter (forwarding headers) → response_filter (origin hiding, security
//! headers) → logging (telemetry, metrics). fail_to_proxy turns upstream failures into
//! 502/503/504 answers.

pub mod conn;
pub mod ctx;
pub mod facts;
pub mod framing;
pub mod limits;
pub mod respond;
pub mod retry;
pub mod routes;
pub mod tls;
pub mod upstream;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::{ErrorSource, ErrorType};
use pingora_proxy::FailToProxy;

use crate::config::file::DEFAULT_REQUEST_ID_HEADER;
use crate::enforce::{self, RequestFacts};
use crate::state::{Snapshot, Store};
use crate::telemetry::Telemetry;
pub use ctx::RequestCtx;
use respond::{status_line, Answer};

/// Names looked up on every request, parsed once (a `&str` name is parsed at each lookup).
static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");

/// Requests a tarpit may hold at once; more are answered without delay.
const MAX_TARPITS: usize = 1024;
static TARPITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_TARPITS);

/// What kind of listener a proxy service serves.
#[derive(Debug, Clone, Copy)]
pub struct ListenerKind {
    pub tls: bool,
    /// Answer everything with a redirect to https on this port.
    pub redirect_https: Option<u16>,
}

pub struct Palisade {
    pub store: Store,
    pub telemetry: Telemetry,
    pub listener: ListenerKind,
}

fn peer_of(addr: Option<&PingoraAddr>) -> Option<std::net::SocketAddr> {
    addr.and_then(|a| a.as_inet()).copied()
}

/// The strict framing and size check of the head (`framing`), and the target in origin form
/// when the client sent it in absolute form.
fn inspect_head(session: &Session, limits: &limits::Limits) -> Result<Option<http::Uri>, framing::Refusal> {
    match session.as_downstream().as_http1() {
        Some(h1) => {
            let raw = h1.get_headers_raw_bytes();
            let head = framing::check_head(&raw, &limits.head)?;
            let received = conn::GuardedStream::of(Some(h1.stream())).and_then(|c| c.received_line_len());
            framing::check_received_line(&raw, received)?;
            head.origin_form
                .map(|t| t.parse::<http::Uri>().map_err(|_| framing::BAD_TARGET))
                .transpose()
        }
        None => {
            let req = session.req_header();
            let bytes = req.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
            framing::check_sizes(req.raw_path().len(), req.headers.len(), bytes, &limits.head).map(|()| None)
        }
    }
}

impl Palisade {
    /// Answer a request refused for its framing or a limit, and close the connection: after a
    /// framing refusal, nothing more on it can be trusted to be framed as the client meant.
    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snap: &Snapshot,
        refusal: framing::Refusal,
    ) -> Result<bool> {
        ctx.error = Some(refusal.reason);
        crate::metrics::METRICS
            .request_refusals
            .with_label_values(&[refusal.reason])
            .inc();
        session.set_keepalive(None);
        Answer {
            status: refusal.status,
            body: format!(
                "{}\nRequest refused ({}). Reference: {}\n",
                status_line(refusal.status),
                refusal.reason.replace('_', " "),
                ctx.request_id
            ),
            request_id: &ctx.request_id_value,
            request_id_header: &snap.request_id_name,
            headers: Some(snap.routes.default_headers()),
            retry_after: None,
            location: None,
        }
        .send(session)
        .await?;
        Ok(true)
    }

    fn count_retry(&self, ctx: &RequestCtx, phase: retry::Phase) {
        if let Some(route) = ctx.route() {
            crate::metrics::METRICS
                .upstream_retries
                .with_label_values(&[&route.pool.name, phase.label()])
                .inc();
        }
    }
}

#[async_trait]
impl ProxyHttp for Palisade {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(Instant::now())
    }

    /// No downstream modules. Pingora's default installs a response compression module that is
    /// switched off yet still built and consulted for every request and body chunk; Palisade
    /// compresses nothing (responses pass through as the origin sent them).
    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let snap = self.store.load_full();
        session.set_keepalive(Some(snap.client_keepalive_secs));
        if let Some(conn) = conn::GuardedStream::of(session.as_downstream().stream()) {
            conn.clock.started();
        }
        ctx.peer = peer_of(session.client_addr());
        let head = inspect_head(session, &snap.limits);
        if let Ok(Some(origin_form)) = &head {
            // Absolute form, already checked to name the same host as `Host`: route, decide
            // and forward on the one target everybody agrees on.
            session.req_header_mut().set_uri(origin_form.clone());
        }
        let req = session.req_header();
        // Without a socket address (not possible on TCP listeners) the client is 0.0.0.0,
        // which only matches rules written for it: fail open on identity, closed on limits.
        let peer_ip = ctx.peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
        ctx.peer_trusted = snap.trusted_proxies.contains(peer_ip);
        // What only a trusted peer may tell is not even looked up for the others.
        let client_ip = if ctx.peer_trusted {
            facts::client_ip(
                peer_ip,
                &snap.trusted_proxies,
                req.headers.get_all(&X_FORWARDED_FOR).iter().map(|v| v.as_bytes()),
                req.headers.get_all(header::FORWARDED).iter().map(|v| v.as_bytes()),
            )
        } else {
            peer_ip
        };
        ctx.client_ip = Some(client_ip);
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
        ctx.snap = Some(snap.clone());
        if let Err(refusal) = head {
            return self.refuse(session, ctx, &snap, refusal).await;
        }

        if let Some(port) = self.listener.redirect_https {
            let port = if port == 443 { String::new() } else { format!(":{port}") };
            let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
            let location = format!("https://{}{port}{target}", ctx.host);
            let answer = Answer {
                status: 308,
                body: format!("{}\nThis site is served over https: {location}\n", status_line(308)),
                request_id: &ctx.request_id_value,
                request_id_header: &snap.request_id_name,
                headers: None,
                retry_after: None,
                location: Some(location.clone()),
            };
            answer.send(session).await?;
            return Ok(true);
        }

        // Routing and policy see the decoded, dot-free path an origin would act on; the origin
        // still receives the request as sent.
        let path = facts::normalize_path(req.uri.path());
        let found = snap.routes.find(&ctx.host, &path);
        ctx.route = found.map(|(i, _)| i);
        let route = found.map(|(_, r)| r);
        let facts = RequestFacts {
            client_ip,
            method: req.method.as_str(),
            host: &ctx.host,
            path: &path,
            route: route.map_or("", |r| &*r.name),
            query: req.uri.query(),
            headers: &req.headers,
            content_length: req
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
        };
        // Bans and rules apply before routing is answered: a banned client gets 403 everywhere.
        let decision = enforce::decide(&snap.policy, &snap.offenders, &facts, enforce::offenders::now_ms());
        ctx.verdict = decision.verdict;
        ctx.slots = decision.slots;
        if let Some(shadow) = snap.shadow.as_ref().filter(|_| !ctx.verdict.is_penalty()) {
            let sv = enforce::evaluate(shadow, &facts);
            if sv.label() != ctx.verdict.label() {
                crate::metrics::METRICS
                    .shadow_disagreements
                    .with_label_values(&[ctx.verdict.label(), sv.label()])
                    .inc();
            }
            ctx.shadow = Some((sv.label(), sv.rule));
        }
        let headers = route.map_or_else(|| snap.routes.default_headers(), |r| &*r.response_headers);
        if !ctx.verdict.enforced() {
            if let Some(route) = route {
                ctx.intake = limits::Intake::new(snap.limits.with(route.limits.as_ref()), Instant::now());
                if let Err(refusal) = ctx.intake.check_declared(facts.content_length) {
                    return self.refuse(session, ctx, &snap, refusal).await;
                }
                let has_body =
                    facts.content_length.is_some_and(|n| n > 0) || req.headers.contains_key(header::TRANSFER_ENCODING);
                if has_body && !session.is_upgrade_req() {
                    // The minimum body rate is enforced as the time each read may take.
                    if let Some(t) = ctx.intake.first_read_timeout() {
                        session.set_read_timeout(Some(t));
                    }
                }
                return Ok(false);
            }
            ctx.error = Some("no_route");
            Answer {
                status: 404,
                body: format!(
                    "{}\nNo route for this host and path. Reference: {}\n",
                    status_line(404),
                    ctx.request_id
                ),
                request_id: &ctx.request_id_value,
                request_id_header: &snap.request_id_name,
                headers: Some(headers),
                retry_after: None,
                location: None,
            }
            .send(session)
            .await?;
            return Ok(true);
        }
        if let Some(delay) = ctx.verdict.tarpit {
            // Bounded: past MAX_TARPITS held requests, the rest are answered at once.
            if let Ok(_permit) = TARPITS.try_acquire() {
                tokio::time::sleep(delay).await;
            }
        }
        let status = ctx.verdict.status();
        let what = if status == 429 {
            "Too many requests; slow down."
        } else {
            "Request blocked by policy."
        };
        let body = match &ctx.verdict.body {
            Some(b) => format!("{b}\nReference: {}\n", ctx.request_id),
            None => format!("{}\n{what} Reference: {}\n", status_line(status), ctx.request_id),
        };
        Answer {
            status,
            body,
            request_id: &ctx.request_id_value,
            request_id_header: &snap.request_id_name,
            headers: Some(headers),
            retry_after: ctx.verdict.retry_after,
            location: None,
        }
        .send(session)
        .await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "upstream_peer without a route"))?;
        let pool = route.pool.clone();
        let timeouts = route.timeouts;
        ctx.tries += 1;
        let Some(addr) = pool.select(ctx.client_ip) else {
            ctx.error = Some("no_healthy_backend");
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                format!("no healthy backend in pool {}", pool.name),
            ));
        };
        let tls = pool.section.tls.as_ref();
        let mut peer = HttpPeer::new(addr, tls.is_some(), tls.map(|t| t.sni.clone()).unwrap_or_default());
        let o = &mut peer.options;
        o.connection_timeout = Some(timeouts.connect);
        o.read_timeout = Some(timeouts.read);
        o.write_timeout = Some(timeouts.write);
        o.idle_timeout = Some(timeouts.idle);
        if let Some(t) = tls {
            o.verify_cert = t.verify;
            o.verify_hostname = t.verify;
        }
        ctx.backend = Some(addr);
        ctx.upstream_start = Some(Instant::now());
        Ok(Box::new(peer))
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(chunk) = body.as_ref() else { return Ok(()) };
        // After a 101 these are the client's WebSocket frames, not a request body.
        let verdict = if session.was_upgraded() {
            ctx.intake.on_tunnel(chunk).map(|()| None)
        } else {
            ctx.intake.on_body(chunk.len(), Instant::now())
        };
        match verdict {
            Ok(Some(next_read)) => session.set_read_timeout(Some(next_read)),
            Ok(None) => {}
            Err(refusal) => {
                ctx.error = Some(refusal.reason);
                crate::metrics::METRICS
                    .request_refusals
                    .with_label_values(&[refusal.reason])
                    .inc();
                return Err(Error::explain(ErrorType::HTTPStatus(refusal.status), refusal.reason));
            }
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let retry = retry::should_retry(&retry::Failure {
            phase: retry::Phase::Connect,
            tries: ctx.tries,
            backends: ctx.route().map_or(0, |r| r.pool.backends.len()),
            idempotent: false,
            replayable: false,
            response_started: false,
            broken_connection: true,
        });
        if retry {
            self.count_retry(ctx, retry::Phase::Connect);
        }
        e.set_retry(retry);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        // Pingora marks a failure on a reused connection (the origin closed it while idle)
        // as retryable; a reset or close of a fresh one by the origin is just as safe to retry.
        // A client that went away is not a reason to send the request again.
        let pingora_retry = {
            let mut probe = e.retry;
            probe.decide_reuse(client_reused);
            probe.retry()
        };
        let broken = pingora_retry
            || (*e.esource() == ErrorSource::Upstream
                && matches!(
                    e.etype(),
                    ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
                ));
        let retry = retry::should_retry(&retry::Failure {
            phase: retry::Phase::Proxy,
            tries: ctx.tries,
            backends: ctx.route().map_or(0, |r| r.pool.backends.len()),
            idempotent: session.req_header().method.is_idempotent(),
            replayable: !session.as_ref().retry_buffer_truncated(),
            response_started: session.response_written().is_some(),
            broken_connection: broken,
        });
        if retry {
            self.count_retry(ctx, retry::Phase::Proxy);
        }
        e.set_retry(retry);
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(snap) = ctx.snap.as_deref() else { return Ok(()) };
        let peer = ctx
            .peer
            .map_or(HeaderValue::from_static(""), |p| facts::ip_header_value(p.ip()));
        // Only a trusted proxy's chain is extended; anything else a client sent is replaced
        // (and not looked up).
        let prior = if ctx.peer_trusted {
            req.headers.get(&X_FORWARDED_FOR)
        } else {
            None
        };
        let xff = match prior.and_then(|v| v.to_str().ok()) {
            Some(prior) if !prior.is_empty() => {
                HeaderValue::try_from(format!("{prior}, {}", peer.to_str().unwrap_or_default()))
                    .map_err(|_| Error::explain(ErrorType::InternalError, "X-Forwarded-For"))?
            }
            _ => peer,
        };
        req.insert_header("x-forwarded-for", xff)?;
        // A trusted proxy in front (e.g. a TLS-terminating load balancer) knows the scheme.
        let prior = if ctx.peer_trusted {
            req.headers.get(&X_FORWARDED_PROTO)
        } else {
            None
        };
        let proto = match prior {
            Some(p) if p == "http" || p == "https" => p.clone(),
            _ => HeaderValue::from_static(if self.listener.tls { "https" } else { "http" }),
        };
        req.insert_header("x-forwarded-proto", proto)?;
        req.insert_header(snap.request_id_name.clone(), ctx.request_id_value.clone())?;
        if let Some(route) = ctx.route() {
            if !route.preserve_host {
                let host = match (&route.pool.section.host, ctx.backend) {
                    (Some(h), _) => h.clone(),
                    (None, Some(addr)) => addr.to_string(),
                    (None, None) => String::new(),
                };
                req.insert_header(header::HOST, host)?;
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_time = ctx.upstream_start.map(|s| s.elapsed());
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(snap) = ctx.snap.as_deref() else { return Ok(()) };
        if let Some(route) = ctx.route() {
            for h in &route.response_headers.remove {
                resp.remove_header(h);
            }
            for (k, v) in &route.response_headers.set {
                resp.insert_header(k.clone(), v.clone())?;
            }
        }
        resp.insert_header(snap.request_id_name.clone(), ctx.request_id_value.clone())?;
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let upstream = *e.esource() == ErrorSource::Upstream;
        let code = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            ErrorType::ConnectTimedout
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout
            | ErrorType::TLSHandshakeTimedout
                if upstream =>
            {
                504
            }
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    // The read timeout of a body is the minimum body rate (`limits`).
                    ErrorType::ReadTimedout => 408,
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code == 408 && ctx.error.is_none() {
            crate::metrics::METRICS
                .request_refusals
                .with_label_values(&[limits::BODY_TOO_SLOW.reason])
                .inc();
        }
        if ctx.error.is_none() {
            ctx.error = Some(match code {
                504 => "upstream_timeout",
                408 => limits::BODY_TOO_SLOW.reason,
                0 => "client_gone",
                400 => "bad_request",
                500 => "internal_error",
                _ => "upstream_error",
            });
        }
        if upstream || code == 503 {
            if let (Some(route), Some(kind)) = (ctx.route(), ctx.error) {
                crate::metrics::METRICS
                    .upstream_errors
                    .with_label_values(&[&route.pool.name, kind])
                    .inc();
            }
        }
        if code > 0 && session.response_written().is_none() {
            // The connection is closed after this answer (can_reuse_downstream is false): say
            // `Connection: close`, or a keep-alive client sends its next request into a reset.
            session.set_keepalive(None);
            let id_header = ctx
                .snap
                .as_ref()
                .map_or(Bytes::from_static(DEFAULT_REQUEST_ID_HEADER.as_bytes()), |s| {
                    s.request_id_name.clone()
                });
            let answer = Answer {
                status: code,
                body: format!("{}\nReference: {}\n", status_line(code), ctx.request_id),
                request_id: &ctx.request_id_value,
                request_id_header: &id_header,
                headers: ctx.route().map(|r| &*r.response_headers),
                retry_after: None,
                location: None,
            };
            if let Err(err) = answer.send(session).await {
                log::debug!("could not send the error answer: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        if let Some(conn) = conn::GuardedStream::of(session.as_downstream().stream()) {
            conn.clock.finished();
        }
        let snap = ctx.snap.clone().unwrap_or_else(|| self.store.load_full());
        ctx::record(session, ctx, &snap, &self.telemetry);
    }
}
