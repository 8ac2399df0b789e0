//! The I/O thread. It owns every socket, moves bytes between sockets and
//! callers' channels, and runs TLS handshakes; it knows nothing of IMAP.
//! One thread serves all connections, so an idle connection costs no thread.

use super::tls::classify_failure;
use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use openssl::ssl::{HandshakeError, MidHandshakeSslStream, Ssl, SslStream};
use openssl::x509::X509VerifyResult;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

const WAKER: Token = Token(usize::MAX);
/// Bytes delivered to a caller but not yet taken before reading pauses.
pub const READ_PAUSE_AT: usize = 4 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Back-pressure between the I/O thread and the caller of one connection.
#[derive(Debug, Default)]
pub struct Flow {
    pub queued: AtomicUsize,
    pub paused: AtomicBool,
}

pub enum Request {
    Connect {
        id: usize,
        addr: SocketAddr,
        events: Sender<Event>,
        flow: Arc<Flow>,
    },
    Send {
        id: usize,
        bytes: Vec<u8>,
    },
    /// Start TLS; refused when more than `consumed` plaintext bytes arrived.
    StartTls {
        id: usize,
        ssl: Box<Ssl>,
        consumed: u64,
        peer: TlsPeer,
    },
    Resume {
        id: usize,
    },
    Close {
        id: usize,
    },
}

/// Who the handshake is with, and whether its certificate is checked.
pub struct TlsPeer {
    pub host: String,
    pub verify: bool,
}

#[derive(Debug)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    pub resumed: bool,
}

#[derive(Debug)]
pub enum Event {
    Connected {
        peer: SocketAddr,
    },
    Data(Vec<u8>),
    TlsDone(Result<TlsInfo, crate::error::MailError>),
    /// The server closed the connection.
    Closed,
    Failed(io::Error),
    /// Bytes went out: the peer is reading, so a long upload is not a silent server.
    Written(usize),
}

enum Stream {
    Plain(TcpStream),
    Handshaking(MidHandshakeSslStream<TcpStream>, TlsPeer),
    Tls(Box<SslStream<TcpStream>>),
    Gone,
}

impl Stream {
    fn tcp(&mut self) -> Option<&mut TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Handshaking(m, _) => Some(m.get_mut()),
            Stream::Tls(s) => Some(s.get_mut()),
            Stream::Gone => None,
        }
    }
}

struct Conn {
    stream: Stream,
    events: Sender<Event>,
    flow: Arc<Flow>,
    connecting: bool,
    out: Vec<u8>,
    /// Bytes of `out` already written: large uploads are not shifted after
    /// every write.
    out_pos: usize,
    received: u64,
}

/// The handle callers use: requests go through a channel, then a wake-up.
#[derive(Clone)]
pub struct Io {
    requests: Sender<Request>,
    waker: Arc<Waker>,
    next_id: Arc<AtomicUsize>,
}

impl Io {
    /// The process-wide I/O thread, started on first use.
    pub fn global() -> &'static Io {
        static IO: OnceLock<Io> = OnceLock::new();
        IO.get_or_init(|| Io::start().expect("cannot start the mailext I/O thread"))
    }

    fn start() -> io::Result<Io> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("mailext-io".into())
            .spawn(move || Reactor::new(poll, rx).run())?;
        Ok(Io {
            requests: tx,
            waker,
            next_id: Arc::new(AtomicUsize::new(1)),
        })
    }

    pub fn new_id(&self) -> usize {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn request(&self, r: Request) {
        // The I/O thread never exits, so neither of these can fail in practice.
        let _ = self.requests.send(r);
        let _ = self.waker.wake();
    }
}

struct Reactor {
    poll: Poll,
    requests: Receiver<Request>,
    conns: HashMap<usize, Conn>,
    buf: Vec<u8>,
}

