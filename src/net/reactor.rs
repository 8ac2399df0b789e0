//! The I/O thread and the state of one socket.
//!
//! A socket is either *held* by the thread that runs a command on it (see
//! `connection.rs`: that thread reads, writes and handshakes itself, so a
//! reply costs no thread hand-off) or *parked* here between commands and
//! during long waits. While parked, the I/O thread flushes what is left to
//! write, reads what the server sends into the socket's inbound buffer (up
//! to a cap), notices a close, and pings a caller that waits. It knows
//! nothing of IMAP or SMTP. One thread serves every parked socket, so an
//! idle session costs a registered descriptor, not a thread.

use foreign_types_shared::ForeignTypeRef;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use openssl::ssl::SslStream;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Bytes a parked socket may buffer before the I/O thread stops reading it.
pub const INBOUND_CAP: usize = 4 * 1024 * 1024;
/// One read's size.
pub const READ_CHUNK: usize = 64 * 1024;
/// Spare room below which a read grows its buffer rather than filling it.
const READ_MIN: usize = 16 * 1024;
/// From this capacity on a read buffer is not grown in the middle of a batch.
const LARGE_BUFFER: usize = 1024 * 1024;

extern "C" {
    // libssl (OpenSSL 1.1.0 and later): bytes read ahead or decrypted, not yet taken.
    fn SSL_has_pending(ssl: *const openssl_sys::SSL) -> libc::c_int;
}

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
    Gone,
}

