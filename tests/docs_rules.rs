//! The behaviours docs/policies.md, docs/configuration.md and the README state as rules, each
//! pinned by a test named after it, so a doc and the code cannot disagree unnoticed again.
//! Found by reading those docs for "normalis", "probation", "fail-open", "fail-closed",
//! "never", "refused whole", "matches nobody":
//!
//! | Statement (where) | Test |
//! |---|---|
//! | Paths are matched after normalisation: escapes decoded once, `\`, `//`, `.`, `..` resolved (policies.md "What the tests see", configuration.md "match", README) | `docs_rule_paths_are_normalised_before_matching` |
//! | The origin still receives the path as the client sent it (policies.md, configuration.md) | `docs_rule_the_origin_receives_the_path_as_sent` |
//! | Query values are matched as sent, not percent-decoded (policies.md) | `docs_rule_query_values_are_matched_raw` |
//! | Probation escalates to a ban when the client keeps going (policies.md §8, configuration.md "offenders") | `docs_rule_probation_escalates_to_a_ban` |
//! | An enforced concurrency-cap refusal is a strike (policies.md §8) | `docs_rule_a_concurrency_cap_refusal_is_a_strike` |
//! | Fail-closed: an invalid configuration or policy is refused whole (README) | `docs_rule_an_invalid_policy_is_refused_whole` |
//! | Fail-closed: unknown keys and actions are errors (README, configuration.md) | `docs_rule_unknown_keys_and_actions_are_errors` |
//! | Fail-closed: an unrouted request gets 404 only after the policy ran (README, configuration.md "How a request is decided") | `docs_rule_the_policy_runs_before_the_unrouted_404` |
//! | Fail-closed: a limit keyed by a header or cookie counts a request without one by its address (README) | `docs_rule_a_missing_key_header_counts_by_address` |
//! | Fail-closed: every backend of a pool unhealthy → 503 (README) | `tests/upstream_faults.rs`, `tests/proxy.rs` (health checks) |
//! | Fail-open: monitor-mode rules never refuse (README, policies.md) | `docs_rule_monitor_rules_never_refuse` |
//! | Fail-open: a full telemetry queue drops the event, not the request (README) | `docs_rule_a_full_telemetry_queue_drops_the_event_not_the_request` |
//! | Empty lists match nobody (README, configuration.md "match") | `docs_rule_empty_lists_match_nobody` |

mod common;
use common::*;

use std::time::Duration;

use palisade::config::load::policy_from_str;
use palisade::enforce::offenders::{Offenders, BAN_RULE_ID, THROTTLE_RULE_ID};
use palisade::enforce::{decide, evaluate, RequestFacts};
use palisade::policy::{compile, PolicySet};

fn policy(yaml: &str) -> PolicySet {
    let p = policy_from_str("rules.yaml", yaml, &["app"]).expect("a valid policy");
    compile(&[p], None)
}

static NO_HEADERS: once_cell::sync::Lazy<http::HeaderMap> = once_cell::sync::Lazy::new(http::HeaderMap::new);

fn facts<'a>(path: &'a str, query: Option<&'a str>) -> RequestFacts<'a> {
    RequestFacts {
        client_ip: "198.51.100.70".parse().expect("ip"),
        method: "GET",
        host: "example.test",
        path,
        route: "app",
        query,
        headers: &NO_HEADERS,
        content_length: None,
    }
}

const GIT_RULE: &str = "rules:\n  - id: no-git\n    match: {path_prefix: [/.git/]}\n    action: block\n";

fn proxy(policy: &str) -> (Origin, Proxy) {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!("policies: [p.yaml]\n{}", single_pool(&origin)),
        &[("p.yaml", policy)],
    );
    (origin, p)
}

fn raw_get(p: &Proxy, target: &str) -> u16 {
    raw::exchange(
        p.addr,
        format!("GET {target} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n").as_bytes(),
        PATIENCE,
    )
    .status()
}

#[test]
fn docs_rule_paths_are_normalised_before_matching() {
    let (origin, p) = proxy(GIT_RULE);
    // Sent raw: an HTTP client library would normalise these itself.
    for target in [
        "/.git/config",
        "/%2egit/config",
        "/%2e%2e//.git/config",
        "/a/../.git/config",
        "//.git//config",
        "/./.git/config",
        "/a\\..\\.git/config",
    ] {
        assert_eq!(raw_get(&p, target), 403, "{target}");
    }
    assert!(origin.seen().is_empty(), "a normalised match reached the origin");
}

#[test]
fn docs_rule_the_origin_receives_the_path_as_sent() {
    let (origin, p) = proxy(GIT_RULE);
    assert_eq!(raw_get(&p, "/a//b/./c%41"), 200);
    let seen = origin.seen();
    assert_eq!(
        seen.iter().map(|s| s.target.as_str()).collect::<Vec<_>>(),
        ["/a//b/./c%41"]
    );
}

#[test]
fn docs_rule_query_values_are_matched_raw() {
    let p = policy("rules:\n  - id: q\n    match: {query: {name: {equals: 'a b'}}}\n    action: block\n");
    assert_eq!(evaluate(&p, &facts("/", Some("name=a%20b"))).label(), "allow");
    assert_eq!(evaluate(&p, &facts("/", Some("name=a b"))).label(), "block");
}

