//! Built-in WAF tier (request-inspection phase): a pure function from extracted request values to
//! findings and a CRS-style anomaly score. It never sees a `Session`; the proxy flattens the
//! request into [`Item`]s and acts on the [`Report`].
//!
//! Per value: bounded decoding ([`decode`]), one cheap trigger pass (a byte table plus one
//! Aho-Corasick scan) that sends clean values home, then only the detectors the triggers call for.
//! Design notes: `README.md` beside this file.

pub mod crs;
pub mod decode;
pub mod patterns;
pub mod request;
pub mod score;
pub mod sqli;
pub mod stage;
pub mod xss;

use aho_corasick::automaton::Automaton;
use aho_corasick::{dfa, Anchored, MatchKind, StartKind};
use std::sync::OnceLock;

pub use decode::{DecodeLimits, Scratch};
pub use score::{selects, Config, Exclusion, Finding, Report, Severity, WafError, DEFAULT_THRESHOLD, RULES};

/// Where in the request a value came from. For `Header`, the item's `name` is the header name
/// (lowercase), so exclusions and the User-Agent scanner check key on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    Path,
    QueryArg,
    FormField,
    JsonString,
    MultipartField,
    Cookie,
    Header,
}

impl Location {
    /// Every location, in declaration order (fuzzing and property tests pick from it).
    pub const ALL: [Location; 7] = [
        Location::Path,
        Location::QueryArg,
        Location::FormField,
        Location::JsonString,
        Location::MultipartField,
        Location::Cookie,
        Location::Header,
    ];

    /// `+` means space only in `application/x-www-form-urlencoded` data.
    fn plus_is_space(self) -> bool {
        matches!(self, Location::QueryArg | Location::FormField)
    }
}

/// One raw (undecoded) request value to inspect.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub location: Location,
    pub name: &'a str,
    pub value: &'a [u8],
}

impl<'a> Item<'a> {
    pub fn new(location: Location, name: &'a str, value: &'a [u8]) -> Self {
        Self { location, name, value }
    }
}

/// Detector classes, as bits, so one trigger pass decides which detectors run.
pub(crate) mod class {
    pub const SQL: u16 = 1;
    pub const XSS: u16 = 1 << 1;
    pub const LFI: u16 = 1 << 2;
    pub const RFI: u16 = 1 << 3;
    pub const RCE: u16 = 1 << 4;
    pub const INJ: u16 = 1 << 5;
    pub const SSTI: u16 = 1 << 6;
    pub const PROTO: u16 = 1 << 7;
    /// Bits that select a detector (the rest only qualify other bits).
    pub const DETECTORS: u16 = SQL | XSS | LFI | RFI | RCE | INJ | SSTI | PROTO;
    /// A word that is SQL only next to an operand (" or ", " and ", "select").
    pub const SQL_WEAK: u16 = 1 << 8;
    /// Bytes that give a weak SQL word something to operate on.
    pub const SQL_OPERAND: u16 = 1 << 9;
}

/// Which detectors the special bytes of a value (as reported by decoding's classification pass)
/// wake.
fn byte_classes(special: u32) -> u16 {
    use class::*;
    use decode::{SB_BRACE, SB_BSLASH, SB_DOLLAR, SB_HASH, SB_LT, SB_OPERAND, SB_QUOTE, SB_SEP, SB_TICK};
    let mut bits = 0;
    let mut set = |sb: u32, b: u16| {
        if special & sb != 0 {
            bits |= b;
        }
    };
    set(SB_QUOTE, SQL | XSS);
    set(SB_TICK, SQL | XSS | RCE);
    // `;`, `|`, `&`, `=` and `#` alone do not wake the SQL detector: URLs, User-Agents and prose
    // are full of them. SQL without a quote needs a keyword or comment (see KEYWORDS).
    set(SB_SEP, RCE);
    set(SB_DOLLAR, RCE | INJ | SSTI);
    set(SB_LT, XSS | INJ | SSTI | SQL_OPERAND);
    set(SB_BRACE, SSTI | INJ | XSS);
    set(SB_HASH, SSTI);
    set(SB_BSLASH, LFI);
    set(SB_OPERAND, SQL_OPERAND);
    bits
}

