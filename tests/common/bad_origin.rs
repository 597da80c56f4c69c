//! A misbehaving origin for fault tests: a raw TCP server that reads a request head and then
//! does one wrong thing, chosen by `Mode`. It counts connections and records request lines, so
//! tests can assert how often Palisade tried it. Health probes (`GET /healthz`) get the same
//! treatment as any other request, so a bad origin also fails its health check.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read the request, never answer.
    Hang,
    /// Read the request, then reset the connection (RST) without answering.
    ResetBeforeResponse,
    /// Answer a head promising 1000 bytes, send 10, then reset.
    ResetMidResponse,
    /// Answer something that is not HTTP.
    Malformed,
    /// Answer a head with a 2 MiB header field.
    OversizedHeader,
    /// Close the first connection right after reading its request (as a keep-alive connection
    /// the origin timed out would be), answer normally on every later connection.
    CloseFirst,
    /// Answer 101 to an upgrade request, then count every byte the client sends.
    WebSocket,
}

#[derive(Clone)]
pub struct BadOrigin {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    tunnel_bytes: Arc<AtomicUsize>,
}

impl BadOrigin {
    /// Start on a free loopback port, on its own thread and runtime.
    pub fn spawn(mode: Mode) -> BadOrigin {
        super::on_own_runtime(1, move |tx| async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let origin = BadOrigin {
                addr: listener.local_addr().expect("addr"),
                connections: Arc::default(),
                requests: Arc::default(),
                tunnel_bytes: Arc::default(),
            };
            tx.send(origin.clone()).expect("send");
            while let Ok((stream, _)) = listener.accept().await {
                let n = origin.connections.fetch_add(1, Ordering::SeqCst);
                let o = origin.clone();
                tokio::spawn(async move {
                    let _ = o.serve(stream, mode, n).await;
                });
            }
        })
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Request lines received, health probes included.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Request lines received for paths starting with `prefix`.
    pub fn requests_for(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|l| l.split(' ').nth(1).is_some_and(|t| t.starts_with(prefix)))
            .count()
    }

    /// Bytes received after a 101 (WebSocket mode).
    pub fn tunnel_bytes(&self) -> usize {
        self.tunnel_bytes.load(Ordering::SeqCst)
    }

    async fn serve(&self, stream: TcpStream, mode: Mode, nth: usize) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        let mut r = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).await? == 0 {
                    return Ok(());
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).await?;
            if let Ok(mut reqs) = self.requests.lock() {
                reqs.push(line.trim_end().to_string());
            }
            let w = r.get_mut();
            match mode {
                Mode::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Mode::ResetBeforeResponse => {
                    w.set_zero_linger()?;
                    return Ok(());
                }
                Mode::ResetMidResponse => {
                    w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
                        .await?;
                    w.flush().await?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    w.set_zero_linger()?;
                    return Ok(());
                }
                Mode::Malformed => {
                    w.write_all(b"HTTP/1.1 OK-ish\r\nthis is: not\r\n a response\r\n\r\n")
                        .await?;
                    return Ok(());
                }
                Mode::OversizedHeader => {
                    let big = "x".repeat(2 << 20);
                    let head = format!("HTTP/1.1 200 OK\r\nx-big: {big}\r\ncontent-length: 0\r\n\r\n");
                    let _ = w.write_all(head.as_bytes()).await;
                    return Ok(());
                }
                Mode::CloseFirst if nth == 0 => return Ok(()),
                Mode::CloseFirst => {
                    w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await?;
                }
                Mode::WebSocket => {
                    w.write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: x\r\n\r\n",
                    )
                    .await?;
                    let mut buf = [0u8; 8192];
                    loop {
                        let n = r.read(&mut buf).await?;
                        if n == 0 {
                            return Ok(());
                        }
                        self.tunnel_bytes.fetch_add(n, Ordering::SeqCst);
                    }
                }
            }
        }
    }
}
