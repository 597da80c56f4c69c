//! The shipped policies with real traffic, as an operator would deploy them: what
//! `policies/streaming-platform.yaml` and `policies/lockdown.yaml` block, throttle and let
//! through, checked on the answer, the deciding rule in telemetry, and the origin (a refused
//! request must not reach it). Clients are told apart by `X-Forwarded-For` from the trusted
//! loopback proxy, each scenario with its own address so strikes do not mix.

mod common;
use common::*;

use std::path::Path;

use reqwest::blocking::RequestBuilder;

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0";

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("shipped file")
}

/// The proxy running the shipped policy `name`, with its list file beside it as shipped.
fn start(name: &str) -> (Origin, Proxy) {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let policy = repo_file(&format!("policies/{name}"));
    let list = repo_file("policies/lists/known-abusers.txt");
    let p = Proxy::start(
        &format!(
            "trusted_proxies: [127.0.0.1]\npolicies: [{name}]\n{}",
            single_pool(&origin)
        ),
        &[(name, policy.as_str()), ("lists/known-abusers.txt", list.as_str())],
    );
    (origin, p)
}

/// Send `req` as client `ip`; the status and the rule telemetry names (Null when none).
fn send(p: &Proxy, req: RequestBuilder, ip: &str) -> (u16, serde_json::Value, String) {
    let r = req.header("x-forwarded-for", ip).send().expect("request");
    let status = r.status().as_u16();
    let id = request_id(&r);
    let body = r.text().expect("body");
    let ev = p.event_for(&id);
    (status, ev["palisade"]["decision"]["rule"].clone(), body)
}

fn get(p: &Proxy, path: &str, ua: Option<&str>) -> RequestBuilder {
    let mut r = client().get(p.url(path));
    if let Some(ua) = ua {
        r = r.header("user-agent", ua);
    }
    r
}

fn post(p: &Proxy, path: &str, ua: Option<&str>, session: Option<&str>) -> RequestBuilder {
    let mut r = client().post(p.url(path)).body("{}");
    if let Some(ua) = ua {
        r = r.header("user-agent", ua);
    }
    if let Some(s) = session {
        r = r.header("cookie", format!("session={s}"));
    }
    r
}

fn null() -> serde_json::Value {
    serde_json::Value::Null
}

#[test]
fn streaming_platform_lets_viewers_through_and_refuses_what_it_says() {
    let (origin, p) = start("streaming-platform.yaml");
    // Let through: a viewer watching, a signed-in chatter.
    assert_eq!(
        send(&p, get(&p, "/live/channel/7", Some(BROWSER)), "203.0.113.10").0,
        200
    );
    assert_eq!(
        send(
            &p,
            post(&p, "/api/channels/7/chat", Some(BROWSER), Some("viewer-1")),
            "203.0.113.10"
        )
        .0,
        200
    );
    // Staff are allowed first, scanner or not.
    let (s, rule, _) = send(&p, get(&p, "/.git/config", Some("sqlmap/1.7")), "10.20.3.4");
    assert_eq!((s, rule), (200, "staff-network".into()));

    // Blocked: the list file's entries (an address, an IPv4 and an IPv6 network).
    for ip in ["192.0.2.66", "198.51.100.7", "2001:db8:bad::1"] {
        let (s, rule, _) = send(&p, get(&p, "/from-abuser", Some(BROWSER)), ip);
        assert_eq!((s, rule), (403, "known-abusers".into()), "{ip}");
    }
    let (s, rule, _) = send(&p, get(&p, "/", Some("Mozilla/5.0 Nikto/2.5")), "203.0.113.11");
    assert_eq!((s, rule), (403, "attack-tools".into()));
    let (s, rule, _) = send(&p, get(&p, "/.env", Some(BROWSER)), "203.0.113.12");
    assert_eq!((s, rule), (403, "secret-probes".into()));
    let (s, rule, body) = send(
        &p,
        post(&p, "/api/channels/7/chat/reply", Some(BROWSER), None),
        "203.0.113.13",
    );
    assert_eq!((s, rule), (403, "anonymous-chat".into()));
    assert!(body.contains("Sign in to chat."), "{body}");
    // A strike rule lets the request through and notes it.
    let r = post(&p, "/api/channels/7/follow", None, Some("bot-1"))
        .header("x-forwarded-for", "203.0.113.14")
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
    let ev = p.event_for(&request_id(&r));
    assert_eq!(ev["palisade"]["decision"]["also"][0], "agentless-writes");
    assert!(origin.seen_path("/from-abuser").is_empty() && origin.seen_path("/.env").is_empty());
    assert!(origin.seen_path("/api/channels/7/chat/reply").is_empty());
}

