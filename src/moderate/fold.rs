//! Folding (chat scan and list compile): maps chat text and list terms onto one canonical form
//! so a single byte automaton sees through case, accents, homoglyphs, leetspeak, spacing and
//! stretched letters, while remembering where every folded byte came from in the original.
//!
//! The steps, in order, per source character:
//! 1. Invisible characters (zero-width, soft hyphen, bidi controls, tags, fillers) are dropped
//!    without splitting a word, so `bad\u{200B}word` is `badword`.
//! 2. Compatibility decomposition (NFKD: fullwidth, math alphanumerics, circled letters,
//!    ligatures), then combining marks are dropped (diacritics, Zalgo stacks). NFKD rather than
//!    NFKC: recomposition would only be undone again by the mark stripping.
//! 3. Homoglyphs (Cyrillic, Greek, Armenian, Cherokee, small capitals, squared and regional
//!    indicator letters, `ı ł ø ß æ œ`...) map to base Latin by a table in this file; the table
//!    is looked up before lowercasing because upper and lower case forms look like different
//!    Latin letters (Greek `Η` is `h`, `η` is `n`).
//! 4. Lowercasing (`char::to_lowercase`; the full case folds that matter, `ß`, are in the table).
//! 5. Words: letters and digits form words; everything else separates them and a run of
//!    separators becomes one space. Leetspeak applies per word, only to words that contain a
//!    letter: `0 1 3 4 5 7 8 9` become `o i e a s t b g`, so `b4d` is `bad` but `2024` stays
//!    `2024`. The symbols `@ $ ! |` become `a s i i` only inside such a word (`b@d`, `$hit` with
//!    a leading `$`), so `idiot!` and `@name` keep their punctuation meaning. `1 ! |` fold to `i`,
//!    not `l`: the matcher adds an `l`→`i` variant of each term instead, which also catches a
//!    capital `I` posing as `l`.
//! 6. Spaced-out letters: consecutive one-character words whose separators are short (at most
//!    [`MAX_GLUE_SEPARATOR`] characters, no line break) are glued into one word: `b.a.d`,
//!    `b a d`, `b_a_d` all become `bad`. Ordinary words are never glued, so `this hit` stays two
//!    words and cannot match `shit`. Inside a glued run every position is a *soft* word start
//!    (`a b a d` becomes `abad` and `bad` may still start at the `b`); ends must be real
//!    word ends, so spaced-out `h e l l o` does not hold `hell`.
//! 7. Runs of one repeated character collapse to one: `baaaad` is `bad`. Collapsing to one (not
//!    two) is what makes stretched letters match at all; terms fold the same way, so `good` and
//!    `god` are the same folded word (a known, accepted collision).

use std::ops::Range;

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Longest separator run, in characters, that still glues two one-character words (`b  a  d`).
pub const MAX_GLUE_SEPARATOR: u32 = 3;

/// Text after folding, with the source byte range of every folded byte.
#[derive(Debug, Default, Clone)]
pub struct Folded {
    /// Always valid UTF-8 (only whole characters are pushed); bytes so the ASCII path pushes
    /// a byte, not a `char`.
    text: Vec<u8>,
    /// For each folded byte, the first source byte it came from.
    start: Vec<u32>,
    /// One past the last source byte of the last folded character. Other folded characters end
    /// where the next one starts, which takes in collapsed repeats, combining marks and
    /// invisibles; one offset per byte instead of two keeps the ASCII path lean.
    tail: u32,
    /// Folded offsets that are word boundaries inside glued single-letter runs, ascending.
    soft: Vec<u32>,
    // Scratch reused across calls so a reused `Folded` folds without allocating.
    token: Vec<Unit>,
    decomposed: Vec<char>,
    steps: Vec<Step>,
    cache: Option<Box<CharCache>>,
}

/// One folded character of the word being assembled.
#[derive(Debug, Clone, Copy)]
struct Unit {
    ch: char,
    kind: Kind,
    start: u32,
    end: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Letter,
    /// A digit, and the letter it stands for in leetspeak, if any.
    Digit(Option<u8>),
    /// `@ $ ! |`: a letter inside a word, punctuation elsewhere.
    Symbol(u8),
}

/// What one folded character does to the word structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Word(Kind),
    Separator { hard: bool },
    Ignore,
}

