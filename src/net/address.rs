//! The `server[:port]` argument: host name, IPv4, or bracketed IPv6.

use crate::error::MailError;
use crossbeam_channel::Receiver;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// The form used for SNI and certificate checks.
    pub fn as_tls_name(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    pub host: Host,
    pub port: u16,
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Parses `server[:port]`; `default_port` applies when no port is given.
pub fn parse_server(input: &str, default_port: u16) -> Result<ServerAddr, MailError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(MailError::NoAddress);
    }
    let bad = |why: &str| MailError::BadAddress(format!("{why}: {s:?}"));
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| bad("missing ']' after an IPv6 address"))?;
        let ip: Ipv6Addr = rest[..close]
            .parse()
            .map_err(|_| bad("not an IPv6 address inside [ ]"))?;
        let after = &rest[close + 1..];
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("unexpected text after ']'"))?,
            ),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else if s.matches(':').count() > 1 {
        // A bare IPv6 address: no port can be told apart from it.
        let ip: Ipv6Addr = s
            .parse()
            .map_err(|_| bad("IPv6 addresses with a port must be written [addr]:port"))?;
        (Host::Ip(IpAddr::V6(ip)), None)
    } else {
        let (h, p) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if h.is_empty() {
            return Err(MailError::NoAddress);
        }
        let host = match h.parse::<Ipv4Addr>() {
            Ok(ip) => Host::Ip(IpAddr::V4(ip)),
            Err(_) => Host::Name(
                valid_name(&to_ascii(h).ok_or_else(|| bad("not a valid host name"))?)
                    .ok_or_else(|| bad("not a valid host name"))?,
            ),
        };
        (host, p)
    };
    // SocketTools: port 0 means the protocol's default.
    let port = match port {
        None => default_port,
        Some(p) => match parse_port(p)? {
            0 => default_port,
            n => n,
        },
    };
    Ok(ServerAddr { host, port })
}

fn parse_port(p: &str) -> Result<u16, MailError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MailError::BadPort(format!("{p:?} is not a port number")));
    }
    match p.parse::<u32>() {
        Ok(n) if n <= 65535 => Ok(n as u16),
        _ => Err(MailError::BadPort(format!("{p} is outside 0..65535"))),
    }
}

/// Internationalised names become their ASCII (punycode) form, which DNS
/// and certificates use.
fn to_ascii(h: &str) -> Option<String> {
    if h.is_ascii() {
        return Some(h.to_string());
    }
    idna::domain_to_ascii(h).ok()
}

/// An RFC 1123 name without a trailing dot: labels of 1 to 63 letters,
/// digits and `-` (not first or last), 253 bytes in all; `underscore`
/// also lets `_` through, as resolvers do.
pub fn is_dns_name(h: &str, underscore: bool) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (underscore && b == b'_'))
        })
}

/// RFC 1123 host names (underscores tolerated, as resolvers do).
fn valid_name(h: &str) -> Option<String> {
    let h = h.strip_suffix('.').unwrap_or(h);
    is_dns_name(h, true).then(|| h.to_ascii_lowercase())
}

/// Resolves the address within the deadline (configured overrides first).
/// Names are looked up on a helper thread because getaddrinfo has no
/// timeout of its own; IMAPCancel ends the wait.
pub fn resolve(
    addr: &ServerAddr,
    deadline: Instant,
    cancel: &Receiver<()>,
) -> Result<Vec<SocketAddr>, MailError> {
    if let Some(list) = crate::config::resolve_override(addr) {
        return Ok(list);
    }
    let name = match &addr.host {
        Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, addr.port)]),
        Host::Name(n) => n.clone(),
    };
    let port = addr.port;
    let (tx, rx) = crossbeam_channel::bounded(1);
    let lookup = name.clone();
    std::thread::Builder::new()
        .name("mailext-resolve".into())
        .spawn(move || {
            let _ = tx.send(
                (lookup.as_str(), port)
                    .to_socket_addrs()
                    .map(|i| i.collect::<Vec<_>>()),
            );
        })
        .map_err(|e| MailError::Internal(format!("cannot start the resolver thread: {e}")))?;
    let found = crossbeam_channel::select! {
        recv(rx) -> r => r,
        recv(cancel) -> _ => return Err(MailError::Cancelled("IMAPCancel was called".into())),
        recv(crossbeam_channel::at(deadline)) -> _ => {
            return Err(MailError::Timeout(format!("the address of {name}")))
        }
    };
    match found {
        Ok(Ok(list)) if !list.is_empty() => Ok(list),
        Ok(Ok(_)) => Err(MailError::HostNotFound(format!("{name} has no addresses"))),
        Ok(Err(e)) => Err(MailError::HostNotFound(format!("{name}: {e}"))),
        Err(_) => Err(MailError::Internal("the resolver thread ended".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str, d: u16) -> String {
        parse_server(s, d).unwrap().to_string()
    }
    fn code(s: &str) -> i32 {
        parse_server(s, 143).unwrap_err().code()
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(ok("imap.example.com", 143), "imap.example.com:143");
        assert_eq!(ok("Mail.Example.COM:1234", 143), "mail.example.com:1234");
        assert_eq!(ok("255.255.255.254", 993), "255.255.255.254:993");
        assert_eq!(ok("10.0.0.1:10143", 143), "10.0.0.1:10143");
        assert_eq!(ok("host:0", 143), "host:143");
        assert_eq!(ok("[::1]:993", 143), "[::1]:993");
        assert_eq!(ok("[::1]", 143), "[::1]:143");
        assert_eq!(ok("::1", 143), "[::1]:143");
        assert_eq!(ok("  localhost  ", 143), "localhost:143");
        assert_eq!(
            ok("mail.Bücher.example:993", 143),
            "mail.xn--bcher-kva.example:993"
        );
    }

    #[test]
    fn refused_forms() {
        assert_eq!(code(""), -511);
        assert_eq!(code("   "), -511);
        assert_eq!(code(":143"), -511);
        assert_eq!(code("host:"), -1102);
        assert_eq!(code("host:65536"), -1102);
        assert_eq!(code("host:12ab"), -1102);
        assert_eq!(code("host:-1"), -1102);
        assert_eq!(code("[::1"), -1101);
        assert_eq!(code("[nope]:1"), -1101);
        assert_eq!(code("[::1]x"), -1101);
        assert_eq!(code("bad host"), -1101);
        assert_eq!(code("a..b"), -1101);
        assert_eq!(code("-a.com"), -1101);
        assert_eq!(code("1:2:3"), -1101);
    }
}
