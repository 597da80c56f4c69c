//! The response cache (request_cache_filter → cache_key_callback → response_cache_filter →
//! cache_vary_filter → should_serve_stale → logging): what a route with `cache:` may store and
//! serve, on top of pingora-cache's state machine. Routes without `cache:` never reach any of
//! this: the proxy tests `Route::cache` once and moves on.
//!
//! Policy runs first: Pingora looks the cache up only after `request_filter` let the request
//! through (pingora-proxy `process_request`), so a banned or refused client is answered by the
//! stages and never from the cache (tests/cache.rs).
//!
//! One process-wide store (`store::MemoryStore`, bounded by `cache.max_size`) and one cache lock
//! (stampede protection) serve every caching route. Keys are the normalised host followed by the
//! request target as sent (`example.com/a/b?q=1`); purges name them the same way (`purge.rs`).

pub mod purge;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use http::{header, Method, StatusCode};
use once_cell::sync::Lazy;
use pingora_cache::cache_control::{CacheControl, Cacheable, InterpretCacheControl};
use pingora_cache::filters::{calculate_serve_stale_durations, resp_cacheable};
use pingora_cache::key::HashBinary;
use pingora_cache::lock::CacheLock;
use pingora_cache::{CacheKey, CacheMeta, CacheMetaDefaults, CachePhase, HttpCache, NoCacheReason, RespCacheable};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::config::cache::{CacheSection, RouteCacheSection};
pub use store::MemoryStore;

/// The store's budget when `cache.max_size` is not set, in bytes.
pub const DEFAULT_MAX_SIZE: u64 = 64 * 1024 * 1024;
/// Largest stored body when a route sets no `max_object_size`, in bytes.
pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 8 * 1024 * 1024;
/// How long one request may hold the lock of a key while it fetches it; the others wait, then
/// go to the origin themselves.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

static BUDGET: AtomicU64 = AtomicU64::new(DEFAULT_MAX_SIZE);
static STORE: OnceLock<MemoryStore> = OnceLock::new();
static LOCK: Lazy<CacheLock> = Lazy::new(|| CacheLock::new(LOCK_TIMEOUT));

/// Take the store's budget from the configuration. The store is made at the first cached
/// request with the budget then in force; a later change is logged and waits for a restart.
pub fn configure(section: &CacheSection) {
    let budget = section.max_size.map_or(DEFAULT_MAX_SIZE, |s| s.0);
    match STORE.get() {
        Some(s) if s.budget() != budget => {
            log::warn!(
                "cache.max_size changed to {budget} bytes; the store keeps {} bytes until restart",
                s.budget()
            );
        }
        Some(_) => {}
        None => BUDGET.store(budget, Ordering::Relaxed),
    }
}

/// The process-wide store.
pub fn store() -> &'static MemoryStore {
    STORE.get_or_init(|| MemoryStore::new(BUDGET.load(Ordering::Relaxed)))
}

/// A route's cache settings, compiled.
#[derive(Debug, Clone)]
pub struct CacheRule {
    default_ttl: Option<Duration>,
    stale_while_revalidate: u32,
    stale_if_error: u32,
    max_object_size: usize,
    cache_authorized: bool,
    cache_set_cookie: bool,
    ignore_query: bool,
}

fn secs(d: Option<crate::config::types::Dur>) -> u32 {
    d.map_or(0, |d| u32::try_from(d.0.as_secs()).unwrap_or(u32::MAX))
}

impl CacheRule {
    pub fn new(s: &RouteCacheSection) -> Self {
        CacheRule {
            default_ttl: s.default_ttl.map(|d| d.0),
            stale_while_revalidate: secs(s.stale_while_revalidate),
            stale_if_error: secs(s.stale_if_error),
            max_object_size: usize::try_from(s.max_object_size.map_or(DEFAULT_MAX_OBJECT_SIZE, |m| m.0))
                .unwrap_or(usize::MAX),
            cache_authorized: s.cache_authorized,
            cache_set_cookie: s.cache_set_cookie,
            ignore_query: s.ignore_query,
        }
    }

    /// Turn the cache on for this request when it may use it (request_cache_filter).
    pub fn enable(&self, cache: &mut HttpCache, req: &RequestHeader, upgrade: bool) {
        if !matches!(req.method, Method::GET | Method::HEAD) || upgrade {
            return;
        }
        if !self.cache_authorized && req.headers.contains_key(header::AUTHORIZATION) {
            return;
        }
        cache.enable(store(), None, None, Some(&*LOCK), None);
        cache.set_max_file_size_bytes(self.max_object_size);
    }

    /// The key: normalised host, then the target as sent (without the query when the route
    /// says so). The host holds no `/` and the target starts with one, so the two cannot run
    /// into each other.
    pub fn key(&self, host: &str, req: &RequestHeader) -> CacheKey {
        let target = if self.ignore_query {
            req.uri.path()
        } else {
            req.uri.path_and_query().map_or("/", |p| p.as_str())
        };
        let mut primary = String::with_capacity(host.len() + target.len());
        primary.push_str(host);
        primary.push_str(target);
        CacheKey::new(primary, "")
    }

