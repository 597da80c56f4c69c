//! Telemetry pipeline. The `logging` phase captures a `Record` (event.rs), updates the actor's
//! behavioural indicators (indicators.rs), applies sampling and hands the record to a bounded
//! queue with `try_send`: a full queue drops it and counts it, so telemetry never makes a
//! request wait. One writer thread turns records into JSON lines (hashing addresses when
//! configured) and delivers them in batches to the sink: stdout, a rotating file (sink.rs) or
//! NATS JetStream with an on-disk spill queue (nats.rs, spill.rs).

pub mod event;
pub mod feed;
pub mod indicators;
mod json;
pub mod nats;
pub mod sink;
pub mod spill;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

pub use event::{Record, Redaction};
use hmac::{Hmac, Mac};
use indicators::{ActorTable, Observation, Penalties};
use prometheus::IntCounter;
use sha2::Sha256;
use sink::{RotatingFile, Stdout};

use crate::config::file::{SinkKind, TelemetrySection};
use crate::enforce::offenders::{Actor, BanPolicy, Millis, Offenders, PenaltyKind};
use crate::metrics::METRICS;

/// Bytes of serialized events gathered before one write to a file or stdout.
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// Pause of the writer after each batch. Under load, records gather in the queue meanwhile and
/// the request threads never find the writer blocked: each record queued for a blocked writer
/// cost the request thread a futex wake and a context switch, a third of Palisade's CPU per
/// request in benches/peers (docs/performance.md). Telemetry lags by at most this much more.
/// 10 ms rather than 2: the writer then wakes, and switches the proxy's core away from a
/// request thread, a fifth as often (0.005 instead of 0.015 voluntary switches per request at
/// full load), which cost 0.7 µs of CPU per request in the same peer-bench run; at 100,000
/// requests a second the queue holds 1,000 events meanwhile, of its 65,536.
const WRITER_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);
/// Pseudonyms remembered by the writer before its cache is cleared.
const PSEUDONYM_CACHE: usize = 65_536;

/// Counters of one sink, resolved once so the request path only does atomic adds.
#[derive(Clone)]
pub struct SinkMetrics {
    pub emitted: IntCounter,
    pub sent: IntCounter,
    pub spilled: IntCounter,
    pub replayed: IntCounter,
    pub dropped_queue_full: IntCounter,
    pub dropped_spill_budget: IntCounter,
    pub dropped_write_error: IntCounter,
    /// Stays at zero: encoding an event (json.rs) cannot fail. The series is kept because
    /// docs/telemetry.md lists the reason and alerts may watch it.
    pub dropped_encode_error: IntCounter,
}

impl SinkMetrics {
    pub fn new(sink: &str) -> Self {
        let dropped = |reason: &str| METRICS.telemetry_dropped.with_label_values(&[sink, reason]);
        SinkMetrics {
            emitted: METRICS.telemetry_emitted.with_label_values(&[sink]),
            sent: METRICS.telemetry_sent.with_label_values(&[sink]),
            spilled: METRICS.telemetry_spilled.with_label_values(&[sink]),
            replayed: METRICS.telemetry_replayed.with_label_values(&[sink]),
            dropped_queue_full: dropped("queue_full"),
            dropped_spill_budget: dropped("spill_budget"),
            dropped_write_error: dropped("write_error"),
            dropped_encode_error: dropped("encode_error"),
        }
    }
}

/// The request side of the pipeline; cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    tx: Option<SyncSender<Box<Record>>>,
    indicators: Option<Arc<ActorTable>>,
    /// Share of allowed requests recorded.
    sample_allowed: f64,
    metrics: Option<SinkMetrics>,
}

impl Telemetry {
    /// Telemetry that records nothing.
    pub fn off() -> Self {
        Telemetry {
            tx: None,
            indicators: None,
            sample_allowed: 1.0,
            metrics: None,
        }
    }

