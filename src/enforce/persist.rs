//! Saving strikes and bans to a JSON state file, so they survive restarts and hot upgrades.
//!
//! Writes are atomic (temporary file, fsync, rename). A process killed between saves loses at
//! most `save_interval` of changes. During a hot upgrade the new process loads the file at
//! start and merges it again whenever another process (the old one, saving as it shuts down)
//! rewrites it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::offenders::{now_ms, Actor, Millis, Offenders, Penalty, Score};

/// Version of the state file format.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: u32,
    saved_at: Millis,
    penalties: Vec<(Actor, Penalty)>,
    scores: Vec<(Actor, Score)>,
}

/// Write the state atomically.
pub fn save(o: &Offenders, path: &Path) -> std::io::Result<()> {
    let state = StateFile {
        format: FORMAT,
        saved_at: now_ms(),
        penalties: o.list(),
        scores: o.scores(),
    };
    let bytes = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// Merge the state file into `o`. A missing file is an empty state.
pub fn load(o: &Offenders, path: &Path) -> std::io::Result<()> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let state: StateFile = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::other(format!("{}: not a Palisade state file: {e}", path.display())))?;
    if state.format != FORMAT {
        return Err(std::io::Error::other(format!(
            "{}: unknown state format {}",
            path.display(),
            state.format
        )));
    }
    o.merge(state.penalties, state.scores);
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Keeps the state file and the live tracker in step: saves changes every `interval` and at
/// shutdown, and merges the file back when another process rewrote it.
pub struct StateKeeper {
    /// The tracker every snapshot shares (reloads carry it over).
    pub offenders: Arc<Offenders>,
    pub path: PathBuf,
    pub interval: Duration,
}

impl StateKeeper {
    fn save_now(&self, o: &Offenders) -> Option<SystemTime> {
        match save(o, &self.path) {
            Ok(()) => modified(&self.path),
            Err(e) => {
                log::error!("cannot save offender state to {}: {e}", self.path.display());
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for StateKeeper {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let mut ours = modified(&self.path);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    self.save_now(&self.offenders);
                    log::info!("saved offender state to {}", self.path.display());
                    return;
                }
                _ = tokio::time::sleep(self.interval) => {}
            }
            let o = &self.offenders;
            let now = modified(&self.path);
            if now.is_some() && now != ours {
                // Someone else wrote it: the previous process during a hot upgrade.
                match load(o, &self.path) {
                    Ok(()) => log::info!("merged offender state written by another process"),
                    Err(e) => log::error!("{e}"),
                }
                ours = now;
            }
            if o.take_dirty() {
                ours = self.save_now(o).or(ours);
            }
        }
    }
}
