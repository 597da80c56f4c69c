//! Request rules: a compiled condition plus an action (request_filter). Conditions only read
//! `RequestFacts`, never the session, so they are tested and benchmarked without sockets.

use std::sync::Arc;

use aho_corasick::AhoCorasick;
use http::header::{HeaderName, CONTENT_TYPE};
use regex::RegexSet;

use crate::pattern::glob::Glob;

use super::ip::IpSet;
use crate::host::HostPattern;
use crate::stage::verdict::{Action, Decision, Mode, Source, Verdict};
use crate::stage::RequestFacts;

pub use crate::pattern::{check_glob, compile_regex, regex_set, MAX_GLOB_WILDCARDS};

/// A test on one request value.
#[derive(Debug)]
pub enum ValueTest {
    Present,
    Absent,
    Equals(String),
    Prefix(String),
    /// Case-insensitive substring, searched with a prefiltered automaton.
    Contains {
        needle: String,
        ac: AhoCorasick,
    },
    Regex(RegexSet),
}

impl ValueTest {
    pub fn check(&self, v: Option<&[u8]>) -> bool {
        match (self, v) {
            (ValueTest::Absent, v) => v.is_none(),
            (_, None) => false,
            (ValueTest::Present, Some(_)) => true,
            (ValueTest::Equals(s), Some(v)) => v == s.as_bytes(),
            (ValueTest::Prefix(s), Some(v)) => v.starts_with(s.as_bytes()),
            (ValueTest::Contains { ac, .. }, Some(v)) => ac.is_match(v),
            (ValueTest::Regex(re), Some(v)) => std::str::from_utf8(v).is_ok_and(|v| re.is_match(v)),
        }
    }
}

/// One constraint of a condition. Declared roughly from cheapest to dearest; compilation
/// sorts a condition's tests by `cost` so cheap misses end the evaluation early.
#[derive(Debug)]
pub enum Test {
    Methods(Vec<String>),
    Routes(Vec<Arc<str>>),
    Hosts(Vec<HostPattern>),
    PathExact(Vec<String>),
    PathPrefix(Vec<String>),
    BodyOver(u64),
    ContentType(Vec<String>),
    Ip(IpSet),
    Header(HeaderName, ValueTest),
    Query(String, ValueTest),
    PathGlob(Vec<Glob>),
    PathRegex(RegexSet),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

impl Test {
    pub fn cost(&self) -> u8 {
        match self {
            Test::Methods(_) | Test::Routes(_) => 0,
            Test::Hosts(_) | Test::PathExact(_) | Test::PathPrefix(_) | Test::BodyOver(_) => 1,
            Test::ContentType(_) | Test::Ip(_) | Test::Header(..) | Test::Query(..) => 2,
            Test::PathGlob(_) => 2,
            Test::PathRegex(_) => 3,
            Test::All(_) | Test::Any(_) | Test::Not(_) => 4,
        }
    }

    fn check(&self, f: &RequestFacts<'_>) -> bool {
        match self {
            Test::Methods(m) => m.iter().any(|m| m == f.method),
            Test::Routes(r) => r.iter().any(|r| &**r == f.route),
            Test::Hosts(h) => h.iter().any(|h| h.matches(f.host)),
            Test::PathExact(p) => p.iter().any(|p| p == f.path),
            Test::PathPrefix(p) => p.iter().any(|p| f.path.starts_with(p.as_str())),
            Test::BodyOver(n) => f.content_length.is_some_and(|l| l > *n),
            Test::ContentType(types) => f.headers.get(CONTENT_TYPE).is_some_and(|v| {
                let v = v.as_bytes();
                types
                    .iter()
                    .any(|t| v.len() >= t.len() && v[..t.len()].eq_ignore_ascii_case(t.as_bytes()))
            }),
            Test::Ip(set) => set.contains(f.client_ip),
            Test::Header(name, t) => t.check(f.headers.get(name).map(|v| v.as_bytes())),
            Test::Query(name, t) => t.check(query_value(f.query, name).map(str::as_bytes)),
            Test::PathGlob(globs) => globs.iter().any(|g| g.matches(f.path)),
            Test::PathRegex(set) => set.is_match(f.path),
            Test::All(cs) => cs.iter().all(|c| c.matches(f)),
            Test::Any(cs) => cs.iter().any(|c| c.matches(f)),
            Test::Not(c) => !c.matches(f),
        }
    }

