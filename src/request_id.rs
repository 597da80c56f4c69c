//! The request id: made or accepted in request_filter, carried by the answers, the forwarded
//! request, the response and the telemetry record. A leaf value type both `proxy` and
//! `telemetry` use.

use bytes::Bytes;
use http::HeaderValue;

/// Longest incoming request id that is kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// An incoming request id is kept only if it is short and plain (it ends up in logs).
pub fn acceptable_request_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN && v.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

/// A fresh request id: 128 random bits in hex. The digits are written into the one allocation
/// that also holds the reference count.
pub fn new_request_id() -> RequestId {
    let mut digits = [0u8; 32];
    hex::encode_to_slice(fastrand::u128(..).to_be_bytes(), &mut digits).expect("16 bytes are 32 hex digits");
    RequestId(Bytes::from_owner(digits))
}

/// A request id: text made once per request and then shared by reference count, by the
/// answers, the forwarded request and response headers (`header_value`) and the telemetry
/// record, instead of copied into each of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestId(Bytes);

impl RequestId {
    pub fn as_str(&self) -> &str {
        // Made from `str` only; the check cannot fail.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The id as a header value sharing its bytes. Fails for text a header cannot carry, which
    /// ids from `new_request_id` or accepted by `acceptable_request_id` never are.
    pub fn header_value(&self) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
        HeaderValue::from_maybe_shared(self.0.clone())
    }
}

impl From<String> for RequestId {
    fn from(s: String) -> Self {
        RequestId(Bytes::from(s))
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
