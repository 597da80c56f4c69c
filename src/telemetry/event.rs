//! The telemetry event: one per request, written by the `logging` phase. Field names follow
//! the Elastic Common Schema where one exists; Palisade's own fields live under `palisade`.
//! The schema is documented in docs/telemetry.md; bump `SCHEMA_VERSION` on breaking changes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use crate::config::file::QueryMode;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "@timestamp", serialize_with = "rfc3339")]
    pub timestamp: SystemTime,
    pub schema_version: u32,
    pub event: EventInfo,
    pub client: Address,
    pub source: Address,
    pub http: Http,
    pub url: Url,
    pub user_agent: UserAgent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    pub palisade: Palisade,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventInfo {
    /// The request id, also sent upstream and to the client.
    pub id: String,
    /// allow, block, throttle, would_block, would_throttle, or error.
    pub action: &'static str,
    /// Total time in microseconds.
    pub duration_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Http {
    pub version: &'static str,
    pub request: HttpRequest,
    pub response: HttpResponse,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpRequest {
    pub method: String,
    /// Body bytes read from the client.
    pub bytes: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpResponse {
    /// 0 when no response was sent.
    pub status_code: u16,
    /// Body bytes sent to the client.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Url {
    pub domain: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserAgent {
    pub original: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tls {
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Palisade {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Arc<str>>,
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
    /// What the shadow policy would have decided, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Shadow>,
    pub policy: PolicyRef,
}

#[derive(Debug, Clone, Serialize)]
pub struct Shadow {
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Arc<str>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Arc<str>>,
    /// enforce or monitor.
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<i64>,
    /// `log` and `strike` rules that matched on the way.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Arc<str>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub pool: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// From choosing the backend to its response header, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyRef {
    pub hash: String,
    pub generation: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_hash: Option<String>,
}

fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let dt = time::OffsetDateTime::from(*t);
    let f = time::format_description::well_known::Rfc3339;
    s.serialize_str(&dt.format(&f).unwrap_or_default())
}

/// The query string as telemetry may record it.
pub fn redact_query(query: Option<&str>, mode: QueryMode, allow: &[String]) -> Option<String> {
    let q = query.filter(|q| !q.is_empty())?;
    match mode {
        QueryMode::Keep => Some(q.to_string()),
        QueryMode::Drop => None,
        QueryMode::Redact => Some(
            q.split('&')
                .map(|pair| {
                    let name = pair.split('=').next().unwrap_or("");
                    if allow.iter().any(|a| a == name) || !pair.contains('=') {
                        pair.to_string()
                    } else {
                        format!("{name}=REDACTED")
                    }
                })
                .collect::<Vec<_>>()
                .join("&"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_redaction_keeps_allowed_names_only() {
        let allow = vec!["page".to_string()];
        assert_eq!(
            redact_query(Some("page=2&token=s3cret&flag"), QueryMode::Redact, &allow).as_deref(),
            Some("page=2&token=REDACTED&flag")
        );
        assert_eq!(redact_query(Some("a=1"), QueryMode::Drop, &allow), None);
        assert_eq!(
            redact_query(Some("a=1"), QueryMode::Keep, &allow).as_deref(),
            Some("a=1")
        );
        assert_eq!(redact_query(None, QueryMode::Keep, &allow), None);
    }
}
