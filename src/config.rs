//! Process-wide settings, set with MailSetConfig and read with MailGetConfig.
//! commstimeout follows Omnis' WebDevSetConfig (0 means the default); the
//! rest are the ActiveX control's connect defaults (HostName, HostAddress,
//! RemotePort, UserName, Password, Timeout, Options) plus a default proxy
//! and resolver overrides. A password can be set but is never read back.

use crate::error::MailError;
use crate::net::address::ServerAddr;
use crate::options::ConnectOptions;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub const DEFAULT_COMMS_TIMEOUT_SECS: u64 = 60;
/// A day: longer is certainly a mistake in the caller's units.
pub const MAX_COMMS_TIMEOUT_SECS: u64 = 86_400;

static COMMS_TIMEOUT_SECS: AtomicU64 = AtomicU64::new(DEFAULT_COMMS_TIMEOUT_SECS);

/// The bound on every network wait.
pub fn comms_timeout() -> Duration {
    Duration::from_secs(COMMS_TIMEOUT_SECS.load(Ordering::Relaxed))
}

/// A setting's value as the host passes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Integer(i64),
    Text(String),
}

/// The connect defaults an omitted IMAPConnect / SMTPConnect argument takes.
#[derive(Clone, Default)]
pub struct Defaults {
    /// The server when IMAPConnect's is left out: the `hostname` setting,
    /// else the `hostaddress` one (see [`defaults`]).
    pub hostname: Option<String>,
    /// The `hostaddress` setting (ActiveX HostAddress): the server's IP address.
    pub hostaddress: Option<IpAddr>,
    pub remoteport: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The OAuth access token (ActiveX BearerToken) for XOAUTH2 / OAUTHBEARER.
    pub bearertoken: Option<String>,
    /// Seconds; None = commstimeout.
    pub timeout: Option<u64>,
    pub options: Option<Value>,
    pub tunnel: Option<String>,
    /// "host:port" -> addresses, consulted before DNS (like curl --resolve).
    /// Shared: every connect copies the defaults, and this table may be long.
    pub resolve: Arc<HashMap<String, Vec<IpAddr>>>,
}

static DEFAULTS: RwLock<Option<Defaults>> = RwLock::new(None);

/// The settings as they were set.
fn raw() -> Defaults {
    DEFAULTS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default()
}

