//! Offline analysis of recorded telemetry for the security team: `palisade offenders` (top
//! offenders, decisions per minute, hits per rule) and `palisade replay` (a candidate policy
//! against recorded traffic). Reads JSON-lines files or a NATS JetStream stream; never runs on
//! a request. Events of schema 1 and 2 are read; fields a version lacks are left out.

pub mod offenders;
pub mod replay;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::Deserialize;

/// `palisade offenders`: the report, as text or JSON.
pub fn run_offenders(args: &crate::cli::OffendersArgs) -> Result<String, String> {
    let (events, bad) = read(&args.input.telemetry)?;
    let r = offenders::report(&events, &args.input.filter(), args.top);
    output(&r, args.input.json, bad, offenders::render)
}

/// `palisade replay`: the comparison, as text or JSON.
pub fn run_replay(args: &crate::cli::ReplayArgs) -> Result<String, String> {
    let (events, bad) = read(&args.input.telemetry)?;
    let mut routes: std::collections::BTreeSet<String> =
        events.iter().filter_map(|e| e.palisade.route.clone()).collect();
    if let Some(c) = &args.config {
        let text = std::fs::read_to_string(c).map_err(|e| format!("{}: {e}", c.display()))?;
        let cfg: crate::config::file::ConfigFile =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", c.display()))?;
        routes.extend(cfg.routes.into_iter().map(|r| r.name));
    }
    let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
    let path = args.policy.display().to_string();
    let source = std::fs::read_to_string(&args.policy).map_err(|e| format!("{path}: {e}"))?;
    let loaded = crate::config::load::policy_from_str(&path, &source, &routes).map_err(|e| e.to_string())?;
    let mut policy = crate::policy::compile(&[loaded], None);
    // The simulated bans would each log a warning meant for a live proxy's operator.
    log::set_max_level(log::LevelFilter::Error);
    let r = replay::replay(&mut policy, &events, &args.input.filter(), args.examples);
    output(&r, args.input.json, bad, replay::render)
}

fn output<R: serde::Serialize>(r: &R, json: bool, bad: usize, render: fn(&R) -> String) -> Result<String, String> {
    if bad > 0 {
        eprintln!("warning: {bad} line(s) were not telemetry events and were skipped");
    }
    if json {
        serde_json::to_string_pretty(r)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string())
    } else {
        Ok(render(r))
    }
}

/// Where recorded events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// `nats://HOST:PORT/STREAM`: every message of the stream at the time of reading.
    Nats {
        url: String,
        stream: String,
    },
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some(rest) = s.strip_prefix("nats://") else {
            return Ok(Source::File(PathBuf::from(s)));
        };
        match rest.split_once('/') {
            Some((host, stream)) if !host.is_empty() && !stream.is_empty() && !stream.contains('/') => {
                Ok(Source::Nats {
                    url: format!("nats://{host}"),
                    stream: stream.to_string(),
                })
            }
            _ => Err(format!("{s:?}: write nats://HOST:PORT/STREAM")),
        }
    }
}

