//! Cross-field checks that serde cannot express: references between sections, uniqueness,
//! well-formed header names, readable files. Every problem is collected, none stops the run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use http::header::{HeaderName, HeaderValue};

use super::error::{Collector, ConfigError};
use super::file::{
    CompressionSection, ConfigFile, HeaderRulesSection, MatchSection, RewriteSection, RouteMatchSection, SinkKind,
    ValueMatch,
};
use super::load::LoadedPolicy;
use super::types::Cidr;
use crate::key::KeyPart;

pub fn config(cfg: &ConfigFile, c: &mut Collector<'_>) {
    if cfg.listeners.is_empty() {
        c.field("listeners", "at least one listener is required (or pass --listen)");
    }
    let mut addrs = HashSet::new();
    for (i, l) in cfg.listeners.iter().enumerate() {
        let p = format!("listeners[{i}]");
        if !addrs.insert(l.address) {
            c.field(
                &format!("{p}.address"),
                format!("address {} is used by another listener", l.address),
            );
        }
        if l.h2c && l.tls.is_some() {
            c.field(
                &format!("{p}.h2c"),
                "h2c is for plaintext listeners; a TLS listener offers HTTP/2 by ALPN (tls.http2)",
            );
        }
        if let Some(tls) = &l.tls {
            if l.redirect_https {
                c.field(
                    &format!("{p}.redirect_https"),
                    "a TLS listener cannot redirect to https",
                );
            }
            if tls.certificates.is_empty() {
                c.field(&format!("{p}.tls.certificates"), "at least one certificate is required");
            }
            for (j, cert) in tls.certificates.iter().enumerate() {
                let cp = format!("{p}.tls.certificates[{j}]");
                let base = c.file().parent().map(Path::to_path_buf).unwrap_or_default();
                if let Err(e) = super::certs::read(cert, &base) {
                    c.field(&cp, e.to_string());
                }
                for (k, name) in cert.server_names.iter().enumerate() {
                    check_host_pattern(name, &format!("{cp}.server_names[{k}]"), c);
                }
            }
        }
    }
    if let Some(m) = &cfg.metrics {
        if addrs.contains(&m.address) {
            c.field(
                "metrics.address",
                format!("address {} is already a proxy listener", m.address),
            );
        }
    }
    if let Some(a) = &cfg.admin {
        if addrs.contains(&a.address) || cfg.metrics.as_ref().is_some_and(|m| m.address == a.address) {
            c.field(
                "admin.address",
                format!("address {} is already used by another listener", a.address),
            );
        }
        if !a.address.ip().is_loopback() && !a.allow_remote {
            c.field(
                "admin.address",
                "the admin listener binds to loopback unless `allow_remote: true` is set",
            );
        }
        if let Some(f) = &a.token_file {
            let f = resolve(c.file(), f);
            match std::fs::read_to_string(&f) {
                Ok(t) if t.trim().len() >= 16 => {}
                Ok(_) => c.field(
                    "admin.token_file",
                    format!("{}: the token must be at least 16 characters", f.display()),
                ),
                Err(e) => c.field("admin.token_file", format!("cannot read {}: {e}", f.display())),
            }
        }
    }
    if let Some(f) = &cfg.state.identity_key_file {
        let f = resolve(c.file(), f);
        if let Err(e) = super::keyfile::read_key(&f) {
            c.field("state.identity_key_file", e.to_string());
        }
    }
    if HeaderName::from_bytes(cfg.request_id.header.as_bytes()).is_err() {
        c.field(
            "request_id.header",
            format!("{:?} is not a valid header name", cfg.request_id.header),
        );
    }
    if cfg.upstreams.is_empty() {
        c.field(
            "upstreams",
            "at least one upstream pool is required (or pass --upstream)",
        );
    }
    for (name, u) in &cfg.upstreams {
        let p = format!("upstreams.{name}");
        if u.backends.is_empty() {
            c.field(&format!("{p}.backends"), "at least one backend is required");
        }
        for (i, b) in u.backends.iter().enumerate() {
            if b.weight() == 0 {
                c.field(&format!("{p}.backends[{i}].weight"), "weight must be at least 1");
            }
        }
        if let Some(hc) = &u.health_check {
            if !hc.path.starts_with('/') {
                c.field(&format!("{p}.health_check.path"), "path must start with /");
            }
            if hc.healthy_after == 0 || hc.unhealthy_after == 0 {
                c.field(
                    &format!("{p}.health_check"),
                    "healthy_after and unhealthy_after must be at least 1",
                );
            }
        }
    }
    for (name, u) in &cfg.upstreams {
        if u.http2 && u.h2_streams == 0 {
            c.field(
                &format!("upstreams.{name}.h2_streams"),
                "at least 1 stream per connection",
            );
        }
    }
    if cfg.routes.is_empty() {
        c.field("routes", "at least one route is required (or pass --upstream)");
    }
    let mut names = HashSet::new();
    for (i, r) in cfg.routes.iter().enumerate() {
        let p = format!("routes[{i}]");
        if !names.insert(r.name.as_str()) {
            c.field(&format!("{p}.name"), format!("route name {:?} is used twice", r.name));
        }
        if !cfg.upstreams.contains_key(&r.upstream) {
            let known: Vec<_> = cfg.upstreams.keys().map(String::as_str).collect();
            c.field(
                &format!("{p}.upstream"),
                format!(
                    "no upstream pool named {:?} (defined: {})",
                    r.upstream,
                    known.join(", ")
                ),
            );
        }
        if !r.path_prefix.starts_with('/') {
            c.field(&format!("{p}.path_prefix"), "path_prefix must start with /");
        }
        for (j, h) in r.hosts.iter().enumerate() {
            check_host_pattern(h, &format!("{p}.hosts[{j}]"), c);
        }
        if let Some(h) = &r.response_headers {
            header_rules(h, &format!("{p}.response_headers"), c);
        }
        route_matches(&r.matches, &r.name, &format!("{p}.match"), c);
        if let Some(rw) = &r.rewrite {
            rewrite(rw, &format!("{p}.rewrite"), c);
        }
        if let Some(h) = &r.request_headers {
            header_rules(h, &format!("{p}.request_headers"), c);
            request_header_names(h, &format!("{p}.request_headers"), c);
        }
        if let Some(z) = &r.compression {
            compression(z, &format!("{p}.compression"), c);
        }
    }
    header_rules(&cfg.response_headers, "response_headers", c);
    let route_limits: Vec<_> = cfg.routes.iter().map(|r| r.limits.as_ref()).enumerate().collect();
    super::limits::validate(&cfg.limits, &route_limits, c);
    super::fleet::validate(cfg.fleet.as_ref(), c);
    let route_caches: Vec<_> = cfg.routes.iter().map(|r| r.cache.as_ref()).enumerate().collect();
    super::cache::validate(&cfg.cache, &route_caches, c);
    let t = &cfg.telemetry;
    if t.sink == SinkKind::File && t.path.is_none() {
        c.field("telemetry.path", "the file sink needs a path");
    }
    if t.queue_capacity == 0 {
        c.field("telemetry.queue_capacity", "must be at least 1");
    }
    for (i, h) in t.headers.iter().enumerate() {
        if HeaderName::from_bytes(h.as_bytes()).is_err() {
            c.field(
                &format!("telemetry.headers[{i}]"),
                format!("{h:?} is not a valid header name"),
            );
        }
        if !t.allow_credential_headers && CREDENTIAL_HEADERS.contains(&h.to_ascii_lowercase().as_str()) {
            c.field(
                &format!("telemetry.headers[{i}]"),
                format!("{h:?} carries credentials; set `allow_credential_headers: true` to record it anyway"),
            );
        }
    }
    telemetry(t, c);
}

