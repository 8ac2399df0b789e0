//! SMTP faults a real MTA will not produce on demand, from scripted servers.

mod support;

use plugin_abi::host::{CallOutcome, HostValue};
use std::time::{Duration, Instant};
use support::pki::Leaf;
use support::scripted::{Peer, Scripted};
use support::*;

fn smtp_connect(
    port: u16,
    user: &str,
    secure: i64,
    timeout: i64,
    options: &str,
) -> (CallOutcome, Vec<String>) {
    smtp_connect_with(port, user, i(secure), TRUE, i(timeout), s(options))
}

/// SMTPConnect to 127.0.0.1:`port` with these secure, verify, timeout and
/// options values.
fn smtp_connect_with(
    port: u16,
    user: &str,
    secure: HostValue,
    verify: HostValue,
    timeout: HostValue,
    options: HostValue,
) -> (CallOutcome, Vec<String>) {
    let mut args = vec![
        s(&format!("127.0.0.1:{port}")),
        s("client.test"),
        s(user),
        s("pw-Secret1"),
        HostValue::Proc("onStatus".into()),
        list(),
        secure,
        verify,
        timeout,
        options,
        HostValue::Proc("onEvent".into()),
    ];
    let o = env().plugin.call("SMTPConnect", &mut args);
    let l = lines(&args[5]);
    (o, l)
}

fn expect(peer: &mut Peer, want: &str) {
    let l = peer
        .line()
        .unwrap_or_else(|| panic!("client closed; expected {want}"));
    assert_eq!(l, want);
}

fn quit(peer: &mut Peer) {
    expect(peer, "QUIT");
    peer.send("221 bye\r\n");
}

fn ehlo(peer: &mut Peer, caps: &str) {
    peer.send("220 mx.test ESMTP\r\n");
    expect(peer, "EHLO client.test");
    peer.send(caps);
}

#[test]
fn split_multi_line_replies_and_refused_recipients() {
    let server = Scripted::start(|peer| {
        // The EHLO reply arrives in pieces, split inside lines.
        peer.send("220 mx.test ESMTP\r\n");
        expect(peer, "EHLO client.test");
        for piece in [
            "250-mx.te",
            "st\r\n250-SIZE 100",
            "0000\r\n25",
            "0 8BITMIME\r\n",
        ] {
            peer.send(piece);
            std::thread::sleep(Duration::from_millis(30));
        }
        expect(peer, "MAIL FROM:<me@x.test> SIZE=20");
        peer.send("250 ok\r\n");
        expect(peer, "RCPT TO:<a@x.test>");
        peer.send("250 ok\r\n");
        expect(peer, "RCPT TO:<gone@x.test>");
        peer.send("550-5.1.1 no such\r\n550 5.1.1 user\r\n");
        expect(peer, "RCPT TO:<b@x.test>");
        peer.send("451 4.3.0 try later\r\n");
        expect(peer, "DATA");
        peer.send("354 go\r\n");
        expect(peer, "Subject: t");
        expect(peer, "");
        expect(peer, "..hi");
        expect(peer, ".");
        peer.send("250 2.0.0 queued as Q1\r\n");
        expect(peer, "QUIT");
        peer.send("221 bye\r\n");
    });
    let (o, _) = smtp_connect(server.port, "", 0, 0, "EXTENDED");
    let sock = o.code();
    assert!(sock > 0, "{}", env().plugin.last_error());
    let mut args = [
        i(sock),
        s("Me <me@x.test>"),
        s("a@x.test, \"Gone, really\" <gone@x.test>; b@x.test"),
        s("Subject: t\n\n.hi\n"),
        HostValue::None,
        list(),
        HostValue::Proc("onStatus".into()),
    ];
    let o = env().plugin.call("SMTPSendMessage", &mut args);
    assert_eq!(o.code(), 0, "{}", env().plugin.last_error());
    let st = status_text(&o);
    assert!(st.contains("Sent to 1 of 3 recipients"), "{st}");
    assert!(
        st.contains("gone@x.test: 550 5.1.1 no such / 5.1.1 user"),
        "{st}"
    );
    assert!(st.contains("b@x.test: 451 4.3.0 try later"), "{st}");
    let HostValue::List(rows) = &args[5] else {
        panic!()
    };
    assert_eq!(rows.rows.len(), 3);
    assert_eq!(
        env().plugin.call("SMTPDisconnect", &mut [i(sock)]).code(),
        0
    );
    server.received();
}

