//! Message submission (MAIL FROM, RCPT TO per recipient, DATA with dot
//! stuffing), pipelined when the server offers PIPELINING, and the small
//! commands NOOP, RSET and QUIT.

use super::reply::Reply;
use super::session::{SmtpOp, SmtpSession};
use crate::error::MailError;
use crate::imap::session::{Action, Outbox, Step};

/// DSN requests (RFC 3461), only sent when asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dsn {
    /// NEVER, or a comma list of SUCCESS, FAILURE, DELAY.
    pub notify: Option<String>,
    /// FULL or HDRS.
    pub ret: Option<String>,
    pub envid: Option<String>,
}

impl Dsn {
    pub fn is_empty(&self) -> bool {
        self.notify.is_none() && self.ret.is_none() && self.envid.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptResult {
    pub address: String,
    pub code: u16,
    pub text: String,
    pub accepted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub results: Vec<RcptResult>,
    /// The server's final reply to the message (queue id and so on).
    pub reply: String,
}

/// CRLF line ends (bare CR or LF become CRLF), a leading "." doubled
/// (RFC 5321 4.5.2), a final CRLF, then the end-of-data line.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 8);
    let mut at_line_start = true;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if message.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                at_line_start = true;
            }
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The header section: up to the first empty line, or the whole message
/// when it has none (RFC 5322 2.1: the body is optional).
fn header_section(message: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < message.len() {
        let end = message[start..]
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .map_or(message.len(), |i| start + i);
        if end == start {
            return &message[..start];
        }
        start = end;
        if message.get(start) == Some(&b'\r') {
            start += 1;
        }
        if message.get(start) == Some(&b'\n') {
            start += 1;
        }
    }
    message
}

/// Whether the header section holds non-ASCII UTF-8 (RFC 6532 headers),
/// which only an SMTPUTF8 transaction may carry. 8-bit bytes that are not
/// UTF-8 are left to the 8BITMIME check.
fn utf8_header_section(message: &[u8]) -> bool {
    let h = header_section(message);
    !h.is_ascii() && std::str::from_utf8(h).is_ok()
}

/// xtext (RFC 3461 4): "+" and "=" and controls as +XX.
fn xtext(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if (33..=126).contains(&b) && b != b'+' && b != b'=' {
                (b as char).to_string()
            } else {
                format!("+{b:02X}")
            }
        })
        .collect()
}

enum Phase {
    /// Waiting for these replies in order (pipelined, or one at a time).
    Envelope,
    Body,
    /// All recipients were refused after a 354: "." went out; then RSET.
    Abandoning,
    Resetting(MailError),
    Done,
}

pub struct SendOp {
    from: String,
    rcpts: Vec<String>,
    dsn: Dsn,
    /// The message has bytes 0x80 and above: BODY=8BITMIME.
    eight_bit: bool,
    /// An address or the header section is UTF-8: SMTPUTF8.
    smtputf8: bool,
    body: Vec<u8>,
    /// The stuffed body's size, kept after the body is queued.
    body_size: u64,
    pipelined: bool,
    /// Index of the next envelope reply: 0 MAIL, 1..=n RCPT, n+1 DATA.
    next: usize,
    mail_error: Option<MailError>,
    results: Vec<RcptResult>,
    phase: Phase,
}

impl SendOp {
    /// Checks the message against what the server said it accepts, and
    /// prepares the commands.
    pub fn new(
        s: &SmtpSession,
        from: &str,
        rcpts: Vec<String>,
        message: &[u8],
        dsn: Dsn,
    ) -> Result<SendOp, MailError> {
        if rcpts.is_empty() {
            return Err(MailError::BadValue("no recipients".into()));
        }
        let eight_bit = message.iter().any(|b| *b >= 0x80);
        let utf8_addr = !from.is_ascii() || rcpts.iter().any(|r| !r.is_ascii());
        let utf8_headers = utf8_header_section(message);
        // RFC 6152: 8-bit data needs BODY=8BITMIME, so the server must offer
        // 8BITMIME. SMTPUTF8 alone does not do (RFC 6531 3.1 makes its
        // servers offer 8BITMIME too, but a server that leaves it out of its
        // EHLO reply has not said it takes 8-bit data).
        if eight_bit && !s.has("8BITMIME") {
            return Err(MailError::BadValue(
                "the message has 8-bit bytes and the server lacks 8BITMIME; encode it (quoted-printable or base64)".into(),
            ));
        }
        if utf8_addr && !s.has("SMTPUTF8") {
            return Err(MailError::BadValue(
                "an address is not ASCII and the server does not offer SMTPUTF8".into(),
            ));
        }
        if utf8_headers && !s.has("SMTPUTF8") {
            return Err(MailError::BadValue(
                "the message's header section has UTF-8 text (RFC 6532) and the server does not offer SMTPUTF8; use RFC 2047 encoded words".into(),
            ));
        }
        if !dsn.is_empty() && !s.has("DSN") {
            return Err(MailError::BadValue(
                "DSN options were asked for but the server does not offer DSN".into(),
            ));
        }
        if let Some(limit) = s.param("SIZE").and_then(|p| p.trim().parse::<u64>().ok()) {
            if limit > 0 && message.len() as u64 > limit {
                return Err(MailError::BadValue(format!(
                    "the message ({} bytes) is larger than the server accepts ({limit} bytes)",
                    message.len()
                )));
            }
        }
        let body = dot_stuff(message);
        Ok(SendOp {
            from: from.to_string(),
            rcpts,
            dsn,
            eight_bit,
            smtputf8: utf8_addr || utf8_headers,
            body_size: body.len() as u64,
            body,
            pipelined: s.has("PIPELINING"),
            next: 0,
            mail_error: None,
            results: Vec::new(),
            phase: Phase::Envelope,
        })
    }

