//! Hot binary upgrade: a second `palisade run -u` takes the listening sockets over from the
//! running one (sent on SIGQUIT over `server.upgrade_sock`) without refusing a connection.
//!
//! The old process keeps accepting for Pingora's fixed 5 s after handing the sockets over, then
//! stops with the configured grace period, so each test here takes about 7 s.

mod common;
use common::*;

use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// `BASE` with a one-second grace period (BASE has none), file watching off, one pool and one
/// policy file.
fn upgrade_config(origin: &Origin) -> String {
    let base = BASE
        .replace("  grace_period: 0s\n", "  grace_period: 1s\n")
        .replace("reload:\n  interval: 50ms\n", "reload:\n  watch: false\n");
    assert!(
        base.contains("grace_period: 1s") && base.contains("watch: false"),
        "BASE changed shape"
    );
    assert!(base.contains("upgrade_sock: {DIR}/upgrade.sock"));
    format!("{base}{}policies: [policy.yaml]\n", single_pool(origin))
}

/// Kills the process on drop, so a failing test leaves no server behind.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Requests on a fresh connection each, until told to stop (or a safety bound of 15 s).
///
/// A fresh connection per request is deliberate: the old process closes idle keep-alive
/// connections when it stops, and a client that reuses one then sees one failed request and must
/// retry (browsers and curl do). That is expected; what the upgrade promises is that no new
/// connection is ever refused or dropped, which is what this client checks.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    handle: JoinHandle<Vec<Result<String, String>>>,
}

impl Traffic {
    fn start(url: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let (s, n) = (stop.clone(), sent.clone());
        let handle = thread::spawn(move || {
            let c = reqwest::blocking::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(PATIENCE)
                .build()
                .expect("client");
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut outcomes = Vec::new();
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                let r = c.get(&url).header("connection", "close").send();
                outcomes.push(match r {
                    Ok(r) if r.status() == 200 => Ok(r
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()),
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(format!("{e:?}")),
                });
                n.fetch_add(1, Ordering::SeqCst);
            }
            outcomes
        });
        Traffic { stop, sent, handle }
    }

    /// Wait until `more` further requests have completed.
    fn wait_for(&self, more: usize) {
        let target = self.sent.load(Ordering::SeqCst) + more;
        eventually(&format!("{more} more requests"), || {
            (self.sent.load(Ordering::SeqCst) >= target).then_some(())
        });
    }

    fn finish(self) -> Vec<Result<String, String>> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("traffic thread")
    }
}

/// The hot upgrade of the harness, with the new process killed if the test fails.
fn upgrade(p: &mut Proxy) -> Guard {
    Guard(Some(hot_upgrade(p)))
}

fn status(p: &Proxy, path: &str) -> u16 {
    client().get(p.url(path)).send().expect("request").status().as_u16()
}

#[test]
fn upgrade_drops_no_connection() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let mut p = Proxy::start_with(&upgrade_config(&origin), &[("policy.yaml", "rules: []\n")], &[]);
    let traffic = Traffic::start(p.url("/during"));
    traffic.wait_for(5);

    let mut new = upgrade(&mut p);
    // The old process is gone; whatever answers now is the new one.
    traffic.wait_for(20);
    let outcomes = traffic.finish();
    let failed: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across the upgrade: {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        outcomes.len() > 100,
        "only {} requests during the upgrade",
        outcomes.len()
    );
    eprintln!("{} requests across the upgrade, none failed", outcomes.len());

    let new_child = new.0.as_mut().expect("new process");
    assert!(
        new_child.try_wait().expect("wait").is_none(),
        "the new process exited:\n{}",
        p.log_text()
    );
    let log = p.log_text();
    assert!(log.contains("listener sockets sent"), "{log}");
    assert_eq!(log.matches("reloader ready").count(), 2, "both processes started");

    // Hand the new process to the harness: its metrics, its signals, killed at the end.
    p.child = new.0.take();
    assert_eq!(status(&p, "/after"), 200);
    let served = p
        .metric("palisade_requests_total{decision=\"allow\",route=\"app\",status=\"2xx\"}")
        .unwrap_or(0.0);
    assert!(
        served >= 20.0,
        "the new process counted {served} requests; it should have served at least the last 20"
    );

    // Telemetry went on without a gap: every answered request has its event, from either process.
    let ids: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    eventually("telemetry for every request", || {
        let logged: std::collections::HashSet<String> = p
            .events()
            .iter()
            .filter_map(|e| e["event"]["id"].as_str().map(String::from))
            .collect();
        ids.iter().all(|id| logged.contains(*id)).then_some(())
    });

    // And the new process still reloads on SIGHUP like the old one did.
    p.rewrite(
        "policy.yaml",
        "rules:\n  - id: block-after\n    match:\n      path_prefix: [/after]\n    action: block\n",
    );
    p.signal("HUP");
    eventually("the new process to reload", || {
        (status(&p, "/after") == 403).then_some(())
    });
}

#[test]
fn policy_changed_before_the_upgrade_is_loaded_by_the_new_process() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let mut p = Proxy::start_with(&upgrade_config(&origin), &[("policy.yaml", "rules: []\n")], &[]);
    assert_eq!(status(&p, "/admin"), 200);
    let old_info = p
        .metrics_text()
        .lines()
        .find(|l| l.starts_with("palisade_policy_info{"))
        .expect("policy info")
        .to_string();

    // Watching is off and no signal is sent: the running process keeps the old policy.
    p.rewrite(
        "policy.yaml",
        "rules:\n  - id: block-admin\n    match:\n      path_prefix: [/admin]\n    action: block\n",
    );
    assert_eq!(status(&p, "/admin"), 200);

    let mut new = upgrade(&mut p);
    p.child = new.0.take();
    assert_eq!(status(&p, "/admin"), 403, "the new process enforces the policy on disk");
    assert_eq!(status(&p, "/public"), 200);
    let info = p
        .metrics_text()
        .lines()
        .find(|l| l.starts_with("palisade_policy_info{"))
        .expect("policy info")
        .to_string();
    assert_ne!(info, old_info, "metrics show the new policy");
    assert!(
        info.contains("generation=\"1\""),
        "a fresh process starts at generation 1: {info}"
    );
}

#[test]
fn bans_survive_a_hot_upgrade() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let config = format!(
        "{}state:\n  path: {{DIR}}/offenders.json\n  save_interval: 100ms\n",
        upgrade_config(&origin)
    );
    let policy = "\
rules:
  - {id: no-admin, match: {path_prefix: [/admin]}, action: block}
offenders: {strikes: 2, window: 60s, ban_for: 1h}
";
    let mut p = Proxy::start_with(&config, &[("policy.yaml", policy)], &[]);
    assert_eq!(status(&p, "/admin"), 403);
    assert_eq!(status(&p, "/admin"), 403);
    assert_eq!(status(&p, "/public"), 403, "banned in the old process");

    let mut new = upgrade(&mut p);
    p.child = new.0.take();
    assert_eq!(status(&p, "/public"), 403, "still banned in the new process");
    assert!(origin.seen_path("/public").is_empty());
    assert!(origin.seen_path("/admin").is_empty());
}