impl Reactor {
    fn new(poll: Poll, requests: Receiver<Request>) -> Self {
        Reactor {
            poll,
            requests,
            conns: HashMap::new(),
            buf: vec![0; READ_CHUNK],
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Nothing sensible is left to do; callers see their channels close.
                return;
            }
            for ev in events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                self.ready(ev.token().0);
            }
            while let Ok(r) = self.requests.try_recv() {
                self.handle(r);
            }
        }
    }

    fn handle(&mut self, r: Request) {
        match r {
            Request::Connect {
                id,
                addr,
                events,
                flow,
            } => match TcpStream::connect(addr) {
                Ok(mut s) => {
                    let reg = self.poll.registry().register(
                        &mut s,
                        Token(id),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    if let Err(e) = reg {
                        let _ = events.send(Event::Failed(e));
                        return;
                    }
                    let conn = Conn {
                        stream: Stream::Plain(s),
                        events,
                        flow,
                        connecting: true,
                        out: Vec::new(),
                        out_pos: 0,
                        received: 0,
                    };
                    self.conns.insert(id, conn);
                }
                Err(e) => {
                    let _ = events.send(Event::Failed(e));
                }
            },
            Request::Send { id, bytes } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    // Take the caller's buffer whole when nothing waits before it.
                    if c.out_pos == c.out.len() {
                        c.out = bytes;
                        c.out_pos = 0;
                    } else {
                        c.out.extend_from_slice(&bytes);
                    }
                    self.ready(id);
                }
            }
            Request::StartTls {
                id,
                ssl,
                consumed,
                peer,
            } => self.start_tls(id, *ssl, consumed, peer),
            Request::Resume { id } => self.ready(id),
            Request::Close { id } => self.close(id),
        }
    }

    fn close(&mut self, id: usize) {
        if let Some(mut c) = self.conns.remove(&id) {
            if let Stream::Tls(s) = &mut c.stream {
                let _ = s.shutdown(); // best effort close_notify; never waits
            }
            if let Some(tcp) = c.stream.tcp() {
                let _ = self.poll.registry().deregister(tcp);
            }
        }
    }

    /// Ends a connection with a final event for its owner.
    fn fail(&mut self, id: usize, ev: Event) {
        if let Some(c) = self.conns.get(&id) {
            let _ = c.events.send(ev);
        }
        self.close(id);
    }

    fn start_tls(&mut self, id: usize, ssl: Ssl, consumed: u64, peer: TlsPeer) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        // Catch bytes already in the kernel: anything past the reply is injected.
        if let Stream::Plain(tcp) = &mut c.stream {
            let mut probe = [0u8; 1];
            match tcp.read(&mut probe) {
                Ok(n) if n > 0 => c.received += n as u64,
                _ => {}
            }
        }
        if c.received != consumed {
            let extra = c.received.saturating_sub(consumed);
            let e = crate::error::MailError::Injection(format!(
                "{extra} plaintext byte(s) arrived before the handshake"
            ));
            return self.fail(id, Event::TlsDone(Err(e)));
        }
        let Stream::Plain(tcp) = std::mem::replace(&mut c.stream, Stream::Gone) else {
            let e = crate::error::MailError::AlreadySecure;
            return self.fail(id, Event::TlsDone(Err(e)));
        };
        self.handshake(id, ssl.connect(tcp), peer);
    }

    fn handshake(
        &mut self,
        id: usize,
        r: Result<SslStream<TcpStream>, HandshakeError<TcpStream>>,
        peer: TlsPeer,
    ) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        match r {
            Ok(s) => {
                let info = TlsInfo {
                    version: s.ssl().version_str().to_string(),
                    cipher: s
                        .ssl()
                        .current_cipher()
                        .map(|c| c.name().to_string())
                        .unwrap_or_default(),
                    resumed: s.ssl().session_reused(),
                };
                c.stream = Stream::Tls(Box::new(s));
                let _ = c.events.send(Event::TlsDone(Ok(info)));
                self.ready(id);
            }
            Err(HandshakeError::WouldBlock(mid)) => c.stream = Stream::Handshaking(mid, peer),
            Err(HandshakeError::Failure(mid)) => {
                let detail = mid.error().to_string();
                // With verification off, OpenSSL still records a result: ignore it.
                let verdict = if peer.verify {
                    mid.ssl().verify_result()
                } else {
                    X509VerifyResult::OK
                };
                let e = classify_failure(verdict, &detail, &peer.host);
                c.stream = Stream::Handshaking(mid, peer);
                self.fail(id, Event::TlsDone(Err(e)));
            }
            Err(HandshakeError::SetupFailure(e)) => {
                let e = crate::error::MailError::TlsSetup(e.to_string());
                self.fail(id, Event::TlsDone(Err(e)));
            }
        }
    }

    /// Makes all the progress the socket allows: connect, handshake, write, read.
    fn ready(&mut self, id: usize) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.connecting {
            let Stream::Plain(tcp) = &mut c.stream else {
                return;
            };
            match tcp.take_error() {
                Ok(Some(e)) | Err(e) => return self.fail(id, Event::Failed(e)),
                Ok(None) => {}
            }
            match tcp.peer_addr() {
                Ok(peer) => {
                    c.connecting = false;
                    let _ = tcp.set_nodelay(true);
                    let _ = c.events.send(Event::Connected { peer });
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => return self.fail(id, Event::Failed(e)),
            }
        }
        if let Stream::Handshaking(..) = c.stream {
            let Stream::Handshaking(mid, peer) = std::mem::replace(&mut c.stream, Stream::Gone)
            else {
                unreachable!()
            };
            return self.handshake(id, mid.handshake(), peer);
        }
        if let Err(e) = flush(c) {
            return self.fail(id, Event::Failed(e));
        }
        match read_available(c, &mut self.buf) {
            // A TLS write may have waited for this read (renegotiation): retry it.
            Ok(true) if c.out_pos < c.out.len() => {
                if let Err(e) = flush(c) {
                    self.fail(id, Event::Failed(e));
                }
            }
            Ok(true) => {}
            Ok(false) => self.fail(id, Event::Closed),
            Err(e) => self.fail(id, Event::Failed(e)),
        }
    }
}