#[test]
fn errors_at_each_stage() {
    // 4xx greeting.
    let server = Scripted::start(|peer| {
        peer.send("421 4.3.2 busy\r\n");
        peer.drain();
    });
    let (o, _) = smtp_connect(server.port, "", 0, 0, "");
    assert_eq!(o.code(), -1126);
    assert!(env().plugin.last_error().contains("421"));
    server.received();
    // 5xx at MAIL FROM, then the socket stays usable.
    let server = Scripted::start(|peer| {
        ehlo(peer, "250-mx\r\n250 PIPELINING\r\n");
        expect(peer, "MAIL FROM:<me@x.test>");
        expect(peer, "RCPT TO:<a@x.test>");
        expect(peer, "DATA");
        peer.send("553 5.1.8 bad sender\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n");
        expect(peer, "NOOP");
        peer.send("250 ok\r\n");
        expect(peer, "RSET");
        peer.send("250 ok\r\n");
        quit(peer);
    });
    let (o, _) = smtp_connect(server.port, "", 0, 0, "EXTENDED");
    let sock = o.code();
    let mut args = [i(sock), s("me@x.test"), s("a@x.test"), s("x")];
    assert_eq!(
        env().plugin.call("SMTPSendMessage", &mut args).code(),
        -1126
    );
    assert!(env().plugin.last_error().contains("bad sender"));
    assert_eq!(env().plugin.call("SMTPNoOp", &mut [i(sock)]).code(), 0);
    assert_eq!(env().plugin.call("SMTPReset", &mut [i(sock)]).code(), 0);
    disconnect_smtp(sock);
    server.received();
    // The message itself refused after DATA.
    let server = Scripted::start(|peer| {
        ehlo(peer, "250 mx\r\n");
        expect(peer, "MAIL FROM:<me@x.test>");
        peer.send("250 ok\r\n");
        expect(peer, "RCPT TO:<a@x.test>");
        peer.send("250 ok\r\n");
        expect(peer, "DATA");
        peer.send("354 go\r\n");
        expect(peer, "x");
        expect(peer, ".");
        peer.send("554 5.6.0 spam\r\n");
        quit(peer);
    });
    let (o, _) = smtp_connect(server.port, "", 0, 0, "EXTENDED");
    let sock = o.code();
    let mut args = [i(sock), s("me@x.test"), s("a@x.test"), s("x")];
    assert_eq!(
        env().plugin.call("SMTPSendMessage", &mut args).code(),
        -1126
    );
    assert!(env().plugin.last_error().contains("spam"));
    disconnect_smtp(sock);
    server.received();
}

fn disconnect_smtp(sock: i64) {
    let _ = env().plugin.call("SMTPDisconnect", &mut [i(sock)]);
}

#[test]
fn starttls_missing_refused_and_injected() {
    let server = Scripted::start(|peer| {
        ehlo(peer, "250-mx\r\n250 AUTH PLAIN\r\n");
        peer.drain();
    });
    let (o, _) = smtp_connect(server.port, "u", 2, 0, "");
    assert_eq!(o.code(), -1114);
    let r = server.received();
    assert!(!r.iter().any(|l| l.contains("AUTH")), "{r:?}");
    let server = Scripted::start(|peer| {
        ehlo(peer, "250-mx\r\n250 STARTTLS\r\n");
        expect(peer, "STARTTLS");
        peer.send("220 Ready\r\n250-mx\r\n250 AUTH PLAIN\r\n");
        peer.drain();
    });
    let (o, _) = smtp_connect(server.port, "u", 2, 0, "");
    assert_eq!(o.code(), -1116, "{}", env().plugin.last_error());
    server.received();
}

