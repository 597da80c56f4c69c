//! The WAF as a security stage (request_filter: `on_request_head`; then the body phase,
//! `on_body_chunk`, when the request has a body): the head's values are scored at once
//! (`request.rs`), every finding goes to the ledger, and a score at or over the threshold blocks
//! (or, in monitor mode, would block). Bodies are read whole and bounded before the origin sees
//! a byte (`proxy::body`), then scored on top of the head. On the routes of `waf.crs`, the Core
//! Rule Set tier (`crs/`) then judges the request with its own score and threshold, at the head
//! when no body follows, else once over head and body; it runs only if the built-in tier did not
//! already decide.
//!
//! Listed before `strikes` in `crate::stages` so a head-phase block is a strike; a block decided
//! on the body comes after that stage ran, so this stage strikes it itself.

use std::sync::Arc;

use super::crs::{uri_for, CrsRequest};
use super::request::{
    body_tally, crs_head, crs_tally, finding_action, head_items, judge, judge_crs, record, record_crs, tally, Tally,
    RULE, RULE_ID,
};
use crate::enforce::offenders::{Actor, Offenders};
use crate::enforce::{actors_to_strike, strike_later};
use crate::metrics::METRICS;
use crate::policy::PolicySet;
use crate::stage::{Ledger, Millis, RequestFacts, Stage, Step};

pub struct Waf {
    pub policy: Arc<PolicySet>,
    pub offenders: Arc<Offenders>,
}

/// The score so far, kept in the ledger from the head to the end of the body.
struct Pending {
    /// Set once the body was judged.
    done: bool,
    score: u32,
    top: Option<&'static str>,
    top_points: u32,
    path: String,
    content_type: Option<String>,
    actors: Vec<Actor>,
    now: Millis,
    /// The built-in tier inspects this route.
    builtin: bool,
    /// The head, kept for the CRS tier, which runs once over head and body.
    crs: Option<Box<CrsHead>>,
}

/// What the CRS tier needs of a head whose body is still to come.
struct CrsHead {
    client_ip: std::net::IpAddr,
    method: String,
    uri: String,
    query: Option<String>,
    headers: http::HeaderMap,
}

impl Pending {
    /// The pending judgement, once.
    fn take(&mut self) -> Option<Pending> {
        if self.done {
            return None;
        }
        self.done = true;
        Some(Pending {
            done: true,
            score: self.score,
            top: self.top,
            top_points: self.top_points,
            path: std::mem::take(&mut self.path),
            content_type: self.content_type.take(),
            actors: std::mem::take(&mut self.actors),
            now: self.now,
            builtin: self.builtin,
            crs: self.crs.take(),
        })
    }
}

/// Whether a request carries a body to read.
fn has_body(facts: &RequestFacts<'_>) -> bool {
    facts.content_length.is_some_and(|n| n > 0) || facts.headers.contains_key(http::header::TRANSFER_ENCODING)
}

impl Stage for Waf {
    fn name(&self) -> &'static str {
        "waf"
    }

    fn on_request_head(&self, facts: &RequestFacts<'_>, ledger: &mut Ledger, now: Millis) -> Step {
        let Some(w) = self.policy.waf.as_deref() else {
            return Step::Pass;
        };
        let crs = w.crs_for(facts.route);
        if ledger.verdict.settled() || (!w.applies_to(facts.route) && crs.is_none()) {
            return Step::Pass;
        }
        let t = if w.applies_to(facts.route) {
            let mut items = Vec::with_capacity(16);
            head_items(w, facts, &mut items);
            tally(w, facts.path, &items)
        } else {
            Tally::default()
        };
        let body = has_body(facts);
        let body_passed = body
            && facts.content_length.is_some_and(|n| n > w.body.limit as u64)
            && w.body.oversize == crate::stage::Oversize::Pass;
        let mut verdict = judge(w, t.score, t.top);
        // The CRS tier (milliseconds: docs/waf.md "Cost") runs only when the built-in tier did not
        // already decide, and on the head alone when no body will follow.
        let crs_now = crs.filter(|_| verdict.is_none() && (!body || body_passed));
        let ct = crs_now.map(|c| {
            let ct = crs_head(w, c, facts);
            verdict = judge_crs(w, c, &ct);
            ct
        });
        let over = verdict.is_some();
        record(ledger, w, t.findings, over);
        if let Some(ct) = ct {
            record_crs(ledger, w, ct.findings, over);
        }
        if let Some(v) = verdict {
            return Step::Verdict(v);
        }
        if body {
            if body_passed {
                // Passed uninspected: the body would stream to the origin before a verdict.
                METRICS.bodies_uninspected.inc();
                return Step::Pass;
            }
            ledger.want_body(w.body);
            ledger.hold(Pending {
                done: false,
                score: t.score,
                top: t.top,
                top_points: t.top_points,
                path: facts.path.to_owned(),
                content_type: facts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                actors: if w.strike {
                    actors_to_strike(&self.policy, &self.offenders, facts)
                } else {
                    Vec::new()
                },
                now,
                builtin: w.applies_to(facts.route),
                crs: crs.map(|_| {
                    Box::new(CrsHead {
                        client_ip: facts.client_ip,
                        method: facts.method.to_owned(),
                        uri: uri_for(facts.path, facts.query),
                        query: facts.query.map(str::to_owned),
                        headers: facts.headers.clone(),
                    })
                }),
            });
        }
        Step::Pass
    }

    fn on_body_chunk(&self, _chunk: &[u8], end: bool, ledger: &mut Ledger) -> Step {
        if !end {
            return Step::Pass;
        }
        let Some(w) = self.policy.waf.as_deref() else {
            return Step::Pass;
        };
        let Some(p) = ledger.held_mut::<Pending>().and_then(|p| p.take()) else {
            return Step::Pass;
        };
        if ledger.verdict.settled() {
            return Step::Pass;
        }
        let mut t = Tally {
            score: p.score,
            top: p.top,
            top_points: p.top_points,
            findings: Vec::new(),
        };
        if p.builtin {
            t.add(body_tally(w, &p.path, p.content_type.as_deref(), &ledger.body));
        }
        let mut verdict = judge(w, t.score, t.top);
        let ct = match (&p.crs, w.crs.as_ref()) {
            (Some(head), Some(c)) if verdict.is_none() => {
                let req = CrsRequest {
                    client_ip: head.client_ip,
                    method: &head.method,
                    uri: &head.uri,
                    headers: &head.headers,
                    body: Some(&ledger.body),
                };
                let ct = crs_tally(w, c, &req, &p.path, head.query.as_deref());
                verdict = judge_crs(w, c, &ct);
                Some(ct)
            }
            _ => None,
        };
        let Some(v) = verdict else {
            record(ledger, w, t.findings, false);
            if let Some(ct) = ct {
                record_crs(ledger, w, ct.findings, false);
            }
            return Step::Pass;
        };
        // The head's findings were recorded as below the threshold; the body tipped it.
        let word = finding_action(w, true, true);
        for f in ledger
            .findings
            .iter_mut()
            .filter(|f| f.stage == RULE_ID && f.action == "log")
        {
            f.action = word;
        }
        record(ledger, w, t.findings, true);
        if let Some(ct) = ct {
            record_crs(ledger, w, ct.findings, true);
        }
        if v.enforced() && w.strike {
            let _ = strike_later(&self.policy, &self.offenders, &p.actors, &RULE, 1, p.now);
        }
        Step::Verdict(v)
    }
}
