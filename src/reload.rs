//! Hot reload: on SIGHUP or when a watched file changes, load → validate → compile a new
//! snapshot off the request path and swap it in atomically. A configuration with any error is
//! refused whole: every error is logged, the failure counted, and the old snapshot keeps serving.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::file::ServerSection;
use crate::config::{self, ConfigErrors, Overrides};
use crate::metrics::METRICS;
use crate::state::{Snapshot, Store};

pub struct Reloader {
    pub store: Store,
    pub config_path: Option<PathBuf>,
    pub overrides: Overrides,
    /// The result of the latest reload, whatever asked for it, for the admin console.
    pub last: std::sync::Mutex<Option<LastReload>>,
}

/// What the latest reload did.
#[derive(Debug, Clone)]
pub struct LastReload {
    /// Wall-clock milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The generation now serving.
    pub generation: u64,
    /// Empty when it succeeded.
    pub errors: Vec<crate::config::ConfigError>,
}

/// A cheap change detector for one file: modification time, size, inode.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(p: &PathBuf) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

impl Reloader {
    /// Build and install a new snapshot; on error the current one stays.
    pub fn reload(&self) -> Result<u64, ConfigErrors> {
        let result = self.try_reload();
        let last = LastReload {
            at_ms: crate::enforce::offenders::now_ms(),
            generation: self.store.load().generation,
            errors: result.as_ref().err().map(|e| e.0.clone()).unwrap_or_default(),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(last);
        result
    }

    fn try_reload(&self) -> Result<u64, ConfigErrors> {
        let result = config::load(self.config_path.as_deref(), &self.overrides).and_then(|loaded| {
            let prev = self.store.load_full();
            warn_restart_only(&prev, &loaded);
            Snapshot::build(loaded, prev.generation + 1, Some(&prev))
        });
        match result {
            Ok(snap) => {
                let generation = snap.generation;
                log::info!(
                    "reloaded configuration: generation {generation}, policy {} ({} rules, {} limits)",
                    snap.policy.hash,
                    snap.policy.rules.len(),
                    snap.policy.limits.len()
                );
                publish_policy_info(&snap);
                self.store.store(Arc::new(snap));
                METRICS.reloads.with_label_values(&["ok"]).inc();
                Ok(generation)
            }
            Err(errors) => {
                for e in &errors.0 {
                    log::error!("reload refused: {e}");
                }
                log::error!(
                    "reload refused with {} error(s); still serving the previous configuration",
                    errors.0.len()
                );
                METRICS.reloads.with_label_values(&["failed"]).inc();
                Err(errors)
            }
        }
    }
}

/// Set `palisade_policy_info` to the snapshot's policy only.
pub fn publish_policy_info(snap: &Snapshot) {
    METRICS.policy_info.reset();
    METRICS
        .policy_info
        .with_label_values(&[&snap.policy.hash, &snap.generation.to_string()])
        .set(1);
}

/// Listeners, TLS, server, metrics and telemetry sink are bound at start; say so when a reload
/// changes them instead of silently ignoring the change.
fn warn_restart_only(prev: &Snapshot, next: &config::Loaded) {
    let (a, b) = (&prev.loaded.config, &next.config);
    let t_sink = |c: &config::file::ConfigFile| {
        (
            c.telemetry.sink,
            c.telemetry.path.clone(),
            c.telemetry.max_file_size,
            c.telemetry.keep_files,
            c.telemetry.queue_capacity,
        )
    };
    for (what, changed) in [
        ("listeners", a.listeners != b.listeners),
        (
            "server",
            ServerSection {
                client_keepalive: None,
                ..a.server.clone()
            } != ServerSection {
                client_keepalive: None,
                ..b.server.clone()
            },
        ),
        ("metrics", a.metrics != b.metrics),
        ("admin", a.admin != b.admin),
        ("state", a.state != b.state),
        ("telemetry sink", t_sink(a) != t_sink(b)),
    ] {
        if changed {
            log::warn!("the change to {what} takes effect after a restart or hot upgrade; the rest is applied now");
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("cannot listen for SIGHUP, reload by signal is off: {e}");
                None
            }
        };
        // Stamps taken before each reload, so a change made while reloading is seen next time.
        let mut stamps: HashMap<PathBuf, Stamp> = HashMap::new();
        remember(&mut stamps, &self.store.load().files);
        log::info!("reloader ready: SIGHUP reloads; watching {} file(s)", stamps.len());
        loop {
            let snap = self.store.load_full();
            let reload_cfg = &snap.loaded.config.reload;
            let interval = if reload_cfg.watch {
                reload_cfg.interval.0
            } else {
                Duration::from_secs(3600)
            };
            let watch = reload_cfg.watch;
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    log::info!("SIGHUP: reloading");
                    let _ = self.reload();
                }
                _ = tokio::time::sleep(interval) => {
                    if !watch {
                        continue;
                    }
                    let changed: Vec<&PathBuf> = snap.files.iter().filter(|f| stamps.get(*f) != Some(&stamp(f))).collect();
                    if changed.is_empty() {
                        continue;
                    }
                    log::info!("{} changed: reloading", changed[0].display());
                    for f in changed {
                        stamps.insert(f.clone(), stamp(f));
                    }
                    let _ = self.reload();
                }
            }
            // Files a reload added are watched from now on.
            for f in &self.store.load().files {
                stamps.entry(f.clone()).or_insert_with(|| stamp(f));
            }
        }
    }
}

fn remember(stamps: &mut HashMap<PathBuf, Stamp>, files: &[PathBuf]) {
    for f in files {
        stamps.insert(f.clone(), stamp(f));
    }
}
