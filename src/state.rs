//! The runtime snapshot every request reads: routes, pools, policy and per-request settings,
//! compiled from a validated configuration and swapped atomically on reload.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::HeaderName;

use crate::config::{ConfigError, ConfigErrors, Loaded};
use crate::enforce::offenders::Offenders;
use crate::policy::ip::IpSet;
use crate::policy::{self, PolicySet};
use crate::stage::Pipeline;
use crate::traffic::routes::RouteTable;
use crate::traffic::upstream::{build_pools, Pool};

/// Client keep-alive idle time when the config gives none, in seconds.
pub const DEFAULT_CLIENT_KEEPALIVE_SECS: u64 = 60;

/// Shared handle to the current snapshot.
pub type Store = Arc<ArcSwap<Snapshot>>;

pub use crate::telemetry::event::Redaction;

pub struct Snapshot {
    /// Counts successful loads: 1 at start, +1 per reload.
    pub generation: u64,
    pub routes: RouteTable,
    pub pools: BTreeMap<String, Arc<Pool>>,
    pub policy: Arc<PolicySet>,
    /// The shadow policy, when one is configured.
    pub shadow: Option<Arc<PolicySet>>,
    /// Strikes and bans; carried across reloads.
    pub offenders: Arc<Offenders>,
    /// The security stages of this policy, in order (`crate::stages`).
    pub pipeline: Pipeline,
    pub trusted_proxies: IpSet,
    pub request_id_header: HeaderName,
    /// `request_id_header` as written on the wire; a `Bytes` name is what Pingora's
    /// `insert_header` takes without copying it.
    pub request_id_name: Bytes,
    pub trust_incoming_request_id: bool,
    /// `request_id.to_origin` and `request_id.to_client`.
    pub request_id_to_origin: bool,
    pub request_id_to_client: bool,
    pub forwarding: crate::config::file::ForwardingSection,
    pub redaction: Arc<Redaction>,
    pub client_keepalive_secs: u64,
    /// Request size and rate limits (`limits:`); routes may override them.
    pub limits: crate::traffic::limits::Limits,
    /// Header timeout and per-address connection cap, read when a connection is accepted.
    pub conn_limits: crate::traffic::limits::ConnLimits,
    /// Config and policy files, watched for changes.
    pub files: Vec<PathBuf>,
    /// The configuration it was built from, to tell which changes need a restart.
    pub loaded: Loaded,
}

impl Snapshot {
    /// Use `offenders` as this snapshot's offender state (built with the identity key), and
    /// rebuild the stages that read it.
    pub fn use_offenders(&mut self, offenders: Arc<Offenders>) {
        self.pipeline = crate::stages::build(&self.policy, self.shadow.as_ref(), &offenders);
        self.offenders = offenders;
    }

    /// Compile a validated configuration. `previous` lends health state of unchanged pools and
    /// counters of unchanged limits.
    pub fn build(loaded: Loaded, generation: u64, previous: Option<&Snapshot>) -> Result<Snapshot, ConfigErrors> {
        let cfg = &loaded.config;
        let pools = build_pools(&cfg.upstreams, previous.map(|p| &p.pools)).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: loaded.path.clone().unwrap_or_default(),
                line: 0,
                column: 0,
                field: "upstreams".into(),
                message: e.to_string(),
            }])
        })?;
        let limits = crate::traffic::limits::Limits::new(&cfg.limits);
        let routes = RouteTable::new(&cfg.routes, &cfg.response_headers, &pools, limits);
        crate::cache::configure(&cfg.cache);
        let policy = Arc::new(policy::compile(&loaded.policies, previous.map(|p| &*p.policy)));
        let offenders = previous.map_or_else(|| Arc::new(Offenders::new()), |p| p.offenders.clone());
        let t = &cfg.telemetry;
        let request_id_header = HeaderName::from_bytes(cfg.request_id.header.to_ascii_lowercase().as_bytes())
            .unwrap_or(HeaderName::from_static(crate::config::file::DEFAULT_REQUEST_ID_HEADER));
        let shadow = (!loaded.shadow.is_empty()).then(|| {
            Arc::new(policy::compile(
                &loaded.shadow,
                previous.and_then(|p| p.shadow.as_deref()),
            ))
        });
        let pipeline = crate::stages::build(&policy, shadow.as_ref(), &offenders);
        Ok(Snapshot {
            offenders,
            pipeline,
            shadow,
            generation,
            routes,
            pools,
            policy,
            trusted_proxies: IpSet::new(cfg.trusted_proxies.iter().map(|c| c.0)),
            request_id_header: request_id_header.clone(),
            request_id_name: Bytes::copy_from_slice(request_id_header.as_str().as_bytes()),
            trust_incoming_request_id: cfg.request_id.trust_incoming,
            request_id_to_origin: cfg.request_id.to_origin,
            request_id_to_client: cfg.request_id.to_client,
            forwarding: cfg.forwarding,
            redaction: Arc::new(Redaction {
                query: t.query,
                query_allowlist: t.query_allowlist.clone(),
                headers: t.headers.iter().filter_map(|h| crate::key::header_name(h)).collect(),
            }),
            client_keepalive_secs: cfg
                .server
                .client_keepalive
                .map_or(DEFAULT_CLIENT_KEEPALIVE_SECS, |d| d.0.as_secs().max(1)),
            limits,
            conn_limits: crate::traffic::limits::ConnLimits::new(&cfg.limits),
            files: loaded.files.clone(),
            loaded,
        })
    }
}

/// Forgets ended penalties and decayed strikes once a second and keeps `palisade_active_bans` current.
pub struct OffenderSweep {
    pub store: Store,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for OffenderSweep {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        loop {
            let snap = self.store.load();
            snap.offenders
                .sweep(crate::enforce::offenders::now_ms(), snap.policy.bans.as_ref());
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }
}

/// Runs the health checks of whatever pools the current snapshot holds, so pools added by a
/// reload are checked without restarting.
pub struct HealthChecks {
    pub store: Store,
}

/// How often the checker looks for pools whose check is due.
const HEALTH_TICK: std::time::Duration = std::time::Duration::from_millis(200);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        loop {
            let snap = self.store.load_full();
            let checks = snap.pools.values().map(|p| p.check_if_due());
            futures::future::join_all(checks).await;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(HEALTH_TICK) => {}
            }
        }
    }
}
