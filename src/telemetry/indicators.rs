//! Behavioural indicators per actor (client address), updated by the `logging` phase for every
//! request, sampled or not, and attached to its telemetry event under `palisade.indicators`.
//!
//! Bounded and cheap: a fixed table of `actors` slots, split into 64 shards each behind its own
//! mutex (held for a handful of comparisons), 8-way set-associative inside a shard. A new actor
//! takes the least recently seen slot of its set, so memory never grows; the set is chosen by a
//! per-process keyed hash, so a client cannot aim at other clients' slots. Approximations, all
//! documented in docs/telemetry.md:
//! - rates over 1 s and 60 s are sliding-window estimates from two fixed buckets (current and
//!   previous), the previous one weighted by the share of it still inside the window;
//! - distinct paths are exact up to 7 (a small set of path hashes), then estimated by a
//!   64-register HyperLogLog per bucket (about 13% standard error);
//! - an evicted actor starts afresh when it comes back (its first-seen age restarts).
//!
//! The clock is a parameter (`now_ms`), so tests drive time without sleeping.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;

/// Shards of the table; a power of two.
const SHARDS: usize = 64;
/// Slots per set: an actor can live in any of them.
const WAYS: usize = 8;
/// Distinct paths counted exactly before the HyperLogLog takes over.
const EXACT_PATHS: usize = 8;
/// HyperLogLog registers per bucket (2^6).
const HLL_REGISTERS: usize = 64;
const HLL_BITS: u32 = 6;
/// Length of the long window, in milliseconds.
const MINUTE_MS: u64 = 60_000;
const SECOND_MS: u64 = 1_000;

/// What one request tells the table about its actor.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub ip: IpAddr,
    /// The path as sent, without the query.
    pub path: &'a [u8],
    pub user_agent: &'a [u8],
    /// Status sent to the client; 0 when none.
    pub status: u16,
    pub now_ms: u64,
}

/// The actor's indicators after counting this request, as recorded in telemetry (written by
/// event.rs, in the order of these fields).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Indicators {
    /// Requests in the last second (sliding estimate), this one included.
    pub requests_1s: u32,
    /// Requests in the last 60 seconds (sliding estimate), this one included.
    pub requests_60s: u32,
    /// Distinct paths in the last 60 seconds (HyperLogLog estimate).
    pub distinct_paths_60s: u32,
    /// Share of the last 60 seconds' requests answered 4xx, 0 to 1.
    pub ratio_4xx: f32,
    /// Share of the last 60 seconds' requests answered 5xx, 0 to 1.
    pub ratio_5xx: f32,
    /// Seconds since the actor entered the table.
    pub first_seen_s: u64,
    /// Times the user agent differed from the actor's previous request.
    pub user_agent_changes: u32,
    /// Decayed strike score (see the policy's `offenders`), rounded to 0.01; 0 when never struck.
    pub strike_score: f32,
    /// `none`, `probation` or `banned`.
    pub ban: &'static str,
}

#[derive(Clone, Copy)]
struct Bucket {
    /// Index of the window (time / length) these counts belong to.
    index: u64,
    cur: u32,
    prev: u32,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        index: 0,
        cur: 0,
        prev: 0,
    };

    /// Move to window `index`, keeping the previous window only if it is the one just before.
    fn roll(&mut self, index: u64) {
        if index == self.index {
            return;
        }
        self.prev = if index == self.index + 1 { self.cur } else { 0 };
        self.cur = 0;
        self.index = index;
    }

    fn estimate(&self, weight_prev: f64) -> f64 {
        self.cur as f64 + self.prev as f64 * weight_prev
    }
}

#[derive(Clone, Copy)]
struct Slot {
    ip: Option<IpAddr>,
    first_seen: u64,
    last_seen: u64,
    per_second: Bucket,
    per_minute: Bucket,
    status_4xx: Bucket,
    status_5xx: Bucket,
    user_agent: u64,
    user_agent_changes: u32,
    /// The actor was refused or struck at least once: only then is its strike score looked up.
    struck: bool,
    paths: [u8; HLL_REGISTERS],
    /// The first `EXACT_PATHS` distinct paths of the minute (32-bit hashes), counted exactly.
    exact: [u32; EXACT_PATHS],
    exact_len: u8,
    /// Estimate of `paths`, kept current as registers change.
    paths_now: f32,
    /// Final estimate of the previous minute's paths.
    paths_prev: f32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        ip: None,
        first_seen: 0,
        last_seen: 0,
        per_second: Bucket::EMPTY,
        per_minute: Bucket::EMPTY,
        status_4xx: Bucket::EMPTY,
        status_5xx: Bucket::EMPTY,
        user_agent: 0,
        user_agent_changes: 0,
        struck: false,
        paths: [0; HLL_REGISTERS],
        exact: [0; EXACT_PATHS],
        exact_len: 0,
        paths_now: 0.0,
        paths_prev: 0.0,
    };
}

