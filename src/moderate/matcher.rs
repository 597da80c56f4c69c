//! Term matching (chat scan): one Aho-Corasick automaton over the folded terms of every list,
//! whole-word hits mapped back to byte ranges of the original message, exceptions applied, and
//! the two redactions the rest of Palisade needs (a masked message, a telemetry excerpt).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;

use aho_corasick::automaton::Automaton;
use aho_corasick::{dfa, nfa, Anchored, MatchKind, StartKind};
use thiserror::Error;

use super::fold::{fold_into, Folded};
use super::list::TermList;

/// Most `l` positions in one term that get every `l`/`i` combination as a variant; past this
/// only the all-`i` variant is added (2^4 = 16 patterns per term at most).
const MAX_L_VARIANTS: usize = 4;
/// Largest pattern count compiled to a DFA (fastest walk); larger sets use a contiguous NFA,
/// which walks somewhat slower but builds about twice as fast and in far less memory, keeping
/// a 100k-entry reload under a second.
const MAX_DFA_PATTERNS: usize = 30_000;
/// Characters of context kept on each side of a hit in an [`excerpt`].
pub const EXCERPT_CONTEXT: usize = 24;
/// Longest matched part kept in an [`excerpt`], in characters, before it is cut with `…`.
const EXCERPT_MATCH: usize = 24;

/// Why a [`TermSet`] could not be built.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error("term set with {patterns} patterns: automaton build failed: {source}")]
    Automaton {
        patterns: usize,
        #[source]
        source: aho_corasick::BuildError,
    },
}

/// All term lists compiled into one matcher; immutable, shared by every scan.
#[derive(Debug, Clone)]
pub struct TermSet {
    lists: Vec<TermList>,
    automaton: Engine,
    /// Per automaton pattern id: who owns that folded string.
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, Default)]
struct Pattern {
    /// (list, entry) of every term that folds to this pattern, one per list.
    terms: Vec<(u32, u32)>,
    exception: bool,
}

/// One term found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit<'s> {
    /// Index of the list in the slice given to [`TermSet::build`].
    pub list: usize,
    pub list_name: &'s str,
    /// Index into [`TermList::entries`].
    pub entry: usize,
    /// The term as written in the list.
    pub term: &'s str,
    pub category: Option<&'s str>,
    pub weight: u32,
    /// Byte range in the original message, on character boundaries.
    pub range: Range<usize>,
}

thread_local! {
    // Fold buffers reused by every scan on this thread: the hot path allocates only for hits.
    static SCRATCH: RefCell<Folded> = RefCell::new(Folded::default());
}

impl TermSet {
    /// Compile `lists` into one automaton. A term in several lists hits once per list; a term
    /// repeated within a list hits as its first entry.
    pub fn build(lists: &[TermList]) -> Result<TermSet, BuildError> {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut strings: Vec<String> = Vec::new();
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut intern = |s: String| -> usize {
            *index.entry(s).or_insert_with_key(|k| {
                strings.push(k.clone());
                patterns.push(Pattern::default());
                patterns.len() - 1
            })
        };
        let mut owned: Vec<(usize, Owner)> = Vec::new();
        for (li, list) in lists.iter().enumerate() {
            for (ei, entry) in list.entries().iter().enumerate() {
                for v in variants(&entry.folded) {
                    owned.push((intern(v), Owner::Term(li as u32, ei as u32)));
                }
            }
            for exception in list.exceptions() {
                for v in variants(&exception.folded) {
                    owned.push((intern(v), Owner::Exception));
                }
            }
        }
        for (p, owner) in owned {
            let pattern = &mut patterns[p];
            match owner {
                Owner::Exception => pattern.exception = true,
                Owner::Term(li, ei) => {
                    if !pattern.terms.iter().any(|&(l, _)| l == li) {
                        pattern.terms.push((li, ei));
                    }
                }
            }
        }
        // Anchored only: a term can only start at a word start, so the scan walks the automaton
        // from each word start instead of running it unanchored over every byte (see `scan`).
        let built = if strings.len() <= MAX_DFA_PATTERNS {
            dfa::DFA::builder()
                .match_kind(MatchKind::Standard)
                .start_kind(StartKind::Anchored)
                .prefilter(false)
                .build(&strings)
                .map(Engine::Dfa)
        } else {
            nfa::contiguous::NFA::builder()
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(&strings)
                .map(Engine::Nfa)
        };
        let automaton = built.map_err(|source| BuildError::Automaton {
            patterns: strings.len(),
            source,
        })?;
        Ok(TermSet {
            lists: lists.to_vec(),
            automaton,
            patterns,
        })
    }

