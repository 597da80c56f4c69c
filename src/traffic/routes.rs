//! Routing table: host (exact, wildcard), path prefix and optional header and query conditions
//! to a route, each naming a pool and its per-route timeouts, rewrites, header rules and
//! compression (request_filter, upstream_peer, upstream_request_filter, response_filter).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use prometheus::{Histogram, IntCounter};
use regex::Regex;

use super::compress::Compression;
use super::limits::Limits;
use super::upstream::Pool;
use crate::config::file::{HeaderRulesSection, RewriteSection, RouteMatchSection, RouteSection, TimeoutsSection};
use crate::host::HostPattern;
use crate::key::header_name;
use crate::metrics::{status_class_index, METRICS, STATUS_CLASSES};
use crate::policy::compile::value_test;
use crate::policy::rules::{query_value, ValueTest};

/// Upstream connect timeout when a route sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upstream read and write timeout (per operation) when a route sets none.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle time of pooled upstream connections when a route sets none.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Header changes: headers removed, then set (replacing any of the same name), then added.
#[derive(Debug, Default)]
pub struct HeaderRules {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
}

fn header_pairs(m: &BTreeMap<String, String>) -> Vec<(HeaderName, HeaderValue)> {
    m.iter()
        .filter_map(|(k, v)| Some((header_name(k)?, HeaderValue::from_str(v).ok()?)))
        .collect()
}

impl HeaderRules {
    fn new(s: &HeaderRulesSection) -> Self {
        HeaderRules {
            remove: s.remove.iter().filter_map(|h| header_name(h)).collect(),
            set: header_pairs(&s.set),
            add: header_pairs(&s.add),
        }
    }

    /// Apply to a request or response head.
    pub fn apply(&self, head: &mut impl EditHeaders) -> pingora::Result<()> {
        for k in &self.remove {
            head.remove(k);
        }
        for (k, v) in &self.set {
            head.set(k, v)?;
        }
        for (k, v) in &self.add {
            head.add(k, v)?;
        }
        Ok(())
    }
}

/// Pingora's request and response heads, which keep their own header-case maps and so are
/// changed through their own methods.
pub trait EditHeaders {
    fn remove(&mut self, name: &HeaderName);
    fn set(&mut self, name: &HeaderName, value: &HeaderValue) -> pingora::Result<()>;
    fn add(&mut self, name: &HeaderName, value: &HeaderValue) -> pingora::Result<()>;
}

macro_rules! edit_headers {
    ($head:ty) => {
        impl EditHeaders for $head {
            fn remove(&mut self, name: &HeaderName) {
                self.remove_header(name);
            }
            fn set(&mut self, name: &HeaderName, value: &HeaderValue) -> pingora::Result<()> {
                self.insert_header(name.clone(), value.clone())
            }
            fn add(&mut self, name: &HeaderName, value: &HeaderValue) -> pingora::Result<()> {
                self.append_header(name.clone(), value.clone()).map(drop)
            }
        }
    };
}
edit_headers!(pingora::http::RequestHeader);
edit_headers!(pingora::http::ResponseHeader);

/// A route's conditions beyond host and path prefix; every one must hold.
#[derive(Debug, Default)]
struct Conditions {
    headers: Vec<(HeaderName, ValueTest)>,
    query: Vec<(String, ValueTest)>,
}

impl Conditions {
    fn new(m: &RouteMatchSection) -> Self {
        Conditions {
            headers: m
                .headers
                .iter()
                .filter_map(|(k, vm)| Some((header_name(k)?, value_test(vm))))
                .collect(),
            query: m.query.iter().map(|(k, vm)| (k.clone(), value_test(vm))).collect(),
        }
    }

    fn len(&self) -> usize {
        self.headers.len() + self.query.len()
    }

    fn hold(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        self.headers
            .iter()
            .all(|(name, t)| t.check(headers.get(name).map(HeaderValue::as_bytes)))
            && self
                .query
                .iter()
                .all(|(name, t)| t.check(query_value(query, name).map(str::as_bytes)))
    }
}

/// How a route's path changes on the way to the origin.
#[derive(Debug)]
pub enum PathRewrite {
    /// The route's path prefix is replaced by this one.
    Prefix { from: String, to: String },
    /// The regex's match is replaced by the expansion of `to`.
    Regex { re: Regex, to: String },
}

