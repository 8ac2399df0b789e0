//! IMAP framing and response decoding, free of I/O.
//!
//! `Fragmentizer` cuts the byte stream into whole responses (a line, plus any
//! `{n}` literals and the lines that continue after them) with caps on line
//! and literal size, so a hostile server cannot make us buffer without bound.
//! `decode` turns one frame into a `Response`.

/// Caps on what one frame may hold.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// Longest line segment (between literals), CRLF included.
    pub max_line: usize,
    /// Largest literal announced by the server.
    pub max_literal: usize,
    /// Largest whole frame: a server chaining literals cannot exceed it.
    pub max_frame: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        // A line holds at most 8 MiB: enough for a SEARCH reply listing about a
        // million UIDs, and still bounded (a whole frame is capped below).
        FrameLimits {
            max_line: 8 * 1024 * 1024,
            max_literal: 64 * 1024 * 1024,
            max_frame: 65 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    LineTooLong { limit: usize },
    LiteralTooLarge { size: u64, limit: usize },
}

#[derive(Debug)]
pub struct Fragmentizer {
    buf: Vec<u8>,
    limits: FrameLimits,
    /// Start of the line segment being scanned (after any literal).
    segment_start: usize,
    /// Bytes the frames handed out so far held, in total.
    consumed: u64,
    /// The literal being received: (where its bytes start, its size).
    literal: Option<(usize, u64)>,
    /// How far the current line has been searched for its end.
    scanned: usize,
}

impl Fragmentizer {
    pub fn new(limits: FrameLimits) -> Self {
        Fragmentizer {
            buf: Vec::new(),
            limits,
            segment_start: 0,
            consumed: 0,
            literal: None,
            scanned: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Lets a reader append to the buffer in place (no copy on the way in).
    pub fn fill<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        f(&mut self.buf)
    }

    /// Frees the read buffer when it holds nothing (between commands): an
    /// idle session keeps no read buffer, like OpenSSL's RELEASE_BUFFERS.
    pub fn release_idle(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// Bytes received but not yet handed out as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// (received, announced) bytes of the literal still arriving, if any.
    pub fn literal_progress(&self) -> Option<(u64, u64)> {
        self.literal
            .map(|(start, size)| ((self.buf.len() - start) as u64, size))
    }

    /// Total bytes handed out as frames.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            // Resume the search where the last one stopped: long lines arrive
            // in many pieces and must not be rescanned each time.
            let from = self.scanned.max(self.segment_start);
            let seg = &self.buf[self.segment_start..];
            let Some(nl) =
                memchr::memchr(b'\n', &self.buf[from..]).map(|p| p + from - self.segment_start)
            else {
                self.scanned = self.buf.len();
                if seg.len() > self.limits.max_line {
                    return Err(FrameError::LineTooLong {
                        limit: self.limits.max_line,
                    });
                }
                return Ok(None);
            };
            if nl + 1 > self.limits.max_line {
                return Err(FrameError::LineTooLong {
                    limit: self.limits.max_line,
                });
            }
            let line_end = self.segment_start + nl + 1;
            // Status and continuation text may end in "{5}" without a literal.
            let literal = if self.segment_start == 0 && is_text_line(&self.buf[..line_end]) {
                None
            } else {
                literal_size(&self.buf[self.segment_start..line_end])
            };
            match literal {
                Some(size) => {
                    if size > self.limits.max_literal as u64 {
                        return Err(FrameError::LiteralTooLarge {
                            size,
                            limit: self.limits.max_literal,
                        });
                    }
                    let literal_end = line_end + size as usize;
                    if literal_end > self.limits.max_frame {
                        let limit = self.limits.max_frame;
                        return Err(FrameError::LiteralTooLarge {
                            size: literal_end as u64,
                            limit,
                        });
                    }
                    if self.buf.len() < literal_end {
                        if self.literal.is_none() {
                            // Room for the whole literal once, instead of doubling,
                            // and for the reply's tail (reads stop short of growing it).
                            self.buf
                                .reserve_exact(literal_end - self.buf.len() + LITERAL_TAIL_ROOM);
                            advise_huge_pages(&mut self.buf);
                        }
                        self.literal = Some((line_end, size));
                        return Ok(None);
                    }
                    self.literal = None;
                    self.segment_start = literal_end;
                    self.scanned = literal_end;
                }
                None => {
                    // The smaller part is copied: a frame that is most of
                    // the buffer (a message body) is taken, not copied.
                    let frame: Vec<u8> = if line_end == self.buf.len() && line_end < TAKE_MIN {
                        // A short reply: copied, so the read buffer is reused
                        // instead of a fresh 64 KiB one per reply.
                        let frame = self.buf.clone();
                        self.buf.clear();
                        frame
                    } else if line_end == self.buf.len() {
                        std::mem::take(&mut self.buf)
                    } else if line_end > self.buf.len() - line_end {
                        let rest = self.buf.split_off(line_end);
                        std::mem::replace(&mut self.buf, rest)
                    } else {
                        self.buf.drain(..line_end).collect()
                    };
                    self.segment_start = 0;
                    self.scanned = 0;
                    // Give back the memory a large literal needed.
                    if self.buf.capacity() > 1 << 20 && self.buf.len() < 1 << 16 {
                        self.buf.shrink_to(1 << 16);
                    }
                    self.consumed += frame.len() as u64;
                    return Ok(Some(frame));
                }
            }
        }
    }
}

