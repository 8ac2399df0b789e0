//! A private Postfix on free loopback ports, delivering `<user>@mail.test`
//! into a test Dovecot's Maildirs over LMTP and authenticating SMTP clients
//! against that Dovecot's passwd file.
//!
//! Needs root (Postfix's master runs as root; its daemons as `postfix`),
//! Debian's `postfix` and, for delivery, `dovecot-lmtpd`; see [`available`].
//! The Dovecot must be started with `dovecot::Options::for_postfix()` (or
//! with `lmtp` and `auth_listener` set).
//!
//! The three listeners, all STARTTLS/TLS with the [`Leaf`] given, on free
//! 127.0.0.1 ports (or, with [`Options::standard_ports`], on ports 25, 587
//! and 465 of another loopback address):
//!
//! | port | TLS | AUTH | relays for |
//! | --- | --- | --- | --- |
//! | `smtp_port` (25 style) | STARTTLS offered | only after STARTTLS | anyone to `@mail.test`; others only when authenticated |
//! | `submission_port` (587 style) | STARTTLS offered, not required | before and after STARTTLS | authenticated clients only |
//! | `smtps_port` (465 style) | implicit TLS | yes | authenticated clients only |
//!
//! AUTH mechanisms are what the Dovecot offers (by default PLAIN LOGIN
//! CRAM-MD5 SCRAM-SHA-256); user names are the bare passwd names (`alice`).
//! Unknown `@mail.test` recipients get 550 at RCPT. Mail for any other
//! domain that an authenticated client relays is accepted and discarded:
//! nothing leaves the machine.
//!
//! Per-listener behaviour comes from parameters of this harness in main.cf
//! that [`Options::extra`] can override (see there), e.g.
//! `submission_tls_security_level = encrypt` for a submission port that
//! wants STARTTLS before MAIL (and then offers AUTH only after it).
//!
//! The master runs in the foreground (as `postfix start-fg` would) under a
//! small shell that carries PR_SET_PDEATHSIG, so it stops when the test
//! process ends, however it ends; dropping a [`Postfix`] stops it too.
//! Startup takes about 0.2 s.

use super::dovecot::{free_port, Dovecot};
use super::pki::Leaf;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The domain Postfix delivers to Dovecot: `alice@mail.test` is `alice`.
pub const DOMAIN: &str = "mail.test";
/// What the instance calls itself (banner, EHLO, Received:).
pub const HOSTNAME: &str = "mx.mail.test";

/// `user@mail.test`.
pub fn address(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

#[derive(Clone, Default)]
pub struct Options {
    /// Appended to main.cf as is; a parameter set here overrides the
    /// harness's own setting of it (Postfix keeps the last one). Besides
    /// Postfix's own parameters, the listeners read these (defaults shown):
    ///
    /// ```text
    /// mx_sasl_auth_enable = yes            # smtp_port offers AUTH at all
    /// mx_tls_auth_only = yes               # ... only after STARTTLS
    /// mx_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
    /// submission_tls_security_level = may  # "encrypt": STARTTLS required
    /// submission_tls_auth_only = no
    /// submission_relay_restrictions = permit_sasl_authenticated, reject
    /// smtps_relay_restrictions = permit_sasl_authenticated, reject
    /// ```
    pub extra: String,
    /// Listen on the standard ports 25, 587 and 465 of this loopback
    /// address instead of free ports on 127.0.0.1, so that a client's
    /// defaults by port number (no port means 25, 465 means implicit TLS,
    /// 587 means EHLO) meet a real server. See [`standard_ports_ip`]; the
    /// [`Leaf`] must then name the address for verification.
    pub standard_ports: Option<Ipv4Addr>,
}

/// The standard SMTP ports a [`Options::standard_ports`] instance uses.
pub const STANDARD_PORTS: [u16; 3] = [25, 587, 465];

/// A loopback address (127.0.0.2 to 127.0.0.254, all of them on `lo`)
/// whose ports 25, 587 and 465 are free now, for
/// [`Options::standard_ports`]. Needs root, as Postfix does.
pub fn standard_ports_ip() -> Ipv4Addr {
    // Start somewhere that depends on the process, so that concurrent test
    // processes seldom race for one address.
    let start = std::process::id() as usize;
    for k in 0..253 {
        let ip = Ipv4Addr::new(127, 0, 0, (2 + (start + k * 37) % 253) as u8);
        let free = STANDARD_PORTS
            .iter()
            .all(|p| std::net::TcpListener::bind((ip, *p)).is_ok());
        if free {
            return ip;
        }
    }
    panic!("no loopback address with ports 25, 587 and 465 free");
}

pub struct Postfix {
    /// `etc/` (main.cf, master.cf, certificate), `spool/`, `data/`,
    /// `postfix.log`.
    pub dir: tempfile::TempDir,
    /// Where the listeners are: 127.0.0.1, or [`Options::standard_ports`].
    pub ip: Ipv4Addr,
    pub smtp_port: u16,
    pub submission_port: u16,
    pub smtps_port: u16,
    child: Child,
}

/// Whether this machine can run [`Postfix`]: root, Postfix installed, and
/// Dovecot's LMTP server installed.
pub fn available() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    root && Path::new(MASTER).exists() && Path::new("/usr/lib/dovecot/lmtp").exists()
}

