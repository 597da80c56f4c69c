//! Telemetry to NATS JetStream with the real nats-server (Debian package `nats-server`, run with
//! JetStream on a loopback port picked at run time): events published through a running
//! Palisade are read back from the stream; a server killed mid-traffic and restarted loses
//! nothing and duplicates nothing; events spilled before a crash are sent by the next process;
//! past the spill budget, events are dropped and counted.
//! nats-server must be installed (CI installs it): these tests fail, not skip, without it.

mod common;
use common::nats::Nats;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

const STREAM: &str = "EVENTS";
const SUBJECT: &str = "palisade.events";

/// Palisade sending telemetry to `url`, with an open policy (no limit gets in the way).
fn proxy(origin: &Origin, url: &str, extra: &str) -> Proxy {
    let telemetry = format!(
        "  sink: nats\n  nats:\n    url: {url}\n    stream: {STREAM}\n    subject: {SUBJECT}\n    spill_dir: {{DIR}}/spill\n    ack_timeout: 500ms\n    reconnect_max_delay: 100ms\n    batch_size: 64\n{extra}"
    );
    let base = BASE.replace("  sink: file\n  path: {DIR}/telemetry.jsonl\n", &telemetry);
    assert_ne!(base, BASE, "the harness telemetry section changed");
    Proxy::start_with(
        &format!("{base}policies: [policy.yaml]\n{}", single_pool(origin)),
        &[(
            "policy.yaml",
            "limits:\n  - {id: burst, requests: 1000, per: 60s, match: {path_prefix: [/limited]}}\n  - {id: tight, requests: 2, per: 60s, match: {path_prefix: [/tight]}}\n",
        )],
        &[],
    )
}

fn metric(p: &Proxy, name: &str) -> f64 {
    p.metric(&format!("{name}{{sink=\"nats\"}}")).unwrap_or(0.0)
}

fn dropped(p: &Proxy, reason: &str) -> f64 {
    p.metric(&format!(
        "palisade_telemetry_dropped_total{{reason=\"{reason}\",sink=\"nats\"}}"
    ))
    .unwrap_or(0.0)
}

/// Wait until every emitted event is accounted for: sent, or dropped.
fn settled(p: &Proxy, emitted: f64) {
    eventually("every event sent or dropped", || {
        let done = metric(p, "palisade_telemetry_emitted_total") == emitted
            && metric(p, "palisade_telemetry_sent_total") + dropped(p, "spill_budget") + dropped(p, "queue_full")
                == emitted;
        done.then_some(())
    });
}

/// Every message in the stream: its `Nats-Msg-Id` and its event.
fn consume(url: &str) -> Vec<(String, Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = async_nats::connect(url).await.expect("connect to nats");
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream(STREAM).await.expect("the stream exists");
        let state = stream.get_info().await.expect("stream info").state;
        let mut out = Vec::new();
        if state.messages == 0 {
            return out;
        }
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
            .await
            .expect("consumer");
        let mut messages = consumer.messages().await.expect("messages");
        while out.len() < state.messages as usize {
            let m = tokio::time::timeout(PATIENCE, messages.next())
                .await
                .expect("a message in time")
                .expect("stream open")
                .expect("message");
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            out.push((id, serde_json::from_slice(&m.payload).expect("event is JSON")));
        }
        out
    })
}

fn request_id(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id")
        .to_string()
}

fn send(p: &Proxy, c: &reqwest::blocking::Client, path: &str) -> String {
    let r = c.get(p.url(path)).send().expect("request");
    request_id(&r)
}

