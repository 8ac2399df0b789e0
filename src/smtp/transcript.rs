//! SMTP transcript tests: `S:` / `C:` scripts, a fake clock, no sockets.

use super::connect::{SmtpConnectOp, SmtpConnectSettings};
use super::reply::ReplyReader;
use super::send::{Dsn, SendOp, SimpleOp};
use super::session::{run_smtp, SmtpSession};
use crate::error::MailError;
use crate::imap::connect::{Credentials, SecureMode};
use crate::imap::transcript::{Script, Seen};
use crate::options::AuthType;
use std::time::Duration;

fn settings(mode: SecureMode, user: Option<(&str, &str)>, auth: AuthType) -> SmtpConnectSettings {
    SmtpConnectSettings {
        mode,
        localname: "client.test".into(),
        extended: false,
        creds: user.map(|(u, p)| Credentials {
            username: u.into(),
            password: p.into(),
        }),
        auth,
        host: "mx.test".into(),
        port: 587,
    }
}

fn connect(
    st: SmtpConnectSettings,
    script: &str,
) -> (Result<(), MailError>, SmtpSession, Seen, Script) {
    let mut t = Script::parse(script);
    let mut s = SmtpSession::new(Duration::from_secs(30));
    s.tls = st.mode == SecureMode::Implicit;
    let mut rd = ReplyReader::default();
    let mut seen = Seen::default();
    let r = run_smtp(
        &mut SmtpConnectOp::new(st),
        &mut s,
        &mut rd,
        &mut t,
        &mut seen,
    );
    (r, s, seen, t)
}

#[test]
fn plain_helo_without_options() {
    let (r, s, _, _) = connect(
        settings(SecureMode::Plain, None, AuthType::Auto),
        "S: 220 mx.test ESMTP
         C: HELO client.test
         S: 250 mx.test",
    );
    r.unwrap();
    assert!(!s.extended);
}

#[test]
fn starttls_then_ehlo_again_then_plain_auth_redacted() {
    // base64("\0alice\0secret")
    let (r, s, seen, _) = connect(
        settings(
            SecureMode::StartTls,
            Some(("alice", "secret")),
            AuthType::Auto,
        ),
        "S: 220 mx.test ESMTP
         C: EHLO client.test
         S: 250-mx.test\\r\\n250-AUTH LOGIN\\r\\n250 STARTTLS
         C: STARTTLS
         S: 220 go ahead
         TLS
         C: EHLO client.test
         S: 250-mx.test\\r\\n250-PIPELINING\\r\\n250 AUTH PLAIN LOGIN
         C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
         S: 235 2.7.0 ok",
    );
    r.unwrap();
    assert!(s.tls && s.has("PIPELINING") && !s.has("STARTTLS"));
    let all = seen.status.join("\n");
    assert!(
        all.contains("AUTH PLAIN <redacted>") && !all.contains("AGFsaWNl"),
        "{all}"
    );
}

#[test]
fn starttls_missing_or_refused_never_continues_in_plaintext() {
    let (r, _, _, _) = connect(
        settings(SecureMode::StartTls, Some(("a", "b")), AuthType::Auto),
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250 AUTH PLAIN",
    );
    assert_eq!(r.unwrap_err().code(), -1114);
    let (r, _, _, _) = connect(
        settings(SecureMode::StartTls, Some(("a", "b")), AuthType::Auto),
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250 STARTTLS
         C: STARTTLS
         S: 454 TLS not available",
    );
    assert_eq!(r.unwrap_err().code(), -1115);
}

#[test]
fn bytes_after_220_ready_are_injection() {
    let (r, _, _, _) = connect(
        settings(SecureMode::StartTls, None, AuthType::Auto),
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250 STARTTLS
         C: STARTTLS
         S: 220 Ready\\r\\n250-injected",
    );
    assert_eq!(r.unwrap_err().code(), -1116);
}

#[test]
fn auto_refuses_plain_and_login_without_tls_but_uses_cram_md5() {
    let (r, _, _, _) = connect(
        settings(SecureMode::Plain, Some(("a", "b")), AuthType::Auto),
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250 AUTH PLAIN LOGIN",
    );
    assert_eq!(r.unwrap_err().code(), -1134);
    let (r, _, seen, _) = connect(
        settings(
            SecureMode::Plain,
            Some(("tim", "tanstaaftanstaaf")),
            AuthType::Auto,
        ),
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250 AUTH PLAIN CRAM-MD5
         C: AUTH CRAM-MD5
         S: 334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+
         C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
         S: 235 ok",
    );
    r.unwrap();
    assert!(!seen.status.join("\n").contains("dGltIGI5"));
}

