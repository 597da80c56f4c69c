//! Telemetry schema 2 through a running Palisade: an alert event for every decision other than
//! allow, behavioural indicators per client, sampling of allowed traffic, keyed hashing of
//! addresses, and credential headers refused by validation.

mod common;
use common::*;

use std::process::Command;

const BURST: &str = "limits:\n  - id: burst\n    requests: 2\n    per: 60s\n";

#[test]
fn a_refusal_yields_a_request_event_and_an_alert() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!("policies: [policy.yaml]\n{}", single_pool(&origin)),
        &[("policy.yaml", BURST)],
    );
    let ids: Vec<String> = (0..3)
        .map(|_| request_id(&client().get(p.url("/a")).send().expect("request")))
        .collect();
    let events = eventually("3 request events and 1 alert", || {
        let ev = p.events();
        (ev.len() >= 4).then_some(ev)
    });
    assert_eq!(events.len(), 4, "{events:#?}");
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["event"]["kind"].as_str().expect("kind"),
                e["event"]["id"].as_str().expect("id"),
            )
        })
        .collect();
    let alert_id = format!("{}.alert", ids[2]);
    assert_eq!(
        kinds,
        [
            ("event", ids[0].as_str()),
            ("event", ids[1].as_str()),
            ("event", ids[2].as_str()),
            ("alert", alert_id.as_str())
        ]
    );
    let (req, alert) = (&events[2], &events[3]);
    for e in [req, alert] {
        assert_eq!(e["schema_version"], 2);
        assert_eq!(e["http"]["request"]["id"], ids[2].as_str());
        assert_eq!(e["palisade"]["decision"]["action"], "throttle");
        assert_eq!(e["palisade"]["decision"]["rule"], "burst");
        assert_eq!(e["http"]["response"]["status_code"], 429);
    }
    assert_eq!(events[0]["http"]["request"]["id"], ids[0].as_str());
}

#[test]
fn indicators_describe_the_client_behaviour() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start_with_telemetry(
        "  indicator_actors: 1024\n",
        &format!(
            "trusted_proxies: [127.0.0.1]\npolicies: [open.yaml]\n{}",
            single_pool(&origin)
        ),
        &[("open.yaml", "rules: []\n")],
    );
    let c = client();
    let send = |path: &str, ua: &str, xff: &str| {
        c.get(p.url(path))
            .header("user-agent", ua)
            .header("x-forwarded-for", xff)
            .send()
            .expect("request")
    };
    // A scanner-like client: 5 distinct paths, one 404, two user agents.
    for path in ["/a", "/b", "/c", "/status/404"] {
        send(path, "scan/1", "198.18.7.7");
    }
    let last = request_id(&send("/e", "Mozilla/5.0", "198.18.7.7"));
    let quiet = request_id(&send("/a", "scan/1", "198.18.7.8"));
    let ev = p.event_for(&last);
    let ind = &ev["palisade"]["indicators"];
    assert_eq!(ind["requests_60s"], 5, "{ind}");
    assert!(
        ind["requests_1s"].as_u64().is_some_and(|n| (1..=5).contains(&n)),
        "{ind}"
    );
    assert_eq!(ind["distinct_paths_60s"], 5, "exact for a few paths: {ind}");
    assert_eq!(ind["ratio_4xx"], 0.2, "{ind}");
    assert_eq!(ind["ratio_5xx"], 0.0, "{ind}");
    assert_eq!(ind["user_agent_changes"], 1, "{ind}");
    assert_eq!(ind["ban"], "none", "{ind}");
    assert_eq!(ind["strike_score"], 0.0, "{ind}");
    assert!(ind["first_seen_s"].as_u64().is_some_and(|s| s < 10), "{ind}");
    // Another client has its own indicators.
    let other = &p.event_for(&quiet)["palisade"]["indicators"];
    assert_eq!(
        (other["requests_60s"].as_u64(), other["distinct_paths_60s"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn strikes_and_bans_show_in_the_indicators() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!("policies: [policy.yaml]\n{}", single_pool(&origin)),
        &[(
            "policy.yaml",
            "rules:\n  - {id: probe, match: {path_prefix: [/.git]}, action: block}\noffenders: {strikes: 3, window: 60s, ban_for: 5m}\n",
        )],
    );
    let c = client();
    let first = request_id(&c.get(p.url("/.git/config")).send().expect("request"));
    for _ in 0..2 {
        c.get(p.url("/.git/config")).send().expect("request");
    }
    let banned = c.get(p.url("/fine")).send().expect("request");
    assert_eq!(banned.status(), 403);
    let ind = p.event_for(&first)["palisade"]["indicators"].clone();
    assert_eq!(
        (ind["ban"].as_str(), ind["strike_score"].as_f64()),
        (Some("none"), Some(1.0)),
        "{ind}"
    );
    let ind = p.event_for(&request_id(&banned))["palisade"]["indicators"].clone();
    assert_eq!(ind["ban"], "banned", "{ind}");
}

#[test]
fn sampling_drops_allowed_requests_but_never_refusals() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start_with_telemetry(
        "  sample_allowed: 0\n",
        &format!("policies: [policy.yaml]\n{}", single_pool(&origin)),
        &[("policy.yaml", BURST)],
    );
    let c = client();
    let ids: Vec<String> = (0..4)
        .map(|_| request_id(&c.get(p.url("/s")).send().expect("request")))
        .collect();
    let events = eventually("the two refusals", || {
        let ev = p.events();
        (ev.len() >= 4).then_some(ev)
    });
    let recorded: Vec<&str> = events
        .iter()
        .filter(|e| e["event"]["kind"] == "event")
        .map(|e| e["event"]["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        recorded,
        [ids[2].as_str(), ids[3].as_str()],
        "allowed requests sampled out"
    );
    let emitted = p.metric("palisade_telemetry_emitted_total{sink=\"file\"}");
    assert_eq!(emitted, Some(4.0), "two request events and two alerts");
}

#[test]
fn client_addresses_can_be_replaced_by_keyed_pseudonyms() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let key = "0123456789abcdef-telemetry-key";
    let p = start_with_telemetry(
        "  ip_hash_key_file: ip.key\n",
        &format!("trusted_proxies: [127.0.0.1]\n{}", single_pool(&origin)),
        &[("ip.key", &format!("{key}\n"))],
    );
    let r = client()
        .get(p.url("/h"))
        .header("x-forwarded-for", "198.18.0.9")
        .send()
        .expect("request");
    let ev = p.event_for(&request_id(&r));
    let want = palisade::telemetry::pseudonym_with_key(key.as_bytes(), "198.18.0.9".parse().expect("ip"));
    assert_eq!(ev["client"], serde_json::json!({ "address": want }));
    assert_eq!(want.len(), 32);
    let peer = palisade::telemetry::pseudonym_with_key(key.as_bytes(), "127.0.0.1".parse().expect("ip"));
    assert_eq!(ev["source"]["address"], peer.as_str());
    assert!(ev["source"].get("ip").is_none(), "{}", ev["source"]);
    let text = std::fs::read_to_string(&p.telemetry).expect("telemetry");
    assert!(!text.contains("198.18.0.9"), "the address leaked: {text}");
}

