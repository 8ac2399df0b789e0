//! The script language of `mailext-host`: one 4GL-style call per line,
//! `[var =] Command(arg, ...)`. Parsing and argument binding are pure so they
//! can be tested without a plugin; the binary only adds I/O and the calls.

use crate::host::{HostValue, List, ParamInfo, Tri};
use crate::{
    MAILEXT_KIND_BINARY, MAILEXT_KIND_CHARACTER, MAILEXT_KIND_INTEGER, MAILEXT_KIND_LIST,
    MAILEXT_KIND_PROC, MAILEXT_PARAM_OUT,
};
use std::collections::HashMap;

/// One argument as written.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgValue {
    /// Nothing between the commas: the argument is "not given".
    Empty,
    Str(String),
    Int(i64),
    Bool(Tri),
    /// A bare name: a variable, a list, or a method name, depending on the
    /// parameter it lands on (see [`bind`]).
    Name(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub value: ArgValue,
    /// The source text, kept so the echo shows what the script said.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub target: Option<String>,
    pub command: String,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based, in characters.
    pub column: usize,
    /// Never quotes the line: it may hold a password.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses one line; blank lines and `#` comments are `None`.
pub fn parse_line(line: &str) -> Result<Option<Statement>, ParseError> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let mut c = Cursor { s: line, pos: 0 };
    c.skip_ws();
    let first = c
        .ident()
        .ok_or_else(|| c.err("expected a command name or a variable"))?;
    c.skip_ws();
    let (target, command) = if c.eat('=') {
        if constant(&first).is_some() {
            return Err(c.err_at(0, "cannot assign to a constant"));
        }
        c.skip_ws();
        let cmd = c
            .ident()
            .ok_or_else(|| c.err("expected a command name after ="))?;
        (Some(first), cmd)
    } else {
        (None, first)
    };
    c.skip_ws();
    if !c.eat('(') {
        return Err(c.err("expected ( after the command name"));
    }
    let args = c.args()?;
    c.skip_ws();
    // A trailing comment is allowed; anything else is probably a typo.
    if c.peek().is_some_and(|ch| ch != '#') {
        return Err(c.err("unexpected text after )"));
    }
    Ok(Some(Statement {
        target,
        command,
        args,
    }))
}

fn constant(name: &str) -> Option<Tri> {
    match name.to_ascii_lowercase().as_str() {
        "ktrue" => Some(Tri::True),
        "kfalse" => Some(Tri::False),
        "kunknown" => Some(Tri::Unknown),
        _ => None,
    }
}

fn ident_start(ch: char) -> bool {
    ch.is_alphabetic() || ch == '_' || ch == '$'
}

fn ident_char(ch: char) -> bool {
    // `.` and `$` so 4GL names such as `$cinst.onStatus` can be written.
    ch.is_alphanumeric() || ch == '_' || ch == '$' || ch == '.'
}

