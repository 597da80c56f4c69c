//! What operators observe: the telemetry event of each request (schema, redaction, decision
//! details), the Prometheus exposition, and that a stuck telemetry sink never holds up traffic.

mod common;
use common::*;

use std::process::Command;
use std::time::Duration;

use serde_json::json;

/// RFC 3339 UTC down to the second, e.g. `2026-01-31T12:00:00`.
fn utc_seconds(t: time::OffsetDateTime) -> String {
    let f = time::format_description::well_known::Rfc3339;
    t.format(&f).expect("format")[..19].to_string()
}

#[test]
fn one_event_per_request_with_the_documented_fields() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = start_with_telemetry(
        "  query_allowlist: [page]\n  headers: [referer, x-tenant]\n",
        &format!("trusted_proxies: [127.0.0.1]\n{}", single_pool(&origin)),
        &[],
    );
    let before = utc_seconds(time::OffsetDateTime::now_utc() - Duration::from_secs(1));
    let c = client();
    let r = c
        .get(p.url("/search?token=s3cret&page=2"))
        .header("host", "Shop.Example.test:8443")
        .header("user-agent", "palisade-test/1.0")
        .header("referer", "https://ref.example.test/")
        .header("x-tenant", "acme")
        .header("authorization", "Bearer do-not-log")
        .header("x-forwarded-for", "198.18.0.5")
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
    let id = request_id(&r);
    let r2 = c.post(p.url("/form")).body("a=1").send().expect("request");
    let r3 = c.get(p.url("/third")).send().expect("request");
    let after = utc_seconds(time::OffsetDateTime::now_utc());

    let ids = [id.clone(), request_id(&r2), request_id(&r3)];
    let events = eventually("three events", || {
        let ev = p.events();
        (ev.len() >= 3).then_some(ev)
    });
    let logged: Vec<&str> = events
        .iter()
        .map(|e| e["event"]["id"].as_str().expect("event.id"))
        .collect();
    assert_eq!(logged, ids, "one event per request, in order");

    let ev = &events[0];
    assert_eq!(ev["schema_version"], 2);
    let ts = ev["@timestamp"].as_str().expect("@timestamp");
    assert!(ts.ends_with('Z') && ts.len() >= 20, "{ts}");
    assert!(
        before.as_str() <= &ts[..19] && &ts[..19] <= after.as_str(),
        "{before} <= {ts} <= {after}"
    );
    assert_eq!(ev["event"]["action"], "allow");
    assert!(ev["event"]["duration_us"].is_u64());
    assert_eq!(ev["client"]["ip"], "198.18.0.5");
    assert_eq!(ev["source"]["ip"], "127.0.0.1");
    assert!(
        ev["source"]["port"].as_u64().is_some_and(|port| port > 0),
        "{}",
        ev["source"]
    );
    assert_eq!(ev["http"]["request"]["method"], "GET");
    assert_eq!(ev["http"]["response"]["status_code"], 200);
    assert_eq!(ev["http"]["version"], "1.1");
    assert_eq!(ev["url"]["domain"], "shop.example.test");
    assert_eq!(ev["url"]["path"], "/search");
    assert_eq!(ev["url"]["query"], "token=REDACTED&page=2");
    assert_eq!(ev["user_agent"]["original"], "palisade-test/1.0");
    // Exactly the configured headers: Authorization is never copied.
    assert_eq!(
        ev["http"]["request"]["headers"],
        json!({"referer": "https://ref.example.test/", "x-tenant": "acme"})
    );
    assert_eq!(ev["palisade"]["route"], "app");
    let up = &ev["palisade"]["upstream"];
    assert_eq!(up["pool"], "app");
    assert_eq!(up["address"], origin.addr.expect("addr").to_string());
    assert!(up["duration_us"].as_u64().is_some_and(|d| d > 0), "{up}");
    let hash = ev["palisade"]["policy"]["hash"].as_str().expect("policy hash");
    assert!(
        hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash}"
    );
    assert_eq!(ev["palisade"]["policy"]["generation"], 1);
    assert_eq!(
        ev["palisade"]["decision"],
        json!({"action": "allow", "mode": "enforce"})
    );

    assert_eq!(events[1]["http"]["request"]["method"], "POST");
    assert_eq!(events[1]["http"]["request"]["bytes"], 3);
    assert!(events[2]["url"].get("query").is_none(), "no query, no url.query");
}

