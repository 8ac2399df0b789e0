//! A real Dovecot on free loopback ports, configured by the test: plain
//! IMAP (STARTTLS offered) and implicit-TLS IMAP, users in a passwd file.

use super::pki::Leaf;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-Pa55";
/// A user whose password needs an IMAP literal (8-bit) and quoting.
pub const USER2: &str = "bob";
pub const PASSWORD2: &str = "pä\"ss\\wörd";

#[derive(Clone)]
pub struct Options {
    pub auth_mechanisms: &'static str,
    pub listen_v6: bool,
    /// Configuration appended as is (client-certificate requirements...).
    pub extra: String,
    /// An LMTP listener (unix socket `run/lmtp-postfix`, mode 0666) that
    /// takes `user@any.domain` for the passwd user `user`: what Postfix
    /// delivers through. Needs Debian's dovecot-lmtpd.
    pub lmtp: bool,
    /// An auth socket for Postfix's `smtpd_sasl_type = dovecot`
    /// (unix socket `run/auth-postfix`, mode 0666).
    pub auth_listener: bool,
}

impl Options {
    /// One long-lived login process, so that its TLS session tickets
    /// outlive a connection and a second connect resumes (Dovecot's
    /// default starts a process per connection).
    pub fn resumable() -> Options {
        Options {
            extra: "service imap-login {\n  service_count = 0\n  process_min_avail = 1\n  process_limit = 1\n}\n"
                .into(),
            ..Default::default()
        }
    }

    /// The defaults plus what `support::postfix::Postfix` needs.
    pub fn for_postfix() -> Options {
        Options {
            lmtp: true,
            auth_listener: true,
            ..Default::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth_mechanisms: "plain login cram-md5 scram-sha-256",
            listen_v6: true,
            extra: String::new(),
            lmtp: false,
            auth_listener: false,
        }
    }
}

pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub imap_port: u16,
    pub imaps_port: u16,
    /// Set with [`Options::lmtp`]: Dovecot's LMTP socket.
    pub lmtp_socket: Option<PathBuf>,
    /// Set with [`Options::auth_listener`]: the auth socket for Postfix.
    pub auth_socket: Option<PathBuf>,
    child: Child,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ipv6_loopback_works() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

impl Dovecot {
    pub fn start(leaf: &Leaf, opts: &Options) -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix("mailext-dovecot")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::write(d.join("server.crt"), &leaf.cert_pem).unwrap();
        std::fs::write(d.join("server.key"), &leaf.key_pem).unwrap();
        let mut passwd =
            format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n{USER2}:{{PLAIN}}{PASSWORD2}::::::\n");
        // One mail store per test: u1 .. u30 share alice's password.
        for n in 1..=30 {
            passwd.push_str(&format!("u{n}:{{PLAIN}}{PASSWORD}::::::\n"));
        }
        std::fs::write(d.join("passwd"), passwd).unwrap();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let root = unsafe { libc::geteuid() } == 0;
        // As root, Dovecot's own users run the services and "mail" owns the
        // store; as anyone else, everything runs as that user.
        let (uid, gid, users) = if root {
            std::os::unix::fs::chown(d.join("home"), Some(8), Some(8)).unwrap();
            (8, 8, String::new())
        } else {
            let name = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
            let (u, g) = unsafe { (libc::getuid(), libc::getgid()) };
            (
                u,
                g,
                format!("default_login_user = {name}\ndefault_internal_user = {name}\n"),
            )
        };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let imap_port = free_port();
        let imaps_port = free_port();
        let listen = if opts.listen_v6 && ipv6_loopback_works() {
            "127.0.0.1, ::1"
        } else {
            "127.0.0.1"
        };
        let lmtp_socket = opts.lmtp.then(|| d.join("run").join("lmtp-postfix"));
        let auth_socket = opts
            .auth_listener
            .then(|| d.join("run").join("auth-postfix"));
        let mut protocols = String::from("imap");
        let mut services = String::new();
        if opts.lmtp {
            protocols.push_str(" lmtp");
            // Postfix sends RCPT TO:<alice@mail.test>; the passwd file says
            // "alice".
            services.push_str(
                "service lmtp {\n  unix_listener lmtp-postfix {\n    mode = 0666\n  }\n}\n\
                 protocol lmtp {\n  auth_username_format = %Ln\n}\n",
            );
        }
        if opts.auth_listener {
            services.push_str(
                "service auth {\n  unix_listener auth-postfix {\n    mode = 0666\n  }\n}\n",
            );
        }
        let conf = format!(
            r#"base_dir = {dir}/run
state_dir = {dir}/state
instance_name = mailext-{imap_port}
listen = {listen}
protocols = {protocols}
{users}log_path = {dir}/dovecot.log
ssl = yes
ssl_cert = <{dir}/server.crt
ssl_key = <{dir}/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = {mechs}
auth_failure_delay = 0
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
# The thread tests log one user in many times at once.
protocol imap {{
  mail_max_userip_connections = 1000
}}
{services}{extra}
"#,
            extra = opts.extra,
            dir = d.display(),
            mechs = opts.auth_mechanisms,
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        let stderr = std::fs::File::create(d.join("stderr.log")).unwrap();
        let mut cmd = Command::new(dovecot_binary());
        cmd.arg("-F").arg("-c").arg(d.join("dovecot.conf"));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // The shared instance lives in a static that is never dropped: have
        // the kernel stop Dovecot when the test process goes away.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = spawn_from_long_lived_thread(cmd);
        let dc = Dovecot {
            dir,
            imap_port,
            imaps_port,
            lmtp_socket,
            auth_socket,
            child,
        };
        dc.wait_ready();
        dc
    }

