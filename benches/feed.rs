//! Criterion benchmark of the live decision feed on the request side (telemetry/feed.rs): what
//! the `logging` phase spends offering one non-allow decision to the console's consumers.
//! - `feed/nobody`: no admin listener or nobody listening: the `wanted()` check alone;
//! - `feed/board`: the offender board listening (any admin listener): building the event and
//!   one `try_send`;
//! - `feed/board_and_stream`: the board and one stream client.
//!
//! A thread drains the queues, untimed. Run: `cargo bench --bench feed`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use palisade::telemetry::feed::{DecisionFeed, FeedEvent};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn event(n: u64) -> FeedEvent {
    FeedEvent {
        time_ms: n,
        request_id: "9c0f2b7e1d4a4f3c8b6e5d2a1f0c9b8a".to_string(),
        client_ip: "198.51.100.7".parse().ok(),
        identity: None,
        method: "GET".to_string(),
        host: "shop.example".to_string(),
        path: "/admin/login".to_string(),
        route: Some("app".to_string()),
        status: 403,
        decision: "block",
        rule: Some("no-admin".to_string()),
    }
}

fn offer(feed: &DecisionFeed, n: u64) {
    if feed.wanted() {
        feed.publish(event(n));
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("feed");
    let feed = Arc::new(DecisionFeed::default());
    let mut n = 0u64;
    g.bench_function("nobody", |b| {
        b.iter(|| {
            n += 1;
            offer(black_box(&feed), n)
        })
    });
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let drain = |mut sub: palisade::telemetry::feed::Subscription, stop: Arc<AtomicBool>| {
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if sub.rx.recv().await.is_none() {
                    break;
                }
            }
        })
    };
    drain(feed.subscribe_board(), stop.clone());
    g.bench_function("board", |b| {
        b.iter(|| {
            n += 1;
            offer(black_box(&feed), n)
        })
    });
    drain(feed.subscribe(), stop.clone());
    g.bench_function("board_and_stream", |b| {
        b.iter(|| {
            n += 1;
            offer(black_box(&feed), n)
        })
    });
    g.finish();
    stop.store(true, Ordering::Relaxed);
}

criterion_group!(benches, bench);
criterion_main!(benches);
