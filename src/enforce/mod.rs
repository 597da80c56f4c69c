//! Enforcement: pure decisions over request facts. `evaluate` is the one entry point the proxy
//! calls from request_filter; nothing here sees a socket or a session.

pub mod ip;
pub mod offenders;
pub mod rate;
pub mod rules;
pub mod verdict;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use offenders::{Offenders, BAN_RULE_ID};

pub use verdict::{Action, Mode, Verdict};

use crate::policy::PolicySet;

/// What the policy may look at, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub client_ip: IpAddr,
    pub method: &'a str,
    /// Lower case, without port.
    pub host: &'a str,
    pub path: &'a str,
    pub route: &'a str,
}

/// Decide what to do with a request. Rules run in order: the first enforcing match decides
/// (an `allow` skips the limits too); monitor-mode matches are remembered and evaluation goes on.
/// Then every applicable limit counts the request.
pub fn evaluate(policy: &PolicySet, facts: &RequestFacts<'_>) -> Verdict {
    let mut observed: Option<Verdict> = None;
    for rule in &policy.rules {
        let Some(v) = rule.evaluate(facts) else { continue };
        if v.mode == Mode::Monitor && v.action == Action::Allow {
            continue;
        }
        if v.mode == Mode::Enforce {
            return v;
        }
        observed.get_or_insert(v);
    }
    for limit in policy.limits.iter().filter(|l| l.applies(facts)) {
        let Some(v) = limit.observe(facts) else { continue };
        if v.mode == Mode::Enforce {
            return v;
        }
        observed.get_or_insert(v);
    }
    observed.unwrap_or(Verdict::allow())
}

/// The whole request-time decision: a banned client is refused first, at the cost of one map
/// lookup; otherwise the policy decides, and an enforced violation strikes the client.
pub fn decide(policy: &PolicySet, offenders: &Offenders, facts: &RequestFacts<'_>, now: Instant) -> Verdict {
    if policy.bans.is_some() {
        if let Some(ban) = offenders.banned(facts.client_ip, now) {
            return Verdict {
                action: Action::Block,
                mode: Mode::Enforce,
                rule: Some(Arc::from(BAN_RULE_ID)),
                retry_after: None,
                matched: Some(format!("banned after {} strikes, last by rule {}", ban.strikes, ban.rule)),
                counter: Some(ban.strikes),
            };
        }
    }
    let v = evaluate(policy, facts);
    if let (Some(bans), Some(rule)) = (&policy.bans, &v.rule) {
        if v.enforced() {
            if let Some(ban) = offenders.strike(facts.client_ip, rule, bans, now) {
                log::warn!("banned {} for {:?} after {} strikes (rule {rule})", facts.client_ip, bans.ban_for, ban.strikes);
            }
        }
    }
    v
}