impl Folded {
    /// The folded text: lowercase, words separated by single spaces, no leading or trailing space.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// The folded text as bytes, for the automaton (no UTF-8 check).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.text
    }

    /// The source byte range covered by a range of folded bytes. `folded` must be non-empty and
    /// within the folded text; an empty or out-of-range input yields an empty range.
    pub fn source_range(&self, folded: Range<usize>) -> Range<usize> {
        if folded.start >= folded.end || folded.end > self.start.len() {
            return 0..0;
        }
        let start = self.start[folded.start];
        let end = self.start.get(folded.end).copied().unwrap_or(self.tail);
        start as usize..end.max(start) as usize
    }

    /// Whether a term may start at folded offset `pos`: the start of the text, after a space,
    /// or inside a glued run of spaced-out letters (`a b a d` may hold `bad`).
    pub fn is_word_start(&self, pos: usize) -> bool {
        let bytes = &self.text;
        pos == 0 || pos > bytes.len() || bytes[pos - 1] == b' ' || self.soft.binary_search(&(pos as u32)).is_ok()
    }

    /// Folded offsets inside glued runs of spaced-out letters where a term may start, ascending
    /// (the other word starts are the text's start and every byte after a space).
    pub(crate) fn soft_starts(&self) -> &[u32] {
        &self.soft
    }

    /// Whether a term may end at folded offset `pos`: the end of the text or before a space.
    /// Unlike starts, ends inside glued runs do not count, so spaced-out `h e l l o` does not
    /// hold `hell`.
    pub fn is_word_end(&self, pos: usize) -> bool {
        let bytes = &self.text;
        pos >= bytes.len() || bytes[pos] == b' '
    }
}

/// Fold `text` into a new [`Folded`].
pub fn fold(text: &str) -> Folded {
    let mut out = Folded::default();
    fold_into(text, &mut out);
    out
}

/// The slow path alone: every character through the general per-character rules, no ASCII
/// word shortcut, no cache. The fast paths of [`fold_into`] are tested against it.
#[cfg(test)]
pub(crate) fn fold_reference(text: &str) -> Folded {
    let mut out = Folded::default();
    let mut w = Writer {
        out: &mut out,
        sep: SepState::default(),
        prev_single: false,
        last: None,
        run_letter: false,
    };
    for (i, c) in text.char_indices() {
        let (start, end) = (i as u32, (i + c.len_utf8()) as u32);
        if c.is_ascii() {
            let (ch, class) = ASCII[c as usize];
            w.feed(ch as char, class, start, end);
        } else {
            w.feed_uncached(c, start, end);
        }
    }
    w.flush_token();
    out
}

#[cfg(test)]
impl Folded {
    /// Everything a scan reads, for comparing two foldings.
    pub(crate) fn parts(&self) -> (&[u8], &[u32], u32, &[u32]) {
        (&self.text, &self.start, self.tail, &self.soft)
    }
}

/// Fold `text` into `out`, reusing its buffers. Only the first 4 GiB of `text` are folded
/// (offsets are `u32`); chat messages are many orders of magnitude smaller.
pub fn fold_into(text: &str, out: &mut Folded) {
    out.text.clear();
    out.start.clear();
    out.tail = 0;
    out.soft.clear();
    out.token.clear();
    // Folded text is rarely longer than the source; one reservation per buffer growth.
    out.text.reserve(text.len());
    out.start.reserve(text.len());
    let mut text = text;
    if text.len() > u32::MAX as usize {
        let mut cut = u32::MAX as usize;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text = &text[..cut];
    }
    let mut w = Writer {
        out,
        sep: SepState::default(),
        prev_single: false,
        last: None,
        run_letter: false,
    };
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            // Fast path: a whole word of ASCII letters ended by an ASCII separator (most chat)
            // is written straight from the input, without the per-character word buffer.
            if b.is_ascii_alphabetic() && w.out.token.is_empty() {
                let run = bytes[i..]
                    .iter()
                    .position(|b| !b.is_ascii_alphabetic())
                    .map_or(bytes.len(), |n| i + n);
                let ends_word = bytes
                    .get(run)
                    .is_none_or(|&n| n < 0x80 && matches!(ASCII[n as usize].1, Class::Separator { .. }));
                if ends_word {
                    w.write_ascii_word(&bytes[i..run], i as u32);
                    i = run;
                    continue;
                }
            }
            let (ch, class) = ASCII[b as usize];
            if let (Class::Separator { hard }, true) = (class, w.out.token.is_empty()) {
                w.separator(hard, i as u32, i as u32 + 1);
                i += 1;
                continue;
            }
            w.feed(ch as char, class, i as u32, i as u32 + 1);
            i += 1;
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        let end = i + c.len_utf8();
        w.feed_slow(c, i as u32, end as u32);
        i = end;
    }
    w.flush_token();
}

