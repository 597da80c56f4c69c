//! What the fleet's ban bucket holds for one actor, and the pure function that merges two
//! versions of it (fleet sync, background). Every instance and the bucket converge because
//! the merge is commutative, associative and idempotent: whatever order updates arrive in,
//! and however often, the result is the same.
//!
//! A record is the latest known unban (`cleared_at`) and the bans decided after it that could
//! still matter: a ban is dropped once a later-or-equal decision is at least as strong, since
//! any unban that undoes the later one undoes it too. In force is the strongest of them. The
//! rules:
//! - an unban wins over every ban decided before it (a later unban wins over an older ban,
//!   even one sent late by an instance that was cut off from the bus);
//! - a ban decided after the latest unban wins over that unban;
//! - between two live bans the longest wins: permanent over timed, a later end over an
//!   earlier one; equal ends go to the later decision, then to the instance name;
//! - times are absolute (wall-clock milliseconds): a ban whose end has passed stays expired
//!   wherever and whenever it is read, so an expired ban is never resurrected.

use serde::{Deserialize, Serialize};

use crate::enforce::offenders::{Actor, Millis};

/// Version of the record format in the bucket.
pub const RECORD_FORMAT: u32 = 1;

/// A ban as the fleet keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanTerm {
    /// End of the ban; `None` when permanent.
    pub until: Option<Millis>,
    /// When it was decided.
    pub at: Millis,
    /// The instance that decided it.
    pub origin: String,
    /// Why (rule ids and strike counts; never a client value).
    pub reason: String,
}

impl BanTerm {
    pub fn active(&self, now: Millis) -> bool {
        self.until.is_none_or(|u| u > now)
    }

    /// Order of strength: longest, then latest decision, then instance name, then reason.
    fn strength(&self) -> (u64, Millis, &str, &str) {
        (self.until.unwrap_or(u64::MAX), self.at, &self.origin, &self.reason)
    }
}

/// The fleet's state for one actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    pub format: u32,
    pub actor: Actor,
    /// The bans decided after `cleared_at` that no later one outweighs, expired or not; the
    /// latest first.
    pub bans: Vec<BanTerm>,
    /// When the latest unban was decided (0: never).
    pub cleared_at: Millis,
}

impl BanRecord {
    pub fn ban(actor: Actor, term: BanTerm) -> BanRecord {
        BanRecord {
            format: RECORD_FORMAT,
            actor,
            bans: vec![term],
            cleared_at: 0,
        }
    }

    pub fn unban(actor: Actor, at: Millis) -> BanRecord {
        BanRecord {
            format: RECORD_FORMAT,
            actor,
            bans: Vec::new(),
            cleared_at: at,
        }
    }

    /// The ban in force at `now`, if any: the strongest one not yet ended.
    pub fn active_ban(&self, now: Millis) -> Option<&BanTerm> {
        self.strongest().filter(|b| b.active(now))
    }

    /// The strongest ban, ended or not.
    pub fn strongest(&self) -> Option<&BanTerm> {
        self.bans.iter().max_by(|x, y| x.strength().cmp(&y.strength()))
    }

    /// Nothing left worth keeping at `now`: the ban ended (or there is none) and the unban is
    /// older than `unban_memory`. Such records are removed from the bucket.
    pub fn stale(&self, now: Millis, unban_memory: Millis) -> bool {
        self.active_ban(now).is_none() && self.cleared_at.saturating_add(unban_memory) <= now
    }
}

/// Merge two versions of the same actor's record (see the module's rules).
pub fn merge(a: &BanRecord, b: &BanRecord) -> BanRecord {
    let cleared_at = a.cleared_at.max(b.cleared_at);
    let mut all: Vec<&BanTerm> = a.bans.iter().chain(&b.bans).filter(|t| t.at > cleared_at).collect();
    // Latest first; at one instant, strongest first.
    all.sort_by(|x, y| y.at.cmp(&x.at).then_with(|| y.strength().cmp(&x.strength())));
    let mut bans: Vec<BanTerm> = Vec::new();
    for t in all {
        // Kept only if stronger than every ban decided at the same time or later.
        if bans.last().is_none_or(|kept| t.strength() > kept.strength()) {
            bans.push(t.clone());
        }
    }
    BanRecord {
        format: RECORD_FORMAT,
        actor: a.actor.clone(),
        bans,
        cleared_at,
    }
}

