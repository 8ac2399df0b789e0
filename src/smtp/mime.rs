//! The message SMTPSend sends: RFC 5322 headers and one text/plain part,
//! CRLF line ends, RFC 2047 encoded words for Unicode subjects and names.
//! A pure builder: Date and Message-ID come in as arguments, bytes go out.
//!
//! Written by hand, not with mail-builder: we must validate the caller's
//! addresses and extra headers ourselves anyway (CR/LF injection, Bcc and
//! overrides refused), and we want to choose the charset, the transfer
//! encoding and the exact bytes (the tests pin them); what is left, encoded
//! words, folding, quoted-printable and base64, is small.
//!
//! Errors are plain texts for the caller's error message; the only crate
//! used is `idna` (already a dependency) for internationalised domains.

use std::time::{SystemTime, UNIX_EPOCH};

/// Lines are folded to stay within this where there is whitespace to fold at.
const SOFT_LIMIT: usize = 78;
/// RFC 5322 2.1.1: no line may exceed this, CRLF excluded.
const HARD_LIMIT: usize = 998;
/// RFC 2047 2: an encoded word is at most this long.
const MAX_ENCODED_WORD: usize = 75;
/// `=?utf-8?B?` and `?=`.
const ENCODED_WORD_OVERHEAD: usize = 12;
/// Quoted-printable lines, soft line break included (RFC 2045 6.7).
const QP_LINE: usize = 76;
/// Base64 output lines (RFC 2045 6.8).
const BASE64_LINE: usize = 76;
/// RFC 5321 4.5.3.1.3: a path is 256 octets with its angle brackets.
const MAX_ADDRESS: usize = 254;
/// RFC 5321 4.5.3.1.1.
const MAX_LOCAL_PART: usize = 64;

/// One message to build. Bcc is deliberately absent: Bcc recipients are
/// only ever given to RCPT TO, never written into the message.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// `alice@example.com` or `Alice <alice@example.com>`.
    pub from: &'a str,
    /// Display name for From (Omnis' `name`); replaces one given in `from`.
    pub name: Option<&'a str>,
    /// Mailboxes, already split (see [`parse_address_list`]).
    pub to: &'a [String],
    pub cc: &'a [String],
    pub subject: &'a str,
    /// Any line endings; normalised to CRLF.
    pub body: &'a str,
    /// 1 (highest) to 5 (lowest); `None` or 3 writes no priority header.
    pub priority: Option<u8>,
    /// Name and value, checked by [`check_extra_header`].
    pub extra_headers: &'a [(String, String)],
    pub date: SystemTime,
    /// Without angle brackets, e.g. `20261122.abc@host`.
    pub message_id: &'a str,
}

