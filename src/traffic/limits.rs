//! Size and rate limits on what a client sends (request_filter, request_body_filter): the
//! compiled `limits:` section with its per-route overrides, the body cap (413: from the declared
//! length up front, then by counting streamed bytes), the minimum body rate (408) and the
//! WebSocket message cap (after a 101, by reading frame headers in the tunnelled bytes).
//! Pure state machines fed with byte counts, bytes and instants; nothing here sees a socket.

use std::time::{Duration, Instant};

use super::framing::{HeadLimits, Refusal};
use crate::config::limits::{LimitsSection, RouteLimitsSection};

/// Longest request target, in bytes, when the config sets none (414 beyond).
pub const DEFAULT_MAX_URI_LENGTH: usize = 8 * 1024;
/// Bytes of all request header lines together when the config sets none (431 beyond).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Request header fields when the config sets none (431 beyond).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Largest request body, in bytes, when the config sets none (413 beyond).
pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
/// Largest WebSocket message from a client, in bytes, when the config sets none.
pub const DEFAULT_MAX_WEBSOCKET_MESSAGE: u64 = 1024 * 1024;
/// Slowest acceptable request body, in bytes per second, once the grace period is over.
pub const DEFAULT_MIN_BODY_RATE: u64 = 1024;
/// Time a request body gets before the minimum rate applies.
pub const DEFAULT_BODY_RATE_GRACE: Duration = Duration::from_secs(10);
/// Longest a single body read may wait, however much allowance a fast start has earned
/// (Pingora's own per-read default).
pub const MAX_BODY_READ_WAIT: Duration = Duration::from_secs(60);
/// Time from a connection's first byte (or from accept) to a complete request head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once from one client address (0: no cap).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 256;

pub use crate::config::limits::{PINGORA_MAX_HEADERS, PINGORA_MAX_HEAD_BYTES};

pub const BODY_TOO_LARGE: Refusal = Refusal {
    status: 413,
    reason: "body_too_large",
};
/// A body a stage must inspect is larger than it may read (`proxy::body`).
pub const BODY_NOT_INSPECTABLE: Refusal = Refusal {
    status: 413,
    reason: "body_too_large_to_inspect",
};
pub const BODY_TOO_SLOW: Refusal = Refusal {
    status: 408,
    reason: "body_too_slow",
};
/// After a 101 there is no HTTP answer to give (status 0): the tunnel is closed.
pub const WEBSOCKET_MESSAGE_TOO_LARGE: Refusal = Refusal {
    status: 0,
    reason: "websocket_message_too_large",
};
pub const BAD_WEBSOCKET_FRAME: Refusal = Refusal {
    status: 0,
    reason: "bad_websocket_frame",
};

/// Limits that apply to one request: the global section with its route's overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub head: HeadLimits,
    pub max_body: u64,
    pub max_websocket_message: u64,
    /// Bytes per second; 0 turns the rate check off.
    pub min_body_rate: u64,
    pub body_rate_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(&LimitsSection::default())
    }
}

impl Limits {
    pub fn new(s: &LimitsSection) -> Limits {
        Limits {
            head: HeadLimits {
                max_uri: s.max_uri_length.map_or(DEFAULT_MAX_URI_LENGTH, |b| b.0 as usize),
                max_header_bytes: s.max_header_bytes.map_or(DEFAULT_MAX_HEADER_BYTES, |b| b.0 as usize),
                max_headers: s.max_headers.unwrap_or(DEFAULT_MAX_HEADERS),
            },
            max_body: s.max_body.map_or(DEFAULT_MAX_BODY, |b| b.0),
            max_websocket_message: s.max_websocket_message.map_or(DEFAULT_MAX_WEBSOCKET_MESSAGE, |b| b.0),
            min_body_rate: s.min_body_rate.map_or(DEFAULT_MIN_BODY_RATE, |b| b.0),
            body_rate_grace: s.body_rate_grace.map_or(DEFAULT_BODY_RATE_GRACE, |d| d.0),
        }
    }

    /// These limits with a route's overrides applied (body limits only).
    pub fn with(mut self, r: Option<&RouteLimitsSection>) -> Limits {
        let Some(r) = r else { return self };
        if let Some(v) = r.max_body {
            self.max_body = v.0;
        }
        if let Some(v) = r.max_websocket_message {
            self.max_websocket_message = v.0;
        }
        if let Some(v) = r.min_body_rate {
            self.min_body_rate = v.0;
        }
        if let Some(v) = r.body_rate_grace {
            self.body_rate_grace = v.0;
        }
        self
    }
}

/// Connection-level limits, read when a connection is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    /// 0: no cap.
    pub max_connections_per_ip: u32,
}

impl ConnLimits {
    pub fn new(s: &LimitsSection) -> ConnLimits {
        ConnLimits {
            header_timeout: s.header_timeout.map_or(DEFAULT_HEADER_TIMEOUT, |d| d.0),
            max_connections_per_ip: s.max_connections_per_ip.unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_IP),
        }
    }
}

