//! Request framing: every ambiguous or malformed HTTP/1 request variant is refused before it
//! reaches an origin, and well-formed requests of the same families still pass. Each variant is
//! sent raw on its own connection; the recording origin proves what was (not) forwarded.
//! What is refused, and why, is documented in docs/security.md.

mod common;
use common::raw::{exchange, Reply};
use common::*;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// How long a raw exchange waits for silence before giving up on more bytes.
const WAIT: Duration = Duration::from_secs(3);

/// One request variant: `{P}` in the text is replaced by a path unique to the case.
struct Case {
    name: &'static str,
    text: Vec<u8>,
    want: u16,
}

fn case(name: &'static str, text: &[u8], want: u16) -> Case {
    Case {
        name,
        text: text.to_vec(),
        want,
    }
}

fn with_path(c: &Case) -> (String, Vec<u8>) {
    // The dot keeps one case's path from being a prefix of another's.
    let path = format!("/case-{}.", c.name);
    // Replace on bytes so that non-UTF-8 cases survive.
    let mut out = Vec::with_capacity(c.text.len() + path.len());
    let mut rest = &c.text[..];
    while let Some(i) = rest.windows(3).position(|w| w == b"{P}") {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(path.as_bytes());
        rest = &rest[i + 3..];
    }
    out.extend_from_slice(rest);
    (path, out)
}

