//! Fleet metrics, registered in the default registry the first time fleet mode starts. Names
//! in `crate::metrics::names`.

use once_cell::sync::Lazy;
use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, register_int_gauge, Histogram, IntCounter,
    IntCounterVec, IntGauge,
};

use crate::metrics::names::*;

/// From a decision at one instance to its arrival at another, in seconds (wall clocks).
const LAG_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub struct FleetMetrics {
    pub connected: IntGauge,
    pub propagation: Histogram,
    pub received: IntCounterVec,
    pub applied: IntCounter,
    pub published: IntCounterVec,
    pub dropped: IntCounterVec,
    pub reconciliations: IntCounter,
}

// Registration only fails on a duplicate name, which is a programming error caught by tests.
#[allow(clippy::expect_used)]
pub static FLEET: Lazy<FleetMetrics> = Lazy::new(|| FleetMetrics {
    connected: register_int_gauge!(
        FLEET_BUS_CONNECTED,
        "1 while the fleet bus (NATS) is connected and synced."
    )
    .expect("metric"),
    propagation: register_histogram!(
        FLEET_PROPAGATION_SECONDS,
        "From a ban or unban decided at another instance to its arrival here.",
        LAG_BUCKETS.to_vec()
    )
    .expect("metric"),
    received: register_int_counter_vec!(
        FLEET_RECEIVED_TOTAL,
        "Updates received from other instances, by kind (ban, unban, strikes).",
        &["kind"]
    )
    .expect("metric"),
    applied: register_int_counter!(
        FLEET_APPLIED_TOTAL,
        "Fleet bans and unbans that changed this instance's offender state."
    )
    .expect("metric"),
    published: register_int_counter_vec!(
        FLEET_PUBLISHED_TOTAL,
        "Updates this instance wrote to the bus, by kind (ban, strikes).",
        &["kind"]
    )
    .expect("metric"),
    dropped: register_int_counter_vec!(
        FLEET_DROPPED_TOTAL,
        "Updates not sent to the fleet, by reason (ban_queue_full, strike_queue_full).",
        &["reason"]
    )
    .expect("metric"),
    reconciliations: register_int_counter!(
        FLEET_RECONCILIATIONS_TOTAL,
        "Times this instance read the whole ban bucket and wrote back what it knew better."
    )
    .expect("metric"),
});