/// A shard on its own cache line, so two threads on neighbouring shards do not contend.
/// Its slots are allocated when its first actor arrives: a table sized for many clients costs
/// nothing until they come.
#[repr(align(64))]
struct Shard(Mutex<Box<[Slot]>>);

pub struct ActorTable {
    shards: Box<[Shard]>,
    sets_per_shard: usize,
    hasher: RandomState,
}

/// What the offender state says about the actor, looked up by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Penalties {
    pub ban: &'static str,
    pub strike_score: f32,
}

impl ActorTable {
    /// A table for about `actors` actors (rounded up to fill every set of every shard).
    pub fn new(actors: usize) -> Self {
        let sets_per_shard = actors.div_ceil(SHARDS * WAYS).max(1);
        let shards = (0..SHARDS).map(|_| Shard(Mutex::new(Box::default()))).collect();
        ActorTable {
            shards,
            sets_per_shard,
            hasher: RandomState::new(),
        }
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        SHARDS * self.sets_per_shard * WAYS
    }

    /// Count one request. `struck` says this request was refused or struck; `penalties` is
    /// called, outside the shard lock, only for actors that were ever struck, to read their
    /// strike score and ban state.
    pub fn observe(&self, o: &Observation<'_>, struck: bool, penalties: impl FnOnce(bool) -> Penalties) -> Indicators {
        let h = self.hasher.hash_one(o.ip);
        let shard = &self.shards[(h as usize) & (SHARDS - 1)];
        let set = ((h >> 6) as usize) % self.sets_per_shard;
        // Paths and user agents get a cheaper keyed hash than SipHash: they only feed the
        // HyperLogLog and the change detector, where a rare collision costs nothing.
        let path_hash = fast_hash(h, o.path);
        let ua_hash = fast_hash(!h, o.user_agent);
        let (mut ind, ever_struck) = {
            let mut slots = shard.0.lock().unwrap_or_else(|e| e.into_inner());
            if slots.is_empty() {
                *slots = vec![Slot::EMPTY; self.sets_per_shard * WAYS].into_boxed_slice();
            }
            let ways = &mut slots[set * WAYS..(set + 1) * WAYS];
            let i = ways.iter().position(|s| s.ip == Some(o.ip)).unwrap_or_else(|| {
                // Not here: take an empty slot, else the least recently seen one.
                let (i, _) = ways
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| if s.ip.is_none() { 0 } else { s.last_seen.max(1) })
                    .unwrap_or((0, &ways[0]));
                ways[i] = Slot {
                    ip: Some(o.ip),
                    first_seen: o.now_ms,
                    user_agent: ua_hash,
                    ..Slot::EMPTY
                };
                i
            });
            update(&mut ways[i], o, path_hash, ua_hash, struck)
        };
        if ever_struck {
            let p = penalties(true);
            ind.ban = p.ban;
            ind.strike_score = (p.strike_score * 100.0).round() / 100.0;
        } else {
            ind.ban = penalties(false).ban;
        }
        ind
    }
}

