//! Transcript tests: the protocol core driven by `S:` / `C:` scripts with a
//! fake clock, no sockets. `TLS` marks where the handshake happens and
//! `SILENCE` a server that stops answering.

use super::codec::{Fragmentizer, FrameLimits};
use super::connect::{AuthSettings, ConnectOp, Credentials, SecureMode};
use super::driver::{run, Observer, Transport};
use super::session::ImapSession;
use super::simple::{LogoutOp, NoopOp};
use crate::error::MailError;
use crate::options::AuthType;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) enum Entry {
    Server(String),
    Client(String),
    Tls,
    Silence,
}

pub(crate) struct Script {
    pub(crate) entries: VecDeque<Entry>,
    sent: Vec<u8>,
    now: Instant,
}

impl Script {
    pub(crate) fn parse(text: &str) -> Script {
        let entries = text
            .lines()
            .map(str::trim_start)
            .filter(|l| !l.is_empty())
            .map(|l| {
                if let Some(s) = l.strip_prefix("S: ") {
                    Entry::Server(s.replace("\\r\\n", "\r\n"))
                } else if let Some(c) = l.strip_prefix("C: ") {
                    Entry::Client(c.to_string())
                } else if l == "TLS" {
                    Entry::Tls
                } else if l == "SILENCE" {
                    Entry::Silence
                } else {
                    panic!("bad script line {l:?}")
                }
            })
            .collect();
        Script {
            entries,
            sent: Vec::new(),
            now: Instant::now(),
        }
    }
}

impl Transport for Script {
    fn send(&mut self, bytes: &[u8]) -> Result<(), MailError> {
        self.sent.extend_from_slice(bytes);
        while let Some(nl) = self.sent.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.sent.drain(..nl + 2).collect();
            let line = String::from_utf8_lossy(&line[..nl]).into_owned();
            match self.entries.pop_front() {
                Some(Entry::Client(want)) => assert_eq!(line, want, "client line"),
                other => panic!("client sent {line:?}, script expected {other:?}"),
            }
        }
        Ok(())
    }

    fn recv(&mut self, deadline: Option<Instant>) -> Result<Option<Vec<u8>>, MailError> {
        let mut chunk = Vec::new();
        while let Some(Entry::Server(_)) = self.entries.front() {
            if let Some(Entry::Server(s)) = self.entries.pop_front() {
                chunk.extend_from_slice(s.as_bytes());
                chunk.extend_from_slice(b"\r\n");
            }
        }
        if !chunk.is_empty() {
            return Ok(Some(chunk));
        }
        match self.entries.front() {
            Some(Entry::Silence) => {
                self.now = deadline.expect("waiting without a deadline");
                Ok(None)
            }
            None => Err(MailError::Closed("end of script".into())),
            Some(other) => panic!("client waits for the server, script expected {other:?}"),
        }
    }

    fn start_tls(
        &mut self,
        _consumed: u64,
        _deadline: Option<Instant>,
    ) -> Result<String, MailError> {
        match self.entries.pop_front() {
            Some(Entry::Tls) => Ok("TLS established".into()),
            other => panic!("client started TLS, script expected {other:?}"),
        }
    }

    fn now(&self) -> Instant {
        self.now
    }
}

#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) status: Vec<String>,
    pub(crate) responses: Vec<String>,
}

impl Observer for Seen {
    fn status(&mut self, m: &str) {
        self.status.push(m.to_string());
    }
    fn response(&mut self, l: &str) {
        self.responses.push(l.to_string());
    }
}

fn connect(
    mode: SecureMode,
    user: &str,
    pass: &str,
    script: &str,
) -> (Result<(), MailError>, Seen, Script) {
    connect_with(mode, user, pass, AuthSettings::default(), script)
}

fn connect_with(
    mode: SecureMode,
    user: &str,
    pass: &str,
    settings: AuthSettings,
    script: &str,
) -> (Result<(), MailError>, Seen, Script) {
    let mut t = Script::parse(script);
    let mut s = ImapSession::new(Duration::from_secs(30));
    s.tls = mode == SecureMode::Implicit;
    let mut f = Fragmentizer::new(FrameLimits::default());
    let mut seen = Seen::default();
    let creds = Credentials {
        username: user.into(),
        password: pass.into(),
    };
    let r = run(
        &mut ConnectOp::new(mode, creds, settings),
        &mut s,
        &mut f,
        &mut t,
        &mut seen,
    )
    .map(|_| ());
    (r, seen, t)
}

