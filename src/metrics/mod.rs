//! Prometheus metrics: one `Metrics` struct registered once in the default registry, which the
//! metrics listener serves. Updated from the `logging` phase and from background services.

pub mod cache;
pub mod names;
pub mod serve;

use once_cell::sync::Lazy;
use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

use names::*;

/// Latency buckets in seconds, from 250 µs to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub upstream_healthy: IntGaugeVec,
    pub upstream_errors: IntCounterVec,
    pub decisions: IntCounterVec,
    pub telemetry_emitted: IntCounterVec,
    pub telemetry_sent: IntCounterVec,
    pub telemetry_spilled: IntCounterVec,
    pub telemetry_replayed: IntCounterVec,
    pub telemetry_dropped: IntCounterVec,
    pub reloads: IntCounterVec,
    pub policy_info: IntGaugeVec,
    pub active_bans: IntGauge,
    pub shadow_disagreements: IntCounterVec,
    pub request_refusals: IntCounterVec,
    pub connection_refusals: IntCounterVec,
    pub admin_refusals: IntCounterVec,
    pub upstream_retries: IntCounterVec,
    pub bodies_uninspected: IntCounter,
    pub findings: IntCounterVec,
    pub decision_stream_clients: IntGauge,
    pub decision_stream_dropped: IntCounter,
    pub offender_board_lost: IntCounter,
}

// Registration only fails on a duplicate name, which is a programming error caught by tests.
#[allow(clippy::expect_used)]
pub static METRICS: Lazy<Metrics> = Lazy::new(|| {
    let build = register_int_gauge_vec!(BUILD_INFO, "Palisade build.", &["version"]).expect("metric");
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    Metrics {
        requests: register_int_counter_vec!(
            REQUESTS_TOTAL,
            "Requests answered, by route, status class and policy decision.",
            &["route", "status", "decision"]
        )
        .expect("metric"),
        request_duration: register_histogram_vec!(
            REQUEST_DURATION,
            "Time from request start to the end of the response, by route.",
            &["route"],
            LATENCY_BUCKETS.to_vec()
        )
        .expect("metric"),
        upstream_duration: register_histogram_vec!(
            UPSTREAM_DURATION,
            "Time from choosing a backend to its response header, by pool.",
            &["pool"],
            LATENCY_BUCKETS.to_vec()
        )
        .expect("metric"),
        upstream_healthy: register_int_gauge_vec!(
            UPSTREAM_HEALTHY,
            "1 when the backend passes its health check, 0 when it is out of rotation.",
            &["pool", "backend"]
        )
        .expect("metric"),
        upstream_errors: register_int_counter_vec!(
            UPSTREAM_ERRORS_TOTAL,
            "Requests that failed on the upstream side, by pool and kind.",
            &["pool", "kind"]
        )
        .expect("metric"),
        decisions: register_int_counter_vec!(
            DECISIONS_TOTAL,
            "Non-allow policy decisions, by rule and decision.",
            &["rule", "decision"]
        )
        .expect("metric"),
        telemetry_emitted: register_int_counter_vec!(
            TELEMETRY_EMITTED_TOTAL,
            "Telemetry events handed to the pipeline (after sampling), by sink.",
            &["sink"]
        )
        .expect("metric"),
        telemetry_sent: register_int_counter_vec!(
            TELEMETRY_SENT_TOTAL,
            "Telemetry events delivered: written, or acknowledged by JetStream (replays included), by sink.",
            &["sink"]
        )
        .expect("metric"),
        telemetry_spilled: register_int_counter_vec!(
            TELEMETRY_SPILLED_TOTAL,
            "Telemetry events put in the on-disk spill queue while the bus was unreachable, by sink.",
            &["sink"]
        )
        .expect("metric"),
        telemetry_replayed: register_int_counter_vec!(
            TELEMETRY_REPLAYED_TOTAL,
            "Spilled telemetry events delivered once the bus came back, by sink.",
            &["sink"]
        )
        .expect("metric"),
        telemetry_dropped: register_int_counter_vec!(
            TELEMETRY_DROPPED_TOTAL,
            "Telemetry events lost, by sink and reason (queue_full, spill_budget, write_error, encode_error).",
            &["sink", "reason"]
        )
        .expect("metric"),
        reloads: register_int_counter_vec!(
            RELOADS_TOTAL,
            "Configuration and policy reloads, by result.",
            &["result"]
        )
        .expect("metric"),
        policy_info: register_int_gauge_vec!(
            POLICY_INFO,
            "1 for the policy now enforced, labelled with its content hash and generation.",
            &["hash", "generation"]
        )
        .expect("metric"),
        active_bans: register_int_gauge!(ACTIVE_BANS, "Actors currently banned.").expect("metric"),
        shadow_disagreements: register_int_counter_vec!(
            SHADOW_DISAGREEMENTS_TOTAL,
            "Requests the shadow policy would decide differently, by live and shadow decision.",
            &["live", "shadow"]
        )
        .expect("metric"),
        request_refusals: register_int_counter_vec!(
            REQUEST_REFUSALS_TOTAL,
            "Requests refused for ambiguous framing or a size or rate limit, by reason.",
            &["reason"]
        )
        .expect("metric"),
        findings: register_int_counter_vec!(
            FINDINGS_TOTAL,
            "What the security stages found in requests and messages, by stage, rule and action.",
            &["stage", "rule", "action"]
        )
        .expect("metric"),
        bodies_uninspected: register_int_counter!(
            BODIES_UNINSPECTED_TOTAL,
            "Request bodies forwarded uninspected because they were declared larger than a stage may read."
        )
        .expect("metric"),
        connection_refusals: register_int_counter_vec!(
            CONNECTION_REFUSALS_TOTAL,
            "Connections refused (per-address cap) or closed (header timeout) before a request, by reason.",
            &["reason"]
        )
        .expect("metric"),
        admin_refusals: register_int_counter_vec!(
            ADMIN_REFUSALS_TOTAL,
            "Admin API calls refused, by reason.",
            &["reason"]
        )
        .expect("metric"),
        upstream_retries: register_int_counter_vec!(
            UPSTREAM_RETRIES_TOTAL,
            "Requests tried again on a backend after a failure, by pool and phase.",
            &["pool", "phase"]
        )
        .expect("metric"),
        decision_stream_clients: register_int_gauge!(
            DECISION_STREAM_CLIENTS,
            "Clients of the admin decision stream connected now."
        )
        .expect("metric"),
        decision_stream_dropped: register_int_counter!(
            DECISION_STREAM_DROPPED_TOTAL,
            "Decision stream clients dropped for falling behind."
        )
        .expect("metric"),
        offender_board_lost: register_int_counter!(
            OFFENDER_BOARD_LOST_TOTAL,
            "Decisions the admin offender board missed because its queue was full."
        )
        .expect("metric"),
    }
});

/// The status class labels, `status_class_index` orders them.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Status class label of a status code: `2xx`, `4xx`, …; `none` when nothing was sent.
pub fn status_class(status: u16) -> &'static str {
    STATUS_CLASSES[status_class_index(status)]
}

/// Where a status code's class is in `STATUS_CLASSES`.
pub fn status_class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_fall_in_their_class() {
        let cases = [
            (0, "none"),
            (99, "none"),
            (100, "1xx"),
            (101, "1xx"),
            (200, "2xx"),
            (304, "3xx"),
            (404, "4xx"),
            (499, "4xx"),
            (503, "5xx"),
            (599, "5xx"),
            (600, "none"),
            (999, "none"),
        ];
        for (status, class) in cases {
            assert_eq!(status_class(status), class, "{status}");
        }
    }
}
