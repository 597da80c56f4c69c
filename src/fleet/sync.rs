//! The fleet sync service (a Pingora background service): owns the NATS connection, writes
//! this instance's bans, unbans and strikes to the bus, and applies everyone else's. See
//! `mod.rs` for the design and `record.rs` for the merge rules.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::connection::State as Conn;
use async_nats::jetstream::{self, kv};
use futures::StreamExt;

use super::metrics::FLEET;
use super::record::{self, BanRecord, BanTerm};
use super::status::{self, Heartbeat};
use super::StrikeDelta;
use crate::config::fleet::FleetSection;
use crate::enforce::offenders::{now_ms, Millis, Offenders, PenaltyKind};
use crate::state::Store;

/// How often the service looks at the connection and whether a heartbeat is due.
const TICK: Duration = Duration::from_millis(50);
/// First reconnect delay; doubled per attempt up to `reconnect_max_delay`.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// Tries of a compare-and-set write that lost to a concurrent writer.
const CAS_TRIES: usize = 8;

pub struct FleetSync {
    cfg: FleetSection,
    store: Store,
    queues: Mutex<Option<Queues>>,
}

struct Queues {
    bans: tokio::sync::mpsc::Receiver<BanRecord>,
    strikes: tokio::sync::mpsc::Receiver<StrikeDelta>,
}

impl FleetSync {
    pub(super) fn new(
        cfg: FleetSection,
        store: Store,
        bans: tokio::sync::mpsc::Receiver<BanRecord>,
        strikes: tokio::sync::mpsc::Receiver<StrikeDelta>,
    ) -> Self {
        FleetSync {
            cfg,
            store,
            queues: Mutex::new(Some(Queues { bans, strikes })),
        }
    }
}

/// Connected to the bus, with the bucket watched.
struct Session {
    kv: kv::Store,
    instances: kv::Store,
    watch: kv::Watch,
    strikes: async_nats::Subscriber,
}

enum Event {
    Shutdown,
    Local(BanRecord),
    LocalStrikes(StrikeDelta),
    Entry(kv::Entry),
    Strikes(async_nats::Message),
    Lost(String),
    Tick,
}

/// The fleet's ban set as this instance knows it, and what it still has to write.
struct Sync {
    cfg: FleetSection,
    store: Store,
    records: HashMap<String, BanRecord>,
    /// The bucket's revision of each key, as last seen (watch or own write).
    revisions: HashMap<String, u64>,
    /// Keys whose record this instance must (re)write to the bucket.
    pending: BTreeSet<String>,
    /// The pending keys changed by a decision here (the others are reconciliations).
    decided: BTreeSet<String>,
    /// Strike deltas waiting for the bus (bounded by `queue`).
    strikes: VecDeque<StrikeDelta>,
    /// This instance's last probe written to the bucket and not yet seen on the watch: its
    /// revision and when it was written.
    probe: Option<(u64, Instant)>,
    me: Heartbeat,
}

/// Bucket keys of probes (`probe.INSTANCE`): each instance writes its own at every heartbeat
/// and expects to see it come back on its watch. A watch whose consumer lived on a NATS node
/// that died stays silent (the client only notices after two missed idle heartbeats, about
/// 10 s); an unanswered probe finds it sooner.
const PROBE_PREFIX: &str = "probe.";

impl Sync {
    fn offenders(&self) -> Arc<Offenders> {
        self.store.load().offenders.clone()
    }

    fn unban_memory(&self) -> Millis {
        self.cfg.unban_memory.0.as_millis() as u64
    }

    /// A record written to the bucket at `revision`.
    fn written(&mut self, key: &str, revision: u64) {
        self.revisions.insert(key.to_string(), revision);
        FLEET.published.with_label_values(&["ban"]).inc();
        self.me.published += 1;
    }

