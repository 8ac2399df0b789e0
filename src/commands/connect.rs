//! IMAPConnect with every connect option, asynchronous connects and
//! IMAPWait, IMAPCancel and IMAPAttachThread.

use super::Ret;
use crate::config::{self, comms_timeout};
use crate::error::MailError;
use crate::events::{EventKind, MailEvent};
use crate::host_call::{CommandObserver, HostCall};
use crate::imap::codec::{is_safe_text, Fragmentizer, FrameLimits};
use crate::imap::connect::{AuthSettings, ConnectOp, Credentials, SecureMode};
use crate::imap::driver::{run, Observer, Transport};
use crate::imap::session::ImapSession;
use crate::net::address::{parse_server, resolve, ServerAddr};
use crate::net::connection::Connection;
use crate::net::proxy::{parse_proxy, ProxySpec};
use crate::net::tls::TlsSettings;
use crate::options::{AuthType, ConnectOptions};
use crate::socket_table::{ImapSocket, SocketControl, IMAP_SOCKETS};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use plugin_abi::{MAILEXT_FALSE, MAILEXT_KIND_CHARACTER, MAILEXT_KIND_INTEGER};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IMAP_PORT: u16 = 143;
const IMAPS_PORT: u16 = 993;

/// Argument positions of IMAPConnect.
const SERVER: usize = 0;
const USERNAME: usize = 1;
const PASSWORD: usize = 2;
const RESPONSES: usize = 4;
const SECURE: usize = 5;
const VERIFY: usize = 6;
const TIMEOUT: usize = 7;
const OPTIONS: usize = 8;
const EVENTPROC: usize = 9;

/// Everything one connect needs, decided before any byte moves.
pub struct ConnectPlan {
    pub server: ServerAddr,
    creds: Credentials,
    mode: SecureMode,
    tls: TlsSettings,
    timeout: Duration,
    /// The timeout the socket keeps for its commands (None: commstimeout).
    explicit_timeout: Option<Duration>,
    prefer_ipv6: bool,
    tunnel: Option<ProxySpec>,
    auth: AuthType,
    identify: bool,
    own_thread: bool,
    asynchronous: bool,
    event_proc: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.is_empty())
}

