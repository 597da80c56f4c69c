//! Shared integration-test harness: a real origin (`origin.rs`) and the real `palisade` binary
//! started on ports picked at run time, driven by a real HTTP client.

#![allow(dead_code)]

pub mod bad_origin;
pub mod nats;
pub mod origin;
pub mod raw;
pub mod ws;

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use origin::Origin;

/// How long to wait for anything the proxy should do promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A free loopback port (bound, read, released).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr")
}

/// Copy a directory tree (fixtures laid out as an installation would have them).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// A `palisade` started with command-line arguments only (no harness config); killed when
/// dropped.
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `palisade ARGS` in `dir` (stderr to `dir/log`) and wait until `listen` accepts.
pub fn run_with_args(dir: &Path, args: &[&str], listen: SocketAddr) -> Running {
    let log = fs::File::create(dir.join("log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start");
    let running = Running(child);
    eventually("the listener", || TcpStream::connect(listen).ok());
    running
}

/// The Content-Length of a message head given as text (its lines, any header case).
pub fn content_length(head: &str) -> Option<usize> {
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok())
}

/// Run `start` on a new thread with its own multi-threaded runtime of `workers` threads, and
/// return the first value it sends (the started server); the runtime lives as long as `start`'s
/// future runs.
pub fn on_own_runtime<T, F>(workers: usize, start: impl FnOnce(std::sync::mpsc::Sender<T>) -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(start(tx));
    });
    rx.recv().expect("server started")
}

/// What `palisade check` prints about `policy`, given as the file `p.yaml` of a minimal
/// configuration; panics if the check passes.
pub fn policy_check_errors(policy: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("palisade.yaml"),
        "listeners: [{address: 127.0.0.1:1}]\nupstreams: {app: {backends: [127.0.0.1:2]}}\nroutes: [{name: app, upstream: app}]\npolicies: [p.yaml]\n",
    )
    .expect("config");
    fs::write(dir.path().join("p.yaml"), policy).expect("policy");
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "-c"])
        .arg(dir.path().join("palisade.yaml"))
        .output()
        .expect("run check");
    assert!(!out.status.success(), "{policy} passed check");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `palisade check --listen … --upstream … --policy POLICY`, as an operator tries a policy file.
pub fn check_policy_file(policy: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "check",
            "--listen",
            "127.0.0.1:1",
            "--upstream",
            "127.0.0.1:2",
            "--policy",
        ])
        .arg(policy)
        .output()
        .expect("run check")
}

/// `palisade run --listen … --upstream UPSTREAM --policy POLICY --telemetry off` in `dir`; returns
/// the listening address once it accepts.
pub fn run_policy_file(dir: &Path, policy: &Path, upstream: &str) -> (SocketAddr, Running) {
    let listen = free_addr();
    let running = run_with_args(
        dir,
        &[
            "run",
            "--listen",
            &listen.to_string(),
            "--upstream",
            upstream,
            "--policy",
            &policy.to_string_lossy(),
            "--telemetry",
            "off",
        ],
        listen,
    );
    (listen, running)
}

/// Poll `f` until it returns `Some`, or panic with `what` after `PATIENCE`.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Proxy {
    pub child: Option<Child>,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub telemetry: PathBuf,
    pub log: PathBuf,
    /// `RUST_LOG` of the processes it starts.
    pub rust_log: &'static str,
}

/// The config every test starts from; `{DIR}`, `{LISTEN}`, `{METRICS}` are filled in.
pub const BASE: &str = "\
server:
  threads: 1
  pid_file: {DIR}/palisade.pid
  upgrade_sock: {DIR}/upgrade.sock
  grace_period: 0s
  graceful_shutdown_timeout: 1s
listeners:
  - address: {LISTEN}
metrics:
  address: {METRICS}
telemetry:
  sink: file
  path: {DIR}/telemetry.jsonl
reload:
  interval: 50ms
";

impl Proxy {
    /// Start Palisade with `BASE` followed by `rest` (upstreams, routes, …). `files` are written
    /// into the test directory first (e.g. policies); `{DIR}` is replaced in them too.
    pub fn start(rest: &str, files: &[(&str, &str)]) -> Proxy {
        Self::start_with(&format!("{BASE}{rest}"), files, &[])
    }

    /// Start with a whole config of your own and extra command-line arguments.
    pub fn start_with(config: &str, files: &[(&str, &str)], args: &[&str]) -> Proxy {
        Self::start_logging(config, files, args, "info")
    }

