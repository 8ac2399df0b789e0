//! Real proxies on free loopback ports, for the proxy tests: tinyproxy
//! (HTTP CONNECT, optional Basic authentication) and microsocks (SOCKS5,
//! optional RFC 1929 user name and password). Each lives as long as its
//! value: Drop kills it, and the kernel kills it if the test process dies.
//!
//! What the real servers do (tinyproxy 1.11, microsocks 1.0):
//! - tinyproxy answers a CONNECT without credentials with `407` and
//!   `Proxy-Authenticate: Basic realm="Tinyproxy"`, but *wrong* credentials
//!   with `401 Unauthorized` and `WWW-Authenticate`; its replies are
//!   HTTP/1.0 with an HTML body, then it closes. A target that refuses the
//!   connection gives `500 Unable to connect`. Its config grammar limits
//!   BasicAuth user names and passwords to letters, digits, `-`, `.`, `_`.
//! - microsocks with `-u/-P` offers only user/password: a greeting without
//!   method 2 gets `05 FF`; a wrong password gets `01 02` (RFC 1929
//!   version 1, status 2) and a close. A refused target gives REP 5, an
//!   unresolvable name REP 1 (general failure). Its replies always carry the
//!   bound address 0.0.0.0:0 (ATYP 1).
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a proxy may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(5);
/// Attempts with a new port if the proxy exits at once (port taken meanwhile).
const ATTEMPTS: usize = 3;

pub struct Tinyproxy {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Starts tinyproxy on 127.0.0.1, CONNECT allowed to every port, with
    /// Basic authentication required when `basic_auth` is given. User name
    /// and password must be made of `[A-Za-z0-9._-]` (tinyproxy's grammar).
    pub fn start(basic_auth: Option<(&str, &str)>) -> Tinyproxy {
        if let Some((u, p)) = basic_auth {
            let ok = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            };
            assert!(
                ok(u) && ok(p),
                "tinyproxy's BasicAuth accepts only [A-Za-z0-9._-] in user names and passwords"
            );
        }
        let mut last_log = String::new();
        for _ in 0..ATTEMPTS {
            let dir = tempdir("mailext-tinyproxy");
            let port = free_port();
            let d = dir.path();
            // No ConnectPort line: CONNECT may reach any port. No User or
            // Group: tinyproxy keeps the current user (as root it warns
            // "You SHOULD set a UserName" and carries on). No PidFile.
            let mut conf = format!(
                "Port {port}\n\
                 Listen 127.0.0.1\n\
                 Timeout 600\n\
                 MaxClients 200\n\
                 LogFile \"{log}\"\n\
                 LogLevel Info\n\
                 Allow 127.0.0.1\n\
                 DisableViaHeader Yes\n",
                log = d.join("tinyproxy.log").display(),
            );
            if let Some((u, p)) = basic_auth {
                conf.push_str(&format!("BasicAuth {u} {p}\n"));
            }
            std::fs::write(d.join("tinyproxy.conf"), conf).unwrap();
            let mut cmd = Command::new(binary("tinyproxy"));
            cmd.arg("-d").arg("-c").arg(d.join("tinyproxy.conf"));
            let child = spawn(cmd, d, "tinyproxy");
            let mut t = Tinyproxy { port, child, dir };
            match wait_ready(&mut t.child, port) {
                Ok(()) => return t,
                Err(why) => last_log = format!("{why}; log:\n{}", t.log()),
            }
        }
        panic!("tinyproxy did not start: {last_log}");
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:port`, without credentials.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The log file and stderr, for failure messages.
    pub fn log(&self) -> String {
        read_logs(self.dir.path(), &["tinyproxy.log", "output.log"])
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

pub struct Microsocks {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Microsocks {
    /// Starts microsocks on 127.0.0.1; with `auth`, clients must use RFC
    /// 1929 user name and password (no "auth once" whitelisting).
    pub fn start(auth: Option<(&str, &str)>) -> Microsocks {
        let mut last_log = String::new();
        for _ in 0..ATTEMPTS {
            let dir = tempdir("mailext-microsocks");
            let port = free_port();
            let mut cmd = Command::new(binary("microsocks"));
            cmd.arg("-i")
                .arg("127.0.0.1")
                .arg("-p")
                .arg(port.to_string());
            if let Some((u, p)) = auth {
                cmd.arg("-u").arg(u).arg("-P").arg(p);
            }
            let child = spawn(cmd, dir.path(), "microsocks");
            let mut m = Microsocks { port, child, dir };
            match wait_ready(&mut m.child, port) {
                Ok(()) => return m,
                Err(why) => last_log = format!("{why}; log:\n{}", m.log()),
            }
        }
        panic!("microsocks did not start: {last_log}");
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `socks5://127.0.0.1:port`, without credentials.
    pub fn url(&self) -> String {
        format!("socks5://127.0.0.1:{}", self.port)
    }

    /// What microsocks printed (one line per tunnel: "client[n] ip:
    /// connected to host:port", and its errors).
    pub fn log(&self) -> String {
        read_logs(self.dir.path(), &["output.log"])
    }
}

impl Drop for Microsocks {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

fn binary(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// Starts `cmd` with stdout and stderr in `dir/output.log`, killed by the
/// kernel (SIGKILL) when the test process ends.
fn spawn(mut cmd: Command, dir: &Path, name: &str) -> Child {
    let out = std::fs::File::create(dir.join("output.log")).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    spawn_from_long_lived_thread(cmd)
        .unwrap_or_else(|e| panic!("cannot start {name} (apt-get install {name}): {e}"))
}

/// PR_SET_PDEATHSIG fires when the spawning *thread* ends, and test threads
/// end early (a proxy kept in a static outlives the test that made it); so
/// every proxy is spawned by one thread that never ends.
fn spawn_from_long_lived_thread(cmd: Command) -> std::io::Result<Child> {
    use std::sync::mpsc::{channel, Sender};
    use std::sync::{Mutex, OnceLock};
    type Job = (Command, Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("proxy-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .unwrap();
        Mutex::new(tx)
    });
    let (rtx, rrx) = channel();
    tx.lock().unwrap().send((cmd, rtx)).unwrap();
    rrx.recv().unwrap()
}

/// Waits until 127.0.0.1:port accepts a connection, or the child exits,
/// or READY_WITHIN passes.
fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let t0 = Instant::now();
    while t0.elapsed() < READY_WITHIN {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited with {status}"));
        }
        if let Ok(s) =
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        {
            drop(s);
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(child);
    Err(format!("port {port} not accepting after {READY_WITHIN:?}"))
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn read_logs(dir: &Path, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(n)).unwrap_or_default())
        .collect()
}
