//! SMTPConnect, SMTPSendMessage, SMTPNoOp, SMTPReset, SMTPDisconnect and
//! Omnis' one-shot SMTPSend.

use super::connect::{open_transport, Route};
use super::Ret;
use crate::config::{self, comms_timeout};
use crate::error::MailError;
use crate::events::{EventKind, MailEvent};
use crate::host_call::{CommandObserver, HostCall, ListHandle};
use crate::imap::codec::is_safe_text;
use crate::imap::connect::{Credentials, SecureMode};
use crate::imap::driver::Observer;
use crate::net::address::parse_server;
use crate::net::connection::Connection;
use crate::net::proxy::parse_proxy;
use crate::net::tls::TlsSettings;
use crate::options::ConnectOptions;
use crate::smtp::connect::{SmtpConnectOp, SmtpConnectSettings};
use crate::smtp::mime;
use crate::smtp::reply::ReplyReader;
use crate::smtp::send::{Dsn, SendOp, Sent, SimpleOp};
use crate::smtp::session::{run_smtp, SmtpOp, SmtpSession};
use crate::socket_table::{lock, SocketControl, SocketTable, TableSocket};
use plugin_abi::{MailextValue, MAILEXT_FALSE, MAILEXT_KIND_CHARACTER, MAILEXT_KIND_INTEGER};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SMTP_PORT: u16 = 25;
pub const SUBMISSION_PORT: u16 = 587;
pub const SMTPS_PORT: u16 = 465;
/// The session is over either way: a server slow to answer QUIT costs no more.
const QUIT_WAIT: Duration = Duration::from_secs(5);

pub struct SmtpSocket {
    pub conn: Connection,
    pub session: SmtpSession,
    pub reader: ReplyReader,
    pub closed: bool,
    pub timeout: Option<Duration>,
}

impl TableSocket for SmtpSocket {
    fn is_closed(&self) -> bool {
        self.closed
    }
    fn poison(&mut self, e: MailError) {
        self.session.broken.get_or_insert(e);
    }
}

pub static SMTP_SOCKETS: SocketTable<SmtpSocket> = SocketTable::new("SMTP");

/// This machine's name for EHLO, when the caller gives none.
fn machine_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) } == 0;
    let name = if ok {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    ehlo_name(&name)
}

/// `host` (one trailing dot dropped) when it is a domain EHLO may carry,
/// else `localhost`.
fn ehlo_name(host: &str) -> String {
    let host = host.strip_suffix('.').unwrap_or(host);
    if is_ehlo_domain(host) {
        host.to_string()
    } else {
        "localhost".into()
    }
}

/// RFC 5321 4.1.2 `Domain`: dot-separated labels of letters, digits and
/// `-`, neither starting nor ending with `-`, at most 63 octets each and 253
/// in all.
fn is_ehlo_domain(name: &str) -> bool {
    crate::net::address::is_dns_name(name, false)
}

/// The port for a server given without one, or with port 0 (SocketTools:
/// the protocol's default): 465 for implicit TLS, else 25.
fn default_port(chosen: Option<SecureMode>) -> u16 {
    match chosen {
        Some(SecureMode::Implicit) => SMTPS_PORT,
        _ => SMTP_PORT,
    }
}

/// What the port decides: the TLS mode when neither `secure` nor an option
/// chose one (465: implicit TLS; not for a port forward, where the port is
/// the forward's), and EHLO rather than HELO (asked for, or port 587).
fn port_rules(
    port: u16,
    chosen: Option<SecureMode>,
    forward: bool,
    extended: bool,
) -> (SecureMode, bool) {
    let mode = chosen.unwrap_or(if port == SMTPS_PORT && !forward {
        SecureMode::Implicit
    } else {
        SecureMode::Plain
    });
    (mode, extended || port == SUBMISSION_PORT)
}

