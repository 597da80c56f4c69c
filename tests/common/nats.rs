//! A real nats-server with JetStream, started on 127.0.0.1 at a port picked at run time, its
//! store in a temporary directory. The binary is `$NATS_SERVER` when set, else the Debian
//! package's, else the first on PATH. Tests fail, not skip, without one.

use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{eventually, free_addr};

/// The nats-server binary the tests run.
pub fn nats_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(p);
    }
    let packaged = PathBuf::from("/usr/sbin/nats-server");
    if packaged.exists() {
        return packaged;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nats-server"))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| panic!("nats-server is not installed: apt-get install nats-server"))
}

/// A JetStream-enabled nats-server on 127.0.0.1, with its store in a temporary directory.
pub struct Nats {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Nats {
    pub fn start() -> Nats {
        let mut n = Nats {
            child: None,
            port: free_addr().port(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        n.run();
        n
    }

    /// Start (again) on the same port with the same store.
    pub fn run(&mut self) {
        let log = self.dir.path().join("nats.log");
        let _ = fs::remove_file(&log);
        let out = fs::File::create(&log).expect("nats log");
        let child = Command::new(nats_binary())
            .args(["-js", "-sd"])
            .arg(self.dir.path().join("store"))
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        eventually("nats-server to be ready", || {
            let ready = fs::read_to_string(&log).unwrap_or_default().contains("Server is ready");
            (ready && TcpStream::connect(("127.0.0.1", self.port)).is_ok()).then_some(())
        });
    }

    /// SIGKILL: no goodbye to its clients.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill nats-server");
            c.wait().expect("reap nats-server");
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}