fn code(r: Result<(), MailError>) -> i32 {
    r.map(|_| 0).unwrap_or_else(|e| e.code())
}

const TIM_CHALLENGE: &str = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+";
const TIM_RESPONSE: &str = "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw";

#[test]
fn cram_md5_when_advertised_and_nothing_secret_is_shown() {
    let script = format!(
        "S: * OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5] ready
         C: A0001 AUTHENTICATE CRAM-MD5
         S: + {TIM_CHALLENGE}
         C: {TIM_RESPONSE}
         S: A0001 OK [CAPABILITY IMAP4rev1 IDLE] Logged in"
    );
    let (r, seen, t) = connect(SecureMode::Plain, "tim", "tanstaaftanstaaf", &script);
    assert_eq!(code(r), 0);
    assert!(t.entries.is_empty());
    let all = seen.status.join("\n");
    assert!(
        !all.contains(TIM_RESPONSE) && !all.contains("tanstaaf"),
        "{all}"
    );
    assert!(all.contains("<CRAM-MD5 response redacted>"));
    assert_eq!(seen.responses.len(), 3);
}

#[test]
fn login_fallback_when_cram_fails() {
    let script = format!(
        "S: * OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5] ready
         C: A0001 AUTHENTICATE CRAM-MD5
         S: + {TIM_CHALLENGE}
         C: {TIM_RESPONSE}
         S: A0001 NO [AUTHENTICATIONFAILED] no
         C: A0002 LOGIN \"tim\" \"tanstaaftanstaaf\"
         S: A0002 OK Logged in"
    );
    let (r, seen, _) = connect(SecureMode::Plain, "tim", "tanstaaftanstaaf", &script);
    assert_eq!(code(r), 0);
    assert!(!seen.status.join("\n").contains("tanstaaf"));
}

#[test]
fn login_with_literal_password_waits_for_continuation() {
    let script = "S: * OK [CAPABILITY IMAP4rev1] ready
                  C: A0001 LOGIN \"bob\" {5}
                  S: + go ahead
                  C: päsw
                  S: A0001 OK Logged in";
    // "päsw" is 5 bytes of UTF-8: a literal, sent after the continuation.
    let (r, seen, _) = connect(SecureMode::Plain, "bob", "päsw", script);
    assert_eq!(code(r), 0);
    assert!(!seen.status.join("\n").contains("päsw"));
}

#[test]
fn wrong_password_keeps_server_text() {
    let script = "S: * OK [CAPABILITY IMAP4rev1] ready
                  C: A0001 LOGIN \"bob\" \"bad\"
                  S: A0001 NO [AUTHENTICATIONFAILED] Authentication failed.";
    let (r, _, _) = connect(SecureMode::Plain, "bob", "bad", script);
    assert_eq!(
        r,
        Err(MailError::AuthFailed("Authentication failed.".into()))
    );
}

#[test]
fn starttls_then_capabilities_are_read_again() {
    let script = "S: * OK ready
                  C: A0001 CAPABILITY
                  S: * CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED
                  S: A0001 OK done
                  C: A0002 STARTTLS
                  S: A0002 OK Begin TLS
                  TLS
                  C: A0003 CAPABILITY
                  S: * CAPABILITY IMAP4rev1 AUTH=PLAIN
                  S: A0003 OK done
                  C: A0004 LOGIN \"bob\" \"pw\"
                  S: A0004 OK Logged in";
    let (r, _, t) = connect(SecureMode::StartTls, "bob", "pw", script);
    assert_eq!(code(r), 0);
    assert!(t.entries.is_empty());
}

#[test]
fn starttls_missing_refused_or_preauth_never_continue_in_plaintext() {
    let missing = "S: * OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5] ready";
    assert_eq!(
        code(connect(SecureMode::StartTls, "u", "p", missing).0),
        -1114
    );
    let refused = "S: * OK [CAPABILITY IMAP4rev1 STARTTLS] ready
                   C: A0001 STARTTLS
                   S: A0001 NO not today";
    assert_eq!(
        code(connect(SecureMode::StartTls, "u", "p", refused).0),
        -1115
    );
    let preauth = "S: * PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] welcome";
    assert_eq!(
        code(connect(SecureMode::StartTls, "u", "p", preauth).0),
        -1117
    );
}