#[test]
fn auth_login_two_steps_and_failure_text() {
    let (r, _, seen, _) = connect(
        settings(
            SecureMode::Implicit,
            Some(("alice", "secret")),
            AuthType::Login,
        ),
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250 AUTH LOGIN
         C: AUTH LOGIN
         S: 334 VXNlcm5hbWU6
         C: YWxpY2U=
         S: 334 UGFzc3dvcmQ6
         C: c2VjcmV0
         S: 535 5.7.8 Authentication credentials invalid",
    );
    let e = r.unwrap_err();
    assert_eq!(e.code(), -1120);
    assert!(e.to_string().contains("credentials invalid"));
    assert!(!seen.status.join("\n").contains("c2VjcmV0"));
}

#[test]
fn xoauth2_error_continuation() {
    let (r, _, _, _) = connect(
        settings(
            SecureMode::Implicit,
            Some(("a@b", "tok")),
            AuthType::XOAuth2,
        ),
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250 AUTH XOAUTH2 OAUTHBEARER
         C: AUTH XOAUTH2 dXNlcj1hQGIBYXV0aD1CZWFyZXIgdG9rAQE=
         S: 334 eyJzdGF0dXMiOiI0MDEifQ==
         C: 
         S: 535 5.7.8 no",
    );
    let e = r.unwrap_err();
    assert_eq!(e.code(), -1120);
    assert!(e.to_string().contains("401"), "{e}");
}

#[test]
fn multi_line_greeting_and_refusal() {
    let (r, _, _, _) = connect(
        settings(SecureMode::Plain, None, AuthType::Auto),
        "S: 554-not today\\r\\n554 go away",
    );
    let e = r.unwrap_err();
    assert_eq!(e.code(), -1126);
    assert!(e.to_string().contains("go away"));
}

fn ready(caps: &[&str]) -> SmtpSession {
    let mut s = SmtpSession::new(Duration::from_secs(30));
    s.extended = true;
    s.caps = caps.iter().map(|c| c.to_string()).collect();
    s
}

fn send(
    s: &mut SmtpSession,
    op: &mut SendOp,
    script: &str,
) -> Result<super::send::Sent, MailError> {
    let mut t = Script::parse(script);
    let mut rd = ReplyReader::default();
    let mut seen = Seen::default();
    run_smtp(op, s, &mut rd, &mut t, &mut seen)
}

#[test]
fn pipelined_envelope_with_a_refused_recipient() {
    let mut s = ready(&["PIPELINING", "SIZE 100000", "8BITMIME"]);
    let rcpts = vec!["a@x.test".to_string(), "nobody@x.test".to_string()];
    let mut op = SendOp::new(
        &s,
        "me@x.test",
        rcpts,
        b"Subject: t\r\n\r\n.hi\r\n",
        Dsn::default(),
    )
    .unwrap();
    let sent = send(
        &mut s,
        &mut op,
        "C: MAIL FROM:<me@x.test> SIZE=20
         C: RCPT TO:<a@x.test>
         C: RCPT TO:<nobody@x.test>
         C: DATA
         S: 250 ok\\r\\n250 ok\\r\\n550 5.1.1 no such user\\r\\n354 go
         C: Subject: t
         C: 
         C: ..hi
         C: .
         S: 250 2.0.0 queued as ABC",
    )
    .unwrap();
    assert_eq!(sent.results.len(), 2);
    assert!(sent.results[0].accepted && !sent.results[1].accepted);
    assert_eq!(sent.results[1].code, 550);
    assert!(sent.reply.contains("queued as ABC"));
}

#[test]
fn no_recipient_accepted_is_an_error_and_resets() {
    let mut s = ready(&[]);
    let mut op = SendOp::new(
        &s,
        "me@x.test",
        vec!["b@x.test".into()],
        b"x",
        Dsn::default(),
    )
    .unwrap();
    let e = send(
        &mut s,
        &mut op,
        "C: MAIL FROM:<me@x.test>
         S: 250 ok
         C: RCPT TO:<b@x.test>
         S: 550 no
         C: RSET
         S: 250 ok",
    )
    .unwrap_err();
    assert_eq!(e.code(), -1126);
    assert!(e.to_string().contains("b@x.test: 550 no"), "{e}");
}