/// The separator run since the last word.
#[derive(Debug, Default, Clone, Copy)]
struct SepState {
    chars: u32,
    hard: bool,
    start: u32,
    end: u32,
}

struct Writer<'a> {
    out: &'a mut Folded,
    sep: SepState,
    prev_single: bool,
    /// Last character written in the current output word, for run collapsing.
    last: Option<char>,
    /// The current glued run of one-character words holds a letter: a lone digit glued to it
    /// is read as leetspeak (`l.0.s.e.r`), while spaced-out numbers (`1 2 3`) stay digits.
    run_letter: bool,
}

impl Writer<'_> {
    fn feed(&mut self, ch: char, class: Class, start: u32, end: u32) {
        match class {
            Class::Word(kind) => self.out.token.push(Unit { ch, kind, start, end }),
            Class::Separator { hard } => {
                self.flush_token();
                self.separator(hard, start, end);
            }
            Class::Ignore => {}
        }
    }

    /// Count one separator character into the run since the last word.
    #[inline]
    fn separator(&mut self, hard: bool, start: u32, end: u32) {
        if self.sep.chars == 0 {
            self.sep.start = start;
        }
        self.sep.chars += 1;
        self.sep.hard |= hard;
        self.sep.end = end;
    }

    /// A non-ASCII character: its steps (see [`char_steps`]) from the cache, or worked out and
    /// cached. Chat repeats the few characters of its script, so most lookups hit.
    fn feed_slow(&mut self, c: char, start: u32, end: u32) {
        let cp = c as u32;
        let slot = ((cp ^ (cp >> 8)) as usize) % CACHE_SLOTS;
        let cache = self.out.cache.get_or_insert_with(Default::default);
        let entry = &cache.0[slot];
        if entry.key == cp {
            let (len, steps) = (entry.len as usize, entry.steps);
            for &step in &steps[..len] {
                self.apply(step, start, end);
            }
            return;
        }
        let mut steps = std::mem::take(&mut self.out.steps);
        steps.clear();
        char_steps(c, &mut self.out.decomposed, &mut steps);
        for &step in &steps {
            self.apply(step, start, end);
        }
        if steps.len() <= CACHED_STEPS {
            let mut entry = CacheEntry {
                key: cp,
                len: steps.len() as u8,
                steps: [Step::Mark; CACHED_STEPS],
            };
            entry.steps[..steps.len()].copy_from_slice(&steps);
            if let Some(cache) = self.out.cache.as_mut() {
                cache.0[slot] = entry;
            }
        }
        self.out.steps = steps;
    }

    /// `feed_slow` without the cache: the reference the cache is tested against.
    #[cfg(test)]
    fn feed_uncached(&mut self, c: char, start: u32, end: u32) {
        let mut steps = Vec::new();
        char_steps(c, &mut Vec::new(), &mut steps);
        for step in steps {
            self.apply(step, start, end);
        }
    }

    fn apply(&mut self, step: Step, start: u32, end: u32) {
        match step {
            Step::Mark => self.extend_last(end),
            Step::Out(ch, class) => self.feed(ch, class, start, end),
        }
    }

    /// A combining mark belongs to the character before it: widen that character's source range
    /// so masking covers the whole cluster.
    fn extend_last(&mut self, end: u32) {
        if let Some(u) = self.out.token.last_mut() {
            u.end = end;
        }
    }

    /// Resolve leetspeak for the finished word and write it (or its pieces) out.
    fn flush_token(&mut self) {
        if self.out.token.is_empty() {
            return;
        }
        let token = std::mem::take(&mut self.out.token);
        let has_letter = token.iter().any(|u| u.kind == Kind::Letter);
        let is_plain = |u: &Unit| !matches!(u.kind, Kind::Symbol(_));
        let first_plain = token.iter().position(is_plain);
        let last_plain = token.iter().rposition(is_plain);
        let mut piece_start = None;
        for (i, u) in token.iter().enumerate() {
            let resolved = match u.kind {
                Kind::Letter => Some(u.ch),
                Kind::Digit(Some(l)) if has_letter => Some(l as char),
                Kind::Digit(_) => Some(u.ch),
                Kind::Symbol(l) if has_letter => {
                    let interior = matches!((first_plain, last_plain), (Some(f), Some(l)) if f < i && i < l);
                    let leading_dollar = u.ch == '$' && matches!(first_plain, Some(f) if i < f);
                    (interior || leading_dollar).then_some(l as char)
                }
                Kind::Symbol(_) => None,
            };
            match resolved {
                Some(_) => {
                    if piece_start.is_none() {
                        piece_start = Some(i);
                    }
                }
                None => {
                    if let Some(s) = piece_start.take() {
                        self.write_word(&token[s..i], has_letter);
                    }
                    // The unconverted symbol separates like punctuation.
                    if self.sep.chars == 0 {
                        self.sep.start = u.start;
                    }
                    self.sep.chars += 1;
                    self.sep.end = u.end;
                }
            }
        }
        if let Some(s) = piece_start {
            self.write_word(&token[s..], has_letter);
        }
        self.out.token = token;
        self.out.token.clear();
    }

    /// Write one word: a space before it unless it glues to a previous one-letter word, then its
    /// characters with repeated ones collapsed.
    fn write_word(&mut self, units: &[Unit], has_letter: bool) {
        let (Some(first), Some(last)) = (units.first(), units.last()) else {
            return;
        };
        let glue = self.begin_word(first.start == last.start);
        let leet = has_letter || (glue && self.run_letter);
        self.run_letter |= has_letter;
        for (n, u) in units.iter().enumerate() {
            let ch = match u.kind {
                Kind::Letter => u.ch,
                Kind::Digit(Some(l)) if leet => l as char,
                Kind::Digit(_) => u.ch,
                Kind::Symbol(l) => l as char,
            };
            if self.last == Some(ch) {
                // Collapse: the earlier character now stands for the whole run.
                self.out.tail = u.end;
                continue;
            }
            if glue && n == 0 {
                self.out.soft.push(self.out.text.len() as u32);
            }
            self.push_raw(ch, u.start, u.end);
            self.last = Some(ch);
        }
    }

    /// `write_word` for a word of ASCII letters at source offset `at`.
    fn write_ascii_word(&mut self, word: &[u8], at: u32) {
        let (Some(&first), Some(&last)) = (word.first(), word.last()) else {
            return;
        };
        let glue = self.begin_word(word.len() == 1);
        self.run_letter = true;
        let first = first.to_ascii_lowercase() as char;
        let repeats = self.last == Some(first) || word.windows(2).any(|p| p[0].eq_ignore_ascii_case(&p[1]));
        if !repeats {
            // Nothing to collapse (the usual case): copy the word in bulk.
            if glue {
                self.out.soft.push(self.out.text.len() as u32);
            }
            let len = word.len() as u32;
            self.out.text.extend(word.iter().map(u8::to_ascii_lowercase));
            self.out.start.extend(at..at + len);
            self.out.tail = at + len;
            self.last = Some(last.to_ascii_lowercase() as char);
            return;
        }
        for (pos, (n, &b)) in (at..).zip(word.iter().enumerate()) {
            let ch = b.to_ascii_lowercase() as char;
            if self.last == Some(ch) {
                self.out.tail = pos + 1;
            } else {
                if glue && n == 0 {
                    self.out.soft.push(self.out.text.len() as u32);
                }
                self.out.text.push(ch as u8);
                self.out.start.push(pos);
                self.out.tail = pos + 1;
                self.last = Some(ch);
            }
        }
    }

    /// Start a word: decide whether it glues to the previous one (both one source character,
    /// short soft separator), write the separating space otherwise. Returns whether it glues.
    fn begin_word(&mut self, single: bool) -> bool {
        let glue = single
            && self.prev_single
            && !self.sep.hard
            && self.sep.chars <= MAX_GLUE_SEPARATOR
            && !self.out.text.is_empty();
        if !glue {
            self.run_letter = false;
        }
        if !self.out.text.is_empty() && !glue {
            self.push_raw(' ', self.sep.start, self.sep.end.max(self.sep.start));
            self.last = None;
        }
        self.sep = SepState::default();
        self.prev_single = single;
        glue
    }

    fn push_raw(&mut self, ch: char, start: u32, end: u32) {
        let len = ch.len_utf8();
        let mut buf = [0u8; 4];
        self.out.text.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        for _ in 0..len {
            self.out.start.push(start);
        }
        self.out.tail = end;
    }
}

