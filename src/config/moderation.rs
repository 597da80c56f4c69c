//! Checks of a policy's `moderation:` section (load and reload): term-list files read and
//! parsed with every mistake at its `file:line`, and rules checked against the lists, routes
//! and places they name. The parse (`crate::moderate::list`, a pure leaf) is kept in the
//! section, so compiling the policy never reads a file.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use super::error::{Collector, ConfigError};
use super::file::{ModerationAction, ModerationPlace, DEFAULT_MAX_BODY};
use super::load::LoadedPolicy;
use super::validate::{check_id, resolve};
use crate::extract::FieldSelector;

/// Largest `max_message` a rule may set, in bytes: a message is held whole while it is judged.
pub const MAX_MESSAGE_CAP: u64 = 16 * 1024 * 1024;

/// Read and parse every term list the policy names; each file joins `files` (watched for hot
/// reload) and its text the policy's version hash.
pub(super) fn read_lists(pol: &mut LoadedPolicy, errors: &mut Vec<ConfigError>, files: &mut Vec<PathBuf>) {
    let Some(m) = pol.file.moderation.as_mut() else { return };
    for (name, list) in m.lists.iter_mut() {
        let f = resolve(&pol.path, &list.file);
        files.push(f.clone());
        let Some(text) = super::load::read(&f, errors) else {
            continue;
        };
        // Named by its id: hits (and so findings and metrics) name the list as the policy does.
        match crate::moderate::parse(name, &text) {
            Ok(terms) => list.terms = Some(terms),
            Err(errs) => {
                for e in errs.0 {
                    let line = e.line();
                    let full = e.to_string();
                    // The list error starts with its name and line; ConfigError prints the file's.
                    let message = full
                        .strip_prefix(&format!("{name}:{line}: "))
                        .unwrap_or(&full)
                        .to_string();
                    errors.push(ConfigError {
                        file: f.clone(),
                        line,
                        column: 1,
                        field: format!("moderation.lists.{name}"),
                        message,
                    });
                }
            }
        }
        pol.list_text.push_str(&text);
    }
}

