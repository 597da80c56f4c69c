//! Policy enforcement end to end: deny lists, path rules, client identity behind trusted
//! proxies, rate limits, monitor mode, allow rules and the embedded default policy. Every
//! denial is checked on the origin too: a blocked request must never be forwarded.

mod common;
use common::*;

use reqwest::blocking::Response;

/// One pool and one route, `extra` top-level settings, and the policy file `policy.yaml`.
fn start(origin: &Origin, extra: &str, policy: &str) -> Proxy {
    Proxy::start(
        &format!("{extra}policies: [policy.yaml]\n{}", single_pool(origin)),
        &[("policy.yaml", policy)],
    )
}

fn get(p: &Proxy, path: &str) -> Response {
    client().get(p.url(path)).send().expect("request")
}

fn get_as(p: &Proxy, path: &str, xff: &str) -> Response {
    client()
        .get(p.url(path))
        .header("x-forwarded-for", xff)
        .send()
        .expect("request")
}

const DENY_LOCALHOST: &str = "\
lists:
  bad:
    cidrs: [10.9.9.0/24, 127.0.0.0/8]
rules:
  - id: deny-bad
    match: {ip_lists: [bad]}
    action: block
";

#[test]
fn a_deny_listed_client_gets_403_and_nothing_is_forwarded() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(&origin, "", DENY_LOCALHOST);
    let r = get(&p, "/secret");
    assert_eq!(r.status(), 403);
    let id = request_id(&r);
    let body = r.text().expect("body");
    assert!(body.starts_with("403 Forbidden"), "{body:?}");
    assert!(body.contains(&id), "{body:?}");
    assert!(
        origin.seen_path("/secret").is_empty(),
        "a blocked request reached the origin"
    );
    let ev = p.event_for(&id);
    assert_eq!(ev["palisade"]["decision"]["action"], "block");
    assert_eq!(ev["palisade"]["decision"]["rule"], "deny-bad");
    assert_eq!(ev["palisade"]["decision"]["matched"], "ip 127.0.0.0/8");
}

#[test]
fn an_unlisted_client_passes_the_same_policy() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(&origin, "", &DENY_LOCALHOST.replace("127.0.0.0/8", "127.0.0.2"));
    assert_eq!(get(&p, "/open").status(), 200);
    assert_eq!(origin.seen_path("/open").len(), 1);
}

#[test]
fn block_by_path_prefix() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(
        &origin,
        "",
        "rules:\n  - id: no-admin\n    match: {path_prefix: [/admin, /internal/]}\n    action: block\n",
    );
    for path in ["/admin", "/admin/users", "/internal/x"] {
        assert_eq!(get(&p, path).status(), 403, "{path}");
    }
    for path in ["/public", "/internal", "/", "/Admin"] {
        assert_eq!(get(&p, path).status(), 200, "{path}");
    }
    let forwarded: Vec<String> = origin.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(
        forwarded,
        ["/public", "/internal", "/", "/Admin"],
        "only allowed paths are forwarded"
    );
}

const DENY_DOC_CLIENT: &str = "\
lists:
  bad:
    cidrs: [203.0.113.9]
rules:
  - id: deny-bad
    match: {ip_lists: [bad]}
    action: block
";

#[test]
fn client_identity_comes_from_a_trusted_proxy_header() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(&origin, "trusted_proxies: [127.0.0.1]\n", DENY_DOC_CLIENT);
    let r = get_as(&p, "/via-proxy", "203.0.113.9");
    assert_eq!(r.status(), 403);
    assert_eq!(p.event_for(&request_id(&r))["client"]["ip"], "203.0.113.9");
    // The right-most untrusted hop is the client; what it put on the left is not believed.
    assert_eq!(get_as(&p, "/via-proxy", "203.0.113.9, 198.18.0.1").status(), 200);
    assert_eq!(get_as(&p, "/via-proxy", "198.18.0.1, 203.0.113.9").status(), 403);
    assert_eq!(get_as(&p, "/via-proxy", "203.0.113.10").status(), 200);
    assert_eq!(origin.seen_path("/via-proxy").len(), 2);
}

#[test]
fn an_untrusted_peer_cannot_pick_its_identity() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(&origin, "", DENY_DOC_CLIENT);
    let r = get_as(&p, "/direct", "203.0.113.9");
    assert_eq!(r.status(), 200, "the header of an untrusted peer must not decide");
    assert_eq!(p.event_for(&request_id(&r))["client"]["ip"], "127.0.0.1");
    assert_eq!(origin.seen_path("/direct").len(), 1);
}