#[test]
fn a_slow_server_times_out() {
    let server = Scripted::start(|peer| {
        peer.send("220 mx\r\n");
        let _ = peer.line();
        std::thread::sleep(Duration::from_secs(4));
    });
    let t = Instant::now();
    let (o, _) = smtp_connect(server.port, "", 0, 2, "EXTENDED");
    assert_eq!(o.code(), -522);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1950) && took < Duration::from_millis(2300),
        "{took:?}"
    );
    assert!(o.events.iter().any(|e| e.kind == "TIMEOUT"));
}

#[test]
fn large_message_reports_progress_and_no_password_in_status() {
    let size = 3 * 1024 * 1024;
    let server = Scripted::start(move |peer| {
        ehlo(peer, "250-mx\r\n250 AUTH CRAM-MD5\r\n");
        expect(peer, "AUTH CRAM-MD5");
        peer.send("334 PDEyMzQ1QG14LnRlc3Q+\r\n");
        let _ = peer.line();
        peer.send("235 ok\r\n");
        expect(peer, "MAIL FROM:<me@x.test>");
        peer.send("250 ok\r\n");
        expect(peer, "RCPT TO:<a@x.test>");
        peer.send("250 ok\r\n");
        expect(peer, "DATA");
        peer.send("354 go\r\n");
        let mut n = 0;
        loop {
            let l = peer.line().unwrap();
            if l == "." {
                break;
            }
            n += l.len() + 2;
        }
        assert!(n >= size);
        peer.send("250 ok\r\n");
        quit(peer);
    });
    let (o, _) = smtp_connect(server.port, "alice", 0, 0, "");
    let sock = o.code();
    assert!(sock > 0, "{}", env().plugin.last_error());
    assert!(!status_text(&o).contains("pw-Secret1"));
    let body = "x".repeat(76) + "\r\n";
    let msg = format!("Subject: big\r\n\r\n{}", body.repeat(size / 78 + 1));
    let mut args = [
        i(sock),
        s("me@x.test"),
        s("a@x.test"),
        HostValue::Binary(msg.into_bytes()),
    ];
    let o = env().plugin.call("SMTPSendMessage", &mut args);
    assert_eq!(o.code(), 0, "{}", env().plugin.last_error());
    let progress: Vec<_> = o.events.iter().filter(|e| e.kind == "PROGRESS").collect();
    assert!(!progress.is_empty(), "{:?}", o.events);
    disconnect_smtp(sock);
    server.received();
}

#[test]
fn own_thread_smtp_sockets_can_be_handed_over() {
    let server = Scripted::start(|peer| {
        ehlo(peer, "250 mx\r\n");
        expect(peer, "NOOP");
        peer.send("250 ok\r\n");
        quit(peer);
    });
    let (o, _) = smtp_connect(server.port, "", 0, 0, "EXTENDED OWNTHREAD");
    let sock = o.code();
    assert!(sock > 0, "{}", env().plugin.last_error());
    let other = std::thread::spawn(move || {
        let before = env().plugin.call("SMTPNoOp", &mut [i(sock)]).code();
        let attach = env().plugin.call("IMAPAttachThread", &mut [i(sock)]).code();
        let after = env().plugin.call("SMTPNoOp", &mut [i(sock)]).code();
        let quit = env().plugin.call("SMTPDisconnect", &mut [i(sock)]).code();
        (before, attach, after, quit)
    });
    assert_eq!(other.join().unwrap(), (-1133, 0, 0, 0));
    server.received();
}

/// An implicit-TLS server with `leaf` that greets, takes HELO (or EHLO
/// when `ehlo`) and QUIT.
fn tls_greeter(leaf: &Leaf, ehlo: bool) -> Scripted {
    Scripted::start_tls(leaf, move |peer| {
        peer.send("220 mx.test ESMTP\r\n");
        if ehlo {
            expect(peer, "EHLO client.test");
            peer.send("250-mx.test\r\n250 8BITMIME\r\n");
        } else {
            expect(peer, "HELO client.test");
            peer.send("250 mx.test\r\n");
        }
        quit(peer);
    })
}