    fn explain(&self, f: &RequestFacts<'_>) -> String {
        match self {
            Test::Ip(set) => set
                .lookup(f.client_ip)
                .map_or_else(|| "ip".into(), |n| format!("ip {n}")),
            Test::PathPrefix(p) => p
                .iter()
                .find(|p| f.path.starts_with(p.as_str()))
                .map_or_else(String::new, |p| format!("path {p}")),
            Test::PathExact(_) | Test::PathGlob(_) | Test::PathRegex(_) => format!("path {}", f.path),
            Test::Header(name, _) => format!("header {name}"),
            Test::Query(name, _) => format!("query {name}"),
            Test::Methods(_) => format!("method {}", f.method),
            Test::Hosts(_) => format!("host {}", f.host),
            Test::Routes(_) => format!("route {}", f.route),
            Test::BodyOver(n) => format!("body over {n} bytes"),
            Test::ContentType(_) => "content type".into(),
            Test::All(_) => "all".into(),
            Test::Any(_) => "any".into(),
            Test::Not(_) => "not".into(),
        }
    }
}

/// The value of query parameter `name` (raw, not percent-decoded); `Some("")` for a bare name.
pub fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Every test must hold; an empty condition holds for every request.
#[derive(Debug, Default)]
pub struct Condition {
    tests: Vec<Test>,
}

impl Condition {
    pub fn new(mut tests: Vec<Test>) -> Self {
        tests.sort_by_key(Test::cost);
        Condition { tests }
    }

    pub fn matches(&self, f: &RequestFacts<'_>) -> bool {
        self.tests.iter().all(|t| t.check(f))
    }

    /// Its tests, cheapest first.
    pub fn tests(&self) -> &[Test] {
        &self.tests
    }

    /// Why a matching request matched: the most telling test (IP, path, header, …).
    pub fn explain(&self, f: &RequestFacts<'_>) -> String {
        let telling = self
            .tests
            .iter()
            .rev()
            .find(|t| {
                matches!(
                    t,
                    Test::Ip(_)
                        | Test::PathPrefix(_)
                        | Test::PathExact(_)
                        | Test::PathGlob(_)
                        | Test::PathRegex(_)
                        | Test::Header(..)
                        | Test::Query(..)
                )
            })
            .or(self.tests.first());
        telling.map_or_else(|| "any request".into(), |t| t.explain(f))
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Decide the request (allow, block, throttle, tarpit).
    Decide(Action),
    /// Count a strike against the client; evaluation goes on.
    Strike,
    /// Only record the match; evaluation goes on.
    Log,
}

#[derive(Debug)]
pub struct Rule {
    pub id: Arc<str>,
    pub condition: Condition,
    pub effect: Effect,
    pub mode: Mode,
    pub retry_after: u32,
    pub delay: std::time::Duration,
    pub body: Option<Arc<str>>,
}

impl Rule {
    /// The verdict of a deciding rule for a request it matched.
    pub fn verdict(&self, action: Action, f: &RequestFacts<'_>) -> Verdict {
        let slow = matches!(action, Action::Throttle | Action::Tarpit);
        Decision {
            action,
            mode: self.mode,
            source: Source::Policy(self.id.clone()),
            retry_after: slow.then_some(self.retry_after),
            matched: Some(self.condition.explain(f).into()),
            counter: None,
            tarpit: (action == Action::Tarpit).then_some(self.delay),
            body: self.body.clone(),
        }
        .into()
    }
}
