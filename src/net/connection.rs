//! A connection as a calling thread sees it. While a command runs, the
//! calling thread does the socket I/O itself (connect, TLS handshake,
//! reads and writes, waits bounded by deadlines and checked for cancel);
//! between commands and during long waits the socket is parked with the
//! I/O thread (`reactor.rs`).

use super::address::{Host, ServerAddr};
use super::eyeballs::{order, Action, Eyeballs, ATTEMPT_DELAY};
use super::proxy::{ProxyHandshake, ProxySpec, ProxyStep};
use super::reactor::{Core, Io, ReadOutcome, Shared, Stream};
use super::tls::{classify_failure, client_ssl, TlsSettings};
use crate::error::MailError;
use crate::imap::driver::{Observer, Transport};
use crossbeam_channel::Receiver;
use mio::net::TcpStream;
use openssl::ssl::{ErrorCode, HandshakeError};
use openssl::x509::X509VerifyResult;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

pub struct Connection {
    id: usize,
    shared: Arc<Shared>,
    /// The I/O thread's wake-ups while this connection waits parked.
    pings: Receiver<()>,
    io: &'static Io,
    fd: RawFd,
    pub peer: SocketAddr,
    /// The mail server's name: SNI and certificate checks use it, also
    /// through a proxy.
    pub host: Host,
    /// The mail server's port (the TLS session cache key has it).
    pub port: u16,
    pub tls: TlsSettings,
    /// IMAPCancel's signal, checked in every wait.
    cancel: Receiver<()>,
    /// Plaintext bytes the proxy exchange consumed before the mail protocol.
    pub pre_consumed: u64,
    closed: bool,
    /// SO_RCVLOWAT as last set: raised while a large literal arrives.
    low_water: libc::c_int,
}

/// A wait polls the socket itself for this long, then parks it with the
/// I/O thread and sleeps on its channel: quick replies cost no thread
/// hand-off, long waits (IDLE, slow servers) no repeated wake-ups.
const DIRECT_WAIT: Duration = Duration::from_millis(200);
/// Longest single poll(2): how soon a cancel is seen during a direct wait.
const POLL_SLICE: Duration = Duration::from_millis(10);
/// Largest batch one recv hands to the protocol (progress is reported
/// between batches).
const RECV_BATCH: usize = 256 * 1024;
/// While more than `BULK_MIN` bytes of a literal are still due, a wait
/// ends only once `BULK_LOW_WATER` bytes are queued: a 50 MB body then
/// takes ~800 wake-ups instead of ~3,000. The margin keeps the mark below
/// what must still arrive even with the TLS read-ahead buffer (64 KiB)
/// holding ciphertext, so a wait can never outlast the data.
const BULK_MIN: u64 = 1024 * 1024;
const BULK_LOW_WATER: libc::c_int = 64 * 1024;