#[test]
fn credential_headers_are_refused_unless_explicitly_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |extra: &str| {
        format!(
            "listeners:\n  - address: 127.0.0.1:1\nupstreams:\n  app:\n    backends: [\"127.0.0.1:2\"]\nroutes:\n  - name: app\n    upstream: app\ntelemetry:\n  sink: \"off\"\n  headers: [referer, Authorization, cookie]\n{extra}"
        )
    };
    let check = |text: String| {
        let path = dir.path().join("palisade.yaml");
        std::fs::write(&path, text).expect("write");
        Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["check", "-c", &path.display().to_string()])
            .output()
            .expect("run check")
    };
    let out = check(config(""));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("palisade.yaml:11:")
            && err.contains("field `telemetry.headers[1]`")
            && err.contains("credentials"),
        "{err}"
    );
    assert!(err.contains("field `telemetry.headers[2]`"), "{err}");
    assert!(!err.contains("headers[0]"), "{err}");
    let out = check(config("  allow_credential_headers: true\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn telemetry_settings_are_validated_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("palisade.yaml");
    std::fs::write(
        &path,
        "listeners:\n  - address: 127.0.0.1:1\nupstreams:\n  app:\n    backends: [\"127.0.0.1:2\"]\nroutes:\n  - name: app\n    upstream: app\ntelemetry:\n  sink: nats\n  headers: [referer, X-Forwarded-For]\n  sample_allowed: 1.5\n  ip_hash_key_file: short.key\n  nats:\n    url: \"http://[bad\"\n    stream: a.b\n    spill_dir: spill\n    batch_size: 0\n    spill_budgets: 1MiB\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("short.key"), "tooshort\n").expect("write key");
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "-c", &path.display().to_string()])
        .output()
        .expect("run check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    // An unknown key is an error like any other.
    assert!(err.contains("spill_budgets"), "{err}");
    let path = dir.path().join("palisade.yaml");
    let text = std::fs::read_to_string(&path)
        .expect("read")
        .replace("    spill_budgets: 1MiB\n", "");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "-c", &path.display().to_string()])
        .output()
        .expect("run check");
    let err = String::from_utf8_lossy(&out.stderr);
    for field in [
        "telemetry.sample_allowed",
        "telemetry.ip_hash_key_file",
        "telemetry.nats.url",
        "telemetry.nats.stream",
        "telemetry.nats.batch_size",
        "telemetry.headers[1]",
    ] {
        assert!(
            err.contains(&format!("field `{field}`")),
            "{field} not reported:\n{err}"
        );
    }
    assert!(err.contains("configuration has 6 error(s)"), "{err}");
}
