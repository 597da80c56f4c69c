//! The on-disk queue the NATS sink spills to while the bus is unreachable (telemetry writer
//! thread only). Events are appended to numbered segment files and read back in the same order;
//! a segment is deleted once every event in it was delivered. The queue holds at most `budget`
//! bytes of undelivered events; past it, `push` refuses and the caller counts a drop.
//!
//! Record format, little-endian: `u32 id length, id, u32 payload length, payload`. A record cut
//! short by a crash is ignored with the rest of its segment.
//!
//! Segment files are named `SEQ-PID.spill`, so two processes sharing the directory during a hot
//! upgrade never write to the same file. Segments of processes no longer running (a crash, or
//! the process a hot upgrade replaced) are adopted: at start, and whenever `adopt` is called.
//! Segments of a live process are left to it.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A segment is closed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 8 << 20;
const SUFFIX: &str = ".spill";

struct Segment {
    /// Unique within this queue (sequence numbers are only unique per process).
    id: u64,
    path: PathBuf,
    /// Bytes written.
    len: u64,
}

/// One spilled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spilled {
    pub id: String,
    pub payload: Vec<u8>,
}

pub struct Spill {
    dir: PathBuf,
    budget: u64,
    segments: VecDeque<Segment>,
    /// Delivered bytes at the head of the first segment.
    head: u64,
    /// Undelivered bytes.
    pending: u64,
    tail: Option<File>,
    /// The open segment being read: its id, the read position, the reader.
    reader: Option<(u64, u64, BufReader<File>)>,
    pid: u32,
    /// Sequence number of this process's next segment.
    next_seq: u64,
    next_id: u64,
}

