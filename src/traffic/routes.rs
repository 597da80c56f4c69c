//! Routing table: host (exact, wildcard) and path prefix to a route, each naming a pool and its
//! per-route timeouts and response header rules (request_filter, upstream_peer, response_filter).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use prometheus::Histogram;

use super::limits::Limits;
use super::upstream::Pool;
use crate::config::file::{HeaderRulesSection, RouteSection, TimeoutsSection};
use crate::host::HostPattern;
use crate::metrics::METRICS;

/// Upstream connect timeout when a route sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upstream read and write timeout (per operation) when a route sets none.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle time of pooled upstream connections when a route sets none.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Response header changes: origin headers removed, security headers set.
#[derive(Debug, Default)]
pub struct HeaderRules {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderRules {
    fn new(s: &HeaderRulesSection) -> Self {
        HeaderRules {
            remove: s
                .remove
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
                .collect(),
            set: s
                .set
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).ok()?,
                        HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
    pub idle: Duration,
}

impl Timeouts {
    fn new(t: &TimeoutsSection) -> Self {
        Timeouts {
            connect: t.connect.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0),
            read: t.read.map_or(DEFAULT_IO_TIMEOUT, |d| d.0),
            write: t.write.map_or(DEFAULT_IO_TIMEOUT, |d| d.0),
            idle: t.idle.map_or(DEFAULT_IDLE_TIMEOUT, |d| d.0),
        }
    }
}

pub struct Route {
    pub name: Arc<str>,
    hosts: Vec<HostPattern>,
    path_prefix: String,
    pub pool: Arc<Pool>,
    pub preserve_host: bool,
    pub timeouts: Timeouts,
    pub response_headers: Arc<HeaderRules>,
    /// The request limits of this route: the global ones with the route's overrides applied.
    pub limits: Limits,
    /// The route's response cache settings; `None`: nothing of it is cached.
    pub cache: Option<Box<crate::cache::CacheRule>>,
    /// The route's latency series, looked up in their vectors at first use and kept: a label
    /// lookup hashes the labels and takes a read lock on every request (logging phase).
    request_duration: OnceLock<Histogram>,
    upstream_duration: OnceLock<Histogram>,
}

impl Route {
    /// `palisade_request_duration_seconds{route}` of this route.
    pub fn request_duration(&self) -> &Histogram {
        self.request_duration
            .get_or_init(|| METRICS.request_duration.with_label_values(&[&self.name]))
    }

    /// `palisade_upstream_duration_seconds{pool}` of this route's pool.
    pub fn upstream_duration(&self) -> &Histogram {
        self.upstream_duration
            .get_or_init(|| METRICS.upstream_duration.with_label_values(&[&self.pool.name]))
    }
}

pub struct RouteTable {
    routes: Vec<Route>,
    /// The top-level rules, for answers that belong to no route (404).
    defaults: Arc<HeaderRules>,
}

impl RouteTable {
    /// Build from validated sections; `pools` holds every pool the routes name.
    pub fn new(
        sections: &[RouteSection],
        default_headers: &HeaderRulesSection,
        pools: &BTreeMap<String, Arc<Pool>>,
        limits: Limits,
    ) -> Self {
        let defaults = Arc::new(HeaderRules::new(default_headers));
        let routes = sections
            .iter()
            .filter_map(|r| {
                Some(Route {
                    name: Arc::from(r.name.as_str()),
                    hosts: if r.hosts.is_empty() {
                        vec![HostPattern::Any]
                    } else {
                        r.hosts.iter().map(|h| HostPattern::new(h)).collect()
                    },
                    path_prefix: r.path_prefix.clone(),
                    pool: pools.get(&r.upstream)?.clone(),
                    preserve_host: r.preserve_host,
                    timeouts: Timeouts::new(&r.timeouts),
                    response_headers: r
                        .response_headers
                        .as_ref()
                        .map_or_else(|| defaults.clone(), |h| Arc::new(HeaderRules::new(h))),
                    limits: limits.with(r.limits.as_ref()),
                    cache: r.cache.as_ref().map(|c| Box::new(crate::cache::CacheRule::new(c))),
                    request_duration: OnceLock::new(),
                    upstream_duration: OnceLock::new(),
                })
            })
            .collect();
        RouteTable { routes, defaults }
    }

    /// The route for `host` (normalized) and `path`: the most specific host match wins, then
    /// the longest path prefix, then the first in config order.
    pub fn find(&self, host: &str, path: &str) -> Option<(usize, &Route)> {
        let mut best: Option<(usize, usize, usize)> = None;
        for (i, r) in self.routes.iter().enumerate() {
            if !path.starts_with(r.path_prefix.as_str()) {
                continue;
            }
            let Some(spec) = r
                .hosts
                .iter()
                .filter(|h| h.matches(host))
                .map(HostPattern::specificity)
                .max()
            else {
                continue;
            };
            let score = (spec, r.path_prefix.len());
            if best.is_none_or(|(s, p, _)| score > (s, p)) {
                best = Some((score.0, score.1, i));
            }
        }
        best.map(|(_, _, i)| (i, &self.routes[i]))
    }

    pub fn get(&self, i: usize) -> Option<&Route> {
        self.routes.get(i)
    }

    /// Header rules of answers no route owns: security headers belong on every response.
    pub fn default_headers(&self) -> &Arc<HeaderRules> {
        &self.defaults
    }
}
