//! Scripted IMAP servers for faults a real server will not produce:
//! each test writes its server as a closure over one accepted connection.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// One accepted client, with line helpers. Everything the client sent is
/// kept so tests can prove what never went out.
pub struct Peer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub received: Vec<String>,
}

impl Peer {
    pub fn send(&mut self, text: &str) {
        let _ = self.writer.write_all(text.as_bytes());
        let _ = self.writer.flush();
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
}

pub struct Scripted {
    pub port: u16,
    done: Option<JoinHandle<Vec<String>>>,
}

impl Scripted {
    /// Serves one connection with `script`; the thread ends with it.
    pub fn start<F: FnOnce(&mut Peer) + Send + 'static>(script: F) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let done = std::thread::spawn(move || {
            tx.send(()).unwrap();
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(15)))
                .unwrap();
            let mut peer = Peer {
                reader: BufReader::new(stream.try_clone().unwrap()),
                writer: stream,
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
