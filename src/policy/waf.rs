//! The compiled `waf:` section (read by the WAF stage at request_filter and the body phase):
//! the detector configuration with `off` rules removed, which findings only report, the
//! exclusions by path prefix and field, and what body to read.

use std::sync::Arc;

use http::HeaderName;

use crate::config::file::ModeSection;
use crate::config::waf::{crs_settings, parse_field, FieldKind, OversizeSection, WafRuleAction, WafSection};
use crate::stage::{BodyWant, Mode, Oversize};
use crate::waf::{selects, Config, Location};

pub struct WafPolicy {
    /// Routes inspected; `None`: every route.
    pub routes: Option<Vec<Arc<str>>>,
    pub mode: Mode,
    /// A blocked request strikes the client.
    pub strike: bool,
    /// Headers inspected besides User-Agent, Referer and Cookie.
    pub headers: Vec<HeaderName>,
    pub body: BodyWant,
    /// Detectors with the `off` rules disabled, and the threshold.
    pub detect: Config,
    /// Rules (or classes) whose findings are reported but never scored.
    pub monitor_only: Vec<String>,
    pub exclusions: Vec<WafExclusion>,
    /// The Core Rule Set tier, when the section has one.
    pub crs: Option<CrsPolicy>,
}

/// The compiled `waf.crs`: a loaded rule set, where it runs and its threshold.
pub struct CrsPolicy {
    /// Routes inspected; `None`: every route.
    pub routes: Option<Vec<Arc<str>>>,
    pub threshold: u32,
    pub set: Arc<crate::waf::crs::Crs>,
}

impl CrsPolicy {
    pub fn applies_to(&self, route: &str) -> bool {
        self.routes.as_ref().is_none_or(|rs| rs.iter().any(|r| &**r == route))
    }
}

/// Whether a policy selector (`sqli`, `xss.tag`, `crs:942`, `crs:942100`) covers `rule`.
pub fn rule_selects(selector: &str, rule: &str) -> bool {
    if crate::waf::crs::is_selector(selector) {
        crate::waf::crs::selects(selector, rule)
    } else {
        selects(selector, rule)
    }
}

impl std::fmt::Debug for WafPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WafPolicy")
            .field("mode", &self.mode)
            .field("threshold", &self.detect.threshold())
            .finish()
    }
}

/// A rule off for a path prefix and/or field.
#[derive(Debug, Clone)]
pub struct WafExclusion {
    pub rule: String,
    pub path: Option<String>,
    pub field: Option<(FieldKind, Option<String>)>,
}

impl WafExclusion {
    fn covers(&self, rule: &str, path: &str, location: Location, name: &str) -> bool {
        rule_selects(&self.rule, rule)
            && self.path.as_deref().is_none_or(|p| path.starts_with(p))
            && self.field.as_ref().is_none_or(|(kind, field)| {
                kind_covers(*kind, location) && field.as_deref().is_none_or(|f| f.eq_ignore_ascii_case(name))
            })
    }
}

fn kind_covers(kind: FieldKind, location: Location) -> bool {
    matches!(
        (kind, location),
        (FieldKind::Path, Location::Path)
            | (FieldKind::Query, Location::QueryArg)
            | (FieldKind::Form | FieldKind::Body, Location::FormField)
            | (FieldKind::Json | FieldKind::Body, Location::JsonString)
            | (FieldKind::Multipart | FieldKind::Body, Location::MultipartField)
            | (FieldKind::Cookie, Location::Cookie)
            | (FieldKind::Header, Location::Header)
    )
}

/// What to do with one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weigh {
    /// Counts toward the anomaly score.
    Score,
    /// Reported, not scored (`action: monitor`).
    Report,
    /// Excluded here: neither reported nor scored.
    Drop,
}

impl WafPolicy {
    pub fn applies_to(&self, route: &str) -> bool {
        self.routes.as_ref().is_none_or(|rs| rs.iter().any(|r| &**r == route))
    }

    /// The CRS tier, when it runs on `route`.
    pub fn crs_for(&self, route: &str) -> Option<&CrsPolicy> {
        self.crs.as_ref().filter(|c| c.applies_to(route))
    }

    /// `weigh` for a match no policy field names: exclusions with a field do not cover it.
    pub fn weigh_unlocated(&self, rule: &str, path: &str) -> Weigh {
        if self.exclusions.iter().any(|e| {
            e.field.is_none() && rule_selects(&e.rule, rule) && e.path.as_deref().is_none_or(|p| path.starts_with(p))
        }) {
            Weigh::Drop
        } else if self.monitor_only.iter().any(|s| rule_selects(s, rule)) {
            Weigh::Report
        } else {
            Weigh::Score
        }
    }

