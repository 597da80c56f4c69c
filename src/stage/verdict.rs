//! What the security stages decide about a request (request_filter onwards), split into the
//! decision the proxy core acts on and the observations telemetry and offender state record.
//! Every word a decision is written as comes from a `label()` here; nothing compares strings.

use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    #[default]
    Allow,
    Block,
    Throttle,
    /// Hold the request, then answer as a throttle.
    Tarpit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    #[default]
    Enforce,
    /// Evaluated and recorded, never enforced.
    Monitor,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }
}

/// Who decided. Policy entries carry their id; standing penalties are the offender stage's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// Nothing decided: the default allow.
    #[default]
    Default,
    /// A rule, limit, cap or other policy entry, by its id.
    Policy(Arc<str>),
    /// A standing ban of the client or its identity.
    Ban,
    /// Probation: every request throttled until the strikes age out.
    Probation,
}

/// Rule id of a standing ban, as telemetry and metrics name it.
pub const BAN_RULE_ID: &str = "repeat-offender-ban";
/// Rule id of probation, as telemetry and metrics name it.
pub const THROTTLE_RULE_ID: &str = "repeat-offender-throttle";
/// The two ids above, allocated once: a banned actor's request allocates nothing for them.
pub static BAN_RULE: once_cell::sync::Lazy<Arc<str>> = once_cell::sync::Lazy::new(|| Arc::from(BAN_RULE_ID));
pub static THROTTLE_RULE: once_cell::sync::Lazy<Arc<str>> = once_cell::sync::Lazy::new(|| Arc::from(THROTTLE_RULE_ID));

impl Source {
    /// The id telemetry writes as `rule`; `None` for the default allow.
    pub fn id(&self) -> Option<&Arc<str>> {
        match self {
            Source::Default => None,
            Source::Policy(id) => Some(id),
            Source::Ban => Some(&BAN_RULE),
            Source::Probation => Some(&THROTTLE_RULE),
        }
    }

    /// The kind of source, a bounded word for metric labels and docs.
    pub fn label(&self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Policy(_) => "policy",
            Source::Ban => "ban",
            Source::Probation => "probation",
        }
    }
}

/// The decision the proxy core acts on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    pub action: Action,
    pub mode: Mode,
    pub source: Source,
    /// Seconds to announce in `Retry-After` for throttles.
    pub retry_after: Option<u32>,
    /// What matched, for explanations: the CIDR, or the limit key kind.
    pub matched: Option<Arc<str>>,
    /// The counter value that tripped a limit.
    pub counter: Option<i64>,
    /// How long a tarpit holds the request.
    pub tarpit: Option<Duration>,
    /// Body of the answer, when the rule sets one.
    pub body: Option<Arc<str>>,
}

/// What the stages noticed on the way without deciding.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observations {
    /// Non-deciding rules that matched on the way (`log`, `strike`), in order.
    pub also: Vec<Arc<str>>,
    /// Strikes the `strike` rules add against the client.
    pub strikes: u32,
    /// The first enforcing `strike` rule that matched, blamed for the strikes.
    pub struck_by: Option<Arc<str>>,
}

impl Observations {
    /// Add `other`'s observations after these.
    pub fn absorb(&mut self, other: Observations) {
        if self.also.is_empty() {
            self.also = other.also;
        } else {
            self.also.extend(other.also);
        }
        self.strikes += other.strikes;
        if self.struck_by.is_none() {
            self.struck_by = other.struck_by;
        }
    }
}

/// A decision and its observations. A monitor-mode match is a `Verdict` whose mode is
/// `Monitor`: the request goes on, telemetry records `would_block`/`would_throttle`.
#[must_use]
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    pub decision: Decision,
    pub observed: Observations,
}

impl From<Decision> for Verdict {
    fn from(decision: Decision) -> Verdict {
        Verdict {
            decision,
            observed: Observations::default(),
        }
    }
}

impl Verdict {
    pub const fn allow() -> Self {
        Verdict {
            decision: Decision {
                action: Action::Allow,
                mode: Mode::Enforce,
                source: Source::Default,
                retry_after: None,
                matched: None,
                counter: None,
                tarpit: None,
                body: None,
            },
            observed: Observations {
                also: Vec::new(),
                strikes: 0,
                struck_by: None,
            },
        }
    }

    /// The id of what decided (rule, limit, cap, or a penalty's rule id).
    pub fn rule(&self) -> Option<&str> {
        self.decision.source.id().map(|r| &**r)
    }

    /// True when the verdict comes from a standing penalty (ban or probation), not the policy.
    pub fn is_penalty(&self) -> bool {
        matches!(self.decision.source, Source::Ban | Source::Probation)
    }

    /// True when the request must be answered by Palisade instead of the upstream.
    pub fn enforced(&self) -> bool {
        self.decision.mode == Mode::Enforce && self.decision.action != Action::Allow
    }

    /// True when nothing was found against the request, not even in monitor mode.
    pub fn is_allow(&self) -> bool {
        self.decision.action == Action::Allow
    }

