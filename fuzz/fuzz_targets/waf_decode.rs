//! The WAF's decoders on arbitrary bytes: multi-layer decoding, the normalised and SQL views.
//! Invariants: output bounded by the decode limit, and no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::waf::decode::{decode, normalise_into, sql_view_into, DecodeLimits};

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    for plus in [false, true] {
        let d = decode(data, plus, &limits);
        assert!(d.len() <= limits.max_len, "decoding is bounded");
        let mut norm = Vec::new();
        normalise_into(&d, &mut norm);
        let mut sql = Vec::new();
        sql_view_into(&norm, &mut sql);
    }
});
