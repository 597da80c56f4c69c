//! Shadow policy: evaluated beside the live one on real traffic, never enforced; where the two
//! disagree, metrics count it and telemetry records what the shadow would have done.

mod common;
use common::*;

const LIVE: &str = "rules:\n  - {id: no-git, match: {path_prefix: [/.git]}, action: block}\n";
const CANDIDATE: &str = "\
rules:
  - {id: no-git, match: {path_prefix: [/.git]}, action: block}
  - {id: chat-lockdown, match: {path_prefix: [/chat]}, action: block}
";

#[test]
fn shadow_policy_reports_without_enforcing() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let rest = format!(
        "{}policies: [live.yaml]\nshadow_policies: [candidate.yaml]\n",
        single_pool(&origin)
    );
    let p = Proxy::start(&rest, &[("live.yaml", LIVE), ("candidate.yaml", CANDIDATE)]);
    let c = client();
    let r = c.get(p.url("/chat/post")).send().expect("req");
    assert_eq!(r.status(), 200, "the shadow policy never enforces");
    assert_eq!(origin.seen_path("/chat/post").len(), 1);
    let id = r.headers()["x-request-id"].to_str().expect("id").to_string();
    let ev = p.event_for(&id);
    assert_eq!(ev["palisade"]["decision"]["action"], "allow");
    assert_eq!(ev["palisade"]["shadow"]["action"], "block");
    assert_eq!(ev["palisade"]["shadow"]["rule"], "chat-lockdown");
    assert!(ev["palisade"]["policy"]["shadow_hash"].is_string());
    // Where both agree nothing is counted.
    assert_eq!(c.get(p.url("/.git/config")).send().expect("req").status(), 403);
    assert_eq!(c.get(p.url("/other")).send().expect("req").status(), 200);
    assert_eq!(
        p.metric("palisade_shadow_disagreements_total{live=\"allow\",shadow=\"block\"}"),
        Some(1.0)
    );
}