#[test]
fn dsn_smtputf8_and_size_checks() {
    let s = ready(&["SIZE 10"]);
    assert!(SendOp::new(&s, "a@x", vec!["b@x".into()], &[b'x'; 11], Dsn::default()).is_err());
    assert!(SendOp::new(&s, "ä@x", vec!["b@x".into()], b"x", Dsn::default()).is_err());
    assert!(SendOp::new(
        &s,
        "a@x",
        vec!["b@x".into()],
        "é".as_bytes(),
        Dsn::default()
    )
    .is_err());
    let dsn = Dsn {
        notify: Some("SUCCESS,FAILURE".into()),
        ret: Some("HDRS".into()),
        envid: Some("id+1".into()),
    };
    assert!(SendOp::new(&s, "a@x", vec!["b@x".into()], b"x", dsn.clone()).is_err());
    let mut s = ready(&["DSN", "SMTPUTF8", "8BITMIME"]);
    let mut op = SendOp::new(&s, "ä@x", vec!["b@x".into()], "é".as_bytes(), dsn).unwrap();
    send(
        &mut s,
        &mut op,
        "C: MAIL FROM:<ä@x> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1
         S: 250 ok
         C: RCPT TO:<b@x> NOTIFY=SUCCESS,FAILURE
         S: 250 ok
         C: DATA
         S: 354 go
         C: é
         C: .
         S: 250 ok",
    )
    .unwrap();
}

#[test]
fn noop_rset_quit_and_silence() {
    let mut s = ready(&[]);
    let mut rd = ReplyReader::default();
    let mut seen = Seen::default();
    let mut t = Script::parse("C: NOOP\nS: 250 ok\nC: RSET\nS: 250 ok\nC: QUIT\nS: 221 bye");
    run_smtp(&mut SimpleOp::noop(), &mut s, &mut rd, &mut t, &mut seen).unwrap();
    run_smtp(&mut SimpleOp::rset(), &mut s, &mut rd, &mut t, &mut seen).unwrap();
    run_smtp(&mut SimpleOp::quit(), &mut s, &mut rd, &mut t, &mut seen).unwrap();
    let mut t = Script::parse("C: NOOP\nSILENCE");
    let e = run_smtp(&mut SimpleOp::noop(), &mut s, &mut rd, &mut t, &mut seen).unwrap_err();
    assert_eq!(e.code(), -522);
}

#[test]
fn null_sender() {
    let mut s = ready(&[]);
    let mut op = SendOp::new(&s, "", vec!["a@x".into()], b"x", Dsn::default()).unwrap();
    send(
        &mut s,
        &mut op,
        "C: MAIL FROM:<>
         S: 250 ok
         C: RCPT TO:<a@x>
         S: 250 ok
         C: DATA
         S: 354 go
         C: x
         C: .
         S: 250 ok",
    )
    .unwrap();
}

#[test]
fn long_initial_response_waits_for_the_empty_challenge() {
    let token = "t".repeat(600);
    let mut st = settings(
        SecureMode::Implicit,
        Some(("a@b", &token)),
        AuthType::XOAuth2,
    );
    st.extended = true;
    let ir = openssl::base64::encode_block(
        format!("user=a@b\x01auth=Bearer {token}\x01\x01").as_bytes(),
    );
    let script = format!(
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250 AUTH XOAUTH2
         C: AUTH XOAUTH2
         S: 334 
         C: {ir}
         S: 235 ok"
    );
    let (r, _, seen, _) = connect(st, &script);
    r.unwrap();
    assert!(!seen.status.join("\n").contains(&token));
}

#[test]
fn ehlo_refused_falls_back_to_helo_only_when_extensions_are_optional() {
    let mut st = settings(SecureMode::Plain, None, AuthType::Auto);
    st.extended = true;
    let (r, s, _, _) = connect(
        st,
        "S: 220 mx
         C: EHLO client.test
         S: 500 what
         C: HELO client.test
         S: 250 ok",
    );
    r.unwrap();
    assert!(!s.extended);
    let (r, _, _, _) = connect(
        settings(SecureMode::Plain, Some(("a", "b")), AuthType::Auto),
        "S: 220 mx
         C: EHLO client.test
         S: 500 what",
    );
    assert_eq!(r.unwrap_err().code(), -1126);
}

