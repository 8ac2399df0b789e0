//! Commands that are one tagged exchange: NOOP and LOGOUT.

use super::codec::{Response, StatusKind};
use super::session::{
    bye_error, CommandLine, ImapSession, Operation, Outbox, PendingCommand, Phase, Step,
};
use crate::error::MailError;

/// NOOP: lets the server report untagged updates (they land in the list).
#[derive(Default)]
pub struct NoopOp(Option<PendingCommand>);

impl Operation for NoopOp {
    type Output = ();
    fn start(&mut self, s: &mut ImapSession, out: &mut Outbox) -> Step<()> {
        self.0 = Some(s.send(CommandLine::new("NOOP"), out));
        Step::Continue
    }
    fn on_response(&mut self, _s: &mut ImapSession, r: Response, _out: &mut Outbox) -> Step<()> {
        let r = &r;
        if let Some(e) = bye_error(r) {
            return Step::Done(Err(e));
        }
        if let Response::Continuation(_) = r {
            return Step::Done(Err(MailError::Syntax(
                "unexpected continuation request".into(),
            )));
        }
        match self.0.as_ref().and_then(|c| c.completion(r)) {
            None => Step::Continue,
            Some((StatusKind::Ok, _)) => Step::Done(Ok(())),
            Some((_, text)) => Step::Done(Err(MailError::CommandFailed(format!("NOOP: {text}")))),
        }
    }
    fn waiting_for(&self) -> String {
        "the NOOP reply".into()
    }
}

/// LOGOUT: the server answers BYE and then the tagged OK (RFC 3501 6.1.3);
/// some close right after the BYE, which is a clean logout too.
#[derive(Default)]
pub struct LogoutOp {
    cmd: Option<PendingCommand>,
    saw_bye: bool,
}

impl Operation for LogoutOp {
    type Output = ();
    fn start(&mut self, s: &mut ImapSession, out: &mut Outbox) -> Step<()> {
        self.cmd = Some(s.send(CommandLine::new("LOGOUT"), out));
        Step::Continue
    }
    fn on_response(&mut self, s: &mut ImapSession, r: Response, _out: &mut Outbox) -> Step<()> {
        let r = &r;
        if bye_error(r).is_some() {
            self.saw_bye = true;
        }
        if let Response::Continuation(_) = r {
            return Step::Done(Err(MailError::Syntax(
                "unexpected continuation request".into(),
            )));
        }
        match self.cmd.as_ref().and_then(|c| c.completion(r)) {
            None => Step::Continue,
            Some((StatusKind::Ok, _)) => {
                s.phase = Phase::Logout;
                Step::Done(Ok(()))
            }
            Some((_, text)) => Step::Done(Err(MailError::CommandFailed(format!("LOGOUT: {text}")))),
        }
    }
    fn waiting_for(&self) -> String {
        "the LOGOUT reply".into()
    }
    fn on_closed(&mut self, s: &mut ImapSession) -> Option<Result<(), MailError>> {
        self.saw_bye.then(|| {
            s.phase = Phase::Logout;
            Ok(())
        })
    }
}