#[test]
fn events_are_published_to_the_stream_and_read_back() {
    let nats = Nats::start();
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = proxy(&origin, &nats.url(), "");
    let c = client();
    let ids: Vec<String> = (0..5).map(|i| send(&p, &c, &format!("/tight/{i}"))).collect();
    // 5 request events, and an alert for each of the 3 throttled ones.
    settled(&p, 8.0);
    let got = consume(&nats.url());
    assert_eq!(got.len(), 8, "{got:#?}");
    for (msg_id, ev) in &got {
        assert_eq!(
            msg_id,
            ev["event"]["id"].as_str().expect("event.id"),
            "Nats-Msg-Id is the event id"
        );
    }
    let requests: Vec<&str> = got
        .iter()
        .filter(|(_, e)| e["event"]["kind"] == "event")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(requests, ids, "one request event per request, in order");
    let alerts: BTreeSet<&str> = got
        .iter()
        .filter(|(_, e)| e["event"]["kind"] == "alert")
        .map(|(_, e)| e["http"]["request"]["id"].as_str().expect("request id"))
        .collect();
    assert_eq!(alerts, ids[2..].iter().map(String::as_str).collect());
    // Events that came before the connection was up were spilled, then replayed.
    assert_eq!(
        metric(&p, "palisade_telemetry_spilled_total"),
        metric(&p, "palisade_telemetry_replayed_total")
    );

    // The analysis tool reads the same stream.
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["offenders", "--json", "--telemetry"])
        .arg(format!("{}/{STREAM}", nats.url()))
        .output()
        .expect("run offenders");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["requests"], 5);
    assert_eq!(report["top_offenders"][0]["client"], "127.0.0.1");
    assert_eq!(report["top_offenders"][0]["not_allowed"], 3);
    assert_eq!(report["rules"][0]["rule"], "tight");
}

