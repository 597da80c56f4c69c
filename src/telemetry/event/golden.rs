//! Golden test of the event encoding: a table of events covering every optional field present
//! and absent, every kind of value, and hostile text in every string field, each with the exact
//! line it must encode to. The lines in `events.golden` were captured from the serde_json
//! encoder that came before the hand-written one, so they pin the format consumers know.
//! After a deliberate change of the format, `PALISADE_WRITE_GOLDEN=1 cargo test golden`
//! rewrites the file; review its diff like code.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use super::*;
use crate::stage::{Action, Decision, Mode, Source};

/// Every control byte, the two characters JSON always escapes, DEL, multi-byte UTF-8
/// (including U+2028/U+2029, which JSON passes through but JavaScript does not) and text
/// that looks like an escape.
const HOSTILE: &str = "\u{0}\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}\u{8}\t\n\u{b}\u{c}\r\u{e}\u{f}\
    \u{10}\u{11}\u{12}\u{13}\u{14}\u{15}\u{16}\u{17}\u{18}\u{19}\u{1a}\u{1b}\u{1c}\u{1d}\u{1e}\u{1f}\
    \"q\" \\b \\u0041 \u{7f} é € 😀 \u{2028}\u{2029} \u{fffd} </script>";

fn policy(hash: &str) -> Arc<PolicySet> {
    let loaded = crate::config::load::policy_from_str("t.yaml", "rules: []\n", &[]).expect("policy");
    let mut set = crate::policy::compile(&[loaded], None);
    set.hash = hash.to_string();
    Arc::new(set)
}

fn request(uri: &str, version: http::Version, method: &str, headers: &[(&str, &[u8])]) -> http::request::Parts {
    let mut b = http::Request::builder().method(method).uri(uri).version(version);
    for (k, v) in headers {
        b = b.header(*k, HeaderValue::from_bytes(v).expect("header value"));
    }
    b.body(()).expect("request").into_parts().0
}

fn redaction(query: QueryMode, allow: &[&str], headers: &[&'static str]) -> Arc<Redaction> {
    Arc::new(Redaction {
        query,
        query_allowlist: allow.iter().map(|a| a.to_string()).collect(),
        headers: headers.iter().map(|h| HeaderName::from_static(h)).collect(),
    })
}

/// An empty request: no addresses, no user agent, nothing optional.
fn bare() -> Record {
    let req = request("/", http::Version::HTTP_11, "GET", &[]);
    Record::capture(&req, &redaction(QueryMode::Redact, &[], &[]), &policy("90aa9496a729"))
}

/// An allowed, proxied request as the proxy records it.
fn proxied() -> Record {
    let req = request(
        "/api/v2/channels/4711/chat?page=2&token=s3cret&flag",
        http::Version::HTTP_11,
        "GET",
        &[
            ("user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"),
            ("referer", b"https://live.example.com/channels/4711"),
            ("accept-language", b"en-GB,en;q=0.9"),
            ("cookie", b"session=abcdef"),
        ],
    );
    let red = redaction(QueryMode::Redact, &["page"], &["referer", "accept-language"]);
    let mut r = Record::capture(&req, &red, &policy("90aa9496a729"));
    r.start = SystemTime::UNIX_EPOCH + Duration::new(1_795_454_386, 289_445_953);
    r.duration_us = 812;
    r.request_id = "d3d733d37e1d1a8e299694ecc3953d68".into();
    r.host = "live.example.com".into();
    r.client_ip = Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77)));
    r.peer = Some(SocketAddr::from(([10, 0, 0, 7], 48524)));
    r.bytes_in = 17;
    r.status = 200;
    r.bytes_out = 5120;
    r.route = Some("live".into());
    r.pool = Some("live-pool".into());
    r.backend = Some(SocketAddr::from(([10, 0, 1, 11], 8080)));
    r.upstream_us = Some(640);
    r.generation = 1;
    r.indicators = Some(Indicators {
        requests_1s: 1,
        requests_60s: 3,
        distinct_paths_60s: 2,
        ratio_4xx: 0.0,
        ratio_5xx: 0.0,
        first_seen_s: 41,
        user_agent_changes: 0,
        strike_score: 0.0,
        ban: "none",
    });
    r
}

