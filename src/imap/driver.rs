//! Runs one `Operation` over a `Transport`: writes what it queues, feeds it
//! the frames the server sends, reports every line to the observer, and
//! enforces the communications timeout. The transport is the only I/O.

use super::codec::{decode_owned, literal_size, Fragmentizer, FrameError, Response, StatusKind};
use super::fragmentizer::Streamed;
use super::session::{Action, ImapSession, Operation, Outbox, Phase, Step, SEND_JOIN_MAX};
use crate::error::MailError;
use crate::events::{EventKind, MailEvent};
use std::time::Instant;

/// Moves bytes to and from the server. The real one talks to the I/O thread;
/// tests use a scripted one with a fake clock.
pub trait Transport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), MailError>;
    /// The same, taking the bytes: large bodies are not copied again.
    fn send_owned(&mut self, bytes: Vec<u8>) -> Result<(), MailError> {
        self.send(&bytes)
    }
    /// The next bytes from the server, or `Ok(None)` once `deadline` passed.
    fn recv(&mut self, deadline: Option<Instant>) -> Result<Option<Vec<u8>>, MailError>;
    /// The same, appended to `buf`; Some(0) when only upload progress was made.
    fn recv_into(
        &mut self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<Option<usize>, MailError> {
        Ok(self.recv(deadline)?.map(|b| {
            buf.extend_from_slice(&b);
            b.len()
        }))
    }
    /// Runs the TLS handshake. `consumed` is how many plaintext bytes the
    /// protocol has read in all; the transport refuses if it received more
    /// (bytes injected before the handshake). Returns a milestone text.
    fn start_tls(&mut self, consumed: u64, deadline: Option<Instant>) -> Result<String, MailError>;
    fn now(&self) -> Instant;
    /// At least `remaining` more bytes are surely on their way (the rest of
    /// a literal): the transport may wait for larger batches. 0 = none.
    fn expect_bulk(&mut self, _remaining: u64) {}
    /// A command ended: the transport may hand the socket to the I/O
    /// thread until the next one.
    fn idle(&mut self) {}
    /// Bytes that have left for the server so far (upload progress).
    fn bytes_written(&self) -> u64 {
        0
    }
}

/// Receives what a command shows the caller.
pub trait Observer {
    fn status(&mut self, message: &str);
    /// One response line (a whole frame, literals included) for the list.
    fn response(&mut self, line: &str);
    /// An event for the socket's event proc, if it has one.
    fn event(&mut self, _e: MailEvent) {}
    /// Whether status and response lines go anywhere: when not, the driver
    /// does not build them (a connect without stsproc or list).
    fn wants_lines(&self) -> bool {
        true
    }
    /// A status message, built only when it goes somewhere.
    fn status_with(&mut self, text: &dyn Fn() -> String) {
        if self.wants_lines() {
            self.status(&text());
        }
    }
    /// Whether events go anywhere (the socket has an event proc).
    fn wants_events(&self) -> bool {
        true
    }
}

/// How a server's SASL challenge is shown in status messages and lists.
pub const SASL_CHALLENGE_SHOWN: &str = "+ <SASL challenge redacted>";

/// Longest server line echoed into a status message; the list gets it whole.
const STATUS_LINE_MAX: usize = 1000;

pub fn run<O: Operation>(
    op: &mut O,
    s: &mut ImapSession,
    frag: &mut Fragmentizer,
    t: &mut dyn Transport,
    obs: &mut dyn Observer,
) -> Result<O::Output, MailError> {
    if let Some(e) = &s.broken {
        return Err(MailError::Broken(e.to_string()));
    }
    let mut clean_cancel = false;
    let r = run_inner(op, s, frag, t, obs, &mut clean_cancel);
    // After LOGOUT the connection closes: parking it would only wake the
    // I/O thread for the server's close.
    if s.phase != Phase::Logout {
        t.idle();
    }
    frag.release_idle();
    s.clock.stop();
    if let Err(e) = &r {
        let clean = clean_cancel && matches!(e, MailError::Cancelled(_));
        if e.is_fatal_to_connection() && !clean {
            s.broken = Some(e.clone());
        }
    }
    r
}