fn update(s: &mut Slot, o: &Observation<'_>, path_hash: u64, ua_hash: u64, struck: bool) -> (Indicators, bool) {
    let now = o.now_ms.max(s.last_seen);
    s.last_seen = now;
    s.struck |= struck;
    if ua_hash != s.user_agent {
        s.user_agent = ua_hash;
        s.user_agent_changes = s.user_agent_changes.saturating_add(1);
    }
    let second = now / SECOND_MS;
    s.per_second.roll(second);
    s.per_second.cur = s.per_second.cur.saturating_add(1);
    let minute = now / MINUTE_MS;
    if minute != s.per_minute.index {
        s.paths_prev = if minute == s.per_minute.index + 1 {
            s.paths_now
        } else {
            0.0
        };
        s.paths = [0; HLL_REGISTERS];
        s.exact_len = 0;
        s.paths_now = 0.0;
    }
    for b in [&mut s.per_minute, &mut s.status_4xx, &mut s.status_5xx] {
        b.roll(minute);
    }
    s.per_minute.cur = s.per_minute.cur.saturating_add(1);
    match o.status {
        400..=499 => s.status_4xx.cur = s.status_4xx.cur.saturating_add(1),
        500..=599 => s.status_5xx.cur = s.status_5xx.cur.saturating_add(1),
        _ => {}
    }
    let register = (path_hash & (HLL_REGISTERS as u64 - 1)) as usize;
    let rank = ((path_hash >> HLL_BITS).trailing_zeros() + 1).min(64 - HLL_BITS + 1) as u8;
    let short = (path_hash >> 32) as u32;
    let known = s.exact[..s.exact_len as usize].contains(&short);
    if !known && (s.exact_len as usize) < EXACT_PATHS {
        s.exact[s.exact_len as usize] = short;
        s.exact_len += 1;
    }
    if rank > s.paths[register] {
        s.paths[register] = rank;
    }
    if !known {
        // Exact while the small set has room; past it, the HyperLogLog (never below the set).
        s.paths_now = if (s.exact_len as usize) < EXACT_PATHS {
            f32::from(s.exact_len)
        } else {
            (hll_estimate(&s.paths) as f32).max(EXACT_PATHS as f32)
        };
    }
    let w_sec = 1.0 - (now % SECOND_MS) as f64 / SECOND_MS as f64;
    let w_min = 1.0 - (now % MINUTE_MS) as f64 / MINUTE_MS as f64;
    let total = s.per_minute.estimate(w_min);
    let ratio = |b: &Bucket| {
        if total > 0.0 {
            ((b.estimate(w_min) / total).min(1.0) * 1000.0).round() as f32 / 1000.0
        } else {
            0.0
        }
    };
    let ind = Indicators {
        requests_1s: s.per_second.estimate(w_sec).round() as u32,
        requests_60s: total.round() as u32,
        distinct_paths_60s: (s.paths_now as f64 + s.paths_prev as f64 * w_min).round().max(1.0) as u32,
        ratio_4xx: ratio(&s.status_4xx),
        ratio_5xx: ratio(&s.status_5xx),
        first_seen_s: (now - s.first_seen) / 1000,
        user_agent_changes: s.user_agent_changes,
        strike_score: 0.0,
        ban: "none",
    };
    (ind, s.struck)
}