    fn mail_line(&self, s: &SmtpSession, size: usize) -> String {
        let mut l = format!("MAIL FROM:<{}>", self.from);
        if s.has("SIZE") {
            l.push_str(&format!(" SIZE={size}"));
        }
        // `new` refused what the server cannot take, so these are offered.
        if self.eight_bit {
            l.push_str(" BODY=8BITMIME");
        }
        if self.smtputf8 {
            l.push_str(" SMTPUTF8");
        }
        if let Some(r) = &self.dsn.ret {
            l.push_str(&format!(" RET={r}"));
        }
        if let Some(e) = &self.dsn.envid {
            l.push_str(&format!(" ENVID={}", xtext(e)));
        }
        l
    }

    fn command(&self, k: usize) -> String {
        let n = self.rcpts.len();
        match k {
            0 => String::new(),
            k if k <= n => {
                let mut l = format!("RCPT TO:<{}>", self.rcpts[k - 1]);
                if let Some(nf) = &self.dsn.notify {
                    l.push_str(&format!(" NOTIFY={nf}"));
                }
                l
            }
            _ => "DATA".into(),
        }
    }

    fn send_line(out: &mut Outbox, l: &str) {
        out.push(Action::Send {
            wire: format!("{l}\r\n").into_bytes(),
            shown: l.to_string(),
        });
    }

    fn accepted(&self) -> usize {
        self.results.iter().filter(|r| r.accepted).count()
    }

    fn refusals(&self) -> String {
        self.results
            .iter()
            .filter(|r| !r.accepted)
            .map(|r| format!("{}: {} {}", r.address, r.code, r.text))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn on_envelope(&mut self, r: Reply, out: &mut Outbox) -> Step<Sent> {
        let n = self.rcpts.len();
        let k = self.next;
        self.next += 1;
        match k {
            0 => {
                if !r.is_ok() {
                    self.mail_error = Some(MailError::CommandFailed(format!(
                        "MAIL FROM:<{}> refused: {} {}",
                        self.from,
                        r.code,
                        r.text()
                    )));
                    if !self.pipelined {
                        return Step::Done(Err(self.mail_error.take().expect("set")));
                    }
                }
            }
            k if k <= n => {
                self.results.push(RcptResult {
                    address: self.rcpts[k - 1].clone(),
                    code: r.code,
                    text: r.text(),
                    accepted: r.is_ok(),
                });
            }
            _ => {
                // The DATA reply.
                if let Some(e) = self.mail_error.take() {
                    if r.code == 354 {
                        // The server waits for text: end it empty, then reset.
                        Self::send_line(out, ".");
                        self.phase = Phase::Abandoning;
                        self.mail_error = Some(e);
                        return Step::Continue;
                    }
                    return Step::Done(Err(e));
                }
                if self.accepted() == 0 {
                    let e = MailError::CommandFailed(format!(
                        "no recipient was accepted: {}",
                        self.refusals()
                    ));
                    if r.code == 354 {
                        // RFC 2920 3.1: end the empty data, then the error stands.
                        Self::send_line(out, ".");
                        self.phase = Phase::Abandoning;
                        self.mail_error = Some(e);
                        return Step::Continue;
                    }
                    return self.reset(e, out);
                }
                if r.code != 354 {
                    // Recipients stand on the server: RSET so the next message starts clean.
                    let e =
                        MailError::CommandFailed(format!("DATA refused: {} {}", r.code, r.text()));
                    return self.reset(e, out);
                }
                out.push(Action::Send {
                    wire: std::mem::take(&mut self.body),
                    shown: "<message data>".into(),
                });
                self.phase = Phase::Body;
                return Step::Continue;
            }
        }
        if !self.pipelined {
            if k == n && self.accepted() == 0 {
                let e = MailError::CommandFailed(format!(
                    "no recipient was accepted: {}",
                    self.refusals()
                ));
                return self.reset(e, out);
            }
            let next = self.command(self.next);
            Self::send_line(out, &next);
        }
        Step::Continue
    }

    fn reset(&mut self, e: MailError, out: &mut Outbox) -> Step<Sent> {
        Self::send_line(out, "RSET");
        self.phase = Phase::Resetting(e);
        Step::Continue
    }
}

impl SmtpOp for SendOp {
    type Output = Sent;

