//! The command-line contract other tooling relies on: `palisade -c FILE` is `run`, the
//! `--upstream` shortcut runs on the embedded default policy, and nothing to serve is an error.

mod common;
use common::*;

use std::process::{Command, Stdio};

#[test]
fn upstream_shortcut_runs_on_the_embedded_default_policy() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let dir = tempfile::tempdir().expect("dir");
    let listen = free_addr();
    let upstream = origin.addr.expect("addr").to_string();
    let _running = run_with_args(
        dir.path(),
        &[
            "--upstream",
            &upstream,
            "--listen",
            &listen.to_string(),
            "--telemetry",
            "off",
        ],
        listen,
    );
    let c = client();
    assert_eq!(
        c.get(format!("http://{listen}/hello")).send().expect("req").status(),
        200
    );
    assert_eq!(
        c.get(format!("http://{listen}/.git/config"))
            .send()
            .expect("req")
            .status(),
        403
    );
    assert_eq!(origin.seen_path("/hello").len(), 1);
    assert!(origin.seen_path("/.git").is_empty());
}

#[test]
fn bare_dash_c_is_run() {
    let origin = Origin::spawn("127.0.0.1:0").expect("origin");
    let mut p = Proxy::start(&single_pool(&origin), &[]);
    // Restart the same configuration with the bare form, `palisade -c FILE`.
    if let Some(mut c) = p.child.take() {
        c.kill().expect("kill");
        c.wait().expect("wait");
    }
    std::fs::write(&p.log, "").expect("truncate log");
    let cfg = p.config.display().to_string();
    p.child = Some(p.spawn(&["-c", &cfg], &[]));
    p.wait_ready();
    assert_eq!(client().get(p.url("/bare")).send().expect("req").status(), 200);
    assert_eq!(origin.seen_path("/bare").len(), 1);
}

#[test]
fn nothing_to_serve_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("give a configuration (-c palisade.yaml) or at least --upstream"),
        "{err}"
    );
}

/// `run -u` only takes the sockets over; the help must not promise that it signals the old
/// process (the operator, deploy/upgrade.sh or systemd sends SIGQUIT).
#[test]
fn run_help_says_the_operator_sends_sigquit() {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["run", "--help"])
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    let upgrade = help
        .lines()
        .find(|l| l.contains("--upgrade"))
        .unwrap_or_else(|| panic!("{help}"));
    assert!(upgrade.contains("does not signal the old one"), "{upgrade}");
    assert!(upgrade.contains("SIGQUIT yourself"), "{upgrade}");
}
