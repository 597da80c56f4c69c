//! Saving strikes and bans to a JSON state file, so they survive restarts and hot upgrades.
//!
//! Writes are atomic (temporary file, fsync, rename) and the file is readable by its owner
//! only. A process killed between saves loses at most `save_interval` of changes. During a hot
//! upgrade the new process loads the file at start and merges it again whenever another
//! process (the old one, saving as it shuts down) rewrites it.
//!
//! Identities are stored as their keyed pseudonyms (identity.rs), never as the values. Format
//! 1 files, written before identities were pseudonymised, held the values themselves: they are
//! migrated on load (each value replaced by its pseudonym) and the caller rewrites the file at
//! once, so no value stays on disk longer than the start of the new process.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::offenders::{now_ms, Actor, Millis, Offenders, Penalty, Score};

/// Version of the state file format. 2: identities as pseudonyms. 1: identities in clear.
const FORMAT: u32 = 2;
/// The format that held identities in clear; migrated on load.
const FORMAT_CLEAR_IDENTITIES: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile<A> {
    format: u32,
    saved_at: Millis,
    penalties: Vec<(A, Penalty)>,
    scores: Vec<(A, Score)>,
}

/// Just the format number, read first to pick the shape of the rest.
#[derive(Deserialize)]
struct Format {
    format: u32,
}

/// An actor as format 1 wrote it: an identity is its raw value.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ClearActor {
    Ip(IpAddr),
    Id(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a Palisade state file: {source}", path.display())]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("{}: unknown state format {format} (this Palisade reads formats 1 and 2)", path.display())]
    Format { path: PathBuf, format: u32 },
}

/// What loading found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Identities that were stored in clear (format 1) and are now pseudonyms in memory only:
    /// the file should be rewritten at once.
    pub migrated: usize,
}

/// Write the state atomically.
pub fn save(o: &Offenders, path: &Path) -> std::io::Result<()> {
    let state = StateFile::<Actor> {
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
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?
    };
    f.write_all(&bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// Merge the state file into `o`. A missing file is an empty state. A format 1 file's clear
/// identities are replaced by their pseudonyms under `o`'s key (`Loaded::migrated` counts them).
pub fn load(o: &Offenders, path: &Path) -> Result<Loaded, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let parse_error = |source| StateError::Parse {
        path: path.to_path_buf(),
        source,
    };
    let Format { format } = serde_json::from_slice(&bytes).map_err(parse_error)?;
    match format {
        FORMAT => {
            let state: StateFile<Actor> = serde_json::from_slice(&bytes).map_err(parse_error)?;
            o.merge(state.penalties, state.scores);
            Ok(Loaded::default())
        }
        FORMAT_CLEAR_IDENTITIES => {
            let state: StateFile<ClearActor> = serde_json::from_slice(&bytes).map_err(parse_error)?;
            let mut migrated = 0;
            let mut actor = |a: ClearActor| match a {
                ClearActor::Ip(ip) => Actor::Ip(ip),
                ClearActor::Id(raw) => {
                    migrated += 1;
                    Actor::Id(o.pseudonym(raw.as_bytes()))
                }
            };
            let penalties = state.penalties.into_iter().map(|(a, p)| (actor(a), p)).collect();
            let scores = state.scores.into_iter().map(|(a, s)| (actor(a), s)).collect();
            o.merge(penalties, scores);
            Ok(Loaded { migrated })
        }
        format => Err(StateError::Format {
            path: path.to_path_buf(),
            format,
        }),
    }
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
                    Ok(l) => {
                        log::info!("merged offender state written by another process");
                        if l.migrated > 0 {
                            // An older process wrote identities in clear: overwrite them now.
                            o.mark_dirty();
                        }
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::identity::IdentityKey;
    use crate::enforce::offenders::PenaltyKind;

    const KEY: &[u8] = b"a key of at least sixteen bytes";

    fn penalty_json(until: u64) -> String {
        format!(
            r#"{{"kind":"ban","until":{until},"first_seen":1,"last_seen":2,"bans":1,"strikes":3.0,"rules":["r"],"reason":"3 strikes"}}"#
        )
    }

    #[test]
    fn clear_identities_of_format_1_are_pseudonymised_on_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("offenders.json");
        let far = now_ms() + 3_600_000;
        let old = format!(
            r#"{{"format":1,"saved_at":1,"penalties":[[{{"id":"session-value-42"}},{p}],[{{"ip":"198.51.100.1"}},{p}]],"scores":[[{{"id":"session-value-42"}},{{"value":1.0,"at":1}}]]}}"#,
            p = penalty_json(far)
        );
        fs::write(&path, old).expect("write");
        let o = Offenders::with_identity_key(IdentityKey::new(KEY));
        assert_eq!(load(&o, &path).expect("migrated").migrated, 2);
        let alias = IdentityKey::new(KEY).pseudonym(b"session-value-42");
        let ip = "198.51.100.1".parse().expect("ip");
        assert_eq!(
            o.check(ip, Some(&alias), now_ms()).map(|(_, p)| p.kind),
            Some(PenaltyKind::Ban)
        );
        assert!(o.list().iter().any(|(a, _)| *a == Actor::Id(alias)));
        // Saved again, the file holds the pseudonym and not the value, readable by its owner only.
        save(&o, &path).expect("save");
        let text = fs::read_to_string(&path).expect("read");
        assert!(!text.contains("session-value-42"), "{text}");
        assert!(text.contains(&alias.full()) && text.contains("\"format\":2"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let again = Offenders::with_identity_key(IdentityKey::new(KEY));
        assert_eq!(load(&again, &path).expect("format 2").migrated, 0);
        assert!(again.check(ip, Some(&alias), now_ms()).is_some());
    }

    #[test]
    fn a_clear_identity_in_a_format_2_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("offenders.json");
        let text = format!(
            r#"{{"format":2,"saved_at":1,"penalties":[[{{"id":"session-value-42"}},{}]],"scores":[]}}"#,
            penalty_json(1)
        );
        fs::write(&path, text).expect("write");
        let err = load(&Offenders::new(), &path).expect_err("refused").to_string();
        assert!(
            err.contains("not a Palisade state file") && err.contains("pseudonym"),
            "{err}"
        );
        fs::write(&path, r#"{"format":7,"saved_at":1,"penalties":[],"scores":[]}"#).expect("write");
        let err = load(&Offenders::new(), &path).expect_err("refused").to_string();
        assert!(err.contains("unknown state format 7"), "{err}");
    }
}