/// The whole message, headers and body, CRLF line ends, not dot-stuffed.
///
/// Headers, in order: Date, From, To (`undisclosed-recipients:;` when
/// there is neither To nor Cc), Cc, Subject, Message-ID, MIME-Version,
/// Content-Type, Content-Transfer-Encoding, X-Priority and Importance
/// (priority other than 3), then the extra headers.
///
/// The body is `7bit` (charset us-ascii) when it is ASCII without NUL and
/// no line is longer than 998 octets; otherwise quoted-printable, which
/// keeps Latin-script text readable, or base64 when quoted-printable would
/// be over 1.5 times its size (Cyrillic, Greek, CJK: about 2.2 times).
///
/// The result is ASCII unless an address has a UTF-8 local part, which
/// needs SMTPUTF8 (RFC 6531) and, for the 8-bit header lines, 8BITMIME;
/// check with `is_ascii()`.
pub fn build(m: &Outgoing) -> Result<Vec<u8>, String> {
    let mut from = parse_mailbox(m.from).map_err(|e| format!("From: {e}"))?;
    if let Some(name) = m.name {
        let name = name.trim();
        if !name.is_empty() {
            from.name = Some(name.to_string());
        }
    }
    let to =
        m.to.iter()
            .map(|a| parse_mailbox(a).map_err(|e| format!("To: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
    let cc =
        m.cc.iter()
            .map(|a| parse_mailbox(a).map_err(|e| format!("Cc: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
    let priority = match m.priority {
        None | Some(3) => None,
        Some(p @ 1..=5) => Some(p),
        Some(p) => return Err(format!("priority {p} is not 1 (highest) to 5 (lowest)")),
    };
    for (name, value) in m.extra_headers {
        check_extra_header(name, value)?;
        if priority.is_some()
            && (name.eq_ignore_ascii_case("X-Priority") || name.eq_ignore_ascii_case("Importance"))
        {
            return Err(format!(
                "extra header {name} conflicts with the priority argument; \
                 give one or the other"
            ));
        }
    }
    check_message_id(m.message_id)?;

    let mut out = String::new();
    out.push_str(&format!("Date: {}\r\n", rfc5322_date(m.date)));
    out.push_str(&address_header("From", std::slice::from_ref(&from))?);
    if to.is_empty() && cc.is_empty() {
        out.push_str("To: undisclosed-recipients:;\r\n");
    } else if !to.is_empty() {
        out.push_str(&address_header("To", &to)?);
    }
    if !cc.is_empty() {
        out.push_str(&address_header("Cc", &cc)?);
    }
    out.push_str(&subject_header(m.subject)?);
    out.push_str(&format!("Message-ID: <{}>\r\n", m.message_id));

    let body = Body::encode(m.body);
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!(
        "Content-Type: text/plain; charset={}\r\n",
        body.charset
    ));
    out.push_str(&format!("Content-Transfer-Encoding: {}\r\n", body.encoding));
    if let Some(p) = priority {
        let (label, importance) = match p {
            1 => ("Highest", "high"),
            2 => ("High", "high"),
            4 => ("Low", "low"),
            _ => ("Lowest", "low"),
        };
        out.push_str(&format!("X-Priority: {p} ({label})\r\n"));
        out.push_str(&format!("Importance: {importance}\r\n"));
    }
    for (name, value) in m.extra_headers {
        out.push_str(&extra_header(name, value)?);
    }
    out.push_str("\r\n");
    out.push_str(&body.text);
    Ok(out.into_bytes())
}

// ---------------------------------------------------------------- addresses

/// Splits `a@x, B <b@y>; c@z` at commas and semicolons outside quoted
/// strings, comments and angle brackets; checks each mailbox and returns
/// them trimmed, as given. Empty entries (`a@x,,b@y`, a trailing `;`) are
/// skipped; group syntax (`team: a@x;`) is not accepted.
pub fn parse_address_list(s: &str) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut scan = Scanner::default();
    for (i, c) in s.char_indices() {
        if scan.top_level(c) && (c == ',' || c == ';') {
            items.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    scan.finish()?;
    items.push(&s[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| parse_mailbox(item).map(|_| item.to_string()))
        .collect()
}

/// The address of one mailbox: `B <b@y>` → `b@y`, `b@y (B)` → `b@y`.
/// Checks `local@domain`: no CR, LF, NUL or whitespace (except inside a
/// quoted local part), a dot-atom or quoted local part of at most 64
/// octets (UTF-8 allowed, for SMTPUTF8), and a host name (LDH or
/// internationalised labels) or address literal as the domain.
pub fn address_only(s: &str) -> Result<String, String> {
    Ok(parse_mailbox(s)?.addr)
}

/// [`address_only`], with an internationalised domain turned into A-labels
/// (`bücher.de` → `xn--bcher-kva.de`) when the local part is ASCII, so
/// that the address needs no SMTPUTF8. The message headers use the same
/// form; an address that is still not ASCII needs SMTPUTF8.
pub fn envelope_address(s: &str) -> Result<String, String> {
    Ok(ascii_domain(&address_only(s)?))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Mailbox {
    name: Option<String>,
    addr: String,
}

/// Tracks quoted strings, comments and angle brackets while walking a
/// header text, so separators inside them are not taken for real ones.
#[derive(Default)]
struct Scanner {
    quoted: bool,
    escaped: bool,
    comment: usize,
    angle: bool,
}

impl Scanner {
    /// Feeds `c`; true when `c` itself is outside quotes, comments and
    /// angle brackets (so is a separator if it is one).
    fn top_level(&mut self, c: char) -> bool {
        if self.escaped {
            self.escaped = false;
            return false;
        }
        if self.quoted {
            match c {
                '\\' => self.escaped = true,
                '"' => self.quoted = false,
                _ => {}
            }
            return false;
        }
        if self.comment > 0 {
            match c {
                '\\' => self.escaped = true,
                '(' => self.comment += 1,
                ')' => self.comment -= 1,
                _ => {}
            }
            return false;
        }
        if self.angle {
            if c == '>' {
                self.angle = false;
            }
            return false;
        }
        match c {
            '"' => self.quoted = true,
            '(' => self.comment = 1,
            '<' => self.angle = true,
            _ => return true,
        }
        false
    }

    fn finish(&self) -> Result<(), String> {
        if self.quoted || self.escaped {
            Err("unterminated quoted string".into())
        } else if self.comment > 0 {
            Err("unterminated comment".into())
        } else if self.angle {
            Err("missing '>'".into())
        } else {
            Ok(())
        }
    }
}

/// One mailbox: `addr`, `Name <addr>`, `"Quoted, Name" <addr>`, `<addr>`
/// or `addr (Name)`.
fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty address".into());
    }
    if s.contains(['\r', '\n', '\0']) {
        return Err(format!("address {s:?} contains a line break or NUL"));
    }
    let mut scan = Scanner::default();
    let mut angle = None;
    let mut comment = None;
    for (i, c) in s.char_indices() {
        let top = scan.top_level(c);
        if !top && c == '<' && scan.angle && angle.is_none() {
            angle = Some(i);
        } else if !top && c == '(' && scan.comment == 1 && comment.is_none() && angle.is_none() {
            comment = Some(i);
        }
    }
    scan.finish().map_err(|e| format!("address {s:?}: {e}"))?;
    let (name, addr) = if let Some(open) = angle {
        let close = s[open..]
            .find('>')
            .map(|j| open + j)
            .ok_or_else(|| format!("address {s:?}: missing '>'"))?;
        if !s[close + 1..].trim().is_empty() {
            return Err(format!("address {s:?}: text after '>'"));
        }
        let name = decode_phrase(&s[..open]);
        (name, s[open + 1..close].trim())
    } else if let Some(open) = comment.filter(|_| s.ends_with(')')) {
        let name = decode_phrase(&s[open + 1..s.len() - 1]);
        (name, s[..open].trim())
    } else {
        (String::new(), s)
    };
    check_addr(addr).map_err(|e| format!("address {s:?}: {e}"))?;
    Ok(Mailbox {
        name: (!name.is_empty()).then_some(name),
        addr: addr.to_string(),
    })
}

/// A display name as the reader sees it: quotes and escapes removed,
/// whitespace runs made single spaces.
fn decode_phrase(s: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// UTF-8 allowed in addresses by RFC 6531/6532: any non-ASCII character
/// that is not a control or whitespace.
fn is_utf8_text(c: char) -> bool {
    !c.is_ascii() && !c.is_control() && !c.is_whitespace()
}

fn check_addr(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("empty address".into());
    }
    if addr.len() > MAX_ADDRESS {
        return Err(format!("longer than {MAX_ADDRESS} octets"));
    }
    if addr.starts_with('@') && addr.contains(':') {
        return Err("source routes are not accepted".into());
    }
    let at = addr.rfind('@').ok_or("no '@'")?;
    let (local, domain) = (&addr[..at], &addr[at + 1..]);
    check_local_part(local)?;
    check_domain(domain)
}

fn check_local_part(local: &str) -> Result<(), String> {
    if local.is_empty() {
        return Err("empty local part".into());
    }
    if local.len() > MAX_LOCAL_PART {
        return Err(format!("local part longer than {MAX_LOCAL_PART} octets"));
    }
    if let Some(inner) = local.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or("unterminated quoted local part")?;
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            let c = if c == '\\' {
                chars.next().ok_or("unterminated quoted local part")?
            } else if c == '"' {
                return Err("unescaped '\"' in quoted local part".into());
            } else {
                c
            };
            if !(c == ' ' || c.is_ascii_graphic() || is_utf8_text(c)) {
                return Err(format!("{c:?} in quoted local part"));
            }
        }
        return Ok(());
    }
    for atom in local.split('.') {
        if atom.is_empty() {
            return Err("empty part between dots in local part".into());
        }
        if let Some(c) = atom.chars().find(|&c| !is_atext(c) && !is_utf8_text(c)) {
            return Err(format!("{c:?} in local part"));
        }
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("empty domain".into());
    }
    if let Some(literal) = domain.strip_prefix('[') {
        let inner = literal
            .strip_suffix(']')
            .ok_or("unterminated address literal")?;
        let ok = !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '[' | ']' | '\\'));
        return if ok {
            Ok(())
        } else {
            Err(format!("bad address literal {domain:?}"))
        };
    }
    let ascii = if domain.is_ascii() {
        domain.to_string()
    } else {
        if let Some(c) = domain.chars().find(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("{c:?} in domain"));
        }
        idna::domain_to_ascii(domain).map_err(|_| format!("bad domain {domain:?}"))?
    };
    if ascii.len() > 253 {
        return Err("domain longer than 253 octets".into());
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err("empty label in domain".into());
        }
        if label.len() > 63 {
            return Err("domain label longer than 63 octets".into());
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !c.is_ascii_alphanumeric() && c != '-')
        {
            return Err(format!("{c:?} in domain"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("domain label {label:?} starts or ends with '-'"));
        }
    }
    Ok(())
}

/// A checked address with an internationalised domain in A-labels when
/// its local part is ASCII.
fn ascii_domain(addr: &str) -> String {
    let at = addr.rfind('@').unwrap_or(0);
    let (local, domain) = (&addr[..at], &addr[at + 1..]);
    if local.is_ascii() && !domain.is_ascii() {
        if let Ok(ascii) = idna::domain_to_ascii(domain) {
            return format!("{local}@{ascii}");
        }
    }
    addr.to_string()
}

// ------------------------------------------------------------------ headers

/// One header field being written, folded at whitespace so lines stay
/// within 78 characters where they can.
struct HeaderLine {
    out: String,
    line: usize,
    words: usize,
}

impl HeaderLine {
    fn new(name: &str) -> Self {
        HeaderLine {
            out: format!("{name}:"),
            line: name.len() + 1,
            words: 0,
        }
    }

    /// Appends `sep` (whitespace, where the line may be folded) and `text`.
    fn word(&mut self, sep: &str, text: &str) {
        if self.words > 0 && self.line + sep.len() + text.len() > SOFT_LIMIT {
            self.out.push_str("\r\n");
            self.line = 0;
        }
        self.out.push_str(sep);
        self.out.push_str(text);
        self.line += sep.len() + text.len();
        self.words += 1;
    }

    /// Appends `text` as RFC 2047 encoded words, each sized to the room
    /// left on its line; a character is never split between two words.
    fn encoded(&mut self, text: &str) {
        let q = prefer_q(text);
        let mut rest = text;
        while !rest.is_empty() {
            let room = SOFT_LIMIT
                .saturating_sub(self.line + 1)
                .min(MAX_ENCODED_WORD);
            let (word, used) = match encoded_word(rest, room, q) {
                Some(w) => w,
                None => {
                    // Folding right after "Name:" is legal (FWS), and
                    // needed only when the name leaves no room at all.
                    self.out.push_str("\r\n");
                    self.line = 0;
                    encoded_word(rest, MAX_ENCODED_WORD, q).expect("75 fits any character")
                }
            };
            self.word(" ", &word);
            rest = &rest[used..];
        }
    }

    fn finish(mut self, what: &str) -> Result<String, String> {
        if self.out.split("\r\n").any(|l| l.len() > HARD_LIMIT) {
            return Err(format!(
                "{what} has a word too long for a line of {HARD_LIMIT} octets"
            ));
        }
        self.out.push_str("\r\n");
        Ok(self.out)
    }
}

/// Q encoding (RFC 2047 4.2) is used when it is no longer than B, which
/// keeps mostly-ASCII text readable in the raw message.
fn prefer_q(text: &str) -> bool {
    let q: usize = text.bytes().map(q_len).sum();
    q <= text.len().div_ceil(3) * 4
}

/// Characters left as they are in Q: the set RFC 2047 5(3) allows even in
/// a phrase, so one encoder serves Subject and display names.
fn q_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!*+-/".contains(&b)
}