#[test]
fn refused_data_resets_and_a_pipelined_mail_failure_ends_a_354() {
    let mut s = ready(&[]);
    let mut op = SendOp::new(&s, "me@x", vec!["a@x".into()], b"x", Dsn::default()).unwrap();
    let e = send(
        &mut s,
        &mut op,
        "C: MAIL FROM:<me@x>
         S: 250 ok
         C: RCPT TO:<a@x>
         S: 250 ok
         C: DATA
         S: 451 later
         C: RSET
         S: 250 ok",
    )
    .unwrap_err();
    assert_eq!(e.code(), -1126);
    let mut s = ready(&["PIPELINING"]);
    let mut op = SendOp::new(&s, "me@x", vec!["a@x".into()], b"x", Dsn::default()).unwrap();
    let e = send(
        &mut s,
        &mut op,
        "C: MAIL FROM:<me@x>
         C: RCPT TO:<a@x>
         C: DATA
         S: 451 no\\r\\n250 ok\\r\\n354 go
         C: .
         S: 554 no transaction
         C: RSET
         S: 250 ok",
    )
    .unwrap_err();
    assert!(e.to_string().contains("MAIL FROM"), "{e}");
    // 8-bit to a server that only spoke HELO is refused before sending.
    let mut helo = SmtpSession::new(Duration::from_secs(5));
    helo.extended = false;
    assert!(SendOp::new(
        &helo,
        "a@x",
        vec!["b@x".into()],
        "é".as_bytes(),
        Dsn::default()
    )
    .is_err());
}

#[test]
fn auto_falls_back_from_cram_md5_to_plain_over_tls() {
    let (r, _, seen, _) = connect(
        settings(
            SecureMode::Implicit,
            Some(("alice", "secret")),
            AuthType::Auto,
        ),
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250 AUTH CRAM-MD5 PLAIN
         C: AUTH CRAM-MD5
         S: 334 PDEyMz4=
         C: YWxpY2UgZjJiY2RmZGY3ZTRlNTRlNjhlZWExNDIxY2E3ODAwYzk=
         S: 535 5.7.8 no
         C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
         S: 235 ok",
    );
    r.unwrap();
    assert!(seen.status.join("\n").contains("trying PLAIN"));
}

#[test]
fn oauthbearer_exact_initial_response_then_success() {
    // RFC 7628 3.1: gs2 header with the saslname escaped (`=` as =3D, `,` as
    // =2C), host and port of the server, the bearer token, two ^A.
    // base64("n,a=ali=3Dce=2Cx@example.com,\x01host=mx.test\x01port=587\x01auth=Bearer ya29.tok\x01\x01")
    let (r, _, seen, _) = connect(
        settings(
            SecureMode::Implicit,
            Some(("ali=ce,x@example.com", "ya29.tok")),
            AuthType::OAuthBearer,
        ),
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250 AUTH PLAIN OAUTHBEARER
         C: AUTH OAUTHBEARER bixhPWFsaT0zRGNlPTJDeEBleGFtcGxlLmNvbSwBaG9zdD1teC50ZXN0AXBvcnQ9NTg3AWF1dGg9QmVhcmVyIHlhMjkudG9rAQE=
         S: 235 2.7.0 ok",
    );
    r.unwrap();
    let all = seen.status.join("\n");
    assert!(all.contains("C: AUTH OAUTHBEARER <redacted>"), "{all}");
    assert!(all.contains("with OAUTHBEARER"), "{all}");
    assert!(!all.contains("ya29") && !all.contains("bixh"), "{all}");
}

