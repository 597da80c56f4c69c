//! Why the relay fails a WebSocket connection, and the close code each failure gets
//! (RFC 6455 section 7.4.1).

use super::{CLOSE_INVALID_PAYLOAD, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG};

/// Why a byte stream is not a valid RFC 6455 stream for this relay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// RSV1–3 set. No extension is negotiated (the proxy strips `Sec-WebSocket-Extensions`, so
    /// permessage-deflate's RSV1 is as foreign as any other).
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("unmasked frame from the client")]
    Unmasked,
    #[error("masked frame from the server")]
    MaskedFromServer,
    #[error("fragmented control frame")]
    FragmentedControl,
    #[error("control frame payload over 125 bytes")]
    ControlTooLong,
    #[error("continuation frame without a message to continue")]
    ContinuationWithoutStart,
    #[error("new data frame inside a fragmented message")]
    DataWhileFragmented,
    /// RFC 6455 section 5.2: the most significant bit of a 64-bit length must be 0.
    #[error("64-bit length with its top bit set")]
    BadLength,
    #[error("close frame with a 1-byte payload")]
    BadClosePayload,
    #[error("message over {limit} bytes")]
    TooBig { limit: usize },
    #[error("message in more than {limit} fragments")]
    TooManyFragments { limit: usize },
    #[error("text that is not UTF-8")]
    BadUtf8,
}

impl FrameError {
    /// The close code RFC 6455 section 7.4.1 gives this failure.
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TooBig { .. } | FrameError::TooManyFragments { .. } => CLOSE_TOO_BIG,
            FrameError::BadUtf8 => CLOSE_INVALID_PAYLOAD,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }

    /// The short reason put in the close frame: a label, never peer bytes.
    pub(super) fn reason(&self) -> &'static str {
        match self.close_code() {
            CLOSE_TOO_BIG => "message too big",
            CLOSE_INVALID_PAYLOAD => "invalid utf-8",
            _ => "protocol error",
        }
    }
}

/// What failed the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    Frame(FrameError),
    /// The judge said `Close`, with this reason.
    Policy(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The code sent in both close frames.
    pub code: u16,
    pub cause: Cause,
}
