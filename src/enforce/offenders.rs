//! Repeat offenders (request_filter): every enforced refusal, and every `strike` rule, adds
//! strikes to the actor — the client IP and, when configured, an identity such as an account
//! header. Strikes decay; past a threshold the actor is throttled, past a higher one banned, and
//! each further ban lasts longer (exponentially, up to a cap, optionally permanent). A banned
//! actor is refused before any rule runs, for the cost of one map lookup.
//!
//! Reads are lock-free (`ArcSwap` of an immutable map of penalties); only violations and the
//! sweeper take the mutexes. Times are wall-clock milliseconds so state can be saved to disk
//! and survive restarts and hot upgrades (see `persist.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::identity::{IdentityKey, Pseudonym};
use crate::metrics::METRICS;

pub use crate::stage::verdict::{BAN_RULE, BAN_RULE_ID, THROTTLE_RULE, THROTTLE_RULE_ID};
/// Rule ids remembered per penalty, most recent last.
const MAX_RULES_KEPT: usize = 8;

/// Wall-clock time in milliseconds since the Unix epoch.
pub type Millis = u64;

pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> Millis {
    d.as_millis().min(u64::MAX as u128) as u64
}

pub use crate::policy::bans::BanPolicy;

/// Who a penalty applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Ip(IpAddr),
    /// An identity (account header, session cookie), only ever as its keyed pseudonym: the
    /// value itself is a credential (identity.rs).
    Id(Pseudonym),
    /// A network, banned by an operator (never earned by strikes): every address in it.
    Net(#[serde(with = "net_text")] ipnet::IpNet),
}

/// A network as its CIDR text (`203.0.113.0/24`).
mod net_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &ipnet::IpNet, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(n)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ipnet::IpNet, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where the offender state tells the rest of a fleet what it decided (`crate::fleet`). Each
/// call must return at once: it runs on the request path.
pub trait Broadcast: Send + Sync {
    /// A ban was imposed here (earned by strikes or set by an operator).
    fn banned(&self, actor: &Actor, until: Option<Millis>, at: Millis, reason: &str);
    /// An operator lifted the actor's penalty here.
    fn unbanned(&self, actor: &Actor, at: Millis);
    /// Strikes counted here (not those received from the fleet).
    fn struck(&self, actors: &[Actor], rule: &Arc<str>, n: u32, at: Millis);
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Ip(ip) => write!(f, "{ip}"),
            Actor::Id(id) => write!(f, "id:{id}"),
            Actor::Net(net) => write!(f, "net:{net}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyKind {
    Throttle,
    Ban,
}

/// A ban or probation, kept after it ends for `remember` so the next one escalates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Penalty {
    pub kind: PenaltyKind,
    /// End of the penalty; `None` when permanent.
    pub until: Option<Millis>,
    pub first_seen: Millis,
    pub last_seen: Millis,
    /// Bans earned so far (escalation level).
    pub bans: u32,
    /// Strikes that earned the latest penalty.
    pub strikes: f64,
    /// Rules whose violations led here, most recent last.
    pub rules: Vec<Arc<str>>,
    pub reason: Arc<str>,
}

