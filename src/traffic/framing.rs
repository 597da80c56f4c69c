//! Request framing (request_filter, first thing after the head is read): the raw HTTP/1 request
//! head is re-parsed strictly, and anything two HTTP implementations could read differently is
//! refused before routing, policy or any upstream contact. Pure functions over bytes.
//!
//! Pingora's own parser (httparse) is lenient in places an origin may not be: it accepts bare LF
//! line endings, and Pingora keeps a duplicate `Content-Length` whose copies agree. An edge proxy
//! that lets such a request through hands the origin a chance to frame it differently, which is
//! how request smuggling works. docs/security.md lists every rule and why.

/// Why a request head is refused, and the status of the answer. `reason` is a bounded label: it
/// names the metric sample and the telemetry `event.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

const fn bad(reason: &'static str) -> Refusal {
    Refusal { status: 400, reason }
}

pub const BAD_REQUEST_LINE: Refusal = bad("bad_request_line");
pub const BAD_TARGET: Refusal = bad("bad_target");
pub const URI_TOO_LONG: Refusal = Refusal {
    status: 414,
    reason: "uri_too_long",
};
pub const BARE_CR_OR_LF: Refusal = bad("bare_cr_or_lf");
pub const OBS_FOLD: Refusal = bad("obs_fold");
pub const BAD_HEADER_NAME: Refusal = bad("bad_header_name");
pub const BAD_HEADER_VALUE: Refusal = bad("bad_header_value");
pub const HEADERS_TOO_LARGE: Refusal = Refusal {
    status: 431,
    reason: "headers_too_large",
};
pub const TOO_MANY_HEADERS: Refusal = Refusal {
    status: 431,
    reason: "too_many_headers",
};
pub const CL_AND_TE: Refusal = bad("content_length_and_transfer_encoding");
pub const DUPLICATE_CL: Refusal = bad("duplicate_content_length");
pub const BAD_CL: Refusal = bad("bad_content_length");
pub const BAD_TE: Refusal = bad("bad_transfer_encoding");
pub const TE_HTTP10: Refusal = bad("transfer_encoding_http10");
pub const BODY_ON_GET: Refusal = bad("body_on_get");
pub const LOOKALIKE: Refusal = bad("framing_header_lookalike");
pub const MISSING_HOST: Refusal = bad("missing_host");
pub const DUPLICATE_HOST: Refusal = bad("duplicate_host");
pub const BAD_HOST: Refusal = bad("bad_host");
pub const HOST_MISMATCH: Refusal = bad("host_mismatch");

/// Every reason `check_head` can give, for metric pre-registration and docs tests.
pub const REASONS: &[Refusal] = &[
    BAD_REQUEST_LINE,
    BAD_TARGET,
    URI_TOO_LONG,
    BARE_CR_OR_LF,
    OBS_FOLD,
    BAD_HEADER_NAME,
    BAD_HEADER_VALUE,
    HEADERS_TOO_LARGE,
    TOO_MANY_HEADERS,
    CL_AND_TE,
    DUPLICATE_CL,
    BAD_CL,
    BAD_TE,
    TE_HTTP10,
    BODY_ON_GET,
    LOOKALIKE,
    MISSING_HOST,
    DUPLICATE_HOST,
    BAD_HOST,
    HOST_MISMATCH,
];

/// Size limits that apply to the head (the rest of `limits:` applies to bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Bytes of the request target.
    pub max_uri: usize,
    /// Bytes of all header lines together, line endings included; the request line is not
    /// counted (it has `max_uri`).
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// What a well-formed head says about how the request is framed and addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head<'a> {
    /// The target was in absolute form (`GET http://host/path`); `origin_form` is its path and
    /// query, which is what the origin is sent.
    pub origin_form: Option<&'a str>,
    pub content_length: Option<u64>,
    pub chunked: bool,
}

/// Check one raw HTTP/1 request head, from the request line through the empty line.
pub fn check_head<'a>(raw: &'a [u8], limits: &HeadLimits) -> Result<Head<'a>, Refusal> {
    // One pass; a bare CR makes some check below fail, and then wins over what that check
    // found (so does a bare LF, which `Lines` notes).
    scan_head(raw, limits).map_err(|refusal| check_line_endings(raw).err().unwrap_or(refusal))
}

