//! Moderation end to end (docs/moderation.md): term lists matched through evasions in request
//! bodies (refused before the origin sees them) and WebSocket messages in both directions
//! (dropped, masked, closed), strikes that ban the sender by address and account, monitor mode,
//! and the `palisade moderate` bench. Real proxy binary, real origins.

mod common;
use common::ws::{self, WsClient, WsOrigin};
use common::*;

use std::io::Write;
use std::process::{Command, Stdio};

const TERMS: &str = "\
# test list: stand-in words
badword | category=insult weight=2
jerk
you suck
!jerk chicken
";

/// One HTTP origin (`app`, every path) and one WebSocket origin (`chat`, under /chat).
fn config(http: &Origin, chat: &WsOrigin) -> String {
    format!(
        "upstreams:\n  app:\n    backends: [\"{}\"]\n  chat:\n    backends: [\"{}\"]\nroutes:\n  - name: chat\n    path_prefix: /chat\n    upstream: chat\n  - name: app\n    upstream: app\npolicies: [policy.yaml]\n",
        http.addr.expect("origin addr"),
        chat.addr
    )
}

fn policy(rules: &str, extra: &str) -> String {
    format!("moderation:\n  lists:\n    abuse: {{file: lists/abuse.txt}}\n  rules:\n{rules}{extra}")
}

fn start(rules: &str, extra: &str) -> (Proxy, Origin, WsOrigin) {
    let http = Origin::spawn("127.0.0.1:0").expect("origin");
    let chat = WsOrigin::spawn();
    let p = Proxy::start(
        &config(&http, &chat),
        &[("policy.yaml", &policy(rules, extra)), ("lists/abuse.txt", TERMS)],
    );
    (p, http, chat)
}

const BODY_RULE: &str = "    - {id: profile-text, lists: [abuse], routes: [app], in: [body], fields: [\"user.bio\", message], action: block}\n";