    /// May this response be stored, and for how long (response_cache_filter)? What the origin
    /// says (`Cache-Control`, `Expires`) comes first; the route's `default_ttl` only fills in
    /// for responses that say nothing, with a status cacheable by default (RFC 9110 §15.1).
    pub fn response(&self, resp: &ResponseHeader, authorization: bool, now: SystemTime) -> RespCacheable {
        let uncacheable = |why| RespCacheable::Uncacheable(NoCacheReason::Custom(why));
        if !self.cache_set_cookie && resp.headers.contains_key(header::SET_COOKIE) {
            return uncacheable("set-cookie");
        }
        if vary_names(resp).any(|n| n == "*") {
            return uncacheable("vary: *");
        }
        let status = resp.status;
        if status == StatusCode::PARTIAL_CONTENT || status.is_server_error() || status.is_informational() {
            return uncacheable("status");
        }
        let mut stored = resp.clone();
        stored.remove_header(&header::SET_COOKIE);
        let cc = CacheControl::from_resp_headers(resp);
        let defaults = CacheMetaDefaults::new(no_default_ttl, self.stale_while_revalidate, self.stale_if_error);
        match resp_cacheable(cc.as_ref(), stored.clone(), authorization, &defaults) {
            RespCacheable::Cacheable(meta) => RespCacheable::Cacheable(meta),
            not => {
                let Some(ttl) = self.default_ttl else { return not };
                // The origin said nothing about freshness: neither `Cache-Control` forbidding
                // storage nor a freshness lifetime of its own (or `resp_cacheable` would have
                // taken it), and no `Authorization` (which needs the origin's say-so).
                let forbidden = cc.as_ref().is_some_and(|c| c.is_cacheable() == Cacheable::No);
                if forbidden || authorization || !heuristically_cacheable(status) {
                    return not;
                }
                let (swr, sie) = calculate_serve_stale_durations(cc.as_ref(), &defaults);
                if let Some(c) = &cc {
                    c.strip_private_headers(&mut stored);
                }
                // `no-cache`: it may be stored, but used only after revalidation.
                let fresh_until = if cc.as_ref().is_some_and(|c| c.no_cache()) {
                    now.checked_sub(Duration::from_secs(1)).unwrap_or(now)
                } else {
                    now + ttl
                };
                RespCacheable::Cacheable(CacheMeta::new(fresh_until, now, swr, sie, stored))
            }
        }
    }
}

fn no_default_ttl(_: StatusCode) -> Option<Duration> {
    None
}

/// Statuses a cache may store without explicit freshness (RFC 9110 §15.1).
fn heuristically_cacheable(s: StatusCode) -> bool {
    matches!(
        s.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The header names a response's `Vary` lists, lowercased.
fn vary_names(resp: &ResponseHeader) -> impl Iterator<Item = String> + '_ {
    resp.headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
}

/// The variant of a stored response this request wants (cache_vary_filter): the values of the
/// request headers its `Vary` names. `None`: the response does not vary.
pub fn variance(meta: &CacheMeta, req: &RequestHeader) -> Option<HashBinary> {
    let names: Vec<String> = vary_names(meta.response_header()).collect();
    if names.is_empty() {
        return None;
    }
    let mut v = pingora_cache::VarianceBuilder::new();
    for name in &names {
        let values: Vec<u8> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .flat_map(|h| h.as_bytes().iter().copied().chain([b',']))
            .collect();
        v.add_owned_value(name, values);
    }
    v.finalize()
}

/// How the cache answered, for metrics and telemetry (`palisade.cache`).
pub fn status(cache: &HttpCache) -> &'static str {
    match cache.phase() {
        CachePhase::Hit => "hit",
        CachePhase::Stale => "stale",
        CachePhase::StaleUpdating => "stale_updating",
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => "revalidated",
        CachePhase::Expired => "expired",
        CachePhase::Miss => "miss",
        CachePhase::Disabled(NoCacheReason::NeverEnabled) | CachePhase::Bypass => "bypass",
        CachePhase::Disabled(_) => "uncacheable",
        CachePhase::Uninit | CachePhase::CacheKey => "bypass",
    }
}

