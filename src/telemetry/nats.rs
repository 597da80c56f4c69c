//! The NATS JetStream sink (telemetry writer thread). Events are published in batches to
//! `subject`, each with `Nats-Msg-Id` = its `event.id`, so the stream drops a copy sent again
//! after a lost acknowledgement. The stream is created when missing.
//!
//! Nothing is lost while the bus is away: when the client is not connected, or a publish is not
//! acknowledged, that event and every later one go to the on-disk spill queue (spill.rs), and
//! while the queue holds anything new events join its tail, so order is kept. Once connected
//! again, the queue is replayed, oldest first, before anything new is published. Only past the
//! spill budget are events dropped, and counted. The client reconnects by itself, with
//! exponential backoff capped at `reconnect_max_delay`.
//!
//! The tokio runtime and the client are made on the writer thread at its first call, so they
//! are created after the process daemonized (threads do not survive a fork).

use std::io;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::{self, context::ContextBuilder, message::PublishMessage, stream};
use bytes::Bytes;

use super::spill::Spill;
use super::{Batch, Sink, SinkMetrics};
use crate::config::file::NatsSection;

/// How often the writer looks at the connection while events wait in the spill queue.
const POLL: Duration = Duration::from_millis(50);
/// First reconnect delay; doubled per attempt up to `reconnect_max_delay`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Spill batches replayed per tick before new events get a turn at the queue.
const REPLAY_BATCHES_PER_TICK: usize = 8;
/// How often the spill directory is searched for segments a finished process left (the one a
/// hot upgrade replaced, while NATS was away).
const ADOPT_EVERY: Duration = Duration::from_secs(10);

struct Bus {
    rt: tokio::runtime::Runtime,
    client: async_nats::Client,
    js: jetstream::Context,
}

pub struct NatsSink {
    cfg: NatsSection,
    bus: Option<Bus>,
    /// The stream is known to exist on the server we are connected to.
    stream_ok: bool,
    /// No stream check before this instant (backoff after a failed one).
    next_check: Instant,
    backoff: Duration,
    spill: Spill,
    last_adopt: Instant,
    metrics: SinkMetrics,
}

impl NatsSink {
    /// Open the spill queue (events left by an earlier run are replayed first). Connecting
    /// waits for the writer thread.
    pub fn start(cfg: &NatsSection, metrics: SinkMetrics) -> io::Result<Self> {
        let spill = Spill::open(&cfg.spill_dir, cfg.spill_budget.0)?;
        if !spill.is_empty() {
            log::info!(
                "telemetry: {} bytes of spilled events in {} will be replayed to NATS",
                spill.pending_bytes(),
                cfg.spill_dir.display()
            );
        }
        Ok(NatsSink {
            cfg: cfg.clone(),
            bus: None,
            stream_ok: false,
            next_check: Instant::now(),
            backoff: FIRST_BACKOFF,
            spill,
            last_adopt: Instant::now(),
            metrics,
        })
    }

    /// Connected, with the stream in place: events can be published.
    fn ready(&mut self) -> bool {
        let max = self.cfg.reconnect_max_delay.0;
        if self.bus.is_none() {
            match connect(&self.cfg) {
                Ok(b) => self.bus = Some(b),
                Err(e) => {
                    log::error!("telemetry: cannot start the NATS client for {}: {e}", self.cfg.url);
                    return false;
                }
            }
        }
        let Some(bus) = self.bus.as_ref() else { return false };
        if bus.client.connection_state() != State::Connected {
            self.stream_ok = false;
            return false;
        }
        if self.stream_ok {
            return true;
        }
        if Instant::now() < self.next_check {
            return false;
        }
        let config = stream::Config {
            name: self.cfg.stream.clone(),
            subjects: vec![self.cfg.subject.clone()],
            duplicate_window: self.cfg.duplicate_window.0,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let timeout = self.cfg.ack_timeout.0;
        let result = bus.rt.block_on(async {
            tokio::time::timeout(timeout, bus.js.get_or_create_stream(config))
                .await
                .map_err(|_| "timed out".to_string())?
                .map_err(|e| e.to_string())
        });
        match result {
            Ok(_) => {
                log::info!(
                    "telemetry: publishing to NATS stream {} ({})",
                    self.cfg.stream,
                    self.cfg.subject
                );
                self.stream_ok = true;
                self.backoff = FIRST_BACKOFF;
            }
            Err(e) => {
                log::warn!("telemetry: NATS stream {} not ready: {e}", self.cfg.stream);
                self.next_check = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(max);
            }
        }
        self.stream_ok
    }

    /// Publish in order; `Ok(n)` when all `n` were acknowledged, `Err(k)` when the `k`th was
    /// not (those before it were).
    fn publish<'a>(&mut self, events: impl Iterator<Item = (&'a str, &'a [u8])>) -> Result<usize, usize> {
        let Some(bus) = self.bus.as_ref() else { return Err(0) };
        let subject = self.cfg.subject.clone();
        let result = bus.rt.block_on(async {
            let mut acks = Vec::new();
            for (id, line) in events {
                let payload = Bytes::copy_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
                let msg = PublishMessage::build().payload(payload).message_id(id);
                match bus.js.send_publish(subject.clone(), msg).await {
                    Ok(ack) => acks.push(ack),
                    Err(e) => {
                        log::warn!("telemetry: NATS publish failed: {e}");
                        break;
                    }
                }
            }
            let sent = acks.len();
            for (i, ack) in acks.into_iter().enumerate() {
                if let Err(e) = ack.await {
                    log::warn!("telemetry: NATS did not acknowledge an event: {e}");
                    return Err(i);
                }
            }
            Ok(sent)
        });
        if result.is_err() {
            self.stream_ok = false;
        }
        result
    }

