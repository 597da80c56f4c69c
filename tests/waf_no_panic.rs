//! Random-input loop over decoding and inspection of the WAF tier: neither may panic, whatever
//! the bytes (a fuzz-style smoke test with a fixed seed, so failures reproduce).

use palisade::waf::decode::{decode, normalise_into, sql_view_into, DecodeLimits};
use palisade::waf::{inspect, Config, Item, Location};

/// Bytes that drive the decoders and detectors into their interesting branches.
const ALPHABET: &[u8] =
    b"%uU+&#;xX\\0123456789abcdefABCDEF<>/='\"`|$(){}[]*!-.:\n\t ?@lgtampquotjndi${}select union or and script onerror";

fn random_value(rng: &mut fastrand::Rng) -> Vec<u8> {
    let len = rng.usize(0..96);
    (0..len)
        .map(|_| match rng.u8(0..10) {
            0..=6 => ALPHABET[rng.usize(..ALPHABET.len())],
            7 => rng.u8(0xC0..=0xE0),
            _ => rng.u8(..),
        })
        .collect()
}

#[test]
fn decode_and_inspect_never_panic() {
    let mut rng = fastrand::Rng::with_seed(0x5EED);
    let locations = Location::ALL;
    let config = Config::default();
    let tight = DecodeLimits {
        max_layers: 3,
        max_len: 64,
    };
    let (mut n, mut s) = (Vec::new(), Vec::new());
    for _ in 0..50_000 {
        let v = random_value(&mut rng);
        let d = decode(&v, rng.bool(), &tight);
        assert!(d.len() <= 64);
        normalise_into(&d, &mut n);
        sql_view_into(&n, &mut s);
        let name = if rng.bool() { "user-agent" } else { "q" };
        let loc = locations[rng.usize(..locations.len())];
        let r = inspect(&[Item::new(loc, name, &v)], &config);
        for f in &r.findings {
            assert!(f.excerpt.len() <= palisade::waf::score::EXCERPT_MAX + 3);
        }
    }
}

#[test]
fn large_and_nested_inputs_stay_bounded() {
    let config = Config::default();
    for v in [
        "${".repeat(5000),
        "%25".repeat(5000),
        "&#".repeat(5000),
        "/*".repeat(5000),
        "<a ".repeat(5000),
        "'".repeat(10_000),
        "../".repeat(5000),
    ] {
        let _ = inspect(&[Item::new(Location::QueryArg, "q", v.as_bytes())], &config);
    }
}
