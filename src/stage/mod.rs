//! The security stage interface: the seam between traffic handling (`proxy`) and security
//! logic. The proxy core drives an ordered list of stages (`Pipeline`) at fixed phases of a
//! connection and a request; a stage sees facts and bytes, never a Pingora `Session`, and
//! answers with a decision (`Step`, `MessageStep`) that the core acts on in one place
//! (`proxy::respond`). docs/architecture.md shows the phases, the stages in order and how to
//! add one.
//!
//! Phases, in the order a request meets them:
//! - `on_connect`: a connection was accepted, before any byte is read;
//! - `on_request_head`: the head is read, framed, identified and routed;
//! - `on_body_chunk`: each chunk of the request body, as it streams to the origin;
//! - `on_message`: each message of an upgraded stream (WebSocket), in either direction;
//! - `on_response_head`: the origin's response head, before it is forwarded;
//! - `on_done`: the request ended, however it ended (logging).

pub mod facts;
pub mod verdict;

use std::any::Any;
use std::net::IpAddr;
use std::sync::Arc;

pub use facts::RequestFacts;
pub use verdict::{Action, Decision, Mode, Observations, Source, Verdict};

/// Wall-clock milliseconds since the Unix epoch: stages take time as an argument so tests can
/// inject it.
pub type Millis = u64;

/// What a stage says at a phase.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to add.
    Pass,
    /// A verdict, merged into the request's ledger (`Verdict::merge`): the first enforced one
    /// decides, monitor-mode ones are recorded, observations add up.
    Verdict(Verdict),
}

/// Which way an upgraded stream's message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    ClientToOrigin,
    OriginToClient,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::ClientToOrigin => "client_to_origin",
            Direction::OriginToClient => "origin_to_client",
        }
    }
}

/// One whole message of an upgraded stream, reassembled from its frames.
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

/// What a stage says about a message.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageStep {
    Forward,
    /// Not forwarded; the stream stays up.
    Drop,
    /// Forwarded with this text instead (matched words masked).
    Replace(String),
    /// The stream is closed with this close code (1008: policy violation).
    Close(u16),
}

impl MessageStep {
    /// How strongly the step departs from forwarding; the strongest of all stages applies.
    pub fn weight(&self) -> u8 {
        match self {
            MessageStep::Forward => 0,
            MessageStep::Replace(_) => 1,
            MessageStep::Drop => 2,
            MessageStep::Close(_) => 3,
        }
    }
}

/// How a request ended, for `on_done`.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub client_ip: Option<IpAddr>,
    /// Status sent to the client; 0 when none was.
    pub status: u16,
    pub now: Millis,
}

/// A security stage. Every phase has a default that does nothing, so a stage implements only
/// the phases it works at. Stages are built with each policy snapshot (`crate::stages`) and
/// shared by all requests: per-request state lives in the `Ledger`.
pub trait Stage: Send + Sync {
    /// A short stable name, for docs, logs and metrics.
    fn name(&self) -> &'static str;

    /// A connection was accepted from `peer`. An enforced verdict closes it unanswered.
    fn on_connect(&self, _peer: IpAddr, _now: Millis) -> Step {
        Step::Pass
    }

    fn on_request_head(&self, _facts: &RequestFacts<'_>, _ledger: &mut Ledger, _now: Millis) -> Step {
        Step::Pass
    }

    /// A chunk of the request body (`end`: the last one). An enforced verdict ends the request.
    fn on_body_chunk(&self, _chunk: &[u8], _end: bool, _ledger: &mut Ledger) -> Step {
        Step::Pass
    }

    fn on_message(&self, _direction: Direction, _message: Message<'_>, _ledger: &mut Ledger) -> MessageStep {
        MessageStep::Forward
    }

    /// The origin's response head. An enforced verdict replaces the response with Palisade's.
    fn on_response_head(&self, _status: u16, _headers: &http::HeaderMap, _ledger: &mut Ledger) -> Step {
        Step::Pass
    }

    fn on_done(&self, _done: &Done, _ledger: &mut Ledger) {}
}

/// Something a stage found in what an actor sent, for telemetry (`palisade.findings` of an
/// alert) and metrics. Never carries the payload: `excerpt` is short and redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The stage's name (`Stage::name`).
    pub stage: &'static str,
    /// The detector, rule or list that matched.
    pub rule: Arc<str>,
    /// The list entry's category, when it has one.
    pub category: Option<Arc<str>>,
    /// Where it was found: `query:q`, `json:user.bio`, `header:user-agent`, `message`, …
    pub field: Option<String>,
    /// For upgraded-stream messages, which way the message travelled.
    pub direction: Option<Direction>,
    /// Anomaly score or weight the finding adds.
    pub score: Option<u32>,
    /// A short excerpt with the matched text redacted.
    pub excerpt: String,
    /// What was done about it: `block`, `drop`, `mask`, `close`, `log`, `monitor`.
    pub action: &'static str,
}

/// Findings one request keeps at most; more are counted, not kept.
pub const MAX_FINDINGS: usize = 32;

/// What a body larger than a stage can inspect gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Oversize {
    /// Forwarded without inspection (counted).
    #[default]
    Pass,
    /// Refused with 413.
    Refuse,
}

/// A request body a stage wants to see whole before the origin sees any of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyWant {
    /// Bytes inspected at most.
    pub limit: usize,
    pub oversize: Oversize,
}

