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
