//! The floor: a minimal IMAP client. TCP_NODELAY, one write per flight,
//! the capabilities from the greeting (no CAPABILITY command, not even
//! after STARTTLS), blocking I/O on the calling thread, OpenSSL directly.

use openssl::ssl::{SslConnector, SslMethod, SslSession, SslSessionCacheMode, SslStream};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Security {
    Plain,
    StartTls,
    Implicit,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mech {
    CramMd5,
    Login,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
    /// While the plain stream moves into the TLS layer.
    Gone,
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Gone => Err(std::io::Error::other("no stream")),
        }
    }
    fn write_flight(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes),
            Stream::Tls(s) => s.write_all(bytes),
            Stream::Gone => Err(std::io::Error::other("no stream")),
        }
    }
}

pub struct Floor {
    connector: SslConnector,
    /// The last session the server gave us, for `resume`.
    saved: Arc<Mutex<Option<SslSession>>>,
}

pub struct Outcome {
    pub resumed: bool,
}

impl Floor {
    pub fn new(ca: &Path) -> Floor {
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        b.set_ca_file(ca).unwrap();
        let saved: Arc<Mutex<Option<SslSession>>> = Arc::default();
        let keep = saved.clone();
        b.set_session_cache_mode(SslSessionCacheMode::CLIENT | SslSessionCacheMode::NO_INTERNAL);
        b.set_new_session_callback(move |_, s| *keep.lock().unwrap() = Some(s));
        Floor {
            connector: b.build(),
            saved,
        }
    }

    fn handshake(&self, tcp: TcpStream, host: &str, resume: bool) -> std::io::Result<Stream> {
        let mut ssl = self.connector.configure().unwrap().into_ssl(host).unwrap();
        if resume {
            if let Some(s) = self.saved.lock().unwrap().take() {
                unsafe { ssl.set_session(&s) }.unwrap();
            }
        }
        let s = ssl
            .connect(tcp)
            .map_err(|e| std::io::Error::other(format!("TLS: {e}")))?;
        Ok(Stream::Tls(Box::new(s)))
    }

    /// Connect, authenticate, LOGOUT and close. `resume` offers the last
    /// session the server issued (full handshake otherwise).
    #[allow(clippy::too_many_arguments)]
    pub fn session(
        &self,
        addr: &str,
        tls_name: &str,
        tls: Security,
        mech: Mech,
        user: &str,
        pass: &str,
        resume: bool,
    ) -> std::io::Result<Outcome> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        let mut c = Conn {
            s: Stream::Plain(tcp),
            buf: Vec::with_capacity(4096),
            start: 0,
        };
        if tls == Security::Implicit {
            let Stream::Plain(t) = std::mem::replace(&mut c.s, Stream::Gone) else {
                unreachable!()
            };
            c.s = self.handshake(t, tls_name, resume)?;
        }
        let greeting = c.line()?;
        if !greeting.starts_with("* OK") {
            return Err(std::io::Error::other(format!("greeting: {greeting}")));
        }
        let caps = greeting.to_ascii_uppercase();
        let has = |cap: &str| caps.split([' ', ']', '[']).any(|w| w == cap);
        if tls == Security::StartTls {
            if !has("STARTTLS") {
                return Err(std::io::Error::other("no STARTTLS in the greeting"));
            }
            c.s.write_flight(b"F1 STARTTLS\r\n")?;
            c.tagged("F1")?;
            if c.start != c.buf.len() {
                return Err(std::io::Error::other("bytes after the STARTTLS reply"));
            }
            let Stream::Plain(t) = std::mem::replace(&mut c.s, Stream::Gone) else {
                unreachable!()
            };
            c.s = self.handshake(t, tls_name, resume)?;
        }
        let resumed = match &c.s {
            Stream::Tls(s) => s.ssl().session_reused(),
            _ => false,
        };
        // For profiling beside mailext, which asks again after STARTTLS
        // (RFC 9051 6.2.1) in the same flight as its AUTHENTICATE.
        let recap = tls == Security::StartTls
            && std::env::var("MAILEXT_BENCH_FLOOR_RECAP").is_ok_and(|v| v == "1");
        match mech {
            Mech::CramMd5 => {
                if !has("AUTH=CRAM-MD5") {
                    return Err(std::io::Error::other("no AUTH=CRAM-MD5 in the greeting"));
                }
                if recap {
                    c.s.write_flight(b"F4 CAPABILITY\r\nF2 AUTHENTICATE CRAM-MD5\r\n")?;
                    c.tagged("F4")?;
                } else {
                    c.s.write_flight(b"F2 AUTHENTICATE CRAM-MD5\r\n")?;
                }
                let ch = c.line()?;
                let ch = ch
                    .strip_prefix("+ ")
                    .ok_or_else(|| std::io::Error::other(format!("no challenge: {ch}")))?;
                let mut out = cram_md5(user, pass, ch.trim()).into_bytes();
                out.extend_from_slice(b"\r\n");
                c.s.write_flight(&out)?;
            }
            Mech::Login => {
                if has("LOGINDISABLED") {
                    return Err(std::io::Error::other("LOGINDISABLED"));
                }
                let line = format!("F2 LOGIN {} {}\r\n", quote(user), quote(pass));
                c.s.write_flight(line.as_bytes())?;
            }
        }
        let ok = c.tagged("F2")?;
        if !ok.starts_with("F2 OK") {
            return Err(std::io::Error::other(format!("login: {ok}")));
        }
        c.s.write_flight(b"F3 LOGOUT\r\n")?;
        c.tagged("F3")?;
        if let Stream::Tls(s) = &mut c.s {
            // close_notify: without it OpenSSL marks the session not resumable.
            let _ = s.shutdown();
        }
        Ok(Outcome { resumed })
    }
}

