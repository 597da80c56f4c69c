//! Input normalisation for the WAF tier (request-inspection phase): bounded multi-layer decoding of
//! raw request values into the few views the detectors read.
//!
//! Every pass only shrinks its input (an escape is always longer than what it stands for), so the
//! work per value is at most `max_layers` linear passes over at most `max_len` bytes.

/// Default number of decoding layers: enough for double encoding plus one entity layer.
pub const DEFAULT_MAX_LAYERS: u8 = 3;
/// Default cap, in bytes, on how much of one value is decoded and inspected.
pub const DEFAULT_MAX_LEN: usize = 8 * 1024;

/// Bounds on decoding work for one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Maximum number of decoding passes (layers) applied.
    pub max_layers: u8,
    /// Bytes of the raw value considered; the rest is ignored (and the truncation reported).
    pub max_len: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_layers: DEFAULT_MAX_LAYERS,
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

/// What decoding observed, beyond the decoded bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeInfo {
    /// Number of passes that changed the value.
    pub layers: u8,
    /// The raw value was longer than `max_len`.
    pub truncated: bool,
}

/// Reusable buffers: one `inspect` call decodes many values, and reusing these keeps the clean
/// path free of per-value allocation.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) decoded: Vec<u8>,
    pub(crate) norm: Vec<u8>,
    pub(crate) sql: Vec<u8>,
    tmp: Vec<u8>,
}

/// Flags from the one classification pass each value gets.
const ESCAPE: u32 = 1;
const PLUS: u32 = 2;
const UPPER: u32 = 4;
/// A byte below 0x20, DEL, or 0xC2 (the NBSP lead byte): whitespace other than a plain space, or
/// a control byte. Rare, so the exact meaning is worked out by the slower paths.
const LOW: u32 = 8;
const DOUBLE_SPACE: u32 = 16;

/// Special bytes the trigger stage cares about, reported by the same pass (bits 8..17 of
/// [`classify`]'s result; `mod.rs` maps them to detectors). Normalisation never adds or removes
/// them, except CR becoming LF, so both count as [`SB_SEP`].
pub(crate) const SB_QUOTE: u32 = 1 << 8;
pub(crate) const SB_TICK: u32 = 1 << 9;
pub(crate) const SB_SEP: u32 = 1 << 10;
pub(crate) const SB_DOLLAR: u32 = 1 << 11;
pub(crate) const SB_LT: u32 = 1 << 12;
pub(crate) const SB_BRACE: u32 = 1 << 13;
pub(crate) const SB_HASH: u32 = 1 << 14;
pub(crate) const SB_BSLASH: u32 = 1 << 15;
pub(crate) const SB_OPERAND: u32 = 1 << 16;

const fn byte_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut f = match b {
            b'%' | b'&' | b'\\' | 0xC0 | 0xC1 | 0xE0 => ESCAPE,
            b'+' => PLUS,
            b'A'..=b'Z' => UPPER,
            0..=0x1F | 0x7F | 0xC2 => LOW,
            _ => 0,
        };
        f |= match b {
            b'\'' | b'"' => SB_QUOTE,
            b'`' => SB_TICK,
            b';' | b'|' | b'&' | b'\n' | b'\r' => SB_SEP,
            b'$' => SB_DOLLAR,
            b'<' => SB_LT,
            b'{' => SB_BRACE,
            b'#' => SB_HASH,
            b'\\' => SB_BSLASH,
            b'=' | b'>' | b'(' | b',' => SB_OPERAND,
            _ => 0,
        };
        t[i] = f;
        i += 1;
    }
    t
}
static BYTE_TABLE: [u32; 256] = byte_table();

/// Classifies a value in one pass: decoding/normalisation flags in the low byte, special-byte
/// bits above. One table lookup per byte: this runs over every byte of every request value.
fn classify(v: &[u8]) -> u32 {
    let mut f = 0u32;
    for &b in v {
        f |= BYTE_TABLE[b as usize];
    }
    if double_space().find(v).is_some() {
        f |= DOUBLE_SPACE;
    }
    f
}

