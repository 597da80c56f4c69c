//! Findings, rule registry, policy (disabled rules, per-field exclusions) and CRS-style anomaly
//! scoring for the WAF tier (request-inspection phase).

use super::Location;
use thiserror::Error;

/// Default inbound anomaly threshold: one critical finding blocks, as in CRS at paranoia level 1.
pub const DEFAULT_THRESHOLD: u32 = 5;
/// Upper bound, in bytes, on a finding's excerpt (before the ellipsis marker).
pub const EXCERPT_MAX: usize = 60;

/// CRS severities and their anomaly points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Notice = 2,
    Warning = 3,
    Error = 4,
    Critical = 5,
}

impl Severity {
    /// Anomaly points this severity adds to the score.
    pub fn points(self) -> u32 {
        self as u32
    }
}

/// Every rule id the tier can emit, with its severity. Ids are stable: operators name them in
/// policy, and telemetry labels use them (a bounded set).
pub const RULES: &[(&str, Severity)] = &[
    ("sqli.libinjection", Severity::Critical),
    ("sqli.keyword", Severity::Critical),
    ("xss.tag", Severity::Critical),
    ("xss.attr", Severity::Critical),
    ("xss.uri", Severity::Critical),
    ("xss.css", Severity::Critical),
    ("xss.js", Severity::Critical),
    ("xss.template", Severity::Critical),
    ("lfi.traversal", Severity::Critical),
    ("lfi.file", Severity::Critical),
    ("rfi.wrapper", Severity::Critical),
    ("rfi.url", Severity::Critical),
    ("rce.unix", Severity::Critical),
    ("rce.windows", Severity::Critical),
    ("php.injection", Severity::Critical),
    ("java.jndi", Severity::Critical),
    ("java.injection", Severity::Critical),
    ("node.injection", Severity::Critical),
    ("ssti", Severity::Critical),
    ("proto-pollution", Severity::Critical),
    ("nul", Severity::Critical),
    ("control-char", Severity::Warning),
    ("scanner.ua", Severity::Critical),
    ("scanner.path", Severity::Notice),
];

/// Looks a rule's severity up; rule ids used in code are always registered (a test checks it).
pub fn severity_of(rule: &str) -> Severity {
    RULES
        .iter()
        .find(|(id, _)| *id == rule)
        .map_or(Severity::Critical, |&(_, s)| s)
}

/// Whether `selector` names `rule`: either the exact id or its class prefix (`sqli` selects
/// `sqli.libinjection` and `sqli.keyword`).
pub fn selects(selector: &str, rule: &str) -> bool {
    rule == selector
        || (rule.len() > selector.len() && rule.starts_with(selector) && rule.as_bytes()[selector.len()] == b'.')
}

/// A policy error: naming a rule that does not exist is an error, never a silent no-op, because a
/// typo in an exclusion would otherwise leave the rule on (or a disable would do nothing).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WafError {
    #[error("unknown WAF rule id or class `{0}`")]
    UnknownRule(String),
    #[error("WAF threshold must be at least 1")]
    ZeroThreshold,
}

fn check_selector(selector: &str) -> Result<(), WafError> {
    if RULES.iter().any(|(id, _)| selects(selector, id)) {
        Ok(())
    } else {
        Err(WafError::UnknownRule(selector.to_owned()))
    }
}

/// A rule turned off for one location kind and/or field name (ASCII case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    pub rule: String,
    /// `None` means every location.
    pub location: Option<Location>,
    /// `None` means every field of that location.
    pub field: Option<String>,
}

/// Compiled WAF policy: threshold, disabled rules, exclusions, decode limits.
#[derive(Debug, Clone)]
pub struct Config {
    threshold: u32,
    disabled: Vec<String>,
    exclusions: Vec<Exclusion>,
    pub(crate) limits: super::decode::DecodeLimits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            disabled: Vec::new(),
            exclusions: Vec::new(),
            limits: super::decode::DecodeLimits::default(),
        }
    }
}