/// Request headers that carry client addresses: not recorded when addresses are hashed.
pub const ADDRESS_HEADERS: &[&str] = &["x-forwarded-for", "forwarded", "x-real-ip", "true-client-ip"];

/// Request headers telemetry never records unless `telemetry.allow_credential_headers` is set.
pub const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

fn telemetry(t: &super::file::TelemetrySection, c: &mut Collector<'_>) {
    if !(0.0..=1.0).contains(&t.sample_allowed) {
        c.field("telemetry.sample_allowed", "must be between 0 and 1");
    }
    if t.rotate_every.is_some_and(|d| d.0.is_zero()) {
        c.field("telemetry.rotate_every", "must be longer than zero");
    }
    if t.max_age.is_some_and(|d| d.0.is_zero()) {
        c.field("telemetry.max_age", "must be longer than zero");
    }
    if let Some(f) = &t.ip_hash_key_file {
        // Hashing the addresses is pointless if a header records them in clear.
        for (i, h) in t.headers.iter().enumerate() {
            if ADDRESS_HEADERS.contains(&h.to_ascii_lowercase().as_str()) {
                c.field(
                    &format!("telemetry.headers[{i}]"),
                    format!("{h:?} carries client addresses, which ip_hash_key_file hides"),
                );
            }
        }
        let f = resolve(c.file(), f);
        match std::fs::read(&f) {
            Ok(k) if k.trim_ascii().len() >= 16 => {}
            Ok(_) => c.field(
                "telemetry.ip_hash_key_file",
                format!("{}: the key must be at least 16 bytes", f.display()),
            ),
            Err(e) => c.field(
                "telemetry.ip_hash_key_file",
                format!("cannot read {}: {e}", f.display()),
            ),
        }
    }
    match (&t.nats, t.sink) {
        (None, SinkKind::Nats) => c.field("telemetry.nats", "the nats sink needs a `nats` section"),
        (Some(_), s) if s != SinkKind::Nats => c.field("telemetry.nats", "only used with `sink: nats`"),
        _ => {}
    }
    if let Some(n) = &t.nats {
        if n.url.parse::<async_nats::ServerAddr>().is_err() {
            c.field(
                "telemetry.nats.url",
                format!("{:?} is not a NATS address (nats://HOST:PORT)", n.url),
            );
        }
        let token = |s: &str| !s.is_empty() && !s.contains(|ch: char| ch.is_whitespace() || ch == '>' || ch == '*');
        if !token(&n.subject) {
            c.field(
                "telemetry.nats.subject",
                "must be a subject without spaces or wildcards",
            );
        }
        if !token(&n.stream) || n.stream.contains('.') {
            c.field(
                "telemetry.nats.stream",
                "must be a name without spaces, dots or wildcards",
            );
        }
        if n.batch_size == 0 {
            c.field("telemetry.nats.batch_size", "must be at least 1");
        }
        if n.ack_timeout.0.is_zero() || n.reconnect_max_delay.0.is_zero() {
            c.field(
                "telemetry.nats",
                "ack_timeout and reconnect_max_delay must be longer than zero",
            );
        }
    }
}