fn run_inner<O: Operation>(
    op: &mut O,
    s: &mut ImapSession,
    frag: &mut Fragmentizer,
    t: &mut dyn Transport,
    obs: &mut dyn Observer,
    clean_cancel: &mut bool,
) -> Result<O::Output, MailError> {
    let mut out = Outbox::default();
    s.now = t.now();
    s.clock.start(s.now);
    let mut step = op.start(s, &mut out);
    let mut progress = Progress::default();
    loop {
        while let Some(action) = out.pop() {
            match action {
                Action::Send { mut wire, shown } => {
                    let lines = obs.wants_lines();
                    if lines {
                        obs.status(&format!("C: {shown}"));
                    }
                    // Pipelined commands leave in one write: one flight, no Nagle wait.
                    while wire.len() <= SEND_JOIN_MAX && out.next_small_send() {
                        if let Some(Action::Send { wire: more, shown }) = out.pop() {
                            if lines {
                                obs.status(&format!("C: {shown}"));
                            }
                            wire.extend_from_slice(&more);
                        }
                    }
                    t.send_owned(wire)?;
                }
                Action::Status(m) => obs.status(&m),
                Action::StartTls => {
                    if frag.buffered() > 0 {
                        return Err(MailError::Injection(format!(
                            "{} bytes followed the STARTTLS reply in plaintext",
                            frag.buffered()
                        )));
                    }
                    obs.status("Starting the TLS handshake");
                    let info = t.start_tls(frag.consumed(), s.clock.deadline())?;
                    s.clock.touch(t.now());
                    obs.status(&info);
                    step = op.on_tls(s, &mut out);
                }
            }
        }
        if let Step::Done(r) = step {
            return r;
        }
        let first = frag.consumed() == 0;
        match frag.next_frame_with(&mut |f, n| op.stream_literal(f, n)) {
            Ok(Some(frame)) => {
                if obs.wants_lines() {
                    let text = if op.in_sasl() && frame.starts_with(b"+") {
                        SASL_CHALLENGE_SHOWN.to_string()
                    } else {
                        streamed_frame_text(&frame, frag.streamed())
                    };
                    obs.response(&text);
                    obs.status(&format!("S: {}", shorten(&text)));
                }
                let r = decode_owned(frame).map_err(|e| {
                    if first {
                        MailError::BadResponse(format!("not an IMAP greeting: {}", e.0))
                    } else {
                        MailError::Syntax(e.0)
                    }
                })?;
                s.observe(&r);
                let events = obs.wants_events();
                if events && op.reports_updates() {
                    if let Some(e) = update_event(&r) {
                        obs.event(e);
                    }
                }
                if let (
                    true,
                    Response::Status {
                        tag: Some(tag),
                        kind,
                        text,
                        ..
                    },
                ) = (events, &r)
                {
                    let (code, word) = match kind {
                        StatusKind::Ok => (0, "OK"),
                        StatusKind::No => (MailError::CommandFailed(String::new()).code(), "NO"),
                        _ => (MailError::CommandFailed(String::new()).code(), "BAD"),
                    };
                    obs.event(MailEvent::new(
                        EventKind::Command,
                        code as i64,
                        format!("{tag} {word} {text}"),
                    ));
                }
                // s.now is the time this batch of input arrived.
                step = op.on_response(s, r, &mut out);
                continue;
            }
            // A streamed literal's bytes go on as they come; once it has
            // ended, the rest of its frame may be here already.
            Ok(None) if frag.drain_literal(|p| op.on_literal_piece(p)) => continue,
            Ok(None) => {}
            Err(FrameError::LineTooLong { limit }) => {
                return Err(MailError::LineTooLong(format!(
                    "more than {limit} bytes without a line end"
                )))
            }
            Err(FrameError::LiteralTooLarge { size, limit }) => {
                return Err(MailError::LineTooLong(format!(
                    "a literal of {size} bytes exceeds {limit}"
                )))
            }
        }
        s.now = t.now();
        if let Some(d) = op.poll_timeout() {
            if s.now >= d {
                step = op.on_timeout(s, &mut out);
                s.clock.start(s.now);
                continue;
            }
        }
        if op.poll_timeout().is_none() && s.clock.expired(s.now) {
            return Err(MailError::Timeout(format!(
                "{} ({} s without a reply)",
                op.waiting_for(),
                s.clock.timeout().as_secs()
            )));
        }
        let deadline = op.poll_timeout().or(s.clock.deadline());
        t.expect_bulk(frag.literal_progress().map_or(0, |(got, size)| size - got));
        match frag.fill(|buf| t.recv_into(buf, deadline)) {
            Ok(Some(_)) => {
                s.now = t.now();
                s.clock.touch(s.now);
                progress.update(frag.literal_progress(), obs);
            }
            Ok(None) => {}
            Err(MailError::Closed(why)) => {
                return op.on_closed(s).unwrap_or(Err(MailError::Closed(why)));
            }
            // A second cancel while stopping cleanly closes after all.
            Err(MailError::Cancelled(why)) if !*clean_cancel => {
                if !op.on_cancel(&mut out) {
                    return Err(MailError::Cancelled(why));
                }
                obs.status("Cancel: ending the command cleanly");
                *clean_cancel = true;
                s.clock.start(t.now());
            }
            Err(e) => return Err(e),
        }
    }
}