/// A frame that fills the buffer is taken whole from this size on, and
/// copied out below it.
const TAKE_MIN: usize = 16 * 1024;

/// Room kept after a literal for the rest of its response (`)`, the tagged
/// reply): reads fill spare room before asking for more (see reactor.rs).
const LITERAL_TAIL_ROOM: usize = 64 * 1024;

/// Literal buffers from this size on are worth backing with huge pages.
/// Above glibc's largest mmap threshold (32 MiB), so the buffer is its own
/// mapping and the hint leaves with it when it is freed.
const HUGE_PAGE_MIN: usize = 32 * 1024 * 1024 + 1;

/// Asks the kernel for transparent huge pages under a large literal's
/// buffer: a 50 MB body then takes ~25 page faults instead of ~12,800, which
/// on a VM is most of the kernel time of a fetch. Only a hint; no effect
/// where THP is off.
fn advise_huge_pages(buf: &mut Vec<u8>) {
    #[cfg(target_os = "linux")]
    if buf.capacity() >= HUGE_PAGE_MIN {
        // Whole 2 MiB huge pages inside the allocation only: both ends
        // rounded inwards, whatever the base page size.
        const HUGE: usize = 2 * 1024 * 1024;
        let start = buf.as_mut_ptr() as usize;
        let end = start + buf.capacity();
        let first = start.div_ceil(HUGE) * HUGE;
        let last = end / HUGE * HUGE;
        if last > first {
            // SAFETY: [first, last) lies inside the Vec's own allocation;
            // MADV_HUGEPAGE changes no contents, only how pages are backed.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                )
            };
        }
    }
}