impl Stream {
    pub fn tcp(&mut self) -> Option<&mut TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(s) => Some(s.get_mut()),
            Stream::Gone => None,
        }
    }

    /// Reads into `buf`'s spare capacity (no zeroing first): up to `want`
    /// bytes. Returns (bytes read, bytes asked for after clamping to the room).
    fn read_spare(&mut self, buf: &mut Vec<u8>, want: usize) -> io::Result<(usize, usize)> {
        // Fill room already there first: growing a buffer sized for a large
        // literal would double it and copy the body.
        if buf.capacity() - buf.len() < want.min(READ_MIN) {
            buf.reserve(want);
        }
        let want = want.min(buf.capacity() - buf.len());
        let spare = &mut buf.spare_capacity_mut()[..want];
        let n = match self {
            Stream::Plain(s) => {
                // SAFETY: the kernel writes at most spare.len() bytes into spare.
                let r =
                    unsafe { libc::recv(s.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), 0) };
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
                r as usize
            }
            Stream::Tls(s) => s.read_uninit(spare)?,
            Stream::Gone => return Err(io::ErrorKind::NotConnected.into()),
        };
        // SAFETY: the read initialised the first n bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        Ok((n, want))
    }

    /// Whether a short read means the socket is drained for now: true for
    /// TCP; for TLS only when OpenSSL holds no bytes it read ahead.
    fn drained_after(&self, n: usize, want: usize) -> bool {
        match self {
            Stream::Plain(_) => n < want,
            // SAFETY: a valid SSL owned by the stream.
            Stream::Tls(s) => unsafe { SSL_has_pending(s.ssl().as_ptr()) == 0 },
            Stream::Gone => true,
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// What a read found.
pub enum ReadOutcome {
    /// Bytes arrived (appended to the buffer given).
    Data,
    /// Nothing for now.
    WouldBlock,
    /// The server closed the connection.
    Eof,
}

/// One socket and its buffers, behind the `Shared` mutex.
pub struct Core {
    pub stream: Stream,
    out: Vec<u8>,
    /// Bytes of `out` already written: large uploads are not shifted after
    /// every write.
    out_pos: usize,
    /// Read by the I/O thread while parked; the holder takes it first.
    pub inbound: Vec<u8>,
    /// Plaintext bytes read in all (the STARTTLS injection check).
    pub received: u64,
    /// Bytes handed to the kernel in all (upload progress).
    pub written: u64,
    pub eof: bool,
    pub error: Option<io::Error>,
    /// False once a read found (or left) the socket empty: poll before
    /// the next read.
    pub maybe_readable: bool,
    registered: bool,
    /// Its command ended; the I/O thread is to park it (`park_later`).
    park_wanted: bool,
    /// Registered for writable edges too (output was pending at park).
    writable: bool,
    token: usize,
}

impl Core {
    pub fn new(stream: Stream) -> Core {
        Core {
            stream,
            out: Vec::new(),
            out_pos: 0,
            inbound: Vec::new(),
            received: 0,
            written: 0,
            eof: false,
            error: None,
            maybe_readable: true,
            registered: false,
            park_wanted: false,
            writable: false,
            token: 0,
        }
    }

    /// Registered with the I/O thread.
    pub fn is_parked(&self) -> bool {
        self.registered
    }

    pub fn out_pending(&self) -> bool {
        self.out_pos < self.out.len()
    }

    pub fn queue(&mut self, bytes: Vec<u8>) {
        // Take the caller's buffer whole when nothing waits before it.
        if !self.out_pending() {
            self.out = bytes;
            self.out_pos = 0;
        } else {
            self.out.extend_from_slice(&bytes);
        }
    }

    /// Writes what the socket takes now; returns the byte count.
    pub fn flush(&mut self) -> io::Result<usize> {
        let start = self.out_pos;
        while self.out_pending() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the connection accepts no more data",
                    ))
                }
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let n = self.out_pos - start;
        if !self.out_pending() {
            self.out = Vec::new();
            self.out_pos = 0;
        } else if self.out_pos > self.out.len() / 2 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        self.written += n as u64;
        Ok(n)
    }

    /// Reads into `into` until the socket would block, or `into` holds
    /// `limit` bytes (TLS may then keep decrypted bytes: read again before
    /// polling). Unless `drain`, it also stops after a read that leaves the
    /// socket empty for now, and notes that the next read should poll first
    /// (`maybe_readable`), which saves a read that would only say EAGAIN.
    pub fn read_into(
        &mut self,
        into: &mut Vec<u8>,
        limit: usize,
        drain: bool,
    ) -> io::Result<ReadOutcome> {
        let mut got = false;
        while into.len() < limit {
            // A large buffer (a literal's) that is nearly full goes back to
            // the fragmentizer first: it splits the body off, where growing
            // here would double the buffer and copy the body.
            if got && into.capacity() >= LARGE_BUFFER && into.capacity() - into.len() < READ_MIN {
                break;
            }
            let want = READ_CHUNK.min(limit - into.len()).max(1);
            match self.stream.read_spare(into, want) {
                Ok((0, _)) if got => return Ok(ReadOutcome::Data),
                Ok((0, _)) => return Ok(ReadOutcome::Eof),
                Ok((n, asked)) => {
                    self.received += n as u64;
                    got = true;
                    if !drain && self.stream.drained_after(n, asked) {
                        self.maybe_readable = false;
                        break;
                    }
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        self.maybe_readable = false;
                        break;
                    }
                    io::ErrorKind::Interrupted => continue,
                    // A TLS peer that drops TCP without close_notify has still closed.
                    io::ErrorKind::UnexpectedEof if !got => return Ok(ReadOutcome::Eof),
                    io::ErrorKind::UnexpectedEof => break,
                    _ if got => break,
                    _ => return Err(e),
                },
            }
        }
        Ok(match got {
            true => ReadOutcome::Data,
            false => ReadOutcome::WouldBlock,
        })
    }
}

/// A socket shared by its holder and the I/O thread.
pub struct Shared {
    core: Mutex<Core>,
    /// Wakes a caller that waits parked; one pending ping is enough.
    ping: crossbeam_channel::Sender<()>,
}