fn route_matches(m: &RouteMatchSection, route: &str, p: &str, c: &mut Collector<'_>) {
    for (name, vm) in &m.headers {
        let at = format!("{p}.headers.{name}");
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            c.field(&at, format!("{name:?} is not a valid header name"));
        }
        check_value_match(vm, &at, route, c);
    }
    for (name, vm) in &m.query {
        check_value_match(vm, &format!("{p}.query.{name}"), route, c);
    }
}

fn rewrite(rw: &RewriteSection, p: &str, c: &mut Collector<'_>) {
    if let Some(to) = &rw.path_prefix {
        if !to.starts_with('/') {
            c.field(&format!("{p}.path_prefix"), "path_prefix must start with /");
        }
        if rw.path_regex.is_some() {
            c.field(p, "give path_prefix or path_regex, not both");
        }
    }
    match (&rw.path_regex, &rw.path_to) {
        (Some(re), Some(to)) => match crate::pattern::compile_regex(re) {
            Ok(re) => {
                if let Err(e) = crate::pattern::check_replacement(&re, to) {
                    c.field(&format!("{p}.path_to"), e.to_string());
                }
            }
            Err(e) => c.field(&format!("{p}.path_regex"), e.to_string()),
        },
        (Some(_), None) => c.field(p, "path_regex needs path_to, the path it becomes"),
        (None, Some(_)) => c.field(p, "path_to needs path_regex"),
        (None, None) => {}
    }
    if let Some(h) = &rw.host {
        if h.is_empty() || HeaderValue::from_str(h).is_err() || h.contains(['/', ' ', '@']) {
            c.field(
                &format!("{p}.host"),
                format!("{h:?} is not a host name (with an optional port)"),
            );
        }
    }
}

/// Request headers a route may not change: framing and connection headers (changing them would
/// desynchronise the origin), `Host` (see `rewrite.host`) and the forwarding headers Palisade
/// itself vouches for.
const FIXED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-proto",
];

fn request_header_names(h: &HeaderRulesSection, p: &str, c: &mut Collector<'_>) {
    let named = h
        .remove
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("{p}.remove[{i}]"), n))
        .chain(h.set.keys().map(|n| (format!("{p}.set.{n}"), n)))
        .chain(h.add.keys().map(|n| (format!("{p}.add.{n}"), n)));
    for (at, name) in named {
        if FIXED_REQUEST_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            c.field(
                &at,
                format!("{name:?} cannot be changed by a route (framing, Host or forwarding header)"),
            );
        }
    }
}