#[test]
fn bytes_after_starttls_ok_are_injection() {
    let script = "S: * OK [CAPABILITY IMAP4rev1 STARTTLS] ready
                  C: A0001 STARTTLS
                  S: A0001 OK Begin TLS\\r\\n* CAPABILITY IMAP4rev1 AUTH=PLAIN";
    assert_eq!(
        code(connect(SecureMode::StartTls, "u", "p", script).0),
        -1116
    );
}

#[test]
fn logindisabled_without_cram_is_its_own_code() {
    let script = "S: * OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready";
    assert_eq!(code(connect(SecureMode::Plain, "u", "p", script).0), -1121);
}

#[test]
fn preauth_is_accepted_without_starttls() {
    let (r, _, _) = connect(
        SecureMode::Plain,
        "u",
        "p",
        "S: * PREAUTH [CAPABILITY IMAP4rev1] hi",
    );
    assert_eq!(code(r), 0);
}

#[test]
fn silence_is_a_timeout_and_garbage_or_bye_are_clear() {
    assert_eq!(
        code(connect(SecureMode::Plain, "u", "p", "SILENCE").0),
        -522
    );
    let (r, _, _) = connect(SecureMode::Plain, "u", "p", "S: HTTP/1.1 400 Bad Request");
    assert_eq!(code(r), -523);
    let (r, _, _) = connect(SecureMode::Plain, "u", "p", "S: * BYE too many connections");
    assert_eq!(r, Err(MailError::Bye("too many connections".into())));
    let closed = "S: * OK [CAPABILITY IMAP4rev1] ready
                  C: A0001 LOGIN \"u\" \"p\"";
    assert_eq!(code(connect(SecureMode::Plain, "u", "p", closed).0), -1106);
}

#[test]
fn logout_closed_right_after_bye_is_clean() {
    let mut t = Script::parse(
        "C: A0001 LOGOUT
         S: * BYE see you",
    );
    let mut s = ImapSession::new(Duration::from_secs(5));
    let mut f = Fragmentizer::new(FrameLimits::default());
    run(
        &mut LogoutOp::default(),
        &mut s,
        &mut f,
        &mut t,
        &mut Seen::default(),
    )
    .unwrap();
    // Without the BYE, a close is an error.
    let mut t = Script::parse("C: A0001 LOGOUT");
    let mut s = ImapSession::new(Duration::from_secs(5));
    let r = run(
        &mut LogoutOp::default(),
        &mut s,
        &mut f,
        &mut t,
        &mut Seen::default(),
    );
    assert_eq!(code(r), -1106);
}

#[test]
fn capability_lines_of_one_reply_are_merged() {
    let script = "S: * OK ready
                  C: A0001 CAPABILITY
                  S: * CAPABILITY IMAP4rev1
                  S: * CAPABILITY AUTH=CRAM-MD5
                  S: A0001 OK done
                  C: A0002 AUTHENTICATE CRAM-MD5
                  S: A0002 NO no
                  C: A0003 LOGIN \"u\" \"p\"
                  S: A0003 OK in";
    assert_eq!(code(connect(SecureMode::Plain, "u", "p", script).0), 0);
}

#[test]
fn noop_keeps_untagged_updates_and_logout_expects_bye() {
    let mut t = Script::parse(
        "C: A0001 NOOP
         S: * 3 EXISTS
         S: * 1 RECENT
         S: A0001 OK NOOP completed
         C: A0002 LOGOUT
         S: * BYE Logging out
         S: A0002 OK Logout completed",
    );
    let mut s = ImapSession::new(Duration::from_secs(5));
    let mut f = Fragmentizer::new(FrameLimits::default());
    let mut seen = Seen::default();
    run(&mut NoopOp::default(), &mut s, &mut f, &mut t, &mut seen).unwrap();
    assert_eq!((s.exists, s.recent), (Some(3), Some(1)));
    assert_eq!(
        seen.responses,
        ["* 3 EXISTS", "* 1 RECENT", "A0001 OK NOOP completed"]
    );
    run(&mut LogoutOp::default(), &mut s, &mut f, &mut t, &mut seen).unwrap();
}