fn scan_head<'a>(raw: &'a [u8], limits: &HeadLimits) -> Result<Head<'a>, Refusal> {
    let mut lines = Lines {
        rest: raw,
        bare_lf: false,
    };
    let request_line = lines.next().ok_or(BAD_REQUEST_LINE)?;
    let line = parse_request_line(request_line, limits)?;

    let mut fields = Fields::default();
    let mut count = 0usize;
    let mut bytes = 0usize;
    for l in lines.by_ref() {
        if l.is_empty() {
            break;
        }
        count += 1;
        bytes += l.len() + 2;
        if count > limits.max_headers {
            return Err(TOO_MANY_HEADERS);
        }
        if bytes > limits.max_header_bytes {
            return Err(HEADERS_TOO_LARGE);
        }
        fields.add(l)?;
    }
    if lines.bare_lf || !lines.rest.is_empty() {
        check_line_endings(raw)?;
    }

    let mut head = Head::default();
    match (fields.content_length.len(), fields.transfer_encoding.len()) {
        (0, 0) => {}
        (_, 0) if fields.content_length.len() > 1 => return Err(DUPLICATE_CL),
        (1, 0) => head.content_length = Some(parse_content_length(fields.content_length.first)?),
        (0, 1) => {
            if line.version == Version::Http10 {
                return Err(TE_HTTP10);
            }
            if !is_plain_chunked(fields.transfer_encoding.first) {
                return Err(BAD_TE);
            }
            head.chunked = true;
        }
        (0, _) => return Err(BAD_TE),
        _ => return Err(CL_AND_TE),
    }
    if matches!(line.method, b"GET" | b"HEAD") && (head.chunked || head.content_length.is_some_and(|n| n > 0)) {
        return Err(BODY_ON_GET);
    }

    let host = match fields.host.len() {
        0 if line.version == Version::Http11 => return Err(MISSING_HOST),
        0 => None,
        1 => Some(trim_ows(fields.host.first)),
        _ => return Err(DUPLICATE_HOST),
    };
    if let Some(h) = host {
        if !valid_authority(h) {
            return Err(BAD_HOST);
        }
    }
    if let Target::Absolute { authority, path } = line.target {
        if !valid_authority(authority) {
            return Err(BAD_TARGET);
        }
        if host.is_some_and(|h| !h.eq_ignore_ascii_case(authority)) {
            return Err(HOST_MISMATCH);
        }
        head.origin_form = Some(path);
    }
    Ok(head)
}

/// The size limits alone, for heads that arrive already parsed (HTTP/2): target length, field
/// count, and the bytes of `name: value\r\n` lines they would take in HTTP/1.
pub fn check_sizes(target_len: usize, fields: usize, field_bytes: usize, limits: &HeadLimits) -> Result<(), Refusal> {
    if target_len > limits.max_uri {
        return Err(URI_TOO_LONG);
    }
    if fields > limits.max_headers {
        return Err(TOO_MANY_HEADERS);
    }
    if field_bytes > limits.max_header_bytes {
        return Err(HEADERS_TOO_LARGE);
    }
    Ok(())
}

/// Every line ends in CRLF: a CR not followed by LF, or an LF not preceded by CR, is refused.
fn check_line_endings(raw: &[u8]) -> Result<(), Refusal> {
    for i in memchr::memchr2_iter(b'\r', b'\n', raw) {
        let paired = if raw[i] == b'\r' {
            raw.get(i + 1) == Some(&b'\n')
        } else {
            i > 0 && raw[i - 1] == b'\r'
        };
        if !paired {
            return Err(BARE_CR_OR_LF);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Http10,
    Http11,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'a> {
    Origin,
    Absolute {
        authority: &'a str,
        path: &'a str,
    },
    /// `*` for OPTIONS, `host:port` for CONNECT.
    Other,
}

struct RequestLine<'a> {
    method: &'a [u8],
    target: Target<'a>,
    version: Version,
}

fn parse_request_line<'a>(l: &'a [u8], limits: &HeadLimits) -> Result<RequestLine<'a>, Refusal> {
    let mut parts = l.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        // Also catches double spaces, which split into an empty part.
        return Err(if l.len() > limits.max_uri {
            URI_TOO_LONG
        } else {
            BAD_REQUEST_LINE
        });
    };
    if method.is_empty() || !all_in(method, TCHAR) {
        return Err(BAD_REQUEST_LINE);
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        _ => return Err(BAD_REQUEST_LINE),
    };
    if target.len() > limits.max_uri {
        return Err(URI_TOO_LONG);
    }
    if target.is_empty() || !all_in(target, TARGET) {
        return Err(BAD_TARGET);
    }
    // Checked to be ASCII just above.
    let t = std::str::from_utf8(target).map_err(|_| BAD_TARGET)?;
    let target = if t.starts_with('/') {
        Target::Origin
    } else if (method == b"OPTIONS" && t == "*") || method == b"CONNECT" {
        Target::Other
    } else {
        let (scheme, rest) = t.split_once("://").ok_or(BAD_TARGET)?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(BAD_TARGET);
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() || path.starts_with('?') {
            return Err(BAD_TARGET);
        }
        Target::Absolute {
            authority,
            path: if path.is_empty() { "/" } else { path },
        }
    };
    Ok(RequestLine {
        method,
        target,
        version,
    })
}

