//! The telemetry event. The `logging` phase captures a `Record`, compact data owned or shared by
//! reference count (no string is copied but the ones it already owned), and the writer thread
//! turns it into JSON: one `event.kind: event` line per request and, for every decision other
//! than `allow`, one `event.kind: alert` line as well. Field names follow the Elastic Common
//! Schema where one exists; Palisade's own fields live under `palisade`. The schema is
//! documented in docs/telemetry.md; bump `SCHEMA_VERSION` on breaking changes. The JSON is
//! written field by field with json.rs (which says why not serde); event/golden.rs pins every
//! line byte for byte.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue, Method, Uri};

use super::indicators::Indicators;
use super::json;
use crate::config::file::QueryMode;
use crate::policy::PolicySet;
use crate::request_id::RequestId;
use crate::stage::{Finding, Verdict};

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
    pub request_id: RequestId,
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
    /// What the stages found (WAF detections, moderation matches), written as
    /// `palisade.findings`; any finding makes the record an alert.
    pub findings: Vec<Finding>,
    pub shadow: Option<(&'static str, Option<Arc<str>>)>,
    pub route: Option<Arc<str>>,
    pub pool: Option<Arc<str>>,
    pub backend: Option<SocketAddr>,
    pub upstream_us: Option<u64>,
    /// How the cache answered, on caching routes (`palisade.cache`).
    pub cache: Option<&'static str>,
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
            request_id: RequestId::default(),
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
            findings: Vec::new(),
            shadow: None,
            route: None,
            pool: None,
            backend: None,
            upstream_us: None,
            cache: None,
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
        !self.verdict.is_allow() || !self.findings.is_empty()
    }

    /// `event.action`: the decision word, or `error` when an allowed request failed.
    pub fn action(&self) -> &'static str {
        if self.error.is_some() && self.verdict.is_allow() {
            "error"
        } else {
            self.decision()
        }
    }

    /// True when the request was allowed and completed without error (sampling applies).
    pub fn is_plain_allow(&self) -> bool {
        self.error.is_none() && self.verdict.is_allow()
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
    /// Append the event to `out` as one line of compact JSON, without the newline. Keys come in
    /// the order of docs/telemetry.md; an optional field without a value is left out, never
    /// written as `null`. Keys are pre-escaped literals, each with the comma before it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let r = self.record;
        out.extend_from_slice(b"{\"@timestamp\":");
        json::timestamp(out, r.start);
        uint_field(out, b",\"schema_version\":", SCHEMA_VERSION.into());

        out.extend_from_slice(b",\"event\":{\"id\":\"");
        json::escaped(out, &r.request_id);
        if self.alert {
            json::escaped(out, ALERT_ID_SUFFIX);
        }
        out.push(b'"');
        word_field(out, b",\"kind\":", if self.alert { "alert" } else { "event" });
        word_field(out, b",\"action\":", r.action());
        uint_field(out, b",\"duration_us\":", r.duration_us);
        if let Some(reason) = r.error {
            word_field(out, b",\"reason\":", reason);
        }
        out.push(b'}');

        let client = self.aliases.map(|a| a.client.as_deref());
        address(out, b",\"client\":", r.client_ip, client, None);
        let source = self.aliases.map(|a| a.source.as_deref());
        let (peer, port) = (r.peer.map(|p| p.ip()), r.peer.map(|p| p.port()));
        address(out, b",\"source\":", peer, source, port);

        write_http(out, r);

        str_field(out, b",\"url\":{\"domain\":", &r.host);
        str_field(out, b",\"path\":", r.uri.path());
        let red = &r.redaction;
        if let Some(q) = r.uri.query().filter(|q| !q.is_empty() && red.query != QueryMode::Drop) {
            out.extend_from_slice(b",\"query\":\"");
            redact_query(q, red.query, &red.query_allowlist, |piece| json::escaped(out, piece));
            out.push(b'"');
        }
        out.push(b'}');

        out.extend_from_slice(b",\"user_agent\":{\"original\":");
        json::string_lossy(out, r.user_agent.as_ref().map_or(b"", |u| u.as_bytes()));
        out.push(b'}');

        if let Some(t) = &r.tls {
            str_field(out, b",\"tls\":{\"version\":", &t.version);
            if let Some(name) = &t.server_name {
                str_field(out, b",\"server_name\":", name);
            }
            out.push(b'}');
        }

        write_palisade(out, r);
        out.push(b'}');
    }
}

