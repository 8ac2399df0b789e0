//! IMAPConnect's protocol logic after the TCP (and, for implicit TLS, TLS)
//! connection exists: greeting, capabilities, STARTTLS, authentication.
//!
//! Each state is a type that accepts only the inputs that make sense for it,
//! so "authenticate before TLS" or "trust pre-TLS capabilities" cannot be
//! written: the only way out of `StartTlsSent` is the handshake, and the
//! handshake state forgets everything learnt before it.

use super::auth::cram_md5_response;
use super::codec::{Response, StatusKind};
use super::session::{
    bye_error, Action, CommandLine, ImapSession, Operation, Outbox, PendingCommand, Phase, Step,
};
use crate::error::MailError;

/// The `secure` argument of IMAPConnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureMode {
    Plain,
    /// TLS from the first byte.
    Implicit,
    /// STARTTLS after the greeting.
    StartTls,
}

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

// Never print the password, even in debug output.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <redacted> }}",
            self.username
        )
    }
}

/// What a successful connect learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub mechanism: Option<&'static str>,
    pub preauth: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    CramMd5,
    Login,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::Login => "LOGIN",
        }
    }
}

struct AwaitGreeting;
struct CapabilityQuery(PendingCommand);
struct StartTlsSent(PendingCommand);
struct Handshaking;
struct Authenticating {
    mechanism: Mechanism,
    command: PendingCommand,
    /// Mechanisms still to try if this one fails.
    rest: Vec<Mechanism>,
    challenge_answered: bool,
}

enum State {
    Greeting(AwaitGreeting),
    Capability(CapabilityQuery),
    StartTls(StartTlsSent),
    Handshake(Handshaking),
    Auth(Authenticating),
    Finished,
}

pub struct ConnectOp {
    mode: SecureMode,
    creds: Credentials,
    state: State,
}

type Next = (State, Step<Connected>);

impl ConnectOp {
    pub fn new(mode: SecureMode, creds: Credentials) -> Self {
        ConnectOp {
            mode,
            creds,
            state: State::Greeting(AwaitGreeting),
        }
    }

    fn wants_starttls(&self, s: &ImapSession) -> bool {
        self.mode == SecureMode::StartTls && !s.tls
    }

    /// Once capabilities are known: STARTTLS first when asked, else authenticate.
    fn after_capabilities(&self, s: &mut ImapSession, out: &mut Outbox) -> Next {
        if self.wants_starttls(s) {
            if !s.has_cap("STARTTLS") {
                return fail(MailError::StartTlsUnavailable(
                    "STARTTLS is not in the server's capabilities".into(),
                ));
            }
            let cmd = s.send(CommandLine::new("STARTTLS"), out);
            return (State::StartTls(StartTlsSent(cmd)), Step::Continue);
        }
        self.begin_auth(s, out)
    }

    fn begin_auth(&self, s: &mut ImapSession, out: &mut Outbox) -> Next {
        let mut plan = Vec::new();
        if s.has_cap("AUTH=CRAM-MD5") {
            plan.push(Mechanism::CramMd5);
        }
        if !s.has_cap("LOGINDISABLED") {
            plan.push(Mechanism::Login);
        }
        if plan.is_empty() {
            return fail(MailError::LoginDisabled(
                "the server advertises LOGINDISABLED and does not offer CRAM-MD5".into(),
            ));
        }
        plan.reverse();
        let first = plan.pop().expect("plan is not empty");
        self.try_mechanism(first, plan, s, out)
    }

    fn try_mechanism(
        &self,
        m: Mechanism,
        rest: Vec<Mechanism>,
        s: &mut ImapSession,
        out: &mut Outbox,
    ) -> Next {
        let cmd = match m {
            Mechanism::CramMd5 => CommandLine::new("AUTHENTICATE").atom("CRAM-MD5"),
            Mechanism::Login => CommandLine::new("LOGIN")
                .string(&self.creds.username)
                .secret(&self.creds.password),
        };
        let command = s.send(cmd, out);
        let auth = Authenticating {
            mechanism: m,
            command,
            rest,
            challenge_answered: false,
        };
        (State::Auth(auth), Step::Continue)
    }

    fn on_greeting(&self, s: &mut ImapSession, r: &Response, out: &mut Outbox) -> Next {
        match r {
            Response::Status {
                tag: None,
                kind: StatusKind::Ok,
                ..
            } => {
                if s.caps.is_empty() {
                    let cmd = s.send(CommandLine::new("CAPABILITY"), out);
                    (State::Capability(CapabilityQuery(cmd)), Step::Continue)
                } else {
                    self.after_capabilities(s, out)
                }
            }
            Response::Status {
                tag: None,
                kind: StatusKind::Preauth,
                text,
                ..
            } => {
                if self.mode == SecureMode::StartTls {
                    return fail(MailError::PreauthUnderStartTls(text.clone()));
                }
                s.phase = Phase::Authenticated;
                out.status("The server pre-authenticated the session (PREAUTH)");
                done(Connected {
                    mechanism: None,
                    preauth: true,
                })
            }
            Response::Status {
                tag: None,
                kind: StatusKind::Bye,
                text,
                ..
            } => fail(MailError::Bye(text.clone())),
            other => fail(MailError::BadResponse(format!(
                "expected a greeting, got {}",
                describe(other)
            ))),
        }
    }