    fn spill<'a>(&mut self, events: impl Iterator<Item = (&'a str, &'a [u8])>, n: usize) {
        let taken = self
            .spill
            .push(events.map(|(id, line)| (id, line.strip_suffix(b"\n").unwrap_or(line))));
        self.metrics.spilled.inc_by(taken as u64);
        if taken < n {
            log::warn!("telemetry: spill queue full, {} events dropped", n - taken);
            self.metrics.dropped_spill_budget.inc_by((n - taken) as u64);
        }
    }

    /// Replay a few batches of the spill queue. False when the bus failed on the way.
    fn replay(&mut self) -> bool {
        for _ in 0..REPLAY_BATCHES_PER_TICK {
            let (events, mark) = match self.spill.peek(self.cfg.batch_size) {
                Ok(p) => p,
                Err(e) => {
                    log::error!("telemetry: cannot read the spill queue: {e}");
                    return false;
                }
            };
            if events.is_empty() {
                self.spill.commit(mark);
                return true;
            }
            let n = events.len();
            match self.publish(events.iter().map(|e| (e.id.as_str(), e.payload.as_slice()))) {
                Ok(_) => {
                    self.spill.commit(mark);
                    self.metrics.sent.inc_by(n as u64);
                    self.metrics.replayed.inc_by(n as u64);
                }
                // Not committed: the whole batch is read again; the stream drops the ones it
                // already has (same message id).
                Err(_) => return false,
            }
            if self.spill.is_empty() {
                log::info!("telemetry: spill queue replayed to NATS");
                return true;
            }
        }
        true
    }
}

impl Sink for NatsSink {
    fn deliver(&mut self, batch: &Batch) {
        let n = batch.len();
        if !self.spill.is_empty() || !self.ready() {
            self.spill(batch.events(), n);
            return;
        }
        match self.publish(batch.events()) {
            Ok(sent) => {
                self.metrics.sent.inc_by(sent as u64);
                if sent < n {
                    self.spill(batch.events().skip(sent), n - sent);
                }
            }
            Err(k) => {
                self.metrics.sent.inc_by(k as u64);
                self.spill(batch.events().skip(k), n - k);
            }
        }
    }

    fn tick(&mut self) -> Option<Duration> {
        if self.last_adopt.elapsed() >= ADOPT_EVERY {
            self.last_adopt = Instant::now();
            if let Err(e) = self.spill.adopt() {
                log::warn!("telemetry: cannot look for spilled events of finished processes: {e}");
            }
        }
        // Also connects at the writer's start, so the first events need not wait for it.
        if !self.ready() {
            return Some(POLL);
        }
        if self.spill.is_empty() {
            // Nothing pending: wake up now and then only to look for orphaned segments.
            return Some(ADOPT_EVERY);
        }
        match (self.replay(), self.spill.is_empty()) {
            (_, true) => Some(ADOPT_EVERY),
            // More to replay: come back at once, after a look at the queue.
            (true, false) => Some(Duration::ZERO),
            (false, false) => Some(POLL),
        }
    }

    fn batch_events(&self) -> usize {
        self.cfg.batch_size
    }
}

fn connect(cfg: &NatsSection) -> io::Result<Bus> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("palisade-nats")
        .enable_all()
        .build()?;
    let max = cfg.reconnect_max_delay.0;
    let url = cfg.url.clone();
    let client = rt
        .block_on(
            async_nats::ConnectOptions::new()
                .name("palisade")
                .retry_on_initial_connect()
                .max_reconnects(None)
                .connection_timeout(cfg.ack_timeout.0)
                .reconnect_delay_callback(move |attempts| backoff(attempts, max))
                .event_callback(move |event| {
                    let url = url.clone();
                    async move { log::info!("telemetry: NATS {url}: {event}") }
                })
                .connect(cfg.url.as_str()),
        )
        .map_err(io::Error::other)?;
    // The context spawns its acknowledgement task: it needs the runtime entered.
    let js = {
        let _runtime = rt.enter();
        ContextBuilder::new().timeout(cfg.ack_timeout.0).build(client.clone())
    };
    Ok(Bus { rt, client, js })
}

/// Delay before reconnect attempt `attempts`: 50 ms doubled each time, capped at `max`.
pub fn backoff(attempts: usize, max: Duration) -> Duration {
    let factor = 1u32 << attempts.min(16);
    FIRST_BACKOFF.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(5);
        assert_eq!(backoff(0, max), Duration::from_millis(50));
        assert_eq!(backoff(3, max), Duration::from_millis(400));
        assert_eq!(backoff(10, max), max);
        assert_eq!(backoff(usize::MAX, max), max);
    }
}
