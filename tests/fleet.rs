//! Fleet mode with real parts: one nats-server (JetStream, loopback, port picked at run time)
//! and several `palisade` processes sharing bans and strikes through it. A ban decided at one
//! instance is refused at the others; strikes at three instances add up to one ban; a new
//! instance starts with the fleet's bans, expired ones excluded, and a ban given again after
//! it expired or was lifted still expires; with the bus killed under traffic every instance
//! keeps serving and enforcing, and when it returns nothing is lost, resurrected or undone.
//! `bench_propagation` (ignored; `make bench-fleet`) measures propagation over many bans.

mod common;
use common::nats::Nats;
use common::*;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an instance may take to sync with the bus.
const BUS_PATIENCE: Duration = Duration::from_secs(30);
const TOKEN: &str = "fleet-test-admin-token";
const IDENTITY_KEY: &str = "a fleet-wide identity key, shared";
const POLICY: &str = "\
rules:
  - {id: probe, match: {path_prefix: [/probe]}, action: block}
offenders:
  strikes: 3
  window: 60s
  ban_for: 10m
  identity: header:x-account
";

/// One Palisade instance of the fleet, with its admin listener.
struct Edge {
    proxy: Proxy,
    admin: SocketAddr,
    name: String,
    /// For admin calls, kept so that each call does not pay for a new client.
    http: reqwest::blocking::Client,
}

impl Edge {
    fn start(nats: &str, name: &str, origin: &Origin) -> Edge {
        Self::start_with(nats, name, origin, "")
    }

    /// `extra`: more keys of the `fleet:` section, each line indented by two spaces.
    fn start_with(nats: &str, name: &str, origin: &Origin, extra: &str) -> Edge {
        let admin = free_addr();
        let config = format!(
            "{BASE}trusted_proxies: [127.0.0.1]\nadmin:\n  address: {admin}\n  token_file: token\nstate:\n  identity_key_file: identity.key\nfleet:\n  instance: {name}\n  url: {nats}\n  heartbeat: 200ms\n  timeout: 500ms\n  reconnect_max_delay: 100ms\n{extra}policies: [policy.yaml]\n{}",
            single_pool(origin)
        );
        let proxy = Proxy::start_with(
            &config,
            &[
                ("token", TOKEN),
                ("identity.key", IDENTITY_KEY),
                ("policy.yaml", POLICY),
            ],
            &[],
        );
        let e = Edge {
            proxy,
            admin,
            name: name.into(),
            http: client(),
        };
        e.wait_synced();
        e
    }

