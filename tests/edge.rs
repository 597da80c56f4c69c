//! Edge features of a reverse proxy, against a real origin on loopback: routes chosen by header
//! and query, paths and Host rewritten, request headers changed, responses compressed (gzip,
//! brotli, zstd) and byte-identical once decompressed.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A page worth compressing: about 40 KiB of varied, repetitive HTML.
fn page() -> Vec<u8> {
    let mut out = String::from("<!doctype html><html><body><ul>\n");
    for i in 0..800 {
        out.push_str(&format!(
            "<li class=\"row r{}\">Viewer {i} joined the stream</li>\n",
            i % 7
        ));
    }
    out.push_str("</ul></body></html>\n");
    out.into_bytes()
}

/// An origin that records every request head as received and answers by path:
/// by the last segment of the path: `page` the page (text/html, strong ETag), `small` five bytes
/// of text, `image` bytes labelled image/png, `coded` a body the origin says is already gzip;
/// anything else `ok`.
struct HeadOrigin {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl HeadOrigin {
    fn spawn() -> HeadOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || serve(conn, &seen));
            }
        });
        HeadOrigin { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads").clone()
    }

    /// The last request head whose request line contains `needle`.
    fn head_with(&self, needle: &str) -> String {
        self.heads()
            .into_iter()
            .rev()
            .find(|h| h.lines().next().is_some_and(|l| l.contains(needle)))
            .unwrap_or_else(|| panic!("the origin saw no request with {needle:?}: {:?}", self.heads()))
    }
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<String>>) {
    let mut w = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len = content_length(&head).unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        seen.lock().expect("seen").push(head);
        let last = path.split('?').next().unwrap_or("").rsplit('/').next().unwrap_or("");
        let (headers, body): (&str, Vec<u8>) = match last {
            "page" => ("content-type: text/html; charset=utf-8\r\netag: \"v1\"\r\n", page()),
            "small" => ("content-type: text/html\r\n", b"small".to_vec()),
            "image" => ("content-type: image/png\r\n", vec![7; 5000]),
            "coded" => ("content-type: text/html\r\ncontent-encoding: gzip\r\n", vec![1; 3000]),
            _ => ("content-type: text/plain\r\n", b"ok".to_vec()),
        };
        let head = format!("HTTP/1.1 200 OK\r\n{headers}content-length: {}\r\n\r\n", body.len());
        if w.write_all(head.as_bytes()).and_then(|()| w.write_all(&body)).is_err() {
            return;
        }
    }
}

fn get(p: &Proxy, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut req = client().get(p.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("request through Palisade")
}

fn header(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    r.headers().get(name).map(|v| v.to_str().expect("ascii").to_string())
}

fn header_all(r: &reqwest::blocking::Response, name: &str) -> Vec<String> {
    r.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect()
}

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gunzip");
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("unbrotli");
        }
        "zstd" => out = zstd::stream::decode_all(body).expect("unzstd"),
        other => panic!("unexpected coding {other}"),
    }
    out
}

const COMPRESSING: &str = "
upstreams:
  app: {backends: [\"{ORIGIN}\"]}
routes:
  - name: site
    upstream: app
    compression: {}
  - name: plain
    path_prefix: /plain/
    upstream: app
";

fn compressing(origin: &HeadOrigin) -> Proxy {
    Proxy::start(&COMPRESSING.replace("{ORIGIN}", &origin.addr.to_string()), &[])
}

#[test]
fn a_page_comes_back_compressed_in_the_coding_the_client_prefers_and_decompresses_to_the_original() {
    let origin = HeadOrigin::spawn();
    let p = compressing(&origin);
    let original = page();
    for (accept, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, deflate, br, zstd", "br"),
        ("br;q=0, gzip;q=0.5, zstd;q=0.4", "gzip"),
    ] {
        let r = get(&p, "/page", &[("accept-encoding", accept)]);
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "content-encoding").as_deref(),
            Some(coding),
            "for {accept:?}"
        );
        assert!(
            header(&r, "content-length").is_none(),
            "the compressed length is not the origin's"
        );
        assert!(header_all(&r, "vary")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("accept-encoding")));
        assert_eq!(
            header(&r, "etag").as_deref(),
            Some("W/\"v1\""),
            "a strong ETag is weakened"
        );
        let body = r.bytes().expect("body");
        assert!(
            body.len() * 4 < original.len(),
            "{coding}: {} of {} bytes",
            body.len(),
            original.len()
        );
        assert!(
            decode(coding, &body) == original,
            "{coding}: not the origin's page once decompressed"
        );
    }
    // The origin is always asked as the client asked: compression happens at the edge.
    assert!(origin
        .head_with("/page")
        .to_ascii_lowercase()
        .contains("accept-encoding: br;q=0"));
}

#[test]
fn a_client_that_accepts_no_offered_coding_gets_the_page_as_is_but_told_it_varies() {
    let origin = HeadOrigin::spawn();
    let p = compressing(&origin);
    for accept in [
        None,
        Some("identity"),
        Some("gzip;q=0, br;q=0, zstd;q=0"),
        Some("deflate"),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let r = get(&p, "/page", &headers);
        assert!(header(&r, "content-encoding").is_none(), "{accept:?}");
        assert!(
            header_all(&r, "vary")
                .iter()
                .any(|v| v.eq_ignore_ascii_case("accept-encoding")),
            "{accept:?}"
        );
        assert_eq!(header(&r, "etag").as_deref(), Some("\"v1\""));
        assert!(r.bytes().expect("body") == page(), "{accept:?}");
    }
}

