//! Slow-client attacks with Debian's `slowhttptest` (slow headers and slow body at once, from
//! 127.0.0.1, bounded to 10 s) while a normal client on another loopback address keeps asking:
//! every one of its requests must be answered, promptly, the whole time. Afterwards the proxy
//! holds no more connections than its caps allow.
//!
//! Needs the `slowhttptest` package (`make setup` installs it). About 12 s.

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Seconds each attack runs.
const ATTACK_SECS: u64 = 10;
/// Connections each attack aims for (twice the per-address cap below).
const ATTACK_CONNECTIONS: u32 = 200;
const CAP: u32 = 100;

/// Run `slowhttptest` in `mode` against `url` again and again until `ATTACK_SECS` are over:
/// it stops by itself once the proxy has closed all of its connections, which with the
/// defences on happens within seconds. Returns the number of runs.
fn attack(mode: &'static str, url: String) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(ATTACK_SECS);
        let mut runs = 0;
        while let Some(left) = end.checked_duration_since(Instant::now()).filter(|d| d.as_secs() >= 1) {
            let mut child = Command::new("slowhttptest")
                .args([
                    mode,
                    "-c",
                    &ATTACK_CONNECTIONS.to_string(),
                    "-r",
                    "100",
                    "-i",
                    "1",
                    "-x",
                    "8",
                ])
                .args(["-l", &left.as_secs().to_string(), "-p", "2", "-u", &url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("run slowhttptest (install it: apt-get install slowhttptest, or `make setup`)");
            let deadline = Instant::now() + left + Duration::from_secs(10);
            while child.try_wait().expect("wait").is_none() {
                assert!(Instant::now() < deadline, "slowhttptest did not stop");
                std::thread::sleep(Duration::from_millis(100));
            }
            runs += 1;
        }
        runs
    })
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn service_stays_available_under_slow_header_and_slow_body_attacks() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!(
            "{}policies: [p.yaml]\nlimits:\n  header_timeout: 2s\n  min_body_rate: 1KiB\n  body_rate_grace: 2s\n  max_connections_per_ip: {CAP}\n",
            single_pool(&origin)
        ),
        &[("p.yaml", "rules: []\n")],
    );
    let fds_before = open_fds(p.pid());

    // The normal client: its own loopback address, a fresh connection per request.
    let stop = Arc::new(AtomicBool::new(false));
    let url = p.url("/normal");
    let normal = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let c = reqwest::blocking::Client::builder()
                .local_address(Some("127.0.0.2".parse().expect("ip")))
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let r = c.get(&url).send().map(|r| r.status().as_u16());
                outcomes.push((r.map_err(|e| e.to_string()), t.elapsed()));
                std::thread::sleep(Duration::from_millis(50));
            }
            outcomes
        })
    };

    let attack_started = Instant::now();
    let attacks = [attack("-H", p.url("/")), attack("-B", p.url("/"))];
    // While both attacks run, the proxy holds at most its cap of the attacker's connections,
    // each with at most one upstream connection (a slow body is streamed to the origin), plus
    // a few of the normal client's and its own. Without the cap it would be twice as many.
    let mut fds_during = 0;
    while attack_started.elapsed() < Duration::from_secs(ATTACK_SECS - 1) {
        fds_during = fds_during.max(open_fds(p.pid()));
        std::thread::sleep(Duration::from_millis(200));
    }
    let runs: Vec<usize> = attacks.into_iter().map(|a| a.join().expect("attack")).collect();
    stop.store(true, Ordering::SeqCst);
    let outcomes = normal.join().expect("normal client");

    eprintln!(
        "normal requests: {}, fds before/max during: {fds_before}/{fds_during}, slowhttptest runs {runs:?} in {:?}\n{}",
        outcomes.len(),
        attack_started.elapsed(),
        p.metrics_text()
            .lines()
            .filter(|l| l.contains("refusals"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let failed: Vec<_> = outcomes.iter().filter(|(r, _)| *r != Ok(200)).collect();
    let slowest = outcomes.iter().map(|(_, t)| *t).max().unwrap_or_default();
    assert!(outcomes.len() > 50, "only {} normal requests", outcomes.len());
    assert!(
        failed.is_empty(),
        "normal requests failed during the attack: {failed:?}"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "slowest normal answer took {slowest:?}"
    );
    assert!(
        fds_during < fds_before + 2 * CAP as usize + 40,
        "the proxy held {fds_during} fds during the attack (before: {fds_before})"
    );
    // Each defence did its part, and said so.
    for (sample, what) in [
        (
            "palisade_connection_refusals_total{reason=\"header_timeout\"}",
            "slow headers cut",
        ),
        (
            "palisade_connection_refusals_total{reason=\"too_many_connections\"}",
            "connections over the cap",
        ),
        (
            "palisade_request_refusals_total{reason=\"body_too_slow\"}",
            "slow bodies cut",
        ),
    ] {
        let n = p.metric(sample).unwrap_or(0.0);
        assert!(n > 0.0, "no {what}: {sample} = {n}");
    }
    // Once the attackers are gone, the proxy lets go of their connections.
    eventually("the attack's connections to close", || {
        (open_fds(p.pid()) <= fds_before + 10).then_some(())
    });
    assert!(origin.seen_path("/normal").len() == outcomes.len());
}
