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

/// What a table holds: a session that knows whether it was closed and can
/// be marked unusable after a panic.
pub trait TableSocket {
    fn is_closed(&self) -> bool;
    fn poison(&mut self, e: MailError);
}

impl TableSocket for ImapSocket {
    fn is_closed(&self) -> bool {
        self.closed
    }
    fn poison(&mut self, e: MailError) {
        self.session.broken.get_or_insert(e);
    }
}

/// One table entry: the session (one thread at a time) and its control side.
pub struct SocketEntry<T = ImapSocket> {
    pub state: Mutex<T>,
    pub control: Arc<SocketControl>,
}

/// Socket ids are unique across IMAP and SMTP, so one is never mistaken
/// for the other.
static NEXT_ID: AtomicI64 = AtomicI64::new(1);

pub struct SocketTable<T = ImapSocket> {
    map: RwLock<Option<HashMap<i64, Arc<SocketEntry<T>>>>>,
    kind: &'static str,
}

/// Exclusive use of one socket for the length of a command.
pub type SocketGuard<'a, T = ImapSocket> = MutexGuard<'a, T>;

impl<T> SocketTable<T> {
    pub const fn new(kind: &'static str) -> Self {
        SocketTable {
            map: RwLock::new(None),
            kind,
        }
    }

    /// A new id, for a socket that will be inserted later (asynchronous connect).
    pub fn reserve(&self) -> i64 {
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    }

    pub fn insert(&self, s: T, control: Arc<SocketControl>) -> i64 {
        let id = self.reserve();
        self.insert_at(id, s, control);
        id
    }

    pub fn insert_at(&self, id: i64, s: T, control: Arc<SocketControl>) {
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

    pub fn get(&self, id: i64) -> Result<Arc<SocketEntry<T>>, MailError> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|m| m.get(&id))
            .cloned()
            .ok_or_else(|| {
                MailError::BadSocket(format!("{id} is not an open {} socket", self.kind))
            })
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

/// Takes the socket for this thread, or fails at once when another has it.
pub fn lock<T: TableSocket>(
    entry: &SocketEntry<T>,
    id: i64,
) -> Result<SocketGuard<'_, T>, MailError> {
    entry.control.check_owner(id)?;
    let guard = match entry.state.try_lock() {
        Ok(g) => g,
        Err(TryLockError::WouldBlock) => return Err(MailError::SocketBusy),
        // A command panicked while holding it: the stream state is unknown.
        Err(TryLockError::Poisoned(p)) => {
            let mut g = p.into_inner();
            g.poison(MailError::Internal(
                "an earlier command failed internally".into(),
            ));
            g
        }
    };
    if guard.is_closed() {
        return Err(MailError::BadSocket(format!("{id} was disconnected")));
    }
    Ok(guard)
}

pub static IMAP_SOCKETS: SocketTable = SocketTable::new("IMAP");
