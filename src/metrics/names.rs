//! Every metric name Palisade exports, in one place. Labels stay bounded: route and pool names
//! from the config, status class, decision word, rule id; never a client address or raw path.

pub const REQUESTS_TOTAL: &str = "palisade_requests_total";
pub const REQUEST_DURATION: &str = "palisade_request_duration_seconds";
pub const UPSTREAM_DURATION: &str = "palisade_upstream_duration_seconds";
pub const UPSTREAM_HEALTHY: &str = "palisade_upstream_healthy";
pub const UPSTREAM_ERRORS_TOTAL: &str = "palisade_upstream_errors_total";
pub const DECISIONS_TOTAL: &str = "palisade_policy_decisions_total";
pub const TELEMETRY_EMITTED_TOTAL: &str = "palisade_telemetry_emitted_total";
pub const TELEMETRY_SENT_TOTAL: &str = "palisade_telemetry_sent_total";
pub const TELEMETRY_SPILLED_TOTAL: &str = "palisade_telemetry_spilled_total";
pub const TELEMETRY_REPLAYED_TOTAL: &str = "palisade_telemetry_replayed_total";
pub const TELEMETRY_DROPPED_TOTAL: &str = "palisade_telemetry_dropped_total";
pub const RELOADS_TOTAL: &str = "palisade_policy_reloads_total";
pub const POLICY_INFO: &str = "palisade_policy_info";
pub const ACTIVE_BANS: &str = "palisade_active_bans";
pub const SHADOW_DISAGREEMENTS_TOTAL: &str = "palisade_shadow_disagreements_total";
pub const BUILD_INFO: &str = "palisade_build_info";
/// Requests refused for their framing or size, by reason (`proxy::framing`, `proxy::limits`).
pub const REQUEST_REFUSALS_TOTAL: &str = "palisade_request_refusals_total";
/// Connections refused or closed before a request: `too_many_connections`, `header_timeout`.
pub const CONNECTION_REFUSALS_TOTAL: &str = "palisade_connection_refusals_total";
/// Admin calls refused: `missing_token`, `wrong_token`, `no_token_configured`.
pub const ADMIN_REFUSALS_TOTAL: &str = "palisade_admin_refusals_total";
/// What the stages found (WAF detections, moderation matches), by stage, rule and action.
pub const FINDINGS_TOTAL: &str = "palisade_findings_total";
/// Request bodies forwarded without inspection: declared larger than a stage may read.
pub const BODIES_UNINSPECTED_TOTAL: &str = "palisade_bodies_uninspected_total";
/// Requests sent again to a backend after a failure, by pool and phase (`connect`, `proxy`).
pub const UPSTREAM_RETRIES_TOTAL: &str = "palisade_upstream_retries_total";
/// Decision stream (`/api/decisions/stream`) clients connected now.
pub const DECISION_STREAM_CLIENTS: &str = "palisade_decision_stream_clients";
/// Decision stream clients dropped for falling behind the feed.
pub const DECISION_STREAM_DROPPED_TOTAL: &str = "palisade_decision_stream_dropped_total";
/// Decisions the console's offender board missed because its queue was full.
pub const OFFENDER_BOARD_LOST_TOTAL: &str = "palisade_offender_board_lost_total";
/// Fleet mode (`crate::fleet::metrics`): bus connected, propagation lag, updates in and out.
pub const FLEET_BUS_CONNECTED: &str = "palisade_fleet_bus_connected";
pub const FLEET_PROPAGATION_SECONDS: &str = "palisade_fleet_propagation_seconds";
pub const FLEET_RECEIVED_TOTAL: &str = "palisade_fleet_received_total";
pub const FLEET_APPLIED_TOTAL: &str = "palisade_fleet_applied_total";
pub const FLEET_PUBLISHED_TOTAL: &str = "palisade_fleet_published_total";
pub const FLEET_DROPPED_TOTAL: &str = "palisade_fleet_dropped_total";
pub const FLEET_RECONCILIATIONS_TOTAL: &str = "palisade_fleet_reconciliations_total";
/// Requests on caching routes, by route and cache status (`crate::cache::status`).
pub const CACHE_REQUESTS_TOTAL: &str = "palisade_cache_requests_total";
/// Bytes of responses the cache holds.
pub const CACHE_STORED_BYTES: &str = "palisade_cache_stored_bytes";
/// Responses evicted from the cache for room since the start.
pub const CACHE_EVICTIONS: &str = "palisade_cache_evictions";
