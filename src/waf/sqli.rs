//! SQL injection detection for the WAF tier (request-inspection phase): libinjection's tokenizer
//! and fingerprint set (via the pure-Rust `libinjectionrs` port) behind a cheap gate, plus a small
//! set of high-confidence keyword heuristics on the comment-stripped SQL view.
//!
//! Why both: libinjection classifies the first few tokens of the value in three quote contexts
//! and is the accepted low-false-positive reference; the heuristics catch payloads it does not
//! fingerprint (time-based and error-based function calls deep in the value, versioned-comment
//! obfuscation) and keep detection if the port regresses.

use super::{decode, Hits, View};
use regex::bytes::{Regex, RegexSet};
use std::sync::OnceLock;

/// Bytes of a value handed to libinjection. Its fingerprint covers only the first five folded
/// tokens, so a longer prefix adds cost without detection.
const LIBINJECTION_MAX: usize = 2048;

/// High-confidence SQL constructs on the SQL view (lowercased, comments stripped, one space).
/// Each needs SQL syntax around the keyword, so prose such as "union station" or "drop me a line"
/// does not match.
const HEURISTICS: &[&str] = &[
    r"\bunion(?: all| distinct)? ?\(? ?select\b",
    r"\b(?:sleep|pg_sleep) ?\( ?\d",
    r"\bbenchmark ?\( ?\d",
    r"\bwaitfor (?:delay|time) ?'",
    r"\b(?:extractvalue|updatexml|exp|floor|geometrycollection|multipoint) ?\(.{0,40}(?:select|concat|0x|@@|version|user\()",
    r"\binformation_schema\b|\bmysql\.(?:user|db)\b|\bsqlite_master\b|\bpg_catalog\.|\bsysobjects\b|\bsys\.(?:tables|objects|columns)\b",
    r"\bload_file ?\(|\binto (?:out|dump)file\b",
    r"\bxp_cmdshell\b|\bsp_oacreate\b|\bdbms_pipe\.receive_message\b|\butl_(?:http|inaddr)\.",
    r"; ?(?:drop|truncate|alter|create) (?:table|database|schema|user|procedure|function)\b",
    r"; ?(?:shutdown\b|exec(?:ute)? |declare @|insert into |delete from |update \w+ set |select\b)",
    r"(?:^|[\s'\x22)])(?:or|and|xor|\|\||&&) ?\(? ?['\x22]?(\w+)['\x22]? ?(?:=|<=>|like) ?['\x22]?\w+['\x22]? ?(?:--|#|/\*|;|$|\))",
    r"['\x22`] ?\)? ?(?:or|and|\|\||&&) ?\(? ?['\x22]?\w+['\x22]? ?(?:=|<|>|!=|<>|like|is|in ?\()",
    r"['\x22] ?\)* ?(?:--|#)|['\x22] ?\)* ?; ?(?:drop|select|insert|update|delete|exec|shutdown|declare|waitfor|truncate)\b",
    r"@@(?:version|datadir|hostname|basedir)\b",
    r"\bchar ?\( ?\d+ ?(?:, ?\d+ ?)+\)|\bconcat(?:_ws)? ?\(.{0,60}(?:0x[0-9a-f]{2,}|@@|select|char ?\()",
    r"\bexec(?:ute)? (?:master\.|xp_|sp_)",
    r"\border by \d+ ?(?:--|#|$)",
    r"\b(?:and|or|having) \d+ ?(?:=|<|>) ?\d+ ?(?:--|#|$)",
];

fn heuristics() -> &'static RegexSet {
    static SET: OnceLock<RegexSet> = OnceLock::new();
    // Constant patterns: a failure is a programming error that every test would catch.
    // ASCII mode (`(?-u)`): Unicode word boundaries would force the slow PikeVM.
    SET.get_or_init(|| {
        RegexSet::new(HEURISTICS.iter().map(|p| format!("(?-u){p}"))).unwrap_or_else(|e| panic!("sqli heuristics: {e}"))
    })
}

fn heuristic_regexes() -> &'static Vec<Regex> {
    static RES: OnceLock<Vec<Regex>> = OnceLock::new();
    RES.get_or_init(|| {
        HEURISTICS
            .iter()
            .map(|p| Regex::new(&format!("(?-u){p}")).unwrap_or_else(|e| panic!("sqli heuristic {p}: {e}")))
            .collect()
    })
}

pub(crate) fn warm_up() {
    gate_ac();
    heuristics();
    heuristic_regexes();
}

