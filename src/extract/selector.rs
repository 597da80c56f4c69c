//! Field selectors of the moderation config (compiled at load, matched per request field):
//! which extracted fields a term list applies to.
//!
//! Syntax, matched against a field's path (see `json.rs` for how paths are written):
//! - `*` alone: every field.
//! - Otherwise segments joined by `.`: a key (`message`, `user.bio`), or `*` for any one key
//!   (`user.*`). Each key may be followed by index steps: `[2]` for that element, `[*]` for any
//!   element (`items[*].text`). A key that is not plain is written quoted, `["a.b"]`.
//! - A selector matches a path with exactly as many steps: `user` does not match `user.bio`.
//! - Form, query and multipart field names are paths too (`user.bio` as a form name matches
//!   `user.bio`); a name that does not read as a path (`user[bio]`, `a b`) is one key, selected
//!   quoted: `["user[bio]"]`, `["a b"]`.

use std::borrow::Cow;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad field selector {selector:?}: {why}")]
pub struct SelectorError {
    pub selector: String,
    pub why: &'static str,
}

/// One step of a path or selector; the wildcards only in selectors.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'a> {
    Key(Cow<'a, str>),
    AnyKey,
    Index(usize),
    AnyIndex,
}

impl Step<'_> {
    fn into_owned(self) -> Step<'static> {
        match self {
            Step::Key(k) => Step::Key(Cow::Owned(k.into_owned())),
            Step::AnyKey => Step::AnyKey,
            Step::Index(i) => Step::Index(i),
            Step::AnyIndex => Step::AnyIndex,
        }
    }

    /// Does selector step `self` accept path step `p`?
    fn accepts(&self, p: &Step<'_>) -> bool {
        match (self, p) {
            (Step::AnyKey, Step::Key(_)) | (Step::AnyIndex, Step::Index(_)) => true,
            (Step::Key(a), Step::Key(b)) => a == b,
            (Step::Index(a), Step::Index(b)) => a == b,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSelector {
    source: String,
    /// `None`: every field.
    steps: Option<Vec<Step<'static>>>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let bad = |why| SelectorError {
            selector: s.to_owned(),
            why,
        };
        let steps = match s {
            "" => return Err(bad("empty")),
            "*" => None,
            _ => Some(
                Steps::new(s, true)
                    .map(|r| r.map(Step::into_owned))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad)?,
            ),
        };
        Ok(FieldSelector {
            source: s.to_owned(),
            steps,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Reads `path` step by step without allocating (unless a key is quoted with escapes).
    pub fn matches(&self, path: &str) -> bool {
        let Some(want) = &self.steps else { return true };
        let mut ok = true;
        let mut n = 0;
        // The whole path is read even after a mismatch: a path that turns out malformed is
        // matched as one key instead.
        for step in Steps::new(path, false) {
            let Ok(step) = step else {
                return want.len() == 1 && want[0].accepts(&Step::Key(Cow::Borrowed(path)));
            };
            ok = ok && want.get(n).is_some_and(|w| w.accepts(&step));
            n += 1;
        }
        ok && n == want.len()
    }
}

/// The steps of a path (or, with `wild`, of a selector), read lazily.
struct Steps<'a> {
    s: &'a str,
    i: usize,
    wild: bool,
    expect_key: bool,
    done: bool,
}

impl<'a> Steps<'a> {
    fn new(s: &'a str, wild: bool) -> Steps<'a> {
        Steps {
            s,
            i: 0,
            wild,
            expect_key: true,
            // The empty path is a top-level value: no steps.
            done: s.is_empty(),
        }
    }

    fn fail(&mut self, why: &'static str) -> Option<Result<Step<'a>, &'static str>> {
        self.done = true;
        Some(Err(why))
    }
}

impl<'a> Iterator for Steps<'a> {
    type Item = Result<Step<'a>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let b = self.s.as_bytes();
        if self.expect_key {
            self.expect_key = false;
            let start = self.i;
            while self.i < b.len() && !matches!(b[self.i], b'.' | b'[') {
                self.i += 1;
            }
            match &self.s[start..self.i] {
                // A path may start with an index (a top-level array).
                "" if start == 0 && b.first() == Some(&b'[') => {}
                "" => return self.fail("empty key"),
                "*" if self.wild => return Some(Ok(Step::AnyKey)),
                k if super::json::is_plain_key(k) => return Some(Ok(Step::Key(Cow::Borrowed(k)))),
                _ => return self.fail("key needs quoting"),
            }
        }
        match b.get(self.i) {
            None => {
                self.done = true;
                None
            }
            Some(b'.') => {
                self.i += 1;
                self.expect_key = true;
                self.next()
            }
            Some(b'[') => {
                let Some(close) = bracket_end(self.s, self.i) else {
                    return self.fail("unclosed [");
                };
                let inner = &self.s[self.i + 1..close];
                self.i = close + 1;
                let step = match inner {
                    "*" if self.wild => Step::AnyIndex,
                    _ if inner.starts_with('"') => match serde_json::from_str::<Value>(inner) {
                        Ok(Value::String(k)) => Step::Key(Cow::Owned(k)),
                        _ => return self.fail("bad quoted key"),
                    },
                    _ if !inner.is_empty() && inner.bytes().all(|c| c.is_ascii_digit()) => match inner.parse() {
                        Ok(i) => Step::Index(i),
                        Err(_) => return self.fail("index too large"),
                    },
                    _ => return self.fail("bad index"),
                };
                Some(Ok(step))
            }
            Some(_) => self.fail("expected . or ["),
        }
    }
}

/// Index of the `]` closing the bracket opened at `open`, skipping a quoted key's escapes.
fn bracket_end(s: &str, open: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = open + 1;
    if b.get(i) == Some(&b'"') {
        i += 1;
        while i < b.len() && b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        i += 1;
    }
    (i..b.len()).find(|&j| b[j] == b']')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).expect("test input is valid")
    }

    #[test]
    fn selectors_match_paths() {
        assert!(sel("message").matches("message"));
        assert!(!sel("message").matches("messages"));
        assert!(sel("user.bio").matches("user.bio"));
        assert!(!sel("user").matches("user.bio"));
        assert!(sel("user.*").matches("user.bio"));
        assert!(!sel("user.*").matches("user[0]"));
        assert!(sel("items[*].text").matches("items[2].text"));
        assert!(!sel("items[*].text").matches("items.text"));
        assert!(sel("items[2].text").matches("items[2].text"));
        assert!(!sel("items[2].text").matches("items[3].text"));
        assert!(sel("m[*][*]").matches("m[0][1]"));
        assert!(sel("[*].name").matches("[0].name"));
        assert!(sel(r#"h["a.b"].c"#).matches(r#"h["a.b"].c"#));
        assert!(sel("*").matches("anything[at].all"));
        assert!(sel("*").matches(""));
    }

    #[test]
    fn names_that_are_not_paths_match_literally() {
        assert!(FieldSelector::parse("user[bio]").is_err());
        assert!(sel(r#"["user[bio]"]"#).matches("user[bio]"));
        assert!(sel(r#"["a b"]"#).matches("a b"));
        assert!(!sel("user.bio").matches("user[bio]"));
        assert!(!sel("a").matches("a b"));
        assert!(sel("*").matches("user[bio]"));
        assert!(sel("*").matches(""));
        assert!(!sel("a").matches(""));
        assert!(!sel("a").matches("a."));
        assert!(sel(r#"["a."]"#).matches("a."));
    }

    #[test]
    fn bad_selectors_are_refused() {
        for bad in [
            "",
            "a..b",
            "a.",
            ".a",
            "a[",
            "a[x]",
            "a[]",
            "a b",
            "a]b",
            r#"a["x]"#,
            "a[99999999999999999999999]",
        ] {
            assert!(FieldSelector::parse(bad).is_err(), "{bad:?}");
        }
    }
}