/// What folding does with one non-ASCII character, whatever surrounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A combining mark: joins the character before it (widens its source range).
    Mark,
    /// A folded character and its class.
    Out(char, Class),
}

/// Steps kept per cached character; characters with more (long compatibility decompositions
/// such as `ﷺ`) are worked out each time.
const CACHED_STEPS: usize = 3;
/// Slots of the per-`Folded` cache of non-ASCII characters (direct-mapped).
const CACHE_SLOTS: usize = 256;

#[derive(Debug, Clone, Copy)]
struct CacheEntry {
    /// The character's code point; 0 (ASCII, never cached) marks an empty slot.
    key: u32,
    len: u8,
    steps: [Step; CACHED_STEPS],
}

/// Steps of recently folded non-ASCII characters, so NFKD, the homoglyph table and case
/// mapping run once per distinct character rather than once per occurrence. Allocated on the
/// first non-ASCII character, so folding ASCII terms at list compile costs nothing.
#[derive(Debug, Clone)]
struct CharCache([CacheEntry; CACHE_SLOTS]);

impl Default for CharCache {
    fn default() -> Self {
        CharCache(
            [CacheEntry {
                key: 0,
                len: 0,
                steps: [Step::Mark; CACHED_STEPS],
            }; CACHE_SLOTS],
        )
    }
}

