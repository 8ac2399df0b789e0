//! The connect options argument (SocketTools' dwOptions), in either of two
//! strict forms: the SocketTools bit mask as an Integer, or a Character list
//! of names such as `"IDENTIFY SECURE_IMPLICIT AUTH=PLAIN"`. Anything unknown,
//! repeated with another value or contradictory is an error, never ignored.

use crate::error::MailError;

/// SocketTools' published bit values; the ones it does not publish are ours.
pub mod bits {
    /// IMAP: send ID after login. SMTP: EXTENDED (EHLO); the same bit.
    pub const IDENTIFY: u64 = 0x1;
    pub const EXTENDED: u64 = 0x1;
    pub const TUNNEL: u64 = 0x400;
    pub const TRUSTEDSITE: u64 = 0x800;
    pub const SECURE_EXPLICIT: u64 = 0x1000;
    pub const SECURE_IMPLICIT: u64 = 0x2000;
    pub const SECURE_FALLBACK: u64 = 0x8000;
    pub const PREFER_IPV6: u64 = 0x40000;
    pub const FREETHREAD: u64 = 0x80000;
    /// The socket belongs to the thread that created it (see IMAPAttachThread).
    pub const OWNTHREAD: u64 = 0x100000;
    /// Return the socket at once; IMAPWait reports completion.
    pub const ASYNC: u64 = 0x200000;
    pub const ALL: u64 = IDENTIFY
        | TUNNEL
        | TRUSTEDSITE
        | SECURE_EXPLICIT
        | SECURE_IMPLICIT
        | SECURE_FALLBACK
        | PREFER_IPV6
        | FREETHREAD
        | OWNTHREAD
        | ASYNC;
}

/// How to authenticate (SocketTools AuthType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthType {
    /// Omnis behaviour: CRAM-MD5 when offered, then LOGIN.
    #[default]
    Auto,
    Login,
    Plain,
    CramMd5,
    XOAuth2,
    OAuthBearer,
    ScramSha256,
}

impl AuthType {
    pub fn parse(s: &str) -> Result<AuthType, MailError> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "AUTO" | "" => AuthType::Auto,
            "LOGIN" => AuthType::Login,
            "PLAIN" => AuthType::Plain,
            "CRAM-MD5" | "CRAMMD5" => AuthType::CramMd5,
            "XOAUTH2" => AuthType::XOAuth2,
            "OAUTHBEARER" => AuthType::OAuthBearer,
            "SCRAM-SHA-256" | "SCRAMSHA256" => AuthType::ScramSha256,
            _ => {
                return Err(MailError::BadValue(format!(
                    "unknown AUTH type {s:?}; known: AUTO, LOGIN, PLAIN, CRAM-MD5, XOAUTH2, OAUTHBEARER, SCRAM-SHA-256"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AuthType::Auto => "AUTO",
            AuthType::Login => "LOGIN",
            AuthType::Plain => "PLAIN",
            AuthType::CramMd5 => "CRAM-MD5",
            AuthType::XOAuth2 => "XOAUTH2",
            AuthType::OAuthBearer => "OAUTHBEARER",
            AuthType::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

/// Where the client certificate comes from.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientCert {
    /// A PEM certificate (chain), or a PKCS#12 file (.p12 / .pfx).
    pub cert: String,
    /// The PEM private key; None when it is in `cert`.
    pub key: Option<String>,
    /// For a PKCS#12 file or an encrypted PEM key.
    pub password: Option<String>,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClientCert {{ cert: {:?}, key: {:?}, password: {} }}",
            self.cert,
            self.key,
            if self.password.is_some() {
                "<redacted>"
            } else {
                "none"
            }
        )
    }
}

/// Every connect option, parsed. Debug leaves out the proxy URL (it may
/// carry a password).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    pub identify: bool,
    pub trusted_site: bool,
    pub secure_explicit: bool,
    pub secure_implicit: bool,
    pub fallback: bool,
    pub prefer_ipv6: bool,
    /// TUNNEL given: through this proxy, or the configured one when None.
    pub tunnel: Option<Option<String>>,
    pub client_cert: Option<ClientCert>,
    pub auth: AuthType,
    pub own_thread: bool,
    pub asynchronous: bool,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("identify", &self.identify)
            .field("trusted_site", &self.trusted_site)
            .field("secure_explicit", &self.secure_explicit)
            .field("secure_implicit", &self.secure_implicit)
            .field("fallback", &self.fallback)
            .field("prefer_ipv6", &self.prefer_ipv6)
            .field("tunnel", &self.tunnel.as_ref().map(|t| t.is_some()))
            .field("client_cert", &self.client_cert)
            .field("auth", &self.auth)
            .field("own_thread", &self.own_thread)
            .field("asynchronous", &self.asynchronous)
            .finish()
    }
}