/// The bucket key of an actor: `ip.ADDR`, `net.ADDR_LEN` or `id.HEX` (KV keys take letters,
/// digits and `-/_=.`; the separators of addresses are rewritten).
pub fn key(actor: &Actor) -> String {
    let clean = |s: String| s.replace([':', '/'], "_");
    match actor {
        Actor::Ip(ip) => format!("ip.{}", clean(ip.to_string())),
        Actor::Net(n) => format!("net.{}", clean(n.to_string())),
        Actor::Id(p) => format!("id.{}", p.full().trim_start_matches("hmac:")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> Actor {
        Actor::Ip("2001:db8::7".parse().expect("ip"))
    }

    fn ban(until: Option<Millis>, at: Millis, origin: &str) -> BanRecord {
        BanRecord::ban(
            ip(),
            BanTerm {
                until,
                at,
                origin: origin.into(),
                reason: "r".into(),
            },
        )
    }

    fn until(r: &BanRecord) -> Option<Option<Millis>> {
        r.strongest().map(|b| b.until)
    }

    #[test]
    fn the_longest_remaining_ban_wins() {
        let short = ban(Some(2_000), 1_000, "a");
        let long = ban(Some(9_000), 500, "b");
        let forever = ban(None, 100, "c");
        assert_eq!(until(&merge(&short, &long)), Some(Some(9_000)));
        assert_eq!(until(&merge(&long, &short)), Some(Some(9_000)));
        assert_eq!(until(&merge(&long, &forever)), Some(None));
        // Equal ends: the later decision, then the instance name, so both sides agree.
        let (x, y) = (ban(Some(5_000), 10, "a"), ban(Some(5_000), 20, "b"));
        assert_eq!(merge(&x, &y), merge(&y, &x));
        assert_eq!(merge(&x, &y).strongest().map(|b| &*b.origin), Some("b"));
    }

    #[test]
    fn a_later_unban_wins_over_an_older_ban_and_a_later_ban_over_an_unban() {
        let banned = ban(None, 1_000, "a");
        let lifted = BanRecord::unban(ip(), 2_000);
        assert_eq!(merge(&banned, &lifted).strongest(), None);
        assert_eq!(merge(&lifted, &banned).strongest(), None);
        let again = ban(Some(60_000), 3_000, "b");
        let m = merge(&merge(&banned, &lifted), &again);
        assert_eq!((until(&m), m.cleared_at), (Some(Some(60_000)), 2_000));
        // The old permanent ban, sent late by an instance cut off from the bus, stays undone
        // even though it would outlast the new one.
        assert_eq!(merge(&m, &banned), m);
        assert_eq!(merge(&banned, &m), m);
        // A short ban decided after an unban survives it, even when it first met a stronger,
        // older ban that the unban undoes.
        let old_forever = ban(None, 1, "a");
        let late_short = ban(Some(90_000), 10, "b");
        let unban_between = BanRecord::unban(ip(), 5);
        let m = merge(&merge(&old_forever, &late_short), &unban_between);
        assert_eq!(until(&m), Some(Some(90_000)));
    }

    #[test]
    fn expired_bans_stay_expired() {
        let old = ban(Some(5_000), 1_000, "a");
        let m = merge(&old, &BanRecord::unban(ip(), 500));
        assert!(m.active_ban(4_999).is_some());
        assert!(m.active_ban(5_000).is_none() && m.active_ban(50_000).is_none());
        // Merging it again, in any order, at any time, does not extend it.
        assert_eq!(until(&merge(&m, &old)), Some(Some(5_000)));
        assert!(m.stale(5_000, 0) && !m.stale(4_000, 0));
        let unbanned = BanRecord::unban(ip(), 5_000);
        assert!(!unbanned.stale(6_000, 10_000) && unbanned.stale(15_000, 10_000));
    }

    #[test]
    fn merge_is_commutative_associative_and_idempotent() {
        let mut versions = vec![BanRecord::unban(ip(), 0)];
        let mut seed = 7u64;
        for i in 0..12u64 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let at = (seed >> 33) % 1_000;
            versions.push(match seed % 3 {
                0 => BanRecord::unban(ip(), at),
                1 => ban(None, at, &format!("i{i}")),
                _ => ban(Some(at + (seed >> 40) % 500), at, &format!("i{i}")),
            });
        }
        for a in &versions {
            assert_eq!(&merge(a, a), a, "idempotent");
            for b in &versions {
                assert_eq!(merge(a, b), merge(b, a), "commutative");
                for c in &versions {
                    assert_eq!(merge(&merge(a, b), c), merge(a, &merge(b, c)), "associative");
                }
            }
        }
    }

    #[test]
    fn keys_are_valid_bucket_keys() {
        let p = crate::enforce::identity::IdentityKey::new(b"0123456789abcdef").pseudonym(b"alice");
        let keys = [
            key(&Actor::Ip("198.51.100.7".parse().expect("ip"))),
            key(&ip()),
            key(&Actor::Net("2001:db8::/32".parse().expect("net"))),
            key(&Actor::Id(p)),
        ];
        assert_eq!(keys[0], "ip.198.51.100.7");
        assert_eq!(keys[1], "ip.2001_db8__7");
        assert_eq!(keys[2], "net.2001_db8___32");
        for k in keys {
            assert!(
                k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=.".contains(&b)) && !k.contains(".."),
                "{k}"
            );
        }
    }
}
