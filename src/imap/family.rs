//! Operations for the IMAP command family. Most commands are a `BatchOp`:
//! one or more commands written together (pipelined: one round trip), done
//! when each has its tagged reply, keeping the untagged data they produced.
//! IDLE has its own operation because it waits on a clock of its own.

use super::codec::{Code, Response, StatusKind};
use super::session::{
    bye_error, CommandLine, ImapSession, Operation, Outbox, PendingCommand, Phase, Step,
};
use crate::error::MailError;
use std::time::{Duration, Instant};

/// Which state a command needs (RFC 3501 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Authenticated,
    Selected,
}

/// What a batch gathered.
#[derive(Debug, Default)]
pub struct Batch {
    /// Untagged data (`* ...` other than status), raw bytes after `* `.
    pub data: Vec<Vec<u8>>,
    /// Response codes from untagged and tagged OK replies: (name, argument).
    pub codes: Vec<(String, Option<String>)>,
}

impl Batch {
    pub fn code(&self, name: &str) -> Option<&str> {
        self.codes
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, a)| a.as_deref())
    }
}

pub struct BatchOp {
    what: String,
    needs: Needs,
    lines: Vec<CommandLine>,
    pending: Vec<PendingCommand>,
    batch: Batch,
    failed: Option<MailError>,
}

impl BatchOp {
    /// How many untagged data frames it has kept so far.
    pub fn data_len(&self) -> usize {
        self.batch.data.len()
    }

    /// `what` names the command in errors ("SELECT INBOX").
    pub fn new(what: impl Into<String>, needs: Needs, lines: Vec<CommandLine>) -> Self {
        BatchOp {
            what: what.into(),
            needs,
            lines,
            pending: Vec::new(),
            batch: Batch::default(),
            failed: None,
        }
    }
}

/// The state check every family command makes before sending anything.
pub fn check_phase(s: &ImapSession, needs: Needs) -> Result<(), MailError> {
    match (&s.phase, needs) {
        (Phase::Selected(_), _) | (Phase::Authenticated, Needs::Authenticated) => Ok(()),
        (Phase::Authenticated, Needs::Selected) => Err(MailError::NotSelected),
        (Phase::NotAuthenticated, _) => {
            Err(MailError::BadSocket("the session is not logged in".into()))
        }
        (Phase::Logout, _) => Err(MailError::BadSocket("the session has logged out".into())),
    }
}

impl Operation for BatchOp {
    type Output = Batch;

    fn start(&mut self, s: &mut ImapSession, out: &mut Outbox) -> Step<Batch> {
        if let Err(e) = check_phase(s, self.needs) {
            return Step::Done(Err(e));
        }
        for line in std::mem::take(&mut self.lines) {
            self.pending.push(s.send(line, out));
        }
        Step::Continue
    }

    fn on_response(&mut self, _s: &mut ImapSession, r: Response, out: &mut Outbox) -> Step<Batch> {
        // Untagged data is moved, not copied: it may be a 50 MB literal.
        let r = match r {
            Response::Other(raw) => {
                self.batch.data.push(raw);
                return Step::Continue;
            }
            // Kept in order with the data: sequence numbers seen before an
            // EXPUNGE shift after it (RFC 3501 7.4.1).
            Response::Expunge(n) => {
                self.batch.data.push(format!("{n} EXPUNGE").into_bytes());
                return Step::Continue;
            }
            other => other,
        };
        let r = &r;
        if let Some(e) = bye_error(r) {
            return Step::Done(Err(e));
        }
        match r {
            // Only a command with a synchronising literal waits for "+".
            Response::Continuation(_)
                if !self.pending.iter_mut().any(|p| p.on_continuation(out)) =>
            {
                return Step::Done(Err(MailError::Syntax(
                    "unexpected continuation request".into(),
                )));
            }
            Response::Status {
                tag: None,
                kind: StatusKind::Ok,
                code: Some(c),
                ..
            } => push_code(&mut self.batch, c),
            _ => {}
        }
        if let Some(i) = self.pending.iter().position(|p| p.completion(r).is_some()) {
            let (kind, text) = self.pending[i].completion(r).expect("found above");
            match kind {
                StatusKind::Ok => {
                    if let Response::Status { code: Some(c), .. } = r {
                        push_code(&mut self.batch, c);
                    }
                }
                StatusKind::Bad if self.pending[i].nonsync_literal => {
                    self.failed = Some(MailError::Syntax(format!(
                        "{}: the server refused the command as malformed after its literal was sent ({text}); the connection cannot be trusted",
                        self.what
                    )));
                }
                _ if self.failed.is_none() => {
                    self.failed = Some(MailError::CommandFailed(format!("{}: {text}", self.what)));
                }
                _ => {}
            }
            self.pending.remove(i);
            if self.pending.is_empty() {
                return Step::Done(match self.failed.take() {
                    Some(e) => Err(e),
                    None => Ok(std::mem::take(&mut self.batch)),
                });
            }
        }
        Step::Continue
    }