/// What one request has sent so far, against its limits.
#[derive(Debug, Default)]
pub struct Intake {
    limits: Option<Limits>,
    body: u64,
    started: Option<Instant>,
    ws: Option<WsMeter>,
}

impl Intake {
    /// Start counting under `limits` at `now` (request_filter).
    pub fn new(limits: Limits, now: Instant) -> Intake {
        Intake {
            limits: Some(limits),
            body: 0,
            started: Some(now),
            ws: None,
        }
    }

    /// Refuse up front a body declared larger than the cap.
    pub fn check_declared(&self, content_length: Option<u64>) -> Result<(), Refusal> {
        match (self.limits, content_length) {
            (Some(l), Some(n)) if n > l.max_body => Err(BODY_TOO_LARGE),
            _ => Ok(()),
        }
    }

    /// How long the first body read may take (the grace period), or `None` without a rate check.
    pub fn first_read_timeout(&self) -> Option<Duration> {
        self.limits.filter(|l| l.min_body_rate > 0).map(|l| l.body_rate_grace)
    }

    /// Count `n` more body bytes received at `now`. Returns how long the next read may take
    /// for the client to stay above the minimum rate (`None`: no rate check).
    ///
    /// The allowance is Apache mod_reqtimeout's: `grace + bytes / min_rate` from the start, so
    /// each byte received buys the client a little more time.
    pub fn on_body(&mut self, n: usize, now: Instant) -> Result<Option<Duration>, Refusal> {
        let Some(l) = self.limits else { return Ok(None) };
        self.body = self.body.saturating_add(n as u64);
        if self.body > l.max_body {
            return Err(BODY_TOO_LARGE);
        }
        let (Some(start), true) = (self.started, l.min_body_rate > 0) else {
            return Ok(None);
        };
        let earned = Duration::from_secs_f64(self.body as f64 / l.min_body_rate as f64);
        let deadline = start + l.body_rate_grace + earned;
        match deadline.checked_duration_since(now) {
            Some(left) if !left.is_zero() => Ok(Some(left.min(MAX_BODY_READ_WAIT))),
            _ => Err(BODY_TOO_SLOW),
        }
    }

    /// The WebSocket message cap of this request, once limits apply.
    pub fn max_websocket_message(&self) -> Option<u64> {
        self.limits.map(|l| l.max_websocket_message)
    }

    /// Meter bytes a client sends through an upgraded (WebSocket) connection.
    pub fn on_tunnel(&mut self, bytes: &[u8]) -> Result<(), Refusal> {
        let Some(l) = self.limits else { return Ok(()) };
        self.ws
            .get_or_insert_with(|| WsMeter::new(l.max_websocket_message))
            .feed(bytes)
    }
}

/// Reads WebSocket frame headers (RFC 6455 section 5.2) in a client's byte stream, across any
/// chunking, and refuses a message whose frames announce more payload than the cap. Payload
/// bytes are skipped, not inspected; control frames are not part of a message.
///
/// With permessage-deflate the cap applies to the compressed bytes on the wire.
#[derive(Debug, Clone)]
pub struct WsMeter {
    limit: u64,
    /// Payload announced so far by the frames of the current message.
    message: u64,
    header: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    left: u64,
}

impl WsMeter {
    pub fn new(limit: u64) -> WsMeter {
        WsMeter {
            limit,
            message: 0,
            header: [0; 14],
            have: 0,
            left: 0,
        }
    }

    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Refusal> {
        while !bytes.is_empty() {
            if self.left > 0 {
                let skip = self.left.min(bytes.len() as u64);
                self.left -= skip;
                bytes = &bytes[skip as usize..];
                continue;
            }
            let need = self.header_len();
            let take = (need - self.have).min(bytes.len());
            self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            // The length is only known once the first two bytes are in.
            if self.have == need && need == self.header_len() {
                self.frame()?;
            }
        }
        Ok(())
    }

    fn header_len(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let ext = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + ext + mask
    }

    fn frame(&mut self) -> Result<(), Refusal> {
        let h = &self.header;
        let fin = h[0] & 0x80 != 0;
        let opcode = h[0] & 0x0f;
        let len = match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            n => u64::from(n),
        };
        self.have = 0;
        self.left = len;
        match opcode {
            // Control frames: short and never fragmented.
            0x8..=0xA if fin && len <= 125 => Ok(()),
            0x8..=0xA => Err(BAD_WEBSOCKET_FRAME),
            0x0..=0x2 => {
                if len >> 63 != 0 {
                    return Err(BAD_WEBSOCKET_FRAME);
                }
                if opcode != 0 {
                    self.message = 0;
                }
                self.message = self.message.saturating_add(len);
                if self.message > self.limit {
                    return Err(WEBSOCKET_MESSAGE_TOO_LARGE);
                }
                if fin {
                    self.message = 0;
                }
                Ok(())
            }
            _ => Err(BAD_WEBSOCKET_FRAME),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame with `len` payload bytes.
    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        match len {
            0..=125 => f.push(0x80 | len as u8),
            126..=65535 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(0x55, len));
        f
    }

