//! The Core Rule Set tier end to end, with the real proxy, a real origin, real libmodsecurity3
//! and Debian's modsecurity-crs (installed by `make setup` and `.ci/run`): each attack class
//! answered 403 by a CRS rule and never forwarded, benign look-alikes forwarded unchanged,
//! paranoia level and threshold changing the outcome, CRS rule ids turned to monitor, off or
//! excluded for a field, clear `palisade check` errors for a missing library or rules
//! directory, and `palisade run --policy policies/waf-crs.yaml` as shipped.
//!
//! The CRS tier runs on route `deep` (path prefix `/deep`) only and the built-in tier on route
//! `app` only, so what is asserted here is the CRS tier's work.

mod common;
use common::*;

use std::path::Path;

use reqwest::blocking::RequestBuilder;

/// A name, not an address: CRS 920350 reports a numeric Host (3 points).
const HOST: &str = "shop.example";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

fn start(crs: &str, rest: &str) -> (Origin, Proxy) {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let addr = origin.addr.expect("origin addr");
    let p = Proxy::start(
        &format!(
            "trusted_proxies: [127.0.0.1]\npolicies: [p.yaml]\nupstreams:\n  app:\n    backends: [\"{addr}\"]\nroutes:\n  - name: deep\n    path_prefix: /deep\n    upstream: app\n  - name: app\n    upstream: app\n"
        ),
        &[(
            "p.yaml",
            &format!("waf:\n  routes: [app]\n  crs:\n    routes: [deep]\n{crs}{rest}"),
        )],
    );
    (origin, p)
}

/// Send `req` as client `ip` with a browser's headers: status and the telemetry event.
fn send(p: &Proxy, req: RequestBuilder, ip: &str) -> (u16, serde_json::Value) {
    let r = req
        .header("x-forwarded-for", ip)
        .header("host", HOST)
        .header("user-agent", BROWSER)
        .header("accept", "text/html,application/json")
        .send()
        .expect("request");
    let status = r.status().as_u16();
    (status, p.event_for(&request_id(&r)))
}

