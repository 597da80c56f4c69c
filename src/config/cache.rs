//! On-disk shape and checks of the response cache: the top-level `cache:` section (the shared
//! store's byte budget) and each route's `routes[].cache` (what that route may cache). The
//! runtime types are compiled in `crate::cache`.

use serde::Deserialize;

use super::error::Collector;
use super::types::{ByteSize, Dur};

/// Largest object the store can hold: TinyUFO weighs entries in `u16` units of 1 KiB.
pub const MAX_OBJECT_SIZE_LIMIT: u64 = 64 * 1024 * 1024 - 1024;

/// `cache:` in `palisade.yaml`: the one in-memory store every caching route shares.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSection {
    /// Bytes of responses (bodies and headers) kept in memory; read when the process starts.
    pub max_size: Option<ByteSize>,
}

/// `routes[].cache`: the route's responses may be served from the cache.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RouteCacheSection {
    /// Freshness of a 200/203/204/301/308/404 response whose origin set none (no `max-age`,
    /// `s-maxage` or `Expires`); absent: such responses are not cached.
    pub default_ttl: Option<Dur>,
    /// How long a stale response may be served while it is revalidated in the background, when
    /// the origin's `Cache-Control` does not say (`stale-while-revalidate`).
    pub stale_while_revalidate: Option<Dur>,
    /// How long a stale response may be served when the origin fails, when the origin's
    /// `Cache-Control` does not say (`stale-if-error`).
    pub stale_if_error: Option<Dur>,
    /// Largest response body stored; larger ones are passed through uncached.
    pub max_object_size: Option<ByteSize>,
    /// Requests with `Authorization` use the cache too (their responses still need `public`,
    /// `s-maxage` or `must-revalidate`, RFC 9111 §3.5). Off: they bypass it.
    pub cache_authorized: bool,
    /// Responses with `Set-Cookie` are stored, without the `Set-Cookie` header. Off: never stored.
    pub cache_set_cookie: bool,
    /// Leave the query string out of the cache key.
    pub ignore_query: bool,
}

/// Check the top-level section and every route's.
pub fn validate(global: &CacheSection, routes: &[(usize, Option<&RouteCacheSection>)], c: &mut Collector<'_>) {
    if global.max_size.is_some_and(|s| s.0 < 1024) {
        c.field("cache.max_size", "must be at least 1KiB");
    }
    for (i, r) in routes {
        let Some(r) = r else { continue };
        let p = format!("routes[{i}].cache");
        if let Some(s) = r.max_object_size {
            if s.0 == 0 || s.0 > MAX_OBJECT_SIZE_LIMIT {
                c.field(
                    &format!("{p}.max_object_size"),
                    format!("must be between 1 byte and {MAX_OBJECT_SIZE_LIMIT} bytes (63.99MiB)"),
                );
            }
        }
        if r.default_ttl.is_some_and(|d| d.0.is_zero()) {
            c.field(
                &format!("{p}.default_ttl"),
                "must be more than 0s (leave it out to cache only what the origin allows)",
            );
        }
        for (name, d) in [
            ("default_ttl", r.default_ttl),
            ("stale_while_revalidate", r.stale_while_revalidate),
            ("stale_if_error", r.stale_if_error),
        ] {
            if d.is_some_and(|d| d.0.as_secs() > u64::from(u32::MAX)) {
                c.field(&format!("{p}.{name}"), "must be at most 136 years");
            }
        }
    }
}