impl Penalty {
    pub fn active(&self, now: Millis) -> bool {
        self.until.is_none_or(|u| u > now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub value: f64,
    pub at: Millis,
}

impl Score {
    fn decayed(&self, now: Millis, window: Duration) -> f64 {
        let dt = now.saturating_sub(self.at) as f64;
        self.value * (-dt / ms(window).max(1) as f64).exp()
    }
}

pub struct Offenders {
    /// Turns identity values into the pseudonyms penalties are kept under.
    identities: IdentityKey,
    penalties: ArcSwap<HashMap<Actor, Arc<Penalty>>>,
    /// The `Actor::Net` entries of `penalties`, scanned on each check while any exist.
    nets: ArcSwap<Vec<(ipnet::IpNet, Arc<Penalty>)>>,
    /// Set once when the instance is part of a fleet.
    broadcast: std::sync::OnceLock<Arc<dyn Broadcast>>,
    scores: Mutex<HashMap<Actor, Score>>,
    writer: Mutex<()>,
    /// Set by every change; cleared by the state saver.
    dirty: AtomicBool,
}

impl Default for Offenders {
    fn default() -> Self {
        Self::new()
    }
}

impl Offenders {
    /// A tracker whose identity pseudonyms hold for this process only.
    pub fn new() -> Self {
        Self::with_identity_key(IdentityKey::ephemeral())
    }

    pub fn with_identity_key(identities: IdentityKey) -> Self {
        Offenders {
            identities,
            penalties: ArcSwap::from_pointee(HashMap::new()),
            nets: ArcSwap::from_pointee(Vec::new()),
            broadcast: std::sync::OnceLock::new(),
            scores: Mutex::new(HashMap::new()),
            writer: Mutex::new(()),
            dirty: AtomicBool::new(false),
        }
    }

    /// The pseudonym of an identity value, under this tracker's key. Call it as soon as the
    /// value is read; keep nothing of the value itself.
    pub fn pseudonym(&self, raw: &[u8]) -> Pseudonym {
        self.identities.pseudonym(raw)
    }

    /// Tell `b` of every ban, unban and strike decided here from now on. Only the first call
    /// counts (one fleet per process).
    pub fn set_broadcast(&self, b: Arc<dyn Broadcast>) {
        let _ = self.broadcast.set(b);
    }

    /// The active penalty of the client or its identity, if any; bans before probations.
    pub fn check(&self, ip: IpAddr, identity: Option<&Pseudonym>, now: Millis) -> Option<(Actor, Arc<Penalty>)> {
        let map = self.penalties.load();
        if map.is_empty() {
            return None;
        }
        let mut found: Option<(Actor, Arc<Penalty>)> = None;
        let by_ip = Actor::Ip(ip);
        let by_id = identity.map(|p| Actor::Id(*p));
        for actor in std::iter::once(by_ip).chain(by_id) {
            if let Some(p) = map.get(&actor).filter(|p| p.active(now)) {
                if found.as_ref().is_none_or(|(_, f)| f.kind == PenaltyKind::Throttle) {
                    found = Some((actor, p.clone()));
                }
            }
        }
        if found.as_ref().is_none_or(|(_, f)| f.kind == PenaltyKind::Throttle) {
            let nets = self.nets.load();
            if let Some((net, p)) = nets.iter().find(|(n, p)| p.active(now) && n.contains(&ip)) {
                found = Some((Actor::Net(*net), p.clone()));
            }
        }
        found
    }

    /// Add `n` strikes against the actors for `rule`. Returns the penalty this earns, if any.
    pub fn strike(
        &self,
        actors: &[Actor],
        rule: &Arc<str>,
        policy: &BanPolicy,
        n: u32,
        now: Millis,
    ) -> Option<(Actor, Penalty)> {
        if let Some(b) = self.broadcast.get() {
            b.struck(actors, rule, n, now);
        }
        self.count_strikes(actors, rule, policy, n, now)
    }

    /// Strikes another instance of the fleet counted at `at`: they add to ours toward the
    /// same thresholds, and are not told to the fleet again. A ban they earn is (every
    /// instance may earn it; the fleet's merge keeps one).
    pub fn strike_received(
        &self,
        actors: &[Actor],
        rule: &Arc<str>,
        policy: &BanPolicy,
        n: u32,
        at: Millis,
    ) -> Option<(Actor, Penalty)> {
        self.count_strikes(actors, rule, policy, n, at)
    }

    fn count_strikes(
        &self,
        actors: &[Actor],
        rule: &Arc<str>,
        policy: &BanPolicy,
        n: u32,
        now: Millis,
    ) -> Option<(Actor, Penalty)> {
        let mut earned = None;
        for actor in actors {
            let score = {
                let mut scores = self.scores.lock().unwrap_or_else(|e| e.into_inner());
                let s = scores.entry(actor.clone()).or_insert(Score { value: 0.0, at: now });
                s.value = s.decayed(now, policy.window) + n as f64;
                // Strikes from the fleet may arrive after later local ones.
                s.at = s.at.max(now);
                // Rounded, so strikes a few milliseconds apart count as whole ones.
                let v = s.value.round();
                if v >= policy.strikes as f64 {
                    // The ban spends the strikes; the next ban has to be earned again.
                    scores.remove(actor);
                }
                v
            };
            self.dirty.store(true, Ordering::Relaxed);
            let kind = if score >= policy.strikes as f64 {
                PenaltyKind::Ban
            } else if policy.throttle_at.is_some_and(|t| score >= t as f64) {
                PenaltyKind::Throttle
            } else {
                continue;
            };
            let mut result = None;
            self.update(|m| {
                let prev = m
                    .get(actor)
                    .filter(|p| p.until.is_none_or(|u| u.saturating_add(ms(policy.remember)) > now));
                if kind == PenaltyKind::Throttle && prev.is_some_and(|p| p.active(now)) {
                    return; // already throttled or banned
                }
                let bans = prev.map_or(0, |p| p.bans) + u32::from(kind == PenaltyKind::Ban);
                let until = match kind {
                    PenaltyKind::Throttle => Some(now.saturating_add(ms(policy.window))),
                    PenaltyKind::Ban => policy.ban_length(bans).map(|d| now.saturating_add(ms(d))),
                };
                let mut rules = prev.map(|p| p.rules.clone()).unwrap_or_default();
                if rules.last() != Some(rule) {
                    rules.push(rule.clone());
                }
                if rules.len() > MAX_RULES_KEPT {
                    rules.drain(..rules.len() - MAX_RULES_KEPT);
                }
                let p = Penalty {
                    kind,
                    until,
                    first_seen: prev.map_or(now, |p| p.first_seen),
                    last_seen: now,
                    bans,
                    strikes: score,
                    rules,
                    reason: format!("{score:.0} strikes, last by rule {rule}").into(),
                };
                m.insert(actor.clone(), Arc::new(p.clone()));
                result = Some((actor.clone(), p));
            });
            if let Some(r) = result {
                if let (Some(b), PenaltyKind::Ban) = (self.broadcast.get(), r.1.kind) {
                    b.banned(&r.0, r.1.until, now, &r.1.reason);
                }
                if earned
                    .as_ref()
                    .is_none_or(|(_, p): &(Actor, Penalty)| p.kind == PenaltyKind::Throttle)
                {
                    earned = Some(r);
                }
            }
        }
        earned
    }

    /// Ban an actor by hand for `ban_for` (`None`: permanently), or lift its penalty.
    pub fn set(&self, actor: Actor, ban: Option<Option<Duration>>, reason: &str, now: Millis) {
        if let Some(b) = self.broadcast.get() {
            match ban {
                Some(len) => b.banned(&actor, len.map(|d| now.saturating_add(ms(d))), now, reason),
                None => b.unbanned(&actor, now),
            }
        }
        if ban.is_none() {
            // Lifting a ban forgives the strikes too.
            self.scores.lock().unwrap_or_else(|e| e.into_inner()).remove(&actor);
        }
        self.update(|m| match ban {
            Some(len) => {
                let prev = m.get(&actor);
                let p = Penalty {
                    kind: PenaltyKind::Ban,
                    until: len.map(|d| now.saturating_add(ms(d))),
                    first_seen: prev.map_or(now, |p| p.first_seen),
                    last_seen: now,
                    bans: prev.map_or(0, |p| p.bans) + 1,
                    strikes: 0.0,
                    rules: vec![Arc::from("admin")],
                    reason: reason.into(),
                };
                m.insert(actor, Arc::new(p));
            }
            None => {
                m.remove(&actor);
            }
        });
    }

    /// A ban the fleet holds (decided at `at`, elsewhere or here): imposed unless this actor
    /// already has a ban that lasts at least as long. Not told to the fleet again. True when
    /// it changed anything.
    pub fn impose(&self, actor: &Actor, until: Option<Millis>, at: Millis, reason: &str) -> bool {
        let covers = |p: &Penalty| {
            p.kind == PenaltyKind::Ban
                && match (p.until, until) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(mine), Some(theirs)) => mine >= theirs,
                }
        };
        if self.penalties.load().get(actor).is_some_and(|p| covers(p)) {
            return false;
        }
        let mut changed = false;
        self.update(|m| {
            let prev = m.get(actor);
            if prev.is_some_and(|p| covers(p)) {
                return;
            }
            let was_banned = prev.is_some_and(|p| p.kind == PenaltyKind::Ban && p.active(at));
            let p = Penalty {
                kind: PenaltyKind::Ban,
                until,
                first_seen: prev.map_or(at, |p| p.first_seen.min(at)),
                last_seen: prev.map_or(at, |p| p.last_seen.max(at)),
                bans: prev.map_or(0, |p| p.bans) + u32::from(!was_banned),
                strikes: prev.map_or(0.0, |p| p.strikes),
                rules: prev.map_or_else(|| vec![Arc::from("fleet")], |p| p.rules.clone()),
                reason: reason.into(),
            };
            m.insert(actor.clone(), Arc::new(p));
            changed = true;
        });
        changed
    }

