//! A delay proxy: forwards each chunk `delay` after it was read, in order,
//! both ways, and records when each connection was accepted and when the
//! client closed it. The TCP handshake with the proxy itself is local (not
//! delayed), so a session's time is measured from accept to the client's
//! close: what every client pays in round trips, without process start-up.

use crossbeam_channel::{unbounded, Receiver, Sender};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
struct Times {
    accepted: Instant,
    client_closed: Option<Instant>,
}

pub struct DelayProxy {
    pub port: u16,
    pub delay: Duration,
    log: Arc<Mutex<Vec<Times>>>,
}

impl DelayProxy {
    pub fn start(upstream: SocketAddr, delay: Duration) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log: Arc<Mutex<Vec<Times>>> = Arc::default();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let accepted = Instant::now();
                let index = {
                    let mut l = l2.lock().unwrap();
                    l.push(Times {
                        accepted,
                        client_closed: None,
                    });
                    l.len() - 1
                };
                let log = l2.clone();
                std::thread::spawn(move || {
                    let Ok(server) = TcpStream::connect(upstream) else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let on_eof =
                        move |t: Instant| log.lock().unwrap()[index].client_closed = Some(t);
                    pipe(client, server, delay, Some(Box::new(on_eof)));
                    pipe(s2, c2, delay, None);
                });
            }
        });
        DelayProxy { port, delay, log }
    }

    /// The round-trip time the proxy adds.
    pub fn rtt(&self) -> f64 {
        2.0 * self.delay.as_secs_f64()
    }

    /// How many connections so far (a mark for `sessions_since`).
    pub fn mark(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Session times (accept to client close) of connections accepted since
    /// `mark`, waiting up to 2 s for the last ones to close.
    pub fn sessions_since(&self, mark: usize) -> Vec<f64> {
        let t0 = Instant::now();
        loop {
            let l = self.log.lock().unwrap();
            let all_closed = l[mark..].iter().all(|t| t.client_closed.is_some());
            if all_closed || t0.elapsed() > Duration::from_secs(2) {
                return l[mark..]
                    .iter()
                    .filter_map(|t| t.client_closed.map(|c| (c - t.accepted).as_secs_f64()))
                    .collect();
            }
            drop(l);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

type OnEof = Box<dyn FnOnce(Instant) + Send>;
/// A chunk and when it is due at the other side (empty: end of stream).
type Chunk = (Instant, Vec<u8>);

/// One direction: a reader stamps each chunk, a writer sends it when due.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration, on_eof: Option<OnEof>) {
    let (tx, rx): (Sender<Chunk>, Receiver<Chunk>) = unbounded();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let now = Instant::now();
                    if let Some(f) = on_eof {
                        f(now);
                    }
                    let _ = tx.send((now + delay, Vec::new()));
                    return;
                }
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for (due, bytes) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if bytes.is_empty() {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            if to.write_all(&bytes).is_err() {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    });
}