    /// The lists this set was built from, in order.
    pub fn lists(&self) -> &[TermList] {
        &self.lists
    }

    /// Every whole-word term hit in `text` not covered by an exception, ordered by position.
    /// Hits may overlap (`bad` inside `bad word`) and are all reported.
    pub fn scan(&self, text: &str) -> Vec<Hit<'_>> {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut folded) => {
                fold_into(text, &mut folded);
                self.scan_folded(text, &folded)
            }
            // Re-entered from inside a scan (not done today): fold into fresh buffers.
            Err(_) => {
                let mut folded = Folded::default();
                fold_into(text, &mut folded);
                self.scan_folded(text, &folded)
            }
        })
    }

    fn scan_folded(&self, text: &str, folded: &Folded) -> Vec<Hit<'_>> {
        let mut terms: Vec<(Range<usize>, usize)> = Vec::new();
        let mut exceptions: Vec<Range<usize>> = Vec::new();
        let mut found = |range: Range<usize>, p: usize| {
            if self.patterns[p].exception {
                exceptions.push(range.clone());
            }
            if !self.patterns[p].terms.is_empty() {
                terms.push((range, p));
            }
        };
        match &self.automaton {
            Engine::Dfa(a) => walk_word_starts(a, folded, &mut found),
            Engine::Nfa(a) => walk_word_starts(a, folded, &mut found),
        }
        let mut hits = Vec::new();
        for (range, p) in terms {
            if exceptions.iter().any(|e| e.start <= range.start && range.end <= e.end) {
                continue;
            }
            let source = folded.source_range(range);
            debug_assert!(text.is_char_boundary(source.start) && text.is_char_boundary(source.end));
            for &(li, ei) in &self.patterns[p].terms {
                let list = &self.lists[li as usize];
                let entry = &list.entries()[ei as usize];
                hits.push(Hit {
                    list: li as usize,
                    list_name: list.name(),
                    entry: ei as usize,
                    term: &entry.term,
                    category: entry.category.as_deref(),
                    weight: entry.weight,
                    range: source.clone(),
                });
            }
        }
        hits.sort_by(|a, b| {
            (a.range.start, a.range.end, a.list, a.entry).cmp(&(b.range.start, b.range.end, b.list, b.entry))
        });
        // Two spelling variants of one entry can hit the same range only through duplicates.
        hits.dedup_by(|a, b| a.range == b.range && a.list == b.list && a.entry == b.entry);
        hits
    }
}

enum Owner {
    Term(u32, u32),
    Exception,
}

/// The compiled automaton: one Aho-Corasick automaton over every folded pattern, searched
/// anchored.
#[derive(Debug, Clone)]
enum Engine {
    Dfa(dfa::DFA),
    Nfa(nfa::contiguous::NFA),
}

/// Every pattern occurrence that starts at a word start and ends at a word end of `folded`, as
/// (folded range, pattern id). The same set an unanchored overlapping search filtered by the two
/// boundary checks yields, found by walking the anchored automaton from each word start until it
/// dies: the walk stays in the few hot states near the root, and the bytes inside words a walk
/// never reaches are skipped.
fn walk_word_starts<A: Automaton>(aut: &A, folded: &Folded, found: &mut impl FnMut(Range<usize>, usize)) {
    let text = folded.as_bytes();
    let Ok(start) = aut.start_state(Anchored::Yes) else {
        return;
    };
    let mut walk = |from: usize| {
        let mut sid = start;
        for (at, &b) in text.iter().enumerate().skip(from) {
            sid = aut.next_state(Anchored::Yes, sid, b);
            if !aut.is_special(sid) {
                continue;
            }
            if aut.is_dead(sid) {
                return;
            }
            let end = at + 1;
            if aut.is_match(sid) && folded.is_word_end(end) {
                for i in 0..aut.match_len(sid) {
                    let pid = aut.match_pattern(sid, i);
                    // A match state also lists patterns that are suffixes of the walked path
                    // (inherited along failure links); only those spanning the whole walk start
                    // at `from`.
                    if aut.pattern_len(pid) == end - from {
                        found(from..end, pid.as_usize());
                    }
                }
            }
        }
    };
    if text.is_empty() {
        return;
    }
    walk(0);
    for p in memchr::memchr_iter(b' ', text) {
        walk(p + 1);
    }
    for &p in folded.soft_starts() {
        walk(p as usize);
    }
}

