//! A small real HTTP/1.1 origin for tests and the demo: keep-alive, Content-Length and chunked bodies,
//! and a record of every request it received, so tests can assert what was (not) forwarded.
//!
//! Paths: `/healthz` (200, or 503 after `set_healthy(false)`), `/status/NNN` (that status),
//! `/slow/MS` (answers after MS milliseconds); anything else echoes the request as JSON.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Clone, Default)]
pub struct Origin {
    pub addr: Option<SocketAddr>,
    seen: Arc<Mutex<Vec<Seen>>>,
    unhealthy: Arc<AtomicBool>,
}

impl Origin {
    /// Start on `addr` (use port 0 for any free port) inside the current tokio runtime.
    pub async fn start(addr: &str) -> std::io::Result<Origin> {
        let listener = TcpListener::bind(addr).await?;
        let origin = Origin {
            addr: Some(listener.local_addr()?),
            ..Origin::default()
        };
        let o = origin.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let o = o.clone();
                tokio::spawn(async move {
                    let _ = o.serve(stream).await;
                });
            }
        });
        Ok(origin)
    }

    /// Start on its own thread and runtime; for synchronous tests.
    pub fn spawn(addr: &str) -> std::io::Result<Origin> {
        let (tx, rx) = std::sync::mpsc::channel();
        let addr = addr.to_string();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let _ = tx.send(Origin::start(&addr).await);
                std::future::pending::<()>().await;
            });
        });
        rx.recv().map_err(std::io::Error::other)?
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Requests seen whose target starts with `prefix`.
    pub fn seen_path(&self, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.target.starts_with(prefix))
            .collect()
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.unhealthy.store(!healthy, Ordering::SeqCst);
    }

    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        // Head and body go out in two writes; without this, Nagle holds the body until the
        // client's delayed ACK (~40 ms a request).
        stream.set_nodelay(true)?;
        let mut r = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let target = parts.next().unwrap_or("").to_string();
            let Some(headers) = read_headers(&mut r).await? else {
                return Ok(());
            };
            let chunked = headers
                .get("transfer-encoding")
                .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
            let body = if chunked {
                read_chunked(&mut r).await?
            } else {
                let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0; len];
                r.read_exact(&mut body).await?;
                body
            };
            let close = headers
                .get("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            let seen = Seen {
                method,
                target,
                headers,
                body,
            };
            if seen.target != "/healthz" {
                if let Ok(mut s) = self.seen.lock() {
                    s.push(seen.clone());
                }
            }
            let (status, body) = self.answer(&seen).await;
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nserver: demo-origin/1.0\r\nx-powered-by: demo\r\n\r\n",
                body.len()
            );
            let w = r.get_mut();
            w.write_all(head.as_bytes()).await?;
            if seen.method != "HEAD" {
                w.write_all(body.as_bytes()).await?;
            }
            if close {
                return Ok(());
            }
        }
    }

    async fn answer(&self, s: &Seen) -> (u16, String) {
        let path = s.target.split('?').next().unwrap_or("");
        if path == "/healthz" {
            return if self.unhealthy.load(Ordering::SeqCst) {
                (503, "{}".into())
            } else {
                (200, "{\"ok\":true}".into())
            };
        }
        if let Some(code) = path.strip_prefix("/status/").and_then(|c| c.parse().ok()) {
            return (code, "{}".into());
        }
        // `/slow/MS`, or `…/slow/MS` under another prefix (e.g. a policy's `/live/`).
        if let Some(ms) = path.rsplit_once("/slow/").and_then(|(_, c)| c.parse().ok()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let headers: Vec<String> = s.headers.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
        let port = self.addr.map_or(0, |a| a.port());
        (
            200,
            format!(
                "{{\"origin_port\":{port},\"method\":{:?},\"target\":{:?},\"headers\":{{{}}}}}",
                s.method,
                s.target,
                headers.join(",")
            ),
        )
    }
}

/// A chunked request body, decoded (extensions and trailers are read and dropped).
async fn read_chunked(r: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await?;
        let size = line.trim_end().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
        if size == 0 {
            loop {
                let mut t = String::new();
                if r.read_line(&mut t).await? == 0 || t.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size + 2, 0);
        r.read_exact(&mut body[start..]).await?;
        body.truncate(start + size);
    }
}

/// The header lines of a request head up to its blank line, names lower-cased; `None` when the
/// connection ends first.
pub async fn read_headers<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<BTreeMap<String, String>>> {
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Ok(Some(headers));
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
}
