//! `deploy/grafana/palisade.json` is importable as is and queries only metrics Palisade
//! exports: every metric name in its queries is in the `/metrics` scrape of a running instance
//! after traffic that touches each part (allowed, refused and malformed requests, a reload, a
//! ban, an admin refusal, a decision stream client).

mod common;
use common::*;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

const TOKEN: &str = "grafana-test-token-0123456789";

fn dashboard() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/palisade.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("dashboard is JSON")
}

/// Every `expr` of every panel, rows' panels included.
fn queries(panels: &[Value], out: &mut Vec<String>) {
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().expect("expr").to_string());
        }
        if let Some(inner) = p["panels"].as_array() {
            queries(inner, out);
        }
    }
}

/// The metric names a PromQL expression names: words starting `palisade_`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("palisade_") {
        let start = i + at;
        let prior = start.checked_sub(1).map(|p| bytes[p]);
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if prior.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == b'_')) {
            names.insert(expr[start..end].to_string());
        }
        i = end;
    }
    names
}

#[test]
fn the_dashboard_is_importable_as_is() {
    let d = dashboard();
    assert!(d["title"].is_string() && d["uid"].is_string());
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    // The data source is a variable of the dashboard: import asks nothing, any Prometheus fits.
    assert_eq!(d["templating"]["list"][0]["type"], "datasource");
    assert_eq!(d["templating"]["list"][0]["query"], "prometheus");
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().expect("id")), "panel ids are unique");
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            assert!(!p["targets"].as_array().expect("targets").is_empty(), "{}", p["title"]);
        }
        let g = &p["gridPos"];
        assert!(g["w"].as_u64().is_some_and(|w| w <= 24) && g["h"].as_u64().is_some());
    }
}

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let admin = free_addr();
    // A health-checked pool, so that backend health is exported.
    let cfg = format!(
        "upstreams:\n  app:\n    backends: [\"{}\"]\n    health_check: {{kind: tcp, interval: 100ms}}\nroutes:\n  - name: app\n    upstream: app\nadmin:\n  address: {admin}\n  token_file: token.txt\npolicies: [p.yaml]\n",
        origin.addr.expect("origin addr")
    );
    let policy = "rules:\n  - id: no-admin\n    match:\n      path_prefix: [/admin]\n    action: block\n";
    let p = Proxy::start(&cfg, &[("token.txt", TOKEN), ("p.yaml", policy)]);
    eventually("the admin listener", || std::net::TcpStream::connect(admin).ok());
    let admin = format!("http://{admin}");
    let c = client();
    assert_eq!(c.get(p.url("/ok")).send().expect("req").status(), 200);
    assert_eq!(c.get(p.url("/admin")).send().expect("req").status(), 403);
    let smuggle =
        b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(raw::exchange(p.addr, smuggle, Duration::from_secs(2)).status(), 400);
    let r = c
        .post(format!("{admin}/api/reload"))
        .bearer_auth(TOKEN)
        .send()
        .expect("reload");
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{admin}/api/bans"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"address": "192.0.2.8", "duration": "1m"}))
        .send()
        .expect("ban");
    assert_eq!(r.status(), 201);
    assert_eq!(c.get(format!("{admin}/api/bans")).send().expect("admin").status(), 401);
    let stream = c
        .get(format!("{admin}/api/decisions/stream"))
        .bearer_auth(TOKEN)
        .send()
        .expect("stream");
    assert_eq!(stream.status(), 200);
    eventually("the backend's health", || {
        p.metrics_text().contains("palisade_upstream_healthy{").then_some(())
    });
    eventually("the telemetry sent", || {
        p.metric("palisade_telemetry_sent_total{sink=\"file\"}")
            .filter(|n| *n >= 2.0)
    });

    let text = p.metrics_text();
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let mut exprs = Vec::new();
    queries(dashboard()["panels"].as_array().expect("panels"), &mut exprs);
    let mut names = BTreeSet::new();
    for e in &exprs {
        names.extend(metric_names(e));
    }
    assert!(names.len() >= 15, "the dashboard covers the metrics: {names:?}");
    let missing: Vec<&String> = names.iter().filter(|n| !exported.contains(n.as_str())).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}\n{text}");
    drop(stream);
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(palisade_request_duration_seconds_bucket[5m]))) / xpalisade_no",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["palisade_request_duration_seconds_bucket"]
    );
}
