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