fn verdict(action: Action, mode: Mode, rule: &str, matched: Option<&str>) -> Verdict {
    Decision {
        action,
        mode,
        source: Source::Policy(rule.into()),
        matched: matched.map(Into::into),
        ..Decision::default()
    }
    .into()
}

/// `v` with a counter and the names of non-deciding rules that matched.
fn seen(mut v: Verdict, counter: Option<i64>, also: &[&str]) -> Verdict {
    v.decision.counter = counter;
    v.observed.also = also.iter().map(|&a| a.into()).collect();
    v
}

fn hostile_arc() -> Option<Arc<str>> {
    Some(HOSTILE.into())
}

struct Case {
    name: &'static str,
    record: Record,
    alert: bool,
    aliases: Option<Aliases>,
}

fn case(name: &'static str, record: Record) -> Case {
    Case {
        name,
        record,
        alert: false,
        aliases: None,
    }
}

fn alert(name: &'static str, record: Record) -> Case {
    Case {
        alert: true,
        ..case(name, record)
    }
}

fn with(mut r: Record, f: impl FnOnce(&mut Record)) -> Record {
    f(&mut r);
    r
}

fn indicators(f: impl FnOnce(&mut Indicators)) -> impl FnOnce(&mut Record) {
    move |r: &mut Record| {
        let mut i = r.indicators.unwrap_or_default();
        f(&mut i);
        r.indicators = Some(i);
    }
}