/// Waits for any of `fds` (with their `events`) until `until`, in slices
/// so that a cancel is noticed. Ok(true) when one is ready.
fn poll_fds(
    fds: &mut [libc::pollfd],
    until: Option<Instant>,
    cancel: &Receiver<()>,
) -> Result<bool, MailError> {
    loop {
        if cancel.try_recv().is_ok() {
            return Err(cancelled());
        }
        let now = Instant::now();
        let mut slice = POLL_SLICE;
        if let Some(u) = until {
            if now >= u {
                return Ok(false);
            }
            slice = slice.min(u - now);
        }
        // Round up: waking before the deadline would only poll again.
        let ms = slice.as_micros().div_ceil(1000) as libc::c_int;
        for f in fds.iter_mut() {
            f.revents = 0;
        }
        // SAFETY: fds is a valid, exclusively borrowed array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n > 0 {
            return Ok(true);
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(MailError::Network(format!("poll: {e}")));
            }
        }
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
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
        obs: &mut dyn Observer,
    ) -> Result<Connection, MailError> {
        let io = Io::global();
        let ordered = order(addrs, prefer_ipv6);
        let mut plan = Eyeballs::new(ordered, Instant::now(), deadline, ATTEMPT_DELAY);
        // Attempts in flight, by their index in the plan.
        let mut attempts: Vec<Option<(TcpStream, SocketAddr)>> = Vec::new();
        let mut best: Option<MailError> = None;
        let note_failure =
            |failure: MailError, best: &mut Option<MailError>, obs: &mut dyn Observer| {
                obs.status_with(&|| failure.to_string());
                if best.as_ref().is_none_or(|b| rank(&failure) > rank(b)) {
                    *best = Some(failure);
                }
            };
        loop {
            let wait_until = match plan.poll(Instant::now()) {
                Action::Start(i, addr) => {
                    obs.status_with(&|| format!("Connecting to {server} ({addr})"));
                    attempts.resize_with(attempts.len().max(i + 1), || None);
                    match TcpStream::connect(addr) {
                        Ok(s) => attempts[i] = Some((s, addr)),
                        Err(e) => {
                            note_failure(io_error(&e, &addr.to_string()), &mut best, obs);
                            plan.failed(i, Instant::now());
                        }
                    }
                    continue;
                }
                Action::WaitUntil(t) => t,
                Action::GiveUp => {
                    let in_flight = attempts.iter().any(Option::is_some);
                    return Err(match best {
                        Some(b) if !in_flight => b,
                        _ => MailError::Timeout(format!("the connection to {server}")),
                    });
                }
            };
            let live: Vec<usize> = (0..attempts.len())
                .filter(|&i| attempts[i].is_some())
                .collect();
            let mut fds: Vec<libc::pollfd> = live
                .iter()
                .map(|&i| {
                    let (s, _) = attempts[i].as_ref().expect("live");
                    pollfd(s.as_raw_fd(), libc::POLLOUT)
                })
                .collect();
            // One slice at most, so the plan is asked again in time.
            if !poll_fds(&mut fds, Some(wait_until), &cancel)? {
                continue;
            }
            for (k, &i) in live.iter().enumerate() {
                if fds[k].revents == 0 {
                    continue;
                }
                let (s, addr) = attempts[i].take().expect("live");
                // Writable with no error flag: connected, to the address asked
                // for (a failed connect always raises POLLERR; SO_ERROR is
                // read only then, for its reason).
                if fds[k].revents & (libc::POLLERR | libc::POLLHUP) == 0 {
                    let _ = s.set_nodelay(true);
                    obs.status_with(&|| format!("Connected to {addr}"));
                    return Ok(Connection::adopt(io, s, addr, server, tls, cancel));
                }
                let failure = match s.take_error() {
                    Ok(Some(e)) | Err(e) => io_error(&e, &addr.to_string()),
                    Ok(None) => MailError::Network(format!("{addr}: the connection failed")),
                };
                note_failure(failure, &mut best, obs);
                plan.failed(i, Instant::now());
            }
        }
    }

    fn adopt(
        io: &'static Io,
        s: TcpStream,
        peer: SocketAddr,
        server: &ServerAddr,
        tls: TlsSettings,
        cancel: Receiver<()>,
    ) -> Connection {
        let id = io.new_id();
        let fd = s.as_raw_fd();
        let (shared, pings) = Shared::new(Core::new(Stream::Plain(s)));
        io.adopt(id, shared.clone());
        Connection {
            id,
            shared,
            pings,
            io,
            fd,
            peer,
            host: server.host.clone(),
            port: server.port,
            tls,
            cancel,
            pre_consumed: 0,
            closed: false,
            low_water: 1,
        }
    }

    /// Sets SO_RCVLOWAT (only on a change): a wait then ends once that
    /// many bytes are queued, not at every segment.
    fn set_low_water(&mut self, bytes: libc::c_int) {
        if bytes == self.low_water {
            return;
        }
        // SAFETY: a valid socket and a c_int option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // Where the option is refused, reads simply stay small.
        if rc == 0 {
            self.low_water = bytes;
        }
    }

    /// Opens a tunnel through the proxy this connection reached, to
    /// `target`. Returns bytes the mail server already sent (normally none).
    pub fn tunnel(
        &mut self,
        proxy: &ProxySpec,
        target: &ServerAddr,
        deadline: Instant,
        obs: &mut dyn Observer,
    ) -> Result<Vec<u8>, MailError> {
        obs.status_with(&|| format!("Opening a tunnel to {target} through {proxy}"));
        let mut hs = ProxyHandshake::new(proxy, target);
        let first = hs.initial();
        self.send(&first)?;
        let mut received = 0u64;
        loop {
            let bytes = match self.recv(Some(deadline)) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return Err(MailError::Timeout(format!(
                        "the proxy {proxy} to open the tunnel"
                    )))
                }
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
                    obs.status_with(&|| format!("Tunnel to {target} open"));
                    return Ok(leftover);
                }
            }
        }
    }

    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut core = self.shared.lock();
        self.io.unpark(&mut core);
        if let Stream::Tls(s) = &mut core.stream {
            let _ = s.shutdown(); // best effort close_notify; never waits
        }
        core.stream = Stream::Gone; // closes the socket
        drop(core);
        self.io.forget(self.id);
    }

    /// The socket, taken back from the I/O thread if it was parked there.
    fn held(&self) -> MutexGuard<'_, Core> {
        let mut core = self.shared.lock();
        self.io.unpark(&mut core);
        core
    }

    /// Sleeps until the I/O thread reports news for this socket, the
    /// deadline, or a cancel. Ok(false) at the deadline.
    fn wait_parked(&self, deadline: Option<Instant>) -> Result<bool, MailError> {
        // A ping left from before is stale; one that comes after parking is not.
        while self.pings.try_recv().is_ok() {}
        let parked = {
            let mut core = self.shared.lock();
            self.io.park(self.id, &mut core);
            core.is_parked()
        };
        if !parked {
            // The I/O thread could not take it (epoll refused): keep polling here.
            let mut fds = [pollfd(self.fd, libc::POLLIN)];
            return poll_fds(&mut fds, deadline, &self.cancel);
        }
        let deadline = deadline
            .map(crossbeam_channel::at)
            .unwrap_or_else(crossbeam_channel::never);
        crossbeam_channel::select! {
            recv(self.pings) -> _ => Ok(true),
            recv(self.cancel) -> _ => Err(cancelled()),
            recv(deadline) -> _ => Ok(false),
        }
    }

    fn check_open(&self) -> Result<(), MailError> {
        if self.closed {
            return Err(MailError::Closed("the connection is closed".into()));
        }
        Ok(())
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
        self.check_open()?;
        let mut core = self.held();
        core.queue(bytes);
        // What the socket does not take now goes out while we wait.
        core.flush()
            .map_err(|e| io_error(&e, &self.peer.to_string()))?;
        Ok(())
    }

    fn recv(&mut self, deadline: Option<Instant>) -> Result<Option<Vec<u8>>, MailError> {
        let mut data = Vec::new();
        Ok(self.recv_into(&mut data, deadline)?.map(|_| data))
    }

    fn recv_into(
        &mut self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<Option<usize>, MailError> {
        self.check_open()?;
        let started = Instant::now();
        loop {
            let mut core = self.held();
            if !core.inbound.is_empty() {
                let n = core.inbound.len();
                if buf.is_empty() {
                    *buf = std::mem::take(&mut core.inbound);
                } else {
                    buf.extend_from_slice(&core.inbound);
                    core.inbound = Vec::new();
                }
                return Ok(Some(n));
            }
            if let Some(e) = core.error.take() {
                core.eof = true;
                return Err(io_error(&e, &self.peer.to_string()));
            }
            if core.eof || matches!(core.stream, Stream::Gone) {
                return Err(MailError::Closed("the server closed the connection".into()));
            }
            let wrote = core
                .flush()
                .map_err(|e| io_error(&e, &self.peer.to_string()))?;
            let before = buf.len();
            let outcome = match core.maybe_readable {
                true => core.read_into(buf, before + RECV_BATCH, false),
                false => Ok(ReadOutcome::WouldBlock),
            };
            match outcome {
                Ok(ReadOutcome::Data) => return Ok(Some(buf.len() - before)),
                Ok(ReadOutcome::Eof) => {
                    core.eof = true;
                    return Err(MailError::Closed("the server closed the connection".into()));
                }
                Ok(ReadOutcome::WouldBlock) => {}
                Err(e) => return Err(io_error(&e, &self.peer.to_string())),
            }
            // Upload progress: no data, but the wait clock restarts.
            if wrote > 0 {
                return Ok(Some(0));
            }
            let mut events = libc::POLLIN;
            if core.out_pending() {
                events |= libc::POLLOUT;
            }
            drop(core);
            let ready = if started.elapsed() < DIRECT_WAIT {
                let until = match deadline {
                    Some(d) => d.min(started + DIRECT_WAIT),
                    None => started + DIRECT_WAIT,
                };
                // At the end of the direct wait the deadline may be ahead still.
                poll_fds(&mut [pollfd(self.fd, events)], Some(until), &self.cancel)?
                    || deadline.is_none_or(|d| Instant::now() < d)
            } else {
                // A long wait means a slow stream: wake at every byte again,
                // or a trickle below the mark would look like silence.
                self.set_low_water(1);
                self.wait_parked(deadline)?
            };
            if !ready {
                return Ok(None);
            }
            self.shared.lock().maybe_readable = true;
        }
    }

    fn start_tls(&mut self, consumed: u64, deadline: Option<Instant>) -> Result<String, MailError> {
        self.check_open()?;
        let (ssl, note) = client_ssl(&self.host, self.port, &self.tls)?;
        let consumed = consumed + self.pre_consumed;
        let verify = self.tls.verify;
        let host = self.host.as_tls_name();
        let mut core = self.held();
        // Catch bytes already in the kernel: anything past the reply is injected.
        if let Stream::Plain(tcp) = &mut core.stream {
            let mut probe = [0u8; 1];
            if let Ok(n @ 1..) = tcp.read(&mut probe) {
                core.received += n as u64;
            }
        }
        if core.received != consumed {
            let extra = core.received.saturating_sub(consumed);
            core.stream = Stream::Gone;
            return Err(MailError::Injection(format!(
                "{extra} plaintext byte(s) arrived before the handshake"
            )));
        }
        let Stream::Plain(tcp) = std::mem::replace(&mut core.stream, Stream::Gone) else {
            return Err(MailError::AlreadySecure);
        };
        let mut attempt = ssl.connect(tcp);
        loop {
            match attempt {
                Ok(s) => {
                    let ssl = s.ssl();
                    let resumed = if ssl.session_reused() {
                        ", session resumed"
                    } else {
                        ""
                    };
                    let checked = if verify {
                        format!(", certificate verified for {host}")
                    } else {
                        String::new()
                    };
                    let text = format!(
                        "TLS established: {} {}{checked}{resumed} ({note})",
                        ssl.version_str(),
                        ssl.current_cipher().map(|c| c.name()).unwrap_or_default()
                    );
                    core.stream = Stream::Tls(Box::new(s));
                    return Ok(text);
                }
                Err(HandshakeError::WouldBlock(mid)) => {
                    let events = if mid.error().code() == ErrorCode::WANT_WRITE {
                        libc::POLLOUT
                    } else {
                        libc::POLLIN
                    };
                    if !poll_fds(&mut [pollfd(self.fd, events)], deadline, &self.cancel)? {
                        return Err(MailError::Timeout("the TLS handshake".into()));
                    }
                    attempt = mid.handshake();
                }
                Err(HandshakeError::Failure(mid)) => {
                    let detail = mid.error().to_string();
                    // With verification off, OpenSSL still records a result: ignore it.
                    let verdict = if verify {
                        mid.ssl().verify_result()
                    } else {
                        X509VerifyResult::OK
                    };
                    return Err(classify_failure(verdict, &detail, &host));
                }
                Err(HandshakeError::SetupFailure(e)) => {
                    return Err(MailError::TlsSetup(e.to_string()))
                }
            }
        }
    }

    fn expect_bulk(&mut self, remaining: u64) {
        self.set_low_water(if remaining > BULK_MIN {
            BULK_LOW_WATER
        } else {
            1
        });
    }

    fn idle(&mut self) {
        self.set_low_water(1);
        if !self.closed {
            self.io.park_later(self.id, &mut self.shared.lock());
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn bytes_written(&self) -> u64 {
        self.shared.lock().written
    }
}