/// The fields of an event the tools use. Unknown fields are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    pub schema_version: u32,
    pub event: EventInfo,
    pub client: Address,
    pub http: Http,
    pub url: Url,
    pub user_agent: UserAgent,
    pub palisade: Palisade,
    /// `@timestamp` in milliseconds since the epoch (0 when unreadable).
    #[serde(skip)]
    pub ms: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EventInfo {
    pub id: String,
    /// `event` or `alert`; absent (schema 1) means `event`.
    pub kind: Option<String>,
    pub action: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Address {
    pub ip: Option<IpAddr>,
    /// The keyed pseudonym when addresses are hashed.
    pub address: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Http {
    pub request: HttpRequest,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HttpRequest {
    pub id: Option<String>,
    pub method: String,
    pub bytes: u64,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Url {
    pub domain: String,
    pub path: String,
    pub query: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UserAgent {
    pub original: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Palisade {
    pub route: Option<String>,
    pub decision: Decision,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Decision {
    pub action: String,
    pub rule: Option<String>,
    pub mode: String,
    pub also: Vec<String>,
}

impl Event {
    /// The client as recorded: its address, or its pseudonym.
    pub fn client(&self) -> String {
        match (&self.client.ip, &self.client.address) {
            (Some(ip), _) => ip.to_string(),
            (None, Some(a)) => a.clone(),
            (None, None) => "-".into(),
        }
    }

    /// The request id (`http.request.id`, or `event.id` in schema 1).
    pub fn request_id(&self) -> &str {
        self.http.request.id.as_deref().unwrap_or(&self.event.id)
    }

    /// A request event, not a decision alert.
    pub fn is_request(&self) -> bool {
        self.event.kind.as_deref().is_none_or(|k| k == "event")
    }
}

/// Filters common to both tools.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    pub ip: Option<IpNet>,
    pub rule: Option<String>,
    pub route: Option<String>,
}

impl Filter {
    pub fn matches(&self, e: &Event) -> bool {
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.since.is_none_or(|s| e.ms >= ms(s))
            && self.until.is_none_or(|u| e.ms < ms(u))
            && self
                .ip
                .is_none_or(|net| e.client.ip.is_some_and(|ip| net.contains(&ip)))
            && self
                .rule
                .as_ref()
                .is_none_or(|r| e.palisade.decision.rule.as_ref() == Some(r) || e.palisade.decision.also.contains(r))
            && self.route.as_ref().is_none_or(|r| e.palisade.route.as_ref() == Some(r))
    }
}

/// A time for `--since`/`--until`: RFC 3339 (`2026-01-31T12:00:00Z`) or an age (`15m`: that
/// long before now).
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(SystemTime::now() - d);
    }
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .map_err(|e| format!("{s:?}: {e}; write e.g. 2026-01-31T12:00:00Z or 15m"))
}

/// Every request event of the sources, oldest first, with unparsable lines counted.
pub fn read(sources: &[Source]) -> Result<(Vec<Event>, usize), String> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for s in sources {
        match s {
            Source::File(p) => {
                let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
                for line in BufReader::new(f).split(b'\n') {
                    lines.push(line.map_err(|e| format!("{}: {e}", p.display()))?);
                }
            }
            Source::Nats { url, stream } => lines.extend(read_stream(url, stream)?),
        }
    }
    let mut bad = 0;
    let mut events = Vec::with_capacity(lines.len());
    for line in lines.iter().filter(|l| !l.trim_ascii().is_empty()) {
        match serde_json::from_slice::<Event>(line) {
            Ok(mut e) if e.is_request() => {
                e.ms = humantime::parse_rfc3339(&e.timestamp)
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as u64);
                events.push(e);
            }
            Ok(_) => {}
            Err(_) => bad += 1,
        }
    }
    events.sort_by_key(|e| e.ms);
    Ok((events, bad))
}

/// Every message in the stream when reading starts, through an ephemeral ordered consumer.
fn read_stream(url: &str, name: &str) -> Result<Vec<Vec<u8>>, String> {
    use futures::StreamExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("{url}/{name}: {what}: {e}");
        let client = tokio::time::timeout(Duration::from_secs(10), async_nats::connect(url))
            .await
            .map_err(|e| fail("connect", &e))?
            .map_err(|e| fail("connect", &e))?;
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream(name).await.map_err(|e| fail("stream", &e))?;
        let state = stream.get_info().await.map_err(|e| fail("stream info", &e))?.state;
        let mut out = Vec::with_capacity(state.messages as usize);
        if state.messages == 0 {
            return Ok(out);
        }
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
            .await
            .map_err(|e| fail("consumer", &e))?;
        let mut messages = consumer.messages().await.map_err(|e| fail("consumer", &e))?;
        while let Some(m) = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .map_err(|e| fail("reading", &e))?
        {
            let m = m.map_err(|e| fail("reading", &e))?;
            let seq = m.info().map_err(|e| fail("reading", &e))?.stream_sequence;
            out.push(m.payload.to_vec());
            if seq >= state.last_sequence {
                break;
            }
        }
        Ok(out)
    })
}

/// The minute of `ms` as `YYYY-MM-DDTHH:MM` (UTC).
pub fn minute(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms - ms % 60_000);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_times() {
        assert_eq!(
            "nats://127.0.0.1:4222/EVENTS".parse::<Source>(),
            Ok(Source::Nats {
                url: "nats://127.0.0.1:4222".into(),
                stream: "EVENTS".into()
            })
        );
        assert!("nats://127.0.0.1:4222".parse::<Source>().is_err());
        assert_eq!("t.jsonl".parse::<Source>(), Ok(Source::File("t.jsonl".into())));
        let t = parse_time("2026-01-31T12:00:00Z").expect("time");
        assert_eq!(
            minute(t.duration_since(UNIX_EPOCH).expect("epoch").as_millis() as u64 + 59_000),
            "2026-01-31T12:00"
        );
        assert!(parse_time("yesterday-ish").is_err());
        assert!(parse_time("15m").expect("age") < SystemTime::now());
    }
}
