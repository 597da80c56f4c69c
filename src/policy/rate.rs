//! Request-rate limits on pingora-limits `Rate` counters (request_filter).
//!
//! `Rate` is a count-min sketch over fixed windows: it never under-counts, and with many more
//! active keys than slots it can over-count, so a client may be throttled a little early
//! under very high key cardinality. Windows are aligned per limit, not per client.

use std::sync::Arc;
use std::time::Duration;

use pingora_limits::rate::Rate;

use super::rules::Condition;
use crate::key::{ActorKey, Keyed};
use crate::stage::verdict::{Action, Decision, Mode, Source, Verdict};
use crate::stage::RequestFacts;

pub struct Limit {
    pub id: Arc<str>,
    pub key: ActorKey,
    pub requests: u32,
    pub window: Duration,
    pub action: Action,
    pub mode: Mode,
    /// Requests it counts; all when `None`.
    pub condition: Option<Condition>,
    /// Shared with the previous policy when key and window are unchanged, so a reload does
    /// not hand every client a fresh allowance.
    pub counter: Arc<Rate>,
}

impl Limit {
    /// True when a counter built for `other` can carry over to this limit.
    pub fn same_counter(&self, other: &Limit) -> bool {
        self.id == other.id && self.key == other.key && self.window == other.window
    }

    pub fn applies(&self, f: &RequestFacts<'_>) -> bool {
        self.condition.as_ref().is_none_or(|c| c.matches(f))
    }

    /// Count this request; a verdict when the count passes the limit.
    pub fn observe(&self, f: &RequestFacts<'_>) -> Option<Verdict> {
        let count = self.counter.observe(
            &Keyed {
                key: &self.key,
                facts: f,
            },
            1,
        );
        self.verdict(count)
    }

    /// The verdict for a request counted `count`th in its window (`None`: within the limit).
    /// Offline replay counts with its own clock and asks here.
    pub fn verdict(&self, count: isize) -> Option<Verdict> {
        if count <= self.requests as isize {
            return None;
        }
        let secs = self.window.as_secs_f64().ceil().max(1.0) as u32;
        Some(
            Decision {
                action: self.action,
                mode: self.mode,
                source: Source::Policy(self.id.clone()),
                retry_after: (self.action == Action::Throttle).then_some(secs),
                matched: Some(self.key.to_string().into()),
                counter: Some(count as i64),
                ..Decision::default()
            }
            .into(),
        )
    }
}
