//! The one place the proxy core acts on decisions (request_filter, request_body_filter,
//! fail_to_proxy): refusals of framing and limits, policy denials (block, throttle, tarpit),
//! https redirects, 404 for unrouted requests, and answers to upstream failures. Every answer
//! is short plain text carrying the request id, so a support person can trace it; every
//! refusal is counted here and nowhere else.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::ctx::RequestCtx;
use super::framing::Refusal;
use super::outcome::Outcome;
use super::routes::HeaderRules;
use crate::config::file::DEFAULT_REQUEST_ID_HEADER;
use crate::metrics::METRICS;

/// Requests a tarpit may hold at once; more are answered without delay.
const MAX_TARPITS: usize = 1024;
static TARPITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_TARPITS);

/// What Palisade answers instead of the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A framing rule or a limit was broken; the connection is closed after the answer.
    Refuse(Refusal),
    /// The stages' enforced verdict (block, throttle, tarpit), read from the ledger.
    Deny,
    /// Plain http on a listener that only redirects: go to this https location.
    Redirect(String),
    NotFound,
    /// Proxying failed with this status; the connection is closed after the answer.
    Failure(u16),
}

/// Count a refusal in `palisade_request_refusals_total` and record it as the request's outcome.
pub fn note_refusal(ctx: &mut RequestCtx, refusal: Refusal) {
    ctx.outcome = Some(Outcome::Refused(refusal));
    METRICS.request_refusals.with_label_values(&[refusal.reason]).inc();
}

/// The error that ends a request whose body broke a limit or was refused by a stage; Pingora
/// then answers through `fail_to_proxy` (`Reply::Failure`).
pub fn abort(ctx: &mut RequestCtx, refusal: Refusal) -> Box<Error> {
    note_refusal(ctx, refusal);
    Error::explain(ErrorType::HTTPStatus(refusal.status), refusal.reason)
}

/// Write `reply`. Returns `Ok(true)`: the request is answered (request_filter's "handled").
pub async fn send(session: &mut Session, ctx: &mut RequestCtx, reply: Reply) -> Result<bool> {
    let mut retry_after = None;
    let mut location = None;
    let route_headers = ctx.route().map(|r| r.response_headers.clone());
    let default_headers = ctx.snap.as_ref().map(|s| s.routes.default_headers().clone());
    // Security headers belong on every answer; a redirect carries none, and the answer to a
    // failure only its route's.
    let headers = match &reply {
        Reply::Refuse(_) => default_headers,
        Reply::Deny | Reply::NotFound => route_headers.or(default_headers),
        Reply::Redirect(_) => None,
        Reply::Failure(_) => route_headers,
    };
    let (status, body) = match reply {
        Reply::Refuse(refusal) => {
            note_refusal(ctx, refusal);
            // After a framing refusal nothing more on the connection can be trusted to be
            // framed as the client meant.
            session.set_keepalive(None);
            let what = refusal.reason.replace('_', " ");
            (refusal.status, format!("Request refused ({what})."))
        }
        Reply::Deny => {
            let d = &ctx.ledger.verdict.decision;
            if let Some(delay) = d.tarpit {
                hold(delay).await;
            }
            retry_after = d.retry_after;
            let status = ctx.ledger.verdict.status();
            match &d.body {
                Some(b) => (status, format!("{b}\nReference: {}\n", ctx.request_id)),
                None if status == 429 => (status, "Too many requests; slow down.".to_string()),
                None => (status, "Request blocked by policy.".to_string()),
            }
        }
        Reply::Redirect(to) => {
            let body = format!("{}\nThis site is served over https: {to}\n", status_line(308));
            location = Some(to);
            (308, body)
        }
        Reply::NotFound => {
            ctx.outcome = Some(Outcome::NoRoute);
            (404, "No route for this host and path.".to_string())
        }
        Reply::Failure(status) => {
            // The connection is closed after this answer (can_reuse_downstream is false): say
            // `Connection: close`, or a keep-alive client sends its next request into a reset.
            session.set_keepalive(None);
            (status, String::new())
        }
    };
    let body = if body.ends_with('\n') {
        body
    } else if body.is_empty() {
        format!("{}\nReference: {}\n", status_line(status), ctx.request_id)
    } else {
        format!("{}\n{body} Reference: {}\n", status_line(status), ctx.request_id)
    };
    let id_header = ctx
        .snap
        .as_ref()
        .map_or(Bytes::from_static(DEFAULT_REQUEST_ID_HEADER.as_bytes()), |s| {
            s.request_id_name.clone()
        });
    Answer {
        status,
        body,
        request_id: &ctx.request_id_value,
        request_id_header: &id_header,
        headers: headers.as_deref(),
        retry_after,
        location,
    }
    .send(session)
    .await?;
    Ok(true)
}

/// Hold a tarpitted request. Bounded: past `MAX_TARPITS` held requests, the rest are answered
/// at once.
async fn hold(delay: Duration) {
    if let Ok(_permit) = TARPITS.try_acquire() {
        tokio::time::sleep(delay).await;
    }
}

/// One short plain-text answer.
struct Answer<'a> {
    status: u16,
    body: String,
    request_id: &'a HeaderValue,
    /// The header's name as written (`Snapshot::request_id_name`).
    request_id_header: &'a Bytes,
    headers: Option<&'a HeaderRules>,
    retry_after: Option<u32>,
    location: Option<String>,
}

impl Answer<'_> {
    async fn send(self, session: &mut Session) -> Result<()> {
        let mut h = ResponseHeader::build(self.status, Some(6))?;
        h.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
        h.insert_header(http::header::CONTENT_LENGTH, self.body.len().to_string())?;
        h.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        h.insert_header(self.request_id_header.clone(), self.request_id.clone())?;
        if let Some(secs) = self.retry_after {
            h.insert_header(http::header::RETRY_AFTER, secs.to_string())?;
        }
        if let Some(loc) = self.location {
            h.insert_header(http::header::LOCATION, loc)?;
        }
        if let Some(rules) = self.headers {
            rules.apply(&mut h)?;
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        session.write_response_header(Box::new(h), head_only).await?;
        if !head_only {
            session.write_response_body(Some(Bytes::from(self.body)), true).await?;
        }
        Ok(())
    }
}

/// The reason phrase line used in bodies: `403 Forbidden`.
pub fn status_line(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{status} {reason}")
}
