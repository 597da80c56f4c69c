//! Raw-socket HTTP/1 exchanges for tests that must send bytes no HTTP client library would
//! produce (ambiguous framing, obs-fold, bare CR/LF) and see exactly what comes back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What came back on one connection.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The raw bytes received until the proxy closed the connection, the first response was
    /// complete, or the read timed out.
    pub text: String,
}

impl Reply {
    /// The status code of the first response, 0 when none arrived.
    pub fn status(&self) -> u16 {
        self.text
            .strip_prefix("HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.text.split("\r\n\r\n").next()?;
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn body(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }
}

/// Send `bytes` on a fresh connection and read the first response (or whatever arrives before
/// the connection closes or `wait` passes without data).
pub fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait)).expect("timeout");
    // The proxy may answer and close before reading everything (e.g. an oversized header):
    // a failed write is then expected, and the answer is still there to read.
    let _ = s.write_all(bytes);
    Reply {
        text: read_response(&mut s),
    }
}

/// Read one response: up to a complete Content-Length body, or until close or timeout.
pub fn read_response(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if complete(&out) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    len.is_some_and(|len| body.len() >= len)
}
