//! The telemetry event. The `logging` phase captures a `Record`, compact data owned or shared by
//! reference count (no string is copied but the ones it already owned), and the writer thread
//! turns it into JSON: one `event.kind: event` line per request and, for every decision other
//! than `allow`, one `event.kind: alert` line as well. Field names follow the Elastic Common
//! Schema where one exists; Palisade's own fields live under `palisade`. The schema is
//! documented in docs/telemetry.md; bump `SCHEMA_VERSION` on breaking changes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue, Method, Uri};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::indicators::Indicators;
use crate::config::file::QueryMode;
use crate::enforce::{Mode, Verdict};
use crate::policy::PolicySet;

/// 2: decision alerts (`event.kind`), `http.request.id`, `palisade.indicators`, hashed
/// addresses in `client.address`/`source.address`. 1: the first schema.
pub const SCHEMA_VERSION: u32 = 2;

/// The suffix of an alert's `event.id` (and NATS message id): `REQUEST_ID.alert`.
pub const ALERT_ID_SUFFIX: &str = ".alert";

/// What telemetry may record of a request; part of the configuration snapshot.
#[derive(Debug, Clone, Default)]
pub struct Redaction {
    pub query: QueryMode,
    pub query_allowlist: Vec<String>,
    pub headers: Vec<HeaderName>,
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub version: String,
    pub server_name: Option<String>,
}

/// Everything one request's events are made of, captured at the end of the request.
pub struct Record {
    pub start: SystemTime,
    pub duration_us: u64,
    pub request_id: String,
    /// Normalised host.
    pub host: String,
    pub client_ip: Option<IpAddr>,
    pub peer: Option<SocketAddr>,
    pub version: http::Version,
    pub method: Method,
    /// Shares the request's buffers; path and query are read from it on the writer thread.
    pub uri: Uri,
    pub user_agent: Option<HeaderValue>,
    /// The headers `Redaction::headers` allows, when present.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub bytes_in: u64,
    pub status: u16,
    pub bytes_out: u64,
    pub error: Option<&'static str>,
    pub verdict: Verdict,
    pub shadow: Option<(&'static str, Option<Arc<str>>)>,
    pub route: Option<Arc<str>>,
    pub pool: Option<Arc<str>>,
    pub backend: Option<SocketAddr>,
    pub upstream_us: Option<u64>,
    pub tls: Option<Tls>,
    pub policy: Arc<PolicySet>,
    pub shadow_policy: Option<Arc<PolicySet>>,
    pub generation: u64,
    pub redaction: Arc<Redaction>,
    pub indicators: Option<Indicators>,
}

impl Record {
    /// A record of this request with what the request header tells (method, URI, user agent,
    /// the headers `redaction` allows); the caller fills in the outcome. Copies no string: the
    /// URI and header values share the request's buffers.
    pub fn capture(req: &http::request::Parts, redaction: &Arc<Redaction>, policy: &Arc<PolicySet>) -> Record {
        let headers = redaction
            .headers
            .iter()
            .filter_map(|h| Some((h.clone(), req.headers.get(h)?.clone())))
            .collect();
        Record {
            start: SystemTime::UNIX_EPOCH,
            duration_us: 0,
            request_id: String::new(),
            host: String::new(),
            client_ip: None,
            peer: None,
            version: req.version,
            method: req.method.clone(),
            uri: req.uri.clone(),
            user_agent: req.headers.get(http::header::USER_AGENT).cloned(),
            headers,
            bytes_in: 0,
            status: 0,
            bytes_out: 0,
            error: None,
            verdict: Verdict::allow(),
            shadow: None,
            route: None,
            pool: None,
            backend: None,
            upstream_us: None,
            tls: None,
            policy: policy.clone(),
            shadow_policy: None,
            generation: 0,
            redaction: redaction.clone(),
            indicators: None,
        }
    }

    /// The decision word of the policy.
    pub fn decision(&self) -> &'static str {
        self.verdict.label()
    }

    /// True when the record also yields an alert event.
    pub fn is_alert(&self) -> bool {
        self.decision() != "allow"
    }

