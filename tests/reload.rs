//! Hot reload of policy and configuration: by SIGHUP, by file change, refusal of broken files,
//! rate counters across reloads, and no failed request while reloading.

mod common;
use common::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const ALLOW_ALL: &str = "rules: []\n";

const BLOCK_ADMIN: &str = "\
rules:
  - id: block-admin
    match:
      path_prefix: [/admin]
    action: block
";

/// `BASE` with file watching off, so only SIGHUP reloads, plus one pool and one policy file.
fn config_without_watch(origin: &Origin) -> String {
    let base = BASE.replace("reload:\n  interval: 50ms\n", "reload:\n  watch: false\n");
    assert_ne!(base, BASE, "BASE no longer has the reload section this test replaces");
    format!("{base}{}policies: [policy.yaml]\n", single_pool(origin))
}

/// What follows `BASE` (which watches files every 50 ms): one pool and one policy file.
fn rest_with_policy(origin: &Origin) -> String {
    format!("{}policies: [policy.yaml]\n", single_pool(origin))
}

fn status(p: &Proxy, path: &str) -> u16 {
    client().get(p.url(path)).send().expect("request").status().as_u16()
}

/// A counter sample, 0 while the labelled series does not exist yet.
fn reloads(p: &Proxy, result: &str) -> f64 {
    p.metric(&format!("palisade_policy_reloads_total{{result=\"{result}\"}}"))
        .unwrap_or(0.0)
}

/// `(generation, hash)` labels of the single `palisade_policy_info` series.
fn policy_info(p: &Proxy) -> (u64, String) {
    let text = p.metrics_text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("palisade_policy_info{"))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one policy_info series expected:\n{text}");
    let label = |name: &str| {
        let start = lines[0]
            .find(&format!("{name}=\""))
            .unwrap_or_else(|| panic!("no {name} in {}", lines[0]))
            + name.len()
            + 2;
        let len = lines[0][start..].find('"').expect("closing quote");
        lines[0][start..start + len].to_string()
    };
    (label("generation").parse().expect("numeric generation"), label("hash"))
}

fn wait_generation(p: &Proxy, generation: u64) {
    eventually(&format!("policy generation {generation}"), || {
        (policy_info(p).0 == generation).then_some(())
    });
}

#[test]
fn sighup_reloads_the_policy() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start_with(&config_without_watch(&origin), &[("policy.yaml", ALLOW_ALL)], &[]);
    assert_eq!(status(&p, "/admin/users"), 200);
    let (gen_before, hash_before) = policy_info(&p);
    assert_eq!(gen_before, 1);
    let ok_before = reloads(&p, "ok");

    // With watching off, a changed file alone changes nothing.
    p.rewrite("policy.yaml", BLOCK_ADMIN);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        status(&p, "/admin/users"),
        200,
        "reloaded without a signal although watch is off"
    );
    assert_eq!(reloads(&p, "ok"), ok_before);

    p.signal("HUP");
    eventually("/admin to be blocked after SIGHUP", || {
        (status(&p, "/admin/users") == 403).then_some(())
    });
    assert_eq!(status(&p, "/public"), 200, "the new policy blocks only /admin");
    assert_eq!(reloads(&p, "ok"), ok_before + 1.0);
    assert_eq!(reloads(&p, "failed"), 0.0);
    let (gen_after, hash_after) = policy_info(&p);
    assert_eq!(gen_after, gen_before + 1);
    assert_ne!(hash_after, hash_before, "the policy hash names the new policy");

    let forwarded = origin.seen_path("/admin").len();
    assert_eq!(status(&p, "/admin/other"), 403);
    assert_eq!(
        origin.seen_path("/admin").len(),
        forwarded,
        "a blocked request reached the origin"
    );
    assert!(p.log_text().contains("SIGHUP: reloading"));
}