#[test]
fn bad_certificates_are_refused_unless_verification_is_off() {
    let stranger = support::pki::Ca::new("stranger CA").leaf(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
        -1,
        30,
    );
    let other_name = env().ca.leaf("other", &["other.test"], &[], -1, 30);
    let expired = env()
        .ca
        .leaf("localhost", &["localhost"], &["127.0.0.1"], -30, -1);
    // verify on (kTrue, and also left out): refused, nothing reaches the server.
    for (leaf, code) in [(&stranger, -1111), (&other_name, -1113), (&expired, -1112)] {
        for verify in [TRUE, HostValue::None] {
            let server = tls_greeter(leaf, false);
            let (o, _) = smtp_connect_with(server.port, "", i(1), verify, i(0), s(""));
            assert_eq!(o.code(), code, "{}", status_text(&o));
            assert!(
                o.events.iter().any(|e| e.kind == "CONNECT"),
                "{:?}",
                o.events
            );
            assert!(server.received().is_empty());
        }
    }
    // verify = kFalse: encrypted, not verified.
    let server = tls_greeter(&stranger, false);
    let (o, _) = smtp_connect_with(server.port, "", i(1), FALSE, i(0), s(""));
    let sock = o.code();
    assert!(
        sock > 0,
        "{}\n{}",
        env().plugin.last_error(),
        status_text(&o)
    );
    assert!(
        status_text(&o).contains("certificate verification is off"),
        "{}",
        status_text(&o)
    );
    assert_eq!(
        env().plugin.call("SMTPDisconnect", &mut [i(sock)]).code(),
        0
    );
    assert_eq!(server.received(), ["HELO client.test", "QUIT"]);
    // TRUSTEDSITE with verify = kTrue: the option wins.
    for leaf in [&stranger, &other_name, &expired] {
        let server = tls_greeter(leaf, false);
        let (o, _) = smtp_connect_with(server.port, "", i(1), TRUE, i(0), s("TRUSTEDSITE"));
        let sock = o.code();
        assert!(
            sock > 0,
            "{}\n{}",
            env().plugin.last_error(),
            status_text(&o)
        );
        disconnect_smtp(sock);
        assert_eq!(server.received(), ["HELO client.test", "QUIT"]);
    }
}

#[test]
fn integer_option_bits() {
    use plugin_abi::host::HostValue::Integer;
    // EXTENDED | TRUSTEDSITE | SECURE_IMPLICIT as one Integer, secure
    // left at 0: implicit TLS on a port that is not 465, no verification,
    // EHLO.
    let stranger = support::pki::Ca::new("stranger CA").leaf(
        "localhost",
        &["localhost"],
        &["127.0.0.1"],
        -1,
        30,
    );
    let server = tls_greeter(&stranger, true);
    let (o, _) = smtp_connect_with(
        server.port,
        "",
        i(0),
        TRUE,
        i(0),
        Integer(0x1 | 0x800 | 0x2000),
    );
    let sock = o.code();
    assert!(
        sock > 0,
        "{}\n{}",
        env().plugin.last_error(),
        status_text(&o)
    );
    disconnect_smtp(sock);
    assert_eq!(server.received(), ["EHLO client.test", "QUIT"]);
    // The same bits without TRUSTEDSITE: the certificate is checked.
    let server = tls_greeter(&stranger, true);
    let (o, _) = smtp_connect_with(server.port, "", i(0), TRUE, i(0), Integer(0x1 | 0x2000));
    assert_eq!(o.code(), -1111, "{}", status_text(&o));
    assert!(server.received().is_empty());
    // 1 alone is EXTENDED: EHLO in plaintext; 0 is no option: HELO.
    for (bits, greeting) in [(1, "EHLO client.test"), (0, "HELO client.test")] {
        let server = Scripted::start(move |peer| {
            peer.send("220 mx\r\n");
            expect(peer, greeting);
            peer.send("250 mx\r\n");
            quit(peer);
        });
        let (o, _) = smtp_connect_with(server.port, "", i(0), TRUE, i(0), Integer(bits));
        assert!(o.code() > 0, "{bits}: {}", env().plugin.last_error());
        disconnect_smtp(o.code());
        server.received();
    }
    // Unknown bits and ASYNC are refused before connecting.
    for bits in [0x4, 0x200000, -1] {
        let (o, _) = smtp_connect_with(1, "", i(0), TRUE, i(0), Integer(bits));
        assert_eq!(o.code(), -1132, "{bits:#x}: {}", env().plugin.last_error());
    }
}