    fn wait_ready(&self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            let a = std::net::TcpStream::connect(("127.0.0.1", self.imap_port)).is_ok();
            let b = std::net::TcpStream::connect(("127.0.0.1", self.imaps_port)).is_ok();
            let sockets = [&self.lmtp_socket, &self.auth_socket]
                .into_iter()
                .flatten()
                .all(|p| p.exists());
            if a && b && sockets {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dovecot did not start; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        read("stderr.log") + &read("dovecot.log")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The folder of a user's mail store that holds `mailbox`: "INBOX", or
    /// a folder's name as Dovecot stores it. The store is Maildir++: a
    /// folder is `Maildir/.name`, where `name` is the wire name (modified
    /// UTF-7, `Entw&APw-rfe` for "Entwürfe") with `.` between levels
    /// (`Projekte.K&APY-ln`).
    pub fn mailbox_dir(&self, user: &str, mailbox: &str) -> PathBuf {
        let dir = self.dir.path().join("home").join(user).join("Maildir");
        if mailbox == "INBOX" {
            dir
        } else {
            dir.join(format!(".{mailbox}"))
        }
    }

    /// Writes messages straight into a user's Maildir (`mailbox` as for
    /// [`Dovecot::mailbox_dir`]; no messages just creates the folder), with
    /// Maildir flag letters (S seen, F flagged, R answered, T deleted, D draft).
    pub fn seed(&self, user: &str, mailbox: &str, messages: &[(&[u8], &str)]) {
        let home = self.dir.path().join("home").join(user);
        let dir = self.mailbox_dir(user, mailbox);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for (n, (bytes, flags)) in messages.iter().enumerate() {
            // Names sort in delivery order, so UIDs follow the slice order.
            let name = format!("{}.M{n:06}P1.mailext:2,{flags}", t - 100_000);
            std::fs::write(dir.join("cur").join(name), bytes).unwrap();
        }
        if unsafe { libc::geteuid() } == 0 {
            chown_tree(&home, 8, 8);
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PR_SET_PDEATHSIG fires when the spawning *thread* ends, and test threads
/// end early; so every server is spawned by one thread that never ends.
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
        .expect("cannot start dovecot (install dovecot-imapd)")
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

fn dovecot_binary() -> PathBuf {
    for p in ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("dovecot")
}
