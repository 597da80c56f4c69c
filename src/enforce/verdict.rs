//! The outcome of evaluating a request against the policy (request_filter), and the words
//! telemetry and metrics use for it.

use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
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

/// What the policy decided and why. A monitor-mode match is carried as a `Verdict` whose
/// `mode` is `Monitor`: the request goes on, telemetry records `would_block`/`would_throttle`.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub action: Action,
    pub mode: Mode,
    /// The rule or limit that decided; `None` for the default allow.
    pub rule: Option<Arc<str>>,
    /// Seconds to announce in `Retry-After` for throttles.
    pub retry_after: Option<u32>,
    /// What matched, for explanations: the CIDR, or the limit key kind.
    pub matched: Option<Arc<str>>,
    /// The counter value that tripped a limit.
    pub counter: Option<i64>,
    /// Non-deciding rules that matched on the way (`log`, `strike`), in order.
    pub also: Vec<Arc<str>>,
    /// Strikes the `strike` rules add against the client.
    pub strikes: u32,
    /// How long a tarpit holds the request.
    pub tarpit: Option<std::time::Duration>,
    /// Body of the answer, when the rule sets one.
    pub body: Option<Arc<str>>,
    /// The first enforcing `strike` rule that matched, blamed for the strikes.
    pub struck_by: Option<Arc<str>>,
}

impl Verdict {
    pub const fn allow() -> Self {
        Verdict {
            action: Action::Allow,
            mode: Mode::Enforce,
            rule: None,
            retry_after: None,
            matched: None,
            counter: None,
            also: Vec::new(),
            strikes: 0,
            tarpit: None,
            body: None,
            struck_by: None,
        }
    }

    /// True when the verdict comes from a standing penalty (ban or probation), not the policy.
    pub fn is_penalty(&self) -> bool {
        self.rule
            .as_deref()
            .is_some_and(|r| r == super::offenders::BAN_RULE_ID || r == super::offenders::THROTTLE_RULE_ID)
    }

    /// True when the request must be answered by Palisade instead of the upstream.
    pub fn enforced(&self) -> bool {
        self.mode == Mode::Enforce && self.action != Action::Allow
    }

    /// True when an enforcing `allow` rule let the request through: nothing else applies.
    pub fn allowed_by_rule(&self) -> bool {
        self.action == Action::Allow && self.mode == Mode::Enforce && self.rule.is_some()
    }

    /// The decision word of telemetry and of the `decision` metric label.
    pub fn label(&self) -> &'static str {
        match (self.action, self.mode) {
            (Action::Allow, _) => "allow",
            (Action::Block, Mode::Enforce) => "block",
            (Action::Throttle, Mode::Enforce) => "throttle",
            (Action::Tarpit, Mode::Enforce) => "tarpit",
            (Action::Block, Mode::Monitor) => "would_block",
            (Action::Throttle, Mode::Monitor) => "would_throttle",
            (Action::Tarpit, Mode::Monitor) => "would_tarpit",
        }
    }

    /// HTTP status an enforced verdict answers with.
    pub fn status(&self) -> u16 {
        match self.action {
            Action::Allow => 200,
            Action::Block => 403,
            Action::Throttle | Action::Tarpit => 429,
        }
    }
}
