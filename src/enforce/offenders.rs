//! Repeat offenders: every enforced block or throttle is a strike against the client; enough
//! strikes inside the window earn a ban, and a banned client is refused before any rule or
//! limit runs (request_filter). State outlives reloads; it is per process.
//!
//! Reads are lock-free (`ArcSwap` of an immutable map); adding or sweeping bans copies the map
//! under a mutex that only violators and the sweeper take. Strikes are counted in a
//! pingora-limits `Rate` (count-min sketch: it may over-count under very many keys, never under).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use pingora_limits::rate::Rate;

use crate::metrics::METRICS;

/// The rule id reported for requests refused because their client is banned.
pub const BAN_RULE_ID: &str = "repeat-offender-ban";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanPolicy {
    /// Strikes inside `window` that earn a ban.
    pub strikes: u32,
    pub window: Duration,
    pub ban_for: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ban {
    pub until: Instant,
    pub first_seen: Instant,
    /// The rule whose violation earned the ban.
    pub rule: Arc<str>,
    pub strikes: i64,
}

pub struct Offenders {
    bans: ArcSwap<HashMap<IpAddr, Ban>>,
    writer: Mutex<()>,
    strikes: Rate,
    window: Duration,
}

impl Offenders {
    pub fn new(window: Duration) -> Self {
        Offenders {
            bans: ArcSwap::from_pointee(HashMap::new()),
            writer: Mutex::new(()),
            strikes: Rate::new(window),
            window,
        }
    }

    /// For a new policy: this tracker if its strike window is unchanged, else a fresh one that
    /// keeps the current bans.
    pub fn carry_over(self: &Arc<Self>, window: Duration) -> Arc<Self> {
        if window == self.window {
            return self.clone();
        }
        let next = Offenders::new(window);
        next.bans.store(self.bans.load_full());
        Arc::new(next)
    }

    /// The live ban of `ip`, if any.
    pub fn banned(&self, ip: IpAddr, now: Instant) -> Option<Ban> {
        let bans = self.bans.load();
        if bans.is_empty() {
            return None;
        }
        bans.get(&ip).filter(|b| b.until > now).cloned()
    }

    /// Count a violation; returns the ban when this strike earns one.
    pub fn strike(&self, ip: IpAddr, rule: &Arc<str>, policy: &BanPolicy, n: isize, now: Instant) -> Option<Ban> {
        let count = self.strikes.observe(&ip, n);
        if count < policy.strikes as isize {
            return None;
        }
        let ban = Ban {
            until: now + policy.ban_for,
            first_seen: now,
            rule: rule.clone(),
            strikes: count as i64,
        };
        self.update(|m| {
            let first_seen = m.get(&ip).map_or(now, |b| b.first_seen);
            m.insert(ip, Ban { first_seen, ..ban.clone() });
        });
        Some(ban)
    }

    /// Ban `ip` by hand (operators); `None` duration lifts a ban.
    pub fn set(&self, ip: IpAddr, ban_for: Option<Duration>, reason: &str, now: Instant) {
        self.update(|m| match ban_for {
            Some(d) => {
                m.insert(ip, Ban { until: now + d, first_seen: now, rule: Arc::from(reason), strikes: 0 });
            }
            None => {
                m.remove(&ip);
            }
        });
    }

    /// Drop expired bans and publish the count.
    pub fn sweep(&self, now: Instant) {
        if self.bans.load().values().any(|b| b.until <= now) {
            self.update(|m| m.retain(|_, b| b.until > now));
        }
        METRICS.active_bans.set(self.bans.load().len() as i64);
    }

    pub fn list(&self) -> Vec<(IpAddr, Ban)> {
        self.bans.load().iter().map(|(ip, b)| (*ip, b.clone())).collect()
    }

    fn update(&self, f: impl FnOnce(&mut HashMap<IpAddr, Ban>)) {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::clone(&self.bans.load());
        f(&mut next);
        METRICS.active_bans.set(next.len() as i64);
        self.bans.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strikes_earn_a_ban_that_expires() {
        let policy = BanPolicy { strikes: 3, window: Duration::from_secs(60), ban_for: Duration::from_secs(600) };
        let o = Offenders::new(policy.window);
        let ip: IpAddr = "198.51.100.4".parse().expect("ip");
        let rule: Arc<str> = Arc::from("r");
        let t0 = Instant::now();
        assert!(o.strike(ip, &rule, &policy, 1, t0).is_none());
        assert!(o.strike(ip, &rule, &policy, 1, t0).is_none());
        assert!(o.banned(ip, t0).is_none());
        let ban = o.strike(ip, &rule, &policy, 1, t0).expect("third strike bans");
        assert_eq!(ban.until, t0 + policy.ban_for);
        assert!(o.banned(ip, t0 + Duration::from_secs(599)).is_some());
        assert!(o.banned("198.51.100.5".parse().expect("ip"), t0).is_none());
        // Injected clock: past the ban, the client is let in again and the sweep forgets it.
        let later = t0 + Duration::from_secs(601);
        assert!(o.banned(ip, later).is_none());
        o.sweep(later);
        assert!(o.list().is_empty());
    }

    #[test]
    fn bans_survive_a_window_change() {
        let o = Arc::new(Offenders::new(Duration::from_secs(60)));
        let ip: IpAddr = "2001:db8::9".parse().expect("ip");
        let now = Instant::now();
        o.set(ip, Some(Duration::from_secs(10)), "manual", now);
        let same = o.carry_over(Duration::from_secs(60));
        assert!(Arc::ptr_eq(&o, &same));
        let other = o.carry_over(Duration::from_secs(30));
        assert!(other.banned(ip, now).is_some());
        other.set(ip, None, "", now);
        assert!(other.banned(ip, now).is_none());
    }
}
