//! Where telemetry lines go: stdout, or a file rotated by size. Runs on the telemetry writer
//! thread only, never on a request.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

pub enum Sink {
    Stdout(io::Stdout),
    File(RotatingFile),
}

impl Sink {
    /// Write whole lines in one call, so two processes appending during a hot upgrade do not
    /// interleave inside a line.
    pub fn write_lines(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => {
                let mut lock = s.lock();
                lock.write_all(buf)?;
                lock.flush()
            }
            Sink::File(f) => f.write_lines(buf),
        }
    }
}

/// An append-only file that is renamed to `NAME.1` (older ones shifted up to `NAME.keep`)
/// once it passes `max_size`.
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    keep: usize,
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_size: u64, keep: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            file,
            size,
            max_size: max_size.max(1),
            keep,
        })
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> io::Result<()> {
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
        Ok(())
    }

    fn write_lines(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_size {
            self.rotate()?;
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
        for i in 0..5 {
            f.write_lines(format!("line-{i}-xxxxxxxxx\n").as_bytes())
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
}