fn at(secs: i64, nanos: u32) -> SystemTime {
    let base = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::from(nanos));
    if secs >= 0 {
        base + Duration::from_secs(secs as u64)
    } else {
        base - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Events covering every optional field present and absent, every kind of value and
/// hostile text in every string field.
fn cases() -> Vec<Case> {
    let v6 = |s: &str| s.parse::<Ipv6Addr>().expect("ipv6");
    let mut c = vec![
        case("bare", bare()),
        alert("bare_alert", bare()),
        case("proxied", proxied()),
        case(
            "blocked",
            with(proxied(), |r| {
                r.verdict = verdict(
                    Action::Block,
                    Mode::Enforce,
                    "deny-listed-ip",
                    Some("ip 203.0.113.0/24"),
                );
                r.status = 403;
                r.backend = None;
                r.upstream_us = None;
            }),
        ),
        alert(
            "blocked_alert",
            with(proxied(), |r| {
                r.verdict = verdict(
                    Action::Block,
                    Mode::Enforce,
                    "deny-listed-ip",
                    Some("ip 203.0.113.0/24"),
                );
            }),
        ),
        alert(
            "throttled_counter_also",
            with(proxied(), |r| {
                r.verdict = seen(
                    verdict(Action::Throttle, Mode::Enforce, "login-per-ip", Some("client_ip")),
                    Some(11),
                    &["log-admin", "strike-scanner"],
                );
            }),
        ),
        case(
            "tarpit_no_matched",
            with(bare(), |r| {
                r.verdict = verdict(Action::Tarpit, Mode::Enforce, "slow", None)
            }),
        ),
        case(
            "allow_rule_also_only",
            with(bare(), |r| {
                r.verdict = seen(Verdict::allow(), None, &["log-everything"])
            }),
        ),
        case(
            "counter_extremes",
            with(bare(), |r| {
                r.verdict = seen(
                    verdict(Action::Block, Mode::Enforce, "cap", Some("client_ip+route")),
                    Some(i64::MIN),
                    &[],
                )
            }),
        ),
        case(
            "counter_zero_negative",
            with(bare(), |r| {
                r.verdict = seen(verdict(Action::Block, Mode::Enforce, "cap", None), Some(-1), &[])
            }),
        ),
        case(
            "counter_max",
            with(bare(), |r| {
                r.verdict = seen(
                    verdict(Action::Throttle, Mode::Enforce, "limit", None),
                    Some(i64::MAX),
                    &[],
                )
            }),
        ),
        case(
            "counter_zero",
            with(bare(), |r| {
                r.verdict = seen(verdict(Action::Throttle, Mode::Enforce, "limit", None), Some(0), &[])
            }),
        ),
        case(
            "monitor_would_block",
            with(proxied(), |r| {
                r.verdict = verdict(Action::Block, Mode::Monitor, "watch", Some("path /admin"))
            }),
        ),
        alert(
            "monitor_would_throttle_alert",
            with(proxied(), |r| {
                r.verdict = verdict(Action::Throttle, Mode::Monitor, "watch", None)
            }),
        ),
        alert(
            "monitor_would_tarpit_alert",
            with(proxied(), |r| {
                r.verdict = verdict(Action::Tarpit, Mode::Monitor, "watch", None)
            }),
        ),
        case(
            "monitor_allow",
            with(bare(), |r| {
                r.verdict = Verdict::allow();
                r.verdict.decision.mode = Mode::Monitor;
            }),
        ),
        case(
            "error_reason",
            with(proxied(), |r| {
                r.error = Some("upstream_timeout");
                r.status = 504;
            }),
        ),
        case(
            "error_reason_with_block",
            with(bare(), |r| {
                r.error = Some("client_gone");
                r.verdict = verdict(Action::Block, Mode::Enforce, "b", None);
            }),
        ),
        case(
            "shadow_with_rule",
            with(proxied(), |r| {
                r.shadow = Some(("would_block", Some("new-rule".into())));
                r.shadow_policy = Some(policy("0123456789ab"));
            }),
        ),
        case(
            "shadow_without_rule",
            with(proxied(), |r| {
                r.shadow = Some(("allow", None));
                r.shadow_policy = Some(policy("0123456789ab"));
            }),
        ),
        case(
            "shadow_policy_only",
            with(bare(), |r| r.shadow_policy = Some(policy("ba9876543210"))),
        ),
        case(
            "upstream_pool_only",
            with(bare(), |r| {
                r.route = Some("r".into());
                r.pool = Some("p".into());
            }),
        ),
        case(
            "upstream_duration_without_address",
            with(bare(), |r| {
                r.pool = Some("p".into());
                r.upstream_us = Some(0);
            }),
        ),
        case(
            "upstream_address_without_duration",
            with(bare(), |r| {
                r.pool = Some("p".into());
                r.backend = Some(SocketAddr::from(([0, 0, 0, 0], 0)));
            }),
        ),
        case(
            "route_without_pool",
            with(bare(), |r| {
                r.route = Some("r".into());
                r.backend = Some(SocketAddr::from(([127, 0, 0, 1], 1)));
            }),
        ),
        case(
            "tls_with_sni_http2",
            with(proxied(), |r| {
                r.version = http::Version::HTTP_2;
                r.tls = Some(Tls {
                    version: "TLSv1.3".into(),
                    server_name: Some("live.example.com".into()),
                });
            }),
        ),
        case(
            "tls_without_sni_http10",
            with(proxied(), |r| {
                r.version = http::Version::HTTP_10;
                r.tls = Some(Tls {
                    version: "TLSv1.2".into(),
                    server_name: None,
                });
            }),
        ),
        case("http09", with(bare(), |r| r.version = http::Version::HTTP_09)),
        case("http3", with(bare(), |r| r.version = http::Version::HTTP_3)),
        case(
            "ipv6",
            with(proxied(), |r| {
                r.client_ip = Some(IpAddr::V6(v6("2001:db8::1")));
                r.peer = Some(SocketAddr::from((v6("::1"), 443)));
                r.backend = Some(SocketAddr::from((v6("2001:db8:0:0:1:0:0:2"), 8443)));
            }),
        ),
        case(
            "ipv6_forms",
            with(proxied(), |r| {
                r.client_ip = Some(IpAddr::V6(v6("::ffff:203.0.113.9")));
                r.peer = Some(SocketAddr::V6(SocketAddrV6::new(v6("fe80::1:2"), 65535, 7, 3)));
                r.backend = Some(SocketAddr::from((v6("::"), 0)));
            }),
        ),
        case(
            "ipv6_scoped_backend",
            with(proxied(), |r| {
                r.backend = Some(SocketAddr::V6(SocketAddrV6::new(v6("fe80::a"), 8080, 1, 42)));
            }),
        ),
        case(
            "ipv6_full_and_compat",
            with(proxied(), |r| {
                r.client_ip = Some(IpAddr::V6(v6("1:2:3:4:5:6:7:8")));
                r.peer = Some(SocketAddr::from((v6("::1.2.3.4"), 1)));
                r.backend = Some(SocketAddr::from((v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 65535)));
            }),
        ),
        case(
            "ipv4_extremes",
            with(proxied(), |r| {
                r.client_ip = Some(IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)));
                r.peer = Some(SocketAddr::from(([255, 255, 255, 255], 65535)));
                r.backend = Some(SocketAddr::from(([1, 20, 100, 9], 10)));
            }),
        ),
        case(
            "client_without_peer",
            with(bare(), |r| r.client_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST))),
        ),
        case(
            "peer_without_client",
            with(bare(), |r| r.peer = Some(SocketAddr::from(([192, 168, 100, 200], 9)))),
        ),
        Case {
            aliases: Some(Aliases {
                client: Some("5f1e0c2a9d3b47e8a1c6b0d2e4f69788".into()),
                source: Some("0a1b2c3d4e5f60718293a4b5c6d7e8f9".into()),
            }),
            ..case("hashed", proxied())
        },
        Case {
            aliases: Some(Aliases {
                client: Some("5f1e0c2a9d3b47e8a1c6b0d2e4f69788".into()),
                source: Some("0a1b2c3d4e5f60718293a4b5c6d7e8f9".into()),
            }),
            ..alert(
                "hashed_alert",
                with(proxied(), |r| {
                    r.verdict = verdict(Action::Block, Mode::Enforce, "b", None)
                }),
            )
        },
        Case {
            aliases: Some(Aliases {
                client: None,
                source: Some("0a1b2c3d4e5f60718293a4b5c6d7e8f9".into()),
            }),
            ..case("hashed_source_only", with(proxied(), |r| r.client_ip = None))
        },
        Case {
            aliases: Some(Aliases::default()),
            ..case("hashed_without_addresses", proxied())
        },
        case(
            "query_keep",
            with(bare(), |r| {
                r.uri = "/p?a=1&b=\\x&c=%22&é=ü".parse().expect("uri");
                r.redaction = redaction(QueryMode::Keep, &[], &[]);
            }),
        ),
        case(
            "query_drop",
            with(proxied(), |r| r.redaction = redaction(QueryMode::Drop, &[], &[])),
        ),
        case("query_empty", with(bare(), |r| r.uri = "/p?".parse().expect("uri"))),
        case(
            "query_redact_all_shapes",
            with(bare(), |r| {
                r.uri = "/p?page=2&&=x&token=a=b&flag&page&PAGE=3&x=\\\\&ü=1"
                    .parse()
                    .expect("uri");
                r.redaction = redaction(QueryMode::Redact, &["page", "ü", ""], &[]);
            }),
        ),
        case(
            "hostile_path",
            with(bare(), |r| r.uri = "/a\"b\\c/é€😀/{x}|^".parse().expect("uri")),
        ),
        case(
            "absolute_form_uri",
            with(bare(), |r| {
                r.uri = "http://Example.com:8080/x?y=1".parse().expect("uri")
            }),
        ),
        case(
            "authority_form_uri",
            with(bare(), |r| r.uri = "example.com:443".parse().expect("uri")),
        ),
        case("asterisk_uri", with(bare(), |r| r.uri = "*".parse().expect("uri"))),
        case(
            "headers_text_and_not",
            with(proxied(), |r| {
                let req = request(
                    "/",
                    http::Version::HTTP_11,
                    "GET",
                    &[
                        ("referer", b"https://ex.com/\xc3\xa9"),
                        ("accept-language", b"\"fr\"\t\\de\\ ;q=0.5 \x7e"),
                        ("x-custom", b"!#$%&'()*+,-./:;<=>?@[]^_`{|}~"),
                    ],
                );
                let red = redaction(QueryMode::Redact, &[], &["referer", "accept-language", "x-custom"]);
                *r = Record {
                    start: r.start,
                    ..Record::capture(&req, &red, &r.policy)
                };
            }),
        ),
        case(
            "headers_none_text",
            with(bare(), |r| {
                let req = request("/", http::Version::HTTP_11, "GET", &[("referer", b"\x80\xff")]);
                *r = Record::capture(
                    &req,
                    &redaction(QueryMode::Redact, &[], &["referer", "accept-language"]),
                    &r.policy,
                );
            }),
        ),
        case(
            "headers_listed_absent",
            with(bare(), |r| {
                let req = request("/", http::Version::HTTP_11, "GET", &[("cookie", b"a=b")]);
                *r = Record::capture(&req, &redaction(QueryMode::Redact, &[], &["referer"]), &r.policy);
            }),
        ),
        case(
            "header_empty_value",
            with(bare(), |r| {
                let req = request("/", http::Version::HTTP_11, "GET", &[("referer", b"")]);
                *r = Record::capture(&req, &redaction(QueryMode::Redact, &[], &["referer"]), &r.policy);
            }),
        ),
        case(
            "user_agent_invalid_utf8",
            with(bare(), |r| {
                let ua: &[u8] = b"Mozilla\xff\xfe (\xe2\x82) \xf0\x9f\x98 ok \xc3\xa9 \xed\xa0\x80 \xc0\xaf \"x\"\t\\";
                r.user_agent = Some(HeaderValue::from_bytes(ua).expect("ua"));
            }),
        ),
        case(
            "user_agent_utf8",
            with(bare(), |r| {
                r.user_agent = Some(HeaderValue::from_bytes("curl/8 é€😀".as_bytes()).expect("ua"))
            }),
        ),
        case(
            "user_agent_empty",
            with(bare(), |r| r.user_agent = Some(HeaderValue::from_static(""))),
        ),
        case(
            "method_extension",
            with(bare(), |r| r.method = Method::from_bytes(b"M-SEARCH").expect("method")),
        ),
        case(
            "number_extremes",
            with(proxied(), |r| {
                r.duration_us = u64::MAX;
                r.bytes_in = u64::MAX;
                r.bytes_out = u64::MAX - 1;
                r.status = u16::MAX;
                r.upstream_us = Some(u64::MAX);
                r.generation = u64::MAX;
                r.indicators = Some(Indicators {
                    requests_1s: u32::MAX,
                    requests_60s: 1_000_000_000,
                    distinct_paths_60s: 99_999,
                    first_seen_s: u64::MAX,
                    user_agent_changes: 10,
                    ..Indicators::default()
                });
            }),
        ),
        case(
            "floats_typical",
            with(
                proxied(),
                indicators(|i| {
                    i.ratio_4xx = 1.0 / 3.0;
                    i.ratio_5xx = 0.1;
                    i.strike_score = 12.35;
                    i.ban = "probation";
                }),
            ),
        ),
        case(
            "floats_whole",
            with(
                proxied(),
                indicators(|i| {
                    i.ratio_4xx = 1.0;
                    i.ratio_5xx = -0.0;
                    i.strike_score = 3.0;
                    i.ban = "banned";
                }),
            ),
        ),
        case(
            "floats_small_large",
            with(
                proxied(),
                indicators(|i| {
                    i.ratio_4xx = 1e-7;
                    i.ratio_5xx = f32::MIN_POSITIVE;
                    i.strike_score = 1e20;
                }),
            ),
        ),
        case(
            "floats_extreme",
            with(
                proxied(),
                indicators(|i| {
                    i.ratio_4xx = f32::MAX;
                    i.ratio_5xx = 1e-45;
                    i.strike_score = -123456.79;
                }),
            ),
        ),
        case(
            "floats_non_finite",
            with(
                proxied(),
                indicators(|i| {
                    i.ratio_4xx = f32::NAN;
                    i.ratio_5xx = f32::INFINITY;
                    i.strike_score = f32::NEG_INFINITY;
                }),
            ),
        ),
        case(
            "floats_rounding",
            with(
                proxied(),
                indicators(|i| {
                    i.ratio_4xx = 0.999_999_94;
                    i.ratio_5xx = 0.5;
                    i.strike_score = 1234567.0;
                }),
            ),
        ),
        case("time_before_epoch", with(bare(), |r| r.start = at(-1, 500_000_000))),
        case(
            "time_leap_day",
            with(bare(), |r| r.start = at(1_709_164_800 + 86_399, 999_999_999)),
        ),
        case("time_year_9999", with(bare(), |r| r.start = at(253_402_300_799, 1))),
        case("time_year_1", with(bare(), |r| r.start = at(-62_135_596_800, 0))),
        case("time_year_0", with(bare(), |r| r.start = at(-62_167_219_200, 10))),
        case("time_year_minus_1", with(bare(), |r| r.start = at(-62_198_755_200, 0))),
        case("time_year_1000", with(bare(), |r| r.start = at(-30_610_224_000, 123))),
    ];
    let hostile = |r: &mut Record| {
        r.request_id = HOSTILE.into();
        r.host = HOSTILE.into();
        r.route = hostile_arc();
        r.pool = hostile_arc();
        r.verdict = seen(
            verdict(Action::Block, Mode::Monitor, HOSTILE, Some(HOSTILE)),
            Some(7),
            &[HOSTILE, "", "\\"],
        );
        r.shadow = Some(("would_throttle", hostile_arc()));
        r.policy = policy(HOSTILE);
        r.shadow_policy = Some(policy(HOSTILE));
        r.tls = Some(Tls {
            version: HOSTILE.into(),
            server_name: Some(HOSTILE.into()),
        });
    };
    c.push(case("hostile_strings", with(proxied(), hostile)));
    c.push(alert("hostile_strings_alert", with(proxied(), hostile)));
    c.push(Case {
        aliases: Some(Aliases {
            client: Some(HOSTILE.into()),
            source: Some(HOSTILE.into()),
        }),
        ..alert("hostile_aliases", with(proxied(), hostile))
    });
    for (i, b) in (0u8..0x20).chain([b'"', b'\\', 0x7f]).enumerate() {
        let s = format!("<{}>", char::from(b));
        let name: &'static str = Box::leak(format!("control_byte_{i:02}").into_boxed_str());
        c.push(case(
            name,
            with(bare(), |r| {
                r.request_id = s.as_str().into();
                r.route = Some(s.as_str().into());
            }),
        ));
    }
    c
}

