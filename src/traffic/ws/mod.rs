//! WebSocket message moderation after a 101 (request_body_filter for client→server,
//! response_body_filter for server→client): a `Relay` per direction reassembles RFC 6455
//! messages out of arbitrary TCP chunks, asks a judge about each whole message, and says which
//! bytes to pass on and which close frames to send. Pure: bytes in, bytes out, no socket.
//!
//! What the proxy writes where is described on [`Output`]; design notes are in `ws.md` beside
//! this file.

mod error;
mod frame;
#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use error::{Cause, Failure, FrameError};
pub use frame::{
    apply_mask, close_frame, close_frame_with, encode_frame, is_sendable_close_code, random_key, Opcode,
    MAX_CLOSE_REASON, MAX_CONTROL_PAYLOAD, MAX_HEAD,
};
use frame::{head_len, parse_head, reencode_into, Head};

/// Normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// Protocol error: a frame no conforming peer would send.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// A text message (or close reason) that is not UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// A message the policy refuses.
pub const CLOSE_POLICY: u16 = 1008;
/// A message over the size cap.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Frames one message may be split into. Each held fragment costs one header record
/// (`MAX_HEAD` bytes and a length), so this bounds the overhead a message of empty fragments
/// could otherwise pile up; more fragments are treated as a message too big (1009).
pub const DEFAULT_MAX_FRAGMENTS: usize = 1024;
/// Payload buffer capacity, in bytes, kept between messages; a larger one is shrunk back so
/// that an idle connection does not keep its largest message's worth of memory.
const RETAIN_PAYLOAD: usize = 64 * 1024;

/// Which way the bytes go. Client frames must be masked, server frames must not be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// A whole message, unmasked and reassembled, as the judge sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Validated UTF-8.
    Text(&'a str),
    Binary(&'a [u8]),
}

impl Message<'_> {
    pub fn opcode(&self) -> Opcode {
        match self {
            Message::Text(_) => Opcode::Text,
            Message::Binary(_) => Opcode::Binary,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }
}

/// The judge's decision on one message.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Pass the original frames on byte for byte (masking keys and fragmentation included).
    Forward,
    /// Swallow the message; the connection stays up.
    Drop,
    /// Send this instead, as one final frame of the message's own opcode (a binary message
    /// stays binary), masked with a fresh key toward the server, unmasked toward the client.
    Replace(String),
    /// Fail the connection with this code and reason. A code that may not be sent on the wire
    /// (1005, 1006, 1015, or outside 1000–4999) becomes 1008.
    Close(u16, String),
}

/// Where this direction stands after a `feed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Open,
    /// The sender's close frame went through; anything it sends afterwards is discarded (RFC
    /// 6455 forbids data after a close). The tunnel ends when the other side's close passes too,
    /// or when either peer drops the TCP connection.
    Closing,
    /// The relay failed the connection: see [`Output`] for what to write, then end the tunnel.
    Failed(Failure),
}

/// The result of one `feed`, for a relay of direction `d` fed bytes from sender S toward peer P
/// (`ClientToServer`: S = client, P = server).
///
/// The proxy must:
/// 1. Always replace the chunk with `forward` (`*body = Some(output.forward)`); it may be empty,
///    which Pingora does not write. Frames already judged come first; on failure it ends with a
///    close frame toward P (masked when P is the server).
/// 2. If `reply` is set, write it toward S: it is a close frame with the same code (masked when S
///    is the server). From `request_body_filter` (S = client) write it to the downstream session;
///    from `response_body_filter` (S = server, a sync hook that cannot write upstream) keep it in
///    the request context and send it as the next client→server body chunk, in place of whatever
///    the client sent.
/// 3. If `flow` is `Failed`, end the tunnel once both writes are out: at the next call of either
///    body filter for this connection, return an error (or `*body = None` from
///    `request_body_filter`, which ends an upgraded session). The relay discards every later byte
///    in this direction, so nothing more reaches P even if ending takes a round trip.
/// 4. On `Closing`, keep relaying; nothing to write beyond `forward`.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub forward: Bytes,
    pub reply: Option<Bytes>,
    pub flow: Flow,
}