/// `key` (pre-escaped, with its comma and colon), then `value` as a string.
fn str_field(out: &mut Vec<u8>, key: &[u8], value: &str) {
    out.extend_from_slice(key);
    json::string(out, value);
}

/// `key`, then `value`, which needs no escaping (`json::plain`), as a string.
fn word_field(out: &mut Vec<u8>, key: &[u8], value: &str) {
    out.extend_from_slice(key);
    json::plain(out, value);
}

fn uint_field(out: &mut Vec<u8>, key: &[u8], value: u64) {
    out.extend_from_slice(key);
    json::uint(out, value);
}

fn float_field(out: &mut Vec<u8>, key: &[u8], value: f32) {
    out.extend_from_slice(key);
    json::float(out, value);
}

/// `client` or `source` after `key`: the IP, or with hashing on (`alias` is `Some`) its
/// pseudonym, and the port; `{}` when there is none of them.
fn address(out: &mut Vec<u8>, key: &[u8], ip: Option<IpAddr>, alias: Option<Option<&str>>, port: Option<u16>) {
    out.extend_from_slice(key);
    out.push(b'{');
    let mut sep: &[u8] = b"";
    match (alias, ip) {
        (None, Some(ip)) => {
            out.extend_from_slice(b"\"ip\":");
            json::ip(out, ip);
            sep = b",";
        }
        (Some(Some(alias)), _) => {
            str_field(out, b"\"address\":", alias);
            sep = b",";
        }
        _ => {}
    }
    if let Some(port) = port {
        out.extend_from_slice(sep);
        uint_field(out, b"\"port\":", port.into());
    }
    out.push(b'}');
}

fn write_http(out: &mut Vec<u8>, r: &Record) {
    let version = match r.version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    };
    word_field(out, b",\"http\":{\"version\":", version);
    str_field(out, b",\"request\":{\"id\":", &r.request_id);
    word_field(out, b",\"method\":", r.method.as_str());
    uint_field(out, b",\"bytes\":", r.bytes_in);
    // Only the values that are text; the key is left out when there is none.
    let mut text = r
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name, value.to_str().ok()?)));
    if let Some((name, value)) = text.next() {
        str_field(out, b",\"headers\":{", name.as_str());
        out.push(b':');
        json::string(out, value);
        for (name, value) in text {
            str_field(out, b",", name.as_str());
            out.push(b':');
            json::string(out, value);
        }
        out.push(b'}');
    }
    uint_field(out, b"},\"response\":{\"status_code\":", r.status.into());
    uint_field(out, b",\"bytes\":", r.bytes_out);
    out.extend_from_slice(b"}}");
}

fn write_palisade(out: &mut Vec<u8>, r: &Record) {
    let v = &r.verdict;
    out.extend_from_slice(b",\"palisade\":{");
    if let Some(route) = &r.route {
        str_field(out, b"\"route\":", route);
        out.push(b',');
    }
    word_field(out, b"\"decision\":{\"action\":", r.decision());
    if let Some(rule) = v.decision.source.id() {
        str_field(out, b",\"rule\":", rule);
    }
    let mode = v.decision.mode.label();
    word_field(out, b",\"mode\":", mode);
    if let Some(matched) = &v.decision.matched {
        str_field(out, b",\"matched\":", matched);
    }
    if let Some(counter) = v.decision.counter {
        out.extend_from_slice(b",\"counter\":");
        json::int(out, counter);
    }
    if let Some((first, rest)) = v.observed.also.split_first() {
        str_field(out, b",\"also\":[", first);
        for also in rest {
            str_field(out, b",", also);
        }
        out.push(b']');
    }
    out.push(b'}');

    write_findings(out, &r.findings);

    if let Some(pool) = &r.pool {
        str_field(out, b",\"upstream\":{\"pool\":", pool);
        if let Some(backend) = r.backend {
            out.extend_from_slice(b",\"address\":");
            json::socket(out, backend);
        }
        if let Some(us) = r.upstream_us {
            uint_field(out, b",\"duration_us\":", us);
        }
        out.push(b'}');
    }
    if let Some(cache) = r.cache {
        word_field(out, b",\"cache\":", cache);
    }
    if let Some((action, rule)) = &r.shadow {
        word_field(out, b",\"shadow\":{\"action\":", action);
        if let Some(rule) = rule {
            str_field(out, b",\"rule\":", rule);
        }
        out.push(b'}');
    }
    str_field(out, b",\"policy\":{\"hash\":", &r.policy.hash);
    uint_field(out, b",\"generation\":", r.generation);
    if let Some(shadow) = &r.shadow_policy {
        str_field(out, b",\"shadow_hash\":", &shadow.hash);
    }
    out.push(b'}');
    if let Some(i) = &r.indicators {
        write_indicators(out, i);
    }
    out.push(b'}');
}

