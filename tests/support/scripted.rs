//! Scripted IMAP and SMTP servers for faults a real server will not
//! produce: each test writes its server as a closure over one accepted
//! connection, in plaintext or (`start_tls`) implicit TLS.

use super::pki::Leaf;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What a peer talks over: a TCP stream or a TLS stream on one.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// One accepted client, with line helpers. Everything the client sent is
/// kept so tests can prove what never went out.
pub struct Peer {
    /// Buffers reads only: writes go straight through `get_mut`.
    reader: BufReader<Box<dyn Stream>>,
    pub received: Vec<String>,
}

impl Peer {
    pub fn send(&mut self, text: &str) {
        let w = self.reader.get_mut();
        let _ = w.write_all(text.as_bytes());
        let _ = w.flush();
    }

    /// Sends raw bytes; false once the client is gone.
    #[allow(dead_code)]
    pub fn send_bytes(&mut self, bytes: &[u8]) -> bool {
        let w = self.reader.get_mut();
        w.write_all(bytes).and_then(|_| w.flush()).is_ok()
    }

    /// Reads one client line (without CRLF); None when the client closed.
    pub fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.reader.read_line(&mut l) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let l = l.trim_end_matches(['\r', '\n']).to_string();
                self.received.push(l.clone());
                Some(l)
            }
        }
    }

    /// Reads a command line and returns its tag.
    pub fn command(&mut self, verb: &str) -> String {
        let l = self
            .line()
            .unwrap_or_else(|| panic!("client closed; expected {verb}"));
        let (tag, rest) = l.split_once(' ').unwrap_or((&l, ""));
        assert!(
            rest.to_ascii_uppercase().starts_with(verb),
            "expected {verb}, got {l:?}"
        );
        tag.to_string()
    }

    /// Waits until the client closes (or the timeout passes).
    pub fn drain(&mut self) {
        while self.line().is_some() {}
    }

    /// A mailbox server for one message: greets, answers SELECT with one
    /// message, LOGOUT with BYE, anything else with OK, and hands each
    /// FETCH's tag to `fetch`, which replies; false from it closes.
    #[allow(dead_code)]
    pub fn serve_fetch(&mut self, mut fetch: impl FnMut(&mut Peer, &str) -> bool) {
        self.send("* OK [CAPABILITY IMAP4rev1] hi\r\n");
        while let Some(l) = self.line() {
            let (tag, verb) = l.split_once(' ').unwrap_or((&l, ""));
            let verb = verb.to_ascii_uppercase();
            if verb.starts_with("SELECT") {
                self.send(&format!("* 1 EXISTS\r\n{tag} OK [READ-WRITE] selected\r\n"));
            } else if verb.contains("FETCH") {
                if !fetch(self, tag) {
                    return;
                }
            } else if verb.starts_with("LOGOUT") {
                self.send(&format!("* BYE bye\r\n{tag} OK done\r\n"));
                return;
            } else {
                self.send(&format!("{tag} OK done\r\n"));
            }
        }
    }
}

pub struct Scripted {
    pub port: u16,
    done: Option<JoinHandle<Vec<String>>>,
}

impl Scripted {
    /// Serves one connection with `script`; the thread ends with it.
    pub fn start<F: FnOnce(&mut Peer) + Send + 'static>(script: F) -> Scripted {
        Scripted::serve(None, script)
    }

    /// Serves one connection with implicit TLS and this certificate: the
    /// handshake, then `script`. When the client fails the handshake (it
    /// refused the certificate), the script does not run and `received`
    /// is empty.
    pub fn start_tls<F: FnOnce(&mut Peer) + Send + 'static>(leaf: &Leaf, script: F) -> Scripted {
        use openssl::pkey::PKey;
        use openssl::ssl::{SslAcceptor, SslMethod};
        use openssl::x509::X509;
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        b.set_certificate(&X509::from_pem(&leaf.cert_pem).unwrap())
            .unwrap();
        b.set_private_key(&PKey::private_key_from_pem(&leaf.key_pem).unwrap())
            .unwrap();
        Scripted::serve(Some(b.build()), script)
    }

    fn serve<F: FnOnce(&mut Peer) + Send + 'static>(
        tls: Option<openssl::ssl::SslAcceptor>,
        script: F,
    ) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let done = std::thread::spawn(move || {
            tx.send(()).unwrap();
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(15)))
                .unwrap();
            let stream: Box<dyn Stream> = match tls {
                None => Box::new(stream),
                Some(acceptor) => match acceptor.accept(stream) {
                    Ok(tls) => Box::new(tls),
                    Err(_) => return vec![],
                },
            };
            let mut peer = Peer {
                reader: BufReader::new(stream),
                received: vec![],
            };
            script(&mut peer);
            peer.received
        });
        rx.recv().unwrap();
        Scripted {
            port,
            done: Some(done),
        }
    }

    /// Every line the client sent, once the script has finished.
    pub fn received(mut self) -> Vec<String> {
        self.done.take().unwrap().join().unwrap()
    }
}
