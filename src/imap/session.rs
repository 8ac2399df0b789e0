//! The IMAP session core: state that lives as long as the connection, and
//! the machinery every command shares. No I/O happens here: operations take
//! decoded responses and the current time, and queue `Action`s for a driver.

use super::codec::{encode_string, Capabilities, Code, Response, StatusKind, Wire};
use crate::error::MailError;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What an operation asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes; `shown` is the redacted form for status messages.
    Send { wire: Vec<u8>, shown: String },
    /// Start the TLS handshake now (the STARTTLS reply has been read).
    StartTls,
    /// A milestone for the status proc.
    Status(String),
}

#[derive(Debug, Default)]
pub struct Outbox(VecDeque<Action>);

/// Consecutive commands up to this size go out in one write (one TCP
/// segment, one TLS record); larger ones, such as upload bodies, alone.
pub const SEND_JOIN_MAX: usize = 16 * 1024;

impl Outbox {
    pub fn push(&mut self, a: Action) {
        self.0.push_back(a);
    }
    pub fn status(&mut self, s: impl Into<String>) {
        self.0.push_back(Action::Status(s.into()));
    }
    pub fn pop(&mut self) -> Option<Action> {
        self.0.pop_front()
    }
    /// Whether the next action is a small Send (one that may join the
    /// write before it).
    pub fn next_small_send(&self) -> bool {
        matches!(self.0.front(), Some(Action::Send { wire, .. }) if wire.len() <= SEND_JOIN_MAX)
    }
}

/// Where the connection is in the IMAP state diagram (RFC 3501 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    NotAuthenticated,
    Authenticated,
    /// A mailbox is selected (its Unicode name).
    Selected(String),
    Logout,
}

/// The communications timeout: every wait for the server ends by its
/// deadline, which moves forward whenever the server sends something.
/// Time is always passed in, so tests drive it with a fake clock.
#[derive(Debug, Clone)]
pub struct WaitClock {
    timeout: Duration,
    deadline: Option<Instant>,
}

impl WaitClock {
    pub fn new(timeout: Duration) -> Self {
        WaitClock {
            timeout,
            deadline: None,
        }
    }
    pub fn start(&mut self, now: Instant) {
        self.deadline = Some(now + self.timeout);
    }
    /// Called when bytes arrive: the server is alive.
    pub fn touch(&mut self, now: Instant) {
        if self.deadline.is_some() {
            self.start(now);
        }
    }
    pub fn stop(&mut self) {
        self.deadline = None;
    }
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// Takes a new timeout (MailSetConfig applies to open sockets too).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}

/// Connection-wide state shared by every command on the socket.
#[derive(Debug)]
pub struct ImapSession {
    next_tag: u32,
    /// Empty until known.
    pub caps: Capabilities,
    pub tls: bool,
    pub phase: Phase,
    pub clock: WaitClock,
    /// Set when the server said BYE or the stream failed: no more commands.
    pub broken: Option<MailError>,
    /// Untagged EXISTS / RECENT seen so far (kept for the mailbox commands).
    pub exists: Option<u32>,
    pub recent: Option<u32>,
    /// Set while CAPABILITY lines of one reply are arriving.
    caps_merging: bool,
    /// The time of the input being handled, set by the driver.
    pub now: Instant,
}

impl ImapSession {
    pub fn new(timeout: Duration) -> Self {
        ImapSession {
            next_tag: 1,
            caps: Capabilities::default(),
            tls: false,
            phase: Phase::NotAuthenticated,
            clock: WaitClock::new(timeout),
            broken: None,
            exists: None,
            recent: None,
            caps_merging: false,
            now: Instant::now(),
        }
    }

    pub fn has_cap(&self, name: &str) -> bool {
        self.caps.has(name)
    }

    /// Forgets everything learnt before TLS (RFC 3501 6.2.1: it may be forged).
    pub fn forget_pre_tls_state(&mut self) {
        self.caps.clear();
        self.exists = None;
        self.recent = None;
    }

    fn tag(&mut self) -> String {
        let t = format!("A{:04}", self.next_tag);
        self.next_tag += 1;
        t
    }

