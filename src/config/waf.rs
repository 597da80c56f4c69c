//! The `waf:` section of a policy file (parse and validate; compiled by `policy::waf`): which
//! routes the built-in detection tier inspects, in which mode, at which anomaly threshold, and
//! the per-rule overrides and exclusions operators use against false positives.

use serde::Deserialize;

use super::error::Collector;
use super::file::ModeSection;
use super::types::ByteSize;

/// Anomaly score at which a request is blocked when the section sets none (CRS's inbound
/// default: one critical finding).
pub const DEFAULT_THRESHOLD: u32 = crate::waf::DEFAULT_THRESHOLD;
/// Body bytes inspected when the section sets none; also the most it may set (Pingora's retry
/// buffer, which replays the inspected body to the origin, holds no more).
pub const MAX_BODY_LIMIT: u64 = 64 * 1024;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WafSection {
    /// Routes inspected; every route when absent.
    pub routes: Option<Vec<String>>,
    #[serde(default)]
    pub mode: ModeSection,
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// A blocked request is a strike against the client (offenders).
    #[serde(default = "yes")]
    pub strike: bool,
    /// Headers inspected besides User-Agent, Referer and Cookie.
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default = "default_body_limit")]
    pub body_limit: ByteSize,
    #[serde(default)]
    pub oversize: OversizeSection,
    #[serde(default)]
    pub rules: Vec<WafRuleSection>,
    #[serde(default)]
    pub exclusions: Vec<WafExclusionSection>,
    /// The OWASP Core Rule Set tier, on the routes it names (docs/waf.md).
    pub crs: Option<CrsSection>,
}

/// `waf.crs`: the Core Rule Set run by libmodsecurity3, beside the built-in tier. Its rule ids
/// (`crs:942100`, families `crs:942`) go in the section's `rules:` and `exclusions:`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CrsSection {
    /// Routes the CRS tier inspects; the `waf` section's routes when absent.
    pub routes: Option<Vec<String>>,
    /// CRS paranoia level, 1 (fewest false positives) to 4.
    #[serde(default = "default_paranoia")]
    pub paranoia: u8,
    /// Inbound anomaly score at which a request is blocked (CRS points: critical 5, error 4,
    /// warning 3, notice 2).
    #[serde(default = "default_crs_threshold")]
    pub threshold: u32,
    /// The ModSecurity shared library opened at load.
    #[serde(default = "default_library")]
    pub library: String,
    /// Directory of the CRS `REQUEST-*.conf` rules and their data files.
    #[serde(default = "default_rules_dir")]
    pub rules_dir: String,
    /// The CRS setup file.
    #[serde(default = "default_setup")]
    pub setup: String,
}

fn default_paranoia() -> u8 {
    crate::waf::crs::DEFAULT_PARANOIA
}

fn default_crs_threshold() -> u32 {
    crate::waf::crs::DEFAULT_THRESHOLD
}

fn default_library() -> String {
    crate::waf::crs::DEFAULT_LIBRARY.to_owned()
}

fn default_rules_dir() -> String {
    crate::waf::crs::DEFAULT_RULES_DIR.to_owned()
}

fn default_setup() -> String {
    crate::waf::crs::DEFAULT_SETUP.to_owned()
}

/// The rule set a `crs` section and its section's `off` rules load.
pub fn crs_settings(w: &WafSection, crs: &CrsSection) -> crate::waf::crs::Settings {
    crate::waf::crs::Settings {
        library: crs.library.clone(),
        rules_dir: crs.rules_dir.clone().into(),
        setup: crs.setup.clone().into(),
        paranoia: crs.paranoia,
        removed: w
            .rules
            .iter()
            .filter(|r| r.action == WafRuleAction::Off && r.id != crate::waf::crs::PREFIX)
            .filter_map(|r| crate::waf::crs::selector_range(&r.id))
            .collect(),
    }
}

fn default_threshold() -> u32 {
    DEFAULT_THRESHOLD
}

fn yes() -> bool {
    true
}

fn default_body_limit() -> ByteSize {
    ByteSize(MAX_BODY_LIMIT)
}

/// A body declared larger than the inspection limit: shared with moderation.
pub use super::file::OversizeSection;

/// What one detector (or class) does.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WafRuleSection {
    /// A rule id (`sqli.libinjection`) or a class (`sqli`).
    pub id: String,
    pub action: WafRuleAction,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WafRuleAction {
    /// Counts toward the anomaly score (the default for every rule).
    Block,
    /// Recorded as a finding, never counted toward the score.
    Monitor,
    /// Not evaluated.
    Off,
}

/// `rule` is off where the request path starts with `path` and the value is `field`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WafExclusionSection {
    pub rule: String,
    /// Path prefix; every path when absent.
    pub path: Option<String>,
    /// `path`, `body`, `query`, `form`, `json`, `multipart`, `cookie`, `header`, each
    /// optionally `:NAME` (`query:q`, `json:user.bio`); every field when absent.
    pub field: Option<String>,
}

/// Where an exclusion's `field` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Path,
    /// Any body field: form, JSON or multipart.
    Body,
    Query,
    Form,
    Json,
    Multipart,
    Cookie,
    Header,
}

/// Parse `KIND[:NAME]`.
pub fn parse_field(s: &str) -> Option<(FieldKind, Option<&str>)> {
    let (kind, name) = match s.split_once(':') {
        Some((k, n)) if !n.is_empty() => (k, Some(n)),
        Some(_) => return None,
        None => (s, None),
    };
    let kind = match kind {
        "path" => FieldKind::Path,
        "body" => FieldKind::Body,
        "query" => FieldKind::Query,
        "form" => FieldKind::Form,
        "json" => FieldKind::Json,
        "multipart" => FieldKind::Multipart,
        "cookie" => FieldKind::Cookie,
        "header" => FieldKind::Header,
        _ => return None,
    };
    Some((kind, name))
}

