//! SMTPConnect's protocol logic after the TCP (and implicit TLS) connection:
//! greeting, EHLO / HELO, STARTTLS (then EHLO again), AUTH.
//!
//! States are types: the only way out of `StartTlsSent` is the handshake,
//! after which everything learnt in plaintext is forgotten.

use super::reply::Reply;
use super::session::{SmtpOp, SmtpSession};
use crate::error::MailError;
use crate::imap::auth::cram_md5_response;
use crate::imap::connect::{Credentials, SecureMode};
use crate::imap::sasl::{
    oauth_error_text, oauthbearer_initial, plain_initial, xoauth2_initial, ScramAwaitingFinal,
    ScramClient, OAUTHBEARER_ERROR_REPLY, XOAUTH2_ERROR_REPLY,
};
use crate::imap::session::{Action, Outbox, Step};
use crate::options::AuthType;
use openssl::base64;

pub struct SmtpConnectSettings {
    pub mode: SecureMode,
    /// The EHLO / HELO name.
    pub localname: String,
    /// Use EHLO (ESMTP). Forced on by authentication and STARTTLS.
    pub extended: bool,
    pub creds: Option<Credentials>,
    pub auth: AuthType,
    /// The server's name and port (OAUTHBEARER carries them).
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mech {
    CramMd5,
    Plain,
    Login,
    XOAuth2,
    OAuthBearer,
    ScramSha256,
}

impl Mech {
    fn name(self) -> &'static str {
        match self {
            Mech::CramMd5 => "CRAM-MD5",
            Mech::Plain => "PLAIN",
            Mech::Login => "LOGIN",
            Mech::XOAuth2 => "XOAUTH2",
            Mech::OAuthBearer => "OAUTHBEARER",
            Mech::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

enum Sasl {
    Start,
    /// The initial response, sent at the first 334, then `1`.
    Deferred(String, Box<Sasl>),
    /// LOGIN: the user name went out; the password answers the next 334.
    LoginUser,
    Sent,
    Failed(MailError),
    OAuthError(String),
    Scram(ScramClient),
    ScramFinal(ScramAwaitingFinal),
    ScramVerified,
}

struct AwaitGreeting;
struct EhloSent;
struct HeloSent;
struct StartTlsSent;
struct Handshaking;
/// The mechanism, where its exchange is, and the ones left to try.
struct Authenticating(Mech, Sasl, Vec<Mech>);

enum State {
    Greeting(AwaitGreeting),
    Ehlo(EhloSent),
    Helo(HeloSent),
    StartTls(StartTlsSent),
    Handshake(Handshaking),
    Auth(Authenticating),
    Finished,
}

pub struct SmtpConnectOp {
    settings: SmtpConnectSettings,
    state: State,
}

type Next = (State, Step<()>);

fn fail(e: MailError) -> Next {
    (State::Finished, Step::Done(Err(e)))
}

fn send(out: &mut Outbox, line: &str, shown: &str) {
    out.push(Action::Send {
        wire: format!("{line}\r\n").into_bytes(),
        shown: shown.to_string(),
    });
}

impl SmtpConnectOp {
    pub fn new(settings: SmtpConnectSettings) -> Self {
        SmtpConnectOp {
            settings,
            state: State::Greeting(AwaitGreeting),
        }
    }

    /// Authentication and STARTTLS cannot work without EHLO.
    fn needs_extensions(&self) -> bool {
        self.settings.creds.is_some() || self.settings.mode == SecureMode::StartTls
    }

    fn ehlo(&self, out: &mut Outbox) -> Next {
        let l = format!("EHLO {}", self.settings.localname);
        send(out, &l, &l);
        (State::Ehlo(EhloSent), Step::Continue)
    }

    fn after_hello(&self, s: &mut SmtpSession, out: &mut Outbox) -> Next {
        if self.settings.mode == SecureMode::StartTls && !s.tls {
            if !s.has("STARTTLS") {
                return fail(MailError::StartTlsUnavailable(
                    "STARTTLS is not in the server's EHLO reply".into(),
                ));
            }
            send(out, "STARTTLS", "STARTTLS");
            return (State::StartTls(StartTlsSent), Step::Continue);
        }
        match &self.settings.creds {
            Some(_) => self.begin_auth(s, out),
            None => (State::Finished, Step::Done(Ok(()))),
        }
    }

    /// The mechanisms to try, in order.
    fn choose(&self, s: &SmtpSession) -> Result<Vec<Mech>, MailError> {
        let offered = s.auth_mechanisms();
        let has = |m: Mech| offered.iter().any(|o| o == m.name());
        let listed = if offered.is_empty() {
            "no AUTH at all".to_string()
        } else {
            offered.join(", ")
        };
        let want = match self.settings.auth {
            AuthType::Auto => {
                let mut plan = Vec::new();
                if has(Mech::CramMd5) {
                    plan.push(Mech::CramMd5);
                }
                // Over TLS, PLAIN (or LOGIN) also when CRAM-MD5 is refused
                // (servers that store hashed passwords refuse it).
                if let Some(m) = [Mech::Plain, Mech::Login]
                    .into_iter()
                    .find(|m| has(*m) && s.tls)
                {
                    plan.push(m);
                }
                if !plan.is_empty() {
                    return Ok(plan);
                }
                if has(Mech::Plain) || has(Mech::Login) {
                    return Err(MailError::MechanismUnavailable(
                        "the server offers only PLAIN / LOGIN, which would send the password unencrypted; connect with TLS (secure) or ask for AUTH=PLAIN explicitly".into(),
                    ));
                }
                return Err(MailError::MechanismUnavailable(format!(
                    "no usable mechanism: the server offers {listed}"
                )));
            }
            AuthType::Plain => Mech::Plain,
            AuthType::Login => Mech::Login,
            AuthType::CramMd5 => Mech::CramMd5,
            AuthType::XOAuth2 => Mech::XOAuth2,
            AuthType::OAuthBearer => Mech::OAuthBearer,
            AuthType::ScramSha256 => Mech::ScramSha256,
        };
        if has(want) {
            Ok(vec![want])
        } else {
            Err(MailError::MechanismUnavailable(format!(
                "{} was asked for; the server offers {listed}",
                want.name()
            )))
        }
    }

    fn begin_auth(&self, s: &mut SmtpSession, out: &mut Outbox) -> Next {
        if !s.extended {
            return fail(MailError::MechanismUnavailable(
                "the server does not speak ESMTP (EHLO failed), so it cannot authenticate".into(),
            ));
        }
        let mut plan = match self.choose(s) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        plan.reverse();
        let m = plan.pop().expect("choose never returns an empty plan");
        self.start_mech(m, plan, out)
    }

    fn start_mech(&self, m: Mech, rest: Vec<Mech>, out: &mut Outbox) -> Next {
        let c = self
            .settings
            .creds
            .as_ref()
            .expect("auth only with credentials");
        let (ir, sasl) = match m {
            Mech::Plain => (
                Some(plain_initial("", &c.username, &c.password)),
                Sasl::Sent,
            ),
            Mech::XOAuth2 => (Some(xoauth2_initial(&c.username, &c.password)), Sasl::Sent),
            Mech::OAuthBearer => (
                Some(oauthbearer_initial(
                    &c.username,
                    &self.settings.host,
                    self.settings.port,
                    &c.password,
                )),
                Sasl::Sent,
            ),
            Mech::ScramSha256 => match ScramClient::new(&c.username, &c.password) {
                Ok(sc) => (Some(sc.client_first()), Sasl::Scram(sc)),
                Err(e) => return fail(e),
            },
            Mech::CramMd5 | Mech::Login => (None, Sasl::Start),
        };
        // RFC 4954 4: no initial response on a line over 512 octets; it
        // then answers the server's empty 334 instead.
        let (ir, sasl) = match ir {
            Some(ir) if format!("AUTH {} {ir}", m.name()).len() > 510 => {
                (None, Sasl::Deferred(ir, Box::new(sasl)))
            }
            other => (other, sasl),
        };
        match ir {
            Some(ir) => send(
                out,
                &format!("AUTH {} {ir}", m.name()),
                &format!("AUTH {} <redacted>", m.name()),
            ),
            None => send(
                out,
                &format!("AUTH {}", m.name()),
                &format!("AUTH {}", m.name()),
            ),
        }
        (State::Auth(Authenticating(m, sasl, rest)), Step::Continue)
    }

    fn on_challenge(&self, m: Mech, sasl: Sasl, text: &str, out: &mut Outbox) -> Sasl {
        let c = self
            .settings
            .creds
            .as_ref()
            .expect("auth only with credentials");
        let b64 = |s: &str| base64::encode_block(s.as_bytes());
        // RFC 4954 4: "*" cancels; the server answers 501.
        let cancel = |out: &mut Outbox| send(out, "*", "*");
        match (m, sasl) {
            (_, Sasl::Deferred(ir, then)) => {
                send(out, &ir, &format!("<{} response redacted>", m.name()));
                *then
            }
            (Mech::Login, Sasl::Start) => {
                send(out, &b64(&c.username), "<user name>");
                Sasl::LoginUser
            }
            (Mech::Login, Sasl::LoginUser) => {
                send(out, &b64(&c.password), "<redacted>");
                Sasl::Sent
            }
            (Mech::CramMd5, Sasl::Start) => {
                match cram_md5_response(&c.username, &c.password, text) {
                    Ok(r) => send(out, &r, "<CRAM-MD5 response redacted>"),
                    Err(_) => cancel(out),
                }
                Sasl::Sent
            }
            (Mech::XOAuth2 | Mech::OAuthBearer, Sasl::Sent) => {
                let reply = if m == Mech::XOAuth2 {
                    XOAUTH2_ERROR_REPLY
                } else {
                    OAUTHBEARER_ERROR_REPLY
                };
                send(out, reply, reply);
                Sasl::OAuthError(oauth_error_text(text))
            }
            (_, Sasl::Scram(sc)) => match sc.server_first(text) {
                Ok((next, reply)) => {
                    send(out, &reply, "<SCRAM-SHA-256 proof redacted>");
                    Sasl::ScramFinal(next)
                }
                Err(e) => {
                    cancel(out);
                    Sasl::Failed(e)
                }
            },
            (_, Sasl::ScramFinal(f)) => match f.server_final(text) {
                Ok(()) => {
                    send(out, "", "");
                    Sasl::ScramVerified
                }
                Err(e) => {
                    cancel(out);
                    Sasl::Failed(e)
                }
            },
            (_, other) => {
                cancel(out);
                other
            }
        }
    }

    fn on_auth(&self, a: Authenticating, s: &mut SmtpSession, r: &Reply, out: &mut Outbox) -> Next {
        let Authenticating(m, sasl, mut rest) = a;
        if r.code == 334 {
            let text = r.lines.first().map(String::as_str).unwrap_or("");
            let next = self.on_challenge(m, sasl, text, out);
            return (State::Auth(Authenticating(m, next, rest)), Step::Continue);
        }
        let user = &self.settings.creds.as_ref().expect("credentials").username;
        match (r.is_ok(), sasl) {
            (true, sasl) => {
                if m == Mech::ScramSha256 && !matches!(sasl, Sasl::ScramVerified) {
                    return fail(MailError::ServerProof(
                        "the server accepted SCRAM-SHA-256 without sending its signature".into(),
                    ));
                }
                out.status(format!("Logged in as {user} with {}", m.name()));
                let _ = s;
                (State::Finished, Step::Done(Ok(())))
            }
            (false, Sasl::Failed(e)) => fail(e),
            (false, Sasl::OAuthError(why)) => fail(MailError::AuthFailed(format!(
                "{} refused: {} {} ({why})",
                m.name(),
                r.code,
                r.text()
            ))),
            (false, _) => {
                let why = format!("{} refused: {} {}", m.name(), r.code, r.text());
                match rest.pop() {
                    Some(next) => {
                        out.status(format!("{why}; trying {}", next.name()));
                        self.start_mech(next, rest, out)
                    }
                    None => fail(MailError::AuthFailed(why)),
                }
            }
        }
    }
}

impl SmtpOp for SmtpConnectOp {
    type Output = ();

    fn in_sasl(&self) -> bool {
        matches!(self.state, State::Auth(_))
    }

    fn start(&mut self, _s: &mut SmtpSession, _out: &mut Outbox) -> Step<()> {
        Step::Continue
    }

    fn on_reply(&mut self, s: &mut SmtpSession, r: Reply, out: &mut Outbox) -> Step<()> {
        let (next, step) = match std::mem::replace(&mut self.state, State::Finished) {
            State::Greeting(AwaitGreeting) => {
                if r.code != 220 {
                    fail(MailError::CommandFailed(format!(
                        "the server refused the session: {} {}",
                        r.code,
                        r.text()
                    )))
                } else if self.needs_extensions() || self.settings.extended {
                    self.ehlo(out)
                } else {
                    let l = format!("HELO {}", self.settings.localname);
                    send(out, &l, &l);
                    (State::Helo(HeloSent), Step::Continue)
                }
            }
            State::Ehlo(EhloSent) => {
                if r.is_ok() {
                    s.learn_ehlo(&r);
                    self.after_hello(s, out)
                } else if !self.needs_extensions() && matches!(r.code, 500 | 502 | 504 | 550) {
                    // An old server: plain SMTP is all the caller asked for.
                    out.status("EHLO refused; trying HELO");
                    let l = format!("HELO {}", self.settings.localname);
                    send(out, &l, &l);
                    (State::Helo(HeloSent), Step::Continue)
                } else {
                    fail(MailError::CommandFailed(format!(
                        "EHLO refused: {} {}",
                        r.code,
                        r.text()
                    )))
                }
            }
            State::Helo(HeloSent) => {
                if r.is_ok() {
                    s.extended = false;
                    s.caps.clear();
                    self.after_hello(s, out)
                } else {
                    fail(MailError::CommandFailed(format!(
                        "HELO refused: {} {}",
                        r.code,
                        r.text()
                    )))
                }
            }
            State::StartTls(StartTlsSent) => {
                if r.code == 220 {
                    out.push(Action::StartTls);
                    (State::Handshake(Handshaking), Step::Continue)
                } else {
                    fail(MailError::StartTlsRefused(format!(
                        "{} {}",
                        r.code,
                        r.text()
                    )))
                }
            }
            State::Handshake(Handshaking) => fail(MailError::Injection(
                "a reply arrived during the TLS handshake".into(),
            )),
            State::Auth(a) => self.on_auth(a, s, &r, out),
            State::Finished => fail(MailError::Internal(
                "reply after the connect finished".into(),
            )),
        };
        self.state = next;
        step
    }

    fn on_tls(&mut self, s: &mut SmtpSession, out: &mut Outbox) -> Step<()> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Handshake(Handshaking) => {
                // RFC 3207 4.2: forget everything learnt before TLS; EHLO again.
                s.tls = true;
                s.caps.clear();
                s.extended = false;
                let (next, step) = self.ehlo(out);
                self.state = next;
                step
            }
            _ => Step::Done(Err(MailError::Internal("TLS outside STARTTLS".into()))),
        }
    }

    fn waiting_for(&self) -> String {
        match &self.state {
            State::Greeting(_) => "the server greeting (220)".into(),
            State::Ehlo(_) => "the EHLO reply".into(),
            State::Helo(_) => "the HELO reply".into(),
            State::StartTls(_) => "the STARTTLS reply".into(),
            State::Handshake(_) => "the TLS handshake".into(),
            State::Auth(Authenticating(m, _, _)) => format!("the AUTH {} reply", m.name()),
            State::Finished => "nothing".into(),
        }
    }
}