/// The steps of one non-ASCII character: drop invisibles, decompose (NFKD), strip marks, map
/// homoglyphs, lowercase. A pure function of `c` (`decomposed` is scratch), hence cacheable.
fn char_steps(c: char, decomposed: &mut Vec<char>, out: &mut Vec<Step>) {
    if is_invisible(c) {
        return;
    }
    let latin = |mapped: &str, out: &mut Vec<Step>| {
        for m in mapped.chars() {
            out.push(Step::Out(m, ASCII[m as usize & 0x7f].1));
        }
    };
    decomposed.clear();
    decompose_compatible(c, |d| decomposed.push(d));
    for &d in decomposed.iter() {
        if is_combining_mark(d) {
            out.push(Step::Mark);
            continue;
        }
        if let Some(mapped) = homoglyph(d) {
            latin(mapped, out);
            continue;
        }
        for l in d.to_lowercase() {
            if is_combining_mark(l) {
                continue;
            }
            if l.is_ascii() {
                let (ch, class) = ASCII[l as usize];
                out.push(Step::Out(ch as char, class));
            } else if let Some(mapped) = homoglyph(l) {
                latin(mapped, out);
            } else {
                out.push(Step::Out(l, classify_other(l)));
            }
        }
    }
}

/// Characters that render as nothing and are used to split words invisibly.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                      // soft hyphen
        | '\u{034F}'                    // combining grapheme joiner
        | '\u{061C}'                    // Arabic letter mark
        | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
        | '\u{17B4}' | '\u{17B5}'       // Khmer invisible vowels
        | '\u{180B}'..='\u{180F}'       // Mongolian selectors and vowel separator
        | '\u{200B}'..='\u{200F}'       // zero-width space/joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}'       // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}'       // word joiner, invisible operators
        | '\u{2066}'..='\u{206F}'       // bidi isolates, deprecated format controls
        | '\u{FE00}'..='\u{FE0F}'       // variation selectors
        | '\u{FEFF}'                    // BOM / zero-width no-break space
        | '\u{E0000}'..='\u{E007F}'     // tag characters
        | '\u{E0100}'..='\u{E01EF}'     // variation selectors supplement
    )
}

