//! An SMTP session's state, the operation trait and the driver loop. Like
//! the IMAP side: no I/O here except through `Transport`, time passed in.

use super::reply::{Reply, ReplyReader};
use crate::error::MailError;
use crate::events::{EventKind, MailEvent};
use crate::imap::driver::{Observer, Transport};
use crate::imap::session::{Action, Outbox, Step, WaitClock};
use std::time::Duration;

pub struct SmtpSession {
    /// EHLO succeeded: extensions may be used.
    pub extended: bool,
    /// EHLO keyword lines, upper-cased ("SIZE 10240000", "AUTH PLAIN LOGIN").
    pub caps: Vec<String>,
    pub tls: bool,
    pub clock: WaitClock,
    /// Set after an error that leaves the stream in an unknown state.
    pub broken: Option<MailError>,
    /// QUIT was sent.
    pub quit: bool,
}

impl SmtpSession {
    pub fn new(timeout: Duration) -> Self {
        SmtpSession {
            extended: false,
            caps: Vec::new(),
            tls: false,
            clock: WaitClock::new(timeout),
            broken: None,
            quit: false,
        }
    }

    /// Whether the EHLO reply lists `keyword`.
    pub fn has(&self, keyword: &str) -> bool {
        self.param(keyword).is_some()
    }

    /// The parameters after `keyword` in the EHLO reply ("" when none).
    pub fn param(&self, keyword: &str) -> Option<&str> {
        self.caps.iter().find_map(|c| {
            let (k, rest) = c.split_once(' ').unwrap_or((c.as_str(), ""));
            (k == keyword).then_some(rest)
        })
    }

    /// AUTH mechanisms offered, from "AUTH a b" or the old "AUTH=a b" form.
    pub fn auth_mechanisms(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for c in &self.caps {
            let rest = c.strip_prefix("AUTH ").or_else(|| c.strip_prefix("AUTH="));
            for m in rest.unwrap_or("").split_whitespace() {
                if !v.iter().any(|x| x == m) {
                    v.push(m.to_string());
                }
            }
        }
        v
    }

    /// Takes the EHLO reply's keyword lines (the first line is the greeting).
    pub fn learn_ehlo(&mut self, r: &Reply) {
        self.extended = true;
        self.caps = r
            .lines
            .iter()
            .skip(1)
            .map(|l| l.trim().to_ascii_uppercase())
            .collect();
    }
}

/// One SMTP exchange: it queues commands and consumes replies.
pub trait SmtpOp {
    type Output;
    fn start(&mut self, s: &mut SmtpSession, out: &mut Outbox) -> Step<Self::Output>;
    fn on_reply(&mut self, s: &mut SmtpSession, r: Reply, out: &mut Outbox) -> Step<Self::Output>;
    fn on_tls(&mut self, _s: &mut SmtpSession, _out: &mut Outbox) -> Step<Self::Output> {
        Step::Done(Err(MailError::Internal("TLS outside STARTTLS".into())))
    }
    fn waiting_for(&self) -> String;
    /// A SASL exchange runs: the server's 334 lines are shown redacted.
    fn in_sasl(&self) -> bool {
        false
    }
    /// Size of a message body being uploaded, for PROGRESS.
    fn upload(&self) -> Option<u64> {
        None
    }
}

/// The least time given to the reply to the end of the message data.
pub const END_OF_DATA_WAIT: Duration = Duration::from_secs(600);

/// Uploads smaller than this go too fast to report.
const PROGRESS_MIN: u64 = 1 << 20;

pub fn run_smtp<O: SmtpOp>(
    op: &mut O,
    s: &mut SmtpSession,
    rd: &mut ReplyReader,
    t: &mut dyn Transport,
    obs: &mut dyn Observer,
) -> Result<O::Output, MailError> {
    if let Some(e) = &s.broken {
        return Err(MailError::Broken(e.to_string()));
    }
    let timeout = s.clock.timeout();
    let r = run_inner(op, s, rd, t, obs);
    t.idle();
    s.clock.set_timeout(timeout);
    s.clock.stop();
    if let Err(e) = &r {
        if e.is_fatal_to_connection() {
            s.broken = Some(e.clone());
        }
    }
    r
}

fn run_inner<O: SmtpOp>(
    op: &mut O,
    s: &mut SmtpSession,
    rd: &mut ReplyReader,
    t: &mut dyn Transport,
    obs: &mut dyn Observer,
) -> Result<O::Output, MailError> {
    let mut out = Outbox::default();
    s.clock.start(t.now());
    let mut step = op.start(s, &mut out);
    let mut sent: u64 = t.bytes_written();
    let mut last_tenth = None;
    loop {
        while let Some(action) = out.pop() {
            match action {
                Action::Send { wire, shown } => {
                    if !shown.is_empty() {
                        obs.status(&format!("C: {shown}"));
                    }
                    sent += wire.len() as u64;
                    t.send_owned(wire)?;
                }
                Action::Status(m) => obs.status(&m),
                Action::StartTls => {
                    if rd.buffered() > 0 {
                        return Err(MailError::Injection(format!(
                            "{} bytes followed the STARTTLS reply in plaintext",
                            rd.buffered()
                        )));
                    }
                    obs.status("Starting the TLS handshake");
                    let info = t.start_tls(rd.consumed(), s.clock.deadline())?;
                    s.clock.touch(t.now());
                    obs.status(&info);
                    sent = t.bytes_written();
                    step = op.on_tls(s, &mut out);
                }
            }
        }
        if let Step::Done(r) = step {
            return r;
        }
        if let Some(reply) = rd.next_reply()? {
            let text = if reply.code == 334 && op.in_sasl() {
                "334 <SASL challenge redacted>".to_string()
            } else {
                reply.wire_text()
            };
            obs.response(&text);
            for line in text.split("\r\n") {
                obs.status(&format!("S: {line}"));
            }
            let code = if reply.code < 400 {
                0
            } else {
                MailError::CommandFailed(String::new()).code() as i64
            };
            obs.event(MailEvent::new(EventKind::Command, code, text));
            step = op.on_reply(s, reply, &mut out);
            continue;
        }
        let now = t.now();
        // RFC 5321 4.5.3.2.6: the reply to the final "." may take 10 minutes
        // (content filters); giving up early invites a duplicate resend.
        if op.upload().is_some() && s.clock.timeout() < END_OF_DATA_WAIT {
            s.clock.set_timeout(END_OF_DATA_WAIT);
            s.clock.touch(now);
        }
        if s.clock.expired(now) {
            return Err(MailError::Timeout(format!(
                "{} ({} s without a reply)",
                op.waiting_for(),
                s.clock.timeout().as_secs()
            )));
        }
        match t.recv(s.clock.deadline()) {
            Ok(Some(bytes)) => {
                s.clock.touch(t.now());
                rd.push(&bytes);
                if let Some(total) = op.upload().filter(|n| *n >= PROGRESS_MIN) {
                    let in_flight = sent.saturating_sub(t.bytes_written());
                    let done = total.saturating_sub(in_flight);
                    let tenth = done * 10 / total;
                    if last_tenth != Some(tenth) {
                        last_tenth = Some(tenth);
                        obs.status(&format!("Sending {done} of {total} bytes"));
                        obs.event(MailEvent::progress(done, total));
                    }
                }
            }
            Ok(None) => {}
            Err(e) => return Err(e),
        }
    }
}
