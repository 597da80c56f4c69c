//! Criterion benchmark of the telemetry pipeline, without sockets:
//! - `request_path/*`: what the `logging` phase spends per request on telemetry: capturing the
//!   record from the request header and outcome, updating the actor's indicators, sampling and
//!   `try_send` into the bounded queue (the writer drains it on another thread, untimed);
//!   `capture_indicators_enqueue` is the whole of it, the others its parts;
//! - `writer/serialize_event`: the writer thread's JSON encoding of one event;
//! - `pipeline/file_sink`: records queued as fast as one thread can and written by the writer
//!   thread into a rotating file, end to end (elements/s is events written per second).
//!
//! The request-path figures are CPU time of the benchmark thread (`CLOCK_THREAD_CPUTIME_ID`),
//! so other work on the machine does not inflate them; the pipeline figure is wall-clock
//! throughput, and the pipeline also prints the writer thread's CPU per event.
//!
//! Run: `cargo bench --bench telemetry`. Targets (issue 4): request path ≤ 1 µs per event,
//! pipeline ≥ 200k events/s into the file sink on a 2-core machine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use palisade::config::file::QueryMode;
use palisade::config::load::policy_from_str;
use palisade::enforce::offenders::Offenders;
use palisade::enforce::Verdict;
use palisade::policy::{compile, PolicySet};
use palisade::telemetry::event::{EventView, Record, Redaction};
use palisade::telemetry::indicators::{ActorTable, Observation, Penalties};
use palisade::telemetry::sink::{FileSink, RotatingFile};
use palisade::telemetry::{Batch, Sink, SinkMetrics, Telemetry};

// The allocator of the palisade binary (src/main.rs), so allocation costs are the real ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Records queued between two waits for the writer; below the queue capacity, so the timed
/// loop never takes the drop path.
const CHUNK: u64 = 4096;
const QUEUE: usize = 65_536;
/// Distinct clients the benchmark traffic comes from.
const CLIENTS: u32 = 1000;

struct Fixture {
    parts: http::request::Parts,
    redaction: Arc<Redaction>,
    policy: Arc<PolicySet>,
    offenders: Offenders,
}

fn fixture() -> Fixture {
    let req = http::Request::builder()
        .method("GET")
        .uri("/api/v2/channels/4711/chat?page=2&token=s3cret")
        .header("host", "live.example.com")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0",
        )
        .header("accept", "text/html,application/xhtml+xml")
        .header("accept-language", "en-GB,en;q=0.9")
        .header("accept-encoding", "gzip, br")
        .header("referer", "https://live.example.com/channels/4711")
        .header("cookie", "session=abcdef0123456789")
        .header("x-forwarded-for", "203.0.113.77")
        .body(())
        .expect("request");
    let policy = policy_from_str("bench.yaml", "rules: []\n", &[]).expect("policy");
    Fixture {
        parts: req.into_parts().0,
        redaction: Arc::new(Redaction {
            query: QueryMode::Redact,
            query_allowlist: vec!["page".into()],
            headers: vec![
                http::HeaderName::from_static("referer"),
                http::HeaderName::from_static("accept-language"),
            ],
        }),
        policy: Arc::new(compile(&[policy], None)),
        offenders: Offenders::new(),
    }
}

/// The strings `proxy::ctx::record` moves out of the request context (allocated by
/// request_filter whether or not telemetry is on): made outside the timed loops.
fn owned_strings() -> (String, String) {
    (
        String::from("d3d733d37e1d1a8e299694ecc3953d68"),
        String::from("live.example.com"),
    )
}

/// What `proxy::ctx::record` builds for a proxied, allowed request.
fn record(f: &Fixture, n: u32, (request_id, host): (String, String)) -> Record {
    let mut rec = Record::capture(&f.parts, &f.redaction, &f.policy);
    rec.start = SystemTime::now();
    rec.duration_us = 812;
    rec.request_id = request_id.into();
    rec.host = host;
    rec.client_ip = Some(IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + n % CLIENTS)));
    rec.peer = Some(SocketAddr::from(([10, 0, 0, 7], 48524)));
    rec.status = 200;
    rec.bytes_out = 5120;
    rec.verdict = Verdict::allow();
    rec.backend = Some(SocketAddr::from(([10, 0, 1, 11], 8080)));
    rec.upstream_us = Some(640);
    rec.generation = 1;
    rec
}

/// Discards what it is given, counting it as sent.
struct Discard(SinkMetrics);

impl Sink for Discard {
    fn deliver(&mut self, batch: &Batch) {
        self.0.sent.inc_by(batch.len() as u64);
    }
}