/// The folded term and the spellings of it that folded chat can take:
/// - a phrase also without its spaces, because spaced-out letters glue into one word
///   (`y o u s u c k` folds to `yousuck`), collapsing a letter doubled at the join;
/// - `l`→`i` swaps: chat folds `1 ! |` (and a capital `I`) to `i`, so `loser` written `1oser`
///   or `Ioser` must still meet it. Swaps that would put two `i` side by side are skipped:
///   folded chat never holds a doubled letter.
pub(super) fn variants(folded: &str) -> Vec<String> {
    let mut bases = vec![folded.to_owned()];
    if folded.contains(' ') {
        let mut joined = String::with_capacity(folded.len());
        for c in folded.chars().filter(|&c| c != ' ') {
            if !joined.ends_with(c) {
                joined.push(c);
            }
        }
        bases.push(joined);
    }
    let mut out = Vec::new();
    for base in bases {
        let ls: Vec<usize> = base
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'l')
            .map(|(i, _)| i)
            .collect();
        let masks: Vec<u32> = if ls.len() <= MAX_L_VARIANTS {
            (1..(1u32 << ls.len())).collect()
        } else {
            vec![u32::MAX]
        };
        for mask in masks {
            let mut bytes = base.as_bytes().to_vec();
            for (bit, &pos) in ls.iter().enumerate() {
                if bit >= 32 || mask & (1 << bit) != 0 {
                    bytes[pos] = b'i';
                }
            }
            if bytes.windows(2).any(|w| w[0] == w[1]) {
                continue;
            }
            // Only ASCII `l` bytes were replaced by ASCII `i`: still valid UTF-8.
            if let Ok(s) = String::from_utf8(bytes) {
                out.push(s);
            }
        }
        out.push(base);
    }
    out
}

/// `text` with every hit's characters replaced by one `*` each; all other bytes unchanged.
pub fn mask(text: &str, hits: &[Hit<'_>]) -> String {
    let mut ranges: Vec<Range<usize>> = hits
        .iter()
        .map(|h| h.range.clone())
        .filter(|r| r.start < r.end && r.end <= text.len())
        .collect();
    ranges.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        let start = r.start.max(at);
        if start >= r.end {
            continue;
        }
        out.push_str(&text[at..start]);
        out.extend(text[start..r.end].chars().map(|_| '*'));
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

/// A short redacted excerpt of `text` around `hit` for telemetry: up to [`EXCERPT_CONTEXT`]
/// characters either side, the matched text reduced to its first character and one `*` per
/// further character, cuts marked `…`, control characters as spaces. At most about 80
/// characters whatever the message length; the matched term itself never appears.
pub fn excerpt(text: &str, hit: &Hit<'_>) -> String {
    let r = &hit.range;
    if r.start >= r.end || r.end > text.len() || !text.is_char_boundary(r.start) || !text.is_char_boundary(r.end) {
        return String::new();
    }
    let before = &text[..r.start];
    let after = &text[r.end..];
    let left_start = before
        .char_indices()
        .rev()
        .nth(EXCERPT_CONTEXT - 1)
        .map_or(0, |(i, _)| i);
    let right_end = after
        .char_indices()
        .nth(EXCERPT_CONTEXT)
        .map_or(after.len(), |(i, _)| i);
    let clean = |c: char| if c.is_control() { ' ' } else { c };
    let mut out = String::with_capacity(4 * (2 * EXCERPT_CONTEXT + EXCERPT_MATCH) + 8);
    if left_start > 0 {
        out.push('…');
    }
    out.extend(before[left_start..].chars().map(clean));
    let mut matched = text[r.start..r.end].chars();
    if let Some(first) = matched.next() {
        out.push(clean(first));
    }
    let rest = matched.count();
    out.extend(std::iter::repeat_n('*', rest.min(EXCERPT_MATCH - 1)));
    if rest >= EXCERPT_MATCH {
        out.push('…');
    }
    out.extend(after[..right_end].chars().map(clean));
    if right_end < after.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_swap_l_for_i() {
        assert_eq!(variants("loser"), ["ioser", "loser"]);
        assert_eq!(variants("bad dog"), ["bad dog", "badog"]);
        // `kil` → `kii` would need a doubled letter: skipped.
        assert_eq!(variants("kil"), ["kil"]);
        assert_eq!(variants("bad"), ["bad"]);
        assert_eq!(variants("lolol").len(), 8);
    }
}
