//! Upstream pools: backends, load balancing (round robin or consistent hash on the client IP)
//! and active health checks (upstream_peer; checks run in a background service).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use pingora::lb::discovery::Static;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::Consistent;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora_http::RequestHeader;

use crate::config::file::{HealthCheckKind, Selection, UpstreamSection};
use crate::metrics::METRICS;

/// Health check period when the config gives none.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Backends tried by one selection before giving up on the pool.
const MAX_SELECT_ITERATIONS: usize = 256;

enum Balancer {
    /// Our own rotation over `Pool::up`: pingora-load-balancing's round robin hashes every
    /// candidate to read its health (about 2,000 instructions per request;
    /// docs/performance.md). Its `Backends` still runs the health checks.
    RoundRobin {
        backends: Backends,
        /// Indices into `Pool::backends`, each repeated by its weight.
        rotation: Vec<usize>,
        turn: AtomicUsize,
        /// Health of each of `Pool::backends` as of the last check; all up until a check says
        /// otherwise.
        up: Box<[AtomicBool]>,
    },
    Consistent(LoadBalancer<Consistent>),
}

/// TLS settings of a pool's backend connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTls {
    pub sni: String,
    pub verify: bool,
}

/// One named pool of backends. Kept across reloads while its configuration is unchanged, so
/// health state survives.
pub struct Pool {
    pub name: Arc<str>,
    /// The section it was built from, to decide reuse on reload (never read per request).
    pub section: UpstreamSection,
    /// TLS to the backends: the SNI to send, and whether certificate and name are verified.
    pub tls: Option<PoolTls>,
    /// The `Host` header sent upstream when the route does not preserve the client's.
    pub host: Option<String>,
    /// HTTP/2 to the backends, with this many streams per connection (`None`: HTTP/1.1).
    pub http2: Option<usize>,
    balancer: Balancer,
    pub backends: Vec<SocketAddr>,
    health_interval: Option<Duration>,
    /// Milliseconds since `epoch` of the last health check, for scheduling.
    last_check_ms: AtomicU64,
    epoch: Instant,
}