#[test]
fn oauthbearer_error_continuation_answers_with_a_single_ctrl_a() {
    // The server's 334 carries base64 JSON; RFC 7628 3.2.3: the client
    // answers base64("\x01") ("AQ=="), the server then fails the exchange.
    // base64({"status":"invalid_token","scope":"https://mail.example.com/"})
    let (r, _, seen, _) = connect(
        settings(
            SecureMode::Implicit,
            Some(("ali=ce,x@example.com", "ya29.tok")),
            AuthType::OAuthBearer,
        ),
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250 AUTH OAUTHBEARER
         C: AUTH OAUTHBEARER bixhPWFsaT0zRGNlPTJDeEBleGFtcGxlLmNvbSwBaG9zdD1teC50ZXN0AXBvcnQ9NTg3AWF1dGg9QmVhcmVyIHlhMjkudG9rAQE=
         S: 334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJodHRwczovL21haWwuZXhhbXBsZS5jb20vIn0=
         C: AQ==
         S: 535 5.7.8 Authentication credentials invalid",
    );
    let e = r.unwrap_err();
    assert_eq!(e.code(), -1120);
    let t = e.to_string();
    assert!(
        t.contains("OAUTHBEARER refused: 535 5.7.8 Authentication credentials invalid"),
        "{t}"
    );
    assert!(
        t.contains("status invalid_token (token invalid or expired)")
            && t.contains("scope https://mail.example.com/"),
        "{t}"
    );
    assert!(!seen.status.join("\n").contains("ya29"));
}

#[test]
fn xoauth2_success() {
    // base64("user=alice@example.com\x01auth=Bearer ya29.tok\x01\x01")
    let (r, s, seen, _) = connect(
        settings(
            SecureMode::Implicit,
            Some(("alice@example.com", "ya29.tok")),
            AuthType::XOAuth2,
        ),
        "S: 220 mx
         C: EHLO client.test
         S: 250-mx\\r\\n250-8BITMIME\\r\\n250 AUTH XOAUTH2 PLAIN
         C: AUTH XOAUTH2 dXNlcj1hbGljZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnRvawEB
         S: 235 2.7.0 Accepted",
    );
    r.unwrap();
    assert!(s.extended && s.has("8BITMIME"));
    let all = seen.status.join("\n");
    assert!(
        all.contains("Logged in as alice@example.com with XOAUTH2"),
        "{all}"
    );
    assert!(all.contains("C: AUTH XOAUTH2 <redacted>"), "{all}");
    assert!(!all.contains("ya29") && !all.contains("dXNlcj1"), "{all}");
}

/// One message to one recipient, the whole transaction scripted: `mail`
/// is the MAIL FROM line the client must send, `body` the data lines.
fn send_one(caps: &[&str], from: &str, message: &[u8], mail: &str, body: &[&str]) {
    let mut s = ready(caps);
    let mut op = SendOp::new(&s, from, vec!["b@x.test".into()], message, Dsn::default())
        .unwrap_or_else(|e| panic!("{mail}: {e}"));
    let mut script =
        format!("C: {mail}\nS: 250 ok\nC: RCPT TO:<b@x.test>\nS: 250 ok\nC: DATA\nS: 354 go\n");
    for l in body {
        script.push_str(&format!("C: {l}\n"));
    }
    script.push_str("C: .\nS: 250 queued");
    send(&mut s, &mut op, &script).unwrap();
}

/// SendOp::new's refusal (nothing is sent: there is no transport yet).
fn refused(caps: &[&str], from: &str, message: &[u8]) -> MailError {
    let s = ready(caps);
    match SendOp::new(&s, from, vec!["b@x.test".into()], message, Dsn::default()) {
        Ok(_) => panic!("accepted with {caps:?}"),
        Err(e) => e,
    }
}

#[test]
fn eight_bit_needs_8bitmime_even_when_smtputf8_is_offered() {
    let body = "Subject: t\r\n\r\ncaf\u{e9}\r\n".as_bytes();
    // RFC 6531 servers should offer 8BITMIME too; one that does not has not
    // said it takes 8-bit data, so SMTPUTF8 alone is not enough.
    for caps in [
        &["SMTPUTF8"][..],
        &[],
        &["PIPELINING", "SMTPUTF8", "SIZE 1000"],
    ] {
        let e = refused(caps, "a@x.test", body);
        assert_eq!(e.code(), -1132, "{caps:?}");
        assert!(
            e.to_string()
                .contains("8-bit bytes and the server lacks 8BITMIME"),
            "{e}"
        );
    }
    // With 8BITMIME: declared; the addresses and headers are ASCII, so no SMTPUTF8.
    send_one(
        &["8BITMIME", "SMTPUTF8"],
        "a@x.test",
        body,
        "MAIL FROM:<a@x.test> BODY=8BITMIME",
        &["Subject: t", "", "caf\u{e9}"],
    );
    send_one(
        &["8BITMIME"],
        "a@x.test",
        body,
        "MAIL FROM:<a@x.test> BODY=8BITMIME",
        &["Subject: t", "", "caf\u{e9}"],
    );
}

