//! Proxy tunnels: the `http://` (HTTP CONNECT, RFC 9110 9.3.6) and
//! `socks5://` (RFC 1928, user name and password by RFC 1929) handshakes
//! that run on the TCP connection to the proxy before the mail protocol.
//!
//! No I/O and no clock, like the protocol core: the caller connects to
//! `ProxySpec::host:port`, sends [`ProxyHandshake::initial`], feeds every
//! received piece to [`ProxyHandshake::on_bytes`] and sends what it asks,
//! until `Done`. The bytes in `Done::leftover` already belong to the mail
//! server. TLS (implicit or STARTTLS) then runs through the tunnel to the
//! *mail server's* name, never the proxy's. A proxy that closes or stops
//! answering is the caller's to report ([`ProxyHandshake::on_close`] gives
//! the best error for what was received so far).
//!
//! Names are always sent to the proxy unresolved (the proxy resolves them),
//! so `socks5h://` is accepted as another spelling of `socks5://`.
//!
//! Credentials are never part of a `Debug` or `Display` text or of an
//! error message.

use crate::error::MailError;
use crate::net::address::{parse_server, Host, ServerAddr};
use std::fmt;
use std::net::IpAddr;

/// Port used when an `http://` proxy address gives none (Squid's port).
pub const DEFAULT_HTTP_PROXY_PORT: u16 = 3128;
/// Port used when a `socks5://` proxy address gives none (RFC 1928).
pub const DEFAULT_SOCKS5_PORT: u16 = 1080;
/// The most an HTTP proxy's reply head (status line and headers) may hold.
pub const MAX_HTTP_REPLY_HEAD: usize = 16 * 1024;
/// Longest proxy-supplied text (reason phrase, challenge) kept in an error.
const MAX_QUOTED: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP CONNECT over plain TCP to the proxy.
    Http,
    /// SOCKS5 with names resolved by the proxy.
    Socks5,
}

impl ProxyKind {
    pub fn scheme(self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            ProxyKind::Http => DEFAULT_HTTP_PROXY_PORT,
            ProxyKind::Socks5 => DEFAULT_SOCKS5_PORT,
        }
    }
}

/// A parsed proxy address. `Debug` hides the password; `Display` shows
/// `scheme://host:port` without credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxySpec {
    pub kind: ProxyKind,
    pub host: Host,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl ProxySpec {
    /// The proxy's own address, for connecting to it.
    pub fn server_addr(&self) -> ServerAddr {
        ServerAddr {
            host: self.host.clone(),
            port: self.port,
        }
    }
}

impl fmt::Debug for ProxySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
        f.debug_struct("ProxySpec")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| Redacted))
            .finish()
    }
}

impl fmt::Display for ProxySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.kind.scheme(), self.host, self.port)
    }
}

const FORM: &str =
    "write http://[user[:password]@]host[:port] or socks5://[user[:password]@]host[:port]";

fn bad(why: impl fmt::Display) -> MailError {
    MailError::BadValue(format!("proxy address: {why}"))
}

/// Parses `http://[user[:pass]@]host[:port]` (default port 3128) or
/// `socks5://...` / `socks5h://...` (default port 1080). The scheme is
/// case-insensitive, one trailing `/` is tolerated, user and password are
/// percent-decoded (`%40` for `@`, `%3A` for `:`, `%2F` for `/`). Hosts are
/// names, IPv4 or bracketed IPv6 (`socks5://[::1]:1080`). Refused, as
/// `BadValue`: other schemes (`https://` included: TLS to the proxy is not
/// supported), paths, queries, spaces or control characters, CR/LF/NUL in
/// the decoded credentials, an empty user name before `@`, a `:` in an HTTP
/// user name (Basic cannot carry it) and SOCKS5 user names or passwords
/// over 255 bytes. Error texts never quote the credentials.
pub fn parse_proxy(url: &str) -> Result<ProxySpec, MailError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(bad(format!("empty; {FORM}")));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains spaces or control characters"));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad(format!("no scheme; {FORM}")))?;
    let kind = match scheme.to_ascii_lowercase().as_str() {
        "http" => ProxyKind::Http,
        "socks5" | "socks5h" => ProxyKind::Socks5,
        "https" => {
            return Err(bad(
                "https:// proxies (TLS to the proxy) are not supported; use http://",
            ))
        }
        "socks4" | "socks4a" => {
            return Err(bad("SOCKS4 is not supported; use socks5://"));
        }
        s if !s.is_empty()
            && s.len() <= 16
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            return Err(bad(format!("unsupported scheme {s:?}; {FORM}")));
        }
        _ => return Err(bad(format!("no valid scheme; {FORM}"))),
    };
    // The authority ends at the first '/', '?' or '#' (as in WHATWG URLs);
    // only one trailing '/' may follow.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        return Err(bad(format!(
            "a proxy address has no path, query or fragment (encode '/' in a password as %2F); {FORM}"
        )));
    }
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            let user = percent_decode(u, "user name")?;
            let pass = p.map(|p| percent_decode(p, "password")).transpose()?;
            (Some(user), pass)
        }
    };
    if let Some(user) = &username {
        if user.is_empty() {
            return Err(bad("the user name before '@' is empty"));
        }
        if has_crlf_nul(user) {
            return Err(bad("the user name contains CR, LF or NUL"));
        }
        if kind == ProxyKind::Http && user.contains(':') {
            return Err(bad(
                "an HTTP proxy user name cannot contain ':' (Basic authentication)",
            ));
        }
    }
    if let Some(pass) = &password {
        if has_crlf_nul(pass) {
            return Err(bad("the password contains CR, LF or NUL"));
        }
    }
    if kind == ProxyKind::Socks5 {
        if username.as_ref().is_some_and(|u| u.len() > 255) {
            return Err(bad("a SOCKS5 user name may hold at most 255 bytes"));
        }
        if password.as_ref().is_some_and(|p| p.len() > 255) {
            return Err(bad("a SOCKS5 password may hold at most 255 bytes"));
        }
    }
    // `hostport` never holds credentials: they end at the last '@'.
    let addr = parse_server(hostport, kind.default_port()).map_err(|e| match e {
        MailError::NoAddress => bad(format!("no proxy host; {FORM}")),
        MailError::BadAddress(m) | MailError::BadPort(m) => bad(m),
        other => other,
    })?;
    Ok(ProxySpec {
        kind,
        host: addr.host,
        port: addr.port,
        username,
        password,
    })
}

