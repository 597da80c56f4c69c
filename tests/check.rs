//! `palisade check`, the operator's `nginx -t`: exit status, and every error named with its
//! file, line, column and field path in one run.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Output};

/// Write `files` into a fresh directory and run `palisade check -c DIR/palisade.yaml`.
fn check(files: &[(&str, &str)]) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write fixture");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "-c"])
        .arg(dir.path().join("palisade.yaml"))
        .output()
        .expect("run palisade check");
    (dir, out)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `error:` line about `field` and its `(file name, line, column)`.
fn error_at(err: &str, field: &str) -> (String, usize, usize, String) {
    let needle = format!(": field `{field}`: ");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: ") && l.contains(&needle))
        .unwrap_or_else(|| panic!("no error for field `{field}` in:\n{err}"));
    let place = &line["error: ".len()..line.find(&needle).expect("needle")];
    let mut parts = place.rsplitn(3, ':');
    let col: usize = parts
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no column in {line}"));
    let row: usize = parts
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no line in {line}"));
    let file = parts.next().expect("file");
    let name = Path::new(file)
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    (name, row, col, line.to_string())
}

/// Assert an error for `field` in `file` at `line`, whose message contains `says`.
fn assert_error(err: &str, file: &str, line: usize, field: &str, says: &str) {
    let (f, l, col, text) = error_at(err, field);
    assert_eq!((f.as_str(), l), (file, line), "wrong place in {text}");
    assert!(col >= 1, "{text}");
    assert!(text.contains(says), "{text:?} should say {says:?}");
}

const VALID: &str = "\
listeners:
  - address: 127.0.0.1:8080
