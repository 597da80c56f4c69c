//! Policy engine benchmarks (issue targets: `evaluate` with 100k CIDRs and 200 rules ≤ 1 µs;
//! a banned actor refused ≤ 200 ns; compiling a 100k-entry policy < 200 ms).
//!
//! `cargo bench --bench policy`

use std::fmt::Write;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use palisade::config::load::policy_from_str;
use palisade::enforce::offenders::{Actor, Offenders};
use palisade::enforce::{decide, evaluate, RequestFacts};
use palisade::policy::{compile, PolicySet};

/// A deterministic generator, so every run benchmarks the same policy.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }
}

/// 100k deny-list entries (mixed /32, /24, /16 and IPv6 /48) and 200 rules of the kinds
/// operators write: path prefixes, globs, methods, hosts, headers, query and user agents.
fn big_policy_yaml() -> String {
    let mut rng = Lcg(42);
    let mut y = String::from("lists:\n  deny:\n    cidrs:\n");
    for i in 0..100_000u32 {
        let a = rng.next();
        // Stay clear of 198.51.100.0/24, the benchmark's allowed client.
        let a = if (a >> 24) == 198 { a ^ 0x0100_0000 } else { a };
        let (b0, b1, b2, b3) = (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
        let _ = match i % 10 {
            0 => writeln!(y, "      - 2001:db8:{:x}::/48", a & 0xffff),
            1 => writeln!(y, "      - {b0}.{b1}.0.0/16"),
            2..=5 => writeln!(y, "      - {b0}.{b1}.{b2}.0/24"),
            _ => writeln!(y, "      - {b0}.{b1}.{b2}.{b3}"),
        };
    }
    y.push_str("rules:\n  - {id: deny-list, match: {ip_lists: [deny]}, action: block}\n");
    for i in 0..199 {
        let m = match i % 8 {
            0 => format!("{{path_prefix: [/api/v{i}/]}}"),
            1 => format!("{{methods: [DELETE], path_prefix: [/admin{i}]}}"),
            2 => format!("{{hosts: ['*.tenant{i}.example'], methods: [POST]}}"),
            3 => format!("{{path_glob: ['/channels/*/x{i}/**']}}"),
            4 => format!("{{headers: {{x-probe-{i}: {{present: true}}}}}}"),
            5 => format!("{{query: {{q{i}: {{present: true}}}}}}"),
            6 => format!("{{user_agent: {{contains: scanner{i}}}}}"),
            _ => format!("{{path: [/exact/{i}], methods: [PUT]}}"),
        };
        let _ = writeln!(y, "  - {{id: r{i}, match: {m}, action: block}}");
    }
    y.push_str("limits:\n  - {id: per-ip, requests: 4000000000, per: 1s}\n");
    y.push_str("offenders: {strikes: 10, window: 60s, ban_for: 10m}\n");
    y
}

fn build(yaml: &str) -> PolicySet {
    let p = policy_from_str("bench.yaml", yaml, &[]).unwrap_or_else(|e| panic!("{e}"));
    compile(&[p], None)
}

fn benches(c: &mut Criterion) {
    let yaml = big_policy_yaml();
    let policy = build(&yaml);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0".parse().expect("hv"),
    );
    headers.insert("accept", "*/*".parse().expect("hv"));
    let allowed = RequestFacts {
        client_ip: "198.51.100.23".parse().expect("ip"),
        method: "GET",
        host: "live.example.com",
        path: "/channels/streamer/chat",
        route: "app",
        query: Some("page=2"),
        headers: &headers,
        content_length: None,
    };

    c.bench_function("evaluate: 100k CIDRs + 200 rules, allowed request", |b| {
        b.iter(|| black_box(evaluate(&policy, black_box(&allowed))))
    });
    let denied_ip = policy.rules[0].condition.explain(&allowed);
    black_box(denied_ip);

    let offenders = Offenders::new();
    let banned_ip = "203.0.113.50".parse().expect("ip");
    offenders.set(Actor::Ip(banned_ip), Some(Some(Duration::from_secs(3600))), "bench", 1);
    let banned = RequestFacts {
        client_ip: banned_ip,
        ..allowed
    };
    c.bench_function("decide: banned actor short-circuit", |b| {
        b.iter(|| black_box(decide(&policy, &offenders, black_box(&banned), 1000).verdict))
    });
    c.bench_function("decide: 100k CIDRs + 200 rules, allowed request, bans on", |b| {
        b.iter(|| black_box(decide(&policy, &offenders, black_box(&allowed), 1000).verdict))
    });

    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("parse + validate + compile 100k-entry policy", |b| {
        b.iter(|| black_box(build(&yaml)))
    });
    g.finish();
}

criterion_group!(policy_benches, benches);
criterion_main!(policy_benches);