/// The options text with secrets taken out (for MailGetConfig).
pub fn redacted(text: &str) -> String {
    let Ok(list) = tokens(text) else {
        return String::new();
    };
    list.into_iter()
        .map(
            |(name, value)| match (name.to_ascii_uppercase().as_str(), value) {
                ("CERTPASS", Some(_)) => format!("{name}=<redacted>"),
                ("TUNNEL", Some(url)) => format!(
                    "{name}={}",
                    crate::net::proxy::parse_proxy(&url)
                        .map(|p| p.to_string())
                        .unwrap_or_else(|_| "<redacted>".into())
                ),
                (_, Some(v)) if v.chars().any(|c| c.is_whitespace() || c == ',') => {
                    format!("{name}=\"{v}\"")
                }
                (_, Some(v)) => format!("{name}={v}"),
                (_, None) => name,
            },
        )
        .collect::<Vec<_>>()
        .join(" ")
}

impl ConnectOptions {
    pub fn from_bits(v: i64) -> Result<ConnectOptions, MailError> {
        let v = u64::try_from(v)
            .map_err(|_| MailError::BadValue(format!("options must not be negative ({v})")))?;
        let unknown = v & !bits::ALL;
        if unknown != 0 {
            return Err(MailError::BadValue(format!(
                "options has unknown bit(s) {unknown:#x}"
            )));
        }
        let o = ConnectOptions {
            identify: v & bits::IDENTIFY != 0,
            trusted_site: v & bits::TRUSTEDSITE != 0,
            secure_explicit: v & bits::SECURE_EXPLICIT != 0,
            secure_implicit: v & bits::SECURE_IMPLICIT != 0,
            fallback: v & bits::SECURE_FALLBACK != 0,
            prefer_ipv6: v & bits::PREFER_IPV6 != 0,
            tunnel: (v & bits::TUNNEL != 0).then_some(None),
            own_thread: v & bits::OWNTHREAD != 0,
            asynchronous: v & bits::ASYNC != 0,
            ..Default::default()
        };
        if v & bits::FREETHREAD != 0 && o.own_thread {
            return Err(MailError::BadValue(
                "FREETHREAD and OWNTHREAD contradict each other".into(),
            ));
        }
        o.check()
    }

    /// Parses `NAME NAME=value ...`; separators are spaces, commas, `|` or `+`.
    /// A value may be double-quoted (`CERT="/path with spaces/c.pem"`).
    pub fn parse(text: &str) -> Result<ConnectOptions, MailError> {
        let mut o = ConnectOptions::default();
        let mut seen: Vec<String> = Vec::new();
        let mut freethread = false;
        for (name, value) in tokens(text)? {
            let upper = name.to_ascii_uppercase();
            if seen.contains(&upper) {
                return Err(MailError::BadValue(format!(
                    "option {upper} is given twice"
                )));
            }
            seen.push(upper.clone());
            let flag = |v: &Option<String>| -> Result<bool, MailError> {
                match v {
                    None => Ok(true),
                    Some(_) => Err(MailError::BadValue(format!(
                        "option {upper} takes no value"
                    ))),
                }
            };
            let needs = |v: Option<String>| -> Result<String, MailError> {
                v.filter(|s| !s.is_empty()).ok_or_else(|| {
                    MailError::BadValue(format!("option {upper} needs a value ({upper}=...)"))
                })
            };
            match upper.as_str() {
                "NONE" => {
                    flag(&value)?;
                }
                "IDENTIFY" | "EXTENDED" => o.identify = flag(&value)?,
                "TRUSTEDSITE" => o.trusted_site = flag(&value)?,
                "SECURE" | "SECURE_EXPLICIT" => o.secure_explicit = flag(&value)?,
                "SECURE_IMPLICIT" => o.secure_implicit = flag(&value)?,
                "SECURE_FALLBACK" => o.fallback = flag(&value)?,
                "PREFER_IPV6" => o.prefer_ipv6 = flag(&value)?,
                "FREETHREAD" => freethread = flag(&value)?,
                "OWNTHREAD" => o.own_thread = flag(&value)?,
                "ASYNC" => o.asynchronous = flag(&value)?,
                "TUNNEL" => o.tunnel = Some(value.filter(|v| !v.is_empty())),
                "AUTH" => o.auth = AuthType::parse(&needs(value)?)?,
                "CERT" => o.client_cert.get_or_insert_with(Default::default).cert = needs(value)?,
                "KEY" => {
                    o.client_cert.get_or_insert_with(Default::default).key = Some(needs(value)?)
                }
                "CERTPASS" => {
                    o.client_cert.get_or_insert_with(Default::default).password =
                        Some(value.unwrap_or_default())
                }
                _ => {
                    // Never echoed: an unquoted value cut at a space or
                    // comma may have left part of a password here.
                    let shown = format!(
                        "(item {}; quote values that hold spaces or commas)",
                        seen.len()
                    );
                    return Err(MailError::BadValue(format!(
                        "unknown option {shown}; known: IDENTIFY, TRUSTEDSITE, SECURE_EXPLICIT, \
                         SECURE_IMPLICIT, SECURE_FALLBACK, PREFER_IPV6, TUNNEL[=url], AUTH=type, EXTENDED, \
                         CERT=file, KEY=file, CERTPASS=password, FREETHREAD, OWNTHREAD, ASYNC"
                    )));
                }
            }
        }
        if freethread && o.own_thread {
            return Err(MailError::BadValue(
                "FREETHREAD and OWNTHREAD contradict each other".into(),
            ));
        }
        if let Some(c) = &o.client_cert {
            if c.cert.is_empty() {
                return Err(MailError::BadValue(
                    "KEY or CERTPASS given without CERT=file".into(),
                ));
            }
        }
        o.check()
    }

