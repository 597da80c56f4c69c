//! Identities hashed at the edge: a session cookie named by `offenders.identity` is a
//! credential, so none of Palisade's outputs may ever hold it — not the telemetry file, not the
//! log (even at debug level), not the state file, not `/metrics`, not the admin API — while
//! the ban it earned still works, from any address. Also: an operator bans an account by its
//! value once, and a state file written before pseudonyms is migrated at start.

mod common;
use common::*;

use std::path::Path;

const TOKEN: &str = "correct-horse-battery-staple";
/// The cookie value of the offending session. Nothing written by Palisade may contain it.
const SESSION: &str = "S3SS10N-f0e1d2c3b4a5-NEVER-IN-ANY-OUTPUT";
/// A session an operator bans by hand through the admin API.
const BANNED_BY_HAND: &str = "0PERATOR-BANNED-SESSION-77aa55";

const POLICY: &str = "\
rules:
  - id: no-admin
    match: {path_prefix: [/admin]}
    action: block
offenders:
  strikes: 3
  window: 60s
  ban_for: 10m
  identity: cookie:session
";

fn start(rust_log: &'static str, state: &[(&str, &str)]) -> (Origin, Proxy, String) {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let admin = free_addr();
    let rest = format!(
        "trusted_proxies: [127.0.0.1]\npolicies: [p.yaml]\n{}admin:\n  address: {admin}\n  token_file: token.txt\nstate:\n  path: {{DIR}}/offenders.json\n  save_interval: 50ms\n",
        single_pool(&origin)
    );
    let mut files = vec![("token.txt", TOKEN), ("p.yaml", POLICY)];
    files.extend_from_slice(state);
    let p = Proxy::start_logging(&format!("{BASE}{rest}"), &files, &[], rust_log);
    eventually("the admin listener", || std::net::TcpStream::connect(admin).ok());
    (origin, p, format!("http://{admin}"))
}

/// A request from `client` (named by the trusted proxy 127.0.0.1) with `session` as cookie.
fn get(p: &Proxy, path: &str, client_ip: &str, session: Option<&str>) -> u16 {
    let mut req = client().get(p.url(path)).header("x-forwarded-for", client_ip);
    if let Some(s) = session {
        req = req.header("cookie", format!("theme=dark; session={s}; lang=en"));
    }
    req.send().expect("request").status().as_u16()
}