/// What the stages ask the core to gather for them at later phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wants {
    /// Read the body before contacting the origin and run `on_body_chunk` over it.
    pub body: Option<BodyWant>,
    /// Parse an upgraded stream into messages (largest message, in bytes) for `on_message`.
    pub messages: Option<usize>,
}

/// One request's record of what the stages decided and noticed, and what they hold until it
/// ends (concurrency slots, stream parsers). Dropping it releases everything held.
#[derive(Default)]
pub struct Ledger {
    pub verdict: Verdict,
    /// What the shadow policy would have decided, when one is configured. Boxed: most
    /// deployments have none, and every request's context carries the field.
    pub shadow: Option<Box<Verdict>>,
    /// Asked for at the head phase; read by the core.
    pub wants: Wants,
    /// The body read so far when a stage wants it (`Wants::body`), up to its limit.
    pub body: Vec<u8>,
    /// What the stages found, up to `MAX_FINDINGS`; `findings_dropped` counts the rest.
    pub findings: Vec<Finding>,
    pub findings_dropped: u32,
    held: Vec<Box<dyn Any + Send + Sync>>,
}

impl Ledger {
    /// Ask for the body: the largest limit asked for applies, and a refusal of larger bodies
    /// wins over passing them.
    pub fn want_body(&mut self, want: BodyWant) {
        self.wants.body = Some(match self.wants.body {
            None => want,
            Some(w) => BodyWant {
                limit: w.limit.max(want.limit),
                oversize: if w.oversize == Oversize::Refuse || want.oversize == Oversize::Refuse {
                    Oversize::Refuse
                } else {
                    Oversize::Pass
                },
            },
        });
    }

    /// Record a finding (kept up to `MAX_FINDINGS`).
    pub fn found(&mut self, finding: Finding) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(finding);
        } else {
            self.findings_dropped = self.findings_dropped.saturating_add(1);
        }
    }

    /// Ask for an upgraded stream's messages, none larger than `max_message` bytes.
    pub fn want_messages(&mut self, max_message: usize) {
        self.wants.messages = Some(self.wants.messages.map_or(max_message, |m| m.max(max_message)));
    }

    /// Keep `value` until the request ends; a stage finds it again with `held_mut`.
    pub fn hold<T: Any + Send + Sync>(&mut self, value: T) {
        self.held.push(Box::new(value));
    }

    pub fn held_mut<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        self.held.iter_mut().find_map(|h| h.downcast_mut::<T>())
    }

    /// Give back everything held (the request is over, or a reload must not wait for it).
    pub fn release(&mut self) {
        self.held.clear();
    }
}

/// The stages of one policy snapshot, in the order they run.
#[derive(Clone, Default)]
pub struct Pipeline {
    stages: Vec<Arc<dyn Stage>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Pipeline {
    pub fn new(stages: Vec<Arc<dyn Stage>>) -> Pipeline {
        Pipeline { stages }
    }

    /// This pipeline with `stage` appended (tests and embedders add their own).
    pub fn with(&self, stage: Arc<dyn Stage>) -> Pipeline {
        let mut stages = self.stages.clone();
        stages.push(stage);
        Pipeline { stages }
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.stages.iter().map(|s| s.name())
    }

    pub fn connect(&self, peer: IpAddr, now: Millis) -> Verdict {
        let mut v = Verdict::allow();
        for s in self.stages.iter() {
            if let Step::Verdict(next) = s.on_connect(peer, now) {
                v.merge(next);
            }
        }
        v
    }

    pub fn request_head(&self, facts: &RequestFacts<'_>, ledger: &mut Ledger, now: Millis) {
        for s in self.stages.iter() {
            if let Step::Verdict(v) = s.on_request_head(facts, ledger, now) {
                ledger.verdict.merge(v);
            }
        }
    }

    /// Run the body phase; true when the merged verdict now refuses the request. When a stage
    /// asked for the body, the chunk is first added to `ledger.body` (up to the limit).
    pub fn body_chunk(&self, chunk: &[u8], end: bool, ledger: &mut Ledger) -> bool {
        if let Some(want) = ledger.wants.body {
            let room = want.limit.saturating_sub(ledger.body.len());
            ledger.body.extend_from_slice(&chunk[..room.min(chunk.len())]);
        }
        for s in self.stages.iter() {
            if let Step::Verdict(v) = s.on_body_chunk(chunk, end, ledger) {
                ledger.verdict.merge(v);
            }
        }
        ledger.verdict.enforced()
    }

    /// Every stage sees the message; the strongest step applies.
    pub fn message(&self, direction: Direction, message: Message<'_>, ledger: &mut Ledger) -> MessageStep {
        let mut out = MessageStep::Forward;
        for s in self.stages.iter() {
            let step = s.on_message(direction, message, ledger);
            if step.weight() > out.weight() {
                out = step;
            }
        }
        out
    }

    /// Run the response phase; true when the merged verdict now refuses the request.
    pub fn response_head(&self, status: u16, headers: &http::HeaderMap, ledger: &mut Ledger) -> bool {
        let before = ledger.verdict.enforced();
        for s in self.stages.iter() {
            if let Step::Verdict(v) = s.on_response_head(status, headers, ledger) {
                ledger.verdict.merge(v);
            }
        }
        !before && ledger.verdict.enforced()
    }

    pub fn done(&self, done: &Done, ledger: &mut Ledger) {
        for s in self.stages.iter() {
            s.on_done(done, ledger);
        }
    }
}
