//! Assembling the Pingora server from a loaded configuration: one proxy service per listener,
//! the metrics listener, and the background services (health checks, reload).

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::{self, AdminApp};
use crate::config::file::ServerSection;
use crate::config::{Loaded, Overrides};
use crate::enforce::identity::IdentityKey;
use crate::enforce::offenders::Offenders;
use crate::enforce::persist::{self, StateKeeper};
use crate::metrics::serve::MetricsApp;
use crate::proxy::conn::{AcceptFilter, Guarded};
use crate::proxy::tls::SniResolver;
use crate::proxy::{ListenerKind, Palisade};
use crate::reload::{publish_policy_info, Reloader};
use crate::state::HealthChecks;
use crate::state::{OffenderSweep, Snapshot, Store};
use crate::telemetry::Telemetry;

/// Pingora's process-level flags, passed through from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessFlags {
    /// Take the listening sockets over from the running process (graceful upgrade).
    pub upgrade: bool,
    pub daemon: bool,
}

/// Default seconds a stopping process keeps serving in-flight requests.
pub const DEFAULT_GRACE_PERIOD_SECS: u64 = 5;
/// Read buffer of each plain-HTTP client connection, in bytes. Pingora's default, 64 KiB
/// zero-filled at accept, made 10,000 idle keep-alive clients cost 930 MiB; without it they
/// cost 300 MiB, and requests are read straight into Pingora's header buffer with the same
/// number of reads (docs/performance.md). TLS listeners keep the default buffer under OpenSSL.
pub const CLIENT_READ_BUFFER: usize = 0;
/// Write buffer of each plain-HTTP client connection, in bytes. Pingora's default (1,460
/// bytes, allocated at accept and held until close) was a quarter of an idle keep-alive
/// connection's memory; the connection's own stream gathers each response's writes instead,
/// and holds no buffer between requests (`proxy::conn::GuardedStream`).
pub const CLIENT_WRITE_BUFFER: usize = 0;
/// Default seconds allowed for runtimes to stop after the grace period.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 5;

fn server_conf(s: &ServerSection) -> ServerConf {
    let mut c = ServerConf::default();
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    c.threads = s
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if let Some(p) = path(&s.pid_file) {
        c.pid_file = p;
    }
    if let Some(p) = path(&s.upgrade_sock) {
        c.upgrade_sock = p;
    }
    c.error_log = path(&s.error_log);
    c.user = s.user.clone();
    c.group = s.group.clone();
    c.ca_file = path(&s.ca_file);
    // Pingora counts whole seconds: round up so `500ms` does not become no grace at all.
    let secs = |d: std::time::Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
    c.grace_period_seconds = Some(s.grace_period.map_or(DEFAULT_GRACE_PERIOD_SECS, |d| secs(d.0)));
    c.graceful_shutdown_timeout_seconds = Some(
        s.graceful_shutdown_timeout
            .map_or(DEFAULT_SHUTDOWN_TIMEOUT_SECS, |d| secs(d.0)),
    );
    // A daemon would otherwise run from `/`, and every relative path (config, pid file, state,
    // telemetry) would change meaning between start and the first reload.
    c.working_directory = std::env::current_dir().ok();
    if let Some(n) = s.upstream_keepalive_pool_size {
        c.upstream_keepalive_pool_size = n;
    }
    c
}

/// Why the server could not be built at start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),
    #[error("offender state: {0}")]
    OffenderState(std::io::Error),
    #[error("offender state: {0}")]
    LoadState(crate::enforce::persist::StateError),
    #[error("identity key: {0}")]
    IdentityKey(crate::enforce::identity::IdentityKeyError),
    #[error("telemetry: {0}")]
    Telemetry(std::io::Error),
    #[error("listener {listener}: {source}")]
    Certificates {
        listener: String,
        source: crate::proxy::tls::TlsError,
    },
    #[error("listener {listener}: {detail}")]
    Tls { listener: String, detail: String },
    #[error("admin token {}: {source}", path.display())]
    AdminToken { path: PathBuf, source: std::io::Error },
}

