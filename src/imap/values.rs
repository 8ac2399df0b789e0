//! A small parser for the data of untagged responses (LIST, FETCH, SEARCH):
//! atoms, numbers, quoted strings, literals, NIL and parenthesised lists.
//! It works on the raw frame, so literal bytes arrive exactly as sent.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An atom, including bracketed sections such as `BODY[HEADER]`.
    Atom(String),
    /// A quoted string or a literal, as bytes.
    Str(Vec<u8>),
    List(Vec<Value>),
    Nil,
    /// A literal left where it is (`parse_in_place`): input[start..end].
    Span(usize, usize),
}

impl Value {
    pub fn as_str(&self) -> Option<String> {
        match self {
            Value::Atom(a) => Some(a.clone()),
            Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Atom(a) => a.parse().ok(),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Value::Str(s) => Some(s),
            Value::Atom(a) => Some(a.into_bytes()),
            _ => None,
        }
    }
}

/// Deeper nesting than any real response (BODYSTRUCTURE stays far below).
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    /// Literals are not copied but given as `Value::Span`.
    in_place: bool,
}

/// Parses the values of one response line (without the leading `* `).
pub fn parse(input: &[u8]) -> Result<Vec<Value>, String> {
    parse_with(input, false)
}

/// The same, with literals as `Value::Span` into `input`: a message body
/// is not copied.
pub fn parse_in_place(input: &[u8]) -> Result<Vec<Value>, String> {
    parse_with(input, true)
}

fn parse_with(input: &[u8], in_place: bool) -> Result<Vec<Value>, String> {
    let input = input.strip_suffix(b"\r\n").unwrap_or(input);
    let mut p = Parser {
        input,
        pos: 0,
        in_place,
    };
    let values = p.sequence(false, 0)?;
    if p.pos < input.len() {
        return Err(format!("unexpected ')' at byte {}", p.pos));
    }
    Ok(values)
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn sequence(&mut self, in_list: bool, depth: usize) -> Result<Vec<Value>, String> {
        // Recursion is bounded: a hostile line of '(' must not overflow the stack.
        if depth > MAX_DEPTH {
            return Err("lists nested too deeply".into());
        }
        let mut out = Vec::new();
        loop {
            while self.peek() == Some(b' ') {
                self.pos += 1;
            }
            match self.peek() {
                None if in_list => return Err("unterminated list".into()),
                None => return Ok(out),
                Some(b')') if in_list => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b')') => return Ok(out),
                Some(b'(') => {
                    self.pos += 1;
                    out.push(Value::List(self.sequence(true, depth + 1)?));
                }
                Some(b'"') => out.push(Value::Str(self.quoted()?)),
                Some(b'{') => {
                    let (start, end) = self.literal()?;
                    out.push(if self.in_place {
                        Value::Span(start, end)
                    } else {
                        Value::Str(self.input[start..end].to_vec())
                    });
                }
                Some(_) => {
                    let a = self.atom()?;
                    out.push(if a.eq_ignore_ascii_case("NIL") {
                        Value::Nil
                    } else {
                        Value::Atom(a)
                    });
                }
            }
        }
    }

    fn quoted(&mut self) -> Result<Vec<u8>, String> {
        self.pos += 1;
        let mut s = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(b'\\') => {
                    let c = self.input.get(self.pos + 1).copied().ok_or("bad escape")?;
                    s.push(c);
                    self.pos += 2;
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<(usize, usize), String> {
        let close = self.input[self.pos..]
            .iter()
            .position(|&b| b == b'}')
            .ok_or("bad literal")?
            + self.pos;
        let digits =
            std::str::from_utf8(&self.input[self.pos + 1..close]).map_err(|_| "bad literal")?;
        let n: usize = digits
            .trim_end_matches('+')
            .parse()
            .map_err(|_| "bad literal size")?;
        let start = close
            + 1
            + if self.input[close + 1..].starts_with(b"\r\n") {
                2
            } else {
                1
            };
        let end = start
            .checked_add(n)
            .filter(|e| *e <= self.input.len())
            .ok_or("literal runs past the frame")?;
        self.pos = end;
        Ok((start, end))
    }

    /// An atom runs to a space or paren; `[...]` sections may hold both.
    fn atom(&mut self) -> Result<String, String> {
        let start = self.pos;
        let mut depth = 0;
        while let Some(c) = self.peek() {
            match c {
                // A section like BODY[HEADER.FIELDS (A B)] may hold spaces and
                // parens; a lone '[' (legal in keywords) does not open one.
                b'[' if self.input[self.pos..].contains(&b']') => depth += 1,
                b']' if depth > 0 => depth -= 1,
                b' ' | b'(' | b')' if depth == 0 => break,
                b'\r' | b'\n' => break,
                _ => {}
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(format!("unexpected byte at {start}"));
        }
        Ok(String::from_utf8_lossy(&self.input[start..self.pos]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Value::*;

    fn a(s: &str) -> Value {
        Atom(s.into())
    }

    #[test]
    fn in_place_literals_point_into_the_input() {
        let input = b"1 FETCH (UID 7 BODY[] {5}\r\nab)\r\n FLAGS ())";
        let v = parse_in_place(input).unwrap();
        let List(items) = &v[2] else { panic!("{v:?}") };
        let Span(start, end) = items[3] else {
            panic!("{items:?}")
        };
        assert_eq!(&input[start..end], b"ab)\r\n");
        assert_eq!(
            parse(input).unwrap()[2].as_list().unwrap()[3],
            Str(b"ab)\r\n".to_vec())
        );
    }

    #[test]
    fn list_fetch_and_search() {
        assert_eq!(
            parse(b"LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"").unwrap(),
            vec![
                a("LIST"),
                List(vec![a("\\HasNoChildren"), a("\\Sent")]),
                Str(b"/".to_vec()),
                Str(b"Sent Items".to_vec())
            ]
        );
        assert_eq!(parse(b"LIST () NIL INBOX").unwrap()[2], Nil);
        let f =
            parse(b"12 FETCH (UID 5 FLAGS (\\Seen) BODY[HEADER.FIELDS (FROM TO)] {5}\r\nab\0\r\n)")
                .unwrap();
        assert_eq!(f[0], a("12"));
        let items = f[2].as_list().unwrap();
        assert_eq!(items[4], a("BODY[HEADER.FIELDS (FROM TO)]"));
        assert_eq!(items[5], Str(b"ab\0\r\n".to_vec()));
        assert_eq!(parse(b"SEARCH 2 84 882").unwrap().len(), 4);
        assert_eq!(parse(b"X \"a\\\"b\"").unwrap()[1], Str(b"a\"b".to_vec()));
    }

    #[test]
    fn deep_nesting_is_refused_and_lone_brackets_are_text() {
        let deep = vec![b'('; 200_000];
        assert!(parse(&deep).is_err());
        let v = parse(b"1 FETCH (FLAGS ($Foo[) UID 5)").unwrap();
        assert_eq!(v[2].as_list().unwrap()[1], List(vec![a("$Foo[")]));
    }

    #[test]
    fn malformed_is_an_error_never_a_panic() {
        for bad in [
            &b"(a"[..],
            b"\"open",
            b"{5}\r\nab",
            b"{x}\r\n",
            b"a)",
            b"{99999999999999999999}\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
