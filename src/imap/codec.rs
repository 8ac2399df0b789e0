//! IMAP response decoding, free of I/O: `decode` turns one frame (cut by
//! the `fragmentizer`) into a `Response`.

pub(crate) use super::fragmentizer::literal_size;
pub use super::fragmentizer::{Fragmentizer, FrameError, FrameLimits};

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
        let (list, want) = (self.0.as_bytes(), name.as_bytes());
        if want.is_empty() || want.iter().any(u8::is_ascii_whitespace) {
            return false;
        }
        if want.iter().any(u8::is_ascii_lowercase) {
            return self.iter().any(|c| c.eq_ignore_ascii_case(name));
        }
        // The list is upper case: a substring search, then whole names only
        // (this runs a dozen times per login).
        memchr::memmem::find_iter(list, want).any(|at| {
            let end = at + want.len();
            (at == 0 || list[at - 1] == b' ') && (end == list.len() || list[end] == b' ')
        })
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
    let code = if name.eq_ignore_ascii_case("CAPABILITY") {
        Code::Capability(Capabilities::parse(arg.unwrap_or("")))
    } else if name.eq_ignore_ascii_case("ALERT") {
        Code::Alert
    } else {
        Code::Other(name.to_string(), arg.map(str::to_string))
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

    #[test]
    fn capabilities_are_one_upper_cased_list() {
        let mut c = Capabilities::parse("  imap4rev1\tAuth=CRAM-MD5  IDLE ");
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            ["IMAP4REV1", "AUTH=CRAM-MD5", "IDLE"]
        );
        assert!(c.has("auth=cram-md5") && !c.has("AUTH=CRAM") && !c.has(""));
        assert!(c.has("AUTH=CRAM-MD5") && c.has("IMAP4REV1") && c.has("IDLE"));
        assert!(!c.has("CRAM-MD5") && !c.has("IMAP4") && !c.has("DLE") && !c.has("IDLE "));
        assert!(!c.has("IDLE LITERAL+") && !c.has("idle literal+"));
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
