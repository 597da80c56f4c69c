//! The JSON pieces the writer thread encodes events with (event.rs): strings, numbers,
//! timestamps and addresses, appended straight to the output buffer.
//!
//! Why not serde_json: every event is a fixed shape of short strings, and serde's generic path
//! was the largest part of telemetry's cost: a profile put some 7,000 of its 17,000 instructions
//! per request in serde_json's string escaping alone (byte by byte, keys included, and through a
//! `fmt::Write` adapter for the timestamp and the ids). Here keys are byte literals
//! escaped at compile time, strings are scanned eight bytes at a time and copied in one piece
//! when nothing needs escaping, which is nearly always, and numbers, timestamps and IPv4
//! addresses are formatted without `core::fmt`.
//!
//! The output is exactly serde_json's compact output, so consumers saw no change: the same
//! escapes (`\"`, `\\`, `\b \f \n \r \t`, `\u00XX` in lower-case hex for the other control
//! bytes, everything else as it is, DEL and non-ASCII included) and the same float digits (the
//! `zmij` shortest round-trip formatter serde_json itself uses; `null` for NaN and infinities).
//! The tests hold serde_json as the oracle.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::SystemTime;

use crate::policy::ip::Ipv4Text;

/// Append `s` as a JSON string.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    escaped(out, s);
    out.push(b'"');
}

/// Append `s`, which needs no escaping, as a JSON string: one of Palisade's own words (a
/// decision, a reason) or an HTTP method, a token that has no quote, backslash or control
/// byte. Skips the scan `string` makes; debug builds check the promise.
pub fn plain(out: &mut Vec<u8>, s: &str) {
    debug_assert!(
        !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'),
        "{s:?} needs escaping"
    );
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Append the inside of a JSON string: `s` with what JSON requires escaped. Pieces escaped one
/// by one make the escaped whole, so a string can be written in parts.
pub fn escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut done = 0;
    let mut copied = 0;
    for chunk in bytes.chunks_exact(8) {
        if needs_escape(word(chunk)) {
            copied = escape_bytes(out, bytes, copied, done, done + 8);
        }
        done += 8;
    }
    if last_word(bytes, done).is_some_and(needs_escape) {
        copied = escape_bytes(out, bytes, copied, done, bytes.len());
    }
    out.extend_from_slice(&bytes[copied..]);
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const SPACES: u64 = ONES * 0x20;

fn word(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// A word holding every byte of `bytes[done..]` (fewer than eight) and otherwise bytes already
/// checked or spaces, without a loop: the last eight bytes, or two overlapping halves, or the
/// first, middle and last of up to three. An already checked byte that needed escaping makes
/// the tail be scanned byte by byte for nothing, which is rare and harmless.
fn last_word(bytes: &[u8], done: usize) -> Option<u64> {
    let n = bytes.len();
    let half = |b: &[u8]| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    match n {
        _ if n == done => None,
        8.. => Some(word(&bytes[n - 8..])),
        4.. => Some(half(bytes) | half(&bytes[n - 4..]) << 32),
        _ => Some(u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8 | u64::from(bytes[n - 1]) << 16 | SPACES << 24),
    }
}

/// True when one of the eight bytes of `word` is a control byte, `"` or `\`. Exact: the
/// classic "has a byte less than n" and "has a zero byte" tests never miss a byte and, as only
/// the whole word's answer is used, their false positives above a true byte do not matter.
fn needs_escape(word: u64) -> bool {
    let below_space = word.wrapping_sub(SPACES) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    (below_space | zero_byte(quote) | zero_byte(backslash)) & HIGHS != 0
}

/// Escape what needs it in `bytes[from..to]`; bytes from `copied` on are not yet written.
/// Returns the new `copied`.
fn escape_bytes(out: &mut Vec<u8>, bytes: &[u8], mut copied: usize, from: usize, to: usize) -> usize {
    for (i, &b) in bytes[from..to].iter().enumerate() {
        let i = from + i;
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[copied..i]);
        if short == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let (high, low) = (HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]);
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
        } else {
            out.extend_from_slice(&[b'\\', short]);
        }
        copied = i + 1;
    }
    copied
}

/// Append `bytes` as a JSON string, each invalid UTF-8 sequence replaced by U+FFFD as
/// `String::from_utf8_lossy` does, without making that string.
pub fn string_lossy(out: &mut Vec<u8>, bytes: &[u8]) {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return string(out, s);
    }
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        escaped(out, chunk.valid());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