impl Shared {
    pub fn new(core: Core) -> (Arc<Shared>, crossbeam_channel::Receiver<()>) {
        let (ping, pings) = crossbeam_channel::bounded(1);
        let shared = Shared {
            core: Mutex::new(core),
            ping,
        };
        (Arc::new(shared), pings)
    }

    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The handle callers use to park and unpark their sockets.
pub struct Io {
    registry: Registry,
    conns: Arc<Mutex<HashMap<usize, Arc<Shared>>>>,
    next_id: AtomicUsize,
    /// Sockets whose command ended, to park at the next tick.
    parks: crossbeam_channel::Sender<usize>,
}

/// How long a socket whose command ended stays with its thread before the
/// I/O thread registers it: a command that follows at once (a session
/// that connects, lists and logs out) costs no epoll registration at all.
pub const PARK_DELAY: Duration = Duration::from_millis(100);

impl Io {
    /// The process-wide I/O thread, started on first use.
    pub fn global() -> &'static Io {
        static IO: OnceLock<Io> = OnceLock::new();
        IO.get_or_init(|| Io::start().expect("cannot start the mailext I/O thread"))
    }

    fn start() -> io::Result<Io> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let conns = Arc::new(Mutex::new(HashMap::new()));
        let watched = conns.clone();
        let (parks, to_park) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("mailext-io".into())
            .spawn(move || run(poll, watched, to_park))?;
        Ok(Io {
            registry,
            conns,
            next_id: AtomicUsize::new(1),
            parks,
        })
    }

    pub fn new_id(&self) -> usize {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn map(&self) -> MutexGuard<'_, HashMap<usize, Arc<Shared>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn adopt(&self, id: usize, shared: Arc<Shared>) {
        self.map().insert(id, shared);
    }

    pub fn forget(&self, id: usize) {
        self.map().remove(&id);
    }

    /// A command ended: the I/O thread parks the socket at its next tick,
    /// unless a command has taken it back by then (no wake-up here).
    pub fn park_later(&self, id: usize, core: &mut Core) {
        if !core.registered && !core.park_wanted {
            core.park_wanted = true;
            let _ = self.parks.send(id);
        }
    }

    /// Hands the socket to the I/O thread. A socket with bytes already
    /// waiting is reported at once (epoll checks readiness on insertion).
    pub fn park(&self, id: usize, core: &mut Core) {
        core.park_wanted = false;
        park_with(&self.registry, id, core);
    }

    /// Takes the socket back from the I/O thread.
    pub fn unpark(&self, core: &mut Core) {
        core.park_wanted = false;
        if core.registered {
            core.registered = false;
            if let Some(tcp) = core.stream.tcp() {
                let _ = self.registry.deregister(tcp);
            }
        }
    }
}

fn park_with(registry: &Registry, id: usize, core: &mut Core) {
    {
        if core.registered || core.eof || core.error.is_some() {
            return;
        }
        let mut interest = Interest::READABLE;
        core.writable = core.out_pending();
        if core.writable {
            interest |= Interest::WRITABLE;
        }
        core.token = id;
        if let Some(tcp) = core.stream.tcp() {
            core.registered = registry.register(tcp, Token(id), interest).is_ok();
        }
    }
}

fn run(
    mut poll: Poll,
    conns: Arc<Mutex<HashMap<usize, Arc<Shared>>>>,
    to_park: crossbeam_channel::Receiver<usize>,
) {
    let mut events = Events::with_capacity(1024);
    // (id, when its command ended): parked once PARK_DELAY has passed.
    let mut waiting: VecDeque<(usize, Instant)> = VecDeque::new();
    loop {
        let now = Instant::now();
        while let Ok(id) = to_park.try_recv() {
            waiting.push_back((id, now));
        }
        while let Some(&(id, since)) = waiting.front() {
            if now.duration_since(since) < PARK_DELAY {
                break;
            }
            waiting.pop_front();
            let shared = conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .cloned();
            // A holder has it again, or it is closed: nothing to do.
            let Some(shared) = shared else { continue };
            if let Ok(mut core) = shared.core.try_lock() {
                if core.park_wanted {
                    core.park_wanted = false;
                    park_with(poll.registry(), id, &mut core);
                }
            };
        }
        // A tick while sockets wait to be parked; otherwise sleep until an event.
        let tick = match waiting.front() {
            Some(_) => Some(PARK_DELAY / 2),
            None => Some(PARK_DELAY),
        };
        if let Err(e) = poll.poll(&mut events, tick) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Nothing sensible is left to do; holders still do their own I/O.
            return;
        }
        for ev in events.iter() {
            let shared = conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&ev.token().0)
                .cloned();
            if let Some(shared) = shared {
                service(&poll, &shared);
            }
        }
    }
}

