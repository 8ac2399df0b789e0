//! The communications timeout, in its own process because the setting is
//! process-wide: a silent server is left within the configured time.

mod support;

use plugin_abi::host::HostValue;
use std::time::{Duration, Instant};
use support::scripted::{Peer, Scripted};
use support::*;

fn set_timeout(secs: i64) -> i64 {
    env()
        .plugin
        .call("MailSetConfig", &mut [s("commstimeout"), i(secs)])
        .code()
}

#[test]
fn silent_server_times_out_within_the_configured_time() {
    assert_eq!(set_timeout(2), 0);
    assert_eq!(
        env()
            .plugin
            .call("MailGetConfig", &mut [s("commstimeout")])
            .code(),
        2
    );
    // Accepts, then never says a word.
    let srv = Scripted::start(|p: &mut Peer| p.drain());
    let t0 = Instant::now();
    let (o, _) = connect(&local(srv.port), "u", "pw", 0, true);
    let took = t0.elapsed();
    assert_eq!(o.code(), -522, "{}", status_text(&o));
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3000),
        "{took:?}"
    );
    assert!(
        env().plugin.last_error().contains("greeting"),
        "{}",
        env().plugin.last_error()
    );

    // A server that stops answering in mid-session: NOOP times out too.
    let srv = Scripted::start(|p: &mut Peer| {
        p.send("* OK [CAPABILITY IMAP4rev1] hi\r\n");
        let tag = p.command("LOGIN");
        p.send(&format!("{tag} OK in\r\n"));
        p.drain();
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 0, true);
    let sock = o.code();
    assert!(sock > 0);
    let t0 = Instant::now();
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), -522);
    assert!(t0.elapsed() < Duration::from_millis(3000));
    assert_eq!(disconnect(sock).code(), 0);

    // A large literal that trickles, slower than the bulk read's low-water
    // mark, for longer than the timeout: data keeps flowing, so no timeout.
    const SIZE: usize = 2 * 1024 * 1024;
    let srv = Scripted::start(|p: &mut Peer| {
        p.serve_fetch(|p, tag| {
            p.send(&format!("* 1 FETCH (UID 7 BODY[] {{{SIZE}}}\r\n"));
            let chunk = "x".repeat(100);
            for _ in 0..10 {
                p.send(&chunk);
                std::thread::sleep(Duration::from_millis(300));
            }
            p.send(&"y".repeat(SIZE - 1000));
            p.send(&format!(")\r\n{tag} OK done\r\n"));
            true
        })
    });
    let (o, _) = connect(&local(srv.port), "u", "pw", 0, true);
    let sock = o.code();
    assert!(sock > 0);
    let sel = env()
        .plugin
        .call("IMAPSelectMailbox", &mut [i(sock), s("INBOX")]);
    assert_eq!(sel.code(), 0);
    let mut a = [i(sock), i(7), HostValue::Binary(vec![])];
    let t0 = Instant::now();
    let o = env().plugin.call("IMAPRecvMessage", &mut a);
    assert_eq!(o.code(), 0, "{}", env().plugin.last_error());
    assert!(t0.elapsed() >= Duration::from_millis(2900));
    match &a[2] {
        HostValue::Binary(b) => assert_eq!(b.len(), SIZE),
        other => panic!("{other:?}"),
    }
    assert_eq!(disconnect(sock).code(), 0);

    assert_eq!(set_timeout(-1), -1132);
    assert_eq!(
        env()
            .plugin
            .call("MailSetConfig", &mut [s("nosuch"), i(1)])
            .code(),
        -1132
    );
    assert_eq!(set_timeout(0), 0);
    assert_eq!(
        env()
            .plugin
            .call("MailGetConfig", &mut [s("commstimeout")])
            .code(),
        60
    );
}
