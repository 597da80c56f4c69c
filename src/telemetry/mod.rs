//! Telemetry pipeline: the `logging` phase hands each event to a bounded queue with `try_send`;
//! one writer thread serializes and writes them. A full queue drops the event and counts it:
//! telemetry never makes a request wait.

pub mod event;
pub mod sink;

use std::io;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread;

pub use event::Event;
use sink::{RotatingFile, Sink};

use crate::config::file::{SinkKind, TelemetrySection};
use crate::metrics::METRICS;

/// Bytes of serialized events gathered before one write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct Telemetry {
    tx: Option<SyncSender<Event>>,
}

impl Telemetry {
    /// Telemetry that records nothing.
    pub fn off() -> Self {
        Telemetry { tx: None }
    }

    /// Open the sink and make the queue. Events queue from now on; they are written once the
    /// returned `Writer` runs (`spawn`, or as a background service so that it starts after
    /// the process has daemonized: a thread started before the fork would not survive it).
    pub fn start(cfg: &TelemetrySection) -> io::Result<(Self, Option<Writer>)> {
        let sink = match cfg.sink {
            SinkKind::Off => return Ok((Self::off(), None)),
            SinkKind::Stdout => Sink::Stdout(io::stdout()),
            SinkKind::File => {
                let path = cfg
                    .path
                    .clone()
                    .ok_or_else(|| io::Error::other("telemetry file sink without a path"))?;
                Sink::File(RotatingFile::open(path, cfg.max_file_size.0, cfg.keep_files)?)
            }
        };
        let (tx, rx) = sync_channel(cfg.queue_capacity.max(1));
        let writer = Writer {
            pending: Mutex::new(Some((rx, sink))),
        };
        Ok((Telemetry { tx: Some(tx) }, Some(writer)))
    }

    /// Queue an event; never blocks.
    pub fn emit(&self, ev: Event) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(ev) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => METRICS.telemetry_dropped.inc(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }
}

/// The writing half of the pipeline: one thread that serializes and writes queued events.
pub struct Writer {
    pending: Mutex<Option<(Receiver<Event>, Sink)>>,
}

impl Writer {
    /// Start the writer thread; later calls do nothing.
    pub fn spawn(&self) -> io::Result<()> {
        let taken = self.pending.lock().map_or(None, |mut p| p.take());
        if let Some((rx, sink)) = taken {
            thread::Builder::new()
                .name("palisade-telemetry".into())
                .spawn(move || write_loop(rx, sink))?;
        }
        Ok(())
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

fn write_loop(rx: Receiver<Event>, mut sink: Sink) {
    let mut buf = Vec::with_capacity(WRITE_BATCH_BYTES * 2);
    while let Ok(first) = rx.recv() {
        let mut count = 0u64;
        let mut next = Some(first);
        // Drain what is queued, writing in batches; flush as soon as the queue is empty so
        // readers see events promptly.
        while let Some(ev) = next {
            if serde_json::to_writer(&mut buf, &ev).is_ok() {
                buf.push(b'\n');
                count += 1;
            } else {
                METRICS.telemetry_dropped.inc();
            }
            if buf.len() >= WRITE_BATCH_BYTES {
                flush(&mut sink, &mut buf, &mut count);
            }
            next = rx.try_recv().ok();
        }
        flush(&mut sink, &mut buf, &mut count);
    }
}

fn flush(sink: &mut Sink, buf: &mut Vec<u8>, count: &mut u64) {
    if buf.is_empty() {
        return;
    }
    match sink.write_lines(buf) {
        Ok(()) => METRICS.telemetry_events.inc_by(*count),
        Err(e) => {
            log::error!("telemetry sink write failed, {count} events lost: {e}");
            METRICS.telemetry_dropped.inc_by(*count);
        }
    }
    buf.clear();
    *count = 0;
}
