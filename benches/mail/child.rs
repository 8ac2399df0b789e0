//! Measurements that need a process of their own (peak memory, resident
//! memory per session, thread counts): the bench binary runs itself with
//! `--child KIND ARGS...` and reads one JSON line per result from stdout.

use crate::mx::Mx;
use crate::util::{cpu_self, raise_nofile, status_kib, threads};
use serde_json::json;
use std::time::{Duration, Instant};

pub fn run(args: &[String]) {
    let kind = args.first().map(String::as_str).unwrap_or("");
    let a = |n: usize| args.get(n).cloned().unwrap_or_default();
    match kind {
        // fetch SERVER USER PASS MAILBOX UID
        // list  SERVER USER PASS MAILBOX
        "fetch" | "list" => {
            let mx = Mx::load();
            let (sock, st) = mx.connect(&a(1), &a(2), &a(3), 1, false);
            assert!(sock > 0, "connect {sock}: {} {st}", mx.last_error());
            assert_eq!(mx.select(sock, &a(4)), 0, "{}", mx.last_error());
            let rss_before = status_kib("VmRSS");
            let hwm_before = status_kib("VmHWM");
            let c0 = cpu_self();
            let t0 = Instant::now();
            let (rc, size) = if kind == "fetch" {
                mx.recv(sock, a(5).parse().unwrap())
            } else {
                mx.list_messages(sock)
            };
            let secs = t0.elapsed().as_secs_f64();
            let cpu = cpu_self() - c0;
            assert_eq!(rc, 0, "{kind}: {}", mx.last_error());
            let hwm = status_kib("VmHWM");
            mx.disconnect(sock);
            println!(
                "{}",
                json!({"secs": secs, "size": size, "cpu": cpu, "rss_before_kib": rss_before,
                       "hwm_before_kib": hwm_before, "hwm_kib": hwm})
            );
        }
        // floorfetch SERVER USER PASS MAILBOX UID: the floor's fetch (row 5).
        "floorfetch" => {
            let ca = std::path::PathBuf::from(std::env::var("MAILEXT_CACERTS").unwrap_or_default())
                .join("bench-ca.pem");
            let floor = crate::floor::Floor::new(&ca);
            let c0 = cpu_self();
            let (secs, size) = floor
                .fetch_discard(
                    &a(1),
                    "127.0.0.1",
                    &a(2),
                    &a(3),
                    &a(4),
                    a(5).parse().unwrap(),
                )
                .unwrap();
            println!(
                "{}",
                json!({"secs": secs, "size": size, "cpu": cpu_self() - c0})
            );
        }
        // scale SERVER SECURE LEVELS(1000,10000) THREADS PASS USERS(u1,u2,..)
        "scale" => scale(
            &a(1),
            a(2).parse().unwrap(),
            &a(3),
            a(4).parse().unwrap(),
            &a(5),
            &a(6),
        ),
        // loop SERVER USER PASS SECURE N [fresh]: connects and disconnects,
        // for profiling (perf record -g .../mail-* --child loop ...). With
        // `fresh`, each connect uses a new name (a full TLS handshake), as
        // row 1 does.
        "loop" => {
            let mx = Mx::load();
            let n: usize = a(5).parse().unwrap();
            let fresh = a(6) == "fresh";
            // For example AUTH=LOGIN, to profile another mechanism.
            if let Ok(options) = std::env::var("MAILEXT_BENCH_OPTIONS") {
                assert_eq!(mx.set_config("options", &options), 0);
            }
            let port = a(1)
                .rsplit_once(':')
                .map(|(_, p)| p.to_string())
                .unwrap_or_default();
            let servers: Vec<String> = if fresh {
                let names: Vec<String> =
                    (0..n).map(|k| format!("h{k}.bench.test:{port}")).collect();
                let table: Vec<String> = names.iter().map(|h| format!("{h}=127.0.0.1")).collect();
                assert_eq!(mx.set_config("resolve", &table.join(";")), 0);
                names
            } else {
                vec![a(1); n]
            };
            // With MAILEXT_BENCH_STATUS=1 the connects have an stsproc, as in row 4.
            let status = std::env::var("MAILEXT_BENCH_STATUS").is_ok_and(|v| v == "1");
            let c0 = cpu_self();
            let t0 = Instant::now();
            for server in &servers {
                let (sock, st) = mx.connect(server, &a(2), &a(3), a(4).parse().unwrap(), status);
                assert!(sock > 0, "connect {sock}: {} {st}", mx.last_error());
                mx.disconnect(sock);
            }
            println!(
                "{}",
                json!({"n": n, "secs": t0.elapsed().as_secs_f64(), "cpu": cpu_self() - c0})
            );
        }
        // floorloop SERVER USER PASS N [SECURE] [login]: the floor client's
        // CRAM-MD5 (or LOGIN) loop (plaintext, 1 implicit TLS, 2 STARTTLS), to
        // profile beside `loop`. MAILEXT_BENCH_RESUME=1 offers the last TLS
        // session, as mailext's `loop` without `fresh` does.
        "floorloop" => {
            let security = match a(5).as_str() {
                "1" => crate::floor::Security::Implicit,
                "2" => crate::floor::Security::StartTls,
                _ => crate::floor::Security::Plain,
            };
            let ca = std::path::PathBuf::from(std::env::var("MAILEXT_CACERTS").unwrap_or_default())
                .join("bench-ca.pem");
            let floor = crate::floor::Floor::new(&ca);
            let n: usize = a(4).parse().unwrap();
            let resume = std::env::var("MAILEXT_BENCH_RESUME").is_ok_and(|v| v == "1");
            let c0 = cpu_self();
            let t0 = Instant::now();
            for _ in 0..n {
                floor
                    .session(
                        &a(1),
                        "localhost",
                        security,
                        if a(6) == "login" {
                            crate::floor::Mech::Login
                        } else {
                            crate::floor::Mech::CramMd5
                        },
                        &a(2),
                        &a(3),
                        resume,
                    )
                    .unwrap();
            }
            println!(
                "{}",
                json!({"n": n, "secs": t0.elapsed().as_secs_f64(), "cpu": cpu_self() - c0})
            );
        }
        other => panic!("unknown child kind {other:?}"),
    }
}

