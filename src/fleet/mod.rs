//! Fleet mode (background): several Palisade instances share bans and strikes through NATS
//! JetStream. Design notes in `docs/fleet.md`.
//!
//! - The decision points (strikes earning a ban, an operator's ban or unban, every strike)
//!   tell the `Outbox`, which only `try_send`s into bounded queues: the request path never
//!   waits for the bus, and what does not fit is dropped and counted.
//! - The `FleetSync` background service owns the NATS connection. Bans and unbans go to a
//!   JetStream key-value bucket, one key per actor, each value a `record::BanRecord` merged
//!   with the one already there (compare-and-set on the key's revision). Every instance
//!   watches the bucket, merges what it sees into its own view and applies it to its offender
//!   state. A new or restarted instance reads the whole bucket first.
//! - Strike deltas go on a plain subject; each instance adds the others' strikes to its own
//!   offender table, so strikes at several instances reach one threshold and every instance
//!   bans the actor at the same count.
//! - With the bus away, an instance keeps enforcing what it knows and queues its updates;
//!   when the bus returns it reads the bucket again and writes back whatever its own view
//!   wins under the merge rules (`record.rs`): a reconciliation.

pub mod metrics;
pub mod record;
pub mod status;
mod sync;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::fleet::FleetSection;
use crate::enforce::offenders::{Actor, Broadcast, Millis};
use record::{BanRecord, BanTerm};
pub use sync::FleetSync;

/// Strikes counted at one instance, as published to the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrikeDelta {
    pub origin: String,
    pub actors: Vec<Actor>,
    pub rule: String,
    pub n: u32,
    pub at: Millis,
}

/// The request path's side: hands decisions to the sync task without waiting.
pub struct Outbox {
    instance: String,
    bans: mpsc::Sender<BanRecord>,
    strikes: mpsc::Sender<StrikeDelta>,
    /// The time of the last ban or unban sent (`stamp`).
    last_at: AtomicU64,
}

impl Outbox {
    /// The time a ban or unban decided at `at` is recorded with: never earlier than the last
    /// one this instance sent, plus a millisecond. Records order by time and an unban wins a
    /// tie, so a ban given right after an unban, in the same millisecond, must come out later
    /// or the fleet would drop it.
    fn stamp(&self, at: Millis) -> Millis {
        let mut last = self.last_at.load(Ordering::Relaxed);
        loop {
            let next = at.max(last.saturating_add(1));
            match self
                .last_at
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    fn send_ban(&self, r: BanRecord) {
        if self.bans.try_send(r).is_err() {
            metrics::FLEET.dropped.with_label_values(&["ban_queue_full"]).inc();
        }
    }
}

impl Broadcast for Outbox {
    fn banned(&self, actor: &Actor, until: Option<Millis>, at: Millis, reason: &str) {
        self.send_ban(BanRecord::ban(
            actor.clone(),
            BanTerm {
                until,
                at: self.stamp(at),
                origin: self.instance.clone(),
                reason: reason.to_string(),
            },
        ));
    }

    fn unbanned(&self, actor: &Actor, at: Millis) {
        self.send_ban(BanRecord::unban(actor.clone(), self.stamp(at)));
    }

    fn struck(&self, actors: &[Actor], rule: &Arc<str>, n: u32, at: Millis) {
        let d = StrikeDelta {
            origin: self.instance.clone(),
            actors: actors.to_vec(),
            rule: rule.to_string(),
            n,
            at,
        };
        if self.strikes.try_send(d).is_err() {
            metrics::FLEET.dropped.with_label_values(&["strike_queue_full"]).inc();
        }
    }
}

/// The outbox the offender state tells, and the service that drains it.
pub fn start(cfg: &FleetSection, store: crate::state::Store) -> (Arc<Outbox>, FleetSync) {
    let (bans_tx, bans_rx) = mpsc::channel(cfg.queue);
    let (strikes_tx, strikes_rx) = mpsc::channel(cfg.queue);
    let outbox = Arc::new(Outbox {
        instance: cfg.instance.clone(),
        bans: bans_tx,
        strikes: strikes_tx,
        last_at: AtomicU64::new(0),
    });
    (outbox, FleetSync::new(cfg.clone(), store, bans_rx, strikes_rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_right_after_an_unban_outlives_it_in_the_merged_record() {
        let (bans, mut rx) = mpsc::channel(8);
        let (strikes, _strikes_rx) = mpsc::channel(8);
        let outbox = Outbox {
            instance: "a".into(),
            bans,
            strikes,
            last_at: AtomicU64::new(0),
        };
        let actor = Actor::Ip("192.0.2.3".parse().expect("ip"));
        // All three decided in the same millisecond, as an operator's quick clicks can be.
        outbox.banned(&actor, None, 5_000, "manual");
        outbox.unbanned(&actor, 5_000);
        outbox.banned(&actor, Some(6_000), 5_000, "manual");
        let mut merged = rx.try_recv().expect("ban");
        for _ in 0..2 {
            merged = record::merge(&merged, &rx.try_recv().expect("record"));
        }
        assert!(
            merged.active_ban(5_500).is_some(),
            "the last ban was dropped: {merged:?}"
        );
        assert!(merged.active_ban(6_500).is_none(), "and it still ends: {merged:?}");
    }
}