impl Floor {
    /// The fetch floor: implicit TLS, CRAM-MD5, SELECT, then `UID FETCH uid
    /// (BODY.PEEK[])` read into one reused 256 KiB buffer and thrown away.
    /// Returns (seconds from the FETCH to its tagged OK, literal bytes):
    /// how fast the server can send, with no client work to speak of.
    pub fn fetch_discard(
        &self,
        addr: &str,
        tls_name: &str,
        user: &str,
        pass: &str,
        mailbox: &str,
        uid: u32,
    ) -> std::io::Result<(f64, usize)> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        let mut c = Conn {
            s: self.handshake(tcp, tls_name, false)?,
            buf: Vec::with_capacity(4096),
            start: 0,
        };
        c.line()?;
        c.s.write_flight(b"F1 AUTHENTICATE CRAM-MD5\r\n")?;
        let ch = c.line()?;
        let ch = ch.strip_prefix("+ ").unwrap_or("").trim().to_string();
        let mut out = cram_md5(user, pass, &ch).into_bytes();
        out.extend_from_slice(b"\r\n");
        c.s.write_flight(&out)?;
        let ok = c.tagged("F1")?;
        if !ok.starts_with("F1 OK") {
            return Err(std::io::Error::other(format!("login: {ok}")));
        }
        c.s.write_flight(format!("F2 SELECT {}\r\n", quote(mailbox)).as_bytes())?;
        c.tagged("F2")?;
        let t0 = std::time::Instant::now();
        c.s.write_flight(format!("F3 UID FETCH {uid} (BODY.PEEK[])\r\n").as_bytes())?;
        let head = c.line()?;
        let size: usize = head
            .rsplit_once('{')
            .and_then(|(_, n)| n.strip_suffix('}'))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no literal: {head}")))?;
        let buffered = (c.buf.len() - c.start).min(size);
        c.start += buffered;
        let mut left = size - buffered;
        let mut chunk = vec![0u8; 256 * 1024];
        while left > 0 {
            let n = c.s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::other("server closed the connection"));
            }
            let body = n.min(left);
            left -= body;
            c.buf.extend_from_slice(&chunk[body..n]);
        }
        let ok = c.tagged("F3")?;
        let secs = t0.elapsed().as_secs_f64();
        if !ok.starts_with("F3 OK") {
            return Err(std::io::Error::other(format!("fetch: {ok}")));
        }
        c.s.write_flight(b"F4 LOGOUT\r\n")?;
        c.tagged("F4")?;
        Ok((secs, size))
    }
}

struct Conn {
    s: Stream,
    buf: Vec<u8>,
    start: usize,
}

impl Conn {
    fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = self.buf[self.start..].windows(2).position(|w| w == b"\r\n") {
                let l = String::from_utf8_lossy(&self.buf[self.start..self.start + i]).into_owned();
                self.start += i + 2;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                return Ok(l);
            }
            let mut chunk = [0u8; 8192];
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::other("server closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn tagged(&mut self, tag: &str) -> std::io::Result<String> {
        loop {
            let l = self.line()?;
            if l.starts_with(tag) && l.as_bytes().get(tag.len()) == Some(&b' ') {
                return Ok(l);
            }
        }
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The CRAM-MD5 response (RFC 2195) to a base64 challenge.
pub fn cram_md5(user: &str, pass: &str, challenge_b64: &str) -> String {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;
    let challenge = openssl::base64::decode_block(challenge_b64).unwrap_or_default();
    let key = PKey::hmac(pass.as_bytes()).unwrap();
    let mut signer = Signer::new(MessageDigest::md5(), &key).unwrap();
    signer.update(&challenge).unwrap();
    let mac = signer.sign_to_vec().unwrap();
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    openssl::base64::encode_block(format!("{user} {hex}").as_bytes())
}
