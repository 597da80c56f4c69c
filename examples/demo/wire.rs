//! The demo's wire formats, shared by the demo platform (examples/demo_origin.rs), the scripted
//! abusive actor (examples/demo_attack.rs) and tests/demo.rs: RFC 6455 frames, the handshake's
//! accept key, a blocking WebSocket client and a one-shot HTTP/1.1 client.
//!
//! SHA-1 and base64 are written out here so the demo needs no crate beyond Palisade's own.
//! No extension is ever offered or accepted (no `permessage-deflate`): every frame a moderating
//! proxy sees is plain text.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// RFC 6455 §1.3: appended to the client's key before hashing.
const HANDSHAKE_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close codes the demo uses or reports (RFC 6455 §7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Whether a close frame may carry `code` (RFC 6455 §7.4): 1005, 1006 and 1015 only describe
/// what happened and are never sent.
pub fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// Largest message either side of the demo accepts: chat lines are short, and a bound keeps a
/// misbehaving peer from growing a buffer without end.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    base64(&sha1(format!("{}{HANDSHAKE_GUID}", key.trim()).as_bytes()))
}

/// SHA-1 (FIPS 180-4). Only for the handshake, where RFC 6455 prescribes it; never for security.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One frame, payload already unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    /// Whether the sender masked it: clients must, servers must not (RFC 6455 §5.1).
    pub masked: bool,
    pub payload: Vec<u8>,
}

/// Why bytes are not a frame the demo accepts; each maps to the close code to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Reserved bits, an unknown opcode, a fragmented or oversized control frame.
    Protocol,
    /// A payload over the cap.
    TooBig,
}

impl FrameError {
    pub fn close_code(self) -> u16 {
        match self {
            FrameError::Protocol => CLOSE_PROTOCOL_ERROR,
            FrameError::TooBig => CLOSE_TOO_BIG,
        }
    }
}

/// A single unfragmented frame; masked with `mask` when given (client to server).
pub fn encode(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A close frame carrying `code` (and no reason).
pub fn encode_close(code: u16, mask: Option<[u8; 4]>) -> Vec<u8> {
    encode(OP_CLOSE, &code.to_be_bytes(), mask)
}

/// The first frame in `buf` and how many bytes it took, or `None` while it is incomplete.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b0 & 0x70 != 0 || !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
        return Err(FrameError::Protocol);
    }
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => (u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let control = opcode >= OP_CLOSE;
    if control && (!fin || len > 125) {
        return Err(FrameError::Protocol);
    }
    let len = usize::try_from(len).map_err(|_| FrameError::TooBig)?;
    if len > MAX_MESSAGE {
        return Err(FrameError::TooBig);
    }
    let key = if masked {
        let Some(k) = buf.get(at..at + 4) else { return Ok(None) };
        at += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    let Some(body) = buf.get(at..at + len) else {
        return Ok(None);
    };
    let payload = match key {
        Some(k) => body.iter().enumerate().map(|(i, b)| b ^ k[i % 4]).collect(),
        None => body.to_vec(),
    };
    Ok(Some((
        Frame {
            fin,
            opcode,
            masked,
            payload,
        },
        at + len,
    )))
}

/// Reassembles messages out of frames (RFC 6455 §5.4): control frames may come between the
/// fragments of a data message.
#[derive(Debug, Default)]
pub struct Assembler {
    partial: Option<(u8, Vec<u8>)>,
}

/// What one frame amounts to once reassembly has seen it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A fragment of a message still being assembled.
    Pending,
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    /// The peer's close code, if it sent one.
    Close(Option<u16>),
}

impl Assembler {
    pub fn push(&mut self, frame: Frame) -> Result<Incoming, FrameError> {
        match frame.opcode {
            OP_PING => return Ok(Incoming::Ping(frame.payload)),
            OP_PONG => return Ok(Incoming::Pong),
            OP_CLOSE => {
                let code = frame.payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                return Ok(Incoming::Close(code));
            }
            _ => {}
        }
        let (opcode, mut data) = match (frame.opcode, self.partial.take()) {
            (OP_CONTINUATION, Some((op, mut data))) => {
                data.extend_from_slice(&frame.payload);
                (op, data)
            }
            (OP_TEXT | OP_BINARY, None) => (frame.opcode, frame.payload),
            // A continuation with nothing to continue, or a new message inside another.
            _ => return Err(FrameError::Protocol),
        };
        if data.len() > MAX_MESSAGE {
            return Err(FrameError::TooBig);
        }
        if !frame.fin {
            self.partial = Some((opcode, std::mem::take(&mut data)));
            return Ok(Incoming::Pending);
        }
        if opcode == OP_TEXT {
            String::from_utf8(data)
                .map(Incoming::Text)
                .map_err(|_| FrameError::Protocol)
        } else {
            Ok(Incoming::Binary(data))
        }
    }
}

/// A response to a one-shot HTTP request (or to a refused WebSocket handshake).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name` set by this response, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .find_map(|(_, v)| {
                let (k, rest) = v.split_once('=')?;
                (k.trim() == name).then(|| rest.split(';').next().unwrap_or("").to_string())
            })
    }
}

