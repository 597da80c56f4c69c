//! Shared corpora for the WAF tier's detection tests (tests/waf_detection.rs).

pub mod attacks;
pub mod benign;