    fn on_auth(
        &self,
        mut a: Authenticating,
        s: &mut ImapSession,
        r: &Response,
        out: &mut Outbox,
    ) -> Next {
        if let Response::Continuation(text) = r {
            match a.mechanism {
                Mechanism::CramMd5 if !a.challenge_answered => {
                    a.challenge_answered = true;
                    match cram_md5_response(&self.creds.username, &self.creds.password, text) {
                        Ok(resp) => out.push(Action::Send {
                            wire: format!("{resp}\r\n").into_bytes(),
                            shown: "<CRAM-MD5 response redacted>".into(),
                        }),
                        // A challenge we cannot read: cancel (RFC 3501 6.2.2) and fall back.
                        Err(_) => out.push(Action::Send {
                            wire: b"*\r\n".to_vec(),
                            shown: "*".into(),
                        }),
                    }
                }
                // CRAM-MD5 has one challenge: cancel a second and fall back.
                Mechanism::CramMd5 => out.push(Action::Send {
                    wire: b"*\r\n".to_vec(),
                    shown: "*".into(),
                }),
                Mechanism::Login => {
                    if !a.command.on_continuation(out) {
                        return fail(MailError::Syntax("unexpected continuation request".into()));
                    }
                }
            }
            return (State::Auth(a), Step::Continue);
        }
        let Some((kind, text)) = a.command.completion(r) else {
            return (State::Auth(a), Step::Continue);
        };
        match kind {
            StatusKind::Ok => {
                s.phase = Phase::Authenticated;
                out.status(format!(
                    "Logged in as {} with {}",
                    self.creds.username,
                    a.mechanism.name()
                ));
                done(Connected {
                    mechanism: Some(a.mechanism.name()),
                    preauth: false,
                })
            }
            _ => {
                let why = format!("{} refused: {}", a.mechanism.name(), text);
                match a.rest.pop() {
                    Some(next) => {
                        out.status(format!("{why}; trying {}", next.name()));
                        self.try_mechanism(next, a.rest, s, out)
                    }
                    None => fail(MailError::AuthFailed(text.to_string())),
                }
            }
        }
    }
}

fn fail(e: MailError) -> Next {
    (State::Finished, Step::Done(Err(e)))
}

fn done(c: Connected) -> Next {
    (State::Finished, Step::Done(Ok(c)))
}

fn describe(r: &Response) -> String {
    let s = format!("{r:?}");
    s.chars().take(80).collect()
}

impl Operation for ConnectOp {
    type Output = Connected;

    fn start(&mut self, _s: &mut ImapSession, _out: &mut Outbox) -> Step<Connected> {
        Step::Continue
    }

    fn on_response(
        &mut self,
        s: &mut ImapSession,
        r: Response,
        out: &mut Outbox,
    ) -> Step<Connected> {
        let r = &r;
        if !matches!(self.state, State::Greeting(_)) {
            if let Some(e) = bye_error(r) {
                self.state = State::Finished;
                return Step::Done(Err(e));
            }
        }
        // Only authentication waits for "+"; in the greeting it is a bad greeting.
        let waits_for_plus = matches!(self.state, State::Auth(_) | State::Greeting(_));
        if matches!(r, Response::Continuation(_)) && !waits_for_plus {
            self.state = State::Finished;
            return Step::Done(Err(MailError::Syntax(format!(
                "unexpected continuation request while waiting for {}",
                self.waiting_for()
            ))));
        }
        let (next, step) = match std::mem::replace(&mut self.state, State::Finished) {
            State::Greeting(AwaitGreeting) => self.on_greeting(s, r, out),
            State::Capability(CapabilityQuery(cmd)) => match cmd.completion(r) {
                None => (State::Capability(CapabilityQuery(cmd)), Step::Continue),
                Some((StatusKind::Ok, _)) => self.after_capabilities(s, out),
                Some((_, text)) => fail(MailError::CommandFailed(format!("CAPABILITY: {text}"))),
            },
            State::StartTls(StartTlsSent(cmd)) => match cmd.completion(r) {
                None => (State::StartTls(StartTlsSent(cmd)), Step::Continue),
                Some((StatusKind::Ok, _)) => {
                    out.push(Action::StartTls);
                    (State::Handshake(Handshaking), Step::Continue)
                }
                Some((_, text)) => fail(MailError::StartTlsRefused(text.to_string())),
            },
            // The driver feeds nothing while the handshake runs; anything here was injected.
            State::Handshake(Handshaking) => fail(MailError::Injection(
                "response during the TLS handshake".into(),
            )),
            State::Auth(a) => self.on_auth(a, s, r, out),
            State::Finished => fail(MailError::Internal(
                "response after the connect finished".into(),
            )),
        };
        self.state = next;
        step
    }

    fn on_tls(&mut self, s: &mut ImapSession, out: &mut Outbox) -> Step<Connected> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Handshake(Handshaking) => {
                s.tls = true;
                s.forget_pre_tls_state();
                let cmd = s.send(CommandLine::new("CAPABILITY"), out);
                self.state = State::Capability(CapabilityQuery(cmd));
                Step::Continue
            }
            _ => Step::Done(Err(MailError::Internal(
                "TLS completed outside STARTTLS".into(),
            ))),
        }
    }

    fn waiting_for(&self) -> String {
        match &self.state {
            State::Greeting(_) if self.mode == SecureMode::Implicit => "the server greeting".into(),
            State::Greeting(_) => {
                "the server greeting (a port that expects TLS first needs secure = 1)".into()
            }
            State::Capability(_) => "the CAPABILITY reply".into(),
            State::StartTls(_) => "the STARTTLS reply".into(),
            State::Handshake(_) => "the TLS handshake".into(),
            State::Auth(a) => format!("the {} reply", a.mechanism.name()),
            State::Finished => "nothing".into(),
        }
    }
}
