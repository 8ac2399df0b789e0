//! Socket ids handed to the host, and the sessions behind them. A socket is
//! used by one thread at a time: a second thread gets "socket busy" at once
//! instead of waiting or interleaving the protocol stream.

use crate::error::MailError;
use crate::events::MailEvent;
use crate::imap::codec::Fragmentizer;
use crate::imap::session::ImapSession;
use crate::net::connection::Connection;
use crossbeam_channel::{Receiver, Sender};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError};
use std::thread::ThreadId;

/// Everything one IMAP socket id stands for.
pub struct ImapSocket {
    pub conn: Connection,
    pub session: ImapSession,
    pub frag: Fragmentizer,
    /// Set by IMAPDisconnect; a thread that looked the id up before it went sees this.
    pub closed: bool,
    /// The timeout given at connect; None = the communications timeout.
    pub timeout: Option<std::time::Duration>,
}

/// Ends a blocking call on a socket from another thread (IMAPCancel).
/// Waits select on `receiver()`; a signal only goes out while a call runs.
pub struct CancelToken {
    tx: Sender<()>,
    rx: Receiver<()>,
    /// Whether a call runs; the lock also orders cancel against begin / end,
    /// so a signal never outlives the call it was meant for.
    busy: Mutex<bool>,
}

impl Default for CancelToken {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(1);
        CancelToken {
            tx,
            rx,
            busy: Mutex::new(false),
        }
    }
}

impl CancelToken {
    pub fn receiver(&self) -> Receiver<()> {
        self.rx.clone()
    }

    /// A blocking call starts: a signal left over from an earlier one is void.
    pub fn begin(&self) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while self.rx.try_recv().is_ok() {}
        *busy = true;
    }

    pub fn end(&self) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while self.rx.try_recv().is_ok() {}
        *busy = false;
    }

    /// True when a call was running and has been told to stop.
    pub fn cancel(&self) -> bool {
        let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if *busy {
            let _ = self.tx.try_send(());
        }
        *busy
    }
}

/// The side of a socket other threads may touch without taking it.
#[derive(Default)]
pub struct SocketControl {
    pub cancel: CancelToken,
    /// The owning thread; None = any thread may use the socket (the default).
    pub owner: Mutex<Option<ThreadId>>,
    /// The event proc given at connect.
    pub event_proc: Option<String>,
    /// Events that happened while no command was running on the socket.
    pub queued: Mutex<Vec<MailEvent>>,
}

impl SocketControl {
    /// Refuses a thread other than the owner.
    pub fn check_owner(&self, id: i64) -> Result<(), MailError> {
        match *self.owner.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(t) if t != std::thread::current().id() => Err(MailError::WrongThread(format!(
                "socket {id} was created with OWNTHREAD by another thread; that thread can hand it over with IMAPAttachThread"
            ))),
            _ => Ok(()),
        }
    }

    pub fn queue(&self, e: MailEvent) {
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    pub fn take_queued(&self) -> Vec<MailEvent> {
        std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One table entry: the session (one thread at a time) and its control side.
pub struct SocketEntry {
    pub state: Mutex<ImapSocket>,
    pub control: Arc<SocketControl>,
}

pub struct SocketTable {
    map: RwLock<Option<HashMap<i64, Arc<SocketEntry>>>>,
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

    /// A new id, for a socket that will be inserted later (asynchronous connect).
    pub fn reserve(&self) -> i64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    pub fn insert(&self, s: ImapSocket, control: Arc<SocketControl>) -> i64 {
        let id = self.reserve();
        self.insert_at(id, s, control);
        id
    }

    pub fn insert_at(&self, id: i64, s: ImapSocket, control: Arc<SocketControl>) {
        let entry = SocketEntry {
            state: Mutex::new(s),
            control,
        };
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(id, Arc::new(entry));
    }

    pub fn get(&self, id: i64) -> Result<Arc<SocketEntry>, MailError> {
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
pub fn lock(entry: &SocketEntry, id: i64) -> Result<SocketGuard<'_>, MailError> {
    entry.control.check_owner(id)?;
    let guard = match entry.state.try_lock() {
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
