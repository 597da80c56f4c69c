//! Validated policy files → `PolicySet`: CIDR lists into range sets, names into shared ids,
//! and rate counters carried over from the previous policy where a limit did not change.

use std::collections::HashMap;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use ipnet::IpNet;
use pingora_limits::inflight::Inflight;
use pingora_limits::rate::Rate;
use sha2::{Digest, Sha256};

use super::PolicySet;
use crate::config::file::{self, ModeSection, RuleAction, ValueMatch};
use crate::config::LoadedPolicy;
use crate::host::HostPattern;
use crate::pattern::glob::Glob;
use crate::policy::bans::BanPolicy;
use crate::policy::index::RuleIndex;
use crate::policy::inflight::Cap;
use crate::policy::ip::IpSet;
use crate::policy::rate::Limit;
use crate::policy::rules::{regex_set, Condition, Effect, Rule, Test, ValueTest};
use crate::stage::{Action, Mode};

/// `Retry-After` of throttle rules that do not set their own, in seconds.
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 60;
/// Longest ban when the policy sets no `max_ban`.
pub const DEFAULT_MAX_BAN: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// How long an ended ban counts toward escalation when the policy sets no `remember`.
pub const DEFAULT_REMEMBER: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// How long a tarpit rule holds a request when it sets no `delay`.
pub const DEFAULT_TARPIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Compile policies that passed validation. `previous` lends its rate counters to unchanged
/// limits.
pub fn compile(policies: &[LoadedPolicy], previous: Option<&PolicySet>) -> PolicySet {
    let mut hasher = Sha256::new();
    let mut lists: HashMap<&str, Vec<IpNet>> = HashMap::new();
    for p in policies {
        hasher.update(p.path.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(p.source.as_bytes());
        hasher.update([0]);
        hasher.update(p.list_text.as_bytes());
        for (name, l) in &p.file.lists {
            lists.insert(name, l.cidrs.iter().map(|c| c.0).collect());
        }
    }
    let hash = hex::encode(hasher.finalize())[..12].to_string();

    let mut rules = Vec::new();
    let mut limits = Vec::new();
    let mut caps = Vec::new();
    let mut moderation = Vec::new();
    for p in policies {
        let file_monitor = p.file.mode == Some(ModeSection::Monitor);
        let mode = |m: ModeSection| {
            if file_monitor || m == ModeSection::Monitor {
                Mode::Monitor
            } else {
                Mode::Enforce
            }
        };
        for r in &p.file.rules {
            rules.push(Rule {
                id: Arc::from(r.id.as_str()),
                condition: condition(&r.matches, &lists),
                effect: match r.action {
                    RuleAction::Allow => Effect::Decide(Action::Allow),
                    RuleAction::Block => Effect::Decide(Action::Block),
                    RuleAction::Throttle => Effect::Decide(Action::Throttle),
                    RuleAction::Tarpit => Effect::Decide(Action::Tarpit),
                    RuleAction::Strike => Effect::Strike,
                    RuleAction::Log => Effect::Log,
                },
                mode: mode(r.mode),
                retry_after: r.retry_after.map_or(DEFAULT_RETRY_AFTER_SECS, |d| {
                    d.0.as_secs().clamp(1, u32::MAX as u64) as u32
                }),
                delay: r.delay.map_or(DEFAULT_TARPIT, |d| d.0),
                body: r.body.as_deref().map(Arc::from),
            });
        }
        if let Some(m) = &p.file.moderation {
            let previous = previous.map_or(&[][..], |p| p.moderation.as_slice());
            super::moderation::compile(m, file_monitor, previous, &mut moderation);
        }
        for c in &p.file.concurrency {
            let mut cap = Cap {
                id: Arc::from(c.id.as_str()),
                key: c.key.0.clone(),
                max: c.max,
                action: limit_action(c.action),
                mode: mode(c.mode),
                condition: c.matches.as_ref().map(|m| condition(m, &lists)),
                counter: Arc::new(Inflight::new()),
            };
            if let Some(prev) = previous.and_then(|p| p.caps.iter().find(|o| cap.same_counter(o))) {
                cap.counter = prev.counter.clone();
            }
            caps.push(cap);
        }
        for l in &p.file.limits {
            let mut limit = Limit {
                id: Arc::from(l.id.as_str()),
                key: l.key.0.clone(),
                requests: l.requests,
                window: l.per.0,
                action: limit_action(l.action),
                mode: mode(l.mode),
                condition: l.matches.as_ref().map(|m| condition(m, &lists)),
                counter: Arc::new(Rate::new(l.per.0)),
            };
            if let Some(prev) = previous.and_then(|p| p.limits.iter().find(|o| limit.same_counter(o))) {
                limit.counter = prev.counter.clone();
            }
            limits.push(limit);
        }
    }
    let bans = policies
        .iter()
        .find_map(|p| p.file.offenders.as_ref())
        .map(|o| BanPolicy {
            strikes: o.strikes,
            window: o.window.0,
            ban_for: o.ban_for.0,
            throttle_at: o.throttle_at,
            escalation: o.escalation,
            max_ban: o.max_ban.map_or(DEFAULT_MAX_BAN, |d| d.0),
            permanent_after: o.permanent_after,
            remember: o.remember.map_or(DEFAULT_REMEMBER, |d| d.0),
            identity: o.identity.as_ref().map(|k| k.0.clone()),
        });
    PolicySet {
        waf: policies
            .iter()
            .find_map(|p| p.file.waf.as_ref())
            .map(|w| std::sync::Arc::new(super::waf::compile(w))),
        index: RuleIndex::new(&rules),
        rules,
        limits,
        caps,
        bans,
        moderation,
        hash,
        sources: policies.iter().map(|p| p.path.display().to_string()).collect(),
    }
}

fn limit_action(a: file::LimitAction) -> Action {
    match a {
        file::LimitAction::Throttle => Action::Throttle,
        file::LimitAction::Block => Action::Block,
    }
}

fn condition(m: &file::MatchSection, lists: &HashMap<&str, Vec<IpNet>>) -> Condition {
    let mut tests = Vec::new();
    if !m.methods.is_empty() {
        tests.push(Test::Methods(m.methods.clone()));
    }
    if !m.routes.is_empty() {
        tests.push(Test::Routes(m.routes.iter().map(|r| Arc::from(r.as_str())).collect()));
    }
    if !m.hosts.is_empty() {
        tests.push(Test::Hosts(m.hosts.iter().map(|h| HostPattern::new(h)).collect()));
    }
    if !m.path.is_empty() {
        tests.push(Test::PathExact(m.path.clone()));
    }
    if !m.path_prefix.is_empty() {
        tests.push(Test::PathPrefix(m.path_prefix.clone()));
    }
    if let Some(n) = m.body_over {
        tests.push(Test::BodyOver(n.0));
    }
    if !m.content_type.is_empty() {
        tests.push(Test::ContentType(
            m.content_type.iter().map(|t| t.to_ascii_lowercase()).collect(),
        ));
    }
    if !m.ip.is_empty() || !m.ip_lists.is_empty() {
        // A rule naming only empty lists matches nobody, not everybody.
        let mut nets: Vec<IpNet> = m.ip.iter().map(|c| c.0).collect();
        for name in &m.ip_lists {
            nets.extend(lists.get(name.as_str()).into_iter().flatten().copied());
        }
        tests.push(Test::Ip(IpSet::new(nets)));
    }
    for (name, vm) in &m.headers {
        if let Some(h) = crate::key::header_name(name) {
            tests.push(Test::Header(h, value_test(vm)));
        }
    }
    if let Some(vm) = &m.user_agent {
        tests.push(Test::Header(http::header::USER_AGENT, value_test(vm)));
    }
    for (name, vm) in &m.query {
        tests.push(Test::Query(name.clone(), value_test(vm)));
    }
    if !m.path_glob.is_empty() {
        tests.push(Test::PathGlob(m.path_glob.iter().map(|g| Glob::new(g)).collect()));
    }
    if !m.path_regex.is_empty() {
        tests.push(Test::PathRegex(regex_set(&m.path_regex)));
    }
    if !m.all.is_empty() {
        tests.push(Test::All(m.all.iter().map(|n| condition(n, lists)).collect()));
    }
    if !m.any.is_empty() {
        tests.push(Test::Any(m.any.iter().map(|n| condition(n, lists)).collect()));
    }
    if let Some(n) = &m.not {
        tests.push(Test::Not(Box::new(condition(n, lists))));
    }
    Condition::new(tests)
}

pub(crate) fn value_test(vm: &ValueMatch) -> ValueTest {
    // Validation guarantees exactly one is set.
    if let Some(s) = &vm.equals {
        ValueTest::Equals(s.clone())
    } else if let Some(s) = &vm.prefix {
        ValueTest::Prefix(s.clone())
    } else if let Some(s) = &vm.contains {
        match AhoCorasick::builder().ascii_case_insensitive(true).build([s]) {
            Ok(ac) => ValueTest::Contains { needle: s.clone(), ac },
            Err(e) => {
                log::error!("cannot build the matcher for {s:?}: {e}");
                ValueTest::Regex(regex::RegexSet::empty())
            }
        }
    } else if let Some(re) = &vm.regex {
        ValueTest::Regex(regex_set([re]))
    } else if vm.absent.is_some() {
        ValueTest::Absent
    } else {
        ValueTest::Present
    }
}
