//! Statistics, resource usage, /proc readers and the result table.

/// Median and 90th percentile (nearest rank) of a sample, in seconds.
pub fn median_p90(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| s[(((s.len() - 1) as f64) * p).round() as usize];
    (at(0.5), at(0.9))
}

fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// User + system CPU seconds of `who` (RUSAGE_SELF, RUSAGE_CHILDREN).
pub fn cpu(who: libc::c_int) -> f64 {
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut r) };
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// Voluntary + involuntary context switches of this process so far.
pub fn csw_self() -> f64 {
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    (r.ru_nvcsw + r.ru_nivcsw) as f64
}

pub fn cpu_self() -> f64 {
    cpu(libc::RUSAGE_SELF)
}

/// A field of /proc/self/status in KiB (VmRSS, VmHWM).
pub fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Raises the soft file-descriptor limit to the hard limit; returns it.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
pub fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    r.rlim_cur as u64
}

/// Runs a command to completion, reading its stdout, and returns the output,
/// the wall time, and the child's own rusage from wait4 (CPU, peak RSS).
pub struct Measured {
    pub stdout: String,
    pub stderr: String,
    pub ok: bool,
    pub wall: f64,
    pub cpu: f64,
    /// Context switches (voluntary + involuntary).
    pub csw: f64,
    pub maxrss_kib: u64,
}

pub fn run_measured(cmd: &mut std::process::Command) -> std::io::Result<Measured> {
    use std::io::Read;
    use std::process::Stdio;
    let t0 = std::time::Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut err_pipe = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        let mut e = String::new();
        let _ = err_pipe.read_to_string(&mut e);
        e
    });
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout)?;
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // Reaped here, so std's Child is never waited on (it would see ECHILD).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t0.elapsed().as_secs_f64();
    let stderr = err_thread.join().unwrap_or_default();
    if r != pid {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Measured {
        stdout,
        stderr,
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        csw: (ru.ru_nvcsw + ru.ru_nivcsw) as f64,
        maxrss_kib: ru.ru_maxrss as u64,
    })
}

pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .map(|k| format!("{:.0} GiB RAM", k as f64 / 1048576.0))
        .unwrap_or_default();
    format!("{model}, {cores} cores, {mem}, Linux {kernel}")
}

/// First line of `prog args` (tool versions for the header).
pub fn version_of(prog: &str, args: &[&str]) -> String {
    std::process::Command::new(prog)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "not found".into())
}

/// One table, markdown, every row from this run.
#[derive(Default)]
pub struct Table {
    rows: Vec<[String; 7]>,
}

impl Table {
    pub fn row_note(
        &mut self,
        row: &str,
        mode: &str,
        client: &str,
        result: String,
        vs: String,
        note: String,
    ) {
        let line = [
            row.to_string(),
            mode.to_string(),
            client.to_string(),
            result,
            vs,
            String::new(),
            note,
        ];
        eprintln!("  {}", line.join(" | "));
        self.rows.push(line);
    }

    /// The target for the last row, and whether it is met.
    pub fn target(&mut self, target: &str, met: bool) {
        if let Some(r) = self.rows.last_mut() {
            r[5] = format!("{target}: {}", if met { "met" } else { "MISSED" });
            eprintln!("    target {}", r[5]);
        }
    }

    pub fn render(&self) -> String {
        let head = [
            "Row", "Mode", "Client", "Result", "Ratio", "Target", "Notes",
        ];
        let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, c) in cells.iter().enumerate() {
                s.push(' ');
                s.push_str(c);
                s.push_str(&" ".repeat(w[i] - c.chars().count()));
                s.push_str(" |");
            }
            s
        };
        let mut out = line(&head.map(String::from));
        out.push('\n');
        let sep: Vec<String> = w.iter().map(|n| "-".repeat(*n)).collect();
        out.push_str(&line(&sep));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

pub fn ms(s: f64) -> String {
    if s.is_nan() {
        "n/a".into()
    } else if s < 0.01 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.2} ms", s * 1e3)
    }
}

pub fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "n/a".into()
    } else {
        format!("{:.2}x", a / b)
    }
}
