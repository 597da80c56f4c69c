//! Palisade: a security edge reverse proxy on Pingora. Traffic handling lives in `proxy`;
//! security decisions in `enforce` and `policy`; observation in `telemetry` and `metrics`.

pub mod admin;
pub mod allocator;
pub mod analysis;
pub mod cache;
pub mod cli;
pub mod config;
pub mod enforce;
pub mod extract;
pub mod fleet;
pub mod host;
pub mod key;
pub mod logging;
pub mod metrics;
pub mod moderate;
pub mod pattern;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod request_id;
pub mod server;
pub mod stage;
pub mod stages;
pub mod state;
pub mod telemetry;
pub mod traffic;
pub mod waf;
