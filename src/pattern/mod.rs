//! Patterns operators write in policies (regexes, path globs), with the limits that keep them
//! cheap: shared by validation (`config`) and compilation (`policy`), so neither imports the
//! other.

pub mod glob;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// Compiled regexes may use at most this much memory each, so a policy cannot exhaust it.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compile a policy regex with Palisade's limits.
/// A policy pattern that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("invalid regex {pattern:?}: {detail}")]
    Regex { pattern: String, detail: String },
    #[error("path must start with /")]
    Relative,
    #[error("glob {glob:?} has {wildcards} wildcards; at most {MAX_GLOB_WILDCARDS}")]
    TooManyWildcards { glob: String, wildcards: usize },
    #[error("replacement {to:?}: {detail}")]
    Replacement { to: String, detail: String },
}

pub fn compile_regex(re: &str) -> Result<Regex, PatternError> {
    RegexBuilder::new(re)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| PatternError::Regex {
            pattern: re.to_string(),
            detail: e.to_string(),
        })
}

/// A set of policy regexes; one that fails to compile (which validation rules out) leaves a
/// set that matches nothing rather than everything.
pub fn regex_set<I: IntoIterator<Item = S>, S: AsRef<str>>(res: I) -> RegexSet {
    RegexSetBuilder::new(res)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .unwrap_or_else(|e| {
            log::error!("policy regex failed to compile after validation: {e}");
            RegexSet::empty()
        })
}

/// Most wildcards one glob may hold; matching backtracks, so this bounds its cost.
pub const MAX_GLOB_WILDCARDS: usize = 8;

/// Check a path glob: it starts with `/` and has few enough wildcards.
pub fn check_glob(glob: &str) -> Result<(), PatternError> {
    if !glob.starts_with('/') {
        return Err(PatternError::Relative);
    }
    let wild = glob
        .replace("**", "*")
        .bytes()
        .filter(|b| *b == b'*' || *b == b'?')
        .count();
    if wild > MAX_GLOB_WILDCARDS {
        return Err(PatternError::TooManyWildcards {
            glob: glob.to_string(),
            wildcards: wild,
        });
    }
    Ok(())
}

/// Check a regex replacement against its regex: every `$1`, `${1}` or `${name}` names a capture
/// group the regex has (`$$` is a dollar). A bare `$name` or `$1x` is refused, because the
/// regex crate would read the longest run of word characters as a group name (`$1x` is group
/// "1x", which does not exist, and would silently expand to nothing).
pub fn check_replacement(re: &Regex, to: &str) -> Result<(), PatternError> {
    let fail = |detail: String| PatternError::Replacement {
        to: to.to_string(),
        detail,
    };
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut rest = to;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let group = if let Some(r) = rest.strip_prefix('$') {
            rest = r;
            continue;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').ok_or_else(|| fail("`${` without a closing `}`".into()))?;
            rest = &r[end + 1..];
            &r[..end]
        } else {
            let end = rest.find(|c: char| !word(c)).unwrap_or(rest.len());
            let g = &rest[..end];
            rest = &rest[end..];
            if g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail(format!(
                    "write `${{{g}}}` (with braces) for a named group or one followed by letters; `$$` for a dollar"
                )));
            }
            g
        };
        let known = match group.parse::<usize>() {
            Ok(n) => n < re.captures_len(),
            Err(_) => re.capture_names().flatten().any(|n| n == group),
        };
        if !known {
            return Err(fail(format!("the regex has no capture group {group:?}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_name_only_groups_the_regex_has() {
        let re = compile_regex(r"^/u/(\d+)/(?P<tab>\w+)$").expect("test value");
        for ok in [
            "/users/$1",
            "/users/${1}/${tab}",
            "/p/$2",
            "/cost/$$1",
            "/plain",
            "/x/${1}a",
        ] {
            assert_eq!(check_replacement(&re, ok), Ok(()), "{ok}");
        }
        for bad in ["/users/$3", "/x/$1a", "/x/$tab", "/x/${nope}", "/x/${1", "/x/$"] {
            assert!(check_replacement(&re, bad).is_err(), "{bad}");
        }
    }
}
