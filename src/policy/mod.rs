//! The compiled policy: what `evaluate` reads on every request. Built from validated policy
//! files off the request path; carries a content hash so every decision names the policy.

pub mod bans;
pub mod compile;
pub mod index;
pub mod inflight;
pub mod ip;
pub mod moderation;
pub mod rate;
pub mod rules;
pub mod waf;

use std::fmt;

use crate::policy::bans::BanPolicy;
use crate::policy::index::RuleIndex;
use crate::policy::inflight::Cap;
use crate::policy::moderation::ModRule;
use crate::policy::rate::Limit;
use crate::policy::rules::Rule;

pub use compile::compile;

pub struct PolicySet {
    pub rules: Vec<Rule>,
    /// Which rules a request could match, by path, header and query.
    pub index: RuleIndex,
    pub limits: Vec<Limit>,
    pub caps: Vec<Cap>,
    /// Repeat-offender bans, when the policy turns them on.
    pub bans: Option<BanPolicy>,
    /// Web attack detection, when a policy file has a `waf:` section.
    pub waf: Option<std::sync::Arc<waf::WafPolicy>>,
    /// Term-list rules for bodies and WebSocket messages.
    pub moderation: Vec<ModRule>,
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

#[cfg(test)]
mod tests {
    use crate::config::{load, Overrides};
    use std::path::PathBuf;

    /// The policies shipped in policies/ must always load.
    #[test]
    fn shipped_policies_are_valid() {
        for name in ["default", "streaming-platform", "lockdown", "waf"] {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("policies/{name}.yaml"));
            let overrides = Overrides {
                listen: "127.0.0.1:1".parse().ok(),
                upstream: "127.0.0.1:2".parse().ok(),
                policy: Some(path),
                ..Overrides::default()
            };
            let loaded = load(None, &overrides).unwrap_or_else(|e| panic!("{name}: {e}"));
            let set = super::compile(&loaded.policies, None);
            assert!(!set.rules.is_empty() && set.bans.is_some(), "{name}");
        }
    }
}
