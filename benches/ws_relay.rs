//! Relay throughput: 200-byte masked text messages through `Relay::feed` with a judge that forwards.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use palisade::traffic::ws::{encode_frame, Direction, Judgement, Opcode, Relay};

const MESSAGES: usize = 1000;

fn stream() -> Vec<u8> {
    let text = "a".repeat(200);
    (0..MESSAGES)
        .flat_map(|i| encode_frame(Opcode::Text, text.as_bytes(), Some((i as u32).to_ne_bytes())))
        .collect()
}

fn bench(c: &mut Criterion) {
    let s = stream();
    let mut g = c.benchmark_group("ws_relay");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    // Real TCP reads: 16 KiB chunks, so messages straddle chunk boundaries.
    g.bench_function("200B_masked_text_16KiB_chunks", |b| {
        let chunks: Vec<Bytes> = s.chunks(16 * 1024).map(Bytes::copy_from_slice).collect();
        b.iter_batched(
            || Relay::new(Direction::ClientToServer, 1 << 20),
            |mut relay| {
                for c in &chunks {
                    let out = relay.feed(c.clone(), |_| Judgement::Forward);
                    criterion::black_box(out.forward);
                }
            },
            BatchSize::SmallInput,
        )
    });
    // One message per chunk: the per-call overhead.
    g.bench_function("200B_masked_text_one_per_chunk", |b| {
        let one = Bytes::from(encode_frame(
            Opcode::Text,
            "a".repeat(200).as_bytes(),
            Some([1, 2, 3, 4]),
        ));
        b.iter_batched(
            || Relay::new(Direction::ClientToServer, 1 << 20),
            |mut relay| {
                for _ in 0..MESSAGES {
                    let out = relay.feed(one.clone(), |_| Judgement::Forward);
                    criterion::black_box(out.forward);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
