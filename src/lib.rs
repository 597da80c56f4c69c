//! Palisade: a security edge reverse proxy on Pingora. Traffic handling lives in `proxy`;
//! security decisions in `enforce` and `policy`; observation in `telemetry` and `metrics`.

pub mod admin;
pub mod allocator;
pub mod analysis;
pub mod cli;
pub mod config;
pub mod enforce;
pub mod host;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod state;
pub mod telemetry;
