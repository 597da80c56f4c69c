//! Broken origins: refusing, hanging, resetting before or during a response, answering garbage
//! or a 2 MiB header. Palisade answers 502 or 504, promptly, records why, keeps running, and
//! health checks take the bad backend out of rotation. Only idempotent requests are retried,
//! at most once.

mod common;
use common::bad_origin::{BadOrigin, Mode};
use common::*;

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn pool(name: &str, backends: &[SocketAddr], health: bool) -> String {
    let list: Vec<String> = backends.iter().map(|b| format!("\"{b}\"")).collect();
    let hc = if health {
        ", health_check: {kind: http, path: /healthz, interval: 200ms}"
    } else {
        ""
    };
    format!("  {name}: {{backends: [{}]{hc}}}\n", list.join(", "))
}

fn alive(p: &mut Proxy) {
    let status = p.child.as_mut().and_then(|c| c.try_wait().expect("wait"));
    assert!(status.is_none(), "palisade exited: {status:?}\n{}", p.log_text());
}

#[test]
fn each_fault_gets_the_right_answer_promptly_and_is_recorded() {
    let dead = free_addr();
    let hang = BadOrigin::spawn(Mode::Hang);
    let reset = BadOrigin::spawn(Mode::ResetBeforeResponse);
    let garbage = BadOrigin::spawn(Mode::Malformed);
    let huge = BadOrigin::spawn(Mode::OversizedHeader);
    let mut cfg = String::from("upstreams:\n");
    let routes = [
        ("refused", dead, 502, "upstream_error"),
        ("hang", hang.addr, 504, "upstream_timeout"),
        ("reset", reset.addr, 502, "upstream_error"),
        ("garbage", garbage.addr, 502, "upstream_error"),
        ("huge", huge.addr, 502, "upstream_error"),
    ];
    for (name, addr, _, _) in routes {
        cfg += &pool(name, &[addr], false);
    }
    cfg += "routes:\n";
    for (name, _, _, _) in routes {
        cfg += &format!("  - {{name: {name}, path_prefix: /{name}, upstream: {name}, timeouts: {{read: 500ms}}}}\n");
    }
    let mut p = Proxy::start(&format!("{cfg}policies: [p.yaml]\n"), &[("p.yaml", "rules: []\n")]);
    for (name, _, status, reason) in routes {
        for method in ["GET", "POST"] {
            let started = Instant::now();
            let r = client()
                .request(method.parse().expect("method"), p.url(&format!("/{name}/x")))
                .body(if method == "POST" { "data" } else { "" })
                .send()
                .expect("an answer, not a hang");
            let took = started.elapsed();
            assert_eq!(r.status(), status, "{method} /{name}");
            assert!(took < Duration::from_secs(3), "{method} /{name} took {took:?}");
            let id = r.headers()["x-request-id"].to_str().expect("id").to_string();
            let ev = p.event_for(&id);
            assert_eq!(ev["event"]["reason"], reason, "{method} /{name}: {ev}");
            assert_eq!(ev["http"]["response"]["status_code"], status);
        }
        alive(&mut p);
    }
    let metrics = p.metrics_text();
    assert!(
        metrics.contains("palisade_upstream_errors_total{kind=\"upstream_timeout\",pool=\"hang\"} 2"),
        "{metrics}"
    );
    // Retries: a reset is a broken connection, so the GET (idempotent) went out twice and the
    // POST once; a timeout or a garbage answer is never retried.
    assert_eq!(reset.requests_for("/reset/"), 3, "{:?}", reset.requests());
    assert_eq!(hang.requests_for("/hang/"), 2, "{:?}", hang.requests());
    assert_eq!(garbage.requests_for("/garbage/"), 2, "{:?}", garbage.requests());
}

