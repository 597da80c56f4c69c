//! On-disk shape of `palisade.yaml` and of `policies/*.yaml`. Unknown keys are errors: a typo
//! in a security setting must never be silently ignored. Semantic checks live in `validate.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::types::{ByteSize, Cidr, Dur, KeySpec};

/// `palisade.yaml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    pub server: ServerSection,
    pub listeners: Vec<ListenerSection>,
    /// Peers whose `X-Forwarded-For`/`Forwarded` headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    pub request_id: RequestIdSection,
    /// Which forwarding headers Palisade writes for the origin.
    pub forwarding: ForwardingSection,
    pub upstreams: BTreeMap<String, UpstreamSection>,
    pub routes: Vec<RouteSection>,
    /// Response header rules for routes that do not set their own.
    pub response_headers: HeaderRulesSection,
    /// Policy files, relative to this file's directory.
    pub policies: Vec<PathBuf>,
    /// Candidate policies evaluated beside the live ones on every request and never enforced;
    /// where they decide differently, metrics and telemetry say so.
    pub shadow_policies: Vec<PathBuf>,
    pub telemetry: TelemetrySection,
    pub metrics: Option<MetricsSection>,
    pub admin: Option<AdminSection>,
    pub reload: ReloadSection,
    /// Where strikes and bans are saved so they survive restarts and hot upgrades.
    pub state: StateSection,
    /// What one client may send, and how slowly (sizes, body rate, header timeout, connections).
    pub limits: super::limits::LimitsSection,
    /// Sharing bans and strikes with other instances through NATS JetStream.
    pub fleet: Option<super::fleet::FleetSection>,
    /// The response cache's shared store (`routes[].cache` turns caching on per route).
    pub cache: super::cache::CacheSection,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Worker threads per listener service; defaults to the number of cores.
    pub threads: Option<usize>,
    pub pid_file: Option<PathBuf>,
    /// Unix socket over which listening sockets are handed to the new binary on upgrade.
    pub upgrade_sock: Option<PathBuf>,
    pub error_log: Option<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// How long a shutting-down process keeps serving before it stops.
    pub grace_period: Option<Dur>,
    pub graceful_shutdown_timeout: Option<Dur>,
    pub upstream_keepalive_pool_size: Option<usize>,
    /// Idle time after which a client keep-alive connection is closed.
    pub client_keepalive: Option<Dur>,
    /// CA bundle for verifying upstream TLS.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerSection {
    pub address: SocketAddr,
    pub tls: Option<TlsSection>,
    /// Answer every request with a 308 to the same URL over https.
    #[serde(default)]
    pub redirect_https: bool,
    /// Port used in redirect targets; 443 when absent.
    pub https_port: Option<u16>,
    /// Also serve HTTP/2 with prior knowledge (h2c) on this plaintext listener, e.g. for gRPC
    /// clients; HTTP/1.1 clients are served as before.
    #[serde(default)]
    pub h2c: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Chosen by SNI; the first is the default for clients that send no matching name.
    pub certificates: Vec<CertificateSection>,
    #[serde(default = "yes")]
    pub http2: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CertificateSection {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Exact names or `*.suffix` wildcards served by this certificate.
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// The request id's header when the configuration names none (lower case: it is also the
/// name as written).
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-request-id";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RequestIdSection {
    pub header: String,
    /// Keep an incoming id when the peer is a trusted proxy.
    pub trust_incoming: bool,
    /// Send the id to the origin in `header`.
    pub to_origin: bool,
    /// Send the id to the client in `header`.
    pub to_client: bool,
}

impl Default for RequestIdSection {
    fn default() -> Self {
        RequestIdSection {
            header: DEFAULT_REQUEST_ID_HEADER.into(),
            trust_incoming: true,
            to_origin: true,
            to_client: true,
        }
    }
}

/// `forwarding:`. Off, a header is not written, and what an untrusted client sent in it is
/// removed all the same: the origin never sees a client's claim as Palisade's.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardingSection {
    pub x_forwarded_for: bool,
    pub x_forwarded_proto: bool,
}

