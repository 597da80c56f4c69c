//! Traffic handling end to end: routing, forwarding headers, Host handling, origin hiding,
//! load balancing, health checks and upstream failures, malformed requests.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::blocking::Response;

fn addr(o: &Origin) -> std::net::SocketAddr {
    o.addr.expect("origin addr")
}

fn get(p: &Proxy, host: &str, path: &str) -> Response {
    client().get(p.url(path)).header("host", host).send().expect("request")
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().expect("ascii header"))
}

fn is_request_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The names of the origins that received a request for exactly `path`.
fn receivers<'a>(origins: &[(&'a str, &Origin)], path: &str) -> Vec<&'a str> {
    origins
        .iter()
        .filter(|(_, o)| o.seen().iter().any(|s| s.target == path))
        .map(|(n, _)| *n)
        .collect()
}

/// Send raw bytes on a fresh connection and return whatever comes back before the proxy
/// closes the connection (or a short read timeout passes).
fn raw(p: &Proxy, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    s.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // A complete Content-Length answer is all we need.
                let text = String::from_utf8_lossy(&out);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = content_length(head);
                    if len.is_some_and(|len| body.len() >= len) {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn routes_by_exact_host_wildcard_and_longest_prefix() {
    let exact = Origin::spawn("127.0.0.1:0").expect("origin");
    let wild = Origin::spawn("127.0.0.1:0").expect("origin");
    let api = Origin::spawn("127.0.0.1:0").expect("origin");
    let api_v2 = Origin::spawn("127.0.0.1:0").expect("origin");
    // The wildcard and the shorter prefix come first: config order must not decide.
    let p = Proxy::start(
        &format!(
            "\
upstreams:
  exact: {{backends: [\"{}\"]}}
  wild: {{backends: [\"{}\"]}}
  api: {{backends: [\"{}\"]}}
  api_v2: {{backends: [\"{}\"]}}
routes:
  - name: wild
    hosts: [\"*.example.test\"]
    upstream: wild
  - name: exact
    hosts: [app.example.test]
    upstream: exact
  - name: api
    hosts: [app.example.test]
    path_prefix: /api
    upstream: api
  - name: api-v2
    hosts: [app.example.test]
    path_prefix: /api/v2
    upstream: api_v2
",
            addr(&exact),
            addr(&wild),
            addr(&api),
            addr(&api_v2)
        ),
        &[],
    );
    let all = [("exact", &exact), ("wild", &wild), ("api", &api), ("api_v2", &api_v2)];
    for (host, path, want) in [
        ("app.example.test", "/page-1", "exact"),
        ("App.Example.TEST:8080", "/page-2", "exact"),
        ("sub.example.test", "/page-3", "wild"),
        ("deep.sub.example.test", "/page-4", "wild"),
        ("app.example.test", "/api/users", "api"),
        ("app.example.test", "/api/v2/users", "api_v2"),
        ("sub.example.test", "/api/v2/other", "wild"),
    ] {
        let r = get(&p, host, path);
        assert_eq!(r.status(), 200, "{host}{path}");
        assert_eq!(receivers(&all, path), vec![want], "{host}{path} went to the wrong pool");
    }
    // A wildcard covers subdomains only, not the apex; unknown hosts have no route.
    for (host, path) in [
        ("example.test", "/apex"),
        ("other.test", "/other"),
        ("badexample.test", "/bad"),
    ] {
        let r = get(&p, host, path);
        assert_eq!(r.status(), 404, "{host}{path}");
        assert!(receivers(&all, path).is_empty(), "{host}{path} must not be forwarded");
    }
}

#[test]
fn no_route_is_a_short_plain_404_with_a_request_id() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!(
            "upstreams:\n  app:\n    backends: [\"{}\"]\nroutes:\n  - name: app\n    hosts: [app.example.test]\n    upstream: app\n",
            addr(&origin)
        ),
        &[],
    );
    let r = get(&p, "nobody.example.test", "/anything");
    assert_eq!(r.status(), 404);
    let id = header(&r, "x-request-id").expect("x-request-id on the 404").to_string();
    assert!(is_request_id(&id), "request id {id:?}");
    assert!(header(&r, "content-type").is_some_and(|c| c.starts_with("text/plain")));
    let body = r.text().expect("body");
    assert!(body.len() < 200, "404 body should be short: {body:?}");
    assert!(body.starts_with("404 Not Found"), "{body:?}");
    assert!(body.contains(&id), "the body names the reference id: {body:?}");
    assert!(
        origin.seen().is_empty(),
        "an unrouted request must not reach any origin"
    );
}

/// Send `request` with what a client may claim about itself: `X-Forwarded-For`,
/// `X-Forwarded-Proto` and a request id.
fn claiming(request: reqwest::blocking::RequestBuilder, [xff, proto, id]: [&str; 3]) -> Response {
    request
        .header("x-forwarded-for", xff)
        .header("x-forwarded-proto", proto)
        .header("x-request-id", id)
        .send()
        .expect("request")
}

#[test]
fn forwarding_headers_from_an_untrusted_peer() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(&single_pool(&origin), &[]);
    let r = claiming(
        client().get(p.url("/fwd")).header("host", "app.example.test"),
        ["6.6.6.6", "https", "client-chosen-id"],
    );
    assert_eq!(r.status(), 200);
    let returned = header(&r, "x-request-id").expect("x-request-id returned").to_string();
    let seen = origin.seen_path("/fwd");
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    // A spoofed chain from an untrusted client is replaced by the real peer.
    assert_eq!(h.get("x-forwarded-for").map(String::as_str), Some("127.0.0.1"));
    assert_eq!(h.get("x-forwarded-proto").map(String::as_str), Some("http"));
    let sent = h.get("x-request-id").expect("x-request-id sent upstream");
    assert!(is_request_id(sent), "generated id {sent:?}");
    assert_eq!(sent, &returned, "the client and the origin see the same id");
    assert_ne!(sent, "client-chosen-id", "an untrusted client's id is not kept");
    assert_eq!(
        h.get("host").map(String::as_str),
        Some("app.example.test"),
        "Host is preserved by default"
    );

    // Every request gets its own id.
    let again = client().get(p.url("/fwd")).send().expect("request");
    assert_ne!(header(&again, "x-request-id"), Some(returned.as_str()));
}

/// Operators whose origins need neither may switch the forwarding headers and the request id
/// off (each costs every request a header insert; docs/performance.md). What an untrusted
/// client sent in them still never reaches the origin, and Palisade's own answers keep their
/// reference.
#[test]
fn forwarding_headers_and_the_request_id_can_be_switched_off() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let cfg = format!(
        "forwarding: {{x_forwarded_for: false, x_forwarded_proto: false}}\nrequest_id: {{to_origin: false, to_client: false}}\n{}",
        single_pool(&origin)
    );
    let p = Proxy::start(&cfg, &[]);
    let r = claiming(client().get(p.url("/off")), ["6.6.6.6", "https", "client-chosen-id"]);
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-request-id"), None, "no id to the client");
    let seen = origin.seen_path("/off");
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    for name in ["x-forwarded-for", "x-forwarded-proto", "x-request-id"] {
        assert_eq!(h.get(name), None, "{name} reached the origin: {h:?}");
    }
    // A refusal of Palisade's own still carries its reference, in the header and the body.
    let refused = common::raw::exchange(p.addr, b"GET /no-host HTTP/1.1\r\n\r\n", Duration::from_secs(5));
    assert_eq!(refused.status(), 400, "{refused:?}");
    let id = refused.header("x-request-id").expect("reference header");
    assert!(is_request_id(&id), "{id:?}");
    assert!(refused.text.contains(&format!("Reference: {id}")), "{refused:?}");
}

#[test]
fn forwarding_headers_from_a_trusted_proxy() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(&format!("trusted_proxies: [127.0.0.1]\n{}", single_pool(&origin)), &[]);
    let r = claiming(client().get(p.url("/chain")), ["198.18.0.7", "https", "edge-abc-123"]);
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-request-id"), Some("edge-abc-123"));
    let seen = origin.seen_path("/chain");
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    assert_eq!(
        h.get("x-forwarded-for").map(String::as_str),
        Some("198.18.0.7, 127.0.0.1"),
        "the chain is extended"
    );
    assert_eq!(
        h.get("x-request-id").map(String::as_str),
        Some("edge-abc-123"),
        "a trusted proxy's id is kept"
    );
    assert_eq!(
        h.get("x-forwarded-proto").map(String::as_str),
        Some("https"),
        "a trusted proxy knows the scheme"
    );

    // Even from a trusted proxy, an id that is not plain text is replaced.
    let r = client()
        .get(p.url("/weird"))
        .header("x-request-id", "a b<script>")
        .send()
        .expect("request");
    let id = header(&r, "x-request-id").expect("id").to_string();
    assert!(is_request_id(&id), "{id:?}");
    assert_eq!(origin.seen_path("/weird")[0].headers.get("x-request-id"), Some(&id));
}

#[test]
fn host_is_rewritten_to_the_pool_host_when_not_preserved() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let o = addr(&origin);
    let p = Proxy::start(
        &format!(
            "\
upstreams:
  public: {{backends: [\"{o}\"]}}
  internal: {{backends: [\"{o}\"], host: internal.svc.test}}
routes:
  - name: public
    upstream: public
  - name: internal
    path_prefix: /internal
    upstream: internal
    preserve_host: false
"
        ),
        &[],
    );
    assert_eq!(get(&p, "www.example.test", "/public").status(), 200);
    assert_eq!(get(&p, "www.example.test", "/internal/x").status(), 200);
    let host_of = |path: &str| origin.seen_path(path)[0].headers.get("host").cloned();
    assert_eq!(host_of("/public").as_deref(), Some("www.example.test"));
    assert_eq!(host_of("/internal/x").as_deref(), Some("internal.svc.test"));
}

#[test]
fn origin_headers_are_hidden_and_security_headers_set() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!(
            "\
response_headers:
  remove: [Server, X-Powered-By]
  set:
    Strict-Transport-Security: \"max-age=63072000; includeSubDomains\"
    X-Content-Type-Options: nosniff
upstreams:
  app: {{backends: [\"{}\"]}}
routes:
  - name: app
    upstream: app
  - name: legacy
    path_prefix: /legacy
    upstream: app
    response_headers:
      remove: [x-powered-by]
      set:
        X-Frame-Options: DENY
",
            addr(&origin)
        ),
        &[],
    );
    // Direct to the origin, both revealing headers are there: the proxy is what removes them.
    let direct = client()
        .get(format!("http://{}/direct", addr(&origin)))
        .send()
        .expect("direct");
    assert_eq!(header(&direct, "server"), Some("demo-origin/1.0"));
    assert_eq!(header(&direct, "x-powered-by"), Some("demo"));

    let r = client().get(p.url("/page")).send().expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "server"), None, "origin Server header leaked");
    assert_eq!(header(&r, "x-powered-by"), None, "origin X-Powered-By leaked");
    assert_eq!(
        header(&r, "strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
    assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));

    // A route with its own rules uses them instead of the top-level ones.
    let r = client().get(p.url("/legacy/page")).send().expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-powered-by"), None);
    assert_eq!(header(&r, "x-frame-options"), Some("DENY"));
    assert_eq!(header(&r, "strict-transport-security"), None);
    assert_eq!(
        header(&r, "server"),
        Some("demo-origin/1.0"),
        "the override does not remove Server"
    );
}

#[test]
fn round_robin_spreads_requests_over_both_backends() {
    let a = Origin::spawn("127.0.0.1:0").expect("origin");
    let b = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!(
            "upstreams:\n  app:\n    backends: [\"{}\", \"{}\"]\nroutes:\n  - name: app\n    upstream: app\n",
            addr(&a),
            addr(&b)
        ),
        &[],
    );
    let c = client();
    for i in 0..10 {
        assert_eq!(c.get(p.url(&format!("/rr/{i}"))).send().expect("request").status(), 200);
    }
    assert_eq!(a.seen_path("/rr/").len() + b.seen_path("/rr/").len(), 10);
    assert_eq!(a.seen_path("/rr/").len(), 5, "round robin alternates");
    assert_eq!(b.seen_path("/rr/").len(), 5, "round robin alternates");
}

#[test]
fn consistent_hash_keeps_a_client_on_one_backend() {
    let a = Origin::spawn("127.0.0.1:0").expect("origin");
    let b = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!(
            "trusted_proxies: [127.0.0.1]\nupstreams:\n  app:\n    selection: consistent_hash\n    backends: [\"{}\", \"{}\"]\nroutes:\n  - name: app\n    upstream: app\n",
            addr(&a),
            addr(&b)
        ),
        &[],
    );
    let c = client();
    let mut used = [false, false];
    for client_n in 1..=16 {
        let ip = format!("198.18.0.{client_n}");
        for i in 0..4 {
            let path = format!("/ch/{client_n}/{i}");
            let r = c
                .get(p.url(&path))
                .header("x-forwarded-for", &ip)
                .send()
                .expect("request");
            assert_eq!(r.status(), 200);
        }
        let prefix = format!("/ch/{client_n}/");
        let (on_a, on_b) = (a.seen_path(&prefix).len(), b.seen_path(&prefix).len());
        assert!(
            (on_a, on_b) == (4, 0) || (on_a, on_b) == (0, 4),
            "client {ip} was spread over backends: {on_a} on a, {on_b} on b"
        );
        used[usize::from(on_b > 0)] = true;
    }
    assert_eq!(used, [true, true], "16 clients should not all hash to one backend");
}

/// Whether the next `n` requests all avoid `avoid` (and succeed).
fn none_reach(p: &Proxy, avoid: &Origin, n: usize, tag: &str) -> bool {
    let before = avoid.seen().len();
    for i in 0..n {
        let r = client().get(p.url(&format!("/hc/{tag}/{i}"))).send().expect("request");
        assert_eq!(r.status(), 200);
    }
    avoid.seen().len() == before
}

#[test]
fn http_health_check_takes_a_backend_out_and_back() {
    let good = Origin::spawn("127.0.0.1:0").expect("origin");
    let flaky = Origin::spawn("127.0.0.1:0").expect("origin");
    // Without rate limits: the polling below may pass the default policy's per-IP limit.
    let p = Proxy::start(
        &format!(
            "\
policies: [open.yaml]
upstreams:
  app:
    backends: [\"{}\", \"{}\"]
    health_check: {{kind: http, path: /healthz, interval: 100ms}}
routes:
  - name: app
    upstream: app
",
            addr(&good),
            addr(&flaky)
        ),
        &[("open.yaml", "rules: []\n")],
    );
    assert!(
        !none_reach(&p, &flaky, 4, "before"),
        "both backends serve while healthy"
    );

    flaky.set_healthy(false);
    eventually("the failing backend to leave rotation", || {
        none_reach(&p, &flaky, 4, "leaving").then_some(())
    });
    assert!(none_reach(&p, &flaky, 10, "out"), "an unhealthy backend got traffic");

    flaky.set_healthy(true);
    eventually("the backend to come back", || {
        (!none_reach(&p, &flaky, 4, "back")).then_some(())
    });
}

#[test]
fn a_pool_with_no_reachable_backend_answers_502_and_says_why() {
    let dead = free_addr();
    let p = Proxy::start(
        &format!("upstreams:\n  app:\n    backends: [\"{dead}\"]\nroutes:\n  - name: app\n    upstream: app\n"),
        &[],
    );
    let r = client().get(p.url("/down")).send().expect("request");
    assert_eq!(r.status(), 502);
    let id = header(&r, "x-request-id").expect("id").to_string();
    assert!(r.text().expect("body").contains(&id));
    let ev = p.event_for(&id);
    assert_eq!(ev["http"]["response"]["status_code"], 502);
    assert_eq!(ev["event"]["reason"], "upstream_error");
    assert_eq!(ev["event"]["action"], "error");
}

#[test]
fn a_pool_whose_backends_all_fail_health_checks_answers_503() {
    let dead = free_addr();
    let p = Proxy::start(
        &format!(
            "upstreams:\n  app:\n    backends: [\"{dead}\"]\n    health_check: {{kind: tcp, interval: 100ms}}\nroutes:\n  - name: app\n    upstream: app\n"
        ),
        &[],
    );
    let r = eventually("the dead backend to be marked down", || {
        let r = client().get(p.url("/down")).send().expect("request");
        (r.status() == 503).then_some(r)
    });
    let id = header(&r, "x-request-id").expect("id").to_string();
    let ev = p.event_for(&id);
    assert_eq!(ev["http"]["response"]["status_code"], 503);
    assert_eq!(ev["event"]["reason"], "no_healthy_backend");
}

#[test]
fn an_upstream_read_timeout_answers_504() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!(
            "upstreams:\n  app:\n    backends: [\"{}\"]\nroutes:\n  - name: app\n    upstream: app\n    timeouts: {{read: 200ms}}\n",
            addr(&origin)
        ),
        &[],
    );
    let started = Instant::now();
    let r = client().get(p.url("/slow/2000")).send().expect("request");
    let took = started.elapsed();
    assert_eq!(r.status(), 504);
    assert!(
        took < Duration::from_millis(1500),
        "the read timeout did not apply: took {took:?}"
    );
    let id = header(&r, "x-request-id").expect("id").to_string();
    assert_eq!(p.event_for(&id)["event"]["reason"], "upstream_timeout");
    // Fast answers on the same route are unaffected.
    assert_eq!(client().get(p.url("/slow/10")).send().expect("request").status(), 200);
}

#[test]
fn malformed_requests_get_400_and_are_not_forwarded() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(&single_pool(&origin), &[]);
    // The raw client itself works.
    let ok = raw(&p, b"GET /fine HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok:?}");
    for bad in [
        &b"GET /bad1 HTTP/1.1\r\nBad Header: x\r\n\r\n"[..],
        &b"GET /bad2 HTTP/1.1\r\nHost: a.test\r\nX-Nul: a\x00b\r\n\r\n"[..],
        &b"G(T /bad3 HTTP/1.1\r\nHost: a.test\r\n\r\n"[..],
        &b"GET /bad4 HTTP/1.7\r\nHost: a.test\r\n\r\n"[..],
        &b"GET /bad5 HTTP/1.1\r\nHost: a.test\r\n: empty-name\r\n\r\n"[..],
    ] {
        let answer = raw(&p, bad);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{:?} got {answer:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let targets: Vec<String> = origin.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(
        targets,
        vec!["/fine".to_string()],
        "a malformed request reached the origin"
    );
}

#[test]
fn security_headers_are_set_on_answers_palisade_writes_itself() {
    let dead = free_addr();
    let p = Proxy::start(
        &format!(
            "\
response_headers:
  set:
    Strict-Transport-Security: max-age=600
upstreams:
  dead: {{backends: [\"{dead}\"]}}
routes:
  - name: app
    hosts: [app.example.test]
    upstream: dead
"
        ),
        &[],
    );
    // 403 from the embedded policy, 502 from the dead pool, 404 for a host without a route.
    for (host, path, status) in [
        ("app.example.test", "/.git/config", 403),
        ("app.example.test", "/page", 502),
        ("other.example.test", "/page", 404),
    ] {
        let r = get(&p, host, path);
        assert_eq!(r.status(), status, "{host}{path}");
        assert_eq!(
            header(&r, "strict-transport-security"),
            Some("max-age=600"),
            "{status} answer without HSTS"
        );
    }
}