impl Pool {
    pub fn new(name: &str, section: &UpstreamSection) -> std::io::Result<Pool> {
        let set: BTreeSet<Backend> = section
            .backends
            .iter()
            .filter_map(|b| Backend::new_with_weight(&b.address().to_string(), b.weight()).ok())
            .collect();
        let mut backends = Backends::new(Static::new(set));
        if let Some(hc) = &section.health_check {
            backends.set_health_check(health_check(hc, section));
        }
        // Static discovery answers at once: the backend list (and, for consistent hashing, the
        // selector) is loaded now.
        let (balancer, updated) = match section.selection {
            Selection::RoundRobin => {
                let updated = backends.update(|_| ()).now_or_never();
                let rotation = section
                    .backends
                    .iter()
                    .enumerate()
                    .flat_map(|(i, b)| std::iter::repeat_n(i, b.weight().max(1)))
                    .collect();
                (
                    Balancer::RoundRobin {
                        backends,
                        rotation,
                        turn: AtomicUsize::new(0),
                        up: section.backends.iter().map(|_| AtomicBool::new(true)).collect(),
                    },
                    updated,
                )
            }
            Selection::ConsistentHash => {
                let lb = LoadBalancer::from_backends(backends);
                let updated = lb.update().now_or_never();
                (Balancer::Consistent(lb), updated)
            }
        };
        if !matches!(updated, Some(Ok(()))) {
            return Err(std::io::Error::other(format!("pool {name}: cannot load backends")));
        }
        Ok(Pool {
            name: Arc::from(name),
            section: section.clone(),
            tls: section.tls.as_ref().map(|t| PoolTls {
                sni: t.sni.clone(),
                verify: t.verify,
            }),
            host: section.host.clone(),
            http2: section.http2.then_some(section.h2_streams),
            balancer,
            backends: section.backends.iter().map(|b| b.address()).collect(),
            health_interval: section
                .health_check
                .as_ref()
                .map(|h| h.interval.map_or(DEFAULT_HEALTH_INTERVAL, |d| d.0)),
            last_check_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// A healthy backend for this client, or `None` when every backend is down.
    pub fn select(&self, client: Option<IpAddr>) -> Option<SocketAddr> {
        match &self.balancer {
            Balancer::RoundRobin { rotation, turn, up, .. } => {
                let n = rotation.len();
                (0..n).find_map(|_| {
                    let i = rotation[turn.fetch_add(1, Ordering::Relaxed) % n];
                    up[i].load(Ordering::Relaxed).then(|| self.backends[i])
                })
            }
            Balancer::Consistent(lb) => {
                let key = match client {
                    Some(IpAddr::V4(a)) => a.octets().to_vec(),
                    Some(IpAddr::V6(a)) => a.octets().to_vec(),
                    None => Vec::new(),
                };
                lb.select(&key, MAX_SELECT_ITERATIONS)
                    .and_then(|b| b.addr.as_inet().copied())
            }
        }
    }

    fn backends_ref(&self) -> &Backends {
        match &self.balancer {
            Balancer::RoundRobin { backends, .. } => backends,
            Balancer::Consistent(lb) => lb.backends(),
        }
    }

    /// Whether `addr` currently passes its health check (always true without checks).
    pub fn healthy(&self, addr: SocketAddr) -> bool {
        Backend::new(&addr.to_string())
            .map(|b| self.backends_ref().ready(&b))
            .unwrap_or(false)
    }

    /// Run the health check if it is due; report backend health to metrics.
    pub async fn check_if_due(&self) {
        let Some(interval) = self.health_interval else { return };
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < interval.as_millis() as u64 {
            return;
        }
        self.last_check_ms.store(now_ms.max(1), Ordering::Relaxed);
        self.backends_ref().run_health_check(true).await;
        for (i, addr) in self.backends.iter().enumerate() {
            let up = self.healthy(*addr);
            if let Balancer::RoundRobin { up: flags, .. } = &self.balancer {
                flags[i].store(up, Ordering::Relaxed);
            }
            METRICS
                .upstream_healthy
                .with_label_values(&[&*self.name, &addr.to_string()])
                .set(i64::from(up));
        }
    }
}

fn health_check(
    hc: &crate::config::file::HealthCheckSection,
    u: &UpstreamSection,
) -> Box<dyn HealthCheck + Send + Sync> {
    let tls_sni = u.tls.as_ref().map(|t| t.sni.clone());
    match hc.kind {
        HealthCheckKind::Tcp => {
            let mut c = match &tls_sni {
                Some(sni) => TcpHealthCheck::new_tls(sni),
                None => TcpHealthCheck::new(),
            };
            c.consecutive_success = hc.healthy_after;
            c.consecutive_failure = hc.unhealthy_after;
            c
        }
        HealthCheckKind::Http => {
            let host = hc
                .host
                .clone()
                .or_else(|| u.host.clone())
                .or(tls_sni.clone())
                .unwrap_or_else(|| "localhost".into());
            let mut c = HttpHealthCheck::new(&host, tls_sni.is_some());
            if let Some(sni) = &tls_sni {
                c.peer_template.sni = sni.clone();
                c.peer_template.options.verify_cert = u.tls.as_ref().is_some_and(|t| t.verify);
                c.peer_template.options.verify_hostname = c.peer_template.options.verify_cert;
            }
            if let Ok(mut req) = RequestHeader::build("GET", hc.path.as_bytes(), None) {
                if req.insert_header("Host", &host).is_ok()
                    && req.insert_header("User-Agent", "palisade-health").is_ok()
                {
                    c.req = req;
                }
            }
            c.consecutive_success = hc.healthy_after;
            c.consecutive_failure = hc.unhealthy_after;
            c.validator = Some(Box::new(|resp| {
                if resp.status.as_u16() < 400 {
                    Ok(())
                } else {
                    pingora::Error::e_explain(
                        pingora::ErrorType::Custom("unhealthy"),
                        format!("status {}", resp.status),
                    )
                }
            }));
            Box::new(c)
        }
    }
}

/// Build the pools of a new configuration, reusing those of `previous` whose section did not
/// change.
pub fn build_pools(
    sections: &BTreeMap<String, UpstreamSection>,
    previous: Option<&BTreeMap<String, Arc<Pool>>>,
) -> std::io::Result<BTreeMap<String, Arc<Pool>>> {
    let mut out = BTreeMap::new();
    for (name, section) in sections {
        let reused = previous
            .and_then(|p| p.get(name))
            .filter(|p| p.section == *section)
            .cloned();
        let pool = match reused {
            Some(p) => p,
            None => Arc::new(Pool::new(name, section)?),
        };
        out.insert(name.clone(), pool);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::BackendSection;

    /// Mark backend `i` of a round-robin pool up or down, as a health check would.
    fn set_up(p: &Pool, i: usize, up: bool) {
        let Balancer::RoundRobin { up: flags, .. } = &p.balancer else {
            panic!("round robin")
        };
        flags[i].store(up, Ordering::Relaxed);
    }

    fn pool(backends: Vec<BackendSection>) -> Pool {
        let section = UpstreamSection {
            backends,
            selection: Selection::RoundRobin,
            health_check: None,
            tls: None,
            host: None,
            http2: false,
            h2_streams: 100,
        };
        Pool::new("app", &section).expect("pool")
    }

    #[test]
    fn round_robin_follows_weights_and_skips_backends_that_are_down() {
        let a: SocketAddr = "192.0.2.1:80".parse().expect("addr");
        let b: SocketAddr = "192.0.2.2:80".parse().expect("addr");
        let p = pool(vec![
            BackendSection::Weighted { address: a, weight: 2 },
            BackendSection::Address(b),
        ]);
        let picks: Vec<SocketAddr> = (0..6).filter_map(|_| p.select(None)).collect();
        assert_eq!(picks.iter().filter(|x| **x == a).count(), 4, "{picks:?}");
        assert_eq!(picks.iter().filter(|x| **x == b).count(), 2, "{picks:?}");
        set_up(&p, 0, false);
        assert!((0..5).all(|_| p.select(None) == Some(b)));
        set_up(&p, 1, false);
        assert_eq!(p.select(None), None, "every backend down");
    }
}