    /// An unban the fleet holds, decided at `at`: the actor's penalty goes, unless it was
    /// decided after `at`, and its strikes are forgiven. Not told to the fleet again. True
    /// when it removed a penalty.
    pub fn lift(&self, actor: &Actor, at: Millis) -> bool {
        let older = |p: &Penalty| p.last_seen <= at;
        if !self.penalties.load().get(actor).is_some_and(|p| older(p)) {
            return false;
        }
        self.scores.lock().unwrap_or_else(|e| e.into_inner()).remove(actor);
        let mut changed = false;
        self.update(|m| {
            if m.get(actor).is_some_and(|p| older(p)) {
                m.remove(actor);
                changed = true;
            }
        });
        changed
    }

    /// Forget penalties past their memory and strikes that decayed away; publish the count.
    pub fn sweep(&self, now: Millis, policy: Option<&BanPolicy>) {
        let remember = policy.map_or(0, |p| ms(p.remember));
        let stale = |p: &Arc<Penalty>| p.until.is_some_and(|u| u.saturating_add(remember) <= now);
        if self.penalties.load().values().any(stale) {
            self.update(|m| m.retain(|_, p| !stale(p)));
        }
        if let Some(policy) = policy {
            self.scores
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, s| s.decayed(now, policy.window) >= 0.05);
        }
        self.publish(now);
    }

    fn publish(&self, now: Millis) {
        let bans = self
            .penalties
            .load()
            .values()
            .filter(|p| p.kind == PenaltyKind::Ban && p.active(now))
            .count();
        METRICS.active_bans.set(bans as i64);
    }

    pub fn list(&self) -> Vec<(Actor, Penalty)> {
        self.penalties
            .load()
            .iter()
            .map(|(a, p)| (a.clone(), Penalty::clone(p)))
            .collect()
    }

    /// The actor's strike score decayed to `now` (0 when it has none). Takes the scores'
    /// mutex for one lookup.
    pub fn score(&self, actor: &Actor, now: Millis, window: Duration) -> f64 {
        self.scores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(actor)
            .map_or(0.0, |s| s.decayed(now, window))
    }

    pub fn scores(&self) -> Vec<(Actor, Score)> {
        self.scores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(a, s)| (a.clone(), *s))
            .collect()
    }

    /// Take in saved or foreign state: a penalty or a strike score replaces ours when it was
    /// updated later (the most recent observation of the actor wins).
    pub fn merge(&self, penalties: Vec<(Actor, Penalty)>, scores: Vec<(Actor, Score)>) {
        self.update(|m| {
            for (a, p) in penalties {
                if m.get(&a).is_none_or(|mine| p.last_seen > mine.last_seen) {
                    m.insert(a, Arc::new(p));
                }
            }
        });
        let mut mine = self.scores.lock().unwrap_or_else(|e| e.into_inner());
        for (a, s) in scores {
            if mine.get(&a).is_none_or(|m| s.at > m.at) {
                mine.insert(a, s);
            }
        }
    }

    /// Ask for the next save even if nothing changed (e.g. to rewrite a migrated state file).
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// True (and cleared) when anything changed since the last call.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }

    fn update(&self, f: impl FnOnce(&mut HashMap<Actor, Arc<Penalty>>)) {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::clone(&self.penalties.load());
        f(&mut next);
        let nets: Vec<_> = next
            .iter()
            .filter_map(|(a, p)| match a {
                Actor::Net(n) => Some((*n, p.clone())),
                _ => None,
            })
            .collect();
        if !nets.is_empty() || !self.nets.load().is_empty() {
            self.nets.store(Arc::new(nets));
        }
        self.penalties.store(Arc::new(next));
        self.dirty.store(true, Ordering::Relaxed);
        self.publish(now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn policy() -> BanPolicy {
        BanPolicy {
            strikes: 3,
            window: Duration::from_secs(60),
            ban_for: Duration::from_secs(600),
            throttle_at: Some(2),
            escalation: 2,
            max_ban: Duration::from_secs(3600),
            permanent_after: Some(4),
            remember: Duration::from_secs(86_400),
            identity: None,
        }
    }

    #[test]
    fn escalation_timeline_with_an_injected_clock() {
        let p = policy();
        let o = Offenders::new();
        let ip: IpAddr = "198.51.100.4".parse().expect("ip");
        let me = [Actor::Ip(ip)];
        let rule: Arc<str> = Arc::from("r");
        let mut t = 1_000_000_000;
        assert!(o.strike(&me, &rule, &p, 1, t).is_none());
        assert!(o.check(ip, None, t).is_none());
        // Second strike: probation (throttle) for one window.
        let (_, pen) = o.strike(&me, &rule, &p, 1, t).expect("probation");
        assert_eq!((pen.kind, pen.until), (PenaltyKind::Throttle, Some(t + MIN)));
        // Third: first ban, 10 minutes.
        let (_, pen) = o.strike(&me, &rule, &p, 1, t).expect("ban");
        assert_eq!(
            (pen.kind, pen.bans, pen.until),
            (PenaltyKind::Ban, 1, Some(t + 10 * MIN))
        );
        assert_eq!(
            o.check(ip, None, t + 10 * MIN - 1).map(|(_, p)| p.kind),
            Some(PenaltyKind::Ban)
        );
        assert!(o.check(ip, None, t + 10 * MIN).is_none(), "the ban ends on time");
        // Back again after the ban: the next bans double, capped at an hour, then permanent.
        for (n, len) in [(2, Some(20 * MIN)), (3, Some(40 * MIN)), (4, None)] {
            t += 2 * 60 * MIN;
            let (_, pen) = o.strike(&me, &rule, &p, 3, t).expect("ban");
            assert_eq!((pen.bans, pen.until), (n, len.map(|l| t + l)), "ban {n}");
        }
        assert!(o.check(ip, None, t + 365 * 24 * 60 * MIN).is_some(), "permanent");
    }

    #[test]
    fn strikes_decay_and_old_bans_are_forgotten() {
        let p = BanPolicy {
            throttle_at: None,
            ..policy()
        };
        let o = Offenders::new();
        let ip: IpAddr = "2001:db8::9".parse().expect("ip");
        let rule: Arc<str> = Arc::from("r");
        let t = 5_000_000;
        o.strike(&[Actor::Ip(ip)], &rule, &p, 2, t);
        // Three windows later two strikes weigh ~0.1: one more does not ban.
        assert!(o.strike(&[Actor::Ip(ip)], &rule, &p, 1, t + 3 * MIN).is_none());
        let (_, first) = o.strike(&[Actor::Ip(ip)], &rule, &p, 3, t + 3 * MIN).expect("ban");
        assert_eq!(first.bans, 1);
        // A day after it ended, the ban no longer counts: the next one is a first ban again.
        let later = t + 3 * MIN + 10 * MIN + 24 * 60 * MIN;
        o.sweep(later, Some(&p));
        assert!(o.list().is_empty());
        let (_, again) = o.strike(&[Actor::Ip(ip)], &rule, &p, 3, later).expect("ban");
        assert_eq!(again.bans, 1);
    }

    #[test]
    fn identity_is_banned_across_addresses() {
        let p = policy();
        let o = Offenders::new();
        let rule: Arc<str> = Arc::from("r");
        let a: IpAddr = "198.51.100.1".parse().expect("ip");
        let b: IpAddr = "198.51.100.2".parse().expect("ip");
        let (alice, bob) = (o.pseudonym(b"alice"), o.pseudonym(b"bob"));
        o.strike(&[Actor::Ip(a), Actor::Id(alice)], &rule, &p, 3, 1000);
        assert!(o.check(b, Some(&alice), 1001).is_some(), "alice from another address");
        assert!(o.check(b, Some(&bob), 1001).is_none());
        o.set(Actor::Id(alice), None, "", 1002);
        assert!(o.check(b, Some(&alice), 1003).is_none());
        assert!(Actor::Id(alice).to_string().starts_with("id:hmac:"));
    }

    #[test]
    fn fleet_bans_are_imposed_and_lifted_without_telling_the_fleet_again() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl Broadcast for Count {
            fn banned(&self, _: &Actor, _: Option<Millis>, _: Millis, _: &str) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
            fn unbanned(&self, _: &Actor, _: Millis) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
            fn struck(&self, _: &[Actor], _: &Arc<str>, _: u32, _: Millis) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let told = Arc::new(Count(Default::default()));
        let o = Offenders::new();
        o.set_broadcast(told.clone());
        let ip: IpAddr = "198.51.100.70".parse().expect("ip");
        let a = Actor::Ip(ip);
        assert!(o.impose(&a, Some(10_000), 1_000, "fleet"));
        assert!(
            !o.impose(&a, Some(9_000), 1_500, "fleet"),
            "a shorter ban changes nothing"
        );
        assert!(o.impose(&a, Some(20_000), 1_500, "fleet"), "a longer one extends it");
        assert_eq!(o.check(ip, None, 19_999).map(|(_, p)| p.until), Some(Some(20_000)));
        assert!(!o.lift(&a, 1_200), "an unban older than the ban leaves it");
        assert!(o.lift(&a, 2_000));
        assert!(o.check(ip, None, 2_001).is_none());
        assert_eq!(told.0.load(Ordering::Relaxed), 0, "nothing received is sent back");
        // Local decisions are told: a strike, a ban it earns, an operator's unban.
        let rule: Arc<str> = Arc::from("r");
        o.strike(std::slice::from_ref(&a), &rule, &policy(), 3, 3_000);
        o.set(a, None, "", 3_001);
        assert_eq!(told.0.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_banned_network_covers_its_addresses() {
        let o = Offenders::new();
        let net: ipnet::IpNet = "203.0.113.0/24".parse().expect("net");
        o.set(Actor::Net(net), Some(Some(Duration::from_secs(60))), "abuse", 1_000);
        let inside: IpAddr = "203.0.113.77".parse().expect("ip");
        let outside: IpAddr = "203.0.114.1".parse().expect("ip");
        assert_eq!(o.check(inside, None, 2_000).map(|(a, _)| a), Some(Actor::Net(net)));
        assert!(o.check(outside, None, 2_000).is_none());
        assert!(o.check(inside, None, 61_000).is_none(), "it ends on time");
        o.set(Actor::Net(net), Some(Some(Duration::from_secs(60))), "abuse", 62_000);
        o.set(Actor::Net(net), None, "", 62_001);
        assert!(o.check(inside, None, 62_002).is_none(), "lifted");
        let json = serde_json::to_string(&Actor::Net(net)).expect("json");
        assert_eq!(json, r#"{"net":"203.0.113.0/24"}"#);
        assert_eq!(serde_json::from_str::<Actor>(&json).expect("back"), Actor::Net(net));
    }
}