/// Makes the progress a parked socket allows, and pings its caller.
fn service(poll: &Poll, shared: &Shared) {
    // A holder has it (the event is stale): it does its own I/O.
    let Ok(mut core) = shared.core.try_lock() else {
        return;
    };
    if !core.registered {
        return;
    }
    let mut news = false;
    match core.flush() {
        Ok(n) => news |= n > 0,
        Err(e) => {
            core.error = Some(e);
            news = true;
        }
    }
    if core.error.is_none() {
        let mut inbound = std::mem::take(&mut core.inbound);
        match core.read_into(&mut inbound, INBOUND_CAP, true) {
            Ok(ReadOutcome::Data) => news = true,
            Ok(ReadOutcome::WouldBlock) => {}
            Ok(ReadOutcome::Eof) => {
                core.eof = true;
                news = true;
            }
            Err(e) => {
                core.error = Some(e);
                news = true;
            }
        }
        core.inbound = inbound;
    }
    if core.eof || core.error.is_some() {
        // Nothing more will come: stop watching.
        core.registered = false;
        if let Some(tcp) = core.stream.tcp() {
            let _ = poll.registry().deregister(tcp);
        }
    } else if core.writable && !core.out_pending() {
        // Written out: watch reads only, so freed buffer space wakes nobody.
        core.writable = false;
        let token = Token(core.token);
        if let Some(tcp) = core.stream.tcp() {
            let _ = poll.registry().reregister(tcp, token, Interest::READABLE);
        }
    }
    drop(core);
    if news {
        let _ = shared.ping.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::codec::{Fragmentizer, FrameLimits};
    use std::io::Write;

    /// Two large bodies back to back: the first must come out without its
    /// buffer having been doubled by reads running into the second.
    #[test]
    fn back_to_back_literals_do_not_double_the_body_buffer() {
        const SIZE: usize = 3 * 1024 * 1024;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let body = vec![b'x'; SIZE];
            for n in 1..=2 {
                let head = format!("* {n} FETCH (BODY[] {{{SIZE}}}\r\n");
                s.write_all(head.as_bytes()).unwrap();
                s.write_all(&body).unwrap();
                s.write_all(b")\r\n").unwrap();
            }
            s.write_all(b"a1 OK done\r\n").unwrap();
        });
        let std_stream = std::net::TcpStream::connect(addr).unwrap();
        std_stream.set_nonblocking(true).unwrap();
        let mut core = Core::new(Stream::Plain(TcpStream::from_std(std_stream)));
        let mut frag = Fragmentizer::new(FrameLimits::default());
        let mut frames = Vec::new();
        let started = Instant::now();
        while frames.len() < 3 {
            assert!(started.elapsed() < Duration::from_secs(20), "stalled");
            let outcome = frag.fill(|b| {
                let limit = b.len() + 256 * 1024;
                core.read_into(b, limit, false)
            });
            match outcome.unwrap() {
                ReadOutcome::Eof => panic!("closed after {} frames", frames.len()),
                ReadOutcome::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
                ReadOutcome::Data => {}
            }
            while let Some(f) = frag.next_frame().unwrap() {
                frames.push(f);
            }
        }
        server.join().unwrap();
        for f in &frames[..2] {
            assert!(f.len() > SIZE);
            assert!(
                f.capacity() < f.len() + 2 * READ_CHUNK + 64 * 1024,
                "a {} byte frame in a {} byte buffer",
                f.len(),
                f.capacity()
            );
        }
        assert_eq!(frames[2], b"a1 OK done\r\n");
    }
}