/// `SEQ-PID.spill` → (seq, pid).
fn parse_name(name: &str) -> Option<(u64, u32)> {
    let (seq, pid) = name.strip_suffix(SUFFIX)?.split_once('-')?;
    Some((seq.parse().ok()?, pid.parse().ok()?))
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Spill {
    /// Open the queue in `dir`, taking in segments that earlier runs left there.
    pub fn open(dir: &Path, budget: u64) -> io::Result<Self> {
        Self::open_as(dir, budget, std::process::id())
    }

    /// `open` for process `pid` (tests play several processes).
    pub fn open_as(dir: &Path, budget: u64, pid: u32) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut spill = Spill {
            dir: dir.to_path_buf(),
            budget,
            segments: VecDeque::new(),
            head: 0,
            pending: 0,
            tail: None,
            reader: None,
            pid,
            next_seq: 1,
            next_id: 0,
        };
        // Files under our own pid belong to an earlier process that had it: adopt them too.
        spill.adopt_where(|p| p == pid || !alive(p))?;
        Ok(spill)
    }

    /// Adopt, after what is queued, the segments of processes no longer running. Returns the
    /// bytes taken in.
    pub fn adopt(&mut self) -> io::Result<u64> {
        let me = self.pid;
        self.adopt_where(|p| p != me && !alive(p))
    }

    fn adopt_where(&mut self, orphan: impl Fn(u32) -> bool) -> io::Result<u64> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some((seq, pid)) = entry.file_name().to_str().and_then(parse_name) else {
                continue;
            };
            let path = entry.path();
            if !orphan(pid) || self.segments.iter().any(|s| s.path == path) {
                continue;
            }
            found.push((pid, seq, path, entry.metadata()?.len()));
        }
        // One process's segments in its order; processes one after another.
        found.sort();
        let mut bytes = 0;
        for (pid, seq, path, len) in found {
            if pid == self.pid {
                self.next_seq = self.next_seq.max(seq + 1);
            }
            self.segments.push_back(Segment {
                id: self.next_id,
                path,
                len,
            });
            self.next_id += 1;
            bytes += len;
        }
        if bytes > 0 {
            // What we append next goes after the adopted segments.
            self.tail = None;
            self.pending += bytes;
            log::info!(
                "telemetry spill: adopted {bytes} bytes of spilled events in {}",
                self.dir.display()
            );
        }
        Ok(bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Undelivered bytes on disk.
    pub fn pending_bytes(&self) -> u64 {
        self.pending
    }

    /// Append events in order. Returns how many were taken: the rest would pass the budget
    /// (or the disk failed) and are the caller's to count as dropped.
    pub fn push<'a>(&mut self, events: impl Iterator<Item = (&'a str, &'a [u8])>) -> usize {
        let mut buf = Vec::new();
        let mut taken = 0;
        for (id, payload) in events {
            let size = 8 + id.len() as u64 + payload.len() as u64;
            if self.pending + buf.len() as u64 + size > self.budget {
                break;
            }
            buf.extend_from_slice(&(id.len() as u32).to_le_bytes());
            buf.extend_from_slice(id.as_bytes());
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(payload);
            taken += 1;
        }
        if taken == 0 {
            return 0;
        }
        match self.append(&buf) {
            Ok(()) => {
                self.pending += buf.len() as u64;
                taken
            }
            Err(e) => {
                log::error!("telemetry spill: cannot write to {}: {e}", self.dir.display());
                0
            }
        }
    }

    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let need_new = match (self.segments.back(), &self.tail) {
            (Some(last), Some(_)) => last.len >= SEGMENT_BYTES,
            _ => true,
        };
        if need_new {
            let seq = self.next_seq;
            let path = self.dir.join(format!("{seq:016}-{}{SUFFIX}", self.pid));
            self.tail = Some(OpenOptions::new().create(true).append(true).open(&path)?);
            self.segments.push_back(Segment {
                id: self.next_id,
                path,
                len: 0,
            });
            self.next_seq += 1;
            self.next_id += 1;
        }
        if let (Some(f), Some(last)) = (self.tail.as_mut(), self.segments.back_mut()) {
            f.write_all(buf)?;
            last.len += buf.len() as u64;
        }
        Ok(())
    }

    /// Up to `max` events from the head, in order, without removing them: pass the returned
    /// mark to `commit` once they are delivered.
    pub fn peek(&mut self, max: usize) -> io::Result<(Vec<Spilled>, Mark)> {
        let mut out = Vec::new();
        let mut mark = Mark {
            segments: 0,
            offset: self.head,
            bytes: 0,
        };
        while out.len() < max && mark.segments < self.segments.len() {
            let seg = &self.segments[mark.segments];
            if mark.offset >= seg.len {
                mark.segments += 1;
                mark.offset = 0;
                continue;
            }
            let reader = match &mut self.reader {
                Some((id, pos, r)) if *id == seg.id => {
                    if *pos != mark.offset {
                        r.seek(SeekFrom::Start(mark.offset))?;
                    }
                    r
                }
                slot => {
                    let mut r = BufReader::new(File::open(&seg.path)?);
                    r.seek(SeekFrom::Start(mark.offset))?;
                    &mut slot.insert((seg.id, mark.offset, r)).2
                }
            };
            let size = match read_record(reader, seg.len - mark.offset) {
                Some((rec, size)) => {
                    out.push(rec);
                    size
                }
                None => {
                    // Cut short by a crash: skip what is left of this segment.
                    log::warn!("telemetry spill: {} ends in a partial record", seg.path.display());
                    self.reader = None;
                    seg.len - mark.offset
                }
            };
            mark.offset += size;
            mark.bytes += size;
            if let Some((_, pos, _)) = &mut self.reader {
                *pos = mark.offset;
            }
        }
        Ok((out, mark))
    }

    /// Forget the events up to `mark` (from `peek`): they were delivered.
    pub fn commit(&mut self, mark: Mark) {
        for _ in 0..mark.segments {
            self.drop_head();
        }
        self.head = mark.offset;
        self.pending = self.pending.saturating_sub(mark.bytes);
        if self.segments.front().is_some_and(|s| self.head >= s.len) && self.segments.len() == 1 {
            // Everything delivered: start the next spill in a fresh segment.
            self.drop_head();
        }
    }

    fn drop_head(&mut self) {
        if let Some(seg) = self.segments.pop_front() {
            if let Err(e) = fs::remove_file(&seg.path) {
                log::warn!("telemetry spill: cannot delete {}: {e}", seg.path.display());
            }
            if self.reader.as_ref().is_some_and(|(id, _, _)| *id == seg.id) {
                self.reader = None;
            }
            if self.segments.is_empty() {
                self.tail = None;
            }
        }
        self.head = 0;
    }
}

/// How far a `peek` read: whole segments, then an offset into the next, and the bytes spanned.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    segments: usize,
    offset: u64,
    bytes: u64,
}