/// Append `n` in decimal.
pub fn uint(out: &mut Vec<u8>, mut n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

pub fn int(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    uint(out, n.unsigned_abs());
}

/// Append `x` as serde_json writes an `f32`: shortest digits that read back as `x`, `null`
/// when it is not finite.
pub fn float(out: &mut Vec<u8>, x: f32) {
    if x.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Append `t` as an RFC 3339 string: UTC, always nine fractional digits, such as
/// `"2026-11-23T17:19:46.289445953Z"`.
pub fn timestamp(out: &mut Vec<u8>, t: SystemTime) {
    let dt = time::OffsetDateTime::from(t);
    match u32::try_from(dt.year()) {
        Ok(year) if year <= 9999 => out.extend_from_slice(&Timestamp::new(year, &dt).0),
        // Years before 0 (`time` allows down to -9999) do not fit the fixed layout.
        _ => {
            let _ = write!(out, "\"{:04}", dt.year());
            out.extend_from_slice(&Timestamp::new(0, &dt).0[5..]);
        }
    }
}

/// `"YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ"`, quotes included.
struct Timestamp([u8; 32]);

impl Timestamp {
    fn new(year: u32, dt: &time::OffsetDateTime) -> Self {
        let (_, month, day) = dt.to_calendar_date();
        let (hour, minute, second, nano) = dt.to_hms_nano();
        let mut b = *b"\"0000-00-00T00:00:00.000000000Z\"";
        digits(&mut b[1..5], year);
        digits(&mut b[6..8], u32::from(u8::from(month)));
        digits(&mut b[9..11], u32::from(day));
        digits(&mut b[12..14], u32::from(hour));
        digits(&mut b[15..17], u32::from(minute));
        digits(&mut b[18..20], u32::from(second));
        digits(&mut b[21..30], nano);
        Timestamp(b)
    }
}

/// Write `n` into `slot` in decimal, zero-padded on the left to the slot's width.
fn digits(slot: &mut [u8], mut n: u32) {
    for d in slot.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Append an address as a JSON string, in its usual text form (`Display`).
pub fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    out.push(b'"');
    match ip {
        IpAddr::V4(v4) => ipv4(out, v4),
        // Rare, and the canonical IPv6 form (RFC 5952) is easy to get subtly wrong.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}

/// Append a socket address as a JSON string: `IP:PORT`, `[IPv6]:PORT` (`Display`).
pub fn socket(out: &mut Vec<u8>, addr: SocketAddr) {
    out.push(b'"');
    match addr {
        SocketAddr::V4(a) => {
            ipv4(out, *a.ip());
            out.push(b':');
            uint(out, a.port().into());
        }
        SocketAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
    out.push(b'"');
}

fn ipv4(out: &mut Vec<u8>, ip: Ipv4Addr) {
    out.extend_from_slice(Ipv4Text::new(ip).as_bytes());
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddrV4, SocketAddrV6};
    use std::time::Duration;

    use super::*;

    fn encoded(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    /// A character from a class chosen at random, escapes and non-ASCII made frequent.
    fn any_char(rng: &mut fastrand::Rng) -> char {
        match rng.u8(0..8) {
            0 => char::from(rng.u8(0..0x20)),
            1 => ['"', '\\', '\u{7f}', '/', '\u{2028}', '\u{fffd}'][rng.usize(0..6)],
            2 => char::from_u32(rng.u32(0x80..0x800)).unwrap_or('x'),
            3 => char::from_u32(rng.u32(0x800..0x10000)).unwrap_or('\u{d7ff}'),
            4 => char::from_u32(rng.u32(0x10000..0x110000)).unwrap_or('\u{10ffff}'),
            _ => char::from(rng.u8(0x20..0x7f)),
        }
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        let mut rng = fastrand::Rng::with_seed(0x7e1e_3e7a);
        for round in 0..20_000 {
            let len = if round % 10 == 0 {
                rng.usize(0..300)
            } else {
                rng.usize(0..40)
            };
            let s: String = (0..len).map(|_| any_char(&mut rng)).collect();
            let ours = encoded(|o| string(o, &s));
            assert_eq!(ours, serde_json::to_string(&s).expect("encode"), "{s:?}");
            assert_eq!(serde_json::from_str::<String>(&ours).expect("decode"), s);
        }
    }

    /// Every ASCII byte at every position of a chunk and of the tail after it.
    #[test]
    fn every_ascii_byte_at_every_position_escapes_as_serde_json_does() {
        for b in 0u8..0x80 {
            for at in 0..20 {
                let mut s = "abcdefghijklmnopqrst".to_string().into_bytes();
                s[at] = b;
                let s = String::from_utf8(s).expect("ASCII");
                assert_eq!(
                    encoded(|o| string(o, &s)),
                    serde_json::to_string(&s).expect("encode"),
                    "{s:?}"
                );
            }
        }
    }

    /// `plain` skips the scan: right for every method `http` accepts (tokens) and for words.
    #[test]
    fn plain_strings_are_written_as_scanned_strings_are() {
        let mut words = vec![
            "allow".to_string(),
            "would_throttle".into(),
            "1.1".into(),
            String::new(),
        ];
        for b in 0u8..=255 {
            let name = [b'X', b, b'Y'];
            if let Ok(m) = http::Method::from_bytes(&name) {
                words.push(m.as_str().to_string());
            }
        }
        assert!(words.len() > 70, "tokens accepted: {}", words.len());
        for w in words {
            assert_eq!(encoded(|o| plain(o, &w)), encoded(|o| string(o, &w)), "{w:?}");
        }
    }

    #[test]
    fn lossy_strings_replace_invalid_utf8_as_from_utf8_lossy_does() {
        let mut rng = fastrand::Rng::with_seed(0x0b5_7e47);
        let pieces: [&[u8]; 10] = [
            b"\xff",
            b"\xc3",
            b"\xc3\xa9",
            b"\xe2\x82",
            b"\xe2\x82\xac",
            b"\xf0\x9f\x98",
            b"\xed\xa0\x80",
            b"\xc0\xaf",
            b"\"\\\t",
            b"plain text",
        ];
        for _ in 0..5_000 {
            let bytes: Vec<u8> = (0..rng.usize(0..12))
                .flat_map(|_| match rng.u8(0..3) {
                    0 => vec![rng.u8(..)],
                    _ => pieces[rng.usize(0..pieces.len())].to_vec(),
                })
                .collect();
            let want = serde_json::to_string(&String::from_utf8_lossy(&bytes)).expect("encode");
            assert_eq!(encoded(|o| string_lossy(o, &bytes)), want, "{bytes:?}");
        }
    }

    #[test]
    fn integers_are_decimal() {
        let mut rng = fastrand::Rng::with_seed(10);
        let mut values = vec![0, 1, 9, 10, 99, 100, u64::MAX, u64::MAX - 1, 1 << 63];
        values.extend((0..1000).map(|_| rng.u64(..) >> rng.u32(0..64)));
        for n in values {
            assert_eq!(encoded(|o| uint(o, n)), n.to_string());
            let i = n as i64;
            assert_eq!(encoded(|o| int(o, i)), serde_json::to_string(&i).expect("encode"));
        }
        assert_eq!(encoded(|o| int(o, i64::MIN)), "-9223372036854775808");
    }

    #[test]
    fn floats_are_written_as_serde_json_writes_them() {
        let mut rng = fastrand::Rng::with_seed(32);
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            0.1,
            1.0 / 3.0,
            12.35,
            3.0,
            1e-7,
            1e20,
            1e16,
            1e15,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-45,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        values.extend((0..20_000).map(|_| f32::from_bits(rng.u32(..))));
        values.extend((0..2_000).map(|_| rng.u32(0..10_001) as f32 / 100.0));
        for x in values {
            assert_eq!(
                encoded(|o| float(o, x)),
                serde_json::to_string(&x).expect("encode"),
                "{x:?}"
            );
        }
    }

    fn at(secs: i64, nanos: u32) -> SystemTime {
        let base = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::from(nanos));
        match u64::try_from(secs) {
            Ok(s) => base + Duration::from_secs(s),
            Err(_) => base - Duration::from_secs(secs.unsigned_abs()),
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_nanoseconds() {
        let t = at(1_795_454_386, 289_445_953);
        let json = encoded(|o| timestamp(o, t));
        assert_eq!(json, "\"2026-11-23T17:19:46.289445953Z\"");
        assert_eq!(humantime::parse_rfc3339(json.trim_matches('"')).expect("parse"), t);
        assert_eq!(
            encoded(|o| timestamp(o, at(-1, 5))),
            "\"1969-12-31T23:59:59.000000005Z\""
        );
        assert_eq!(
            encoded(|o| timestamp(o, at(-62_198_755_200, 0))),
            "\"-001-01-01T00:00:00.000000000Z\""
        );
        // Every year `time` knows, against its own formatting.
        let mut rng = fastrand::Rng::with_seed(3339);
        for _ in 0..20_000 {
            let t = at(rng.i64(-377_705_116_800..253_402_300_800), rng.u32(0..1_000_000_000));
            let dt = time::OffsetDateTime::from(t);
            let want = format!(
                "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z\"",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.nanosecond()
            );
            assert_eq!(encoded(|o| timestamp(o, t)), want);
        }
    }

    #[test]
    fn addresses_are_written_as_display_does() {
        let mut rng = fastrand::Rng::with_seed(4);
        for round in 0..5_000 {
            let v4 = Ipv4Addr::from(match round {
                0 => 0,
                1 => u32::MAX,
                _ => rng.u32(..) >> (8 * rng.u32(0..4)),
            });
            // Runs of zero groups, so every shape of `::` comes up, and IPv4-mapped addresses.
            let mut groups = [0u16; 8];
            for g in &mut groups {
                *g = if rng.bool() { 0 } else { rng.u16(..) >> rng.u32(0..16) };
            }
            if round % 7 == 0 {
                groups[..6].copy_from_slice(&[0, 0, 0, 0, 0, 0xffff]);
            }
            let v6 = Ipv6Addr::from(groups);
            let port = rng.u16(..);
            let scope = if rng.bool() { 0 } else { rng.u32(..) };
            for addr in [IpAddr::V4(v4), IpAddr::V6(v6)] {
                assert_eq!(encoded(|o| ip(o, addr)), format!("\"{addr}\""));
            }
            for addr in [
                SocketAddr::V4(SocketAddrV4::new(v4, port)),
                SocketAddr::V6(SocketAddrV6::new(v6, port, rng.u32(..), scope)),
            ] {
                assert_eq!(encoded(|o| socket(o, addr)), format!("\"{addr}\""));
            }
        }
    }
}