    /// Open the sink and make the queue. Events queue from now on; they are written once the
    /// returned `Writer` runs (`spawn`, or as a background service so that it starts after
    /// the process has daemonized: a thread started before the fork would not survive it).
    /// `config_file` resolves `ip_hash_key_file`.
    pub fn start(cfg: &TelemetrySection, config_file: Option<&Path>) -> io::Result<(Self, Option<Writer>)> {
        let (sink, name): (Box<dyn Sink>, &str) = match cfg.sink {
            SinkKind::Off => return Ok((Self::off(), None)),
            SinkKind::Stdout => (Box::new(Stdout::new(SinkMetrics::new("stdout"))), "stdout"),
            SinkKind::File => {
                let path = cfg
                    .path
                    .clone()
                    .ok_or_else(|| io::Error::other("telemetry file sink without a path"))?;
                let file = RotatingFile::open(path, cfg.max_file_size.0, cfg.keep_files)?
                    .rotate_every(cfg.rotate_every.map(|d| d.0))
                    .max_age(cfg.max_age.map(|d| d.0));
                (Box::new(sink::FileSink::new(file, SinkMetrics::new("file"))), "file")
            }
            SinkKind::Nats => {
                let n = cfg
                    .nats
                    .as_ref()
                    .ok_or_else(|| io::Error::other("telemetry nats sink without a `nats` section"))?;
                (Box::new(nats::NatsSink::start(n, SinkMetrics::new("nats"))?), "nats")
            }
        };
        let key = match &cfg.ip_hash_key_file {
            Some(f) => {
                let f = crate::config::validate::resolve(config_file.unwrap_or(Path::new("")), f);
                let k = std::fs::read(&f).map_err(|e| io::Error::other(format!("{}: {e}", f.display())))?;
                Some(k.trim_ascii().to_vec())
            }
            None => None,
        };
        let (tx, rx) = sync_channel(cfg.queue_capacity.max(1));
        let writer = Writer {
            pending: Mutex::new(Some(WriterParts {
                rx,
                sink,
                pseudonyms: key.map(Pseudonyms::new),
            })),
        };
        let telemetry = Telemetry {
            tx: Some(tx),
            indicators: (cfg.indicator_actors > 0).then(|| Arc::new(ActorTable::new(cfg.indicator_actors))),
            sample_allowed: cfg.sample_allowed,
            metrics: Some(SinkMetrics::new(name)),
        };
        Ok((telemetry, Some(writer)))
    }

    /// A pipeline writing into `sink`, for benchmarks and tests.
    pub fn with_sink(sink: Box<dyn Sink>, queue: usize, actors: usize, metrics: SinkMetrics) -> (Self, Writer) {
        let (tx, rx) = sync_channel(queue.max(1));
        let writer = Writer {
            pending: Mutex::new(Some(WriterParts {
                rx,
                sink,
                pseudonyms: None,
            })),
        };
        let telemetry = Telemetry {
            tx: Some(tx),
            indicators: (actors > 0).then(|| Arc::new(ActorTable::new(actors))),
            sample_allowed: 1.0,
            metrics: Some(metrics),
        };
        (telemetry, writer)
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Count the request in its actor's indicators, then queue its record unless sampling
    /// leaves an allowed request out. Never blocks; a full queue drops the record and counts
    /// its events.
    pub fn emit(&self, mut rec: Record, offenders: &Offenders, bans: Option<&BanPolicy>, now_ms: Millis) {
        let Some(tx) = &self.tx else { return };
        if let (Some(table), Some(ip)) = (&self.indicators, rec.client_ip) {
            let struck = rec.verdict.enforced() || rec.verdict.observed.strikes > 0;
            let obs = Observation {
                ip,
                path: rec.uri.path().as_bytes(),
                user_agent: rec.user_agent.as_ref().map_or(b"", |u| u.as_bytes()),
                status: rec.status,
                now_ms,
            };
            rec.indicators = Some(table.observe(&obs, struck, |ever| penalties(offenders, bans, ip, ever, now_ms)));
        }
        if rec.is_plain_allow() && self.sample_allowed < 1.0 && fastrand::f64() >= self.sample_allowed {
            return;
        }
        let events = 1 + u64::from(rec.is_alert());
        let Some(m) = &self.metrics else { return };
        m.emitted.inc_by(events);
        match tx.try_send(Box::new(rec)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => m.dropped_queue_full.inc_by(events),
        }
    }
}

/// Ban state and strike score of a client address. The score sits behind the offenders'
/// mutex, so it is read only for actors that were refused or struck (`ever_struck`).
fn penalties(offenders: &Offenders, bans: Option<&BanPolicy>, ip: IpAddr, ever_struck: bool, now: Millis) -> Penalties {
    let ban = match offenders.check(ip, None, now).map(|(_, p)| p.kind) {
        Some(PenaltyKind::Ban) => "banned",
        Some(PenaltyKind::Throttle) => "probation",
        None => "none",
    };
    let strike_score = match (ever_struck, bans) {
        (true, Some(b)) => offenders.score(&Actor::Ip(ip), now, b.window) as f32,
        _ => 0.0,
    };
    Penalties { ban, strike_score }
}

/// Serialized events on their way to a sink: JSON lines in one buffer, each with its id.
#[derive(Default)]
pub struct Batch {
    pub buf: Vec<u8>,
    ids: String,
    entries: Vec<(Range<usize>, Range<usize>)>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each event's id (`event.id`, also the NATS message id) and its line, newline included.
    pub fn events(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries
            .iter()
            .map(|(id, line)| (&self.ids[id.clone()], &self.buf[line.clone()]))
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.ids.clear();
        self.entries.clear();
    }