    /// `start_with`, logging at `rust_log` (e.g. "debug") instead of "info".
    pub fn start_logging(config: &str, files: &[(&str, &str)], args: &[&str], rust_log: &'static str) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = free_addr();
        let metrics = free_addr();
        let fill = |s: &str| {
            s.replace("{DIR}", &dir.path().display().to_string())
                .replace("{LISTEN}", &addr.to_string())
                .replace("{METRICS}", &metrics.to_string())
        };
        for (name, text) in files {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("fixture directory");
            }
            fs::write(path, fill(text)).expect("write fixture");
        }
        let config_path = dir.path().join("palisade.yaml");
        fs::write(&config_path, fill(config)).expect("write config");
        let mut p = Proxy {
            child: None,
            addr,
            metrics,
            telemetry: dir.path().join("telemetry.jsonl"),
            log: dir.path().join("palisade.log"),
            rust_log,
            config: config_path,
            dir,
        };
        p.child = Some(p.spawn(&["run", "-c", &p.config.display().to_string()], args));
        p.wait_ready();
        p
    }

    /// Start the binary with these arguments, logging to the test's log file.
    pub fn spawn(&self, base: &[&str], extra: &[&str]) -> Child {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(base)
            .args(extra)
            .env("RUST_LOG", self.rust_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start palisade")
    }

    /// Wait until the listener accepts and the reloader has installed its SIGHUP handler.
    pub fn wait_ready(&mut self) {
        let addr = self.addr;
        eventually("palisade to listen", || {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("palisade exited with {status}:\n{}", self.log_text());
                }
            }
            TcpStream::connect(addr).ok()
        });
        eventually("the reloader", || {
            self.log_text().contains("reloader ready").then_some(())
        });
        // Services start one after another: the metrics listener may trail the proxy's.
        let metrics = self.metrics;
        if fs::read_to_string(&self.config)
            .unwrap_or_default()
            .contains(&metrics.to_string())
        {
            eventually("the metrics listener", || TcpStream::connect(metrics).ok());
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send a signal (e.g. "HUP", "QUIT") to the running process.
    pub fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    /// The metrics exposition text.
    pub fn metrics_text(&self) -> String {
        reqwest::blocking::get(format!("http://{}/metrics", self.metrics))
            .and_then(|r| r.text())
            .expect("metrics")
    }

    /// The value of one metric sample, e.g. `palisade_policy_reloads_total{result="ok"}`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        self.metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok()))
    }

    /// Telemetry events written so far (a line still being written is left for the next call).
    pub fn events(&self) -> Vec<serde_json::Value> {
        let text = fs::read_to_string(&self.telemetry).unwrap_or_default();
        text.rsplit_once('\n')
            .map_or("", |(complete, _)| complete)
            .lines()
            .map(|l| serde_json::from_str(l).expect("telemetry line is JSON"))
            .collect()
    }

    /// Wait for the telemetry event of the request with this id.
    pub fn event_for(&self, request_id: &str) -> serde_json::Value {
        eventually(&format!("telemetry event {request_id}"), || {
            self.events().into_iter().find(|e| e["event"]["id"] == request_id)
        })
    }

    /// Replace the config file (same placeholders as `start`).
    pub fn rewrite(&self, name: &str, text: &str) {
        let text = text
            .replace("{DIR}", &self.dir.path().display().to_string())
            .replace("{LISTEN}", &self.addr.to_string())
            .replace("{METRICS}", &self.metrics.to_string());
        let path = self.dir.path().join(name);
        // Beside the file (which may be in a subdirectory), so the rename replaces it.
        let file_name = path.file_name().expect("file name").to_string_lossy().into_owned();
        let tmp = path.with_file_name(format!(".{file_name}.tmp"));
        fs::write(&tmp, text).expect("write");
        fs::rename(tmp, path).expect("rename");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map(|s| s.success());
    assert_eq!(ok.ok(), Some(true), "kill -{sig} {pid}");
}

/// A blocking client that does not follow redirects and does not pool connections across
/// tests.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .expect("client")
}

/// Upstream + route section for one origin.
pub fn single_pool(origin: &Origin) -> String {
    format!(
        "upstreams:\n  app:\n    backends: [\"{}\"]\nroutes:\n  - name: app\n    upstream: app\n",
        origin.addr.expect("origin addr")
    )
}

/// Palisade in front of a fresh origin, with the policy `policy` and an admin listener whose
/// token is `token`; returns once the admin listener accepts, with its address.
pub fn start_with_admin(policy: &str, token: &str) -> (Origin, Proxy, SocketAddr) {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let admin = free_addr();
    let cfg = format!(
        "{}admin:\n  address: {admin}\n  token_file: token.txt\npolicies: [p.yaml]\n",
        single_pool(&origin)
    );
    let p = Proxy::start(&cfg, &[("token.txt", token), ("p.yaml", policy)]);
    eventually("the admin listener", || TcpStream::connect(admin).ok());
    (origin, p, admin)
}

/// The request id Palisade put on a response.
pub fn request_id(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id")
        .to_string()
}

/// Start with `BASE` plus extra keys in its `telemetry:` section, then `rest`.
pub fn start_with_telemetry(telemetry: &str, rest: &str, files: &[(&str, &str)]) -> Proxy {
    let base = BASE.replace(
        "  path: {DIR}/telemetry.jsonl\n",
        &format!("  path: {{DIR}}/telemetry.jsonl\n{telemetry}"),
    );
    assert_ne!(base, BASE, "the harness telemetry section changed");
    Proxy::start_with(&format!("{base}{rest}"), files, &[])
}

/// Hot upgrade: start `palisade run -u` on the same config, tell the old process to hand its
/// sockets over (SIGQUIT), and return the new process once the old one has exited cleanly.
pub fn hot_upgrade(p: &mut Proxy) -> Child {
    let config = p.config.display().to_string();
    let mut new = p.spawn(&["run", "-u", "-c", &config], &[]);
    // The new process waits in bootstrap for the sockets on upgrade_sock; once it listens there,
    // SIGQUIT makes the old one send them.
    let sock = p.dir.path().join("upgrade.sock");
    eventually("the new process to open upgrade.sock", || {
        if let Some(s) = new.try_wait().ok().flatten() {
            panic!("the new process exited with {s}:\n{}", p.log_text());
        }
        sock.exists().then_some(())
    });
    let mut old = p.child.take().expect("old process");
    signal(old.id(), "QUIT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = old.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = new.kill();
            panic!("the old process did not exit:\n{}", p.log_text());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "the old process exited with {status}:\n{}",
        p.log_text()
    );
    new
}