impl PathRewrite {
    /// The path the origin receives, from the normalized path the route matched; `None` when
    /// the rewrite does not apply (a regex that does not match).
    pub fn apply(&self, path: &str) -> Option<String> {
        let out = match self {
            PathRewrite::Prefix { from, to } => format!("{to}{}", path.strip_prefix(from.as_str())?),
            PathRewrite::Regex { re, to } => {
                if !re.is_match(path) {
                    return None;
                }
                re.replace(path, to.as_str()).into_owned()
            }
        };
        Some(if out.starts_with('/') { out } else { format!("/{out}") })
    }
}

#[derive(Debug, Default)]
pub struct Rewrite {
    pub path: Option<PathRewrite>,
    pub host: Option<HeaderValue>,
}

impl Rewrite {
    fn new(s: &RewriteSection, route_prefix: &str) -> Self {
        let path = if let Some(to) = &s.path_prefix {
            Some(PathRewrite::Prefix {
                from: route_prefix.to_string(),
                to: to.clone(),
            })
        } else {
            match (&s.path_regex, &s.path_to) {
                (Some(re), Some(to)) => crate::pattern::compile_regex(re)
                    .ok()
                    .map(|re| PathRewrite::Regex { re, to: to.clone() }),
                _ => None,
            }
        };
        Rewrite {
            path,
            host: s.host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()),
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
    /// Changes to the request on its way to the origin; `None` on most routes.
    pub request_headers: Option<HeaderRules>,
    pub rewrite: Option<Box<Rewrite>>,
    /// Response compression; `None` (the default) sends responses as the origin wrote them.
    pub compression: Option<Arc<Compression>>,
    conditions: Conditions,
    /// The request limits of this route: the global ones with the route's overrides applied.
    pub limits: Limits,
    /// The route's response cache settings; `None`: nothing of it is cached.
    pub cache: Option<Box<crate::cache::CacheRule>>,
    /// The route's latency series, looked up in their vectors at first use and kept: a label
    /// lookup hashes the labels and takes a read lock on every request (logging phase).
    request_duration: OnceLock<Histogram>,
    upstream_duration: OnceLock<Histogram>,
    /// The route's allowed requests by status class (`metrics::STATUS_CLASSES`), kept the
    /// same way: nearly every request is counted in one of these.
    allowed: [OnceLock<IntCounter>; STATUS_CLASSES.len()],
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

    /// `palisade_requests_total{route, status_class, decision="allow"}` of this route.
    pub fn allowed_requests(&self, status: u16) -> &IntCounter {
        let class = status_class_index(status);
        self.allowed[class].get_or_init(|| {
            METRICS
                .requests
                .with_label_values(&[&self.name, STATUS_CLASSES[class], "allow"])
        })
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
                    request_headers: r.request_headers.as_ref().map(HeaderRules::new),
                    rewrite: r.rewrite.as_ref().map(|w| Box::new(Rewrite::new(w, &r.path_prefix))),
                    compression: r.compression.as_ref().map(|z| Arc::new(Compression::new(z))),
                    conditions: Conditions::new(&r.matches),
                    cache: r.cache.as_ref().map(|c| Box::new(crate::cache::CacheRule::new(c))),
                    request_duration: OnceLock::new(),
                    upstream_duration: OnceLock::new(),
                    allowed: Default::default(),
                })
            })
            .collect();
        RouteTable { routes, defaults }
    }

    /// The route for `host` (normalized), `path` (normalized), the request's headers and raw
    /// query: among the routes whose host, prefix and conditions all hold, the most specific
    /// host match wins, then the longest path prefix, then the route with more conditions, then
    /// the first in config order.
    pub fn find(&self, host: &str, path: &str, headers: &HeaderMap, query: Option<&str>) -> Option<(usize, &Route)> {
        let mut best: Option<((usize, usize, usize), usize)> = None;
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
            let score = (spec, r.path_prefix.len(), r.conditions.len());
            if best.is_some_and(|(s, _)| score <= s) {
                continue;
            }
            if r.conditions.len() > 0 && !r.conditions.hold(headers, query) {
                continue;
            }
            best = Some((score, i));
        }
        best.map(|(_, i)| (i, &self.routes[i]))
    }

    pub fn get(&self, i: usize) -> Option<&Route> {
        self.routes.get(i)
    }

    /// Header rules of answers no route owns: security headers belong on every response.
    pub fn default_headers(&self) -> &Arc<HeaderRules> {
        &self.defaults
    }
}
