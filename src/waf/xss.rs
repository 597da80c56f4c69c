//! Cross-site scripting detection for the WAF tier (request-inspection phase): a small HTML-aware
//! scanner over the lowercased view rather than a list of regexes, so it can tell markup (`<img
//! src=x onerror=…>`) from prose that merely uses `<` and `>` ("a < b and c > d", "<3").

use super::{Hits, View};

/// Tags that execute or load content by themselves; their presence is enough.
const ACTIVE_TAGS: &[&[u8]] = &[
    b"script",
    b"iframe",
    b"frame",
    b"frameset",
    b"object",
    b"embed",
    b"applet",
    b"base",
    b"meta",
    b"svg",
    b"math",
    b"isindex",
    b"vmlframe",
    b"import",
    b"xss",
    b"handler",
    b"listener",
];

/// Attributes that take a URL or markup and can therefore carry script.
const DANGEROUS_ATTRS: &[&[u8]] = &[b"srcdoc", b"formaction", b"xlink:href"];

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\n'
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b':' || b == b'_'
}

/// Whether an event-handler attribute (`on` + letters, then `=`) starts at `i`. Returns the end of
/// the `=` when it does.
fn event_handler_at(s: &[u8], i: usize) -> Option<usize> {
    if !s[i..].starts_with(b"on") {
        return None;
    }
    let mut j = i + 2;
    while j < s.len() && s[j].is_ascii_lowercase() {
        j += 1;
    }
    let letters = j - i - 2;
    if !(3..=30).contains(&letters) {
        return None;
    }
    while j < s.len() && is_ws(s[j]) {
        j += 1;
    }
    (s.get(j) == Some(&b'=')).then_some(j + 1)
}

/// Scans one tag starting after its name; reports event handlers and dangerous attributes. The
/// scan ends at `>` or at the next `<`, so every byte is scanned by at most one tag (linear time
/// on `<a <a <a …`).
fn scan_tag(s: &[u8], mut i: usize, hits: &mut Hits) -> bool {
    let end = (i + 1024).min(s.len());
    let mut prev_sep = true;
    while i < end {
        let b = s[i];
        if b == b'>' || b == b'<' {
            return false;
        }
        if prev_sep && b.is_ascii_alphabetic() {
            if event_handler_at(s, i).is_some() {
                hits.push(("xss.attr", i));
                return true;
            }
            if let Some(a) = DANGEROUS_ATTRS.iter().find(|a| s[i..].starts_with(a)) {
                let mut j = i + a.len();
                while j < s.len() && is_ws(s[j]) {
                    j += 1;
                }
                if s.get(j) == Some(&b'=') {
                    hits.push(("xss.attr", i));
                    return true;
                }
            }
        }
        prev_sep = is_ws(b) || matches!(b, b'/' | b'"' | b'\'' | b'`' | b';');
        i += 1;
    }
    false
}

fn tags(s: &[u8], hits: &mut Hits) {
    let mut from = 0;
    while let Some(p) = memchr::memchr(b'<', &s[from..]) {
        let lt = from + p;
        from = lt + 1;
        let mut i = lt + 1;
        if s.get(i) == Some(&b'/') {
            i += 1;
        }
        let name_start = i;
        if !s.get(i).is_some_and(|b| b.is_ascii_alphabetic()) {
            // `<!--`, `<?`, `<%` and `< b` are not elements; `<!` comments are handled by nothing
            // else here because browsers do not run script from them.
            continue;
        }
        while i < s.len() && is_name_byte(s[i]) {
            i += 1;
        }
        let name = &s[name_start..i];
        let after = s.get(i).copied();
        let delimited = after.is_none_or(|b| is_ws(b) || matches!(b, b'/' | b'>' | b'\'' | b'"'));
        if !delimited {
            continue;
        }
        if ACTIVE_TAGS.contains(&name) {
            hits.push(("xss.tag", lt));
            return;
        }
        if scan_tag(s, i, hits) {
            return;
        }
    }
}

/// Event handlers injected into an existing attribute context (`" onmouseover="…`): only looked
/// for when the value can close an attribute, i.e. carries a quote.
fn attribute_breakout(s: &[u8], hits: &mut Hits) {
    let Some(q) = s.iter().position(|&b| b == b'"' || b == b'\'' || b == b'`') else {
        return;
    };
    for i in q + 1..s.len() {
        let prev = s[i - 1];
        if (is_ws(prev) || matches!(prev, b'"' | b'\'' | b'/')) && event_handler_at(s, i).is_some() {
            hits.push(("xss.attr", i));
            return;
        }
    }
}

/// Skips spaces backwards from `i` (exclusive); returns the index of the last non-space byte.
fn back_non_ws(s: &[u8], i: usize) -> Option<usize> {
    (0..i).rev().find(|&k| !is_ws(s[k]))
}

