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
    smtp_connect_to(&format!("localhost:{port}"), user, pass, i(secure), options)
}

/// SMTPConnect to `server` as given (`secure` may be HostValue::None: left out).
fn smtp_connect_to(
    server: &str,
    user: &str,
    pass: &str,
    secure: HostValue,
    options: &str,
) -> CallOutcome {
    let mut args = vec![
        s(server),
        s("client.test"),
        s(user),
        s(pass),
        HostValue::Proc("onStatus".into()),
        list(),
        secure,
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
fn utf8_headers_go_with_smtputf8_and_8bit_bodies_with_8bitmime() {
    let p = peers();
    let o = smtp_connect(p.postfix.submission_port, "alice", PASSWORD, 2, "");
    let sock = o.code();
    assert!(sock > 0, "{}", env().plugin.last_error());
    // UTF-8 in the header section, ASCII addresses (RFC 6532): SMTPUTF8.
    let msg = "From: J\u{f6}rg <alice@mail.test>\r\nTo: u29@mail.test\r\nSubject: Gr\u{fc}\u{df}e\r\nMessage-ID: <utf8-head@mail.test>\r\n\r\nK\u{f6}ln\r\n";
    let (o, _) = send_message(sock, &address("alice"), &address("u29"), msg.as_bytes());
    let st = status_text(&o);
    assert_eq!(o.code(), 0, "{}\n{st}", env().plugin.last_error());
    assert!(
        st.contains(" BODY=8BITMIME SMTPUTF8 | RCPT TO:<u29@mail.test>"),
        "{st}"
    );
    // 8-bit in the body only: BODY=8BITMIME, no SMTPUTF8.
    let msg2 = "Subject: latin\r\nMessage-ID: <utf8-body@mail.test>\r\n\r\nK\u{f6}ln\r\n";
    let (o, _) = send_message(sock, &address("alice"), &address("u29"), msg2.as_bytes());
    let st = status_text(&o);
    assert_eq!(o.code(), 0, "{}\n{st}", env().plugin.last_error());
    assert!(
        st.contains(" BODY=8BITMIME | RCPT TO:<u29@mail.test>"),
        "{st}"
    );
    env().plugin.call("SMTPDisconnect", &mut [i(sock)]);
    let got = String::from_utf8(read_back("u29", "utf8-body@mail.test")).unwrap();
    // Postfix adds Date and From after our headers; the body is as sent.
    assert!(
        got.contains("\r\nSubject: latin\r\n") && got.ends_with("\r\n\r\nK\u{f6}ln\r\n"),
        "{got}"
    );
    // Postfix took the SMTPUTF8 message; what became of it shows that it
    // knew the transaction as SMTPUTF8 (it never guesses that for SMTP
    // clients: smtputf8_autodetect_classes). Dovecot 2.3's LMTP does not
    // offer SMTPUTF8, so Postfix bounces it ("SMTPUTF8 is required"); an
    // LMTP that does gets it delivered with the UTF-8 header lines intact.
    match delivery_status(&p.postfix, "utf8-head@mail.test", &address("u29")) {
        s if s.starts_with("status=sent") => {
            let got = String::from_utf8(read_back("u29", "utf8-head@mail.test")).unwrap();
            assert!(got.ends_with(msg), "{got}");
        }
        s => assert!(
            s.starts_with("status=bounced") && s.contains("SMTPUTF8 is required"),
            "{s}\n{}",
            p.postfix.log()
        ),
    }
}

/// Postfix's delivery result for the message with this Message-ID to
/// `rcpt`: the log's `status=...` text.
fn delivery_status(pf: &Postfix, message_id: &str, rcpt: &str) -> String {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let log = pf.log();
        let qid = log.lines().find_map(|l| {
            let (head, _) = l.split_once(&format!(": message-id=<{message_id}>"))?;
            head.rsplit(' ').next().map(str::to_string)
        });
        if let Some(qid) = qid {
            let needle = format!("{qid}: to=<{rcpt}>");
            if let Some(l) = log
                .lines()
                .find(|l| l.contains(&needle) && l.contains("status="))
            {
                return l[l.find("status=").unwrap()..].to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no delivery status for {message_id}:\n{}", pf.log());
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
        let st = status_text(&o);
        for line in st.lines().filter(|l| l.starts_with("S: 334")) {
            assert_eq!(line, "S: 334 <SASL challenge redacted>", "{opt}: {st}");
        }
        if opt.contains("CRAM") {
            assert!(
                st.contains("S: 334 <SASL challenge redacted>"),
                "{opt}: {st}"
            );
        }
        assert_eq!(
            env()
                .plugin
                .call("SMTPDisconnect", &mut [i(o.code())])
                .code(),
            0
        );
    }
    // A wrong password over implicit TLS. (Port 465 without secure: see
    // port_defaults_against_postfix_on_the_standard_ports.)
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
    let copies: Vec<String> = ["u25", "u26", "u27"]
        .iter()
        .map(|user| String::from_utf8(read_back(user, "X-Report: weekly")).unwrap())
        .collect();
    let ours = |text: &str| -> String {
        // Our message starts at our first header, Date: what comes before
        // it is what Postfix and Dovecot added (Received, Return-Path,
        // Delivered-To).
        let at = text
            .find("\r\nDate: ")
            .map(|k| k + 2)
            .unwrap_or_else(|| panic!("no Date header: {text}"));
        text[at..].to_string()
    };
    for (user, text) in ["u25", "u26", "u27"].iter().zip(&copies) {
        let msg = ours(text);
        // Every recipient, the Bcc one too, got the very same message.
        assert_eq!(msg, ours(&copies[0]), "{user}");
        let (head, body) = msg.split_once("\r\n\r\n").expect("header and body");
        // The body exactly, the "." line unstuffed again.
        assert_eq!(
            body, "Hallo,\r\nder Bericht ist fertig.\r\n.\r\nEnde\r\n",
            "{user}"
        );
        let subject = header(head, "Subject").expect("Subject");
        assert!(subject.starts_with("=?utf-8?"), "{subject}");
        assert_eq!(decode_words(&subject), "Grüße aus Köln — Bericht");
        let from = header(head, "From").expect("From");
        let (name, addr) = from.rsplit_once(" <").expect("name <address>");
        assert!(name.starts_with("=?utf-8?"), "{from}");
        assert_eq!(decode_words(name), "Alice Müller");
        assert_eq!(addr, "alice@mail.test>");
        assert_eq!(headers(head, "Date").len(), 1, "{head}");
        check_date(&header(head, "Date").unwrap());
        assert_eq!(header(head, "To").as_deref(), Some("u25@mail.test"));
        assert_eq!(header(head, "Cc").as_deref(), Some("u26@mail.test"));
        assert_eq!(header(head, "X-Priority").as_deref(), Some("1 (Highest)"));
        assert!(header(head, "Message-ID").is_some_and(|m| m.ends_with("@mail.test>")));
        // The Bcc recipient is nowhere in the message.
        assert!(headers(head, "Bcc").is_empty(), "{head}");
        assert!(!msg.contains("u27"), "{msg}");
    }
    // ... though copies[2] came from u27's own INBOX: it was delivered.
}

/// The unfolded values of every `name` header in `head`.
fn headers(head: &str, name: &str) -> Vec<String> {
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", "\t");
    unfolded
        .split("\r\n")
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name)
                .then(|| v.trim_start().to_string())
        })
        .collect()
}