fn read_record(r: &mut impl Read, available: u64) -> Option<(Spilled, u64)> {
    let mut len = [0u8; 4];
    let take = |n: u64, r: &mut dyn Read| -> Option<Vec<u8>> {
        let mut v = vec![0; n as usize];
        r.read_exact(&mut v).ok()?;
        Some(v)
    };
    if available < 8 {
        return None;
    }
    r.read_exact(&mut len).ok()?;
    let id_len = u32::from_le_bytes(len) as u64;
    if 4 + id_len + 4 > available {
        return None;
    }
    let id = String::from_utf8(take(id_len, r)?).ok()?;
    r.read_exact(&mut len).ok()?;
    let payload_len = u32::from_le_bytes(len) as u64;
    let size = 8 + id_len + payload_len;
    if size > available {
        return None;
    }
    let payload = take(payload_len, r)?;
    Some((Spilled { id, payload }, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(range: std::ops::Range<usize>) -> Vec<(String, Vec<u8>)> {
        range
            .map(|i| (format!("id-{i:03}"), format!("{{\"n\":{i:03}}}\n").into_bytes()))
            .collect()
    }

    fn push(s: &mut Spill, ev: &[(String, Vec<u8>)]) -> usize {
        s.push(ev.iter().map(|(i, p)| (i.as_str(), p.as_slice())))
    }

    fn drain(s: &mut Spill) -> Vec<String> {
        let mut ids = Vec::new();
        loop {
            let (batch, mark) = s.peek(7).expect("peek");
            if batch.is_empty() {
                break;
            }
            ids.extend(batch.into_iter().map(|e| e.id));
            s.commit(mark);
        }
        ids
    }

    #[test]
    fn replays_in_order_and_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spill::open(dir.path(), 1 << 20).expect("open");
        assert_eq!(push(&mut s, &events(0..10)), 10);
        // Peeked but not committed (delivery failed): read again next time.
        let (first, _) = s.peek(3).expect("peek");
        assert_eq!(first[0].id, "id-000");
        drop(s);
        let mut s = Spill::open(dir.path(), 1 << 20).expect("reopen");
        assert!(!s.is_empty());
        assert_eq!(push(&mut s, &events(10..15)), 5);
        let ids = drain(&mut s);
        assert_eq!(ids, (0..15).map(|i| format!("id-{i:03}")).collect::<Vec<_>>());
        assert!(s.is_empty());
        assert_eq!(
            fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "delivered segments are deleted"
        );
    }

    #[test]
    fn refuses_past_the_budget() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ev = events(0..100);
        let one = 8 + ev[0].0.len() + ev[0].1.len();
        let mut s = Spill::open(dir.path(), (one * 10) as u64).expect("open");
        assert_eq!(push(&mut s, &ev[..8]), 8);
        assert_eq!(push(&mut s, &ev[8..20]), 2, "only what fits the budget");
        assert_eq!(push(&mut s, &ev[20..]), 0);
        let (batch, mark) = s.peek(5).expect("peek");
        assert_eq!(batch.len(), 5);
        s.commit(mark);
        assert_eq!(push(&mut s, &ev[20..]), 5, "delivered events free the budget");
        assert_eq!(drain(&mut s).len(), 10);
    }

    #[test]
    fn a_live_process_keeps_its_segments_and_orphans_are_adopted() {
        let dir = tempfile::tempdir().expect("tempdir");
        // This test process is alive: its queue is its own.
        let mut live = Spill::open_as(dir.path(), 1 << 20, std::process::id()).expect("open");
        push(&mut live, &events(0..3));
        // A process that no longer exists left two segments' worth (pid beyond any pid_max).
        let gone = u32::MAX - 1;
        let mut dead = Spill::open_as(dir.path(), 1 << 20, gone).expect("open");
        push(&mut dead, &events(10..12));
        drop(dead);
        // The next process (another pid) takes in only the dead one's events.
        let mut next = Spill::open_as(dir.path(), 1 << 20, u32::MAX - 2).expect("open");
        push(&mut next, &events(20..21));
        assert_eq!(drain(&mut next), vec!["id-010", "id-011", "id-020"]);
        assert_eq!(next.adopt().expect("adopt"), 0, "nothing new to adopt");
        assert_eq!(drain(&mut live), vec!["id-000", "id-001", "id-002"]);
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn a_partial_record_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spill::open(dir.path(), 1 << 20).expect("open");
        push(&mut s, &events(0..3));
        drop(s);
        let seg = fs::read_dir(dir.path())
            .expect("dir")
            .next()
            .expect("segment")
            .expect("entry");
        let f = OpenOptions::new().append(true).open(seg.path()).expect("open");
        f.set_len(seg.metadata().expect("meta").len() - 3).expect("truncate");
        let mut s = Spill::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(drain(&mut s), vec!["id-000", "id-001"]);
        push(&mut s, &events(3..4));
        assert_eq!(drain(&mut s), vec!["id-003"]);
    }
}