/// The header fields that decide framing and addressing, as raw values.
#[derive(Default)]
struct Fields<'a> {
    content_length: Seen<'a>,
    transfer_encoding: Seen<'a>,
    host: Seen<'a>,
}

/// How often one field was sent, and its first value (the only one used when it is allowed
/// once).
#[derive(Default)]
struct Seen<'a> {
    first: &'a [u8],
    count: usize,
}

impl<'a> Seen<'a> {
    fn push(&mut self, value: &'a [u8]) {
        if self.count == 0 {
            self.first = value;
        }
        self.count += 1;
    }

    fn len(&self) -> usize {
        self.count
    }
}

impl<'a> Fields<'a> {
    fn add(&mut self, l: &'a [u8]) -> Result<(), Refusal> {
        if l[0] == b' ' || l[0] == b'\t' {
            return Err(OBS_FOLD);
        }
        // The name is tokens up to the first colon: a line without one, and a name with
        // another byte, are refused alike, so one scan finds the colon and checks the name.
        let colon = l
            .iter()
            .position(|&b| CLASSES[usize::from(b)] & TCHAR == 0)
            .filter(|&i| i > 0 && l[i] == b':')
            .ok_or(BAD_HEADER_NAME)?;
        let (name, value) = (&l[..colon], &l[colon + 1..]);
        if !field_value_ok(value) {
            return Err(BAD_HEADER_VALUE);
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            self.content_length.push(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding.push(value);
        } else if name.eq_ignore_ascii_case(b"host") {
            self.host.push(value);
        } else if squeezed_eq(name, b"contentlength") || squeezed_eq(name, b"transferencoding") {
            // Some stacks (CGI, PHP, WSGI, nginx with `underscores_in_headers`) read `_` as
            // `-`, others collapse or ignore delimiters: to them this may be a framing header.
            return Err(LOOKALIKE);
        }
        Ok(())
    }
}

fn trim_ows(v: &[u8]) -> &str {
    let start = v.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |e| e + 1);
    std::str::from_utf8(&v[start..end]).unwrap_or("\u{0}")
}

/// 1 to 19 digits, surrounded by optional whitespace; no sign, no list, no hex.
fn parse_content_length(v: &[u8]) -> Result<u64, Refusal> {
    let t = trim_ows(v);
    if t.is_empty() || t.len() > 19 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BAD_CL);
    }
    t.parse().map_err(|_| BAD_CL)
}

/// Exactly `chunked` (any case), with at most one space before it and nothing after. Every
/// other coding, list or spacing is refused: it is where implementations disagree.
fn is_plain_chunked(v: &[u8]) -> bool {
    let v = v.strip_prefix(b" ").unwrap_or(v);
    v.eq_ignore_ascii_case(b"chunked")
}

/// `host`, `host:port` or `[v6]:port`, without userinfo, path or whitespace.
pub fn valid_authority(a: &str) -> bool {
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("", port),
                None => return false,
            },
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (a, ""),
        }
    };
    let port_ok = port.is_empty() || (port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = all_in(host.as_bytes(), HOST_NAME);
    port_ok && host_ok && (!host.is_empty() || a.starts_with('['))
}

/// Whether `name`, with every `-` and `_` dropped, is `want` (lowercase) in any case.
fn squeezed_eq(name: &[u8], want: &[u8]) -> bool {
    let mut rest = name.iter().filter(|b| !matches!(b, b'-' | b'_'));
    want.iter()
        .all(|w| rest.next().is_some_and(|b| b.eq_ignore_ascii_case(w)))
        && rest.next().is_none()
}

