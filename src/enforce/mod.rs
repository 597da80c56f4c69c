//! Enforcement: pure decisions over request facts, and offender state. `evaluate` and `decide`
//! are the whole request-time decision as functions (offline replay and benchmarks call them);
//! `stages` offers the same steps to the proxy core as security stages. Nothing here sees a
//! socket or a session.

pub mod identity;
pub mod manual;
pub mod offenders;
pub mod persist;
pub mod stages;

use crate::policy::inflight::{self, Slots};
use crate::policy::rate;
use crate::policy::rules::Effect;
use offenders::{Actor, Millis, Offenders, Penalty, PenaltyKind, THROTTLE_RULE};
#[cfg(test)]
use offenders::{BAN_RULE_ID, THROTTLE_RULE_ID};

pub use crate::stage::verdict::{self, Action, Decision, Mode, Observations, Source, Verdict};
pub use crate::stage::RequestFacts;

use crate::policy::PolicySet;

/// Decide what to do with a request. Rules run in order: the first enforcing match decides
/// (an `allow` skips the limits too); monitor-mode matches are remembered and evaluation goes on.
/// Then every applicable limit counts the request.
pub fn evaluate(policy: &PolicySet, facts: &RequestFacts<'_>) -> Verdict {
    evaluate_with(policy, facts, |limit, f| limit.observe(f))
}