/// Class of a non-ASCII character left after mapping: other scripts' letters and digits are
/// word characters (matched as themselves); everything else (punctuation, emoji) separates.
fn classify_other(c: char) -> Class {
    if c.is_alphabetic() {
        Class::Word(Kind::Letter)
    } else if c.is_numeric() {
        Class::Word(Kind::Digit(None))
    } else if matches!(c, '\u{0085}' | '\u{2028}' | '\u{2029}') {
        Class::Separator { hard: true }
    } else {
        Class::Separator { hard: false }
    }
}

/// Folded character and class of each ASCII byte, built at compile time.
static ASCII: [(u8, Class); 128] = ascii_table();

const fn ascii_table() -> [(u8, Class); 128] {
    let mut t = [(b' ', Class::Separator { hard: false }); 128];
    let mut b = 0u8;
    while b < 128 {
        t[b as usize] = match b {
            b'a'..=b'z' => (b, Class::Word(Kind::Letter)),
            b'A'..=b'Z' => (b + 32, Class::Word(Kind::Letter)),
            b'0'..=b'9' => (b, Class::Word(Kind::Digit(leet_digit(b)))),
            b'@' => (b, Class::Word(Kind::Symbol(b'a'))),
            b'$' => (b, Class::Word(Kind::Symbol(b's'))),
            b'!' | b'|' => (b, Class::Word(Kind::Symbol(b'i'))),
            b'\n' | b'\r' | 0x0b | 0x0c => (b' ', Class::Separator { hard: true }),
            0x7f => (b' ', Class::Ignore),
            _ => (b' ', Class::Separator { hard: false }),
        };
        b += 1;
    }
    t
}

/// The letter a digit stands for inside a word. `2` and `6` are left alone: they read as
/// "to"/"z" and "b"/"g" too often to pick one.
const fn leet_digit(b: u8) -> Option<u8> {
    match b {
        b'0' => Some(b'o'),
        b'1' => Some(b'i'),
        b'3' => Some(b'e'),
        b'4' => Some(b'a'),
        b'5' => Some(b's'),
        b'7' => Some(b't'),
        b'8' => Some(b'b'),
        b'9' => Some(b'g'),
        _ => None,
    }
}

/// The Latin spelling of a homoglyph, or `None`. Characters are looked up both before and after
/// lowercasing; the table lists whichever form NFKD leaves (it removes most Latin variants).
fn homoglyph(c: char) -> Option<&'static str> {
    const LETTERS: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";
    let range_letter = |base: u32| {
        let i = (c as u32 - base) as usize;
        std::str::from_utf8(&LETTERS[i..=i]).ok()
    };
    match c as u32 {
        // Negative circled, negative squared, regional indicator letters: no decomposition.
        0x1F150..=0x1F169 => return range_letter(0x1F150),
        0x1F170..=0x1F189 => return range_letter(0x1F170),
        0x1F1E6..=0x1F1FF => return range_letter(0x1F1E6),
        _ => {}
    }
    HOMOGLYPHS
        .binary_search_by_key(&c, |&(k, _)| k)
        .ok()
        .map(|i| HOMOGLYPHS[i].1)
}

