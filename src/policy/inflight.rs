//! Concurrency caps: requests in flight at once per key (live streams, WebSockets), counted with
//! pingora-limits `Inflight` (request_filter). The guard a request holds gives its slot back
//! when the request ends, however it ends.

use std::sync::Arc;

use pingora_limits::inflight::{Guard, Inflight};

use super::rules::Condition;
use crate::key::{ActorKey, Keyed};
use crate::stage::verdict::{Action, Decision, Mode, Source, Verdict};
use crate::stage::RequestFacts;

pub struct Cap {
    pub id: Arc<str>,
    pub key: ActorKey,
    pub max: u32,
    pub action: Action,
    pub mode: Mode,
    pub condition: Option<Condition>,
    /// Shared with the previous policy while the cap's key is unchanged, so requests in flight
    /// across a reload stay counted.
    pub counter: Arc<Inflight>,
}

impl Cap {
    pub fn same_counter(&self, other: &Cap) -> bool {
        self.id == other.id && self.key == other.key
    }
}

/// Slots a request holds until it ends.
#[derive(Default)]
pub struct Slots(Vec<Guard>);

impl Slots {
    pub fn held(&self) -> usize {
        self.0.len()
    }
}

/// Take a slot in every cap that applies. The first cap already full (enforcing) refuses the
/// request and every slot taken so far is given back; monitor-mode caps only report.
pub fn acquire(caps: &[Cap], f: &RequestFacts<'_>) -> (Slots, Option<Verdict>) {
    let mut slots = Slots::default();
    let mut observed = None;
    for cap in caps {
        if cap.condition.as_ref().is_some_and(|c| !c.matches(f)) {
            continue;
        }
        let (guard, count) = cap.counter.incr(
            Keyed {
                key: &cap.key,
                facts: f,
            },
            1,
        );
        if count <= cap.max as isize {
            slots.0.push(guard);
            continue;
        }
        drop(guard);
        let v: Verdict = Decision {
            action: cap.action,
            mode: cap.mode,
            source: Source::Policy(cap.id.clone()),
            retry_after: (cap.action == Action::Throttle).then_some(1),
            matched: Some(cap.key.to_string().into()),
            counter: Some(count as i64),
            ..Decision::default()
        }
        .into();
        if v.decision.mode == Mode::Enforce {
            return (Slots::default(), Some(v));
        }
        observed.get_or_insert(v);
    }
    (slots, observed)
}