#[test]
fn query_strings_are_redacted_by_default_and_can_be_dropped() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let redact = Proxy::start(&single_pool(&origin), &[]);
    let r = client()
        .get(redact.url("/q?token=abc&page=2&flag"))
        .send()
        .expect("request");
    let ev = redact.event_for(&request_id(&r));
    assert_eq!(ev["url"]["query"], "token=REDACTED&page=REDACTED&flag");
    // The origin still gets the real query: redaction is for telemetry only.
    assert_eq!(origin.seen_path("/q")[0].target, "/q?token=abc&page=2&flag");

    let drop = start_with_telemetry("  query: drop\n", &single_pool(&origin), &[]);
    let r = client().get(drop.url("/q?token=abc")).send().expect("request");
    let ev = drop.event_for(&request_id(&r));
    assert_eq!(ev["url"]["path"], "/q");
    assert!(
        ev["url"].get("query").is_none(),
        "query kept despite `query: drop`: {}",
        ev["url"]
    );
}

const BURST: &str = "limits:\n  - id: burst\n    requests: 3\n    per: 60s\n";

#[test]
fn a_throttled_request_records_the_decision() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!("policies: [policy.yaml]\n{}", single_pool(&origin)),
        &[("policy.yaml", BURST)],
    );
    for _ in 0..3 {
        assert_eq!(client().get(p.url("/t")).send().expect("request").status(), 200);
    }
    let r = client().get(p.url("/t")).send().expect("request");
    assert_eq!(r.status(), 429);
    let ev = p.event_for(&request_id(&r));
    assert_eq!(
        ev["palisade"]["decision"],
        json!({"action": "throttle", "rule": "burst", "mode": "enforce", "matched": "client_ip", "counter": 4})
    );
    assert_eq!(ev["event"]["action"], "throttle");
    assert_eq!(ev["http"]["response"]["status_code"], 429);
    assert!(
        ev["palisade"]["upstream"].get("address").is_none(),
        "a throttled request has no backend"
    );
}

