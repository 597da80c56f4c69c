//! On-disk shape and checks of the `fleet:` section of `palisade.yaml`: this instance's name,
//! the NATS server, and the JetStream bucket and subjects the fleet shares (`crate::fleet`).

use serde::Deserialize;

use super::error::Collector;
use super::types::Dur;

/// Default of `fleet.bans_bucket`: the KV bucket holding the fleet's ban set.
pub const DEFAULT_BANS_BUCKET: &str = "PALISADE_BANS";
/// Default of `fleet.instances_bucket`: the KV bucket of instance heartbeats.
pub const DEFAULT_INSTANCES_BUCKET: &str = "PALISADE_FLEET";
/// Default of `fleet.strikes_subject`: the subject strike deltas are published on.
pub const DEFAULT_STRIKES_SUBJECT: &str = "palisade.fleet.strikes";
/// Default of `fleet.queue`: updates (bans, unbans, strike batches) waiting for the bus.
pub const DEFAULT_QUEUE: usize = 10_000;
/// Default of `fleet.heartbeat`, how often an instance writes its heartbeat.
pub const DEFAULT_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
/// Default of `fleet.unban_memory`: how long an unban is kept in the bucket, so that a ban
/// older than it, sent late by an instance cut off from the bus, cannot undo it.
pub const DEFAULT_UNBAN_MEMORY: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
/// Default of `fleet.timeout`: each call to the bus (connect, read, write).
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Default of `fleet.reconnect_max_delay`: the cap of the reconnect backoff.
pub const DEFAULT_RECONNECT_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// `fleet:` — several instances sharing bans and strikes through NATS JetStream.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// This instance's name, unique in the fleet (letters, digits, `-`, `_`).
    pub instance: String,
    /// `nats://HOST:PORT`; several, comma-separated, for a cluster.
    pub url: String,
    #[serde(default = "bans_bucket")]
    pub bans_bucket: String,
    #[serde(default = "instances_bucket")]
    pub instances_bucket: String,
    #[serde(default = "strikes_subject")]
    pub strikes_subject: String,
    /// Updates waiting for the bus; past it they are dropped and counted.
    #[serde(default = "queue")]
    pub queue: usize,
    #[serde(default = "heartbeat")]
    pub heartbeat: Dur,
    #[serde(default = "unban_memory")]
    pub unban_memory: Dur,
    #[serde(default = "timeout")]
    pub timeout: Dur,
    #[serde(default = "reconnect_max")]
    pub reconnect_max_delay: Dur,
    /// Replicas of the buckets when Palisade creates them (3 on a three-node NATS cluster).
    #[serde(default = "replicas")]
    pub replicas: usize,
}

fn bans_bucket() -> String {
    DEFAULT_BANS_BUCKET.into()
}
fn instances_bucket() -> String {
    DEFAULT_INSTANCES_BUCKET.into()
}
fn strikes_subject() -> String {
    DEFAULT_STRIKES_SUBJECT.into()
}
fn queue() -> usize {
    DEFAULT_QUEUE
}
fn heartbeat() -> Dur {
    Dur(DEFAULT_HEARTBEAT)
}
fn unban_memory() -> Dur {
    Dur(DEFAULT_UNBAN_MEMORY)
}
fn timeout() -> Dur {
    Dur(DEFAULT_TIMEOUT)
}
fn reconnect_max() -> Dur {
    Dur(DEFAULT_RECONNECT_MAX)
}
fn replicas() -> usize {
    1
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn validate(f: Option<&FleetSection>, c: &mut Collector<'_>) {
    let Some(f) = f else { return };
    if !name_ok(&f.instance) {
        c.field(
            "fleet.instance",
            "must be letters, digits, `-` or `_` (it names a key in the bus)",
        );
    }
    for (i, url) in f.url.split(',').enumerate() {
        if url.trim().parse::<async_nats::ServerAddr>().is_err() {
            c.field(
                "fleet.url",
                format!(
                    "{:?} (server {}) is not a NATS address (nats://HOST:PORT)",
                    url.trim(),
                    i + 1
                ),
            );
        }
    }
    for (field, v) in [
        ("fleet.bans_bucket", &f.bans_bucket),
        ("fleet.instances_bucket", &f.instances_bucket),
    ] {
        if !name_ok(v) {
            c.field(field, "must be letters, digits, `-` or `_`");
        }
    }
    if f.bans_bucket == f.instances_bucket {
        c.field("fleet.instances_bucket", "must differ from bans_bucket");
    }
    let subject_ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.ends_with('.')
            && !s.contains(|ch: char| ch.is_whitespace() || ch == '>' || ch == '*')
    };
    if !subject_ok(&f.strikes_subject) {
        c.field("fleet.strikes_subject", "must be a subject without spaces or wildcards");
    }
    if f.queue == 0 {
        c.field("fleet.queue", "must be at least 1");
    }
    if !(1..=5).contains(&f.replicas) {
        c.field("fleet.replicas", "must be 1 to 5");
    }
    for (field, d) in [
        ("fleet.heartbeat", f.heartbeat.0),
        ("fleet.unban_memory", f.unban_memory.0),
        ("fleet.timeout", f.timeout.0),
        ("fleet.reconnect_max_delay", f.reconnect_max_delay.0),
    ] {
        if d.is_zero() {
            c.field(field, "must be longer than zero");
        }
    }
}