impl ConnectPlan {
    /// Reads IMAPConnect's arguments; an omitted (or empty) one takes the
    /// configured default.
    pub fn from_call(call: &HostCall) -> Result<ConnectPlan, MailError> {
        let d = config::defaults();
        let given_text = match call.kind(OPTIONS) {
            MAILEXT_KIND_CHARACTER => non_empty(call.string(OPTIONS)?),
            _ => None,
        };
        let options = match (call.kind(OPTIONS), given_text) {
            (_, Some(text)) => ConnectOptions::parse(&text)?,
            (MAILEXT_KIND_INTEGER, _) => {
                ConnectOptions::from_bits(call.integer(OPTIONS)?.unwrap_or(0))?
            }
            _ => match &d.options {
                Some(config::Value::Integer(b)) => ConnectOptions::from_bits(*b)?,
                Some(config::Value::Text(t)) => ConnectOptions::parse(t)?,
                None => ConnectOptions::default(),
            },
        };
        // Omitted, or empty with a configured default: the default.
        let pick = |i: usize, default: &Option<String>, what: &str| {
            let given = call.string(i)?;
            match (given, default) {
                (Some(v), Some(d)) if v.is_empty() => Ok(d.clone()),
                (Some(v), _) => Ok(v),
                (None, Some(d)) => Ok(d.clone()),
                (None, None) => Err(MailError::ParamCount(format!(
                    "argument {} ({what}) is required unless MailSetConfig(\"{what}\", ...) gives a default",
                    i + 1
                ))),
            }
        };
        let username = pick(USERNAME, &d.username, "username")?;
        // OAuth types take the access token: the bearertoken setting first.
        let oauth = matches!(options.auth, AuthType::XOAuth2 | AuthType::OAuthBearer);
        let secret_default = if oauth && d.bearertoken.is_some() {
            &d.bearertoken
        } else {
            &d.password
        };
        let password = pick(PASSWORD, secret_default, "password")?;
        let server = non_empty(call.string(SERVER)?)
            .or(d.hostname.clone())
            .unwrap_or_default();
        if !is_safe_text(&username) || !is_safe_text(&password) {
            return Err(MailError::UnsafeCredentials);
        }
        let arg_mode = match call.integer(SECURE)? {
            None | Some(0) => None,
            Some(1) => Some(SecureMode::Implicit),
            Some(2) => Some(SecureMode::StartTls),
            Some(n) => {
                return Err(MailError::BadValue(format!(
                    "secure must be 0, 1 or 2, not {n}"
                )))
            }
        };
        let chosen = secure_mode(arg_mode, &options)?;
        let default_port = d.remoteport.unwrap_or(match chosen {
            Some(SecureMode::Implicit) => IMAPS_PORT,
            _ => IMAP_PORT,
        });
        let server = parse_server(&server, default_port)?;
        // A bare TUNNEL with no proxy configured is a port forward already in
        // place (SocketTools): connect directly, with no port-based defaults.
        let forward = options.tunnel == Some(None) && d.tunnel.is_none();
        let mode = if forward {
            chosen.unwrap_or(SecureMode::Plain)
        } else {
            mode_for_port(chosen, server.port)
        };
        // kUnknown keeps the safe default.
        let verify = call.boolean(VERIFY)? != Some(MAILEXT_FALSE) && !options.trusted_site;
        let explicit_timeout = match call.integer(TIMEOUT)? {
            None | Some(0) => d.timeout,
            Some(t) if (1..=config::MAX_COMMS_TIMEOUT_SECS as i64).contains(&t) => Some(t as u64),
            Some(t) => {
                return Err(MailError::BadValue(format!(
                    "timeout must be 0 (default) to {} seconds, not {t}",
                    config::MAX_COMMS_TIMEOUT_SECS
                )))
            }
        }
        .map(Duration::from_secs);
        let tunnel = match (&options.tunnel, &d.tunnel) {
            (Some(Some(url)), _) => Some(parse_proxy(url)?),
            (Some(None), Some(url)) => Some(parse_proxy(url)?),
            _ => None,
        };
        Ok(ConnectPlan {
            server,
            creds: Credentials { username, password },
            mode,
            tls: TlsSettings {
                verify,
                fallback: options.fallback,
                client_cert: options.client_cert.clone(),
            },
            timeout: explicit_timeout.unwrap_or_else(comms_timeout),
            explicit_timeout,
            prefer_ipv6: options.prefer_ipv6,
            tunnel,
            auth: options.auth,
            identify: options.identify,
            own_thread: options.own_thread,
            asynchronous: options.asynchronous,
            event_proc: non_empty(call.string(EVENTPROC)?),
        })
    }

    /// Connects, secures and logs in.
    pub fn establish(
        &self,
        obs: &mut dyn Observer,
        cancel: Receiver<()>,
    ) -> Result<ImapSocket, MailError> {
        let deadline = Instant::now() + self.timeout;
        let (mut conn, leftover) = open_transport(
            &Route {
                server: &self.server,
                tunnel: self.tunnel.as_ref(),
                prefer_ipv6: self.prefer_ipv6,
                tls: self.tls.clone(),
                implicit: self.mode == SecureMode::Implicit,
                hint: "for STARTTLS use secure = 2",
            },
            deadline,
            cancel,
            obs,
        )?;
        let mut frag = Fragmentizer::new(FrameLimits::default());
        frag.push(&leftover);
        let mut session = ImapSession::new(self.timeout);
        session.tls = self.mode == SecureMode::Implicit;
        let settings = AuthSettings {
            auth: self.auth,
            identify: self.identify,
            host: self.server.host.as_tls_name(),
            port: self.server.port,
        };
        run(
            &mut ConnectOp::new(self.mode, self.creds.clone(), settings),
            &mut session,
            &mut frag,
            &mut conn,
            obs,
        )?;
        Ok(ImapSocket {
            conn,
            session,
            frag,
            closed: false,
            timeout: self.explicit_timeout,
        })
    }

    fn control(&self) -> Arc<SocketControl> {
        Arc::new(SocketControl {
            owner: Mutex::new(self.own_thread.then(|| std::thread::current().id())),
            event_proc: self.event_proc.clone(),
            ..Default::default()
        })
    }
}