fn compression(z: &CompressionSection, p: &str, c: &mut Collector<'_>) {
    if z.codings.is_empty() {
        c.field(&format!("{p}.codings"), "name at least one of gzip, br, zstd");
    }
    let mut seen = HashSet::new();
    for (i, k) in z.codings.iter().enumerate() {
        if !seen.insert(k) {
            c.field(&format!("{p}.codings[{i}]"), "named twice");
        }
    }
    if !(1..=9).contains(&z.level) {
        c.field(&format!("{p}.level"), "level must be from 1 (fastest) to 9 (smallest)");
    }
    if z.types.is_empty() {
        c.field(
            &format!("{p}.types"),
            "name at least one content type (prefix), e.g. text/",
        );
    }
}

fn header_rules(h: &HeaderRulesSection, p: &str, c: &mut Collector<'_>) {
    for (i, name) in h.remove.iter().enumerate() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            c.field(
                &format!("{p}.remove[{i}]"),
                format!("{name:?} is not a valid header name"),
            );
        }
    }
    for (key, name, value) in h
        .set
        .iter()
        .map(|(n, v)| ("set", n, v))
        .chain(h.add.iter().map(|(n, v)| ("add", n, v)))
    {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            c.field(
                &format!("{p}.{key}.{name}"),
                format!("{name:?} is not a valid header name"),
            );
        }
        if HeaderValue::from_str(value).is_err() {
            c.field(
                &format!("{p}.{key}.{name}"),
                "value has characters not allowed in a header",
            );
        }
    }
}

fn check_host_pattern(h: &str, path: &str, c: &mut Collector<'_>) {
    let rest = h.strip_prefix("*.").unwrap_or(h);
    if h != "*" && (rest.is_empty() || rest.contains('*') || rest.contains('/') || rest.contains(' ')) {
        c.field(path, format!("{h:?} is not a host name or a `*.suffix` wildcard"));
    }
}