#[test]
fn docs_rule_probation_escalates_to_a_ban() {
    let (origin, p) = proxy(
        "rules:\n  - id: no-admin\n    match: {path_prefix: [/admin]}\n    action: block\noffenders: {strikes: 4, throttle_at: 2, window: 60s, ban_for: 10m}\n",
    );
    let c = client();
    let rule = |path: &str| {
        let r = c.get(p.url(path)).send().expect("request");
        let status = r.status().as_u16();
        (
            status,
            p.event_for(&request_id(&r))["palisade"]["decision"]["rule"].clone(),
        )
    };
    assert_eq!(rule("/admin").0, 403);
    assert_eq!(rule("/admin").0, 403);
    // Two strikes: probation. The client keeps going; each refused request is a strike.
    assert_eq!(rule("/ok"), (429, THROTTLE_RULE_ID.into()));
    assert_eq!(rule("/ok"), (403, BAN_RULE_ID.into()), "kept going on probation");
    assert!(origin.seen_path("/ok").is_empty());
}

#[test]
fn docs_rule_a_concurrency_cap_refusal_is_a_strike() {
    let p = policy("concurrency:\n  - {id: one, max: 1}\noffenders: {strikes: 2, window: 60s, ban_for: 5m}\n");
    let o = Offenders::new();
    let now = 1_700_000_000_000;
    let held = decide(&p, &o, &facts("/", None), now);
    for _ in 0..2 {
        assert_eq!(decide(&p, &o, &facts("/", None), now).verdict.rule(), Some("one"));
    }
    let v = decide(&p, &o, &facts("/", None), now).verdict;
    assert_eq!(v.rule(), Some(BAN_RULE_ID), "two cap refusals, two strikes: banned");
    drop(held);
}

#[test]
fn docs_rule_an_invalid_policy_is_refused_whole() {
    let err = policy_from_str(
        "p.yaml",
        "rules:\n  - {id: good, match: {path_prefix: [/a]}, action: block}\n  - {id: bad, match: {path_regex: ['(']}, action: block}\n",
        &[],
    )
    .expect_err("one bad rule refuses the file");
    assert!(err.to_string().contains("rules[1]"), "{err}");
}

#[test]
fn docs_rule_unknown_keys_and_actions_are_errors() {
    for yaml in [
        "rules:\n  - {id: r, match: {path_prefix: [/]}, action: block, severity: high}\n",
        "rules:\n  - {id: r, match: {path_prefix: [/]}, action: obliterate}\n",
        "rules:\n  - {id: r, match: {path_prefx: [/]}, action: block}\n",
    ] {
        assert!(policy_from_str("p.yaml", yaml, &[]).is_err(), "{yaml}");
    }
}

#[test]
fn docs_rule_the_policy_runs_before_the_unrouted_404() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!(
            "policies: [p.yaml]\nupstreams:\n  app:\n    backends: [\"{}\"]\nroutes:\n  - name: app\n    hosts: [app.example.test]\n    upstream: app\n",
            origin.addr.expect("addr")
        ),
        &[("p.yaml", GIT_RULE)],
    );
    // No route for this host: the probe is still refused by the policy, not merely 404.
    assert_eq!(raw_get(&p, "/.git/config"), 403);
    assert_eq!(raw_get(&p, "/innocent"), 404);
}

#[test]
fn docs_rule_a_missing_key_header_counts_by_address() {
    let p = policy("limits:\n  - {id: per-account, key: 'header:x-account', requests: 1, per: 60s}\n");
    // Without the header, the address is the key: leaving it out does not escape the limit.
    assert_eq!(evaluate(&p, &facts("/", None)).label(), "allow");
    assert_eq!(evaluate(&p, &facts("/", None)).label(), "throttle");
}

#[test]
fn docs_rule_monitor_rules_never_refuse() {
    let p = policy("rules:\n  - {id: m, match: {path_prefix: [/]}, action: block, mode: monitor}\n");
    let v = evaluate(&p, &facts("/x", None));
    assert_eq!((v.label(), v.enforced()), ("would_block", false));
}

#[test]
fn docs_rule_a_full_telemetry_queue_drops_the_event_not_the_request() {
    use palisade::telemetry::{Batch, Record, Redaction, Sink, SinkMetrics, Telemetry};
    struct Nowhere;
    impl Sink for Nowhere {
        fn deliver(&mut self, _: &Batch) {}
    }
    // No writer runs: the queue of one fills at once, and emit must not wait for room.
    let metrics = SinkMetrics::new("docs_rule_test");
    let (telemetry, _writer) = Telemetry::with_sink(Box::new(Nowhere), 1, 0, metrics.clone());
    let req = http::Request::get("/").body(()).expect("request").into_parts().0;
    let pol = std::sync::Arc::new(policy("rules: []\n"));
    let redaction = std::sync::Arc::new(Redaction::default());
    let o = Offenders::new();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        telemetry.emit(Record::capture(&req, &redaction, &pol), &o, None, 0);
    }
    assert!(started.elapsed() < Duration::from_secs(1), "emit waited for the queue");
    assert_eq!(metrics.dropped_queue_full.get(), 2);
}

#[test]
fn docs_rule_empty_lists_match_nobody() {
    let p = policy("lists:\n  deny: {cidrs: []}\nrules:\n  - {id: d, match: {ip_lists: [deny]}, action: block}\n");
    assert_eq!(evaluate(&p, &facts("/", None)).label(), "allow");
}