trusted_proxies: [10.0.0.0/8]
upstreams:
  app:
    backends: [\"127.0.0.1:9000\"]
    health_check: {kind: http, path: /healthz, interval: 2s}
routes:
  - name: app
    upstream: app
    timeouts: {read: 5s}
policies: [policy.yaml]
telemetry:
  sink: off
";

const VALID_POLICY: &str = "\
lists:
  bad:
    cidrs: [192.0.2.0/24]
    files: [bad.txt]
rules:
  - id: deny-bad
    match: {ip_lists: [bad]}
    action: block
limits:
  - id: per-ip
    requests: 100
    per: 1s
";

#[test]
fn a_valid_configuration_passes() {
    let (_dir, out) = check(&[
        ("palisade.yaml", VALID),
        ("policy.yaml", VALID_POLICY),
        ("bad.txt", "# scanners\n198.51.100.7\n2001:db8::/32  # v6 too\n"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        stderr(&out)
    );
    assert!(stdout.contains("configuration ok"), "{stdout}");
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
}

#[test]
fn every_error_of_the_config_and_its_policies_is_reported_at_once() {
    // palisade.yaml parses, but a route names a pool that does not exist (line 9).
    let config = "\
listeners:
  - address: 127.0.0.1:8080
upstreams:
  app:
    backends: [\"127.0.0.1:9000\"]
routes:
  - name: app
    path_prefix: /
    upstream: nowhere
policies: [broken.yaml, refs.yaml]
";
    // Each broken section of a policy is reported, not only the first.
    let broken = "\
lists:
  bad:
    cidrs: [192.0.2.0/24, 10.0.0.300]
rules:
  - id: ok-rule
    match: {path_prefix: [/admin]}
    action: block
    severity: high
limits:
  - id: per-ip
    requests: 10
    per: 5 parsecs
";
    let refs = "\
rules:
  - id: deny-unknown
    match:
      ip_lists: [no-such-list]
    action: block
  - id: deny-unknown
    match: {path_prefix: [/x]}
    action: block
";
    let (_dir, out) = check(&[("palisade.yaml", config), ("broken.yaml", broken), ("refs.yaml", refs)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_error(
        &err,
        "palisade.yaml",
        9,
        "routes[0].upstream",
        "no upstream pool named \"nowhere\"",
    );
    assert_error(
        &err,
        "broken.yaml",
        3,
        "lists.bad.cidrs[1]",
        "invalid IP address or CIDR \"10.0.0.300\"",
    );
    assert_error(&err, "broken.yaml", 8, "rules[0].severity", "unknown field `severity`");
    assert_error(
        &err,
        "broken.yaml",
        12,
        "limits[0].per",
        "invalid duration \"5 parsecs\"",
    );
    assert_error(
        &err,
        "refs.yaml",
        4,
        "rules[0].match.ip_lists[0]",
        "no list named \"no-such-list\"",
    );
    assert_error(&err, "refs.yaml", 6, "rules[1].id", "\"deny-unknown\" is already used");
    assert!(
        err.contains("configuration has 6 error(s)"),
        "exactly the six errors, no noise:\n{err}"
    );
}

#[test]
fn every_structural_error_of_one_file_is_reported() {
    let config = "\
listeners:
  - address: 127.0.0.1:8080
    bogus_key: 1
upstreams:
  app:
    backends: [\"127.0.0.1:9000\"]
routes:
  - name: app
    upstream: app
    timeouts:
      read: 5 parsecs
telemetry:
  sink: carrier-pigeon
";
    let (_dir, out) = check(&[("palisade.yaml", config)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_error(
        &err,
        "palisade.yaml",
        3,
        "listeners[0].bogus_key",
        "unknown field `bogus_key`",
    );
    assert_error(
        &err,
        "palisade.yaml",
        11,
        "routes[0].timeouts.read",
        "invalid duration \"5 parsecs\"",
    );
    assert_error(&err, "palisade.yaml", 13, "telemetry.sink", "carrier-pigeon");
    assert!(err.contains("configuration has 3 error(s)"), "{err}");
}

#[test]
fn a_yaml_syntax_error_names_file_and_line() {
    let config = "\
listeners:
  - address: 127.0.0.1:8080
upstreams:
  app:
    backends: [\"127.0.0.1:9000\"
routes:
  - name: app
    upstream: app
";
    let (_dir, out) = check(&[("palisade.yaml", config)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // The flow sequence opened on line 5 is found unclosed where the next key starts.
    let line = err
        .lines()
        .find(|l| l.contains("invalid YAML"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.starts_with("error: ") && line.contains("/palisade.yaml:6:1: invalid YAML"),
        "{line}"
    );
    assert!(
        line.contains("line 5"),
        "the message points at the opening bracket: {line}"
    );
}

#[test]
fn a_yaml_syntax_error_in_a_policy_names_the_policy() {
    let policy = "rules:\n  - id: a\n    match: {path_prefix: [/x]\n    action: block\n";
    let (_dir, out) = check(&[("palisade.yaml", VALID), ("policy.yaml", policy)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("invalid YAML"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("/policy.yaml:4:5: invalid YAML"), "{line}");
    assert!(err.contains("configuration has 1 error(s)"), "{err}");
}

#[test]
fn a_bad_line_in_a_list_file_names_that_file_and_line() {
    let (_dir, out) = check(&[
        ("palisade.yaml", VALID),
        ("policy.yaml", VALID_POLICY),
        (
            "bad.txt",
            "# scanners\n198.51.100.7\n\n10.0.0.999  # typo\n2001:db8::/32\n",
        ),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_error(
        &err,
        "bad.txt",
        4,
        "lists.bad",
        "invalid IP address or CIDR \"10.0.0.999\"",
    );
    assert!(err.contains("configuration has 1 error(s)"), "{err}");
}

#[test]
fn a_missing_policy_file_is_an_error() {
    let (_dir, out) = check(&[("palisade.yaml", VALID)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("policy.yaml") && l.contains("cannot read file")),
        "{err}"
    );
}

#[test]
fn run_refuses_to_start_with_what_check_refuses() {
    let listen = free_addr();
    let config = format!(
        "listeners:\n  - address: {listen}\nupstreams:\n  app:\n    backends: [\"127.0.0.1:9\"]\nroutes:\n  - name: app\n    upstream: nowhere\ntelemetry:\n  sink: off\n"
    );
    let (dir, checked) = check(&[("palisade.yaml", &config)]);
    assert_eq!(checked.status.code(), Some(1));
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["run", "-c"])
        .arg(dir.path().join("palisade.yaml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start palisade run");
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("palisade run started with a configuration check refuses");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("read stderr");
    assert_eq!(status.code(), Some(1), "{err}");
    assert_error(
        &err,
        "palisade.yaml",
        8,
        "routes[0].upstream",
        "no upstream pool named \"nowhere\"",
    );
    assert!(
        std::net::TcpStream::connect(listen).is_err(),
        "nothing may listen after a refused start"
    );
}

/// One structural error in palisade.yaml does not hide the other files' errors: the policies
/// are still read and checked.
#[test]
fn a_typo_in_the_config_does_not_hide_policy_errors() {
    let config = "\
listeners:
  - address: 127.0.0.1:8080
    bogus_key: 1
upstreams:
  app:
    backends: [\"127.0.0.1:9000\"]
routes:
  - name: app
    upstream: app
policies: [policy.yaml]
";
    let policy = "rules:\n  - id: a\n    match: {ip_lists: [nope]}\n    action: block\n";
    let (_dir, out) = check(&[("palisade.yaml", config), ("policy.yaml", policy)]);
    let err = stderr(&out);
    assert_error(
        &err,
        "palisade.yaml",
        3,
        "listeners[0].bogus_key",
        "unknown field `bogus_key`",
    );
    assert_error(
        &err,
        "policy.yaml",
        3,
        "rules[0].match.ip_lists[0]",
        "no list named \"nope\"",
    );
}

/// An identity is pseudonymised everywhere: telemetry may not record the header that carries
/// it, and a configured identity key must be readable and long enough.
#[test]
fn identity_settings_that_would_leak_or_break_pseudonyms_are_refused() {
    let config = VALID.replace(
        "telemetry:\n  sink: off\n",
        "telemetry:\n  sink: off\n  headers: [referer, X-Account-Id]\nstate:\n  path: offenders.json\n  identity_key_file: identity.key\n",
    );
    let policy = "offenders:\n  strikes: 3\n  window: 60s\n  ban_for: 10m\n  identity: header:x-account-id\n";
    let (_dir, out) = check(&[
        ("palisade.yaml", &config),
        ("policy.yaml", policy),
        ("identity.key", "too short\n"),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_error(
        &err,
        "policy.yaml",
        5,
        "offenders.identity",
        "telemetry.headers records \"x-account-id\" in clear",
    );
    assert_error(
        &err,
        "palisade.yaml",
        18,
        "state.identity_key_file",
        "the key must be at least 16 bytes",
    );
    assert!(err.contains("configuration has 2 error(s)"), "{err}");
}

/// Run `palisade check` on each fixture of `tests/fixtures/{kind}/{valid,invalid}/`: a valid
/// one passes, an invalid one reports exactly the errors in its `.expected` file (one per
/// line: `LINE<TAB>FIELD<TAB>TEXT`), however many share one mapping.
fn check_fixtures(kind: &str, as_policy: bool) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(kind);
    let mut checked = 0;
    for valid in ["valid", "invalid"] {
        let Ok(dir) = std::fs::read_dir(root.join(valid)) else {
            continue;
        };
        let mut names: Vec<_> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        names.sort();
        for fixture in names {
            let text = std::fs::read_to_string(&fixture).expect("fixture");
            let file = if as_policy { "policy.yaml" } else { "palisade.yaml" };
            let files: Vec<(&str, &str)> = if as_policy {
                vec![("palisade.yaml", VALID), ("policy.yaml", &text), ("bad.txt", "")]
            } else {
                vec![("palisade.yaml", &text)]
            };
            let (_dir, out) = check(&files);
            let err = stderr(&out);
            let name = fixture.display();
            if valid == "valid" {
                assert_eq!(out.status.code(), Some(0), "{name}:\n{err}");
            } else {
                assert_eq!(out.status.code(), Some(1), "{name}:\n{err}");
                let expected = std::fs::read_to_string(fixture.with_extension("expected")).expect("its .expected file");
                let mut n = 0;
                for want in expected.lines().filter(|l| !l.trim().is_empty()) {
                    let mut parts = want.splitn(3, '\t');
                    let (line, field, says) = (
                        parts.next().and_then(|l| l.parse().ok()).expect("LINE"),
                        parts.next().expect("FIELD"),
                        parts.next().expect("TEXT"),
                    );
                    assert_error(&err, file, line, field, says);
                    n += 1;
                }
                assert!(
                    err.contains(&format!("configuration has {n} error(s)")),
                    "{name}: exactly {n} errors:\n{err}"
                );
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn invalid_policy_fixtures_report_every_error_even_several_in_one_mapping() {
    assert!(check_fixtures("policies", true) >= 4);
}

#[test]
fn invalid_config_fixtures_report_every_error_even_several_in_one_mapping() {
    assert!(check_fixtures("config", false) >= 1);
}