#[test]
fn changed_files_reload_without_a_signal() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(&rest_with_policy(&origin), &[("policy.yaml", ALLOW_ALL)]);
    assert_eq!(status(&p, "/admin"), 200);

    p.rewrite("policy.yaml", BLOCK_ADMIN);
    eventually("/admin to be blocked after the policy file changed", || {
        (status(&p, "/admin") == 403).then_some(())
    });
    assert_eq!(policy_info(&p).0, 2);
    assert_eq!(reloads(&p, "ok"), 1.0);
    assert!(
        p.log_text().contains("policy.yaml changed: reloading"),
        "{}",
        p.log_text()
    );

    // The main configuration file is watched too: a new response header applies without restart.
    let with_header = format!(
        "{BASE}{}response_headers:\n  set:\n    x-reloaded: \"yes\"\npolicies: [policy.yaml]\n",
        single_pool(&origin)
    );
    p.rewrite("palisade.yaml", &with_header);
    eventually("the response header from the changed config", || {
        let r = client().get(p.url("/public")).send().expect("request");
        (r.headers().get("x-reloaded").is_some_and(|v| v == "yes")).then_some(())
    });
    assert_eq!(
        status(&p, "/admin"),
        403,
        "the policy stays in force across a config reload"
    );
}

#[test]
fn broken_policy_is_refused_and_the_old_one_keeps_serving() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(&rest_with_policy(&origin), &[("policy.yaml", BLOCK_ADMIN)]);
    let policy_path = p.dir.path().join("policy.yaml").display().to_string();
    let answers = || (status(&p, "/admin"), status(&p, "/public"));
    assert_eq!(answers(), (403, 200));
    let info_before = policy_info(&p);

    // Invalid YAML: the flow sequence on line 4 is never closed.
    p.rewrite(
        "policy.yaml",
        "rules:\n  - id: block-admin\n    match:\n      path_prefix: [/admin\n    action: block\n",
    );
    eventually("the invalid YAML to be refused", || {
        (reloads(&p, "failed") == 1.0).then_some(())
    });
    assert_eq!(answers(), (403, 200), "the previous policy keeps deciding");
    assert_eq!(policy_info(&p), info_before);
    let log = p.log_text();
    let refusal = log
        .lines()
        .find(|l| l.contains("reload refused:") && l.contains(&policy_path))
        .unwrap_or_else(|| panic!("no refusal naming {policy_path}:\n{log}"));
    assert!(refusal.contains("invalid YAML"), "{refusal}");
    let line_no: usize = refusal
        .split(&format!("{policy_path}:"))
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no line number after the file name: {refusal}"));
    assert!(
        (4..=6).contains(&line_no),
        "the syntax error is reported near line 4: {refusal}"
    );

    // A typo in a key (line 5) is an error too, never silently ignored.
    p.rewrite(
        "policy.yaml",
        "rules:\n  - id: block-admin\n    match:\n      path_prefix: [/admin]\n    acton: block\n",
    );
    eventually("the unknown key to be refused", || {
        (reloads(&p, "failed") == 2.0).then_some(())
    });
    assert_eq!(answers(), (403, 200));
    assert_eq!(policy_info(&p), info_before);
    let log = p.log_text();
    assert!(
        log.lines().any(|l| l.contains("reload refused:")
            && l.contains(&format!("{policy_path}:5:"))
            && l.contains("field `rules[0].acton`:")),
        "the refusal names file, line 5 and the unknown key:\n{log}"
    );
    assert_eq!(reloads(&p, "ok"), 0.0);

    // Fixing the file is picked up as usual.
    p.rewrite("policy.yaml", ALLOW_ALL);
    eventually("the fixed policy to load", || {
        (status(&p, "/admin") == 200).then_some(())
    });
    assert_eq!(reloads(&p, "ok"), 1.0);
    assert_eq!(policy_info(&p).0, info_before.0 + 1);
}

fn limited(per: &str, extra_rule: &str) -> String {
    format!(
        "rules:\n{extra_rule}limits:\n  - id: burst\n    key: client_ip\n    requests: 3\n    per: {per}\n    match:\n      path_prefix: [/limited]\n"
    )
}

