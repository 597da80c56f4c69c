//! Command line: `palisade run` (also bare `palisade -c FILE`), `palisade check`, the analysis
//! tools `palisade offenders` and `palisade replay`, and the term-list bench `palisade moderate`, and `palisade fleet status`. Pingora's
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
    /// Top offenders, decisions per minute and hits per rule, from recorded telemetry.
    Offenders(OffendersArgs),
    /// Decide recorded requests again with a candidate policy; report what changes.
    Replay(ReplayArgs),
    /// Try term lists on text: one line of stdin in, one JSON object out (docs/moderation.md).
    Moderate(ModerateArgs),
    /// Fleet mode (docs/fleet.md): `palisade fleet status -c palisade.yaml`.
    Fleet(FleetArgs),
}

#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum FleetCommand {
    /// The instances seen (heartbeats), each one's last sync and lag, and the ban counts.
    Status {
        /// Configuration file whose `fleet:` section names the NATS server and buckets.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ModerateArgs {
    /// A term-list file (docs/moderation.md). Repeat for several.
    #[arg(long = "list", required = true)]
    pub lists: Vec<PathBuf>,
}

/// Which recorded events to read, and which of them to look at.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// A telemetry file (JSON lines), or `nats://HOST:PORT/STREAM`. Repeat for several (e.g.
    /// rotated files).
    #[arg(long = "telemetry", required = true)]
    pub telemetry: Vec<crate::analysis::Source>,
    /// Only events at or after this time: RFC 3339 (`2026-01-31T12:00:00Z`) or an age (`2h`).
    #[arg(long, value_parser = crate::analysis::parse_time)]
    pub since: Option<std::time::SystemTime>,
    /// Only events before this time (same forms as --since).
    #[arg(long, value_parser = crate::analysis::parse_time)]
    pub until: Option<std::time::SystemTime>,
    /// Only clients in this network (`203.0.113.0/24`, or one address).
    #[arg(long, value_parser = parse_net)]
    pub ip: Option<ipnet::IpNet>,
    /// Only events this rule decided or noted (`palisade.decision.rule` or `.also`).
    #[arg(long)]
    pub rule: Option<String>,
    /// Only events of this route.
    #[arg(long)]
    pub route: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct OffendersArgs {
    #[command(flatten)]
    pub input: TelemetryArgs,
    /// Offenders listed.
    #[arg(long, default_value_t = crate::analysis::offenders::DEFAULT_TOP)]
    pub top: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub input: TelemetryArgs,
    /// The candidate policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// The configuration whose route names the policy may use (by default, the routes seen in
    /// the telemetry).
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Example requests listed per difference.
    #[arg(long, default_value_t = crate::analysis::replay::DEFAULT_EXAMPLES)]
    pub examples: usize,
}

fn parse_net(s: &str) -> Result<ipnet::IpNet, crate::config::types::ValueError> {
    s.parse::<crate::config::types::Cidr>().map(|c| c.0)
}

impl TelemetryArgs {
    pub fn filter(&self) -> crate::analysis::Filter {
        crate::analysis::Filter {
            since: self.since,
            until: self.until,
            ip: self.ip,
            rule: self.rule.clone(),
            route: self.route.clone(),
        }
    }
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
    /// Take over the listening sockets of a running Palisade (graceful upgrade). This process
    /// does not signal the old one: send the old process SIGQUIT yourself (systemd's
    /// ExecReload and deploy/upgrade.sh do), and it hands its sockets over and drains.
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
