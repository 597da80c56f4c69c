//! WebSocket frame headers and encoding (RFC 6455 section 5.2) for the relay filter: decoding a
//! header once its bytes are in, masking, and building the frames the proxy itself sends.

/// Longest frame header: 2 bytes, a 64-bit length, a masking key.
pub const MAX_HEAD: usize = 14;
/// Longest control frame payload (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Longest close reason: the control payload less the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// `None` for the reserved opcodes 3–7 and 11–15.
    pub fn from_u8(b: u8) -> Option<Opcode> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A decoded frame header. The opcode stays raw so that the relay can name a reserved one in
/// its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub fin: bool,
    /// RSV1–3 as the top three bits of the first byte, unshifted.
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
    /// Bytes of header on the wire (2 to 14).
    pub head_len: usize,
}

/// Header length announced by the first two header bytes (`first_two.len() >= 2`).
pub(super) fn head_len(first_two: &[u8]) -> usize {
    let b1 = first_two.get(1).copied().unwrap_or(0);
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
}

/// Decode a complete header: `h` holds exactly `head_len(h)` bytes.
pub(super) fn parse_head(h: &[u8]) -> Head {
    let at = |i: usize| h.get(i).copied().unwrap_or(0);
    let (len, mut i) = match at(1) & 0x7f {
        126 => (u64::from(u16::from_be_bytes([at(2), at(3)])), 4),
        127 => {
            let mut b = [0u8; 8];
            for (k, v) in b.iter_mut().enumerate() {
                *v = at(2 + k);
            }
            (u64::from_be_bytes(b), 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if at(1) & 0x80 != 0 {
        let k = [at(i), at(i + 1), at(i + 2), at(i + 3)];
        i += 4;
        Some(k)
    } else {
        None
    };
    Head {
        fin: at(0) & 0x80 != 0,
        rsv: at(0) & 0x70,
        opcode: at(0) & 0x0f,
        mask,
        len,
        head_len: i,
    }
}

/// XOR `buf` with `key`, where `buf[0]` is byte `offset` of the frame's payload: a payload that
/// arrives in pieces is unmasked piece by piece.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut k = key;
    k.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut words = buf.chunks_exact_mut(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        w.copy_from_slice(&(u64::from_ne_bytes(b) ^ wide).to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= k[i % 4];
    }
}

/// Append a header for a frame with `len` payload bytes.
fn push_head(out: &mut Vec<u8>, fin: bool, opcode: Opcode, len: usize, mask: Option<[u8; 4]>) {
    out.push((u8::from(fin) << 7) | opcode.as_u8());
    let m = if mask.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => out.push(m | len as u8),
        126..=0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
}

/// One final (FIN) frame carrying `payload`, masked with `mask` when given.
pub fn encode_frame(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_HEAD + payload.len());
    push_head(&mut out, true, opcode, payload.len(), mask);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        apply_mask(&mut out[start..], k, 0);
    }
    out
}

/// Re-encode a frame exactly as it arrived: its original header bytes, then the unmasked
/// payload masked again with the header's own key.
pub(super) fn reencode_into(out: &mut Vec<u8>, raw_head: &[u8], payload: &[u8]) {
    out.extend_from_slice(raw_head);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = parse_head(raw_head).mask {
        apply_mask(&mut out[start..], k, 0);
    }
}

/// A fresh masking key for frames the proxy sends toward the server.
///
/// fastrand is not a cryptographic generator. Masking exists so that script-chosen bytes cannot
/// pose as another protocol to intermediaries; the frames masked here carry text the proxy
/// chose, so a fast unpredictable-enough key is the trade taken (swap in a CSPRNG through
/// `Relay::with_mask_source` if policy text may echo attacker bytes verbatim).
pub fn random_key() -> [u8; 4] {
    fastrand::u32(..).to_ne_bytes()
}

/// Can `code` be sent in a close frame? 1005, 1006 and 1015 are reserved for reporting only.
pub fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A close frame with `code` and `reason` (cut at a character boundary to fit 123 bytes),
/// masked with a fresh random key when it goes toward the server.
pub fn close_frame(code: u16, reason: &str, masked: bool) -> Vec<u8> {
    close_frame_with(code, reason, masked.then(random_key))
}

/// `close_frame` with the masking key chosen by the caller.
pub fn close_frame_with(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    encode_frame(Opcode::Close, &payload, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_at_every_length_class() {
        for (len, mask) in [
            (0, None),
            (125, Some([1, 2, 3, 4])),
            (126, None),
            (65535, Some([9; 4])),
            (65536, None),
        ] {
            let payload = vec![0x61; len];
            let f = encode_frame(Opcode::Binary, &payload, mask);
            let n = head_len(&f);
            let h = parse_head(&f[..n]);
            assert_eq!(
                (h.fin, h.rsv, h.opcode, h.mask, h.len, h.head_len),
                (true, 0, 2, mask, len as u64, n)
            );
            let mut body = f[n..].to_vec();
            if let Some(k) = mask {
                apply_mask(&mut body, k, 0);
            }
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..=255u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, whole, "split {split}");
        }
    }

    #[test]
    fn close_reason_is_cut_at_a_character_boundary() {
        let f = close_frame(1008, &"é".repeat(100), false);
        assert_eq!(f[1] as usize, f.len() - 2);
        assert!(f.len() - 2 <= MAX_CONTROL_PAYLOAD);
        assert!(std::str::from_utf8(&f[4..]).is_ok());
        assert_eq!(u16::from_be_bytes([f[2], f[3]]), 1008);
    }
}