    fn feed_in_pieces(m: &mut WsMeter, bytes: &[u8], piece: usize) -> Result<(), Refusal> {
        bytes.chunks(piece).try_for_each(|c| m.feed(c))
    }

    #[test]
    fn messages_under_the_cap_pass_however_they_are_chunked() {
        let mut stream = frame(true, 1, 100);
        stream.extend(frame(false, 2, 300));
        stream.extend(frame(true, 9, 4)); // a ping inside a fragmented message
        stream.extend(frame(true, 0, 700)); // 1000 in all
        stream.extend(frame(true, 2, 70_000 - 69_000));
        for piece in [1, 2, 3, 7, 64, 4096] {
            let mut m = WsMeter::new(1000);
            assert_eq!(feed_in_pieces(&mut m, &stream, piece), Ok(()), "piece {piece}");
        }
    }

    #[test]
    fn a_message_over_the_cap_is_refused_at_its_frame_header() {
        let mut m = WsMeter::new(1000);
        assert_eq!(m.feed(&frame(true, 1, 1001)[..8]), Err(WEBSOCKET_MESSAGE_TOO_LARGE));
        let mut m = WsMeter::new(1000);
        let mut stream = frame(false, 2, 600);
        stream.extend(frame(true, 0, 401));
        assert_eq!(feed_in_pieces(&mut m, &stream, 5), Err(WEBSOCKET_MESSAGE_TOO_LARGE));
        let mut m = WsMeter::new(u64::MAX);
        assert_eq!(m.feed(&frame(true, 2, 1 << 20)[..14]), Ok(()));
    }

    #[test]
    fn malformed_frames_are_refused() {
        for bad in [frame(false, 9, 1), frame(true, 8, 126), frame(true, 3, 1)] {
            assert_eq!(WsMeter::new(1 << 30).feed(&bad), Err(BAD_WEBSOCKET_FRAME));
        }
        let mut huge = vec![0x82, 0x80 | 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert_eq!(WsMeter::new(u64::MAX).feed(&huge), Err(BAD_WEBSOCKET_FRAME));
    }

    fn limits() -> Limits {
        Limits {
            max_body: 1000,
            min_body_rate: 100,
            body_rate_grace: Duration::from_secs(2),
            ..Limits::default()
        }
    }

    #[test]
    fn body_cap_from_declared_length_and_from_counted_bytes() {
        let t0 = Instant::now();
        let mut i = Intake::new(limits(), t0);
        assert_eq!(i.check_declared(Some(1001)), Err(BODY_TOO_LARGE));
        assert_eq!(i.check_declared(Some(1000)), Ok(()));
        assert_eq!(i.check_declared(None), Ok(()));
        assert!(i.on_body(600, t0).is_ok());
        assert!(i.on_body(400, t0).is_ok());
        assert_eq!(i.on_body(1, t0), Err(BODY_TOO_LARGE));
        // Without limits (a request that never reached request_filter) nothing is counted.
        assert_eq!(Intake::default().on_body(usize::MAX, t0), Ok(None));
    }

    #[test]
    fn minimum_body_rate_with_an_injected_clock() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut i = Intake::new(limits(), t0);
        assert_eq!(i.first_read_timeout(), Some(s(2)));
        // 100 bytes buy one more second beyond the 2 s grace.
        assert_eq!(i.on_body(100, t0 + s(1)), Ok(Some(s(2))));
        assert_eq!(
            i.on_body(0, t0 + s(3) - Duration::from_millis(1)),
            Ok(Some(Duration::from_millis(1)))
        );
        assert_eq!(i.on_body(0, t0 + s(3)), Err(BODY_TOO_SLOW));
        // A fast start earns a long allowance, but no single read waits longer than a minute.
        let big = Limits {
            max_body: 1 << 30,
            ..limits()
        };
        assert_eq!(Intake::new(big, t0).on_body(100_000, t0), Ok(Some(MAX_BODY_READ_WAIT)));
        let off = Limits {
            min_body_rate: 0,
            ..limits()
        };
        let mut i = Intake::new(off, t0);
        assert_eq!(i.first_read_timeout(), None);
        assert_eq!(i.on_body(1, t0 + s(3600)), Ok(None));
    }

    #[test]
    fn route_overrides_replace_only_what_they_name() {
        let route = RouteLimitsSection {
            max_body: Some(crate::config::types::ByteSize(5)),
            ..Default::default()
        };
        let l = Limits::default().with(Some(&route));
        assert_eq!(l.max_body, 5);
        assert_eq!(l.head, Limits::default().head);
        assert_eq!(Limits::default().with(None), Limits::default());
    }
}
