//! A change to the cacerts folder takes effect for the next connect, also
//! for a server whose TLS session the plugin kept. Its own process: the
//! test removes the CA from the folder every other test here would use.

mod support;

use std::time::Duration;
use support::dovecot::{Dovecot, Options, PASSWORD, USER};
use support::*;

#[test]
fn removing_a_ca_from_the_cacerts_folder_ends_resumption_too() {
    let d = Dovecot::start(&env().good, &Options::resumable());
    let server = local(d.imaps_port);
    let connect_once = || {
        let (o, _) = connect(&server, USER, PASSWORD, 1, true);
        let sock = o.code();
        if sock > 0 {
            assert_eq!(disconnect(sock).code(), 0);
        }
        (sock, status_text(&o))
    };
    let (sock, _) = connect_once();
    assert!(sock > 0, "first connect {sock}");
    let (sock, status) = connect_once();
    assert!(sock > 0 && status.contains("session resumed"), "{status}");

    // The folder is listed at most once a second.
    let ca = env().cacerts.path().join("test-ca.pem");
    let pem = std::fs::read(&ca).unwrap();
    std::fs::remove_file(&ca).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let (sock, status) = connect_once();
    assert_eq!(
        sock, -1111,
        "a kept session must not outlive its CA\n{status}"
    );

    std::fs::write(&ca, pem).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let (sock, status) = connect_once();
    assert!(sock > 0 && !status.contains("session resumed"), "{status}");
}