#[test]
fn reload_keeps_counters_of_unchanged_limits_and_resets_changed_ones() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    // Windows of a minute: the test ends long before a window would roll over on its own.
    let p = Proxy::start(
        &rest_with_policy(&origin),
        &[("policy.yaml", &limited("60s", "  []\n"))],
    );
    for i in 0..3 {
        assert_eq!(status(&p, "/limited"), 200, "request {i} is within the limit");
    }
    assert_eq!(status(&p, "/limited"), 429);

    // An unrelated change: a new rule. The limit is the same, so the client stays throttled.
    let unrelated = "  - id: block-other\n    match:\n      path_prefix: [/other]\n    action: block\n";
    p.rewrite("policy.yaml", &limited("60s", unrelated));
    wait_generation(&p, 2);
    assert_eq!(status(&p, "/other"), 403, "the new rule is in force");
    assert_eq!(status(&p, "/limited"), 429, "the reload handed out a fresh allowance");

    // A changed window is a new limit with a new counter.
    p.rewrite("policy.yaml", &limited("50s", unrelated));
    wait_generation(&p, 3);
    for i in 0..3 {
        assert_eq!(status(&p, "/limited"), 200, "request {i} under the changed limit");
    }
    assert_eq!(status(&p, "/limited"), 429, "the changed limit is enforced");
    assert_eq!(
        origin.seen_path("/limited").len(),
        6,
        "throttled requests never reach the origin"
    );
}

#[test]
fn no_request_fails_during_reloads() {
    const RELOADS: usize = 10;
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start_with(&config_without_watch(&origin), &[("policy.yaml", ALLOW_ALL)], &[]);
    let done = Arc::new(AtomicBool::new(false));
    let sent: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);

    // One client keeps its connection alive across reloads, one opens a new connection per request.
    let clients: Vec<_> = [true, false]
        .into_iter()
        .enumerate()
        .map(|(n, keep_alive)| {
            let url = p.url("/steady");
            let (done, sent) = (done.clone(), sent.clone());
            thread::spawn(move || {
                let mut b = reqwest::blocking::Client::builder().timeout(PATIENCE);
                if !keep_alive {
                    b = b.pool_max_idle_per_host(0);
                }
                let c = b.build().expect("client");
                // Safety bounds only: the main thread ends the run after its last reload.
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut outcomes = Vec::new();
                while outcomes.len() < 5000 && Instant::now() < deadline && !done.load(Ordering::SeqCst) {
                    outcomes.push(
                        c.get(&url)
                            .send()
                            .map(|r| r.status().as_u16())
                            .map_err(|e| e.to_string()),
                    );
                    sent[n].fetch_add(1, Ordering::SeqCst);
                }
                outcomes
            })
        })
        .collect();

    let progress = || sent.iter().map(|s| s.load(Ordering::SeqCst)).collect::<Vec<_>>();
    for i in 0..RELOADS {
        // Both clients make progress between reloads, so the reloads interleave with traffic.
        let before = progress();
        eventually("both clients to send a request", || {
            progress()
                .iter()
                .zip(&before)
                .all(|(now, then)| now > then)
                .then_some(())
        });
        // Each reload installs a genuinely different policy (not touching /steady).
        let text =
            format!("rules:\n  - id: block-{i}\n    match:\n      path_prefix: [/never-{i}]\n    action: block\n");
        p.rewrite("policy.yaml", &text);
        p.signal("HUP");
        wait_generation(&p, i as u64 + 2);
    }
    done.store(true, Ordering::SeqCst);

    for (n, t) in clients.into_iter().enumerate() {
        let outcomes = t.join().expect("client thread");
        assert!(
            outcomes.len() >= RELOADS,
            "client {n} sent only {} requests",
            outcomes.len()
        );
        eprintln!("client {n}: {} requests across {RELOADS} reloads", outcomes.len());
        let bad: Vec<_> = outcomes.iter().filter(|o| !matches!(o, Ok(200))).collect();
        assert!(
            bad.is_empty(),
            "client {n}: {} of {} requests failed: {:?}",
            bad.len(),
            outcomes.len(),
            &bad[..bad.len().min(5)]
        );
    }
    assert_eq!(reloads(&p, "ok"), RELOADS as f64);
    assert_eq!(reloads(&p, "failed"), 0.0);
    assert_eq!(status(&p, "/never-9"), 403, "the last policy is the one in force");
}