#[test]
fn stray_continuation_is_a_syntax_error_and_a_second_cram_challenge_is_cancelled() {
    let stray = "S: * OK ready
                 C: A0001 CAPABILITY
                 S: + what?";
    assert_eq!(code(connect(SecureMode::Plain, "u", "p", stray).0), -525);
    let script = format!(
        "S: * OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5] ready
         C: A0001 AUTHENTICATE CRAM-MD5
         S: + {TIM_CHALLENGE}
         C: {TIM_RESPONSE}
         S: + another challenge
         C: *
         S: A0001 BAD cancelled
         C: A0002 LOGIN \"tim\" \"tanstaaftanstaaf\"
         S: A0002 OK in"
    );
    assert_eq!(
        code(connect(SecureMode::Plain, "tim", "tanstaaftanstaaf", &script).0),
        0
    );
}

#[test]
fn cram_md5_with_an_empty_password() {
    // HMAC-MD5 with an empty key over "<1234>", as Python's hmac module computes it.
    let script = "S: * OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5] ready
                  C: A0001 AUTHENTICATE CRAM-MD5
                  S: + PDEyMzQ+
                  C: dSA0ZWZkOWQ5ZGMwZGZmNzMyYjc4NzkxODJkNDdmYTVjYQ==
                  S: A0001 OK in";
    assert_eq!(code(connect(SecureMode::Plain, "u", "", script).0), 0);
}

fn auth(a: AuthType) -> AuthSettings {
    AuthSettings {
        auth: a,
        host: "mail.test".into(),
        port: 993,
        ..Default::default()
    }
}

#[test]
fn plain_uses_sasl_ir_when_advertised_and_redacts_it() {
    // base64("\0alice\0secret")
    let (r, seen, _) = connect_with(
        SecureMode::Implicit,
        "alice",
        "secret",
        auth(AuthType::Plain),
        "S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready
         C: A0001 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
         S: A0001 OK done",
    );
    assert_eq!(code(r), 0);
    let all = seen.status.join("\n");
    assert!(all.contains("AUTHENTICATE PLAIN <redacted>"), "{all}");
    assert!(!all.contains("AGFsaWNlAHNlY3JldA=="));
}

#[test]
fn plain_without_sasl_ir_answers_the_first_continuation() {
    let (r, _, _) = connect_with(
        SecureMode::Implicit,
        "alice",
        "secret",
        auth(AuthType::Plain),
        "S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready
         C: A0001 AUTHENTICATE PLAIN
         S: +
         C: AGFsaWNlAHNlY3JldA==
         S: A0001 OK done",
    );
    assert_eq!(code(r), 0);
}

#[test]
fn xoauth2_error_continuation_gets_an_empty_reply_then_no() {
    // base64("user=a@b\x01auth=Bearer tok\x01\x01")
    let (r, seen, _) = connect_with(
        SecureMode::Implicit,
        "a@b",
        "tok",
        auth(AuthType::XOAuth2),
        "S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready
         C: A0001 AUTHENTICATE XOAUTH2 dXNlcj1hQGIBYXV0aD1CZWFyZXIgdG9rAQE=
         S: + eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=
         C: 
         S: A0001 NO [AUTHENTICATIONFAILED] invalid token",
    );
    let e = r.unwrap_err();
    assert_eq!(e.code(), -1120);
    assert!(e.to_string().contains("401"), "{e}");
    assert!(!seen.status.join("\n").contains("dG9r"));
}

#[test]
fn oauthbearer_error_continuation_gets_ctrl_a() {
    // base64("n,a=a@b,\x01host=mail.test\x01port=993\x01auth=Bearer tok\x01\x01")
    let (r, _, _) = connect_with(
        SecureMode::Implicit,
        "a@b",
        "tok",
        auth(AuthType::OAuthBearer),
        "S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] ready
         C: A0001 AUTHENTICATE OAUTHBEARER bixhPWFAYiwBaG9zdD1tYWlsLnRlc3QBcG9ydD05OTMBYXV0aD1CZWFyZXIgdG9rAQE=
         S: + eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=
         C: AQ==
         S: A0001 NO denied",
    );
    assert_eq!(code(r), -1120);
}

#[test]
fn a_mechanism_not_offered_is_its_own_code() {
    let (r, _, t) = connect_with(
        SecureMode::Implicit,
        "a",
        "b",
        auth(AuthType::ScramSha256),
        "S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready",
    );
    let e = r.unwrap_err();
    assert_eq!(e.code(), -1134);
    assert!(e.to_string().contains("offers PLAIN"), "{e}");
    drop(t);
}

