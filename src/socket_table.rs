//! Socket ids handed to the host, and the sessions behind them. A socket is
//! used by one thread at a time: a second thread gets "socket busy" at once
//! instead of waiting or interleaving the protocol stream.

use crate::error::MailError;
use crate::imap::codec::Fragmentizer;
use crate::imap::session::ImapSession;
use crate::net::connection::Connection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError};

/// Everything one IMAP socket id stands for.
pub struct ImapSocket {
    pub conn: Connection,
    pub session: ImapSession,
    pub frag: Fragmentizer,
    /// Set by IMAPDisconnect; a thread that looked the id up before it went sees this.
    pub closed: bool,
}

pub struct SocketTable {
    map: RwLock<Option<HashMap<i64, Arc<Mutex<ImapSocket>>>>>,
    next: AtomicI64,
}

/// Exclusive use of one socket for the length of a command.
pub type SocketGuard<'a> = MutexGuard<'a, ImapSocket>;

impl SocketTable {
    pub const fn new() -> Self {
        SocketTable {
            map: RwLock::new(None),
            next: AtomicI64::new(1),
        }
    }

    pub fn insert(&self, s: ImapSocket) -> i64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(id, Arc::new(Mutex::new(s)));
        id
    }

    pub fn get(&self, id: i64) -> Result<Arc<Mutex<ImapSocket>>, MailError> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|m| m.get(&id))
            .cloned()
            .ok_or_else(|| MailError::BadSocket(format!("{id} is not an open IMAP socket")))
    }

    pub fn remove(&self, id: i64) {
        if let Some(m) = self.map.write().unwrap_or_else(|p| p.into_inner()).as_mut() {
            m.remove(&id);
        }
    }

    pub fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, HashMap::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for SocketTable {
    fn default() -> Self {
        Self::new()
    }
}

/// Takes the socket for this thread, or fails at once when another has it.
pub fn lock(entry: &Mutex<ImapSocket>, id: i64) -> Result<SocketGuard<'_>, MailError> {
    let guard = match entry.try_lock() {
        Ok(g) => g,
        Err(TryLockError::WouldBlock) => return Err(MailError::SocketBusy),
        // A command panicked while holding it: the stream state is unknown.
        Err(TryLockError::Poisoned(p)) => {
            let mut g = p.into_inner();
            g.session.broken.get_or_insert(MailError::Internal(
                "an earlier command failed internally".into(),
            ));
            g
        }
    };
    if guard.closed {
        return Err(MailError::BadSocket(format!("{id} was disconnected")));
    }
    Ok(guard)
}

pub static IMAP_SOCKETS: SocketTable = SocketTable::new();