    /// Reflects untagged data in the session; every operation calls this first.
    pub fn observe(&mut self, r: &Response) {
        match r {
            // Some servers split the list over several untagged lines.
            Response::Capability(c) if self.caps_merging => {
                self.caps.append(c);
            }
            Response::Capability(c) => {
                self.caps = c.clone();
                self.caps_merging = true;
            }
            Response::Status {
                code: Some(Code::Capability(c)),
                ..
            } => self.caps = c.clone(),
            Response::Status { tag: Some(_), .. } => self.caps_merging = false,
            Response::Exists(n) => self.exists = Some(*n),
            Response::Recent(n) => self.recent = Some(*n),
            Response::Expunge(_) => self.exists = self.exists.map(|n| n.saturating_sub(1)),
            _ => {}
        }
    }

    /// Starts a command: queues its first chunk and returns the handle that
    /// sends the rest as the server asks for it.
    pub fn send(&mut self, cmd: CommandLine, out: &mut Outbox) -> PendingCommand {
        let tag = self.tag();
        // LITERAL+ (RFC 7888) lets every literal go at once; LITERAL- only small ones.
        let non_sync =
            |len: usize| self.has_cap("LITERAL+") || (self.has_cap("LITERAL-") && len <= 4096);
        let mut chunks: VecDeque<(Vec<u8>, String)> = VecDeque::new();
        let mut nonsync_literal = false;
        let mut wire = Vec::with_capacity(64);
        wire.extend_from_slice(tag.as_bytes());
        wire.push(b' ');
        let mut shown = String::with_capacity(64);
        shown.push_str(&tag);
        shown.push(' ');
        for part in cmd.parts {
            match part {
                Part::Text { wire: w, shown: s } => {
                    wire.extend_from_slice(w.as_bytes());
                    shown.push_str(&s);
                }
                Part::Literal {
                    bytes,
                    shown: s,
                    bulk,
                } => {
                    let plus = if bulk && non_sync(bytes.len()) {
                        "+"
                    } else {
                        ""
                    };
                    let head = format!("{{{}{plus}}}\r\n", bytes.len());
                    wire.extend_from_slice(head.as_bytes());
                    shown.push_str(head.trim_end());
                    nonsync_literal |= !plus.is_empty();
                    if plus.is_empty() {
                        // A synchronising literal: wait for "+" before the bytes.
                        chunks.push_back((std::mem::take(&mut wire), std::mem::take(&mut shown)));
                    } else {
                        shown.push(' ');
                    }
                    wire.extend_from_slice(&bytes);
                    shown.push_str(&s);
                }
            }
        }
        wire.extend_from_slice(b"\r\n");
        chunks.push_back((wire, shown));
        let mut pending = PendingCommand {
            tag,
            chunks,
            nonsync_literal,
        };
        pending.send_next(out);
        pending
    }
}

/// One piece of a command line.
#[derive(Debug, Clone)]
pub enum Part {
    Text {
        wire: String,
        shown: String,
    },
    /// `bulk`: message data, which may go as a LITERAL+ literal. Strings
    /// always wait for "+", so a BAD for a typo never leaves their bytes to
    /// be read as commands.
    Literal {
        bytes: Vec<u8>,
        shown: String,
        bulk: bool,
    },
}

/// A command line under construction (without its tag).
#[derive(Debug, Clone, Default)]
pub struct CommandLine {
    parts: Vec<Part>,
}

impl CommandLine {
    pub fn new(verb: &str) -> Self {
        let mut line = CommandLine {
            parts: Vec::with_capacity(2),
        };
        line.text(verb, verb);
        line
    }
    /// Appends text, to the last part when that is text too: a command of
    /// many arguments stays one pair of strings, not two per argument.
    fn text(&mut self, wire: &str, shown: &str) {
        if let Some(Part::Text { wire: w, shown: s }) = self.parts.last_mut() {
            w.push_str(wire);
            s.push_str(shown);
        } else {
            self.parts.push(Part::Text {
                wire: wire.into(),
                shown: shown.into(),
            });
        }
    }
    /// A word sent as is (atoms, mechanism names).
    pub fn atom(mut self, a: &str) -> Self {
        self.text(" ", " ");
        self.text(a, a);
        self
    }
    /// Bytes sent as a literal (message data), shown by their size.
    pub fn literal(mut self, bytes: Vec<u8>) -> Self {
        let shown = format!("<{} bytes>", bytes.len());
        self.text(" ", " ");
        self.parts.push(Part::Literal {
            bytes,
            shown,
            bulk: true,
        });
        self
    }
    /// A SASL initial response (RFC 4959): sent as is, shown as `<redacted>`.
    pub fn secret_atom(mut self, a: &str) -> Self {
        self.text(" ", " ");
        self.text(a, "<redacted>");
        self
    }
    /// Text sent as is, already in IMAP syntax (lists, numbers, sequence sets).
    pub fn raw(self, text: &str) -> Self {
        self.atom(text)
    }
    /// A string argument, quoted or literal as needed, shown as sent.
    pub fn string(self, s: &str) -> Self {
        self.string_shown(s, None, true)
    }
    /// A word, after a space or glued to what precedes it (`(` and `)`).
    pub fn word(mut self, w: &str, space: bool) -> Self {
        if space {
            self.text(" ", " ");
        }
        self.text(w, w);
        self
    }
    /// A string, after a space or glued (right after `(`).
    pub fn string_spaced(self, s: &str, space: bool) -> Self {
        self.string_shown(s, None, space)
    }
    /// A secret string argument: sent like `string`, shown as `<redacted>`.
    pub fn secret(self, s: &str) -> Self {
        self.string_shown(s, Some("<redacted>"), true)
    }
    fn string_shown(mut self, s: &str, mask: Option<&str>, space: bool) -> Self {
        if space {
            self.text(" ", " ");
        }
        match encode_string(s) {
            Wire::Quoted(q) => self.text(&q, mask.unwrap_or(&q)),
            Wire::Literal(bytes) => {
                let shown = mask.unwrap_or(s).to_string();
                self.parts.push(Part::Literal {
                    bytes,
                    shown,
                    bulk: false,
                });
            }
        }
        self
    }
}

/// A command in flight: its tag and the chunks still to send after `+`.
#[derive(Debug)]
pub struct PendingCommand {
    pub tag: String,
    /// A non-synchronising literal went with it: after a BAD the server may
    /// have read those bytes as commands, so the stream cannot be trusted.
    pub nonsync_literal: bool,
    chunks: VecDeque<(Vec<u8>, String)>,
}

impl PendingCommand {
    fn send_next(&mut self, out: &mut Outbox) {
        if let Some((wire, shown)) = self.chunks.pop_front() {
            out.push(Action::Send { wire, shown });
        }
    }

