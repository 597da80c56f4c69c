//! Policy actions end to end: tarpit, custom block bodies, log rules, and concurrency caps
//! that give their slot back when a request ends. Refused requests never reach the origin.

mod common;
use common::*;

use std::time::{Duration, Instant};

const POLICY: &str = "\
rules:
  - {id: note-api, match: {path_prefix: [/api]}, action: log}
  - {id: slow-down, match: {path: [/api/login]}, action: tarpit, delay: 300ms, retry_after: 30s}
  - {id: retired, match: {path: [/api/old]}, action: block, body: This endpoint was retired.}
concurrency:
  - {id: one-stream, max: 1, match: {path_prefix: [/slow/]}}
";

fn start() -> (Origin, Proxy) {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!("{}policies: [p.yaml]\n", single_pool(&origin)),
        &[("p.yaml", POLICY)],
    );
    (origin, p)
}

#[test]
fn tarpit_holds_then_throttles_without_forwarding() {
    let (origin, p) = start();
    let t = Instant::now();
    let r = client().post(p.url("/api/login")).send().expect("req");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "answered after {:?}",
        t.elapsed()
    );
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    let id = r.headers()["x-request-id"].to_str().expect("id").to_string();
    assert!(origin.seen_path("/api/login").is_empty());
    let ev = p.event_for(&id);
    assert_eq!(ev["palisade"]["decision"]["action"], "tarpit");
    assert_eq!(ev["palisade"]["decision"]["also"][0], "note-api");
}

#[test]
fn block_with_a_custom_body_and_log_rules_pass() {
    let (origin, p) = start();
    let r = client().get(p.url("/api/old")).send().expect("req");
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .expect("body")
        .starts_with("This endpoint was retired.\nReference: "));
    let r = client().get(p.url("/api/new")).send().expect("req");
    assert_eq!(r.status(), 200, "a log rule only records");
    let id = r.headers()["x-request-id"].to_str().expect("id").to_string();
    let ev = p.event_for(&id);
    assert_eq!(ev["palisade"]["decision"]["action"], "allow");
    assert_eq!(ev["palisade"]["decision"]["also"][0], "note-api");
    assert_eq!(origin.seen_path("/api/").len(), 1);
}

#[test]
fn a_concurrency_cap_refuses_the_second_stream_and_frees_the_slot() {
    let (origin, p) = start();
    let url = p.url("/slow/400");
    let first = std::thread::spawn(move || client().get(url).send().expect("req").status().as_u16());
    // Once the origin holds the first request, its slot is taken.
    eventually("the first stream to reach the origin", || {
        (!origin.seen_path("/slow/").is_empty()).then_some(())
    });
    let r = client().get(p.url("/slow/1")).send().expect("req");
    assert_eq!(r.status(), 429);
    assert_eq!(
        origin.seen_path("/slow/").len(),
        1,
        "the refused stream was not forwarded"
    );
    assert_eq!(first.join().expect("first"), 200);
    // The first request ended: its slot is free again.
    assert_eq!(client().get(p.url("/slow/1")).send().expect("req").status(), 200);
}