#[test]
fn a_rate_limit_answers_429_with_retry_after_and_does_not_forward() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(&origin, "", "limits:\n  - id: per-ip\n    requests: 3\n    per: 60s\n");
    for i in 0..3 {
        assert_eq!(
            get(&p, &format!("/rl/{i}")).status(),
            200,
            "request {i} is within the limit"
        );
    }
    for i in 3..6 {
        let r = get(&p, &format!("/rl/{i}"));
        assert_eq!(r.status(), 429, "request {i}");
        assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("60"));
        assert!(r.text().expect("body").starts_with("429 Too Many Requests"));
    }
    assert_eq!(
        origin.seen_path("/rl/").len(),
        3,
        "throttled requests reached the origin"
    );
}

#[test]
fn a_limit_with_a_match_only_counts_those_requests() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(
        &origin,
        "",
        "limits:\n  - id: login\n    requests: 2\n    per: 60s\n    match: {path_prefix: [/login]}\n",
    );
    for i in 0..6 {
        assert_eq!(
            get(&p, &format!("/home/{i}")).status(),
            200,
            "other paths are not limited"
        );
    }
    assert_eq!(get(&p, "/login").status(), 200);
    assert_eq!(get(&p, "/login").status(), 200);
    assert_eq!(get(&p, "/login").status(), 429);
    assert_eq!(
        get(&p, "/home/after").status(),
        200,
        "the login limit does not spill over"
    );
    assert_eq!(origin.seen_path("/login").len(), 2);
}

#[test]
fn a_monitor_rule_lets_the_request_through_and_reports_would_block() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(
        &origin,
        "",
        "rules:\n  - id: watch-admin\n    match: {path_prefix: [/admin]}\n    action: block\n    mode: monitor\n",
    );
    let r = get(&p, "/admin/panel");
    assert_eq!(r.status(), 200);
    assert_eq!(origin.seen_path("/admin/panel").len(), 1);
    let ev = p.event_for(&request_id(&r));
    let d = &ev["palisade"]["decision"];
    assert_eq!(d["action"], "would_block");
    assert_eq!(d["rule"], "watch-admin");
    assert_eq!(d["mode"], "monitor");
    assert_eq!(ev["event"]["action"], "would_block");
    assert_eq!(ev["http"]["response"]["status_code"], 200);
}

#[test]
fn a_monitor_policy_file_enforces_none_of_its_rules() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(
        &origin,
        "",
        "\
mode: monitor
rules:
  - id: dry-run-admin
    match: {path_prefix: [/admin]}
    action: block
limits:
  - id: dry-run-rate
    requests: 1
    per: 60s
",
    );
    let r = get(&p, "/admin");
    assert_eq!(r.status(), 200);
    let d = p.event_for(&request_id(&r))["palisade"]["decision"].clone();
    assert_eq!(d["action"], "would_block");
    assert_eq!(d["rule"], "dry-run-admin");
    let r = get(&p, "/second");
    assert_eq!(r.status(), 200, "a monitor limit does not throttle");
    let d = p.event_for(&request_id(&r))["palisade"]["decision"].clone();
    assert_eq!(d["action"], "would_throttle");
    assert_eq!(d["rule"], "dry-run-rate");
    assert_eq!(origin.seen().len(), 2);
}

#[test]
fn an_allow_rule_before_a_block_rule_wins() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start(
        &origin,
        "",
        "\
rules:
  - id: allow-status
    match: {path_prefix: [/admin/status]}
    action: allow
  - id: no-admin
    match: {path_prefix: [/admin]}
    action: block
limits:
  - id: tight
    requests: 1
    per: 60s
",
    );
    assert_eq!(get(&p, "/admin/users").status(), 403);
    // Allowed requests skip the later block rule and the limit.
    for _ in 0..3 {
        assert_eq!(get(&p, "/admin/status").status(), 200);
    }
    assert_eq!(origin.seen_path("/admin/status").len(), 3);
    assert!(origin.seen_path("/admin/users").is_empty());
}

#[test]
fn the_embedded_default_policy_applies_without_policies() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(&single_pool(&origin), &[]);
    for path in ["/.git/config", "/.env", "/wp-config.php"] {
        let r = get(&p, path);
        assert_eq!(r.status(), 403, "{path}");
        let ev = p.event_for(&request_id(&r));
        assert_eq!(ev["palisade"]["decision"]["rule"], "block-secret-probes");
    }
    assert_eq!(get(&p, "/index.html").status(), 200);
    let forwarded: Vec<String> = origin.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(forwarded, ["/index.html"]);
}