/// Every rule: a fresh id, lists of this file, known routes, at least one place, an action that
/// makes sense for each place, parseable field selectors and bounded sizes.
pub(super) fn check_rules(
    pol: &LoadedPolicy,
    routes: &HashSet<&str>,
    ids: &mut BTreeMap<String, PathBuf>,
    c: &mut Collector<'_>,
) {
    let Some(m) = &pol.file.moderation else { return };
    for (i, r) in m.rules.iter().enumerate() {
        let p = format!("moderation.rules[{i}]");
        check_id(&r.id, &format!("{p}.id"), &pol.path, ids, c);
        if r.lists.is_empty() {
            c.field(
                &format!("{p}.lists"),
                format!("rule {:?}: name at least one list", r.id),
            );
        }
        for (j, l) in r.lists.iter().enumerate() {
            if !m.lists.contains_key(l) {
                c.field(
                    &format!("{p}.lists[{j}]"),
                    format!("rule {:?}: unknown list {l:?} (define it under moderation.lists)", r.id),
                );
            }
        }
        for (j, route) in r.routes.iter().flatten().enumerate() {
            if !routes.contains("*") && !routes.contains(route.as_str()) {
                c.field(
                    &format!("{p}.routes[{j}]"),
                    format!("rule {:?}: unknown route {route:?}", r.id),
                );
            }
        }
        if r.places.is_empty() {
            c.field(
                &format!("{p}.in"),
                format!(
                    "rule {:?}: name where to look: client_messages, origin_messages, body",
                    r.id
                ),
            );
        }
        let body = r.places.contains(&ModerationPlace::Body);
        if body && !matches!(r.action, ModerationAction::Block | ModerationAction::Log) {
            // A body is replayed from the retry buffer as read, so it cannot be rewritten, and
            // there is no stream to drop a message from or close: only block or log apply.
            c.field(
                &format!("{p}.action"),
                format!(
                    "rule {:?}: a body can only be blocked or logged; make a separate rule for messages",
                    r.id
                ),
            );
        }
        if let Some(fields) = &r.fields {
            if !body {
                c.field(
                    &format!("{p}.fields"),
                    format!("rule {:?}: fields only apply to `in: [body]`", r.id),
                );
            }
            for (j, f) in fields.iter().enumerate() {
                if let Err(e) = FieldSelector::parse(f) {
                    c.field(&format!("{p}.fields[{j}]"), format!("rule {:?}: {e}", r.id));
                }
            }
        }
        if let Some(b) = r.max_body {
            if b.0 == 0 || b.0 > DEFAULT_MAX_BODY {
                c.field(
                    &format!("{p}.max_body"),
                    format!("rule {:?}: max_body must be from 1 byte to 64KiB", r.id),
                );
            }
        }
        if let Some(b) = r.max_message {
            if b.0 == 0 || b.0 > MAX_MESSAGE_CAP {
                c.field(
                    &format!("{p}.max_message"),
                    format!("rule {:?}: max_message must be from 1 byte to 16MiB", r.id),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load::policy_from_str;

    /// Check `policy` (lists from `files`, beside it) against routes `chat` and `app`; the
    /// errors as `file:line: field: message` lines with the directory cut off.
    fn errors(policy: &str, files: &[(&str, &str)]) -> Vec<String> {
        let dir = tempfile::tempdir().expect("test");
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().expect("test")).expect("test");
            std::fs::write(p, text).expect("test");
        }
        let path = dir.path().join("p.yaml");
        let prefix = format!("{}/", dir.path().display());
        match policy_from_str(&path.display().to_string(), policy, &["chat", "app"]) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string().replace(&prefix, "")).collect(),
        }
    }

    const LISTS: &str = "moderation:\n  lists:\n    abuse: {file: lists/abuse.txt}\n  rules:\n";

    #[test]
    fn the_documented_shape_is_accepted() {
        let p = format!(
            "{LISTS}    - id: chat-abuse\n      lists: [abuse]\n      routes: [chat]\n      in: [client_messages, origin_messages]\n      action: drop\n      mode: enforce\n      strike: true\n      max_message: 64KiB\n    - id: bios\n      lists: [abuse]\n      in: [body]\n      fields: [\"message\", \"user.bio\"]\n      action: block\n      max_body: 64KiB\n      oversize: refuse\n"
        );
        assert_eq!(errors(&p, &[("lists/abuse.txt", "badword\n")]), Vec::<String>::new());
    }

    #[test]
    fn list_mistakes_name_the_list_file_and_line() {
        let p = format!("{LISTS}    - {{id: r, lists: [abuse], in: [body], action: log}}\n");
        let e = errors(&p, &[("lists/abuse.txt", "fine\n\nbad | weight=0\n!ok | weight=2\n")]);
        assert_eq!(
            e,
            [
                "lists/abuse.txt:3:1: field `moderation.lists.abuse`: bad weight `0`: expected an integer from 1 to 1000",
                "lists/abuse.txt:4:1: field `moderation.lists.abuse`: exception `ok` takes no attributes",
            ]
        );
        let e = errors(&p, &[]);
        assert!(e[0].starts_with("lists/abuse.txt: cannot read file"), "{e:?}");
    }

    #[test]
    fn rule_mistakes_are_all_reported_with_their_line() {
        let p = format!(
            "{LISTS}    - {{id: a, lists: [nope], routes: [nowhere], in: [body], action: mask}}\n    - {{id: b, lists: [], in: [], action: drop, fields: [\"a..b\"], max_message: 0}}\n    - {{id: a, lists: [abuse], in: [body], action: close, max_body: 65537}}\n"
        );
        let e = errors(&p, &[("lists/abuse.txt", "badword\n")]);
        let expect = [
            "p.yaml:5:",
            "moderation.rules[0].lists[0]`: rule \"a\": unknown list \"nope\"",
            "moderation.rules[0].routes[0]`: rule \"a\": unknown route \"nowhere\"",
            "moderation.rules[0].action`: rule \"a\": a body can only be blocked or logged",
            "moderation.rules[1].lists`: rule \"b\": name at least one list",
            "moderation.rules[1].in`",
            "moderation.rules[1].fields`: rule \"b\": fields only apply to `in: [body]`",
            "moderation.rules[1].fields[0]`",
            "moderation.rules[1].max_message`",
            "moderation.rules[2].id`: id \"a\" is already used",
            "moderation.rules[2].action`",
            "moderation.rules[2].max_body`",
        ];
        for want in expect {
            assert!(e.iter().any(|l| l.contains(want)), "{want:?} not in {e:#?}");
        }
        assert_eq!(e.len(), expect.len() - 1, "{e:#?}");
    }

    #[test]
    fn unknown_keys_and_actions_are_errors() {
        let p = format!("{LISTS}    - {{id: a, lists: [abuse], in: [body], action: block, colour: red}}\n");
        let e = errors(&p, &[("lists/abuse.txt", "x\n")]);
        assert!(e.iter().any(|l| l.contains("colour")), "{e:?}");
        let p = format!("{LISTS}    - {{id: a, lists: [abuse], in: [bodies], action: nuke}}\n");
        let e = errors(&p, &[("lists/abuse.txt", "x\n")]);
        assert!(
            e.iter().any(|l| l.contains("bodies")) && e.iter().any(|l| l.contains("nuke")),
            "{e:?}"
        );
    }
}
