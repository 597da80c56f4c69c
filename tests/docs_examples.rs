//! Every YAML example in docs/policies.md and docs/configuration.md is accepted by the loader
//! `palisade check` uses, so the documentation cannot drift from the schema unnoticed.
//!
//! Each ```yaml block must sit right under a marker saying what it is:
//! - `<!-- check: policy -->`: a whole policy file, checked alone;
//! - `<!-- check: policy-part -->`: sections of one policy file spread over a document (lists,
//!   then rules that use them, …): a document's parts are joined into one file and checked;
//! - `<!-- check: config -->`: top-level sections of palisade.yaml, laid over a minimal valid
//!   configuration (one listener, pool `web`, route `web`) and checked with the repository's
//!   `policies/` beside it;
//! - `<!-- check: match -->`: the value of a rule's `match:`, checked inside a rule.
//!
//! A block without a marker fails the test: nothing is skipped silently.

mod common;
use common::copy_dir;

use std::path::PathBuf;

use palisade::config::{load, Overrides};

const DOCS: &[&str] = &["docs/policies.md", "docs/configuration.md"];

/// The configuration a `config` example is laid over.
const BASE_CONFIG: &str = "\
listeners:
  - address: 127.0.0.1:8080
upstreams:
  web:
    backends: [\"127.0.0.1:9000\"]
routes:
  - name: web
    upstream: web
telemetry:
  sink: off
";

#[derive(Debug)]
struct Example {
    doc: &'static str,
    /// 1-based line of the opening fence.
    line: usize,
    kind: String,
    text: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples(doc: &'static str) -> Vec<Example> {
    let text = std::fs::read_to_string(repo().join(doc)).expect("read doc");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("```yaml") {
            let marker = i
                .checked_sub(1)
                .map(|j| lines[j].trim())
                .and_then(|l| l.strip_prefix("<!-- check:"))
                .and_then(|l| l.strip_suffix("-->"))
                .map(|k| k.trim().to_string())
                .unwrap_or_else(|| {
                    panic!(
                        "{doc}:{}: a ```yaml example without a `<!-- check: KIND -->` line above it (see tests/docs_examples.rs)",
                        i + 1
                    )
                });
            let start = i;
            let mut body = String::new();
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                body.push_str(lines[i]);
                body.push('\n');
                i += 1;
            }
            out.push(Example {
                doc,
                line: start + 1,
                kind: marker,
                text: body,
            });
        }
        i += 1;
    }
    out
}

/// A fresh directory holding a copy of the repository's `policies/` (with its lists).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo().join("policies"), &dir.path().join("policies"));
    dir
}

/// Load `config` (and what it names) from a workspace; the errors as text on refusal.
fn accepted(config: &str, policy: Option<&str>) -> Result<(), String> {
    let dir = workspace();
    let mut config = config.to_string();
    if let Some(p) = policy {
        // Beside the shipped policies, so `lists/…` file references resolve as they would there.
        std::fs::write(dir.path().join("policies/doc-example.yaml"), p).expect("write policy");
        config.push_str("policies: [policies/doc-example.yaml]\n");
    }
    let path = dir.path().join("palisade.yaml");
    std::fs::write(&path, &config).expect("write config");
    load(Some(&path), &Overrides::default()).map(|_| ()).map_err(|e| {
        format!(
            "{e}\n--- palisade.yaml ---\n{config}--- policy ---\n{}",
            policy.unwrap_or("")
        )
    })
}

/// `BASE_CONFIG` with the example's top-level keys put in place of the base's.
fn over_base(example: &str) -> String {
    let mut base: serde_yaml::Mapping = serde_yaml::from_str(BASE_CONFIG).expect("base");
    let ex: serde_yaml::Mapping = serde_yaml::from_str(example).expect("the example is a YAML mapping");
    for (k, v) in ex {
        base.insert(k, v);
    }
    serde_yaml::to_string(&base).expect("yaml")
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

#[test]
fn every_yaml_example_in_the_docs_is_accepted() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for doc in DOCS {
        let all = examples(doc);
        assert!(!all.is_empty(), "{doc} has no YAML example: is the path right?");
        let mut parts = String::new();
        let mut part_lines = Vec::new();
        for ex in &all {
            let result = match ex.kind.as_str() {
                "policy" => accepted(BASE_CONFIG, Some(&ex.text)),
                "policy-part" => {
                    parts.push_str(&ex.text);
                    part_lines.push(ex.line);
                    Ok(())
                }
                "config" => accepted(&over_base(&ex.text), None),
                "match" => {
                    assert!(
                        ex.text.starts_with("match:"),
                        "{}:{}: a match example starts with `match:`",
                        ex.doc,
                        ex.line
                    );
                    let policy = format!(
                        "rules:\n  - id: doc-example\n    action: block\n{}",
                        indent(&ex.text, "    ")
                    );
                    accepted(BASE_CONFIG, Some(&policy))
                }
                other => panic!("{}:{}: unknown example kind {other:?}", ex.doc, ex.line),
            };
            checked += 1;
            if let Err(e) = result {
                failures.push(format!("{}:{} ({}):\n{e}", ex.doc, ex.line, ex.kind));
            }
        }
        if !parts.is_empty() {
            if let Err(e) = accepted(BASE_CONFIG, Some(&parts)) {
                failures.push(format!("{doc} policy parts at lines {part_lines:?}:\n{e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 9, "only {checked} examples found");
}

#[test]
fn a_broken_example_would_be_caught() {
    // The harness itself must be able to fail: a typo in a policy part is refused.
    assert!(accepted(
        BASE_CONFIG,
        Some("rules:\n  - id: x\n    match: {path_prefix: [/]}\n    action: blok\n")
    )
    .is_err());
    assert!(accepted(&over_base("state:\n  paht: /x\n"), None).is_err());
}
