//! IMAPConnect, IMAPDisconnect, IMAPNoOp.

use super::Ret;
use crate::config::comms_timeout;
use crate::error::MailError;
use crate::host_call::{CommandObserver, HostCall};
use crate::imap::codec::{is_safe_text, Fragmentizer, FrameLimits};
use crate::imap::connect::{ConnectOp, Credentials, SecureMode};
use crate::imap::driver::{run, Observer, Transport};
use crate::imap::session::{ImapSession, Operation, Phase};
use crate::imap::simple::{LogoutOp, NoopOp};
use crate::net::address::{parse_server, resolve};
use crate::net::connection::Connection;
use crate::socket_table::{lock, ImapSocket, IMAP_SOCKETS};
use plugin_abi::MAILEXT_FALSE;
use std::time::Instant;

const IMAP_PORT: u16 = 143;
const IMAPS_PORT: u16 = 993;

pub fn connect(call: &HostCall) -> Result<Ret, MailError> {
    let server = call.string(0)?.unwrap_or_default();
    let username = call.string(1)?.unwrap_or_default();
    let password = call.string(2)?.unwrap_or_default();
    let list = call.list(4);
    let mode = match call.integer(5)? {
        None | Some(0) => SecureMode::Plain,
        Some(1) => SecureMode::Implicit,
        Some(2) => SecureMode::StartTls,
        Some(n) => {
            return Err(MailError::BadValue(format!(
                "secure must be 0, 1 or 2, not {n}"
            )))
        }
    };
    // kUnknown keeps the safe default.
    let verify = call.boolean(6)? != Some(MAILEXT_FALSE);
    if !is_safe_text(&username) || !is_safe_text(&password) {
        return Err(MailError::UnsafeCredentials);
    }
    let addr = parse_server(
        &server,
        if mode == SecureMode::Implicit {
            IMAPS_PORT
        } else {
            IMAP_PORT
        },
    )?;
    let mut obs = CommandObserver::new(call, list)?;

    let timeout = comms_timeout();
    let deadline = Instant::now() + timeout;
    let addrs = resolve(&addr, deadline)?;
    let mut conn = Connection::open(&addr, &addrs, verify, deadline, &mut |m| call.status(m))?;
    let mut session = ImapSession::new(timeout);
    let mut frag = Fragmentizer::new(FrameLimits::default());
    if mode == SecureMode::Implicit {
        obs.status("Starting the TLS handshake");
        let info = conn.start_tls(0, Some(deadline)).map_err(|e| match e {
            // Nothing was consumed yet, so these bytes are a plaintext greeting.
            MailError::Injection(_) => MailError::TlsHandshake(format!(
                "{addr} did not answer with TLS: it sent plaintext first (for STARTTLS use secure = 2)"
            )),
            e => e,
        })?;
        obs.status(&info);
        session.tls = true;
    }
    let creds = Credentials { username, password };
    run(
        &mut ConnectOp::new(mode, creds),
        &mut session,
        &mut frag,
        &mut conn,
        &mut obs,
    )?;
    let id = IMAP_SOCKETS.insert(ImapSocket {
        conn,
        session,
        frag,
        closed: false,
    });
    obs.status(&format!("Socket {id} is ready"));
    Ok(Ret::Socket(id))
}

/// Closes and frees a socket the host never received.
pub fn abandon(id: i64) {
    if let Ok(entry) = IMAP_SOCKETS.get(id) {
        IMAP_SOCKETS.remove(id);
        if let Ok(mut s) = lock(&entry, id) {
            s.closed = true;
            s.conn.close();
        }
    }
}

/// Runs `f` with exclusive use of the socket in argument 0, the current
/// timeout, and an observer feeding the stsproc and the response list.
pub(super) fn with_socket<T>(
    call: &HostCall,
    f: impl FnOnce(&mut ImapSocket, &mut CommandObserver) -> Result<T, MailError>,
) -> Result<T, MailError> {
    let id = call.integer(0)?.unwrap_or_default();
    let entry = IMAP_SOCKETS.get(id)?;
    let mut guard = lock(&entry, id)?;
    let mut obs = CommandObserver::new(call, call.responses())?;
    guard.session.clock.set_timeout(comms_timeout());
    f(&mut guard, &mut obs)
}

/// Runs one operation on the socket in argument 0.
pub(super) fn on_socket<O: Operation>(call: &HostCall, mut op: O) -> Result<O::Output, MailError> {
    with_socket(call, |s, obs| {
        run(&mut op, &mut s.session, &mut s.frag, &mut s.conn, obs)
    })
}

pub fn noop(call: &HostCall) -> Result<Ret, MailError> {
    on_socket(call, NoopOp::default()).map(|_| Ret::Integer(0))
}

/// LOGOUT, close, free the id. The id is freed even when LOGOUT fails (the
/// server may already be gone); the failure is still reported.
pub fn disconnect(call: &HostCall) -> Result<Ret, MailError> {
    let id = call.integer(0)?.unwrap_or_default();
    let entry = IMAP_SOCKETS.get(id)?;
    let mut guard = lock(&entry, id)?;
    // The list first: if the host refuses it, nothing has happened yet.
    let mut obs = CommandObserver::new(call, call.responses())?;
    IMAP_SOCKETS.remove(id);
    guard.closed = true;
    let s = &mut *guard;
    s.session.clock.set_timeout(comms_timeout());
    let r = if s.session.broken.is_some() || s.session.phase == Phase::Logout {
        Ok(())
    } else {
        run(
            &mut LogoutOp::default(),
            &mut s.session,
            &mut s.frag,
            &mut s.conn,
            &mut obs,
        )
    };
    s.conn.close();
    obs.status(&format!("Socket {id} is closed"));
    r.map(|_| Ret::Integer(0))
}