/// One SMTP connection to make.
struct SmtpPlan {
    server: crate::net::address::ServerAddr,
    settings: SmtpConnectSettings,
    tls: TlsSettings,
    prefer_ipv6: bool,
    tunnel: Option<crate::net::proxy::ProxySpec>,
    timeout: Duration,
    explicit_timeout: Option<Duration>,
    own_thread: bool,
    event_proc: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn plan(
    server: &str,
    localname: Option<String>,
    creds: Option<Credentials>,
    secure: Option<i64>,
    verify: Option<i64>,
    timeout: Option<i64>,
    options: ConnectOptions,
    event_proc: Option<String>,
) -> Result<SmtpPlan, MailError> {
    if options.asynchronous {
        return Err(MailError::BadValue(
            "ASYNC is an IMAPConnect option; SMTPConnect blocks (use a thread)".into(),
        ));
    }
    let arg_mode = match secure {
        None | Some(0) => None,
        Some(1) => Some(SecureMode::Implicit),
        Some(2) => Some(SecureMode::StartTls),
        Some(n) => {
            return Err(MailError::BadValue(format!(
                "secure must be 0, 1 or 2, not {n}"
            )))
        }
    };
    let opt_mode = if options.secure_implicit {
        Some(SecureMode::Implicit)
    } else if options.secure_explicit {
        Some(SecureMode::StartTls)
    } else {
        None
    };
    if let (Some(a), Some(o)) = (arg_mode, opt_mode) {
        if a != o {
            return Err(MailError::BadValue(
                "the secure argument and the SECURE_* option ask for different modes".into(),
            ));
        }
    }
    let chosen = arg_mode.or(opt_mode);
    let server = parse_server(server, default_port(chosen))?;
    let forward = options.tunnel == Some(None) && config::defaults().tunnel.is_none();
    let (mode, extended) = port_rules(server.port, chosen, forward, options.identify);
    let localname = localname
        .filter(|l| !l.is_empty())
        .unwrap_or_else(machine_name);
    if !localname
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
    {
        return Err(MailError::BadValue(format!(
            "localname {localname:?} is not a host name or address literal"
        )));
    }
    let explicit_timeout = match timeout {
        None | Some(0) => config::defaults().timeout,
        Some(t) if (1..=config::MAX_COMMS_TIMEOUT_SECS as i64).contains(&t) => Some(t as u64),
        Some(t) => {
            return Err(MailError::BadValue(format!(
                "timeout must be 0 (default) to {} seconds, not {t}",
                config::MAX_COMMS_TIMEOUT_SECS
            )))
        }
    }
    .map(Duration::from_secs);
    let tunnel = match (&options.tunnel, &config::defaults().tunnel) {
        (Some(Some(url)), _) => Some(parse_proxy(url)?),
        (Some(None), Some(url)) => Some(parse_proxy(url)?),
        _ => None,
    };
    let verify = verify != Some(MAILEXT_FALSE) && !options.trusted_site;
    Ok(SmtpPlan {
        settings: SmtpConnectSettings {
            mode,
            localname,
            extended,
            creds,
            auth: options.auth,
            host: server.host.as_tls_name(),
            port: server.port,
        },
        server,
        tls: TlsSettings {
            verify,
            fallback: options.fallback,
            client_cert: options.client_cert.clone(),
        },
        prefer_ipv6: options.prefer_ipv6,
        tunnel,
        timeout: explicit_timeout.unwrap_or_else(comms_timeout),
        explicit_timeout,
        own_thread: options.own_thread,
        event_proc,
    })
}

impl SmtpPlan {
    fn establish(
        self,
        obs: &mut dyn Observer,
        cancel: crossbeam_channel::Receiver<()>,
    ) -> Result<SmtpSocket, MailError> {
        let deadline = Instant::now() + self.timeout;
        let implicit = self.settings.mode == SecureMode::Implicit;
        let (mut conn, leftover) = open_transport(
            &Route {
                server: &self.server,
                tunnel: self.tunnel.as_ref(),
                prefer_ipv6: self.prefer_ipv6,
                tls: self.tls.clone(),
                implicit,
                hint: "for STARTTLS use secure = 2",
            },
            deadline,
            cancel,
            obs,
        )?;
        let mut reader = ReplyReader::default();
        reader.push(&leftover);
        let mut session = SmtpSession::new(self.timeout);
        session.tls = implicit;
        run_smtp(
            &mut SmtpConnectOp::new(self.settings),
            &mut session,
            &mut reader,
            &mut conn,
            obs,
        )?;
        Ok(SmtpSocket {
            conn,
            session,
            reader,
            closed: false,
            timeout: self.explicit_timeout,
        })
    }
}

fn options_arg(call: &HostCall, i: usize) -> Result<ConnectOptions, MailError> {
    match call.kind(i) {
        MAILEXT_KIND_CHARACTER => ConnectOptions::parse(&call.string(i)?.unwrap_or_default()),
        MAILEXT_KIND_INTEGER => ConnectOptions::from_bits(call.integer(i)?.unwrap_or(0)),
        _ => Ok(ConnectOptions::default()),
    }
}

fn credentials(
    user: Option<String>,
    pass: Option<String>,
) -> Result<Option<Credentials>, MailError> {
    let user = user.unwrap_or_default();
    let pass = pass.unwrap_or_default();
    if !is_safe_text(&user) || !is_safe_text(&pass) {
        return Err(MailError::UnsafeCredentials);
    }
    Ok((!user.is_empty()).then_some(Credentials {
        username: user,
        password: pass,
    }))
}

/// SMTPConnect(server, localname, username, password, stsproc, responselist,
/// secure, verify, timeout, options, eventproc) returns a socket.
pub fn connect(call: &HostCall) -> Result<Ret, MailError> {
    let p = plan(
        &call.string(0)?.unwrap_or_default(),
        call.string(1)?,
        credentials(call.string(2)?, call.string(3)?)?,
        call.integer(6)?,
        call.boolean(7)?,
        call.integer(8)?,
        options_arg(call, 9)?,
        call.string(10)?.filter(|s| !s.is_empty()),
    )?;
    let id = SMTP_SOCKETS.reserve();
    let control = Arc::new(SocketControl {
        owner: Mutex::new(p.own_thread.then(|| std::thread::current().id())),
        event_proc: p.event_proc.clone(),
        ..Default::default()
    });
    let mut obs = CommandObserver::new(call, call.list(5))?.with_events(p.event_proc.clone(), id);
    let server = p.server.to_string();
    control.cancel.begin();
    let r = p.establish(&mut obs, control.cancel.receiver());
    control.cancel.end();
    match &r {
        Ok(_) => obs.event(MailEvent::new(
            EventKind::Connect,
            0,
            format!("connected to {server}"),
        )),
        Err(e) => {
            if let Some(ev) = MailEvent::for_error(e).filter(|ev| ev.kind != EventKind::Disconnect)
            {
                obs.event(ev);
            }
            obs.event(MailEvent::new(
                EventKind::Connect,
                e.code() as i64,
                e.to_string(),
            ));
        }
    }
    let sock = r?;
    SMTP_SOCKETS.insert_at(id, sock, control);
    obs.status_with(&|| format!("SMTP socket {id} is ready"));
    Ok(Ret::Socket(id))
}

/// Runs `op` on the SMTP socket in argument 0.
fn on_socket<O: SmtpOp>(
    call: &HostCall,
    op: impl FnOnce(&SmtpSession) -> Result<O, MailError>,
) -> Result<O::Output, MailError> {
    let id = call.integer(0)?.unwrap_or_default();
    let entry = SMTP_SOCKETS.get(id)?;
    let mut guard = lock(&entry, id)?;
    let ctl = &entry.control;
    let mut obs =
        CommandObserver::new(call, call.responses())?.with_events(ctl.event_proc.clone(), id);
    for e in ctl.take_queued() {
        obs.event(e);
    }
    let s = &mut *guard;
    s.session
        .clock
        .set_timeout(s.timeout.unwrap_or_else(comms_timeout));
    let mut op = op(&s.session)?;
    ctl.cancel.begin();
    let r = run_smtp(
        &mut op,
        &mut s.session,
        &mut s.reader,
        &mut s.conn,
        &mut obs,
    );
    ctl.cancel.end();
    if let Err(e) = &r {
        if let Some(ev) = MailEvent::for_error(e) {
            obs.event(ev);
        }
        if matches!(e, MailError::Cancelled(_)) {
            s.conn.close();
        }
    }
    r
}

pub fn noop(call: &HostCall) -> Result<Ret, MailError> {
    on_socket(call, |_| Ok(SimpleOp::noop())).map(|_| Ret::Integer(0))
}

pub fn reset(call: &HostCall) -> Result<Ret, MailError> {
    on_socket(call, |_| Ok(SimpleOp::rset())).map(|_| Ret::Integer(0))
}

/// QUIT, close, free the id (freed even when QUIT fails).
pub fn disconnect(call: &HostCall) -> Result<Ret, MailError> {
    let id = call.integer(0)?.unwrap_or_default();
    let entry = SMTP_SOCKETS.get(id)?;
    let mut guard = lock(&entry, id)?;
    let mut obs = CommandObserver::new(call, call.responses())?
        .with_events(entry.control.event_proc.clone(), id);
    SMTP_SOCKETS.remove(id);
    let s = &mut *guard;
    s.closed = true;
    s.session
        .clock
        .set_timeout(s.timeout.unwrap_or_else(comms_timeout).min(QUIT_WAIT));
    let r = if s.session.broken.is_some() {
        Ok(())
    } else {
        match run_smtp(
            &mut SimpleOp::quit(),
            &mut s.session,
            &mut s.reader,
            &mut s.conn,
            &mut obs,
        ) {
            // A server may close right after 221 or without it: both end the session.
            Err(MailError::Closed(_)) => Ok(()),
            r => r,
        }
    };
    s.conn.close();
    obs.status_with(&|| format!("SMTP socket {id} is closed"));
    r.map(|_| Ret::Integer(0))
}

/// The address inside "Name <addr>", or the text itself.
pub fn bare_address(s: &str) -> Result<String, MailError> {
    let t = s.trim();
    let a = match (t.rfind('<'), t.rfind('>')) {
        (Some(l), Some(r)) if l < r => &t[l + 1..r],
        _ => t,
    };
    let a = a.trim();
    let ok = a.contains('@')
        && !a.starts_with('@')
        && !a.ends_with('@')
        && a.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '<' && c != '>');
    if ok {
        Ok(a.to_string())
    } else {
        Err(MailError::BadValue(format!("{s:?} is not a mail address")))
    }
}