fn double_space() -> &'static memchr::memmem::Finder<'static> {
    static F: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    F.get_or_init(|| memchr::memmem::Finder::new(b"  "))
}

/// Bytes that can start an escape; a value without any of them decodes to itself.
fn may_need_decoding(v: &[u8], plus_space: bool) -> bool {
    let mut f = 0u32;
    for &b in v {
        f |= BYTE_TABLE[b as usize];
    }
    f & ESCAPE != 0 || (plus_space && f & PLUS != 0)
}

/// Decodes `raw` into `out` (cleared first) through up to `limits.max_layers` passes, stopping early
/// once a pass changes nothing. `plus_space` turns `+` into a space on the first pass only, as
/// `application/x-www-form-urlencoded` does; later layers keep `+` literal.
pub fn decode_into(
    raw: &[u8],
    plus_space: bool,
    limits: &DecodeLimits,
    out: &mut Vec<u8>,
    tmp: &mut Vec<u8>,
) -> DecodeInfo {
    let mut info = DecodeInfo::default();
    let raw = if raw.len() > limits.max_len {
        info.truncated = true;
        &raw[..limits.max_len]
    } else {
        raw
    };
    out.clear();
    out.extend_from_slice(raw);
    let mut first = true;
    while info.layers < limits.max_layers && may_need_decoding(out, plus_space && first) {
        tmp.clear();
        let changed = decode_pass(out, plus_space && first, tmp);
        first = false;
        if !changed {
            break;
        }
        std::mem::swap(out, tmp);
        info.layers += 1;
    }
    info
}

/// Convenience wrapper for callers outside the hot path (tests, tools).
pub fn decode(raw: &[u8], plus_space: bool, limits: &DecodeLimits) -> Vec<u8> {
    let (mut out, mut tmp) = (Vec::new(), Vec::new());
    decode_into(raw, plus_space, limits, &mut out, &mut tmp);
    out
}

fn hex_val(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'f' => Some(u32::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(b - b'A' + 10)),
        _ => None,
    }
}

fn hex_n(v: &[u8], at: usize, n: usize) -> Option<u32> {
    let digits = v.get(at..at + n)?;
    digits.iter().try_fold(0u32, |acc, &d| Some(acc * 16 + hex_val(d)?))
}