/// The UPDATE event for an untagged EXISTS, RECENT, EXPUNGE or FETCH.
fn update_event(r: &Response) -> Option<MailEvent> {
    let (n, text) = match r {
        Response::Exists(n) => (*n, format!("{n} EXISTS")),
        Response::Recent(n) => (*n, format!("{n} RECENT")),
        Response::Expunge(n) => (*n, format!("{n} EXPUNGE")),
        Response::Other(raw) => {
            let mut words = raw.split(|&b| b == b' ');
            let n = std::str::from_utf8(words.next()?).ok()?.parse().ok()?;
            let fetch = words.next()?;
            if !fetch.eq_ignore_ascii_case(b"FETCH") {
                return None;
            }
            (n, shorten(&frame_text(raw)))
        }
        _ => return None,
    };
    Some(MailEvent::update(n, text))
}

/// Status messages while a large literal (a message body) arrives.
#[derive(Default)]
struct Progress {
    /// The last tenth reported, for the literal of this size.
    last: Option<(u64, u64)>,
}

/// Literals smaller than this arrive too fast to be worth reporting.
const PROGRESS_MIN: u64 = 1 << 20;

impl Progress {
    fn update(&mut self, state: Option<(u64, u64)>, obs: &mut dyn Observer) {
        let Some((have, total)) = state.filter(|(_, t)| *t >= PROGRESS_MIN) else {
            return;
        };
        let have = have.min(total);
        let tenth = (have * 10 / total).min(9);
        if self.last != Some((total, tenth)) {
            self.last = Some((total, tenth));
            obs.status(&format!(
                "Receiving {have} of {total} bytes ({}%)",
                have * 100 / total
            ));
            obs.event(MailEvent::progress(have, total));
        }
    }
}

/// Literals longer than this are shown as `<n bytes>` in the response list
/// and status: a message body is output data, not a response line.
const LITERAL_SHOWN_MAX: u64 = 1024;

/// A frame as shown; a streamed literal's `{0}` placeholder is shown as
/// the literal it stood for, as if it had stayed in the frame.
fn streamed_frame_text(frame: &[u8], streamed: Option<Streamed>) -> String {
    let Some(Streamed { at, size }) =
        streamed.filter(|s| frame.get(s.at..).is_some_and(|r| r.starts_with(b"{0}")))
    else {
        return frame_text(frame);
    };
    let after = &frame[at + 3..];
    let eol = memchr::memchr(b'\n', after).map_or(after.len(), |p| p + 1);
    let mut out = frame_text(&frame[..at]);
    out.push_str(&format!("{{{size}}}"));
    out.push_str(&String::from_utf8_lossy(&after[..eol]));
    if size > LITERAL_SHOWN_MAX {
        out.push_str(&format!("<{size} bytes>"));
    }
    out.push_str(&frame_text(&after[eol..]));
    out
}

fn frame_text(frame: &[u8]) -> String {
    let f = frame.strip_suffix(b"\n").unwrap_or(frame);
    let f = f.strip_suffix(b"\r").unwrap_or(f);
    let mut out = String::new();
    let mut rest = f;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..=nl];
        match literal_size(line) {
            Some(n) if n > LITERAL_SHOWN_MAX && (rest.len() - nl - 1) as u64 >= n => {
                out.push_str(&String::from_utf8_lossy(line));
                out.push_str(&format!("<{n} bytes>"));
                rest = &rest[nl + 1 + n as usize..];
            }
            _ => {
                out.push_str(&String::from_utf8_lossy(line));
                rest = &rest[nl + 1..];
            }
        }
    }
    out.push_str(&String::from_utf8_lossy(rest));
    out
}

fn shorten(s: &str) -> String {
    if s.len() <= STATUS_LINE_MAX {
        return s.to_string();
    }
    let mut end = STATUS_LINE_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}