impl Default for ForwardingSection {
    fn default() -> Self {
        ForwardingSection {
            x_forwarded_for: true,
            x_forwarded_proto: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    #[default]
    RoundRobin,
    /// Ketama consistent hashing on the client IP: a client sticks to one backend.
    ConsistentHash,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    pub backends: Vec<BackendSection>,
    #[serde(default)]
    pub selection: Selection,
    pub health_check: Option<HealthCheckSection>,
    pub tls: Option<UpstreamTlsSection>,
    /// Host header sent upstream by routes that do not preserve the client's.
    pub host: Option<String>,
    /// Speak HTTP/2 to the backends: over TLS offered by ALPN (HTTP/1.1 when a backend declines),
    /// in plaintext with prior knowledge (h2c). WebSocket upgrades still use HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
    /// Concurrent streams Palisade opens on one HTTP/2 connection to a backend.
    #[serde(default = "default_h2_streams")]
    pub h2_streams: usize,
}

fn default_h2_streams() -> usize {
    100
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum BackendSection {
    Address(SocketAddr),
    Weighted { address: SocketAddr, weight: usize },
}

impl BackendSection {
    pub fn address(&self) -> SocketAddr {
        match self {
            BackendSection::Address(a) => *a,
            BackendSection::Weighted { address, .. } => *address,
        }
    }
    pub fn weight(&self) -> usize {
        match self {
            BackendSection::Address(_) => 1,
            BackendSection::Weighted { weight, .. } => *weight,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    Tcp,
    Http,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSection {
    pub kind: HealthCheckKind,
    /// Path probed by `http` checks; any status below 400 counts as healthy.
    #[serde(default = "slash")]
    pub path: String,
    /// Host header of `http` probes.
    pub host: Option<String>,
    pub interval: Option<Dur>,
    /// Consecutive successes before a backend is taken back.
    #[serde(default = "one")]
    pub healthy_after: usize,
    /// Consecutive failures before a backend is taken out.
    #[serde(default = "one")]
    pub unhealthy_after: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsSection {
    /// Server name sent in the handshake and checked against the certificate.
    pub sni: String,
    #[serde(default = "yes")]
    pub verify: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub name: String,
    /// Exact host names or `*.suffix` wildcards; empty or `*` matches any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default = "slash")]
    pub path_prefix: String,
    pub upstream: String,
    #[serde(default = "yes")]
    pub preserve_host: bool,
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    pub response_headers: Option<HeaderRulesSection>,
    /// Overrides of the request-level `limits:` for this route.
    #[serde(default)]
    pub limits: Option<super::limits::RouteLimitsSection>,
    /// Further conditions on the request (headers, query parameters), all of which must hold.
    #[serde(default, rename = "match")]
    pub matches: RouteMatchSection,
    /// How the request is changed on its way to the origin (path, Host).
    pub rewrite: Option<RewriteSection>,
    /// Request headers removed, set or added on the way to the origin.
    pub request_headers: Option<HeaderRulesSection>,
    /// Response compression (gzip, brotli, zstd); off unless given.
    pub compression: Option<CompressionSection>,
    /// Serve this route's cacheable responses from the cache.
    #[serde(default)]
    pub cache: Option<super::cache::RouteCacheSection>,
}

/// A route's conditions beyond host and path prefix.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RouteMatchSection {
    /// Request headers by name (case-insensitive names).
    pub headers: BTreeMap<String, ValueMatch>,
    /// Query parameters by name (raw values, as sent).
    pub query: BTreeMap<String, ValueMatch>,
}

impl RouteMatchSection {
    pub fn len(&self) -> usize {
        self.headers.len() + self.query.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RewriteSection {
    /// Replaces the route's `path_prefix` at the start of the path.
    pub path_prefix: Option<String>,
    /// A regular expression over the whole path; the match is replaced by `path_to`.
    pub path_regex: Option<String>,
    /// Replacement of `path_regex`: `$1`, `${name}` are its capture groups.
    pub path_to: Option<String>,
    /// The Host header the origin receives.
    pub host: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CodingSection {
    Gzip,
    Br,
    Zstd,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionSection {
    /// Codings offered, in the server's order of preference when the client weighs them equally.
    pub codings: Vec<CodingSection>,
    /// 1 (fastest) to 9 for gzip and zstd; brotli reads it as its quality (1 to 11).
    pub level: u32,
    /// Responses whose Content-Length is smaller are sent as they are.
    pub min_size: ByteSize,
    /// Content-Type prefixes compressed (case-insensitive).
    pub types: Vec<String>,
}

impl Default for CompressionSection {
    fn default() -> Self {
        CompressionSection {
            codings: vec![CodingSection::Br, CodingSection::Zstd, CodingSection::Gzip],
            level: 5,
            min_size: ByteSize(1024),
            types: [
                "text/",
                "application/json",
                "application/javascript",
                "application/xml",
                "application/xhtml+xml",
                "application/rss+xml",
                "application/atom+xml",
                "application/wasm",
                "image/svg+xml",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsSection {
    pub connect: Option<Dur>,
    pub read: Option<Dur>,
    pub write: Option<Dur>,
    /// How long an idle upstream connection stays in the keep-alive pool.
    pub idle: Option<Dur>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderRulesSection {
    /// Upstream response headers never passed to clients (origin hiding).
    pub remove: Vec<String>,
    /// Headers set on every response (security headers).
    pub set: BTreeMap<String, String>,
    /// Headers added beside any of the same name.
    pub add: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    #[default]
    Stdout,
    File,
    /// NATS JetStream (the `telemetry.nats` section), spilling to disk while it is unreachable.
    Nats,
    Off,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum QueryMode {
    Keep,
    /// Keep parameter names, replace values not in the allowlist.
    #[default]
    Redact,
    Drop,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySection {
    pub sink: SinkKind,
    pub path: Option<PathBuf>,
    /// The file is rotated when it passes this size.
    pub max_file_size: ByteSize,
    /// Rotated files kept beside the live one.
    pub keep_files: usize,
    /// Events waiting to be written; beyond it events are dropped and counted.
    pub queue_capacity: usize,
    pub query: QueryMode,
    pub query_allowlist: Vec<String>,
    /// Request headers copied into every event (lower case).
    pub headers: Vec<String>,
    /// Let `headers` name credential headers (`authorization`, `cookie`, …); an error otherwise.
    pub allow_credential_headers: bool,
    /// The file is also rotated when it is this old; size only when absent.
    pub rotate_every: Option<Dur>,
    /// Rotated files older than this are deleted; `keep_files` alone when absent.
    pub max_age: Option<Dur>,
    /// Share of allowed requests recorded, 0 to 1; every other decision is always recorded.
    pub sample_allowed: f64,
    /// File holding the key for HMAC-SHA256 pseudonyms of client and peer addresses; relative
    /// to the config file. Addresses are recorded as they are when absent.
    pub ip_hash_key_file: Option<PathBuf>,
    /// Actors (client addresses) whose behavioural indicators are tracked; 0 turns them off.
    pub indicator_actors: usize,
    /// Required with `sink: nats`.
    pub nats: Option<NatsSection>,
}

/// Default of `telemetry.max_file_size`, in bytes.
pub const DEFAULT_TELEMETRY_MAX_FILE_SIZE: u64 = 100 << 20;
/// Default of `telemetry.keep_files`.
pub const DEFAULT_TELEMETRY_KEEP_FILES: usize = 5;
/// Default of `telemetry.queue_capacity`, in events.
pub const DEFAULT_TELEMETRY_QUEUE_CAPACITY: usize = 65_536;
/// Default of `telemetry.sample_allowed`: every allowed request is recorded.
pub const DEFAULT_SAMPLE_ALLOWED: f64 = 1.0;
/// Default of `telemetry.indicator_actors`: about 14 MiB of indicator state.
pub const DEFAULT_INDICATOR_ACTORS: usize = 65_536;

impl Default for TelemetrySection {
    fn default() -> Self {
        TelemetrySection {
            sink: SinkKind::Stdout,
            path: None,
            max_file_size: ByteSize(DEFAULT_TELEMETRY_MAX_FILE_SIZE),
            keep_files: DEFAULT_TELEMETRY_KEEP_FILES,
            queue_capacity: DEFAULT_TELEMETRY_QUEUE_CAPACITY,
            query: QueryMode::Redact,
            query_allowlist: Vec::new(),
            headers: vec!["referer".into(), "accept-language".into()],
            allow_credential_headers: false,
            rotate_every: None,
            max_age: None,
            sample_allowed: DEFAULT_SAMPLE_ALLOWED,
            ip_hash_key_file: None,
            indicator_actors: DEFAULT_INDICATOR_ACTORS,
            nats: None,
        }
    }
}

/// Default of `telemetry.nats.subject`.
pub const DEFAULT_NATS_SUBJECT: &str = "palisade.telemetry";
/// Default of `telemetry.nats.stream`.
pub const DEFAULT_NATS_STREAM: &str = "PALISADE_TELEMETRY";
/// Default of `telemetry.nats.batch_size`, in events.
pub const DEFAULT_NATS_BATCH: usize = 512;
/// Default of `telemetry.nats.ack_timeout`.
pub const DEFAULT_NATS_ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Default of `telemetry.nats.reconnect_max_delay`: the cap of the exponential backoff.
pub const DEFAULT_NATS_RECONNECT_MAX: std::time::Duration = std::time::Duration::from_secs(5);
/// Default of `telemetry.nats.duplicate_window`: JetStream's own default.
pub const DEFAULT_NATS_DUPLICATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(120);
/// Default of `telemetry.nats.spill_budget`, in bytes.
pub const DEFAULT_NATS_SPILL_BUDGET: u64 = 1 << 30;

/// Publishing events to a NATS JetStream stream.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NatsSection {
    /// `nats://HOST:PORT`.
    pub url: String,
    #[serde(default = "nats_subject")]
    pub subject: String,
    /// Created when missing, capturing `subject`.
    #[serde(default = "nats_stream")]
    pub stream: String,
    /// Events published before their acknowledgements are awaited.
    #[serde(default = "nats_batch")]
    pub batch_size: usize,
    #[serde(default = "nats_ack_timeout")]
    pub ack_timeout: Dur,
    #[serde(default = "nats_reconnect_max")]
    pub reconnect_max_delay: Dur,
    /// The stream's deduplication window (`Nats-Msg-Id` = event id), when Palisade creates it.
    #[serde(default = "nats_duplicate_window")]
    pub duplicate_window: Dur,
    /// Directory of the on-disk queue used while NATS is unreachable.
    pub spill_dir: PathBuf,
    /// Bytes the on-disk queue may hold; past it events are dropped and counted.
    #[serde(default = "nats_spill_budget")]
    pub spill_budget: ByteSize,
}

fn nats_subject() -> String {
    DEFAULT_NATS_SUBJECT.into()
}
fn nats_stream() -> String {
    DEFAULT_NATS_STREAM.into()
}
fn nats_batch() -> usize {
    DEFAULT_NATS_BATCH
}
fn nats_ack_timeout() -> Dur {
    Dur(DEFAULT_NATS_ACK_TIMEOUT)
}
fn nats_reconnect_max() -> Dur {
    Dur(DEFAULT_NATS_RECONNECT_MAX)
}
fn nats_duplicate_window() -> Dur {
    Dur(DEFAULT_NATS_DUPLICATE_WINDOW)
}
fn nats_spill_budget() -> ByteSize {
    ByteSize(DEFAULT_NATS_SPILL_BUDGET)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    pub address: SocketAddr,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StateSection {
    /// JSON file of strikes and bans; nothing is saved without it.
    pub path: Option<PathBuf>,
    /// Changes are written at most this often (and at shutdown).
    pub save_interval: Dur,
    /// File holding the key (at least 16 bytes) for HMAC-SHA256 pseudonyms of identities
    /// (`offenders.identity` values); relative to the config file. When absent, the key is
    /// `PATH.key` beside the state file, created on first start, or without a state file one
    /// made up for each process (docs/operations.md, "Identities").
    pub identity_key_file: Option<PathBuf>,
}

impl Default for StateSection {
    fn default() -> Self {
        StateSection {
            path: None,
            identity_key_file: None,
            save_interval: Dur(std::time::Duration::from_secs(2)),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Loopback only unless `allow_remote` is set.
    pub address: SocketAddr,
    #[serde(default)]
    pub allow_remote: bool,
    /// File holding the bearer token for reload and ban changes; without it they are off.
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadSection {
    /// Reload when a config or policy file changes (SIGHUP always reloads).
    pub watch: bool,
    pub interval: Dur,
}

impl Default for ReloadSection {
    fn default() -> Self {
        ReloadSection {
            watch: true,
            interval: Dur(std::time::Duration::from_secs(1)),
        }
    }
}

/// One `policies/*.yaml` file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyFile {
    /// `monitor` makes every rule of this file report without enforcing.
    pub mode: Option<ModeSection>,
    pub lists: BTreeMap<String, ListSection>,
    pub rules: Vec<RuleSection>,
    pub limits: Vec<LimitSection>,
    /// Repeat-offender bans; off when absent. At most one policy file may set it.
    pub offenders: Option<OffendersSection>,
    /// Caps on requests in flight at once per key (streams, WebSockets).
    pub concurrency: Vec<ConcurrencySection>,
    /// Web attack detection (built-in tier); off when absent. At most one policy file may set it.
    pub waf: Option<super::waf::WafSection>,
    /// Term lists and where to look for their terms (docs/moderation.md).
    pub moderation: Option<ModerationSection>,
}

/// What actors say: term lists, and rules naming where to look for them and what to do.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModerationSection {
    pub lists: BTreeMap<String, TermListSection>,
    pub rules: Vec<ModerationRuleSection>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TermListSection {
    /// A term-list file (syntax: src/moderate/list.rs), relative to the policy file.
    pub file: PathBuf,
    /// The file as parsed at load (validation), so compile never reads a file.
    #[serde(skip)]
    pub terms: Option<crate::moderate::TermList>,
}

/// Largest WebSocket message judged when a rule sets no `max_message`, in bytes.
pub const DEFAULT_MAX_MESSAGE: u64 = 64 * 1024;
/// Body bytes inspected when a rule sets no `max_body`, and the most it may set, in bytes.
pub const DEFAULT_MAX_BODY: u64 = 64 * 1024;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModerationRuleSection {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub lists: Vec<String>,
    /// Route names; every route when absent.
    pub routes: Option<Vec<String>>,
    #[serde(rename = "in")]
    pub places: Vec<ModerationPlace>,
    /// Body fields (`extract::FieldSelector` syntax); every string field when absent.
    pub fields: Option<Vec<String>>,
    pub action: ModerationAction,
    #[serde(default)]
    pub mode: ModeSection,
    /// Each hit strikes the sender with the entry's weight.
    #[serde(default)]
    pub strike: bool,
    pub max_message: Option<ByteSize>,
    pub max_body: Option<ByteSize>,
    #[serde(default)]
    pub oversize: OversizeSection,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ModerationPlace {
    /// WebSocket messages from the client to the origin.
    ClientMessages,
    /// WebSocket messages from the origin to the client.
    OriginMessages,
    /// Request bodies.
    Body,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ModerationAction {
    /// The message is not forwarded; the stream stays up.
    Drop,
    /// Matched words are replaced by `*` in the forwarded message.
    Mask,
    /// The stream is closed with 1008.
    Close,
    /// Messages: as `close`. Bodies: 403, the origin sees nothing.
    Block,
    /// Recorded, nothing changed.
    Log,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum OversizeSection {
    /// Forwarded uninspected (counted in `palisade_bodies_uninspected_total`).
    #[default]
    Pass,
    /// Refused with 413.
    Refuse,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySection {
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub key: KeySpec,
    /// Requests in flight at once per key; one more is refused.
    pub max: u32,
    #[serde(default = "throttle")]
    pub action: LimitAction,
    #[serde(default)]
    pub mode: ModeSection,
    #[serde(rename = "match")]
    pub matches: Option<MatchSection>,
}

/// Every enforced refusal (and every `strike` rule) is a strike against the actor. Strikes
/// decay with time constant `window`; `throttle_at` of them put the actor on probation for one
/// window, `strikes` of them ban it. Each further ban lasts `escalation` times longer, up to
/// `max_ban`; the `permanent_after`th ban never ends.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OffendersSection {
    pub strikes: u32,
    pub window: Dur,
    pub ban_for: Dur,
    pub throttle_at: Option<u32>,
    #[serde(default = "two")]
    pub escalation: u32,
    pub max_ban: Option<Dur>,
    pub permanent_after: Option<u32>,
    /// How long an ended ban still counts toward escalation (default 7 days).
    pub remember: Option<Dur>,
    /// A second actor besides the client IP: `header:NAME` or `cookie:NAME`.
    pub identity: Option<KeySpec>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ModeSection {
    #[default]
    Enforce,
    Monitor,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ListSection {
    pub cidrs: Vec<Cidr>,
    /// Files with one address or CIDR a line (`#` starts a comment), relative to the policy file.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Let the request through and skip every later rule and limit.
    Allow,
    /// 403.
    Block,
    /// 429 with `Retry-After`.
    Throttle,
    /// Hold the request for `delay`, then answer 429.
    Tarpit,
    /// Count a strike against the client and go on.
    Strike,
    /// Record the match in telemetry and go on.
    Log,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "match")]
    pub matches: MatchSection,
    pub action: RuleAction,
    #[serde(default)]
    pub mode: ModeSection,
    /// Seconds announced in `Retry-After` by `throttle` and `tarpit` rules.
    pub retry_after: Option<Dur>,
    /// How long a `tarpit` rule holds the request (at most 30s).
    pub delay: Option<Dur>,
    /// Body of the answer of a `block` rule.
    pub body: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Every condition given must hold.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MatchSection {
    pub ip: Vec<Cidr>,
    pub ip_lists: Vec<String>,
    pub methods: Vec<String>,
    pub hosts: Vec<String>,
    /// Exact paths.
    pub path: Vec<String>,
    pub path_prefix: Vec<String>,
    /// `*` matches within one path segment, `**` across segments, `?` one character.
    pub path_glob: Vec<String>,
    pub path_regex: Vec<String>,
    pub routes: Vec<String>,
    /// Query parameters by name.
    pub query: BTreeMap<String, ValueMatch>,
    /// Request headers by name (case-insensitive names).
    pub headers: BTreeMap<String, ValueMatch>,
    pub user_agent: Option<ValueMatch>,
    /// Content-Type prefixes, e.g. `application/json`; case-insensitive.
    pub content_type: Vec<String>,
    /// Matches requests whose declared Content-Length is larger.
    pub body_over: Option<ByteSize>,
    /// Every nested match must hold.
    pub all: Vec<MatchSection>,
    /// At least one nested match must hold.
    pub any: Vec<MatchSection>,
    /// The nested match must not hold.
    pub not: Option<Box<MatchSection>>,
}

impl MatchSection {
    /// True when it sets no condition at all.
    pub fn is_empty(&self) -> bool {
        *self == MatchSection::default()
    }
}

/// A test on one value (a header, a query parameter, the user agent). Write exactly one key.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ValueMatch {
    /// `present: true`: the value is there, whatever it is.
    pub present: Option<bool>,
    /// `absent: true`: the value is missing.
    pub absent: Option<bool>,
    pub equals: Option<String>,
    pub prefix: Option<String>,
    /// Case-insensitive substring.
    pub contains: Option<String>,
    pub regex: Option<String>,
}

impl ValueMatch {
    /// How many tests it sets; validation wants exactly one.
    pub fn count(&self) -> usize {
        [
            self.present.is_some(),
            self.absent.is_some(),
            self.equals.is_some(),
            self.prefix.is_some(),
            self.contains.is_some(),
            self.regex.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LimitAction {
    Throttle,
    Block,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitSection {
    pub id: String,
    #[serde(default)]
    pub description: String,
    /// What is counted: `client_ip` (default), `route`, `header:NAME`, `cookie:NAME`, or a
    /// combination such as `client_ip+route`.
    #[serde(default)]
    pub key: KeySpec,
    /// Requests allowed per window.
    pub requests: u32,
    /// Window length.
    pub per: Dur,
    #[serde(default = "throttle")]
    pub action: LimitAction,
    #[serde(default)]
    pub mode: ModeSection,
    /// Requests the limit counts; every request when absent.
    #[serde(rename = "match")]
    pub matches: Option<MatchSection>,
}

fn two() -> u32 {
    2
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn slash() -> String {
    "/".into()
}
fn throttle() -> LimitAction {
    LimitAction::Throttle
}