/// Whether `word` ends at `end` (exclusive), allowing spaces between its letters (tabs and line
/// breaks inside a URL scheme are ignored by browsers and became spaces in the view).
fn ends_with_spaced(s: &[u8], end: usize, word: &[u8]) -> Option<usize> {
    let mut k = end;
    for &w in word.iter().rev() {
        let p = back_non_ws(s, k)?;
        if s[p] != w {
            return None;
        }
        k = p;
    }
    Some(k)
}

fn script_uris(s: &[u8], hits: &mut Hits) {
    for p in super::find_iter(s, b"script") {
        let mut j = p + 6;
        while j < s.len() && is_ws(s[j]) {
            j += 1;
        }
        if s.get(j) != Some(&b':') {
            continue;
        }
        let scheme = [&b"java"[..], b"vb", b"live", b"ecma"]
            .iter()
            .find_map(|w| ends_with_spaced(s, p, w));
        // "JavaScript: The Good Parts" has a space after the colon; a URL does not.
        if scheme.is_some() && s.get(j + 1).is_some_and(|&b| !is_ws(b)) {
            hits.push(("xss.uri", scheme.unwrap_or(p)));
            return;
        }
    }
    for p in super::find_iter(s, b"data:") {
        let rest = &s[p + 5..];
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        if [
            &b"text/html"[..],
            b"image/svg",
            b"application/xhtml",
            b"text/javascript",
            b"application/javascript",
            b"application/x-",
        ]
        .iter()
        .any(|m| rest.starts_with(m))
        {
            hits.push(("xss.uri", p));
            return;
        }
    }
}

fn css(s: &[u8], hits: &mut Hits) {
    for p in super::find_iter(s, b"expression") {
        let mut j = p + 10;
        while j < s.len() && is_ws(s[j]) {
            j += 1;
        }
        let called = s.get(j) == Some(&b'(');
        // `style="x:expression(…)"`; "regular expression (regex)" has no colon before it.
        let in_declaration = back_non_ws(s, p).is_some_and(|k| s[k] == b':');
        if called && in_declaration {
            hits.push(("xss.css", p));
            return;
        }
    }
    for needle in [&b"-moz-binding"[..], b"behavior:", b"behaviour:"] {
        if let Some(p) = super::find(s, needle) {
            hits.push(("xss.css", p));
            return;
        }
    }
}

/// Script calls that only make sense after breaking out of a JavaScript string or at the start of
/// an injected expression; a call preceded by a word ("please confirm(…)") is prose.
fn js_calls(s: &[u8], hits: &mut Hits) {
    for name in [&b"alert"[..], b"prompt", b"confirm", b"eval", b"fromcharcode"] {
        for p in super::find_iter(s, name) {
            let next = s.get(p + name.len()).copied();
            if !matches!(next, Some(b'(' | b'`')) {
                continue;
            }
            let ctx_ok = match back_non_ws(s, p) {
                None => true,
                Some(k) => matches!(
                    s[k],
                    b'\'' | b'"' | b'`' | b';' | b')' | b'+' | b'-' | b'=' | b'(' | b'{' | b'>' | b'.' | b'|' | b'&'
                ),
            };
            if ctx_ok {
                hits.push(("xss.js", p));
                return;
            }
        }
    }
    // DOM sinks only count right after breakout punctuation, for the same reason.
    for needle in [
        &b"document.cookie"[..],
        b"document.domain",
        b"document.write(",
        b"window.location",
        b"location.href",
    ] {
        for p in super::find_iter(s, needle) {
            if back_non_ws(s, p).is_none_or(|k| matches!(s[k], b'\'' | b'"' | b';' | b'+' | b'=' | b'(' | b'>')) {
                hits.push(("xss.js", p));
                return;
            }
        }
    }
}

/// Client-side template injection (AngularJS sandbox escapes and friends).
fn templates(s: &[u8], hits: &mut Hits) {
    let Some(open) = super::find(s, b"{{") else {
        return;
    };
    let body = &s[open..s.len().min(open + 512)];
    for needle in [
        &b"constructor"[..],
        b"$on.",
        b"$eval",
        b"__proto__",
        b"tostring()",
        b"charat",
    ] {
        if super::find(body, needle).is_some() {
            hits.push(("xss.template", open));
            return;
        }
    }
}

/// Runs every XSS check on one value, stopping at the first class that matches.
pub(crate) fn detect(view: &View<'_>, hits: &mut Hits) {
    let s = view.norm;
    let before = hits.len();
    tags(s, hits);
    if hits.len() == before {
        attribute_breakout(s, hits);
    }
    script_uris(s, hits);
    css(s, hits);
    js_calls(s, hits);
    templates(s, hits);
}
