//! The demo of `make run` and `make demo-attack`: the demo streaming platform
//! (examples/demo/platform.rs) alone on a free port, its HTTP endpoints and its chat room; the
//! shipped demo configuration, policy and term list; the configuration through Palisade; and,
//! once the moderation stage is in, the whole `make demo-attack` scenario through Palisade.

mod common;
#[path = "../examples/demo/platform.rs"]
mod platform;
#[path = "../examples/demo/wire.rs"]
#[allow(dead_code)]
mod wire;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{eventually, Proxy, PATIENCE};
use platform::Platform;
use serde_json::Value;
use serde_yaml::Value as Yaml;
use wire::{Client, Event, Handshake, Reply};

/// So long that the room's own messages never come during a test that does not want them.
const QUIET: Duration = Duration::from_secs(3600);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).expect("shipped file")
}

fn yaml(path: &str) -> Yaml {
    serde_yaml::from_str(&read(path)).expect("valid YAML")
}

fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    wire::http(addr, method, path, headers, body).expect("HTTP exchange")
}

fn login(addr: &str, user: &str, ip: &str) -> String {
    let r = http(
        addr,
        "POST",
        "/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-forwarded-for", ip),
        ],
        &format!("username={user}"),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    format!("session={}", r.set_cookie("session").expect("session cookie"))
}

fn open(addr: &str, headers: &[(&str, &str)]) -> Client {
    match Client::connect(addr, "/chat", headers).expect("connect") {
        Handshake::Open(c) => c,
        Handshake::Refused(r) => panic!("chat refused: {} {}", r.status, r.body),
    }
}

/// Join the chat room through Palisade and read the welcome. A connection that ends right
/// after its `101` is Pingora's upgrade race (cloudflare/pingora#946: the upgrade request's
/// empty body, read after a fast origin's `101`, ends the tunnel); it is retried, as a
/// browser's user would, until Palisade carries a fix.
fn join(addr: &str, headers: &[(&str, &str)]) -> Client {
    for _ in 0..5 {
        let mut c = open(addr, headers);
        match c.recv(PATIENCE).expect("recv") {
            Some(Event::Text(_)) => return c,
            Some(Event::Closed(_)) => continue,
            None => panic!("no welcome"),
        }
    }
    panic!("the chat connection ended after its 101 five times in a row");
}

/// The next chat line as (user, message), skipping nothing; panics on timeout or close.
fn next(c: &mut Client) -> (String, String) {
    match c.recv(PATIENCE).expect("recv") {
        Some(Event::Text(t)) => {
            let v: Value = serde_json::from_str(&t).expect("chat line is JSON");
            (
                v["user"].as_str().expect("user").to_string(),
                v["message"].as_str().expect("message").to_string(),
            )
        }
        other => panic!("expected a chat line, got {other:?}"),
    }
}

/// Chat lines until one with this message, returned with all those before it.
fn until(c: &mut Client, message: &str) -> Vec<(String, String)> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let line = next(c);
        let done = line.1 == message;
        seen.push(line);
        if done {
            return seen;
        }
    }
    panic!("{message:?} never came; saw {seen:?}");
}