/// Checks of one file's `waf:` section; `routes` holds the configured route names (`*` when
/// routes are not checked).
pub fn validate(w: &WafSection, routes: &std::collections::HashSet<&str>, c: &mut Collector<'_>) {
    if let Some(rs) = &w.routes {
        if rs.is_empty() {
            c.field(
                "waf.routes",
                "name at least one route, or leave routes out for every route",
            );
        }
        for (i, r) in rs.iter().enumerate() {
            if !routes.contains("*") && !routes.contains(r.as_str()) {
                c.field(&format!("waf.routes[{i}]"), format!("unknown route {r:?}"));
            }
        }
    }
    if w.threshold == 0 {
        c.field("waf.threshold", "must be at least 1");
    }
    if w.body_limit.0 > MAX_BODY_LIMIT {
        c.field(
            "waf.body_limit",
            format!("at most {MAX_BODY_LIMIT} bytes (64KiB) can be inspected and still replayed to the origin"),
        );
    }
    for (i, h) in w.headers.iter().enumerate() {
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            c.field(
                &format!("waf.headers[{i}]"),
                format!("{h:?} is not a valid header name"),
            );
        }
    }
    let crs = w.crs.as_ref().and_then(|crs| validate_crs(w, crs, routes, c));
    for (i, r) in w.rules.iter().enumerate() {
        let p = format!("waf.rules[{i}].id");
        check_rule(&r.id, &p, crs.as_deref(), w.crs.is_some(), c);
        if r.id == crate::waf::crs::PREFIX && r.action == WafRuleAction::Off {
            c.field(&p, "to turn the CRS tier off, remove waf.crs");
        }
    }
    for (i, e) in w.exclusions.iter().enumerate() {
        let p = format!("waf.exclusions[{i}]");
        check_rule(&e.rule, &format!("{p}.rule"), crs.as_deref(), w.crs.is_some(), c);
        if e.path.as_deref().is_some_and(|p| !p.starts_with('/')) {
            c.field(&format!("{p}.path"), "a path prefix starts with /");
        }
        if let Some(f) = &e.field {
            if parse_field(f).is_none() {
                c.field(
                    &format!("{p}.field"),
                    format!("{f:?}: expected path, body, query, form, json, multipart, cookie or header, optionally with :NAME"),
                );
            }
        }
        if e.path.is_none() && e.field.is_none() {
            c.field(
                &p,
                "an exclusion names a path, a field or both (to turn a rule off everywhere, use rules: action: off)",
            );
        }
    }
}

/// Checks of `waf.crs`, and the rule set it loads (the library opened, the rules parsed), so a
/// policy that cannot run is refused here rather than at the first request.
fn validate_crs(
    w: &WafSection,
    crs: &CrsSection,
    routes: &std::collections::HashSet<&str>,
    c: &mut Collector<'_>,
) -> Option<std::sync::Arc<crate::waf::crs::Crs>> {
    if let Some(rs) = &crs.routes {
        if rs.is_empty() {
            c.field(
                "waf.crs.routes",
                "name at least one route, or leave routes out for the waf section's routes",
            );
        }
        for (i, r) in rs.iter().enumerate() {
            if !routes.contains("*") && !routes.contains(r.as_str()) {
                c.field(&format!("waf.crs.routes[{i}]"), format!("unknown route {r:?}"));
            }
        }
    }
    if !(1..=4).contains(&crs.paranoia) {
        c.field("waf.crs.paranoia", "a CRS paranoia level is 1, 2, 3 or 4");
        return None;
    }
    if crs.threshold == 0 {
        c.field("waf.crs.threshold", "must be at least 1");
    }
    match crate::waf::crs::loaded(&crs_settings(w, crs)) {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            let field = match e {
                crate::waf::crs::CrsError::Library { .. } => "waf.crs.library",
                crate::waf::crs::CrsError::Files { ref path, .. } if *path == crs.setup => "waf.crs.setup",
                _ => "waf.crs.rules_dir",
            };
            c.field(field, e.to_string());
            None
        }
    }
}

fn check_rule(id: &str, path: &str, crs: Option<&crate::waf::crs::Crs>, has_crs: bool, c: &mut Collector<'_>) {
    if crate::waf::crs::is_selector(id) {
        if !has_crs {
            c.field(
                path,
                format!("{id:?} is a Core Rule Set id, and this section has no crs tier"),
            );
            return;
        }
        let Some((lo, hi)) = crate::waf::crs::selector_range(id) else {
            c.field(
                path,
                format!("{id:?}: a CRS rule is crs:NNNNNN (one rule), crs:NNN (a rule file's family) or crs"),
            );
            return;
        };
        // With no rule set loaded the section already has an error; ids cannot be checked.
        if crs.is_some_and(|crs| crs.ids.range(lo..=hi).next().is_none()) {
            c.field(path, format!("{id:?}: no such rule in the loaded Core Rule Set"));
        }
        return;
    }
    if let Err(e) = crate::waf::Config::default().disable(id) {
        let known: Vec<&str> = crate::waf::RULES.iter().map(|(id, _)| *id).collect();
        c.field(path, format!("{e}; known ids: {}", known.join(", ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse() {
        assert_eq!(parse_field("body"), Some((FieldKind::Body, None)));
        assert_eq!(parse_field("query:q"), Some((FieldKind::Query, Some("q"))));
        assert_eq!(parse_field("query:"), None);
        assert_eq!(parse_field("bogus"), None);
    }
}
