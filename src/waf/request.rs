//! The WAF's request evaluation, pure over facts and bytes (request_filter and the body phase):
//! a request's values become `Item`s, the built-in detectors score them (`inspect_with`, one
//! scratch per worker thread), the policy weighs the findings (exclusions, monitor-only rules)
//! and the score earns a verdict or not. The WAF stage (`stage.rs`) and offline replay
//! (`enforce::decide_with`) both call it.

use std::cell::RefCell;
use std::sync::Arc;

use super::crs::CrsRequest;
use super::{inspect_with, Item, Location, Report, Scratch};
use crate::extract::{self, BodyKind};
use crate::policy::waf::{CrsPolicy, WafPolicy, Weigh};
use crate::stage::{Action, Decision, Finding, Ledger, RequestFacts, Source, Verdict};

/// The rule id WAF blocks are written under (telemetry `rule`, strikes' blame); the detector
/// that weighed most is the decision's `matched`, the score its `counter`.
pub const RULE_ID: &str = "waf";
pub(crate) static RULE: once_cell::sync::Lazy<Arc<str>> = once_cell::sync::Lazy::new(|| Arc::from(RULE_ID));

/// Values inspected per request at most (query pairs, cookies, body fields); the rest are not.
pub const MAX_ITEMS: usize = 512;

thread_local! {
    /// Decoding buffers reused by every request on this worker thread.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// What the detectors made of some of a request's values, after the policy weighed them.
#[derive(Debug, Default)]
pub struct Tally {
    /// Sum of the scored findings' points.
    pub score: u32,
    /// The scored finding with the most points (the first of equals).
    pub top: Option<&'static str>,
    pub(crate) top_points: u32,
    /// Findings to report, with whether they were scored.
    pub findings: Vec<(super::Finding, bool)>,
}

impl Tally {
    pub(crate) fn add(&mut self, other: Tally) {
        self.score += other.score;
        if other.top_points > self.top_points {
            self.top = other.top;
            self.top_points = other.top_points;
        }
        self.findings.extend(other.findings);
    }
}

/// Inspect `items` and weigh the findings by the policy (exclusions, monitor-only rules).
pub fn tally(w: &WafPolicy, path: &str, items: &[Item<'_>]) -> Tally {
    let report: Report = SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => inspect_with(items, &w.detect, &mut s),
        Err(_) => inspect_with(items, &w.detect, &mut Scratch::default()),
    });
    let mut t = Tally::default();
    for f in report.findings {
        let scored = match w.weigh(f.rule, path, f.location, &f.field) {
            Weigh::Drop => continue,
            Weigh::Report => false,
            Weigh::Score => true,
        };
        if scored {
            let points = f.severity.points();
            t.score += points;
            if points > t.top_points {
                t.top = Some(f.rule);
                t.top_points = points;
            }
        }
        t.findings.push((f, scored));
    }
    t
}

/// The values of a request head: path, query arguments, cookies, User-Agent, Referer and the
/// headers the policy lists. Raw (undecoded): the detectors decode them.
pub fn head_items<'a>(w: &'a WafPolicy, facts: &RequestFacts<'a>, items: &mut Vec<Item<'a>>) {
    items.push(Item::new(Location::Path, "path", facts.path.as_bytes()));
    if let Some(q) = facts.query {
        for seg in q.split('&').filter(|s| !s.is_empty()).take(MAX_ITEMS) {
            let (name, value) = seg.split_once('=').unwrap_or((seg, ""));
            items.push(Item::new(Location::QueryArg, name, value.as_bytes()));
        }
    }
    for v in facts.headers.get_all(http::header::COOKIE) {
        if let Ok(v) = v.to_str() {
            for (name, value) in extract::cookies(v) {
                if items.len() < MAX_ITEMS {
                    items.push(Item::new(Location::Cookie, name, value.as_bytes()));
                }
            }
        }
    }
    for (h, name) in [
        (http::header::USER_AGENT, "user-agent"),
        (http::header::REFERER, "referer"),
    ] {
        for v in facts.headers.get_all(h) {
            items.push(Item::new(Location::Header, name, v.as_bytes()));
        }
    }
    for h in &w.headers {
        for v in facts.headers.get_all(h) {
            items.push(Item::new(Location::Header, h.as_str(), v.as_bytes()));
        }
    }
}