/// A continuation or status response line: its text is never a literal.
fn is_text_line(line: &[u8]) -> bool {
    if line.starts_with(b"+") {
        return true;
    }
    let mut words = line.splitn(3, |&b| b == b' ');
    let word = words.nth(1).unwrap_or_default();
    [&b"OK"[..], b"NO", b"BAD", b"BYE", b"PREAUTH"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// `{n}` (or `{n+}`) right before the line end announces a literal of n bytes.
pub(crate) fn literal_size(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"\n")?;
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let body = body.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Ok,
    No,
    Bad,
    Preauth,
    Bye,
}

/// A capability list kept as one upper-cased string of names separated by
/// single spaces: one allocation however long the list (Dovecot sends ~25
/// names, twice per login; a Vec of Strings cost ~50 allocations).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities(String);

impl Capabilities {
    pub fn parse(text: &str) -> Capabilities {
        let mut c = Capabilities(String::with_capacity(text.len()));
        c.extend(text);
        c
    }

    /// Adds the names in `text` (servers may split a list over lines).
    pub fn extend(&mut self, text: &str) {
        let from = self.0.len();
        let trimmed = text.trim_matches(' ');
        let single_spaced = !trimmed.contains("  ")
            && !trimmed
                .bytes()
                .any(|b| b.is_ascii_whitespace() && b != b' ');
        if single_spaced {
            // The usual shape: copied as it is.
            if !self.0.is_empty() && !trimmed.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(trimmed);
        } else {
            for name in text.split_ascii_whitespace() {
                if !self.0.is_empty() {
                    self.0.push(' ');
                }
                self.0.push_str(name);
            }
        }
        self.0[from..].make_ascii_uppercase();
    }

    /// Adds another list's names (already in shape).
    pub fn append(&mut self, other: &Capabilities) {
        if !self.0.is_empty() && !other.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(&other.0);
    }

    pub fn has(&self, name: &str) -> bool {
        self.iter().any(|c| c.eq_ignore_ascii_case(name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|c| !c.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// A bracketed response code (RFC 3501 7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Capability(Capabilities),
    Alert,
    Other(String, Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `+ text`: the server waits for more of the command.
    Continuation(String),
    /// A tagged or untagged status response.
    Status {
        tag: Option<String>,
        kind: StatusKind,
        code: Option<Code>,
        text: String,
    },
    /// `* CAPABILITY ...`
    Capability(Capabilities),
    /// `* n EXISTS`, `* n RECENT`, `* n EXPUNGE`.
    Exists(u32),
    Recent(u32),
    Expunge(u32),
    /// Any other untagged data: the bytes after `* `, literals included,
    /// without the final line end (see `values::parse`).
    Other(Vec<u8>),
}

impl Response {
    pub fn tag(&self) -> Option<&str> {
        match self {
            Response::Status { tag, .. } => tag.as_deref(),
            _ => None,
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// Decodes one frame from the Fragmentizer.
pub fn decode(frame: &[u8]) -> Result<Response, DecodeError> {
    decode_owned(frame.to_vec())
}

/// Decodes a frame it owns: untagged data keeps the frame's buffer, so a
/// large literal is never copied. Classification reads the first line only.
pub fn decode_owned(mut frame: Vec<u8>) -> Result<Response, DecodeError> {
    if frame.pop() != Some(b'\n') {
        return Err(DecodeError("no line end".into()));
    }
    if frame.last() == Some(&b'\r') {
        frame.pop();
    }
    let first_end = memchr::memchr(b'\n', &frame).unwrap_or(frame.len());
    let first = &frame[..first_end];
    // NUL is never valid in response text; inside a literal it is data (BINARY).
    if first.contains(&0) {
        return Err(DecodeError("NUL byte in response".into()));
    }
    // Borrowed unless the line is not UTF-8: no copy of every line.
    let line = match std::str::from_utf8(first) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(first),
    };
    let text: &str = &line;
    if let Some(rest) = text.strip_prefix('+') {
        return Ok(Response::Continuation(
            rest.strip_prefix(' ').unwrap_or(rest).to_string(),
        ));
    }
    let (tag, rest) = text
        .split_once(' ')
        .ok_or_else(|| DecodeError(format!("no space in {:?}", short(text))))?;
    if tag.is_empty() {
        return Err(DecodeError("empty tag".into()));
    }
    let untagged = tag == "*";
    if !untagged && !tag.bytes().all(is_tag_char) {
        return Err(DecodeError(format!("bad tag {:?}", short(tag))));
    }
    let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
    if let Some(kind) = status_kind(word) {
        if !untagged && matches!(kind, StatusKind::Preauth | StatusKind::Bye) {
            return Err(DecodeError(format!("tagged {word}")));
        }
        let (code, text) = split_code(after)?;
        return Ok(Response::Status {
            tag: (!untagged).then(|| tag.to_string()),
            kind,
            code,
            text,
        });
    }
    if !untagged {
        return Err(DecodeError(format!(
            "tagged response without OK/NO/BAD: {:?}",
            short(text)
        )));
    }
    if word.eq_ignore_ascii_case("CAPABILITY") {
        return Ok(Response::Capability(Capabilities::parse(after)));
    }
    if let Ok(n) = word.parse::<u32>() {
        let kw = after.split(' ').next().unwrap_or("");
        if kw.eq_ignore_ascii_case("EXISTS") {
            return Ok(Response::Exists(n));
        } else if kw.eq_ignore_ascii_case("RECENT") {
            return Ok(Response::Recent(n));
        } else if kw.eq_ignore_ascii_case("EXPUNGE") {
            return Ok(Response::Expunge(n));
        }
    }
    if word.is_empty()
        || !word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(DecodeError(format!(
            "bad untagged response {:?}",
            short(text)
        )));
    }
    drop(line);
    frame.drain(..2);
    Ok(Response::Other(frame))
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

fn status_kind(word: &str) -> Option<StatusKind> {
    Some(match word.to_ascii_uppercase().as_str() {
        "OK" => StatusKind::Ok,
        "NO" => StatusKind::No,
        "BAD" => StatusKind::Bad,
        "PREAUTH" => StatusKind::Preauth,
        "BYE" => StatusKind::Bye,
        _ => return None,
    })
}

/// tag = 1*<any ASTRING-CHAR except "+">
fn is_tag_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b'+')
}

fn split_code(after: &str) -> Result<(Option<Code>, String), DecodeError> {
    let Some(inner) = after.strip_prefix('[') else {
        return Ok((None, after.to_string()));
    };
    let close = inner
        .find(']')
        .ok_or_else(|| DecodeError("unterminated response code".into()))?;
    let (body, text) = (&inner[..close], inner[close + 1..].trim_start());
    let (name, arg) = match body.split_once(' ') {
        Some((n, a)) => (n, Some(a)),
        None => (body, None),
    };
    let code = match name.to_ascii_uppercase().as_str() {
        "CAPABILITY" => Code::Capability(Capabilities::parse(arg.unwrap_or(""))),
        "ALERT" => Code::Alert,
        _ => Code::Other(name.to_string(), arg.map(str::to_string)),
    };
    Ok((Some(code), text.to_string()))
}

/// How a string argument goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// A quoted string (escapes included).
    Quoted(String),
    /// A literal: the bytes after the `{n}` line.
    Literal(Vec<u8>),
}

/// Encodes a string argument as IMAP requires: quoted when every byte is
/// 7-bit text, a literal otherwise. CR, LF and NUL are refused by the caller
/// (see `is_safe_text`) since no server treats them consistently.
pub fn encode_string(s: &str) -> Wire {
    if s.bytes()
        .all(|b| (0x01..0x80).contains(&b) && b != b'\r' && b != b'\n')
        && s.len() <= 1024
    {
        let mut q = String::with_capacity(s.len() + 2);
        q.push('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        Wire::Quoted(q)
    } else {
        Wire::Literal(s.as_bytes().to_vec())
    }
}

/// True when `s` can be sent as a credential: no CR, LF or NUL.
pub fn is_safe_text(s: &str) -> bool {
    !s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag() -> Fragmentizer {
        Fragmentizer::new(FrameLimits {
            max_line: 100,
            max_literal: 1000,
            max_frame: 1500,
        })
    }

    #[test]
    fn frames_split_across_pushes() {
        let mut f = frag();
        f.push(b"* OK hel");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"lo\r\na1 OK done\r\n* 3 EXI");
        assert_eq!(f.next_frame().unwrap().unwrap(), b"* OK hello\r\n");
        assert_eq!(f.next_frame().unwrap().unwrap(), b"a1 OK done\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        assert_eq!(f.buffered(), 7);
        assert_eq!(f.consumed(), 24);
    }

    #[test]
    fn literal_is_part_of_the_frame() {
        let mut f = frag();
        f.push(b"* 1 FETCH (BODY[] {5}\r\nab\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"c)\r\n* OK x\r\n");
        assert_eq!(
            f.next_frame().unwrap().unwrap(),
            b"* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\n"
        );
        assert_eq!(f.next_frame().unwrap().unwrap(), b"* OK x\r\n");
    }

    #[test]
    fn a_literal_is_given_room_once_with_its_tail() {
        let mut f = frag();
        f.push(b"* 1 FETCH (BODY[] {900}\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        let room = f.buf.capacity();
        assert!(room >= f.buf.len() + 900 + LITERAL_TAIL_ROOM);
        f.push(&[b'x'; 900]);
        f.push(b")\r\na1 OK done\r\n");
        assert_eq!(f.buf.capacity(), room, "the tail must not regrow the body");
        assert_eq!(f.next_frame().unwrap().unwrap().len(), 25 + 900 + 3);
    }

    #[test]
    fn capabilities_are_one_upper_cased_list() {
        let mut c = Capabilities::parse("  imap4rev1\tAuth=CRAM-MD5  IDLE ");
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            ["IMAP4REV1", "AUTH=CRAM-MD5", "IDLE"]
        );
        assert!(c.has("auth=cram-md5") && !c.has("AUTH=CRAM") && !c.has(""));
        c.extend("literal+");
        assert!(c.has("LITERAL+"));
        c.append(&Capabilities::parse("idle"));
        c.append(&Capabilities::default());
        assert_eq!(c.iter().last(), Some("IDLE"));
        assert_eq!(
            c,
            Capabilities::parse("IMAP4REV1 AUTH=CRAM-MD5 IDLE LITERAL+ IDLE")
        );
        c.clear();
        assert!(c.is_empty() && c.iter().next().is_none() && !c.has("IDLE"));
    }

    #[test]
    fn short_replies_reuse_the_read_buffer_until_released() {
        let mut f = frag();
        f.fill(|b| {
            b.reserve(4096);
            b.extend_from_slice(b"a1 OK done\r\n");
        });
        let room = f.buf.capacity();
        assert_eq!(f.next_frame().unwrap().unwrap(), b"a1 OK done\r\n");
        assert_eq!(f.buf.capacity(), room, "a short reply is copied out");
        f.release_idle();
        assert_eq!(f.buf.capacity(), 0, "an idle session keeps no read buffer");
    }

    #[test]
    fn chained_literals_cannot_exceed_the_frame_cap() {
        let mut f = frag();
        for _ in 0..3 {
            f.push(b"* 1 FETCH (A {900}\r\n");
            f.push(&[b'x'; 900]);
            if f.next_frame().is_err() {
                return;
            }
        }
        panic!("three 900-byte literals passed a 1500-byte frame cap");
    }

    #[test]
    fn status_text_ending_in_braces_is_not_a_literal() {
        let mut f = frag();
        f.push(b"* OK hello server {5}\r\n+ send {3}\r\nA1 NO sorry {2}\r\n");
        assert_eq!(
            f.next_frame().unwrap().unwrap(),
            b"* OK hello server {5}\r\n"
        );
        assert_eq!(f.next_frame().unwrap().unwrap(), b"+ send {3}\r\n");
        assert_eq!(f.next_frame().unwrap().unwrap(), b"A1 NO sorry {2}\r\n");
    }

    #[test]
    fn caps_are_enforced() {
        let mut f = frag();
        f.push(&[b'x'; 101]);
        assert_eq!(f.next_frame(), Err(FrameError::LineTooLong { limit: 100 }));
        let mut f = frag();
        f.push(b"* 1 FETCH (BODY[] {1001}\r\n");
        assert!(matches!(
            f.next_frame(),
            Err(FrameError::LiteralTooLarge { size: 1001, .. })
        ));
    }

    #[test]
    fn decodes_status_with_capability_code() {
        let r = decode(b"* OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5] Dovecot ready.\r\n").unwrap();
        assert_eq!(
            r,
            Response::Status {
                tag: None,
                kind: StatusKind::Ok,
                code: Some(Code::Capability(Capabilities::parse(
                    "IMAP4REV1 AUTH=CRAM-MD5"
                ))),
                text: "Dovecot ready.".into()
            }
        );
        assert!(matches!(
            decode(b"A0001 NO [AUTHENTICATIONFAILED] bad\r\n").unwrap(),
            Response::Status {
                kind: StatusKind::No,
                code: Some(Code::Other(..)),
                ..
            }
        ));
        assert_eq!(
            decode(b"+ PDEyMz4=\r\n").unwrap(),
            Response::Continuation("PDEyMz4=".into())
        );
        assert_eq!(decode(b"* 12 EXISTS\r\n").unwrap(), Response::Exists(12));
        assert_eq!(
            decode(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n").unwrap(),
            Response::Capability(Capabilities::parse("imap4rev1  STARTTLS"))
        );
    }

    #[test]
    fn nul_is_data_inside_a_literal_only() {
        assert!(decode(b"* 1 FETCH (BINARY[] {3}\r\na\0b)\r\n").is_ok());
        assert!(decode(b"* OK a\0b\r\n").is_err());
    }

    #[test]
    fn garbage_is_refused() {
        for g in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"\x16\x03\x01\x00\r\n",
            b"garbage\r\n",
            b"* \r\n",
            b"a1 PREAUTH x\r\n",
        ] {
            assert!(decode(g).is_err(), "{g:?}");
        }
    }

    /// Arbitrary bytes never panic the fragmentizer or decoder (a cheap,
    /// deterministic stand-in for the fuzz target on every test run).
    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"* OK NO BAD{}[]()+\"\\\r\n0123456789 ABCDEF\x00\xff";
        for _ in 0..2000 {
            let mut f = Fragmentizer::new(FrameLimits {
                max_line: 64,
                max_literal: 32,
                max_frame: 200,
            });
            for _ in 0..8 {
                let mut chunk = Vec::new();
                for _ in 0..(x % 40) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chunk.push(alphabet[(x % alphabet.len() as u64) as usize]);
                }
                f.push(&chunk);
                while let Ok(Some(frame)) = f.next_frame() {
                    let _ = decode(&frame);
                }
            }
        }
    }

    #[test]
    fn strings_are_quoted_or_literal() {
        assert_eq!(encode_string("alice"), Wire::Quoted("\"alice\"".into()));
        assert_eq!(
            encode_string("a\"b\\c"),
            Wire::Quoted("\"a\\\"b\\\\c\"".into())
        );
        assert_eq!(
            encode_string("pässword"),
            Wire::Literal("pässword".as_bytes().to_vec())
        );
        assert!(!is_safe_text("a\r\nb"));
        assert!(!is_safe_text("a\0"));
        assert!(is_safe_text("ok pw"));
    }
}