/// CPU time this thread has run, in nanoseconds: what the request path costs, whatever else
/// the machine is doing (the benchmark runs on a shared 2-core machine).
fn thread_cpu_ns() -> u64 {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of every thread of the process, in nanoseconds.
fn process_cpu_ns() -> u64 {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec for the call to write into.
    let rc = unsafe { libc::clock_gettime(clock, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Run `f` `iters` times and return the CPU time this thread spent.
fn cpu_timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = thread_cpu_ns();
    for _ in 0..iters {
        f();
    }
    Duration::from_nanos(thread_cpu_ns() - start)
}

fn wait_for(metrics: &SinkMetrics, total: u64) {
    while metrics.sent.get() + metrics.dropped_queue_full.get() < total {
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn request_path(c: &mut Criterion) {
    let f = fixture();
    let metrics = SinkMetrics::new("bench_discard");
    let (telemetry, writer) = Telemetry::with_sink(Box::new(Discard(metrics.clone())), QUEUE, 65_536, metrics.clone());
    writer.spawn().expect("writer");
    let mut g = c.benchmark_group("request_path");
    g.bench_function("capture_record", |b| {
        let mut n = 0;
        b.iter_custom(|iters| {
            let mut strings: Vec<(String, String)> = (0..iters).map(|_| owned_strings()).collect();
            let mut out = Vec::with_capacity(iters as usize);
            let t = cpu_timed(iters, || {
                n += 1;
                if let Some(s) = strings.pop() {
                    out.push(record(&f, n, s));
                }
            });
            black_box(out);
            t
        })
    });
    g.bench_function("indicators_observe", |b| {
        let table = ActorTable::new(65_536);
        let mut n = 0u32;
        b.iter_custom(|iters| {
            cpu_timed(iters, || {
                n = n.wrapping_add(1);
                let obs = Observation {
                    ip: IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + n % CLIENTS)),
                    path: b"/api/v2/channels/4711/chat",
                    user_agent: b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0",
                    status: 200,
                    now_ms: 1_700_000_000_000 + u64::from(n / 16),
                };
                black_box(table.observe(&obs, false, |_| Penalties {
                    ban: "none",
                    strike_score: 0.0,
                }));
            })
        })
    });
    g.bench_function("capture_indicators_enqueue", |b| {
        let mut n = 0u32;
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(CHUNK);
                let mut strings: Vec<(String, String)> = (0..chunk).map(|_| owned_strings()).collect();
                // Timed in this thread's CPU time, not wall time: the figure is the request
                // path's CPU per event, unaffected by other processes taking the cores.
                let start = thread_cpu_ns();
                for s in strings.drain(..) {
                    n = n.wrapping_add(1);
                    let now = 1_700_000_000_000 + u64::from(n / 16);
                    telemetry.emit(record(&f, n, s), &f.offenders, None, now);
                }
                timed += Duration::from_nanos(thread_cpu_ns() - start);
                // Let the writer catch up, untimed, so the queue never fills.
                wait_for(&metrics, metrics.emitted.get());
                left -= chunk;
            }
            timed
        })
    });
    g.finish();
    assert_eq!(metrics.dropped_queue_full.get(), 0, "the timed loop took the drop path");
}

fn writer(c: &mut Criterion) {
    let f = fixture();
    let rec = record(&f, 1, owned_strings());
    let mut buf = Vec::with_capacity(4096);
    c.bench_function("writer/serialize_event", |b| {
        b.iter(|| {
            buf.clear();
            let view = EventView {
                record: &rec,
                alert: false,
                aliases: None,
            };
            view.write_json(&mut buf);
            black_box(buf.len())
        })
    });
}

fn pipeline(c: &mut Criterion) {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = SinkMetrics::new("bench_file");
    let file = RotatingFile::open(dir.path().join("events.jsonl"), 64 << 20, 1).expect("file");
    let (telemetry, writer) = Telemetry::with_sink(
        Box::new(FileSink::new(file, metrics.clone())),
        QUEUE,
        65_536,
        metrics.clone(),
    );
    writer.spawn().expect("writer");
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    let (mut events, mut producer_ns, mut all_ns) = (0u64, 0u64, 0u64);
    g.bench_function("file_sink", |b| {
        let mut n = 0u32;
        b.iter_custom(|iters| {
            let target = metrics.emitted.get() + iters;
            let (producer0, all0) = (thread_cpu_ns(), process_cpu_ns());
            let start = Instant::now();
            let mut queued = 0;
            while queued < iters {
                // Stay below the queue capacity: this measures the writer, not drops.
                if metrics.emitted.get() - metrics.sent.get() >= QUEUE as u64 - 1 {
                    std::hint::spin_loop();
                    continue;
                }
                n = n.wrapping_add(1);
                telemetry.emit(record(&f, n, owned_strings()), &f.offenders, None, 1_700_000_000_000);
                queued += 1;
            }
            wait_for(&metrics, target);
            let elapsed = start.elapsed();
            events += iters;
            producer_ns += thread_cpu_ns() - producer0;
            all_ns += process_cpu_ns() - all0;
            elapsed
        })
    });
    g.finish();
    // The writer's own CPU per event says what one core sustains, however busy the machine.
    // To stderr, and only after a run: `--list` (as nextest calls it) must print tests only.
    if events > 0 {
        let writer_ns = all_ns.saturating_sub(producer_ns) as f64 / events as f64;
        eprintln!(
            "pipeline/file_sink: {events} events; writer thread {writer_ns:.0} ns CPU/event \
             (sustains {:.0}k events/s on one core); producer {:.0} ns CPU/event",
            1e6 / writer_ns.max(1.0),
            producer_ns as f64 / events as f64
        );
    }
    assert_eq!(metrics.dropped_queue_full.get(), 0, "events were dropped");
    assert_eq!(metrics.dropped_write_error.get(), 0, "writes failed");
}

criterion_group!(benches, request_path, writer, pipeline);
criterion_main!(benches);