/// Count the answer in `palisade_cache_requests_total` and refresh the store gauges.
pub fn count(route: &str, status: &'static str) {
    let m = &*crate::metrics::cache::CACHE_METRICS;
    m.requests.with_label_values(&[route, status]).inc();
    if let Some(s) = STORE.get() {
        m.stored_bytes.set(i64::try_from(s.used()).unwrap_or(i64::MAX));
        m.evictions.set(i64::try_from(s.evictions()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> CacheRule {
        CacheRule::new(&serde_yaml::from_str(yaml).expect("section"))
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).expect("header");
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).expect("header");
        }
        r
    }

    fn fresh_for(c: RespCacheable, now: SystemTime) -> Option<u64> {
        match c {
            RespCacheable::Cacheable(m) => Some(
                m.fresh_until()
                    .duration_since(now)
                    .map_or(0, |d| d.as_secs_f64().round() as u64),
            ),
            RespCacheable::Uncacheable(_) => None,
        }
    }

    #[test]
    fn the_origin_decides_first() {
        let r = rule("{}");
        let now = SystemTime::now();
        assert_eq!(
            fresh_for(
                r.response(&resp(200, &[("cache-control", "max-age=60")]), false, now),
                now
            ),
            Some(60)
        );
        assert_eq!(
            fresh_for(
                r.response(&resp(200, &[("cache-control", "no-store")]), false, now),
                now
            ),
            None
        );
        assert_eq!(
            fresh_for(
                r.response(&resp(200, &[("cache-control", "private, max-age=60")]), false, now),
                now
            ),
            None
        );
        // Saying nothing is not a permission without `default_ttl`.
        assert_eq!(fresh_for(r.response(&resp(200, &[]), false, now), now), None);
        let expires = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert!(fresh_for(r.response(&resp(200, &[("expires", &expires)]), false, now), now).is_some_and(|s| s >= 100));
    }

    #[test]
    fn set_cookie_and_authorization_are_not_stored_unless_the_route_says_so() {
        let now = SystemTime::now();
        let cc = ("cache-control", "max-age=60");
        let cookie = resp(200, &[cc, ("set-cookie", "sid=1")]);
        assert!(fresh_for(rule("{}").response(&cookie, false, now), now).is_none());
        match rule("cache_set_cookie: true").response(&cookie, false, now) {
            RespCacheable::Cacheable(m) => assert!(m.headers().get("set-cookie").is_none()),
            RespCacheable::Uncacheable(r) => panic!("not cacheable: {r:?}"),
        }
        // With Authorization, only an origin's explicit public (or s-maxage) allows storing.
        let r = rule("cache_authorized: true");
        assert!(fresh_for(r.response(&resp(200, &[cc]), true, now), now).is_none());
        assert!(fresh_for(
            r.response(&resp(200, &[("cache-control", "public, max-age=60")]), true, now),
            now
        )
        .is_some());
    }

    #[test]
    fn default_ttl_fills_in_only_where_the_origin_said_nothing() {
        let r = rule("default_ttl: 30s");
        let now = SystemTime::now();
        assert_eq!(fresh_for(r.response(&resp(200, &[]), false, now), now), Some(30));
        // Stored, but stale from the start: every use is revalidated.
        assert_eq!(
            fresh_for(
                r.response(&resp(200, &[("cache-control", "no-cache")]), false, now),
                now
            ),
            Some(0)
        );
        assert_eq!(
            fresh_for(
                r.response(&resp(200, &[("cache-control", "no-store")]), false, now),
                now
            ),
            None
        );
        assert_eq!(fresh_for(r.response(&resp(302, &[]), false, now), now), None);
        assert_eq!(
            fresh_for(
                r.response(&resp(500, &[("cache-control", "max-age=60")]), false, now),
                now
            ),
            None
        );
        assert_eq!(
            fresh_for(r.response(&resp(200, &[("vary", "*")]), false, now), now),
            None
        );
    }

    #[test]
    fn stale_windows_come_from_the_origin_or_the_route() {
        let r = rule("stale_if_error: 1h\nstale_while_revalidate: 10s");
        let now = SystemTime::now();
        let RespCacheable::Cacheable(m) = r.response(&resp(200, &[("cache-control", "max-age=1")]), false, now) else {
            panic!("cacheable")
        };
        assert_eq!((m.stale_while_revalidate_sec(), m.stale_if_error_sec()), (10, 3600));
        let RespCacheable::Cacheable(m) = r.response(
            &resp(
                200,
                &[("cache-control", "max-age=1, stale-if-error=5, stale-while-revalidate=2")],
            ),
            false,
            now,
        ) else {
            panic!("cacheable")
        };
        assert_eq!((m.stale_while_revalidate_sec(), m.stale_if_error_sec()), (2, 5));
    }

    #[test]
    fn keys_are_host_and_target() {
        let req = RequestHeader::build("GET", b"/a/b?x=1", None).expect("req");
        assert_eq!(rule("{}").key("ex.test", &req).primary_key(), b"ex.test/a/b?x=1");
        assert_eq!(
            rule("ignore_query: true").key("ex.test", &req).primary_key(),
            b"ex.test/a/b"
        );
    }

    #[test]
    fn variance_follows_the_vary_header() {
        let now = SystemTime::now();
        let meta = |vary: &[(&str, &str)]| CacheMeta::new(now, now, 0, 0, resp(200, vary));
        let req = |lang: &str| {
            let mut r = RequestHeader::build("GET", b"/", None).expect("req");
            r.insert_header("accept-language", lang).expect("header");
            r
        };
        assert_eq!(variance(&meta(&[]), &req("fr")), None);
        let m = meta(&[("vary", "Accept-Language")]);
        assert_ne!(variance(&m, &req("fr")), variance(&m, &req("de")));
        assert_eq!(variance(&m, &req("fr")), variance(&m, &req("fr")));
    }
}