    /// Merge `r` into the view under `key`, apply the result to the offender state, and
    /// return whether the view changed.
    fn take_in(&mut self, key: &str, r: &BanRecord) -> bool {
        let merged = match self.records.get(key) {
            Some(mine) => record::merge(mine, r),
            None => r.clone(),
        };
        let changed = self.records.get(key) != Some(&merged);
        if changed {
            self.apply(&merged);
            self.records.insert(key.to_string(), merged);
        }
        changed
    }

    /// Make the offender state agree with a record.
    fn apply(&mut self, r: &BanRecord) {
        let now = now_ms();
        let o = self.offenders();
        let changed = match r.active_ban(now) {
            Some(t) => o.impose(
                &r.actor,
                t.until,
                t.at,
                &format!("fleet ban from {}: {}", t.origin, t.reason),
            ),
            None if r.cleared_at > 0 => o.lift(&r.actor, r.cleared_at),
            None => false,
        };
        if changed {
            self.me.applied += 1;
            FLEET.applied.inc();
        }
    }

    fn local(&mut self, r: BanRecord) {
        let key = record::key(&r.actor);
        self.take_in(&key, &r);
        self.decided.insert(key.clone());
        self.pending.insert(key);
    }

    fn local_strikes(&mut self, d: StrikeDelta) {
        if self.strikes.len() >= self.cfg.queue {
            self.me.dropped += 1;
            FLEET.dropped.with_label_values(&["strike_queue_full"]).inc();
            return;
        }
        self.strikes.push_back(d);
    }

    /// An update of the bucket, ours or another instance's.
    fn on_entry(&mut self, e: kv::Entry) {
        let now = now_ms();
        if e.delta == 0 {
            self.me.last_sync = now;
        }
        if e.key.starts_with(PROBE_PREFIX) {
            if e.key.strip_prefix(PROBE_PREFIX) == Some(self.cfg.instance.as_str())
                && self.probe.is_some_and(|(r, _)| e.revision >= r)
            {
                self.probe = None;
            }
            return;
        }
        let rev = self.revisions.entry(e.key.clone()).or_default();
        *rev = (*rev).max(e.revision);
        if e.operation != kv::Operation::Put {
            // Removed as stale by some instance: forget it too, unless ours says otherwise.
            if self
                .records
                .get(&e.key)
                .is_some_and(|r| r.stale(now, self.unban_memory()))
            {
                self.records.remove(&e.key);
            }
            return;
        }
        let r: BanRecord = match serde_json::from_slice(&e.value) {
            Ok(r) => r,
            Err(err) => {
                log::warn!("fleet: ignored key {} of the ban bucket: {err}", e.key);
                return;
            }
        };
        if record::key(&r.actor) != e.key {
            log::warn!("fleet: ignored key {}: it holds the record of another actor", e.key);
            return;
        }
        let before = self.records.get(&e.key).cloned();
        if !self.take_in(&e.key, &r) {
            return;
        }
        // News to us: someone else decided it. How long it took to get here.
        let decided = r.bans.iter().map(|b| b.at).chain([r.cleared_at]).max().unwrap_or(0);
        let kind = if r.active_ban(now).is_some() { "ban" } else { "unban" };
        FLEET.received.with_label_values(&[kind]).inc();
        self.me.received += 1;
        if before
            .as_ref()
            .is_none_or(|b| b.bans.iter().map(|t| t.at).chain([b.cleared_at]).max() < Some(decided))
        {
            let lag = now.saturating_sub(decided);
            FLEET.propagation.observe(lag as f64 / 1000.0);
            self.me.lag_ms = Some(lag);
        }
        // Our view outweighs what the bucket holds (we merged something it lacks): write it.
        if self.records.get(&e.key) != Some(&r) {
            self.pending.insert(e.key);
        }
    }

    fn on_strikes(&mut self, m: async_nats::Message) {
        let Ok(d) = serde_json::from_slice::<StrikeDelta>(&m.payload) else {
            log::warn!("fleet: ignored a strike message that is not a strike delta");
            return;
        };
        if d.origin == self.cfg.instance {
            return;
        }
        FLEET.received.with_label_values(&["strikes"]).inc();
        let snap = self.store.load();
        let Some(policy) = snap.policy.bans.as_ref() else {
            return;
        };
        let rule: Arc<str> = Arc::from(d.rule.as_str());
        if let Some((actor, p)) = snap.offenders.strike_received(&d.actors, &rule, policy, d.n, d.at) {
            log::warn!(
                "{actor}: {:?} until {:?} ({}; with strikes from {})",
                p.kind,
                p.until,
                p.reason,
                d.origin
            );
        }
    }

