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