#[test]
fn streaming_platform_throttles_chat_per_session_and_blocks_signup_floods() {
    let (origin, p) = start("streaming-platform.yaml");
    // Five chat posts per session in 10 s; the sixth is throttled.
    for _ in 0..5 {
        let (s, rule, _) = send(
            &p,
            post(&p, "/api/channels/9/chat", Some(BROWSER), Some("chatty")),
            "203.0.113.20",
        );
        assert_eq!((s, rule), (200, null()));
    }
    let (s, rule, _) = send(
        &p,
        post(&p, "/api/channels/9/chat", Some(BROWSER), Some("chatty")),
        "203.0.113.20",
    );
    assert_eq!((s, rule), (429, "chat-per-account".into()));
    // The same address with another session still chats (per session, not per address).
    let (s, _, _) = send(
        &p,
        post(&p, "/api/channels/9/chat", Some(BROWSER), Some("quiet")),
        "203.0.113.20",
    );
    assert_eq!(s, 200);
    // Three sign-ups per address in 10 minutes; the fourth is blocked outright.
    for _ in 0..3 {
        assert_eq!(
            send(&p, post(&p, "/api/signup", Some(BROWSER), None), "203.0.113.21").0,
            200
        );
    }
    let (s, rule, _) = send(&p, post(&p, "/api/signup", Some(BROWSER), None), "203.0.113.21");
    assert_eq!((s, rule), (403, "signups-per-ip".into()));
    assert_eq!(origin.seen_path("/api/signup").len(), 3);
}

#[test]
fn streaming_platform_caps_simultaneous_streams_per_address() {
    let (origin, p) = start("streaming-platform.yaml");
    let url = p.url("/live/slow/1500");
    // Sixteen streams held open by the origin…
    let held: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                client()
                    .get(url)
                    .header("user-agent", BROWSER)
                    .header("x-forwarded-for", "203.0.113.30")
                    .send()
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    eventually("sixteen streams at the origin", || {
        (origin.seen_path("/live/slow/").len() >= 16).then_some(())
    });
    // …and the seventeenth is refused while they last.
    let (s, rule, _) = send(&p, get(&p, "/live/channel/1", Some(BROWSER)), "203.0.113.30");
    assert_eq!((s, rule), (429, "streams-per-ip".into()));
    // Another address is not affected.
    assert_eq!(
        send(&p, get(&p, "/live/channel/1", Some(BROWSER)), "203.0.113.31").0,
        200
    );
    for h in held {
        assert_eq!(h.join().expect("thread").expect("stream"), 200);
    }
}

#[test]
fn lockdown_refuses_tools_agentless_and_anonymous_writes_and_lets_browsers_read() {
    let (origin, p) = start("lockdown.yaml");
    assert_eq!(
        send(&p, get(&p, "/live/channel/7", Some(BROWSER)), "203.0.113.40").0,
        200
    );
    let (s, rule, _) = send(&p, get(&p, "/", Some("curl/8.5.0")), "203.0.113.41");
    assert_eq!((s, rule), (403, "attack-tools".into()));
    let (s, rule, _) = send(&p, get(&p, "/", None), "203.0.113.42");
    assert_eq!((s, rule), (403, "no-agent".into()));
    let (s, rule, body) = send(
        &p,
        post(&p, "/api/channels/7/follow", Some(BROWSER), None),
        "203.0.113.43",
    );
    assert_eq!((s, rule), (403, "anonymous-writes".into()));
    assert!(body.contains("Interaction is paused"), "{body}");
    let (s, rule, _) = send(&p, post(&p, "/api/signup", Some(BROWSER), Some("s1")), "203.0.113.44");
    assert_eq!((s, rule), (403, "signups-closed".into()));
    let (s, rule, _) = send(
        &p,
        post(&p, "/api/messages?has_link", Some(BROWSER), Some("s2")),
        "203.0.113.45",
    );
    assert_eq!((s, rule), (403, "dm-links".into()));
    // Staff with curl are let through.
    assert_eq!(send(&p, get(&p, "/", Some("curl/8.5.0")), "10.20.0.9").0, 200);
    // One chat message per session per 10 s.
    let chat = |sess: &str| {
        send(
            &p,
            post(&p, "/api/channels/7/chat", Some(BROWSER), Some(sess)),
            "203.0.113.46",
        )
    };
    assert_eq!(chat("s3").0, 200);
    let (s, rule, _) = chat("s3");
    assert_eq!((s, rule), (429, "chat-per-account".into()));
    assert!(origin.seen_path("/api/signup").is_empty() && origin.seen_path("/api/messages").is_empty());
}

#[test]
fn lockdown_bans_a_session_after_five_strikes_from_any_address() {
    let (origin, p) = start("lockdown.yaml");
    // Each refusal is a strike against the address and the session; 3 put it on probation and
    // requests refused on probation count too, so the fifth strike bans.
    let probe = |ip: &str| send(&p, post(&p, "/api/signup", Some(BROWSER), Some("troll")), ip);
    let mut rules = Vec::new();
    for ip in [
        "203.0.113.50",
        "203.0.113.51",
        "203.0.113.52",
        "203.0.113.53",
        "203.0.113.54",
    ] {
        rules.push(probe(ip).1);
    }
    assert_eq!(rules[0], "signups-closed");
    assert_eq!(rules[3], "repeat-offender-throttle");
    let (s, rule, _) = send(
        &p,
        get(&p, "/live/channel/7", Some(BROWSER)).header("cookie", "session=troll"),
        "203.0.113.60",
    );
    assert_eq!(
        (s, rule),
        (403, "repeat-offender-ban".into()),
        "the session is banned everywhere: {rules:?}"
    );
    assert!(origin.seen_path("/live/channel/7").is_empty());
}
