//! The mailext-host shim's command line. Being an integration test of this
//! package also makes `cargo test` build the real binary that the plugin's
//! tests run.

use std::process::Command;

fn host() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailext-host"))
}

#[test]
fn help_and_usage_errors() {
    let out = host().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("--plugin") && text.contains("--json"),
        "{text}"
    );
    assert_eq!(
        host().arg("--bogus").output().unwrap().status.code(),
        Some(2)
    );
}

#[test]
fn a_missing_plugin_is_a_clear_load_error() {
    let out = host()
        .args(["--plugin", "/nonexistent/libmailext.so", "commands"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot load the plugin library"), "{err}");
}