    /// Handles a continuation request; false when none was expected.
    pub fn on_continuation(&mut self, out: &mut Outbox) -> bool {
        if self.chunks.is_empty() {
            return false;
        }
        self.send_next(out);
        true
    }

    /// The tagged completion of this command, if `r` is it.
    pub fn completion<'r>(&self, r: &'r Response) -> Option<(StatusKind, &'r str)> {
        match r {
            Response::Status {
                tag: Some(t),
                kind,
                text,
                ..
            } if *t == self.tag => Some((*kind, text)),
            _ => None,
        }
    }
}

/// What an operation says after each input.
#[derive(Debug)]
pub enum Step<T> {
    Continue,
    Done(Result<T, MailError>),
}

/// One command's protocol logic, driven by responses.
pub trait Operation {
    type Output;
    /// Queues the first commands (or finishes at once).
    fn start(&mut self, s: &mut ImapSession, out: &mut Outbox) -> Step<Self::Output>;
    /// Handles one decoded response. `observe` has already been applied.
    fn on_response(
        &mut self,
        s: &mut ImapSession,
        r: Response,
        out: &mut Outbox,
    ) -> Step<Self::Output>;
    /// The TLS handshake the operation asked for has completed.
    fn on_tls(&mut self, _s: &mut ImapSession, _out: &mut Outbox) -> Step<Self::Output> {
        Step::Done(Err(MailError::Internal("unexpected TLS completion".into())))
    }
    /// For timeout messages: what the operation is waiting for.
    fn waiting_for(&self) -> String;
    /// A deadline of the operation's own (IDLE's wait); while it is set the
    /// communications timeout does not apply.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// The operation's own deadline has passed.
    fn on_timeout(&mut self, _s: &mut ImapSession, _out: &mut Outbox) -> Step<Self::Output> {
        Step::Continue
    }
    /// IMAPCancel arrived. An operation that can stop cleanly queues what
    /// ends it and returns true; then it finishes with Cancelled and the
    /// session stays usable. Otherwise the connection is closed.
    fn on_cancel(&mut self, _out: &mut Outbox) -> bool {
        false
    }
    /// A SASL exchange runs: the server's "+" lines (SCRAM salts, nonces
    /// and signatures) are shown redacted, like the client's responses.
    fn in_sasl(&self) -> bool {
        false
    }
    /// The operation waits for mailbox updates (IDLE): the driver raises an
    /// UPDATE event for each untagged EXISTS, RECENT, EXPUNGE and FETCH.
    fn reports_updates(&self) -> bool {
        false
    }
    /// Whether to take a literal in pieces (`on_literal_piece`) instead of
    /// inside its frame; asked with the frame so far (up to its `{size}`
    /// line). The frame then holds `{0}` in its place.
    fn stream_literal(&mut self, _frame: &[u8], _size: u64) -> bool {
        false
    }
    /// The next bytes of the literal `stream_literal` took, in order.
    fn on_literal_piece(&mut self, _piece: &[u8]) {}
    /// The server closed the connection: `Some` when that ends the
    /// operation (LOGOUT after BYE), `None` when it is an error.
    fn on_closed(&mut self, _s: &mut ImapSession) -> Option<Result<Self::Output, MailError>> {
        None
    }
}