    /// `event.action`: the decision word, or `error` when an allowed request failed.
    pub fn action(&self) -> &'static str {
        match (self.error, self.decision()) {
            (Some(_), "allow") => "error",
            (_, d) => d,
        }
    }
}

/// Keyed pseudonyms of the record's client and peer addresses, when addresses are hashed.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    pub client: Option<String>,
    pub source: Option<String>,
}

/// One event as it is written, borrowing from its record.
pub struct EventView<'a> {
    pub record: &'a Record,
    pub alert: bool,
    /// With hashing on: written as `client.address`/`source.address` instead of the IPs.
    pub aliases: Option<&'a Aliases>,
}

impl EventView<'_> {
    fn address<'b>(&'b self, ip: Option<IpAddr>, alias: Option<&'b str>, port: Option<u16>) -> Address<'b> {
        match self.aliases {
            Some(_) => Address {
                ip: None,
                address: alias,
                port,
            },
            None => Address {
                ip,
                address: None,
                port,
            },
        }
    }
}

#[derive(Serialize)]
struct Address<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

impl Serialize for EventView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("@timestamp", &Rfc3339(r.start))?;
        m.serialize_entry("schema_version", &SCHEMA_VERSION)?;
        m.serialize_entry(
            "event",
            &EventInfo {
                id: Id(&r.request_id, self.alert),
                kind: if self.alert { "alert" } else { "event" },
                action: r.action(),
                duration_us: r.duration_us,
                reason: r.error,
            },
        )?;
        let alias = |f: fn(&Aliases) -> &Option<String>| self.aliases.and_then(|a| f(a).as_deref());
        m.serialize_entry("client", &self.address(r.client_ip, alias(|a| &a.client), None))?;
        m.serialize_entry(
            "source",
            &self.address(r.peer.map(|p| p.ip()), alias(|a| &a.source), r.peer.map(|p| p.port())),
        )?;
        m.serialize_entry("http", &HttpView(r))?;
        m.serialize_entry(
            "url",
            &UrlView {
                domain: &r.host,
                path: r.uri.path(),
                query: redact_query(r.uri.query(), r.redaction.query, &r.redaction.query_allowlist),
            },
        )?;
        m.serialize_entry("user_agent", &UserAgent(r.user_agent.as_ref()))?;
        if let Some(t) = &r.tls {
            m.serialize_entry(
                "tls",
                &TlsView {
                    version: &t.version,
                    server_name: t.server_name.as_deref(),
                },
            )?;
        }
        m.serialize_entry("palisade", &PalisadeView(r))?;
        m.end()
    }
}

struct Rfc3339(SystemTime);

impl Serialize for Rfc3339 {
    /// `2026-11-23T17:19:46.289445953Z`: UTC, always nine fractional digits, written straight
    /// into the output (no intermediate string; this runs for every event).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let dt = time::OffsetDateTime::from(self.0);
        s.collect_str(&format_args!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.nanosecond()
        ))
    }
}

/// The request id, or the alert's id derived from it.
struct Id<'a>(&'a str, bool);

impl Serialize for Id<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.1 {
            s.collect_str(&format_args!("{}{ALERT_ID_SUFFIX}", self.0))
        } else {
            s.serialize_str(self.0)
        }
    }
}

#[derive(Serialize)]
struct EventInfo<'a> {
    id: Id<'a>,
    kind: &'static str,
    action: &'static str,
    duration_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

struct HttpView<'a>(&'a Record);

impl Serialize for HttpView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry(
            "version",
            match r.version {
                http::Version::HTTP_09 => "0.9",
                http::Version::HTTP_10 => "1.0",
                http::Version::HTTP_2 => "2",
                http::Version::HTTP_3 => "3",
                _ => "1.1",
            },
        )?;
        m.serialize_entry("request", &RequestView(r))?;
        m.serialize_entry(
            "response",
            &ResponseView {
                status_code: r.status,
                bytes: r.bytes_out,
            },
        )?;
        m.end()
    }
}

struct RequestView<'a>(&'a Record);