fn has_crlf_nul(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// `%XX` decoding; the result must be UTF-8. `what` names the field in
/// errors, whose text never includes the field itself.
fn percent_decode(s: &str, what: &str) -> Result<String, MailError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => {
                    return Err(bad(format!(
                        "the {what} has a '%' not followed by two hex digits (write '%' as %25)"
                    )))
                }
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(format!("the percent-decoded {what} is not UTF-8")))
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyStep {
    /// Send these bytes to the proxy, then keep reading.
    Send(Vec<u8>),
    /// Keep reading.
    NeedMore,
    /// The tunnel is open; `leftover` came from the mail server, after the
    /// proxy's reply (normally empty), and must be fed to the protocol.
    Done { leftover: Vec<u8> },
}

enum State {
    /// `initial` not called yet.
    Start,
    /// CONNECT sent; reading the reply head.
    HttpReply,
    /// Greeting sent; waiting for VER METHOD.
    SocksMethod,
    /// User name and password sent; waiting for VER STATUS.
    SocksAuth,
    /// CONNECT request sent; waiting for the reply.
    SocksReply,
    Done,
    Failed,
}

/// One proxy handshake. `Debug` shows the state, never the credentials.
pub struct ProxyHandshake {
    kind: ProxyKind,
    /// `scheme://host:port` of the proxy, for messages.
    proxy: String,
    target: ServerAddr,
    credentials: Option<(String, String)>,
    state: State,
    buf: Vec<u8>,
    /// HTTP: bytes of `buf` already scanned for line ends.
    scanned: usize,
    /// HTTP: where the current line of `buf` starts.
    line_start: usize,
}