fn refused() -> Vec<Case> {
    let long_uri = format!("GET {{P}}?{} HTTP/1.1\r\nHost: a.test\r\n\r\n", "q".repeat(9 * 1024));
    let many_headers = format!(
        "GET {{P}} HTTP/1.1\r\nHost: a.test\r\n{}\r\n",
        (0..101).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
    );
    let big_headers = format!(
        "GET {{P}} HTTP/1.1\r\nHost: a.test\r\n{}\r\n",
        (0..5)
            .map(|i| format!("X-Big{i}: {}\r\n", "b".repeat(7000)))
            .collect::<String>()
    );
    vec![
        // Content-Length and Transfer-Encoding together: the classic CL.TE / TE.CL desync.
        case(
            "cl-and-te",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nX: y\r\n\r\n",
            400,
        ),
        case(
            "te-and-cl",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",
            400,
        ),
        // Duplicate or conflicting Content-Length.
        case(
            "cl-duplicate-same",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        case(
            "cl-conflict",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        case(
            "cl-list",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3, 3\r\n\r\nabc",
            400,
        ),
        case("cl-plus", b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length: +3\r\n\r\nabc", 400),
        case("cl-negative", b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length: -1\r\n\r\n", 400),
        case("cl-hex", b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0x3\r\n\r\nabc", 400),
        case("cl-inner-space", b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1 2\r\n\r\nabc", 400),
        case("cl-empty", b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length:\r\n\r\n", 400),
        case(
            "cl-huge",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            400,
        ),
        // Invalid or obfuscated Transfer-Encoding.
        case(
            "te-chunked-identity",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-identity-chunked",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-gzip-chunked",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-xchunked",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-chunked-x",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-identity",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        case(
            "te-two-fields",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-double-space",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding:  chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-tab",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-trailing-space",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked \r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-vertical-tab",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-space-before-colon",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-underscore",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer_Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        case(
            "cl-underscore",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent_Length: 3\r\n\r\nabc",
            400,
        ),
        // The rest of the lookalike family: the name is a framing header once `-` and `_` are
        // dropped and case ignored, but is not exactly that header (issue 12).
        case(
            "te-triple-dash",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer---Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        case(
            "te-triple-underscore",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer___Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        case(
            "te-mixed-delimiters",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-_Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        case(
            "te-no-delimiter",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransferEncoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        case(
            "te-leading-dash",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\n-Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        case(
            "te-space-in-name",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        case(
            "cl-double-dash",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent--Length: 3\r\n\r\nabc",
            400,
        ),
        case(
            "cl-trailing-underscore",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length_: 3\r\n\r\nabc",
            400,
        ),
        case(
            "cl-no-delimiter",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\ncontentlength: 3\r\n\r\nabc",
            400,
        ),
        case("te-empty", b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding:\r\n\r\n", 400),
        case(
            "te-http10",
            b"POST {P} HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "te-on-get",
            b"GET {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        // Header continuation lines (obs-fold), RFC 9112 section 5.2.
        case("obs-fold", b"GET {P} HTTP/1.1\r\nHost: a.test\r\nX-A: 1\r\n 2\r\n\r\n", 400),
        case(
            "obs-fold-te",
            b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: identity\r\n\tchunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case("leading-space-header", b"GET {P} HTTP/1.1\r\n Host: a.test\r\n\r\n", 400),
        // Invalid characters in names and values.
        case("nul-in-value", b"GET {P} HTTP/1.1\r\nHost: a.test\r\nX-A: a\x00b\r\n\r\n", 400),
        case("ctl-in-value", b"GET {P} HTTP/1.1\r\nHost: a.test\r\nX-A: a\x01b\r\n\r\n", 400),
        case("del-in-value", b"GET {P} HTTP/1.1\r\nHost: a.test\r\nX-A: a\x7fb\r\n\r\n", 400),
        case("space-in-name", b"GET {P} HTTP/1.1\r\nHost: a.test\r\nX A: 1\r\n\r\n", 400),
        case("paren-in-name", b"GET {P} HTTP/1.1\r\nHost: a.test\r\nX(A): 1\r\n\r\n", 400),
        case("empty-name", b"GET {P} HTTP/1.1\r\nHost: a.test\r\n: x\r\n\r\n", 400),
        // Bare CR or LF.
        case("bare-cr-in-value", b"GET {P} HTTP/1.1\r\nHost: a.test\r\nX-A: a\rb\r\n\r\n", 400),
        case("bare-lf-endings", b"GET {P} HTTP/1.1\nHost: a.test\n\n", 400),
        case("bare-lf-one-header", b"GET {P} HTTP/1.1\r\nHost: a.test\nX-A: 1\r\n\r\n", 400),
        case("bare-lf-end-of-head", b"GET {P} HTTP/1.1\r\nHost: a.test\r\n\n", 400),
        case("cr-cr-lf", b"GET {P} HTTP/1.1\r\nHost: a.test\r\r\n\r\n", 400),
        // Request line.
        case("double-space-request-line", b"GET  {P} HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("tab-request-line", b"GET\t{P} HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("fragment-in-target", b"GET {P}#frag HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("non-ascii-target", b"GET {P}/caf\xc3\xa9 HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        // Bytes outside the request-target grammar (RFC 3986, RFC 9112 section 3.2), which
        // Pingora would otherwise percent-encode and forward (issue 12).
        case("bare-cr-in-target", b"GET {P}a\rb HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("nul-in-target", b"GET {P}a\x00b HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("ctl-in-target", b"GET {P}a\x01b HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("tab-in-target", b"GET {P}a\tb HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("del-in-target", b"GET {P}a\x7fb HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("escape-in-target", b"GET {P}a\x1b[0mb HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("space-in-target", b"GET {P}a b HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case(
            "space-in-query",
            b"GET {P}?q=a HTTP/1.1 b HTTP/1.1\r\nHost: a.test\r\n\r\n",
            400,
        ),
        case("quote-in-target", b"GET {P}a\"b HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("angle-in-target", b"GET {P}<script> HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("latin1-in-target", b"GET {P}caf\xe9 HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("cr-in-query", b"GET {P}?a=1\r\x00 HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("no-version", b"GET {P}\r\nHost: a.test\r\n\r\n", 400),
        case("version-1-7", b"GET {P} HTTP/1.7\r\nHost: a.test\r\n\r\n", 400),
        case("lowercase-version", b"GET {P} http/1.1\r\nHost: a.test\r\n\r\n", 400),
        // Host and absolute-form authority confusion.
        case("no-host-http11", b"GET {P} HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
        case("two-hosts", b"GET {P} HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", 400),
        case("host-userinfo", b"GET {P} HTTP/1.1\r\nHost: evil@a.test\r\n\r\n", 400),
        case("host-with-path", b"GET {P} HTTP/1.1\r\nHost: a.test/x\r\n\r\n", 400),
        case("host-with-space", b"GET {P} HTTP/1.1\r\nHost: a.test b.test\r\n\r\n", 400),
        case(
            "absolute-host-mismatch",
            b"GET http://other.test{P} HTTP/1.1\r\nHost: a.test\r\n\r\n",
            400,
        ),
        case("absolute-no-host", b"GET http://a.test{P} HTTP/1.1\r\n\r\n", 400),
        case(
            "absolute-userinfo",
            b"GET http://u@a.test{P} HTTP/1.1\r\nHost: a.test\r\n\r\n",
            400,
        ),
        case("absolute-ftp", b"GET ftp://a.test{P} HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("authority-form-get", b"GET a.test:80 HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("asterisk-form-get", b"GET * HTTP/1.1\r\nHost: a.test\r\n\r\n", 400),
        case("connect", b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", 405),
        // Oversized request line and header section.
        case("long-uri", long_uri.as_bytes(), 414),
        case("many-headers", many_headers.as_bytes(), 431),
        case("big-headers", big_headers.as_bytes(), 431),
    ]
}

/// Well-formed requests from the same families: they must reach the origin unchanged.
fn accepted() -> Vec<(Case, &'static [u8])> {
    vec![
        (
            case(
                "valid-chunked-post",
                b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
                200,
            ),
            b"hello world",
        ),
        (
            case(
                "valid-chunked-uppercase",
                b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                200,
            ),
            b"abc",
        ),
        (
            case(
                "valid-content-length-post",
                b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                200,
            ),
            b"hello",
        ),
        (
            case(
                "valid-content-length-no-space",
                b"POST {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length:5\r\nConnection: close\r\n\r\nhello",
                200,
            ),
            b"hello",
        ),
        (
            case(
                "valid-zero-length",
                b"GET {P} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                200,
            ),
            b"",
        ),
        (
            case(
                "valid-tab-ows",
                b"GET {P} HTTP/1.1\r\nHost: a.test\r\nX-A:\tvalue\t\r\nConnection: close\r\n\r\n",
                200,
            ),
            b"",
        ),
        (
            case(
                "valid-obs-text",
                b"GET {P} HTTP/1.1\r\nHost: a.test\r\nX-Name: caf\xc3\xa9\r\nConnection: close\r\n\r\n",
                200,
            ),
            b"",
        ),
        (
            case(
                "valid-http10-no-host",
                b"GET {P} HTTP/1.0\r\n\r\n",
                200,
            ),
            b"",
        ),
        (
            case(
                "valid-host-with-port",
                b"GET {P} HTTP/1.1\r\nHost: a.test:8080\r\nConnection: close\r\n\r\n",
                200,
            ),
            b"",
        ),
        (
            case(
                "valid-encoded-target",
                b"GET {P}/a%20b?q=1%26x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
                200,
            ),
            b"",
        ),
        (
            case(
                "valid-query-with-slash-and-question-mark",
                b"GET {P}/a?b=c/d?e HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
                200,
            ),
            b"",
        ),
        (
            case(
                "valid-sub-delims-and-pchars",
                b"GET {P}/a;p=1,2/b:c@d/!$&'()*+=~-._ HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
                200,
            ),
            b"",
        ),
        (
            case(
                "valid-encoded-controls-and-utf8",
                b"GET {P}/%00%0D%0A%7F/caf%C3%A9?q=%20%22 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
                200,
            ),
            b"",
        ),
        (
            case(
                "valid-absolute-form",
                b"GET http://a.test{P}?x=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
                200,
            ),
            b"",
        ),
        (
            case(
                "valid-token-header-names",
                b"GET {P} HTTP/1.1\r\nHost: a.test\r\nX-9!#$%&'*+.^_`|~: v\r\nX_Under_Score: v\r\n0-Digits-1: v\r\nConnection: close\r\n\r\n",
                200,
            ),
            b"",
        ),
        (
            case(
                "valid-names-near-framing-headers",
                b"POST {P} HTTP/1.1\r\nHost: a.test\r\nX-Content-Length: 9\r\nContent-Lengths: 9\r\nTransfer-Encoding-X: gzip\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                200,
            ),
            b"hello",
        ),
        (
            case(
                "valid-framing-header-case",
                b"POST {P} HTTP/1.1\r\nHost: a.test\r\ntRANSFER-eNCODING: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                200,
            ),
            b"ok",
        ),
        (
            case(
                "valid-chunk-extensions-and-trailer",
                b"POST {P} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;a=b;c=\"d\"\r\nabc\r\n0;last\r\nX-Trailer: t\r\n\r\n",
                200,
            ),
            b"abc",
        ),
        (
            case(
                "valid-many-headers",
                b"GET {P} HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\nAccept-Language: en\r\nCookie: a=1; b=2\r\nUser-Agent: x/1\r\nConnection: close\r\n\r\n",
                200,
            ),
            b"",
        ),
    ]
}

fn start() -> (Origin, Proxy) {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!("{}policies: [p.yaml]\n", single_pool(&origin)),
        &[("p.yaml", "rules: []\n")],
    );
    (origin, p)
}

#[test]
fn ambiguous_and_malformed_requests_are_refused_and_not_forwarded() {
    let (origin, p) = start();
    let mut problems = Vec::new();
    for c in refused() {
        let (path, bytes) = with_path(&c);
        let reply = exchange(p.addr, &bytes, WAIT);
        let forwarded = origin
            .seen()
            .iter()
            .any(|s| s.target.contains(&path) || s.target.contains("smuggled"));
        let got = reply.status();
        if got != c.want || forwarded {
            problems.push(format!(
                "{:<28} want {} got {:<3} forwarded={forwarded}  {:?}",
                c.name,
                c.want,
                got,
                reply.text.lines().next().unwrap_or("")
            ));
        }
    }
    let seen: Vec<String> = origin
        .seen()
        .into_iter()
        .map(|s| s.target.chars().take(80).collect())
        .collect();
    assert!(
        problems.is_empty(),
        "{} of {} variants were not refused as expected:\n{}\norigin saw: {seen:?}",
        problems.len(),
        refused().len(),
        problems.join("\n")
    );
    assert!(seen.is_empty(), "origin saw {seen:?}");
}

#[test]
fn well_formed_requests_of_the_same_families_pass() {
    let (origin, p) = start();
    let mut problems = Vec::new();
    for (c, body) in accepted() {
        let (path, bytes) = with_path(&c);
        let reply = exchange(p.addr, &bytes, WAIT);
        let seen: Vec<_> = origin
            .seen()
            .into_iter()
            .filter(|s| s.target.starts_with(&path))
            .collect();
        let ok = reply.status() == c.want && seen.len() == 1 && seen[0].body == body;
        if !ok {
            problems.push(format!(
                "{:<28} got {} seen {:?}  {:?}",
                c.name,
                reply.status(),
                seen.iter()
                    .map(|s| (&s.target, String::from_utf8_lossy(&s.body)))
                    .collect::<Vec<_>>(),
                reply.text.lines().next().unwrap_or("")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "well-formed requests refused or altered:\n{}",
        problems.join("\n")
    );
}

#[test]
fn targets_pingora_would_percent_encode_are_refused_not_rewritten() {
    // Pingora escapes spaces, controls, `<`, `>` and `"` in a target httparse refuses, and
    // would forward the escaped form. RFC 9112 section 3.2 says not to autocorrect an invalid
    // request line (it may be crafted to get past a filter), so Palisade, which sees the bytes
    // as received, refuses it instead (issue 12; this test asserted the rewrite before).
    let (origin, p) = start();
    for raw in [
        &b"GET /enc/a b HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"[..],
        &b"GET /enc/a\x01b HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"[..],
    ] {
        let reply = exchange(p.addr, raw, WAIT);
        assert_eq!(reply.status(), 400, "{reply:?}");
        assert_eq!(reply.header("connection").as_deref(), Some("close"), "{reply:?}");
    }
    assert!(origin.seen().is_empty(), "origin saw {:?}", origin.seen());
    let n = p
        .metric("palisade_request_refusals_total{reason=\"bad_target\"}")
        .unwrap_or(0.0);
    assert_eq!(n, 2.0, "{}", p.metrics_text());
}

#[test]
fn a_rewritten_target_does_not_taint_the_next_request_on_the_connection() {
    // The check follows each request line as received: a clean request after a clean one on
    // the same connection passes, so the per-connection record is reset between requests.
    let (origin, p) = start();
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    for i in 0..3 {
        s.write_all(format!("GET /kept/{i}?a=%20 HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes())
            .expect("write");
        let reply = Reply {
            text: common::raw::read_response(&mut s),
        };
        assert_eq!(reply.status(), 200, "request {i}: {reply:?}");
    }
    assert_eq!(origin.seen_path("/kept/").len(), 3);
    // A bad line after good ones is still caught.
    s.write_all(b"GET /kept/a\x00b HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .expect("write");
    let reply = Reply {
        text: common::raw::read_response(&mut s),
    };
    assert_eq!(reply.status(), 400, "{reply:?}");
    assert_eq!(origin.seen_path("/kept/").len(), 3, "{:?}", origin.seen());
}

#[test]
fn options_asterisk_form_passes_the_framing_check() {
    // The asterisk form is well framed; routes match paths, so no route takes `*` and the
    // answer is routing's 404 (as before issue 12), not a framing refusal.
    let (origin, p) = start();
    let reply = exchange(
        p.addr,
        b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        WAIT,
    );
    assert_eq!(reply.status(), 404, "{reply:?}");
    assert!(reply.body().contains("No route"), "{reply:?}");
    assert!(origin.seen().is_empty(), "{:?}", origin.seen());
    let refused = p.metric("palisade_request_refusals_total{reason=\"bad_target\"}");
    assert_eq!(refused.unwrap_or(0.0), 0.0, "{}", p.metrics_text());
}

/// Send `requests` one after another on one connection, reading each answer but the last;
/// after the last request, half-close (`shutdown(SHUT_WR)`) and read until the proxy closes.
fn half_close_after(addr: std::net::SocketAddr, requests: &[&[u8]]) -> Vec<String> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut answers = Vec::new();
    let (last, before) = requests.split_last().expect("a request");
    for r in before {
        s.write_all(r).expect("write");
        answers.push(common::raw::read_response(&mut s));
    }
    s.write_all(last).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut rest = Vec::new();
    let started = std::time::Instant::now();
    // Until EOF: the proxy must answer, then close. A timeout here is a failure too.
    let got = std::io::Read::read_to_end(&mut s, &mut rest);
    assert!(
        got.is_ok(),
        "no EOF within {WAIT:?} ({:?} elapsed): {got:?}, read {:?}",
        started.elapsed(),
        String::from_utf8_lossy(&rest)
    );
    answers.push(String::from_utf8_lossy(&rest).into_owned());
    answers
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_response() {
    let (origin, p) = start();
    // (name, requests on one connection, the body the origin must receive with the last)
    type HalfClose = (&'static str, Vec<&'static [u8]>, &'static [u8]);
    let cases: [HalfClose; 4] = [
        ("get", vec![b"GET /half/get HTTP/1.1\r\nHost: a.test\r\n\r\n"], b""),
        ("http10", vec![b"GET /half/http10 HTTP/1.0\r\n\r\n"], b""),
        (
            "post",
            vec![b"POST /half/post HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello"],
            b"hello",
        ),
        (
            "second",
            vec![
                b"GET /half/first HTTP/1.1\r\nHost: a.test\r\n\r\n",
                b"POST /half/second HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc",
            ],
            b"abc",
        ),
    ];
    let mut problems = Vec::new();
    for (name, requests, body) in cases {
        let answers = half_close_after(p.addr, &requests);
        for (i, a) in answers.iter().enumerate() {
            let reply = Reply { text: a.clone() };
            let target = format!("/half/{}", if name == "second" && i == 0 { "first" } else { name });
            if reply.status() != 200 || !reply.body().contains(&format!("\"target\":\"{target}\"")) {
                problems.push(format!("{name} #{i}: {a:?}"));
            }
        }
        let seen = origin.seen_path(&format!("/half/{name}"));
        if seen.len() != 1 || seen[0].body != body {
            problems.push(format!("{name}: origin saw {seen:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn absolute_form_is_routed_and_forwarded_in_origin_form() {
    let (origin, p) = start();
    let reply = exchange(
        p.addr,
        b"GET http://a.test/abs?x=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        WAIT,
    );
    assert_eq!(reply.status(), 200, "{reply:?}");
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/abs?x=1", "the origin gets origin-form");
    assert_eq!(seen[0].headers.get("host").map(String::as_str), Some("a.test"));
}

#[test]
fn a_refused_request_closes_the_connection_so_nothing_smuggled_follows() {
    let (origin, p) = start();
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    // A CL.TE request followed, on the same connection, by what a desynced peer would read
    // as the next request.
    s.write_all(
        b"POST /first HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX\
GET /second HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .expect("write");
    let text = common::raw::read_response(&mut s);
    let reply = Reply { text };
    assert_eq!(reply.status(), 400, "{reply:?}");
    assert_eq!(reply.header("connection").as_deref(), Some("close"), "{reply:?}");
    // Whatever follows is never read as a request.
    std::thread::sleep(Duration::from_millis(200));
    assert!(origin.seen().is_empty(), "origin saw {:?}", origin.seen());
}

#[test]
fn refusals_are_counted_and_recorded() {
    let (_origin, p) = start();
    let reply = exchange(
        p.addr,
        // Pingora itself accepts (and collapses) two equal lengths; Palisade refuses them.
        b"POST /counted HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        WAIT,
    );
    assert_eq!(reply.status(), 400);
    let id = reply.header("x-request-id").expect("request id on the refusal");
    let ev = p.event_for(&id);
    assert_eq!(ev["event"]["reason"], "duplicate_content_length", "{ev}");
    assert_eq!(ev["http"]["response"]["status_code"], 400);
    let n = p
        .metric("palisade_request_refusals_total{reason=\"duplicate_content_length\"}")
        .unwrap_or(0.0);
    assert_eq!(n, 1.0, "{}", p.metrics_text());
}