/// Build a ready-to-run server. Errors are for the operator (bad certificate, unwritable
/// telemetry file).
pub fn build(
    loaded: Loaded,
    flags: ProcessFlags,
    config_path: Option<PathBuf>,
    overrides: Overrides,
) -> Result<Server, ServerError> {
    let cfg = loaded.config.clone();
    let opt = Opt {
        upgrade: flags.upgrade,
        daemon: flags.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&cfg.server));

    let base = loaded
        .path
        .as_ref()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut snap = Snapshot::build(loaded, 1, None)?;
    publish_policy_info(&snap);
    let key_file = cfg
        .state
        .identity_key_file
        .as_ref()
        .map(|f| crate::config::validate::resolve(config_path.as_deref().unwrap_or(std::path::Path::new("")), f));
    let (key, source) =
        IdentityKey::resolve(key_file.as_deref(), cfg.state.path.as_deref()).map_err(ServerError::IdentityKey)?;
    log::info!("{source}");
    snap.use_offenders(Arc::new(Offenders::with_identity_key(key)));
    if let Some(path) = &cfg.state.path {
        let loaded = persist::load(&snap.offenders, path).map_err(ServerError::LoadState)?;
        if loaded.migrated > 0 {
            // The file held identities in clear (format 1): overwrite it before serving.
            persist::save(&snap.offenders, path).map_err(ServerError::OffenderState)?;
            log::warn!(
                "offender state: {} identity value(s) stored in clear by an older Palisade were replaced by their pseudonyms in {}",
                loaded.migrated,
                path.display()
            );
        }
        server.add_service(background_service(
            "palisade offender state",
            StateKeeper {
                offenders: snap.offenders.clone(),
                path: path.clone(),
                interval: cfg.state.save_interval.0,
            },
        ));
    }
    let store: Store = Arc::new(ArcSwap::from_pointee(snap));
    if let Some(f) = &cfg.fleet {
        let (outbox, sync) = crate::fleet::start(f, store.clone());
        store.load().offenders.set_broadcast(outbox);
        server.add_service(background_service("palisade fleet sync", sync));
    }
    let (telemetry, writer) =
        Telemetry::start(&cfg.telemetry, config_path.as_deref()).map_err(ServerError::Telemetry)?;
    if let Some(w) = writer {
        server.add_service(background_service("palisade telemetry writer", w));
    }

    let feed = Arc::new(crate::telemetry::feed::DecisionFeed::default());
    for (i, l) in cfg.listeners.iter().enumerate() {
        let kind = ListenerKind {
            tls: l.tls.is_some(),
            redirect_https: l.redirect_https.then_some(l.https_port.unwrap_or(443)),
        };
        let app = Palisade {
            store: store.clone(),
            telemetry: telemetry.clone(),
            listener: kind,
            feed: feed.clone(),
        };
        let name = format!("palisade listener {i} ({})", l.address);
        // Every accepted connection goes through the per-connection guards (header timeout,
        // connections per address) before Pingora's HTTP handling.
        let mut proxy = pingora::proxy::http_proxy(&server.configuration, app);
        if l.h2c {
            let mut options = pingora::apps::HttpServerOptions::default();
            options.h2c = true;
            proxy.server_options = Some(options);
        }
        let mut svc = Service::new(name, Guarded::new(proxy, store.clone()));
        svc.set_connection_filter(Arc::new(AcceptFilter { store: store.clone() }));
        let addr = l.address.to_string();
        match &l.tls {
            Some(tls) => {
                let resolver =
                    SniResolver::load(&tls.certificates, &base).map_err(|source| ServerError::Certificates {
                        listener: addr.clone(),
                        source,
                    })?;
                let settings = TlsSettings::with_callbacks(Box::new(resolver));
                let mut settings = settings.map_err(|e| ServerError::Tls {
                    listener: addr.clone(),
                    detail: e.to_string(),
                })?;
                if tls.http2 {
                    settings.enable_h2();
                }
                svc.add_tls_with_settings(&addr, None, settings);
            }
            None => svc.add_listener(
                ListenerConfig::tcp(addr.clone())
                    .l4_buffer(L4BufferSettings::new(CLIENT_READ_BUFFER, CLIENT_WRITE_BUFFER)),
            ),
        }
        server.add_service(svc);
    }

    if let Some(m) = &cfg.metrics {
        let mut svc = Service::new("palisade metrics".to_string(), MetricsApp);
        svc.add_tcp(&m.address.to_string());
        svc.threads = Some(1);
        server.add_service(svc);
    }
    server.add_service(background_service(
        "palisade health checks",
        HealthChecks { store: store.clone() },
    ));
    server.add_service(background_service(
        "palisade offender sweep",
        OffenderSweep { store: store.clone() },
    ));
    let reload = background_service(
        "palisade reload",
        Reloader {
            store: store.clone(),
            config_path: config_path.clone(),
            overrides,
            last: std::sync::Mutex::new(None),
        },
    );
    if let Some(a) = &cfg.admin {
        let token = a
            .token_file
            .as_ref()
            .map(|f| crate::config::validate::resolve(config_path.as_deref().unwrap_or(std::path::Path::new("")), f))
            .map(|f| std::fs::read_to_string(&f).map_err(|source| ServerError::AdminToken { path: f, source }))
            .transpose()?;
        let board = Arc::new(admin::board::OffenderBoard::default());
        server.add_service(background_service(
            "palisade offender board",
            admin::board::BoardFeeder {
                feed: feed.clone(),
                board: board.clone(),
            },
        ));
        let app = AdminApp {
            store: store.clone(),
            reloader: reload.task(),
            token_digest: token.as_deref().map(admin::digest),
            feed: feed.clone(),
            board,
        };
        let mut svc = Service::new("palisade admin".to_string(), app);
        svc.add_tcp(&a.address.to_string());
        svc.threads = Some(1);
        server.add_service(svc);
    }
    server.add_service(reload);
    // Only now, with everything that can fail done, take the listening sockets over from a
    // running process (`-u`): a failed start must not leave the old one draining with no heir.
    server.bootstrap();
    Ok(server)
}
