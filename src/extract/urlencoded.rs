//! Name/value pairs out of query strings, urlencoded form bodies and Cookie headers
//! (request_filter and request_body_filter), for moderation and the WAF alike.

use std::borrow::Cow;

/// Pairs read from one query string or form body before the rest is left unread.
pub const DEFAULT_MAX_PAIRS: usize = 1000;

/// `application/x-www-form-urlencoded` pairs, in order, decoded: `+` is a space, `%XX` a byte,
/// and the bytes are read as UTF-8 with U+FFFD for what is not. A `%` not followed by two hex
/// digits stays as it is (`%zz`, a trailing `%4`); `%uXXXX` is not decoded here, that is the WAF
/// decoder's business. Empty segments (`a=1&&b=2`) are skipped; a segment without `=` is a
/// name with an empty value. Only `&` separates (not `;`, as in the WHATWG URL standard).
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    rest: &'a [u8],
    left: usize,
    truncated: bool,
}

impl<'a> Pairs<'a> {
    pub fn new(raw: &'a [u8]) -> Pairs<'a> {
        Pairs {
            rest: raw,
            left: DEFAULT_MAX_PAIRS,
            truncated: false,
        }
    }

    /// Stop after `n` pairs.
    pub fn limit(mut self, n: usize) -> Pairs<'a> {
        self.left = n;
        self
    }

    /// Pairs were left unread because of the limit (known once the iterator has returned None).
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (seg, rest) = match memchr::memchr(b'&', self.rest) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if seg.is_empty() {
                continue;
            }
            if self.left == 0 {
                self.truncated = true;
                self.rest = &[];
                return None;
            }
            self.left -= 1;
            let (k, v) = match memchr::memchr(b'=', seg) {
                Some(i) => (&seg[..i], &seg[i + 1..]),
                None => (seg, &[][..]),
            };
            return Some((decode(k), decode(v)));
        }
    }
}

/// Pairs of a raw query string (without the `?`).
pub fn query_pairs(raw_query: &str) -> Pairs<'_> {
    Pairs::new(raw_query.as_bytes())
}

/// Pairs of an `application/x-www-form-urlencoded` body.
pub fn form_pairs(body: &[u8]) -> Pairs<'_> {
    Pairs::new(body)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Form decoding of one name or value: borrowed when there is nothing to decode.
pub fn decode(raw: &[u8]) -> Cow<'_, str> {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return String::from_utf8_lossy(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Cookie pairs of one `Cookie` header value, as sent: not percent-decoded (RFC 6265 gives
/// cookie values no encoding; the WAF decodes if it wants). Surrounding double quotes are
/// removed from a value; a segment without `=` is a value with an empty name, as browsers read
/// it. At most `DEFAULT_MAX_PAIRS`.
pub fn cookies(header_value: &str) -> impl Iterator<Item = (&str, &str)> {
    header_value
        .split(';')
        .map(|s| s.trim_matches([' ', '\t']))
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (name, value) = s.split_once('=').unwrap_or(("", s));
            let value = value.trim_matches([' ', '\t']);
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (name.trim_end_matches([' ', '\t']), value)
        })
        .take(DEFAULT_MAX_PAIRS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: Pairs<'_>) -> Vec<(String, String)> {
        p.map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn query_pairs_decode_plus_and_percent() {
        let got = all(query_pairs("q=hello+world&x=%41%2b%2B&empty=&flag&&a%20b=c=d"));
        assert_eq!(
            got,
            kv(&[
                ("q", "hello world"),
                ("x", "A++"),
                ("empty", ""),
                ("flag", ""),
                ("a b", "c=d")
            ])
        );
    }

    #[test]
    fn bad_escapes_stay_literal_and_u_escapes_are_not_decoded() {
        let got = all(query_pairs("a=%zz&b=%4&c=%&d=%u0041&e=100%&f=%%41"));
        assert_eq!(
            got,
            kv(&[
                ("a", "%zz"),
                ("b", "%4"),
                ("c", "%"),
                ("d", "%u0041"),
                ("e", "100%"),
                ("f", "%A")
            ])
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let got = all(form_pairs(b"n=%ff%fe&m=caf%C3%A9&raw=\xff"));
        assert_eq!(
            got,
            kv(&[("n", "\u{fffd}\u{fffd}"), ("m", "café"), ("raw", "\u{fffd}")])
        );
    }

    #[test]
    fn nothing_to_decode_borrows() {
        let mut p = query_pairs("plain=value");
        assert!(matches!(
            p.next(),
            Some((Cow::Borrowed("plain"), Cow::Borrowed("value")))
        ));
    }

    #[test]
    fn huge_counts_are_cut_and_say_so() {
        let body = "a=1&".repeat(5000);
        let mut p = form_pairs(body.as_bytes());
        assert_eq!(p.by_ref().count(), DEFAULT_MAX_PAIRS);
        assert!(p.truncated());
        let mut p = form_pairs(b"a=1&b=2").limit(2);
        assert_eq!(p.by_ref().count(), 2);
        assert!(!p.truncated());
        let mut p = form_pairs(b"a=1&b=2&c").limit(2);
        assert_eq!(p.by_ref().count(), 2);
        assert!(p.truncated());
    }

    #[test]
    fn cookies_split_trim_and_unquote() {
        let got: Vec<_> = cookies(" sid=abc%20; theme=\"dark\" ;; lone ; e=; x = y ").collect();
        assert_eq!(
            got,
            [
                ("sid", "abc%20"),
                ("theme", "dark"),
                ("", "lone"),
                ("e", ""),
                ("x", "y")
            ]
        );
        assert_eq!(cookies(&"a=b;".repeat(5000)).count(), DEFAULT_MAX_PAIRS);
        assert_eq!(cookies("").count(), 0);
    }
}