/// The verdict a score earns, if any.
pub fn judge(w: &WafPolicy, score: u32, top: Option<&'static str>) -> Option<Verdict> {
    if score < w.detect.threshold() {
        return None;
    }
    Some(Verdict::from(Decision {
        action: Action::Block,
        mode: w.mode,
        source: Source::Policy(RULE.clone()),
        matched: top.map(Arc::from),
        counter: Some(i64::from(score)),
        ..Decision::default()
    }))
}

/// Where a finding was, as telemetry names fields: `query:q`, `json:user.bio`, `path`.
pub fn field_label(location: Location, name: &str) -> String {
    let kind = match location {
        Location::Path => return "path".to_owned(),
        Location::QueryArg => "query",
        Location::FormField => "form",
        Location::JsonString => "json",
        Location::MultipartField => "multipart",
        Location::Cookie => "cookie",
        Location::Header => "header",
    };
    format!("{kind}:{name}")
}

/// The word a finding is recorded with.
pub(crate) fn finding_action(w: &WafPolicy, scored: bool, over: bool) -> &'static str {
    match (scored, over, w.mode) {
        (false, _, _) => "monitor",
        (true, false, _) => "log",
        (true, true, crate::stage::Mode::Enforce) => "block",
        (true, true, crate::stage::Mode::Monitor) => "monitor",
    }
}

pub(crate) fn record(ledger: &mut Ledger, w: &WafPolicy, findings: Vec<(super::Finding, bool)>, over: bool) {
    for (f, scored) in findings {
        ledger.found(Finding {
            stage: RULE_ID,
            rule: Arc::from(f.rule),
            category: None,
            field: Some(field_label(f.location, &f.field)),
            direction: None,
            score: Some(f.severity.points()),
            excerpt: f.excerpt,
            action: finding_action(w, scored, over),
        });
    }
}

/// The items of a whole body, by its content type. A body that does not parse as what it
/// claims is inspected as one value rather than passed: a WAF must not be blinded by a syntax
/// error.
pub(crate) fn body_tally(w: &WafPolicy, path: &str, content_type: Option<&str>, body: &[u8]) -> Tally {
    let is_form = content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    if is_form {
        let mut items = Vec::new();
        for seg in body.split(|&b| b == b'&').filter(|s| !s.is_empty()).take(MAX_ITEMS) {
            let (name, value) = match memchr::memchr(b'=', seg) {
                Some(i) => (&seg[..i], &seg[i + 1..]),
                None => (seg, &[][..]),
            };
            items.push(Item::new(
                Location::FormField,
                std::str::from_utf8(name).unwrap_or("?"),
                value,
            ));
        }
        return tally(w, path, &items);
    }
    match extract::fields(content_type, body, &extract::Limits::default()) {
        Ok(fields) => {
            let location = match fields.kind {
                BodyKind::Json => Location::JsonString,
                BodyKind::Form => Location::FormField,
                BodyKind::Multipart | BodyKind::Text => Location::MultipartField,
                BodyKind::Opaque => return Tally::default(),
            };
            let items: Vec<Item<'_>> = fields
                .fields
                .iter()
                .take(MAX_ITEMS)
                .map(|f| Item::new(location, &f.name, f.value.as_bytes()))
                .collect();
            tally(w, path, &items)
        }
        Err(_) => tally(w, path, &[Item::new(Location::JsonString, "body", body)]),
    }
}

