//! Local sinks: stdout, or a file rotated by size and by age, with retention by count and by
//! age. Runs on the telemetry writer thread only, never on a request.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::{Batch, Sink, SinkMetrics};

pub struct Stdout {
    out: io::Stdout,
    metrics: SinkMetrics,
}

impl Stdout {
    pub fn new(metrics: SinkMetrics) -> Self {
        Stdout {
            out: io::stdout(),
            metrics,
        }
    }
}

impl Sink for Stdout {
    fn deliver(&mut self, batch: &Batch) {
        let mut lock = self.out.lock();
        match lock.write_all(&batch.buf).and_then(|()| lock.flush()) {
            Ok(()) => self.metrics.sent.inc_by(batch.len() as u64),
            Err(e) => {
                log::error!("telemetry: stdout write failed, {} events lost: {e}", batch.len());
                self.metrics.dropped_write_error.inc_by(batch.len() as u64);
            }
        }
    }
}

pub struct FileSink {
    file: RotatingFile,
    metrics: SinkMetrics,
}

impl FileSink {
    pub fn new(file: RotatingFile, metrics: SinkMetrics) -> Self {
        FileSink { file, metrics }
    }
}

impl Sink for FileSink {
    fn deliver(&mut self, batch: &Batch) {
        match self.file.write_lines(&batch.buf, SystemTime::now()) {
            Ok(()) => self.metrics.sent.inc_by(batch.len() as u64),
            Err(e) => {
                log::error!("telemetry: file write failed, {} events lost: {e}", batch.len());
                self.metrics.dropped_write_error.inc_by(batch.len() as u64);
            }
        }
    }
}

/// An append-only file that is renamed to `NAME.1` (older ones shifted up to `NAME.keep`) once
/// it passes `max_size`, or once it is older than `rotate_every`. Rotated files older than
/// `max_age` are deleted.
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    keep: usize,
    /// When the live file was started (its creation time when the system records one).
    started: SystemTime,
    rotate_every: Option<Duration>,
    max_age: Option<Duration>,
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_size: u64, keep: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let meta = file.metadata()?;
        Ok(RotatingFile {
            path,
            file,
            size: meta.len(),
            max_size: max_size.max(1),
            keep,
            started: meta.created().unwrap_or_else(|_| SystemTime::now()),
            rotate_every: None,
            max_age: None,
        })
    }

    pub fn rotate_every(mut self, every: Option<Duration>) -> Self {
        self.rotate_every = every;
        self
    }

    pub fn max_age(mut self, age: Option<Duration>) -> Self {
        self.max_age = age;
        self
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self, now: SystemTime) -> io::Result<()> {
        if self.keep == 0 {
            self.file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&self.path)?;
            self.file = OpenOptions::new().append(true).open(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            fs::rename(&self.path, self.rotated(1))?;
            self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        }
        self.size = 0;
        self.started = now;
        self.expire(now);
        Ok(())
    }

    /// Delete rotated files last written more than `max_age` ago.
    fn expire(&self, now: SystemTime) {
        let Some(max_age) = self.max_age else { return };
        for n in 1..=self.keep {
            let p = self.rotated(n);
            let Ok(modified) = fs::metadata(&p).and_then(|m| m.modified()) else {
                continue;
            };
            if now.duration_since(modified).is_ok_and(|age| age > max_age) {
                if let Err(e) = fs::remove_file(&p) {
                    log::warn!("telemetry: cannot delete expired {}: {e}", p.display());
                }
            }
        }
    }

    /// Append whole lines in one write, so two processes appending during a hot upgrade do not
    /// interleave inside a line. Rotates first when the file is full or too old.
    pub fn write_lines(&mut self, buf: &[u8], now: SystemTime) -> io::Result<()> {
        let full = self.size + buf.len() as u64 > self.max_size;
        let old = self
            .rotate_every
            .is_some_and(|every| now.duration_since(self.started).is_ok_and(|age| age >= every));
        if self.size > 0 && (full || old) {
            self.rotate(now)?;
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.jsonl");
        let mut f = RotatingFile::open(path.clone(), 20, 2).expect("open");
        let now = SystemTime::now();
        for i in 0..5 {
            f.write_lines(format!("line-{i}-xxxxxxxxx\n").as_bytes(), now)
                .expect("write");
        }
        // 20-byte lines with a 20-byte limit: one line a file, two old files kept.
        assert_eq!(fs::read_to_string(&path).expect("live"), "line-4-xxxxxxxxx\n");
        assert_eq!(
            fs::read_to_string(dir.path().join("t.jsonl.1")).expect("1"),
            "line-3-xxxxxxxxx\n"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("t.jsonl.2")).expect("2"),
            "line-2-xxxxxxxxx\n"
        );
        assert!(!dir.path().join("t.jsonl.3").exists());
    }

    #[test]
    fn rotates_by_time_and_deletes_files_past_max_age() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.jsonl");
        let hour = Duration::from_secs(3600);
        let mut f = RotatingFile::open(path.clone(), 1 << 20, 5)
            .expect("open")
            .rotate_every(Some(hour))
            .max_age(Some(Duration::from_secs(3 * 3600)));
        let t0 = SystemTime::now();
        f.write_lines(b"a\n", t0).expect("write");
        f.write_lines(b"b\n", t0 + Duration::from_secs(600)).expect("write");
        assert_eq!(fs::read_to_string(&path).expect("live"), "a\nb\n", "not an hour yet");
        f.write_lines(b"c\n", t0 + hour).expect("write");
        assert_eq!(fs::read_to_string(&path).expect("live"), "c\n", "rotated after an hour");
        assert_eq!(fs::read_to_string(dir.path().join("t.jsonl.1")).expect("1"), "a\nb\n");
        // Ten hours on (by the injected clock), the rotated files' real mtime (now) is ten hours
        // before: both are past the 3 h retention and deleted at the next rotation.
        f.write_lines(b"d\n", t0 + 2 * hour).expect("write");
        assert!(dir.path().join("t.jsonl.2").exists());
        f.write_lines(b"e\n", t0 + 10 * hour).expect("write");
        assert_eq!(fs::read_to_string(&path).expect("live"), "e\n");
        for n in 1..=3 {
            assert!(!dir.path().join(format!("t.jsonl.{n}")).exists(), "t.jsonl.{n} kept");
        }
    }
}