/// A path from a file, resolved against that file's directory.
pub fn resolve(relative_to: &Path, p: &Path) -> PathBuf {
    match relative_to.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// Longest a tarpit may hold a request.
pub const MAX_TARPIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Ids Palisade reports for its own decisions; policies may not use them.
const RESERVED_IDS: &[&str] = &[
    crate::stage::verdict::BAN_RULE_ID,
    crate::stage::verdict::THROTTLE_RULE_ID,
    "admin",
];

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// Checks across all policy files; also reads list files into their list's `cidrs`.
pub fn policies(
    cfg: &ConfigFile,
    check_route_refs: bool,
    policies: &mut [LoadedPolicy],
    errors: &mut Vec<ConfigError>,
    files: &mut Vec<PathBuf>,
) {
    let mut routes: HashSet<&str> = cfg.routes.iter().map(|r| r.name.as_str()).collect();
    if !check_route_refs {
        routes.insert("*");
    }
    let mut lists: HashMap<String, PathBuf> = HashMap::new();
    let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    for pol in policies.iter_mut() {
        let path = pol.path.clone();
        let locator = pol.locator.clone();
        for (name, list) in pol.file.lists.iter_mut() {
            if let Some(first) = lists.insert(name.clone(), path.clone()) {
                Collector::new(&path, &locator, errors).field(
                    &format!("lists.{name}"),
                    format!("list {name:?} is also defined in {}", first.display()),
                );
            }
            for f in std::mem::take(&mut list.files) {
                let f = resolve(&path, &f);
                files.push(f.clone());
                let Some(text) = super::load::read(&f, errors) else {
                    continue;
                };
                for (n, line) in text.lines().enumerate() {
                    let entry = line.split('#').next().unwrap_or("").trim();
                    if entry.is_empty() {
                        continue;
                    }
                    match entry.parse::<Cidr>() {
                        Ok(cidr) => list.cidrs.push(cidr),
                        Err(msg) => errors.push(ConfigError {
                            file: f.clone(),
                            line: n + 1,
                            column: 1,
                            field: format!("lists.{name}"),
                            message: msg.to_string(),
                        }),
                    }
                }
                pol.list_text.push_str(&text);
            }
        }
        super::moderation::read_lists(pol, errors, files);
    }
    let mut offenders_in: Option<PathBuf> = None;
    let mut waf_in: Option<PathBuf> = None;
    for pol in policies.iter() {
        let mut c = Collector::new(&pol.path, &pol.locator, errors);
        if let Some(w) = &pol.file.waf {
            if let Some(first) = waf_in.replace(pol.path.clone()) {
                c.field("waf", format!("waf is already set in {}", first.display()));
            }
            super::waf::validate(w, &routes, &mut c);
        }
        if let Some(o) = &pol.file.offenders {
            if let Some(first) = offenders_in.replace(pol.path.clone()) {
                c.field("offenders", format!("offenders is already set in {}", first.display()));
            }
            if o.strikes == 0 {
                c.field("offenders.strikes", "must be at least 1");
            }
            if o.window.0.is_zero() || o.ban_for.0.is_zero() {
                c.field("offenders", "window and ban_for must be longer than zero");
            }
            if o.throttle_at.is_some_and(|t| t == 0 || t >= o.strikes) {
                c.field("offenders.throttle_at", "must be at least 1 and below strikes");
            }
            if o.max_ban.is_some_and(|m| m.0 < o.ban_for.0) {
                c.field("offenders.max_ban", "must not be shorter than ban_for");
            }
            if o.escalation == 0 {
                c.field("offenders.escalation", "must be at least 1");
            }
            if o.permanent_after == Some(0) {
                c.field(
                    "offenders.permanent_after",
                    "must be at least 1 (the ban that becomes permanent)",
                );
            }
            if let Some(k) = &o.identity {
                if k.0 .0.len() != 1 || matches!(k.0 .0[0], KeyPart::ClientIp | KeyPart::Route) {
                    c.field("offenders.identity", "must be one `header:NAME` or `cookie:NAME`");
                }
                // The identity is pseudonymised everywhere; telemetry must not copy it in clear.
                let carrier = match k.0 .0.first() {
                    Some(KeyPart::Header(h)) => Some(h.as_str()),
                    Some(KeyPart::Cookie(_)) => Some("cookie"),
                    _ => None,
                };
                if let Some(h) = carrier.filter(|h| cfg.telemetry.headers.iter().any(|t| t.eq_ignore_ascii_case(h))) {
                    c.field(
                        "offenders.identity",
                        format!("telemetry.headers records {h:?} in clear, which would publish the identity this names; remove it there"),
                    );
                }
            }
        }
        for (i, r) in pol.file.rules.iter().enumerate() {
            let p = format!("rules[{i}]");
            check_id(&r.id, &format!("{p}.id"), &pol.path, &mut ids, &mut c);
            check_match(&r.matches, &format!("{p}.match"), &r.id, &lists, &routes, &mut c);
            use super::file::RuleAction as A;
            if r.retry_after.is_some() && !matches!(r.action, A::Throttle | A::Tarpit) {
                c.field(
                    &format!("{p}.retry_after"),
                    format!("rule {:?}: retry_after only applies to throttle and tarpit", r.id),
                );
            }
            match (&r.delay, r.action) {
                (Some(d), A::Tarpit) if d.0 > MAX_TARPIT => {
                    c.field(
                        &format!("{p}.delay"),
                        format!("rule {:?}: a tarpit holds a request at most {MAX_TARPIT:?}", r.id),
                    );
                }
                (Some(_), A::Tarpit) | (None, _) => {}
                (Some(_), _) => c.field(
                    &format!("{p}.delay"),
                    format!("rule {:?}: delay only applies to tarpit", r.id),
                ),
            }
            if r.body.is_some() && r.action != A::Block {
                c.field(
                    &format!("{p}.body"),
                    format!("rule {:?}: body only applies to block", r.id),
                );
            }
        }
        super::moderation::check_rules(pol, &routes, &mut ids, &mut c);
        for (i, l) in pol.file.concurrency.iter().enumerate() {
            let p = format!("concurrency[{i}]");
            check_id(&l.id, &format!("{p}.id"), &pol.path, &mut ids, &mut c);
            if l.max == 0 {
                c.field(&format!("{p}.max"), format!("cap {:?}: max must be at least 1", l.id));
            }
            if let Some(m) = &l.matches {
                check_match(m, &format!("{p}.match"), &l.id, &lists, &routes, &mut c);
            }
        }
        for (i, l) in pol.file.limits.iter().enumerate() {
            let p = format!("limits[{i}]");
            check_id(&l.id, &format!("{p}.id"), &pol.path, &mut ids, &mut c);
            if l.requests == 0 {
                c.field(
                    &format!("{p}.requests"),
                    format!("limit {:?}: requests must be at least 1", l.id),
                );
            }
            if l.per.0.is_zero() {
                c.field(
                    &format!("{p}.per"),
                    format!("limit {:?}: the window must be longer than zero", l.id),
                );
            }
            if let Some(m) = &l.matches {
                check_match(m, &format!("{p}.match"), &l.id, &lists, &routes, &mut c);
            }
        }
    }
}

pub(super) fn check_id(id: &str, path: &str, file: &Path, ids: &mut BTreeMap<String, PathBuf>, c: &mut Collector<'_>) {
    let ok = !id.is_empty() && id.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.:".contains(ch));
    if !ok {
        c.field(path, format!("id {id:?} must be non-empty letters, digits, - _ . :"));
    }
    if RESERVED_IDS.contains(&id) {
        c.field(path, format!("id {id:?} is reserved for Palisade's own decisions"));
    }
    if let Some(first) = ids.insert(id.to_string(), file.to_path_buf()) {
        c.field(path, format!("id {id:?} is already used (in {})", first.display()));
    }
}

fn check_match(
    m: &MatchSection,
    p: &str,
    id: &str,
    lists: &HashMap<String, PathBuf>,
    routes: &HashSet<&str>,
    c: &mut Collector<'_>,
) {
    if m.is_empty() {
        c.field(
            p,
            format!("{id:?}: match has no condition (use `path_prefix: [/]` to match every request)"),
        );
    }
    for (j, l) in m.ip_lists.iter().enumerate() {
        if !lists.contains_key(l) {
            c.field(&format!("{p}.ip_lists[{j}]"), format!("{id:?}: no list named {l:?}"));
        }
    }
    for (j, meth) in m.methods.iter().enumerate() {
        if !METHODS.contains(&meth.as_str()) {
            c.field(
                &format!("{p}.methods[{j}]"),
                format!("{id:?}: unknown method {meth:?} (use upper case, e.g. POST)"),
            );
        }
    }
    for (key, paths) in [("path", &m.path), ("path_prefix", &m.path_prefix)] {
        for (j, pp) in paths.iter().enumerate() {
            if !pp.starts_with('/') {
                c.field(&format!("{p}.{key}[{j}]"), format!("{id:?}: path must start with /"));
            }
        }
    }
    for (j, re) in m.path_regex.iter().enumerate() {
        if let Err(e) = crate::pattern::compile_regex(re) {
            c.field(&format!("{p}.path_regex[{j}]"), format!("{id:?}: {e}"));
        }
    }
    for (j, g) in m.path_glob.iter().enumerate() {
        if let Err(e) = crate::pattern::check_glob(g) {
            c.field(&format!("{p}.path_glob[{j}]"), format!("{id:?}: {e}"));
        }
    }
    for (j, h) in m.hosts.iter().enumerate() {
        check_host_pattern(h, &format!("{p}.hosts[{j}]"), c);
    }
    for (j, r) in m.routes.iter().enumerate() {
        if !routes.contains(r.as_str()) && !routes.contains("*") {
            c.field(&format!("{p}.routes[{j}]"), format!("{id:?}: no route named {r:?}"));
        }
    }
    for (name, vm) in &m.headers {
        if HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err() {
            c.field(
                &format!("{p}.headers.{name}"),
                format!("{id:?}: {name:?} is not a valid header name"),
            );
        }
        check_value_match(vm, &format!("{p}.headers.{name}"), id, c);
    }
    for (name, vm) in &m.query {
        check_value_match(vm, &format!("{p}.query.{name}"), id, c);
    }
    if let Some(vm) = &m.user_agent {
        check_value_match(vm, &format!("{p}.user_agent"), id, c);
    }
    for (key, nested) in [("all", &m.all), ("any", &m.any)] {
        for (j, n) in nested.iter().enumerate() {
            check_match(n, &format!("{p}.{key}[{j}]"), id, lists, routes, c);
        }
    }
    if let Some(n) = &m.not {
        check_match(n, &format!("{p}.not"), id, lists, routes, c);
    }
}

fn check_value_match(vm: &ValueMatch, p: &str, id: &str, c: &mut Collector<'_>) {
    if vm.count() != 1 {
        c.field(
            p,
            format!("{id:?}: give exactly one of present, absent, equals, prefix, contains, regex"),
        );
    }
    if vm.present == Some(false) || vm.absent == Some(false) {
        c.field(p, format!("{id:?}: write `present: true` or `absent: true`"));
    }
    if let Some(re) = &vm.regex {
        if let Err(e) = crate::pattern::compile_regex(re) {
            c.field(p, format!("{id:?}: {e}"));
        }
    }
}