struct Cursor<'a> {
    s: &'a str,
    /// Byte offset into `s`.
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }
    fn eat(&mut self, want: char) -> bool {
        let hit = self.peek() == Some(want);
        if hit {
            self.pos += want.len_utf8();
        }
        hit
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }
    fn err(&self, message: &str) -> ParseError {
        self.err_at(self.pos, message)
    }
    fn err_at(&self, pos: usize, message: &str) -> ParseError {
        let column = self.s[..pos].chars().count() + 1;
        ParseError {
            column,
            message: message.into(),
        }
    }
    fn ident(&mut self) -> Option<String> {
        let start = self.pos;
        if !self.peek().is_some_and(ident_start) {
            return None;
        }
        while self.peek().is_some_and(ident_char) {
            self.bump();
        }
        Some(self.s[start..self.pos].to_string())
    }

    /// The argument list after `(`, through the closing `)`.
    fn args(&mut self) -> Result<Vec<Arg>, ParseError> {
        self.skip_ws();
        if self.eat(')') {
            return Ok(Vec::new());
        }
        let mut args = Vec::new();
        loop {
            self.skip_ws();
            let start = self.pos;
            let value = match self.peek() {
                Some(',' | ')') => ArgValue::Empty,
                Some('"') => ArgValue::Str(self.string()?),
                Some(ch) if ch == '-' || ch.is_ascii_digit() => ArgValue::Int(self.integer()?),
                Some(ch) if ident_start(ch) => {
                    let name = self.ident().unwrap_or_default();
                    constant(&name).map_or(ArgValue::Name(name), ArgValue::Bool)
                }
                Some(_) => return Err(self.err("unexpected character in an argument")),
                None => return Err(self.err("missing )")),
            };
            let text = self.s[start..self.pos].to_string();
            args.push(Arg { value, text });
            self.skip_ws();
            match self.bump() {
                Some(',') => continue,
                Some(')') => return Ok(args),
                None => return Err(self.err("missing )")),
                Some(_) => return Err(self.err_at(start, "expected , or ) after this argument")),
            }
        }
    }

    fn integer(&mut self) -> Result<i64, ParseError> {
        let start = self.pos;
        self.eat('-');
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        if self.peek().is_some_and(ident_char) {
            return Err(self.err("a number cannot be followed by letters"));
        }
        let digits = &self.s[start..self.pos];
        let why = if digits == "-" {
            "expected digits after -"
        } else {
            "integer out of range"
        };
        digits.parse().map_err(|_| self.err_at(start, why))
    }

    /// A double-quoted string. Escapes build bytes, so `\xHH` sequences can
    /// spell UTF-8; the result must still be valid UTF-8 (it is Character).
    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        self.bump();
        let mut out = Vec::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => return Err(self.err_at(start, "unterminated string")),
                Some('"') => break,
                Some('\\') => {
                    let b = match self.bump() {
                        Some('"') => b'"',
                        Some('\\') => b'\\',
                        Some('n') => b'\n',
                        Some('r') => b'\r',
                        Some('t') => b'\t',
                        Some('0') => 0,
                        Some('x') => {
                            let hex = self
                                .s
                                .get(self.pos..self.pos + 2)
                                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                            let hex =
                                hex.ok_or_else(|| self.err_at(at, "\\x needs two hex digits"))?;
                            self.pos += 2;
                            u8::from_str_radix(hex, 16).unwrap_or_default()
                        }
                        _ => return Err(self.err_at(at, "unknown escape")),
                    };
                    out.push(b);
                }
                Some(ch) => out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        String::from_utf8(out).map_err(|_| self.err_at(start, "string is not valid UTF-8"))
    }
}

/// The inverse of string literal parsing, for showing Character values.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s).replace('"', "\\\""))
}

/// Escapes backslashes and control characters so one value stays on one line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Whether a parameter's value must never be shown.
pub fn is_secret(param_name: &str) -> bool {
    param_name.to_ascii_lowercase().contains("pass")
}

/// The statement as the script wrote it, with secret arguments redacted.
pub fn echo(stmt: &Statement, params: &[ParamInfo]) -> String {
    let args: Vec<&str> = stmt
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| match params.get(i) {
            Some(p) if is_secret(&p.name) && a.value != ArgValue::Empty => "<redacted>",
            _ => a.text.as_str(),
        })
        .collect();
    let call = format!("{}({})", stmt.command, args.join(", "));
    match &stmt.target {
        Some(t) => format!("{t} = {call}"),
        None => call,
    }
}

/// Script variables. Names are case-insensitive, as in the 4GLs.
#[derive(Debug, Default)]
pub struct Vars(HashMap<String, HostValue>);

impl Vars {
    pub fn get(&self, name: &str) -> Option<&HostValue> {
        self.0.get(&name.to_lowercase())
    }
    pub fn set(&mut self, name: &str, value: HostValue) {
        self.0.insert(name.to_lowercase(), value);
    }
}