/// The secure argument and the SECURE_* options must agree.
fn secure_mode(
    arg: Option<SecureMode>,
    options: &ConnectOptions,
) -> Result<Option<SecureMode>, MailError> {
    let opt = if options.secure_implicit {
        Some(SecureMode::Implicit)
    } else if options.secure_explicit {
        Some(SecureMode::StartTls)
    } else {
        None
    };
    match (arg, opt) {
        (Some(a), Some(o)) if a != o => Err(MailError::BadValue(
            "the secure argument and the SECURE_* option ask for different modes".into(),
        )),
        _ => Ok(arg.or(opt)),
    }
}

/// The pages: the secure port with no secure mode means implicit TLS.
fn mode_for_port(chosen: Option<SecureMode>, port: u16) -> SecureMode {
    chosen.unwrap_or(if port == IMAPS_PORT {
        SecureMode::Implicit
    } else {
        SecureMode::Plain
    })
}

/// How to reach a mail server: directly or through a proxy, with or
/// without TLS from the first byte.
pub struct Route<'a> {
    pub server: &'a ServerAddr,
    pub tunnel: Option<&'a ProxySpec>,
    pub prefer_ipv6: bool,
    pub tls: TlsSettings,
    pub implicit: bool,
    /// Said when a server answers implicit TLS in plaintext.
    pub hint: &'static str,
}

/// Resolves, connects (Happy Eyeballs), opens the tunnel and does implicit
/// TLS. Returns the connection and bytes the server already sent.
pub fn open_transport(
    r: &Route,
    deadline: Instant,
    cancel: Receiver<()>,
    obs: &mut dyn Observer,
) -> Result<(Connection, Vec<u8>), MailError> {
    let first_hop = match r.tunnel {
        Some(p) => p.server_addr(),
        None => r.server.clone(),
    };
    let addrs = resolve(&first_hop, deadline, &cancel)?;
    let mut conn = Connection::open(
        &first_hop,
        &addrs,
        r.prefer_ipv6,
        r.tls.clone(),
        deadline,
        cancel,
        obs,
    )?;
    let mut leftover = Vec::new();
    if let Some(proxy) = r.tunnel {
        leftover = conn.tunnel(proxy, r.server, deadline, obs)?;
    }
    // TLS and certificate checks are for the mail server, also through a proxy.
    conn.host = r.server.host.clone();
    conn.port = r.server.port;
    if r.implicit {
        obs.status("Starting the TLS handshake");
        let info = conn.start_tls(0, Some(deadline)).map_err(|e| match e {
            // Nothing was consumed yet, so these bytes are a plaintext greeting.
            MailError::Injection(_) => MailError::TlsHandshake(format!(
                "{} did not answer with TLS: it sent plaintext first ({})",
                r.server, r.hint
            )),
            e => e,
        })?;
        obs.status(&info);
    }
    Ok((conn, leftover))
}

pub fn connect(call: &HostCall) -> Result<Ret, MailError> {
    let plan = ConnectPlan::from_call(call)?;
    let id = IMAP_SOCKETS.reserve();
    let control = plan.control();
    if plan.asynchronous {
        return start_async(call, plan, id, control);
    }
    let mut obs =
        CommandObserver::new(call, call.list(RESPONSES))?.with_events(plan.event_proc.clone(), id);
    let r = plan.establish(&mut obs, control.cancel.receiver());
    if obs.wants_events() {
        for e in connect_events(&plan, r.as_ref().err()) {
            obs.event(e);
        }
    }
    let sock = r?;
    IMAP_SOCKETS.insert_at(id, sock, control);
    obs.status_with(&|| format!("Socket {id} is ready"));
    Ok(Ret::Socket(id))
}

/// CONNECT with the outcome, after TIMEOUT / CANCEL when that was it.
fn connect_events(plan: &ConnectPlan, e: Option<&MailError>) -> Vec<MailEvent> {
    match e {
        None => vec![MailEvent::new(
            EventKind::Connect,
            0,
            format!("connected to {} as {}", plan.server, plan.creds.username),
        )],
        Some(e) => MailEvent::for_error(e)
            .filter(|ev| ev.kind != EventKind::Disconnect)
            .into_iter()
            .chain([MailEvent::new(
                EventKind::Connect,
                e.code() as i64,
                e.to_string(),
            )])
            .collect(),
    }
}

/// What an asynchronous connect did, kept for IMAPWait to hand over.
#[derive(Default)]
struct Recorded {
    status: Vec<String>,
    responses: Vec<String>,
    events: Vec<MailEvent>,
}

