//! SMTP against a real Postfix: submission with STARTTLS and SASL (through
//! Dovecot's auth service), implicit TLS, plain port 25; what is submitted
//! is delivered into Dovecot over LMTP and read back with IMAPRecvMessage.

mod support;

use plugin_abi::host::{CallOutcome, HostValue};
use std::sync::OnceLock;
use std::time::Duration;
use support::dovecot::{Dovecot, Options, PASSWORD};
use support::postfix::{address, Postfix};
use support::*;

struct Peers {
    dovecot: Dovecot,
    postfix: Postfix,
}

fn peers() -> &'static Peers {
    static P: OnceLock<Peers> = OnceLock::new();
    P.get_or_init(|| {
        let dovecot = Dovecot::start(&env().good, &Options::for_postfix());
        let postfix = Postfix::start(&dovecot, &env().good);
        Peers { dovecot, postfix }
    })
}

fn smtp_connect(port: u16, user: &str, pass: &str, secure: i64, options: &str) -> CallOutcome {
    let mut args = vec![
        s(&format!("localhost:{port}")),
        s("client.test"),
        s(user),
        s(pass),
        HostValue::Proc("onStatus".into()),
        list(),
        i(secure),
        TRUE,
        i(0),
        s(options),
    ];
    env().plugin.call("SMTPConnect", &mut args)
}

/// The message with this Message-ID from `user`'s INBOX, over IMAP.
fn read_back(user: &str, needle: &str) -> Vec<u8> {
    let p = peers();
    support::postfix::wait_for_delivery(&p.dovecot, user, 1, Duration::from_secs(10));
    let (o, _) = connect(&local(p.dovecot.imap_port), user, PASSWORD, 0, true);
    let sock = o.code();
    assert!(sock > 0, "{}", status_text(&o));
    let mut sel = [i(sock), s("INBOX"), i(0)];
    assert_eq!(env().plugin.call("IMAPSelectMailbox", &mut sel).code(), 0);
    let count = match sel[2] {
        HostValue::Integer(n) => n,
        ref other => panic!("{other:?}"),
    };
    let mut found = None;
    for uid in 1..=count + 5 {
        let mut args = [i(sock), i(uid), HostValue::Binary(vec![])];
        if env().plugin.call("IMAPRecvMessage", &mut args).code() != 0 {
            continue;
        }
        if let HostValue::Binary(b) = &args[2] {
            if String::from_utf8_lossy(b).contains(needle) {
                found = Some(b.clone());
            }
        }
    }
    disconnect(sock);
    found.unwrap_or_else(|| panic!("no message with {needle:?} for {user}"))
}

fn send_message(sock: i64, from: &str, rcpts: &str, msg: &[u8]) -> (CallOutcome, HostValue) {
    let mut args = [
        i(sock),
        s(from),
        s(rcpts),
        HostValue::Binary(msg.to_vec()),
        HostValue::None,
        list(),
        HostValue::Proc("onStatus".into()),
    ];
    let o = env().plugin.call("SMTPSendMessage", &mut args);
    (o, args[5].clone())
}

#[test]
fn submission_with_starttls_and_auth_delivers_into_dovecot() {
    let p = peers();
    let o = smtp_connect(p.postfix.submission_port, "alice", PASSWORD, 2, "");
    let sock = o.code();
    let st = status_text(&o);
    assert!(
        sock > 0,
        "{}\n{st}\n{}",
        env().plugin.last_error(),
        p.postfix.log()
    );
    assert!(
        st.contains("C: STARTTLS") && st.contains("certificate verified"),
        "{st}"
    );
    assert!(
        st.contains("with PLAIN") || st.contains("with CRAM-MD5"),
        "{st}"
    );
    assert!(!st.contains(PASSWORD));
    let msg = "From: alice@mail.test\r\nTo: u21@mail.test\r\nSubject: submission\r\nMessage-ID: <sub-1@mail.test>\r\n\r\n.leading dot\r\nline two\r\n";
    let (o, results) = send_message(
        sock,
        &address("alice"),
        &format!("{}, {}, nobody@mail.test", address("u21"), address("u22")),
        msg.as_bytes(),
    );
    assert_eq!(
        o.code(),
        0,
        "{}\n{}",
        env().plugin.last_error(),
        status_text(&o)
    );
    let st = status_text(&o);
    assert!(st.contains("Sent to 2 of 3 recipients"), "{st}");
    assert!(st.contains("nobody@mail.test: 550"), "{st}");
    let HostValue::List(rows) = results else {
        panic!()
    };
    assert_eq!(rows.rows.len(), 3);
    assert_eq!(env().plugin.call("SMTPNoOp", &mut [i(sock)]).code(), 0);
    assert_eq!(env().plugin.call("SMTPReset", &mut [i(sock)]).code(), 0);
    assert_eq!(
        env().plugin.call("SMTPDisconnect", &mut [i(sock)]).code(),
        0
    );
    for user in ["u21", "u22"] {
        let got = read_back(user, "sub-1@mail.test");
        let text = String::from_utf8_lossy(&got);
        // Postfix adds Received (and may add Date); our lines arrive intact,
        // the dot-stuffed line unstuffed again.
        assert!(
            text.ends_with("\r\n\r\n.leading dot\r\nline two\r\n"),
            "{text}"
        );
        assert!(text.contains("Subject: submission\r\n"), "{text}");
    }
}