    /// True when an enforcing `allow` rule let the request through: nothing else applies.
    pub fn allowed_by_rule(&self) -> bool {
        self.decision.action == Action::Allow
            && self.decision.mode == Mode::Enforce
            && self.decision.source != Source::Default
    }

    /// True once no later stage may change the decision: an enforced refusal, or an `allow` rule.
    pub fn settled(&self) -> bool {
        self.enforced() || self.allowed_by_rule()
    }

    /// Take `next` from a later stage. An enforced decision wins over anything but an earlier
    /// enforced one; a monitor-mode one is kept only while no rule has spoken yet. Observations
    /// always add up.
    pub fn merge(&mut self, next: Verdict) {
        let Verdict { decision, observed } = next;
        self.observed.absorb(observed);
        if self.settled() {
            return;
        }
        let take = match decision.mode {
            Mode::Enforce => decision.source != Source::Default,
            Mode::Monitor => decision.action != Action::Allow && self.decision.source == Source::Default,
        };
        if take {
            self.decision = decision;
        }
    }

    /// True when both verdicts would be written as the same decision word.
    pub fn same_outcome(&self, other: &Verdict) -> bool {
        let norm = |v: &Verdict| match v.decision.action {
            Action::Allow => (Action::Allow, Mode::Enforce),
            a => (a, v.decision.mode),
        };
        norm(self) == norm(other)
    }

    /// The decision word of telemetry and of the `decision` metric label.
    pub fn label(&self) -> &'static str {
        match (self.decision.action, self.decision.mode) {
            (Action::Allow, _) => "allow",
            (Action::Block, Mode::Enforce) => "block",
            (Action::Throttle, Mode::Enforce) => "throttle",
            (Action::Tarpit, Mode::Enforce) => "tarpit",
            (Action::Block, Mode::Monitor) => "would_block",
            (Action::Throttle, Mode::Monitor) => "would_throttle",
            (Action::Tarpit, Mode::Monitor) => "would_tarpit",
        }
    }

    /// The action and mode a decision word names (`label`'s inverse), for recorded events.
    pub fn parse_label(word: &str) -> Option<(Action, Mode)> {
        Some(match word {
            "allow" => (Action::Allow, Mode::Enforce),
            "block" => (Action::Block, Mode::Enforce),
            "throttle" => (Action::Throttle, Mode::Enforce),
            "tarpit" => (Action::Tarpit, Mode::Enforce),
            "would_block" => (Action::Block, Mode::Monitor),
            "would_throttle" => (Action::Throttle, Mode::Monitor),
            "would_tarpit" => (Action::Tarpit, Mode::Monitor),
            _ => return None,
        })
    }

    /// HTTP status an enforced verdict answers with.
    pub fn status(&self) -> u16 {
        match self.decision.action {
            Action::Allow => 200,
            Action::Block => 403,
            Action::Throttle | Action::Tarpit => 429,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(id: &str, action: Action, mode: Mode) -> Verdict {
        Decision {
            action,
            mode,
            source: Source::Policy(id.into()),
            ..Decision::default()
        }
        .into()
    }

    #[test]
    fn enforced_wins_and_monitor_is_kept_only_while_nothing_spoke() {
        let mut v = Verdict::allow();
        v.merge(policy("watch", Action::Block, Mode::Monitor));
        v.merge(policy("watch2", Action::Throttle, Mode::Monitor));
        assert_eq!((v.label(), v.rule()), ("would_block", Some("watch")));
        v.merge(policy("cap", Action::Block, Mode::Enforce));
        assert_eq!((v.label(), v.rule()), ("block", Some("cap")));
        v.merge(policy("later", Action::Throttle, Mode::Enforce));
        assert_eq!(v.rule(), Some("cap"), "the first enforced decision stands");
    }

    #[test]
    fn observations_add_up_whoever_decides() {
        let mut v = Verdict::allow();
        let mut o = policy("a", Action::Allow, Mode::Enforce);
        o.observed = Observations {
            also: vec!["log".into()],
            strikes: 1,
            struck_by: Some("s1".into()),
        };
        v.merge(o);
        assert!(v.allowed_by_rule() && v.settled());
        let mut o = Verdict::allow();
        o.observed.strikes = 2;
        o.observed.struck_by = Some("s2".into());
        v.merge(o);
        assert_eq!((v.observed.strikes, v.observed.struck_by.as_deref()), (3, Some("s1")));
    }

    #[test]
    fn penalties_are_told_by_source_not_by_name() {
        let ban: Verdict = Decision {
            action: Action::Block,
            source: Source::Ban,
            ..Decision::default()
        }
        .into();
        assert!(ban.is_penalty());
        assert_eq!(ban.rule(), Some(BAN_RULE_ID));
        // A policy entry that happens to use the same id is still policy.
        assert!(!policy(BAN_RULE_ID, Action::Block, Mode::Enforce).is_penalty());
    }
}