impl Observer for Recorded {
    fn status(&mut self, message: &str) {
        self.status.push(message.to_string());
    }
    fn response(&mut self, line: &str) {
        self.responses.push(line.to_string());
    }
    fn event(&mut self, e: MailEvent) {
        self.events.push(e);
    }
}

struct Pending {
    done: Receiver<Result<(), MailError>>,
    recorded: Arc<Mutex<Recorded>>,
    control: Arc<SocketControl>,
    server: String,
}

/// Asynchronous connects that IMAPWait has not collected yet.
static PENDING: Mutex<Option<HashMap<i64, Pending>>> = Mutex::new(None);

fn pending<T>(f: impl FnOnce(&mut HashMap<i64, Pending>) -> T) -> T {
    f(PENDING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new))
}

fn start_async(
    call: &HostCall,
    plan: ConnectPlan,
    id: i64,
    control: Arc<SocketControl>,
) -> Result<Ret, MailError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    pending(|p| {
        p.insert(
            id,
            Pending {
                done: rx,
                recorded: recorded.clone(),
                control: control.clone(),
                server: plan.server.to_string(),
            },
        )
    });
    let ctl = control.clone();
    // Armed before the thread runs, so an IMAPCancel right away still counts.
    control.cancel.begin();
    let spawned = std::thread::Builder::new()
        .name("mailext-connect".into())
        .spawn(move || {
            let mut log = Recorded::default();
            let r = plan.establish(&mut log, ctl.cancel.receiver());
            ctl.cancel.end();
            for e in log.events.drain(..) {
                ctl.queue(e);
            }
            for e in connect_events(&plan, r.as_ref().err()) {
                ctl.queue(e);
            }
            {
                let mut shared = recorded.lock().unwrap_or_else(|p| p.into_inner());
                shared.status.append(&mut log.status);
                shared.responses.append(&mut log.responses);
            }
            // Under the table lock: an IMAPDisconnect that came first wins.
            let outcome = pending(|p| match (r, p.contains_key(&id)) {
                (Ok(sock), true) => {
                    IMAP_SOCKETS.insert_at(id, sock, ctl.clone());
                    Ok(())
                }
                (Ok(mut sock), false) => {
                    sock.conn.close();
                    Err(MailError::Cancelled(
                        "disconnected before the connect finished".into(),
                    ))
                }
                (Err(e), _) => Err(e),
            });
            let _ = tx.send(outcome);
        });
    if let Err(e) = spawned {
        control.cancel.end();
        pending(|p| p.remove(&id));
        return Err(MailError::Internal(format!(
            "cannot start the connect thread: {e}"
        )));
    }
    call.status(&format!(
        "Socket {id}: connecting in the background; IMAPWait reports the outcome"
    ));
    Ok(Ret::Socket(id))
}

/// The control side of a socket, connected or still connecting.
fn control_of(id: i64) -> Result<Arc<SocketControl>, MailError> {
    if let Ok(e) = IMAP_SOCKETS.get(id) {
        return Ok(e.control.clone());
    }
    if let Ok(e) = super::smtp::SMTP_SOCKETS.get(id) {
        return Ok(e.control.clone());
    }
    pending(|p| p.get(&id).map(|x| x.control.clone()))
        .ok_or_else(|| MailError::BadSocket(format!("{id} is not an open socket")))
}

/// IMAPDisconnect of a connect still running: forget it; the connect
/// thread then closes what it built. False when `id` is not pending.
pub fn forget_pending(id: i64) -> bool {
    match pending(|p| p.remove(&id)) {
        Some(x) => {
            x.control.cancel.cancel();
            true
        }
        None => false,
    }
}

/// Whether `id` is an asynchronous connect still running.
pub fn still_connecting(id: i64) -> Option<String> {
    pending(|p| p.get(&id).map(|x| x.server.clone()))
}