/// Today's output for every case, one `NAME<TAB>JSON` line each (JSON escapes tabs, so the
/// first tab ends the name).
const GOLDEN: &str = include_str!("events.golden");

fn encode(c: &Case) -> String {
    let view = EventView {
        record: &c.record,
        alert: c.alert,
        aliases: c.aliases.as_ref(),
    };
    let mut out = Vec::new();
    view.write_json(&mut out);
    String::from_utf8(out).expect("UTF-8")
}

#[test]
fn events_match_the_golden_output() {
    let cases = cases();
    if std::env::var_os("PALISADE_WRITE_GOLDEN").is_some() {
        let out: String = cases.iter().map(|c| format!("{}\t{}\n", c.name, encode(c))).collect();
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/telemetry/event/events.golden"),
            out,
        )
        .expect("write");
    }
    let golden: Vec<(&str, &str)> = GOLDEN
        .lines()
        .map(|l| l.split_once('\t').expect("NAME<TAB>JSON"))
        .collect();
    assert_eq!(golden.len(), cases.len(), "one golden line per case");
    for (c, (name, want)) in cases.iter().zip(golden) {
        assert_eq!(c.name, name, "cases and golden lines in the same order");
        assert_eq!(encode(c), want, "case {name}");
        serde_json::from_str::<serde_json::Value>(want).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
