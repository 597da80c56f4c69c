//! `deploy/palisade.yaml` works where `deploy/palisade.service` installs it: the files are laid
//! out in a temporary root as the unit's install steps put them (`/etc/palisade/palisade.yaml`,
//! the shipped policies under `/etc/palisade/policies/`), and `palisade check` runs on the
//! path `ExecStart=` names. The TLS certificate files are the only thing allowed to be missing,
//! as `make check-policies` allows.

mod common;
use common::copy_dir;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `palisade check -c config`: exit code and the error lines other than missing certificates.
fn check(config: &Path) -> (Option<i32>, Vec<String>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "-c"])
        .arg(config)
        .output()
        .expect("run check");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let other = err
        .lines()
        .filter(|l| {
            let certificate = l.contains(".tls.certificates[") && l.contains("No such file or directory");
            let count = l.starts_with("configuration has ");
            !certificate && !count && !l.trim().is_empty()
        })
        .map(str::to_string)
        .collect();
    (out.status.code(), other, err)
}

#[test]
fn the_shipped_config_checks_at_the_path_the_unit_installs_it_to() {
    let unit = std::fs::read_to_string(repo().join("deploy/palisade.service")).expect("unit");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart=");
    let installed = exec
        .split_whitespace()
        .skip_while(|w| *w != "-c")
        .nth(1)
        .expect("ExecStart= names the config with -c");
    assert_eq!(installed, "/etc/palisade/palisade.yaml");
    // The unit's install steps put the shipped policies beside it.
    for step in [
        "deploy/palisade.yaml /etc/palisade/palisade.yaml",
        "policies/*.yaml /etc/palisade/policies/",
        "policies/lists/* /etc/palisade/policies/lists/",
    ] {
        assert!(unit.contains(step), "the unit's install steps lack {step:?}");
    }

    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join(installed.trim_start_matches('/'));
    let etc = config.parent().expect("config dir");
    std::fs::create_dir_all(etc).expect("mkdir");
    std::fs::copy(repo().join("deploy/palisade.yaml"), &config).expect("install config");
    copy_dir(&repo().join("policies"), &etc.join("policies"));

    let (code, other, err) = check(&config);
    assert!(other.is_empty(), "errors besides missing certificates:\n{err}");
    assert!(matches!(code, Some(0 | 1)), "{err}");
    // The policy it names is read from the installed tree, not from the repository.
    std::fs::write(etc.join("policies/default.yaml"), "rules: [oops\n").expect("break it");
    let (_, other, err) = check(&config);
    assert!(
        other.iter().any(|l| l.contains("/etc/palisade/policies/default.yaml")),
        "a broken installed policy went unnoticed:\n{err}"
    );
}

#[test]
fn the_shipped_config_checks_in_the_repository_as_make_check_policies_does() {
    let (code, other, err) = check(&repo().join("deploy/palisade.yaml"));
    assert!(other.is_empty(), "{err}");
    assert!(matches!(code, Some(0 | 1)), "{err}");
}
