//! The floor for benches/peers: the smallest useful Pingora proxy, with no policy, no
//! telemetry and no metrics. Same Pingora version, release profile and global allocator
//! (mimalloc called as `palisade::allocator` does, as in src/main.rs) as Palisade, so the
//! difference between the two is the cost of Palisade's own work.
//!
//! `stock_pingora LISTEN UPSTREAM [TLS_LISTEN CERT KEY]`, e.g.
//! `stock_pingora 127.0.0.1:8090 127.0.0.1:8081`. One worker thread, as every peer in the
//! side-by-side benchmark gets one.

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

#[global_allocator]
static GLOBAL: palisade::allocator::Allocator = palisade::allocator::Allocator;

struct Stock {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Stock {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, upstream) = match (args.first(), args.get(1).and_then(|a| a.parse().ok())) {
        (Some(l), Some(u)) => (l.clone(), u),
        _ => {
            eprintln!("usage: stock_pingora LISTEN UPSTREAM [TLS_LISTEN CERT KEY]");
            std::process::exit(2);
        }
    };
    let conf = ServerConf {
        threads: 1,
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: false,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    let mut svc = http_proxy_service(&server.configuration, Stock { upstream });
    svc.add_tcp(&listen);
    if let [_, _, tls_listen, cert, key] = args.as_slice() {
        let mut tls = match TlsSettings::intermediate(cert, key) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("stock_pingora: {cert}/{key}: {e}");
                std::process::exit(1);
            }
        };
        tls.enable_h2();
        svc.add_tls_with_settings(tls_listen, None, tls);
    }
    server.add_service(svc);
    server.bootstrap();
    server.run_forever();
}
