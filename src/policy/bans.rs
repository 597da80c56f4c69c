//! The compiled `offenders:` section: when strikes earn probation and bans, and how bans grow.
//! Read by the offender state in `enforce::offenders`.

use std::time::Duration;

use crate::key::ActorKey;

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

#[derive(Debug, Clone, PartialEq)]
pub struct BanPolicy {
    /// Strikes (decayed) that earn a ban.
    pub strikes: u32,
    /// Time constant of the decay: a strike weighs 1 now, about 0.37 one window later. The
    /// decayed sum is rounded before it is compared with the thresholds.
    pub window: Duration,
    pub ban_for: Duration,
    /// Strikes that put the actor on probation: every request throttled for one window.
    pub throttle_at: Option<u32>,
    /// Each further ban lasts this many times longer than the previous one.
    pub escalation: u32,
    pub max_ban: Duration,
    /// The ban that becomes permanent (e.g. 4: the fourth ban never ends).
    pub permanent_after: Option<u32>,
    /// How long a past ban counts toward escalation after it ended.
    pub remember: Duration,
    /// A second actor besides the client IP, e.g. `header:x-account-id`.
    pub identity: Option<ActorKey>,
}

impl BanPolicy {
    /// Length of the `n`th ban (1-based); `None` for permanent.
    pub fn ban_length(&self, n: u32) -> Option<Duration> {
        if self.permanent_after.is_some_and(|p| n >= p) {
            return None;
        }
        let factor = (self.escalation.max(1) as u64).saturating_pow(n.saturating_sub(1));
        let len = ms(self.ban_for).saturating_mul(factor).min(ms(self.max_ban));
        Some(Duration::from_millis(len))
    }
}