/// The head's verdict alone, as replay sees a recorded request (no body): `None` when the
/// route is not inspected or the score stays under the threshold.
pub fn evaluate_head(w: &WafPolicy, facts: &RequestFacts<'_>) -> Option<Verdict> {
    if w.applies_to(facts.route) {
        let mut items = Vec::with_capacity(16);
        head_items(w, facts, &mut items);
        let t = tally(w, facts.path, &items);
        if let Some(v) = judge(w, t.score, t.top) {
            return Some(v);
        }
    }
    let crs = w.crs_for(facts.route)?;
    judge_crs(w, crs, &crs_head(w, crs, facts))
}

/// What the CRS tier matched on a request, after the policy weighed it.
#[derive(Debug, Default)]
pub struct CrsTally {
    /// Sum of the scored matches' CRS points.
    pub score: u32,
    /// The scored match with the most points (the first of equals).
    pub top: Option<String>,
    top_points: u32,
    /// Matches to report, with their field label and whether they were scored.
    pub findings: Vec<(super::crs::Match, String, bool)>,
}

/// Run the CRS tier over a request and weigh its matches by the policy (exclusions,
/// monitor-only rules; `off` rules were removed from the rule set).
pub fn crs_tally(w: &WafPolicy, crs: &CrsPolicy, req: &CrsRequest<'_>, path: &str, query: Option<&str>) -> CrsTally {
    let matches = super::crs::evaluate(&crs.set, req);
    let query_names: Vec<&str> = query
        .map(|q| {
            q.split('&')
                .filter(|s| !s.is_empty())
                .take(MAX_ITEMS)
                .map(|seg| seg.split_once('=').map_or(seg, |(n, _)| n))
                .collect()
        })
        .unwrap_or_default();
    let mut t = CrsTally::default();
    for m in matches {
        let located = super::crs::field_of(&m.variable, &query_names);
        let label = match &located {
            Some((location, name)) => field_label(*location, name),
            None => m.variable.to_ascii_lowercase(),
        };
        let weigh = match &located {
            Some((location, name)) => w.weigh(&m.rule, path, *location, name),
            // A variable no field names (TX, REQUEST_PROTOCOL, …): only path and rule apply.
            None => w.weigh_unlocated(&m.rule, path),
        };
        let scored = match weigh {
            Weigh::Drop => continue,
            Weigh::Report => false,
            Weigh::Score => true,
        };
        if scored {
            let points = m.points();
            t.score += points;
            if points > t.top_points {
                t.top = Some(m.rule.clone());
                t.top_points = points;
            }
        }
        t.findings.push((m, label, scored));
    }
    t
}

/// The verdict a CRS score earns, if any.
pub fn judge_crs(w: &WafPolicy, crs: &CrsPolicy, t: &CrsTally) -> Option<Verdict> {
    if t.score < crs.threshold {
        return None;
    }
    Some(Verdict::from(Decision {
        action: Action::Block,
        mode: w.mode,
        source: Source::Policy(RULE.clone()),
        matched: t.top.as_deref().map(Arc::from),
        counter: Some(i64::from(t.score)),
        ..Decision::default()
    }))
}

pub(crate) fn record_crs(
    ledger: &mut Ledger,
    w: &WafPolicy,
    findings: Vec<(super::crs::Match, String, bool)>,
    over: bool,
) {
    for (m, label, scored) in findings {
        let points = m.points();
        ledger.found(Finding {
            stage: RULE_ID,
            rule: Arc::from(m.rule),
            category: None,
            field: Some(label),
            direction: None,
            score: Some(points),
            excerpt: m.excerpt,
            action: finding_action(w, scored, over),
        });
    }
}

/// The CRS tier on a head alone (replay; a request without a body).
pub fn crs_head(w: &WafPolicy, crs: &CrsPolicy, facts: &RequestFacts<'_>) -> CrsTally {
    let uri = super::crs::uri_for(facts.path, facts.query);
    let req = CrsRequest {
        client_ip: facts.client_ip,
        method: facts.method,
        uri: &uri,
        headers: facts.headers,
        body: None,
    };
    crs_tally(w, crs, &req, facts.path, facts.query)
}
