//! IMAPConnect's protocol logic after the TCP (and, for implicit TLS, TLS)
//! connection exists: greeting, capabilities, STARTTLS, authentication.
//!
//! Each state is a type that accepts only the inputs that make sense for it,
//! so "authenticate before TLS" or "trust pre-TLS capabilities" cannot be
//! written: the only way out of `StartTlsSent` is the handshake, and the
//! handshake state forgets everything learnt before it.

use super::auth::cram_md5_response;
use super::codec::{Response, StatusKind};
use super::sasl::{
    oauth_error_text, oauthbearer_initial, plain_initial, xoauth2_initial, ScramAwaitingFinal,
    ScramClient, OAUTHBEARER_ERROR_REPLY, XOAUTH2_ERROR_REPLY,
};
use super::session::{
    bye_error, Action, CommandLine, ImapSession, Operation, Outbox, PendingCommand, Phase, Step,
};
use crate::error::MailError;
use crate::options::AuthType;

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

/// How to log in, and what to do after.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub auth: AuthType,
    /// IDENTIFY: send ID (RFC 2971) after login when the server offers it.
    pub identify: bool,
    /// The mail server's name and port (OAUTHBEARER carries them).
    pub host: String,
    pub port: u16,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            auth: AuthType::Auto,
            identify: false,
            host: String::new(),
            port: 143,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    CramMd5,
    /// The LOGIN command.
    Login,
    Plain,
    XOAuth2,
    OAuthBearer,
    ScramSha256,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::Login => "LOGIN",
            Mechanism::Plain => "PLAIN",
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

/// Where a SASL exchange is.
enum Sasl {
    /// CRAM-MD5 / LOGIN: waiting for the server's first "+".
    Start,
    /// No SASL-IR: the initial response answers the first "+", then `1`.
    Deferred(String, Box<Sasl>),
    /// The mechanism's one response went out; a further "+" is an error report.
    Sent,
    /// We cancelled the exchange for this reason; the server's NO follows.
    Failed(MailError),
    Scram(ScramClient),
    ScramFinal(ScramAwaitingFinal),
    ScramVerified,
    /// The server reported an OAuth error; its NO follows our reply.
    OAuthError(String),
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
    sasl: Sasl,
}
struct Identifying(PendingCommand, Connected);
/// After STARTTLS: CAPABILITY and the AUTHENTICATE that the capabilities
/// from before TLS suggest, written together to save a round trip. Only a
/// mechanism whose command carries no secret is sent this way, and nothing
/// answers its "+" before the CAPABILITY reply confirms the choice.
struct CapabilityThenAuth {
    cap: PendingCommand,
    auth: Authenticating,
}
/// The pipelined AUTHENTICATE is wrong for the capabilities after TLS:
/// cancel it ("*" to its "+"), await its reply, then choose again.
struct Abandoning(PendingCommand);

enum State {
    Greeting(AwaitGreeting),
    Capability(CapabilityQuery),
    StartTls(StartTlsSent),
    Handshake(Handshaking),
    Auth(Authenticating),
    Identify(Identifying),
    CapAuth(CapabilityThenAuth),
    Abandon(Abandoning),
    Finished,
}

pub struct ConnectOp {
    mode: SecureMode,
    creds: Credentials,
    settings: AuthSettings,
    state: State,
}

type Next = (State, Step<Connected>);