#[test]
fn small_binary_already_coded_and_uncompressed_routes_pass_untouched() {
    let origin = HeadOrigin::spawn();
    let p = compressing(&origin);
    let gz = [("accept-encoding", "gzip, br")];
    for path in ["/small", "/image", "/coded", "/plain/page"] {
        let r = get(&p, path, &gz);
        let vary = header_all(&r, "vary");
        let coding = header(&r, "content-encoding");
        let len = header(&r, "content-length");
        let body = r.bytes().expect("body");
        assert_eq!(len, Some(body.len().to_string()), "{path}: the origin's length is kept");
        match path {
            "/coded" => assert_eq!(coding.as_deref(), Some("gzip"), "the origin's own coding is kept"),
            _ => assert!(coding.is_none(), "{path} was compressed"),
        }
        assert!(vary.is_empty(), "{path}: {vary:?}");
        if path == "/plain/page" {
            assert!(body == page());
        }
    }
}

#[test]
fn routes_are_chosen_by_header_and_query_and_rewrite_what_the_origin_receives() {
    let origin = HeadOrigin::spawn();
    let p = Proxy::start(
        &format!(
            "
upstreams:
  app: {{backends: [\"{o}\"]}}
routes:
  - name: default
    upstream: app
  - name: canary
    upstream: app
    match:
      headers: {{x-canary: {{equals: \"1\"}}}}
    rewrite: {{path_prefix: /canary/}}
  - name: beta
    upstream: app
    match:
      query: {{beta: {{present: true}}}}
    rewrite: {{path_prefix: /beta/}}
  - name: legacy
    path_prefix: /old/
    upstream: app
    rewrite: {{path_prefix: /v2/, host: internal.test}}
  - name: users
    path_prefix: /u/
    upstream: app
    rewrite:
      path_regex: '^/u/(\\d+)/(?P<tab>[a-z]+)$'
      path_to: '/users/$1?tab=${{tab}}'
    request_headers:
      remove: [x-debug]
      set: {{x-edge: palisade}}
      add: {{x-tag: edge}}
",
            o = origin.addr
        ),
        &[],
    );
    assert_eq!(get(&p, "/a", &[]).status(), 200);
    assert!(origin.head_with("/a").starts_with("GET /a HTTP/1.1"));

    get(&p, "/b?x=1", &[("x-canary", "1")]);
    assert!(origin.head_with("/b").starts_with("GET /canary/b?x=1 HTTP/1.1"));
    get(&p, "/c", &[("x-canary", "2")]);
    assert!(
        origin.head_with("/c").starts_with("GET /c HTTP/1.1"),
        "a value that differs does not match"
    );

    get(&p, "/d?beta", &[]);
    assert!(origin.head_with("/d").starts_with("GET /beta/d?beta HTTP/1.1"));

    // A prefix rewrite and a Host toward the origin; the query goes along.
    get(&p, "/old/page?x=%20y", &[]);
    let head = origin.head_with("/v2/page");
    assert!(head.starts_with("GET /v2/page?x=%20y HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("\r\nhost: internal.test\r\n"),
        "{head}"
    );

    // The rewrite reads the path routing judged: `/u/./42//posts` is `/u/42/posts`.
    get(
        &p,
        "/u/./42//posts?lang=en",
        &[("x-debug", "1"), ("x-tag", "client"), ("x-edge", "spoofed")],
    );
    let head = origin.head_with("/users/42");
    assert!(head.starts_with("GET /users/42?tab=posts&lang=en HTTP/1.1"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(!lower.contains("x-debug"), "removed: {head}");
    assert!(
        lower.contains("\r\nx-edge: palisade\r\n") && !lower.contains("spoofed"),
        "set: {head}"
    );
    assert!(
        lower.contains("x-tag: client") && lower.contains("x-tag: edge"),
        "added: {head}"
    );

    // A path the regex does not match goes on as sent.
    get(&p, "/u/someone", &[]);
    assert!(origin.head_with("/u/someone").starts_with("GET /u/someone HTTP/1.1"));
}

#[test]
fn bad_route_settings_are_named_by_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("palisade.yaml");
    std::fs::write(
        &config,
        "\
listeners:
  - address: 127.0.0.1:8080
upstreams:
  app: {backends: [\"127.0.0.1:9000\"]}
routes:
  - name: app
    upstream: app
    match:
      headers: {x-a: {equals: a, prefix: b}}
    rewrite:
      path_regex: '^/u/(\\d+)$'
      path_to: /users/$2
    request_headers:
      set: {Host: other}
    compression: {level: 12, codings: []}
telemetry: {sink: off}
",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .expect("run palisade check");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for (line, field, says) in [
        (9, "routes[0].match.headers.x-a", "exactly one of"),
        (12, "routes[0].rewrite.path_to", "no capture group \"2\""),
        (14, "routes[0].request_headers.set.Host", "cannot be changed by a route"),
        (15, "routes[0].compression.level", "from 1"),
        (15, "routes[0].compression.codings", "at least one"),
    ] {
        let l = err
            .lines()
            .find(|l| l.contains(&format!("field `{field}`")))
            .unwrap_or_else(|| panic!("no error for {field} in:\n{err}"));
        assert!(
            l.contains(&format!("palisade.yaml:{line}:")),
            "{field} at the wrong line: {l}"
        );
        assert!(l.contains(says), "{l:?} should say {says:?}");
    }
}