#[test]
fn body_evasions_are_refused_before_the_origin_and_innocent_words_pass_byte_for_byte() {
    let (p, origin, _chat) = start(BODY_RULE, "");
    let c = client();
    let evasions = [
        "badword",
        "B4DW0RD",
        "b.a.d.w.o.r.d",
        "b a d w o r d",
        "b_a_d_w_o_r_d",
        "baaaaadwooord",
        "ｂａｄｗｏｒｄ",
        "bаdwоrd", // Cyrillic а and о
        "bád̃wörd",
        "bad\u{200b}word",
        "b\u{202e}adword",
        "BaDwOrD!!!",
        "J3RK",
        "you suuuck",
        "y o u s u c k",
    ];
    for (i, e) in evasions.iter().enumerate() {
        let body = serde_json::json!({"user": {"bio": format!("hello, {e} there")}});
        let r = c
            .post(p.url(&format!("/profile/{i}")))
            .json(&body)
            .send()
            .expect("request");
        assert_eq!(r.status(), 403, "evasion {e:?} was not refused");
    }
    // A form field is read the same way.
    let r = c
        .post(p.url("/profile/form"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("message=what+a+j%33rk")
        .send()
        .expect("request");
    assert_eq!(r.status(), 403);
    assert!(
        origin.seen_path("/profile/").is_empty(),
        "a refused body must never reach the origin"
    );

    // Terms inside longer words, exceptions, and fields the rule does not look at pass untouched.
    let innocent = [
        r#"{"user":{"bio":"badwordsmith and jerkins, a jerky snack"}}"#,
        r#"{"user":{"bio":"I cook jerk chicken every Sunday"}}"#,
        r#"{"user":{"name":"badword"},"note":"badword"}"#,
    ];
    for (i, body) in innocent.iter().enumerate() {
        let path = format!("/innocent/{i}");
        let r = c
            .post(p.url(&path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("request");
        assert_eq!(r.status(), 200, "{body}");
        let seen = origin.seen_path(&path);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].body, body.as_bytes(), "forwarded byte for byte");
    }
}

#[test]
fn a_blocked_body_is_an_alert_with_a_redacted_excerpt() {
    let (p, _origin, _chat) = start(BODY_RULE, "");
    let r = client()
        .post(p.url("/profile"))
        .json(&serde_json::json!({"user": {"bio": "such a b4dword"}}))
        .send()
        .expect("request");
    assert_eq!(r.status(), 403);
    let ev = p.event_for(&request_id(&r));
    assert_eq!(ev["palisade"]["decision"]["rule"], "profile-text");
    let f = &ev["palisade"]["findings"][0];
    assert_eq!(f["stage"], "moderation");
    assert_eq!(f["rule"], "abuse");
    assert_eq!(f["category"], "insult");
    assert_eq!(f["field"], "json:user.bio");
    assert_eq!(f["action"], "block");
    let excerpt = f["excerpt"].as_str().expect("excerpt");
    assert!(!excerpt.contains("b4dword") && excerpt.contains("b******"), "{excerpt}");
    eventually("findings metric", || {
        p.metric("palisade_findings_total{action=\"block\",rule=\"abuse\",stage=\"moderation\"}")
            .filter(|v| *v == 1.0)
    });
}

#[test]
fn a_client_message_is_dropped_and_the_stream_stays_up() {
    let (p, _http, chat) = start(
        "    - {id: chat-abuse, lists: [abuse], routes: [chat], in: [client_messages], action: drop}\n",
        "",
    );
    let mut c = WsClient::connect(p.addr, "/chat/room", "");
    assert_eq!(c.status, 101, "{}", c.head);
    c.send_text("hello room");
    assert_eq!(c.recv().map(|f| f.text()).as_deref(), Some("hello room"));
    c.send_text("you B.A.D.W.O.R.D");
    // Fragmented, with a ping between the fragments: reassembled before it is judged.
    c.send(false, ws::TEXT, b"you ");
    c.send(true, ws::PING, b"p");
    c.send(true, ws::CONTINUATION, "j3rk".as_bytes());
    let clean = "clean again: jerk chicken ü 😀";
    c.send_text(clean);
    assert_eq!(c.recv().map(|f| f.text()).as_deref(), Some(clean));
    assert_eq!(
        chat.received_texts(),
        ["hello room", clean],
        "dropped messages never reach the origin"
    );
    // Messages are judged as sent: no compression may be negotiated past the proxy.
    let head = chat.heads().pop().expect("handshake").to_ascii_lowercase();
    assert!(!head.contains("sec-websocket-extensions"), "{head}");
}

#[test]
fn an_origin_message_reaches_the_client_masked() {
    let (p, _http, _chat) = start(
        "    - {id: chat-clean, lists: [abuse], routes: [chat], in: [origin_messages], action: mask}\n",
        "",
    );
    // The origin speaks first, before the client has sent anything.
    let mut c = WsClient::connect(p.addr, "/chat/room?greet=welcome%20dummy%20b4dword", "");
    assert_eq!(c.status, 101);
    assert_eq!(c.recv().map(|f| f.text()).as_deref(), Some("welcome dummy *******"));
    c.send_text("say:you are a B4DWORD, friend");
    assert_eq!(c.recv().map(|f| f.text()).as_deref(), Some("you are a *******, friend"));
    c.send_text("say:nothing to see");
    assert_eq!(c.recv().map(|f| f.text()).as_deref(), Some("nothing to see"));
}

#[test]
fn close_1008_then_oversize_1009_and_malformed_1002_and_the_proxy_keeps_serving() {
    let (p, http, chat) = start(
        "    - {id: chat-close, lists: [abuse], routes: [chat], in: [client_messages], action: close, max_message: 1KiB}\n",
        "",
    );
    let mut c = WsClient::connect(p.addr, "/chat/a", "");
    c.send_text("well you suck");
    assert_eq!(c.close_code(), Some(1008));

    let mut c = WsClient::connect(p.addr, "/chat/b", "");
    c.send_text(&"x".repeat(2048));
    assert_eq!(c.close_code(), Some(1009));

    // A client frame without a mask, then a reserved opcode: protocol errors.
    let mut c = WsClient::connect(p.addr, "/chat/c", "");
    c.send_raw(&ws::encode(true, ws::TEXT, b"unmasked", None));
    assert_eq!(c.close_code(), Some(1002));
    let mut c = WsClient::connect(p.addr, "/chat/d", "");
    c.send(true, 0x3, b"reserved");
    assert_eq!(c.close_code(), Some(1002));

    assert!(chat.received_texts().is_empty(), "{:?}", chat.received_texts());
    let mut c = WsClient::connect(p.addr, "/chat/e", "");
    c.send_text("still here");
    assert_eq!(c.recv().map(|f| f.text()).as_deref(), Some("still here"));
    assert_eq!(client().get(p.url("/ok")).send().expect("request").status(), 200);
    assert_eq!(http.seen_path("/ok").len(), 1);
}

#[test]
fn strikes_ban_the_abuser_by_address_and_account_and_the_next_connection_is_refused() {
    let offenders = "offenders:\n  strikes: 4\n  window: 60s\n  ban_for: 10m\n  identity: header:x-user\n";
    let (p, _http, chat) = start(
        "    - {id: chat-abuse, lists: [abuse], routes: [chat], in: [client_messages], action: drop, strike: true}\n",
        offenders,
    );
    let mut c = WsClient::connect(p.addr, "/chat/room", "x-user: mallory\r\n");
    assert_eq!(c.status, 101);
    // badword weighs 2, jerk 1: 2 + 1 = 3 strikes, still under 4.
    c.send_text("b4dword");
    c.send_text("jerk");
    c.send_text("ping");
    assert_eq!(c.recv().map(|f| f.text()).as_deref(), Some("ping"));
    // The fourth strike bans: the stream is closed at once.
    c.send_text("J E R K");
    assert_eq!(c.close_code(), Some(1008));
    assert_eq!(chat.received_texts(), ["ping"]);

    // Banned by account: from anywhere, the next handshake is refused.
    let again = WsClient::connect(p.addr, "/chat/room", "x-user: mallory\r\n");
    assert_eq!(again.status, 403, "{}", again.head);
    // Banned by address too: another account from the same address is refused, on any route.
    let other = WsClient::connect(p.addr, "/chat/room", "x-user: someone-else\r\n");
    assert_eq!(other.status, 403);
    let r = client().get(p.url("/")).send().expect("request");
    assert_eq!(r.status(), 403);
    let ev = p.event_for(&request_id(&r));
    assert_eq!(ev["palisade"]["decision"]["rule"], "repeat-offender-ban");
    assert_eq!(
        chat.heads().len(),
        1,
        "a banned actor's handshake never reaches the origin"
    );
}

#[test]
fn a_blocked_body_counts_as_a_strike() {
    let offenders = "offenders:\n  strikes: 2\n  window: 60s\n  ban_for: 10m\n";
    let (p, origin, _chat) = start(BODY_RULE, offenders);
    let c = client();
    for _ in 0..2 {
        let r = c
            .post(p.url("/profile"))
            .json(&serde_json::json!({"message": "jerk"}))
            .send()
            .expect("request");
        assert_eq!(r.status(), 403);
    }
    let r = c.get(p.url("/clean")).send().expect("request");
    assert_eq!(r.status(), 403, "two refusals earn the ban");
    assert!(origin.seen_path("/clean").is_empty());
}

#[test]
fn monitor_mode_changes_nothing_but_records_the_finding() {
    let (p, origin, chat) = start(
        "    - {id: chat-trial, lists: [abuse], in: [client_messages, body], action: block, mode: monitor, strike: true}\n",
        "offenders:\n  strikes: 1\n  window: 60s\n  ban_for: 10m\n",
    );
    let mut c = WsClient::connect(p.addr, "/chat/room", "");
    c.send_text("you badword");
    assert_eq!(c.recv().map(|f| f.text()).as_deref(), Some("you badword"));
    assert_eq!(chat.received_texts(), ["you badword"]);
    let r = client()
        .post(p.url("/post"))
        .json(&serde_json::json!({"text": "jerk"}))
        .send()
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(origin.seen_path("/post").len(), 1);
    let ev = p.event_for(&request_id(&r));
    assert_eq!(ev["palisade"]["findings"][0]["action"], "monitor");
    eventually("monitor findings", || {
        p.metric("palisade_findings_total{action=\"monitor\",rule=\"abuse\",stage=\"moderation\"}")
            .filter(|v| *v == 2.0)
    });
    // Monitor never strikes: still not banned.
    assert_eq!(client().get(p.url("/again")).send().expect("request").status(), 200);
}

#[test]
fn a_list_file_change_is_picked_up_without_a_restart() {
    let (p, _origin, _chat) = start(BODY_RULE, "");
    let c = client();
    let send = || {
        c.post(p.url("/profile"))
            .json(&serde_json::json!({"message": "gosh darn"}))
            .send()
            .expect("request")
            .status()
    };
    assert_eq!(send(), 200);
    p.rewrite("lists/abuse.txt", &format!("{TERMS}gosh darn\n"));
    eventually("the new term", || (send() == 403).then_some(()));
}

fn moderate_cli(lists: &[&std::path::Path], input: &str) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_palisade"));
    cmd.arg("moderate");
    for l in lists {
        cmd.arg("--list").arg(l);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn palisade moderate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("output")
}

#[test]
fn the_moderate_command_prints_one_json_object_per_line() {
    let dir = tempfile::tempdir().expect("dir");
    let list = dir.path().join("abuse.txt");
    std::fs::write(&list, TERMS).expect("list");
    let out = moderate_cli(&[&list], "hello there\nyou are a b.a.d.w.o.r.d\njerk chicken tonight\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["matched"], false);
    assert_eq!(lines[1]["matched"], true);
    let hit = &lines[1]["hits"][0];
    assert_eq!(hit["term"], "badword");
    assert_eq!(hit["category"], "insult");
    assert_eq!(hit["weight"], 2);
    assert_eq!(hit["list"], list.display().to_string());
    assert_eq!((hit["start"].as_u64(), hit["end"].as_u64()), (Some(10), Some(23)));
    assert_eq!(lines[1]["masked"], "you are a *************");
    assert_eq!(lines[2]["matched"], false, "the exception covers jerk chicken");
}

#[test]
fn the_moderate_command_reports_every_list_error_with_file_and_line() {
    let dir = tempfile::tempdir().expect("dir");
    let list = dir.path().join("bad.txt");
    std::fs::write(&list, "fine\nterm | weight=0\n\nother | colour=red\n").expect("list");
    let out = moderate_cli(&[&list], "x\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    let shown = list.display().to_string();
    assert!(err.contains(&format!("{shown}:2: bad weight")), "{err}");
    assert!(err.contains(&format!("{shown}:4: unknown key `colour`")), "{err}");
}

#[test]
fn check_reports_list_and_rule_errors_with_file_and_line() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir(dir.path().join("lists")).expect("dir");
    std::fs::write(dir.path().join("lists/abuse.txt"), "ok\nbad | weight=x\n").expect("list");
    let policy_path = dir.path().join("policy.yaml");
    std::fs::write(
        &policy_path,
        policy(
            "    - {id: r1, lists: [abuse, nope], in: [body], action: mask}\n    - {id: r2, lists: [abuse], in: [], action: drop, max_body: 1MiB}\n",
            "",
        ),
    )
    .expect("policy");
    let out = check_policy_file(&policy_path);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let list = dir.path().join("lists/abuse.txt").display().to_string();
    assert!(
        err.contains(&format!("{list}:2:1: field `moderation.lists.abuse`: bad weight")),
        "{err}"
    );
    for field in [
        "moderation.rules[0].lists[1]",
        "moderation.rules[0].action",
        "moderation.rules[1].in",
        "moderation.rules[1].max_body",
    ] {
        assert!(err.contains(&format!("field `{field}`")), "{field} missing in:\n{err}");
    }
}