#[test]
fn metrics_count_what_was_sent() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!("policies: [policy.yaml]\n{}", single_pool(&origin)),
        &[("policy.yaml", BURST)],
    );
    let mut last = String::new();
    for i in 0..5 {
        let r = client().get(p.url(&format!("/m/{i}"))).send().expect("request");
        assert_eq!(r.status(), if i < 3 { 200 } else { 429 });
        last = request_id(&r);
    }
    // Metrics and telemetry are recorded together, after the response: wait for the last.
    let hash = p.event_for(&last)["palisade"]["policy"]["hash"]
        .as_str()
        .expect("hash")
        .to_string();
    let text = p.metrics_text();
    let sample = |s: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(s).and_then(|v| v.trim().parse::<f64>().ok()))
            .unwrap_or_else(|| panic!("no sample {s} in\n{text}"))
    };
    assert_eq!(
        sample("palisade_requests_total{decision=\"allow\",route=\"app\",status=\"2xx\"}"),
        3.0
    );
    assert_eq!(
        sample("palisade_requests_total{decision=\"throttle\",route=\"app\",status=\"4xx\"}"),
        2.0
    );
    assert_eq!(sample("palisade_request_duration_seconds_count{route=\"app\"}"), 5.0);
    assert_eq!(
        sample("palisade_request_duration_seconds_bucket{route=\"app\",le=\"+Inf\"}"),
        5.0
    );
    assert!(sample("palisade_request_duration_seconds_sum{route=\"app\"}") > 0.0);
    assert_eq!(sample("palisade_upstream_duration_seconds_count{pool=\"app\"}"), 3.0);
    assert_eq!(
        sample("palisade_policy_decisions_total{decision=\"throttle\",rule=\"burst\"}"),
        2.0
    );
    assert_eq!(
        sample(&format!("palisade_policy_info{{generation=\"1\",hash=\"{hash}\"}}")),
        1.0
    );
    assert_eq!(
        sample("palisade_telemetry_dropped_total{reason=\"queue_full\",sink=\"file\"}"),
        0.0
    );
    assert!(
        text.contains("# TYPE palisade_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains("# TYPE palisade_requests_total counter"), "{text}");
    // Labels stay bounded: no client address or raw path in any sample.
    for l in text.lines().filter(|l| l.starts_with("palisade_")) {
        assert!(!l.contains("127.0.0.1") && !l.contains("/m/"), "unbounded label in {l}");
    }
}

#[test]
fn backend_health_is_exported() {
    let a = Origin::spawn("127.0.0.1:0").expect("origin");
    let b = Origin::spawn("127.0.0.1:0").expect("origin");
    let (aa, ba) = (a.addr.expect("addr"), b.addr.expect("addr"));
    let p = Proxy::start(
        &format!(
            "upstreams:\n  app:\n    backends: [\"{aa}\", \"{ba}\"]\n    health_check: {{kind: http, path: /healthz, interval: 100ms}}\nroutes:\n  - name: app\n    upstream: app\n"
        ),
        &[],
    );
    let gauge =
        |addr: std::net::SocketAddr| p.metric(&format!("palisade_upstream_healthy{{backend=\"{addr}\",pool=\"app\"}}"));
    eventually("both backends reported healthy", || {
        (gauge(aa) == Some(1.0) && gauge(ba) == Some(1.0)).then_some(())
    });
    b.set_healthy(false);
    eventually("b reported down", || (gauge(ba) == Some(0.0)).then_some(()));
    assert_eq!(gauge(aa), Some(1.0));
    b.set_healthy(true);
    eventually("b reported back", || (gauge(ba) == Some(1.0)).then_some(()));
}

#[test]
fn a_stuck_telemetry_sink_never_delays_requests() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let pipe_dir = tempfile::tempdir().expect("tempdir");
    let pipe = pipe_dir.path().join("events.pipe");
    let made = Command::new("mkfifo").arg(&pipe).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    // Palisade's open of the write end waits for a reader. This reader never reads, so once
    // the pipe buffer (64 KiB) is full the telemetry writer is stuck in write().
    let reader = {
        let pipe = pipe.clone();
        std::thread::spawn(move || std::fs::File::open(pipe).expect("open the read end"))
    };
    let base = BASE.replace(
        "  path: {DIR}/telemetry.jsonl\n",
        &format!("  path: {}\n  queue_capacity: 1\n", pipe.display()),
    );
    // No policy limits: the default per-IP rate limit would throttle the flood below.
    let p = Proxy::start_with(
        &format!("{base}policies: [open.yaml]\n{}", single_pool(&origin)),
        &[("open.yaml", "rules: []\n")],
        &[],
    );
    let _reader = reader.join().expect("reader thread");

    // A client that gives up quickly: a request held by telemetry fails the test promptly.
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let n = 400;
    for i in 0..n {
        let r = c
            .get(p.url(&format!("/flood/{i}")))
            .send()
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status(), 200, "request {i}");
    }
    assert_eq!(origin.seen_path("/flood/").len(), n);
    // Far more than a 64 KiB pipe and a one-slot queue hold must have been dropped and counted.
    let dropped = eventually("drops to be counted", || {
        p.metric("palisade_telemetry_dropped_total{reason=\"queue_full\",sink=\"file\"}")
            .filter(|d| *d >= 100.0)
    });
    assert!(dropped < n as f64, "some events were written: {dropped}");
}