impl fmt::Debug for ProxyHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start => "Start",
            State::HttpReply => "HttpReply",
            State::SocksMethod => "SocksMethod",
            State::SocksAuth => "SocksAuth",
            State::SocksReply => "SocksReply",
            State::Done => "Done",
            State::Failed => "Failed",
        };
        f.debug_struct("ProxyHandshake")
            .field("proxy", &self.proxy)
            .field("target", &self.target)
            .field("with_credentials", &self.credentials.is_some())
            .field("state", &state)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl ProxyHandshake {
    /// A handshake through `spec` to the mail server `target`. A user name
    /// without a password is sent with an empty password.
    pub fn new(spec: &ProxySpec, target: &ServerAddr) -> Self {
        ProxyHandshake {
            kind: spec.kind,
            proxy: spec.to_string(),
            target: target.clone(),
            credentials: spec
                .username
                .clone()
                .map(|u| (u, spec.password.clone().unwrap_or_default())),
            state: State::Start,
            buf: Vec::new(),
            scanned: 0,
            line_start: 0,
        }
    }

    /// The bytes to send as soon as the TCP connection to the proxy is up:
    /// the CONNECT request, or the SOCKS5 greeting. Later calls return
    /// nothing.
    pub fn initial(&mut self) -> Vec<u8> {
        if !matches!(self.state, State::Start) {
            return Vec::new();
        }
        match self.kind {
            ProxyKind::Http => {
                self.state = State::HttpReply;
                self.http_request()
            }
            ProxyKind::Socks5 => {
                self.state = State::SocksMethod;
                if self.credentials.is_some() {
                    vec![5, 2, 0x00, 0x02]
                } else {
                    vec![5, 1, 0x00]
                }
            }
        }
    }

    /// Feeds what the proxy sent (any split, even one byte at a time).
    /// After an error or `Done`, the handshake is over and further calls
    /// fail with `Internal`.
    pub fn on_bytes(&mut self, input: &[u8]) -> Result<ProxyStep, MailError> {
        match self.state {
            State::Start => {
                return Err(MailError::Internal(
                    "proxy handshake fed before its first bytes were sent".into(),
                ))
            }
            State::Done | State::Failed => {
                return Err(MailError::Internal("proxy handshake already over".into()))
            }
            _ => {}
        }
        self.buf.extend_from_slice(input);
        let step = match self.state {
            State::HttpReply => self.http_progress(),
            State::SocksMethod => self.socks_method(),
            State::SocksAuth => self.socks_auth(),
            State::SocksReply => self.socks_reply(),
            State::Start | State::Done | State::Failed => unreachable!(),
        };
        match &step {
            Err(_) => {
                self.state = State::Failed;
                self.buf = Vec::new();
            }
            Ok(ProxyStep::Done { .. }) => self.state = State::Done,
            Ok(_) => {}
        }
        step
    }

    /// The error to report when the proxy closes the connection before the
    /// handshake is done: the HTTP status if one was received, otherwise a
    /// `ProxyFailed` saying where the handshake stopped.
    pub fn on_close(&mut self) -> MailError {
        let err = match self.state {
            State::HttpReply => match self.http_status_so_far() {
                Some((code, reason)) if !(200..300).contains(&code) => {
                    self.http_failure(code, &reason, &[])
                }
                _ => self.closed("before its reply to CONNECT was complete"),
            },
            State::SocksMethod => self.closed("after the SOCKS5 greeting"),
            State::SocksAuth => self.closed(
                "after the SOCKS5 user name and password (the credentials may have been refused)",
            ),
            State::SocksReply => self.closed("before its reply to the SOCKS5 CONNECT request"),
            State::Start => self.closed("before the handshake started"),
            State::Done | State::Failed => self.closed("after the handshake"),
        };
        self.state = State::Failed;
        err
    }

    fn closed(&self, when: &str) -> MailError {
        MailError::ProxyFailed(format!(
            "the proxy {} closed the connection {when}",
            self.proxy
        ))
    }

    // ---- HTTP CONNECT ----

    fn http_request(&self) -> Vec<u8> {
        let t = &self.target; // Display brackets IPv6
        let mut r = format!("CONNECT {t} HTTP/1.1\r\nHost: {t}\r\n");
        if let Some((u, p)) = &self.credentials {
            let token = openssl::base64::encode_block(format!("{u}:{p}").as_bytes());
            r.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        r.push_str("\r\n");
        r.into_bytes()
    }

    fn not_http(&self) -> MailError {
        let hint = if self.buf.first() == Some(&5) {
            " (it looks like a SOCKS5 proxy: use socks5://)"
        } else {
            ""
        };
        MailError::ProxyFailed(format!(
            "the proxy {} did not answer CONNECT with an HTTP reply{hint}",
            self.proxy
        ))
    }

    fn http_progress(&mut self) -> Result<ProxyStep, MailError> {
        loop {
            let n = self.buf.len().min(5);
            if self.buf[..n] != b"HTTP/"[..n] {
                return Err(self.not_http());
            }
            let Some(end) = self.scan_head()? else {
                return Ok(ProxyStep::NeedMore);
            };
            let head = self.buf[..end].to_vec();
            let mut lines = head
                .split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
            let (code, reason) = parse_status_line(lines.next().unwrap_or_default())
                .ok_or_else(|| self.not_http())?;
            if (100..200).contains(&code) && code != 101 {
                // An interim reply: the real one follows.
                self.buf.drain(..end);
                self.scanned = 0;
                self.line_start = 0;
                continue;
            }
            if (200..300).contains(&code) {
                // RFC 9110: a 2xx reply to CONNECT has no body, whatever
                // its headers say; what follows is the tunnel.
                let leftover = self.buf.split_off(end);
                self.buf.clear();
                return Ok(ProxyStep::Done { leftover });
            }
            let headers: Vec<&[u8]> = lines.filter(|l| !l.is_empty()).collect();
            return Err(self.http_failure(code, &reason, &headers));
        }
    }

    /// Finds the end of the reply head (just past its blank line), scanning
    /// only new bytes. Lines may end in CRLF or a bare LF.
    fn scan_head(&mut self) -> Result<Option<usize>, MailError> {
        let mut found = None;
        while self.scanned < self.buf.len() {
            let i = self.scanned;
            self.scanned += 1;
            if self.buf[i] != b'\n' {
                continue;
            }
            let line = &self.buf[self.line_start..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if self.line_start == 0 && parse_status_line(line).is_none() {
                return Err(self.not_http());
            }
            if line.is_empty() {
                found = Some(i + 1);
                break;
            }
            self.line_start = i + 1;
        }
        let limit = found.unwrap_or(self.buf.len());
        if limit > MAX_HTTP_REPLY_HEAD {
            return Err(MailError::ProxyFailed(format!(
                "the reply of the proxy {} to CONNECT has a head over {} KiB",
                self.proxy,
                MAX_HTTP_REPLY_HEAD / 1024
            )));
        }
        Ok(found)
    }

    /// The status of a reply whose head is still incomplete.
    fn http_status_so_far(&self) -> Option<(u16, String)> {
        let nl = self.buf.iter().position(|&b| b == b'\n')?;
        let line = &self.buf[..nl];
        parse_status_line(line.strip_suffix(b"\r").unwrap_or(line))
    }

    fn http_failure(&self, code: u16, reason: &str, headers: &[&[u8]]) -> MailError {
        let status = if reason.is_empty() {
            format!("HTTP {code}")
        } else {
            format!("HTTP {code} {reason}")
        };
        // 407 is the standard answer; tinyproxy answers wrong credentials
        // with 401 and WWW-Authenticate. Before the tunnel is up every
        // reply comes from the proxy, so both mean "credentials refused".
        if code != 407 && code != 401 {
            return MailError::ProxyFailed(format!(
                "{status} from the proxy {} for CONNECT {}",
                self.proxy, self.target
            ));
        }
        let challenges: Vec<String> = headers
            .iter()
            .filter_map(|h| {
                let colon = h.iter().position(|&b| b == b':')?;
                let name = &h[..colon];
                (name.eq_ignore_ascii_case(b"proxy-authenticate")
                    || name.eq_ignore_ascii_case(b"www-authenticate"))
                .then(|| quoted(&h[colon + 1..]))
            })
            .filter(|c| !c.is_empty())
            .collect();
        let basic_offered = challenges.is_empty()
            || challenges.iter().any(|c| {
                c.split(',')
                    .any(|part| part.trim_start().to_ascii_lowercase().starts_with("basic"))
            });
        let mut detail = match (&self.credentials, basic_offered) {
            (None, _) => {
                "the proxy requires credentials (write user:password@ before the proxy host)"
                    .to_string()
            }
            (Some((u, _)), true) => {
                format!("the user name {u:?} or its password was not accepted")
            }
            (Some(_), false) => {
                "the proxy does not offer Basic authentication, the only scheme supported"
                    .to_string()
            }
        };
        if !challenges.is_empty() {
            detail.push_str(&format!("; it asks for: {}", challenges.join(" | ")));
        }
        MailError::ProxyAuth(format!("{status} from the proxy {}: {detail}", self.proxy))
    }

    // ---- SOCKS5 ----

    fn not_socks(&self, what: &str) -> MailError {
        let hint = if self.buf.starts_with(b"H") {
            " (it answered in HTTP: use http:// for this proxy)"
        } else {
            ""
        };
        MailError::ProxyFailed(format!(
            "the proxy {} is not speaking SOCKS5: {what}{hint}",
            self.proxy
        ))
    }

    /// A two-byte reply that must be the whole of what the proxy sent.
    fn take_pair(&mut self, what: &str) -> Result<Option<[u8; 2]>, MailError> {
        if self.buf.len() < 2 {
            return Ok(None);
        }
        if self.buf.len() > 2 {
            return Err(MailError::ProxyFailed(format!(
                "the proxy {} sent more than its {what} before hearing from us",
                self.proxy
            )));
        }
        let pair = [self.buf[0], self.buf[1]];
        Ok(Some(pair))
    }

    fn socks_method(&mut self) -> Result<ProxyStep, MailError> {
        if self.buf[0] != 5 {
            let first = self.buf[0];
            return Err(self.not_socks(&format!(
                "its first reply byte is 0x{first:02x}, not version 5"
            )));
        }
        let Some([_, method]) = self.take_pair("method choice")? else {
            return Ok(ProxyStep::NeedMore);
        };
        self.buf.clear();
        match (method, &self.credentials) {
            (0x00, _) => {
                self.state = State::SocksReply;
                Ok(ProxyStep::Send(self.socks_connect()))
            }
            (0x02, Some((u, p))) => {
                // RFC 1929; lengths were checked by parse_proxy, clamp anyway.
                let (u, p) = (&u.as_bytes()[..u.len().min(255)], &p.as_bytes()[..p.len().min(255)]);
                let mut m = Vec::with_capacity(3 + u.len() + p.len());
                m.push(1);
                m.push(u.len() as u8);
                m.extend_from_slice(u);
                m.push(p.len() as u8);
                m.extend_from_slice(p);
                self.state = State::SocksAuth;
                Ok(ProxyStep::Send(m))
            }
            (0xFF, None) => Err(MailError::ProxyAuth(format!(
                "the SOCKS5 proxy {} requires authentication (write user:password@ before the proxy host)",
                self.proxy
            ))),
            (0xFF, Some(_)) => Err(MailError::ProxyFailed(format!(
                "the SOCKS5 proxy {} accepts none of the offered authentication methods \
                 (none, user name and password)",
                self.proxy
            ))),
            (m, _) => Err(MailError::ProxyFailed(format!(
                "the SOCKS5 proxy {} chose authentication method 0x{m:02x}, which was not offered",
                self.proxy
            ))),
        }
    }

    fn socks_auth(&mut self) -> Result<ProxyStep, MailError> {
        // RFC 1929 says version 1; some servers answer with 5.
        if !matches!(self.buf[0], 1 | 5) {
            let first = self.buf[0];
            return Err(MailError::ProxyFailed(format!(
                "the SOCKS5 proxy {} answered the user name and password with version 0x{first:02x}, not 1",
                self.proxy
            )));
        }
        let Some([_, status]) = self.take_pair("authentication reply")? else {
            return Ok(ProxyStep::NeedMore);
        };
        self.buf.clear();
        if status != 0 {
            let user = self.credentials.as_ref().map(|(u, _)| u.as_str());
            return Err(MailError::ProxyAuth(format!(
                "the SOCKS5 proxy {} refused the user name {:?} or its password (status {status})",
                self.proxy,
                user.unwrap_or_default()
            )));
        }
        self.state = State::SocksReply;
        Ok(ProxyStep::Send(self.socks_connect()))
    }

    fn socks_connect(&self) -> Vec<u8> {
        let mut m = vec![5, 0x01, 0x00];
        match &self.target.host {
            Host::Ip(IpAddr::V4(ip)) => {
                m.push(1);
                m.extend_from_slice(&ip.octets());
            }
            Host::Ip(IpAddr::V6(ip)) => {
                m.push(4);
                m.extend_from_slice(&ip.octets());
            }
            Host::Name(n) => {
                // parse_server keeps names within 253 bytes.
                let n = &n.as_bytes()[..n.len().min(255)];
                m.push(3);
                m.push(n.len() as u8);
                m.extend_from_slice(n);
            }
        }
        m.extend_from_slice(&self.target.port.to_be_bytes());
        m
    }

    fn socks_reply(&mut self) -> Result<ProxyStep, MailError> {
        if self.buf[0] != 5 {
            let first = self.buf[0];
            return Err(self.not_socks(&format!(
                "its reply to CONNECT starts with 0x{first:02x}, not version 5"
            )));
        }
        if self.buf.len() < 2 {
            return Ok(ProxyStep::NeedMore);
        }
        let rep = self.buf[1];
        if rep != 0 {
            return Err(MailError::ProxyFailed(format!(
                "the SOCKS5 proxy {} could not connect to {}: {} (reply {rep})",
                self.proxy,
                self.target,
                socks_reply_text(rep)
            )));
        }
        if self.buf.len() < 4 {
            return Ok(ProxyStep::NeedMore);
        }
        // VER REP RSV ATYP BND.ADDR BND.PORT
        let addr_len = match self.buf[3] {
            1 => 4,
            4 => 16,
            3 => match self.buf.get(4) {
                Some(&n) => 1 + n as usize,
                None => return Ok(ProxyStep::NeedMore),
            },
            other => {
                return Err(MailError::ProxyFailed(format!(
                    "the SOCKS5 proxy {} sent a reply with unknown address type {other}",
                    self.proxy
                )))
            }
        };
        let total = 4 + addr_len + 2;
        if self.buf.len() < total {
            return Ok(ProxyStep::NeedMore);
        }
        let leftover = self.buf.split_off(total);
        self.buf.clear();
        Ok(ProxyStep::Done { leftover })
    }
}

/// `HTTP/1.x NNN[ reason]` → (NNN, printable reason).
fn parse_status_line(line: &[u8]) -> Option<(u16, String)> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (&minor, rest) = rest.split_first()?;
    if !minor.is_ascii_digit() {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = std::str::from_utf8(&rest[..3]).ok()?.parse().ok()?;
    let reason = match &rest[3..] {
        [] => "",
        [b' ', r @ ..] => return Some((code, quoted(r))),
        _ => return None,
    };
    Some((code, reason.to_string()))
}

/// Proxy-supplied text, trimmed, control characters replaced and length
/// capped, for an error message.
fn quoted(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let mut out: String = s
        .trim()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_QUOTED)
        .collect();
    if s.trim().chars().count() > MAX_QUOTED {
        out.push_str("...");
    }
    out
}

/// RFC 1928 section 6.
fn socks_reply_text(rep: u8) -> String {
    match rep {
        1 => "general SOCKS server failure".into(),
        2 => "connection not allowed by ruleset".into(),
        3 => "network unreachable".into(),
        4 => "host unreachable".into(),
        5 => "connection refused".into(),
        6 => "TTL expired".into(),
        7 => "command not supported".into(),
        8 => "address type not supported".into(),
        n => format!("unassigned failure code 0x{n:02x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const PASS: &str = "Sekr1t-pw";

    fn spec(url: &str) -> ProxySpec {
        parse_proxy(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn refused(url: &str) -> String {
        match parse_proxy(url) {
            Err(MailError::BadValue(m)) => {
                assert!(!m.contains(PASS), "{m}");
                m
            }
            other => panic!("{url}: {other:?}"),
        }
    }

    fn target(s: &str) -> ServerAddr {
        parse_server(s, 993).unwrap()
    }

    fn name(n: &str) -> Host {
        Host::Name(n.into())
    }

    fn secret_free(e: &MailError) {
        let text = format!("{e} {e:?}");
        assert!(!text.contains(PASS), "{text}");
    }

    // ---- parsing ----

    #[test]
    fn parses_http_and_socks() {
        let s = spec("http://proxy.example.com");
        assert_eq!(s.kind, ProxyKind::Http);
        assert_eq!(s.host, name("proxy.example.com"));
        assert_eq!(s.port, 3128);
        assert_eq!((s.username, s.password), (None, None));

        let s = spec("socks5://proxy.example.com");
        assert_eq!((s.kind, s.port), (ProxyKind::Socks5, 1080));
        let s = spec("socks5h://10.0.0.1:9050");
        assert_eq!(s.kind, ProxyKind::Socks5);
        assert_eq!(s.host, Host::Ip(Ipv4Addr::new(10, 0, 0, 1).into()));
        assert_eq!(s.port, 9050);
        let s = spec("  HTTP://Proxy.Example.COM:8080/ ");
        assert_eq!((s.kind, s.port), (ProxyKind::Http, 8080));
        assert_eq!(s.host, name("proxy.example.com"));
        assert_eq!(s.server_addr().to_string(), "proxy.example.com:8080");
    }

    #[test]
    fn parses_ipv6_and_idn() {
        let s = spec("socks5://[::1]:1081");
        assert_eq!(s.host, Host::Ip(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(s.port, 1081);
        assert_eq!(s.to_string(), "socks5://[::1]:1081");
        let s = spec("http://[2001:db8::2]");
        assert_eq!(s.port, 3128);
        assert_eq!(s.to_string(), "http://[2001:db8::2]:3128");
        let s = spec("http://bücher.example:3128");
        assert_eq!(s.host, name("xn--bcher-kva.example"));
    }

    #[test]
    fn parses_and_decodes_credentials() {
        let s = spec("http://alice:s3cret@proxy:3128");
        assert_eq!(s.username.as_deref(), Some("alice"));
        assert_eq!(s.password.as_deref(), Some("s3cret"));
        let s = spec("socks5://bob@proxy");
        assert_eq!(s.username.as_deref(), Some("bob"));
        assert_eq!(s.password, None);
        let s = spec("socks5://a%40b.c:p%3Aw%2F%40%25%20x%C3%A4@proxy");
        assert_eq!(s.username.as_deref(), Some("a@b.c"));
        assert_eq!(s.password.as_deref(), Some("p:w/@% xä"));
        // The last '@' ends the credentials; a ':' in the password is fine.
        let s = spec("http://u:p@ss:w@[::1]:8080");
        assert_eq!(s.password.as_deref(), Some("p@ss:w"));
        assert_eq!(s.host, Host::Ip(Ipv6Addr::LOCALHOST.into()));
        let s = spec("socks5://u:@proxy");
        assert_eq!(s.password.as_deref(), Some(""));
        // SOCKS5 limits are per field: 255 bytes is fine.
        let long = "x".repeat(255);
        let s = spec(&format!("socks5://{long}:{long}@proxy"));
        assert_eq!(s.username.unwrap().len(), 255);
        // HTTP has no such limit.
        let s = spec(&format!("http://{}:{PASS}@proxy", "y".repeat(300)));
        assert_eq!(s.username.unwrap().len(), 300);
    }

    #[test]
    fn refuses_bad_addresses() {
        for url in [
            "",
            "   ",
            "proxy.example.com:3128",
            "//proxy:3128",
            "://proxy",
            "https://proxy:3128",
            "socks4://proxy",
            "socks4a://proxy",
            "ftp://proxy",
            "http://",
            "http:///",
            "http://:3128",
            "http://proxy:99999",
            "http://proxy:port",
            "http://proxy:3128/path",
            "http://proxy:3128?x=1",
            "http://proxy#frag",
            "http://pro xy",
            "http://proxy\r\nX-Injected: 1",
            "http://[::1",
            "http://[zz::1]:80",
            "http://bad_host!",
            "socks5:/proxy",
        ] {
            let m = refused(url);
            assert!(m.starts_with("proxy address: "), "{url}: {m}");
        }
        assert!(refused("https://p").contains("not supported"));
        assert!(refused("gopher://p").contains("\"gopher\""));
    }

    #[test]
    fn refuses_bad_credentials_without_quoting_them() {
        let cases = [
            format!("http://:{PASS}@proxy"),
            "http://@proxy".to_string(),
            format!("http://u%0D:{PASS}@proxy"),
            format!("http://u:{PASS}%0A@proxy"),
            format!("socks5://u:{PASS}%00@proxy"),
            format!("http://u:{PASS}%zz@proxy"),
            format!("http://u:{PASS}%4@proxy"),
            format!("http://u:{PASS}%FF@proxy"),
            format!("http://u%3Av:{PASS}@proxy"),
            format!("socks5://{}:{PASS}@proxy", "u".repeat(256)),
            format!("socks5://u:{PASS}{}@proxy", "p".repeat(250)),
            format!("http://u:{PASS}@proxy/x"),
            format!("http://u:{PASS}/x@proxy"),
            format!("http://u:{PASS} @proxy"),
            format!("http://u:{PASS}@proxy:http"),
            format!("http://u:{PASS}@"),
            format!("https://u:{PASS}@proxy"),
            format!("u:{PASS}@proxy"),
        ];
        for url in &cases {
            refused(url);
        }
        assert!(refused(&cases[0]).contains("user name"));
        assert!(refused(&cases[4]).contains("CR, LF or NUL"));
        assert!(refused(&cases[5]).contains("two hex digits"));
        assert!(refused(&cases[8]).contains("':'"));
        assert!(refused(&cases[9]).contains("255"));
    }

    #[test]
    fn debug_and_display_hide_the_password() {
        let s = spec(&format!("socks5h://alice:{PASS}@proxy:1081"));
        assert_eq!(s.to_string(), "socks5://proxy:1081");
        let d = format!("{s:?} {s:#?}");
        assert!(!d.contains(PASS), "{d}");
        assert!(d.contains("<redacted>") && d.contains("alice"), "{d}");
        let s = spec("http://proxy");
        assert_eq!(s.to_string(), "http://proxy:3128");
        assert!(format!("{s:?}").contains("password: None"));
        let h = ProxyHandshake::new(
            &spec(&format!("http://alice:{PASS}@proxy")),
            &target("imap.example.com"),
        );
        assert!(!format!("{h:?}").contains(PASS));
    }

    // ---- HTTP CONNECT ----

    fn http(url: &str, to: &str) -> ProxyHandshake {
        ProxyHandshake::new(&spec(url), &target(to))
    }

    /// Feeds `reply` one byte at a time; every byte but the last must ask for more.
    fn bytewise(h: &mut ProxyHandshake, reply: &[u8]) -> Result<ProxyStep, MailError> {
        for (i, b) in reply.iter().enumerate() {
            let step = h.on_bytes(&[*b])?;
            if i + 1 < reply.len() {
                assert_eq!(step, ProxyStep::NeedMore, "at byte {i}");
            } else {
                return Ok(step);
            }
        }
        panic!("empty reply")
    }

    #[test]
    fn http_request_bytes() {
        let mut h = http("http://proxy", "imap.example.com:993");
        assert_eq!(
            h.initial(),
            b"CONNECT imap.example.com:993 HTTP/1.1\r\nHost: imap.example.com:993\r\n\r\n"
        );
        assert_eq!(h.initial(), b"");
        let mut h = http("http://alice:s3cret@proxy", "[2001:db8::1]:587");
        assert_eq!(
            h.initial(),
            b"CONNECT [2001:db8::1]:587 HTTP/1.1\r\nHost: [2001:db8::1]:587\r\n\
              Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n"
        );
        // A user name alone is sent with an empty password.
        let mut h = http("http://alice@proxy", "192.0.2.7:143");
        assert_eq!(
            h.initial(),
            b"CONNECT 192.0.2.7:143 HTTP/1.1\r\nHost: 192.0.2.7:143\r\n\
              Proxy-Authorization: Basic YWxpY2U6\r\n\r\n"
        );
    }

    #[test]
    fn http_200_split_byte_by_byte() {
        let mut h = http("http://proxy", "imap.example.com");
        h.initial();
        let reply = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: tinyproxy/1.11.1\r\n\
                      Content-Length: 12\r\n\r\n";
        assert_eq!(
            bytewise(&mut h, reply).unwrap(),
            ProxyStep::Done { leftover: vec![] }
        );
        assert!(matches!(h.on_bytes(b"x"), Err(MailError::Internal(_))));
    }

    #[test]
    fn http_200_variants_and_leftover() {
        let mut h = http("http://proxy", "imap.example.com");
        h.initial();
        assert_eq!(
            h.on_bytes(b"HTTP/1.0 200\r\n\r\n* OK IMAP ready\r\n")
                .unwrap(),
            ProxyStep::Done {
                leftover: b"* OK IMAP ready\r\n".to_vec()
            }
        );
        // Bare LF line ends, an interim 100 reply, and leftover in pieces.
        let mut h = http("http://proxy", "imap.example.com");
        h.initial();
        assert_eq!(
            h.on_bytes(b"HTTP/1.1 100 Continue\n\nHTTP/1.1 2").unwrap(),
            ProxyStep::NeedMore
        );
        assert_eq!(
            h.on_bytes(b"04 OK\nX: y\n\n* OK").unwrap(),
            ProxyStep::Done {
                leftover: b"* OK".to_vec()
            }
        );
    }

    #[test]
    fn http_407() {
        let reply = b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                      Proxy-Authenticate: Basic realm=\"tinyproxy\"\r\n\
                      Content-Type: text/html\r\nContent-Length: 300\r\n\r\n<html>";
        let mut h = http("http://proxy:8888", "imap.example.com");
        h.initial();
        let e = bytewise(&mut h, reply).unwrap_err();
        let MailError::ProxyAuth(m) = &e else {
            panic!("{e:?}")
        };
        assert!(
            m.starts_with("HTTP 407 Proxy Authentication Required"),
            "{m}"
        );
        assert!(m.contains("requires credentials"), "{m}");
        assert!(m.contains("Basic realm=\"tinyproxy\""), "{m}");

        let mut h = http(&format!("http://alice:{PASS}@proxy"), "imap.example.com");
        h.initial();
        let e = h.on_bytes(reply).unwrap_err();
        secret_free(&e);
        assert!(
            matches!(&e, MailError::ProxyAuth(m) if m.contains("\"alice\"")),
            "{e:?}"
        );

        let mut h = http(&format!("http://alice:{PASS}@proxy"), "imap.example.com");
        h.initial();
        let e = h
            .on_bytes(b"HTTP/1.1 407 Nope\r\nProxy-Authenticate: NTLM\r\nProxy-Authenticate: Negotiate\r\n\r\n")
            .unwrap_err();
        assert!(
            matches!(&e, MailError::ProxyAuth(m) if m.contains("Basic") && m.contains("NTLM | Negotiate")),
            "{e:?}"
        );
        assert_eq!(e.code(), -1136);

        // tinyproxy's answer to a wrong password.
        let mut h = http(&format!("http://alice:{PASS}@proxy"), "imap.example.com");
        h.initial();
        let e = h
            .on_bytes(
                b"HTTP/1.0 401 Unauthorized\r\nServer: tinyproxy/1.11.1\r\n\
                  WWW-Authenticate: Basic realm=\"Tinyproxy\"\r\nConnection: close\r\n\r\n<?xml",
            )
            .unwrap_err();
        secret_free(&e);
        assert!(
            matches!(&e, MailError::ProxyAuth(m) if m.starts_with("HTTP 401 Unauthorized")
                && m.contains("\"alice\" or its password was not accepted")),
            "{e:?}"
        );
    }

    #[test]
    fn http_failures() {
        let mut h = http("http://proxy", "imap.example.com:993");
        h.initial();
        let e = h
            .on_bytes(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad")
            .unwrap_err();
        assert_eq!(
            e,
            MailError::ProxyFailed(
                "HTTP 502 Bad Gateway from the proxy http://proxy:3128 for CONNECT imap.example.com:993"
                    .into()
            )
        );
        assert_eq!(e.code(), -1135);
        let mut h = http("http://proxy", "imap.example.com:993");
        h.initial();
        let e = bytewise(&mut h, b"HTTP/1.0 403 Forbidden\r\n\r\n").unwrap_err();
        assert!(matches!(&e, MailError::ProxyFailed(m) if m.starts_with("HTTP 403 Forbidden")));
        assert!(matches!(h.on_bytes(b"x"), Err(MailError::Internal(_))));
    }

    #[test]
    fn http_garbage() {
        for garbage in [
            &b"SSH-2.0-OpenSSH\r\n"[..],
            b"* OK IMAP4rev1 ready\r\n",
            b"\x05\x00",
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1  200 OK\r\n\r\n",
            b"HTTP/1.1 200OK\r\n\r\n",
            b"\r\nHTTP/1.1 200 OK\r\n\r\n",
        ] {
            let mut h = http(&format!("http://u:{PASS}@proxy"), "imap.example.com");
            h.initial();
            let mut result = Ok(ProxyStep::NeedMore);
            for b in garbage {
                result = h.on_bytes(&[*b]);
                if result.is_err() {
                    break;
                }
            }
            let e = result.unwrap_err();
            secret_free(&e);
            assert!(
                matches!(&e, MailError::ProxyFailed(m) if m.contains("HTTP reply")),
                "{e:?}"
            );
        }
        // Garbage is noticed at its first byte.
        let mut h = http("http://proxy", "imap.example.com");
        h.initial();
        let e = h.on_bytes(b"\x05").unwrap_err();
        assert!(
            matches!(&e, MailError::ProxyFailed(m) if m.contains("socks5://")),
            "{e:?}"
        );
    }

    #[test]
    fn http_oversized_head() {
        let mut h = http("http://proxy", "imap.example.com");
        h.initial();
        assert_eq!(
            h.on_bytes(b"HTTP/1.1 200 OK\r\n").unwrap(),
            ProxyStep::NeedMore
        );
        let header = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut err = None;
        for _ in 0..1000 {
            match h.on_bytes(header) {
                Ok(ProxyStep::NeedMore) => {}
                Ok(other) => panic!("{other:?}"),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let e = err.expect("no cap");
        assert!(
            matches!(&e, MailError::ProxyFailed(m) if m.contains("16 KiB")),
            "{e:?}"
        );
        // One chunk holding a complete but oversized head is refused too.
        let mut h = http("http://proxy", "imap.example.com");
        h.initial();
        let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
        while reply.len() <= MAX_HTTP_REPLY_HEAD {
            reply.extend_from_slice(header);
        }
        reply.extend_from_slice(b"\r\n");
        assert!(h.on_bytes(&reply).is_err());
        // A head just within the cap passes, with a large leftover.
        let mut h = http("http://proxy", "imap.example.com");
        h.initial();
        let mut reply = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        reply.resize(MAX_HTTP_REPLY_HEAD - 4, b'a');
        reply.extend_from_slice(b"\r\n\r\n");
        reply.resize(reply.len() + 100_000, b'z');
        match h.on_bytes(&reply).unwrap() {
            ProxyStep::Done { leftover } => assert_eq!(leftover.len(), 100_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_close_mid_reply() {
        let mut h = http("http://proxy", "imap.example.com");
        h.initial();
        h.on_bytes(b"HTTP/1.1 407 Proxy Auth").unwrap();
        assert!(matches!(h.on_close(), MailError::ProxyFailed(m) if m.contains("closed")));
        let mut h = http("http://proxy", "imap.example.com");
        h.initial();
        h.on_bytes(b"HTTP/1.1 407 Proxy Auth\r\nX").unwrap();
        assert!(matches!(h.on_close(), MailError::ProxyAuth(_)));
        let mut h = http("http://proxy", "imap.example.com");
        h.initial();
        assert!(matches!(h.on_close(), MailError::ProxyFailed(_)));
    }

    #[test]
    fn feeding_before_initial_is_a_bug() {
        let mut h = http("http://proxy", "imap.example.com");
        assert!(matches!(
            h.on_bytes(b"HTTP/1.1 200 OK\r\n\r\n"),
            Err(MailError::Internal(_))
        ));
    }

    // ---- SOCKS5 ----

    fn socks(url: &str, to: &str) -> ProxyHandshake {
        ProxyHandshake::new(&spec(url), &target(to))
    }

    /// Runs the handshake up to the CONNECT request and returns it.
    fn to_connect(h: &mut ProxyHandshake) -> Vec<u8> {
        assert_eq!(h.initial(), [5, 1, 0]);
        match h.on_bytes(&[5, 0]).unwrap() {
            ProxyStep::Send(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn socks_connect_bytes() {
        let mut h = socks("socks5://proxy", "imap.example.com:993");
        let mut want = vec![5, 1, 0, 3, 16];
        want.extend_from_slice(b"imap.example.com");
        want.extend_from_slice(&[0x03, 0xE1]);
        assert_eq!(to_connect(&mut h), want);

        let mut h = socks("socks5://proxy", "192.0.2.7:143");
        assert_eq!(to_connect(&mut h), [5, 1, 0, 1, 192, 0, 2, 7, 0, 143]);

        let mut h = socks("socks5://proxy", "[2001:db8::1]:587");
        let mut want = vec![5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8];
        want.extend_from_slice(&[0; 11]);
        want.extend_from_slice(&[1, 0x02, 0x4B]);
        assert_eq!(to_connect(&mut h), want);
    }

    #[test]
    fn socks_with_credentials() {
        let mut h = socks("socks5://alice:s3cret@proxy", "192.0.2.7:25");
        assert_eq!(h.initial(), [5, 2, 0, 2]);
        assert_eq!(h.on_bytes(&[5]).unwrap(), ProxyStep::NeedMore);
        assert_eq!(
            h.on_bytes(&[2]).unwrap(),
            ProxyStep::Send(b"\x01\x05alice\x06s3cret".to_vec())
        );
        assert_eq!(h.on_bytes(&[1]).unwrap(), ProxyStep::NeedMore);
        assert_eq!(
            h.on_bytes(&[0]).unwrap(),
            ProxyStep::Send(vec![5, 1, 0, 1, 192, 0, 2, 7, 0, 25])
        );
        assert_eq!(
            h.on_bytes(&[5, 0, 0, 1, 127, 0, 0, 1, 0x9c, 0x40, b'2'])
                .unwrap(),
            ProxyStep::Done {
                leftover: b"2".to_vec()
            }
        );
        // The proxy may still choose no authentication.
        let mut h = socks("socks5://alice:s3cret@proxy", "imap.example.com");
        h.initial();
        assert!(
            matches!(h.on_bytes(&[5, 0]).unwrap(), ProxyStep::Send(m) if m[..4] == [5, 1, 0, 3])
        );
        // No password: an empty one.
        let mut h = socks("socks5://alice@proxy", "imap.example.com");
        h.initial();
        assert_eq!(
            h.on_bytes(&[5, 2]).unwrap(),
            ProxyStep::Send(b"\x01\x05alice\x00".to_vec())
        );
        // Some servers answer the sub-negotiation with version 5.
        assert!(matches!(h.on_bytes(&[5, 0]).unwrap(), ProxyStep::Send(_)));
    }

    #[test]
    fn socks_success_replies_byte_by_byte() {
        let mut domain = vec![5, 0, 0, 3, 11];
        domain.extend_from_slice(b"example.net");
        domain.extend_from_slice(&[0, 80]);
        let mut v6 = vec![5, 0, 0, 4];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[0x04, 0x38]);
        for reply in [vec![5, 0, 0, 1, 10, 1, 2, 3, 0x30, 0x39], v6, domain] {
            let mut h = socks("socks5://proxy", "imap.example.com");
            to_connect(&mut h);
            assert_eq!(
                bytewise(&mut h, &reply).unwrap(),
                ProxyStep::Done { leftover: vec![] }
            );
            // Leftover after the bound address is kept.
            let mut h = socks("socks5://proxy", "imap.example.com");
            to_connect(&mut h);
            let mut with_greeting = reply.clone();
            with_greeting.extend_from_slice(b"* OK ready\r\n");
            assert_eq!(
                h.on_bytes(&with_greeting).unwrap(),
                ProxyStep::Done {
                    leftover: b"* OK ready\r\n".to_vec()
                }
            );
        }
    }

    #[test]
    fn socks_failure_codes() {
        let texts = [
            "general SOCKS server failure",
            "connection not allowed by ruleset",
            "network unreachable",
            "host unreachable",
            "connection refused",
            "TTL expired",
            "command not supported",
            "address type not supported",
            "unassigned failure code 0x09",
        ];
        for (i, text) in texts.iter().enumerate() {
            let rep = i as u8 + 1;
            let mut h = socks(
                &format!("socks5://u:{PASS}@proxy:1080"),
                "imap.example.com:993",
            );
            h.initial();
            assert!(matches!(h.on_bytes(&[5, 2]).unwrap(), ProxyStep::Send(_)));
            assert!(matches!(h.on_bytes(&[1, 0]).unwrap(), ProxyStep::Send(_)));
            // Failure is known from the first two bytes.
            let e = bytewise(&mut h, &[5, rep]).unwrap_err();
            secret_free(&e);
            assert_eq!(
                e,
                MailError::ProxyFailed(format!(
                    "the SOCKS5 proxy socks5://proxy:1080 could not connect to \
                     imap.example.com:993: {text} (reply {rep})"
                ))
            );
        }
    }

    #[test]
    fn socks_auth_refusals() {
        let mut h = socks(&format!("socks5://alice:{PASS}@proxy"), "imap.example.com");
        h.initial();
        h.on_bytes(&[5, 2]).unwrap();
        let e = h.on_bytes(&[1, 1]).unwrap_err();
        secret_free(&e);
        assert!(
            matches!(&e, MailError::ProxyAuth(m) if m.contains("\"alice\"")),
            "{e:?}"
        );

        // 0xFF without credentials: the proxy wants some.
        let mut h = socks("socks5://proxy", "imap.example.com");
        h.initial();
        let e = h.on_bytes(&[5, 0xFF]).unwrap_err();
        assert!(
            matches!(&e, MailError::ProxyAuth(m) if m.contains("requires authentication")),
            "{e:?}"
        );
        // 0xFF with credentials: it wants something else than user/pass.
        let mut h = socks(&format!("socks5://alice:{PASS}@proxy"), "imap.example.com");
        h.initial();
        let e = h.on_bytes(&[5, 0xFF]).unwrap_err();
        secret_free(&e);
        assert!(
            matches!(&e, MailError::ProxyFailed(m) if m.contains("none of the offered")),
            "{e:?}"
        );
        // A method that was not offered.
        for (url, m) in [("socks5://proxy", 2u8), ("socks5://u:p@proxy", 1)] {
            let mut h = socks(url, "imap.example.com");
            h.initial();
            let e = h.on_bytes(&[5, m]).unwrap_err();
            assert!(
                matches!(&e, MailError::ProxyFailed(t) if t.contains("not offered")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn socks_protocol_violations() {
        // Wrong version in the method choice, noticed at once.
        let mut h = socks("socks5://proxy", "imap.example.com");
        h.initial();
        let e = h.on_bytes(&[4]).unwrap_err();
        assert!(
            matches!(&e, MailError::ProxyFailed(m) if m.contains("0x04")),
            "{e:?}"
        );
        // An HTTP proxy answering the greeting.
        let mut h = socks("socks5://proxy", "imap.example.com");
        h.initial();
        let e = h.on_bytes(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap_err();
        assert!(
            matches!(&e, MailError::ProxyFailed(m) if m.contains("use http://")),
            "{e:?}"
        );
        // Wrong version in the sub-negotiation reply.
        let mut h = socks(&format!("socks5://u:{PASS}@proxy"), "imap.example.com");
        h.initial();
        h.on_bytes(&[5, 2]).unwrap();
        let e = h.on_bytes(&[2, 0]).unwrap_err();
        secret_free(&e);
        assert!(matches!(e, MailError::ProxyFailed(_)));
        // Wrong version in the CONNECT reply.
        let mut h = socks("socks5://proxy", "imap.example.com");
        to_connect(&mut h);
        let e = h.on_bytes(&[4, 0, 0, 1]).unwrap_err();
        assert!(
            matches!(&e, MailError::ProxyFailed(m) if m.contains("not version 5")),
            "{e:?}"
        );
        // Unknown address type in the reply.
        let mut h = socks("socks5://proxy", "imap.example.com");
        to_connect(&mut h);
        let e = h.on_bytes(&[5, 0, 0, 7, 1, 2, 3]).unwrap_err();
        assert!(
            matches!(&e, MailError::ProxyFailed(m) if m.contains("address type 7")),
            "{e:?}"
        );
        // More than the method choice before we sent anything else.
        let mut h = socks("socks5://proxy", "imap.example.com");
        h.initial();
        let e = h.on_bytes(&[5, 0, 5]).unwrap_err();
        assert!(
            matches!(&e, MailError::ProxyFailed(m) if m.contains("more than")),
            "{e:?}"
        );
        assert!(matches!(h.on_bytes(&[0]), Err(MailError::Internal(_))));
    }

    #[test]
    fn socks_close() {
        let mut h = socks("socks5://u:p@proxy", "imap.example.com");
        h.initial();
        h.on_bytes(&[5, 2]).unwrap();
        assert!(matches!(h.on_close(), MailError::ProxyFailed(m) if m.contains("refused")));
    }
}