/// Keywords (in the lowercased view) that wake detectors even without trigger bytes. Kept short
/// (every value pays one scan for them); a detector that needs finer words checks them itself
/// once woken.
const KEYWORDS: &[(&str, u16)] = {
    use class::*;
    &[
        ("select", SQL_WEAK),
        ("union", SQL),
        ("sleep", SQL),
        ("benchmark", SQL),
        ("waitfor", SQL),
        ("information_schema", SQL),
        ("extractvalue", SQL),
        ("updatexml", SQL),
        ("having", SQL),
        ("order by", SQL),
        (" or ", SQL_WEAK),
        (" and ", SQL_WEAK),
        (" xor ", SQL_WEAK),
        ("0x", SQL),
        ("--", SQL),
        ("/*", SQL),
        ("||", SQL),
        ("&&", SQL),
        ("@@", SQL),
        ("drop ", SQL),
        ("exec", SQL | INJ),
        ("..", LFI),
        ("etc/", LFI),
        ("proc/", LFI),
        (".ini", LFI),
        ("system32", LFI),
        ("-inf", LFI),
        (".ht", LFI),
        (".git", LFI),
        (".ssh", LFI),
        (".env", LFI),
        ("wp-config", LFI),
        ("/var/", LFI),
        ("history", LFI),
        ("/root/", LFI),
        ("://", RFI),
        (":/", RFI),
        ("data:", RFI | XSS),
        ("script", XSS),
        ("expression", XSS),
        ("constructor", XSS | PROTO | INJ),
        ("alert", XSS),
        ("prompt", XSS),
        ("confirm", XSS),
        ("-moz-binding", XSS),
        ("behavio", XSS),
        ("/bin/", RCE),
        ("/dev/", RCE),
        ("cmd", RCE),
        ("powershell", RCE),
        ("whoami", RCE),
        ("eval", INJ),
        ("base64", INJ),
        ("system", INJ),
        ("php", INJ),
        ("assert", INJ),
        ("passthru", INJ),
        ("java", INJ),
        ("runtime", INJ),
        ("process", INJ),
        ("classloader", INJ),
        ("ro0ab", INJ),
        ("require", INJ),
        ("__", SSTI | PROTO),
    ]
};

fn keyword_ac() -> &'static (dfa::DFA, Vec<u16>) {
    static AC: OnceLock<(dfa::DFA, Vec<u16>)> = OnceLock::new();
    AC.get_or_init(|| {
        let pats: Vec<&str> = KEYWORDS.iter().map(|(p, _)| *p).collect();
        let classes = KEYWORDS.iter().map(|(_, c)| *c).collect();
        // Built from constant patterns; failure would be a programming error caught by every test.
        // Standard semantics (a DFA walk), not leftmost-first with the packed Teddy searcher:
        // with keywords starting on common bytes (" or ", "select") Teddy's candidate checks
        // measured ~30% more instructions per typical request under callgrind. No prefilter
        // either: in text, the walk returns to the start state all the time, and each return
        // would call it. The DFA is walked by `keyword_bits` itself.
        let ac = dfa::DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(pats)
            .unwrap_or_else(|e| panic!("WAF keyword automaton: {e}"));
        (ac, classes)
    })
}

/// Builds every lazily compiled automaton now, so the first request does not pay for it.
pub fn warm_up() {
    keyword_ac();
    sqli::warm_up();
    patterns::warm_up();
}

/// Which detector classes this normalised value calls for.
fn triggered(norm: &[u8], special: u32) -> u16 {
    let mut bits = byte_classes(special);
    let (ac, classes) = keyword_ac();
    bits = keyword_bits(ac, classes, norm, bits);
    if bits & class::SQL_WEAK != 0 && bits & class::SQL_OPERAND != 0 {
        bits |= class::SQL;
    }
    bits
}

/// The classes of the keywords in `norm`, found as the crate's non-overlapping standard search
/// finds them (at a match, the state's first pattern counts and the walk restarts after it),
/// in one tight loop over the DFA instead of one search call per match.
fn keyword_bits(ac: &dfa::DFA, classes: &[u16], norm: &[u8], mut bits: u16) -> u16 {
    let Ok(start) = ac.start_state(Anchored::No) else {
        return bits;
    };
    let mut sid = start;
    for &b in norm {
        sid = ac.next_state(Anchored::No, sid, b);
        if ac.is_special(sid) {
            if ac.is_match(sid) {
                bits |= classes[ac.match_pattern(sid, 0).as_usize()];
                sid = start;
            } else if ac.is_dead(sid) {
                break;
            }
        }
    }
    bits
}

/// Finds `needle` in a short haystack. `memchr::memmem::find` builds a searcher per call, which
/// costs more than the search itself on values of a few dozen bytes; scanning for the first byte
/// with `memchr` and comparing the rest is cheaper here.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    find_iter(hay, needle).next()
}

/// Every start offset of `needle` in `hay` (overlapping), in order.
pub(crate) fn find_iter<'h>(hay: &'h [u8], needle: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
    let first = needle.first().copied().unwrap_or(0);
    memchr::memchr_iter(first, hay).filter(move |&p| hay[p..].starts_with(needle))
}

/// Matches found on one value: (rule id, byte offset in the normalised view).
pub(crate) type Hits = Vec<(&'static str, usize)>;

/// What the detectors see of one value.
pub(crate) struct View<'a> {
    /// Fully decoded, case preserved.
    pub decoded: &'a [u8],
    /// Lowercased, whitespace collapsed.
    pub norm: &'a [u8],
}