/// How long the demo's clients wait for an answer before calling the peer unresponsive.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One request on a fresh connection (`Connection: close`), body sent with `Content-Length`.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> io::Result<Reply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let (head, rest) = split_head(&raw).ok_or_else(|| io::Error::other("no complete response head"))?;
    let (status, headers) = parse_head(head)?;
    Ok(Reply {
        status,
        body: body_of(&headers, rest),
        headers,
    })
}

/// The head (without its blank line) and whatever followed it.
fn split_head(raw: &[u8]) -> Option<(&str, &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((std::str::from_utf8(&raw[..end]).ok()?, &raw[end + 4..]))
}

fn parse_head(head: &str) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other("malformed status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

/// The body after the head: `Content-Length` bytes, or de-chunked, or all that came.
fn body_of(headers: &[(String, String)], rest: &[u8]) -> String {
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut at = rest;
        while let Some(nl) = at.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&at[..nl])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
                .unwrap_or(0);
            let Some(chunk) = at.get(nl + 2..nl + 2 + size) else {
                break;
            };
            if size == 0 {
                break;
            }
            out.extend_from_slice(chunk);
            at = at.get(nl + 4 + size..).unwrap_or(&[]);
        }
        return String::from_utf8_lossy(&out).into_owned();
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..len.min(rest.len())]).into_owned()
}

/// A blocking WebSocket client: what a chat participant's browser does, in a script.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    assembler: Assembler,
    closed: bool,
}

/// The outcome of an opening handshake.
pub enum Handshake {
    Open(Client),
    /// Anything but `101`: the answer as received (a refusal by Palisade, for example).
    Refused(Reply),
}

/// What a client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Text(String),
    /// The connection ended: the close code when the peer sent a close frame, `None` when it
    /// just went away.
    Closed(Option<u16>),
}

impl Client {
    /// Open `ws://addr{path}` with extra request headers (a cookie, `X-Forwarded-For`, …).
    pub fn connect(addr: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<Handshake> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
        let key = base64(&fastrand::u128(..).to_be_bytes());
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes())?;
        let mut raw = Vec::new();
        let mut chunk = [0u8; 4096];
        let (status, headers, rest) = loop {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the handshake",
                ));
            }
            raw.extend_from_slice(&chunk[..n]);
            if let Some((head, rest)) = split_head(&raw) {
                let (status, headers) = parse_head(head)?;
                break (status, headers, rest.to_vec());
            }
        };
        if status != 101 {
            // The refusal's body: read what the declared length still misses, then stop.
            let want = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok());
            let mut rest = rest;
            while want.is_some_and(|w| rest.len() < w) {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => rest.extend_from_slice(&chunk[..n]),
                }
            }
            return Ok(Handshake::Refused(Reply {
                status,
                body: body_of(&headers, &rest),
                headers,
            }));
        }
        let accepted = headers
            .iter()
            .any(|(k, v)| k == "sec-websocket-accept" && *v == accept_key(&key));
        if !accepted {
            return Err(io::Error::other("101 without the right Sec-WebSocket-Accept"));
        }
        Ok(Handshake::Open(Client {
            stream,
            buf: rest,
            assembler: Assembler::default(),
            closed: false,
        }))
    }

    /// Send one text message in one masked frame.
    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.stream
            .write_all(&encode(OP_TEXT, text.as_bytes(), Some(fastrand::u32(..).to_be_bytes())))
    }

    /// Send raw bytes (hand-made frames: fragments, malformed frames) as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Start the closing handshake with 1000.
    pub fn close(&mut self) -> io::Result<()> {
        self.stream
            .write_all(&encode_close(CLOSE_NORMAL, Some(fastrand::u32(..).to_be_bytes())))
    }

    /// The next text message or the end of the connection, waiting at most `wait`; `None` when
    /// nothing came in time. Pings are answered on the way.
    pub fn recv(&mut self, wait: Duration) -> io::Result<Option<Event>> {
        let deadline = Instant::now() + wait;
        loop {
            if self.closed {
                return Ok(Some(Event::Closed(None)));
            }
            while let Some((frame, used)) = decode(&self.buf).map_err(|e| io::Error::other(format!("{e:?}")))? {
                self.buf.drain(..used);
                match self
                    .assembler
                    .push(frame)
                    .map_err(|e| io::Error::other(format!("{e:?}")))?
                {
                    Incoming::Text(t) => return Ok(Some(Event::Text(t))),
                    Incoming::Ping(p) => {
                        let pong = encode(OP_PONG, &p, Some(fastrand::u32(..).to_be_bytes()));
                        self.stream.write_all(&pong)?;
                    }
                    Incoming::Close(code) => {
                        self.closed = true;
                        return Ok(Some(Event::Closed(code)));
                    }
                    Incoming::Pending | Incoming::Binary(_) | Incoming::Pong => {}
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    return Ok(Some(Event::Closed(None)));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    self.closed = true;
                    return Ok(Some(Event::Closed(None)));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