/// The connect defaults, with `hostname` already falling back to
/// `hostaddress`: a host name given with `hostname` wins over the address.
pub fn defaults() -> Defaults {
    let mut d = raw();
    if d.hostname.is_none() {
        // In the form `server` takes: an IPv6 address in brackets.
        d.hostname = d.hostaddress.map(|ip| match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    d
}

fn update(f: impl FnOnce(&mut Defaults)) {
    let mut g = DEFAULTS.write().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(Default::default));
}

/// Addresses configured for `host:port`, if any.
pub fn resolve_override(addr: &ServerAddr) -> Option<Vec<SocketAddr>> {
    let d = DEFAULTS.read().unwrap_or_else(|p| p.into_inner());
    let map = &d.as_ref()?.resolve;
    if map.is_empty() {
        return None;
    }
    let ips = map.get(&addr.to_string())?;
    Some(
        ips.iter()
            .map(|ip| SocketAddr::new(*ip, addr.port))
            .collect(),
    )
}

/// The settings MailSetConfig / MailGetConfig know.
pub const NAMES: &[&str] = &[
    "commstimeout",
    "hostname",
    "hostaddress",
    "remoteport",
    "username",
    "password",
    "bearertoken",
    "timeout",
    "options",
    "tunnel",
    "resolve",
];

fn integer(name: &str, v: &Value) -> Result<i64, MailError> {
    match v {
        Value::Integer(n) => Ok(*n),
        Value::Text(_) => Err(MailError::BadValue(format!("{name} must be an Integer"))),
    }
}

fn text(name: &str, v: Value) -> Result<Option<String>, MailError> {
    match v {
        Value::Text(s) if s.is_empty() => Ok(None),
        Value::Text(s) => Ok(Some(s)),
        Value::Integer(_) => Err(MailError::BadValue(format!("{name} must be Character"))),
    }
}

fn seconds(name: &str, v: i64) -> Result<u64, MailError> {
    if v < 0 || v as u64 > MAX_COMMS_TIMEOUT_SECS {
        return Err(MailError::BadValue(format!(
            "{name} must be 0 (default) to {MAX_COMMS_TIMEOUT_SECS} seconds, not {v}"
        )));
    }
    Ok(v as u64)
}

pub fn set(name: &str, value: Value) -> Result<(), MailError> {
    let lower = name.to_ascii_lowercase();
    let n = lower.as_str();
    match n {
        "commstimeout" => {
            let secs = match seconds(n, integer(n, &value)?)? {
                0 => DEFAULT_COMMS_TIMEOUT_SECS,
                s => s,
            };
            COMMS_TIMEOUT_SECS.store(secs, Ordering::Relaxed);
        }
        "hostname" => {
            let v = text(n, value)?;
            if let Some(h) = &v {
                crate::net::address::parse_server(h, 1)?;
            }
            update(|d| d.hostname = v);
        }
        "hostaddress" => {
            let v = text(n, value)?.map(|a| host_address(&a)).transpose()?;
            update(|d| d.hostaddress = v);
        }
        "remoteport" => {
            let p = integer(n, &value)?;
            let port = match p {
                0 => None,
                1..=65535 => Some(p as u16),
                _ => return Err(MailError::BadPort(format!("{p} is outside 0..65535"))),
            };
            update(|d| d.remoteport = port);
        }
        "username" => {
            let v = text(n, value)?;
            update(|d| d.username = v);
        }
        "password" => {
            let v = text(n, value)?;
            update(|d| d.password = v);
        }
        "bearertoken" => {
            let v = text(n, value)?;
            update(|d| d.bearertoken = v);
        }
        "timeout" => {
            let s = seconds(n, integer(n, &value)?)?;
            update(|d| d.timeout = (s > 0).then_some(s));
        }
        "options" => {
            // Checked now, so a mistake shows where it is made.
            match &value {
                Value::Integer(b) => {
                    ConnectOptions::from_bits(*b)?;
                }
                Value::Text(t) => {
                    ConnectOptions::parse(t)?;
                }
            }
            let v = match value {
                Value::Integer(0) => None,
                Value::Text(t) if t.trim().is_empty() => None,
                v => Some(v),
            };
            update(|d| d.options = v);
        }
        "tunnel" => {
            let v = text(n, value)?;
            if let Some(u) = &v {
                check_tunnel(u)?;
            }
            update(|d| d.tunnel = v);
        }
        "resolve" => {
            let map = parse_resolve(&text(n, value)?.unwrap_or_default())?;
            update(|d| d.resolve = Arc::new(map));
        }
        _ => return Err(unknown(name)),
    }
    Ok(())
}

pub fn get(name: &str) -> Result<Value, MailError> {
    let d = raw();
    let t = |s: Option<String>| Value::Text(s.unwrap_or_default());
    Ok(match name.to_ascii_lowercase().as_str() {
        "commstimeout" => Value::Integer(COMMS_TIMEOUT_SECS.load(Ordering::Relaxed) as i64),
        "hostname" => t(d.hostname),
        "hostaddress" => t(d.hostaddress.map(|ip| ip.to_string())),
        "remoteport" => Value::Integer(d.remoteport.unwrap_or(0) as i64),
        "username" => t(d.username),
        "password" | "bearertoken" => {
            return Err(MailError::BadValue(format!(
                "the {} setting can be set but never read back",
                name.to_ascii_lowercase()
            )))
        }
        "timeout" => Value::Integer(d.timeout.unwrap_or(0) as i64),
        "options" => match d.options {
            Some(Value::Text(t)) => Value::Text(crate::options::redacted(&t)),
            other => other.unwrap_or(Value::Integer(0)),
        },
        // The proxy URL may hold the proxy's password: show it without.
        "tunnel" => Value::Text(d.tunnel.map(|u| show_tunnel(&u)).unwrap_or_default()),
        "resolve" => {
            let mut entries: Vec<String> = d
                .resolve
                .iter()
                .map(|(k, v)| {
                    let ips: Vec<String> = v.iter().map(|ip| ip.to_string()).collect();
                    format!("{k}={}", ips.join(","))
                })
                .collect();
            entries.sort();
            Value::Text(entries.join(";"))
        }
        _ => return Err(unknown(name)),
    })
}

/// An IPv4 or IPv6 address, without a port (`remoteport` gives that). An
/// IPv6 address may be written with or without brackets.
fn host_address(a: &str) -> Result<IpAddr, MailError> {
    let t = a.trim();
    let bracketed = t.strip_prefix('[').and_then(|x| x.strip_suffix(']'));
    match (bracketed.unwrap_or(t).parse::<IpAddr>(), bracketed) {
        (Ok(ip @ IpAddr::V4(_)), None) | (Ok(ip @ IpAddr::V6(_)), _) => Ok(ip),
        _ => Err(MailError::BadAddress(format!(
            "hostaddress must be an IPv4 or IPv6 address without a port (a host name goes in hostname, the port in remoteport): {t:?}"
        ))),
    }
}

fn check_tunnel(url: &str) -> Result<(), MailError> {
    crate::net::proxy::parse_proxy(url).map(|_| ())
}

/// The proxy URL may hold the proxy's password: show it without.
fn show_tunnel(url: &str) -> String {
    crate::net::proxy::parse_proxy(url)
        .map(|p| p.to_string())
        .unwrap_or_default()
}

/// `host:port=addr[,addr...][;...]`: the addresses a name resolves to.
fn parse_resolve(s: &str) -> Result<HashMap<String, Vec<IpAddr>>, MailError> {
    let mut map = HashMap::new();
    for entry in s.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || {
            MailError::BadValue(format!(
                "resolve entry {entry:?} is not host:port=address[,address...]"
            ))
        };
        let (key, addrs) = entry.split_once('=').ok_or_else(bad)?;
        let server = crate::net::address::parse_server(key, 0)?;
        if server.port == 0 || !key.contains(':') {
            return Err(bad());
        }
        let ips = addrs
            .split(',')
            .map(|a| {
                let a = a.trim();
                let a = a
                    .strip_prefix('[')
                    .and_then(|x| x.strip_suffix(']'))
                    .unwrap_or(a);
                a.parse::<IpAddr>().map_err(|_| bad())
            })
            .collect::<Result<Vec<_>, _>>()?;
        map.insert(format!("{}:{}", server.host, server.port), ips);
    }
    Ok(map)
}

fn unknown(name: &str) -> MailError {
    MailError::BadValue(format!(
        "unknown setting {name:?}; known: {}",
        NAMES.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_entries() {
        let m = parse_resolve("mail.test:143=127.0.0.1,[::1]; b.test:1=10.0.0.1").unwrap();
        assert_eq!(m["mail.test:143"].len(), 2);
        assert!(parse_resolve("mail.test=127.0.0.1").is_err());
        assert!(parse_resolve("mail.test:143=nope").is_err());
        assert!(parse_resolve("").unwrap().is_empty());
    }

    #[test]
    fn host_addresses() {
        let ip = |a: &str| host_address(a).unwrap().to_string();
        assert_eq!(ip(" 192.0.2.1 "), "192.0.2.1");
        assert_eq!(ip("::1"), "::1");
        assert_eq!(ip("[2001:DB8::1]"), "2001:db8::1");
        for bad in [
            "mail.example.com",
            "192.0.2.1:143",
            "[192.0.2.1]",
            "[::1]:993",
            "1.2.3",
        ] {
            assert_eq!(host_address(bad).unwrap_err().code(), -1101, "{bad}");
        }
    }
}
