//! SMTP replies (RFC 5321 4.2): `250-first`, `250 last`. A pure reader:
//! bytes in, whole replies out, with caps on line length and line count so
//! a hostile server cannot make it buffer without bound.

use crate::error::MailError;

/// RFC 5321 allows 512 octets; real servers send longer texts.
pub const MAX_LINE: usize = 8 * 1024;
/// Lines in one multi-line reply (EHLO lists are the longest, ~30).
pub const MAX_LINES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Each line's text, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join(" / ")
    }
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.code)
    }
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }
    /// The reply as the server sent it, for the response list and status.
    pub fn wire_text(&self) -> String {
        let n = self.lines.len();
        self.lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}{}{l}", self.code, if i + 1 < n { '-' } else { ' ' }))
            .collect::<Vec<_>>()
            .join("\r\n")
    }
}

#[derive(Debug, Default)]
pub struct ReplyReader {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned for a line end.
    scanned: usize,
    pending: Vec<String>,
    code: Option<u16>,
    consumed: u64,
}

impl ReplyReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a returned reply.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes taken out as replies, in all.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next whole reply, if one has arrived.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, MailError> {
        loop {
            let Some(nl) = memchr::memchr(b'\n', &self.buf[self.scanned..]) else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_LINE {
                    return Err(MailError::LineTooLong(format!(
                        "an SMTP reply line longer than {MAX_LINE} bytes"
                    )));
                }
                return Ok(None);
            };
            let end = self.scanned + nl;
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            self.scanned = 0;
            self.consumed += line.len() as u64;
            if line.len() > MAX_LINE {
                return Err(MailError::LineTooLong(format!(
                    "an SMTP reply line longer than {MAX_LINE} bytes"
                )));
            }
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = String::from_utf8_lossy(line);
            let (code, last, rest) = parse_line(&text)?;
            match self.code {
                Some(c) if c != code => {
                    return Err(MailError::Syntax(format!(
                        "reply lines disagree on the code ({c} then {code})"
                    )))
                }
                _ => self.code = Some(code),
            }
            self.pending.push(rest.to_string());
            if self.pending.len() > MAX_LINES {
                return Err(MailError::LineTooLong(format!(
                    "an SMTP reply of more than {MAX_LINES} lines"
                )));
            }
            if last {
                self.code = None;
                return Ok(Some(Reply {
                    code,
                    lines: std::mem::take(&mut self.pending),
                }));
            }
        }
    }
}

/// `NNN-text` (more follows), `NNN text` or `NNN` (last line).
fn parse_line(line: &str) -> Result<(u16, bool, &str), MailError> {
    let bad = || MailError::Syntax(format!("not an SMTP reply line: {:?}", short(line)));
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&b[0]) {
        return Err(bad());
    }
    let code: u16 = line[..3].parse().map_err(|_| bad())?;
    match b.get(3) {
        None => Ok((code, true, "")),
        Some(b' ') => Ok((code, true, &line[4..])),
        Some(b'-') => Ok((code, false, &line[4..])),
        Some(_) => Err(bad()),
    }
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_reply_split_anywhere() {
        let wire =
            b"250-mx.test hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n220 x\r\n";
        for step in 1..wire.len() {
            let mut r = ReplyReader::default();
            let mut got = Vec::new();
            for chunk in wire.chunks(step) {
                r.push(chunk);
                while let Some(rep) = r.next_reply().unwrap() {
                    got.push(rep);
                }
            }
            assert_eq!(got.len(), 2, "step {step}");
            assert_eq!(got[0].code, 250);
            assert_eq!(
                got[0].lines,
                ["mx.test hello", "PIPELINING", "SIZE 1000", "8BITMIME"]
            );
            assert_eq!(got[1].lines, ["x"]);
            assert_eq!(r.buffered(), 0);
            assert_eq!(r.consumed(), wire.len() as u64);
        }
    }

    #[test]
    fn bare_code_and_lf_only() {
        let mut r = ReplyReader::default();
        r.push(b"354\n");
        assert_eq!(r.next_reply().unwrap().unwrap().code, 354);
    }

    #[test]
    fn garbage_and_mixed_codes_and_caps() {
        for bad in [
            &b"hello\r\n"[..],
            b"25\r\n",
            b"250x\r\n",
            b"650 no\r\n",
            b"250-a\r\n251 b\r\n",
        ] {
            let mut r = ReplyReader::default();
            r.push(bad);
            assert!(r.next_reply().is_err(), "{bad:?}");
        }
        let mut r = ReplyReader::default();
        r.push(&vec![b'2'; MAX_LINE + 10]);
        assert_eq!(r.next_reply().unwrap_err().code(), -1125);
        let mut r = ReplyReader::default();
        r.push("250-x\r\n".repeat(MAX_LINES + 1).as_bytes());
        assert_eq!(r.next_reply().unwrap_err().code(), -1125);
    }

    #[test]
    fn wire_text_round_trip() {
        let rep = Reply {
            code: 250,
            lines: vec!["a".into(), "b".into()],
        };
        assert_eq!(rep.wire_text(), "250-a\r\n250 b");
        assert_eq!(rep.text(), "a / b");
    }
}
