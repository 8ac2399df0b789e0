//! Faults only a scripted server produces: STARTTLS stripping, PREAUTH,
//! response injection, LOGINDISABLED, silence, garbage, oversized lines,
//! abrupt closes, and two threads on one socket.

mod support;

use plugin_abi::host::HostValue;
use std::time::{Duration, Instant};
use support::scripted::{Peer, Scripted};
use support::*;

const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] scripted ready\r\n";

fn no_credentials_sent(lines: &[String]) {
    for l in lines {
        let u = l.to_ascii_uppercase();
        assert!(
            !u.contains("LOGIN \"") && !u.contains("AUTHENTICATE"),
            "credentials went out: {l}"
        );
        assert!(!l.contains("pw"), "password went out: {l}");
    }
}

#[test]
fn starttls_not_advertised_is_refused() {
    let srv = Scripted::start(|p: &mut Peer| {
        p.send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] no tls here\r\n");
        p.drain();
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 2, true);
    assert_eq!(o.code(), -1114, "{}", status_text(&o));
    no_credentials_sent(&srv.received());
}

#[test]
fn starttls_refused_is_refused() {
    let srv = Scripted::start(|p: &mut Peer| {
        p.send(GREETING);
        let tag = p.command("STARTTLS");
        p.send(&format!("{tag} NO [UNAVAILABLE] TLS is down\r\n"));
        p.drain();
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 2, true);
    assert_eq!(o.code(), -1115, "{}", status_text(&o));
    assert!(env().plugin.last_error().contains("TLS is down"));
    no_credentials_sent(&srv.received());
}

#[test]
fn preauth_greeting_under_starttls_is_refused() {
    let srv = Scripted::start(|p: &mut Peer| {
        p.send("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] already in\r\n");
        p.drain();
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 2, true);
    assert_eq!(o.code(), -1117, "{}", status_text(&o));
    no_credentials_sent(&srv.received());
}

#[test]
fn bytes_injected_after_starttls_ok_are_refused() {
    let srv = Scripted::start(|p: &mut Peer| {
        p.send(GREETING);
        let tag = p.command("STARTTLS");
        // One write: the injected capability rides in the same packet.
        p.send(&format!(
            "{tag} OK Begin TLS now\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"
        ));
        p.drain();
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 2, true);
    assert_eq!(o.code(), -1116, "{}", status_text(&o));
    no_credentials_sent(&srv.received());
}

#[test]
fn bytes_injected_in_a_later_packet_never_authenticate() {
    let srv = Scripted::start(|p: &mut Peer| {
        p.send(GREETING);
        let tag = p.command("STARTTLS");
        p.send(&format!("{tag} OK Begin TLS now\r\n"));
        std::thread::sleep(Duration::from_millis(30));
        p.send("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nA0002 OK fake\r\n");
        p.drain();
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 2, true);
    // Caught before the handshake (-1116) or by it (-1110): either way no login.
    assert!(
        [-1116, -1110].contains(&o.code()),
        "{} {}",
        o.code(),
        status_text(&o)
    );
    no_credentials_sent(&srv.received());
}

#[test]
fn logindisabled_without_cram_md5() {
    let srv = Scripted::start(|p: &mut Peer| {
        p.send("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN] hi\r\n");
        p.drain();
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 0, true);
    assert_eq!(o.code(), -1121, "{}", status_text(&o));
    no_credentials_sent(&srv.received());
}

#[test]
fn garbage_greeting_bye_and_oversized_line() {
    let srv = Scripted::start(|p: &mut Peer| p.send("SSH-2.0-OpenSSH_9.2\r\n"));
    assert_eq!(connect(&local(srv.port), "u", "pw", 0, true).0.code(), -523);
    let srv = Scripted::start(|p: &mut Peer| p.send("\x00\x01\x02\x03\r\n"));
    assert_eq!(connect(&local(srv.port), "u", "pw", 0, true).0.code(), -523);
    let srv = Scripted::start(|p: &mut Peer| p.send("* BYE server shutting down\r\n"));
    let (o, _) = connect(&local(srv.port), "u", "pw", 0, true);
    assert_eq!(o.code(), -1122);
    assert!(env().plugin.last_error().contains("server shutting down"));
    let srv = Scripted::start(|p: &mut Peer| {
        p.send(&"* OK ".repeat(2_000_000));
        p.drain();
    });
    assert_eq!(
        connect(&local(srv.port), "u", "pw", 0, true).0.code(),
        -1125
    );
}

#[test]
fn close_in_mid_command() {
    let srv = Scripted::start(|p: &mut Peer| {
        p.send("* OK [CAPABILITY IMAP4rev1] hi\r\n");
        p.command("LOGIN");
        // Close without answering.
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 0, true);
    assert_eq!(o.code(), -1106, "{}", status_text(&o));
}

#[test]
fn refused_and_unresolvable() {
    let port = support::dovecot::free_port();
    assert_eq!(connect(&local(port), "u", "pw", 0, true).0.code(), -1104);
    assert_eq!(
        connect("no-such-host.invalid:143", "u", "pw", 0, true)
            .0
            .code(),
        -1103
    );
    assert_eq!(connect("", "u", "pw", 0, true).0.code(), -511);
    assert_eq!(connect("bad host name", "u", "pw", 0, true).0.code(), -1101);
    assert_eq!(
        connect("localhost:99999", "u", "pw", 0, true).0.code(),
        -1102
    );
}

/// A server that logs in and then serves NOOPs, each after `delay`.
fn slow_noop_server(delay: Duration) -> Scripted {
    Scripted::start(move |p: &mut Peer| {
        p.send("* OK [CAPABILITY IMAP4rev1] hi\r\n");
        let tag = p.command("LOGIN");
        p.send(&format!("{tag} OK logged in\r\n"));
        while let Some(l) = p.line() {
            let (tag, verb) = l.split_once(' ').unwrap();
            std::thread::sleep(delay);
            if verb == "LOGOUT" {
                p.send(&format!("* BYE bye\r\n{tag} OK done\r\n"));
                return;
            }
            p.send(&format!("* 1 EXISTS\r\n{tag} OK done\r\n"));
        }
    })
}

#[test]
fn two_threads_on_one_socket_second_is_busy_at_once() {
    let srv = slow_noop_server(Duration::from_millis(800));
    let (o, _) = connect(&local(srv.port), "u", "pw", 0, true);
    let sock = o.code();
    assert!(sock > 0, "{}", status_text(&o));
    let first = std::thread::spawn(move || env().plugin.call("IMAPNoOp", &mut [i(sock)]).code());
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let second = env().plugin.call("IMAPNoOp", &mut [i(sock)]).code();
    assert_eq!(second, -1124);
    assert!(
        t0.elapsed() < Duration::from_millis(100),
        "busy must not wait"
    );
    assert_eq!(first.join().unwrap(), 0);
    assert_eq!(disconnect(sock).code(), 0);
    let lines = srv.received();
    assert_eq!(
        lines.iter().filter(|l| l.ends_with("NOOP")).count(),
        1,
        "{lines:?}"
    );
}

#[test]
fn server_gone_after_login_then_disconnect_still_frees() {
    let srv = Scripted::start(|p: &mut Peer| {
        p.send("* OK [CAPABILITY IMAP4rev1] hi\r\n");
        let tag = p.command("LOGIN");
        p.send(&format!("{tag} OK in\r\n* BYE idle too long\r\n"));
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 0, true);
    let sock = o.code();
    assert!(sock > 0);
    drop(srv.received());
    let code = env().plugin.call("IMAPNoOp", &mut [i(sock)]).code();
    assert!([-1122, -1106].contains(&code), "{code}");
    assert_eq!(disconnect(sock).code(), 0);
    assert_eq!(disconnect(sock).code(), -509);
}

#[test]
fn bad_after_a_literal_plus_append_makes_the_socket_unusable() {
    let srv = Scripted::start(|p: &mut Peer| {
        p.send("* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n");
        let tag = p.command("LOGIN");
        p.send(&format!("{tag} OK in\r\n"));
        let l = p.line().unwrap();
        let tag = l.split(' ').next().unwrap().to_string();
        assert!(l.contains("APPEND") && l.ends_with("{5+}"), "{l}");
        p.send(&format!("{tag} BAD parse error\r\n"));
        p.drain();
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 0, true);
    let sock = o.code();
    assert!(sock > 0);
    let mut a = [i(sock), s("INBOX"), s("hello")];
    assert_eq!(env().plugin.call("IMAPAppendMessage", &mut a).code(), -525);
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), -1127);
    // Arguments a server would reject as BAD never go out at all.
    assert_eq!(disconnect(sock).code(), 0);
}

#[test]
fn expunge_during_list_messages_renumbers_the_rows() {
    let srv = Scripted::start(|p: &mut Peer| {
        p.send("* OK [CAPABILITY IMAP4rev1] hi\r\n");
        let tag = p.command("LOGIN");
        p.send(&format!("{tag} OK in\r\n"));
        let tag = p.command("SELECT");
        p.send(&format!("* 3 EXISTS\r\n{tag} OK [READ-WRITE] selected\r\n"));
        let noop = p.command("NOOP");
        let fetch = p.command("UID FETCH");
        let row = |seq: u32, uid: u32| {
            format!("* {seq} FETCH (UID {uid} RFC822.SIZE 5 INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" FLAGS ())\r\n")
        };
        p.send(&format!(
            "{noop} OK done\r\n{}{}* 1 EXPUNGE\r\n{}{fetch} OK done\r\n",
            row(1, 10),
            row(2, 11),
            row(2, 12)
        ));
        let tag = p.command("LOGOUT");
        p.send(&format!("* BYE bye\r\n{tag} OK done\r\n"));
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 0, true);
    let sock = o.code();
    assert!(sock > 0);
    assert_eq!(
        env()
            .plugin
            .call("IMAPSelectMailbox", &mut [i(sock), s("INBOX")])
            .code(),
        0
    );
    let mut a = [i(sock), list()];
    assert_eq!(env().plugin.call("IMAPListMessages", &mut a).code(), 0);
    let uids: Vec<HostValue> = match &a[1] {
        HostValue::List(l) => l.rows.iter().map(|r| r[0].clone()).collect(),
        _ => unreachable!(),
    };
    assert_eq!(
        uids,
        [i(11), i(12)],
        "UID 10 was expunged; line = sequence number"
    );
    assert_eq!(disconnect(sock).code(), 0);
}

/// A server for one large FETCH reply: `reply(tag)` is what it sends; a
/// reply without the tagged OK at its end is followed by a close.
fn fetch_server(reply: fn(&str) -> Vec<u8>) -> Scripted {
    Scripted::start(move |p: &mut Peer| {
        p.serve_fetch(|p, tag| {
            let bytes = reply(tag);
            p.send_bytes(&bytes) && bytes.ends_with(b" OK done\r\n")
        })
    })
}

fn recv_from(srv: &Scripted) -> (i64, i64, HostValue) {
    let (o, _) = connect(&local(srv.port), "u", "pw", 0, true);
    let sock = o.code();
    assert!(sock > 0, "{}", status_text(&o));
    let sel = env()
        .plugin
        .call("IMAPSelectMailbox", &mut [i(sock), s("INBOX")]);
    assert_eq!(sel.code(), 0);
    let mut a = [i(sock), i(7), HostValue::Binary(b"old value".to_vec())];
    let rc = env().plugin.call("IMAPRecvMessage", &mut a).code();
    (sock, rc, a[2].clone())
}

const BIG: usize = 3 * 1024 * 1024;

#[test]
fn a_streamed_body_cut_off_leaves_an_empty_out_value() {
    let srv = fetch_server(|_| {
        let mut v = format!("* 1 FETCH (UID 7 BODY[] {{{BIG}}}\r\n").into_bytes();
        v.resize(v.len() + BIG / 2, b'x');
        v
    });
    let (sock, rc, out) = recv_from(&srv);
    assert_eq!(rc, -1106, "{}", env().plugin.last_error());
    assert_eq!(out, HostValue::Binary(vec![]), "no half message");
    disconnect(sock);
}

#[test]
fn a_large_body_for_another_uid_is_no_such_message() {
    let srv = fetch_server(|tag| {
        let mut v = format!("* 1 FETCH (UID 8 BODY[] {{{BIG}}}\r\n").into_bytes();
        v.resize(v.len() + BIG, b'x');
        v.extend_from_slice(format!(")\r\n{tag} OK done\r\n").as_bytes());
        v
    });
    let (sock, rc, out) = recv_from(&srv);
    assert_eq!(rc, -1129, "{}", env().plugin.last_error());
    assert_eq!(out, HostValue::Binary(b"old value".to_vec()), "untouched");
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), 0);
    assert_eq!(disconnect(sock).code(), 0);
}
