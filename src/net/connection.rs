//! A connection as a calling thread sees it: requests to the I/O thread,
//! events back on the connection's own channel, waits bounded by deadlines.

use super::address::{Host, ServerAddr};
use super::eyeballs::{order, Action, Eyeballs, ATTEMPT_DELAY};
use super::proxy::{ProxyHandshake, ProxySpec, ProxyStep};
use super::reactor::{Event, Flow, Io, Request, TlsPeer};
use super::tls::{client_ssl, TlsSettings};
use crate::error::MailError;
use crate::imap::driver::Transport;
use crossbeam_channel::{Receiver, Select};
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
    /// The mail server's name: SNI and certificate checks use it, also
    /// through a proxy.
    pub host: Host,
    /// The mail server's port (the TLS session cache key has it).
    pub port: u16,
    pub tls: TlsSettings,
    /// IMAPCancel's signal, selected on in every wait.
    cancel: Receiver<()>,
    /// Plaintext bytes the proxy exchange consumed before the mail protocol.
    pub pre_consumed: u64,
    /// Bytes the I/O thread has handed to the kernel, in all.
    written: u64,
    closed: bool,
}

/// One connect attempt of several (Happy Eyeballs).
struct Attempt {
    id: usize,
    events: Receiver<Event>,
    flow: Arc<Flow>,
    addr: SocketAddr,
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

fn cancelled() -> MailError {
    MailError::Cancelled("IMAPCancel was called".into())
}

impl Connection {
    /// Connects to whichever address answers first (RFC 8305: the next
    /// address starts after a short delay, or at once when one fails),
    /// within the deadline.
    pub fn open(
        server: &ServerAddr,
        addrs: &[SocketAddr],
        prefer_ipv6: bool,
        tls: TlsSettings,
        deadline: Instant,
        cancel: Receiver<()>,
        status: &mut dyn FnMut(&str),
    ) -> Result<Connection, MailError> {
        let io = Io::global();
        let ordered = order(addrs, prefer_ipv6);
        let mut plan = Eyeballs::new(ordered, Instant::now(), deadline, ATTEMPT_DELAY);
        let mut attempts: Vec<Option<Attempt>> = Vec::new();
        let mut best: Option<MailError> = None;
        let close_all = |attempts: &mut Vec<Option<Attempt>>| {
            for a in attempts.iter_mut().filter_map(Option::take) {
                io.request(Request::Close { id: a.id });
            }
        };
        loop {
            let wait_until = match plan.poll(Instant::now()) {
                Action::Start(i, addr) => {
                    status(&format!("Connecting to {server} ({addr})"));
                    let id = io.new_id();
                    let (tx, rx) = crossbeam_channel::unbounded();
                    let flow = Arc::new(Flow::default());
                    io.request(Request::Connect {
                        id,
                        addr,
                        events: tx,
                        flow: flow.clone(),
                    });
                    attempts.resize_with(attempts.len().max(i + 1), || None);
                    attempts[i] = Some(Attempt {
                        id,
                        events: rx,
                        flow,
                        addr,
                    });
                    continue;
                }
                Action::WaitUntil(t) => t,
                Action::GiveUp => {
                    let in_flight = attempts.iter().any(Option::is_some);
                    close_all(&mut attempts);
                    return Err(match best {
                        Some(b) if !in_flight => b,
                        _ => MailError::Timeout(format!("the connection to {server}")),
                    });
                }
            };
            // Select borrows its receivers: wait on clones of them.
            let live: Vec<(usize, Receiver<Event>)> = attempts
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.as_ref().map(|a| (i, a.events.clone())))
                .collect();
            let mut sel = Select::new();
            for (_, rx) in &live {
                sel.recv(rx);
            }
            let cancel_index = sel.recv(&cancel);
            let Ok(op) = sel.select_deadline(wait_until) else {
                continue;
            };
            if op.index() == cancel_index {
                let _ = op.recv(&cancel);
                close_all(&mut attempts);
                return Err(cancelled());
            }
            let (i, rx) = &live[op.index()];
            let received = op.recv(rx);
            let a = attempts[*i].take().expect("live");
            let i = *i;
            let failure = match received {
                Ok(Event::Connected { peer }) => {
                    close_all(&mut attempts);
                    status(&format!("Connected to {peer}"));
                    return Ok(Connection {
                        id: a.id,
                        events: a.events,
                        flow: a.flow,
                        io: io.clone(),
                        peer,
                        host: server.host.clone(),
                        port: server.port,
                        tls,
                        cancel,
                        pre_consumed: 0,
                        written: 0,
                        closed: false,
                    });
                }
                Ok(Event::Failed(e)) => io_error(&e, &a.addr.to_string()),
                Ok(other) => MailError::Internal(format!("unexpected event {other:?}")),
                Err(_) => MailError::Internal("the I/O thread dropped a connect".into()),
            };
            status(&format!("{failure}"));
            io.request(Request::Close { id: a.id });
            plan.failed(i, Instant::now());
            if best.as_ref().is_none_or(|b| rank(&failure) > rank(b)) {
                best = Some(failure);
            }
        }
    }