#[test]
fn handshake_key_sha1_and_base64_match_their_standards() {
    // RFC 6455 §1.3's example.
    assert_eq!(
        wire::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    // FIPS 180-4's "abc" and a two-block message.
    assert_eq!(
        hex::encode(wire::sha1(b"abc")),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    assert_eq!(
        hex::encode(wire::sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
    );
    // RFC 4648 §10.
    for (raw, enc) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(wire::base64(raw.as_bytes()), enc);
    }
}

#[test]
fn platform_answers_its_http_endpoints() {
    let p = Platform::spawn("127.0.0.1:0", QUIET).expect("platform");
    let addr = p.addr.to_string();
    let a = addr.as_str();

    assert_eq!(http(a, "GET", "/healthz", &[], "").status, 200);
    let page = http(a, "GET", "/", &[], "");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    assert!(page.body.contains("new WebSocket("), "the page has its chat client");
    let csp = page.header("content-security-policy").expect("the page's own CSP");
    assert!(
        csp.contains("script-src 'sha256-") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(http(a, "GET", "/login", &[], "").status, 200, "the sign-in form");

    let bad = http(a, "POST", "/login", &[], "username=no%20spaces");
    assert_eq!(bad.status, 400);
    let cookie = login(a, "alice", "127.0.0.1");
    let json = [("cookie", cookie.as_str()), ("content-type", "application/json")];

    let anonymous = http(a, "POST", "/api/profile", &[], r#"{"bio": "hi"}"#);
    assert_eq!(anonymous.status, 401);
    let r = http(
        a,
        "POST",
        "/api/profile",
        &json,
        r#"{"display_name": "Alice", "bio": "hi there"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(v["user"], "alice");
    assert_eq!(v["profile"]["bio"], "hi there");
    let saved: Value = serde_json::from_str(&http(a, "GET", "/api/profile", &json, "").body).expect("JSON");
    assert_eq!(saved["profile"]["display_name"], "Alice");
    assert_eq!(http(a, "POST", "/api/profile", &json, "not json").status, 400);

    let r = http(a, "POST", "/api/stream/title", &json, r#"{"title": "Boss rush"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let stream: Value = serde_json::from_str(&http(a, "GET", "/api/stream", &[], "").body).expect("JSON");
    assert_eq!(stream["title"], "Boss rush");

    assert_eq!(
        http(a, "GET", "/chat", &[], "").status,
        426,
        "the room needs a WebSocket"
    );
    let echo: Value = serde_json::from_str(&http(a, "GET", "/anything?x=1", &[], "").body).expect("JSON");
    assert_eq!(echo["target"], "/anything?x=1", "other paths echo the request");
}

#[test]
fn chat_room_broadcasts_every_message_to_everyone() {
    let p = Platform::spawn("127.0.0.1:0", QUIET).expect("platform");
    let addr = p.addr.to_string();
    let cookie = login(&addr, "alice", "127.0.0.1");
    let mut alice = open(&addr, &[("cookie", &cookie)]);
    let mut guest = open(&addr, &[]);
    assert_eq!(next(&mut alice).0, "system", "a welcome");
    let (user, welcome) = next(&mut guest);
    assert_eq!(user, "system");
    assert!(welcome.contains("guest-"), "{welcome}");

    alice.send_text("hello, room").expect("send");
    for c in [&mut alice, &mut guest] {
        assert_eq!(next(c), ("alice".into(), "hello, room".into()));
    }

    // A message in two fragments with a ping between them (RFC 6455 §5.4) is one line.
    let mask = Some([1, 2, 3, 4]);
    let mut first = wire::encode(wire::OP_TEXT, b"frag", mask);
    first[0] &= 0x7F;
    let mut last = wire::encode(wire::OP_CONTINUATION, b"mented", mask);
    last[0] |= 0x80;
    guest.send_raw(&first).expect("send");
    guest.send_raw(&wire::encode(wire::OP_PING, b"p", mask)).expect("send");
    guest.send_raw(&last).expect("send");
    let (user, message) = next(&mut alice);
    assert!(user.starts_with("guest-"));
    assert_eq!(message, "fragmented");

    // The title is announced in the room.
    let json = [("cookie", cookie.as_str()), ("content-type", "application/json")];
    http(
        &addr,
        "POST",
        "/api/stream/title",
        &json,
        r#"{"title": "Any% practice"}"#,
    );
    until(&mut guest, "alice changed the stream title to: Any% practice");

    // A client frame without a mask is a protocol error (RFC 6455 §5.1).
    guest
        .send_raw(&wire::encode(wire::OP_TEXT, b"bare", None))
        .expect("send");
    let deadline = Instant::now() + PATIENCE;
    loop {
        match guest.recv(PATIENCE).expect("recv") {
            Some(Event::Closed(code)) => {
                assert_eq!(code, Some(wire::CLOSE_PROTOCOL_ERROR));
                break;
            }
            Some(Event::Text(_)) if Instant::now() < deadline => {}
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

#[test]
fn chat_room_speaks_on_its_own() {
    let p = Platform::spawn("127.0.0.1:0", Duration::from_millis(50)).expect("platform");
    let mut c = open(&p.addr.to_string(), &[]);
    let welcome = next(&mut c);
    let periodic = next(&mut c);
    assert_eq!(periodic.0, "system");
    assert_ne!(periodic.1, welcome.1);
    assert!(periodic.1.contains("watching"), "{}", periodic.1);
}

#[test]
fn demo_policy_keeps_the_default_protections_and_adds_moderation() {
    let policy = yaml("deploy/demo/policy.yaml");
    let default = yaml("policies/default.yaml");
    let keys: BTreeSet<&str> = policy
        .as_mapping()
        .expect("a mapping")
        .keys()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["lists", "rules", "limits", "moderation", "offenders"])
    );
    // Everything the default policy does, the demo's does too, unchanged.
    for section in ["rules", "limits"] {
        for item in default[section].as_sequence().expect("a list") {
            let same = policy[section]
                .as_sequence()
                .expect("a list")
                .iter()
                .find(|p| p["id"] == item["id"]);
            assert_eq!(same, Some(item), "{section} {:?}", item["id"]);
        }
    }
    assert_eq!(policy["lists"]["denied"], default["lists"]["denied"]);
    // The escalation the README and the Makefile describe.
    let offenders = &policy["offenders"];
    assert_eq!(offenders["throttle_at"].as_u64(), Some(5));
    assert_eq!(offenders["strikes"].as_u64(), Some(10));
    assert_eq!(offenders["identity"].as_str(), Some("cookie:session"));

    // The moderation section names a list file that is there, and routes the config has.
    let moderation = &policy["moderation"];
    let list = moderation["lists"]["demo"]["file"].as_str().expect("list file");
    assert!(repo().join("deploy/demo").join(list).is_file(), "{list}");
    let config = yaml("deploy/demo/palisade.yaml");
    assert_eq!(config["policies"][0].as_str(), Some("policy.yaml"));
    let routes: BTreeSet<&str> = config["routes"]
        .as_sequence()
        .expect("routes")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    let rules = moderation["rules"].as_sequence().expect("moderation rules");
    let ids: Vec<&str> = rules.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, ["chat-abuse", "profile-abuse"]);
    for rule in rules {
        for route in rule["routes"].as_sequence().expect("routes") {
            assert!(routes.contains(route.as_str().expect("name")), "{route:?}");
        }
    }
}

#[test]
fn example_term_list_follows_the_documented_syntax() {
    let text = read("policies/lists/example-terms.txt");
    let mut terms = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (term, attrs) = line.split_once('|').unwrap_or((line, ""));
        for attr in attrs.split_whitespace() {
            let (k, v) = attr.split_once('=').expect("key=value");
            match k {
                "category" => assert!(!v.is_empty()),
                "weight" => assert!(v.parse::<u32>().is_ok_and(|w| w > 0), "{line}"),
                _ => panic!("unknown attribute in {line:?}"),
            }
        }
        terms.push(term.trim().to_string());
    }
    // The words demo-attack relies on, and an exception.
    for t in ["badword", "jerk", "loser", "idiot", "crud", "go away", "!scrudge"] {
        assert!(terms.iter().any(|x| x == t), "{t} missing from {terms:?}");
    }
}

/// Palisade with the shipped demo configuration and policy, on ports and files of its own,
/// in front of `platform`. `strip_moderation` leaves the policy's `moderation:` out.
fn demo_proxy(platform: &Platform, strip_moderation: bool) -> Proxy {
    let mut config = yaml("deploy/demo/palisade.yaml");
    config["server"]["pid_file"] = "{DIR}/palisade.pid".into();
    config["server"]["upgrade_sock"] = "{DIR}/upgrade.sock".into();
    config["listeners"][0]["address"] = "{LISTEN}".into();
    config["metrics"]["address"] = "{METRICS}".into();
    config["telemetry"]["path"] = "{DIR}/telemetry.jsonl".into();
    config["upstreams"]["demo"]["backends"] = vec![Yaml::from(platform.addr.to_string())].into();
    // Laid out as in the repository, so the policy's relative list path holds.
    config["policies"] = vec![Yaml::from("deploy/demo/policy.yaml")].into();
    let mut policy = yaml("deploy/demo/policy.yaml");
    if strip_moderation {
        policy.as_mapping_mut().expect("mapping").remove("moderation");
    }
    let config = serde_yaml::to_string(&config).expect("config");
    let policy = serde_yaml::to_string(&policy).expect("policy");
    let list = read("policies/lists/example-terms.txt");
    let p = Proxy::start_with(
        &config,
        &[
            ("deploy/demo/policy.yaml", policy.as_str()),
            ("policies/lists/example-terms.txt", list.as_str()),
        ],
        &[],
    );
    let addr = p.addr.to_string();
    eventually("the demo origin through Palisade", || {
        (http(&addr, "GET", "/", &[], "").status == 200).then_some(())
    });
    p
}

#[test]
fn demo_configuration_proxies_the_page_the_api_and_the_chat_room() {
    let platform = Platform::spawn("127.0.0.1:0", QUIET).expect("platform");
    let p = demo_proxy(&platform, true);
    let addr = p.addr.to_string();
    let a = addr.as_str();

    // The page keeps its own CSP (its route does not set one); the API gets Palisade's.
    let page = http(a, "GET", "/", &[], "");
    assert!(page
        .header("content-security-policy")
        .is_some_and(|c| c.contains("'sha256-")));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("server"), None, "Server removed");
    let api = http(a, "GET", "/api/stream", &[], "");
    assert_eq!(api.status, 200);
    assert_eq!(
        api.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );

    let cookie = login(a, "alice", "198.19.3.1");
    let json = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/json"),
        ("x-forwarded-for", "198.19.3.1"),
    ];
    let r = http(
        a,
        "POST",
        "/api/profile",
        &json,
        r#"{"display_name": "Alice", "bio": "hi"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);

    let mut alice = join(a, &[("cookie", &cookie), ("x-forwarded-for", "198.19.3.1")]);
    let mut staff = join(a, &[("x-forwarded-for", "198.19.3.2")]);
    alice.send_text("through the edge").expect("send");
    until(&mut staff, "through the edge");
    until(&mut alice, "through the edge");

    // The default policy's protections, as `make run` prints them.
    assert_eq!(
        http(a, "GET", "/", &[("x-forwarded-for", "203.0.113.9")], "").status,
        403
    );
    assert_eq!(http(a, "GET", "/.git/config", &[], "").status, 403);
}

/// What `make demo-attack` shows, as assertions. Palisade reads the policy's
/// `moderation:` section.
#[test]
fn demo_attack_scenario_through_palisade() {
    let platform = Platform::spawn("127.0.0.1:0", QUIET).expect("platform");
    let origin = platform.addr.to_string();
    let p = demo_proxy(&platform, false);
    let addr = p.addr.to_string();
    let a = addr.as_str();
    let (attacker, staff_ip) = ("198.18.7.7", "198.19.7.7");

    let cookie = login(a, "mallory", attacker);
    let staff_cookie = login(a, "mod-sam", staff_ip);
    let mut staff = join(a, &[("cookie", &staff_cookie), ("x-forwarded-for", staff_ip)]);
    let mut chat = join(a, &[("cookie", &cookie), ("x-forwarded-for", attacker)]);

    // A clean message is delivered.
    chat.send_text("hi all, loving the stream").expect("send");
    until(&mut staff, "hi all, loving the stream");

    // Evasions are dropped; the next message on the same connection still arrives.
    for (n, text) in ["you are a b.a.d.w.o.r.d", "B4DW0RD!!!", "total b\u{0430}dw\u{043E}rd"]
        .iter()
        .enumerate()
    {
        chat.send_text(text).expect("send");
        let marker = format!("(still here {n})");
        chat.send_text(&marker).expect("send");
        let seen = until(&mut staff, &marker);
        assert!(seen.iter().all(|(_, m)| m != text), "{text:?} reached staff: {seen:?}");
    }

    // An abusive profile is refused, and never reaches the origin.
    let json = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/json"),
        ("x-forwarded-for", attacker),
    ];
    let clean = r#"{"display_name": "mallory", "bio": "I speedrun."}"#;
    assert_eq!(http(a, "POST", "/api/profile", &json, clean).status, 200);
    let abusive = r#"{"display_name": "mallory", "bio": "everyone watching is a L.0.S.E.R"}"#;
    assert_eq!(http(a, "POST", "/api/profile", &json, abusive).status, 403);
    let saved: Value = serde_json::from_str(&http(&origin, "GET", "/api/profile", &json, "").body).expect("JSON");
    assert_eq!(
        saved["profile"]["bio"], "I speedrun.",
        "the abusive bio was not forwarded"
    );

    // Repeated abuse: probation (429) first, then a ban (403).
    let probe = |cookie: &str, ip: &str| {
        http(
            a,
            "GET",
            "/api/stream",
            &[("cookie", cookie), ("x-forwarded-for", ip)],
            "",
        )
        .status
    };
    let mut statuses = Vec::new();
    for (n, text) in ["jerk", "go   away", "ur an IDIOT", "cruuuud", "l o s e r"]
        .iter()
        .cycle()
        .take(30)
        .enumerate()
    {
        if chat.send_text(text).is_err() {
            break;
        }
        let marker = format!("(again {n})");
        if chat.send_text(&marker).is_ok() {
            // Once the marker is through, the abusive message has been judged. A ban may end
            // the connection instead, and then the marker never comes.
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                match staff.recv(Duration::from_millis(100)).expect("recv") {
                    Some(Event::Text(t)) if t.contains(&marker) => break,
                    Some(Event::Closed(code)) => panic!("staff's connection closed: {code:?}"),
                    _ => {}
                }
            }
        }
        let status = probe(&cookie, attacker);
        statuses.push(status);
        if status == 403 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&403), "banned in the end: {statuses:?}");
    assert!(statuses.contains(&429), "probation before the ban: {statuses:?}");

    // The ban: a new chat connection is refused, the session is refused from a new address,
    // and other viewers are not affected.
    match Client::connect(a, "/chat", &[("cookie", &cookie), ("x-forwarded-for", attacker)]).expect("connect") {
        Handshake::Refused(r) => assert_eq!(r.status, 403),
        Handshake::Open(_) => panic!("a banned user's chat connection was accepted"),
    }
    assert_eq!(probe(&cookie, "198.18.7.8"), 403, "the ban follows the session");
    assert_eq!(
        http(a, "GET", "/", &[("x-forwarded-for", "198.19.7.8")], "").status,
        200
    );

    // What the origin says is moderated on its way to staff too.
    let direct = [("cookie", cookie.as_str()), ("content-type", "application/json")];
    http(
        &origin,
        "POST",
        "/api/stream/title",
        &direct,
        r#"{"title": "go away, all of you"}"#,
    );
    http(
        &origin,
        "POST",
        "/api/stream/title",
        &direct,
        r#"{"title": "Chill again"}"#,
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, message) = next(&mut staff);
        assert!(!message.contains("all of you"), "the origin's abuse reached staff");
        if message.ends_with("Chill again") {
            break;
        }
        assert!(Instant::now() < deadline);
    }

    // Telemetry and metrics tell the story.
    eventually("moderation alerts in telemetry", || {
        let events = p.events();
        let actions: BTreeSet<String> = events
            .iter()
            .filter(|e| e["event"]["kind"] == "alert")
            .filter_map(|e| e["palisade"]["findings"].as_array())
            .flatten()
            .filter_map(|f| f["action"].as_str().map(str::to_string))
            .collect();
        (actions.contains("drop") && actions.contains("block")).then_some(())
    });
    let metrics = p.metrics_text();
    for action in ["drop", "block"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("palisade_findings_total") && l.contains(&format!("action=\"{action}\""))),
            "{metrics}"
        );
    }
}