/// Inspects every item and scores the request. Never panics; allocation happens only for findings
/// and for the reusable buffers (one set per call).
pub fn inspect(items: &[Item<'_>], config: &Config) -> Report {
    let mut scratch = Scratch::default();
    inspect_with(items, config, &mut scratch)
}

/// As [`inspect`], reusing caller-owned buffers (e.g. one per worker thread).
pub fn inspect_with(items: &[Item<'_>], config: &Config, scratch: &mut Scratch) -> Report {
    let mut report = Report::default();
    let mut hits: Hits = Vec::new();
    for item in items {
        hits.clear();
        inspect_item(item, config, scratch, &mut hits);
        if hits.is_empty() {
            continue;
        }
        for (i, &(rule, at)) in hits.iter().enumerate() {
            if hits[..i].iter().any(|(r, _)| *r == rule) {
                continue;
            }
            if config.has_overrides() && !config.allows(rule, item.location, item.name) {
                continue;
            }
            let text = if rule == "nul" || rule == "control-char" {
                &scratch.decoded
            } else {
                &scratch.norm
            };
            report.push(Finding {
                rule,
                location: item.location,
                field: item.name.to_owned(),
                severity: score::severity_of(rule),
                excerpt: score::excerpt(text, at),
            });
        }
    }
    report.over_threshold = report.score >= config.threshold();
    report
}

fn inspect_item(item: &Item<'_>, config: &Config, scratch: &mut Scratch, hits: &mut Hits) {
    // Field names are attacker-chosen too; prototype pollution lives mostly there.
    if let Some(at) = patterns::proto_pollution(item.name.as_bytes()) {
        hits.push(("proto-pollution", at));
    }
    if item.value.is_empty() {
        return;
    }
    let (ctrl, special) = scratch.load(item.value, item.location.plus_is_space(), &config.limits);
    if ctrl {
        patterns::control_bytes(&scratch.decoded, item.location, hits);
    }

    let is_ua = item.location == Location::Header && item.name.eq_ignore_ascii_case("user-agent");
    if is_ua {
        if let Some(at) = patterns::scanner_ua(&scratch.norm) {
            hits.push(("scanner.ua", at));
        }
    }
    if item.location == Location::Path {
        if let Some(at) = patterns::scanner_path(&scratch.norm) {
            hits.push(("scanner.path", at));
        }
    }

    let bits = triggered(&scratch.norm, special);
    if bits & class::DETECTORS == 0 {
        return;
    }
    let view = View {
        decoded: &scratch.decoded,
        norm: &scratch.norm,
    };
    // Every location runs every woken detector: headers carry Log4Shell and Shellshock, cookies
    // carry SQLi. The triggers are tuned so browser User-Agents wake nothing costly.
    if bits & class::SQL != 0 {
        sqli::detect(&view, &mut scratch.sql, hits);
    }
    if bits & class::XSS != 0 {
        xss::detect(&view, hits);
    }
    if bits & class::LFI != 0 {
        patterns::lfi(&view, hits);
    }
    if bits & class::RFI != 0 {
        patterns::rfi(&view, hits);
    }
    if bits & class::RCE != 0 {
        patterns::rce(&view, hits);
    }
    if bits & class::INJ != 0 {
        patterns::injection(&view, hits);
    }
    if bits & class::SSTI != 0 {
        patterns::ssti(&view, hits);
    }
    if bits & class::PROTO != 0 {
        if let Some(at) = patterns::proto_pollution(&scratch.norm) {
            hits.push(("proto-pollution", at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_emitted_rule_is_registered() {
        for rule in [
            "sqli.libinjection",
            "sqli.keyword",
            "xss.tag",
            "xss.attr",
            "xss.uri",
            "xss.css",
            "xss.js",
            "xss.template",
            "lfi.traversal",
            "lfi.file",
            "rfi.wrapper",
            "rfi.url",
            "rce.unix",
            "rce.windows",
            "php.injection",
            "java.jndi",
            "java.injection",
            "node.injection",
            "ssti",
            "proto-pollution",
            "nul",
            "control-char",
            "scanner.ua",
            "scanner.path",
        ] {
            assert!(RULES.iter().any(|(id, _)| *id == rule), "{rule}");
        }
    }

    #[test]
    fn policy_exclusions_apply() {
        let items = [Item::new(Location::QueryArg, "q", b"1' or '1'='1")];
        let on = inspect(&items, &Config::default());
        assert!(on.over_threshold && on.has("sqli"));
        let off = Config::default().disable("sqli").expect("valid");
        assert!(!inspect(&items, &off).has("sqli"));
        let ex = Config::default()
            .exclude(Exclusion {
                rule: "sqli".into(),
                location: Some(Location::QueryArg),
                field: Some("Q".into()),
            })
            .expect("valid");
        assert!(!inspect(&items, &ex).has("sqli"));
        let other = Config::default()
            .exclude(Exclusion {
                rule: "sqli".into(),
                location: Some(Location::Cookie),
                field: None,
            })
            .expect("valid");
        assert!(inspect(&items, &other).has("sqli"));
    }

    #[test]
    fn findings_carry_location_and_bounded_excerpt() {
        let payload = format!("<script>alert(1)</script>{}", "x".repeat(400));
        let items = [Item::new(Location::JsonString, "comment", payload.as_bytes())];
        let r = inspect(&items, &Config::default());
        let f = r.findings.iter().find(|f| f.rule == "xss.tag").expect("xss finding");
        assert_eq!(f.location, Location::JsonString);
        assert_eq!(f.field, "comment");
        assert!(f.excerpt.len() <= score::EXCERPT_MAX + 3);
    }
}
