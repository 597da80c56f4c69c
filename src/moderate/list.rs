//! Term-list files (load and reload): parse an operator's list into entries and exceptions,
//! folding every term once and reporting every mistake with its file and line.
//!
//! # Syntax
//!
//! One entry per line; blank lines are ignored.
//!
//! ```text
//! # A full-line comment.
//! badword                             # a term; trailing comments start at ` #`
//! bad word | category=insult weight=3 # a phrase, with attributes after ` |`
//! !scunthorpe                         # an exception (allow-list entry)
//! \!bang                              # a leading `\` escapes `!`, `#` or `\`: the term `!bang`
//! ```
//!
//! - A term is a word or a phrase. It is folded like chat text (see `fold.rs`), so `b4dword`,
//!   `BADWORD` and `badword` are the same entry; a term that folds to nothing is an error.
//! - `#` starts a comment at the start of a line or after whitespace (`c#` is a term).
//! - Attributes follow the first `|` that starts the line's body or follows whitespace (`b|tch`
//!   is a term), as space-separated `key=value` pairs:
//!   - `category=NAME`: 1 to 32 of `a-z 0-9 _ -`; none by default.
//!   - `weight=N`: an integer from 1 to [`MAX_WEIGHT`]; [`DEFAULT_WEIGHT`] by default.
//!
//!   Any other key, a repeated key or a pair without `=` is an error.
//! - A line starting with `!` is an exception: a hit on any list's term that lies inside a match
//!   of an exception is suppressed (`!scunthorpe`, `!cockpit`). Exceptions take no attributes.

use thiserror::Error;

use super::fold::fold;

/// Weight of an entry without `weight=`.
pub const DEFAULT_WEIGHT: u32 = 1;
/// Largest accepted `weight=`.
pub const MAX_WEIGHT: u32 = 1000;
/// Longest accepted `category=` value, in bytes.
const MAX_CATEGORY_LEN: usize = 32;

/// A parsed term list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermList {
    name: String,
    entries: Vec<Entry>,
    exceptions: Vec<Exception>,
}

/// One term to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The term as written in the file.
    pub term: String,
    /// 1-based line in the file.
    pub line: usize,
    pub category: Option<String>,
    pub weight: u32,
    pub(crate) folded: String,
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub term: String,
    pub line: usize,
    pub(crate) folded: String,
}

impl TermList {
    /// The name given to [`parse`], usually the file path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Entries in file order; a hit's `entry` indexes this slice.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn exceptions(&self) -> &[Exception] {
        &self.exceptions
    }
}

/// One mistake in a list file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ListError {
    #[error("{file}:{line}: unknown key `{key}` (expected `category` or `weight`)")]
    UnknownKey { file: String, line: usize, key: String },
    #[error("{file}:{line}: `{attr}` is not key=value")]
    MalformedAttribute { file: String, line: usize, attr: String },
    #[error("{file}:{line}: key `{key}` given twice")]
    DuplicateKey { file: String, line: usize, key: String },
    #[error("{file}:{line}: bad weight `{value}`: expected an integer from 1 to {MAX_WEIGHT}")]
    BadWeight { file: String, line: usize, value: String },
    #[error("{file}:{line}: bad category `{value}`: expected 1 to {MAX_CATEGORY_LEN} of a-z 0-9 _ -")]
    BadCategory { file: String, line: usize, value: String },
    #[error("{file}:{line}: term `{term}` is empty after folding")]
    EmptyTerm { file: String, line: usize, term: String },
    #[error("{file}:{line}: `{term}` looks like attributes without a space before `|`")]
    UnspacedAttributes { file: String, line: usize, term: String },
    #[error("{file}:{line}: exception `{term}` takes no attributes")]
    ExceptionAttributes { file: String, line: usize, term: String },
}

impl ListError {
    /// The 1-based line of the mistake.
    pub fn line(&self) -> usize {
        match self {
            ListError::UnknownKey { line, .. }
            | ListError::MalformedAttribute { line, .. }
            | ListError::DuplicateKey { line, .. }
            | ListError::BadWeight { line, .. }
            | ListError::BadCategory { line, .. }
            | ListError::EmptyTerm { line, .. }
            | ListError::UnspacedAttributes { line, .. }
            | ListError::ExceptionAttributes { line, .. } => *line,
        }
    }
}

/// Every mistake found in one or more list files, in file and line order.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ListErrors(pub Vec<ListError>);

impl std::fmt::Display for ListErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Parse list `text`, named `name` in errors. Every line is checked; all errors are returned.
pub fn parse(name: &str, text: &str) -> Result<TermList, ListErrors> {
    let mut list = TermList {
        name: name.to_owned(),
        ..TermList::default()
    };
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let body = strip_comment(raw).trim();
        if body.is_empty() {
            continue;
        }
        let (term_part, attrs) = split_attributes(body);
        // `term|weight=2` would silently become the term `termiweight 2`: refuse it.
        if attrs.is_none() && body.split_once('|').is_some_and(|(_, after)| after.contains('=')) {
            errors.push(ListError::UnspacedAttributes {
                file: name.to_owned(),
                line,
                term: body.to_owned(),
            });
            continue;
        }
        let (is_exception, term) = match term_part.strip_prefix('!') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, term_part.strip_prefix('\\').unwrap_or(term_part)),
        };
        let folded = fold(term).as_str().to_owned();
        if folded.is_empty() {
            errors.push(ListError::EmptyTerm {
                file: name.to_owned(),
                line,
                term: term.to_owned(),
            });
        }
        if is_exception {
            if attrs.is_some_and(|a| !a.trim().is_empty()) {
                errors.push(ListError::ExceptionAttributes {
                    file: name.to_owned(),
                    line,
                    term: term.to_owned(),
                });
            } else if !folded.is_empty() {
                list.exceptions.push(Exception {
                    term: term.to_owned(),
                    line,
                    folded,
                });
            }
            continue;
        }
        let before = errors.len();
        let (category, weight) = parse_attributes(name, line, attrs.unwrap_or(""), &mut errors);
        if errors.len() == before {
            list.entries.push(Entry {
                term: term.to_owned(),
                line,
                category,
                weight,
                folded,
            });
        }
    }
    if errors.is_empty() {
        Ok(list)
    } else {
        Err(ListErrors(errors))
    }
}