const MASTER: &str = "/usr/lib/postfix/sbin/master";

/// Runs "$@" (the master) and passes SIGTERM/SIGINT/SIGHUP on to it.
const GUARD: &str = r#""$@" &
m=$!
trap 'kill -TERM $m 2>/dev/null; wait $m; exit 0' TERM INT HUP
wait $m
"#;

impl Postfix {
    pub fn start(dovecot: &Dovecot, leaf: &Leaf) -> Postfix {
        Postfix::start_with(dovecot, leaf, &Options::default())
    }

    pub fn start_with(dovecot: &Dovecot, leaf: &Leaf, opts: &Options) -> Postfix {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "a private Postfix needs root (its master runs as root)"
        );
        let (Some(lmtp), Some(auth)) = (&dovecot.lmtp_socket, &dovecot.auth_socket) else {
            panic!("start Dovecot with dovecot::Options::for_postfix() (lmtp and auth_listener)");
        };
        let dir = tempfile::Builder::new()
            .prefix("mailext-postfix")
            .tempdir()
            .unwrap();
        let d = dir.path();
        use std::os::unix::fs::PermissionsExt;
        // The daemons run as "postfix" and open some absolute paths.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Configuration apart from the queue, as Postfix wants: the
        // configuration tree root's, the queue mostly "postfix"'s.
        let etc = d.join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("server.crt"), &leaf.cert_pem).unwrap();
        std::fs::write(etc.join("server.key"), &leaf.key_pem).unwrap();
        std::fs::set_permissions(
            etc.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        // Every passwd user of the Dovecot is a mailbox here.
        let passwd = std::fs::read_to_string(dovecot.path().join("passwd")).unwrap();
        let mailboxes: String = passwd
            .lines()
            .filter_map(|l| l.split(':').next())
            .filter(|u| !u.is_empty())
            .map(|u| format!("{} ok\n", address(u)))
            .collect();
        std::fs::write(etc.join("vmailbox"), mailboxes).unwrap();

        let mut ports = Vec::new();
        let ip = match opts.standard_ports {
            Some(ip) => {
                assert!(ip.is_loopback(), "{ip} is not a loopback address");
                ports.extend(STANDARD_PORTS);
                ip
            }
            None => Ipv4Addr::LOCALHOST,
        };
        while ports.len() < 3 {
            let p = free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let (smtp_port, submission_port, smtps_port) = (ports[0], ports[1], ports[2]);
        let main_cf = format!(
            r#"compatibility_level = 3.6
queue_directory = {dir}/spool
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {dir}/postfix.log
maillog_file_prefixes = {dir}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {HOSTNAME}
mydomain = {DOMAIN}
myorigin = $mydomain
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
alias_maps =
alias_database =
local_recipient_maps =
local_transport = error:no local delivery here
biff = no
append_dot_mydomain = no
readme_directory = no
recipient_delimiter =
smtputf8_enable = yes
# No DNS at all: only loopback exists.
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
# Tests want answers at once and quick retries.
smtpd_error_sleep_time = 0
in_flow_delay = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
delay_warning_time = 0

smtpd_banner = $myhostname ESMTP
smtpd_tls_chain_files = {etc}/server.key, {etc}/server.crt
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {auth}
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions =

# Mailboxes are Dovecot's: LMTP maps alice@mail.test to alice.
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_alias_maps =
virtual_transport = lmtp:unix:{lmtp}
# Relayed mail goes nowhere.
default_transport = discard:not delivered outside {DOMAIN}
relay_transport = discard:not delivered outside {DOMAIN}

# The harness's per-listener knobs (master.cf uses them).
mx_sasl_auth_enable = yes
mx_tls_auth_only = yes
mx_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
submission_tls_security_level = may
submission_tls_auth_only = no
submission_relay_restrictions = permit_sasl_authenticated, reject
smtps_relay_restrictions = permit_sasl_authenticated, reject
{extra}
"#,
            dir = d.display(),
            etc = etc.display(),
            auth = auth.display(),
            lmtp = lmtp.display(),
            extra = opts.extra,
        );
        std::fs::write(etc.join("main.cf"), main_cf).unwrap();
        // Nothing chrooted (column 5 "n"): the sockets and files are absolute
        // paths outside the queue.
        let master_cf = format!(
            r#"# service type private unpriv chroot wakeup maxproc command + args
{ip}:{smtp_port} inet n - n - - smtpd
  -o syslog_name=postfix/mx
  -o smtpd_sasl_auth_enable=$mx_sasl_auth_enable
  -o smtpd_tls_auth_only=$mx_tls_auth_only
  -o smtpd_relay_restrictions=$mx_relay_restrictions
{ip}:{submission_port} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=$submission_tls_security_level
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=$submission_tls_auth_only
  -o smtpd_relay_restrictions=$submission_relay_restrictions
{ip}:{smtps_port} inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=$smtps_relay_restrictions
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
local      unix  - n n -     - local
virtual    unix  - n n -     - virtual
lmtp       unix  - - n -     - lmtp
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
"#
        );
        std::fs::write(etc.join("master.cf"), master_cf).unwrap();

        // Postfix re-reads a main.cf modified within the last second, up to
        // two seconds long, lest it read one being edited.
        let past = std::time::SystemTime::now() - Duration::from_secs(60);
        for f in [
            "main.cf",
            "master.cf",
            "vmailbox",
            "server.crt",
            "server.key",
        ] {
            let file = std::fs::File::options()
                .write(true)
                .open(etc.join(f))
                .unwrap();
            file.set_modified(past).unwrap();
        }
        make_queue(d);

        // The master in the foreground (what `postfix start-fg` runs). It
        // leads its own process group and stops its daemons on SIGTERM. It
        // cannot take that signal from the kernel when we go away: changing
        // its effective ids (as it does) clears PR_SET_PDEATHSIG. So a shell
        // that keeps the parent-death signal runs it and passes SIGTERM on;
        // the shell lives exactly as long as the master.
        let out = std::fs::File::create(d.join("master.out")).unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(GUARD).arg("postfix-guard").arg(MASTER);
        cmd.arg("-c").arg(&etc).arg("-s");
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = spawn_from_long_lived_thread(cmd);
        let mut pf = Postfix {
            dir,
            ip,
            smtp_port,
            submission_port,
            smtps_port,
            child,
        };
        pf.wait_ready();
        pf
    }

    fn wait_ready(&mut self) {
        let t0 = Instant::now();
        let mut ready = [false; 3];
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.try_wait() {
                // The master's own fatal errors come before its logging
                // service runs and go to syslog only; postconf at least
                // says what it finds odd in main.cf.
                let postconf = Command::new("/usr/sbin/postconf")
                    .arg("-c")
                    .arg(self.config_dir())
                    .arg("-n")
                    .stdin(Stdio::null())
                    .output();
                let check = postconf.map_or_else(
                    |e| e.to_string(),
                    |o| String::from_utf8_lossy(&o.stderr).into_owned(),
                );
                panic!(
                    "postfix master exited ({status}; its startup errors go to syslog \
                     only); postconf: {check}\nlog:\n{}",
                    self.log()
                );
            }
            ready[0] = ready[0] || greets(self.ip, self.smtp_port, false);
            ready[1] = ready[1] || greets(self.ip, self.submission_port, false);
            ready[2] = ready[2] || greets(self.ip, self.smtps_port, true);
            if ready.iter().all(|r| *r) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "postfix did not greet on all ports (smtp, submission, smtps: {ready:?}); log:\n{}",
            self.log()
        );
    }

    /// Postfix's log (maillog_file) and whatever the master printed.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        read("master.out") + &read("postfix.log")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration directory (`postfix -c` / `postqueue -c` take it).
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// [`wait_for_delivery`], with this Postfix's log in the panic.
    pub fn wait_for_delivery(
        &self,
        dovecot: &Dovecot,
        user: &str,
        n: usize,
        within: Duration,
    ) -> Vec<Vec<u8>> {
        poll_maildir(dovecot, user, n, within)
            .unwrap_or_else(|got| panic!("{got}\npostfix log:\n{}", self.log()))
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // The master's pid is its daemons' process group.
        let master = std::fs::read_to_string(self.dir.path().join("spool/pid/master.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        // The guard passes SIGTERM on to the master, the master to its
        // daemons.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        let mut exited = false;
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let Some(pid) = master else {
            return;
        };
        // A group id stays taken while any member exists, so this reaches
        // only this instance's daemons.
        let t0 = Instant::now();
        while !live_members(pid).is_empty() {
            if t0.elapsed() > Duration::from_secs(3) {
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What `postfix start` (`postfix check`, post-install create-missing)
/// creates before it runs the master, as /etc/postfix/postfix-files says;
/// done here because the script takes a second or two of shell and
/// postconf runs.
fn make_queue(d: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let postfix = user_id("postfix");
    let postdrop = group_id("postdrop");
    let make = |p: PathBuf, uid: u32, gid: u32, mode: u32| {
        std::fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let spool = d.join("spool");
    make(spool.clone(), 0, 0, 0o755);
    make(spool.join("pid"), 0, 0, 0o755);
    for q in [
        "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private",
        "saved", "trace",
    ] {
        make(spool.join(q), postfix, 0, 0o700);
    }
    make(spool.join("maildrop"), postfix, postdrop, 0o730);
    make(spool.join("public"), postfix, postdrop, 0o710);
    make(d.join("data"), postfix, 0, 0o700);
}

fn user_id(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    assert!(!pw.is_null(), "no user {name} (install postfix)");
    unsafe { (*pw).pw_uid }
}

fn group_id(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    assert!(!gr.is_null(), "no group {name} (install postfix)");
    unsafe { (*gr).gr_gid }
}

/// Members of process group `pgid` that have not exited: the master's
/// daemons, once it is gone, are reparented, and zombies until init reaps
/// them; those do not count.
fn live_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "pid (comm) state ppid pgrp ...": comm may hold anything.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                return false;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.len() > 2 && f[0] != "Z" && f[0] != "X" && f[2] == pgid.to_string()
        })
        .collect()
}

/// Polls `user`'s Maildir (new/ and cur/) until it holds at least `n`
/// messages, and returns them all (oldest first by Maildir name). Panics
/// with the Dovecot log after `within`.
pub fn wait_for_delivery(
    dovecot: &Dovecot,
    user: &str,
    n: usize,
    within: Duration,
) -> Vec<Vec<u8>> {
    poll_maildir(dovecot, user, n, within).unwrap_or_else(|got| panic!("{got}"))
}

fn poll_maildir(
    dovecot: &Dovecot,
    user: &str,
    n: usize,
    within: Duration,
) -> Result<Vec<Vec<u8>>, String> {
    let maildir = dovecot.path().join("home").join(user).join("Maildir");
    let t0 = Instant::now();
    loop {
        let got = read_maildir(&maildir);
        if let Some(messages) = &got {
            if messages.len() >= n {
                return Ok(messages.clone());
            }
        }
        if t0.elapsed() >= within {
            return Err(format!(
                "{} of {n} messages for {user} in {} after {within:?}; dovecot log:\n{}",
                got.map_or(0, |m| m.len()),
                maildir.display(),
                dovecot.log()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every message in new/ and cur/, or None when one moved while reading
/// (Dovecot moves new/ to cur/ as IMAP sees them): the caller reads again.
fn read_maildir(maildir: &Path) -> Option<Vec<Vec<u8>>> {
    let mut names = std::collections::BTreeMap::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let base = name.split(":2,").next().unwrap_or(&name).to_string();
            names.insert(base, e.path());
        }
    }
    names.into_values().map(|p| std::fs::read(p).ok()).collect()
}

/// Whether the port answers with a 220 greeting (after a TLS handshake
/// first for implicit TLS). Says QUIT so the log stays quiet.
fn greets(ip: Ipv4Addr, port: u16, implicit_tls: bool) -> bool {
    let Ok(tcp) = TcpStream::connect((ip, port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(2)));
    if implicit_tls {
        let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
        b.set_verify(openssl::ssl::SslVerifyMode::NONE);
        match b.build().connect("localhost", tcp) {
            Ok(tls) => greeting_then_quit(tls),
            Err(_) => false,
        }
    } else {
        greeting_then_quit(tcp)
    }
}

fn greeting_then_quit<S: Read + Write>(s: S) -> bool {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() || !line.starts_with("220") {
        return false;
    }
    let _ = r.get_mut().write_all(b"QUIT\r\n");
    let _ = r.read_line(&mut line);
    true
}

/// PR_SET_PDEATHSIG fires when the spawning *thread* ends, and test threads
/// end early; so the master is spawned by one thread that never ends.
fn spawn_from_long_lived_thread(cmd: Command) -> Child {
    type Job = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        });
        std::sync::Mutex::new(tx)
    });
    let (rtx, rrx) = std::sync::mpsc::channel();
    tx.lock().unwrap().send((cmd, rtx)).unwrap();
    rrx.recv()
        .unwrap()
        .expect("cannot start postfix's master (install postfix)")
}