#[test]
fn scram_ok_without_server_signature_is_refused() {
    let (r, _, _) = connect_with(
        SecureMode::Implicit,
        "a",
        "b",
        auth(AuthType::ScramSha256),
        "S: * OK [CAPABILITY IMAP4rev1 AUTH=SCRAM-SHA-256] ready
         C: A0001 AUTHENTICATE SCRAM-SHA-256
         S: A0001 OK fine",
    );
    assert_eq!(code(r), -1138);
}

#[test]
fn identify_sends_id_after_login_when_offered() {
    let settings = AuthSettings {
        identify: true,
        ..Default::default()
    };
    let script = format!(
        "S: * OK [CAPABILITY IMAP4rev1 ID] ready
         C: A0001 LOGIN \"a\" \"b\"
         S: A0001 OK [CAPABILITY IMAP4rev1 ID] in
         C: A0002 ID (\"name\" \"mailext\" \"version\" \"{}\")
         S: * ID (\"name\" \"Dovecot\")
         S: A0002 OK ID completed",
        env!("CARGO_PKG_VERSION")
    );
    let (r, seen, _) = connect_with(SecureMode::Implicit, "a", "b", settings, &script);
    assert_eq!(code(r), 0);
    assert!(seen.responses.iter().any(|l| l.contains("Dovecot")));
}

#[test]
fn after_starttls_capability_and_cram_md5_share_one_flight() {
    let script = format!(
        "S: * OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=CRAM-MD5] ready
         C: A0001 STARTTLS
         S: A0001 OK Begin TLS
         TLS
         C: A0002 CAPABILITY
         C: A0003 AUTHENTICATE CRAM-MD5
         S: * CAPABILITY IMAP4rev1 AUTH=CRAM-MD5
         S: A0002 OK done
         S: + {TIM_CHALLENGE}
         C: {TIM_RESPONSE}
         S: A0003 OK Logged in"
    );
    let (r, _, t) = connect(SecureMode::StartTls, "tim", "tanstaaftanstaaf", &script);
    assert_eq!(code(r), 0);
    assert!(t.entries.is_empty());
}

#[test]
fn pipelined_cram_md5_is_refused_when_tls_capabilities_drop_it() {
    // The server refuses the mechanism it no longer offers: LOGIN next.
    let refused = "S: * OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=CRAM-MD5] ready
                   C: A0001 STARTTLS
                   S: A0001 OK Begin TLS
                   TLS
                   C: A0002 CAPABILITY
                   C: A0003 AUTHENTICATE CRAM-MD5
                   S: * CAPABILITY IMAP4rev1 AUTH=PLAIN
                   S: A0002 OK done
                   S: A0003 NO not offered
                   C: A0004 LOGIN \"bob\" \"pw\"
                   S: A0004 OK Logged in";
    let (r, seen, t) = connect(SecureMode::StartTls, "bob", "pw", refused);
    assert_eq!(code(r), 0);
    assert!(t.entries.is_empty());
    assert!(seen
        .status
        .iter()
        .any(|m| m.contains("do not confirm CRAM-MD5")));
    // A server that still sends "+" gets "*": no response is computed.
    let plus = "S: * OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=CRAM-MD5] ready
                C: A0001 STARTTLS
                S: A0001 OK Begin TLS
                TLS
                C: A0002 CAPABILITY
                C: A0003 AUTHENTICATE CRAM-MD5
                S: * CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN
                S: A0002 OK done
                S: + PDEyMzQ+
                C: *
                S: A0003 BAD cancelled";
    assert_eq!(
        code(connect(SecureMode::StartTls, "bob", "pw", plus).0),
        -1121
    );
}

#[test]
fn pipelined_authenticate_answered_before_capability_is_a_protocol_error() {
    let script = "S: * OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=CRAM-MD5] ready
                  C: A0001 STARTTLS
                  S: A0001 OK Begin TLS
                  TLS
                  C: A0002 CAPABILITY
                  C: A0003 AUTHENTICATE CRAM-MD5
                  S: + PDEyMzQ+";
    let (r, seen, _) = connect(SecureMode::StartTls, "bob", "pw", script);
    assert!(code(r) < 0);
    assert!(!seen.status.iter().any(|m| m.contains("response redacted")));
}