fn flush(c: &mut Conn) -> io::Result<()> {
    let start = c.out_pos;
    while c.out_pos < c.out.len() {
        let r = match &mut c.stream {
            Stream::Plain(s) => s.write(&c.out[c.out_pos..]),
            Stream::Tls(s) => s.write(&c.out[c.out_pos..]),
            _ => break,
        };
        match r {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the connection accepts no more data",
                ))
            }
            Ok(n) => c.out_pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let written = c.out_pos - start;
    if c.out_pos == c.out.len() {
        c.out.clear();
        c.out_pos = 0;
    } else if c.out_pos > c.out.len() / 2 {
        c.out.drain(..c.out_pos);
        c.out_pos = 0;
    }
    if written > 0 {
        let _ = c.events.send(Event::Written(written));
    }
    Ok(())
}

/// Reads until the socket would block (edge-triggered) or the caller's
/// queue is full. Ok(false) when the server closed the connection.
fn read_available(c: &mut Conn, buf: &mut [u8]) -> io::Result<bool> {
    loop {
        if c.flow.queued.load(Ordering::Acquire) >= READ_PAUSE_AT {
            c.flow.paused.store(true, Ordering::Release);
            // The caller may have drained the queue before it could see the
            // flag; then nobody would resume us, so carry on ourselves.
            if c.flow.queued.load(Ordering::Acquire) >= READ_PAUSE_AT
                || !c.flow.paused.swap(false, Ordering::AcqRel)
            {
                return Ok(true);
            }
            continue;
        }
        let r = match &mut c.stream {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            _ => return Ok(true),
        };
        match r {
            Ok(0) => return Ok(false),
            Ok(n) => {
                c.received += n as u64;
                c.flow.queued.fetch_add(n, Ordering::AcqRel);
                let _ = c.events.send(Event::Data(buf[..n].to_vec()));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A TLS peer that drops TCP without close_notify has still closed.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}