/// A byte a request target may carry as is: visible ASCII except the fragment mark `#` and
/// `"`, `<`, `>`. Those, controls, space, DEL and non-ASCII bytes are what every browser
/// percent-encodes (the WHATWG query percent-encode set), so a raw one is not from a browser and
/// is outside RFC 3986. `\`, `^`, backtick, `{`, `|` and `}` are outside RFC 3986 too, but
/// browsers send them raw in queries, and they change neither framing nor where the path ends.
const fn is_target_byte(b: u8) -> bool {
    b >= 0x21 && b < 0x7f && !matches!(b, b'#' | b'"' | b'<' | b'>')
}

/// RFC 9110 token characters.
const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

/// A byte a field value may carry: tab, visible ASCII, space and obs-text; no other control.
const fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

const TCHAR: u8 = 1;
const TARGET: u8 = 2;
const FIELD_VALUE: u8 = 4;
const HOST_NAME: u8 = 8;

/// A byte of a registered name or IPv4 address (RFC 3986 reg-name, percent signs included).
const fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b'%'
        )
}

/// Each byte's classes, so that a head is checked with one table lookup per byte.
static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = (if is_tchar(b) { TCHAR } else { 0 })
            | (if is_target_byte(b) { TARGET } else { 0 })
            | (if is_field_value_byte(b) { FIELD_VALUE } else { 0 })
            | (if is_host_byte(b) { HOST_NAME } else { 0 });
        i += 1;
    }
    t
};

fn all_in(bytes: &[u8], class: u8) -> bool {
    bytes.iter().all(|b| CLASSES[usize::from(*b)] & class != 0)
}

/// `all_in(value, FIELD_VALUE)`, eight bytes at a time: values are most of a head's bytes and
/// nearly always plain text, and only a word that holds a control byte or DEL (a tab, say) is
/// looked at byte by byte.
fn field_value_ok(value: &[u8]) -> bool {
    let mut words = value.chunks_exact(8);
    for w in &mut words {
        let word = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        if has_control_or_del(word) && !all_in(w, FIELD_VALUE) {
            return false;
        }
    }
    all_in(words.remainder(), FIELD_VALUE)
}

/// Where the first LF of `bytes` is, eight bytes at a time: lines are short, and this has
/// none of memchr's set-up (the classic "has a zero byte" test; its lowest hit is the first LF,
/// as a false hit can only follow a true one).
fn find_lf(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let word = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) ^ (ONES * u64::from(b'\n'));
        let hits = word.wrapping_sub(ONES) & !word & HIGHS;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words.remainder().iter().position(|b| *b == b'\n').map(|i| at + i)
}

/// True when one of the eight bytes of `word` is below 0x20 or is 0x7f. Exact as a whole (the
/// classic "has a byte less than n" and "has a zero byte" tests; obs-text, 0x80 and up, never
/// counts).
fn has_control_or_del(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let del = word ^ (ONES * 0x7f);
    let del = del.wrapping_sub(ONES) & !del;
    (below_space | del) & HIGHS != 0
}

/// The lines of a head, without their CRLF. A line that ends in a LF alone is noted in
/// `bare_lf`; a CR inside a line is left for the checks of its content.
struct Lines<'a> {
    rest: &'a [u8],
    bare_lf: bool,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(lf) = find_lf(self.rest) else {
            return Some(std::mem::take(&mut self.rest));
        };
        let line = &self.rest[..lf];
        self.rest = &self.rest[lf + 1..];
        let stripped = line.strip_suffix(b"\r");
        self.bare_lf |= stripped.is_none();
        Some(stripped.unwrap_or(line))
    }
}

/// The length of a request line as it arrived on the connection, counted on the bytes read
/// from the socket (fed by the stream wrapper, `proxy::conn`), up to and including its LF.
///
/// Pingora percent-encodes a target httparse refuses (spaces, controls, `"`, `<`, `>`) and
/// parses the rewritten line, so the raw head Palisade is given no longer shows what was sent.
/// RFC 9112 section 3.2: a server should not autocorrect an invalid request line and then
/// process it, since it may be crafted to get past filters. Any rewrite lengthens the line,
/// so a received length that differs from the head's first line means the line was rewritten.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedLine {
    counted: u32,
    complete: bool,
}

