//! `palisade replay`: decide recorded requests again with a candidate policy and compare with
//! what the live policy decided. The offline half of "tighten policy safely".
//!
//! Time is the recorded time: rate limits count in fixed windows of `@timestamp` (exactly, one
//! counter per key, not a sketch) and penalties (strikes, probation, bans) decay and expire on
//! it, starting from a clean state. What replay cannot see:
//! - only recorded fields: headers not in `telemetry.headers` are absent, so rules and limits
//!   keyed on them see requests without them; query values are as recorded (`REDACTED` unless
//!   allowed, or absent with `query: drop`); the body length is the body bytes read;
//! - hashed client addresses: IP conditions and per-address limits see `0.0.0.0`;
//! - concurrency caps, which need to know which requests overlapped, are not evaluated;
//! - the WAF sees the path, the query as recorded, the User-Agent and the recorded headers;
//!   bodies are not recorded, so body findings are not replayed;
//! - sampled-out allowed requests are not there to count.

use crate::stage::{Action, Mode};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use super::{Event, Filter};
use crate::enforce::offenders::Offenders;
use crate::enforce::{decide_with, RequestFacts};
use crate::key::Keyed;
use crate::policy::PolicySet;

/// Examples kept per direction when `--examples` is not given.
pub const DEFAULT_EXAMPLES: usize = 10;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    pub policy: String,
    /// Request events replayed.
    pub requests: u64,
    /// Requests the candidate refuses (block, throttle, tarpit) that the live policy let through.
    pub newly_refused: Difference,
    /// Requests the live policy refused that the candidate lets through.
    pub no_longer_refused: Difference,
    /// Both refuse, with a different decision word.
    pub changed: u64,
    /// `live -> candidate` decision words, for every pair seen.
    pub matrix: BTreeMap<String, u64>,
    /// What this replay could not see (hashed addresses, caps, …).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Difference {
    pub count: u64,
    /// By the deciding rule (the candidate's for `newly_refused`, the live one's otherwise).
    pub by_rule: BTreeMap<String, u64>,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Example {
    pub timestamp: String,
    pub request_id: String,
    pub client: String,
    pub method: String,
    pub host: String,
    pub path: String,
    pub live: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_rule: Option<String>,
    pub candidate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_rule: Option<String>,
}

fn refuses(word: &str) -> bool {
    crate::stage::Verdict::parse_label(word).is_some_and(|(a, m)| a != Action::Allow && m == Mode::Enforce)
}

