//! The request-time pure functions on arbitrary requests: client address resolution behind
//! trusted proxies, path normalisation (with its invariants checked), and `enforce::evaluate`
//! against a policy that uses every kind of condition.
#![no_main]

use std::net::IpAddr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use once_cell::sync::Lazy;
use palisade::policy::ip::IpSet;
use palisade::enforce::{self, RequestFacts};
use palisade::policy::PolicySet;
use palisade::proxy::facts;

const POLICY: &str = r#"
lists:
  bad: {cidrs: [203.0.113.0/24, "2001:db8:bad::/48"]}
rules:
  - {id: allow-staff, match: {ip: [10.0.0.0/8], headers: {x-staff: {equals: "1"}}}, action: allow}
  - {id: deny, match: {ip_lists: [bad]}, action: block}
  - {id: probes, match: {path_prefix: [/.git/, /.env]}, action: block}
  - {id: exact, match: {path: [/admin], methods: [GET, POST]}, action: block}
  - {id: glob, match: {path_glob: ["/api/*/chat/**", "/u/?/x"]}, action: throttle}
  - {id: regex, match: {path_regex: ["(?i)\\.(php|asp)$"], hosts: ["*.example.test"]}, action: tarpit, delay: 1s}
  - {id: query, match: {query: {token: {present: true}, q: {contains: "union select"}}}, action: strike}
  - {id: ua, match: {user_agent: {regex: "(?i)(sqlmap|nikto)"}}, action: block}
  - {id: ct, match: {content_type: [application/x-www-form-urlencoded], body_over: 1KiB}, action: log}
  - id: nested
    match:
      any:
        - {headers: {cookie: {absent: true}}, methods: [POST]}
        - all: [{path_prefix: [/x]}, {not: {headers: {x-a: {prefix: "ok"}}}}]
    action: log
limits:
  - {id: per-ip, requests: 1000, per: 1s}
  - {id: per-account, key: "header:x-account+route", requests: 5, per: 1m, match: {path_prefix: [/login]}}
  - {id: per-cookie, key: "cookie:session", requests: 50, per: 10s, action: block}
concurrency:
  - {id: streams, key: client_ip, max: 4, match: {path_prefix: [/live]}}
"#;

static SET: Lazy<PolicySet> = Lazy::new(|| {
    let loaded = palisade::config::load::policy_from_str("fuzz.yaml", POLICY, &["app"]).expect("the fuzz policy is valid");
    palisade::policy::compile(&[loaded], None)
});
static TRUSTED: Lazy<IpSet> = Lazy::new(|| IpSet::new(["10.0.0.0/8".parse().expect("cidr"), "::1/128".parse().expect("cidr")]));

#[derive(Arbitrary, Debug)]
struct Request {
    peer: Peer,
    xff: Vec<String>,
    forwarded: Vec<String>,
    method: String,
    host: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    content_length: Option<u64>,
}

#[derive(Arbitrary, Debug)]
enum Peer {
    V4([u8; 4]),
    V6([u8; 16]),
    Trusted(u8),
}

fuzz_target!(|r: Request| {
    let peer: IpAddr = match r.peer {
        Peer::V4(b) => b.into(),
        Peer::V6(b) => b.into(),
        Peer::Trusted(n) => [10, 0, 0, n].into(),
    };
    let client = facts::client_ip(
        peer,
        &TRUSTED,
        r.xff.iter().map(|s| s.as_bytes()),
        r.forwarded.iter().map(|s| s.as_bytes()),
    );
    if !TRUSTED.contains(peer) {
        assert_eq!(client, peer, "an untrusted peer is its own client");
    }

    let path = facts::normalize_path(&r.path);
    if r.path.starts_with('/') || path.as_ref() != r.path {
        assert!(path.starts_with('/'), "{:?} -> {path:?}", r.path);
        let inner = path.trim_end_matches('/');
        assert!(
            !inner.split('/').skip(1).any(|s| s.is_empty() || s == "." || s == ".."),
            "{:?} -> {path:?}",
            r.path
        );
    }

    let mut headers = http::HeaderMap::new();
    for (k, v) in &r.headers {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_bytes(v)) {
            headers.append(k, v);
        }
    }
    let f = RequestFacts {
        client_ip: client,
        method: &r.method,
        host: &r.host,
        path: &path,
        route: "app",
        query: r.query.as_deref(),
        headers: &headers,
        content_length: r.content_length,
    };
    let v = enforce::evaluate(&SET, &f);
    let _ = (v.label(), v.status());
});
