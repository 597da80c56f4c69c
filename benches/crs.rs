//! Criterion benchmark of the CRS tier (libmodsecurity3 with Debian's CRS 3.3.4 request rules,
//! paranoia level 1): one transaction over the typical request of the built-in tier's benchmark
//! (path, 5 query parameters, browser headers, a 1 KiB JSON body), clean and with two attacks,
//! and the same request without its body. Needs `libmodsecurity3` and `modsecurity-crs`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use palisade::waf::crs::{evaluate, loaded, Settings};

include!("support/crs_typical_request.rs");

fn bench(c: &mut Criterion) {
    let crs = loaded(&Settings::default()).expect("libmodsecurity3 and modsecurity-crs installed");
    let (typical, attacked, head) = typical_requests();
    assert!(evaluate(&crs, &typical).is_empty(), "{:?}", evaluate(&crs, &typical));
    assert!(evaluate(&crs, &attacked).len() >= 2);
    c.bench_function("crs/typical_clean_request", |b| {
        b.iter(|| evaluate(&crs, black_box(&typical)))
    });
    c.bench_function("crs/request_with_two_attacks", |b| {
        b.iter(|| evaluate(&crs, black_box(&attacked)))
    });
    c.bench_function("crs/typical_head_without_body", |b| {
        b.iter(|| evaluate(&crs, black_box(&head)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