fn q_len(b: u8) -> usize {
    if q_plain(b) || b == b' ' {
        1
    } else {
        3
    }
}

/// The longest encoded word of at most `max` characters that starts
/// `text`, and how many bytes of `text` it holds; `None` if not even one
/// character fits.
fn encoded_word(text: &str, max: usize, q: bool) -> Option<(String, usize)> {
    let budget = max.checked_sub(ENCODED_WORD_OVERHEAD)?;
    let mut used = 0;
    let mut cost = 0;
    for c in text.chars() {
        let next = used + c.len_utf8();
        let next_cost = if q {
            cost + text[used..next].bytes().map(q_len).sum::<usize>()
        } else {
            next.div_ceil(3) * 4
        };
        if next_cost > budget {
            break;
        }
        used = next;
        cost = next_cost;
    }
    if used == 0 {
        return None;
    }
    let chunk = &text.as_bytes()[..used];
    let word = if q {
        let mut w = String::from("=?utf-8?Q?");
        for &b in chunk {
            if q_plain(b) {
                w.push(b as char);
            } else if b == b' ' {
                w.push('_');
            } else {
                w.push_str(&format!("={b:02X}"));
            }
        }
        w + "?="
    } else {
        format!("=?utf-8?B?{}?=", base64(chunk))
    };
    Some((word, used))
}

fn has_forbidden_control(s: &str) -> bool {
    s.contains(['\r', '\n', '\0'])
}

/// Printable ASCII and tabs only: text that can stand in a header as is.
fn plain_ascii(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// Whitespace runs and the words after them: `("  ", "word")`.
fn words_with_space(s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let word_start = rest.find(|c| c != ' ' && c != '\t').unwrap_or(rest.len());
        let after = &rest[word_start..];
        let word_end = after.find([' ', '\t']).unwrap_or(after.len());
        if word_end == 0 {
            break;
        }
        out.push((&rest[..word_start], &after[..word_end]));
        rest = &after[word_end..];
    }
    out
}

/// Subject as unstructured text: plain when it is printable ASCII (an
/// ASCII subject that already holds encoded words is kept as given),
/// otherwise encoded words; also encoded when a plain word would not fit
/// in 998 octets.
fn subject_header(subject: &str) -> Result<String, String> {
    if has_forbidden_control(subject) {
        return Err("the subject contains a line break or NUL".into());
    }
    let subject = subject.trim_matches([' ', '\t']);
    unstructured("Subject", subject)
}

fn unstructured(name: &str, value: &str) -> Result<String, String> {
    if plain_ascii(value) {
        let mut h = HeaderLine::new(name);
        for (i, (sep, word)) in words_with_space(value).into_iter().enumerate() {
            h.word(if i == 0 { " " } else { sep }, word);
        }
        if let Ok(done) = h.finish(name) {
            return Ok(done);
        }
    }
    let mut h = HeaderLine::new(name);
    h.encoded(value);
    h.finish(name)
}