/// `palisade.indicators`, in the order of the fields of `Indicators`.
fn write_findings(out: &mut Vec<u8>, findings: &[Finding]) {
    let Some((first, rest)) = findings.split_first() else {
        return;
    };
    out.extend_from_slice(b",\"findings\":[");
    for (i, f) in std::iter::once(first).chain(rest).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        word_field(out, b"{\"stage\":", f.stage);
        str_field(out, b",\"rule\":", &f.rule);
        if let Some(c) = &f.category {
            str_field(out, b",\"category\":", c);
        }
        if let Some(field) = &f.field {
            str_field(out, b",\"field\":", field);
        }
        if let Some(d) = f.direction {
            word_field(out, b",\"direction\":", d.label());
        }
        if let Some(score) = f.score {
            uint_field(out, b",\"score\":", score.into());
        }
        str_field(out, b",\"excerpt\":", &f.excerpt);
        word_field(out, b",\"action\":", f.action);
        out.push(b'}');
    }
    out.push(b']');
}

fn write_indicators(out: &mut Vec<u8>, i: &Indicators) {
    uint_field(out, b",\"indicators\":{\"requests_1s\":", i.requests_1s.into());
    uint_field(out, b",\"requests_60s\":", i.requests_60s.into());
    uint_field(out, b",\"distinct_paths_60s\":", i.distinct_paths_60s.into());
    float_field(out, b",\"ratio_4xx\":", i.ratio_4xx);
    float_field(out, b",\"ratio_5xx\":", i.ratio_5xx);
    uint_field(out, b",\"first_seen_s\":", i.first_seen_s);
    uint_field(out, b",\"user_agent_changes\":", i.user_agent_changes.into());
    float_field(out, b",\"strike_score\":", i.strike_score);
    word_field(out, b",\"ban\":", i.ban);
    out.push(b'}');
}

/// The query string as telemetry may record it, handed to `put` piece by piece (so that it is
/// escaped into the output without an intermediate string). With `Redact`, the value of every
/// name not in `allow` becomes `REDACTED`; `Drop` records nothing.
pub fn redact_query(query: &str, mode: QueryMode, allow: &[String], mut put: impl FnMut(&str)) {
    match mode {
        QueryMode::Keep => put(query),
        QueryMode::Drop => {}
        QueryMode::Redact => {
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    put("&");
                }
                match pair.split_once('=') {
                    Some((name, _)) if !allow.iter().any(|a| a == name) => {
                        put(name);
                        put("=REDACTED");
                    }
                    _ => put(pair),
                }
            }
        }
    }
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_redaction_keeps_allowed_names_only() {
        let allow = vec!["page".to_string()];
        let redacted = |q: &str, mode: QueryMode| {
            let mut out = String::new();
            redact_query(q, mode, &allow, |piece| out.push_str(piece));
            out
        };
        assert_eq!(
            redacted("page=2&token=s3cret&flag", QueryMode::Redact),
            "page=2&token=REDACTED&flag"
        );
        assert_eq!(redacted("a=1", QueryMode::Drop), "");
        assert_eq!(redacted("a=1", QueryMode::Keep), "a=1");
    }
}
