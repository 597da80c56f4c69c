//! Policy files on arbitrary text: parse, validate, compile, and decide two requests with the
//! result. It must never panic. List files are left out (a fuzzer could name /dev/zero).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use palisade::config::error::Collector;
use palisade::config::file::PolicyFile;
use palisade::config::load::{parse_sections, policy_from_str};
use palisade::config::locate::Locator;
use palisade::enforce::{self, RequestFacts};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let locator = Locator::new(source);
    let mut errors = Vec::new();
    let parsed =
        parse_sections::<PolicyFile>(source, &["lists"], &mut Collector::new(Path::new("p.yaml"), &locator, &mut errors));
    if parsed.is_some_and(|p| p.value.lists.values().any(|l| !l.files.is_empty())) {
        return;
    }
    let loaded = match policy_from_str("p.yaml", source, &["app", "api"]) {
        Ok(l) => l,
        Err(errors) => {
            let _ = errors.to_string();
            return;
        }
    };
    let policy = palisade::policy::compile(&[loaded], None);
    let mut headers = http::HeaderMap::new();
    headers.insert("user-agent", http::HeaderValue::from_static("curl/8"));
    headers.insert("x-account", http::HeaderValue::from_static("a1"));
    for (ip, path) in [("192.0.2.1", "/login"), ("2001:db8::1", "/api/v1/x")] {
        let facts = RequestFacts {
            client_ip: ip.parse().expect("ip"),
            method: "POST",
            host: "app.example.test",
            path,
            route: "app",
            query: Some("a=1&b"),
            headers: &headers,
            content_length: Some(10),
        };
        let v = enforce::evaluate(&policy, &facts);
        let _ = v.label();
    }
});
