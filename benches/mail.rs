//! `cargo bench --bench mail [-- --quick]`: mailext against Python's
//! imaplib, curl and a minimal client (the floor), on a private Dovecot on
//! loopback. Prints one table; every row is measured in the same run.
//! See docs/benchmarks.md.

#[path = "../tests/support/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;
#[path = "../tests/support/pki.rs"]
#[allow(dead_code)]
mod pki;

#[path = "mail/child.rs"]
mod child;
#[path = "mail/floor.rs"]
mod floor;
#[path = "mail/mx.rs"]
mod mx;
#[path = "mail/proxy.rs"]
mod proxy;
#[path = "mail/util.rs"]
mod util;

use dovecot::{Dovecot, Options, PASSWORD, USER};
use floor::{Floor, Mech, Security};
use mx::Mx;
use proxy::DelayProxy;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use util::*;

/// Names under the bench certificate's `*.bench.test` that the plugin's
/// `resolve` setting maps to 127.0.0.1: a fresh name is a fresh TLS
/// session-cache key, so the plugin makes a full handshake.
const NAMES_PER_PORT: usize = 1000;
/// Row 1's floor and mailext loops are split into this many turns each.
const CONNECT_ROUNDS: usize = 30;

struct Cfg {
    /// Row 1: measured connects per client and mode, after `warm`, for
    /// imaplib and curl (each curl connect is a process: ~20 ms).
    connects: usize,
    /// Row 1: the same for mailext and the floor, which take turns: more
    /// samples for the two whose ratio is the target.
    inproc_connects: usize,
    warm: usize,
    /// Row 2: sessions through the delay proxy per client and mode.
    rt_runs: usize,
    /// Row 4: full + resumed pairs.
    pairs: usize,
    /// Row 5: runs per client.
    fetch_runs: usize,
    /// Row 6: seconds per client.
    tp_secs: f64,
    tp_threads: usize,
    /// Row 7: idle sessions held.
    scale: Vec<usize>,
    delay: Duration,
}

impl Cfg {
    fn new(quick: bool) -> Cfg {
        Cfg {
            connects: if quick { 40 } else { 200 },
            inproc_connects: if quick { 40 } else { 600 },
            warm: if quick { 3 } else { 10 },
            rt_runs: if quick { 3 } else { 8 },
            pairs: if quick { 10 } else { 200 },
            fetch_runs: if quick { 1 } else { 9 },
            tp_secs: if quick { 3.0 } else { 10.0 },
            tp_threads: 16,
            scale: if quick { vec![1000] } else { vec![1000, 10000] },
            delay: Duration::from_millis(20),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Cram,
    Login,
    StartTls,
    Tls,
}

const MODES: [Mode; 4] = [Mode::Cram, Mode::Login, Mode::StartTls, Mode::Tls];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Cram => "plaintext CRAM-MD5",
            Mode::Login => "plaintext LOGIN",
            Mode::StartTls => "STARTTLS, CRAM-MD5",
            Mode::Tls => "implicit TLS, CRAM-MD5",
        }
    }
    fn secure(self) -> i64 {
        match self {
            Mode::Cram | Mode::Login => 0,
            Mode::StartTls => 2,
            Mode::Tls => 1,
        }
    }
    fn tls(self) -> Security {
        match self {
            Mode::Cram | Mode::Login => Security::Plain,
            Mode::StartTls => Security::StartTls,
            Mode::Tls => Security::Implicit,
        }
    }
    fn mech(self) -> Mech {
        if self == Mode::Login {
            Mech::Login
        } else {
            Mech::CramMd5
        }
    }
    fn mech_name(self) -> &'static str {
        match self.mech() {
            Mech::CramMd5 => "CRAM-MD5",
            Mech::Login => "LOGIN",
        }
    }
    fn py_mode(self) -> &'static str {
        match self {
            Mode::Cram | Mode::Login => "plain",
            Mode::StartTls => "starttls",
            Mode::Tls => "tls",
        }
    }
}

struct Bench {
    cfg: Cfg,
    /// Holds the CA file and the Python script.
    _work: tempfile::TempDir,
    ca_file: PathBuf,
    leaf: pki::Leaf,
    mx: Mx,
    floor: Floor,
    /// Every mechanism (CRAM-MD5 chosen by everyone).
    a: Dovecot,
    /// PLAIN and LOGIN only: mailext falls back to the LOGIN command.
    b: Dovecot,
    python: Option<String>,
    curl: Option<String>,
    script: PathBuf,
    /// Next unused name per port, for full TLS handshakes.
    names: std::sync::Mutex<std::collections::HashMap<u16, usize>>,
    table: Table,
    /// Remarks printed under the table.
    notes: Vec<String>,
}

/// Dovecot tuned for the bench: one long-lived login process (so TLS
/// sessions resume and logins do not fork), imap processes reused, logins
/// not logged.
fn bench_conf() -> String {
    "service imap-login {\n  service_count = 0\n  process_limit = 1\n  process_min_avail = 1\n  \
     client_limit = 4000\n}\nservice imap {\n  service_count = 0\n  client_limit = 100\n  \
     process_limit = 200\n}\ndefault_vsz_limit = 2G\ninfo_log_path = /dev/null\n"
        .to_string()
}

fn which(prog: &str) -> Option<String> {
    Command::new(prog)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| prog.to_string())
}