/// "a@x, B <b@y>; c@z" (commas inside quotes are part of a name).
pub fn address_list(s: &str) -> Result<Vec<String>, MailError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' | ';' if !quoted => {
                if !cur.trim().is_empty() {
                    out.push(bare_address(&cur)?);
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(bare_address(&cur)?);
    }
    Ok(out)
}

/// SMTPSendMessage's options: `NOTIFY=SUCCESS,FAILURE RET=HDRS ENVID=id`.
fn dsn_options(text: &str) -> Result<Dsn, MailError> {
    let mut d = Dsn::default();
    for tok in text.split_whitespace() {
        let (k, v) = tok
            .split_once('=')
            .ok_or_else(|| MailError::BadValue(format!("send option {tok:?} is not NAME=value")))?;
        match k.to_ascii_uppercase().as_str() {
            "NOTIFY" => {
                let v = v.to_ascii_uppercase();
                let parts: Vec<&str> = v.split(',').collect();
                let ok = parts == ["NEVER"]
                    || parts
                        .iter()
                        .all(|p| matches!(*p, "SUCCESS" | "FAILURE" | "DELAY"));
                if !ok {
                    return Err(MailError::BadValue(
                        "NOTIFY is NEVER or a comma list of SUCCESS, FAILURE, DELAY".into(),
                    ));
                }
                d.notify = Some(v);
            }
            "RET" => match v.to_ascii_uppercase().as_str() {
                r @ ("FULL" | "HDRS") => d.ret = Some(r.to_string()),
                _ => return Err(MailError::BadValue("RET is FULL or HDRS".into())),
            },
            "ENVID" if !v.is_empty() && v.len() <= 100 && v.is_ascii() => d.envid = Some(v.into()),
            _ => {
                return Err(MailError::BadValue(format!(
                    "unknown send option {k:?}; known: NOTIFY, RET, ENVID"
                )))
            }
        }
    }
    Ok(d)
}