/// Swapping in a policy with a 100k-entry deny list: it is compiled off the request path, so
/// requests keep being answered by the old policy until the swap, and none fails.
#[test]
fn a_100k_entry_list_swaps_in_without_failing_a_request() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let config = config_without_watch(&origin).replace(
        "policies: [policy.yaml]\n",
        "policies: [policy.yaml]\ntrusted_proxies: [127.0.0.1/32]\n",
    );
    let p = Proxy::start_with(&config, &[("policy.yaml", ALLOW_ALL)], &[]);
    let mut list = String::with_capacity(2_000_000);
    for i in 0..100_000u32 {
        // 10.0.0.0 upwards, /32 each: 100k distinct entries.
        let a = 0x0a00_0000 + i * 3;
        list.push_str(&format!(
            "{}.{}.{}.{}\n",
            a >> 24,
            (a >> 16) & 255,
            (a >> 8) & 255,
            a & 255
        ));
    }
    std::fs::write(p.dir.path().join("big.txt"), list).expect("list");
    let listed = "10.0.0.3"; // entry 1
    let unlisted = "10.0.0.4";
    let blocked = |p: &Proxy, ip: &str| {
        client()
            .get(p.url("/x"))
            .header("x-forwarded-for", ip)
            .send()
            .expect("request")
            .status()
            .as_u16()
    };
    assert_eq!(blocked(&p, listed), 200);

    let stop = Arc::new(AtomicBool::new(false));
    let (s, url) = (stop.clone(), p.url("/during"));
    let traffic = thread::spawn(move || {
        let c = client();
        let mut codes = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
            codes.push(c.get(&url).send().map(|r| r.status().as_u16()).unwrap_or(0));
        }
        codes
    });
    p.rewrite(
        "policy.yaml",
        "lists:\n  big: {files: [big.txt]}\nrules:\n  - {id: big-list, match: {ip_lists: [big]}, action: block}\n",
    );
    p.signal("HUP");
    wait_generation(&p, 2);
    stop.store(true, Ordering::SeqCst);
    let codes = traffic.join().expect("traffic");
    assert!(!codes.is_empty());
    assert!(
        codes.iter().all(|c| *c == 200),
        "a request failed during the swap: {codes:?}"
    );
    assert_eq!(blocked(&p, listed), 403);
    assert_eq!(blocked(&p, unlisted), 200);
}

/// A list file a policy names is watched like the policy itself: edited in place or replaced,
/// the running proxy picks the change up; a bad line is refused and the old list keeps serving.
#[test]
fn an_edited_list_file_is_picked_up_by_the_running_proxy() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let policy = "lists:\n  deny: {files: [lists/deny.txt]}\nrules:\n  - {id: deny-listed, match: {ip_lists: [deny]}, action: block}\n";
    let p = Proxy::start(
        &format!("trusted_proxies: [127.0.0.1]\n{}", rest_with_policy(&origin)),
        &[("policy.yaml", policy), ("lists/deny.txt", "# denied\n192.0.2.1\n")],
    );
    // Every answer that is not a refusal was forwarded: counted, to compare with the origin.
    let allowed = std::cell::Cell::new(0);
    let as_client = |ip: &str| {
        let status = client()
            .get(p.url("/x"))
            .header("x-forwarded-for", ip)
            .send()
            .expect("request")
            .status()
            .as_u16();
        if status == 200 {
            allowed.set(allowed.get() + 1);
        }
        status
    };
    assert_eq!(as_client("192.0.2.1"), 403);
    assert_eq!(as_client("198.51.100.9"), 200);

    // Edited in place (same inode): a new network is denied.
    let list = p.dir.path().join("lists/deny.txt");
    std::fs::write(&list, "# denied\n192.0.2.1\n198.51.100.0/24  # added\n").expect("edit list");
    eventually("the added network to be denied", || {
        (as_client("198.51.100.9") == 403).then_some(())
    });
    assert_eq!(policy_info(&p).0, 2);

    // A typo is refused whole: the previous list keeps serving.
    p.rewrite("lists/deny.txt", "192.0.2.1\n198.51.100.999\n");
    eventually("the refused reload", || (reloads(&p, "failed") >= 1.0).then_some(()));
    assert_eq!(as_client("198.51.100.9"), 403, "the old list still applies");
    assert!(p.log_text().contains("198.51.100.999"), "{}", p.log_text());

    // Replaced (rename over it): the entry is gone again.
    p.rewrite("lists/deny.txt", "192.0.2.1\n");
    eventually("the removed network to be let through", || {
        (as_client("198.51.100.9") == 200).then_some(())
    });
    assert_eq!(as_client("192.0.2.1"), 403);
    assert_eq!(
        origin.seen_path("/x").len(),
        allowed.get(),
        "only the allowed requests were forwarded (polling before a reload lands may add some)"
    );
}
