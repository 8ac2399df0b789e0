//! A connection as a calling thread sees it: requests to the I/O thread,
//! events back on the connection's own channel, waits bounded by deadlines.

use super::address::{Host, ServerAddr};
use super::reactor::{Event, Flow, Io, Request, TlsPeer};
use super::tls::client_ssl;
use crate::error::MailError;
use crate::imap::driver::Transport;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

pub struct Connection {
    id: usize,
    events: Receiver<Event>,
    flow: Arc<Flow>,
    io: Io,
    pub peer: SocketAddr,
    pub host: Host,
    /// Certificate verification for the handshake this connection may do.
    pub verify: bool,
    closed: bool,
}

/// Maps a connect / socket error to the documented codes.
fn io_error(e: &io::Error, target: &str) -> MailError {
    let detail = format!("{target}: {e}");
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::ConnectionRefused, _) => MailError::Refused(detail),
        (
            _,
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT),
        ) => MailError::Unreachable(detail),
        (
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted,
            _,
        ) => MailError::Closed(detail),
        _ => MailError::Network(detail),
    }
}

/// Which failure of several addresses tells the caller most.
fn rank(e: &MailError) -> u8 {
    match e {
        MailError::Refused(_) => 4,
        MailError::Timeout(_) => 3,
        MailError::Unreachable(_) => 2,
        MailError::Network(_) => 1,
        _ => 0,
    }
}

impl Connection {
    /// Connects to the first address that accepts, within the deadline.
    pub fn open(
        server: &ServerAddr,
        addrs: &[SocketAddr],
        verify: bool,
        deadline: Instant,
        status: &mut dyn FnMut(&str),
    ) -> Result<Connection, MailError> {
        let io = Io::global();
        let mut best: Option<MailError> = None;
        for (k, addr) in addrs.iter().enumerate() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // Each address gets its share of the time left, so one that
            // drops packets cannot use up the whole timeout.
            let left = (addrs.len() - k) as u32;
            let attempt_deadline = now + (deadline - now) / left;
            status(&format!("Connecting to {server} ({addr})"));
            let id = io.new_id();
            let (tx, rx) = crossbeam_channel::unbounded();
            let flow = Arc::new(Flow::default());
            io.request(Request::Connect {
                id,
                addr: *addr,
                events: tx,
                flow: flow.clone(),
            });
            let mut conn = Connection {
                id,
                events: rx,
                flow,
                io: io.clone(),
                peer: *addr,
                host: server.host.clone(),
                verify,
                closed: false,
            };
            let failure = match conn.events.recv_deadline(attempt_deadline) {
                Ok(Event::Connected { peer }) => {
                    status(&format!("Connected to {peer}"));
                    conn.peer = peer;
                    return Ok(conn);
                }
                Ok(Event::Failed(e)) => io_error(&e, &addr.to_string()),
                Ok(other) => MailError::Internal(format!("unexpected event {other:?}")),
                Err(_) => MailError::Timeout(format!("the connection to {server} ({addr})")),
            };
            if best.as_ref().is_none_or(|b| rank(&failure) > rank(b)) {
                best = Some(failure);
            }
        }
        Err(best.unwrap_or_else(|| MailError::Timeout(format!("the connection to {server}"))))
    }

    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.io.request(Request::Close { id: self.id });
        }
    }

    fn take(&self, ev: Event) -> Result<Vec<u8>, MailError> {
        match ev {
            Event::Data(bytes) => {
                self.flow.queued.fetch_sub(bytes.len(), Ordering::AcqRel);
                if self.flow.paused.swap(false, Ordering::AcqRel) {
                    self.io.request(Request::Resume { id: self.id });
                }
                Ok(bytes)
            }
            // Upload progress: no data, but the wait clock restarts.
            Event::Written(_) => Ok(Vec::new()),
            Event::Closed => Err(MailError::Closed("the server closed the connection".into())),
            Event::Failed(e) => Err(io_error(&e, &self.peer.to_string())),
            Event::TlsDone(Err(e)) => Err(e),
            other => Err(MailError::Internal(format!("unexpected event {other:?}"))),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

impl Transport for Connection {
    fn send(&mut self, bytes: &[u8]) -> Result<(), MailError> {
        if self.closed {
            return Err(MailError::Closed("the connection is closed".into()));
        }
        self.io.request(Request::Send {
            id: self.id,
            bytes: bytes.to_vec(),
        });
        Ok(())
    }

    fn recv(&mut self, deadline: Option<Instant>) -> Result<Option<Vec<u8>>, MailError> {
        let ev = match deadline {
            Some(d) => match self.events.recv_deadline(d) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(MailError::Closed("the connection is closed".into()))
                }
            },
            None => self
                .events
                .recv()
                .map_err(|_| MailError::Closed("the connection is closed".into()))?,
        };
        self.take(ev).map(Some)
    }

    fn start_tls(&mut self, consumed: u64, deadline: Option<Instant>) -> Result<String, MailError> {
        let (ssl, note) = client_ssl(&self.host, self.verify)?;
        let host = self.host.as_tls_name();
        self.io.request(Request::StartTls {
            id: self.id,
            ssl: Box::new(ssl),
            consumed,
            peer: TlsPeer {
                host: host.clone(),
                verify: self.verify,
            },
        });
        loop {
            let ev = match deadline {
                Some(d) => self
                    .events
                    .recv_deadline(d)
                    .map_err(|_| MailError::Timeout("the TLS handshake".into()))?,
                None => self
                    .events
                    .recv()
                    .map_err(|_| MailError::Closed("the connection is closed".into()))?,
            };
            match ev {
                Event::TlsDone(Ok(info)) => {
                    let resumed = if info.resumed {
                        ", session resumed"
                    } else {
                        ""
                    };
                    let checked = if self.verify {
                        format!(", certificate verified for {host}")
                    } else {
                        String::new()
                    };
                    return Ok(format!(
                        "TLS established: {} {}{checked}{resumed} ({note})",
                        info.version, info.cipher
                    ));
                }
                // Plaintext that was already on its way before the handshake.
                Event::Data(bytes) => {
                    return Err(MailError::Injection(format!(
                        "{} plaintext byte(s) before the handshake",
                        bytes.len()
                    )))
                }
                other => {
                    self.take(other)?;
                }
            }
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}
