//! The compiled policy: what `evaluate` reads on every request. Built from validated policy
//! files off the request path; carries a content hash so every decision names the policy.

pub mod compile;

use std::fmt;

use crate::enforce::inflight::Cap;
use crate::enforce::offenders::BanPolicy;
use crate::enforce::rate::Limit;
use crate::enforce::rules::Rule;

pub use compile::compile;

pub struct PolicySet {
    pub rules: Vec<Rule>,
    pub limits: Vec<Limit>,
    pub caps: Vec<Cap>,
    /// Repeat-offender bans, when the policy turns them on.
    pub bans: Option<BanPolicy>,
    /// First 12 hex digits of the SHA-256 of every policy and list file, in load order.
    pub hash: String,
    /// Files it came from, for operators.
    pub sources: Vec<String>,
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field("hash", &self.hash)
            .field("rules", &self.rules.len())
            .field("limits", &self.limits.len())
            .finish()
    }
}