/// Turns the written arguments into call values. Arguments beyond the
/// parameter table are still passed, so the plugin reports the count error.
pub fn bind(args: &[Arg], params: &[ParamInfo], vars: &Vars) -> Result<Vec<HostValue>, String> {
    let mut out = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let p = params.get(i);
        let accepts = |kind: u32| p.is_some_and(|p| p.kinds & kind != 0);
        let v = match &a.value {
            ArgValue::Empty => HostValue::None,
            ArgValue::Int(n) => HostValue::Integer(*n),
            ArgValue::Bool(t) => HostValue::Boolean(*t),
            // stsproc is usually written as a literal: "onStatus".
            ArgValue::Str(s) if accepts(MAILEXT_KIND_PROC) => HostValue::Proc(s.clone()),
            ArgValue::Str(s) => HostValue::Character(s.clone()),
            ArgValue::Name(n) if accepts(MAILEXT_KIND_LIST) => match vars.get(n) {
                None => HostValue::List(List::default()),
                Some(v @ HostValue::List(_)) => v.clone(),
                Some(_) => return Err(format!("argument {}: variable {n} is not a list", i + 1)),
            },
            ArgValue::Name(n) => match vars.get(n) {
                Some(v) => v.clone(),
                None if accepts(MAILEXT_KIND_PROC) => HostValue::Proc(n.clone()),
                // A new out-variable starts empty, of a kind the parameter takes.
                None if p.is_some_and(|p| p.flags & MAILEXT_PARAM_OUT != 0) => {
                    if accepts(MAILEXT_KIND_INTEGER) {
                        HostValue::Integer(0)
                    } else if accepts(MAILEXT_KIND_BINARY) {
                        HostValue::Binary(Vec::new())
                    } else if accepts(MAILEXT_KIND_CHARACTER) {
                        HostValue::Character(String::new())
                    } else {
                        HostValue::Boolean(Tri::False)
                    }
                }
                None => return Err(format!("argument {}: unknown variable {n}", i + 1)),
            },
        };
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAILEXT_KIND_CHARACTER, MAILEXT_KIND_INTEGER, MAILEXT_PARAM_IN};

    fn parse(s: &str) -> Statement {
        parse_line(s).unwrap().unwrap()
    }
    fn values(s: &str) -> Vec<ArgValue> {
        parse(s).args.into_iter().map(|a| a.value).collect()
    }
    fn param(name: &str, kinds: u32, flags: u32) -> ParamInfo {
        let name = name.into();
        let description = String::new();
        ParamInfo {
            name,
            kinds,
            flags,
            default: None,
            description,
        }
    }

    #[test]
    fn blank_and_comments() {
        assert_eq!(parse_line("").unwrap(), None);
        assert_eq!(parse_line("   \t").unwrap(), None);
        assert_eq!(parse_line("  # x = F(").unwrap(), None);
    }

    #[test]
    fn assignment_and_plain_call() {
        let s = parse("  sock = IMAPConnect(\"h\", 2)  # trailing comment");
        assert_eq!(s.target.as_deref(), Some("sock"));
        assert_eq!(s.command, "IMAPConnect");
        assert_eq!(
            (&s.args[0].text, &s.args[1].value),
            (&"\"h\"".into(), &ArgValue::Int(2))
        );
        let s = parse("MailLastError()");
        assert_eq!(
            (s.target, s.command.as_str(), s.args.len()),
            (None, "MailLastError", 0)
        );
    }

    #[test]
    fn literals() {
        use ArgValue::*;
        let line = "F(-1120, 0, kTrue, KFALSE, kunknown, name, $cinst.onStatus)";
        let want = [
            Int(-1120),
            Int(0),
            Bool(Tri::True),
            Bool(Tri::False),
            Bool(Tri::Unknown),
            Name("name".into()),
            Name("$cinst.onStatus".into()),
        ];
        assert_eq!(values(line), want);
    }

    #[test]
    fn escapes() {
        let v = values(r#"F("a\"b\\c\n\r\t\0\x41\xc3\xA9", "p,a)ss")"#);
        assert_eq!(v[0], ArgValue::Str("a\"b\\c\n\r\t\0Aé".into()));
        assert_eq!(v[1], ArgValue::Str("p,a)ss".into()));
        let raw = "x\r\n\"\\\0\x01é";
        assert_eq!(
            values(&format!("F({})", quote(raw))),
            vec![ArgValue::Str(raw.into())]
        );
    }

    #[test]
    fn empty_arguments() {
        use ArgValue::*;
        assert_eq!(values("F(1,,3)"), vec![Int(1), Empty, Int(3)]);
        assert_eq!(values("F(1, )"), vec![Int(1), Empty]);
        assert_eq!(values("F(,)"), vec![Empty, Empty]);
        assert_eq!(values("F( )"), vec![]);
    }

    #[test]
    fn errors() {
        let cases = [
            ("F(\"abc", 3, "unterminated string"),
            ("F(1, 2", 7, "missing )"),
            ("F(\"\\q\")", 4, "unknown escape"),
            ("F(\"\\x4\")", 4, "\\x needs two hex digits"),
            ("F(\"\\xff\")", 3, "string is not valid UTF-8"),
            ("F(99999999999999999999)", 3, "integer out of range"),
            ("F(-)", 3, "expected digits after -"),
            ("F(12ab)", 5, "a number cannot be followed by letters"),
            ("F(a b)", 3, "expected , or ) after this argument"),
            ("F(@)", 3, "unexpected character in an argument"),
            ("F 1", 3, "expected ( after the command name"),
            ("x = (1)", 5, "expected a command name after ="),
            ("kTrue = F()", 1, "cannot assign to a constant"),
            ("F() G()", 5, "unexpected text after )"),
            ("= F()", 1, "expected a command name or a variable"),
        ];
        for (line, column, message) in cases {
            let want = ParseError {
                column,
                message: message.into(),
            };
            assert_eq!(parse_line(line), Err(want), "{line}");
        }
    }

    #[test]
    fn echo_redacts_passwords() {
        let params = [
            param("user", MAILEXT_KIND_CHARACTER, 0),
            param("password", MAILEXT_KIND_CHARACTER, 0),
        ];
        let s = parse("s = C(\"alice\",   \"se\\x63ret\")");
        assert_eq!(echo(&s, &params), "s = C(\"alice\", <redacted>)");
        assert_eq!(echo(&parse("C(\"alice\", )"), &params), "C(\"alice\", )");
    }

    #[test]
    fn binding() {
        use HostValue::*;
        let params = [
            param(
                "sts",
                MAILEXT_KIND_PROC | MAILEXT_KIND_CHARACTER,
                MAILEXT_PARAM_IN,
            ),
            param("list", MAILEXT_KIND_LIST, MAILEXT_PARAM_IN),
            param("n", MAILEXT_KIND_INTEGER, MAILEXT_PARAM_IN),
            param("out", MAILEXT_KIND_INTEGER, MAILEXT_PARAM_OUT),
            param("text", MAILEXT_KIND_CHARACTER, MAILEXT_PARAM_IN),
        ];
        let mut vars = Vars::default();
        vars.set("Sock", Integer(7));
        let bind = |s: &str| bind(&parse(s).args, &params, &vars);
        let all = bind("F(\"onStatus\", r, sock, o, \"t\", 5)").unwrap();
        let list = List(super::List::default());
        let want = [
            Proc("onStatus".into()),
            list,
            Integer(7),
            Integer(0),
            Character("t".into()),
            Integer(5),
        ];
        assert_eq!(all, want);
        assert_eq!(bind("F(onStatus)").unwrap(), [Proc("onStatus".into())]);
        assert_eq!(bind("F(sock)").unwrap(), [Integer(7)]);
        assert_eq!(
            bind("F(, sock)").unwrap_err(),
            "argument 2: variable sock is not a list"
        );
        assert_eq!(
            bind("F(, , nope)").unwrap_err(),
            "argument 3: unknown variable nope"
        );
    }
}
