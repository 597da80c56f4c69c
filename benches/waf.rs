//! Criterion benchmark of the WAF tier's `inspect` on a typical clean request and on an attack.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use palisade::waf::{inspect_with, warm_up, Config, Item, Location, Scratch};

include!("support/waf_typical_request.rs");

fn bench(c: &mut Criterion) {
    warm_up();
    let config = Config::default();
    let items = typical();
    let mut scratch = Scratch::default();
    c.bench_function("inspect/typical_clean_request", |b| {
        b.iter(|| inspect_with(black_box(&items), &config, &mut scratch))
    });
    let mut attack = typical();
    attack[3] = Item::new(
        Location::QueryArg,
        "q",
        b"1%27%20union%20select%20password%20from%20users--",
    );
    attack[20] = Item::new(
        Location::JsonString,
        "order.notes",
        b"<img src=x onerror=alert(document.cookie)>",
    );
    c.bench_function("inspect/request_with_two_attacks", |b| {
        b.iter(|| inspect_with(black_box(&attack), &config, &mut scratch))
    });
    c.bench_function("inspect/typical_clean_request_fresh_scratch", |b| {
        b.iter(|| palisade::waf::inspect(black_box(&items), &config))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
