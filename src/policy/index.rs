//! Rule index (request_filter): most rules can only match requests with a given path prefix,
//! exact path, header or query parameter. Each rule is filed under one such required key, so a
//! request only evaluates the rules its own path, headers and query could satisfy, plus the
//! rules with no key. Rule order is kept: candidates are walked as a bitset in rule order.

use std::cell::RefCell;
use std::collections::HashMap;

use aho_corasick::AhoCorasick;
use http::header::HeaderName;

use super::rules::{Rule, Test, ValueTest};
use crate::stage::RequestFacts;

/// A byte trie of path prefixes; each node lists the rules filed under the prefix ending there.
#[derive(Debug, Default)]
struct Trie {
    nodes: Vec<Node>,
}

#[derive(Debug, Default)]
struct Node {
    edges: Vec<(u8, u32)>,
    rules: Vec<u32>,
}

impl Trie {
    fn insert(&mut self, prefix: &[u8], rule: u32) {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0usize;
        for b in prefix {
            let next = match self.nodes[at].edges.iter().find(|(e, _)| e == b) {
                Some((_, n)) => *n as usize,
                None => {
                    self.nodes.push(Node::default());
                    let n = self.nodes.len() - 1;
                    self.nodes[at].edges.push((*b, n as u32));
                    n
                }
            };
            at = next;
        }
        self.nodes[at].rules.push(rule);
    }

    fn collect(&self, path: &[u8], out: &mut Bits) {
        let Some(mut node) = self.nodes.first() else { return };
        out.set_all(&node.rules);
        for b in path {
            let Some((_, n)) = node.edges.iter().find(|(e, _)| e == b) else {
                return;
            };
            node = &self.nodes[*n as usize];
            out.set_all(&node.rules);
        }
    }
}

/// Rule numbers as bits, in rule order.
#[derive(Debug, Default, Clone)]
pub struct Bits(Vec<u64>);

impl Bits {
    fn with_len(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }
    fn set_all(&mut self, rules: &[u32]) {
        for r in rules {
            self.set(*r);
        }
    }
    /// The set rule numbers, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, bits)| {
            let mut b = *bits;
            std::iter::from_fn(move || {
                if b == 0 {
                    return None;
                }
                let t = b.trailing_zeros() as usize;
                b &= b - 1;
                Some(w * 64 + t)
            })
        })
    }
}

#[derive(Debug, Default)]
pub struct RuleIndex {
    prefixes: Trie,
    exact: HashMap<String, Vec<u32>>,
    headers: HashMap<HeaderName, Vec<u32>>,
    query: HashMap<String, Vec<u32>>,
    /// Per header: one automaton over every `contains` needle filed under it, and the rule of
    /// each needle. One scan of the header finds every rule it could satisfy.
    contains: Vec<(HeaderName, AhoCorasick, Vec<u32>)>,
    /// Rules filed under no key: always candidates.
    always: Bits,
}

/// The key a rule is filed under.
enum Gate<'a> {
    Prefixes(Vec<&'a [u8]>),
    Exact(&'a [String]),
    Contains(&'a HeaderName, &'a str),
    Header(&'a HeaderName),
    Query(&'a str),
}

fn gate(rule: &Rule) -> Option<Gate<'_>> {
    let tests = rule.condition.tests();
    let present = |t: &ValueTest| !matches!(t, ValueTest::Absent);
    // Path tests narrow best, then a required header or query parameter.
    tests
        .iter()
        .find_map(|t| match t {
            Test::PathPrefix(p) => Some(Gate::Prefixes(p.iter().map(|s| s.as_bytes()).collect())),
            Test::PathExact(p) => Some(Gate::Exact(p)),
            Test::PathGlob(g) => Some(Gate::Prefixes(g.iter().map(|g| g.literal_prefix()).collect())),
            _ => None,
        })
        .or_else(|| {
            tests.iter().find_map(|t| match t {
                Test::Header(name, ValueTest::Contains { needle, .. }) => Some(Gate::Contains(name, needle)),
                _ => None,
            })
        })
        .or_else(|| {
            tests.iter().find_map(|t| match t {
                Test::Header(name, v) if present(v) => Some(Gate::Header(name)),
                Test::Query(name, v) if present(v) => Some(Gate::Query(name)),
                _ => None,
            })
        })
}

thread_local! {
    static SCRATCH: RefCell<Bits> = RefCell::new(Bits::default());
}

impl RuleIndex {
    pub fn new(rules: &[Rule]) -> Self {
        let mut ix = RuleIndex {
            always: Bits::with_len(rules.len()),
            ..RuleIndex::default()
        };
        let mut needles: HashMap<HeaderName, (Vec<&str>, Vec<u32>)> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            let i = i as u32;
            match gate(rule) {
                Some(Gate::Contains(h, needle)) => {
                    let e = needles.entry(h.clone()).or_default();
                    e.0.push(needle);
                    e.1.push(i);
                }
                Some(Gate::Prefixes(ps)) => ps.into_iter().for_each(|p| ix.prefixes.insert(p, i)),
                Some(Gate::Exact(ps)) => ps.iter().for_each(|p| ix.exact.entry(p.clone()).or_default().push(i)),
                Some(Gate::Header(h)) => ix.headers.entry(h.clone()).or_default().push(i),
                Some(Gate::Query(q)) => ix.query.entry(q.to_string()).or_default().push(i),
                None => ix.always.set(i),
            }
        }
        for (h, (pats, rules)) in needles {
            match AhoCorasick::builder().ascii_case_insensitive(true).build(&pats) {
                Ok(ac) => ix.contains.push((h, ac, rules)),
                // Not expected; without the automaton those rules are simply always evaluated.
                Err(_) => rules.iter().for_each(|r| ix.always.set(*r)),
            }
        }
        ix
    }

    /// Call `f` with the numbers of the rules this request could match, in rule order.
    pub fn with_candidates<R>(&self, facts: &RequestFacts<'_>, f: impl FnOnce(&Bits) -> R) -> R {
        SCRATCH.with(|cell| {
            let mut bits = cell.borrow_mut();
            bits.0.clear();
            bits.0.extend_from_slice(&self.always.0);
            self.prefixes.collect(facts.path.as_bytes(), &mut bits);
            if let Some(r) = self.exact.get(facts.path) {
                bits.set_all(r);
            }
            if !self.headers.is_empty() {
                for name in facts.headers.keys() {
                    if let Some(r) = self.headers.get(name) {
                        bits.set_all(r);
                    }
                }
            }
            for (name, ac, rules) in &self.contains {
                if let Some(v) = facts.headers.get(name) {
                    for m in ac.find_overlapping_iter(v.as_bytes()) {
                        if let Some(r) = rules.get(m.pattern().as_usize()) {
                            bits.set(*r);
                        }
                    }
                }
            }
            if let (false, Some(q)) = (self.query.is_empty(), facts.query) {
                for pair in q.split('&') {
                    let name = pair.split('=').next().unwrap_or("");
                    if let Some(r) = self.query.get(name) {
                        bits.set_all(r);
                    }
                }
            }
            f(&bits)
        })
    }
}