fn crs_findings(ev: &serde_json::Value) -> Vec<serde_json::Value> {
    ev["palisade"]["findings"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter(|f| f["stage"] == "waf" && f["rule"].as_str().is_some_and(|r| r.starts_with("crs:")))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn each_attack_class_is_refused_by_the_core_rule_set_and_not_forwarded() {
    let (origin, p) = start("", "");
    let c = client();
    let form = "application/x-www-form-urlencoded";
    // (class, request, CRS family expected among the findings, path the origin must not see)
    let cases: Vec<(&str, RequestBuilder, &str, &str)> = vec![
        (
            "sqli",
            c.get(p.url("/deep/a-search?q=1%27%20union%20select%20password%20from%20users--")),
            "crs:942",
            "/deep/a-search",
        ),
        (
            "xss",
            c.post(p.url("/deep/a-comments"))
                .header("content-type", form)
                .body("name=bob&text=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"),
            "crs:941",
            "/deep/a-comments",
        ),
        (
            "traversal",
            c.get(p.url("/deep/a-static?file=..%2F..%2F..%2F..%2Fetc%2Fpasswd")),
            "crs:930",
            "/deep/a-static",
        ),
        (
            "command injection",
            c.post(p.url("/deep/a-api/run"))
                .header("content-type", "application/json")
                .body(r#"{"host":"example.com; cat /etc/passwd","n":1}"#),
            "crs:932",
            "/deep/a-api",
        ),
    ];
    for (i, (class, req, family, path)) in cases.into_iter().enumerate() {
        let (status, ev) = send(&p, req, &format!("192.0.2.{}", 10 + i));
        assert_eq!(status, 403, "{class}: {ev}");
        assert_eq!(ev["palisade"]["decision"]["rule"], "waf", "{class}: {ev}");
        let matched = ev["palisade"]["decision"]["matched"].as_str().unwrap_or_default();
        assert!(matched.starts_with("crs:"), "{class}: decided by {matched}");
        assert!(ev["palisade"]["decision"]["counter"].as_i64().unwrap_or(0) >= 5, "{ev}");
        let found = crs_findings(&ev);
        assert!(
            found
                .iter()
                .any(|f| f["rule"].as_str().unwrap_or_default().starts_with(family)
                    && f["action"] == "block"
                    && f["score"].as_u64() == Some(5)),
            "{class}: findings {found:?}"
        );
        assert!(origin.seen_path(path).is_empty(), "{class} reached the origin");
    }
    // A scanner's User-Agent (CRS 913100).
    let r = c
        .get(p.url("/deep/a-scan"))
        .header("host", HOST)
        .header("x-forwarded-for", "192.0.2.30")
        .header("user-agent", "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)")
        .send()
        .expect("req");
    assert_eq!(r.status(), 403);
    let ev = p.event_for(&request_id(&r));
    assert_eq!(ev["palisade"]["decision"]["matched"], "crs:913100", "{ev}");
    let f = &crs_findings(&ev)[0];
    assert_eq!(f["field"], "header:user-agent", "{f}");
    assert_ne!(f["excerpt"], "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)");
    assert!(origin.seen_path("/deep/a-scan").is_empty());
    eventually("the per-rule counter", || {
        p.metric("palisade_findings_total{action=\"block\",rule=\"crs:913100\",stage=\"waf\"}")
            .filter(|n| *n >= 1.0)
    });
}

#[test]
fn benign_look_alikes_are_forwarded_unchanged() {
    let (origin, p) = start("", "");
    let c = client();
    let (s, ev) = send(
        &p,
        c.get(p.url("/deep/b-search?q=O%27Reilly+select+books&sort=price&order=desc")),
        "192.0.2.40",
    );
    assert_eq!(s, 200, "{ev}");
    let body = "name=Fran%C3%A7ois&text=Cat+%26+dog+%7C+what%27s+up%3F+%28really%29";
    let (s, ev) = send(
        &p,
        c.post(p.url("/deep/b-comments"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
        "192.0.2.41",
    );
    assert_eq!(s, 200, "{ev}");
    let json = r#"{"title":"Union Station & 5th","notes":"select a table from the menu","path":"docs/readme.txt"}"#;
    let (s, ev) = send(
        &p,
        c.post(p.url("/deep/b-api/orders"))
            .header("content-type", "application/json")
            .body(json),
        "192.0.2.42",
    );
    assert_eq!(s, 200, "{ev}");
    assert!(crs_findings(&ev).is_empty(), "{ev}");
    assert_eq!(origin.seen_path("/deep/b-comments")[0].body, body.as_bytes());
    assert_eq!(origin.seen_path("/deep/b-api/orders")[0].body, json.as_bytes());
    assert_eq!(origin.seen_path("/deep/b-search").len(), 1);
}

#[test]
fn paranoia_level_and_threshold_change_the_outcome() {
    // CRS 942260 (paranoia level 2) takes this for SQL; level 1 does not.
    let prose = "/deep/pl?q=select+a+table+from+the+menu";
    let (origin, p1) = start("    paranoia: 1\n", "");
    assert_eq!(send(&p1, client().get(p1.url(prose)), "192.0.2.50").0, 200);
    assert_eq!(origin.seen_path("/deep/pl").len(), 1);
    let (origin, p2) = start("    paranoia: 2\n", "");
    let (s, ev) = send(&p2, client().get(p2.url(prose)), "192.0.2.51");
    assert_eq!(s, 403, "{ev}");
    assert_eq!(ev["palisade"]["decision"]["matched"], "crs:942260", "{ev}");
    assert!(origin.seen_path("/deep/pl").is_empty());

    // A scanner User-Agent is one critical match, 5 points: under a threshold of 10 it is
    // reported and forwarded.
    let (origin, p) = start("    threshold: 10\n", "");
    let r = client()
        .get(p.url("/deep/th"))
        .header("host", HOST)
        .header("x-forwarded-for", "192.0.2.52")
        .header("user-agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")
        .send()
        .expect("req");
    assert_eq!(r.status(), 200);
    let ev = p.event_for(&request_id(&r));
    let f = crs_findings(&ev);
    assert!(
        f.iter().any(|f| f["rule"] == "crs:913100" && f["action"] == "log"),
        "{ev}"
    );
    assert_eq!(origin.seen_path("/deep/th").len(), 1);
    // Two attacks in one request pass 10.
    let (s, ev) = send(
        &p,
        client().get(p.url("/deep/th2?q=1%27%20union%20select%20password%20from%20users--")),
        "192.0.2.53",
    );
    assert_eq!(s, 403, "{ev}");
    assert!(
        ev["palisade"]["decision"]["counter"].as_i64().unwrap_or(0) >= 10,
        "{ev}"
    );
}

#[test]
fn crs_rule_ids_are_policy_monitor_off_and_exclusions() {
    let sqli = "/deep/r-search?q=1%27%20union%20select%20password%20from%20users--";
    // The whole SQLi family only reports.
    let (origin, p) = start("", "  rules:\n    - {id: \"crs:942\", action: monitor}\n");
    let (s, ev) = send(&p, client().get(p.url(sqli)), "192.0.2.60");
    assert_eq!(s, 200, "{ev}");
    let f = crs_findings(&ev);
    assert!(!f.is_empty() && f.iter().all(|f| f["action"] == "monitor"), "{ev}");
    assert_eq!(origin.seen_path("/deep/r-search").len(), 1);

    // Monitor mode for the whole section: forwarded, recorded as would_block.
    let (origin, p) = start("", "  mode: monitor\n");
    let (s, ev) = send(&p, client().get(p.url(sqli)), "192.0.2.65");
    assert_eq!(s, 200, "{ev}");
    assert_eq!(ev["palisade"]["decision"]["action"], "would_block", "{ev}");
    assert!(
        crs_findings(&ev)
            .iter()
            .any(|f| f["rule"] == "crs:942100" && f["action"] == "monitor"),
        "{ev}"
    );
    assert_eq!(origin.seen_path("/deep/r-search").len(), 1);

    // The scanner rule off: not evaluated, no finding.
    let (origin, p) = start("", "  rules:\n    - {id: \"crs:913100\", action: off}\n");
    let r = client()
        .get(p.url("/deep/r-scan"))
        .header("host", HOST)
        .header("x-forwarded-for", "192.0.2.61")
        .header("user-agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")
        .send()
        .expect("req");
    assert_eq!(r.status(), 200);
    let ev = p.event_for(&request_id(&r));
    assert!(!crs_findings(&ev).iter().any(|f| f["rule"] == "crs:913100"), "{ev}");
    assert_eq!(origin.seen_path("/deep/r-scan").len(), 1);

    // SQLi excluded for one path and field; the same value elsewhere is still blocked.
    let (origin, p) = start(
        "",
        "  exclusions:\n    - {rule: \"crs:942\", path: /deep/r-search, field: \"query:q\"}\n",
    );
    let (s, ev) = send(&p, client().get(p.url(sqli)), "192.0.2.62");
    assert_eq!(s, 200, "{ev}");
    assert!(crs_findings(&ev)
        .iter()
        .all(|f| !f["rule"].as_str().unwrap_or_default().starts_with("crs:942")));
    let (s, _) = send(
        &p,
        client().get(p.url("/deep/r-other?q=1%27%20union%20select%20password%20from%20users--")),
        "192.0.2.63",
    );
    assert_eq!(s, 403);
    let (s, _) = send(
        &p,
        client().get(p.url("/deep/r-search?id=1%27%20union%20select%20password%20from%20users--")),
        "192.0.2.64",
    );
    assert_eq!(s, 403, "another field of the excluded path");
    assert!(origin.seen_path("/deep/r-other").is_empty());
}

#[test]
fn a_missing_library_or_rules_directory_is_a_check_error_with_file_and_line() {
    let err = policy_check_errors("waf:\n  crs:\n    paranoia: 1\n    library: libmodsecurity-absent.so.3\n");
    assert!(
        err.lines().any(|l| l.contains("p.yaml:")
            && l.contains("waf.crs.library")
            && l.contains("libmodsecurity-absent.so.3")
            && l.contains("apt-get install libmodsecurity3")),
        "{err}"
    );
    let err = policy_check_errors("waf:\n  crs:\n    rules_dir: /nonexistent/crs-rules\n");
    assert!(
        err.lines()
            .any(|l| l.contains("p.yaml:") && l.contains("waf.crs.rules_dir") && l.contains("/nonexistent/crs-rules")),
        "{err}"
    );
    let err = policy_check_errors("waf:\n  crs:\n    paranoia: 5\n  rules:\n    - {id: \"crs:999999\", action: off}\n");
    assert!(
        err.lines()
            .any(|l| l.contains("p.yaml:3:") && l.contains("waf.crs.paranoia")),
        "{err}"
    );
    let err = policy_check_errors("waf:\n  crs: {}\n  rules:\n    - {id: \"crs:942999\", action: monitor}\n    - {id: \"crs:94x\", action: off}\n");
    assert!(
        err.lines()
            .any(|l| l.contains("p.yaml:4:") && l.contains("waf.rules[0].id") && l.contains("no such rule")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("p.yaml:5:") && l.contains("waf.rules[1].id")),
        "{err}"
    );
    let err = policy_check_errors("waf:\n  exclusions:\n    - {rule: \"crs:942100\", field: body}\n");
    assert!(err.contains("no crs tier"), "{err}");
}

#[test]
fn the_shipped_crs_policy_checks_and_runs_from_the_command_line() {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/waf-crs.yaml");
    let out = check_policy_file(&policy);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let dir = tempfile::tempdir().expect("dir");
    let upstream = origin.addr.expect("addr").to_string();
    let (listen, _running) = run_policy_file(dir.path(), &policy, &upstream);
    let c = client();
    let get = |path: &str, ua: &str| {
        c.get(format!("http://{listen}{path}"))
            .header("user-agent", ua)
            .header("accept", "text/html")
            .send()
            .expect("req")
            .status()
            .as_u16()
    };
    assert_eq!(get("/w-ok?q=hello+world", BROWSER), 200);
    assert_eq!(
        get(
            "/w-bad?q=%27%20union%20select%20null,password%20from%20users--",
            BROWSER
        ),
        403
    );
    // Found by the CRS tier (913100's scanner list), not by the built-in one.
    assert_eq!(get("/w-crs", "Mozilla/5.0 (compatible; Grendel-Scan/1.0)"), 403);
    assert!(origin.seen_path("/w-bad").is_empty() && origin.seen_path("/w-crs").is_empty());
    assert_eq!(origin.seen_path("/w-ok").len(), 1);
}