impl Config {
    /// Sets the anomaly threshold (points at or above which the request is over).
    pub fn with_threshold(mut self, threshold: u32) -> Result<Self, WafError> {
        if threshold == 0 {
            return Err(WafError::ZeroThreshold);
        }
        self.threshold = threshold;
        Ok(self)
    }

    /// Disables a rule id or a whole class (`"sqli"`).
    pub fn disable(mut self, selector: &str) -> Result<Self, WafError> {
        check_selector(selector)?;
        self.disabled.push(selector.to_owned());
        Ok(self)
    }

    /// Turns a rule (or class) off for one location kind and/or field name.
    pub fn exclude(mut self, ex: Exclusion) -> Result<Self, WafError> {
        check_selector(&ex.rule)?;
        self.exclusions.push(ex);
        Ok(self)
    }

    /// Replaces the decoding bounds.
    pub fn with_limits(mut self, limits: super::decode::DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// Whether any policy entry may switch rules off, so the common case skips the checks.
    pub(crate) fn has_overrides(&self) -> bool {
        !self.disabled.is_empty() || !self.exclusions.is_empty()
    }

    /// Whether `rule` is active for this field.
    pub(crate) fn allows(&self, rule: &str, location: Location, field: &str) -> bool {
        if self.disabled.iter().any(|s| selects(s, rule)) {
            return false;
        }
        !self.exclusions.iter().any(|ex| {
            selects(&ex.rule, rule)
                && ex.location.is_none_or(|k| k == location)
                && ex.field.as_deref().is_none_or(|f| f.eq_ignore_ascii_case(field))
        })
    }
}

/// One rule match on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub location: Location,
    pub field: String,
    pub severity: Severity,
    /// Bounded, printable-only window around the match; never the whole value.
    pub excerpt: String,
}

/// The outcome of inspecting one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Sum of the findings' anomaly points.
    pub score: u32,
    /// `score >= threshold`.
    pub over_threshold: bool,
}

impl Report {
    pub(crate) fn push(&mut self, f: Finding) {
        self.score += f.severity.points();
        self.findings.push(f);
    }

    /// Whether any finding has this rule id or class.
    pub fn has(&self, selector: &str) -> bool {
        self.findings.iter().any(|f| selects(selector, f.rule))
    }
}

/// Builds a redacted excerpt of `text` around `at`: at most [`EXCERPT_MAX`] bytes, non-printable
/// bytes shown as `.`, and, when the window would cover the whole value, its last quarter cut so
/// the full payload (which may carry a secret, e.g. in a cookie) is never logged.
pub fn excerpt(text: &[u8], at: usize) -> String {
    let at = at.min(text.len());
    let start = at.saturating_sub(16);
    let mut end = (start + EXCERPT_MAX).min(text.len());
    let whole = start == 0 && end == text.len();
    if whole {
        end = text.len() - text.len().div_ceil(4);
    }
    let mut s: String = text[start..end]
        .iter()
        .map(|&b| if (0x20..0x7F).contains(&b) { b as char } else { '.' })
        .collect();
    if whole || end < text.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_bounded_and_partial() {
        let long = vec![b'a'; 500];
        assert!(excerpt(&long, 250).len() <= EXCERPT_MAX + 3);
        assert_eq!(excerpt(b"' or 1=1--", 0), "' or 1=…");
        assert_eq!(excerpt(b"a\0b\x01cdefgh", 0), "a.b.cde…");
    }

    #[test]
    fn selectors() {
        assert!(selects("sqli", "sqli.keyword"));
        assert!(!selects("sql", "sqli.keyword"));
        assert!(selects("nul", "nul"));
        assert!(Config::default().disable("sqli").is_ok());
        assert_eq!(
            Config::default().disable("sqlx").err(),
            Some(WafError::UnknownRule("sqlx".into()))
        );
        assert_eq!(Config::default().with_threshold(0).err(), Some(WafError::ZeroThreshold));
    }
}