fn address_header(name: &str, list: &[Mailbox]) -> Result<String, String> {
    let mut h = HeaderLine::new(name);
    for (i, mb) in list.iter().enumerate() {
        let comma = if i + 1 < list.len() { "," } else { "" };
        let addr = ascii_domain(&mb.addr);
        match &mb.name {
            None => h.word(" ", &format!("{addr}{comma}")),
            Some(display) => {
                phrase(&mut h, display)?;
                h.word(" ", &format!("<{addr}>{comma}"));
            }
        }
    }
    h.finish(name)
}

/// A display name: atoms as they are, a quoted string when it has
/// specials, encoded words when it is not printable ASCII.
fn phrase(h: &mut HeaderLine, name: &str) -> Result<(), String> {
    if has_forbidden_control(name) {
        return Err(format!(
            "display name {name:?} contains a line break or NUL"
        ));
    }
    if name.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        let words: Vec<&str> = name.split(' ').filter(|w| !w.is_empty()).collect();
        if words.iter().all(|w| w.chars().all(is_atext)) {
            for w in words {
                h.word(" ", w);
            }
            return Ok(());
        }
        let quoted = format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""));
        if quoted.len() < SOFT_LIMIT * 2 {
            h.word(" ", &quoted);
            return Ok(());
        }
    }
    h.encoded(name);
    Ok(())
}

fn check_message_id(id: &str) -> Result<(), String> {
    let ok = id
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>'))
        && id
            .split_once('@')
            .is_some_and(|(l, r)| !l.is_empty() && !r.is_empty() && !r.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Message-ID {id:?} is not left@right without <>, spaces or controls"
        ))
    }
}

// ------------------------------------------------------------ extra headers

/// Headers the builder writes, or that must never be written; an extra
/// header with one of these names is refused.
const RESERVED: &[&str] = &[
    "Bcc",
    "Resent-Bcc",
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
];

/// Extra headers whose value is an address list: parsed, checked and
/// written like To, so Unicode display names are encoded properly.
const ADDRESS_HEADERS: &[&str] = &[
    "Reply-To",
    "Sender",
    "Disposition-Notification-To",
    "Return-Receipt-To",
    "Mail-Followup-To",
    "Mail-Reply-To",
    "Errors-To",
];

/// Omnis' extra headers text: `Name: value` lines separated by CR, LF or
/// CRLF. A line starting with space or tab continues the previous one
/// (unfolded, its whitespace kept); blank lines are ignored. Each header
/// is checked with [`check_extra_header`].
pub fn parse_extra_headers(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in s.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
        if line.trim_matches([' ', '\t']).is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = out
                .last_mut()
                .ok_or_else(|| format!("extra headers start with a continuation line {line:?}"))?;
            value.push_str(line);
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("extra header line {line:?} has no ':'"))?;
        out.push((
            name.to_string(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    for (name, value) in &mut out {
        let trimmed = value.trim_end_matches([' ', '\t']).len();
        value.truncate(trimmed);
        check_extra_header(name, value)?;
    }
    Ok(out)
}

/// Refuses a name that is empty, not printable ASCII or holds ':' or
/// spaces; Bcc and the headers the builder writes (From, To, Cc, Subject,
/// Date, Message-ID, MIME-Version, Content-*); and a value holding CR, LF
/// or NUL (folding is the builder's job). Address headers (Reply-To,
/// Sender, ...) must hold valid addresses.
pub fn check_extra_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an extra header has an empty name".into());
    }
    if let Some(c) = name.chars().find(|&c| !c.is_ascii_graphic() || c == ':') {
        return Err(format!("extra header name {name:?} contains {c:?}"));
    }
    if name.len() > SOFT_LIMIT - 2 {
        return Err(format!("extra header name {name:?} is too long"));
    }
    if name.eq_ignore_ascii_case("Bcc") || name.eq_ignore_ascii_case("Resent-Bcc") {
        return Err(format!(
            "extra header {name} is refused: Bcc recipients go in the bcc argument \
             and are never written into the message"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) || lower.starts_with("content-") {
        return Err(format!(
            "extra header {name} is refused: SMTPSend writes it from its own arguments"
        ));
    }
    if has_forbidden_control(value) {
        return Err(format!(
            "extra header {name}: the value contains a line break or NUL"
        ));
    }
    if ADDRESS_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
        let list = parse_address_list(value).map_err(|e| format!("extra header {name}: {e}"))?;
        if list.is_empty() {
            return Err(format!("extra header {name} has no address"));
        }
    }
    Ok(())
}

fn extra_header(name: &str, value: &str) -> Result<String, String> {
    if ADDRESS_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
        let list = parse_address_list(value)?
            .iter()
            .map(|a| parse_mailbox(a))
            .collect::<Result<Vec<_>, _>>()?;
        return address_header(name, &list);
    }
    let value = value.trim_matches([' ', '\t']);
    let what = format!("extra header {name}");
    if value.is_empty() {
        return Ok(format!("{name}:\r\n"));
    }
    if plain_ascii(value) {
        let mut h = HeaderLine::new(name);
        for (i, (sep, word)) in words_with_space(value).into_iter().enumerate() {
            h.word(if i == 0 { " " } else { sep }, word);
        }
        return h.finish(&what);
    }
    // Non-ASCII text: encoded as unstructured text (right for X-* and
    // other free-text headers).
    let mut h = HeaderLine::new(name);
    h.encoded(value);
    h.finish(&what)
}

// --------------------------------------------------------------------- body

struct Body {
    charset: &'static str,
    encoding: &'static str,
    text: String,
}

impl Body {
    fn encode(body: &str) -> Body {
        let normal = crlf(body);
        let ascii = normal.is_ascii() && !normal.contains('\0');
        let short = normal.split("\r\n").all(|l| l.len() <= HARD_LIMIT);
        let charset = if normal.is_ascii() {
            "us-ascii"
        } else {
            "utf-8"
        };
        if ascii && short {
            return Body {
                charset,
                encoding: "7bit",
                text: normal,
            };
        }
        let qp = quoted_printable(&normal);
        let b64_len = {
            let chars = normal.len().div_ceil(3) * 4;
            chars + chars.div_ceil(BASE64_LINE) * 2
        };
        if qp.len() * 2 <= b64_len * 3 {
            Body {
                charset,
                encoding: "quoted-printable",
                text: qp,
            }
        } else {
            Body {
                charset,
                encoding: "base64",
                text: base64_lines(normal.as_bytes()),
            }
        }
    }
}

/// CRLF for every line end (CRLF, lone CR, lone LF) and after the last
/// line; an empty body stays empty.
fn crlf(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 32 + 2);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\r\n");
            }
            '\n' => out.push_str("\r\n"),
            _ => out.push(c),
        }
    }
    if !out.is_empty() && !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

