//! The one `ProxyHttp` implementation: traffic handling only. Each phase gathers facts, hands
//! them to the snapshot's security stages (`stage::Pipeline`) and acts on what they decide
//! through `respond`; no security logic lives here (docs/architecture.md).
//!
//! Phases: request_filter (framing, identity, routing, stages) → upstream_peer (balancing,
//! timeouts) → upstream_request_filter (forwarding headers) → request_body_filter (limits,
//! stages) → response_filter (stages, origin hiding, security headers) → logging (stages'
//! `on_done`, telemetry, metrics). fail_to_proxy answers failures (`failure::classify`).

pub mod body;
pub mod conn;
pub mod ctx;
pub mod facts;
pub mod failure;
pub mod identify;
pub mod outcome;
pub mod respond;
pub mod retry;
pub mod tls;
pub mod tunnel;

pub use crate::traffic::{framing, limits, routes, upstream};

use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::{ErrorSource, ErrorType};
use pingora_cache::key::HashBinary;
use pingora_cache::{CacheKey, CacheMeta, NoCacheReason, RespCacheable};
use pingora_proxy::FailToProxy;

use crate::enforce::offenders::now_ms;
use crate::stage::Direction;
use crate::state::Store;
use crate::telemetry::Telemetry;
pub use ctx::RequestCtx;
use identify::{X_FORWARDED_FOR, X_FORWARDED_PROTO};
use outcome::Outcome;
use respond::Reply;

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
    /// The admin listener's live decision feed.
    pub feed: std::sync::Arc<crate::telemetry::feed::DecisionFeed>,
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

/// Where a plain-http request is sent on a redirecting listener.
fn https_location(host: &str, port: u16, req: &RequestHeader) -> String {
    let port = if port == 443 { String::new() } else { format!(":{port}") };
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    format!("https://{host}{port}{target}")
}

/// Point the request at the route's rewritten path, keeping its query. The rewrite reads the
/// normalized path (the one routing and the stages judged), so what the origin receives is that
/// form; a path the rewrite does not match goes on as sent.
fn rewrite_target(req: &mut RequestHeader, rewrite: &routes::Rewrite) -> Result<()> {
    let Some(path_rewrite) = &rewrite.path else {
        return Ok(());
    };
    let Some(path) = path_rewrite.apply(&facts::normalize_path(req.uri.path())) else {
        return Ok(());
    };
    // A rewrite may add query parameters (`/users/$1?tab=$2`); the client's follow them.
    let (path, added) = path
        .split_once('?')
        .map_or((path.as_str(), None), |(p, q)| (p, Some(q)));
    let mut target = facts::encode_path(path);
    let query: Vec<String> = added
        .map(facts::encode_query)
        .into_iter()
        .chain(req.uri.query().map(str::to_string))
        .collect();
    if !query.is_empty() {
        target.push('?');
        target.push_str(&query.join("&"));
    }
    let uri = target
        .parse::<http::Uri>()
        .map_err(|e| Error::explain(ErrorType::InternalError, format!("rewritten target {target:?}: {e}")))?;
    req.set_uri(uri);
    Ok(())
}

/// A header Palisade was told not to write (`forwarding:`, `request_id.to_origin`) is still
/// never passed on from an untrusted client: the origin must not take its claim for ours.
fn drop_claim(req: &mut RequestHeader, name: &http::HeaderName, peer_trusted: bool) {
    if !peer_trusted && req.headers.contains_key(name) {
        req.remove_header(name);
    }
}

fn rewrite_host(route: &routes::Route) -> Option<HeaderValue> {
    route.rewrite.as_deref()?.host.clone()
}

