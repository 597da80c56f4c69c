//! Answers Palisade writes itself: policy denials, 404 for unrouted requests, https redirects
//! and upstream failures. Each carries the request id so a support person can trace it.

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::routes::HeaderRules;

/// One short plain-text answer.
pub struct Answer<'a> {
    pub status: u16,
    pub body: String,
    pub request_id: &'a HeaderValue,
    /// The header's name as written (`Snapshot::request_id_name`).
    pub request_id_header: &'a Bytes,
    pub headers: Option<&'a HeaderRules>,
    pub retry_after: Option<u32>,
    pub location: Option<String>,
}

impl Answer<'_> {
    pub async fn send(self, session: &mut Session) -> Result<()> {
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
            for (k, v) in &rules.set {
                h.insert_header(k.clone(), v.clone())?;
            }
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
