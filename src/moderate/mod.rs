//! Chat moderation (message scan): operator term lists matched against chat messages through
//! the usual evasions (homoglyphs, accents, leetspeak, spacing, stretched letters), with hits
//! mapped back to the original text for masking and redacted telemetry excerpts.
//!
//! `list` parses list files, `fold` defines the canonical form terms and messages share, and
//! `matcher` compiles lists into a [`TermSet`] and scans messages. Those three are pure leaves
//! (no other crate module), which is why `config` may parse lists at load and `policy` may hold
//! compiled sets. `stage` is the security stage that applies a policy's moderation rules to
//! request bodies and WebSocket messages. docs/moderation.md is the operator's guide.

pub mod cli;
pub mod fold;
pub mod list;
pub mod matcher;
pub mod stage;

pub use list::{parse, Entry, Exception, ListError, ListErrors, TermList};
pub use matcher::{excerpt, mask, BuildError, Hit, TermSet};

#[cfg(test)]
mod tests;