    fn start(&mut self, s: &mut SmtpSession, out: &mut Outbox) -> Step<Sent> {
        let size = self.body.len().saturating_sub(3);
        let mail = self.mail_line(s, size);
        if self.pipelined {
            // RFC 2920: the whole envelope in one write, replies in order.
            let mut wire = format!("{mail}\r\n");
            let mut shown = mail.clone();
            for k in 1..=self.rcpts.len() + 1 {
                let c = self.command(k);
                wire.push_str(&format!("{c}\r\n"));
                shown.push_str(&format!(" | {c}"));
            }
            out.push(Action::Send {
                wire: wire.into_bytes(),
                shown,
            });
        } else {
            Self::send_line(out, &mail);
        }
        Step::Continue
    }

    fn on_reply(&mut self, _s: &mut SmtpSession, r: Reply, out: &mut Outbox) -> Step<Sent> {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Envelope => {
                self.phase = Phase::Envelope;
                self.on_envelope(r, out)
            }
            Phase::Body => {
                if r.is_ok() {
                    let refused = self.accepted() < self.results.len();
                    if refused {
                        out.status(format!(
                            "Sent to {} of {} recipients; refused: {}",
                            self.accepted(),
                            self.results.len(),
                            self.refusals()
                        ));
                    } else {
                        out.status(format!("Sent to all {} recipients", self.results.len()));
                    }
                    Step::Done(Ok(Sent {
                        results: std::mem::take(&mut self.results),
                        reply: format!("{} {}", r.code, r.text()),
                    }))
                } else {
                    Step::Done(Err(MailError::CommandFailed(format!(
                        "the message was refused: {} {}",
                        r.code,
                        r.text()
                    ))))
                }
            }
            Phase::Abandoning => {
                let e = self.mail_error.take().expect("set");
                self.reset(e, out)
            }
            Phase::Resetting(e) => Step::Done(Err(e)),
            Phase::Done => Step::Done(Err(MailError::Internal("reply after the send".into()))),
        }
    }

    fn waiting_for(&self) -> String {
        match self.phase {
            Phase::Envelope => match self.next {
                0 => "the MAIL FROM reply".into(),
                k if k <= self.rcpts.len() => "a RCPT TO reply".into(),
                _ => "the DATA reply".into(),
            },
            Phase::Body => "the reply to the message data".into(),
            _ => "the RSET reply".into(),
        }
    }

    fn upload(&self) -> Option<u64> {
        match self.phase {
            Phase::Body => Some(self.body_size),
            _ => None,
        }
    }
}

/// NOOP, RSET or QUIT: one line, one reply.
pub struct SimpleOp {
    verb: &'static str,
}

impl SimpleOp {
    pub fn noop() -> Self {
        SimpleOp { verb: "NOOP" }
    }
    pub fn rset() -> Self {
        SimpleOp { verb: "RSET" }
    }
    pub fn quit() -> Self {
        SimpleOp { verb: "QUIT" }
    }
}

impl SmtpOp for SimpleOp {
    type Output = ();

    fn start(&mut self, s: &mut SmtpSession, out: &mut Outbox) -> Step<()> {
        if self.verb == "QUIT" {
            s.quit = true;
        }
        out.push(Action::Send {
            wire: format!("{}\r\n", self.verb).into_bytes(),
            shown: self.verb.into(),
        });
        Step::Continue
    }

    fn on_reply(&mut self, _s: &mut SmtpSession, r: Reply, _out: &mut Outbox) -> Step<()> {
        if r.is_ok() {
            Step::Done(Ok(()))
        } else {
            Step::Done(Err(MailError::CommandFailed(format!(
                "{}: {} {}",
                self.verb,
                r.code,
                r.text()
            ))))
        }
    }

    fn waiting_for(&self) -> String {
        format!("the {} reply", self.verb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(b".\n..x\nlast"), b"..\r\n...x\r\nlast\r\n.\r\n");
        assert_eq!(dot_stuff(b"cr\ronly"), b"cr\r\nonly\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"x.\r\n"), b"x.\r\n.\r\n");
    }

    #[test]
    fn header_section_ends_at_the_first_empty_line() {
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n\r\nbody\r\n"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_section(b"A: 1\n\nbody\n\nmore"), b"A: 1\n");
        assert_eq!(header_section(b"A: 1\r\rbody"), b"A: 1\r");
        assert_eq!(header_section(b"\r\nbody only"), b"");
        assert_eq!(header_section(b"A: 1\r\nB: 2"), b"A: 1\r\nB: 2");
        assert_eq!(header_section(b""), b"");
        assert!(utf8_header_section("S: \u{e9}\r\n\r\nx".as_bytes()));
        assert!(!utf8_header_section("S: e\r\n\r\n\u{e9}".as_bytes()));
        assert!(!utf8_header_section(b"S: \xe9\r\n\r\nx"));
    }

    #[test]
    fn xtext_escapes() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }
}