/// SMTPSend to the scripted server on `port`, from me@x.test.
fn smtp_send(port: u16, to: &str, cc: &str) -> CallOutcome {
    let mut args = vec![
        s(&format!("127.0.0.1:{port} client.test")),
        s("Me <me@x.test>"),
        s(to),
        s("t"),
        s("hi"),
        s(cc),
        s(""),
        s(""),
        HostValue::Proc("onStatus".into()),
    ];
    env().plugin.call("SMTPSend", &mut args)
}

#[test]
fn smtpsend_with_refused_recipients_still_says_quit() {
    // The only recipient refused: -1126 with the server's reply, RSET, QUIT.
    let server = Scripted::start(|peer| {
        peer.send("220 mx.test ESMTP\r\n");
        expect(peer, "HELO client.test");
        peer.send("250 mx.test\r\n");
        expect(peer, "MAIL FROM:<me@x.test>");
        peer.send("250 2.1.0 ok\r\n");
        expect(peer, "RCPT TO:<nobody@x.test>");
        peer.send("550 5.1.1 <nobody@x.test>: Recipient address rejected\r\n");
        expect(peer, "RSET");
        peer.send("250 2.0.0 ok\r\n");
        quit(peer);
        peer.drain();
    });
    let o = smtp_send(server.port, "nobody@x.test", "");
    assert_eq!(o.code(), -1126, "{}", status_text(&o));
    let e = env().plugin.last_error();
    assert!(
        e.contains(
            "no recipient was accepted: nobody@x.test: 550 5.1.1 <nobody@x.test>: Recipient address rejected"
        ),
        "{e}"
    );
    assert!(status_text(&o).contains("C: QUIT"), "{}", status_text(&o));
    let got = server.received();
    assert_eq!(got.last().map(String::as_str), Some("QUIT"), "{got:?}");
    assert!(!got.iter().any(|l| l == "DATA"), "{got:?}");

    // One of two refused: sent (0), the refusal in the status, then QUIT.
    let server = Scripted::start(|peer| {
        peer.send("220 mx.test ESMTP\r\n");
        expect(peer, "HELO client.test");
        peer.send("250 mx.test\r\n");
        expect(peer, "MAIL FROM:<me@x.test>");
        peer.send("250 ok\r\n");
        expect(peer, "RCPT TO:<a@x.test>");
        peer.send("250 ok\r\n");
        expect(peer, "RCPT TO:<gone@x.test>");
        peer.send("450 4.2.0 <gone@x.test>: mailbox busy\r\n");
        expect(peer, "DATA");
        peer.send("354 go\r\n");
        while peer.line().is_some_and(|l| l != ".") {}
        peer.send("250 2.0.0 queued as Q7\r\n");
        quit(peer);
        peer.drain();
    });
    let o = smtp_send(server.port, "a@x.test", "gone@x.test");
    let st = status_text(&o);
    assert_eq!(o.code(), 0, "{}\n{st}", env().plugin.last_error());
    assert!(
        st.contains("Sent to 1 of 2 recipients; refused: gone@x.test: 450 4.2.0 <gone@x.test>: mailbox busy"),
        "{st}"
    );
    assert!(st.contains("sent: 250 2.0.0 queued as Q7"), "{st}");
    let got = server.received();
    assert_eq!(got.last().map(String::as_str), Some("QUIT"), "{got:?}");
    assert!(got.iter().any(|l| l == "Cc: gone@x.test"), "{got:?}");
}