impl ReceivedLine {
    /// Count the next bytes read; bytes after the line's LF are not part of it.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.complete {
            return;
        }
        match memchr::memchr(b'\n', bytes) {
            Some(lf) => {
                self.counted = self.counted.saturating_add(u32::try_from(lf + 1).unwrap_or(u32::MAX));
                self.complete = true;
            }
            None => {
                self.counted = self
                    .counted
                    .saturating_add(u32::try_from(bytes.len()).unwrap_or(u32::MAX))
            }
        }
    }

    /// The length of the whole line, once its LF has been read.
    pub fn length(&self) -> Option<usize> {
        self.complete.then_some(self.counted as usize)
    }
}

/// Refuse a head whose request line is not the one received (see `ReceivedLine`). Without a
/// count (a stream Palisade does not wrap), the head is taken as received: fail open, since
/// `check_head` still applies to what will be forwarded.
pub fn check_received_line(raw: &[u8], received: Option<usize>) -> Result<(), Refusal> {
    let Some(received) = received else { return Ok(()) };
    let line = memchr::memchr(b'\n', raw).map_or(raw.len(), |lf| lf + 1);
    if line != received {
        return Err(BAD_TARGET);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_uri: 64,
        max_header_bytes: 256,
        max_headers: 8,
    };

    fn check(raw: &str) -> Result<Head<'_>, Refusal> {
        check_head(raw.as_bytes(), &LIMITS)
    }

    fn refused(raw: &str) -> &'static str {
        match check(raw) {
            Err(r) => r.reason,
            Ok(h) => panic!("{raw:?} was accepted: {h:?}"),
        }
    }

    #[test]
    fn plain_requests_pass() {
        let h = check("GET /a?b=c HTTP/1.1\r\nHost: a.test\r\nX-A:\tv \r\n\r\n").expect("ok");
        assert_eq!(h, Head::default());
        let h = check("POST / HTTP/1.1\r\nHost: a.test:8080\r\nContent-Length: 12\r\n\r\n").expect("ok");
        assert_eq!(h.content_length, Some(12));
        let h = check("POST / HTTP/1.1\r\nHost: [::1]:80\r\nTransfer-Encoding: Chunked\r\n\r\n").expect("ok");
        assert!(h.chunked);
        check("GET / HTTP/1.0\r\n\r\n").expect("HTTP/1.0 needs no Host");
        check("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").expect("asterisk form");
        check("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\u{e9}\r\n\r\n").expect("obs-text");
        check("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").expect("empty body on GET");
    }

    #[test]
    fn absolute_form_must_agree_with_host() {
        let h = check("GET http://A.test/x?y HTTP/1.1\r\nHost: a.test\r\n\r\n").expect("ok");
        assert_eq!(h.origin_form, Some("/x?y"));
        let h = check("GET https://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n").expect("ok");
        assert_eq!(h.origin_form, Some("/"));
        assert_eq!(
            refused("GET http://b.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n"),
            "host_mismatch"
        );
        assert_eq!(refused("GET http://a.test/x HTTP/1.1\r\n\r\n"), "missing_host");
        for t in [
            "ftp://a.test/",
            "http://u@a.test/",
            "http:///x",
            "a.test:80",
            "*",
            "http://a.test?x",
        ] {
            assert_eq!(
                refused(&format!("GET {t} HTTP/1.1\r\nHost: a.test\r\n\r\n")),
                "bad_target",
                "{t}"
            );
        }
    }

    #[test]
    fn framing_headers() {
        let r = |h: &str| refused(&format!("POST / HTTP/1.1\r\nHost: a\r\n{h}\r\n\r\n"));
        assert_eq!(r("Content-Length: 1\r\nTransfer-Encoding: chunked"), CL_AND_TE.reason);
        assert_eq!(r("Transfer-Encoding: chunked\r\nContent-Length: 1"), CL_AND_TE.reason);
        assert_eq!(r("Content-Length: 1\r\nContent-Length: 1"), DUPLICATE_CL.reason);
        for v in ["1, 1", "+1", "-1", "0x1", "1 2", "", "99999999999999999999"] {
            assert_eq!(r(&format!("Content-Length: {v}")), BAD_CL.reason, "{v:?}");
        }
        for v in [
            " chunked, identity",
            " identity, chunked",
            " gzip, chunked",
            " xchunked",
            " chunkedx",
            "  chunked",
            "\tchunked",
            " chunked ",
            " \u{b}chunked",
            "",
        ] {
            let refusal = r(&format!("Transfer-Encoding:{v}"));
            assert!(
                refusal == BAD_TE.reason || refusal == BAD_HEADER_VALUE.reason,
                "{v:?}: {refusal}"
            );
        }
        assert_eq!(
            r("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"),
            BAD_TE.reason
        );
        assert_eq!(r("Transfer_Encoding: chunked"), LOOKALIKE.reason);
        assert_eq!(r("content_length: 1"), LOOKALIKE.reason);
        for name in [
            "Transfer---Encoding",
            "Transfer___Encoding",
            "transfer-_encoding",
            "TransferEncoding",
            "-Transfer-Encoding",
            "Transfer-Encoding-",
            "_transfer_encoding_",
            "Content--Length",
            "Content-Length_",
            "CONTENTLENGTH",
            "C-o-n-t-e-n-t-L-e-n-g-t-h",
        ] {
            assert_eq!(r(&format!("{name}: chunked")), LOOKALIKE.reason, "{name}");
        }
        for name in [
            "X-Content-Length",
            "Content-Lengths",
            "Transfer-Encoding-X",
            "Content.Length",
            "ContentLen",
        ] {
            let raw = format!("POST / HTTP/1.1\r\nHost: a\r\n{name}: 1\r\nContent-Length: 2\r\n\r\n");
            let h = check_head(raw.as_bytes(), &LIMITS);
            assert_eq!(h.map(|h| h.content_length), Ok(Some(2)), "{name}");
        }
        assert_eq!(
            refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            TE_HTTP10.reason
        );
        assert_eq!(
            refused("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            BODY_ON_GET.reason
        );
        assert_eq!(
            refused("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"),
            BODY_ON_GET.reason
        );
    }

    #[test]
    fn line_structure() {
        assert_eq!(refused("GET / HTTP/1.1\nHost: a\n\n"), BARE_CR_OR_LF.reason);
        assert_eq!(refused("GET / HTTP/1.1\r\nHost: a\r\n\n"), BARE_CR_OR_LF.reason);
        assert_eq!(refused("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), BARE_CR_OR_LF.reason);
        assert_eq!(
            refused("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n"),
            OBS_FOLD.reason
        );
        assert_eq!(refused("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n"), OBS_FOLD.reason);
        assert_eq!(refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), BAD_HEADER_NAME.reason);
        assert_eq!(
            refused("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"),
            BAD_HEADER_NAME.reason
        );
        assert_eq!(
            refused("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n"),
            BAD_HEADER_NAME.reason
        );
        for c in ["\u{0}", "\u{1}", "\u{7f}"] {
            assert_eq!(
                refused(&format!("GET / HTTP/1.1\r\nHost: a\r\nX: a{c}b\r\n\r\n")),
                BAD_HEADER_VALUE.reason
            );
        }
        for l in [
            "GET  / HTTP/1.1",
            "GET /  HTTP/1.1",
            "GET\t/ HTTP/1.1",
            "G(T / HTTP/1.1",
            "GET / HTTP/1.7",
            "GET / http/1.1",
            "GET / HTTP/2.0",
            "GET /",
        ] {
            assert_eq!(
                refused(&format!("{l}\r\nHost: a\r\n\r\n")),
                BAD_REQUEST_LINE.reason,
                "{l}"
            );
        }
        for t in [
            "/a#b",
            "/caf\u{e9}",
            "/a\u{1}b",
            "/a\u{0}b",
            "/a\u{7f}b",
            "/a\"b",
            "/<a>",
            "/?q=\"",
        ] {
            assert_eq!(
                refused(&format!("GET {t} HTTP/1.1\r\nHost: a\r\n\r\n")),
                BAD_TARGET.reason,
                "{t:?}"
            );
        }
    }

    #[test]
    fn odd_but_legal_targets_pass() {
        for t in [
            "/a?b=c/d?e",
            "/a;p=1,2/b:c@d/!$&'()*+=~-._",
            "/%00%0D%0A%7F/caf%C3%A9?q=%20%22",
            "/q?x={a}|b^c`d\\e",
        ] {
            check(&format!("GET {t} HTTP/1.1\r\nHost: a\r\n\r\n")).unwrap_or_else(|r| panic!("{t}: {r:?}"));
        }
    }

    #[test]
    fn a_rewritten_request_line_is_told_from_the_one_received() {
        let head = b"GET /a%20b HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut sent = ReceivedLine::default();
        assert_eq!(sent.length(), None);
        // Read in pieces, the line's end in the middle of a read.
        sent.feed(b"GET /a");
        sent.feed(b" b HTTP/1.1\r");
        assert_eq!(sent.length(), None);
        sent.feed(b"\nHost: a\r\n\r\n");
        sent.feed(b"GET /next HTTP/1.1\r\n");
        assert_eq!(sent.length(), Some(19));
        assert_eq!(check_received_line(head, sent.length()), Err(BAD_TARGET));

        let mut same = ReceivedLine::default();
        same.feed(head);
        assert_eq!(check_received_line(head, same.length()), Ok(()));
        assert_eq!(check_received_line(head, None), Ok(()), "nothing counted: fail open");
    }

    #[test]
    fn hosts() {
        let r = |h: &str| refused(&format!("GET / HTTP/1.1\r\n{h}\r\n\r\n"));
        assert_eq!(r("X: 1"), MISSING_HOST.reason);
        assert_eq!(r("Host: a\r\nHost: a"), DUPLICATE_HOST.reason);
        for h in ["evil@a", "a/b", "a b", "a:port", "[::1", "[nope]:80", ":80", "a\\b"] {
            assert_eq!(r(&format!("Host: {h}")), BAD_HOST.reason, "{h}");
        }
    }

    #[test]
    fn sizes() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(64));
        assert_eq!(check_head(long.as_bytes(), &LIMITS), Err(URI_TOO_LONG));
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", "X: 1\r\n".repeat(8));
        assert_eq!(check_head(many.as_bytes(), &LIMITS), Err(TOO_MANY_HEADERS));
        let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(250));
        assert_eq!(check_head(big.as_bytes(), &LIMITS), Err(HEADERS_TOO_LARGE));
        let fits = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(200));
        assert!(check_head(fits.as_bytes(), &LIMITS).is_ok());
    }

    #[test]
    fn reasons_are_unique_labels() {
        let mut seen = std::collections::HashSet::new();
        for r in REASONS {
            assert!(seen.insert(r.reason), "{}", r.reason);
            assert!(r
                .reason
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        }
    }

    #[test]
    fn the_word_test_of_field_values_agrees_with_the_byte_table() {
        // Every byte value at every position of a word, and in the tail after the last word.
        for len in [7usize, 8, 9, 16, 19] {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    assert_eq!(
                        field_value_ok(&v),
                        all_in(&v, FIELD_VALUE),
                        "byte {b:#x} at {pos} of {len}"
                    );
                }
            }
        }
        assert!(field_value_ok("h2load nghttp2/1.52.0 \t\u{80}\u{ff}".as_bytes()));
        assert!(!field_value_ok(b"abcdefgh\x7fabc"));
        assert!(!field_value_ok(b"abc\x00defgh"));
    }

    #[test]
    fn the_one_scan_of_a_field_name_refuses_what_colon_then_token_check_refused() {
        // The check before: the first colon splits the line, and the name before it must be
        // one or more token bytes.
        fn before(l: &[u8]) -> bool {
            l.iter()
                .position(|b| *b == b':')
                .is_some_and(|c| c > 0 && all_in(&l[..c], TCHAR))
        }
        let alphabet = [b'a', b'Z', b'-', b':', b' ', b'@', b'"', 0x80];
        let mut line = Vec::new();
        for n in 1..=5u32 {
            for mut k in 0..alphabet.len().pow(n) {
                line.clear();
                for _ in 0..n {
                    line.push(alphabet[k % alphabet.len()]);
                    k /= alphabet.len();
                }
                if line[0] == b' ' {
                    continue; // obs-fold, refused before the name is looked at
                }
                let now = Fields::default().add(&line) != Err(BAD_HEADER_NAME);
                assert_eq!(now, before(&line), "{:?}", String::from_utf8_lossy(&line));
            }
        }
    }

    #[test]
    fn the_word_search_for_a_line_end_finds_the_first_lf() {
        for len in 0..20usize {
            for first in 0..=len {
                for second in first..=len {
                    // LFs at `first` and `second` (none where the index is past the end), and
                    // bytes around them that differ from LF by one bit or by borrow.
                    let mut v: Vec<u8> = (0..len).map(|i| [0x0b, 0x09, 0x8a, 0x0a ^ 0x80, 0x00][i % 5]).collect();
                    for at in [first, second] {
                        if at < len {
                            v[at] = b'\n';
                        }
                    }
                    assert_eq!(find_lf(&v), v.iter().position(|b| *b == b'\n'), "{v:?}");
                }
            }
        }
    }
}