impl ConnectOp {
    pub fn new(mode: SecureMode, creds: Credentials, settings: AuthSettings) -> Self {
        ConnectOp {
            mode,
            creds,
            settings,
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

    /// The mechanisms to try, last first, from the capabilities known now.
    fn plan(&self, s: &ImapSession) -> Result<Vec<Mechanism>, MailError> {
        let asked = self.settings.auth;
        let offered = |m: &str| s.has_cap(&format!("AUTH={m}"));
        let mut plan = Vec::new();
        match asked {
            AuthType::Auto => {
                if offered("CRAM-MD5") {
                    plan.push(Mechanism::CramMd5);
                }
                if !s.has_cap("LOGINDISABLED") {
                    plan.push(Mechanism::Login);
                }
                if plan.is_empty() {
                    return Err(MailError::LoginDisabled(
                        "the server advertises LOGINDISABLED and does not offer CRAM-MD5".into(),
                    ));
                }
            }
            AuthType::Login => {
                if s.has_cap("LOGINDISABLED") {
                    return Err(MailError::LoginDisabled(
                        "AUTH=LOGIN was asked for, but the server advertises LOGINDISABLED".into(),
                    ));
                }
                plan.push(Mechanism::Login);
            }
            other => {
                let m = match other {
                    AuthType::Plain => Mechanism::Plain,
                    AuthType::CramMd5 => Mechanism::CramMd5,
                    AuthType::XOAuth2 => Mechanism::XOAuth2,
                    AuthType::OAuthBearer => Mechanism::OAuthBearer,
                    _ => Mechanism::ScramSha256,
                };
                if !offered(m.name()) {
                    let mut list: Vec<&str> = s
                        .caps
                        .iter()
                        .filter_map(|c| c.strip_prefix("AUTH="))
                        .collect();
                    if list.is_empty() {
                        list.push("none");
                    }
                    return Err(MailError::MechanismUnavailable(format!(
                        "{} was asked for; the server offers {}",
                        m.name(),
                        list.join(", ")
                    )));
                }
                plan.push(m);
            }
        }
        plan.reverse();
        Ok(plan)
    }

    fn begin_auth(&self, s: &mut ImapSession, out: &mut Outbox) -> Next {
        let mut plan = match self.plan(s) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let first = plan.pop().expect("plan is not empty");
        self.try_mechanism(first, plan, s, out)
    }

    /// The mechanism's initial response, if it has one.
    fn initial_response(&self, m: Mechanism) -> Result<(Option<String>, Sasl), MailError> {
        let c = &self.creds;
        Ok(match m {
            Mechanism::Plain => (
                Some(plain_initial("", &c.username, &c.password)),
                Sasl::Sent,
            ),
            Mechanism::XOAuth2 => (Some(xoauth2_initial(&c.username, &c.password)), Sasl::Sent),
            Mechanism::OAuthBearer => (
                Some(oauthbearer_initial(
                    &c.username,
                    &self.settings.host,
                    self.settings.port,
                    &c.password,
                )),
                Sasl::Sent,
            ),
            Mechanism::ScramSha256 => {
                let scram = ScramClient::new(&c.username, &c.password)?;
                (Some(scram.client_first()), Sasl::Scram(scram))
            }
            Mechanism::CramMd5 | Mechanism::Login => (None, Sasl::Start),
        })
    }

    fn try_mechanism(
        &self,
        m: Mechanism,
        rest: Vec<Mechanism>,
        s: &mut ImapSession,
        out: &mut Outbox,
    ) -> Next {
        let (initial, sasl) = match self.initial_response(m) {
            Ok(x) => x,
            Err(e) => return fail(e),
        };
        let mut pending_initial = None;
        let cmd = match (m, initial) {
            (Mechanism::Login, _) => CommandLine::new("LOGIN")
                .string(&self.creds.username)
                .secret(&self.creds.password),
            (_, Some(ir)) if s.has_cap("SASL-IR") => CommandLine::new("AUTHENTICATE")
                .atom(m.name())
                .secret_atom(&ir),
            (_, ir) => {
                pending_initial = ir;
                CommandLine::new("AUTHENTICATE").atom(m.name())
            }
        };
        let command = s.send(cmd, out);
        let sasl = match pending_initial {
            Some(ir) => Sasl::Deferred(ir, Box::new(sasl)),
            None => sasl,
        };
        let auth = Authenticating {
            mechanism: m,
            command,
            rest,
            sasl,
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
                self.after_login(
                    s,
                    out,
                    Connected {
                        mechanism: None,
                        preauth: true,
                    },
                )
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

    /// Answers a "+" during AUTHENTICATE / LOGIN.
    fn on_challenge(
        &self,
        a: &mut Authenticating,
        text: &str,
        out: &mut Outbox,
    ) -> Result<(), MailError> {
        let send = |out: &mut Outbox, wire: String, shown: &str| {
            out.push(Action::Send {
                wire: format!("{wire}\r\n").into_bytes(),
                shown: shown.into(),
            })
        };
        // RFC 3501 6.2.2: "*" cancels; the server answers with BAD or NO.
        let cancel = |out: &mut Outbox| send(out, "*".into(), "*");
        a.sasl = match (a.mechanism, std::mem::replace(&mut a.sasl, Sasl::Sent)) {
            (Mechanism::Login, _) => {
                if !a.command.on_continuation(out) {
                    return Err(MailError::Syntax("unexpected continuation request".into()));
                }
                Sasl::Start
            }
            (m, Sasl::Deferred(ir, then)) => {
                send(out, ir, &format!("<{} response redacted>", m.name()));
                *then
            }
            (Mechanism::CramMd5, Sasl::Start) => {
                match cram_md5_response(&self.creds.username, &self.creds.password, text) {
                    Ok(resp) => send(out, resp, "<CRAM-MD5 response redacted>"),
                    // A challenge we cannot read: cancel and fall back.
                    Err(_) => cancel(out),
                }
                Sasl::Sent
            }
            (Mechanism::XOAuth2 | Mechanism::OAuthBearer, Sasl::Sent) => {
                // RFC 7628 3.2.3: the server's error report; answer so it sends NO.
                let reply = if a.mechanism == Mechanism::XOAuth2 {
                    XOAUTH2_ERROR_REPLY
                } else {
                    OAUTHBEARER_ERROR_REPLY
                };
                send(out, reply.into(), reply);
                Sasl::OAuthError(oauth_error_text(text))
            }
            (_, Sasl::Scram(client)) => match client.server_first(text) {
                Ok((next, reply)) => {
                    send(out, reply, "<SCRAM-SHA-256 proof redacted>");
                    Sasl::ScramFinal(next)
                }
                Err(e) => {
                    cancel(out);
                    Sasl::Failed(e)
                }
            },
            (_, Sasl::ScramFinal(f)) => match f.server_final(text) {
                Ok(()) => {
                    send(out, String::new(), "");
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
        };
        Ok(())
    }

    fn on_auth(
        &self,
        mut a: Authenticating,
        s: &mut ImapSession,
        r: &Response,
        out: &mut Outbox,
    ) -> Next {
        if let Response::Continuation(text) = r {
            if let Err(e) = self.on_challenge(&mut a, text, out) {
                return fail(e);
            }
            return (State::Auth(a), Step::Continue);
        }
        let Some((kind, text)) = a.command.completion(r) else {
            return (State::Auth(a), Step::Continue);
        };
        match (kind, a.sasl) {
            (StatusKind::Ok, sasl) => {
                if a.mechanism == Mechanism::ScramSha256 && !matches!(sasl, Sasl::ScramVerified) {
                    return fail(MailError::ServerProof(
                        "the server accepted SCRAM-SHA-256 without sending its signature".into(),
                    ));
                }
                s.phase = Phase::Authenticated;
                out.status(format!(
                    "Logged in as {} with {}",
                    self.creds.username,
                    a.mechanism.name()
                ));
                self.after_login(
                    s,
                    out,
                    Connected {
                        mechanism: Some(a.mechanism.name()),
                        preauth: false,
                    },
                )
            }
            (_, Sasl::Failed(e)) => fail(e),
            (_, Sasl::OAuthError(why)) => fail(MailError::AuthFailed(format!(
                "{} refused: {text} ({why})",
                a.mechanism.name()
            ))),
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

    /// The CAPABILITY reply after TLS came: go on with the pipelined
    /// mechanism if it is still the one to use, else cancel it.
    fn confirm_pipelined(
        &self,
        mut auth: Authenticating,
        s: &mut ImapSession,
        out: &mut Outbox,
    ) -> Next {
        match self.plan(s) {
            Ok(mut plan) if plan.last() == Some(&auth.mechanism) => {
                plan.pop();
                auth.rest = plan;
                (State::Auth(auth), Step::Continue)
            }
            _ => {
                out.status(format!(
                    "The capabilities after TLS do not confirm {}: cancelling it",
                    auth.mechanism.name()
                ));
                (State::Abandon(Abandoning(auth.command)), Step::Continue)
            }
        }
    }

    /// IDENTIFY: ID (RFC 2971) when the server offers it; its reply goes to
    /// the response list like every line.
    fn after_login(&self, s: &mut ImapSession, out: &mut Outbox, c: Connected) -> Next {
        if !self.settings.identify {
            return done(c);
        }
        if !s.has_cap("ID") {
            out.status("IDENTIFY: the server does not offer ID; not sent");
            return done(c);
        }
        let cmd = CommandLine::new("ID").raw(&format!(
            "(\"name\" \"mailext\" \"version\" \"{}\")",
            env!("CARGO_PKG_VERSION")
        ));
        let cmd = s.send(cmd, out);
        (State::Identify(Identifying(cmd, c)), Step::Continue)
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
        let waits_for_plus = matches!(
            self.state,
            State::Auth(_) | State::Greeting(_) | State::Abandon(_)
        );
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
            State::Identify(Identifying(cmd, c)) => match cmd.completion(r) {
                None => (State::Identify(Identifying(cmd, c)), Step::Continue),
                Some((StatusKind::Ok, _)) => done(c),
                // The login stands; ID is a courtesy.
                Some((_, text)) => {
                    out.status(format!("ID was refused ({text}); the session is usable"));
                    done(c)
                }
            },
            State::CapAuth(CapabilityThenAuth { cap, auth }) => match cap.completion(r) {
                Some((StatusKind::Ok, _)) => self.confirm_pipelined(auth, s, out),
                Some((_, text)) => fail(MailError::CommandFailed(format!("CAPABILITY: {text}"))),
                None if auth.command.completion(r).is_some() => fail(MailError::Syntax(
                    "the AUTHENTICATE reply came before the CAPABILITY reply".into(),
                )),
                None => (
                    State::CapAuth(CapabilityThenAuth { cap, auth }),
                    Step::Continue,
                ),
            },
            State::Abandon(Abandoning(cmd)) => {
                if let Response::Continuation(_) = r {
                    out.push(Action::Send {
                        wire: b"*\r\n".to_vec(),
                        shown: "*".into(),
                    });
                    (State::Abandon(Abandoning(cmd)), Step::Continue)
                } else if cmd.completion(r).is_some() {
                    self.begin_auth(s, out)
                } else {
                    (State::Abandon(Abandoning(cmd)), Step::Continue)
                }
            }
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
                // A guess from before TLS; the reply to CAPABILITY decides.
                let guess = self.plan(s);
                s.forget_pre_tls_state();
                let cap = s.send(CommandLine::new("CAPABILITY"), out);
                match guess {
                    Ok(mut plan) if plan.last() == Some(&Mechanism::CramMd5) => {
                        plan.pop();
                        match self.try_mechanism(Mechanism::CramMd5, plan, s, out) {
                            (State::Auth(auth), _) => {
                                self.state = State::CapAuth(CapabilityThenAuth { cap, auth });
                                Step::Continue
                            }
                            (next, step) => {
                                self.state = next;
                                step
                            }
                        }
                    }
                    _ => {
                        self.state = State::Capability(CapabilityQuery(cap));
                        Step::Continue
                    }
                }
            }
            _ => Step::Done(Err(MailError::Internal(
                "TLS completed outside STARTTLS".into(),
            ))),
        }
    }

    fn in_sasl(&self) -> bool {
        matches!(
            self.state,
            State::Auth(_) | State::CapAuth(_) | State::Abandon(_)
        )
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
            State::Identify(_) => "the ID reply".into(),
            State::CapAuth(_) => "the CAPABILITY reply".into(),
            State::Abandon(_) => "the reply to the cancelled AUTHENTICATE".into(),
            State::Finished => "nothing".into(),
        }
    }
}
