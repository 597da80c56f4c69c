//! A tiny WebSocket origin and client over raw TCP (RFC 6455 framing only, no extensions), for
//! tests of what the proxy does to messages. The origin records every message it receives and
//! echoes text back; a text message `say:TEXT` makes it send `TEXT` instead, and a target with
//! `?greet=TEXT` makes it send `TEXT` first, so a test can put words on the origin→client side. Neither side checks `Sec-WebSocket-Accept`: the proxy
//! relays the 101 as it is.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const CONTINUATION: u8 = 0x0;

/// One frame as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Encode one frame; `mask`: the client's masking key (clients must mask).
pub fn encode(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Read one frame; `None` at end of stream or on timeout.
pub fn read_frame(s: &mut TcpStream) -> Option<Frame> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).ok()?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).ok()?;
        len = u64::from_be_bytes(b);
    }
    let mask = if h[1] & 0x80 != 0 {
        let mut k = [0u8; 4];
        s.read_exact(&mut k).ok()?;
        Some(k)
    } else {
        None
    };
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).ok()?;
    if let Some(k) = mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    Some(Frame {
        fin: h[0] & 0x80 != 0,
        opcode: h[0] & 0x0f,
        payload,
    })
}

/// Read an HTTP head (up to the blank line).
fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 {
            return None;
        }
        head.push(b[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// The WebSocket origin: echoes text, obeys `say:`, records what it received.
pub struct WsOrigin {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Frame>>>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl WsOrigin {
    pub fn spawn() -> WsOrigin {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind ws origin");
        let addr = l.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (r, hd) = (received.clone(), heads.clone());
        thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(s) = conn else { continue };
                let (r, hd) = (r.clone(), hd.clone());
                thread::spawn(move || serve(s, r, hd));
            }
        });
        WsOrigin { addr, received, heads }
    }

    /// Every data frame received (text and binary), in order.
    pub fn received(&self) -> Vec<Frame> {
        self.received.lock().expect("lock").clone()
    }

    pub fn received_texts(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|f| f.opcode == TEXT)
            .map(Frame::text)
            .collect()
    }

    /// Every request head received.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }
}

fn serve(mut s: TcpStream, received: Arc<Mutex<Vec<Frame>>>, heads: Arc<Mutex<Vec<String>>>) {
    let Some(head) = read_head(&mut s) else { return };
    heads.lock().expect("lock").push(head.clone());
    if !head.to_ascii_lowercase().contains("upgrade: websocket") {
        let body = "plain";
        let _ = write!(s, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        return;
    }
    let _ = s.write_all(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: dGVzdA==\r\n\r\n",
    );
    // `?greet=TEXT` in the target: the origin speaks first.
    if let Some(greet) = head
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.split_once("greet="))
        .map(|(_, g)| g)
    {
        let text = greet.replace("%20", " ");
        let _ = s.write_all(&encode(true, TEXT, text.as_bytes(), None));
    }
    while let Some(f) = read_frame(&mut s) {
        match f.opcode {
            CLOSE => {
                let _ = s.write_all(&encode(true, CLOSE, &f.payload, None));
                return;
            }
            TEXT | BINARY => {
                received.lock().expect("lock").push(f.clone());
                let reply = match f.text().strip_prefix("say:") {
                    Some(rest) if f.opcode == TEXT => rest.as_bytes().to_vec(),
                    _ => f.payload.clone(),
                };
                if s.write_all(&encode(true, f.opcode, &reply, None)).is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// A WebSocket client connection through the proxy.
pub struct WsClient {
    pub stream: TcpStream,
    /// The status of the handshake's answer.
    pub status: u16,
    pub head: String,
}

impl WsClient {
    /// Open `path` on `addr` with extra header lines (`"x-user: alice\r\n"`).
    pub fn connect(addr: SocketAddr, path: &str, extra: &str) -> WsClient {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nhost: chat.test\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nsec-websocket-extensions: permessage-deflate\r\n{extra}\r\n"
        )
        .expect("write handshake");
        let head = read_head(&mut s).unwrap_or_default();
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        WsClient {
            stream: s,
            status,
            head,
        }
    }

    pub fn send_text(&mut self, text: &str) {
        self.send(true, TEXT, text.as_bytes());
    }

    /// Send one masked frame.
    pub fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.send_raw(&encode(fin, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d])));
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next frame, skipping pings; `None` when the proxy closed or stayed silent 5 s.
    pub fn recv(&mut self) -> Option<Frame> {
        loop {
            let f = read_frame(&mut self.stream)?;
            if f.opcode != PING {
                return Some(f);
            }
        }
    }

    /// Wait for a close frame and return its code (the proxy may relay data frames first).
    pub fn close_code(&mut self) -> Option<u16> {
        loop {
            let f = self.recv()?;
            if f.opcode == CLOSE {
                return f.close_code();
            }
        }
    }
}