impl Palisade {
    /// A routed, allowed request goes on to the origin: its body is metered from here.
    fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        limits: limits::Limits,
    ) -> Result<(), framing::Refusal> {
        let req = session.req_header();
        // The request's start (its head was just read) is when its body may begin.
        ctx.intake = limits::Intake::new(limits, ctx.start);
        let declared = req
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        ctx.intake.check_declared(declared)?;
        let has_body = declared.is_some_and(|n| n > 0) || req.headers.contains_key(header::TRANSFER_ENCODING);
        if has_body && !session.is_upgrade_req() {
            // The minimum body rate is enforced as the time each read may take.
            if let Some(t) = ctx.intake.first_read_timeout() {
                session.set_read_timeout(Some(t));
            }
        }
        Ok(())
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
    type CTX = Box<RequestCtx>;

    fn new_ctx(&self) -> Box<RequestCtx> {
        Box::new(RequestCtx::new(Instant::now()))
    }

    /// No downstream modules. Pingora's default installs a response compression module that is
    /// switched off yet still built and consulted for every request and body chunk; Palisade
    /// compresses nothing (responses pass through as the origin sent them).
    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<RequestCtx>) -> Result<bool> {
        let snap = self.store.load_full();
        session.set_keepalive(Some(snap.client_keepalive_secs));
        if let Some(conn) = conn::GuardedStream::of(session.as_downstream().stream()) {
            conn.clock.started();
        }
        let head = inspect_head(session, &snap.limits);
        if let Ok(Some(origin_form)) = &head {
            // Absolute form, already checked to name the same host as `Host`: route, decide
            // and forward on the one target everybody agrees on.
            session.req_header_mut().set_uri(origin_form.clone());
        }
        identify::identify(session, ctx, &snap)?;
        ctx.snap = Some(snap.clone());
        if let Err(refusal) = head {
            return respond::send(session, ctx, Reply::Refuse(refusal)).await;
        }
        if let Some(port) = self.listener.redirect_https {
            let to = https_location(&ctx.host, port, session.req_header());
            return respond::send(session, ctx, Reply::Redirect(to)).await;
        }
        // Routing and the stages see the decoded, dot-free path an origin would act on; the
        // origin still receives the request as sent.
        let req = session.req_header();
        let path = facts::normalize_path(req.uri.path());
        let route = snap.routes.find(&ctx.host, &path, &req.headers, req.uri.query());
        ctx.route = route.map(|(i, _)| i);
        let route_name = route.map_or("", |(_, r)| &*r.name);
        let facts = identify::request_facts(req, ctx.client_ip, &ctx.host, &path, route_name);
        // The stages decide before routing is answered: a banned client gets 403 everywhere.
        snap.pipeline.request_head(&facts, &mut ctx.ledger, now_ms());
        let reply = match route {
            _ if ctx.ledger.verdict.enforced() => Reply::Deny,
            None => Reply::NotFound,
            Some((_, r)) => match self.admit(session, ctx, r.limits) {
                Err(refusal) => Reply::Refuse(refusal),
                Ok(()) => match body::inspect(session, ctx, &snap.pipeline).await? {
                    Some(reply) => reply,
                    None => return Ok(false),
                },
            },
        };
        respond::send(session, ctx, reply).await
    }

    /// Routes with `cache:` only; runs after request_filter let the request through.
    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Box<RequestCtx>) -> Result<()> {
        if let Some(rule) = ctx.route().and_then(|r| r.cache.as_deref()) {
            let upgrade = session.is_upgrade_req();
            rule.enable(&mut session.cache, session.downstream_session.req_header(), upgrade);
        }
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut Box<RequestCtx>) -> Result<CacheKey> {
        let rule = ctx
            .route()
            .and_then(|r| r.cache.as_deref())
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "cache key on a route without cache"))?;
        Ok(rule.key(&ctx.host, session.req_header()))
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<RespCacheable> {
        let Some(rule) = ctx.route().and_then(|r| r.cache.as_deref()) else {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::NeverEnabled));
        };
        let authorization = session.req_header().headers.contains_key(header::AUTHORIZATION);
        Ok(rule.response(resp, authorization, std::time::SystemTime::now()))
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Box<RequestCtx>,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        crate::cache::variance(meta, req)
    }

    /// Stale content within its `stale-while-revalidate` / `stale-if-error` window (Pingora
    /// checks the windows) is served while revalidating and when the origin fails.
    fn should_serve_stale(&self, _session: &mut Session, _ctx: &mut Box<RequestCtx>, error: Option<&Error>) -> bool {
        error.is_none_or(|e| *e.esource() != ErrorSource::Downstream)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Box<RequestCtx>) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "upstream_peer without a route"))?;
        let pool = route.pool.clone();
        let timeouts = route.timeouts;
        ctx.tries += 1;
        let Some(addr) = pool.select(ctx.client_ip) else {
            ctx.outcome = Some(Outcome::NoHealthyBackend);
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                format!("no healthy backend in pool {}", pool.name),
            ));
        };
        let tls = pool.tls.as_ref();
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
        // An upgrade (WebSocket) is an HTTP/1.1 mechanism: it goes to the origin in HTTP/1.1.
        if let Some(streams) = pool.http2.filter(|_| !session.is_upgrade_req()) {
            // Over TLS, ALPN offers h2 and h1; in plaintext, h2c with prior knowledge.
            o.set_http_version(2, if tls.is_some() { 1 } else { 2 });
            o.max_h2_streams = streams;
        }
        ctx.backend = Some(addr);
        ctx.upstream_start = Some(Instant::now());
        Ok(Box::new(peer))
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        let Some(chunk) = body.as_ref() else { return Ok(()) };
        // After a 101 these are the client's WebSocket frames, not a request body.
        let metered = if session.was_upgraded() {
            if ctx.ledger.wants.messages.is_some() {
                // The relay below reads every frame and answers a bad or oversized one with a
                // close frame (1002, 1009) under the same cap; the meter would cut the
                // connection without one.
                Ok(None)
            } else {
                ctx.intake.on_tunnel(chunk).map(|()| None)
            }
        } else {
            ctx.intake.on_body(chunk.len(), Instant::now())
        };
        match metered {
            Ok(Some(next_read)) => session.set_read_timeout(Some(next_read)),
            Ok(None) => {}
            Err(refusal) => return Err(respond::abort(ctx, refusal)),
        }
        let Some(snap) = ctx.snap.clone() else { return Ok(()) };
        if session.was_upgraded() {
            let Some(cap) = ctx.message_cap() else {
                return Ok(());
            };
            let tunnel = ctx.tunnel.get_or_insert_with(|| Box::new(tunnel::Tunnel::new(cap)));
            if tunnel.finished {
                return Err(Error::explain(
                    ErrorType::ConnectionClosed,
                    "upgraded stream closed by policy",
                ));
            }
            let chunk = body.take().unwrap_or_default();
            let forward = tunnel.relay(Direction::ClientToOrigin, chunk, &snap.pipeline, &mut ctx.ledger);
            // Never `None`: that would tell the origin the client is done.
            *body = Some(forward);
            if let Some(close) = tunnel.take_owed_to_client() {
                session.write_response_body(Some(close), false).await?;
            }
            ctx::emit_findings(session, ctx, &self.telemetry);
        } else if !ctx.body_inspected && snap.pipeline.body_chunk(chunk, end_of_stream, &mut ctx.ledger) {
            let status = ctx.ledger.verdict.status();
            return Err(Error::explain(ErrorType::HTTPStatus(status), "refused by a stage"));
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Box<RequestCtx>,
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
        ctx: &mut Box<RequestCtx>,
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
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        let Some(snap) = ctx.snap.as_deref() else { return Ok(()) };
        if snap.forwarding.x_forwarded_for {
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
        } else {
            drop_claim(req, &X_FORWARDED_FOR, ctx.peer_trusted);
        }
        if snap.forwarding.x_forwarded_proto {
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
        } else {
            drop_claim(req, &X_FORWARDED_PROTO, ctx.peer_trusted);
        }
        if snap.request_id_to_origin {
            req.insert_header(snap.request_id_name.clone(), ctx.request_id_value.clone())?;
        } else {
            drop_claim(req, &snap.request_id_header, ctx.peer_trusted);
        }
        if ctx.ledger.wants.messages.is_some() {
            // Messages are judged as sent: no compression extension may be negotiated.
            req.remove_header(&header::SEC_WEBSOCKET_EXTENSIONS);
        }
        if let Some(route) = ctx.route() {
            if let Some(rewrite) = route.rewrite.as_deref() {
                rewrite_target(req, rewrite)?;
            }
            if let Some(h) = rewrite_host(route) {
                req.insert_header(header::HOST, h)?;
            } else if !route.preserve_host {
                let host = match (&route.pool.host, ctx.backend) {
                    (Some(h), _) => h.clone(),
                    (None, Some(addr)) => addr.to_string(),
                    (None, None) => String::new(),
                };
                req.insert_header(header::HOST, host)?;
            }
            if let Some(rules) = &route.request_headers {
                rules.apply(req)?;
            }
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(encoder) = ctx.encoder.as_mut() {
            *body = encoder.encode(body.as_ref(), end_of_stream);
            return Ok(None);
        }
        // The tunnel exists once a 101 answered a request whose messages a stage wants (made in
        // `response_filter`): the origin's first frames may arrive in the same read as the 101,
        // before the session counts as upgraded, and must be judged all the same.
        let (Some(tunnel), Some(snap)) = (ctx.tunnel.as_mut(), ctx.snap.as_ref()) else {
            return Ok(None);
        };
        if let Some(chunk) = body.take() {
            *body = Some(tunnel.relay(Direction::OriginToClient, chunk, &snap.pipeline, &mut ctx.ledger));
        }
        ctx::emit_findings(session, ctx, &self.telemetry);
        Ok(None)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        ctx.upstream_time = ctx.upstream_start.map(|s| s.elapsed());
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        let Some(snap) = ctx.snap.clone() else { return Ok(()) };
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
            if let Some(cap) = ctx.message_cap() {
                ctx.tunnel.get_or_insert_with(|| Box::new(tunnel::Tunnel::new(cap)));
            }
        }
        if snap
            .pipeline
            .response_head(resp.status.as_u16(), &resp.headers, &mut ctx.ledger)
        {
            let status = ctx.ledger.verdict.status();
            return Err(Error::explain(ErrorType::HTTPStatus(status), "refused by a stage"));
        }
        if let Some(route) = ctx.route() {
            route.response_headers.apply(resp)?;
            if let Some(z) = &route.compression {
                ctx.encoder = z.start(session.req_header(), resp);
            }
        }
        if snap.request_id_to_client {
            resp.insert_header(snap.request_id_name.clone(), ctx.request_id_value.clone())?;
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Box<RequestCtx>) -> FailToProxy {
        let failure = failure::classify(e.etype(), e.esource());
        if ctx.outcome.is_none() {
            if let Outcome::Refused(r) = failure.outcome {
                respond::note_refusal(ctx, r);
            }
            ctx.outcome = Some(failure.outcome);
        }
        if *e.esource() == ErrorSource::Upstream || failure.status == 503 {
            if let (Some(route), Some(kind)) = (ctx.route(), ctx.outcome) {
                crate::metrics::METRICS
                    .upstream_errors
                    .with_label_values(&[&route.pool.name, kind.label()])
                    .inc();
            }
        }
        if failure.status > 0 && session.response_written().is_none() {
            if let Err(err) = respond::send(session, ctx, Reply::Failure(failure.status)).await {
                log::debug!("could not send the error answer: {err}");
            }
        }
        FailToProxy {
            error_code: failure.status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Box<RequestCtx>) {
        if let Some(conn) = conn::GuardedStream::of(session.as_downstream().stream()) {
            conn.clock.finished();
        }
        let snap = ctx.snap.clone().unwrap_or_else(|| self.store.load_full());
        ctx.cache = ctx.route().filter(|r| r.cache.is_some()).map(|r| {
            let status = crate::cache::status(&session.cache);
            crate::cache::count(&r.name, status);
            status
        });
        ctx::record(session, ctx, &snap, &self.telemetry, &self.feed);
    }
}