    /// Connected and watching the bucket. Longer than `eventually`: a NATS cluster that lost
    /// a node elects new stream leaders first.
    fn wait_synced(&self) {
        let start = Instant::now();
        while self.proxy.metric("palisade_fleet_bus_connected") != Some(1.0) {
            assert!(
                start.elapsed() < BUS_PATIENCE,
                "{} did not sync with the bus:\n{}",
                self.name,
                self.proxy.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn admin(&self, method: reqwest::Method, query: &str) -> serde_json::Value {
        let r = self
            .http
            .request(method, format!("http://{}/bans?{query}", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("admin call");
        assert_eq!(r.status(), 200, "{query}");
        r.json().expect("json")
    }

    fn ban(&self, query: &str) {
        self.admin(reqwest::Method::POST, query);
    }

    fn unban(&self, query: &str) {
        self.admin(reqwest::Method::DELETE, query);
    }

    fn get_admin(&self, path: &str) -> serde_json::Value {
        self.http
            .get(format!("http://{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .expect("admin call")
            .json()
            .expect("json")
    }

    /// The status a request from `ip` (named by the trusted proxy) gets.
    fn status_for(&self, c: &reqwest::blocking::Client, ip: &str, account: Option<&str>) -> u16 {
        let mut r = c.get(self.proxy.url("/")).header("x-forwarded-for", ip);
        if let Some(a) = account {
            r = r.header("x-account", a);
        }
        r.send().expect("request").status().as_u16()
    }

    fn metric(&self, sample: &str) -> f64 {
        self.proxy.metric(sample).unwrap_or(0.0)
    }
}

fn refused_everywhere(edges: &[&Edge], ip: &str, account: Option<&str>) {
    refused_within(edges, ip, account, PATIENCE);
}

fn refused_within(edges: &[&Edge], ip: &str, account: Option<&str>, patience: Duration) {
    let c = client();
    for e in edges {
        let start = Instant::now();
        while e.status_for(&c, ip, account) != 403 {
            assert!(
                start.elapsed() < patience,
                "{ip} not refused at {}:\n{}",
                e.name,
                e.proxy.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn allowed_everywhere(edges: &[&Edge], ip: &str) {
    let c = client();
    for e in edges {
        eventually(&format!("{ip} allowed at {}", e.name), || {
            (e.status_for(&c, ip, None) == 200).then_some(())
        });
    }
}

/// Ban `n` addresses, each at one instance in turn, and measure how long each took to be
/// refused at the other instances: from before the admin call to the first 403.
fn propagation(edges: &[Edge], n: usize, prefix: &str) -> Vec<Duration> {
    let c = client();
    let mut lags = Vec::new();
    for i in 0..n {
        let ip = format!("{prefix}.{}.{}", i / 250, i % 250 + 1);
        let at = fastrand::usize(..edges.len());
        let start = Instant::now();
        edges[at].ban(&format!("ip={ip}&for=10m"));
        for (j, e) in edges.iter().enumerate() {
            if j == at {
                continue;
            }
            loop {
                if e.status_for(&c, &ip, None) == 403 {
                    lags.push(start.elapsed());
                    break;
                }
                assert!(start.elapsed() < PATIENCE, "{ip} never refused at {}", e.name);
            }
        }
    }
    lags.sort();
    lags
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[test]
fn a_ban_decided_at_one_instance_is_enforced_at_the_others() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let nats = Nats::start();
    let edges: Vec<Edge> = ["edge-a", "edge-b", "edge-c"]
        .iter()
        .map(|n| Edge::start(&nats.url(), n, &origin))
        .collect();
    let [a, b, c] = [&edges[0], &edges[1], &edges[2]];

    let lags = propagation(&edges, 30, "10.1");
    let (p50, p99) = (percentile(&lags, 0.5), percentile(&lags, 0.99));
    eprintln!("propagation p50 {p50:?} p99 {p99:?} over {} refusals", lags.len());
    // Loose (the issue asks for 100 ms; `make bench-fleet` measures it): CI machines are busy.
    assert!(p99 < Duration::from_millis(500), "p99 {p99:?}");

    // Lifted at another instance than the one that banned it: allowed everywhere.
    b.unban("ip=10.1.0.1");
    allowed_everywhere(&[a, b, c], "10.1.0.1");

    // A network, and an account (carried as its pseudonym) from any address.
    a.ban("net=203.0.113.0/24&for=10m");
    refused_everywhere(&[b, c], "203.0.113.200", None);
    c.ban("id=acct-42&for=forever");
    refused_everywhere(&[a, b], "198.51.100.99", Some("acct-42"));
    assert_eq!(a.status_for(&client(), "198.51.100.99", Some("acct-43")), 200);

    // Every instance lists the fleet's bans; the account only as its pseudonym.
    let bans = b.get_admin("/bans").to_string();
    assert!(bans.contains("203.0.113.0/24") && bans.contains("id:hmac:"), "{bans}");
    assert!(!bans.contains("acct-42"), "{bans}");

    // Operator view: all three instances heartbeat; metrics count what arrived.
    eventually("three instances in GET /api/fleet", || {
        let v = a.get_admin("/api/fleet");
        (v["instances"].as_array().map(Vec::len) == Some(3)).then_some(v)
    });
    // The console's health line reads the same view (refreshed at each heartbeat).
    let health = eventually("fleet health in GET /api/stats", || {
        let h = a.get_admin("/api/stats")["fleet"].clone();
        (h["instances"] == 3 && h["fleet_bans"].as_u64() >= Some(30)).then_some(h)
    });
    assert_eq!(health["enabled"], true, "{health}");
    assert_eq!(health["connected"], true, "{health}");
    assert!(b.metric("palisade_fleet_applied_total") >= 10.0);
    assert!(b.metric("palisade_fleet_propagation_seconds_count") >= 10.0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["fleet", "status", "-c"])
        .arg(&a.proxy.config)
        .output()
        .expect("palisade fleet status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for n in ["edge-a", "edge-b", "edge-c"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(n))
            .unwrap_or_else(|| panic!("{n}: {text}"));
        assert!(line.contains("connected"), "{line}");
    }
    // 30 addresses, one lifted, the network and the account.
    assert!(text.contains("3 instance(s); 31 ban(s) in force"), "{text}");
}

#[test]
fn strikes_at_three_instances_add_up_to_one_ban() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let nats = Nats::start();
    let edges: Vec<Edge> = ["s-a", "s-b", "s-c"]
        .iter()
        .map(|n| Edge::start(&nats.url(), n, &origin))
        .collect();
    let c = client();
    let ip = "192.0.2.50";
    // One refused probe at each instance: no instance sees three on its own.
    for e in &edges {
        let r = c
            .get(e.proxy.url("/probe"))
            .header("x-forwarded-for", ip)
            .send()
            .expect("probe");
        assert_eq!(r.status(), 403);
    }
    let all: Vec<&Edge> = edges.iter().collect();
    refused_everywhere(&all, ip, None);
    let bans = edges[0].get_admin("/bans").to_string();
    assert!(bans.contains(ip) && bans.contains("\"ban\""), "{bans}");
    // Another address with two strikes in the fleet is not banned.
    for e in &edges[..2] {
        c.get(e.proxy.url("/probe"))
            .header("x-forwarded-for", "192.0.2.51")
            .send()
            .expect("probe");
    }
    std::thread::sleep(Duration::from_millis(300));
    for e in &edges {
        assert_eq!(e.status_for(&c, "192.0.2.51", None), 200);
    }
}

/// The record the bucket holds for an address.
fn bucket_record(url: &str, ip: &str) -> Option<serde_json::Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = async_nats::connect(url).await.expect("connect");
        let kv = async_nats::jetstream::new(client)
            .get_key_value("PALISADE_BANS")
            .await
            .expect("bucket");
        let v = kv.get(format!("ip.{ip}")).await.expect("get")?;
        Some(serde_json::from_slice(&v).expect("record"))
    })
}

#[test]
fn a_new_instance_starts_with_the_fleets_bans_and_a_ban_given_again_still_expires() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let nats = Nats::start();
    let a = Edge::start(&nats.url(), "first", &origin);
    let c = client();
    a.ban("ip=192.0.2.1&for=1h");
    a.ban("ip=192.0.2.2&for=1s");
    // Banned for good, lifted, banned again for a second: the new ban must end. (async-nats's
    // create_with_ttl over a deleted key writes without the TTL; records carry their end.)
    a.ban("ip=192.0.2.3&for=forever");
    a.unban("ip=192.0.2.3");
    a.ban("ip=192.0.2.3&for=1s");
    assert_eq!(a.status_for(&c, "192.0.2.3", None), 403);
    std::thread::sleep(Duration::from_millis(1100));
    let b = Edge::start(&nats.url(), "second", &origin);
    refused_everywhere(&[&a, &b], "192.0.2.1", None);
    for ip in ["192.0.2.2", "192.0.2.3"] {
        assert_eq!(
            b.status_for(&c, ip, None),
            200,
            "{ip} expired before the new instance came"
        );
        assert_eq!(a.status_for(&c, ip, None), 200, "{ip}");
    }
    // Expired, then banned again for a second: enforced everywhere, and it ends everywhere.
    b.ban("ip=192.0.2.2&for=1s");
    refused_everywhere(&[&a, &b], "192.0.2.2", None);
    let record = bucket_record(&nats.url(), "192.0.2.2").expect("a record");
    assert!(
        record["bans"][0]["until"].is_u64(),
        "the ban in the bucket has an end: {record}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    allowed_everywhere(&[&a, &b], "192.0.2.2");
    // The permanent ban that was lifted is not in the record any more.
    let record = bucket_record(&nats.url(), "192.0.2.3").expect("a record");
    assert!(
        record["bans"]
            .as_array()
            .is_some_and(|b| b.iter().all(|t| t["until"].is_u64())),
        "{record}"
    );
}

#[test]
fn with_the_bus_down_instances_serve_and_enforce_and_reconcile_when_it_returns() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let mut nats = Nats::start();
    let a = Edge::start(&nats.url(), "p-a", &origin);
    let b = Edge::start(&nats.url(), "p-b", &origin);
    let c = client();
    a.ban("ip=192.0.2.10&for=10m");
    a.ban("ip=192.0.2.11&for=2s");
    refused_everywhere(&[&a, &b], "192.0.2.10", None);
    refused_everywhere(&[&a, &b], "192.0.2.11", None);

    // Traffic from a clean client throughout: every answer must be a 200.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let urls = [a.proxy.url("/"), b.proxy.url("/")];
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        std::thread::spawn(move || {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                for u in &urls {
                    match c.get(u).header("x-forwarded-for", "192.0.2.99").send() {
                        Ok(r) if r.status() == 200 => served.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
        })
    };

    nats.kill();
    for e in [&a, &b] {
        eventually("the bus seen as down", || {
            (e.metric("palisade_fleet_bus_connected") == 0.0).then_some(())
        });
    }
    // Decisions while cut off are enforced where they are made.
    a.ban("ip=192.0.2.12&for=10m");
    assert_eq!(a.status_for(&c, "192.0.2.12", None), 403);
    assert_eq!(b.status_for(&c, "192.0.2.12", None), 200, "b cannot know yet");
    b.unban("ip=192.0.2.10");
    assert_eq!(b.status_for(&c, "192.0.2.10", None), 200);
    assert_eq!(a.status_for(&c, "192.0.2.10", None), 403, "a cannot know yet");
    // 192.0.2.11's ban ends while the bus is away.
    std::thread::sleep(Duration::from_millis(2100));
    let before = a.metric("palisade_fleet_reconciliations_total");

    nats.run();
    for e in [&a, &b] {
        eventually("reconciled", || {
            (e.metric("palisade_fleet_reconciliations_total") >= 2.0 && e.metric("palisade_fleet_bus_connected") == 1.0)
                .then_some(())
        });
    }
    assert!(a.metric("palisade_fleet_reconciliations_total") > before);
    // No ban lost, no unban undone, no expired ban resurrected.
    refused_everywhere(&[&a, &b], "192.0.2.12", None);
    allowed_everywhere(&[&a, &b], "192.0.2.10");
    std::thread::sleep(Duration::from_millis(300));
    for e in [&a, &b] {
        assert_eq!(e.status_for(&c, "192.0.2.10", None), 200, "unban undone at {}", e.name);
        assert_eq!(
            e.status_for(&c, "192.0.2.11", None),
            200,
            "expired ban resurrected at {}",
            e.name
        );
    }
    // A third instance, new after the outage, agrees.
    let d = Edge::start(&nats.url(), "p-d", &origin);
    refused_everywhere(&[&d], "192.0.2.12", None);
    assert_eq!(d.status_for(&c, "192.0.2.10", None), 200);

    stop.store(true, Ordering::Relaxed);
    traffic.join().expect("traffic thread");
    assert!(served.load(Ordering::Relaxed) > 20, "traffic kept flowing");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "every clean request served");
}

#[test]
fn when_nats_loses_its_store_the_instances_write_their_bans_back() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let mut nats = Nats::start();
    let a = Edge::start(&nats.url(), "s-a", &origin);
    a.ban("ip=192.0.2.40&for=10m");
    a.ban("net=198.18.0.0/15&for=10m");
    nats.kill();
    std::fs::remove_dir_all(nats.dir.path().join("store")).expect("remove the store");
    nats.run();
    // A new instance learns them from the bucket a rebuilt.
    let b = Edge::start(&nats.url(), "s-b", &origin);
    refused_within(&[&b], "192.0.2.40", None, BUS_PATIENCE);
    refused_within(&[&b], "198.19.1.1", None, BUS_PATIENCE);
}

#[test]
fn fleet_configuration_errors_name_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("palisade.yaml");
    std::fs::write(
        &config,
        "listeners:\n  - address: 127.0.0.1:1\nupstreams:\n  app:\n    backends: [\"127.0.0.1:2\"]\nroutes:\n  - {name: app, upstream: app}\nfleet:\n  instance: edge one\n  url: \"nats://127.0.0.1:1,ftp://a:1\"\n  queue: 0\n",
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .expect("palisade check");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for field in ["fleet.instance", "fleet.url", "fleet.queue"] {
        assert!(!text.contains("(server 1)"), "the first server is fine: {text}");
        assert!(text.contains(&format!("field `{field}`")), "{field}: {text}");
    }
    assert!(text.contains("palisade.yaml:9"), "line of fleet.instance: {text}");
}

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The content cloud-init writes to `path`.
fn cloud_init_file(path: &str) -> String {
    let text = std::fs::read_to_string(repo().join("deploy/fleet/cloud-init.user-data")).expect("user-data");
    assert!(text.starts_with("#cloud-config\n"), "cloud-init needs its first line");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("user-data is YAML");
    doc["write_files"]
        .as_sequence()
        .expect("write_files")
        .iter()
        .find(|f| f["path"].as_str() == Some(path))
        .and_then(|f| f["content"].as_str())
        .unwrap_or_else(|| panic!("cloud-init writes no {path}"))
        .to_string()
}

#[test]
fn cloud_init_installs_the_shipped_unit_and_a_configuration_that_checks() {
    let unit = std::fs::read_to_string(repo().join("deploy/palisade.service")).expect("unit");
    assert_eq!(cloud_init_file("/etc/systemd/system/palisade.service"), unit);
    // Laid out as on the VM, with the FILL_IN values filled in.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("palisade.yaml");
    std::fs::write(&config, cloud_init_file("/etc/palisade/palisade.yaml")).expect("config");
    for f in ["/etc/palisade/identity.key", "/etc/palisade/admin.token"] {
        assert_eq!(cloud_init_file(f).trim(), "FILL_IN", "{f} ships unfilled");
    }
    std::fs::write(dir.path().join("identity.key"), IDENTITY_KEY).expect("key");
    std::fs::write(dir.path().join("admin.token"), TOKEN).expect("token");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .expect("palisade check");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(
        text.contains("\nfleet:\n  instance: edge-1\n"),
        "runcmd rewrites this line"
    );
    // The pid file the unit follows is the one the configuration writes.
    assert!(
        unit.contains("PIDFile=/run/palisade/palisade.pid") && text.contains("pid_file: /run/palisade/palisade.pid")
    );
}

/// The three NATS node files of deploy/fleet, on loopback: their addresses and store
/// directories rewritten to run-time ports and a temporary directory, nothing else.
#[test]
fn the_shipped_nats_cluster_keeps_the_fleet_going_when_a_node_dies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client_ports: Vec<u16> = (0..3).map(|_| free_addr().port()).collect();
    let route_ports: Vec<u16> = (0..3).map(|_| free_addr().port()).collect();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let mut conf =
            std::fs::read_to_string(repo().join(format!("deploy/fleet/nats-{}.conf", i + 1))).expect("nats conf");
        let replace = |conf: &mut String, from: &str, to: &str| {
            assert!(conf.contains(from), "{from} in nats-{}.conf", i + 1);
            *conf = conf.replace(from, to);
        };
        replace(
            &mut conf,
            "listen: 0.0.0.0:4222",
            &format!("listen: 127.0.0.1:{}", client_ports[i]),
        );
        replace(
            &mut conf,
            "listen: 0.0.0.0:6222",
            &format!("listen: 127.0.0.1:{}", route_ports[i]),
        );
        replace(&mut conf, "http: 127.0.0.1:8222\n", "");
        let store = dir.path().join(format!("store-{i}"));
        replace(
            &mut conf,
            "store_dir: /var/lib/nats",
            &format!("store_dir: {}", store.display()),
        );
        for (j, port) in route_ports.iter().enumerate() {
            replace(
                &mut conf,
                &format!("nats-{}.internal:6222", j + 1),
                &format!("127.0.0.1:{port}"),
            );
        }
        let path = dir.path().join(format!("nats-{i}.conf"));
        std::fs::write(&path, conf).expect("write conf");
        let log = std::fs::File::create(dir.path().join(format!("nats-{i}.log"))).expect("log");
        let child = std::process::Command::new(common::nats::nats_binary())
            .arg("-c")
            .arg(&path)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        nodes.push(KillOnDrop(child));
    }
    let url = client_ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let a = Edge::start_with(&url, "cluster-a", &origin, "  replicas: 3\n");
    let b = Edge::start_with(&url, "cluster-b", &origin, "  replicas: 3\n");
    a.ban("ip=192.0.2.30&for=10m");
    refused_everywhere(&[&b], "192.0.2.30", None);
    // One node of three goes: the replicated bucket keeps working.
    drop(nodes.remove(0));
    std::thread::sleep(Duration::from_millis(200));
    a.wait_synced();
    b.wait_synced();
    // The instances whose watch lived on the lost node notice it (a missed probe, or the
    // client's missed idle heartbeats) and read the bucket again once it has new leaders.
    let start = Instant::now();
    b.ban("ip=192.0.2.31&for=10m");
    refused_within(&[&a], "192.0.2.31", None, BUS_PATIENCE);
    eprintln!(
        "after the loss of a NATS node, a ban reached another instance in {:?}",
        start.elapsed()
    );
    let d = Edge::start_with(&url, "cluster-d", &origin, "  replicas: 3\n");
    refused_within(&[&d], "192.0.2.30", None, BUS_PATIENCE);
    refused_within(&[&d], "192.0.2.31", None, BUS_PATIENCE);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `make bench-fleet`: three instances and one nats-server on loopback; FLEET_BENCH_BANS
/// addresses (default 300) banned at random instances; one line at the end.
#[test]
#[ignore]
fn bench_propagation() {
    let n: usize = std::env::var("FLEET_BENCH_BANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let nats = Nats::start();
    let edges: Vec<Edge> = ["bench-a", "bench-b", "bench-c"]
        .iter()
        .map(|name| Edge::start(&nats.url(), name, &origin))
        .collect();
    let lags = propagation(&edges, n, "10.2");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let line = format!(
        "propagation p50 {:.1} ms p99 {:.1} ms over {n} bans",
        ms(percentile(&lags, 0.5)),
        ms(percentile(&lags, 0.99))
    );
    println!("{line}");
    for e in &edges {
        let sum = e.metric("palisade_fleet_propagation_seconds_sum");
        let count = e.metric("palisade_fleet_propagation_seconds_count");
        eprintln!(
            "{}: {count} arrivals, mean {:.1} ms from decision to arrival",
            e.name,
            sum * 1000.0 / count.max(1.0)
        );
    }
    if let Some(path) = std::env::var_os("FLEET_BENCH_OUT") {
        std::fs::write(path, format!("{line}\n")).expect("write the result");
    }
}