fn header(head: &str, name: &str) -> Option<String> {
    headers(head, name).into_iter().next()
}

/// RFC 2047: encoded words (UTF-8, B or Q) decoded, the white space
/// between two of them dropped, other text kept.
fn decode_words(v: &str) -> String {
    let mut out = String::new();
    let mut prev_encoded = false;
    let mut pending_space = String::new();
    for (k, word) in v.split(' ').enumerate() {
        if k > 0 {
            pending_space.push(' ');
        }
        if word.is_empty() {
            continue;
        }
        let encoded =
            word.starts_with("=?") && word.ends_with("?=") && word.matches('?').count() == 4;
        if !(encoded && prev_encoded) {
            out.push_str(&pending_space);
        }
        pending_space.clear();
        if !encoded {
            out.push_str(word);
            prev_encoded = false;
            continue;
        }
        let parts: Vec<&str> = word[2..word.len() - 2].split('?').collect();
        assert!(parts[0].eq_ignore_ascii_case("utf-8"), "{word}");
        let bytes = if parts[1].eq_ignore_ascii_case("B") {
            openssl::base64::decode_block(parts[2]).unwrap()
        } else {
            assert!(parts[1].eq_ignore_ascii_case("Q"), "{word}");
            let p = parts[2].as_bytes();
            let mut b = Vec::new();
            let mut k = 0;
            while k < p.len() {
                match p[k] {
                    b'_' => b.push(b' '),
                    b'=' => {
                        let hex = std::str::from_utf8(&p[k + 1..k + 3]).unwrap();
                        b.push(u8::from_str_radix(hex, 16).unwrap());
                        k += 2;
                    }
                    c => b.push(c),
                }
                k += 1;
            }
            b
        };
        out.push_str(&String::from_utf8(bytes).expect("a word splits a character"));
        prev_encoded = true;
    }
    out
}

