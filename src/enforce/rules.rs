//! Request rules: a compiled condition plus an action (request_filter). Conditions only read
//! `RequestFacts`, never the session, so they are tested and benchmarked without sockets.

use std::sync::Arc;

use super::ip::IpSet;
use super::verdict::{Action, Mode, Verdict};
use super::RequestFacts;
use crate::host::HostPattern;

/// Every present part must match; an empty part places no constraint.
#[derive(Debug, Default)]
pub struct Condition {
    pub ip: Option<IpSet>,
    pub methods: Vec<String>,
    pub hosts: Vec<HostPattern>,
    pub path_prefix: Vec<String>,
    pub routes: Vec<Arc<str>>,
}

impl Condition {
    /// `Some(explanation)` when the request matches: the CIDR hit, or the first other part.
    pub fn matches(&self, f: &RequestFacts<'_>) -> Option<String> {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == f.method) {
            return None;
        }
        if !self.routes.is_empty() && !self.routes.iter().any(|r| &**r == f.route) {
            return None;
        }
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h.matches(f.host)) {
            return None;
        }
        let mut why = None;
        if !self.path_prefix.is_empty() {
            let p = self.path_prefix.iter().find(|p| f.path.starts_with(p.as_str()))?;
            why = Some(format!("path {p}"));
        }
        if let Some(set) = &self.ip {
            let net = set.lookup(f.client_ip)?;
            why = Some(format!("ip {net}"));
        }
        Some(why.unwrap_or_else(|| "method/host/route".into()))
    }
}

#[derive(Debug)]
pub struct Rule {
    pub id: Arc<str>,
    pub condition: Condition,
    pub action: Action,
    pub mode: Mode,
    pub retry_after: u32,
}

impl Rule {
    pub fn evaluate(&self, f: &RequestFacts<'_>) -> Option<Verdict> {
        let matched = self.condition.matches(f)?;
        Some(Verdict {
            action: self.action,
            mode: self.mode,
            rule: Some(self.id.clone()),
            retry_after: (self.action == Action::Throttle).then_some(self.retry_after),
            matched: Some(matched),
            counter: None,
        })
    }
}
