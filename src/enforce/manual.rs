//! Bans made by hand (admin API and console): the one function every manual ban and unban goes
//! through. In fleet mode the offender state tells the other instances of every change it makes
//! (`Offenders::set`, `crate::fleet`), these included. Runs on the admin listener, never on the
//! request path.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::offenders::{Actor, Millis, Offenders};

/// Longest reason kept for a manual ban, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// A ban given or lifted by an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum BanChange {
    Add {
        actor: Actor,
        /// `None`: until lifted.
        length: Option<Duration>,
        reason: Arc<str>,
    },
    Lift {
        actor: Actor,
    },
}

impl BanChange {
    pub fn actor(&self) -> &Actor {
        match self {
            BanChange::Add { actor, .. } | BanChange::Lift { actor } => actor,
        }
    }
}

/// Apply a manual ban change to this instance's offender state (and so to the fleet's).
pub fn apply(offenders: &Offenders, change: &BanChange, now: Millis) {
    match change {
        BanChange::Add { actor, length, reason } => {
            log::warn!("admin: banned {actor} for {} ({reason})", describe(*length));
            offenders.set(actor.clone(), Some(*length), reason, now);
        }
        BanChange::Lift { actor } => {
            log::warn!("admin: unbanned {actor}");
            offenders.set(actor.clone(), None, "", now);
        }
    }
}

fn describe(length: Option<Duration>) -> String {
    length.map_or_else(|| "ever".to_string(), |d| humantime::format_duration(d).to_string())
}

/// An actor as the admin API shows it: an address, a network, or `id:` and the whole
/// pseudonym (which the API takes back).
pub fn shown(actor: &Actor) -> String {
    match actor {
        Actor::Ip(ip) => ip.to_string(),
        Actor::Id(p) => format!("id:{}", p.full()),
        Actor::Net(n) => n.to_string(),
    }
}

/// The stable id of a ban in the admin API: 16 hex digits of the SHA-256 of the actor as shown.
/// Opaque, so that a network's `/` or an IPv6 address need no escaping in `DELETE /api/bans/{id}`.
pub fn ban_id(actor: &Actor) -> String {
    let digest = Sha256::digest(shown(actor).as_bytes());
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::offenders::Broadcast;
    use std::sync::Mutex;

    /// What the offender state tells the fleet.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);
    impl Broadcast for Recorder {
        fn banned(&self, actor: &Actor, until: Option<Millis>, _: Millis, reason: &str) {
            let told = format!("ban {actor} until {until:?} ({reason})");
            self.0.lock().expect("lock").push(told);
        }
        fn unbanned(&self, actor: &Actor, _: Millis) {
            self.0.lock().expect("lock").push(format!("unban {actor}"));
        }
        fn struck(&self, _: &[Actor], _: &Arc<str>, _: u32, _: Millis) {}
    }

    #[test]
    fn changes_are_applied_and_told_to_the_fleet() {
        let o = Offenders::new();
        let rec = Arc::new(Recorder::default());
        o.set_broadcast(rec.clone());
        let ip: std::net::IpAddr = "192.0.2.9".parse().expect("ip");
        let add = BanChange::Add {
            actor: Actor::Ip(ip),
            length: Some(Duration::from_secs(60)),
            reason: "credential stuffing".into(),
        };
        apply(&o, &add, 1_000);
        let (_, p) = o.check(ip, None, 1_001).expect("banned");
        assert_eq!(&*p.reason, "credential stuffing");
        apply(&o, &BanChange::Lift { actor: Actor::Ip(ip) }, 1_002);
        assert!(o.check(ip, None, 1_003).is_none());
        assert_eq!(
            *rec.0.lock().expect("lock"),
            vec![
                "ban 192.0.2.9 until Some(61000) (credential stuffing)".to_string(),
                "unban 192.0.2.9".to_string()
            ]
        );
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = Actor::Net("10.0.0.0/8".parse().expect("net"));
        let b = Actor::Ip("10.0.0.0".parse().expect("ip"));
        assert_eq!(ban_id(&a), ban_id(&a.clone()));
        assert_ne!(ban_id(&a), ban_id(&b));
        assert_eq!(ban_id(&a).len(), 16);
    }
}
