//! The admin listener: everything behind the bearer token, reads included (the ban list names
//! clients and accounts), refused with 401 otherwise; only the `healthz` and `readyz` probes
//! answer without it.

mod common;
use common::*;

const TOKEN: &str = "correct-horse-battery-staple";

fn start() -> (Origin, Proxy, String) {
    start_admin("  token_file: token.txt\n")
}

/// Start with an admin section made of its address and `keys`.
fn start_admin(keys: &str) -> (Origin, Proxy, String) {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let admin = free_addr();
    let cfg = format!(
        "{}admin:\n  address: {admin}\n{keys}policies: [p.yaml]\n",
        single_pool(&origin)
    );
    let p = Proxy::start(&cfg, &[("token.txt", TOKEN), ("p.yaml", "rules: []\n")]);
    // The proxy listener being up says nothing of the admin one: wait for it too.
    eventually("the admin listener", || std::net::TcpStream::connect(admin).ok());
    (origin, p, format!("http://{admin}"))
}

#[test]
fn state_changes_need_the_token() {
    let (_origin, p, admin) = start();
    let c = client();
    for auth in [None, Some("Bearer wrong-token-wrong-token"), Some(TOKEN)] {
        let mut req = c.post(format!("{admin}/reload"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        assert_eq!(req.send().expect("admin").status(), 401, "auth {auth:?}");
    }
    let r = c
        .post(format!("{admin}/reload"))
        .bearer_auth(TOKEN)
        .send()
        .expect("admin");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().expect("json");
    assert_eq!(body["generation"], 2);
    assert!(p.log_text().contains("admin: refused POST /reload"));
    let status: serde_json::Value = c
        .get(format!("{admin}/status"))
        .bearer_auth(TOKEN)
        .send()
        .expect("status")
        .json()
        .expect("json");
    assert_eq!(status["generation"], 2);
    assert_eq!(status["pools"][0]["name"], "app");
}

#[test]
fn operators_ban_and_unban_at_runtime() {
    let (origin, p, admin) = start();
    let c = client();
    assert_eq!(c.get(p.url("/a")).send().expect("req").status(), 200);
    let r = c
        .post(format!("{admin}/bans?ip=127.0.0.1&for=10m"))
        .bearer_auth(TOKEN)
        .send()
        .expect("ban");
    assert_eq!(r.status(), 200);
    assert_eq!(c.get(p.url("/b")).send().expect("req").status(), 403);
    assert!(origin.seen_path("/b").is_empty(), "a banned client is not forwarded");
    let bans: serde_json::Value = c
        .get(format!("{admin}/bans"))
        .bearer_auth(TOKEN)
        .send()
        .expect("list")
        .json()
        .expect("json");
    assert_eq!(bans["bans"][0]["actor"], "127.0.0.1");
    assert_eq!(bans["bans"][0]["kind"], "ban");
    assert_eq!(bans["bans"][0]["rules"][0], "admin");
    let r = c
        .delete(format!("{admin}/bans?ip=127.0.0.1"))
        .bearer_auth(TOKEN)
        .send()
        .expect("unban");
    assert_eq!(r.status(), 200);
    assert_eq!(c.get(p.url("/c")).send().expect("req").status(), 200);
    assert_eq!(
        c.post(format!("{admin}/bans?ip=nope&for=1m"))
            .bearer_auth(TOKEN)
            .send()
            .expect("bad")
            .status(),
        400
    );
}

#[test]
fn refused_calls_are_counted_by_reason() {
    let (_origin, p, admin) = start();
    let c = client();
    let refusals = |reason: &str| {
        p.metric(&format!("palisade_admin_refusals_total{{reason=\"{reason}\"}}"))
            .unwrap_or(0.0)
    };
    assert_eq!(c.post(format!("{admin}/reload")).send().expect("admin").status(), 401);
    for _ in 0..2 {
        let r = c
            .delete(format!("{admin}/bans?ip=127.0.0.1"))
            .bearer_auth("not-the-token-at-all")
            .send()
            .expect("admin");
        assert_eq!(r.status(), 401);
    }
    assert_eq!(refusals("missing_token"), 1.0);
    assert_eq!(refusals("wrong_token"), 2.0);
    // A read without the token is a refusal like any other; the probes are not.
    assert_eq!(c.get(format!("{admin}/bans")).send().expect("admin").status(), 401);
    assert_eq!(refusals("missing_token"), 2.0);
    assert_eq!(c.get(format!("{admin}/healthz")).send().expect("admin").status(), 200);
    assert_eq!(c.get(format!("{admin}/readyz")).send().expect("admin").status(), 200);
    assert_eq!(refusals("missing_token"), 2.0);
}

#[test]
fn reads_that_reveal_actors_need_the_token_and_only_the_probes_are_open() {
    let (_origin, p, admin) = start();
    let c = client();
    let r = c
        .post(format!("{admin}/bans?ip=198.51.100.7&for=10m"))
        .bearer_auth(TOKEN)
        .send()
        .expect("ban");
    assert_eq!(r.status(), 200);
    for path in ["/status", "/bans"] {
        for auth in [None, Some("Bearer wrong-token-wrong-token"), Some(TOKEN)] {
            let mut req = c.get(format!("{admin}{path}"));
            if let Some(a) = auth {
                // A bare token (no `Bearer `) is as wrong as a wrong one.
                req = req.header("authorization", a);
            }
            let r = req.send().expect("admin");
            assert_eq!(r.status(), 401, "GET {path} with {auth:?}");
            let body = r.text().expect("body");
            assert!(!body.contains("198.51.100.7"), "GET {path} refused yet told: {body}");
        }
        let r = c
            .get(format!("{admin}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .expect("admin");
        assert_eq!(r.status(), 200, "GET {path} with the token");
    }
    assert!(p.log_text().contains("admin: refused GET /bans"));
    let health: serde_json::Value = c
        .get(format!("{admin}/healthz"))
        .send()
        .expect("healthz")
        .json()
        .expect("json");
    assert_eq!(health, serde_json::json!({"ok": true}));
    let ready = c.get(format!("{admin}/readyz")).send().expect("readyz");
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().expect("json");
    assert_eq!(
        (ready["ready"].as_bool(), ready["generation"].as_u64()),
        (Some(true), Some(1))
    );
    assert_eq!(ready["listeners_not_accepting"], 0);
    // Unknown paths are 404 whatever the token says.
    assert_eq!(c.get(format!("{admin}/nope")).send().expect("admin").status(), 404);
}

#[test]
fn without_a_token_file_only_the_probes_answer() {
    let (_origin, _p, admin) = start_admin("");
    let c = client();
    for path in ["/status", "/bans"] {
        let r = c
            .get(format!("{admin}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .expect("admin");
        assert_eq!(r.status(), 403, "GET {path}");
    }
    assert_eq!(c.post(format!("{admin}/reload")).send().expect("admin").status(), 403);
    assert_eq!(c.get(format!("{admin}/healthz")).send().expect("admin").status(), 200);
    assert_eq!(c.get(format!("{admin}/readyz")).send().expect("admin").status(), 200);
}

#[test]
fn check_refuses_a_remote_admin_address_without_allow_remote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |admin: &str| {
        let cfg = format!(
            "listeners:\n  - address: 127.0.0.1:8080\nupstreams:\n  app: {{backends: [\"127.0.0.1:9000\"]}}\nroutes:\n  - {{name: app, upstream: app}}\ntelemetry: {{sink: off}}\n{admin}"
        );
        std::fs::write(dir.path().join("palisade.yaml"), cfg).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["check", "-c"])
            .arg(dir.path().join("palisade.yaml"))
            .output()
            .expect("check");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = write("admin:\n  address: 0.0.0.0:9101\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(":9:") && err.contains("field `admin.address`") && err.contains("allow_remote"),
        "{err}"
    );
    let (code, err) = write("admin:\n  address: 0.0.0.0:9101\n  allow_remote: true\n");
    assert_eq!(code, Some(0), "an explicit allow_remote is accepted: {err}");
    let (code, err) = write("admin:\n  address: \"[::1]:9101\"\n");
    assert_eq!(code, Some(0), "IPv6 loopback needs no allow_remote: {err}");
}