/// `evaluate`, with limits counted by `count` (offline replay counts on recorded time).
pub fn evaluate_with(
    policy: &PolicySet,
    facts: &RequestFacts<'_>,
    count: impl FnMut(&rate::Limit, &RequestFacts<'_>) -> Option<Verdict>,
) -> Verdict {
    let mut v = evaluate_rules(policy, facts);
    if !v.settled() {
        if let Some(limited) = evaluate_limits(policy, facts, count) {
            v.merge(limited);
        }
    }
    v
}

/// The rules alone: the first enforcing match decides; monitor-mode matches and `log`/`strike`
/// rules are observed on the way.
pub fn evaluate_rules(policy: &PolicySet, facts: &RequestFacts<'_>) -> Verdict {
    let mut v = Verdict::allow();
    // Only the rules this request's path, headers and query could satisfy, in rule order.
    policy.index.with_candidates(facts, |candidates| {
        for i in candidates.iter() {
            let Some(rule) = policy.rules.get(i) else { break };
            if !rule.condition.matches(facts) {
                continue;
            }
            let seen = &mut v.observed;
            match (rule.effect, rule.mode) {
                (Effect::Log, _) | (Effect::Strike, Mode::Monitor) => seen.also.push(rule.id.clone()),
                (Effect::Strike, Mode::Enforce) => {
                    seen.also.push(rule.id.clone());
                    seen.strikes += 1;
                    seen.struck_by.get_or_insert_with(|| rule.id.clone());
                }
                (Effect::Decide(Action::Allow), Mode::Monitor) => {}
                (Effect::Decide(a), mode) => {
                    v.merge(rule.verdict(a, facts));
                    if mode == Mode::Enforce {
                        return;
                    }
                }
            }
        }
    });
    v
}

/// Every applicable limit counts the request; the first enforcing one over its count decides,
/// else the first monitor-mode one is reported.
pub fn evaluate_limits(
    policy: &PolicySet,
    facts: &RequestFacts<'_>,
    mut count: impl FnMut(&rate::Limit, &RequestFacts<'_>) -> Option<Verdict>,
) -> Option<Verdict> {
    let mut observed: Option<Verdict> = None;
    for limit in policy.limits.iter().filter(|l| l.applies(facts)) {
        let Some(v) = count(limit, facts) else { continue };
        if v.decision.mode == Mode::Enforce {
            return Some(v);
        }
        observed.get_or_insert(v);
    }
    observed
}

/// A verdict and the concurrency slots it holds until the request ends.
#[must_use]
pub struct Decided {
    pub verdict: Verdict,
    pub slots: Slots,
}

fn penalty_verdict(p: &Penalty, now: Millis) -> Verdict {
    let ban = p.kind == PenaltyKind::Ban;
    let left = p.until.map(|u| u.saturating_sub(now).div_ceil(1000).max(1) as u32);
    Decision {
        action: if ban { Action::Block } else { Action::Throttle },
        mode: Mode::Enforce,
        source: if ban { Source::Ban } else { Source::Probation },
        retry_after: if ban { None } else { left },
        matched: Some(p.reason.clone()),
        counter: Some(p.strikes as i64),
        ..Decision::default()
    }
    .into()
}

/// The actors a request is counted against: its client address and, when the ban policy names
/// an identity key, that identity.
pub(crate) fn actors(policy: &PolicySet, offenders: &Offenders, facts: &RequestFacts<'_>) -> Vec<Actor> {
    let mut a = vec![Actor::Ip(facts.client_ip)];
    a.extend(identity(policy, offenders, facts).map(Actor::Id));
    a
}

/// The request's identity pseudonym, when the ban policy names one (the live decision feed
/// shows it beside the address).
pub fn request_identity(
    policy: &PolicySet,
    offenders: &Offenders,
    facts: &RequestFacts<'_>,
) -> Option<identity::Pseudonym> {
    identity(policy, offenders, facts)
}

/// The request's identity, when the ban policy names one. The value is a credential (a session
/// cookie, an account header): only its keyed pseudonym goes any further.
fn identity(policy: &PolicySet, offenders: &Offenders, facts: &RequestFacts<'_>) -> Option<identity::Pseudonym> {
    policy
        .bans
        .as_ref()
        .and_then(|b| b.identity.as_ref())
        .and_then(|k| k.value(facts))
        .map(|v| offenders.pseudonym(v))
}

/// An actor under penalty is answered first, at the cost of one map lookup. A request refused
/// on probation is itself a strike, so an actor that keeps going is banned.
pub fn check_penalty(
    policy: &PolicySet,
    offenders: &Offenders,
    facts: &RequestFacts<'_>,
    now: Millis,
) -> Option<Verdict> {
    let (actor, p) = offenders.check(facts.client_ip, identity(policy, offenders, facts).as_ref(), now)?;
    if let (PenaltyKind::Throttle, Some(bans)) = (p.kind, &policy.bans) {
        if let Some((a, ban)) = offenders
            .strike(&actors(policy, offenders, facts), &THROTTLE_RULE, bans, 1, now)
            .filter(|(_, b)| b.kind == PenaltyKind::Ban)
        {
            log::warn!("{a}: banned until {:?} ({})", ban.until, ban.reason);
            return Some(penalty_verdict(&ban, now));
        }
    }
    log::debug!("{actor} refused: {}", p.reason);
    Some(penalty_verdict(&p, now))
}

/// Concurrency caps take their slots unless the request is already settled.
pub fn take_slots(policy: &PolicySet, facts: &RequestFacts<'_>, v: &Verdict) -> (Slots, Option<Verdict>) {
    if v.settled() || policy.caps.is_empty() {
        return (Slots::default(), None);
    }
    inflight::acquire(&policy.caps, facts)
}

/// An enforced refusal, and each enforcing `strike` rule, adds strikes against the client and
/// its identity, when the policy names one. Penalties strike in `check_penalty` instead.
pub fn record_strikes(policy: &PolicySet, offenders: &Offenders, facts: &RequestFacts<'_>, v: &Verdict, now: Millis) {
    if policy.bans.is_none() {
        return;
    }
    if v.is_penalty() {
        return;
    }
    let enforced = u32::from(v.enforced());
    let blamed = if enforced == 1 {
        v.decision.source.id().cloned()
    } else {
        v.observed.struck_by.clone()
    };
    if let Some(rule) = blamed.filter(|_| enforced + v.observed.strikes > 0) {
        let _ = strike_later(
            policy,
            offenders,
            &actors(policy, offenders, facts),
            &rule,
            enforced + v.observed.strikes,
            now,
        );
    }
}

/// Who a refusal decided after the head phase (the body phase) strikes: the `strikes` stage
/// has run by then, so the deciding stage takes the actors at the head and strikes later.
pub fn actors_to_strike(policy: &PolicySet, offenders: &Offenders, facts: &RequestFacts<'_>) -> Vec<Actor> {
    if policy.bans.is_none() {
        return Vec::new();
    }
    actors(policy, offenders, facts)
}

/// `n` strikes against `actors`, blamed on `rule` (see `actors_to_strike`); the penalty they
/// earn, if any, is logged and returned. Nothing without a ban policy or strikes.
pub fn strike_later(
    policy: &PolicySet,
    offenders: &Offenders,
    actors: &[Actor],
    rule: &std::sync::Arc<str>,
    n: u32,
    now: Millis,
) -> Option<PenaltyKind> {
    let bans = policy.bans.as_ref().filter(|_| n > 0)?;
    let (actor, p) = offenders.strike(actors, rule, bans, n, now)?;
    log::warn!("{actor}: {:?} until {:?} ({})", p.kind, p.until, p.reason);
    Some(p.kind)
}

/// The whole request-time decision, as the stages in `stages` take it one step at a time:
/// a standing penalty answers first; otherwise rules, limits and concurrency caps decide, and
/// refusals and `strike` rules add strikes.
pub fn decide(policy: &PolicySet, offenders: &Offenders, facts: &RequestFacts<'_>, now: Millis) -> Decided {
    decide_with(policy, offenders, facts, now, |limit, f| limit.observe(f))
}

/// `decide`, with limits counted by `count` (see `evaluate_with`).
pub fn decide_with(
    policy: &PolicySet,
    offenders: &Offenders,
    facts: &RequestFacts<'_>,
    now: Millis,
    count: impl FnMut(&rate::Limit, &RequestFacts<'_>) -> Option<Verdict>,
) -> Decided {
    if let Some(verdict) = check_penalty(policy, offenders, facts, now) {
        return Decided {
            verdict,
            slots: Slots::default(),
        };
    }
    let mut v = evaluate_with(policy, facts, count);
    let (slots, refused) = take_slots(policy, facts, &v);
    if let Some(r) = refused {
        v.merge(r);
    }
    // The WAF on what a head carries (replay has no bodies); after caps, and before strikes
    // unless its blocks must not strike, as `stages` orders it.
    let waf = policy
        .waf
        .as_deref()
        .filter(|_| !v.settled())
        .and_then(|w| crate::waf::request::evaluate_head(w, facts).map(|r| (w.strike, r)));
    let waf = match waf {
        Some((true, r)) => {
            v.merge(r);
            None
        }
        other => other,
    };
    record_strikes(policy, offenders, facts, &v, now);
    if let Some((_, r)) = waf {
        v.merge(r);
    }
    Decided { verdict: v, slots }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::policy_from_str;
    use crate::policy::compile;
    use std::time::Duration;

    fn policy(yaml: &str) -> PolicySet {
        let p = policy_from_str("test.yaml", yaml, &["app", "chat"]).expect("valid policy");
        compile(&[p], None)
    }

    static NO_HEADERS: once_cell::sync::Lazy<http::HeaderMap> = once_cell::sync::Lazy::new(http::HeaderMap::new);

    fn facts<'a>(ip: &str, method: &'a str, path: &'a str, route: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            client_ip: ip.parse().expect("ip"),
            method,
            host: "live.example.test",
            path,
            route,
            query: None,
            headers: &NO_HEADERS,
            content_length: None,
        }
    }

    const RULES: &str = "
lists:
  staff: {cidrs: [10.0.0.0/8]}
  bad: {cidrs: [203.0.113.0/24, 2001:db8::/32]}
rules:
  - id: staff
    match: {ip_lists: [staff]}
    action: allow
  - id: bad-ip
    match: {ip_lists: [bad]}
    action: block
  - id: try-chat-block
    match: {routes: [chat], methods: [POST]}
    action: block
    mode: monitor
  - id: no-delete
    match: {methods: [DELETE], hosts: ['*.example.test']}
    action: throttle
    retry_after: 30s
limits:
  - id: chat-posts
    requests: 2
    per: 60s
    match: {routes: [chat], methods: [POST]}
";

    #[test]
    fn rules_decide_in_order() {
        let p = policy(RULES);
        let v = evaluate(&p, &facts("203.0.113.5", "GET", "/", "app"));
        assert_eq!((v.label(), v.rule()), ("block", Some("bad-ip")));
        assert_eq!(v.decision.matched.as_deref(), Some("ip 203.0.113.0/24"));
        assert_eq!(evaluate(&p, &facts("2001:db8::7", "GET", "/", "app")).label(), "block");
        // Staff are allowed before anything else looks at them.
        let v = evaluate(&p, &facts("10.1.2.3", "DELETE", "/", "app"));
        assert_eq!((v.label(), v.rule()), ("allow", Some("staff")));
        let v = evaluate(&p, &facts("198.51.100.1", "DELETE", "/x", "app"));
        assert_eq!(
            (v.label(), v.decision.retry_after, v.status()),
            ("throttle", Some(30), 429)
        );
        let v = evaluate(&p, &facts("198.51.100.1", "GET", "/x", "app"));
        assert_eq!((v.label(), v.rule()), ("allow", None));
    }

    #[test]
    fn monitor_rules_report_without_enforcing_and_limits_still_count() {
        let p = policy(RULES);
        let f = facts("198.51.100.2", "POST", "/chat", "chat");
        for _ in 0..2 {
            let v = evaluate(&p, &f);
            assert_eq!((v.label(), v.rule()), ("would_block", Some("try-chat-block")));
            assert!(!v.enforced());
        }
        // The third post passes the limit, which enforces and wins over the monitor match.
        let v = evaluate(&p, &f);
        assert_eq!(
            (v.label(), v.rule(), v.decision.counter),
            ("throttle", Some("chat-posts"), Some(3))
        );
        assert_eq!(v.decision.retry_after, Some(60));
        // Another client has its own count.
        assert_eq!(
            evaluate(&p, &facts("198.51.100.3", "POST", "/chat", "chat")).label(),
            "would_block"
        );
    }

    #[test]
    fn reload_keeps_counters_of_unchanged_limits_only() {
        let limits = |b_window: &str| {
            format!(
                "limits:\n  - {{id: a, requests: 1, per: 60s, match: {{methods: [GET]}}}}\n  - {{id: b, requests: 1, per: {b_window}, match: {{methods: [POST]}}}}\n"
            )
        };
        let get = facts("198.51.100.9", "GET", "/", "app");
        let post = facts("198.51.100.9", "POST", "/", "app");
        let first = policy(&limits("60s"));
        assert_eq!(evaluate(&first, &get).label(), "allow");
        assert_eq!(evaluate(&first, &post).label(), "allow");
        let reload =
            |yaml: &str, prev: &PolicySet| compile(&[policy_from_str("t.yaml", yaml, &[]).expect("valid")], Some(prev));
        // b's window changed: a keeps its count, b starts fresh.
        let second = reload(&limits("30s"), &first);
        assert_eq!(evaluate(&second, &get).rule(), Some("a"));
        assert_eq!(evaluate(&second, &post).label(), "allow");
        // Nothing changed: b carries the count it had.
        let third = reload(&limits("30s"), &second);
        assert_eq!(evaluate(&third, &post).rule(), Some("b"));
    }

    #[test]
    fn bans_refuse_before_rules_with_an_injected_clock() {
        let p = policy("rules:\n  - {id: x, match: {path_prefix: [/x]}, action: block}\noffenders: {strikes: 2, window: 60s, ban_for: 5m}\n");
        let o = Offenders::new();
        let t0: Millis = 1_700_000_000_000;
        let bad = facts("198.51.100.20", "GET", "/x", "app");
        let fine = facts("198.51.100.20", "GET", "/fine", "app");
        assert_eq!(decide(&p, &o, &fine, t0).verdict.label(), "allow");
        assert_eq!(decide(&p, &o, &bad, t0).verdict.rule(), Some("x"));
        assert_eq!(decide(&p, &o, &bad, t0).verdict.rule(), Some("x"));
        let v = decide(&p, &o, &fine, t0).verdict;
        assert_eq!((v.label(), v.rule()), ("block", Some(BAN_RULE_ID)));
        assert_eq!(decide(&p, &o, &fine, t0 + 301_000).verdict.label(), "allow");
    }

    fn rule_hit(yaml_match: &str, f: &RequestFacts<'_>) -> bool {
        let p = policy(&format!(
            "rules:\n  - id: r\n    action: block\n    match: {yaml_match}\n"
        ));
        evaluate(&p, f).label() == "block"
    }

    #[test]
    fn every_matcher() {
        let mut h = http::HeaderMap::new();
        h.insert("user-agent", "Mozilla/5.0 sqlmap/1.7".parse().expect("hv"));
        h.insert("content-type", "Application/JSON; charset=utf-8".parse().expect("hv"));
        h.insert("x-account", "acct-42".parse().expect("hv"));
        let f = RequestFacts {
            client_ip: "198.51.100.7".parse().expect("ip"),
            method: "POST",
            host: "chat.live.example.test",
            path: "/api/v2/rooms/991/messages",
            route: "chat",
            query: Some("room=991&debug&token=x"),
            headers: &h,
            content_length: Some(2048),
        };
        let cases: &[(&str, bool)] = &[
            ("{path: [/api/v2/rooms/991/messages]}", true),
            ("{path: [/api/v2/rooms]}", false),
            ("{path_glob: ['/api/*/rooms/*/messages']}", true),
            ("{path_glob: ['/api/*/messages']}", false),
            ("{path_glob: ['/api/**/messages']}", true),
            ("{path_regex: ['^/api/v[0-9]+/rooms/[0-9]+/messages$']}", true),
            ("{query: {debug: {present: true}}}", true),
            ("{query: {room: {equals: '991'}}}", true),
            ("{query: {room: {equals: '99'}}}", false),
            ("{query: {page: {absent: true}}}", true),
            ("{headers: {X-Account: {prefix: acct-}}}", true),
            ("{headers: {x-api-key: {absent: true}}}", true),
            ("{headers: {x-account: {regex: '^acct-[0-9]{3}$'}}}", false),
            ("{user_agent: {contains: SQLMAP}}", true),
            ("{user_agent: {contains: curl}}", false),
            ("{content_type: [application/json]}", true),
            ("{content_type: [text/]}", false),
            ("{body_over: 1KiB}", true),
            ("{body_over: 4KiB}", false),
            ("{hosts: ['*.example.test'], methods: [POST]}", true),
            ("{hosts: ['*.example.test'], methods: [GET]}", false),
            ("{any: [{methods: [GET]}, {path_prefix: [/api/]}]}", true),
            ("{all: [{methods: [POST]}, {ip: [203.0.113.0/24]}]}", false),
            ("{not: {ip: [203.0.113.0/24]}}", true),
            ("{not: {routes: [chat]}}", false),
        ];
        for (m, want) in cases {
            assert_eq!(rule_hit(m, &f), *want, "match {m}");
        }
    }

    #[test]
    fn bad_matchers_are_refused_with_their_field() {
        for (m, field) in [
            ("{path_regex: ['(unclosed']}", "rules[0].match.path_regex[0]"),
            ("{headers: {x: {present: false}}}", "rules[0].match.headers.x"),
            ("{headers: {x: {sounds_like: y}}}", "rules[0].match.headers.x"),
            ("{any: [{}]}", "rules[0].match.any[0]"),
            ("{path_glob: [no-slash]}", "rules[0].match.path_glob[0]"),
        ] {
            let yaml = format!("rules:\n  - id: r\n    action: block\n    match: {m}\n");
            let err = policy_from_str("t.yaml", &yaml, &[]).expect_err(m);
            assert!(
                err.0.iter().any(|e| e.field.starts_with(field) && e.line == 4),
                "{m}: {err}"
            );
        }
    }

    #[test]
    fn log_strike_and_tarpit_actions() {
        let p = policy(
            "rules:
  - {id: note-api, match: {path_prefix: [/api]}, action: log}
  - {id: odd-agent, match: {user_agent: {absent: true}}, action: strike}
  - {id: slow-login, match: {path: [/api/login]}, action: tarpit, delay: 2s, retry_after: 120s}
  - {id: gone, match: {path: [/api/old]}, action: block, body: 'This endpoint was retired.'}
offenders: {strikes: 3, window: 60s, ban_for: 1m}
",
        );
        let v = evaluate(&p, &facts("198.51.100.30", "GET", "/api/x", "app"));
        assert_eq!((v.label(), v.observed.also.len(), v.observed.strikes), ("allow", 2, 1));
        assert_eq!(
            v.observed.also.iter().map(|a| &**a).collect::<Vec<_>>(),
            ["note-api", "odd-agent"]
        );
        let v = evaluate(&p, &facts("198.51.100.30", "POST", "/api/login", "app"));
        assert_eq!(
            (v.label(), v.status(), v.decision.tarpit, v.decision.retry_after),
            ("tarpit", 429, Some(Duration::from_secs(2)), Some(120))
        );
        let v = evaluate(&p, &facts("198.51.100.30", "GET", "/api/old", "app"));
        assert_eq!(v.decision.body.as_deref(), Some("This endpoint was retired."));
        // Strike rules feed the ban: three strikes from agent-less requests ban the client.
        let o = Offenders::new();
        let now: Millis = 1_700_000_000_000;
        for _ in 0..3 {
            assert_eq!(
                decide(&p, &o, &facts("198.51.100.31", "GET", "/x", "app"), now)
                    .verdict
                    .label(),
                "allow"
            );
        }
        assert_eq!(
            decide(&p, &o, &facts("198.51.100.31", "GET", "/x", "app"), now)
                .verdict
                .rule(),
            Some(BAN_RULE_ID)
        );
    }

    #[test]
    fn concurrency_caps_free_their_slot_when_the_request_ends() {
        let p = policy("concurrency:\n  - {id: streams, max: 2, match: {path_prefix: [/live/]}}\n");
        let f = facts("198.51.100.40", "GET", "/live/room1", "app");
        let (a, refused) = inflight::acquire(&p.caps, &f);
        assert!(refused.is_none() && a.held() == 1);
        let (b, refused) = inflight::acquire(&p.caps, &f);
        assert!(refused.is_none() && b.held() == 1);
        let (_, refused) = inflight::acquire(&p.caps, &f);
        let v = refused.expect("third stream refused");
        assert_eq!(
            (v.label(), v.rule(), v.decision.counter),
            ("throttle", Some("streams"), Some(3))
        );
        // Other clients and other paths are not affected.
        assert!(
            inflight::acquire(&p.caps, &facts("198.51.100.41", "GET", "/live/room1", "app"))
                .1
                .is_none()
        );
        assert_eq!(
            inflight::acquire(&p.caps, &facts("198.51.100.40", "GET", "/chat", "app"))
                .0
                .held(),
            0
        );
        drop(a);
        assert!(
            inflight::acquire(&p.caps, &f).1.is_none(),
            "a finished stream frees its slot"
        );
        drop(b);
    }

    #[test]
    fn limits_keyed_by_account_header() {
        let p = policy("limits:\n  - {id: per-account, key: 'header:x-account', requests: 1, per: 60s}\n");
        let mut h = http::HeaderMap::new();
        h.insert("x-account", "alice".parse().expect("hv"));
        let alice_a = RequestFacts {
            headers: &h,
            ..facts("198.51.100.50", "GET", "/", "app")
        };
        let alice_b = RequestFacts {
            headers: &h,
            ..facts("198.51.100.51", "GET", "/", "app")
        };
        assert_eq!(evaluate(&p, &alice_a).label(), "allow");
        let v = evaluate(&p, &alice_b);
        assert_eq!(
            (v.label(), v.decision.matched.as_deref()),
            ("throttle", Some("header:x-account")),
            "same account, other address"
        );
        assert_eq!(
            evaluate(&p, &facts("198.51.100.52", "GET", "/", "app")).label(),
            "allow"
        );
    }

    #[test]
    fn probation_escalates_to_a_ban_when_the_actor_keeps_going() {
        let p = policy("rules:\n  - {id: x, match: {path_prefix: [/x]}, action: block}\noffenders: {strikes: 4, throttle_at: 2, window: 60s, ban_for: 5m}\n");
        let o = Offenders::new();
        let t: Millis = 1_700_000_000_000;
        let bad = facts("198.51.100.60", "GET", "/x", "app");
        let fine = facts("198.51.100.60", "GET", "/fine", "app");
        assert_eq!(decide(&p, &o, &bad, t).verdict.rule(), Some("x"));
        assert_eq!(decide(&p, &o, &bad, t).verdict.rule(), Some("x"));
        // Two strikes: probation. Every request is throttled, and each one is a strike.
        let v = decide(&p, &o, &fine, t).verdict;
        assert_eq!(
            (v.label(), v.rule(), v.decision.retry_after),
            ("throttle", Some(THROTTLE_RULE_ID), Some(60))
        );
        let v = decide(&p, &o, &fine, t).verdict;
        assert_eq!(
            (v.label(), v.rule()),
            ("block", Some(BAN_RULE_ID)),
            "kept going on probation"
        );
    }

    #[test]
    fn strikes_are_blamed_on_the_strike_rule_and_caps_count_as_refusals() {
        let p = policy(
            "rules:\n  - {id: note, match: {path_prefix: [/]}, action: log}\n  - {id: bot, match: {user_agent: {absent: true}}, action: strike}\nconcurrency:\n  - {id: one, max: 1}\noffenders: {strikes: 3, window: 60s, ban_for: 5m}\n",
        );
        let o = Offenders::new();
        let t: Millis = 1_700_000_000_000;
        let f = facts("198.51.100.61", "GET", "/", "app");
        let first = decide(&p, &o, &f, t);
        assert_eq!(first.verdict.observed.struck_by.as_deref(), Some("bot"));
        assert_eq!(o.scores().len(), 1);
        // The slot is still held: the cap refuses, and that refusal is a strike as well
        // (1 from the strike rule + 1 refusal + the first request's 1 = 3: banned).
        let second = decide(&p, &o, &f, t);
        assert_eq!(second.verdict.rule(), Some("one"));
        assert_eq!(
            o.check(f.client_ip, None, t).map(|(_, p)| p.kind),
            Some(PenaltyKind::Ban)
        );
        assert_eq!(o.list()[0].1.rules.last().map(|r| &**r), Some("one"));
        drop(first);
    }

    /// The index must never change a decision: compare with a plain scan of every rule.
    #[test]
    fn index_agrees_with_a_full_scan() {
        let mut yaml = String::from("rules:\n");
        let matchers = [
            "{path_prefix: [/admin3]}",
            "{path_prefix: [/a]}",
            "{path: [/exact]}",
            "{path_glob: ['/c/*/x']}",
            "{path_glob: ['/**/tail']}",
            "{headers: {x-key: {equals: v}}}",
            "{headers: {x-key: {absent: true}}, methods: [PUT]}",
            "{query: {q: {present: true}}}",
            "{query: {q: {absent: true}}, path_prefix: [/q]}",
            "{user_agent: {contains: BOT}}",
            "{methods: [DELETE]}",
            "{not: {path_prefix: [/]}}",
        ];
        for (i, m) in matchers.iter().enumerate() {
            yaml.push_str(&format!("  - {{id: r{i}, match: {m}, action: block}}\n"));
        }
        let p = policy(&yaml);
        let naive = |f: &RequestFacts<'_>| {
            p.rules
                .iter()
                .find(|r| r.condition.matches(f))
                .map(|r| r.id.to_string())
        };
        let mut with_key = http::HeaderMap::new();
        with_key.insert("x-key", "v".parse().expect("hv"));
        with_key.insert("user-agent", "a-bot/1".parse().expect("hv"));
        let none = http::HeaderMap::new();
        let mut checked = 0;
        for path in [
            "/", "/admin35", "/admin", "/a", "/exact", "/exact/", "/c/1/x", "/c/1/2/x", "/z/tail", "/q", "/qq",
        ] {
            for query in [None, Some("q=1"), Some("p=2&q")] {
                for headers in [&with_key, &none] {
                    for method in ["GET", "PUT", "DELETE"] {
                        let f = RequestFacts {
                            path,
                            query,
                            headers,
                            method,
                            ..facts("198.51.100.9", "GET", "/", "app")
                        };
                        assert_eq!(
                            evaluate(&p, &f).rule().map(|r| r.to_string()),
                            naive(&f),
                            "{method} {path} {query:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 198);
    }
}