#[test]
fn implicit_tls_and_every_mechanism_postfix_offers() {
    let p = peers();
    for opt in [
        "AUTH=PLAIN",
        "AUTH=LOGIN",
        "AUTH=CRAM-MD5",
        "AUTH=SCRAM-SHA-256",
        "SECURE_IMPLICIT",
    ] {
        let o = smtp_connect(p.postfix.smtps_port, "u23", PASSWORD, 1, opt);
        assert!(
            o.code() > 0,
            "{opt}: {}\n{}",
            env().plugin.last_error(),
            status_text(&o)
        );
        assert!(!status_text(&o).contains(PASSWORD));
        assert_eq!(
            env()
                .plugin
                .call("SMTPDisconnect", &mut [i(o.code())])
                .code(),
            0
        );
    }
    // 465 means TLS from the first byte even without secure.
    let o = smtp_connect(p.postfix.smtps_port, "u23", "wrong", 1, "");
    assert_eq!(o.code(), -1120, "{}", status_text(&o));
    let o = smtp_connect(p.postfix.smtps_port, "u23", PASSWORD, 1, "AUTH=XOAUTH2");
    assert_eq!(o.code(), -1134);
}

#[test]
fn port_25_without_auth_and_relay_refusal_on_submission() {
    let p = peers();
    let o = smtp_connect(p.postfix.smtp_port, "", "", 0, "");
    let sock = o.code();
    assert!(sock > 0, "{}", env().plugin.last_error());
    assert!(
        status_text(&o).contains("C: HELO client.test"),
        "{}",
        status_text(&o)
    );
    let msg = b"Subject: helo\r\nMessage-ID: <helo-1@mail.test>\r\n\r\nplain\r\n";
    let (o, _) = send_message(sock, "someone@example.org", &address("u24"), msg);
    assert_eq!(o.code(), 0, "{}", env().plugin.last_error());
    env().plugin.call("SMTPDisconnect", &mut [i(sock)]);
    read_back("u24", "helo-1@mail.test");
    // Submission without authentication: the recipient is refused.
    let o = smtp_connect(p.postfix.submission_port, "", "", 2, "");
    let sock = o.code();
    assert!(sock > 0);
    let (o, _) = send_message(sock, "x@example.org", &address("u24"), msg);
    assert_eq!(o.code(), -1126);
    assert!(env()
        .plugin
        .last_error()
        .contains("no recipient was accepted"));
    env().plugin.call("SMTPDisconnect", &mut [i(sock)]);
}

#[test]
fn smtpsend_builds_mime_and_keeps_bcc_out_of_the_headers() {
    let p = peers();
    let server = format!("localhost:{} client.test", p.postfix.submission_port);
    let mut args = vec![
        s(&server),
        s(&address("alice")),
        s(&address("u25")),
        s("Grüße aus Köln — Bericht"),
        s("Hallo,\nder Bericht ist fertig.\n.\nEnde"),
        s(&address("u26")),
        s(&address("u27")),
        s("Alice Müller"),
        HostValue::Proc("onStatus".into()),
        i(1),
        s("X-Report: weekly"),
        s("alice"),
        s(PASSWORD),
        i(2),
        TRUE,
    ];
    let o = env().plugin.call("SMTPSend", &mut args);
    assert_eq!(
        o.code(),
        0,
        "{}\n{}",
        env().plugin.last_error(),
        status_text(&o)
    );
    assert!(!status_text(&o).contains(PASSWORD));
    for user in ["u25", "u26", "u27"] {
        let got = read_back(user, "X-Report: weekly");
        let text = String::from_utf8_lossy(&got).into_owned();
        assert!(text.contains("Subject: =?utf-8?"), "{text}");
        assert!(text.contains("X-Priority: 1"), "{text}");
        assert!(text.contains("Cc: u26@mail.test"), "{text}");
        assert!(!text.to_ascii_lowercase().contains("\nbcc:"), "{text}");
        assert!(
            !text.contains("u27@mail.test>") && !text.contains("Cc: u27"),
            "{text}"
        );
        assert!(text.contains("Message-ID: <"), "{text}");
    }
}