/// The shared reaction to an untagged BYE in the middle of a command.
pub fn bye_error(r: &Response) -> Option<MailError> {
    match r {
        Response::Status {
            tag: None,
            kind: StatusKind::Bye,
            text,
            ..
        } => Some(MailError::Bye(text.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sends(out: &mut Outbox) -> Vec<(String, String)> {
        let mut v = Vec::new();
        while let Some(a) = out.pop() {
            if let Action::Send { wire, shown } = a {
                v.push((String::from_utf8(wire).unwrap(), shown));
            }
        }
        v
    }

    #[test]
    fn secrets_are_shown_redacted_and_literals_wait_for_continuation() {
        let mut s = ImapSession::new(Duration::from_secs(60));
        let mut out = Outbox::default();
        let mut p = s.send(
            CommandLine::new("LOGIN").string("alice").secret("pässwörd"),
            &mut out,
        );
        let first = sends(&mut out);
        assert_eq!(
            first,
            vec![(
                "A0001 LOGIN \"alice\" {10}\r\n".into(),
                "A0001 LOGIN \"alice\" {10}".into()
            )]
        );
        assert!(p.on_continuation(&mut out));
        let second = sends(&mut out);
        assert_eq!(second[0].0, "pässwörd\r\n");
        assert_eq!(second[0].1, "<redacted>");
        assert!(!p.on_continuation(&mut out));

        let mut p = s.send(
            CommandLine::new("LOGIN").string("bob").secret("x\"y"),
            &mut out,
        );
        let one = sends(&mut out);
        assert_eq!(one[0].0, "A0002 LOGIN \"bob\" \"x\\\"y\"\r\n");
        assert_eq!(one[0].1, "A0002 LOGIN \"bob\" <redacted>");
        assert!(!p.on_continuation(&mut out));
    }

    #[test]
    fn literal_plus_is_for_message_data_only() {
        let mut s = ImapSession::new(Duration::from_secs(60));
        s.caps = Capabilities::parse("LITERAL+");
        let mut out = Outbox::default();
        s.send(
            CommandLine::new("APPEND")
                .string("INBOX")
                .literal(b"hi".to_vec()),
            &mut out,
        );
        let one = sends(&mut out);
        assert_eq!(one.len(), 1, "message data goes in one write");
        assert_eq!(one[0].0, "A0001 APPEND \"INBOX\" {2+}\r\nhi\r\n");
        assert!(
            !s.send(CommandLine::new("X").string("ü"), &mut out)
                .nonsync_literal
        );
        let waits = sends(&mut out);
        assert_eq!(
            waits[0].0, "A0002 X {2}\r\n",
            "a string literal still waits for +"
        );
    }

    #[test]
    fn wait_clock_expires_and_is_refreshed_by_traffic() {
        let t0 = Instant::now();
        let mut c = WaitClock::new(Duration::from_secs(10));
        assert!(!c.expired(t0 + Duration::from_secs(100)), "not waiting");
        c.start(t0);
        assert!(!c.expired(t0 + Duration::from_secs(9)));
        c.touch(t0 + Duration::from_secs(9));
        assert!(!c.expired(t0 + Duration::from_secs(18)));
        assert!(c.expired(t0 + Duration::from_secs(19)));
        c.stop();
        assert_eq!(c.deadline(), None);
    }
}
