//! Repeat offenders end to end: violations earn a ban, a banned client is refused before any
//! rule runs and never reaches the origin, and the ban shows in metrics and telemetry.

mod common;
use common::*;

const POLICY: &str = "\
rules:
  - id: no-admin
    match:
      path_prefix: [/admin]
    action: block
offenders:
  strikes: 3
  window: 60s
  ban_for: 10m
";

#[test]
fn repeated_violations_ban_the_client_everywhere() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!("{}policies: [p.yaml]\n", single_pool(&origin)),
        &[("p.yaml", POLICY)],
    );
    let c = client();
    assert_eq!(c.get(p.url("/ok")).send().expect("req").status(), 200);
    for _ in 0..3 {
        assert_eq!(c.get(p.url("/admin")).send().expect("req").status(), 403);
    }
    // Now banned: even an innocent path is refused and not forwarded.
    let r = c.get(p.url("/ok")).send().expect("req");
    assert_eq!(r.status(), 403);
    let id = r.headers()["x-request-id"].to_str().expect("id").to_string();
    assert_eq!(
        origin.seen_path("/ok").len(),
        1,
        "a banned client must not reach the origin"
    );
    assert!(origin.seen_path("/admin").is_empty());
    let ev = p.event_for(&id);
    assert_eq!(ev["palisade"]["decision"]["rule"], "repeat-offender-ban");
    assert_eq!(ev["palisade"]["decision"]["action"], "block");
    eventually("active bans gauge", || {
        (p.metric("palisade_active_bans") == Some(1.0)).then_some(())
    });
}

const PERSISTED: &str = "\
rules:
  - id: no-admin
    match:
      path_prefix: [/admin]
    action: block
offenders:
  strikes: 2
  window: 60s
  ban_for: 10m
";

#[test]
fn bans_survive_a_restart() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let rest = format!(
        "{}policies: [p.yaml]\nstate:\n  path: {{DIR}}/offenders.json\n  save_interval: 50ms\n",
        single_pool(&origin)
    );
    let mut p = Proxy::start(&rest, &[("p.yaml", PERSISTED)]);
    let c = client();
    for _ in 0..2 {
        assert_eq!(c.get(p.url("/admin")).send().expect("req").status(), 403);
    }
    assert_eq!(c.get(p.url("/ok")).send().expect("req").status(), 403, "banned");
    let state = p.dir.path().join("offenders.json");
    eventually("the state file to hold the ban", || {
        std::fs::read_to_string(&state)
            .ok()
            .filter(|s| s.contains("127.0.0.1") && s.contains("\"ban\""))
            .map(|_| ())
    });
    // Kill it outright (no shutdown save) and start again on the same state.
    if let Some(mut child) = p.child.take() {
        child.kill().expect("kill");
        child.wait().expect("wait");
    }
    std::fs::write(&p.log, "").expect("truncate log");
    p.child = Some(p.spawn(&["run", "-c", &p.config.display().to_string()], &[]));
    p.wait_ready();
    let r = c.get(p.url("/ok")).send().expect("req");
    assert_eq!(r.status(), 403, "the ban outlived the process");
    assert!(origin.seen_path("/ok").is_empty());
}
