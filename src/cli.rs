//! Command line: `palisade run` (also bare `palisade -c FILE`), `palisade check`. Pingora's
//! upgrade and daemon flags pass through to `run`. This is a stable contract for tooling.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "palisade",
    version,
    about = "Security edge reverse proxy",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Same as `palisade run …`.
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve traffic.
    Run(RunArgs),
    /// Validate the configuration and every policy; print every error; exit 1 if any.
    Check(CommonArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Configuration file (palisade.yaml).
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Listen on this address instead of the configured listeners.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Send every request to this backend (a single-pool shortcut).
    #[arg(long)]
    pub upstream: Option<SocketAddr>,
    /// Use this policy file instead of the configured ones.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Telemetry to this file, or `stdout`, or `off`.
    #[arg(long)]
    pub telemetry: Option<String>,
    /// Serve Prometheus metrics on this address.
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Take over the listening sockets of a running Palisade (graceful upgrade), then tell the
    /// old process to quit with SIGQUIT.
    #[arg(short = 'u', long)]
    pub upgrade: bool,
    /// Run in the background (pid file and error log from the `server` section).
    #[arg(short = 'd', long)]
    pub daemon: bool,
}

impl CommonArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            upstream: self.upstream,
            policy: self.policy.clone(),
            telemetry: self.telemetry.clone(),
            metrics: self.metrics,
        }
    }
}
