//! The response cache's metrics (`crate::cache`), registered on first use in the default
//! registry: only a configuration with a caching route ever creates them. Updated in the
//! `logging` phase of requests on caching routes.

use once_cell::sync::Lazy;
use prometheus::{register_int_counter_vec, register_int_gauge, IntCounterVec, IntGauge};

use super::names::{CACHE_EVICTIONS, CACHE_REQUESTS_TOTAL, CACHE_STORED_BYTES};

pub struct CacheMetrics {
    pub requests: IntCounterVec,
    pub stored_bytes: IntGauge,
    pub evictions: IntGauge,
}

// Registration only fails on a duplicate name, which is a programming error caught by tests.
#[allow(clippy::expect_used)]
pub static CACHE_METRICS: Lazy<CacheMetrics> = Lazy::new(|| {
    CacheMetrics {
    requests: register_int_counter_vec!(
        CACHE_REQUESTS_TOTAL,
        "Requests on caching routes, by route and how the cache answered (hit, miss, stale, stale_updating, revalidated, expired, uncacheable, bypass).",
        &["route", "status"]
    )
    .expect("metric"),
    stored_bytes: register_int_gauge!(CACHE_STORED_BYTES, "Bytes of responses the cache holds now.").expect("metric"),
    evictions: register_int_gauge!(
        CACHE_EVICTIONS,
        "Responses evicted from the cache for room since the start (never decreases)."
    )
    .expect("metric"),
}
});