/// Homoglyph table, sorted by code point (a test checks the order).
#[rustfmt::skip]
static HOMOGLYPHS: &[(char, &str)] = &[
    ('ß', "ss"), ('æ', "ae"), ('ð', "d"), ('ø', "o"), ('đ', "d"), ('ħ', "h"), ('ı', "i"), ('ł', "l"),
    ('œ', "oe"), ('ŧ', "t"), ('ƀ', "b"), ('ƚ', "l"), ('ɑ', "a"), ('ɡ', "g"), ('ɢ', "g"), ('ɩ', "i"),
    ('ɪ', "i"), ('ɴ', "n"), ('ʀ', "r"), ('ʏ', "y"), ('ʙ', "b"), ('ʜ', "h"), ('ʟ', "l"), ('Α', "a"),
    ('Β', "b"), ('Ε', "e"), ('Ζ', "z"), ('Η', "h"), ('Ι', "i"), ('Κ', "k"), ('Μ', "m"), ('Ν', "n"),
    ('Ο', "o"), ('Ρ', "p"), ('Τ', "t"), ('Υ', "y"), ('Χ', "x"), ('α', "a"), ('β', "b"), ('γ', "y"),
    ('ε', "e"), ('η', "n"), ('ι', "i"), ('κ', "k"), ('μ', "u"), ('ν', "v"), ('ο', "o"), ('ρ', "p"),
    ('ς', "s"), ('τ', "t"), ('υ', "u"), ('χ', "x"), ('ω', "w"), ('Ѕ', "s"), ('І', "i"), ('Ј', "j"),
    ('А', "a"), ('В', "b"), ('Е', "e"), ('К', "k"), ('М', "m"), ('Н', "h"), ('О', "o"), ('Р', "p"),
    ('С', "c"), ('Т', "t"), ('У', "y"), ('Х', "x"), ('а', "a"), ('в', "b"), ('г', "r"), ('е', "e"),
    ('к', "k"), ('м', "m"), ('н', "h"), ('о', "o"), ('п', "n"), ('р', "p"), ('с', "c"), ('т', "t"),
    ('у', "y"), ('х', "x"), ('ь', "b"), ('ѕ', "s"), ('і', "i"), ('ј', "j"), ('ғ', "f"), ('Ү', "y"),
    ('ү', "y"), ('һ', "h"), ('Ӏ', "l"), ('ӏ', "l"), ('ԁ', "d"), ('ԛ', "q"), ('ԝ', "w"), ('հ', "h"),
    ('ո', "n"), ('ս', "u"), ('օ', "o"), ('Ꭲ', "t"), ('Ꭺ', "a"), ('Ꭻ', "j"), ('Ꭼ', "e"), ('Ꮃ', "w"),
    ('Ꮇ', "m"), ('Ꮋ', "h"), ('Ꮓ', "z"), ('Ꮩ', "v"), ('Ꮪ', "s"), ('Ꮯ', "c"), ('Ꮲ', "p"), ('Ᏼ', "b"),
    ('ᴀ', "a"), ('ᴄ', "c"), ('ᴅ', "d"), ('ᴇ', "e"), ('ᴊ', "j"), ('ᴋ', "k"), ('ᴍ', "m"), ('ᴏ', "o"),
    ('ᴘ', "p"), ('ᴛ', "t"), ('ᴜ', "u"), ('ᴠ', "v"), ('ᴡ', "w"), ('ᴢ', "z"), ('ꜱ', "s"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homoglyph_table_is_sorted_and_latin() {
        for pair in HOMOGLYPHS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:?} before {:?}", pair[0].0, pair[1].0);
        }
        for (c, s) in HOMOGLYPHS {
            assert!(s.bytes().all(|b| b.is_ascii_lowercase()), "{c:?} → {s:?}");
        }
    }

    fn f(s: &str) -> String {
        fold(s).as_str().to_owned()
    }

    #[test]
    fn folds_each_class() {
        assert_eq!(f("Hello   World"), "helo world");
        assert_eq!(f("ＢＡＤ"), "bad");
        assert_eq!(f("𝐛𝐚𝐝"), "bad");
        assert_eq!(f("bäd"), "bad");
        assert_eq!(f("ba\u{0301}\u{0316}d"), "bad");
        assert_eq!(f("bаd"), "bad"); // Cyrillic а
        assert_eq!(f("b4d"), "bad");
        assert_eq!(f("2024"), "2024");
        assert_eq!(f("b.a.d"), "bad");
        assert_eq!(f("b a d"), "bad");
        assert_eq!(f("bad\u{200B}word"), "badword");
        assert_eq!(f("baaaad"), "bad");
        assert_eq!(f("this hit"), "this hit");
        assert_eq!(f("idiot!"), "idiot");
        assert_eq!(f("$crud"), "scrud");
        assert_eq!(f("@name hi"), "name hi");
        assert_eq!(f("straße"), "strase");
        assert_eq!(f("🇧🇦🇩"), "bad");
    }

    #[test]
    fn offsets_cover_source() {
        let text = "x b\u{0301}aaad y";
        let folded = fold(text);
        let at = folded.as_str().find("bad").unwrap_or(usize::MAX);
        let range = folded.source_range(at..at + 3);
        assert_eq!(&text[range], "b\u{0301}aaad");
    }

    #[test]
    fn glued_runs_have_soft_boundaries() {
        let folded = fold("a b a d");
        assert_eq!(folded.as_str(), "abad");
        assert!(folded.is_word_start(1));
        assert!(!folded.is_word_end(3));
        assert!(folded.is_word_end(4));
        let plain = fold("abad");
        assert!(!plain.is_word_start(1));
    }
}