impl Output {
    /// The relay failed the connection: the tunnel should end once `forward` and `reply` are out.
    pub fn finished(&self) -> bool {
        matches!(self.flow, Flow::Failed(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closing,
    Failed,
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Current {
    head: Head,
    op: Opcode,
    raw: [u8; MAX_HEAD],
    got: u64,
    /// Where its header began in the current chunk, if it did.
    start: Option<usize>,
}

/// A data frame of the held message, enough to put it back on the wire as it came.
#[derive(Debug, Clone, Copy)]
struct Fragment {
    raw: [u8; MAX_HEAD],
    len: usize,
}

/// The message being reassembled.
#[derive(Debug, Clone, Copy)]
struct Held {
    kind: Opcode,
    /// Its frames so far as one unbroken range of the current chunk, when they are: then a
    /// forwarded message is a slice of the chunk, with no copy.
    span: Option<(usize, usize)>,
}

/// Why `run` stopped early.
enum Stop {
    Frame(FrameError),
    Policy(u16, String),
}

impl From<FrameError> for Stop {
    fn from(e: FrameError) -> Stop {
        Stop::Frame(e)
    }
}

/// One direction of one WebSocket connection.
///
/// Memory: the held message's unmasked payload (at most `max_message` bytes, checked from each
/// frame header before its payload is read), one header record per held fragment (at most
/// `DEFAULT_MAX_FRAGMENTS`), one control payload (125 bytes) and a partial header (14 bytes).
#[derive(Debug)]
pub struct Relay {
    dir: Direction,
    max_message: usize,
    max_fragments: usize,
    mask_source: fn() -> [u8; 4],
    state: State,
    failure: Option<Failure>,
    hdr: [u8; MAX_HEAD],
    hdr_have: usize,
    hdr_start: Option<usize>,
    cur: Option<Current>,
    held: Option<Held>,
    fragments: Vec<Fragment>,
    payload: Vec<u8>,
    control: Vec<u8>,
}

impl Relay {
    pub fn new(dir: Direction, max_message: usize) -> Relay {
        Relay {
            dir,
            max_message,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
            mask_source: random_key,
            state: State::Open,
            failure: None,
            hdr: [0; MAX_HEAD],
            hdr_have: 0,
            hdr_start: None,
            cur: None,
            held: None,
            fragments: Vec::new(),
            payload: Vec::new(),
            control: Vec::new(),
        }
    }

    /// Use `f` for the masking keys of frames the relay writes toward the server.
    pub fn with_mask_source(mut self, f: fn() -> [u8; 4]) -> Relay {
        self.mask_source = f;
        self
    }

    pub fn with_max_fragments(mut self, n: usize) -> Relay {
        self.max_fragments = n.max(1);
        self
    }

    pub fn direction(&self) -> Direction {
        self.dir
    }

    /// Bytes held for messages and frames not yet complete.
    pub fn buffered(&self) -> usize {
        self.payload.len() + self.control.len() + self.hdr_have + self.fragments.len() * MAX_HEAD
    }

    pub fn flow(&self) -> Flow {
        match (self.state, &self.failure) {
            (State::Open, _) => Flow::Open,
            (State::Closing, _) => Flow::Closing,
            (State::Failed, Some(f)) => Flow::Failed(f.clone()),
            (State::Failed, None) => Flow::Closing,
        }
    }

    /// Take the next chunk of this direction's bytes; `judge` is called once per complete
    /// text or binary message, in order.
    pub fn feed<J>(&mut self, chunk: Bytes, mut judge: J) -> Output
    where
        J: FnMut(&Message<'_>) -> Judgement,
    {
        let mut out = Emit::new(chunk.clone());
        let mut reply = None;
        if self.state == State::Open {
            if let Err(stop) = self.run(&chunk, &mut judge, &mut out) {
                reply = Some(self.fail(stop, &mut out));
            }
        }
        // Positions are offsets into this chunk only.
        self.hdr_start = None;
        if let Some(c) = self.cur.as_mut() {
            c.start = None;
        }
        if let Some(h) = self.held.as_mut() {
            h.span = None;
        }
        Output {
            forward: out.finish(),
            reply,
            flow: self.flow(),
        }
    }

    /// Fail the connection from outside the byte stream (a ban or a reload mid-connection): the
    /// same output as a judge's `Close`, with `forward` holding only the close toward the peer.
    /// Bytes held for an unfinished message are discarded. Nothing to do (an empty output) once
    /// this direction is closing or failed.
    pub fn abort(&mut self, code: u16, reason: &str) -> Output {
        let mut out = Emit::new(Bytes::new());
        let reply = (self.state == State::Open).then(|| self.fail(Stop::Policy(code, reason.to_owned()), &mut out));
        Output {
            forward: out.finish(),
            reply,
            flow: self.flow(),
        }
    }

    fn run<J>(&mut self, chunk: &[u8], judge: &mut J, out: &mut Emit) -> Result<(), Stop>
    where
        J: FnMut(&Message<'_>) -> Judgement,
    {
        let mut pos = 0;
        while self.state == State::Open {
            if let Some(cur) = self.cur.as_mut() {
                // Bounded by the frame's length, which begin_frame checked against the caps.
                let n = (cur.head.len - cur.got).min((chunk.len() - pos) as u64) as usize;
                let (buf, cap) = if cur.op.is_control() {
                    (&mut self.control, MAX_CONTROL_PAYLOAD)
                } else {
                    (&mut self.payload, self.max_message)
                };
                grow_within(buf, n, cap);
                let at = buf.len();
                buf.extend_from_slice(&chunk[pos..pos + n]);
                if let Some(k) = cur.head.mask {
                    apply_mask(&mut buf[at..], k, (cur.got % 4) as usize);
                }
                cur.got += n as u64;
                pos += n;
                if cur.got < cur.head.len {
                    break;
                }
                let done = *cur;
                self.cur = None;
                self.end_frame(done, pos, judge, out)?;
                continue;
            }
            if pos == chunk.len() {
                break;
            }
            if self.hdr_have == 0 {
                self.hdr_start = Some(pos);
            }
            let need = if self.hdr_have < 2 { 2 } else { head_len(&self.hdr) };
            let take = (need - self.hdr_have).min(chunk.len() - pos);
            self.hdr[self.hdr_have..self.hdr_have + take].copy_from_slice(&chunk[pos..pos + take]);
            self.hdr_have += take;
            pos += take;
            // The full header length is only known once its first two bytes are in.
            if self.hdr_have >= 2 && self.hdr_have == head_len(&self.hdr) {
                let raw = self.hdr;
                let head = parse_head(&raw[..self.hdr_have]);
                self.hdr_have = 0;
                let start = self.hdr_start.take();
                self.begin_frame(head, raw, start)?;
            }
        }
        Ok(())
    }

    fn begin_frame(&mut self, head: Head, raw: [u8; MAX_HEAD], start: Option<usize>) -> Result<(), FrameError> {
        if head.rsv != 0 {
            return Err(FrameError::ReservedBits);
        }
        if head.len >> 63 != 0 {
            return Err(FrameError::BadLength);
        }
        let op = Opcode::from_u8(head.opcode).ok_or(FrameError::ReservedOpcode(head.opcode))?;
        match (self.dir, head.mask.is_some()) {
            (Direction::ClientToServer, false) => return Err(FrameError::Unmasked),
            (Direction::ServerToClient, true) => return Err(FrameError::MaskedFromServer),
            _ => {}
        }
        if op.is_control() {
            if !head.fin {
                return Err(FrameError::FragmentedControl);
            }
            if head.len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(FrameError::ControlTooLong);
            }
            self.control.clear();
        } else {
            match (op, self.held.is_some()) {
                (Opcode::Continuation, false) => return Err(FrameError::ContinuationWithoutStart),
                (Opcode::Text | Opcode::Binary, true) => return Err(FrameError::DataWhileFragmented),
                _ => {}
            }
            let so_far = if op == Opcode::Continuation {
                self.payload.len()
            } else {
                0
            };
            // Refused from the header, before a byte of its payload is held.
            if head.len > self.max_message.saturating_sub(so_far) as u64 {
                return Err(FrameError::TooBig {
                    limit: self.max_message,
                });
            }
            if op == Opcode::Continuation {
                if self.fragments.len() >= self.max_fragments {
                    return Err(FrameError::TooManyFragments {
                        limit: self.max_fragments,
                    });
                }
                if let Some(h) = self.held.as_mut() {
                    h.span = match (h.span, start) {
                        (Some((a, b)), Some(s)) if b == s => Some((a, b)),
                        _ => None,
                    };
                }
            } else {
                self.reset_message();
                self.held = Some(Held {
                    kind: op,
                    span: start.map(|s| (s, s)),
                });
            }
            grow_within(&mut self.fragments, 1, self.max_fragments);
            self.fragments.push(Fragment {
                raw,
                len: head.len as usize,
            });
        }
        self.cur = Some(Current {
            head,
            op,
            raw,
            got: 0,
            start,
        });
        Ok(())
    }

    fn end_frame<J>(&mut self, f: Current, end: usize, judge: &mut J, out: &mut Emit) -> Result<(), Stop>
    where
        J: FnMut(&Message<'_>) -> Judgement,
    {
        if f.op.is_control() {
            if f.op == Opcode::Close {
                if self.control.len() == 1 {
                    return Err(FrameError::BadClosePayload.into());
                }
                if self.control.len() > 2 && std::str::from_utf8(&self.control[2..]).is_err() {
                    return Err(FrameError::BadUtf8.into());
                }
            }
            match f.start {
                Some(s) => out.slice(s, end),
                None => reencode_into(out.buf(), &f.raw[..f.head.head_len], &self.control),
            }
            if f.op == Opcode::Close {
                // A message cut short by a close is never complete, so never forwarded.
                self.state = State::Closing;
                self.reset_message();
            }
            return Ok(());
        }
        if let Some(h) = self.held.as_mut() {
            h.span = h.span.map(|(a, _)| (a, end));
        }
        if !f.head.fin {
            return Ok(());
        }
        let Some(held) = self.held else { return Ok(()) };
        let verdict = match held.kind {
            Opcode::Text => {
                let text = std::str::from_utf8(&self.payload).map_err(|_| FrameError::BadUtf8)?;
                judge(&Message::Text(text))
            }
            _ => judge(&Message::Binary(&self.payload)),
        };
        match verdict {
            Judgement::Forward => match held.span {
                Some((a, b)) => out.slice(a, b),
                None => {
                    let buf = out.buf();
                    let mut at = 0;
                    for frag in &self.fragments {
                        let n = head_len(&frag.raw);
                        reencode_into(buf, &frag.raw[..n], &self.payload[at..at + frag.len]);
                        at += frag.len;
                    }
                }
            },
            Judgement::Drop => {}
            Judgement::Replace(text) => {
                let mask = self.toward_server_mask(self.dir == Direction::ClientToServer);
                out.buf()
                    .extend_from_slice(&encode_frame(held.kind, text.as_bytes(), mask));
            }
            Judgement::Close(code, reason) => return Err(Stop::Policy(code, reason)),
        }
        self.reset_message();
        Ok(())
    }

    fn toward_server_mask(&self, toward_server: bool) -> Option<[u8; 4]> {
        toward_server.then(self.mask_source)
    }

    fn reset_message(&mut self) {
        self.held = None;
        self.payload.clear();
        self.payload.shrink_to(RETAIN_PAYLOAD);
        self.fragments.clear();
        self.fragments.shrink_to(64);
    }

    /// Close toward the peer (appended to `out`), record the failure, and return the close for
    /// the sender.
    fn fail(&mut self, stop: Stop, out: &mut Emit) -> Bytes {
        let (code, cause) = match stop {
            Stop::Frame(e) => (e.close_code(), Cause::Frame(e)),
            Stop::Policy(code, reason) => {
                let code = if is_sendable_close_code(code) {
                    code
                } else {
                    CLOSE_POLICY
                };
                (code, Cause::Policy(reason))
            }
        };
        let reason = match &cause {
            Cause::Frame(e) => e.reason(),
            Cause::Policy(r) => r.as_str(),
        };
        let to_server = self.dir == Direction::ClientToServer;
        out.buf()
            .extend_from_slice(&close_frame_with(code, reason, self.toward_server_mask(to_server)));
        let reply = Bytes::from(close_frame_with(code, reason, self.toward_server_mask(!to_server)));
        self.state = State::Failed;
        self.failure = Some(Failure { code, cause });
        self.reset_message();
        self.control = Vec::new();
        self.cur = None;
        self.hdr_have = 0;
        reply
    }
}

/// Make room for `n` more items, doubling as `Vec` does but never past `cap`: amortised growth
/// without letting capacity overshoot the limit the caller has already checked `len + n` against.
fn grow_within<T>(v: &mut Vec<T>, n: usize, cap: usize) {
    if v.capacity() - v.len() >= n {
        return;
    }
    let want = v
        .capacity()
        .saturating_mul(2)
        .max(v.len() + n)
        .min(cap.max(v.len() + n));
    v.reserve_exact(want - v.len());
}

/// The bytes to forward, built as one slice of the chunk while it can be, copied otherwise.
struct Emit {
    chunk: Bytes,
    run: Option<(usize, usize)>,
    buf: Vec<u8>,
}

impl Emit {
    fn new(chunk: Bytes) -> Emit {
        Emit {
            chunk,
            run: None,
            buf: Vec::new(),
        }
    }

    fn slice(&mut self, a: usize, b: usize) {
        match self.run {
            Some((x, y)) if y == a => self.run = Some((x, b)),
            _ => {
                self.flush();
                self.run = Some((a, b));
            }
        }
    }

    fn flush(&mut self) {
        if let Some((a, b)) = self.run.take() {
            self.buf.extend_from_slice(&self.chunk[a..b]);
        }
    }

    fn buf(&mut self) -> &mut Vec<u8> {
        self.flush();
        &mut self.buf
    }

    fn finish(mut self) -> Bytes {
        if self.buf.is_empty() {
            return self.run.map_or_else(Bytes::new, |(a, b)| self.chunk.slice(a..b));
        }
        self.flush();
        Bytes::from(self.buf)
    }
}
