//! `palisade offenders`: who was refused most, decisions per minute, and hits per rule, over
//! recorded request events (alerts are not counted twice).

use crate::stage::{Action, Mode};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use super::{minute, Event, Filter};

/// Offenders listed when `--top` is not given.
pub const DEFAULT_TOP: usize = 10;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// Request events that passed the filters.
    pub requests: u64,
    /// Of those, decisions other than `allow`.
    pub not_allowed: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    pub top_offenders: Vec<Offender>,
    /// Per minute (UTC), decision word → requests.
    pub per_minute: Vec<Minute>,
    pub rules: Vec<RuleHits>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Offender {
    /// The client address, or its pseudonym when addresses are hashed.
    pub client: String,
    pub not_allowed: u64,
    pub requests: u64,
    pub decisions: BTreeMap<String, u64>,
    pub rules: BTreeMap<String, u64>,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Minute {
    pub minute: String,
    pub decisions: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RuleHits {
    pub rule: String,
    pub hits: u64,
    pub decisions: BTreeMap<String, u64>,
}

/// Build the report over `events` (oldest first).
pub fn report(events: &[Event], filter: &Filter, top: usize) -> Report {
    let mut r = Report::default();
    let mut clients: HashMap<String, Offender> = HashMap::new();
    let mut minutes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut rules: BTreeMap<String, RuleHits> = BTreeMap::new();
    for e in events.iter().filter(|e| filter.matches(e)) {
        let decision = e.palisade.decision.action.as_str();
        // Anything but a plain allow (refusals, monitor-mode findings, errors) is worth a look.
        let refused = crate::stage::Verdict::parse_label(decision) != Some((Action::Allow, Mode::Enforce));
        r.requests += 1;
        r.not_allowed += u64::from(refused);
        r.first.get_or_insert_with(|| e.timestamp.clone());
        r.last = Some(e.timestamp.clone());
        *minutes
            .entry(minute(e.ms))
            .or_default()
            .entry(decision.to_string())
            .or_default() += 1;
        let c = clients.entry(e.client()).or_insert_with(|| Offender {
            client: e.client(),
            first_seen: e.timestamp.clone(),
            ..Offender::default()
        });
        c.requests += 1;
        c.last_seen = e.timestamp.clone();
        if !refused && e.palisade.decision.rule.is_none() {
            continue;
        }
        if let Some(rule) = &e.palisade.decision.rule {
            let h = rules.entry(rule.clone()).or_insert_with(|| RuleHits {
                rule: rule.clone(),
                ..RuleHits::default()
            });
            h.hits += 1;
            *h.decisions.entry(decision.to_string()).or_default() += 1;
            if refused {
                *c.rules.entry(rule.clone()).or_default() += 1;
            }
        }
        if refused {
            c.not_allowed += 1;
            *c.decisions.entry(decision.to_string()).or_default() += 1;
        }
    }
    let mut offenders: Vec<Offender> = clients.into_values().filter(|c| c.not_allowed > 0).collect();
    offenders.sort_by(|a, b| {
        (b.not_allowed, b.requests)
            .cmp(&(a.not_allowed, a.requests))
            .then_with(|| a.client.cmp(&b.client))
    });
    offenders.truncate(top);
    r.top_offenders = offenders;
    r.per_minute = minutes
        .into_iter()
        .map(|(minute, decisions)| Minute { minute, decisions })
        .collect();
    let mut rules: Vec<RuleHits> = rules.into_values().collect();
    rules.sort_by(|a, b| b.hits.cmp(&a.hits).then_with(|| a.rule.cmp(&b.rule)));
    r.rules = rules;
    r
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

/// The report as text for people.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let span = match (&r.first, &r.last) {
        (Some(f), Some(l)) => format!(" from {f} to {l}"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "{} request(s){span}; {} not allowed (blocked, throttled, tarpitted or flagged by monitor rules)",
        r.requests, r.not_allowed
    );
    let _ = writeln!(out, "\nTop offenders");
    if r.top_offenders.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        let _ = writeln!(
            out,
            "  {:<40} {:>9} {:>9}  {:<20}  {:<24}  DECISIONS",
            "CLIENT", "NOT-ALLOW", "REQUESTS", "LAST SEEN", "TOP RULE"
        );
        for o in &r.top_offenders {
            let top_rule = o
                .rules
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map_or("-", |(r, _)| r.as_str());
            let _ = writeln!(
                out,
                "  {:<40} {:>9} {:>9}  {:<20}  {:<24}  {}",
                o.client,
                o.not_allowed,
                o.requests,
                o.last_seen.get(..19).unwrap_or(&o.last_seen),
                top_rule,
                counts(&o.decisions)
            );
        }
    }
    let _ = writeln!(out, "\nDecisions per minute (UTC)");
    for m in &r.per_minute {
        let _ = writeln!(out, "  {}  {}", m.minute, counts(&m.decisions));
    }
    let _ = writeln!(out, "\nHits per rule");
    if r.rules.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for h in &r.rules {
        let _ = writeln!(out, "  {:<32} {:>8}  {}", h.rule, h.hits, counts(&h.decisions));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts_ms: u64, ip: &str, action: &str, rule: Option<&str>, route: &str) -> Event {
        let mut e = Event {
            timestamp: format!("t{ts_ms}"),
            ms: ts_ms,
            ..Event::default()
        };
        e.client.ip = ip.parse().ok();
        e.palisade.decision.action = action.into();
        e.palisade.decision.rule = rule.map(str::to_string);
        e.palisade.route = Some(route.into());
        e
    }

    #[test]
    fn ranks_offenders_buckets_minutes_and_counts_rules() {
        let m = 60_000;
        let events = vec![
            ev(0, "203.0.113.9", "block", Some("deny"), "app"),
            ev(1, "203.0.113.9", "block", Some("deny"), "app"),
            ev(2, "198.51.100.1", "throttle", Some("burst"), "login"),
            ev(m, "203.0.113.9", "throttle", Some("burst"), "login"),
            ev(m + 1, "198.51.100.1", "allow", None, "app"),
            ev(m + 2, "192.0.2.1", "allow", Some("staff"), "app"),
        ];
        let r = report(&events, &Filter::default(), 10);
        assert_eq!((r.requests, r.not_allowed), (6, 4));
        let top: Vec<_> = r
            .top_offenders
            .iter()
            .map(|o| (o.client.as_str(), o.not_allowed, o.requests))
            .collect();
        assert_eq!(top, [("203.0.113.9", 3, 3), ("198.51.100.1", 1, 2)]);
        assert_eq!(r.top_offenders[0].rules.get("deny"), Some(&2));
        assert_eq!(r.per_minute.len(), 2);
        assert_eq!(r.per_minute[0].decisions.get("block"), Some(&2));
        assert_eq!(r.per_minute[1].decisions.get("allow"), Some(&2));
        let rules: Vec<_> = r.rules.iter().map(|h| (h.rule.as_str(), h.hits)).collect();
        assert_eq!(rules, [("burst", 2), ("deny", 2), ("staff", 1)]);

        let only_login = Filter {
            route: Some("login".into()),
            ..Filter::default()
        };
        assert_eq!(report(&events, &only_login, 10).requests, 2);
        let net = Filter {
            ip: "203.0.113.0/24".parse().ok(),
            since: None,
            until: None,
            rule: Some("deny".into()),
            route: None,
        };
        let r = report(&events, &net, 1);
        assert_eq!((r.requests, r.top_offenders.len()), (2, 1));
        assert!(render(&r).contains("203.0.113.9"));
    }
}