/// RFC 2045 6.7 over CRLF-terminated text: lines of at most 76 characters
/// with soft breaks, trailing spaces and tabs encoded, `=XX` never split.
fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    let body = text.strip_suffix("\r\n").unwrap_or(text);
    if text.is_empty() {
        return out;
    }
    for line in body.split("\r\n") {
        let bytes = line.as_bytes();
        let mut col = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal =
                (b'!'..=b'~').contains(&b) && b != b'=' || (matches!(b, b' ' | b'\t') && !last);
            let len = if literal { 1 } else { 3 };
            let limit = if last { QP_LINE } else { QP_LINE - 1 };
            if col + len > limit {
                out.push_str("=\r\n");
                col = 0;
            }
            if literal {
                out.push(b as char);
            } else {
                out.push_str(&format!("={b:02X}"));
            }
            col += len;
        }
        out.push_str("\r\n");
    }
    out
}

const BASE64_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64_CHARS[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_lines(data: &[u8]) -> String {
    let flat = base64(data);
    let mut out = String::with_capacity(flat.len() + flat.len() / BASE64_LINE * 2 + 2);
    for line in flat.as_bytes().chunks(BASE64_LINE) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

// --------------------------------------------------------------------- date

/// RFC 5322 3.3 in UTC: `Sun, 22 Nov 2026 06:20:00 +0000`.
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 0)
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[(days + 4).rem_euclid(7) as usize];
    format!(
        "{weekday}, {d:02} {} {y:04} {:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 2026-11-22 06:20:00 UTC.
    const NOV22: u64 = 1_795_328_400;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    struct Msg {
        from: String,
        name: Option<String>,
        to: Vec<String>,
        cc: Vec<String>,
        subject: String,
        body: String,
        priority: Option<u8>,
        extra: Vec<(String, String)>,
    }

    impl Msg {
        fn new() -> Msg {
            Msg {
                from: "alice@example.com".into(),
                name: None,
                to: strings(&["bob@example.org"]),
                cc: vec![],
                subject: "Hello".into(),
                body: "Hi Bob\n".into(),
                priority: None,
                extra: vec![],
            }
        }
        fn build(&self) -> Result<String, String> {
            let m = Outgoing {
                from: &self.from,
                name: self.name.as_deref(),
                to: &self.to,
                cc: &self.cc,
                subject: &self.subject,
                body: &self.body,
                priority: self.priority,
                extra_headers: &self.extra,
                date: at(NOV22),
                message_id: "20261122.abc@host.example",
            };
            build(&m).map(|b| String::from_utf8(b).unwrap())
        }
    }

    /// Headers and body of a built message.
    fn split(msg: &str) -> (&str, &str) {
        let i = msg.find("\r\n\r\n").unwrap();
        (&msg[..i + 2], &msg[i + 4..])
    }

    /// The unfolded value of header `name`.
    fn header(msg: &str, name: &str) -> Option<String> {
        let (head, _) = split(msg);
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", "\t");
        unfolded.split("\r\n").find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name)
                .then(|| v.strip_prefix(' ').unwrap_or(v).to_string())
        })
    }

    fn assert_line_lengths(msg: &str, soft: usize) {
        let (head, _) = split(msg);
        for line in head.split("\r\n") {
            assert!(
                line.len() <= soft,
                "header line of {}: {line:?}",
                line.len()
            );
        }
        assert!(
            !msg.replace("\r\n", "").contains(['\r', '\n']),
            "bare CR or LF"
        );
    }

    fn unbase64(s: &str) -> Vec<u8> {
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = vec![];
        for c in s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()) {
            let v = BASE64_CHARS.iter().position(|&x| x == c).unwrap() as u32;
            bits = bits << 6 | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
            }
        }
        out
    }

    fn unhex(h: &[u8]) -> u8 {
        u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap()
    }

    /// Decodes an unfolded header value made of encoded words and text;
    /// whitespace between two encoded words is dropped (RFC 2047 6.2).
    /// Checks each word: at most 75 characters, valid UTF-8 on its own.
    fn decode_2047(v: &str) -> String {
        let mut out = String::new();
        let mut prev_encoded = false;
        for (sep, word) in words_with_space(v) {
            let encoded = word.starts_with("=?") && word.ends_with("?=");
            let joined = encoded && prev_encoded;
            if !joined && !out.is_empty() {
                out.push_str(sep);
            }
            if !encoded {
                out.push_str(word);
                prev_encoded = false;
                continue;
            }
            assert!(word.len() <= MAX_ENCODED_WORD, "{word}");
            let parts: Vec<&str> = word[2..word.len() - 2].split('?').collect();
            assert_eq!(parts.len(), 3, "{word}");
            assert!(parts[0].eq_ignore_ascii_case("utf-8"));
            let bytes = match parts[1] {
                "B" | "b" => unbase64(parts[2]),
                "Q" | "q" => {
                    let p = parts[2].as_bytes();
                    let mut out = vec![];
                    let mut i = 0;
                    while i < p.len() {
                        match p[i] {
                            b'_' => out.push(b' '),
                            b'=' => {
                                out.push(unhex(&p[i + 1..i + 3]));
                                i += 2;
                            }
                            c => out.push(c),
                        }
                        i += 1;
                    }
                    out
                }
                other => panic!("encoding {other}"),
            };
            out.push_str(&String::from_utf8(bytes).expect("a word splits a character"));
            prev_encoded = true;
        }
        out
    }

    fn unqp(s: &str) -> Vec<u8> {
        let s = s.replace("=\r\n", "");
        let b = s.as_bytes();
        let mut out = vec![];
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                out.push(unhex(&b[i + 1..i + 3]));
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn ascii_message_exact_bytes() {
        let mut m = Msg::new();
        m.name = Some("Alice Smith".into());
        m.cc = strings(&["\"Carol, C.\" <carol@example.net>"]);
        let expected = "Date: Sun, 22 Nov 2026 06:20:00 +0000\r\n\
            From: Alice Smith <alice@example.com>\r\n\
            To: bob@example.org\r\n\
            Cc: \"Carol, C.\" <carol@example.net>\r\n\
            Subject: Hello\r\n\
            Message-ID: <20261122.abc@host.example>\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: text/plain; charset=us-ascii\r\n\
            Content-Transfer-Encoding: 7bit\r\n\
            \r\n\
            Hi Bob\r\n";
        assert_eq!(m.build().unwrap(), expected);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(at(0)), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(at(NOV22)), "Sun, 22 Nov 2026 06:20:00 +0000");
        assert_eq!(
            rfc5322_date(at(951_868_799)),
            "Tue, 29 Feb 2000 23:59:59 +0000"
        );
        assert_eq!(
            rfc5322_date(at(4_107_585_600)),
            "Mon, 01 Mar 2100 12:00:00 +0000"
        );
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(rfc5322_date(before), "Wed, 31 Dec 1969 00:00:00 +0000");
    }

    #[test]
    fn unicode_subject_and_name_round_trip() {
        let mut m = Msg::new();
        m.name = Some("Jürgen Müller-Lüdenscheidt".into());
        m.subject = "Grüße aus Köln — 東京からこんにちは 👋".into();
        m.to = strings(&["Zoë <zoe@example.org>", "plain@example.org"]);
        let msg = m.build().unwrap();
        assert!(msg.is_ascii(), "{msg}");
        assert_line_lengths(&msg, SOFT_LIMIT);
        assert_eq!(decode_2047(&header(&msg, "Subject").unwrap()), m.subject);
        let from = header(&msg, "From").unwrap();
        let name = from.strip_suffix(" <alice@example.com>").unwrap();
        assert_eq!(decode_2047(name), "Jürgen Müller-Lüdenscheidt");
        let to = header(&msg, "To").unwrap();
        assert!(to.ends_with("<zoe@example.org>, plain@example.org"), "{to}");
        assert_eq!(decode_2047(to.split(" <").next().unwrap()), "Zoë");
    }

    #[test]
    fn name_from_argument_replaces_the_one_in_from() {
        let mut m = Msg::new();
        m.from = "Old Name <alice@example.com>".into();
        m.name = Some("New Name".into());
        let msg = m.build().unwrap();
        assert_eq!(
            header(&msg, "From").unwrap(),
            "New Name <alice@example.com>"
        );
        m.name = Some("  ".into());
        let msg = m.build().unwrap();
        assert_eq!(
            header(&msg, "From").unwrap(),
            "Old Name <alice@example.com>"
        );
    }

    #[test]
    fn display_names_are_quoted_when_needed() {
        let mut m = Msg::new();
        m.name = Some(r#"John "Q." Public\Jr"#.into());
        let msg = m.build().unwrap();
        assert_eq!(
            header(&msg, "From").unwrap(),
            r#""John \"Q.\" Public\\Jr" <alice@example.com>"#
        );
        assert_eq!(
            parse_mailbox(r#""John \"Q.\" Public\\Jr" <alice@example.com>"#)
                .unwrap()
                .name,
            Some(r#"John "Q." Public\Jr"#.into())
        );
        m.name = Some("Bad\r\nBcc: x@y.z".into());
        assert!(m.build().unwrap_err().contains("line break"));
    }

    #[test]
    fn long_ascii_subject_folds_at_whitespace() {
        let mut m = Msg::new();
        let words: Vec<String> = (0..60).map(|i| format!("word{i}")).collect();
        m.subject = words.join(" ") + "\tand  two  spaces";
        let msg = m.build().unwrap();
        assert_line_lengths(&msg, SOFT_LIMIT);
        assert!(msg.matches("\r\n ").count() >= 5);
        assert_eq!(header(&msg, "Subject").unwrap(), m.subject);
    }

    #[test]
    fn long_subjects_without_whitespace_never_exceed_998() {
        let mut m = Msg::new();
        m.subject = "a".repeat(2000);
        let msg = m.build().unwrap();
        assert_line_lengths(&msg, SOFT_LIMIT);
        assert_eq!(decode_2047(&header(&msg, "Subject").unwrap()), m.subject);

        // A word that fits in 998 but not 78 stays as it is.
        m.subject = format!("short {}", "b".repeat(500));
        let msg = m.build().unwrap();
        assert_line_lengths(&msg, HARD_LIMIT);
        assert_eq!(header(&msg, "Subject").unwrap(), m.subject);

        m.subject = "ü".repeat(700) + &"€".repeat(300) + &"𝄞x".repeat(100);
        let msg = m.build().unwrap();
        assert_line_lengths(&msg, SOFT_LIMIT);
        assert_eq!(decode_2047(&header(&msg, "Subject").unwrap()), m.subject);
    }

    #[test]
    fn subject_line_breaks_refused() {
        let mut m = Msg::new();
        m.subject = "Hi\r\nBcc: victim@example.com".into();
        assert!(m.build().unwrap_err().contains("line break"));
    }

    #[test]
    fn encoded_words_leave_room_for_the_header_name() {
        // The first word shares its line with "Subject: ".
        let mut h = HeaderLine::new("Subject");
        h.encoded(&"é".repeat(40));
        let out = h.finish("Subject").unwrap();
        for line in out.trim_end().split("\r\n") {
            assert!(line.len() <= SOFT_LIMIT, "{line}");
        }
        // B is chosen when shorter than Q.
        assert!(out.contains("?B?"), "{out}");
        let mut h = HeaderLine::new("Subject");
        h.encoded("Café au lait");
        assert_eq!(
            h.finish("S").unwrap(),
            "Subject: =?utf-8?Q?Caf=C3=A9_au_lait?=\r\n"
        );
    }

    #[test]
    fn quoted_printable_utf8_body() {
        let mut m = Msg::new();
        m.body = "Grüße,\nJürgen  \n=end".into();
        let msg = m.build().unwrap();
        assert_eq!(
            header(&msg, "Content-Type").unwrap(),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            header(&msg, "Content-Transfer-Encoding").unwrap(),
            "quoted-printable"
        );
        let (_, body) = split(&msg);
        assert_eq!(body, "Gr=C3=BC=C3=9Fe,\r\nJ=C3=BCrgen =20\r\n=3Dend\r\n");
        assert_eq!(unqp(body), crlf(&m.body).into_bytes());
    }

    #[test]
    fn quoted_printable_long_ascii_line() {
        let mut m = Msg::new();
        let line: String = (0..2000).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        m.body = format!("short\n{line}\nend");
        let msg = m.build().unwrap();
        assert_eq!(
            header(&msg, "Content-Type").unwrap(),
            "text/plain; charset=us-ascii"
        );
        assert_eq!(
            header(&msg, "Content-Transfer-Encoding").unwrap(),
            "quoted-printable"
        );
        let (_, body) = split(&msg);
        for l in body.split("\r\n") {
            assert!(l.len() <= QP_LINE, "{l}");
        }
        assert_eq!(unqp(body), crlf(&m.body).into_bytes());

        // A line of exactly 998 octets is still 7bit; 999 is not.
        m.body = "x".repeat(998);
        assert_eq!(
            header(&m.build().unwrap(), "Content-Transfer-Encoding").unwrap(),
            "7bit"
        );
        m.body = "x".repeat(999);
        assert_eq!(
            header(&m.build().unwrap(), "Content-Transfer-Encoding").unwrap(),
            "quoted-printable"
        );
    }

    #[test]
    fn quoted_printable_never_splits_an_escape() {
        for n in 70..80 {
            let text = crlf(&("a".repeat(n) + "é=é é\t"));
            let qp = quoted_printable(&text);
            for l in qp.split("\r\n") {
                assert!(l.len() <= QP_LINE, "{l}");
                let cut = l.strip_suffix('=').unwrap_or(l);
                assert!(!cut.ends_with('=') && cut.rfind('=').is_none_or(|i| i + 3 <= cut.len()));
            }
            assert_eq!(unqp(&qp), text.as_bytes());
        }
    }

    #[test]
    fn base64_for_mostly_non_ascii_body() {
        let mut m = Msg::new();
        m.body = "Привет, мир! Как дела?\nこんにちは世界\n".repeat(20);
        let msg = m.build().unwrap();
        assert_eq!(header(&msg, "Content-Transfer-Encoding").unwrap(), "base64");
        let (_, body) = split(&msg);
        assert!(body.split("\r\n").all(|l| l.len() <= BASE64_LINE));
        assert_eq!(unbase64(body), crlf(&m.body).into_bytes());
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn body_line_endings_normalised_not_dot_stuffed() {
        assert_eq!(crlf("a\rb\nc\r\nd"), "a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(crlf("a\r\n"), "a\r\n");
        assert_eq!(crlf("\n\n"), "\r\n\r\n");
        assert_eq!(crlf(""), "");
        let mut m = Msg::new();
        m.body = ".\n..leading dots\r".into();
        let msg = m.build().unwrap();
        assert_eq!(split(&msg).1, ".\r\n..leading dots\r\n");
        m.body = String::new();
        assert!(m.build().unwrap().ends_with("7bit\r\n\r\n"));
    }

    #[test]
    fn nul_in_ascii_body_is_encoded() {
        let mut m = Msg::new();
        m.body = "a\0b".into();
        let msg = m.build().unwrap();
        assert_eq!(split(&msg).1, "a=00b\r\n");
        assert_eq!(
            header(&msg, "Content-Type").unwrap(),
            "text/plain; charset=us-ascii"
        );
    }

    #[test]
    fn priority_headers() {
        let mut m = Msg::new();
        for (p, x, imp) in [
            (1, "1 (Highest)", "high"),
            (2, "2 (High)", "high"),
            (4, "4 (Low)", "low"),
            (5, "5 (Lowest)", "low"),
        ] {
            m.priority = Some(p);
            let msg = m.build().unwrap();
            assert_eq!(header(&msg, "X-Priority").unwrap(), x);
            assert_eq!(header(&msg, "Importance").unwrap(), imp);
        }
        for p in [None, Some(3)] {
            m.priority = p;
            let msg = m.build().unwrap();
            assert!(header(&msg, "X-Priority").is_none() && header(&msg, "Importance").is_none());
        }
        for p in [0, 6, 255] {
            m.priority = Some(p);
            assert!(m.build().unwrap_err().contains("priority"));
        }
        // X-Priority as an extra header is fine without the argument...
        m.priority = None;
        m.extra = vec![("X-Priority".into(), "1".into())];
        assert_eq!(header(&m.build().unwrap(), "X-Priority").unwrap(), "1");
        // ...and refused with it.
        m.priority = Some(1);
        assert!(m.build().unwrap_err().contains("conflicts"));
    }

    #[test]
    fn extra_headers_good_and_folded() {
        let parsed = parse_extra_headers(
            "X-Mailer: Omnis Studio\r\nX-Long: first part\n\tsecond part\r  third\n\nReply-To: Zoë <zoe@example.org>\r\nX-Empty:",
        )
        .unwrap();
        assert_eq!(
            parsed,
            vec![
                ("X-Mailer".to_string(), "Omnis Studio".to_string()),
                ("X-Long".into(), "first part\tsecond part  third".into()),
                ("Reply-To".into(), "Zoë <zoe@example.org>".into()),
                ("X-Empty".into(), "".into()),
            ]
        );
        let mut m = Msg::new();
        let long = (0..40)
            .map(|i| format!("v{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        m.extra = parsed;
        m.extra.push(("X-Unicode".into(), "Ünïcödé text".into()));
        m.extra.push(("X-Folded".into(), long.clone()));
        let msg = m.build().unwrap();
        assert_line_lengths(&msg, SOFT_LIMIT);
        assert_eq!(header(&msg, "X-Mailer").unwrap(), "Omnis Studio");
        assert_eq!(
            header(&msg, "X-Long").unwrap(),
            "first part\tsecond part  third"
        );
        assert_eq!(header(&msg, "X-Folded").unwrap(), long);
        assert_eq!(header(&msg, "X-Empty").unwrap(), "");
        assert_eq!(
            decode_2047(&header(&msg, "X-Unicode").unwrap()),
            "Ünïcödé text"
        );
        let reply_to = header(&msg, "Reply-To").unwrap();
        assert!(reply_to.ends_with(" <zoe@example.org>"));
        assert_eq!(decode_2047(reply_to.split(" <").next().unwrap()), "Zoë");
        // Extra headers come last, in the order given.
        let (head, _) = split(&msg);
        assert!(head.find("X-Mailer").unwrap() > head.find("Content-Transfer").unwrap());
        assert!(head.find("X-Mailer").unwrap() < head.find("X-Long").unwrap());
    }

    #[test]
    fn extra_headers_refused() {
        let refused = |text: &str, why: &str| {
            let e = parse_extra_headers(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        };
        refused("Bcc: spy@example.com", "Bcc");
        refused("X-A: 1\nbcc: spy@example.com", "Bcc");
        refused("Resent-Bcc: spy@example.com", "Bcc");
        refused("From: mallory@example.com", "refused");
        refused("to: mallory@example.com", "refused");
        refused("CC: mallory@example.com", "refused");
        refused("Date: Mon, 1 Jan 2001 00:00:00 +0000", "refused");
        refused("Message-Id: <x@y>", "refused");
        refused("MIME-Version: 1.0", "refused");
        refused("Content-Type: text/html", "refused");
        refused("content-transfer-encoding: 8bit", "refused");
        refused("Subject: again", "refused");
        refused("X Bad: 1", "' '");
        refused("X-Bad : 1", "' '");
        refused("X-Ünï: 1", "contains");
        refused(": 1", "empty name");
        refused("no colon here", "no ':'");
        refused(" leading continuation", "continuation");
        refused("Reply-To: not an address", "Reply-To");

        // Injection through values given directly.
        for value in [
            "x\r\nBcc: spy@example.com",
            "x\nTo: a@b.c",
            "x\rY: z",
            "x\0",
        ] {
            let e = check_extra_header("X-A", value).unwrap_err();
            assert!(e.contains("line break or NUL"), "{e}");
            let mut m = Msg::new();
            m.extra = vec![("X-A".into(), value.into())];
            assert!(m.build().is_err());
        }
        let mut m = Msg::new();
        m.extra = vec![("X-A:B".into(), "1".into())];
        assert!(m.build().unwrap_err().contains("':'"));
        m.extra = vec![("BCC".into(), "spy@example.com".into())];
        assert!(m.build().unwrap_err().contains("Bcc"));
        m.extra = vec![("From".into(), "mallory@example.com".into())];
        assert!(m.build().unwrap_err().contains("refused"));
    }

    #[test]
    fn no_bcc_anywhere() {
        let mut m = Msg::new();
        m.to = vec![];
        m.extra = vec![("X-Note".into(), "bcc handled elsewhere".into())];
        let msg = m.build().unwrap();
        let (head, _) = split(&msg);
        assert!(!head.to_ascii_lowercase().contains("\nbcc:"));
        assert!(!head.to_ascii_lowercase().starts_with("bcc:"));
        // With neither To nor Cc (all recipients blind).
        assert_eq!(header(&msg, "To").unwrap(), "undisclosed-recipients:;");
        m.cc = strings(&["c@example.com"]);
        let msg = m.build().unwrap();
        assert!(header(&msg, "To").is_none());
        assert_eq!(header(&msg, "Cc").unwrap(), "c@example.com");
    }

    #[test]
    fn address_lists() {
        assert_eq!(
            parse_address_list(
                r#""Smith, John" <john@example.com>; b@example.org,C <c@example.net> ; ,d@x.org (Dee, D)"#
            )
            .unwrap(),
            strings(&[
                r#""Smith, John" <john@example.com>"#,
                "b@example.org",
                "C <c@example.net>",
                "d@x.org (Dee, D)",
            ])
        );
        assert_eq!(parse_address_list("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_address_list(" ; , ").unwrap(), Vec::<String>::new());
        assert_eq!(
            address_only(r#""Smith, John" <john@example.com>"#).unwrap(),
            "john@example.com"
        );
        assert_eq!(address_only("<a@b.c>").unwrap(), "a@b.c");
        assert_eq!(address_only("d@x.org (Dee, D)").unwrap(), "d@x.org");
        assert_eq!(
            parse_mailbox("d@x.org (Dee, D)").unwrap().name.unwrap(),
            "Dee, D"
        );
        assert_eq!(
            address_only(r#""john doe"@example.com"#).unwrap(),
            r#""john doe"@example.com"#
        );
        assert_eq!(
            address_only("user@[192.0.2.1]").unwrap(),
            "user@[192.0.2.1]"
        );
        assert_eq!(address_only("root@localhost").unwrap(), "root@localhost");
        // SMTPUTF8 local parts and internationalised domains.
        assert_eq!(address_only("用户@例子.广告").unwrap(), "用户@例子.广告");
        assert_eq!(
            envelope_address("用户@例子.广告").unwrap(),
            "用户@例子.广告"
        );
        assert_eq!(
            envelope_address("Bü <info@bücher.de>").unwrap(),
            "info@xn--bcher-kva.de"
        );

        for bad in [
            "a@",
            "@b.com",
            "nobody",
            "a b@c.com",
            "a@b c.com",
            "a..b@c.com",
            ".a@c.com",
            "a.@c.com",
            "a@-b.com",
            "a@b-.com",
            "a@b..com",
            "a@b_c.com",
            "a@b.com\r\nRCPT TO:<x@y>",
            "a@b.com\0",
            "<a@b.com",
            "Name <a@b.com> trailing",
            "\"unterminated <a@b.com>",
            "<@relay.com:a@b.com>",
            "a<x>@b.com",
            "\"a\"b\"@c.com",
        ] {
            assert!(address_only(bad).is_err(), "{bad:?} accepted");
        }
        assert!(address_only(&format!("{}@b.com", "a".repeat(65))).is_err());
        assert!(address_only(&format!("a@{}.com", "b".repeat(64))).is_err());
        assert!(parse_address_list("a@b.com, bad address, c@d.com")
            .unwrap_err()
            .contains("bad address"));
        assert!(parse_address_list("\"open, a@b.com").is_err());
    }

    #[test]
    fn address_headers_fold_between_addresses() {
        let mut m = Msg::new();
        m.to = (0..12)
            .map(|i| format!("Person Number{i} <person{i}@example.com>"))
            .collect();
        m.to.push("Ärger Ölßen <idn@bücher.de>".into());
        let msg = m.build().unwrap();
        assert_line_lengths(&msg, SOFT_LIMIT);
        let (head, _) = split(&msg);
        for l in head.split("\r\n") {
            // A line never ends inside an address.
            assert_eq!(l.matches('<').count(), l.matches('>').count(), "{l}");
        }
        let to = header(&msg, "To").unwrap();
        assert!(to.starts_with("Person Number0 <person0@example.com>, Person Number1"));
        assert!(to.ends_with(" <idn@xn--bcher-kva.de>"));
    }

    #[test]
    fn utf8_local_part_stays_utf8() {
        let mut m = Msg::new();
        m.to = strings(&["用户@例子.广告"]);
        let msg = m.build().unwrap();
        assert_eq!(header(&msg, "To").unwrap(), "用户@例子.广告");
        assert!(!msg.is_ascii());
    }

    #[test]
    fn bad_inputs() {
        let mut m = Msg::new();
        m.from = "not an address".into();
        assert!(m.build().unwrap_err().starts_with("From:"));
        let mut m = Msg::new();
        m.to = strings(&["x@y.z", "bad"]);
        assert!(m.build().unwrap_err().starts_with("To:"));
        let mut m = Msg::new();
        m.cc = strings(&["a@b.c\r\nDATA"]);
        assert!(m.build().unwrap_err().starts_with("Cc:"));
        for id in ["<a@b>", "a b@c", "nohost", "a@", "a@b\r\n", "a@b@c"] {
            let m = Msg::new();
            let out = Outgoing {
                from: &m.from,
                name: None,
                to: &m.to,
                cc: &m.cc,
                subject: "",
                body: "",
                priority: None,
                extra_headers: &[],
                date: at(0),
                message_id: id,
            };
            assert!(build(&out).unwrap_err().contains("Message-ID"), "{id}");
        }
    }
}
