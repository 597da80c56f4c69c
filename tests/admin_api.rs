//! The admin API under `/api` end to end, against a running Palisade and a real origin: bans by
//! address, network and account and their effect on traffic, the offenders board, the policy
//! summary, reloads with errors as JSON, the live decision stream, the cross-site guard, and
//! the OpenAPI document against what the listener answers.

mod common;
use common::*;

use std::io::{BufRead, BufReader};

use serde_json::{json, Value};

const TOKEN: &str = "correct-horse-battery-staple";

const POLICY: &str = "\
rules:
  - id: no-admin
    match:
      path_prefix: [/admin]
    action: block
  - id: watch-wp
    match:
      path_prefix: [/wp-login]
    action: block
    mode: monitor
offenders:
  strikes: 3
  window: 60s
  ban_for: 10m
  identity: header:x-account
";

struct Console {
    origin: Origin,
    p: Proxy,
    admin: String,
    c: reqwest::blocking::Client,
}

fn start() -> Console {
    let (origin, p, admin) = start_with_admin(POLICY, TOKEN);
    Console {
        origin,
        p,
        admin: format!("http://{admin}"),
        c: client(),
    }
}

impl Console {
    fn get(&self, path: &str) -> Value {
        let r = self
            .c
            .get(format!("{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("admin");
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().expect("json")
    }

    fn post(&self, path: &str, body: Value) -> reqwest::blocking::Response {
        self.c
            .post(format!("{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .expect("admin")
    }

    fn status_of(&self, path: &str, account: Option<&str>) -> u16 {
        let mut req = self.c.get(self.p.url(path));
        if let Some(a) = account {
            req = req.header("x-account", a);
        }
        req.send().expect("request").status().as_u16()
    }
}

#[test]
fn bans_by_address_network_and_account_refuse_traffic_and_lift_by_id() {
    let k = start();
    assert_eq!(k.status_of("/a", None), 200);
    // A network that holds the test client's address.
    let r = k.post(
        "/api/bans",
        json!({"cidr": "127.0.0.0/8", "duration": "10m", "reason": "scanner range"}),
    );
    assert_eq!(r.status(), 201);
    let made: Value = r.json().expect("json");
    assert_eq!(made["actor"], "127.0.0.0/8");
    assert_eq!(k.status_of("/b", None), 403);
    assert!(k.origin.seen_path("/b").is_empty(), "a banned network is not forwarded");
    let bans = k.get("/api/bans");
    assert_eq!(bans["bans"][0]["id"], made["id"]);
    assert_eq!(bans["bans"][0]["reason"], "scanner range");
    assert!(bans["bans"][0]["seconds_left"].as_u64().is_some_and(|s| s > 590));
    let r =
        k.c.delete(format!("{}/api/bans/{}", k.admin, made["id"].as_str().expect("id")))
            .bearer_auth(TOKEN)
            .send()
            .expect("lift");
    assert_eq!(r.status(), 200);
    assert_eq!(k.status_of("/c", None), 200);
    // The same id again: nothing to lift.
    let r =
        k.c.delete(format!("{}/api/bans/{}", k.admin, made["id"].as_str().expect("id")))
            .bearer_auth(TOKEN)
            .send()
            .expect("lift");
    assert_eq!(r.status(), 404);

    // An account: only its pseudonym is kept and shown; other accounts pass.
    let r = k.post(
        "/api/bans",
        json!({"account": "mallory@example.com", "duration": "forever"}),
    );
    assert_eq!(r.status(), 201);
    let made: Value = r.json().expect("json");
    let actor = made["actor"].as_str().expect("actor");
    assert!(actor.starts_with("id:hmac:"), "{actor}");
    assert_eq!(k.status_of("/d", Some("mallory@example.com")), 403);
    assert_eq!(k.status_of("/d", Some("alice@example.com")), 200);
    let listed =
        k.c.get(format!("{}/api/bans", k.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("bans");
    let text = listed.text().expect("body");
    assert!(!text.contains("mallory"), "the account value is never shown: {text}");
    assert!(text.contains(actor));
    let log = k.p.log_text();
    assert!(!log.contains("mallory"), "nor logged");
}

#[test]
fn invalid_bans_name_the_field() {
    let k = start();
    for (body, field) in [
        (json!({"address": "nope", "duration": "1m"}), "address"),
        (json!({"cidr": "10.0.0.0/33", "duration": "1m"}), "cidr"),
        (json!({"cidr": "0.0.0.0/0", "duration": "1m"}), "cidr"),
        (json!({"address": "192.0.2.1"}), "duration"),
        (json!({"address": "192.0.2.1", "duration": "soon"}), "duration"),
        (
            json!({"address": "192.0.2.1", "cidr": "192.0.2.0/24", "duration": "1m"}),
            "address",
        ),
        (json!({"actor": "alice", "duration": "1m"}), "actor"),
        (
            json!({"address": "192.0.2.1", "duration": "1m", "reason": "a\nb"}),
            "reason",
        ),
    ] {
        let r = k.post("/api/bans", body.clone());
        assert_eq!(r.status(), 400, "{body}");
        let err: Value = r.json().expect("json");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    let r =
        k.c.post(format!("{}/api/bans", k.admin))
            .bearer_auth(TOKEN)
            .body("{\"address\": \"192.0.2.1\", \"duration\": \"1m\", \"extra\": 1}")
            .send()
            .expect("admin");
    assert_eq!(r.status(), 400, "unknown fields are refused");
    assert!(k.get("/api/bans")["bans"].as_array().expect("bans").is_empty());
}

#[test]
fn offenders_show_refusals_strikes_rules_and_ban_state_under_pseudonyms() {
    let k = start();
    // Two refusals by rule: strikes, not yet a ban.
    for _ in 0..2 {
        assert_eq!(k.status_of("/admin", Some("eve")), 403);
    }
    let found = eventually("the offender on the board", || {
        let o = k.get("/api/offenders?top=10&window=1m");
        o["offenders"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["actor"] == "127.0.0.1").cloned())
            .filter(|e| e["refusals"] == 2)
    });
    assert_eq!(found["kind"], "address");
    assert_eq!(found["last_rules"], json!(["no-admin"]));
    assert!(
        found["strikes"].as_f64().is_some_and(|s| (1.5..=2.0).contains(&s)),
        "{found}"
    );
    assert_eq!(found["penalty"], Value::Null);
    let text =
        k.c.get(format!("{}/api/offenders", k.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("offenders")
            .text()
            .expect("body");
    assert!(
        text.contains("\"id:hmac:"),
        "the account is there as a pseudonym: {text}"
    );
    assert!(!text.contains("eve"), "and never in clear: {text}");
    // The third earns the ban, which the board shows.
    assert_eq!(k.status_of("/admin", None), 403);
    let banned = eventually("the ban on the board", || {
        let o = k.get("/api/offenders?top=1");
        o["offenders"][0]["penalty"]["kind"]
            .as_str()
            .filter(|k| *k == "ban")
            .map(|_| o["offenders"][0].clone())
    });
    assert_eq!(banned["actor"], "127.0.0.1");
    for bad in ["top=0", "top=x", "window=1s", "window=2h"] {
        let r =
            k.c.get(format!("{}/api/offenders?{bad}", k.admin))
                .bearer_auth(TOKEN)
                .send()
                .expect("admin");
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[test]
fn the_policy_and_a_refused_reload_as_json() {
    let k = start();
    let policy = k.get("/api/policy");
    assert_eq!(policy["generation"], 1);
    let hash = policy["hash"].as_str().expect("hash").to_string();
    assert_eq!(
        policy["rules"],
        json!([{"id": "no-admin", "action": "block", "mode": "enforce"},
               {"id": "watch-wp", "action": "block", "mode": "monitor"}])
    );
    assert_eq!(policy["bans"]["strikes"], 3);
    assert_eq!(policy["bans"]["identity"], "header:x-account");
    // A broken policy: the reload is refused with file, line and field, the old one serves.
    k.p.rewrite(
        "p.yaml",
        &POLICY.replace("action: block\n  - id: watch-wp", "action: blok\n  - id: watch-wp"),
    );
    let r =
        k.c.post(format!("{}/api/reload", k.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("reload");
    assert_eq!(r.status(), 422);
    let body: Value = r.json().expect("json");
    assert_eq!(body["reloaded"], false);
    let e = &body["errors"][0];
    assert!(e["file"].as_str().is_some_and(|f| f.ends_with("p.yaml")), "{body}");
    assert_eq!(e["line"], 5, "{body}");
    assert_eq!(e["field"], "rules[0].action", "{body}");
    assert_eq!(k.get("/api/policy")["hash"], hash.as_str());
    assert_eq!(k.status_of("/admin", None), 403, "the old policy still enforces");
    let stats = k.get("/api/stats");
    assert_eq!(stats["last_reload"]["ok"], false, "{stats}");
    // Fixed: the reload goes through and the version changes.
    k.p.rewrite("p.yaml", &POLICY.replace("/wp-login", "/xmlrpc"));
    let r =
        k.c.post(format!("{}/api/reload", k.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("reload");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().expect("json");
    assert_ne!(body["hash"], hash.as_str());
    assert_eq!(k.get("/api/stats")["last_reload"]["ok"], true);
}

/// Read SSE records from a stream until `want` returns something.
fn read_events<T>(lines: &mut impl BufRead, mut want: impl FnMut(&str, &Value) -> Option<T>) -> T {
    let (mut event, mut data) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        assert!(lines.read_line(&mut line).expect("read") > 0, "the stream ended");
        let line = line.trim_end_matches('\n');
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            data = d.to_string();
        } else if line.is_empty() && !data.is_empty() {
            let v: Value = serde_json::from_str(&data).expect("event json");
            if let Some(t) = want(&event, &v) {
                return t;
            }
            data.clear();
        }
    }
}

#[test]
fn the_decision_stream_carries_every_refusal_live_with_its_request_id() {
    let k = start();
    let refused =
        k.c.get(format!("{}/api/decisions/stream", k.admin))
            .send()
            .expect("stream");
    assert_eq!(refused.status(), 401, "the stream needs the token");
    let stream =
        k.c.get(format!("{}/api/decisions/stream", k.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("stream");
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut lines = BufReader::new(stream);
    eventually("the stream client counted", || {
        (k.p.metric("palisade_decision_stream_clients") == Some(1.0)).then_some(())
    });
    // An allowed request is not in the feed; a refused and a monitored one are.
    assert_eq!(k.status_of("/fine", None), 200);
    let r = k.c.get(k.p.url("/admin/x?token=secret")).send().expect("req");
    assert_eq!(r.status(), 403);
    let blocked_id = request_id(&r);
    let r = k.c.get(k.p.url("/wp-login")).send().expect("req");
    assert_eq!(r.status(), 200);
    let watched_id = request_id(&r);
    let first = read_events(&mut lines, |e, v| (e == "decision").then(|| v.clone()));
    assert_eq!(first["request_id"], blocked_id.as_str());
    assert_eq!(first["decision"], "block");
    assert_eq!(first["rule"], "no-admin");
    assert_eq!(first["status"], 403);
    assert_eq!(first["path"], "/admin/x", "the query string is left out");
    assert_eq!(first["client_ip"], "127.0.0.1");
    let second = read_events(&mut lines, |e, v| (e == "decision").then(|| v.clone()));
    assert_eq!(second["request_id"], watched_id.as_str());
    assert_eq!(second["decision"], "would_block");
}

/// Without a `fleet:` section the instance says so, and the console's health line reads "off".
#[test]
fn without_fleet_mode_the_fleet_view_says_off() {
    let k = start();
    assert_eq!(k.get("/api/fleet"), json!({"fleet": false}));
    assert_eq!(k.get("/api/stats")["fleet"], json!({"enabled": false}));
}

#[test]
fn state_changes_from_another_site_are_refused() {
    let k = start();
    let host = k.admin.trim_start_matches("http://").to_string();
    for (header, value) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")] {
        let r =
            k.c.post(format!("{}/api/bans", k.admin))
                .bearer_auth(TOKEN)
                .header(header, value)
                .json(&json!({"address": "192.0.2.1", "duration": "1m"}))
                .send()
                .expect("admin");
        assert_eq!(r.status(), 403, "{header}: {value}");
    }
    assert_eq!(
        k.p.metric("palisade_admin_refusals_total{reason=\"cross_site\"}"),
        Some(2.0)
    );
    // The console's own page is same-origin.
    let r =
        k.c.post(format!("{}/api/bans", k.admin))
            .bearer_auth(TOKEN)
            .header("origin", format!("http://{host}"))
            .header("sec-fetch-site", "same-origin")
            .json(&json!({"address": "192.0.2.1", "duration": "1m"}))
            .send()
            .expect("admin");
    assert_eq!(r.status(), 201);
    assert_eq!(k.get("/api/bans")["bans"].as_array().map(Vec::len), Some(1));
}

/// Every operation in the OpenAPI document is routed: called as documented (with the token
/// unless it is open, with the documented example body), it answers with one of the statuses
/// the document lists, never the listener's "unknown admin endpoint".
#[test]
fn every_documented_operation_answers_as_documented() {
    let k = start();
    let doc: Value =
        k.c.get(format!("{}/api/openapi.json", k.admin))
            .send()
            .expect("openapi")
            .json()
            .expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    // A ban to lift for DELETE /api/bans/{id}.
    let made: Value = k
        .post("/api/bans", json!({"address": "192.0.2.44", "duration": "1m"}))
        .json()
        .expect("json");
    let id = made["id"].as_str().expect("id");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let url = format!("{}{}", k.admin, path.replace("{id}", id));
            let mut req = match method.as_str() {
                "get" => k.c.get(&url),
                "post" => k.c.post(&url),
                "delete" => k.c.delete(&url),
                other => panic!("unexpected method {other}"),
            };
            let open = op["security"].as_array().is_some_and(|s| s.is_empty());
            if !open {
                req = req.bearer_auth(TOKEN);
            }
            if let Some(example) = op["requestBody"]["content"]["application/json"]["example"].as_object() {
                req = req.json(example);
            }
            if path == "/bans" {
                req = req.query(&[("ip", "192.0.2.45"), ("for", "1m")]);
            }
            let mut r = req.send().expect("call");
            let status = r.status().as_u16().to_string();
            let documented: Vec<&String> = op["responses"].as_object().expect("responses").keys().collect();
            assert!(
                documented.iter().any(|s| **s == status),
                "{method} {path} answered {status}, documented {documented:?}"
            );
            if path == "/api/decisions/stream" {
                let mut first = [0u8; 13];
                std::io::Read::read_exact(&mut r, &mut first).expect("stream");
                assert_eq!(&first, b": subscribed\n");
            } else {
                let body = r.text().expect("body");
                assert!(!body.contains("unknown admin endpoint"), "{method} {path}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 21, "every route was called");
    // A known path with another method is told apart from an unknown path.
    let r =
        k.c.put(format!("{}/api/bans", k.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("put");
    assert_eq!(r.status(), 405);
    let r =
        k.c.get(format!("{}/api/nope", k.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("get");
    assert_eq!(r.status(), 404);
    // And the open ones are open: the page carries its CSP.
    let page = k.c.get(format!("{}/", k.admin)).send().expect("page");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
}

/// A connection whose receive window is as small as the kernel allows, set before connecting:
/// a client that reads nothing fills it at once.
fn connect_with_tiny_window(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(v4) = addr else {
        panic!("the admin listener is on IPv4 loopback")
    };
    // SAFETY: a fresh socket, options and address built here; the fd is owned by the stream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let size: libc::c_int = 1024;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let set = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            len,
        );
        assert_eq!(set, 0, "SO_RCVBUF");
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let salen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), salen),
            0,
            "connect"
        );
        std::net::TcpStream::from_raw_fd(fd)
    }
}

#[test]
fn a_stream_client_that_stops_reading_is_dropped_and_traffic_does_not_wait() {
    use std::io::Write;
    let k = start();
    let admin_addr: std::net::SocketAddr = k.admin.trim_start_matches("http://").parse().expect("addr");
    let mut stalled = connect_with_tiny_window(admin_addr);
    write!(
        stalled,
        "GET /api/decisions/stream HTTP/1.1\r\nHost: {admin_addr}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .expect("subscribe");
    eventually("the stalled client subscribed", || {
        (k.p.metric("palisade_decision_stream_clients") == Some(1.0)).then_some(())
    });
    // Refusals until the stalled client is dropped; every one is answered meanwhile.
    let mut sent = 0;
    let started = std::time::Instant::now();
    while k.p.metric("palisade_decision_stream_dropped_total") != Some(1.0) {
        assert!(sent < 20_000, "the stalled client was never dropped");
        for _ in 0..100 {
            assert_eq!(k.c.get(k.p.url("/admin")).send().expect("request").status(), 403);
        }
        sent += 100;
    }
    eprintln!("dropped after {sent} refusals in {:?}", started.elapsed());
    assert!(sent > 256, "dropped only past its queue: {sent}");
    // The feed goes on for a client that reads.
    let stream =
        k.c.get(format!("{}/api/decisions/stream", k.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("stream");
    let mut lines = BufReader::new(stream);
    eventually("the second client subscribed", || {
        (k.p.metric("palisade_decision_stream_clients") == Some(2.0)).then_some(())
    });
    let r = k.c.get(k.p.url("/admin/after")).send().expect("request");
    let id = request_id(&r);
    let ev = read_events(&mut lines, |e, v| {
        (e == "decision" && v["request_id"] == id.as_str()).then(|| v.clone())
    });
    assert_eq!(ev["path"], "/admin/after");
    // The stalled client's stream ends once it goes away.
    drop(stalled);
    eventually("the stalled client gone", || {
        (k.p.metric("palisade_decision_stream_clients") == Some(1.0)).then_some(())
    });
}