/// Gate tokens for libinjection, each with the signal bit it sets.
const QUOTE: u8 = 1;
const COMMENT: u8 = 2;
const BOOLEAN: u8 = 4;
const STRONG: u8 = 8;
const TERMINATOR: u8 = 16;
const UNION: u8 = 32;
const SELECT: u8 = 64;
const GATE_TOKENS: &[(&str, u8)] = &[
    ("'", QUOTE),
    ("\"", QUOTE),
    ("`", QUOTE),
    ("--", COMMENT),
    ("/*", COMMENT),
    ("#", TERMINATOR),
    (";", TERMINATOR),
    (")", TERMINATOR),
    (" or ", BOOLEAN),
    (" and ", BOOLEAN),
    (" xor ", BOOLEAN),
    ("||", BOOLEAN),
    ("&&", BOOLEAN),
    ("union", UNION),
    ("select", SELECT),
    ("(select", STRONG),
    ("( select", STRONG),
    ("select @@", STRONG),
    ("select null", STRONG),
    ("sleep(", STRONG),
    ("benchmark(", STRONG),
    ("waitfor ", STRONG),
];

fn gate_ac() -> &'static aho_corasick::AhoCorasick {
    static AC: OnceLock<aho_corasick::AhoCorasick> = OnceLock::new();
    AC.get_or_init(|| {
        aho_corasick::AhoCorasick::new(GATE_TOKENS.iter().map(|(t, _)| *t))
            .unwrap_or_else(|e| panic!("sqli gate automaton: {e}"))
    })
}

/// Whether the value has enough SQL structure to be worth a libinjection run: a quote with
/// something SQL-like, a comment, a boolean operator next to a comparison, or syntax prose never
/// has. libinjection (the port) is the costly step (~2–20 µs per call), so plain prose, names
/// with apostrophes and User-Agents skip it.
fn worth_libinjection(sql: &[u8]) -> bool {
    let mut f = 0u8;
    // Overlapping, so "(select" and "select" both register.
    for m in gate_ac().find_overlapping_iter(sql) {
        f |= GATE_TOKENS[m.pattern().as_usize()].1;
    }
    if sql.starts_with(b"or ") || sql.starts_with(b"and ") {
        f |= BOOLEAN;
    }
    if f & UNION != 0 && f & SELECT != 0 {
        f |= STRONG;
    }
    let comparison = f & (QUOTE | BOOLEAN) != 0 && has_comparison(sql);
    // An apostrophe inside a word (O'Brien, don't) with nothing else SQL-like is prose; so are a
    // `;` or `#` without a quote (a User-Agent's "Windows NT 10.0; Win64", "order #123").
    let quoted = f & QUOTE != 0 && (f & (COMMENT | TERMINATOR | BOOLEAN | STRONG | SELECT) != 0 || comparison);
    quoted || f & (COMMENT | STRONG) != 0 || (f & BOOLEAN != 0 && comparison)
}

/// An `=`, or a `<`/`>` between two operands that look like values (digit, quote, parenthesis):
/// "1 and 2>1" compares, "let me know <3" and "a < b" do not.
fn has_comparison(sql: &[u8]) -> bool {
    let operand = |b: Option<&u8>| b.is_some_and(|&b| b.is_ascii_digit() || matches!(b, b'\'' | b'"' | b'(' | b')'));
    sql.iter().enumerate().any(|(i, &b)| match b {
        b'=' => true,
        b'<' | b'>' => {
            let before = sql[..i].iter().rev().find(|&&c| c != b' ');
            let after = sql[i + 1..].iter().find(|&&c| c != b' ' && c != b'=' && c != b'>');
            operand(before) && operand(after)
        }
        _ => false,
    })
}

/// Runs the SQL detector on one value.
pub(crate) fn detect(view: &View<'_>, sql: &mut Vec<u8>, hits: &mut Hits) {
    decode::sql_view_into(view.norm, sql);
    if heuristics().is_match(sql) {
        let at = heuristic_regexes()
            .iter()
            .find_map(|r| r.find(sql))
            .map_or(0, |m| m.start());
        // The offset is in the SQL view; map it to the normalised view approximately (the SQL
        // view is never longer), which only shifts the excerpt window.
        hits.push(("sqli.keyword", at.min(view.norm.len())));
        return;
    }
    if !worth_libinjection(sql) {
        return;
    }
    let input = &view.decoded[..view.decoded.len().min(LIBINJECTION_MAX)];
    if libinjection(input) {
        hits.push(("sqli.libinjection", 0));
        return;
    }
    // MySQL executes versioned comments; libinjection treats most as opaque comments.
    if super::find(view.norm, b"/*!").is_some() && libinjection(&sql[..sql.len().min(LIBINJECTION_MAX)]) {
        hits.push(("sqli.libinjection", 0));
    }
}

/// libinjection's verdict, minus its best-known false positive: fingerprint `1c` (a number then a
/// comment, as in "50% off -- today only!"), which injects nothing on its own.
fn libinjection(input: &[u8]) -> bool {
    let r = libinjectionrs::detect_sqli(input);
    r.is_injection() && r.fingerprint.as_ref().is_none_or(|f| f.as_str() != "1c")
}
