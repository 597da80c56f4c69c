//! Runs the CRS tier's typical request N times after loading the rules, so that `perf stat`
//! over two runs (N and 0) gives instructions and CPU time per request independent of how busy
//! the machine is (docs/waf.md "Cost"):
//!
//!   perf stat -e instructions:u,task-clock target/release/examples/crs_cost clean 2000
//!   perf stat -e instructions:u,task-clock target/release/examples/crs_cost clean 0
//!
//! Which request: `clean`, `attack` (SQLi in a query argument, XSS in the body) or `head` (the
//! clean request without its body). Needs `libmodsecurity3` and `modsecurity-crs`.

use palisade::waf::crs::{evaluate, loaded, Settings};

include!("../benches/support/crs_typical_request.rs");

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "clean".to_owned());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let crs = loaded(&Settings::default()).expect("libmodsecurity3 and modsecurity-crs installed");
    let (clean, attack, head) = typical_requests();
    let req = match which.as_str() {
        "attack" => attack,
        "head" => head,
        _ => clean,
    };
    let mut matches = 0;
    for _ in 0..n {
        matches += evaluate(&crs, std::hint::black_box(&req)).len();
    }
    println!("{which}: {n} requests, {matches} matches");
}