    pub fn weigh(&self, rule: &str, path: &str, location: Location, name: &str) -> Weigh {
        if self.exclusions.iter().any(|e| e.covers(rule, path, location, name)) {
            Weigh::Drop
        } else if self.monitor_only.iter().any(|s| rule_selects(s, rule)) {
            Weigh::Report
        } else {
            Weigh::Score
        }
    }
}

/// Compile a validated section (unknown ids were refused by validation; one that slips through
/// is logged and ignored rather than failing the reload).
pub fn compile(w: &WafSection) -> WafPolicy {
    let mut detect = Config::default();
    match detect.clone().with_threshold(w.threshold) {
        Ok(c) => detect = c,
        Err(e) => log::error!("waf.threshold: {e}"),
    }
    let mut monitor_only = Vec::new();
    for r in &w.rules {
        match r.action {
            WafRuleAction::Block => {}
            WafRuleAction::Monitor => monitor_only.push(r.id.clone()),
            // CRS rules that are off are removed from the loaded rule set (`crs_settings`).
            WafRuleAction::Off if crate::waf::crs::is_selector(&r.id) => {}
            WafRuleAction::Off => match detect.clone().disable(&r.id) {
                Ok(c) => detect = c,
                Err(e) => log::error!("waf.rules: {e}"),
            },
        }
    }
    WafPolicy {
        routes: w
            .routes
            .as_ref()
            .map(|rs| rs.iter().map(|r| Arc::from(r.as_str())).collect()),
        mode: match w.mode {
            ModeSection::Enforce => Mode::Enforce,
            ModeSection::Monitor => Mode::Monitor,
        },
        strike: w.strike,
        headers: w.headers.iter().filter_map(|h| crate::key::header_name(h)).collect(),
        body: BodyWant {
            limit: usize::try_from(w.body_limit.0).unwrap_or(usize::MAX),
            oversize: match w.oversize {
                OversizeSection::Pass => Oversize::Pass,
                OversizeSection::Refuse => Oversize::Refuse,
            },
        },
        detect,
        monitor_only,
        exclusions: w
            .exclusions
            .iter()
            .map(|e| WafExclusion {
                rule: e.rule.clone(),
                path: e.path.clone(),
                field: e
                    .field
                    .as_deref()
                    .and_then(parse_field)
                    .map(|(k, n)| (k, n.map(str::to_owned))),
            })
            .collect(),
        crs: w.crs.as_ref().and_then(|c| {
            let routes = c.routes.as_ref().or(w.routes.as_ref());
            match crate::waf::crs::loaded(&crs_settings(w, c)) {
                Ok(set) => Some(CrsPolicy {
                    routes: routes.map(|rs| rs.iter().map(|r| Arc::from(r.as_str())).collect()),
                    threshold: c.threshold,
                    set,
                }),
                Err(e) => {
                    log::error!("waf.crs: {e}");
                    None
                }
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::policy_from_str;

    fn policy(yaml: &str) -> Arc<WafPolicy> {
        let set = crate::policy::compile(
            &[policy_from_str("w.yaml", yaml, &["app", "api"]).expect("valid")],
            None,
        );
        set.waf.expect("a waf section")
    }

    #[test]
    fn exclusions_and_overrides_weigh_findings() {
        let w = policy(
            "waf:\n  routes: [api]\n  rules:\n    - {id: sqli, action: monitor}\n    - {id: scanner.path, action: off}\n  exclusions:\n    - {rule: xss, path: /comments, field: body}\n    - {rule: lfi.traversal, field: \"query:file\"}\n",
        );
        assert!(w.applies_to("api") && !w.applies_to("app"));
        assert_eq!(
            w.weigh("xss.tag", "/comments/1", Location::JsonString, "text"),
            Weigh::Drop
        );
        assert_eq!(
            w.weigh("xss.tag", "/comments/1", Location::QueryArg, "text"),
            Weigh::Score
        );
        assert_eq!(
            w.weigh("xss.tag", "/profile", Location::FormField, "text"),
            Weigh::Score
        );
        assert_eq!(w.weigh("lfi.traversal", "/x", Location::QueryArg, "FILE"), Weigh::Drop);
        assert_eq!(w.weigh("lfi.traversal", "/x", Location::QueryArg, "path"), Weigh::Score);
        assert_eq!(w.weigh("sqli.keyword", "/x", Location::QueryArg, "q"), Weigh::Report);
        let off = crate::waf::inspect(
            &[crate::waf::Item::new(Location::Path, "path", b"/wp-admin/setup.php")],
            &w.detect,
        );
        assert!(!off.has("scanner.path"), "an `off` rule does not run");
    }
}