fn fill_results(call: &HostCall, list: Option<ListHandle>, sent: &Sent) -> Result<(), MailError> {
    let Some(l) = list else { return Ok(()) };
    call.define_list(
        l,
        &[
            (c"address", MAILEXT_KIND_CHARACTER),
            (c"code", MAILEXT_KIND_INTEGER),
            (c"text", MAILEXT_KIND_CHARACTER),
            (c"accepted", plugin_abi::MAILEXT_KIND_BOOLEAN),
        ],
    )?;
    for r in &sent.results {
        call.append_row(
            l,
            &[
                MailextValue::bytes(MAILEXT_KIND_CHARACTER, r.address.as_bytes()),
                MailextValue::integer(r.code as i64),
                MailextValue::bytes(MAILEXT_KIND_CHARACTER, r.text.as_bytes()),
                MailextValue::boolean(if r.accepted { 1 } else { 0 }),
            ],
        )?;
    }
    Ok(())
}

/// SMTPSendMessage(socket, from, recipients, message [, options,
/// resultlist, stsproc, responselist]).
pub fn send_message(call: &HostCall) -> Result<Ret, MailError> {
    let from_text = call.string(1)?.unwrap_or_default();
    // "<>" is the null sender (bounces, RFC 5321 4.5.5).
    let from = if from_text.trim() == "<>" {
        String::new()
    } else {
        bare_address(&from_text)?
    };
    let rcpts = address_list(&call.string(2)?.unwrap_or_default())?;
    let message = call.data(3)?.unwrap_or_default();
    let dsn = dsn_options(&call.string(4)?.unwrap_or_default())?;
    let results = call.list(5);
    let sent = on_socket(call, |s| SendOp::new(s, &from, rcpts, &message, dsn))?;
    // The server has the message: a list problem must not look like a failed
    // send (a retry would deliver it twice).
    if let Err(e) = fill_results(call, results, &sent) {
        call.status(&format!(
            "The message was sent, but the result list could not be filled: {e}"
        ));
    }
    Ok(Ret::Integer(0))
}