    fn waiting_for(&self) -> String {
        format!("the reply to {}", self.what)
    }
}

fn push_code(b: &mut Batch, c: &Code) {
    match c {
        Code::Other(name, arg) => b.codes.push((name.clone(), arg.clone())),
        Code::Alert => b.codes.push(("ALERT".into(), None)),
        Code::Capability(_) => {}
    }
}

/// IDLE (RFC 2177): waits up to `wait` for updates, returns at the first
/// one (or at the end of the wait), and always ends with DONE.
pub struct IdleOp {
    wait: Duration,
    cmd: Option<PendingCommand>,
    until: Option<Instant>,
    done_sent: bool,
    /// IMAPCancel ended it: the OK to DONE becomes -516.
    cancelled: bool,
    pub updates: Vec<Vec<u8>>,
}

/// After the first update, how long to keep gathering the ones that follow it.
const IDLE_GATHER: Duration = Duration::from_millis(100);

impl IdleOp {
    pub fn new(wait: Duration) -> Self {
        IdleOp {
            wait,
            cmd: None,
            until: None,
            done_sent: false,
            cancelled: false,
            updates: Vec::new(),
        }
    }

    fn send_done(&mut self, out: &mut Outbox) {
        if !self.done_sent {
            self.done_sent = true;
            self.until = None;
            out.push(super::session::Action::Send {
                wire: b"DONE\r\n".to_vec(),
                shown: "DONE".into(),
            });
        }
    }
}

impl Operation for IdleOp {
    type Output = Vec<Vec<u8>>;

    fn start(&mut self, s: &mut ImapSession, out: &mut Outbox) -> Step<Self::Output> {
        if let Err(e) = check_phase(s, Needs::Authenticated) {
            return Step::Done(Err(e));
        }
        if !s.has_cap("IDLE") {
            return Step::Done(Err(MailError::CommandFailed(
                "the server does not offer IDLE".into(),
            )));
        }
        self.cmd = Some(s.send(CommandLine::new("IDLE"), out));
        Step::Continue
    }

