//! Many host threads at once: each call blocks only its caller, and all
//! connections share the one I/O thread.

mod support;

use support::dovecot::{PASSWORD, USER};
use support::*;

#[test]
fn thirty_two_threads_connect_noop_and_disconnect_at_once() {
    let d = dovecot();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(32));
    let threads: Vec<_> = (0..32)
        .map(|n| {
            let barrier = barrier.clone();
            let (port, secure) = match n % 3 {
                0 => (d.imap_port, 0),
                1 => (d.imaps_port, 1),
                _ => (d.imap_port, 2),
            };
            std::thread::spawn(move || {
                barrier.wait();
                let (o, responses) = connect(&local(port), USER, PASSWORD, secure, true);
                let sock = o.code();
                assert!(sock > 0, "thread {n}: {sock}\n{}", status_text(&o));
                // Status messages came back on this thread, for this call only.
                assert!(o.status.iter().all(|m| m.proc_name == "onStatus"));
                assert!(!lines(&responses).is_empty());
                assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), 0);
                assert_eq!(disconnect(sock).code(), 0);
                sock
            })
        })
        .collect();
    let mut ids: Vec<i64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 32, "socket ids are unique");
}

#[test]
fn plugin_uses_one_io_thread() {
    let d = dovecot();
    let socks: Vec<i64> = (0..20)
        .map(|_| {
            connect(&local(d.imap_port), USER, PASSWORD, 0, true)
                .0
                .code()
        })
        .collect();
    assert!(socks.iter().all(|s| *s > 0));
    let names = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|n| n.starts_with("mailext-io"))
        .count();
    assert_eq!(
        names, 1,
        "20 idle sessions hold one I/O thread, no thread each"
    );
    for s in socks {
        assert_eq!(disconnect(s).code(), 0);
    }
}
