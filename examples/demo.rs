//! The main job, end to end: starts a local Dovecot (certificates made on
//! the spot), then runs a 4GL-style script through `mailext-host` so you see
//! IMAPConnect's status messages and response list.
//!
//! `cargo run --example demo` (add `-- --json` for JSON lines).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use support::dovecot::{PASSWORD, USER};

fn main() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "plugin-abi",
            "--bin",
            "mailext-host",
        ])
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("could not build mailext-host");
        std::process::exit(1);
    }
    support::env(); // the test CA goes into MAILEXT_CACERTS for the child
    let d = support::dovecot();
    let hello = b"From: Ann <ann@example.com>\r\nTo: alice@example.com\r\nSubject: Hello from the demo\r\n\r\nHi Alice!\r\n";
    d.seed(USER, "INBOX", &[(hello.as_slice(), "")]);
    let script = format!(
        r#"# STARTTLS, verified against the CA in $MAILEXT_CACERTS, then CRAM-MD5
sock = IMAPConnect("localhost:{port}", "{USER}", "{PASSWORD}", "onStatus", responses, 2, kTrue)
status = IMAPNoOp(sock, "onStatus", responses)
# The IMAP family on a fixture message
status = IMAPListMailboxes(sock, "", "*", boxes)
status = IMAPSelectMailbox(sock, "INBOX", messages, recent, uidnext, uidvalidity, unseen)
status = IMAPListMessages(sock, msgs)
status = IMAPRecvMessage(sock, 1, message)
status = IMAPDisconnect(sock, "onStatus", responses)
# A wrong password: a clear code and the server's reason
bad = IMAPConnect("localhost:{port}", "{USER}", "wrong", "onStatus", responses)
"#,
        port = d.imap_port
    );
    println!(
        "Dovecot is listening on localhost:{} (IMAP) and :{} (IMAPS).",
        d.imap_port, d.imaps_port
    );
    println!(
        "Script (password hidden here too):\n{}",
        script.replace(PASSWORD, "<password>")
    );
    let host = plugin_abi::host::profile_dir().join("mailext-host");
    let extra: Vec<String> = std::env::args().skip(1).collect();
    let status = Command::new(host)
        .args(&extra)
        .args(["run", "-"])
        .stdin_piped(&script);
    std::process::exit(status);
}

trait StdinPiped {
    fn stdin_piped(&mut self, input: &str) -> i32;
}

impl StdinPiped for Command {
    fn stdin_piped(&mut self, input: &str) -> i32 {
        use std::io::Write;
        let mut child = self
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run mailext-host");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait().map(|s| s.code().unwrap_or(1)).unwrap_or(1)
    }
}
