//! A host written in C against the checked-in `mailext.h` (tests/c/host.c)
//! loads the built plugin with dlopen and runs IMAPConnect / IMAPNoOp /
//! IMAPDisconnect against the shared Dovecot: the header and the library
//! work together without any Rust on the host side.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::dovecot::{PASSWORD, USER};
use support::*;

/// `$CC` split into words (it may carry flags), or `cc`.
fn c_compiler() -> Vec<String> {
    std::env::var("CC")
        .ok()
        .map(|v| v.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec!["cc".to_string()])
}

/// Compiles host.c warning-free into `dir`.
fn build_host(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = dir.join("host");
    let cc = c_compiler();
    let out = Command::new(&cc[0])
        .args(&cc[1..])
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic-errors",
        ])
        .arg("-I")
        .arg(root.join("plugin-abi/include"))
        .arg(root.join("tests/c/host.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-ldl")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cc[0]));
    assert!(
        out.status.success(),
        "tests/c/host.c does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Runs the C host against the shared Dovecot (plain port for secure 0,
/// implicit-TLS port for 1, verification on); asserts it succeeded and
/// returns its output.
fn run_c_host(secure: u8) -> String {
    run_c_host_with(secure, &[])
}

fn run_c_host_with(secure: u8, extra: &[&str]) -> String {
    // First: env() points MAILEXT_CACERTS at the test CA, which the child inherits.
    env();
    let d = dovecot();
    let server = local(if secure == 1 {
        d.imaps_port
    } else {
        d.imap_port
    });
    let dir = tempfile::tempdir().unwrap();
    let exe = build_host(dir.path());
    let out = Command::new(&exe)
        .arg(plugin_path())
        .arg(&server)
        .arg(USER)
        .arg(PASSWORD)
        .arg(secure.to_string())
        .arg("1")
        .args(extra)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "C host failed ({}):\n{text}\n--- dovecot log:\n{}",
        out.status,
        d.log()
    );
    assert!(!text.contains(PASSWORD), "password leaked into:\n{text}");
    assert!(!text.contains("FAIL"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    // The ABI-level checks ran (host.c's exit code also depends on them).
    assert!(
        has("handshake as ABI 99: refused; refusal: mailext"),
        "{text}"
    );
    assert!(has("call with NULL callbacks: -502"), "{text}");
    assert!(
        has("IMAPConnect(143, ...): call 0, returned -501"),
        "{text}"
    );
    // The greeting is the first row of the connect response list.
    let first = lines
        .iter()
        .find(|l| l.starts_with("connect response: "))
        .unwrap_or_else(|| panic!("no connect response rows:\n{text}"));
    assert!(first.starts_with("connect response: * OK"), "{text}");
    assert!(has("onStatus: "), "{text}");
    assert!(has("disconnect: 0"), "{text}");
    assert!(has("disconnect response: * BYE"), "{text}");
    text
}

#[test]
fn c_host_plaintext_session() {
    let text = run_c_host(0);
    assert!(!text.contains("TLS established"), "{text}");
}

#[test]
fn c_host_implicit_tls_session_with_verification() {
    let text = run_c_host(1);
    assert!(text.contains("onStatus: TLS established: TLSv1."), "{text}");
    assert!(
        text.contains("certificate verified for localhost"),
        "{text}"
    );
}

/// FNV-1a 64, as host.c computes it.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(14695981039346656037, |h, &b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

#[test]
fn c_host_receives_a_large_message_in_pieces() {
    let d = dovecot();
    let mut big = b"From: a@example.com\r\nSubject: for the C host\r\n\r\n".to_vec();
    while big.len() < 3 * 1024 * 1024 {
        big.extend_from_slice(format!("line {} of a large message\r\n", big.len()).as_bytes());
    }
    d.seed(USER, "CHost", &[(&big, "")]);
    let text = run_c_host_with(1, &["CHost", "1"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("message: "))
        .unwrap_or_else(|| panic!("no message line:\n{text}"));
    let (head, pieces) = line.split_once(" bytes in ").unwrap();
    assert_eq!(head, format!("message: 0, {}", big.len()), "{line}");
    let (n, hash) = pieces.split_once(" pieces, fnv ").unwrap();
    assert!(n.parse::<u32>().unwrap() > 1, "in pieces: {line}");
    assert_eq!(hash, format!("{:016x}", fnv(&big)), "the exact bytes");
    assert!(
        text.contains("output 2: 0 bytes"),
        "set to empty first: {text}"
    );
}