/// IMAPWait(socket [, timeout, stsproc, responselist]): the outcome of an
/// asynchronous connect, with its status messages, responses and events.
pub fn wait(call: &HostCall) -> Result<Ret, MailError> {
    let id = call.integer(0)?.unwrap_or_default();
    let secs = call.integer(1)?.unwrap_or(0);
    if !(0..=config::MAX_COMMS_TIMEOUT_SECS as i64).contains(&secs) {
        return Err(MailError::BadValue(format!(
            "timeout must be 0 (the communications timeout) to {} seconds, not {secs}",
            config::MAX_COMMS_TIMEOUT_SECS
        )));
    }
    let limit = if secs == 0 {
        comms_timeout()
    } else {
        Duration::from_secs(secs as u64)
    };
    let control = control_of(id)?;
    control.check_owner(id)?;
    let mut obs =
        CommandObserver::new(call, call.responses())?.with_events(control.event_proc.clone(), id);
    let Some((done, recorded, server)) = pending(|p| {
        p.get(&id)
            .map(|x| (x.done.clone(), x.recorded.clone(), x.server.clone()))
    }) else {
        // Already collected, or a synchronous socket: nothing to wait for.
        for e in control.take_queued() {
            obs.event(e);
        }
        return Ok(Ret::Integer(0));
    };
    let outcome = match done.recv_timeout(limit) {
        Ok(r) => r,
        Err(RecvTimeoutError::Timeout) => {
            return Err(MailError::InProgress(format!(
                "the connect to {server} has not finished after {} s; call IMAPWait again",
                limit.as_secs()
            )))
        }
        // Another IMAPWait collected it first.
        Err(RecvTimeoutError::Disconnected) => Err(MailError::BadSocket(format!(
            "{id}: its outcome went to another IMAPWait"
        ))),
    };
    pending(|p| p.remove(&id));
    let rec = std::mem::take(&mut *recorded.lock().unwrap_or_else(|p| p.into_inner()));
    for line in &rec.responses {
        obs.response(line);
    }
    for m in &rec.status {
        obs.status(m);
    }
    for e in control.take_queued() {
        obs.event(e);
    }
    outcome.map(|_| Ret::Integer(0))
}

/// IMAPCancel(socket): ends the blocking call running on the socket (from
/// another thread). 1 when a call was cancelled, 0 when none was running.
pub fn cancel(call: &HostCall) -> Result<Ret, MailError> {
    let id = call.integer(0)?.unwrap_or_default();
    let control = control_of(id)?;
    if control.cancel.cancel() {
        call.status(&format!("Socket {id}: cancel requested"));
        Ok(Ret::Integer(1))
    } else {
        call.status(&format!(
            "Socket {id}: no call is running; nothing to cancel"
        ));
        Ok(Ret::Integer(0))
    }
}

/// IMAPAttachThread(socket): the calling thread becomes the socket's owner.
pub fn attach_thread(call: &HostCall) -> Result<Ret, MailError> {
    let id = call.integer(0)?.unwrap_or_default();
    // Taking the socket proves no other thread is inside a command on it.
    fn claim<T>(entry: &crate::socket_table::SocketEntry<T>) -> Result<(), MailError> {
        let held = entry.state.try_lock();
        if let Err(std::sync::TryLockError::WouldBlock) = held {
            return Err(MailError::SocketBusy);
        }
        *entry
            .control
            .owner
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(std::thread::current().id());
        Ok(())
    }
    match super::smtp::SMTP_SOCKETS.get(id) {
        Ok(entry) => claim(&entry)?,
        Err(_) => claim(&*IMAP_SOCKETS.get(id)?)?,
    }
    call.status(&format!("Socket {id} now belongs to this thread"));
    Ok(Ret::Integer(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_port_means_implicit_unless_a_mode_is_given() {
        assert_eq!(mode_for_port(None, 993), SecureMode::Implicit);
        assert_eq!(mode_for_port(None, 143), SecureMode::Plain);
        assert_eq!(
            mode_for_port(Some(SecureMode::StartTls), 993),
            SecureMode::StartTls
        );
        let implicit = ConnectOptions::parse("SECURE_IMPLICIT").unwrap();
        let none = ConnectOptions::default();
        assert_eq!(
            secure_mode(None, &implicit).unwrap(),
            Some(SecureMode::Implicit)
        );
        assert_eq!(
            secure_mode(Some(SecureMode::Implicit), &implicit).unwrap(),
            Some(SecureMode::Implicit)
        );
        assert!(secure_mode(Some(SecureMode::StartTls), &implicit).is_err());
        assert_eq!(secure_mode(None, &none).unwrap(), None);
    }
}
