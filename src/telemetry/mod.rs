//! Telemetry pipeline: the `logging` phase hands each event to a bounded queue with `try_send`;
//! one writer thread serializes and writes them. A full queue drops the event and counts it:
//! telemetry never makes a request wait.

pub mod event;
pub mod sink;

use std::io;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
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

    /// Open the sink and start the writer thread.
    pub fn start(cfg: &TelemetrySection) -> io::Result<Self> {
        let sink = match cfg.sink {
            SinkKind::Off => return Ok(Self::off()),
            SinkKind::Stdout => Sink::Stdout(io::stdout()),
            SinkKind::File => {
                let path = cfg.path.clone().ok_or_else(|| io::Error::other("telemetry file sink without a path"))?;
                Sink::File(RotatingFile::open(path, cfg.max_file_size.0, cfg.keep_files)?)
            }
        };
        let (tx, rx) = sync_channel(cfg.queue_capacity.max(1));
        thread::Builder::new().name("palisade-telemetry".into()).spawn(move || write_loop(rx, sink))?;
        Ok(Telemetry { tx: Some(tx) })
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