    /// Opens a tunnel through the proxy this connection reached, to
    /// `target`. Returns bytes the mail server already sent (normally none).
    pub fn tunnel(
        &mut self,
        proxy: &ProxySpec,
        target: &ServerAddr,
        deadline: Instant,
        status: &mut dyn FnMut(&str),
    ) -> Result<Vec<u8>, MailError> {
        status(&format!("Opening a tunnel to {target} through {proxy}"));
        let mut hs = ProxyHandshake::new(proxy, target);
        let first = hs.initial();
        self.send(&first)?;
        let mut received = 0u64;
        loop {
            let ev = self.next_event(Some(deadline))?.ok_or_else(|| {
                MailError::Timeout(format!("the proxy {proxy} to open the tunnel"))
            })?;
            let bytes = match self.take(ev) {
                Ok(b) => b,
                Err(MailError::Closed(_)) => return Err(hs.on_close()),
                Err(e) => return Err(e),
            };
            if bytes.is_empty() {
                continue;
            }
            received += bytes.len() as u64;
            match hs.on_bytes(&bytes)? {
                ProxyStep::Send(b) => self.send(&b)?,
                ProxyStep::NeedMore => {}
                ProxyStep::Done { leftover } => {
                    self.pre_consumed = received - leftover.len() as u64;
                    status(&format!("Tunnel to {target} open"));
                    return Ok(leftover);
                }
            }
        }
    }

    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.io.request(Request::Close { id: self.id });
        }
    }

    /// The next event, None at the deadline, or an error when cancelled.
    fn next_event(&self, deadline: Option<Instant>) -> Result<Option<Event>, MailError> {
        let gone = || MailError::Closed("the connection is closed".into());
        let deadline = deadline
            .map(crossbeam_channel::at)
            .unwrap_or_else(crossbeam_channel::never);
        crossbeam_channel::select! {
            recv(self.events) -> ev => ev.map(Some).map_err(|_| gone()),
            recv(self.cancel) -> _ => Err(cancelled()),
            recv(deadline) -> _ => Ok(None),
        }
    }

    /// Whether the server has closed the connection while nobody was
    /// reading; data that arrived meanwhile is returned for the protocol.
    pub fn poll_idle(&mut self) -> (Vec<u8>, bool) {
        let mut data = Vec::new();
        while let Ok(ev) = self.events.try_recv() {
            match self.take(ev) {
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(_) => {
                    self.closed = true;
                    return (data, true);
                }
            }
        }
        (data, false)
    }

    fn take(&mut self, ev: Event) -> Result<Vec<u8>, MailError> {
        match ev {
            Event::Data(bytes) => {
                self.flow.queued.fetch_sub(bytes.len(), Ordering::AcqRel);
                if self.flow.paused.swap(false, Ordering::AcqRel) {
                    self.io.request(Request::Resume { id: self.id });
                }
                Ok(bytes)
            }
            // Upload progress: no data, but the wait clock restarts.
            Event::Written(n) => {
                self.written += n as u64;
                Ok(Vec::new())
            }
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
        self.send_owned(bytes.to_vec())
    }

    fn send_owned(&mut self, bytes: Vec<u8>) -> Result<(), MailError> {
        if self.closed {
            return Err(MailError::Closed("the connection is closed".into()));
        }
        self.io.request(Request::Send { id: self.id, bytes });
        Ok(())
    }

    fn recv(&mut self, deadline: Option<Instant>) -> Result<Option<Vec<u8>>, MailError> {
        match self.next_event(deadline)? {
            Some(ev) => self.take(ev).map(Some),
            None => Ok(None),
        }
    }

    fn start_tls(&mut self, consumed: u64, deadline: Option<Instant>) -> Result<String, MailError> {
        let (ssl, note) = client_ssl(&self.host, self.port, &self.tls)?;
        let consumed = consumed + self.pre_consumed;
        let verify = self.tls.verify;
        let host = self.host.as_tls_name();
        self.io.request(Request::StartTls {
            id: self.id,
            ssl: Box::new(ssl),
            consumed,
            peer: TlsPeer {
                host: host.clone(),
                verify,
            },
        });
        loop {
            let ev = self
                .next_event(deadline)?
                .ok_or_else(|| MailError::Timeout("the TLS handshake".into()))?;
            match ev {
                Event::TlsDone(Ok(info)) => {
                    let resumed = if info.resumed {
                        ", session resumed"
                    } else {
                        ""
                    };
                    let checked = if verify {
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

    fn bytes_written(&self) -> u64 {
        self.written
    }
}