/// Replay `events` (oldest first) through `policy`.
pub fn replay(policy: &mut PolicySet, events: &[Event], filter: &Filter, examples: usize) -> Report {
    let mut report = Report {
        policy: policy.hash.clone(),
        ..Report::default()
    };
    if !policy.caps.is_empty() {
        report.notes.push(format!(
            "{} concurrency cap(s) not evaluated: recorded events do not say which requests overlapped",
            policy.caps.len()
        ));
        policy.caps.clear();
    }
    let offenders = Offenders::new();
    let hasher = std::collections::hash_map::RandomState::new();
    // Per limit and key: the window index and the count in it.
    let mut windows: HashMap<(Arc<str>, u64), (u64, isize)> = HashMap::new();
    let mut hashed = 0u64;
    for e in events.iter().filter(|e| filter.matches(e)) {
        report.requests += 1;
        let mut headers = HeaderMap::new();
        for (k, v) in &e.http.request.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                headers.append(k, v);
            }
        }
        if !e.user_agent.original.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&e.user_agent.original) {
                headers.insert(http::header::USER_AGENT, v);
            }
        }
        let client_ip = e.client.ip.unwrap_or_else(|| {
            hashed += 1;
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        });
        let path = crate::proxy::facts::normalize_path(&e.url.path);
        let facts = RequestFacts {
            client_ip,
            method: &e.http.request.method,
            host: &e.url.domain,
            path: &path,
            route: e.palisade.route.as_deref().unwrap_or(""),
            query: e.url.query.as_deref(),
            headers: &headers,
            content_length: (e.http.request.bytes > 0).then_some(e.http.request.bytes),
        };
        let now = e.ms;
        let decision = decide_with(policy, &offenders, &facts, now, |limit, f| {
            let window_ms = (limit.window.as_millis() as u64).max(1);
            let key = hasher.hash_one(Keyed {
                key: &limit.key,
                facts: f,
            });
            let slot = windows.entry((limit.id.clone(), key)).or_insert((now / window_ms, 0));
            if slot.0 != now / window_ms {
                *slot = (now / window_ms, 0);
            }
            slot.1 += 1;
            limit.verdict(slot.1)
        });
        let cand = decision.verdict.label();
        let cand_rule = decision.verdict.rule().map(str::to_string);
        let live = e.palisade.decision.action.as_str();
        *report.matrix.entry(format!("{live} -> {cand}")).or_default() += 1;
        let (diff, rule) = match (refuses(live), refuses(cand)) {
            (false, true) => (&mut report.newly_refused, cand_rule.clone()),
            (true, false) => (&mut report.no_longer_refused, e.palisade.decision.rule.clone()),
            (true, true) => {
                report.changed +=
                    u64::from(crate::stage::Verdict::parse_label(live) != crate::stage::Verdict::parse_label(cand));
                continue;
            }
            (false, false) => continue,
        };
        diff.count += 1;
        *diff.by_rule.entry(rule.unwrap_or_else(|| "-".into())).or_default() += 1;
        if diff.examples.len() < examples {
            diff.examples.push(Example {
                timestamp: e.timestamp.clone(),
                request_id: e.request_id().to_string(),
                client: e.client(),
                method: e.http.request.method.clone(),
                host: e.url.domain.clone(),
                path: e.url.path.clone(),
                live: live.to_string(),
                live_rule: e.palisade.decision.rule.clone(),
                candidate: cand.to_string(),
                candidate_rule: cand_rule,
            });
        }
    }
    if hashed > 0 {
        report.notes.push(format!(
            "{hashed} request(s) had hashed client addresses: IP conditions and per-address limits saw 0.0.0.0"
        ));
    }
    report
}