fn scale(server: &str, secure: i64, levels: &str, nthreads: usize, pass: &str, users: &str) {
    let nofile = raise_nofile();
    let users: Vec<&str> = users.split(',').collect();
    let mx = Mx::load();
    // One session first, so the I/O thread and the TLS context exist and
    // what follows is what sessions cost.
    let (s0, st) = mx.connect(server, users[0], pass, secure, false);
    assert!(s0 > 0, "warm-up connect {s0}: {} {st}", mx.last_error());
    mx.disconnect(s0);
    std::thread::sleep(Duration::from_millis(300));
    let rss0 = status_kib("VmRSS");
    let mut socks: Vec<i64> = Vec::new();
    for level in levels.split(',').map(|l| l.parse::<usize>().unwrap()) {
        let need = level.saturating_sub(socks.len());
        let t0 = Instant::now();
        let c0 = cpu_self();
        let base = socks.len();
        let mut failures = 0usize;
        let mut first_error = String::new();
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..nthreads)
                .map(|t| {
                    let mx = &mx;
                    let users = &users;
                    sc.spawn(move || {
                        let mut mine = Vec::new();
                        let mut fail = (0usize, String::new());
                        let mut k = t;
                        while k < need {
                            let user = users[(base + k) % users.len()];
                            let (sock, _) = mx.connect(server, user, pass, secure, false);
                            if sock > 0 {
                                mine.push(sock);
                            } else {
                                if fail.0 == 0 {
                                    fail.1 = format!("{sock}: {}", mx.last_error());
                                }
                                fail.0 += 1;
                                if fail.0 > 20 {
                                    break;
                                }
                            }
                            k += nthreads;
                        }
                        (mine, fail)
                    })
                })
                .collect();
            for h in hs {
                let (mine, (f, e)) = h.join().unwrap();
                socks.extend(mine);
                failures += f;
                if first_error.is_empty() {
                    first_error = e;
                }
            }
        });
        let connect_secs = t0.elapsed().as_secs_f64();
        let connect_cpu = cpu_self() - c0;
        // Let the I/O thread settle, then look.
        std::thread::sleep(Duration::from_millis(1000));
        let rss = status_kib("VmRSS");
        let tasks = threads();
        // Idle sessions still answer.
        let step = (socks.len() / 20).max(1);
        let live = socks
            .iter()
            .step_by(step)
            .filter(|s| mx.noop(**s) == 0)
            .count();
        let probed = socks.iter().step_by(step).count();
        println!(
            "{}",
            json!({"level": level, "sessions": socks.len(), "new": socks.len() - base, "failures": failures,
                   "first_error": first_error, "rss0_kib": rss0, "rss_kib": rss,
                   "threads": tasks, "connect_secs": connect_secs,
                   "connect_cpu": connect_cpu, "live": live, "probed": probed,
                   "nofile": nofile})
        );
        if failures > 0 {
            break;
        }
    }
    let t0 = Instant::now();
    let chunk = socks.len().div_ceil(nthreads).max(1);
    std::thread::scope(|sc| {
        for part in socks.chunks(chunk) {
            let mx = &mx;
            sc.spawn(move || {
                for s in part {
                    mx.disconnect(*s);
                }
            });
        }
    });
    println!(
        "{}",
        json!({"disconnect_secs": t0.elapsed().as_secs_f64(), "sessions": socks.len()})
    );
}