/// `Sun, 22 Nov 2026 06:41:41 +0000`: RFC 5322 3.3 with the right
/// weekday, in UTC, and within five minutes of now.
fn check_date(v: &str) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let f: Vec<&str> = v.split(' ').collect();
    assert_eq!(f.len(), 6, "{v:?}");
    let weekday = f[0].strip_suffix(',').unwrap_or_else(|| panic!("{v:?}"));
    let day: i64 = f[1].parse().unwrap();
    assert!(
        (1..=2).contains(&f[1].len()) && (1..=31).contains(&day),
        "{v:?}"
    );
    let month = MONTHS
        .iter()
        .position(|m| *m == f[2])
        .unwrap_or_else(|| panic!("{v:?}")) as i64
        + 1;
    assert_eq!(f[3].len(), 4, "{v:?}");
    let year: i64 = f[3].parse().unwrap();
    let hms: Vec<i64> = f[4]
        .split(':')
        .map(|x| {
            assert_eq!(x.len(), 2, "{v:?}");
            x.parse().unwrap()
        })
        .collect();
    assert!(
        hms.len() == 3 && hms[0] < 24 && hms[1] < 60 && hms[2] < 61,
        "{v:?}"
    );
    assert_eq!(f[5], "+0000", "{v:?}");
    // Days since 1970-01-01 (a Thursday), H. Hinnant's days_from_civil.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    assert_eq!(weekday, DAYS[days.rem_euclid(7) as usize], "{v:?}");
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((secs - now).abs() < 300, "{v:?} is not now");
}

#[test]
fn port_defaults_against_postfix_on_the_standard_ports() {
    use support::postfix::{standard_ports_ip, Options as PostfixOptions};
    let p = peers();
    let ip = standard_ports_ip();
    let leaf = env().ca.leaf(
        "localhost",
        &["localhost"],
        &["127.0.0.1", &ip.to_string()],
        -1,
        30,
    );
    let pf = Postfix::start_with(
        &p.dovecot,
        &leaf,
        &PostfixOptions {
            standard_ports: Some(ip),
            ..Default::default()
        },
    );
    let check = |server: &str, user: &str, secure: HostValue, want: &[&str], not: &[&str]| {
        let o = smtp_connect_to(
            server,
            user,
            if user.is_empty() { "" } else { PASSWORD },
            secure,
            "",
        );
        let st = status_text(&o);
        assert!(
            o.code() > 0,
            "{server}: {}\n{st}\n{}",
            env().plugin.last_error(),
            pf.log()
        );
        for w in want {
            assert!(st.contains(w), "{server}: want {w:?}\n{st}");
        }
        for n in not {
            assert!(!st.contains(n), "{server}: not {n:?}\n{st}");
        }
        o.code()
    };
    let port25 = format!("{ip}:25");
    // No port, or port 0: 25, plaintext, HELO.
    for server in [ip.to_string(), format!("{ip}:0")] {
        let sock = check(
            &server,
            "",
            HostValue::None,
            &[&port25, "C: HELO client.test"],
            &["TLS"],
        );
        let msg = b"Subject: port 25\r\nMessage-ID: <port25@mail.test>\r\n\r\nx\r\n";
        let (o, _) = send_message(sock, "someone@example.org", &address("u28"), msg);
        assert_eq!(o.code(), 0, "{}", env().plugin.last_error());
        env().plugin.call("SMTPDisconnect", &mut [i(sock)]);
    }
    read_back("u28", "port25@mail.test");
    // 587 turns EHLO on by itself (and no TLS unless asked for).
    let sock = check(
        &format!("{ip}:587"),
        "",
        i(0),
        &["C: EHLO client.test", "S: 250-STARTTLS"],
        &["C: HELO", "C: STARTTLS"],
    );
    env().plugin.call("SMTPDisconnect", &mut [i(sock)]);
    // 465 means implicit TLS with secure left out or 0, verified, so
    // AUTO may log in with PLAIN; and secure = 1 without a port is 465.
    for (server, secure) in [
        (format!("{ip}:465"), HostValue::None),
        (format!("{ip}:465"), i(0)),
        (format!("{ip}:465"), FALSE),
        (ip.to_string(), i(1)),
    ] {
        let sock = check(
            &server,
            "u28",
            secure,
            &[
                &format!("{ip}:465"),
                "certificate verified",
                "Logged in as u28",
            ],
            &["C: STARTTLS", PASSWORD],
        );
        assert_eq!(
            env().plugin.call("SMTPDisconnect", &mut [i(sock)]).code(),
            0
        );
    }
    // SMTPSend to port 465 without secure: implicit TLS too.
    let mut args = vec![
        s(&format!("{ip}:465 client.test")),
        s(&address("u28")),
        s(&address("u28")),
        s("over 465"),
        s("body"),
        s(""),
        s(""),
        s(""),
        HostValue::Proc("onStatus".into()),
        i(0),
        s("X-Test: smtpsend-465"),
        s("u28"),
        s(PASSWORD),
    ];
    let o = env().plugin.call("SMTPSend", &mut args);
    let st = status_text(&o);
    assert_eq!(o.code(), 0, "{}\n{st}", env().plugin.last_error());
    assert!(
        st.contains("certificate verified") && !st.contains("C: STARTTLS"),
        "{st}"
    );
    read_back("u28", "X-Test: smtpsend-465");
}