    /// Bans in the offender state that the view lacks (decided before the fleet started, or
    /// dropped from a full queue) join it, so that no ban stays local.
    fn adopt_local_bans(&mut self) {
        let now = now_ms();
        for (actor, p) in self.offenders().list() {
            if p.kind != PenaltyKind::Ban || !p.active(now) {
                continue;
            }
            let r = BanRecord::ban(
                actor.clone(),
                BanTerm {
                    until: p.until,
                    at: p.last_seen,
                    origin: self.cfg.instance.clone(),
                    reason: p.reason.to_string(),
                },
            );
            let key = record::key(&actor);
            let covered = self
                .records
                .get(&key)
                .is_some_and(|mine| record::merge(mine, &r) == *mine);
            if !covered {
                self.take_in(&key, &r);
                self.pending.insert(key);
            }
        }
    }

    async fn establish(&mut self, js: &jetstream::Context, client: &async_nats::Client) -> Result<Session, String> {
        let t = self.cfg.timeout.0;
        let step = |what: &'static str| move |_| format!("{what}: no answer within {t:?}");
        let kv = tokio::time::timeout(t, bucket(js, &self.cfg.bans_bucket, self.cfg.replicas))
            .await
            .map_err(step("ban bucket"))??;
        let instances = tokio::time::timeout(t, bucket(js, &self.cfg.instances_bucket, self.cfg.replicas))
            .await
            .map_err(step("instances bucket"))??;
        let strikes = client
            .subscribe(self.cfg.strikes_subject.clone())
            .await
            .map_err(|e| e.to_string())?;
        let watch = tokio::time::timeout(t, kv.watch_with_history(">"))
            .await
            .map_err(step("watch"))?
            .map_err(|e| format!("watch: {e}"))?;
        // Whatever the bucket lacks goes back: everything this instance knows, and every ban
        // it holds. The merge keeps what is newer on either side.
        self.adopt_local_bans();
        let now = now_ms();
        let memory = self.unban_memory();
        let live: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| !r.stale(now, memory))
            .map(|(k, _)| k.clone())
            .collect();
        self.pending.extend(live);
        FLEET.reconciliations.inc();
        self.me.reconciliations += 1;
        self.probe = None;
        Ok(Session {
            kv,
            instances,
            watch,
            strikes,
        })
    }

    /// Write every pending record (merged with the bucket's); stop at the first failure.
    async fn push_pending(&mut self, kv: &kv::Store) -> Result<(), String> {
        while let Some(key) = self.pending.first().cloned() {
            self.push(kv, &key).await?;
            self.pending.remove(&key);
        }
        Ok(())
    }

    async fn push(&mut self, kv: &kv::Store, key: &str) -> Result<(), String> {
        // A decision made here, first try: the view already holds the value of the revision
        // last seen, so what it has is the merge; one round trip when nobody wrote the key
        // since.
        if let Some(ours) = self.records.get(key).filter(|_| self.decided.remove(key)) {
            let revision = self.revisions.get(key).copied().unwrap_or(0);
            let value = serde_json::to_vec(ours).map_err(|e| e.to_string())?;
            match kv.update(key, value.into(), revision).await {
                Ok(r) => {
                    self.written(key, r);
                    return Ok(());
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        for _ in 0..CAS_TRIES {
            let Some(ours) = self.records.get(key).cloned() else {
                return Ok(());
            };
            let (theirs, revision) = match kv.entry(key).await.map_err(|e| e.to_string())? {
                Some(e) if e.operation == kv::Operation::Put => {
                    (serde_json::from_slice::<BanRecord>(&e.value).ok(), e.revision)
                }
                Some(e) => (None, e.revision),
                None => (None, 0),
            };
            let merged = theirs
                .as_ref()
                .map_or_else(|| ours.clone(), |t| record::merge(&ours, t));
            self.take_in(key, &merged);
            if theirs.as_ref() == Some(&merged) || (theirs.is_none() && merged.stale(now_ms(), self.unban_memory())) {
                return Ok(());
            }
            let value = serde_json::to_vec(&merged).map_err(|e| e.to_string())?;
            match kv.update(key, value.into(), revision).await {
                Ok(r) => {
                    self.written(key, r);
                    return Ok(());
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("key {key}: still contended after {CAS_TRIES} tries"))
    }

    async fn flush_strikes(&mut self, client: &async_nats::Client) -> Result<(), String> {
        while let Some(d) = self.strikes.front() {
            let payload = serde_json::to_vec(d).map_err(|e| e.to_string())?;
            client
                .publish(self.cfg.strikes_subject.clone(), payload.into())
                .await
                .map_err(|e| e.to_string())?;
            self.strikes.pop_front();
            FLEET.published.with_label_values(&["strikes"]).inc();
            self.me.published += 1;
        }
        Ok(())
    }

    /// Remove records with nothing left in force (compare-and-set: a record someone just
    /// changed stays).
    async fn sweep(&mut self, kv: &kv::Store) {
        let now = now_ms();
        let memory = self.unban_memory();
        let stale: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| r.stale(now, memory))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Ok(Some(e)) = kv.entry(&key).await {
                let still = e.operation == kv::Operation::Put
                    && serde_json::from_slice::<BanRecord>(&e.value).is_ok_and(|r| r.stale(now, memory));
                if still && kv.purge_expect_revision(&key, Some(e.revision)).await.is_err() {
                    continue;
                }
            }
            self.records.remove(&key);
            self.revisions.remove(&key);
        }
    }

    /// Write this instance's probe, unless one is still waiting.
    async fn probe(&mut self, kv: &kv::Store) {
        if self.probe.is_some() {
            return;
        }
        let key = format!("{PROBE_PREFIX}{}", self.cfg.instance);
        match tokio::time::timeout(self.cfg.timeout.0, kv.put(key, now_ms().to_string().into())).await {
            Ok(Ok(r)) => self.probe = Some((r, Instant::now())),
            Ok(Err(e)) => log::debug!("fleet: probe not written: {e}"),
            Err(_) => log::debug!("fleet: probe not written in time"),
        }
    }

    /// The watch has not shown the probe in time.
    fn watch_silent(&self) -> bool {
        let limit = (self.cfg.heartbeat.0 * 2).max(Duration::from_secs(1));
        self.probe.is_some_and(|(_, at)| at.elapsed() > limit)
    }

    async fn heartbeat(&mut self, instances: Option<kv::Store>) {
        let now = now_ms();
        self.me.at = now;
        self.me.connected = instances.is_some();
        self.me.fleet_bans = self.records.values().filter(|r| r.active_ban(now).is_some()).count();
        self.me.local_bans = self
            .offenders()
            .list()
            .iter()
            .filter(|(_, p)| p.kind == PenaltyKind::Ban && p.active(now))
            .count();
        let mut peers = Vec::new();
        if let Some(instances) = &instances {
            // Bounded: a slow bucket (a NATS node lost, leaders being elected) must not hold
            // up the updates this loop applies.
            let exchange = async {
                if let Ok(v) = serde_json::to_vec(&self.me) {
                    if let Err(e) = instances.put(&self.cfg.instance, v.into()).await {
                        log::debug!("fleet: heartbeat not written: {e}");
                    }
                }
                if let Ok(mut keys) = instances.keys().await {
                    while let Some(Ok(k)) = keys.next().await {
                        if let Ok(Some(v)) = instances.get(&k).await {
                            if let Ok(h) = serde_json::from_slice::<Heartbeat>(&v) {
                                peers.push(h);
                            }
                        }
                    }
                }
            };
            if tokio::time::timeout(self.cfg.timeout.0, exchange).await.is_err() {
                log::debug!("fleet: heartbeats not exchanged in time");
            }
        }
        let me = self.me.clone();
        status::update(|v| {
            v.me = me;
            if instances.is_some() {
                v.peers = peers;
            }
        });
    }
}

/// The bucket, created when missing. Created as its stream (the KV layout: `KV_NAME` over
/// `$KV.NAME.>`, one value per key, rollups for purges) rather than with
/// `create_key_value`: that one first asks for the account's limits, whose answer from
/// nats-server 2.9 (Debian 12) async-nats 0.46 cannot parse.
async fn bucket(js: &jetstream::Context, name: &str, replicas: usize) -> Result<kv::Store, String> {
    if let Ok(kv) = js.get_key_value(name).await {
        return Ok(kv);
    }
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    // Another instance may create it at the same moment: then it is there to get.
    let created = js.get_or_create_stream(config).await.map_err(|e| e.to_string());
    js.get_key_value(name)
        .await
        .map_err(|e| created.err().unwrap_or_else(|| e.to_string()))
}

/// Delay before reconnect attempt `attempts`: doubled each time, capped at `max`.
fn backoff(attempts: usize, max: Duration) -> Duration {
    FIRST_BACKOFF.saturating_mul(1u32 << attempts.min(16)).min(max)
}

async fn connect(cfg: &FleetSection) -> Result<async_nats::Client, String> {
    let max = cfg.reconnect_max_delay.0;
    let urls: Vec<async_nats::ServerAddr> = cfg
        .url
        .split(',')
        .map(|u| u.trim().parse().map_err(|e| format!("{u}: {e}")))
        .collect::<Result<_, String>>()?;
    let shown = cfg.url.clone();
    async_nats::ConnectOptions::new()
        .name(format!("palisade-fleet-{}", cfg.instance))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(cfg.timeout.0)
        .reconnect_delay_callback(move |attempts| backoff(attempts, max))
        .event_callback(move |event| {
            let url = shown.clone();
            async move { log::info!("fleet: NATS {url}: {event}") }
        })
        .connect(urls)
        .await
        .map_err(|e| e.to_string())
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for FleetSync {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let Some(mut q) = self.queues.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let client = match connect(&self.cfg).await {
            Ok(c) => c,
            Err(e) => {
                log::error!("fleet: cannot start the NATS client for {}: {e}", self.cfg.url);
                return;
            }
        };
        let js = jetstream::ContextBuilder::new()
            .timeout(self.cfg.timeout.0)
            .build(client.clone());
        let mut st = Sync {
            cfg: self.cfg.clone(),
            store: self.store.clone(),
            records: HashMap::new(),
            revisions: HashMap::new(),
            decided: BTreeSet::new(),
            pending: BTreeSet::new(),
            strikes: VecDeque::new(),
            probe: None,
            me: Heartbeat {
                instance: self.cfg.instance.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                ..Default::default()
            },
        };
        status::update(|v| {
            v.enabled = true;
            v.me = st.me.clone();
        });
        FLEET.connected.set(0);
        let mut session: Option<Session> = None;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_heartbeat = Instant::now();
        let (mut retry_at, mut failures) = (Instant::now(), 0);
        loop {
            let event = tokio::select! {
                _ = shutdown.changed() => Event::Shutdown,
                Some(r) = q.bans.recv() => Event::Local(r),
                Some(d) = q.strikes.recv() => Event::LocalStrikes(d),
                e = next_event(&mut session) => e,
                _ = tick.tick() => Event::Tick,
            };
            match event {
                Event::Shutdown => {
                    if let Some(kv) = session.as_ref().map(|s| s.kv.clone()) {
                        let _ = st.push_pending(&kv).await;
                        let _ = st.flush_strikes(&client).await;
                        let _ = client.flush().await;
                    }
                    return;
                }
                Event::Local(r) => {
                    st.local(r);
                    // Drain what else is queued before writing, then write at once.
                    while let Ok(r) = q.bans.try_recv() {
                        st.local(r);
                    }
                    if let Some(kv) = session.as_ref().map(|s| s.kv.clone()) {
                        if let Err(e) = st.push_pending(&kv).await {
                            lost(&mut session, &e);
                        }
                    }
                }
                Event::LocalStrikes(d) => {
                    st.local_strikes(d);
                    while let Ok(d) = q.strikes.try_recv() {
                        st.local_strikes(d);
                    }
                    if session.is_some() {
                        if let Err(e) = st.flush_strikes(&client).await {
                            lost(&mut session, &e);
                        }
                    }
                }
                Event::Entry(e) => {
                    st.on_entry(e);
                    if !st.pending.is_empty() {
                        if let Some(kv) = session.as_ref().map(|s| s.kv.clone()) {
                            if let Err(e) = st.push_pending(&kv).await {
                                lost(&mut session, &e);
                            }
                        }
                    }
                }
                Event::Strikes(m) => st.on_strikes(m),
                Event::Lost(why) => lost(&mut session, &why),
                Event::Tick => {
                    if client.connection_state() != Conn::Connected {
                        lost(&mut session, "disconnected");
                    } else if session.is_some() && st.watch_silent() {
                        lost(&mut session, "the watch did not show this instance's probe");
                    } else if session.is_none() && Instant::now() >= retry_at {
                        match st.establish(&js, &client).await {
                            Ok(s) => {
                                failures = 0;
                                log::info!(
                                    "fleet: {} synced with {} (bucket {})",
                                    self.cfg.instance,
                                    self.cfg.url,
                                    self.cfg.bans_bucket
                                );
                                FLEET.connected.set(1);
                                st.me.last_sync = now_ms();
                                let pushed = st.push_pending(&s.kv.clone()).await;
                                let flushed = st.flush_strikes(&client).await;
                                session = Some(s);
                                if let Err(e) = pushed.and(flushed) {
                                    lost(&mut session, &e);
                                }
                                next_heartbeat = Instant::now();
                            }
                            Err(e) => {
                                log::warn!("fleet: bus not ready: {e}");
                                retry_at = Instant::now() + backoff(failures, self.cfg.reconnect_max_delay.0);
                                failures += 1;
                            }
                        }
                    }
                    if Instant::now() >= next_heartbeat {
                        next_heartbeat = Instant::now() + self.cfg.heartbeat.0;
                        if let Some(kv) = session.as_ref().map(|s| s.kv.clone()) {
                            st.probe(&kv).await;
                            let _ = tokio::time::timeout(self.cfg.timeout.0, st.sweep(&kv)).await;
                        }
                        st.heartbeat(session.as_ref().map(|s| s.instances.clone())).await;
                    }
                }
            }
        }
    }
}

fn lost(session: &mut Option<Session>, why: &str) {
    if session.take().is_some() {
        log::warn!("fleet: lost the bus ({why}); enforcing what this instance knows, queueing updates");
        FLEET.connected.set(0);
    }
}

/// The next update from the bus, or never while there is no session.
async fn next_event(session: &mut Option<Session>) -> Event {
    let Some(s) = session.as_mut() else {
        return std::future::pending().await;
    };
    tokio::select! {
        e = s.watch.next() => match e {
            Some(Ok(e)) => Event::Entry(e),
            Some(Err(e)) => Event::Lost(format!("watch: {e}")),
            None => Event::Lost("watch ended".into()),
        },
        m = s.strikes.next() => match m {
            Some(m) => Event::Strikes(m),
            None => Event::Lost("strike subscription ended".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(2);
        assert_eq!(backoff(0, max), Duration::from_millis(20));
        assert_eq!(backoff(2, max), Duration::from_millis(80));
        assert_eq!(backoff(usize::MAX, max), max);
    }

    #[test]
    fn actor_in_record_matches_key() {
        let a = crate::enforce::offenders::Actor::Ip("198.51.100.1".parse().expect("ip"));
        assert_eq!(record::key(&BanRecord::unban(a.clone(), 1).actor), record::key(&a));
    }
}