impl Serialize for RequestView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &r.request_id)?;
        m.serialize_entry("method", r.method.as_str())?;
        m.serialize_entry("bytes", &r.bytes_in)?;
        if r.headers.iter().any(|(_, v)| v.to_str().is_ok()) {
            m.serialize_entry("headers", &HeadersView(&r.headers))?;
        }
        m.end()
    }
}

/// The recorded headers whose values are text.
struct HeadersView<'a>(&'a [(HeaderName, HeaderValue)]);

impl Serialize for HeadersView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0 {
            if let Ok(v) = v.to_str() {
                m.serialize_entry(k.as_str(), v)?;
            }
        }
        m.end()
    }
}

#[derive(Serialize)]
struct ResponseView {
    status_code: u16,
    bytes: u64,
}

#[derive(Serialize)]
struct UrlView<'a> {
    domain: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<String>,
}

struct UserAgent<'a>(Option<&'a HeaderValue>);

impl Serialize for UserAgent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        let ua = self.0.map(|u| String::from_utf8_lossy(u.as_bytes()));
        m.serialize_entry("original", ua.as_deref().unwrap_or(""))?;
        m.end()
    }
}

#[derive(Serialize)]
struct TlsView<'a> {
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_name: Option<&'a str>,
}

struct PalisadeView<'a>(&'a Record);

impl Serialize for PalisadeView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let v = &r.verdict;
        let mut m = s.serialize_map(None)?;
        if let Some(route) = &r.route {
            m.serialize_entry("route", &**route)?;
        }
        m.serialize_entry(
            "decision",
            &DecisionView {
                action: r.decision(),
                rule: v.rule.as_deref(),
                mode: if v.mode == Mode::Monitor { "monitor" } else { "enforce" },
                matched: v.matched.as_deref(),
                counter: v.counter,
                also: v.also.iter().map(|a| &**a).collect(),
            },
        )?;
        if let Some(pool) = &r.pool {
            m.serialize_entry(
                "upstream",
                &UpstreamView {
                    pool,
                    address: r.backend,
                    duration_us: r.upstream_us,
                },
            )?;
        }
        if let Some((action, rule)) = &r.shadow {
            m.serialize_entry(
                "shadow",
                &ShadowView {
                    action,
                    rule: rule.as_deref(),
                },
            )?;
        }
        m.serialize_entry(
            "policy",
            &PolicyView {
                hash: &r.policy.hash,
                generation: r.generation,
                shadow_hash: r.shadow_policy.as_ref().map(|p| p.hash.as_str()),
            },
        )?;
        if let Some(ind) = &r.indicators {
            m.serialize_entry("indicators", ind)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct DecisionView<'a> {
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    matched: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counter: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    also: Vec<&'a str>,
}

#[derive(Serialize)]
struct UpstreamView<'a> {
    pool: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_us: Option<u64>,
}

#[derive(Serialize)]
struct ShadowView<'a> {
    action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
}

#[derive(Serialize)]
struct PolicyView<'a> {
    hash: &'a str,
    generation: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow_hash: Option<&'a str>,
}

/// The query string as telemetry may record it.
pub fn redact_query(query: Option<&str>, mode: QueryMode, allow: &[String]) -> Option<String> {
    let q = query.filter(|q| !q.is_empty())?;
    match mode {
        QueryMode::Keep => Some(q.to_string()),
        QueryMode::Drop => None,
        QueryMode::Redact => {
            let mut out = String::with_capacity(q.len() + 16);
            for (i, pair) in q.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                let name = pair.split('=').next().unwrap_or("");
                if allow.iter().any(|a| a == name) || !pair.contains('=') {
                    out.push_str(pair);
                } else {
                    out.push_str(name);
                    out.push_str("=REDACTED");
                }
            }
            Some(out)
        }
    }
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_nanoseconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_795_454_386, 289_445_953);
        let json = serde_json::to_string(&Rfc3339(t)).expect("encode");
        assert_eq!(json, "\"2026-11-23T17:19:46.289445953Z\"");
        let parsed = humantime::parse_rfc3339(json.trim_matches('"')).expect("parse");
        assert_eq!(parsed, t);
    }

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
