//! The configuration loader on arbitrary text: YAML, the section-by-section structure errors,
//! then the cross-field checks. It must never panic, and every error must print.
//! File reads (certificates, the admin token) are left out: a fuzzer could name /dev/zero.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use palisade::config::error::Collector;
use palisade::config::file::ConfigFile;
use palisade::config::load::parse_sections;
use palisade::config::locate::Locator;
use palisade::config::validate;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let file = Path::new("fuzz.yaml");
    let locator = Locator::new(source);
    let mut errors = Vec::new();
    let parsed = parse_sections::<ConfigFile>(source, &["upstreams"], &mut Collector::new(file, &locator, &mut errors));
    if let Some(mut p) = parsed {
        for l in &mut p.value.listeners {
            l.tls = None;
        }
        if let Some(a) = &mut p.value.admin {
            a.token_file = None;
        }
        if p.broken.is_empty() {
            validate::config(&p.value, &mut Collector::new(file, &locator, &mut errors));
        }
    }
    for e in &errors {
        let _ = e.to_string();
    }
});
