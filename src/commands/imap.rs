//! IMAPDisconnect, IMAPNoOp, and running a command on a socket.

use super::connect::still_connecting;
use super::Ret;
use crate::config::comms_timeout;
use crate::error::MailError;
use crate::events::MailEvent;
use crate::host_call::{CommandObserver, HostCall};
use crate::imap::driver::{run, Observer};
use crate::imap::session::{Operation, Phase};
use crate::imap::simple::{LogoutOp, NoopOp};
use crate::socket_table::{lock, ImapSocket, SocketEntry, IMAP_SOCKETS};
use std::sync::Arc;

/// Closes and frees a socket the host never received.
pub fn abandon(id: i64) {
    super::connect::forget_pending(id);
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
    let entry = entry(id)?;
    let mut guard = lock(&entry, id)?;
    let ctl = &entry.control;
    let mut obs =
        CommandObserver::new(call, call.responses())?.with_events(ctl.event_proc.clone(), id);
    for e in ctl.take_queued() {
        obs.event(e);
    }
    let timeout = guard.timeout.unwrap_or_else(comms_timeout);
    guard.session.clock.set_timeout(timeout);
    ctl.cancel.begin();
    let r = f(&mut guard, &mut obs);
    ctl.cancel.end();
    if let Err(e) = &r {
        if let Some(ev) = MailEvent::for_error(e) {
            obs.event(ev);
        }
        // A cancelled command left the stream mid-way: close it cleanly
        // (unless the command could stop at a clean point, like IDLE).
        if matches!(e, MailError::Cancelled(_)) && guard.session.broken.is_some() {
            guard.conn.close();
            obs.status(&format!(
                "Socket {id}: the connection was closed after the cancel; disconnect it"
            ));
        }
    }
    r
}

/// The table entry for `id`, or a clear word about a connect still running.
fn entry(id: i64) -> Result<Arc<SocketEntry>, MailError> {
    IMAP_SOCKETS
        .get(id)
        .map_err(|e| match still_connecting(id) {
            Some(server) => MailError::InProgress(format!(
                "socket {id} is still connecting to {server}; call IMAPWait first"
            )),
            None => e,
        })
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
    // Pending first: the connect thread inserts only while its id is pending.
    let was_pending = super::connect::forget_pending(id);
    let entry = match IMAP_SOCKETS.get(id) {
        Ok(e) => e,
        Err(_) if was_pending => {
            call.status(&format!(
                "Socket {id}: the background connect was cancelled"
            ));
            return Ok(Ret::Integer(0));
        }
        Err(e) => return Err(e),
    };
    let mut guard = lock(&entry, id)?;
    // The list first: if the host refuses it, nothing has happened yet.
    let mut obs = CommandObserver::new(call, call.responses())?
        .with_events(entry.control.event_proc.clone(), id);
    IMAP_SOCKETS.remove(id);
    guard.closed = true;
    let s = &mut *guard;
    s.session
        .clock
        .set_timeout(s.timeout.unwrap_or_else(comms_timeout));
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
    obs.status_with(&|| format!("Socket {id} is closed"));
    r.map(|_| Ret::Integer(0))
}