#[test]
fn utf8_headers_with_ascii_addresses_declare_smtputf8() {
    let msg = "From: J\u{f6}rg <a@x.test>\r\nSubject: Gr\u{fc}\u{df}e\r\n\r\nplain\r\n";
    send_one(
        &["8BITMIME", "SMTPUTF8"],
        "a@x.test",
        msg.as_bytes(),
        "MAIL FROM:<a@x.test> BODY=8BITMIME SMTPUTF8",
        &[
            "From: J\u{f6}rg <a@x.test>",
            "Subject: Gr\u{fc}\u{df}e",
            "",
            "plain",
        ],
    );
    // Without SMTPUTF8 such headers cannot go (RFC 6532 3.7): refused.
    let e = refused(&["8BITMIME"], "a@x.test", msg.as_bytes());
    assert_eq!(e.code(), -1132);
    assert!(
        e.to_string().contains(
            "header section has UTF-8 text (RFC 6532) and the server does not offer SMTPUTF8"
        ),
        "{e}"
    );
    // Without either, the 8-bit refusal comes first.
    let e = refused(&["SMTPUTF8"], "a@x.test", msg.as_bytes());
    assert!(e.to_string().contains("lacks 8BITMIME"), "{e}");
    // A message without an empty line is all header section.
    let e = refused(&["8BITMIME"], "a@x.test", "X-Note: \u{e9}".as_bytes());
    assert!(e.to_string().contains("RFC 6532"), "{e}");
}

#[test]
fn utf8_in_the_body_only_or_non_utf8_headers_need_only_8bitmime() {
    // UTF-8 after the empty line is body text: 8BITMIME, not SMTPUTF8.
    send_one(
        &["8BITMIME", "SMTPUTF8"],
        "a@x.test",
        "Subject: t\n\n\u{fc}ber\n".as_bytes(),
        "MAIL FROM:<a@x.test> BODY=8BITMIME",
        &["Subject: t", "", "\u{fc}ber"],
    );
    // Latin-1 bytes in a header are 8-bit but not UTF-8: no SMTPUTF8.
    let mut s = ready(&["8BITMIME"]);
    let mut op = SendOp::new(
        &s,
        "a@x.test",
        vec!["b@x.test".into()],
        b"Subject: caf\xe9\r\n\r\nx\r\n",
        Dsn::default(),
    )
    .unwrap();
    send(
        &mut s,
        &mut op,
        "C: MAIL FROM:<a@x.test> BODY=8BITMIME
         S: 250 ok
         C: RCPT TO:<b@x.test>
         S: 250 ok
         C: DATA
         S: 354 go
         C: Subject: caf\u{fffd}
         C: 
         C: x
         C: .
         S: 250 ok",
    )
    .unwrap();
}

#[test]
fn utf8_addresses_with_an_ascii_message_need_only_smtputf8() {
    send_one(
        &["SMTPUTF8"],
        "j\u{f6}rg@x.test",
        b"Subject: t\r\n\r\nx\r\n",
        "MAIL FROM:<j\u{f6}rg@x.test> SMTPUTF8",
        &["Subject: t", "", "x"],
    );
    let e = refused(
        &["8BITMIME"],
        "j\u{f6}rg@x.test",
        b"Subject: t\r\n\r\nx\r\n",
    );
    assert_eq!(e.code(), -1132);
    assert!(e.to_string().contains("does not offer SMTPUTF8"), "{e}");
    // A UTF-8 recipient counts as well as a UTF-8 sender.
    let s = ready(&["8BITMIME"]);
    let e = SendOp::new(
        &s,
        "a@x.test",
        vec!["b@x.test".into(), "\u{e9}@x.test".into()],
        b"x",
        Dsn::default(),
    )
    .err()
    .expect("refused");
    assert!(e.to_string().contains("does not offer SMTPUTF8"), "{e}");
}