    /// Append one event line.
    fn push(&mut self, rec: &Record, alert: bool, aliases: Option<&event::Aliases>) {
        let start = self.buf.len();
        let view = event::EventView {
            record: rec,
            alert,
            aliases,
        };
        view.write_json(&mut self.buf);
        self.buf.push(b'\n');
        let id_start = self.ids.len();
        self.ids.push_str(&rec.request_id);
        if alert {
            self.ids.push_str(event::ALERT_ID_SUFFIX);
        }
        self.entries.push((id_start..self.ids.len(), start..self.buf.len()));
    }
}

/// Where the writer delivers batches. Runs on the writer thread only.
pub trait Sink: Send {
    /// Deliver (or spill) every event of the batch, counting what happened to each.
    fn deliver(&mut self, batch: &Batch);
    /// Work that does not wait for new events (reconnecting, replaying the spill queue).
    /// Returns how soon to call again, or `None` when nothing is pending.
    fn tick(&mut self) -> Option<std::time::Duration> {
        None
    }
    /// Events gathered into one batch at most.
    fn batch_events(&self) -> usize {
        usize::MAX
    }
}

/// HMAC-SHA256 pseudonyms of addresses, cached: the same address always gets the same one.
struct Pseudonyms {
    mac: Hmac<Sha256>,
    cache: HashMap<IpAddr, String>,
}

impl Pseudonyms {
    fn new(key: Vec<u8>) -> Self {
        // HMAC takes keys of any length.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
        Pseudonyms {
            mac,
            cache: HashMap::new(),
        }
    }

    fn get(&mut self, ip: IpAddr) -> String {
        if let Some(p) = self.cache.get(&ip) {
            return p.clone();
        }
        if self.cache.len() >= PSEUDONYM_CACHE {
            self.cache.clear();
        }
        let p = pseudonym(&self.mac, ip);
        self.cache.insert(ip, p.clone());
        p
    }

    fn aliases(&mut self, rec: &Record) -> event::Aliases {
        event::Aliases {
            client: rec.client_ip.map(|ip| self.get(ip)),
            source: rec.peer.map(|p| self.get(p.ip())),
        }
    }
}

/// The pseudonym of an address: HMAC-SHA256 over its text form, first 32 hex digits.
pub fn pseudonym(mac: &Hmac<Sha256>, ip: IpAddr) -> String {
    let mut m = mac.clone();
    m.update(ip.to_string().as_bytes());
    let digest = m.finalize().into_bytes();
    hex::encode(&digest[..16])
}

/// The pseudonym of `ip` under `key`, as `client.address` records it.
pub fn pseudonym_with_key(key: &[u8], ip: IpAddr) -> String {
    let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    pseudonym(&mac, ip)
}

struct WriterParts {
    rx: Receiver<Box<Record>>,
    sink: Box<dyn Sink>,
    pseudonyms: Option<Pseudonyms>,
}

/// The writing half of the pipeline: one thread that serializes and delivers queued records.
pub struct Writer {
    pending: Mutex<Option<WriterParts>>,
}

impl Writer {
    /// Start the writer thread; later calls do nothing.
    pub fn spawn(&self) -> io::Result<Option<thread::JoinHandle<()>>> {
        let taken = self.pending.lock().map_or(None, |mut p| p.take());
        match taken {
            Some(parts) => thread::Builder::new()
                .name("palisade-telemetry".into())
                .spawn(move || write_loop(parts))
                .map(Some),
            None => Ok(None),
        }
    }
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Writer {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        if let Err(e) = self.spawn() {
            log::error!("cannot start the telemetry writer; events will be dropped and counted: {e}");
        }
    }
}

/// Gather what is queued into batches (bounded in bytes and in events) and deliver them; flush
/// as soon as the queue is empty so readers see events promptly. Between events, let the sink
/// do its own pending work. Ends when every `Telemetry` handle is gone.
fn write_loop(mut parts: WriterParts) {
    let mut batch = Batch {
        buf: Vec::with_capacity(WRITE_BATCH_BYTES * 2),
        ..Batch::default()
    };
    let max_events = parts.sink.batch_events();
    let mut wait = parts.sink.tick();
    loop {
        // Block only when nothing is queued (see WRITER_PAUSE).
        let first = match parts.rx.try_recv() {
            Ok(r) => r,
            Err(_) => match wait {
                Some(t) => match parts.rx.recv_timeout(t) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout) => {
                        wait = parts.sink.tick();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match parts.rx.recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            },
        };
        let mut next = Some(first);
        while let Some(rec) = next {
            add(&mut batch, &rec, parts.pseudonyms.as_mut());
            if batch.buf.len() >= WRITE_BATCH_BYTES || batch.len() >= max_events {
                parts.sink.deliver(&batch);
                batch.clear();
            }
            next = parts.rx.try_recv().ok();
        }
        if !batch.is_empty() {
            parts.sink.deliver(&batch);
            batch.clear();
        }
        wait = parts.sink.tick();
        thread::sleep(WRITER_PAUSE);
    }
    // Last chance for pending work (e.g. a spill replay) before the thread ends.
    parts.sink.tick();
}

fn add(batch: &mut Batch, rec: &Record, pseudonyms: Option<&mut Pseudonyms>) {
    let aliases = pseudonyms.map(|p| p.aliases(rec));
    batch.push(rec, false, aliases.as_ref());
    if rec.is_alert() {
        batch.push(rec, true, aliases.as_ref());
    }
}
