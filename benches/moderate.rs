//! Moderation benchmarks: fold + scan throughput on mixed chat against a 10k-term list, one
//! 200-byte message, and parse + compile of a 100k-entry list.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use palisade::moderate::{fold, parse, TermSet};

#[path = "support/moderation_chat.rs"]
mod chat;
use chat::{terms, CHAT};

fn corpus(bytes: usize) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut out = Vec::new();
    let mut total = 0;
    while total < bytes {
        let mut msg = String::new();
        for _ in 0..rng.usize(1..=4) {
            if !msg.is_empty() {
                msg.push(' ');
            }
            msg.push_str(CHAT[rng.usize(0..CHAT.len())]);
        }
        total += msg.len();
        out.push(msg);
    }
    out
}

fn bench(c: &mut Criterion) {
    let list = parse("bench", &terms(10_000)).expect("valid list");
    let set = TermSet::build(&[list]).expect("builds");
    let messages = corpus(256 * 1024);
    let total: usize = messages.iter().map(String::len).sum();

    let mut g = c.benchmark_group("chat");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("fold+scan 10k terms, per message", |b| {
        b.iter(|| {
            let mut hits = 0;
            for m in &messages {
                hits += set.scan(black_box(m)).len();
            }
            hits
        })
    });
    g.bench_function("fold only, per message", |b| {
        let mut folded = fold::Folded::default();
        b.iter(|| {
            let mut n = 0;
            for m in &messages {
                fold::fold_into(black_box(m), &mut folded);
                n += folded.as_str().len();
            }
            n
        })
    });
    let ascii: Vec<String> = messages.iter().filter(|m| m.is_ascii()).cloned().collect();
    let ascii_total: usize = ascii.iter().map(String::len).sum();
    g.throughput(Throughput::Bytes(ascii_total as u64));
    g.bench_function("fold+scan 10k terms, ASCII messages only", |b| {
        b.iter(|| ascii.iter().map(|m| set.scan(black_box(m)).len()).sum::<usize>())
    });
    g.finish();

    let mut msg = String::new();
    let mut i = 0;
    while msg.len() < 200 {
        msg.push_str(CHAT[i % CHAT.len()]);
        msg.push(' ');
        i += 3;
    }
    let cut = (0..=200).rev().find(|&n| msg.is_char_boundary(n)).unwrap_or(0);
    msg.truncate(cut);
    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.bench_function("200 bytes, 10k terms", |b| b.iter(|| set.scan(black_box(&msg)).len()));
    g.finish();

    let big = terms(100_000);
    let mut g = c.benchmark_group("list");
    g.sample_size(10);
    g.bench_function("parse+build 100k entries", |b| {
        b.iter_batched(
            || big.clone(),
            |text| {
                let list = parse("big", &text).expect("valid list");
                TermSet::build(&[list]).expect("builds")
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
