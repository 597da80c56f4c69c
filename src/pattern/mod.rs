//! Patterns operators write in policies (regexes, path globs), with the limits that keep them
//! cheap: shared by validation (`config`) and compilation (`policy`), so neither imports the
//! other.

pub mod glob;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// Compiled regexes may use at most this much memory each, so a policy cannot exhaust it.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compile a policy regex with Palisade's limits.
pub fn compile_regex(re: &str) -> Result<Regex, String> {
    RegexBuilder::new(re)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regex {re:?}: {e}"))
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
pub fn check_glob(glob: &str) -> Result<(), String> {
    if !glob.starts_with('/') {
        return Err("path must start with /".into());
    }
    let wild = glob
        .replace("**", "*")
        .bytes()
        .filter(|b| *b == b'*' || *b == b'?')
        .count();
    if wild > MAX_GLOB_WILDCARDS {
        return Err(format!(
            "glob {glob:?} has {wild} wildcards; at most {MAX_GLOB_WILDCARDS}"
        ));
    }
    Ok(())
}