/// Runs a step, turning a panic into a table note so one failed row does
/// not lose the rest of the table.
fn guarded(b: &mut Bench, what: &str, f: impl FnOnce(&mut Bench)) {
    let t0 = Instant::now();
    eprintln!("== {what}");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(b)));
    if let Err(e) = r {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let first = msg.lines().next().unwrap_or("").to_string();
        b.notes.push(format!("{what} failed: {first}"));
        eprintln!("{what} failed: {msg}");
    }
    eprintln!("   ({:.1} s)", t0.elapsed().as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(k) = args.iter().position(|a| a == "--child") {
        child::run(&args[k + 1..]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let t_start = Instant::now();
    let nofile = raise_nofile();
    let mut b = setup(Cfg::new(quick));
    b.notes.push(format!(
        "file descriptor limit {nofile}; delay proxy {} ms each way (RTT {} ms)",
        b.cfg.delay.as_millis(),
        2 * b.cfg.delay.as_millis()
    ));

    // MAILEXT_BENCH_ONLY=2,4 runs only those rows (for working on one).
    let only: Option<Vec<String>> = std::env::var("MAILEXT_BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let want = |n: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == n));
    let mut row1: Vec<(Mode, Vec<ClientRun>)> = Vec::new();
    guarded(&mut b, "1. connect + authenticate + logout", |b| {
        if !want("1") && !want("3") {
            return;
        }
        for mode in MODES {
            let runs = connect_row(b, mode);
            row1.push((mode, runs));
        }
    });
    type Step = Box<dyn FnOnce(&mut Bench)>;
    let steps: Vec<(&str, &str, Step)> = vec![
        (
            "2",
            "2. round trips through the delay proxy",
            Box::new(round_trips),
        ),
        ("3", "3. client CPU", Box::new(move |b| cpu_row(b, &row1))),
        ("4", "4. TLS reconnects", Box::new(reconnects)),
        ("5", "5. mail movement", Box::new(mail_movement)),
        ("6", "6. throughput", Box::new(throughput)),
        ("7", "7. scale", Box::new(scale)),
    ];
    for (n, what, f) in steps {
        if want(n) {
            guarded(&mut b, what, f);
        }
    }

    println!();
    println!("mailext benchmark{}", if quick { " (--quick)" } else { "" });
    println!("Machine: {}", machine());
    println!(
        "Peers: {}; {}; {}; {}",
        version_of("dovecot", &["--version"])
            .split(' ')
            .next()
            .map(|v| format!("Dovecot {v}"))
            .unwrap_or_default(),
        version_of("python3", &["--version"]),
        version_of("curl", &["--version"])
            .split(" (")
            .next()
            .unwrap_or(""),
        openssl::version::version()
    );
    println!();
    print!("{}", b.table.render());
    println!();
    for n in &b.notes {
        println!("- {n}");
    }
    println!("- whole run {:.0} s", t_start.elapsed().as_secs_f64());
}

fn setup(cfg: Cfg) -> Bench {
    let work = tempfile::Builder::new()
        .prefix("mailext-bench")
        .tempdir()
        .unwrap();
    let ca = pki::Ca::new("mailext bench CA");
    let leaf = ca.leaf(
        "localhost",
        &["localhost", "*.bench.test"],
        &["127.0.0.1", "::1"],
        -1,
        30,
    );
    let cacerts = work.path().join("cacerts");
    std::fs::create_dir_all(&cacerts).unwrap();
    ca.write_pem(&cacerts.join("bench-ca.pem"));
    let ca_file = cacerts.join("bench-ca.pem");
    // Before the plugin does any TLS; children inherit it.
    std::env::set_var("MAILEXT_CACERTS", &cacerts);
    let mx = Mx::load();
    let floor = Floor::new(&ca_file);
    let opts = |mechs: &'static str| Options {
        auth_mechanisms: mechs,
        listen_v6: false,
        extra: bench_conf(),
        ..Default::default()
    };
    let a = Dovecot::start(&leaf, &opts("plain login cram-md5 scram-sha-256"));
    let b = Dovecot::start(&leaf, &opts("plain login"));
    let script = work.path().join("imaplib_bench.py");
    std::fs::write(&script, include_str!("mail/imaplib_bench.py")).unwrap();
    let python = which("python3");
    let curl = which("curl").filter(|c| {
        version_of(c, &["--version"]).contains("curl")
            && Command::new(c)
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(" imaps"))
                .unwrap_or(false)
    });
    let mut bench = Bench {
        cfg,
        _work: work,
        ca_file,
        leaf,
        mx,
        floor,
        a,
        b,
        python,
        curl,
        script,
        names: Default::default(),
        table: Table::default(),
        notes: Vec::new(),
    };
    bench.resolve_names(&[bench.a.imap_port, bench.a.imaps_port]);
    if bench.python.is_none() {
        bench
            .notes
            .push("python3 not found: imaplib rows skipped".into());
    }
    if bench.curl.is_none() {
        bench
            .notes
            .push("curl with IMAP not found: curl rows skipped".into());
    }
    bench
}

impl Bench {
    /// Points `NAMES_PER_PORT` names per port at 127.0.0.1 (one setting for
    /// the whole process, so every port is listed at once).
    fn resolve_names(&self, ports: &[u16]) {
        let mut entries = Vec::new();
        for p in ports {
            for n in 0..NAMES_PER_PORT {
                entries.push(format!("h{n}.bench.test:{p}=127.0.0.1"));
            }
        }
        assert_eq!(self.mx.set_config("resolve", &entries.join(";")), 0);
    }

    /// A server name mailext has not used yet on this port (a full TLS
    /// handshake), or the plain address for plaintext.
    fn mx_server(&self, port: u16, mode: Mode) -> String {
        if mode.tls() == Security::Plain {
            return format!("127.0.0.1:{port}");
        }
        let mut m = self.names.lock().unwrap();
        let n = m.entry(port).or_insert(0);
        assert!(*n < NAMES_PER_PORT, "out of fresh names for port {port}");
        *n += 1;
        format!("h{}.bench.test:{port}", *n - 1)
    }

    fn port(&self, mode: Mode) -> u16 {
        match mode {
            Mode::Cram | Mode::StartTls => self.a.imap_port,
            Mode::Login => self.b.imap_port,
            Mode::Tls => self.a.imaps_port,
        }
    }

    fn python_json(&self, v: Value) -> Result<(Value, Measured), String> {
        let py = self.python.as_ref().ok_or("no python3")?;
        let m = run_measured(Command::new(py).arg(&self.script).arg(v.to_string()))
            .map_err(|e| e.to_string())?;
        if !m.ok {
            return Err(format!(
                "python failed: {}",
                m.stderr.lines().last().unwrap_or("")
            ));
        }
        let j = serde_json::from_str(m.stdout.trim()).map_err(|e| format!("{e}: {}", m.stdout))?;
        Ok((j, m))
    }

    fn curl_connect_args(&self, mode: Mode, port: u16) -> Vec<String> {
        let scheme = if mode == Mode::Tls { "imaps" } else { "imap" };
        let mut v: Vec<String> = vec![
            "-s".into(),
            "-S".into(),
            "-o".into(),
            "/dev/null".into(),
            "--url".into(),
            format!("{scheme}://127.0.0.1:{port}/"),
            "-u".into(),
            format!("{USER}:{PASSWORD}"),
            // curl 7.88 has no way to send the LOGIN command to a server that
            // offers SASL; AUTHENTICATE PLAIN with an initial response is
            // the same single round trip.
            "--login-options".into(),
            if mode.mech() == Mech::Login {
                "AUTH=PLAIN".into()
            } else {
                "AUTH=CRAM-MD5".into()
            },
            // curl logs in only to run a command: NOOP is the cheapest.
            "-X".into(),
            "NOOP".into(),
        ];
        if mode.mech() == Mech::Login {
            v.push("--sasl-ir".into());
        }
        if mode == Mode::StartTls {
            v.push("--ssl-reqd".into());
        }
        if mode.tls() != Security::Plain {
            v.push("--cacert".into());
            v.push(self.ca_file.display().to_string());
        }
        v
    }

    fn curl_run(&self, args: &[String]) -> Result<Measured, String> {
        let c = self.curl.as_ref().ok_or("no curl")?;
        let m = run_measured(Command::new(c).args(args)).map_err(|e| e.to_string())?;
        if !m.ok {
            return Err(format!("curl failed: {}", m.stderr.trim()));
        }
        Ok(m)
    }
}

/// One client's loop in row 1: per-connect seconds and CPU per connect.
struct ClientRun {
    client: &'static str,
    times: Vec<f64>,
    cpu_per: f64,
    csw_per: f64,
    note: String,
}

/// A loop's per-connect seconds, CPU seconds and context switches per connect.
struct LoopOut {
    times: Vec<f64>,
    cpu_per: f64,
    csw_per: f64,
}

fn mx_loop(b: &Bench, mode: Mode, port: u16, n: usize) -> Result<LoopOut, String> {
    let mut times = Vec::with_capacity(n);
    let (c0, s0) = (cpu_self(), csw_self());
    for _ in 0..n {
        let server = b.mx_server(port, mode);
        let t0 = Instant::now();
        let (sock, _) = b.mx.connect(&server, USER, PASSWORD, mode.secure(), false);
        if sock <= 0 {
            return Err(format!("IMAPConnect {sock}: {}", b.mx.last_error()));
        }
        let rc = b.mx.disconnect(sock);
        times.push(t0.elapsed().as_secs_f64());
        if rc != 0 {
            return Err(format!("IMAPDisconnect {rc}: {}", b.mx.last_error()));
        }
    }
    let k = n.max(1) as f64;
    Ok(LoopOut {
        times,
        cpu_per: (cpu_self() - c0) / k,
        csw_per: (csw_self() - s0) / k,
    })
}

fn floor_loop(b: &Bench, mode: Mode, port: u16, n: usize) -> Result<LoopOut, String> {
    let addr = format!("127.0.0.1:{port}");
    let mut times = Vec::with_capacity(n);
    let (c0, s0) = (cpu_self(), csw_self());
    for _ in 0..n {
        let t0 = Instant::now();
        b.floor
            .session(
                &addr,
                "h.bench.test",
                mode.tls(),
                mode.mech(),
                USER,
                PASSWORD,
                false,
            )
            .map_err(|e| format!("floor: {e}"))?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let k = n.max(1) as f64;
    Ok(LoopOut {
        times,
        cpu_per: (cpu_self() - c0) / k,
        csw_per: (csw_self() - s0) / k,
    })
}

fn python_loop(b: &Bench, mode: Mode, port: u16, n: usize, warm: usize) -> Result<LoopOut, String> {
    let (j, _) = b.python_json(serde_json::json!({
        "kind": "connect", "host": "127.0.0.1", "port": port, "mode": mode.py_mode(),
        "mech": mode.mech_name(), "user": USER, "password": PASSWORD,
        "cafile": b.ca_file, "n": n, "warmup": warm}))?;
    let times: Vec<f64> = j["times"]
        .as_array()
        .ok_or("no times")?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let k = n.max(1) as f64;
    Ok(LoopOut {
        times,
        cpu_per: j["cpu"].as_f64().unwrap_or(f64::NAN) / k,
        csw_per: j["csw"].as_f64().unwrap_or(f64::NAN) / k,
    })
}

fn curl_loop(b: &Bench, mode: Mode, port: u16, n: usize, warm: usize) -> Result<LoopOut, String> {
    let args = b.curl_connect_args(mode, port);
    let mut times = Vec::new();
    let (mut cpu, mut csw) = (0.0, 0.0);
    for k in 0..warm + n {
        let m = b.curl_run(&args)?;
        if k >= warm {
            times.push(m.wall);
            cpu += m.cpu;
            csw += m.csw;
        }
    }
    let k = n.max(1) as f64;
    Ok(LoopOut {
        times,
        cpu_per: cpu / k,
        csw_per: csw / k,
    })
}

/// Checks which mechanism mailext uses in this mode (status "with X").
fn check_mechanism(b: &Bench, mode: Mode) -> Result<(), String> {
    let server = b.mx_server(b.port(mode), mode);
    let (sock, st) = b.mx.connect(&server, USER, PASSWORD, mode.secure(), true);
    if sock <= 0 {
        return Err(format!("IMAPConnect {sock}: {}", b.mx.last_error()));
    }
    b.mx.disconnect(sock);
    let want = format!("with {}", mode.mech_name());
    if !st.contains(&want) {
        return Err(format!("expected {want:?} in:\n{st}"));
    }
    if st.contains("session resumed") {
        return Err(format!("a fresh name resumed a session:\n{st}"));
    }
    Ok(())
}

fn connect_row(b: &mut Bench, mode: Mode) -> Vec<ClientRun> {
    let port = b.port(mode);
    if let Err(e) = check_mechanism(b, mode) {
        b.notes.push(format!("{}: {e}", mode.name()));
    }
    let (n, peer_n, warm) = (b.cfg.inproc_connects, b.cfg.connects, b.cfg.warm);
    let mut runs = Vec::new();
    type Loop = fn(&Bench, Mode, u16, usize) -> Result<LoopOut, String>;
    let inproc: [(&'static str, Loop); 2] = [("floor", floor_loop), ("mailext", mx_loop)];
    // Warm both up, then let them take turns in rounds: the VM's speed
    // drifts over seconds, and a drift must not land on one client only.
    let mut outs: Vec<Result<LoopOut, String>> = inproc
        .iter()
        .map(|(_, f)| {
            f(b, mode, port, warm).map(|_| LoopOut {
                times: Vec::with_capacity(n),
                cpu_per: 0.0,
                csw_per: 0.0,
            })
        })
        .collect();
    let rounds = CONNECT_ROUNDS.min(n.max(1));
    for round in 0..rounds {
        let share = n / rounds + usize::from(round < n % rounds);
        for k in 0..inproc.len() {
            // Alternate who goes first, so neither always follows the other.
            let k = if round % 2 == 0 {
                k
            } else {
                inproc.len() - 1 - k
            };
            let Ok(total) = &mut outs[k] else { continue };
            match (inproc[k].1)(b, mode, port, share) {
                Ok(o) => {
                    total.times.extend(o.times);
                    total.cpu_per += o.cpu_per * share as f64 / n as f64;
                    total.csw_per += o.csw_per * share as f64 / n as f64;
                }
                Err(e) => outs[k] = Err(e),
            }
        }
    }
    for ((client, _), r) in inproc.into_iter().zip(outs) {
        runs.push(match r {
            Ok(o) => ClientRun {
                client,
                times: o.times,
                cpu_per: o.cpu_per,
                csw_per: o.csw_per,
                note: String::new(),
            },
            Err(e) => ClientRun {
                client,
                times: vec![],
                cpu_per: f64::NAN,
                csw_per: f64::NAN,
                note: e,
            },
        });
    }
    let py = python_loop(b, mode, port, peer_n, warm);
    let cu = curl_loop(b, mode, port, peer_n, warm);
    for (client, r, note) in [
        ("imaplib", py, ""),
        (
            "curl",
            cu,
            if mode == Mode::Login {
                "a process per connect; NOOP; AUTHENTICATE PLAIN (SASL-IR)"
            } else {
                "a process per connect; NOOP to log in"
            },
        ),
    ] {
        runs.push(match r {
            Ok(o) => ClientRun {
                client,
                times: o.times,
                cpu_per: o.cpu_per,
                csw_per: o.csw_per,
                note: note.to_string(),
            },
            Err(e) => ClientRun {
                client,
                times: vec![],
                cpu_per: f64::NAN,
                csw_per: f64::NAN,
                note: e,
            },
        });
    }
    let floor_med = median_p90(&runs[0].times).0;
    for r in &runs {
        let (m, p90) = median_p90(&r.times);
        let note = if r.note.is_empty() {
            format!("{} connects", r.times.len())
        } else {
            r.note.clone()
        };
        b.table.row_note(
            "1 connect+login+logout",
            mode.name(),
            r.client,
            format!("{} (p90 {})", ms(m), ms(p90)),
            format!("{} floor", ratio(m, floor_med)),
            note,
        );
        if r.client == "mailext" {
            b.table.target("<= 1.05x floor", m <= 1.05 * floor_med);
        }
    }
    if mode == Mode::Cram && b.curl.is_some() {
        // What a curl process costs before it speaks IMAP.
        let mut t = Vec::new();
        for _ in 0..(n / 4).max(5) {
            if let Ok(m) = b.curl_run(&["-s".into(), "file:///dev/null".into()]) {
                t.push(m.wall);
            }
        }
        let (m, p90) = median_p90(&t);
        b.table.row_note(
            "1 connect+login+logout",
            "-",
            "curl file:///dev/null",
            format!("{} (p90 {})", ms(m), ms(p90)),
            "-".into(),
            "process start and exit alone".into(),
        );
    }
    runs
}

fn round_trips(b: &mut Bench) {
    let delay = b.cfg.delay;
    let proxies = [
        (
            b.a.imap_port,
            DelayProxy::start(([127, 0, 0, 1], b.a.imap_port).into(), delay),
        ),
        (
            b.a.imaps_port,
            DelayProxy::start(([127, 0, 0, 1], b.a.imaps_port).into(), delay),
        ),
        (
            b.b.imap_port,
            DelayProxy::start(([127, 0, 0, 1], b.b.imap_port).into(), delay),
        ),
    ];
    // The proxies' ports get names too (one resolve setting for all).
    let mut ports = vec![b.a.imap_port, b.a.imaps_port];
    ports.extend(proxies.iter().map(|(_, p)| p.port));
    b.resolve_names(&ports);
    let runs = b.cfg.rt_runs;
    for mode in MODES {
        let up = b.port(mode);
        let px = &proxies.iter().find(|(u, _)| *u == up).unwrap().1;
        let rtt = px.rtt();
        let mut results: Vec<(&str, Result<Vec<f64>, String>)> = Vec::new();
        // Each client: one warm-up session, then `runs` measured ones.
        let mark = px.mark();
        let r = floor_loop(b, mode, px.port, runs + 1).map(|_| px.sessions_since(mark + 1));
        results.push(("floor", r));
        let mark = px.mark();
        let r = mx_loop(b, mode, px.port, runs + 1).map(|_| px.sessions_since(mark + 1));
        results.push(("mailext", r));
        let mark = px.mark();
        let r = python_loop(b, mode, px.port, runs, 1).map(|_| px.sessions_since(mark + 1));
        results.push(("imaplib", r));
        let mark = px.mark();
        let r = curl_loop(b, mode, px.port, runs, 1).map(|_| px.sessions_since(mark + 1));
        results.push(("curl", r));
        let floor_rt = match &results[0].1 {
            Ok(t) => median_p90(t).0 / rtt,
            Err(_) => f64::NAN,
        };
        for (client, r) in results {
            match r {
                Ok(t) => {
                    let (m, p90) = median_p90(&t);
                    let (m, p90) = (m / rtt, p90 / rtt);
                    b.table.row_note(
                        "2 round trips",
                        mode.name(),
                        client,
                        format!("{m:.2} RT (p90 {p90:.2})"),
                        format!("{:+.2} RT vs floor", m - floor_rt),
                        format!("{} sessions, RTT {:.0} ms", t.len(), rtt * 1e3),
                    );
                    if client == "mailext" {
                        b.table
                            .target("= floor (within 0.1 RT)", m - floor_rt <= 0.1);
                    }
                }
                Err(e) => b.table.row_note(
                    "2 round trips",
                    mode.name(),
                    client,
                    "n/a".into(),
                    "-".into(),
                    e,
                ),
            }
        }
    }
}

fn cpu_row(b: &mut Bench, row1: &[(Mode, Vec<ClientRun>)]) {
    for (mode, runs) in row1 {
        let floor = runs[0].cpu_per;
        for r in runs {
            let note = match r.client {
                "curl" => "whole process (wait4 rusage)",
                "imaplib" => "loop only (RUSAGE_SELF in Python)",
                "mailext" => "RUSAGE_SELF: caller + I/O thread",
                _ => "RUSAGE_SELF",
            };
            b.table.row_note(
                "3 client CPU",
                mode.name(),
                r.client,
                format!("{} per connect", ms(r.cpu_per)),
                format!("{} floor", ratio(r.cpu_per, floor)),
                format!("{note}; {:.1} context switches per connect", r.csw_per),
            );
        }
    }
}

/// Row 4's measurements of one client: first and second connects of each
/// pair, their CPU, and how many resumed.
#[derive(Default)]
struct Pairs {
    times: [Vec<f64>; 2],
    cpu: [f64; 2],
    resumed: [usize; 2],
}

impl Pairs {
    /// Times `connect` (which says whether the session resumed) as the
    /// first (`second` false) or second connect of a pair.
    fn measure(&mut self, second: bool, connect: impl FnOnce() -> bool) {
        let c0 = cpu_self();
        let t0 = Instant::now();
        let resumed = connect();
        let k = second as usize;
        self.times[k].push(t0.elapsed().as_secs_f64());
        self.cpu[k] += cpu_self() - c0;
        self.resumed[k] += resumed as usize;
    }

    /// (median, p90, CPU per connect) of the first and of the second connects.
    fn summary(&self) -> [(f64, f64, f64); 2] {
        [0, 1].map(|k| {
            let (m, p) = median_p90(&self.times[k]);
            (m, p, self.cpu[k] / self.times[k].len().max(1) as f64)
        })
    }
}

fn reconnects(b: &mut Bench) {
    let port = b.a.imaps_port;
    let n = b.cfg.pairs;
    // Warm-up: after the idle proxy row the machine is cold, and the
    // first connects are up to 20 % slower.
    mx_loop(b, Mode::Tls, port, 3 * b.cfg.warm).expect("warm-up");
    floor_loop(b, Mode::Tls, port, 3 * b.cfg.warm).expect("warm-up");
    // mailext: a fresh name (full handshake), then the same name again.
    let servers: Vec<String> = (0..n).map(|_| b.mx_server(port, Mode::Tls)).collect();
    // The floor with and without its last session, for reference.
    let addr = format!("127.0.0.1:{port}");
    let (mut mx, mut floor) = (Pairs::default(), Pairs::default());
    // mailext's pair and the floor's take turns, so a drift of the VM's
    // speed lands on both.
    for server in &servers {
        for second in [false, true] {
            mx.measure(second, || {
                let (sock, st) = b.mx.connect(server, USER, PASSWORD, 1, true);
                assert!(sock > 0, "IMAPConnect {sock}: {}", b.mx.last_error());
                b.mx.disconnect(sock);
                st.contains("session resumed")
            });
        }
        for second in [false, true] {
            floor.measure(second, || {
                b.floor
                    .session(
                        &addr,
                        "h.bench.test",
                        Security::Implicit,
                        Mech::CramMd5,
                        USER,
                        PASSWORD,
                        second,
                    )
                    .expect("floor")
                    .resumed
            });
        }
    }
    let row = |b: &mut Bench, client: &str, (m, p, c): (f64, f64, f64), ratio: String, note| {
        b.table.row_note(
            "4 TLS reconnect",
            "implicit TLS, CRAM-MD5",
            client,
            format!("{} (p90 {}), CPU {}", ms(m), ms(p), ms(c)),
            ratio,
            note,
        );
    };
    let [full, res] = mx.summary();
    let note = format!("{}/{n} resumed (fresh name each)", mx.resumed[0]);
    row(b, "mailext first connect", full, "-".into(), note);
    let vs = format!(
        "{} time, {} CPU of first",
        ratio(res.0, full.0),
        ratio(res.2, full.2)
    );
    let note = format!("{}/{n} say \"session resumed\"", mx.resumed[1]);
    row(b, "mailext second connect", res, vs, note);
    b.table
        .target("<= 0.7x first", res.0 <= 0.7 * full.0 && mx.resumed[1] == n);
    let [full, res] = floor.summary();
    row(b, "floor full", full, "-".into(), String::new());
    let vs = format!(
        "{} time, {} CPU of full",
        ratio(res.0, full.0),
        ratio(res.2, full.2)
    );
    let note = format!("{}/{n} resumed", floor.resumed[1]);
    row(b, "floor resumed", res, vs, note);
}

fn child_json(b: &Bench, args: &[String]) -> Result<(Vec<Value>, Measured), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let _ = b;
    let m = run_measured(Command::new(exe).arg("--child").args(args)).map_err(|e| e.to_string())?;
    if !m.ok {
        return Err(format!(
            "child failed: {}",
            m.stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
        ));
    }
    let v = m
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).map_err(|e| e.to_string()))
        .collect::<Result<Vec<Value>, String>>()?;
    Ok((v, m))
}

const MIB: f64 = 1048576.0;

fn big_message() -> Vec<u8> {
    let mut big = Vec::with_capacity(50 * 1024 * 1024 + 200);
    big.extend_from_slice(b"From: a@example.com\r\nSubject: big\r\n\r\n");
    let line =
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789abcd\r\n";
    while big.len() < 50 * 1024 * 1024 {
        big.extend_from_slice(line);
    }
    big
}

/// (secs, bytes, peak KiB, peak-over-before KiB or NaN, cpu) of one run.
type Move = (f64, usize, f64, f64, f64);

/// A curl run as a `Move`: its `-w %{size_download}` output is the size.
fn curl_move(m: &Measured) -> Move {
    let size = m.stdout.trim().parse::<f64>().unwrap_or(f64::NAN) as usize;
    (m.wall, size, m.maxrss_kib as f64, f64::NAN, m.cpu)
}

fn mail_movement(b: &mut Bench) {
    let big = big_message();
    let msg_size = big.len();
    b.a.seed("u20", "Big", &[(&big, "")]);
    drop(big);
    let many: Vec<Vec<u8>> = (0..10_000)
        .map(|n| {
            format!("From: a@example.com\r\nSubject: message {n}\r\n\r\nbody {n}\r\n").into_bytes()
        })
        .collect();
    let refs: Vec<(&[u8], &str)> = many.iter().map(|m| (m.as_slice(), "")).collect();
    b.a.seed("u21", "INBOX", &refs);
    drop(many);
    let server = format!("127.0.0.1:{}", b.a.imaps_port);
    let port = b.a.imaps_port;
    // MAILEXT_BENCH_HOLD=1: keep the servers for profiling the children by hand.
    if std::env::var_os("MAILEXT_BENCH_HOLD").is_some() {
        eprintln!(
            "holding: MAILEXT_CACERTS={} --child fetch {server} u20 {PASSWORD} Big 1 | \
             --child list {server} u21 {PASSWORD} INBOX | --child loop 127.0.0.1:{} u1 {PASSWORD} 0 N",
            std::env::var("MAILEXT_CACERTS").unwrap_or_default(),
            b.a.imap_port
        );
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    for (kind, user, mailbox) in [("fetch", "u20", "Big"), ("list", "u21", "INBOX")] {
        // Warm-up (Dovecot builds its index, the page cache fills), untimed.
        let mut cargs = vec![
            kind.to_string(),
            server.clone(),
            user.to_string(),
            PASSWORD.to_string(),
            mailbox.to_string(),
        ];
        if kind == "fetch" {
            cargs.push("1".into());
        }
        if let Err(e) = child_json(b, &cargs) {
            b.notes.push(format!("{kind} warm-up: {e}"));
        }
        let mut res: Vec<(&str, Result<Vec<Move>, String>)> = Vec::new();
        let (mut mine, mut py, mut cu, mut fl) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut err_mine, mut err_py, mut err_cu, mut err_fl) = (None, None, None, None);
        let (mut ck, mut err_ck) = (Vec::new(), None);
        let shm = std::path::Path::new("/dev/shm");
        let kept_file = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
        .join(format!("mailext-bench-{}.eml", std::process::id()));
        let url = if kind == "fetch" {
            format!("imaps://127.0.0.1:{port}/{mailbox};UID=1")
        } else {
            format!("imaps://127.0.0.1:{port}/{mailbox}")
        };
        // Clients take turns, so a drift in the machine's speed hits all alike.
        for _ in 0..b.cfg.fetch_runs {
            match child_json(b, &cargs) {
                Ok((v, _)) => {
                    let j = &v[0];
                    let f = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
                    mine.push((
                        f("secs"),
                        f("size") as usize,
                        f("hwm_kib"),
                        f("hwm_kib") - f("rss_before_kib"),
                        f("cpu"),
                    ));
                }
                Err(e) => err_mine = Some(e),
            }
            match b.python_json(serde_json::json!({
                "kind": kind, "host": "127.0.0.1", "port": port, "mode": "tls",
                "mech": "CRAM-MD5", "user": user, "password": PASSWORD,
                "cafile": b.ca_file, "mailbox": mailbox, "uid": 1}))
            {
                Ok((j, m)) => {
                    let f = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
                    py.push((
                        f("secs"),
                        f("size") as usize,
                        m.maxrss_kib as f64,
                        f("maxrss_kib") - f("maxrss_before_kib"),
                        f("cpu"),
                    ));
                }
                Err(e) => err_py = Some(e),
            }
            let mut args: Vec<String> = [
                "-s",
                "-S",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                "-u",
                &format!("{user}:{PASSWORD}"),
                "--login-options",
                "AUTH=CRAM-MD5",
                "--cacert",
                &b.ca_file.display().to_string(),
                "--url",
                &url,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if kind == "list" {
                args.push("-X".into());
                args.push("UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE FLAGS)".into());
            }
            match b.curl_run(&args) {
                Ok(m) => cu.push(curl_move(&m)),
                Err(e) => err_cu = Some(e),
            }
            if kind == "fetch" {
                // curl keeping the message, as IMAPRecvMessage and imaplib
                // do: a file in RAM (tmpfs), so memory is written, not a disk.
                let mut keep = args.clone();
                let at = keep
                    .iter()
                    .position(|a| a == "/dev/null")
                    .expect("-o /dev/null");
                keep[at] = kept_file.display().to_string();
                match b.curl_run(&keep) {
                    Ok(m) => ck.push(curl_move(&m)),
                    Err(e) => err_ck = Some(e),
                }
                let _ = std::fs::remove_file(&kept_file);
                let c0 = cpu_self();
                match b
                    .floor
                    .fetch_discard(&server, "127.0.0.1", user, PASSWORD, mailbox, 1)
                {
                    Ok((secs, size)) => fl.push((secs, size, f64::NAN, f64::NAN, cpu_self() - c0)),
                    Err(e) => err_fl = Some(format!("floor: {e}")),
                }
            }
        }
        res.push(("mailext", err_mine.map(Err).unwrap_or(Ok(mine))));
        res.push(("imaplib", err_py.map(Err).unwrap_or(Ok(py))));
        res.push(("curl", err_cu.map(Err).unwrap_or(Ok(cu))));
        if kind == "fetch" {
            res.push(("curl, kept", err_ck.map(Err).unwrap_or(Ok(ck))));
            res.push(("floor", err_fl.map(Err).unwrap_or(Ok(fl))));
        }
        let med =
            |v: &[Move], f: fn(&Move) -> f64| median_p90(&v.iter().map(f).collect::<Vec<_>>()).0;
        let secs_of: Vec<(&str, f64)> = res
            .iter()
            .filter_map(|(c, r)| r.as_ref().ok().map(|v| (*c, med(v, |m| m.0))))
            .collect();
        for (client, r) in &res {
            let (rowname, mode) = if kind == "fetch" {
                ("5 fetch 50 MiB message", "implicit TLS")
            } else {
                ("5 list 10,000 messages", "implicit TLS")
            };
            match r {
                Ok(v) if !v.is_empty() => {
                    let secs = med(v, |m| m.0);
                    let size = v[0].1;
                    let peak = med(v, |m| m.2) * 1024.0;
                    let grow = med(v, |m| m.3) * 1024.0;
                    let cpu = med(v, |m| m.4);
                    let result = if kind == "fetch" {
                        format!("{:.0} MiB/s ({})", size as f64 / MIB / secs, ms(secs))
                    } else {
                        format!("{} ({:.0} msg/s)", ms(secs), 10_000.0 / secs)
                    };
                    let vs: Vec<String> = secs_of
                        .iter()
                        .filter(|(c, _)| c != client)
                        .map(|(c, s)| format!("{} {c}", ratio(*s, secs)))
                        .collect();
                    let mut note = format!("peak RSS {:.0} MiB", peak / MIB);
                    if *client == "floor" {
                        note = "reads into one 256 KiB buffer and drops the body: how fast the server sends".into();
                    } else if kind == "fetch" {
                        note.push_str(&format!(" = {:.2}x message", peak / msg_size as f64));
                    }
                    if !grow.is_nan() {
                        note.push_str(&format!(", +{:.0} MiB during the command", grow / MIB));
                    }
                    if *client == "curl" {
                        note.push_str(", to /dev/null; time includes process start");
                    }
                    if *client == "curl, kept" {
                        note.push_str(", to a file on tmpfs; time includes process start");
                    }
                    note.push_str(&format!(", CPU {}", ms(cpu)));
                    if kind == "fetch" && size != msg_size && *client != "imaplib" {
                        note.push_str(&format!(", got {size} of {msg_size} bytes"));
                    }
                    b.table.row_note(
                        rowname,
                        mode,
                        client,
                        result,
                        format!("speed: {}", vs.join(", ")),
                        note,
                    );
                    if *client == "mailext" {
                        let best_peer = secs_of
                            .iter()
                            .filter(|(c, _)| *c != "mailext" && *c != "floor")
                            .map(|(_, s)| *s)
                            .fold(f64::INFINITY, f64::min);
                        if kind == "fetch" {
                            b.table.target(
                                "as fast as the best peer, peak <= 3x message",
                                secs <= best_peer && peak <= 3.0 * msg_size as f64,
                            );
                        } else {
                            b.table
                                .target("as fast as the best peer", secs <= best_peer);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let mut e = e.clone();
                    if e.contains("Too large response headers") {
                        e.push_str(" (curl keeps a custom command's untagged replies as headers, at most 300 KB)");
                    }
                    b.table
                        .row_note(rowname, mode, client, "n/a".into(), "-".into(), e)
                }
            }
        }
    }
}

fn throughput(b: &mut Bench) {
    let users: Vec<String> = (1..=b.cfg.tp_threads).map(|k| format!("u{k}")).collect();
    let msgs: Vec<Vec<u8>> = (0..20)
        .map(|n| format!("From: a@example.com\r\nSubject: m {n}\r\n\r\nbody {n}\r\n").into_bytes())
        .collect();
    let refs: Vec<(&[u8], &str)> = msgs.iter().map(|m| (m.as_slice(), "")).collect();
    for u in &users {
        b.a.seed(u, "INBOX", &refs);
    }
    let server = format!("127.0.0.1:{}", b.a.imap_port);
    // Warm-up: every user's index exists before timing.
    for u in &users {
        let (s, _) = b.mx.connect(&server, u, PASSWORD, 0, false);
        assert!(s > 0, "{}", b.mx.last_error());
        b.mx.select(s, "INBOX");
        b.mx.disconnect(s);
    }
    let secs = b.cfg.tp_secs;
    let count = AtomicUsize::new(0);
    let errors = AtomicUsize::new(0);
    let first_err = std::sync::Mutex::new(String::new());
    let c0 = cpu_self();
    let t0 = Instant::now();
    let stop = t0 + Duration::from_secs_f64(secs);
    std::thread::scope(|sc| {
        for u in &users {
            let (mx, count, errors, first_err, server) =
                (&b.mx, &count, &errors, &first_err, &server);
            sc.spawn(move || {
                while Instant::now() < stop {
                    let (s, _) = mx.connect(server, u, PASSWORD, 0, false);
                    let ok = s > 0 && mx.select(s, "INBOX") == 0 && mx.list_messages(s) == (0, 20);
                    if s > 0 {
                        mx.disconnect(s);
                    }
                    if ok {
                        count.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                        let mut f = first_err.lock().unwrap();
                        if f.is_empty() {
                            *f = format!("{s}: {}", mx.last_error());
                        }
                    }
                }
            });
        }
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_self() - c0;
    let n = count.load(Ordering::Relaxed);
    let mx_rate = n as f64 / elapsed;
    let errs = errors.load(Ordering::Relaxed);
    let py = b.python_json(serde_json::json!({
        "kind": "throughput", "host": "127.0.0.1", "port": b.a.imap_port, "mode": "plain",
        "mech": "CRAM-MD5", "users": users, "password": PASSWORD, "threads": b.cfg.tp_threads,
        "secs": secs}));
    let py_rate = match &py {
        Ok((j, _)) => {
            j["sessions"].as_f64().unwrap_or(f64::NAN) / j["secs"].as_f64().unwrap_or(f64::NAN)
        }
        Err(_) => f64::NAN,
    };
    let mode = "plaintext CRAM-MD5";
    let what = format!(
        "{} threads: connect, select, list 20, logout",
        b.cfg.tp_threads
    );
    b.table.row_note(
        "6 throughput",
        mode,
        "mailext",
        format!("{mx_rate:.0} sessions/s"),
        format!("{} imaplib", ratio(mx_rate, py_rate)),
        format!(
            "{what}; {n} in {elapsed:.1} s, CPU {} per session{}",
            ms(cpu / n.max(1) as f64),
            if errs > 0 {
                format!(", {errs} failed: {}", first_err.lock().unwrap())
            } else {
                String::new()
            }
        ),
    );
    b.table
        .target(">= 2x imaplib", mx_rate >= 2.0 * py_rate && errs == 0);
    match py {
        Ok((j, _)) => {
            let sessions = j["sessions"].as_f64().unwrap_or(f64::NAN);
            let errs = j["errors"].as_array().map(|a| a.len()).unwrap_or(0);
            b.table.row_note(
                "6 throughput",
                mode,
                "imaplib",
                format!("{py_rate:.0} sessions/s"),
                "1.00x imaplib".into(),
                format!(
                    "{what} (Python threads); {sessions:.0} in {:.1} s, CPU {} per session{}",
                    j["secs"].as_f64().unwrap_or(f64::NAN),
                    ms(j["cpu"].as_f64().unwrap_or(f64::NAN) / sessions.max(1.0)),
                    if errs > 0 {
                        format!(", errors: {}", j["errors"])
                    } else {
                        String::new()
                    }
                ),
            );
        }
        Err(e) => b
            .table
            .row_note("6 throughput", mode, "imaplib", "n/a".into(), "-".into(), e),
    }
}

/// Dovecot for row 7: several login processes (each TLS session keeps its
/// proxy in a login process, two descriptors each), imap processes holding
/// 1,000 sessions each.
fn scale_conf(max: usize) -> String {
    let login_procs = 4;
    let per_login = max / login_procs + 1000;
    let imap_procs = max / 1000 + 8;
    format!(
        "default_client_limit = {c}\ndefault_vsz_limit = 2G\ninfo_log_path = /dev/null\n\
         service imap-login {{\n  service_count = 0\n  process_limit = {login_procs}\n  \
         process_min_avail = {login_procs}\n  client_limit = {per_login}\n}}\n\
         service imap {{\n  service_count = 0\n  client_limit = 1000\n  process_limit = {imap_procs}\n}}\n",
        c = max * 2 + 2000
    )
}

fn scale(b: &mut Bench) {
    // Each session is a descriptor in the host; keep room for the rest.
    let nofile = raise_nofile() as usize;
    let levels: Vec<usize> = b
        .cfg
        .scale
        .iter()
        .copied()
        .filter(|n| n + 500 <= nofile)
        .collect();
    for n in b.cfg.scale.iter().filter(|n| *n + 500 > nofile) {
        b.notes.push(format!(
            "row 7: {n} sessions skipped: the file descriptor limit is {nofile} (ulimit -Hn)"
        ));
    }
    let Some(&max) = levels.iter().max() else {
        return;
    };
    let d = Dovecot::start(
        &b.leaf,
        &Options {
            listen_v6: false,
            extra: scale_conf(max),
            ..Default::default()
        },
    );
    let users: Vec<String> = (1..=30).map(|k| format!("u{k}")).collect();
    let levels: Vec<String> = levels.iter().map(|n| n.to_string()).collect();
    for (name, port, secure) in [
        ("plaintext", d.imap_port, 0),
        ("implicit TLS", d.imaps_port, 1),
    ] {
        let args: Vec<String> = vec![
            "scale".into(),
            format!("127.0.0.1:{port}"),
            secure.to_string(),
            levels.join(","),
            "8".into(),
            PASSWORD.into(),
            users.join(","),
        ];
        match child_json(b, &args) {
            Ok((lines, _)) => {
                let disc = lines
                    .iter()
                    .find_map(|j| j["disconnect_secs"].as_f64())
                    .unwrap_or(f64::NAN);
                for j in lines.iter().filter(|j| j["level"].is_u64()) {
                    let f = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
                    let n = f("sessions");
                    let per = (f("rss_kib") - f("rss0_kib")) / n.max(1.0);
                    let mut note = format!(
                        "{:.0} plugin thread(s) (threads - host main); connected in {:.1} s, CPU {} per connect; {}/{} probed sessions answer NOOP",
                        f("threads") - 1.0,
                        f("connect_secs"),
                        ms(f("connect_cpu") / f("new").max(1.0)),
                        j["live"],
                        j["probed"]
                    );
                    if f("failures") > 0.0 {
                        note.push_str(&format!(
                            "; {} connects failed, first: {}",
                            j["failures"], j["first_error"]
                        ));
                    }
                    if j["level"].as_u64() == Some(max as u64) {
                        note.push_str(&format!("; all disconnected in {disc:.1} s"));
                    }
                    b.table.row_note(
                        "7 idle sessions",
                        name,
                        &format!("mailext {:.0}", n),
                        format!("{per:.1} KiB/session"),
                        "-".into(),
                        note,
                    );
                    let limit = if secure == 1 { 64.0 } else { 16.0 };
                    b.table.target(
                        &format!("<= {limit:.0} KiB, <= 4 threads"),
                        per <= limit && f("threads") - 1.0 <= 4.0 && f("failures") == 0.0,
                    );
                }
            }
            Err(e) => b.table.row_note(
                "7 idle sessions",
                name,
                "mailext",
                "n/a".into(),
                "-".into(),
                e,
            ),
        }
    }
    drop(d);
}