/// Pushes a code point as UTF-8; fullwidth ASCII forms (U+FF01..FF5E) and slash look-alikes are
/// folded to ASCII because IIS-style "best fit" mapping makes `%uff0e%uff0e/` a working traversal.
fn push_code_point(cp: u32, out: &mut Vec<u8>) {
    let cp = match cp {
        0xFF01..=0xFF5E => cp - 0xFF01 + 0x21,
        // Slash and backslash look-alikes that best-fit code pages map to the ASCII separators.
        0x2215 | 0x2044 => 0x2F,
        0x2216 | 0xFE68 => 0x5C,
        _ => cp,
    };
    let c = char::from_u32(cp).unwrap_or('\u{FFFD}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Named entities worth knowing: those that spell markup or script punctuation.
const ENTITIES: &[(&[u8], &[u8])] = &[
    (b"lt", b"<"),
    (b"gt", b">"),
    (b"amp", b"&"),
    (b"quot", b"\""),
    (b"apos", b"'"),
    (b"sol", b"/"),
    (b"bsol", b"\\"),
    (b"colon", b":"),
    (b"semi", b";"),
    (b"lpar", b"("),
    (b"rpar", b")"),
    (b"lsqb", b"["),
    (b"rsqb", b"]"),
    (b"lcub", b"{"),
    (b"rcub", b"}"),
    (b"equals", b"="),
    (b"period", b"."),
    (b"comma", b","),
    (b"grave", b"`"),
    (b"num", b"#"),
    (b"excl", b"!"),
    (b"percnt", b"%"),
    (b"dollar", b"$"),
    (b"plus", b"+"),
    (b"ast", b"*"),
    (b"vert", b"|"),
    (b"tab", b"\t"),
    (b"newline", b"\n"),
    (b"nbsp", b" "),
];

/// Entities browsers also accept without the semicolon (legacy HTML).
const LEGACY_NO_SEMI: &[&[u8]] = &[b"lt", b"gt", b"amp", b"quot", b"nbsp"];

/// Tries to decode an HTML entity at `v[i] == b'&'`; returns bytes consumed.
fn entity(v: &[u8], i: usize, out: &mut Vec<u8>) -> Option<usize> {
    let rest = &v[i + 1..];
    if rest.first() == Some(&b'#') {
        let (hex, start) = match rest.get(1) {
            Some(b'x' | b'X') => (true, 2),
            _ => (false, 1),
        };
        let mut cp: u32 = 0;
        let mut n = 0;
        // Leading zeros are legal and used for evasion (`&#0000106`), so digits are not capped by
        // count but the value is saturated.
        while let Some(&d) = rest.get(start + n) {
            let dv = if hex {
                hex_val(d)
            } else {
                d.is_ascii_digit().then(|| u32::from(d - b'0'))
            };
            match dv {
                Some(x) => {
                    cp = cp
                        .saturating_mul(if hex { 16 } else { 10 })
                        .saturating_add(x)
                        .min(0x11_0000)
                }
                None => break,
            }
            n += 1;
        }
        if n == 0 {
            return None;
        }
        let mut used = 1 + start + n;
        if rest.get(start + n) == Some(&b';') {
            used += 1;
        }
        push_code_point(cp, out);
        return Some(used);
    }
    let name_len = rest.iter().take(8).take_while(|b| b.is_ascii_alphabetic()).count();
    let name = &rest[..name_len];
    if rest.get(name_len) == Some(&b';') {
        if let Some((_, rep)) = ENTITIES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            out.extend_from_slice(rep);
            return Some(1 + name_len + 1);
        }
    }
    // Legacy entities match as a prefix of the letters that follow (`&ltb` is `<b`).
    let legacy = LEGACY_NO_SEMI
        .iter()
        .find(|n| name.len() >= n.len() && n.eq_ignore_ascii_case(&name[..n.len()]))?;
    let (_, rep) = ENTITIES.iter().find(|(n, _)| n == legacy)?;
    out.extend_from_slice(rep);
    Some(1 + legacy.len())
}

/// One decoding pass over every escape syntax at once. Returns whether anything changed.
fn decode_pass(v: &[u8], plus_space: bool, out: &mut Vec<u8>) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        match b {
            b'%' => {
                if matches!(v.get(i + 1), Some(b'u' | b'U')) {
                    if let Some(cp) = hex_n(v, i + 2, 4) {
                        push_code_point(cp, out);
                        i += 6;
                        changed = true;
                        continue;
                    }
                } else if let Some(x) = hex_n(v, i + 1, 2) {
                    out.push(x as u8);
                    i += 3;
                    changed = true;
                    continue;
                }
                out.push(b);
            }
            b'+' if plus_space => {
                out.push(b' ');
                changed = true;
            }
            b'&' => {
                if let Some(used) = entity(v, i, out) {
                    i += used;
                    changed = true;
                    continue;
                }
                out.push(b);
            }
            b'\\' => {
                let esc = match v.get(i + 1) {
                    Some(b'x' | b'X') => hex_n(v, i + 2, 2).map(|x| (x, 4)),
                    Some(b'u' | b'U') => hex_n(v, i + 2, 4).map(|x| (x, 6)),
                    _ => None,
                };
                if let Some((cp, used)) = esc {
                    push_code_point(cp, out);
                    i += used;
                    changed = true;
                    continue;
                }
                out.push(b);
            }
            // Overlong UTF-8: `C0 AE` is '.', `C0 AF` is '/'; decoders that accept them turn an
            // innocuous-looking byte string into traversal or markup.
            0xC0 | 0xC1 => match v.get(i + 1) {
                Some(&c) if c & 0xC0 == 0x80 => {
                    out.push(((b & 0x1F) << 6) | (c & 0x3F));
                    i += 2;
                    changed = true;
                    continue;
                }
                _ => out.push(b),
            },
            0xE0 => match (v.get(i + 1), v.get(i + 2)) {
                (Some(&c1), Some(&c2)) if (0x80..0xA0).contains(&c1) && c2 & 0xC0 == 0x80 => {
                    let cp = (u32::from(c1 & 0x3F) << 6) | u32::from(c2 & 0x3F);
                    push_code_point(cp, out);
                    i += 3;
                    changed = true;
                    continue;
                }
                _ => out.push(b),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    changed
}

/// Builds the lowercased, whitespace-collapsed view. A run of whitespace becomes one byte: `\n`
/// if the run held a line break (a shell command separator), else a space. NBSP (C2 A0) counts as
/// whitespace because browsers and some parsers treat it so.
pub fn normalise_into(decoded: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(decoded.len());
    let mut in_ws = false;
    let mut i = 0;
    while i < decoded.len() {
        let b = decoded[i];
        let ws_len = match b {
            b' ' | b'\t' | 0x0B | 0x0C | b'\r' | b'\n' => 1,
            0xC2 if decoded.get(i + 1) == Some(&0xA0) => 2,
            _ => 0,
        };
        if ws_len > 0 {
            let nl = b == b'\n' || b == b'\r';
            if !in_ws {
                out.push(if nl { b'\n' } else { b' ' });
                in_ws = true;
            } else if nl {
                if let Some(last) = out.last_mut() {
                    *last = b'\n';
                }
            }
            i += ws_len;
            continue;
        }
        in_ws = false;
        out.push(b.to_ascii_lowercase());
        i += 1;
    }
}

/// Builds the SQL view from the normalised view: `/* … */` comments become a space, MySQL
/// versioned comments `/*!50000 … */` keep their content (MySQL executes it), and whitespace is
/// collapsed again.
pub fn sql_view_into(norm: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    let push_space = |out: &mut Vec<u8>| {
        if out.last() != Some(&b' ') {
            out.push(b' ');
        }
    };
    while i < norm.len() {
        if norm[i] == b'/' && norm.get(i + 1) == Some(&b'*') {
            let body_start = i + 2;
            let end = super::find(&norm[body_start..], b"*/").map(|p| body_start + p);
            if norm.get(body_start) == Some(&b'!') {
                let mut s = body_start + 1;
                while s < norm.len() && norm[s].is_ascii_digit() {
                    s += 1;
                }
                push_space(out);
                let stop = end.unwrap_or(norm.len());
                if s < stop {
                    for &b in &norm[s..stop] {
                        if b == b' ' || b == b'\n' {
                            push_space(out);
                        } else {
                            out.push(b);
                        }
                    }
                }
                push_space(out);
            } else {
                push_space(out);
            }
            i = end.map_or(norm.len(), |e| e + 2);
            continue;
        }
        let b = norm[i];
        if b == b' ' || b == b'\n' {
            push_space(out);
        } else {
            out.push(b);
        }
        i += 1;
    }
}

impl Scratch {
    /// Fills `decoded` and `norm` for one value (`sql` is built on demand by the SQL detector).
    /// Returns whether the decoded value holds control bytes, and its special-byte bits
    /// (`SB_*`). Values that need no whitespace folding (most) get a copy, lowercased in place.
    pub(crate) fn load(&mut self, raw: &[u8], plus_space: bool, limits: &DecodeLimits) -> (bool, u32) {
        let raw = &raw[..raw.len().min(limits.max_len)];
        let flags = classify(raw);
        if flags & ESCAPE != 0 || (plus_space && flags & PLUS != 0) {
            let info = decode_into(raw, plus_space, limits, &mut self.decoded, &mut self.tmp);
            // A `&` or `%` that starts no escape (a URL's query string) leaves the value as it
            // was, and so its classification.
            let f = if info.layers == 0 {
                flags
            } else {
                classify(&self.decoded)
            };
            self.finish(f)
        } else {
            self.decoded.clear();
            self.decoded.extend_from_slice(raw);
            self.finish(flags)
        }
    }

    fn finish(&mut self, flags: u32) -> (bool, u32) {
        self.norm.clear();
        let special = flags & !0xFF;
        if flags & (LOW | DOUBLE_SPACE) == 0 {
            // Common case: only case folding needed, which is a vectorised copy.
            self.norm.extend_from_slice(&self.decoded);
            if flags & (UPPER) != 0 {
                self.norm.make_ascii_lowercase();
            }
            (false, special)
        } else {
            normalise_into(&self.decoded, &mut self.norm);
            let ctrl = flags & (LOW) != 0
                && self
                    .decoded
                    .iter()
                    .any(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7F);
            (ctrl, special)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str, plus: bool) -> String {
        String::from_utf8_lossy(&decode(s.as_bytes(), plus, &DecodeLimits::default())).into_owned()
    }

    #[test]
    fn percent_and_double_encoding() {
        assert_eq!(d("%3Cscript%3E", false), "<script>");
        assert_eq!(d("%253Cscript%253E", false), "<script>");
        assert_eq!(d("%25252e%25252e%25252f", false), "../");
        assert_eq!(d("a+b", true), "a b");
        assert_eq!(d("a+b", false), "a+b");
        assert_eq!(d("a%2bb", true), "a+b");
        assert_eq!(d("100%", false), "100%");
        assert_eq!(d("%zz", false), "%zz");
    }

    #[test]
    fn unicode_and_escapes() {
        assert_eq!(d("%u003cscript%u003e", false), "<script>");
        assert_eq!(d("%uff0e%uff0e%u2215", false), "../");
        assert_eq!(d("\\x3cimg\\u0020src", false), "<img src");
        assert_eq!(d("%c0%ae%c0%ae%c0%af", false), "../");
        assert_eq!(d("%e0%80%ae", false), ".");
    }

    #[test]
    fn html_entities() {
        assert_eq!(d("&lt;svg&gt;", false), "<svg>");
        assert_eq!(d("&#106;&#97;&#x76;&#X61", false), "java");
        assert_eq!(d("&#0000106avascript&colon;", false), "javascript:");
        assert_eq!(d("&ltb", false), "<b");
        assert_eq!(d("Tom &amp; Jerry", false), "Tom & Jerry");
        assert_eq!(d("R&D", false), "R&D");
        assert_eq!(d("&unknown;", false), "&unknown;");
    }

    #[test]
    fn layers_are_bounded() {
        let limits = DecodeLimits {
            max_layers: 2,
            max_len: 1024,
        };
        let out = decode(b"%2525253C", false, &limits);
        assert_eq!(out, b"%253C");
        let long = vec![b'a'; 100];
        let mut o = Vec::new();
        let info = decode_into(
            &long,
            false,
            &DecodeLimits {
                max_layers: 3,
                max_len: 10,
            },
            &mut o,
            &mut Vec::new(),
        );
        assert!(info.truncated);
        assert_eq!(o.len(), 10);
    }

    #[test]
    fn views() {
        let mut n = Vec::new();
        normalise_into(b"SeLeCt\t\t1 \r\n FROM", &mut n);
        assert_eq!(n, b"select 1\nfrom");
        let mut s = Vec::new();
        sql_view_into(b"union/**/select/*!50000concat*/(1)/*x", &mut s);
        assert_eq!(s, b"union select concat (1) ");
    }
}
