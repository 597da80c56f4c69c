//! The security team's tools on telemetry recorded by a running Palisade: `palisade offenders`
//! (top offenders, decisions per minute, hits per rule, filters, JSON) and `palisade replay`
//! (a candidate policy against the recorded traffic).

mod common;
use common::*;

use std::process::{Command, Output};

use serde_json::Value;

const LIVE: &str = "rules:
  - {id: no-git, match: {path_prefix: [/.git]}, action: block}
limits:
  - {id: login-burst, requests: 2, per: 60s, match: {path: [/login]}}
";

/// Traffic from three clients (named through the trusted local proxy); returns the proxy once
/// every event is written, with the request ids of the two /admin requests.
fn recorded() -> (Proxy, Origin, Vec<String>) {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!(
            "trusted_proxies: [127.0.0.1]\npolicies: [live.yaml]\n{}",
            single_pool(&origin)
        ),
        &[("live.yaml", LIVE)],
    );
    let c = client();
    let send = |ip: &str, path: &str| {
        let r = c
            .get(p.url(path))
            .header("x-forwarded-for", ip)
            .send()
            .expect("request");
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("request id")
            .to_string()
    };
    // The scanner: 3 probes blocked, 4 logins of which 2 throttled.
    for _ in 0..3 {
        send("203.0.113.9", "/.git/config");
    }
    for _ in 0..4 {
        send("203.0.113.9", "/login");
    }
    // A user: one login too many.
    for _ in 0..3 {
        send("198.51.100.4", "/login");
    }
    let admin = vec![send("192.0.2.1", "/admin/users"), send("192.0.2.1", "/admin/roles")];
    let last = send("192.0.2.1", "/");
    p.event_for(&last);
    (p, origin, admin)
}

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .expect("run palisade")
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[test]
fn offenders_ranks_clients_rules_and_minutes_with_filters() {
    let (p, _origin, _) = recorded();
    let file = p.telemetry.display().to_string();
    let r = json(&palisade(&["offenders", "--telemetry", &file, "--json"]));
    assert_eq!(r["requests"], 13);
    assert_eq!(r["not_allowed"], 6);
    let top = &r["top_offenders"];
    assert_eq!(top[0]["client"], "203.0.113.9");
    assert_eq!(top[0]["not_allowed"], 5);
    assert_eq!(top[0]["requests"], 7);
    assert_eq!(top[0]["decisions"], serde_json::json!({"block": 3, "throttle": 2}));
    assert_eq!(top[1]["client"], "198.51.100.4");
    assert_eq!(top[1]["not_allowed"], 1);
    assert_eq!(
        top.as_array().map(Vec::len),
        Some(2),
        "clients never refused are not offenders"
    );
    let rules: Vec<(&str, u64)> = r["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|h| (h["rule"].as_str().expect("rule"), h["hits"].as_u64().expect("hits")))
        .collect();
    assert_eq!(rules, [("login-burst", 3), ("no-git", 3)]);
    let minutes: u64 = r["per_minute"]
        .as_array()
        .expect("minutes")
        .iter()
        .flat_map(|m| m["decisions"].as_object().expect("decisions").values())
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(minutes, 13, "every request is in a minute bucket");

    // Filters: one network, one rule, a time range that excludes everything.
    let r = json(&palisade(&[
        "offenders",
        "--telemetry",
        &file,
        "--json",
        "--ip",
        "198.51.100.0/24",
    ]));
    assert_eq!((r["requests"].as_u64(), r["not_allowed"].as_u64()), (Some(3), Some(1)));
    let r = json(&palisade(&[
        "offenders",
        "--telemetry",
        &file,
        "--json",
        "--rule",
        "no-git",
    ]));
    assert_eq!(r["requests"], 3);
    let r = json(&palisade(&[
        "offenders",
        "--telemetry",
        &file,
        "--json",
        "--until",
        "1h",
    ]));
    assert_eq!(r["requests"], 0);
    let r = json(&palisade(&[
        "offenders",
        "--telemetry",
        &file,
        "--json",
        "--since",
        "1h",
    ]));
    assert_eq!(r["requests"], 13);

    // The text report names the same things.
    let out = palisade(&["offenders", "--telemetry", &file, "--top", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("203.0.113.9") && !text.contains("198.51.100.4  "),
        "{text}"
    );
    assert!(text.contains("Hits per rule") && text.contains("no-git"), "{text}");

    let bad = palisade(&["offenders", "--telemetry", &file, "--ip", "not-a-net"]);
    assert!(!bad.status.success());
}

#[test]
fn replay_reports_what_a_candidate_policy_changes() {
    let (p, _origin, admin) = recorded();
    let candidate = p.dir.path().join("candidate.yaml");
    // Drops the /.git rule, adds an /admin block, tightens logins to one a minute.
    std::fs::write(
        &candidate,
        "rules:\n  - {id: no-admin, match: {path_prefix: [/admin], routes: [app]}, action: block}\nlimits:\n  - {id: login-burst, requests: 1, per: 60s, match: {path: [/login]}}\n",
    )
    .expect("write candidate");
    let file = p.telemetry.display().to_string();
    let cand = candidate.display().to_string();
    let r = json(&palisade(&[
        "replay",
        "--policy",
        &cand,
        "--telemetry",
        &file,
        "--json",
    ]));
    assert_eq!(r["requests"], 13);
    // Newly refused: 2 /admin requests, and one more login for each of the two clients.
    assert_eq!(r["newly_refused"]["count"], 4, "{r:#}");
    assert_eq!(
        r["newly_refused"]["by_rule"],
        serde_json::json!({"no-admin": 2, "login-burst": 2})
    );
    let examples: Vec<&str> = r["newly_refused"]["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .filter(|x| x["candidate_rule"] == "no-admin")
        .map(|x| x["request_id"].as_str().expect("id"))
        .collect();
    assert_eq!(examples, admin);
    // No longer refused: the 3 /.git probes.
    assert_eq!(r["no_longer_refused"]["count"], 3);
    assert_eq!(r["no_longer_refused"]["by_rule"], serde_json::json!({"no-git": 3}));
    assert_eq!(r["matrix"]["block -> allow"], 3);

    // A candidate naming a route the traffic never used is refused like `palisade check` would.
    std::fs::write(
        &candidate,
        "rules:\n  - {id: x, match: {routes: [nowhere]}, action: block}\n",
    )
    .expect("write");
    let out = palisade(&["replay", "--policy", &cand, "--telemetry", &file]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no route named \"nowhere\""));
}