/// Closes and frees an SMTP socket the host never received.
pub fn abandon(id: i64) {
    if let Ok(entry) = SMTP_SOCKETS.get(id) {
        SMTP_SOCKETS.remove(id);
        if let Ok(mut s) = entry.state.lock() {
            s.closed = true;
            s.conn.close();
        }
    }
}

/// The MIME builder's refusals are argument errors.
fn mime_err(e: String) -> MailError {
    MailError::BadValue(e)
}

/// SMTPSend(server, from, to, subject, body [, cc, bcc, name, stsproc,
/// priority, extraheaders, user, pass, secure, verify]): Omnis' one-shot
/// send. Builds the MIME message, connects, sends, quits.
pub fn send(call: &HostCall) -> Result<Ret, MailError> {
    let server_arg = call.string(0)?.unwrap_or_default();
    // Omnis: the EHLO name may follow the server, after a space.
    let mut words = server_arg.split_whitespace();
    let server = words.next().unwrap_or("").to_string();
    let localname = words.next().map(str::to_string);
    if words.next().is_some() {
        return Err(MailError::BadAddress(format!(
            "{server_arg:?}: expected \"server[:port] [localname]\""
        )));
    }
    let from_text = call.string(1)?.unwrap_or_default();
    let to = mime::parse_address_list(&call.string(2)?.unwrap_or_default()).map_err(mime_err)?;
    let subject = call.string(3)?.unwrap_or_default();
    let body = call.string(4)?.unwrap_or_default();
    let cc = mime::parse_address_list(&call.string(5)?.unwrap_or_default()).map_err(mime_err)?;
    let bcc = mime::parse_address_list(&call.string(6)?.unwrap_or_default()).map_err(mime_err)?;
    let name = call.string(7)?.filter(|n| !n.is_empty());
    let priority = match call.integer(9)? {
        None | Some(0) => None,
        Some(p @ 1..=5) => Some(p as u8),
        Some(p) => {
            return Err(MailError::BadValue(format!(
                "priority must be 1 (highest) to 5 (lowest), not {p}"
            )))
        }
    };
    let extra =
        mime::parse_extra_headers(&call.string(10)?.unwrap_or_default()).map_err(mime_err)?;
    let creds = credentials(call.string(11)?, call.string(12)?)?;
    let secure = match call.kind(13) {
        plugin_abi::MAILEXT_KIND_BOOLEAN => call.boolean(13)?.map(|b| if b == 1 { 1 } else { 0 }),
        _ => call.integer(13)?,
    };
    if to.is_empty() && cc.is_empty() && bcc.is_empty() {
        return Err(MailError::BadValue(
            "no recipients (to, cc and bcc are empty)".into(),
        ));
    }
    let from_addr = mime::envelope_address(&from_text).map_err(mime_err)?;
    // The Message-ID's right side must be ASCII whatever the sender is.
    let domain = from_addr
        .rsplit('@')
        .next()
        .and_then(|d| idna::domain_to_ascii(d).ok())
        .filter(|d| !d.is_empty() && d.is_ascii())
        .unwrap_or_else(|| "localhost".into());
    let mut rand = [0u8; 12];
    openssl::rand::rand_bytes(&mut rand).map_err(|e| MailError::Internal(e.to_string()))?;
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let hex: String = rand.iter().map(|b| format!("{b:02x}")).collect();
    let message_id = format!("{secs}.{hex}@{domain}");
    let message = mime::build(&mime::Outgoing {
        from: &from_text,
        name: name.as_deref(),
        to: &to,
        cc: &cc,
        subject: &subject,
        body: &body,
        priority,
        extra_headers: &extra,
        date: now,
        message_id: &message_id,
    })
    .map_err(mime_err)?;
    let rcpts = to
        .iter()
        .chain(&cc)
        .chain(&bcc)
        .map(|a| mime::envelope_address(a).map_err(mime_err))
        .collect::<Result<Vec<_>, _>>()?;
    // Authentication and STARTTLS need EHLO; so does anything 8-bit.
    let options = ConnectOptions {
        identify: creds.is_some() || secure == Some(2) || !message.is_ascii(),
        ..Default::default()
    };
    let p = plan(
        &server,
        localname,
        creds,
        secure,
        call.boolean(14)?,
        None,
        options,
        None,
    )?;
    let mut obs = CommandObserver::new(call, None)?;
    let cancel = crossbeam_channel::never();
    let mut sock = p.establish(&mut obs, cancel)?;
    let s = &mut sock;
    let result =
        SendOp::new(&s.session, &from_addr, rcpts, &message, Dsn::default()).and_then(|mut op| {
            run_smtp(
                &mut op,
                &mut s.session,
                &mut s.reader,
                &mut s.conn,
                &mut obs,
            )
        });
    // QUIT either way; a failure to say goodbye does not undo a sent message.
    s.session
        .clock
        .set_timeout(s.session.clock.timeout().min(QUIT_WAIT));
    if s.session.broken.is_none() {
        let _ = run_smtp(
            &mut SimpleOp::quit(),
            &mut s.session,
            &mut s.reader,
            &mut s.conn,
            &mut obs,
        );
    }
    s.conn.close();
    let sent = result?;
    obs.status(&format!("Message <{message_id}> sent: {}", sent.reply));
    Ok(Ret::Integer(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The port, TLS mode and greeting for `server` with this mode chosen.
    fn rules(server: &str, chosen: Option<SecureMode>, forward: bool) -> (u16, SecureMode, bool) {
        let port = parse_server(server, default_port(chosen)).unwrap().port;
        let (mode, ehlo) = port_rules(port, chosen, forward, false);
        (port, mode, ehlo)
    }

    #[test]
    fn port_defaults() {
        use SecureMode::*;
        // No port, or port 0: 25, plaintext, HELO.
        assert_eq!(rules("mx.test", None, false), (25, Plain, false));
        assert_eq!(rules("mx.test:0", None, false), (25, Plain, false));
        assert_eq!(rules("[::1]:0", None, false), (25, Plain, false));
        assert_eq!(rules("mx.test:25", None, false), (25, Plain, false));
        // Implicit TLS without a port: 465 (also for port 0).
        assert_eq!(
            rules("mx.test", Some(Implicit), false),
            (465, Implicit, false)
        );
        assert_eq!(
            rules("mx.test:0", Some(Implicit), false),
            (465, Implicit, false)
        );
        assert_eq!(
            rules("mx.test", Some(StartTls), false),
            (25, StartTls, false)
        );
        // 587 turns EHLO on by itself, whatever the TLS mode.
        assert_eq!(rules("mx.test:587", None, false), (587, Plain, true));
        assert_eq!(
            rules("mx.test:587", Some(StartTls), false),
            (587, StartTls, true)
        );
        assert_eq!(rules("mx.test:587", None, true), (587, Plain, true));
        // 465 means implicit TLS with no mode chosen...
        assert_eq!(rules("mx.test:465", None, false), (465, Implicit, false));
        // ... but a chosen mode wins, and a port forward's port says nothing.
        assert_eq!(
            rules("mx.test:465", Some(StartTls), false),
            (465, StartTls, false)
        );
        assert_eq!(rules("mx.test:465", None, true), (465, Plain, false));
        // Implicit TLS on another port.
        assert_eq!(
            rules("mx.test:2465", Some(Implicit), false),
            (2465, Implicit, false)
        );
        // EXTENDED asks for EHLO on any port.
        assert_eq!(port_rules(25, None, false, true), (Plain, true));
    }

    fn plan_for(server: &str, secure: Option<i64>, options: &str) -> SmtpPlan {
        plan(
            server,
            Some("client.test".into()),
            None,
            secure,
            None,
            None,
            ConnectOptions::parse(options).unwrap(),
            None,
        )
        .unwrap_or_else(|e| panic!("{server} {secure:?} {options}: {e}"))
    }

    #[test]
    fn plan_applies_the_port_rules_to_the_arguments() {
        use SecureMode::*;
        let got = |p: SmtpPlan| (p.server.port, p.settings.mode, p.settings.extended);
        assert_eq!(got(plan_for("mx.test", None, "")), (25, Plain, false));
        assert_eq!(got(plan_for("mx.test:0", Some(0), "")), (25, Plain, false));
        assert_eq!(got(plan_for("mx.test:587", None, "")), (587, Plain, true));
        // secure omitted or 0 on 465: implicit TLS all the same.
        assert_eq!(
            got(plan_for("mx.test:465", None, "")),
            (465, Implicit, false)
        );
        assert_eq!(
            got(plan_for("mx.test:465", Some(0), "")),
            (465, Implicit, false)
        );
        assert_eq!(
            got(plan_for("mx.test", Some(1), "")),
            (465, Implicit, false)
        );
        assert_eq!(
            got(plan_for("mx.test", None, "SECURE_IMPLICIT")),
            (465, Implicit, false)
        );
        assert_eq!(
            got(plan_for("mx.test:465", Some(2), "")),
            (465, StartTls, false)
        );
        assert_eq!(
            got(plan_for("mx.test", Some(0), "EXTENDED")),
            (25, Plain, true)
        );
        let p = plan_for("mx.test:465", None, "");
        assert_eq!(
            (p.settings.host.as_str(), p.settings.port),
            ("mx.test", 465)
        );
    }

    #[test]
    fn default_ehlo_name_is_a_domain() {
        let name = machine_name();
        assert!(!name.is_empty());
        assert!(
            is_ehlo_domain(&name) || (name.starts_with('[') && name.ends_with(']')),
            "{name:?}"
        );
        // The name plan() uses when none is given.
        let p = plan(
            "mx.test",
            None,
            None,
            None,
            None,
            None,
            Default::default(),
            None,
        )
        .unwrap();
        assert_eq!(p.settings.localname, name);
    }

    #[test]
    fn host_names_that_are_not_domains_become_localhost() {
        assert_eq!(ehlo_name("build-01.example.com"), "build-01.example.com");
        assert_eq!(ehlo_name("host."), "host");
        assert_eq!(ehlo_name("x"), "x");
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            "-a",
            "a-",
            "a.-b",
            "my_host",
            "host name",
            "h\u{f6}st",
            "a:b",
            &"a".repeat(64),
            &["a"; 128].join("."),
        ] {
            assert_eq!(ehlo_name(bad), "localhost", "{bad:?}");
        }
        assert!(is_ehlo_domain(&"a".repeat(63)));
        assert!(is_ehlo_domain(&["a"; 127].join(".")));
    }
}