/// Cut a comment: `#` at the start of the line or after whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// Split at the first `|` that follows whitespace: `(term, Some(attributes))`.
fn split_attributes(body: &str) -> (&str, Option<&str>) {
    let bytes = body.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'|' && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return (body[..i].trim_end(), Some(&body[i + 1..]));
        }
    }
    (body, None)
}

fn parse_attributes(file: &str, line: usize, attrs: &str, errors: &mut Vec<ListError>) -> (Option<String>, u32) {
    let mut category: Option<String> = None;
    let mut weight: Option<u32> = None;
    for attr in attrs.split_whitespace() {
        let Some((key, value)) = attr.split_once('=') else {
            errors.push(ListError::MalformedAttribute {
                file: file.to_owned(),
                line,
                attr: attr.to_owned(),
            });
            continue;
        };
        let duplicate = match key {
            "category" => category.is_some(),
            "weight" => weight.is_some(),
            _ => false,
        };
        if duplicate {
            errors.push(ListError::DuplicateKey {
                file: file.to_owned(),
                line,
                key: key.to_owned(),
            });
            continue;
        }
        match key {
            "category" => {
                let ok = !value.is_empty()
                    && value.len() <= MAX_CATEGORY_LEN
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
                if ok {
                    category = Some(value.to_owned());
                } else {
                    errors.push(ListError::BadCategory {
                        file: file.to_owned(),
                        line,
                        value: value.to_owned(),
                    });
                }
            }
            "weight" => match value.parse::<u32>() {
                Ok(w) if (1..=MAX_WEIGHT).contains(&w) => weight = Some(w),
                _ => errors.push(ListError::BadWeight {
                    file: file.to_owned(),
                    line,
                    value: value.to_owned(),
                }),
            },
            _ => errors.push(ListError::UnknownKey {
                file: file.to_owned(),
                line,
                key: key.to_owned(),
            }),
        }
    }
    (category, weight.unwrap_or(DEFAULT_WEIGHT))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn parses_terms_attributes_comments_and_exceptions() {
        let text = "# header\n\
                    \n\
                    badword\n\
                    bad word | category=insult weight=3  # phrase\n\
                    c#\n\
                    b|tch | weight=2\n\
                    !scunthorpe\n\
                    \\!bang\n\
                    \x20  crud   \n";
        let list = parse("test.txt", text).expect("valid list");
        let terms: Vec<&str> = list.entries().iter().map(|e| e.term.as_str()).collect();
        assert_eq!(terms, ["badword", "bad word", "c#", "b|tch", "!bang", "crud"]);
        let phrase = &list.entries()[1];
        assert_eq!(phrase.category.as_deref(), Some("insult"));
        assert_eq!(phrase.weight, 3);
        assert_eq!(phrase.line, 4);
        assert_eq!(list.entries()[0].weight, DEFAULT_WEIGHT);
        assert_eq!(list.entries()[3].weight, 2);
        assert_eq!(list.exceptions().len(), 1);
        assert_eq!(list.exceptions()[0].term, "scunthorpe");
        assert_eq!(list.exceptions()[0].line, 7);
    }

    #[test]
    fn collects_every_error_with_line() {
        let text = "ok\n\
                    a | colour=red\n\
                    b | weight=0\n\
                    c | weight=heavy category=Bad!\n\
                    !!!\n\
                    d | weight\n\
                    e | weight=1 weight=2\n\
                    !f | weight=2\n\
                    g|weight=2\n";
        let Err(ListErrors(errors)) = parse("x.list", text) else {
            panic!("expected errors");
        };
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "x.list:2: unknown key `colour` (expected `category` or `weight`)",
                "x.list:3: bad weight `0`: expected an integer from 1 to 1000",
                "x.list:4: bad weight `heavy`: expected an integer from 1 to 1000",
                "x.list:4: bad category `Bad!`: expected 1 to 32 of a-z 0-9 _ -",
                "x.list:5: term `!!` is empty after folding",
                "x.list:6: `weight` is not key=value",
                "x.list:7: key `weight` given twice",
                "x.list:8: exception `f` takes no attributes",
                "x.list:9: `g|weight=2` looks like attributes without a space before `|`",
            ]
        );
    }

    #[test]
    fn hundred_thousand_entries() {
        let mut text = String::new();
        for i in 0..100_000u32 {
            text.push_str(&format!("term{} | category=c{} weight={}\n", word(i), i % 7, i % 9 + 1));
        }
        let list = parse("big", &text).expect("valid list");
        assert_eq!(list.entries().len(), 100_000);
        assert_eq!(list.entries()[99_999].line, 100_000);
        assert_eq!(list.entries()[42].weight, 42 % 9 + 1);
    }

    /// A distinct letters-only suffix for `i` (digits would fold as leetspeak).
    pub(crate) fn word(mut i: u32) -> String {
        let mut s = String::new();
        loop {
            s.push((b'a' + (i % 26) as u8) as char);
            i /= 26;
            if i == 0 {
                break s;
            }
        }
    }
}
