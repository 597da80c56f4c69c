//! The request-head checker and the WebSocket frame meter on arbitrary bytes. Neither may
//! panic; an accepted head has only CRLF line endings; the meter decides the same however the
//! bytes are split into chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::traffic::framing::{check_head, HeadLimits};
use palisade::traffic::limits::WsMeter;

const LIMITS: HeadLimits = HeadLimits {
    max_uri: 256,
    max_header_bytes: 1024,
    max_headers: 16,
};

fuzz_target!(|data: &[u8]| {
    if check_head(data, &LIMITS).is_ok() {
        for (i, b) in data.iter().enumerate() {
            if *b == b'\n' {
                assert!(i > 0 && data[i - 1] == b'\r', "bare LF accepted at {i}");
            }
        }
    }
    let Some((&first, rest)) = data.split_first() else { return };
    let limit = u64::from(first) * 16;
    let mut whole = WsMeter::new(limit);
    let one = whole.feed(rest);
    let cut = rest.len() * usize::from(first) / 256;
    let mut split = WsMeter::new(limit);
    let two = split.feed(&rest[..cut]).and_then(|()| split.feed(&rest[cut..]));
    assert_eq!(one, two, "chunking changed the decision at {cut}");
});