    fn on_response(
        &mut self,
        s: &mut ImapSession,
        r: Response,
        _out: &mut Outbox,
    ) -> Step<Self::Output> {
        let r = &r;
        if let Some(e) = bye_error(r) {
            return Step::Done(Err(e));
        }
        match r {
            Response::Continuation(_) if self.until.is_none() && !self.done_sent => {
                self.until = Some(s.now + self.wait);
            }
            Response::Exists(_)
            | Response::Recent(_)
            | Response::Expunge(_)
            | Response::Other(_) => {
                self.updates.push(update_text(r));
                if !self.done_sent {
                    let soon = s.now + IDLE_GATHER;
                    self.until = Some(self.until.map_or(soon, |u| u.min(soon)));
                }
            }
            _ => {}
        }
        match self.cmd.as_ref().and_then(|c| c.completion(r)) {
            None => Step::Continue,
            Some((StatusKind::Ok, _)) if self.cancelled => Step::Done(Err(MailError::Cancelled(
                "IMAPCancel ended IDLE; the session is usable".into(),
            ))),
            Some((StatusKind::Ok, _)) => Step::Done(Ok(std::mem::take(&mut self.updates))),
            Some((_, text)) => Step::Done(Err(MailError::CommandFailed(format!("IDLE: {text}")))),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.until
    }

    fn on_timeout(&mut self, _s: &mut ImapSession, out: &mut Outbox) -> Step<Self::Output> {
        self.send_done(out);
        Step::Continue
    }

    fn waiting_for(&self) -> String {
        "the end of IDLE".into()
    }

    fn reports_updates(&self) -> bool {
        true
    }

    fn on_cancel(&mut self, out: &mut Outbox) -> bool {
        // DONE ends IDLE cleanly; the server's OK follows.
        self.cancelled = true;
        self.until = None;
        self.send_done(out);
        true
    }
}

fn update_text(r: &Response) -> Vec<u8> {
    match r {
        Response::Exists(n) => format!("{n} EXISTS").into_bytes(),
        Response::Recent(n) => format!("{n} RECENT").into_bytes(),
        Response::Expunge(n) => format!("{n} EXPUNGE").into_bytes(),
        Response::Other(raw) => raw.clone(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventKind, MailEvent};
    use crate::imap::codec::{Fragmentizer, FrameLimits};
    use crate::imap::driver::{run, Observer};
    use crate::imap::transcript::Script;

    #[derive(Default)]
    struct Events(Vec<MailEvent>);

    impl Observer for Events {
        fn status(&mut self, _: &str) {}
        fn response(&mut self, _: &str) {}
        fn event(&mut self, e: MailEvent) {
            self.0.push(e);
        }
    }

    fn session() -> ImapSession {
        let mut s = ImapSession::new(Duration::from_secs(30));
        s.phase = Phase::Authenticated;
        s.caps = super::super::codec::Capabilities::parse("IMAP4rev1 IDLE");
        s
    }

    #[test]
    fn idle_raises_one_update_event_per_mailbox_update() {
        // The server ends IDLE itself here, so the script needs no clock.
        let mut t = Script::parse(
            "C: A0001 IDLE
             S: + idling
             S: * 4 EXISTS
             S: * 1 RECENT
             S: * 2 EXPUNGE
             S: * 3 FETCH (FLAGS (\\Seen))
             S: * FLAGS (\\Seen \\Deleted)
             S: * OK still here
             S: A0001 OK IDLE done",
        );
        let mut s = session();
        let mut f = Fragmentizer::new(FrameLimits::default());
        let mut ev = Events::default();
        let mut op = IdleOp::new(Duration::from_secs(10));
        let updates = run(&mut op, &mut s, &mut f, &mut t, &mut ev).unwrap();
        assert_eq!(updates.len(), 5, "FLAGS is still in the list");
        let got: Vec<_> =
            ev.0.iter()
                .filter(|e| e.kind == EventKind::Update)
                .map(|e| (e.code, e.done, e.text.as_str()))
                .collect();
        assert_eq!(
            got,
            [
                (0, 4, "4 EXISTS"),
                (0, 1, "1 RECENT"),
                (0, 2, "2 EXPUNGE"),
                (0, 3, "3 FETCH (FLAGS (\\Seen))"),
            ]
        );
        assert_eq!(
            MailEvent::update(4, "4 EXISTS").as_status(7),
            "EVENT UPDATE socket=7 code=0 4 EXISTS"
        );
    }

    #[test]
    fn other_commands_raise_no_update_events() {
        let mut t = Script::parse(
            "C: A0001 NOOP
             S: * 5 EXISTS
             S: * 1 FETCH (FLAGS ())
             S: A0001 OK done",
        );
        let mut s = session();
        let mut f = Fragmentizer::new(FrameLimits::default());
        let mut ev = Events::default();
        let mut op = BatchOp::new("NOOP", Needs::Authenticated, vec![CommandLine::new("NOOP")]);
        run(&mut op, &mut s, &mut f, &mut t, &mut ev).unwrap();
        assert!(
            ev.0.iter().all(|e| e.kind == EventKind::Command),
            "{:?}",
            ev.0
        );
    }
}
