//! Maps field paths (`routes[2].upstream`) to their line and column in a YAML source, so
//! config errors found after parsing can still point the operator at the right place.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line (1-based) and column (1-based) of a node in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Every scalar key, mapping and sequence item of a document, by path.
#[derive(Debug, Default)]
pub struct Locator {
    positions: HashMap<String, Position>,
}

enum Frame {
    /// In a mapping; `key` is the pending key once read, waiting for its value.
    Map {
        path: String,
        key: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    positions: HashMap<String, Position>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Recorder {
    /// The path of the node that starts now, or `None` when the event is a mapping key.
    fn enter_node(&mut self, mark: Marker, scalar: Option<&str>) -> Option<String> {
        let pos = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                self.positions.entry(p.clone()).or_insert(pos);
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    // A key: remember where it stands; complex keys are recorded by their text.
                    let k = scalar.unwrap_or("?").to_string();
                    self.positions.insert(join(path, &k), pos);
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(ref v, ..) => {
                self.enter_node(mark, Some(v));
            }
            Event::Alias(_) => {
                self.enter_node(mark, Some("*alias"));
            }
            Event::MappingStart(..) => {
                let path = self.enter_node(mark, None).unwrap_or_default();
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.enter_node(mark, None).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl Locator {
    /// Index `source`; a document that does not parse yields an empty locator (the parse error
    /// is reported by the deserializer, with its own position).
    pub fn new(source: &str) -> Self {
        let mut rec = Recorder::default();
        let mut parser = Parser::new_from_str(source);
        if parser.load(&mut rec, false).is_err() {
            return Locator::default();
        }
        Locator {
            positions: rec.positions,
        }
    }

    /// Position of `path`, or of its nearest ancestor that exists in the source.
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_items() {
        let src = "a: 1\nroutes:\n  - name: x\n    upstream: y\n  - name: z\n    hosts: [p, q]\n";
        let l = Locator::new(src);
        assert_eq!(l.find("a").map(|p| p.line), Some(1));
        assert_eq!(l.find("routes[0].upstream").map(|p| p.line), Some(4));
        assert_eq!(l.find("routes[1].name").map(|p| p.line), Some(5));
        assert_eq!(l.find("routes[1].hosts[1]").map(|p| p.line), Some(6));
        // Missing leaves fall back to the closest ancestor.
        assert_eq!(l.find("routes[1].timeouts.read").map(|p| p.line), Some(5));
    }
}
