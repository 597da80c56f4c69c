//! Today's enforcement as security stages (request_filter, `on_request_head`), in the order
//! `crate::stages` lists them: standing penalties, rules, rate limits, concurrency caps,
//! strikes, and the shadow policy. Each is a thin adapter over the pure steps in `enforce`,
//! which `decide` composes the same way for offline replay.

use std::sync::Arc;

use super::offenders::Offenders;
use super::{check_penalty, evaluate, evaluate_limits, evaluate_rules, record_strikes, take_slots};
use crate::metrics::METRICS;
use crate::policy::PolicySet;
use crate::stage::{Ledger, Millis, RequestFacts, Stage, Step};

/// A banned actor, or one on probation, is answered before any rule runs.
pub struct Penalties {
    pub policy: Arc<PolicySet>,
    pub offenders: Arc<Offenders>,
}

impl Stage for Penalties {
    fn name(&self) -> &'static str {
        "penalties"
    }

    fn on_request_head(&self, facts: &RequestFacts<'_>, _ledger: &mut Ledger, now: Millis) -> Step {
        match check_penalty(&self.policy, &self.offenders, facts, now) {
            Some(v) => Step::Verdict(v),
            None => Step::Pass,
        }
    }
}

/// The policy's rules (and the lists they name), in order.
pub struct Rules {
    pub policy: Arc<PolicySet>,
}

impl Stage for Rules {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn on_request_head(&self, facts: &RequestFacts<'_>, ledger: &mut Ledger, _now: Millis) -> Step {
        if ledger.verdict.settled() || self.policy.rules.is_empty() {
            return Step::Pass;
        }
        Step::Verdict(evaluate_rules(&self.policy, facts))
    }
}

/// Rate limits count every request no rule settled.
pub struct Limits {
    pub policy: Arc<PolicySet>,
}

impl Stage for Limits {
    fn name(&self) -> &'static str {
        "limits"
    }

    fn on_request_head(&self, facts: &RequestFacts<'_>, ledger: &mut Ledger, _now: Millis) -> Step {
        if ledger.verdict.settled() {
            return Step::Pass;
        }
        match evaluate_limits(&self.policy, facts, |limit, f| limit.observe(f)) {
            Some(v) => Step::Verdict(v),
            None => Step::Pass,
        }
    }
}

/// Concurrency caps: the slots taken are held in the ledger until the request ends.
pub struct Caps {
    pub policy: Arc<PolicySet>,
}

impl Stage for Caps {
    fn name(&self) -> &'static str {
        "caps"
    }

    fn on_request_head(&self, facts: &RequestFacts<'_>, ledger: &mut Ledger, _now: Millis) -> Step {
        let (slots, refused) = take_slots(&self.policy, facts, &ledger.verdict);
        if slots.held() > 0 {
            ledger.hold(slots);
        }
        match refused {
            Some(v) => Step::Verdict(v),
            None => Step::Pass,
        }
    }
}

/// Refusals and `strike` rules count against the actor; enough of them earn probation, then
/// a ban (`offenders`).
pub struct Strikes {
    pub policy: Arc<PolicySet>,
    pub offenders: Arc<Offenders>,
}

impl Stage for Strikes {
    fn name(&self) -> &'static str {
        "strikes"
    }

    fn on_request_head(&self, facts: &RequestFacts<'_>, ledger: &mut Ledger, now: Millis) -> Step {
        record_strikes(&self.policy, &self.offenders, facts, &ledger.verdict, now);
        Step::Pass
    }
}

/// What a candidate policy would have decided, recorded beside the live decision. Its limits
/// count on their own counters; it never enforces and never strikes.
pub struct Shadow {
    pub policy: Arc<PolicySet>,
}

impl Stage for Shadow {
    fn name(&self) -> &'static str {
        "shadow"
    }

    fn on_request_head(&self, facts: &RequestFacts<'_>, ledger: &mut Ledger, _now: Millis) -> Step {
        if ledger.verdict.is_penalty() {
            return Step::Pass;
        }
        let sv = evaluate(&self.policy, facts);
        if !sv.same_outcome(&ledger.verdict) {
            METRICS
                .shadow_disagreements
                .with_label_values(&[ledger.verdict.label(), sv.label()])
                .inc();
        }
        ledger.shadow = Some(Box::new(sv));
        Step::Pass
    }
}
