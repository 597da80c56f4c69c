//! Detection and false-positive rates of the WAF tier over the crate's own corpora; prints a
//! per-class table (run with `--nocapture` to see it).

mod waf_corpus;

use palisade::waf::{inspect, Config, Item, Location, Report};
use waf_corpus::{attacks, benign};

fn run(location: Location, name: &str, value: &str) -> Report {
    inspect(&[Item::new(location, name, value.as_bytes())], &Config::default())
}

fn describe(r: &Report) -> String {
    r.findings
        .iter()
        .map(|f| format!("{}[{}]", f.rule, f.excerpt))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn detection_rate_per_class() {
    let classes = attacks::all();
    let mut failed = Vec::new();
    println!("{:<10} {:>5} {:>8} {:>7}", "class", "cases", "detected", "rate");
    for class in &classes {
        assert!(
            class.cases.len() >= 40,
            "{} has only {} cases",
            class.name,
            class.cases.len()
        );
        let mut hit = 0;
        for &(loc, name, value) in &class.cases {
            let r = run(loc, name, value);
            if r.over_threshold && class.accept.iter().any(|a| r.has(a)) {
                hit += 1;
            } else {
                println!(
                    "  MISS {:<9} {value:?} -> score {} {}",
                    class.name,
                    r.score,
                    describe(&r)
                );
            }
        }
        let rate = hit as f64 / class.cases.len() as f64;
        println!(
            "{:<10} {:>5} {:>8} {:>6.1}%",
            class.name,
            class.cases.len(),
            hit,
            rate * 100.0
        );
        if rate < 0.95 {
            failed.push(class.name);
        }
    }
    assert!(failed.is_empty(), "detection below 95% for {failed:?}");
}

#[test]
fn scanner_paths_are_weak_signals() {
    for p in attacks::SCANNER_PATHS {
        let r = run(Location::Path, "path", p);
        assert!(r.has("scanner.path"), "{p}: {}", describe(&r));
        assert!(
            !r.over_threshold || r.findings.iter().any(|f| f.rule != "scanner.path"),
            "{p} blocked on its own"
        );
    }
}

#[test]
fn false_positive_rate_on_benign() {
    let cases = benign::near_miss_cases();
    let mut blocked = 0;
    let mut any = 0;
    for &(loc, name, value) in &cases {
        let r = run(loc, name, value);
        if r.over_threshold {
            blocked += 1;
            println!("  FP (blocked) {loc:?} {value:?} -> {}", describe(&r));
        } else if !r.findings.is_empty() {
            any += 1;
            println!("  FP (finding) {loc:?} {value:?} -> {}", describe(&r));
        }
    }
    let rate = blocked as f64 / cases.len() as f64;
    println!(
        "benign: {} cases, {blocked} over threshold ({:.2}%), {any} more with a sub-threshold finding",
        cases.len(),
        rate * 100.0
    );
    assert!(cases.len() >= 150);
    assert!(rate <= 0.02, "false-positive rate {:.2}% > 2%", rate * 100.0);
}

#[test]
fn no_findings_on_real_user_agents_and_paths() {
    let mut bad = Vec::new();
    for ua in benign::USER_AGENTS {
        let r = run(Location::Header, "user-agent", ua);
        if !r.findings.is_empty() {
            bad.push(format!("UA {ua:?}: {}", describe(&r)));
        }
    }
    for p in benign::PATHS {
        let r = run(Location::Path, "path", p);
        if !r.findings.is_empty() {
            bad.push(format!("path {p:?}: {}", describe(&r)));
        }
    }
    println!(
        "user agents: {} clean of {}; paths: {} cases",
        benign::USER_AGENTS.len() - bad.len().min(benign::USER_AGENTS.len()),
        benign::USER_AGENTS.len(),
        benign::PATHS.len()
    );
    assert!(bad.is_empty(), "{bad:#?}");
}
