//! The admin listener: status for anyone on loopback; reload and ban changes only with the
//! bearer token, refused with 401 otherwise.

mod common;
use common::*;

const TOKEN: &str = "correct-horse-battery-staple";

fn start() -> (Origin, Proxy, String) {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let admin = free_addr();
    let cfg = format!(
        "{}admin:\n  address: {admin}\n  token_file: token.txt\npolicies: [p.yaml]\n",
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
    // Reads need no token and are not refusals.
    assert_eq!(c.get(format!("{admin}/bans")).send().expect("admin").status(), 200);
    assert_eq!(refusals("missing_token"), 1.0);
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