fn admin_get(admin: &str, path: &str) -> String {
    client()
        .get(format!("{admin}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.text())
        .expect("admin")
}

/// Every file under `dir`, recursively, as (path, bytes).
fn every_file(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_banned_session_cookie_appears_in_no_output_and_the_ban_holds() {
    let (origin, p, admin) = start("debug", &[]);
    assert_eq!(get(&p, "/ok", "198.51.100.1", Some(SESSION)), 200);
    for _ in 0..3 {
        assert_eq!(get(&p, "/admin", "198.51.100.1", Some(SESSION)), 403);
    }
    // The session is banned: from another address too, and it is not forwarded.
    assert_eq!(get(&p, "/from-elsewhere", "198.51.100.2", Some(SESSION)), 403);
    assert!(origin.seen_path("/from-elsewhere").is_empty());
    // Another address without the cookie is not.
    assert_eq!(get(&p, "/innocent", "198.51.100.3", None), 200);

    // An operator bans another session by its value, once; it is refused from then on.
    let r = client()
        .post(format!("{admin}/bans?id={BANNED_BY_HAND}&for=1h"))
        .bearer_auth(TOKEN)
        .send()
        .expect("ban");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().expect("json");
    let by_hand = body["actor"].as_str().expect("actor").to_string();
    assert!(
        by_hand.starts_with("id:hmac:") && by_hand.len() == "id:hmac:".len() + 32,
        "{by_hand}"
    );
    assert_eq!(get(&p, "/by-hand", "198.51.100.4", Some(BANNED_BY_HAND)), 403);

    // The ban list names the sessions by pseudonym only.
    let bans: serde_json::Value = serde_json::from_str(&admin_get(&admin, "/bans")).expect("json");
    let actors: Vec<&str> = bans["bans"]
        .as_array()
        .expect("bans")
        .iter()
        .filter_map(|b| b["actor"].as_str())
        .collect();
    assert!(actors.contains(&"198.51.100.1"), "{actors:?}");
    assert!(actors.contains(&by_hand.as_str()), "{actors:?}");
    assert_eq!(
        actors.iter().filter(|a| a.starts_with("id:hmac:")).count(),
        2,
        "{actors:?}"
    );
    // The pseudonym GET /bans shows lifts the ban it names.
    let offender = actors
        .iter()
        .find(|a| a.starts_with("id:hmac:") && **a != by_hand)
        .expect("the offending session")
        .to_string();

    let state = p.dir.path().join("offenders.json");
    eventually("the state file to hold the session's ban", || {
        std::fs::read_to_string(&state)
            .ok()
            .filter(|s| s.contains(offender.trim_start_matches("id:")) && s.contains(&by_hand[3..]))
            .map(|_| ())
    });
    eventually("a telemetry event of the ban", || {
        p.events()
            .iter()
            .any(|e| e["palisade"]["decision"]["rule"] == "repeat-offender-ban")
            .then_some(())
    });
    eventually("the ban in the log", || {
        p.log_text().contains(": Ban until").then_some(())
    });
    assert!(
        p.log_text().contains("id:hmac:"),
        "the log names the session by pseudonym"
    );

    // Every channel, read now: the admin API (every endpoint), /metrics, and every file the
    // proxy wrote (telemetry, its debug log, the state file, the key beside it).
    let mut outputs: Vec<(String, Vec<u8>)> = ["/healthz", "/readyz", "/status", "/bans"]
        .iter()
        .map(|path| (format!("admin {path}"), admin_get(&admin, path).into_bytes()))
        .collect();
    outputs.push(("/metrics".into(), p.metrics_text().into_bytes()));
    outputs.extend(every_file(p.dir.path()));
    let written: Vec<&str> = outputs.iter().map(|(name, _)| name.as_str()).collect();
    for wanted in [
        "telemetry.jsonl",
        "palisade.log",
        "offenders.json",
        "offenders.json.key",
    ] {
        assert!(
            written.iter().any(|w| w.ends_with(wanted)),
            "{wanted} missing: {written:?}"
        );
    }
    for (name, bytes) in &outputs {
        for secret in [SESSION, BANNED_BY_HAND] {
            let lines: Vec<_> = String::from_utf8_lossy(bytes)
                .lines()
                .filter(|l| l.contains(secret))
                .map(str::to_string)
                .collect();
            assert!(
                !contains(bytes, secret),
                "{name} holds the session value {secret}: {lines:#?}"
            );
        }
    }
    // Debug logging was really on, so the log was a fair place to look.
    assert!(p.log_text().contains("DEBUG"), "the proxy did not log at debug level");

    let r = client()
        .delete(format!("{admin}/bans?pseudonym={offender}"))
        .bearer_auth(TOKEN)
        .send()
        .expect("unban");
    assert_eq!(r.status(), 200);
    assert_eq!(get(&p, "/forgiven", "198.51.100.5", Some(SESSION)), 200);
    // Unbanning by the value works as well, and the value still reaches no file.
    let r = client()
        .delete(format!("{admin}/bans?id={BANNED_BY_HAND}"))
        .bearer_auth(TOKEN)
        .send()
        .expect("unban");
    assert_eq!(r.status(), 200);
    assert_eq!(get(&p, "/forgiven-too", "198.51.100.6", Some(BANNED_BY_HAND)), 200);
}

#[test]
fn a_state_file_with_clear_identities_is_migrated_at_start() {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 3_600_000;
    let old = format!(
        r#"{{"format":1,"saved_at":1,"penalties":[[{{"id":"{SESSION}"}},{{"kind":"ban","until":{until},"first_seen":1,"last_seen":2,"bans":1,"strikes":3.0,"rules":["no-admin"],"reason":"3 strikes"}}]],"scores":[]}}"#
    );
    let (origin, p, _admin) = start("info", &[("offenders.json", old.as_str())]);
    // The ban carried over under the pseudonym: the session is still refused.
    assert_eq!(get(&p, "/still-banned", "198.51.100.9", Some(SESSION)), 403);
    assert!(origin.seen_path("/still-banned").is_empty());
    assert_eq!(get(&p, "/other", "198.51.100.9", Some("another-session")), 200);
    // The file was rewritten before serving: the value is gone from it.
    let text = std::fs::read_to_string(p.dir.path().join("offenders.json")).expect("state");
    assert!(!text.contains(SESSION), "{text}");
    assert!(text.contains("\"format\":2") && text.contains("hmac:"), "{text}");
    assert!(
        p.log_text().contains("1 identity value(s) stored in clear"),
        "{}",
        p.log_text()
    );
    assert!(!p.log_text().contains(SESSION));
}
