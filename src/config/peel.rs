//! Every structural error of one section, not only the first (`palisade check`, reload).
//! serde stops at the first problem, and with `deny_unknown_fields` an unknown key hides a bad
//! value beside it. So each error is recorded, the key (or list item) it names is taken out of
//! the document, and the section is deserialized again, until it parses or nothing more can be
//! taken out. A `missing field` error about a key taken out that way is a consequence, not a
//! finding, and ends the search. List items taken out shift the later ones: paths are mapped
//! back to the file's own indexes before they are reported.

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use serde_yaml::Value;

use super::error::Collector;

/// Errors reported for one section at most; a section this broken has said enough.
pub const MAX_ERRORS_PER_SECTION: usize = 32;

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    /// An enum variant or an unknown step: the document cannot be walked through it.
    Opaque(String),
}

/// Deserialize a one-section document and record each of its errors, renaming the path prefix
/// `from` to `to` (a list item tried alone is always item 0). True when it parsed at once.
pub fn report_all<T: DeserializeOwned>(doc: Value, from: &str, to: &str, c: &mut Collector<'_>) -> bool {
    let mut doc = doc;
    // What was taken out, in the file's own coordinates.
    let mut removed: Vec<Vec<Step>> = Vec::new();
    for round in 0..MAX_ERRORS_PER_SECTION {
        let Err(e) = serde_path_to_error::deserialize::<_, T>(doc.clone()) else {
            return round == 0;
        };
        let current: Vec<Step> = e
            .path()
            .iter()
            .map(|s| match s {
                Segment::Seq { index } => Step::Index(*index),
                Segment::Map { key } => Step::Key(key.clone()),
                Segment::Enum { variant } => Step::Opaque(variant.clone()),
                Segment::Unknown => Step::Opaque("?".into()),
            })
            .collect();
        let message = e.inner().to_string();
        let unknown = quoted_after(&message, "unknown field `");
        // The step to take out: the unknown key inside the mapping the path names (or ends at),
        // else the value the path names.
        let target = match unknown {
            Some(name) if current.last() != Some(&Step::Key(name.to_string())) => {
                let mut t = current.clone();
                t.push(Step::Key(name.to_string()));
                t
            }
            _ => current.clone(),
        };
        let original = to_original(&target, &removed);
        if let Some(field) = quoted_after(&message, "missing field `") {
            let mut gone = original.clone();
            gone.push(Step::Key(field.to_string()));
            if removed.contains(&gone) {
                return false;
            }
        }
        let mut path = render(&original);
        if !from.is_empty() && path.starts_with(from) {
            path = format!("{to}{}", &path[from.len()..]);
        }
        c.field(&path, message);
        if target.is_empty() || !take_out(&mut doc, &target) {
            return false;
        }
        removed.push(original);
    }
    false
}

/// The text between `prefix` and the next backquote, when `message` starts with `prefix`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// A path as serde_path_to_error prints it: `rules[0].match.ip`.
fn render(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Key(k) | Step::Opaque(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
        }
    }
    out
}

/// `steps`, given in the coordinates of the document as it is now, in those of the file:
/// each list index is moved past the items taken out before it.
fn to_original(steps: &[Step], removed: &[Vec<Step>]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for s in steps {
        let step = match s {
            Step::Index(now) => {
                let gone = |i: usize| {
                    removed.iter().any(|r| {
                        r.len() == out.len() + 1 && r[..out.len()] == out[..] && r[out.len()] == Step::Index(i)
                    })
                };
                let mut seen = 0;
                let mut i = 0;
                loop {
                    if !gone(i) {
                        if seen == *now {
                            break;
                        }
                        seen += 1;
                    }
                    i += 1;
                }
                Step::Index(i)
            }
            other => other.clone(),
        };
        out.push(step);
    }
    out
}

/// Remove what `steps` names from `doc`. False when the path cannot be walked.
fn take_out(doc: &mut Value, steps: &[Step]) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut at = doc;
    for s in parents {
        at = match (s, at) {
            (Step::Key(k), Value::Mapping(m)) => match m.get_mut(k.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (Step::Index(i), Value::Sequence(items)) => match items.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, at) {
        // `shift_remove` keeps the order of the other keys, so errors come out in file order.
        (Step::Key(k), Value::Mapping(m)) => m.shift_remove(k.as_str()).is_some(),
        (Step::Index(i), Value::Sequence(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_back_past_removed_items() {
        let removed = vec![
            vec![Step::Key("cidrs".into()), Step::Index(0)],
            vec![Step::Key("cidrs".into()), Step::Index(2)],
        ];
        // Now item 1 of [b, d, …] was item 3 of [a, b, c, d, …].
        assert_eq!(
            to_original(&[Step::Key("cidrs".into()), Step::Index(1)], &removed),
            [Step::Key("cidrs".into()), Step::Index(3)]
        );
        assert_eq!(
            render(&[Step::Key("rules".into()), Step::Index(0), Step::Key("match".into())]),
            "rules[0].match"
        );
    }
}