/// The report as text for people.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Replayed {} request(s) through candidate policy {}",
        r.requests, r.policy
    );
    for (title, d) in [
        ("Refused by the candidate, not by the live policy", &r.newly_refused),
        ("Refused by the live policy, not by the candidate", &r.no_longer_refused),
    ] {
        let _ = writeln!(out, "\n{title}: {}", d.count);
        for (rule, n) in &d.by_rule {
            let _ = writeln!(out, "  {rule:<32} {n:>8}");
        }
        for x in &d.examples {
            let _ = writeln!(
                out,
                "  e.g. {} {} {} {}{}  live {}{}  candidate {}{}  ({})",
                x.timestamp.get(..19).unwrap_or(&x.timestamp),
                x.client,
                x.method,
                x.host,
                x.path,
                x.live,
                x.live_rule.as_ref().map_or(String::new(), |r| format!(" ({r})")),
                x.candidate,
                x.candidate_rule.as_ref().map_or(String::new(), |r| format!(" ({r})")),
                x.request_id
            );
        }
    }
    let _ = writeln!(out, "\nRefused by both, differently: {}", r.changed);
    let _ = writeln!(out, "\nLive -> candidate");
    for (pair, n) in &r.matrix {
        let _ = writeln!(out, "  {pair:<32} {n:>8}");
    }
    for n in &r.notes {
        let _ = writeln!(out, "\nNote: {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::policy_from_str;
    use crate::policy::compile;

    fn ev(ms: u64, ip: &str, path: &str, live: &str) -> Event {
        let mut e = Event {
            timestamp: format!("t{ms}"),
            ms,
            ..Event::default()
        };
        e.event.id = format!("r{ms}");
        e.client.ip = ip.parse().ok();
        e.http.request.method = "GET".into();
        e.url.domain = "live.example.test".into();
        e.url.path = path.into();
        e.palisade.route = Some("app".into());
        e.palisade.decision.action = live.into();
        e
    }

    #[test]
    fn candidate_limits_count_on_recorded_time_and_rules_are_compared() {
        let yaml = "rules:\n  - {id: no-admin, match: {path_prefix: [/admin]}, action: block}\nlimits:\n  - {id: per-ip, requests: 3, per: 10s}\n";
        let mut p = compile(
            &[policy_from_str("candidate.yaml", yaml, &["app"]).expect("policy")],
            None,
        );
        let mut events = Vec::new();
        // 5 requests a second apart from one client: at most 3 in any 10 s window, so the 4th
        // and 5th are throttled; the live policy allowed all of them.
        for i in 0..5 {
            events.push(ev(1_000_000 + i * 1000, "198.51.100.1", "/x", "allow"));
        }
        // The same pace 20 s later is a fresh window, recorded as throttled live.
        events.push(ev(1_030_000, "198.51.100.1", "/x", "throttle"));
        events.push(ev(1_031_000, "198.51.100.2", "/admin/panel", "allow"));
        let r = replay(&mut p, &events, &Filter::default(), 5);
        assert_eq!(r.requests, 7);
        assert_eq!(r.newly_refused.count, 3, "{r:#?}");
        assert_eq!(r.newly_refused.by_rule.get("per-ip"), Some(&2));
        assert_eq!(r.newly_refused.by_rule.get("no-admin"), Some(&1));
        assert_eq!(r.no_longer_refused.count, 1);
        assert_eq!(r.no_longer_refused.examples[0].request_id, "r1030000");
        assert_eq!(r.matrix.get("allow -> throttle"), Some(&2));
        assert!(render(&r).contains("per-ip"));
    }

    /// Replays an SQL injection, a scanner (by its User-Agent) and a benign look-alike: the first
    /// two are newly refused by the WAF, the third still allowed.
    fn waf_refuses_the_attack_and_the_scanner(p: &mut PolicySet, scanner_ua: &str) {
        let mut attack = ev(1_000_000, "198.51.100.1", "/search", "allow");
        attack.url.query = Some("q=1%27%20union%20select%20password%20from%20users--".into());
        let mut scanner = ev(1_001_000, "198.51.100.2", "/", "allow");
        scanner.user_agent.original = scanner_ua.into();
        let mut benign = ev(1_002_000, "198.51.100.3", "/search", "allow");
        benign.url.query = Some("q=O%27Reilly+books".into());
        let r = replay(p, &[attack, scanner, benign], &Filter::default(), 5);
        assert_eq!(r.newly_refused.count, 2, "{r:#?}");
        assert_eq!(r.newly_refused.by_rule.get("waf"), Some(&2));
        assert_eq!(r.matrix.get("allow -> allow"), Some(&1));
    }

    #[test]
    fn the_waf_judges_recorded_requests() {
        let yaml = "waf:\n  threshold: 5\n";
        let mut p = compile(
            &[policy_from_str("candidate.yaml", yaml, &["app"]).expect("policy")],
            None,
        );
        waf_refuses_the_attack_and_the_scanner(&mut p, "sqlmap/1.7.2#stable (https://sqlmap.org)");
    }

    /// Real libmodsecurity3 and Debian CRS; the built-in tier is on another route, so what
    /// refuses here is the CRS tier.
    #[test]
    fn the_crs_tier_judges_recorded_requests() {
        let yaml = "waf:\n  routes: [other]\n  crs:\n    routes: [app]\n";
        let mut p = compile(
            &[policy_from_str("candidate.yaml", yaml, &["app", "other"]).expect("policy")],
            None,
        );
        waf_refuses_the_attack_and_the_scanner(&mut p, "Mozilla/5.0 (compatible; Grendel-Scan/1.0)");
    }
}