    fn check(self) -> Result<ConnectOptions, MailError> {
        if self.secure_explicit && self.secure_implicit {
            return Err(MailError::BadValue(
                "SECURE_EXPLICIT (STARTTLS) and SECURE_IMPLICIT contradict each other".into(),
            ));
        }
        Ok(self)
    }
}

/// Splits the text into (name, value) pairs.
fn tokens(text: &str) -> Result<Vec<(String, Option<String>)>, MailError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let is_sep = |c: char| c.is_whitespace() || matches!(c, ',' | '|' | '+');
    loop {
        while chars.peek().is_some_and(|&c| is_sep(c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if is_sep(c) || c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            return Err(MailError::BadValue(
                "an option has no name before '='".into(),
            ));
        }
        let mut value = None;
        if chars.peek() == Some(&'=') {
            chars.next();
            let mut v = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '"' {
                        closed = true;
                        break;
                    }
                    v.push(c);
                }
                if !closed {
                    return Err(MailError::BadValue(format!(
                        "the value of option {name} has no closing quote"
                    )));
                }
            } else {
                while let Some(&c) = chars.peek() {
                    // '+' and '|' may appear in paths and passwords; only
                    // spaces and commas end an unquoted value.
                    if c.is_whitespace() || c == ',' {
                        break;
                    }
                    v.push(c);
                    chars.next();
                }
            }
            value = Some(v);
        }
        if value
            .as_deref()
            .is_some_and(|v| v.chars().any(|c| c.is_control()))
        {
            return Err(MailError::BadValue(format!(
                "the value of option {name} contains control characters"
            )));
        }
        out.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        ConnectOptions::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn names_and_values() {
        let o = ConnectOptions::parse(
            "identify, SECURE_IMPLICIT|prefer_ipv6 AUTH=xoauth2 TUNNEL=socks5://p:1080 \
             CERT=\"/a b/c.p12\" CERTPASS=s+e|c OWNTHREAD ASYNC",
        )
        .unwrap();
        assert!(o.identify && o.secure_implicit && o.prefer_ipv6 && o.own_thread);
        assert!(o.asynchronous && !o.trusted_site);
        assert_eq!(o.auth, AuthType::XOAuth2);
        assert_eq!(o.tunnel, Some(Some("socks5://p:1080".into())));
        let c = o.client_cert.clone().unwrap();
        assert_eq!(c.cert, "/a b/c.p12");
        assert_eq!(c.password.as_deref(), Some("s+e|c"));
        assert!(!format!("{o:?}").contains("s+e|c"));
        assert_eq!(
            ConnectOptions::parse("").unwrap(),
            ConnectOptions::default()
        );
        assert_eq!(ConnectOptions::parse("TUNNEL").unwrap().tunnel, Some(None));
        assert!(ConnectOptions::parse("NONE").is_ok());
    }

    #[test]
    fn refusals_are_clear() {
        assert!(err("IDENTIFI").contains("unknown option (item 1"));
        assert!(!err("CERT=/c.p12 CERTPASS=abc,secret").contains("secret"));
        assert!(!err("CERT=/c.p12 CERTPASS=abc,secret:part").contains("secret"));
        assert_eq!(
            redacted("IDENTIFY CERTPASS=hunter2 TUNNEL=http://u:pw@p:3128 CERT=\"/a b\""),
            "IDENTIFY CERTPASS=<redacted> TUNNEL=http://p:3128 CERT=\"/a b\""
        );
        assert!(err("IDENTIFY IDENTIFY").contains("twice"));
        assert!(err("TRUSTEDSITE=1").contains("takes no value"));
        assert!(err("AUTH").contains("needs a value"));
        assert!(err("AUTH=KERBEROS").contains("unknown AUTH type"));
        assert!(err("SECURE SECURE_IMPLICIT").contains("contradict"));
        assert!(err("FREETHREAD OWNTHREAD").contains("contradict"));
        assert!(err("CERT=\"/x").contains("closing quote"));
        assert!(err("=x").contains("no name"));
        assert!(err("KEY=/k.pem").contains("without CERT"));
    }

    #[test]
    fn bit_mask() {
        let o = ConnectOptions::from_bits(0x800 | 0x2000 | 0x40000 | 0x1).unwrap();
        assert!(o.trusted_site && o.secure_implicit && o.prefer_ipv6 && o.identify);
        assert_eq!(ConnectOptions::from_bits(0x400).unwrap().tunnel, Some(None));
        assert!(ConnectOptions::from_bits(0x4)
            .unwrap_err()
            .to_string()
            .contains("0x4"));
        assert!(ConnectOptions::from_bits(-1).is_err());
        assert!(ConnectOptions::from_bits(0x1000 | 0x2000).is_err());
    }
}