#[test]
fn a_nats_restart_mid_traffic_loses_and_duplicates_nothing() {
    let mut nats = Nats::start();
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = proxy(&origin, &nats.url(), "");
    // One client sends 180 requests back to back; the server is killed after the 40th and
    // restarted after the 100th, while events are in flight.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sender = {
        let (sent, base) = (sent.clone(), p.url(""));
        std::thread::spawn(move || {
            let c = client();
            let mut ids = Vec::new();
            let mut slowest = Duration::ZERO;
            for i in 0..180 {
                let t = std::time::Instant::now();
                let r = c.get(format!("{base}/limited/{i}")).send().expect("request");
                slowest = slowest.max(t.elapsed());
                ids.push(request_id(&r));
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (ids, slowest)
        })
    };
    let at = |n: usize| {
        eventually(&format!("{n} requests sent"), || {
            (sent.load(std::sync::atomic::Ordering::SeqCst) >= n).then_some(())
        })
    };
    at(40);
    nats.kill();
    at(100);
    eventually("events spilled to disk", || {
        (metric(&p, "palisade_telemetry_spilled_total") > 0.0).then_some(())
    });
    nats.run();
    let (ids, slowest) = sender.join().expect("sender");
    // Requests are never held by telemetry, whatever the bus does.
    assert!(slowest < Duration::from_secs(1), "a request took {slowest:?}");
    settled(&p, 180.0);
    assert_eq!(dropped(&p, "spill_budget") + dropped(&p, "queue_full"), 0.0);
    assert!(
        metric(&p, "palisade_telemetry_replayed_total") > 0.0,
        "the spill was replayed"
    );

    let got = consume(&nats.url());
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, _) in &got {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated: {dups:?}");
    let want: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let have: BTreeSet<&str> = seen.keys().copied().collect();
    let missing: Vec<_> = want.difference(&have).collect();
    assert!(missing.is_empty(), "{} lost: {missing:?}", missing.len());
    assert_eq!(got.len(), 180);
    // Order is kept across the outage.
    let order: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(order, ids.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn past_the_spill_budget_events_are_dropped_and_counted() {
    // No server yet: everything spills, into a budget too small for all of it.
    let port = free_addr().port();
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = proxy(&origin, &format!("nats://127.0.0.1:{port}"), "    spill_budget: 8KiB\n");
    let c = client();
    let ids: Vec<String> = (0..40).map(|i| send(&p, &c, &format!("/limited/{i}"))).collect();
    let lost = eventually("drops past the budget", || {
        let d = dropped(&p, "spill_budget");
        (d > 0.0 && metric(&p, "palisade_telemetry_spilled_total") + d == 40.0).then_some(d)
    });
    assert!(lost < 40.0, "some events fit the budget");
    let mut nats = Nats {
        child: None,
        port,
        dir: tempfile::tempdir().expect("tempdir"),
    };
    nats.run();
    settled(&p, 40.0);
    let got = consume(&nats.url());
    assert_eq!(
        got.len() as f64,
        40.0 - lost,
        "every event is in the stream or counted as dropped"
    );
    // What was kept is the oldest, in order, each once.
    let order: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(order, ids[..got.len()].iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn events_spilled_before_a_crash_are_sent_by_the_next_process() {
    let port = free_addr().port();
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let mut p = proxy(&origin, &format!("nats://127.0.0.1:{port}"), "");
    let c = client();
    let ids: Vec<String> = (0..10).map(|i| send(&p, &c, &format!("/limited/{i}"))).collect();
    eventually("10 events spilled", || {
        (metric(&p, "palisade_telemetry_spilled_total") == 10.0).then_some(())
    });
    // A crash: no chance to deliver anything.
    if let Some(mut child) = p.child.take() {
        child.kill().expect("kill palisade");
        child.wait().expect("reap palisade");
    }
    let config = p.config.display().to_string();
    p.child = Some(p.spawn(&["run", "-c", &config], &[]));
    p.wait_ready();
    let mut nats = Nats {
        child: None,
        port,
        dir: tempfile::tempdir().expect("tempdir"),
    };
    nats.run();
    eventually("the new process replays the old one's events", || {
        (metric(&p, "palisade_telemetry_replayed_total") == 10.0).then_some(())
    });
    let got: Vec<String> = consume(&nats.url()).into_iter().map(|(id, _)| id).collect();
    assert_eq!(got, ids);
}

/// `palisade offenders` reads the stream back: offenders ranked across several clients, the
/// filters applied to what was read, and the text report as well as the JSON one.
#[test]
fn offenders_reads_back_from_nats_ranked_and_filtered() {
    let nats = Nats::start();
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let telemetry = format!(
        "  sink: nats\n  nats:\n    url: {}\n    stream: {STREAM}\n    subject: {SUBJECT}\n    spill_dir: {{DIR}}/spill\n    ack_timeout: 500ms\n    reconnect_max_delay: 100ms\n",
        nats.url()
    );
    let base = BASE.replace("  sink: file\n  path: {DIR}/telemetry.jsonl\n", &telemetry);
    let p = Proxy::start_with(
        &format!(
            "{base}trusted_proxies: [127.0.0.1]\npolicies: [policy.yaml]\n{}",
            single_pool(&origin)
        ),
        &[(
            "policy.yaml",
            "limits:\n  - {id: tight, requests: 2, per: 60s, match: {path_prefix: [/tight]}}\n",
        )],
        &[],
    );
    let c = client();
    // 198.51.100.1: 5 requests, 3 throttled; .2: 3, 1 throttled; .3: 2, none.
    let mut emitted = 0.0;
    for (ip, n) in [("198.51.100.1", 5), ("198.51.100.2", 3), ("198.51.100.3", 2)] {
        for i in 0..n {
            let r = c
                .get(p.url(&format!("/tight/{i}")))
                .header("x-forwarded-for", ip)
                .send()
                .expect("request");
            emitted += if r.status() == 429 { 2.0 } else { 1.0 };
        }
    }
    settled(&p, emitted);
    let source = format!("{}/{STREAM}", nats.url());
    let offenders = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["offenders", "--telemetry", &source])
            .args(extra)
            .output()
            .expect("run offenders");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let report: Value = serde_json::from_str(&offenders(&["--json"])).expect("JSON report");
    assert_eq!(report["requests"], 10);
    let top: Vec<(String, u64)> = report["top_offenders"]
        .as_array()
        .expect("top_offenders")
        .iter()
        .map(|o| {
            (
                o["client"].as_str().unwrap_or("").to_string(),
                o["not_allowed"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        top[..2],
        [("198.51.100.1".to_string(), 3), ("198.51.100.2".to_string(), 1)],
        "{report:#}"
    );
    // A filter narrows what was read from the stream.
    let one: Value = serde_json::from_str(&offenders(&["--json", "--ip", "198.51.100.2"])).expect("JSON");
    assert_eq!(one["requests"], 3, "{one:#}");
    // The text report names the worst offender and the rule.
    let text = offenders(&["--top", "1"]);
    assert!(text.contains("198.51.100.1") && text.contains("tight"), "{text}");
    assert!(!text.contains("198.51.100.3"), "--top 1 lists one offender:\n{text}");
}
