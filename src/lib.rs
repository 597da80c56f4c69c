//! Palisade: a security edge reverse proxy on Pingora. Traffic handling lives in `proxy`;
//! security decisions in `enforce` and `policy`; observation in `telemetry` and `metrics`.

pub mod admin;
pub mod config;
pub mod enforce;
pub mod host;
pub mod policy;
pub mod metrics;
pub mod proxy;
pub mod state;
pub mod telemetry;
pub mod cli;
pub mod reload;
pub mod server;