#[test]
fn a_reset_in_the_middle_of_a_response_cuts_the_client_off_and_nothing_else() {
    let bad = BadOrigin::spawn(Mode::ResetMidResponse);
    let good = Origin::spawn("127.0.0.1:0").expect("origin");
    let cfg = format!(
        "upstreams:\n{}{}routes:\n  - {{name: bad, path_prefix: /bad, upstream: bad}}\n  - {{name: good, upstream: good}}\npolicies: [p.yaml]\n",
        pool("bad", &[bad.addr], false),
        pool("good", &[good.addr.expect("addr")], false)
    );
    let mut p = Proxy::start(&cfg, &[("p.yaml", "rules: []\n")]);
    let r = client().get(p.url("/bad/stream")).send().expect("head arrives");
    assert_eq!(r.status(), 200, "the head was already on its way");
    let id = r.headers()["x-request-id"].to_str().expect("id").to_string();
    let mut body = Vec::new();
    let read = r.take(2000).read_to_end(&mut body);
    assert!(
        read.is_err() || body.len() < 1000,
        "the client must see a truncated body"
    );
    let ev = p.event_for(&id);
    assert_eq!(ev["event"]["reason"], "upstream_error", "{ev}");
    assert_eq!(bad.requests_for("/bad/"), 1, "a started response is never retried");
    alive(&mut p);
    assert_eq!(client().get(p.url("/fine")).send().expect("next").status(), 200);
}

#[test]
fn only_idempotent_requests_are_retried_after_a_broken_connection() {
    // The origin drops the first connection after reading the request, as an origin that had
    // timed out a keep-alive connection would; later connections are answered.
    let for_get = BadOrigin::spawn(Mode::CloseFirst);
    let for_post = BadOrigin::spawn(Mode::CloseFirst);
    let cfg = format!(
        "upstreams:\n{}{}routes:\n  - {{name: get, path_prefix: /get, upstream: get}}\n  - {{name: post, path_prefix: /post, upstream: post}}\npolicies: [p.yaml]\n",
        pool("get", &[for_get.addr], false),
        pool("post", &[for_post.addr], false)
    );
    let p = Proxy::start(&cfg, &[("p.yaml", "rules: []\n")]);
    assert_eq!(client().get(p.url("/get/a")).send().expect("get").status(), 200);
    assert_eq!(for_get.requests_for("/get/"), 2, "sent again on a fresh connection");
    let r = client().post(p.url("/post/a")).body("once").send().expect("post");
    assert_eq!(r.status(), 502);
    assert_eq!(for_post.requests_for("/post/"), 1, "a POST is never sent twice");
    assert_eq!(
        p.metric("palisade_upstream_retries_total{phase=\"proxy\",pool=\"get\"}"),
        Some(1.0)
    );
    assert_eq!(
        p.metric("palisade_upstream_retries_total{phase=\"proxy\",pool=\"post\"}"),
        None
    );
}

#[test]
fn health_checks_take_misbehaving_backends_out_of_rotation() {
    let good = Origin::spawn("127.0.0.1:0").expect("origin").addr.expect("addr");
    let bad: Vec<(&str, SocketAddr)> = vec![
        ("refused", free_addr()),
        ("hang", BadOrigin::spawn(Mode::Hang).addr),
        ("reset", BadOrigin::spawn(Mode::ResetBeforeResponse).addr),
        ("garbage", BadOrigin::spawn(Mode::Malformed).addr),
    ];
    let mut cfg = String::from("upstreams:\n");
    for (name, addr) in &bad {
        cfg += &pool(name, &[*addr, good], true);
    }
    cfg += "routes:\n";
    for (name, _) in &bad {
        cfg += &format!("  - {{name: {name}, path_prefix: /{name}, upstream: {name}, timeouts: {{read: 500ms}}}}\n");
    }
    let mut p = Proxy::start(&format!("{cfg}policies: [p.yaml]\n"), &[("p.yaml", "rules: []\n")]);
    for (name, addr) in &bad {
        let sample = format!("palisade_upstream_healthy{{backend=\"{addr}\",pool=\"{name}\"}}");
        eventually(&format!("{name} backend out of rotation"), || {
            (p.metric(&sample) == Some(0.0)).then_some(())
        });
        let good_sample = format!("palisade_upstream_healthy{{backend=\"{good}\",pool=\"{name}\"}}");
        assert_eq!(p.metric(&good_sample), Some(1.0));
        for i in 0..6 {
            let r = client().get(p.url(&format!("/{name}/{i}"))).send().expect("request");
            assert_eq!(r.status(), 200, "/{name}/{i} went to the evicted backend");
        }
    }
    alive(&mut p);
}