/// A keyed 64-bit hash of `bytes`: 8 bytes at a time through a folded 128-bit multiply, then
/// the murmur3 finalizer so every output bit depends on every input bit.
fn fast_hash(seed: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let fold = |a: u64, b: u64| {
        let r = u128::from(a) * u128::from(b);
        (r as u64) ^ ((r >> 64) as u64)
    };
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = fold(h ^ u64::from_le_bytes(w), K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = fold(h ^ u64::from_le_bytes(w), K ^ 0xff51_afd7_ed55_8ccd);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// HyperLogLog cardinality of the registers, with linear counting for small sets.
fn hll_estimate(registers: &[u8; HLL_REGISTERS]) -> f64 {
    let m = HLL_REGISTERS as f64;
    let mut sum = 0.0;
    let mut zeros = 0;
    for &r in registers {
        // 2^-r, built from its exponent bits (r ≤ 59) instead of a division.
        sum += f64::from_bits((1023 - u64::from(r)) << 52);
        zeros += usize::from(r == 0);
    }
    let alpha = 0.709; // for m = 64
    let raw = alpha * m * m / sum;
    if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs<'a>(ip: &str, path: &'a str, ua: &'a str, status: u16, now_ms: u64) -> Observation<'a> {
        Observation {
            ip: ip.parse().expect("ip"),
            path: path.as_bytes(),
            user_agent: ua.as_bytes(),
            status,
            now_ms,
        }
    }

    fn none(_: bool) -> Penalties {
        Penalties {
            ban: "none",
            strike_score: 0.0,
        }
    }

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn rates_follow_an_injected_clock() {
        let t = ActorTable::new(1024);
        // 10 requests within 100 ms: 10 in the last second and in the last minute.
        let mut last = Indicators::default();
        for i in 0..10 {
            last = t.observe(&obs("198.51.100.1", "/a", "ua", 200, T0 + i * 10), false, none);
        }
        assert_eq!((last.requests_1s, last.requests_60s), (10, 10));
        // 5 s later the 1 s window is empty again (this request only); the minute keeps all.
        let later = t.observe(&obs("198.51.100.1", "/a", "ua", 200, T0 + 5_000), false, none);
        assert_eq!((later.requests_1s, later.requests_60s), (1, 11));
        assert_eq!(later.first_seen_s, 5);
        // Two minutes on, everything has slid out.
        let gone = t.observe(&obs("198.51.100.1", "/a", "ua", 200, T0 + 125_000), false, none);
        assert_eq!((gone.requests_1s, gone.requests_60s), (1, 1));
        // Another actor is counted on its own.
        let other = t.observe(&obs("198.51.100.2", "/a", "ua", 200, T0 + 125_000), false, none);
        assert_eq!((other.requests_60s, other.first_seen_s), (1, 0));
    }

    #[test]
    fn error_ratios_distinct_paths_and_user_agent_changes() {
        let t = ActorTable::new(1024);
        let mut last = Indicators::default();
        for i in 0..40u64 {
            let status = if i % 4 == 0 {
                404
            } else if i % 10 == 1 {
                503
            } else {
                200
            };
            let ua = if i < 20 { "scanner/1" } else { "Mozilla/5.0" };
            last = t.observe(
                &obs("203.0.113.7", &format!("/probe/{i}"), ua, status, T0 + i),
                false,
                none,
            );
        }
        assert_eq!(last.requests_60s, 40);
        assert_eq!(last.ratio_4xx, 0.25);
        assert_eq!(last.ratio_5xx, 0.1);
        assert_eq!(last.user_agent_changes, 1);
        // 40 distinct paths, estimated within the documented error.
        assert!((30..=50).contains(&last.distinct_paths_60s), "{last:?}");
        // The same path again and again stays at one.
        let t2 = ActorTable::new(1024);
        for i in 0..50 {
            last = t2.observe(&obs("203.0.113.8", "/same", "ua", 200, T0 + i), false, none);
        }
        assert_eq!(last.distinct_paths_60s, 1);
    }

    #[test]
    fn hll_estimates_within_documented_error() {
        for n in [5usize, 50, 500, 5000] {
            let mut total_err = 0.0;
            for seed in 0..10u64 {
                let mut regs = [0u8; HLL_REGISTERS];
                // Fixed seeds: the test is about the estimator, and must give the same answer
                // every run.
                let seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
                for i in 0..n {
                    let h = fast_hash(seed, format!("/p/{i}").as_bytes());
                    let r = (h & 63) as usize;
                    let rank = ((h >> 6).trailing_zeros() + 1).min(59) as u8;
                    regs[r] = regs[r].max(rank);
                }
                let e = hll_estimate(&regs);
                let err = (e - n as f64).abs() / n as f64;
                // 3 standard errors (13% each) at most for any one estimate.
                assert!(err < 0.4, "n={n} estimate={e}");
                total_err += err;
            }
            assert!(total_err / 10.0 < 0.15, "n={n}: mean error {}", total_err / 10.0);
        }
    }

    #[test]
    fn a_slot_stays_small() {
        // docs/configuration.md quotes about 220 bytes per actor.
        assert!(std::mem::size_of::<Slot>() <= 224, "{}", std::mem::size_of::<Slot>());
    }

    #[test]
    fn memory_is_bounded_and_least_recent_actors_are_evicted() {
        let t = ActorTable::new(SHARDS * WAYS);
        assert_eq!(t.capacity(), SHARDS * WAYS);
        // Far more actors than slots: the table keeps its size, recent actors keep their counts.
        for i in 0..20_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.observe(
                &Observation {
                    ip,
                    path: b"/",
                    user_agent: b"",
                    status: 200,
                    now_ms: T0 + u64::from(i),
                },
                false,
                none,
            );
        }
        let occupied: usize = t
            .shards
            .iter()
            .map(|s| s.0.lock().expect("lock").iter().filter(|s| s.ip.is_some()).count())
            .sum();
        assert_eq!(occupied, SHARDS * WAYS);
        let recent = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + 19_999));
        let again = t.observe(
            &Observation {
                ip: recent,
                path: b"/",
                user_agent: b"",
                status: 200,
                now_ms: T0 + 20_000,
            },
            false,
            none,
        );
        assert_eq!(again.requests_60s, 2, "the most recent actor was kept");
    }

    #[test]
    fn penalties_are_read_only_for_struck_actors() {
        let t = ActorTable::new(1024);
        let mut asked = 0;
        let mut look = |ever: bool| {
            if ever {
                asked += 1;
            }
            Penalties {
                ban: if ever { "banned" } else { "none" },
                strike_score: 2.345,
            }
        };
        let clean = t.observe(&obs("198.51.100.9", "/", "", 200, T0), false, &mut look);
        assert_eq!((clean.ban, clean.strike_score), ("none", 0.0));
        let hit = t.observe(&obs("198.51.100.9", "/", "", 403, T0 + 1), true, &mut look);
        assert_eq!((hit.ban, hit.strike_score), ("banned", 2.35));
        let after = t.observe(&obs("198.51.100.9", "/", "", 200, T0 + 2), false, &mut look);
        assert_eq!(after.ban, "banned", "a struck actor stays looked up");
        assert_eq!(asked, 2);
    }
}
