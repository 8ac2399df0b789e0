//! IMAPConnect's options against real peers: Dovecot (auth mechanisms, ID,
//! client certificates, TLS modes), real proxies (tinyproxy, microsocks),
//! and scripted servers for what a real server will not do on demand
//! (TLS 1.0 only, OAuth error continuations, silence, an IPv6 black hole).

mod support;

use plugin_abi::host::{CallOutcome, HostValue};
use std::time::{Duration, Instant};
use support::dovecot::{Dovecot, Options, PASSWORD, PASSWORD2, USER, USER2};
use support::proxies::{Microsocks, Tinyproxy};
use support::scripted::Scripted;
use support::*;

/// IMAPConnect with every argument; returns the outcome and the response lines.
fn connect_with(
    server: &str,
    user: &str,
    pass: &str,
    secure: i64,
    timeout: i64,
    options: HostValue,
) -> (CallOutcome, Vec<String>) {
    let mut args = vec![
        s(server),
        s(user),
        s(pass),
        HostValue::Proc("onStatus".into()),
        list(),
        i(secure),
        TRUE,
        i(timeout),
        options,
        HostValue::Proc("onEvent".into()),
    ];
    let o = env().plugin.call("IMAPConnect", &mut args);
    let l = lines(&args[4]);
    (o, l)
}

fn ok_connect(server: &str, user: &str, pass: &str, secure: i64, options: &str) -> CallOutcome {
    let (o, _) = connect_with(server, user, pass, secure, 0, s(options));
    assert!(
        o.code() > 0,
        "{options}: {} {}\n{}",
        o.code(),
        env().plugin.last_error(),
        status_text(&o)
    );
    o
}

fn no_secret(o: &CallOutcome, secret: &str) {
    let all = format!("{}{:?}", status_text(o), o.events);
    assert!(!all.contains(secret), "secret leaked:\n{all}");
}

#[test]
fn every_auth_type_dovecot_offers() {
    let d = dovecot();
    for (opt, shown) in [
        ("AUTH=PLAIN", "with PLAIN"),
        ("AUTH=LOGIN", "with LOGIN"),
        ("AUTH=CRAM-MD5", "with CRAM-MD5"),
        ("AUTH=SCRAM-SHA-256", "with SCRAM-SHA-256"),
        ("", "with CRAM-MD5"),
    ] {
        let o = ok_connect(&local(d.imaps_port), USER, PASSWORD, 1, opt);
        let st = status_text(&o);
        assert!(st.contains(shown), "{opt}: {st}");
        no_secret(&o, PASSWORD);
        // SASL challenges (SCRAM's salt, nonce and signature) are not shown.
        for line in st.lines().filter(|l| l.starts_with("S: +")) {
            assert_eq!(line, "S: + <SASL challenge redacted>", "{opt}: {st}");
        }
        if opt.contains("SCRAM") || opt.contains("CRAM") || opt.is_empty() {
            assert!(st.contains("S: + <SASL challenge redacted>"), "{opt}: {st}");
        }
        assert_eq!(disconnect(o.code()).code(), 0);
    }
    // A password that SASLprep and SCRAM must carry exactly.
    let o = ok_connect(
        &local(d.imaps_port),
        USER2,
        PASSWORD2,
        1,
        "AUTH=SCRAM-SHA-256",
    );
    assert_eq!(disconnect(o.code()).code(), 0);
    let (o, _) = connect_with(
        &local(d.imaps_port),
        USER,
        "wrong",
        1,
        0,
        s("AUTH=SCRAM-SHA-256"),
    );
    assert_eq!(o.code(), -1120, "{}", status_text(&o));
    let (o, _) = connect_with(&local(d.imaps_port), USER, "tok", 1, 0, s("AUTH=XOAUTH2"));
    assert_eq!(o.code(), -1134, "{}", env().plugin.last_error());
    assert!(env().plugin.last_error().contains("SCRAM-SHA-256"));
}

#[test]
fn mechanisms_switched_off_are_a_clear_code() {
    let d = Dovecot::start(
        &env().good,
        &Options {
            auth_mechanisms: "plain login",
            ..Default::default()
        },
    );
    for opt in ["AUTH=CRAM-MD5", "AUTH=SCRAM-SHA-256", "AUTH=OAUTHBEARER"] {
        let (o, _) = connect_with(&local(d.imaps_port), USER, PASSWORD, 1, 0, s(opt));
        assert_eq!(o.code(), -1134, "{opt}");
    }
    let o = ok_connect(&local(d.imaps_port), USER, PASSWORD, 1, "AUTH=PLAIN");
    assert_eq!(disconnect(o.code()).code(), 0);
}

#[test]
fn identify_sends_id_and_the_reply_lands_in_the_list() {
    let d = dovecot();
    let (o, responses) = connect_with(&local(d.imap_port), USER, PASSWORD, 2, 0, s("IDENTIFY"));
    assert!(o.code() > 0, "{}", status_text(&o));
    assert!(
        responses.iter().any(|l| l.starts_with("* ID (")),
        "{responses:?}"
    );
    assert!(
        status_text(&o).contains("C: A0004 ID (\"name\" \"mailext\""),
        "{}",
        status_text(&o)
    );
    assert_eq!(disconnect(o.code()).code(), 0);
    // The SocketTools bit form.
    let (o, responses) = connect_with(&local(d.imap_port), USER, PASSWORD, 0, 0, i(0x1));
    assert!(o.code() > 0);
    assert!(responses.iter().any(|l| l.starts_with("* ID (")));
    assert_eq!(disconnect(o.code()).code(), 0);
}

#[test]
fn tls_modes_by_option_by_bits_and_by_port() {
    let d = dovecot();
    let o = ok_connect(&local(d.imaps_port), USER, PASSWORD, 0, "SECURE_IMPLICIT");
    assert!(status_text(&o).contains("TLS established"));
    assert_eq!(disconnect(o.code()).code(), 0);
    let o = ok_connect(&local(d.imap_port), USER, PASSWORD, 0, "SECURE_EXPLICIT");
    assert!(
        status_text(&o).contains("C: A0001 STARTTLS"),
        "{}",
        status_text(&o)
    );
    assert_eq!(disconnect(o.code()).code(), 0);
    let (o, _) = connect_with(&local(d.imaps_port), USER, PASSWORD, 0, 0, i(0x2000));
    assert!(o.code() > 0);
    assert_eq!(disconnect(o.code()).code(), 0);
    // Contradictions and unknown options are refused before connecting.
    for bad in [
        s("SECURE_IMPLICIT SECURE"),
        s("IDENTIFI"),
        s("AUTH=NTLM"),
        i(0x4),
    ] {
        let (o, _) = connect_with(&local(d.imap_port), USER, PASSWORD, 0, 0, bad.clone());
        assert_eq!(o.code(), -1132, "{bad:?}");
    }
    let (o, _) = connect_with(
        &local(d.imap_port),
        USER,
        PASSWORD,
        1,
        0,
        s("SECURE_EXPLICIT"),
    );
    assert_eq!(o.code(), -1132);
}

#[test]
fn trusted_site_skips_certificate_checks() {
    let other = pki::Ca::new("nobody trusts this CA");
    let leaf = other.leaf("localhost", &["localhost"], &["127.0.0.1"], -1, 30);
    let d = Dovecot::start(&leaf, &Options::default());
    let (o, _) = connect_with(&local(d.imaps_port), USER, PASSWORD, 1, 0, s(""));
    assert_eq!(o.code(), -1111);
    let o = ok_connect(&local(d.imaps_port), USER, PASSWORD, 1, "TRUSTEDSITE");
    assert!(status_text(&o).contains("verification is off"));
    assert_eq!(disconnect(o.code()).code(), 0);
    let (o, _) = connect_with(&local(d.imaps_port), USER, PASSWORD, 1, 0, i(0x800));
    assert!(o.code() > 0);
    assert_eq!(disconnect(o.code()).code(), 0);
}

#[test]
fn client_certificates_pem_and_pkcs12() {
    use openssl::pkcs12::Pkcs12;
    use openssl::pkey::PKey;
    use openssl::x509::X509;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    env().ca.write_pem(std::path::Path::new(&p("ca.pem")));
    let client = env().ca.leaf("alice", &["client.test"], &[], -1, 30);
    std::fs::write(p("client.pem"), &client.cert_pem).unwrap();
    std::fs::write(p("client.key"), &client.key_pem).unwrap();
    let mut both = client.cert_pem.clone();
    both.extend_from_slice(&client.key_pem);
    std::fs::write(p("both.pem"), &both).unwrap();
    let cert = X509::from_pem(&client.cert_pem).unwrap();
    let key = PKey::private_key_from_pem(&client.key_pem).unwrap();
    let p12 = Pkcs12::builder()
        .name("alice")
        .pkey(&key)
        .cert(&cert)
        .build2("p12-Pass")
        .unwrap();
    std::fs::write(p("client.p12"), p12.to_der().unwrap()).unwrap();
    let stranger = env().ca.leaf("x", &["x.test"], &[], -1, 30);
    std::fs::write(p("stranger.key"), &stranger.key_pem).unwrap();

    let d = Dovecot::start(
        &env().good,
        &Options {
            extra: format!(
                "ssl_ca = <{}\nssl_verify_client_cert = yes\nauth_ssl_require_client_cert = yes\nssl_require_crl = no\n",
                p("ca.pem")
            ),
            ..Default::default()
        },
    );
    let server = local(d.imaps_port);
    let (o, _) = connect_with(&server, USER, PASSWORD, 1, 0, s(""));
    assert!(o.code() < 0, "a login without a certificate was accepted");
    for opts in [
        format!("CERT={} KEY={}", p("client.pem"), p("client.key")),
        format!("CERT={}", p("both.pem")),
        format!("CERT={} CERTPASS=p12-Pass", p("client.p12")),
    ] {
        let o = ok_connect(&server, USER, PASSWORD, 1, &opts);
        assert!(
            status_text(&o).contains("client certificate"),
            "{}",
            status_text(&o)
        );
        no_secret(&o, "p12-Pass");
        assert_eq!(disconnect(o.code()).code(), 0);
    }
    for (opts, why) in [
        (
            format!("CERT={} CERTPASS=Zq9bad", p("client.p12")),
            "CERTPASS",
        ),
        (
            format!("CERT={} KEY={}", p("client.pem"), p("stranger.key")),
            "does not belong",
        ),
        (format!("CERT={}", p("missing.pem")), "cannot read"),
    ] {
        let (o, _) = connect_with(&server, USER, PASSWORD, 1, 0, s(&opts));
        assert_eq!(o.code(), -1137, "{opts}");
        let e = env().plugin.last_error();
        assert!(e.contains(why), "{e}");
        assert!(!e.contains("Zq9bad"), "{e}");
    }
}

#[test]
fn events_connect_command_progress() {
    let d = dovecot();
    let big = format!(
        "Subject: big\r\n\r\n{}",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".repeat(40_000)
    );
    d.seed("u7", "INBOX", &[(big.as_bytes(), "")]);
    let (o, _) = connect_with(&local(d.imap_port), "u7", PASSWORD, 0, 0, s(""));
    let sock = o.code();
    assert!(sock > 0);
    let ev = &o.events;
    assert_eq!(ev.last().map(|e| e.kind), Some("CONNECT"), "{ev:?}");
    assert_eq!(ev.last().unwrap().code, 0);
    assert!(ev
        .iter()
        .all(|e| e.proc_name == "onEvent" && e.socket == sock));
    assert!(ev.iter().any(|e| e.kind == "COMMAND"), "{ev:?}");
    let mut args = [i(sock), s("INBOX")];
    let o = env().plugin.call("IMAPSelectMailbox", &mut args);
    assert_eq!(o.code(), 0);
    let cmd: Vec<_> = o.events.iter().filter(|e| e.kind == "COMMAND").collect();
    assert!(cmd.iter().any(|e| e.text.contains("OK")), "{cmd:?}");
    let mut args = [i(sock), i(1), HostValue::Binary(vec![])];
    let o = env().plugin.call("IMAPRecvMessage", &mut args);
    assert_eq!(o.code(), 0, "{}", env().plugin.last_error());
    let progress: Vec<_> = o.events.iter().filter(|e| e.kind == "PROGRESS").collect();
    assert!(progress.len() >= 3, "{progress:?}");
    assert!(progress
        .iter()
        .all(|e| e.total >= big.len() as i64 && e.done <= e.total));
    assert!(progress.windows(2).all(|w| w[0].done <= w[1].done));
    let o = disconnect(sock);
    assert!(
        o.events.iter().any(|e| e.kind == "COMMAND"),
        "{:?}",
        o.events
    );
}

#[test]
fn cancel_from_another_thread_ends_a_blocking_call() {
    let d = dovecot();
    let (o, _) = connect_with(&local(d.imap_port), "u8", PASSWORD, 0, 0, s(""));
    let sock = o.code();
    assert!(sock > 0);
    let nothing = env().plugin.call("IMAPCancel", &mut [i(sock)]);
    assert_eq!(nothing.code(), 0, "nothing was running");
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        env().plugin.call("IMAPCancel", &mut [i(sock)]).code()
    });
    let t = Instant::now();
    let mut args = [i(sock), i(60), list()];
    let o = env().plugin.call("IMAPIdle", &mut args);
    assert_eq!(o.code(), -516, "{}", status_text(&o));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(canceller.join().unwrap(), 1);
    assert!(
        o.events.iter().any(|e| e.kind == "CANCEL"),
        "{:?}",
        o.events
    );
    // IDLE stops at a clean point (DONE, then the server's OK): the
    // session stays usable.
    assert!(
        o.events
            .iter()
            .any(|e| e.kind == "COMMAND" && e.text.contains(" OK ")),
        "{:?}",
        o.events
    );
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), 0);
    assert_eq!(disconnect(sock).code(), 0);
    assert_eq!(env().plugin.call("IMAPCancel", &mut [i(sock)]).code(), -509);
}

#[test]
fn asynchronous_connect_and_wait() {
    let d = dovecot();
    let t = Instant::now();
    let (o, _) = connect_with(&local(d.imaps_port), "u9", PASSWORD, 1, 0, s("ASYNC"));
    let sock = o.code();
    assert!(sock > 0, "{}", env().plugin.last_error());
    assert!(o.events.is_empty());
    let mut args = [i(sock), i(20), HostValue::Proc("onStatus".into()), list()];
    let w = env().plugin.call("IMAPWait", &mut args);
    assert_eq!(w.code(), 0, "{}", env().plugin.last_error());
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(
        status_text(&w).contains("TLS established"),
        "{}",
        status_text(&w)
    );
    assert!(!lines(&args[3]).is_empty());
    assert_eq!(w.events.last().map(|e| e.kind), Some("CONNECT"));
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), 0);
    assert_eq!(env().plugin.call("IMAPWait", &mut [i(sock)]).code(), 0);
    assert_eq!(disconnect(sock).code(), 0);
    // A failure is IMAPWait's result, and the id is gone with it.
    let (o, _) = connect_with(&local(d.imaps_port), "u9", "wrong", 1, 0, s("ASYNC"));
    let sock = o.code();
    assert!(sock > 0);
    assert_eq!(
        env().plugin.call("IMAPWait", &mut [i(sock), i(20)]).code(),
        -1120
    );
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), -509);
}

#[test]
fn own_thread_sockets_and_attach_thread() {
    let d = dovecot();
    let o = ok_connect(&local(d.imap_port), "u10", PASSWORD, 0, "OWNTHREAD");
    let sock = o.code();
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), 0);
    let other = std::thread::spawn(move || {
        let before = env().plugin.call("IMAPNoOp", &mut [i(sock)]).code();
        let attach = env().plugin.call("IMAPAttachThread", &mut [i(sock)]).code();
        let after = env().plugin.call("IMAPNoOp", &mut [i(sock)]).code();
        (before, attach, after)
    });
    assert_eq!(other.join().unwrap(), (-1133, 0, 0));
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), -1133);
    assert_eq!(
        env().plugin.call("IMAPAttachThread", &mut [i(sock)]).code(),
        0
    );
    assert_eq!(disconnect(sock).code(), 0);
    // The default stays: any thread may use a socket.
    let o = ok_connect(&local(d.imap_port), "u10", PASSWORD, 0, "FREETHREAD");
    let sock = o.code();
    let code = std::thread::spawn(move || env().plugin.call("IMAPNoOp", &mut [i(sock)]).code());
    assert_eq!(code.join().unwrap(), 0);
    assert_eq!(disconnect(sock).code(), 0);
}

#[test]
fn tunnels_through_real_proxies_keep_tls_end_to_end() {
    let d = dovecot();
    let http = Tinyproxy::start(None);
    let http_auth = Tinyproxy::start(Some(("puser", "ppass")));
    let socks = Microsocks::start(None);
    let socks_auth = Microsocks::start(Some(("suser", "spass")));
    let cases = [
        format!("TUNNEL={}", http.url()),
        format!("TUNNEL=http://puser:ppass@{}", http_auth.addr()),
        format!("TUNNEL={}", socks.url()),
        format!("TUNNEL=socks5://suser:spass@{}", socks_auth.addr()),
    ];
    for opt in &cases {
        // Implicit TLS, verified for "localhost" although TCP goes to the proxy.
        let o = ok_connect(&local(d.imaps_port), USER, PASSWORD, 1, opt);
        let st = status_text(&o);
        assert!(st.contains("Tunnel to localhost:"), "{st}");
        assert!(st.contains("certificate verified for localhost"), "{st}");
        no_secret(&o, "ppass");
        no_secret(&o, "spass");
        assert_eq!(disconnect(o.code()).code(), 0);
        // STARTTLS through the tunnel as well.
        let o = ok_connect(&local(d.imap_port), USER, PASSWORD, 2, opt);
        assert_eq!(disconnect(o.code()).code(), 0);
    }
    for opt in [
        format!("TUNNEL=http://puser:nope@{}", http_auth.addr()),
        format!("TUNNEL={}", http_auth.url()),
        format!("TUNNEL=socks5://suser:nope@{}", socks_auth.addr()),
    ] {
        let (o, _) = connect_with(&local(d.imaps_port), USER, PASSWORD, 1, 0, s(&opt));
        assert_eq!(o.code(), -1136, "{opt}: {}", env().plugin.last_error());
        no_secret(&o, "nope");
    }
    // The bare TUNNEL bit with no proxy configured: a port forward already in
    // place, so a direct connection (SocketTools' meaning).
    let (o, _) = connect_with(&local(d.imap_port), USER, PASSWORD, 0, 0, i(0x400));
    assert!(o.code() > 0, "{}", env().plugin.last_error());
    assert_eq!(disconnect(o.code()).code(), 0);
    // A mail server the proxy cannot reach.
    let closed = support::dovecot::free_port();
    let (o, _) = connect_with(&local(closed), USER, PASSWORD, 1, 0, s(&cases[2]));
    assert_eq!(o.code(), -1135, "{}", env().plugin.last_error());
}

#[test]
fn a_silent_server_times_out_within_ten_percent() {
    let server = Scripted::start(|peer| {
        std::thread::sleep(Duration::from_secs(4));
        peer.send("");
    });
    let t = Instant::now();
    let (o, _) = connect_with(&format!("127.0.0.1:{}", server.port), "u", "p", 0, 2, s(""));
    let took = t.elapsed();
    assert_eq!(o.code(), -522);
    assert!(
        took >= Duration::from_millis(1950) && took <= Duration::from_millis(2200),
        "{took:?}"
    );
    assert!(o
        .events
        .iter()
        .any(|e| e.kind == "CONNECT" && e.code == -522));
    // The reason first, then the outcome.
    let kinds: Vec<_> = o.events.iter().map(|e| (e.kind, e.code)).collect();
    assert_eq!(
        kinds,
        [("TIMEOUT", -522), ("CONNECT", -522)],
        "{:?}",
        o.events
    );
}

#[test]
fn xoauth2_and_oauthbearer_exact_bytes() {
    // base64("user=a@b.test\x01auth=Bearer ya29.tok\x01\x01")
    let xo = "dXNlcj1hQGIudGVzdAFhdXRoPUJlYXJlciB5YTI5LnRvawEB";
    let server = Scripted::start(move |peer| {
        peer.send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] hi\r\n");
        let l = peer.line().unwrap();
        assert_eq!(l, format!("A0001 AUTHENTICATE XOAUTH2 {xo}"));
        peer.send("A0001 OK done\r\n");
        let tag = peer.command("LOGOUT");
        peer.send(&format!("* BYE\r\n{tag} OK bye\r\n"));
    });
    let server_addr = format!("127.0.0.1:{}", server.port);
    let (o, _) = connect_with(
        &server_addr,
        "a@b.test",
        "ya29.tok",
        0,
        0,
        s("AUTH=XOAUTH2"),
    );
    assert!(o.code() > 0, "{}", env().plugin.last_error());
    no_secret(&o, "ya29.tok");
    no_secret(&o, xo);
    assert_eq!(disconnect(o.code()).code(), 0);
    server.received();

    let server = Scripted::start(|peer| {
        peer.send("* OK [CAPABILITY IMAP4rev1 AUTH=OAUTHBEARER] hi\r\n");
        assert_eq!(peer.line().unwrap(), "A0001 AUTHENTICATE OAUTHBEARER");
        peer.send("+ \r\n");
        let ir = peer.line().unwrap();
        let want = openssl::base64::encode_block(
            format!(
                "n,a=a@b.test,\x01host=127.0.0.1\x01port={}\x01auth=Bearer ya29.tok\x01\x01",
                peer_port()
            )
            .as_bytes(),
        );
        assert_eq!(ir, want);
        // RFC 7628 error continuation; the client must answer %x01.
        peer.send("+ eyJzdGF0dXMiOiI0MDEiLCJzY29wZSI6Im1haWwifQ==\r\n");
        assert_eq!(peer.line().unwrap(), "AQ==");
        peer.send("A0001 NO [AUTHENTICATIONFAILED] denied\r\n");
        peer.drain();
    });
    set_peer_port(server.port);
    let (o, _) = connect_with(
        &format!("127.0.0.1:{}", server.port),
        "a@b.test",
        "ya29.tok",
        0,
        0,
        s("AUTH=OAUTHBEARER"),
    );
    assert_eq!(o.code(), -1120);
    let e = env().plugin.last_error();
    assert!(e.contains("401"), "{e}");
    no_secret(&o, "ya29.tok");
    server.received();
}

static PEER_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
fn set_peer_port(p: u16) {
    PEER_PORT.store(p, std::sync::atomic::Ordering::SeqCst);
}
fn peer_port() -> u16 {
    // The script starts before the test knows the port; wait for it.
    loop {
        let p = PEER_PORT.load(std::sync::atomic::Ordering::SeqCst);
        if p != 0 {
            return p;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Serves `count` connections on `listener`: PREAUTH, then LOGOUT. With
/// `tls`, each is a TLS 1.0-only handshake first (a failed one is skipped).
fn preauth_server(
    listener: std::net::TcpListener,
    count: usize,
    tls: Option<openssl::ssl::SslContext>,
) -> std::thread::JoinHandle<Vec<String>> {
    use std::io::{BufRead, BufReader, Read, Write};
    fn serve<S: Read + Write>(s: S) -> String {
        let mut r = BufReader::new(s);
        r.get_mut().write_all(b"* PREAUTH ready\r\n").unwrap();
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let tag = l.split(' ').next().unwrap_or("").to_string();
        let _ = r
            .get_mut()
            .write_all(format!("* BYE\r\n{tag} OK bye\r\n").as_bytes());
        l
    }
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..count {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            match &tls {
                None => seen.push(serve(tcp)),
                Some(ctx) => match openssl::ssl::Ssl::new(ctx).unwrap().accept(tcp) {
                    Ok(s) => seen.push(format!("{} {}", s.ssl().version_str(), serve(s))),
                    Err(_) => seen.push("handshake failed".into()),
                },
            }
        }
        seen
    })
}

#[test]
fn secure_fallback_reaches_a_tls_1_0_server_and_nothing_else_does() {
    use openssl::ssl::{SslContext, SslMethod, SslVersion};
    let mut b = SslContext::builder(SslMethod::tls_server()).unwrap();
    b.set_min_proto_version(Some(SslVersion::TLS1)).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1)).unwrap();
    b.set_security_level(0);
    b.set_cipher_list("DEFAULT:@SECLEVEL=0").unwrap();
    let cert = openssl::x509::X509::from_pem(&env().good.cert_pem).unwrap();
    let key = openssl::pkey::PKey::private_key_from_pem(&env().good.key_pem).unwrap();
    b.set_certificate(&cert).unwrap();
    b.set_private_key(&key).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = preauth_server(listener, 2, Some(b.build()));
    let (o, _) = connect_with(&local(port), "u", "p", 1, 10, s(""));
    assert_eq!(o.code(), -1110, "{}", env().plugin.last_error());
    let o = ok_connect(&local(port), "u", "p", 1, "SECURE_FALLBACK");
    let st = status_text(&o);
    assert!(
        st.contains("TLSv1 ") && st.contains("SECURE_FALLBACK"),
        "{st}"
    );
    assert_eq!(disconnect(o.code()).code(), 0);
    let seen = server.join().unwrap();
    assert_eq!(seen[0], "handshake failed");
    assert!(seen[1].starts_with("TLSv1 "), "{seen:?}");
}

/// A listener on [::1] whose accept queue is full: SYNs to it are dropped,
/// so a connect neither succeeds nor fails (a "black hole").
fn ipv6_black_hole() -> (i32, u16, Vec<std::net::TcpStream>) {
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_in6 = std::mem::zeroed();
        addr.sin6_family = libc::AF_INET6 as u16;
        addr.sin6_addr.s6_addr[15] = 1;
        let len = std::mem::size_of::<libc::sockaddr_in6>() as u32;
        assert_eq!(
            libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len),
            0
        );
        assert_eq!(libc::listen(fd, 0), 0);
        let mut got: libc::sockaddr_in6 = std::mem::zeroed();
        let mut l = len;
        libc::getsockname(fd, &mut got as *mut _ as *mut libc::sockaddr, &mut l);
        let port = u16::from_be(got.sin6_port);
        let target: std::net::SocketAddr = format!("[::1]:{port}").parse().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&target, Duration::from_millis(300)) {
                Ok(c) => fillers.push(c),
                Err(_) => return (fd, port, fillers),
            }
        }
        panic!("the accept queue of [::1]:{port} never filled");
    }
}

#[test]
fn happy_eyeballs_does_not_wait_for_a_silent_ipv6_address() {
    let (fd, port, _fillers) = ipv6_black_hole();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let server = preauth_server(listener, 2, None);
    let mut set = [
        s("resolve"),
        s(&format!("eyeballs.test:{port}=[::1],127.0.0.1")),
    ];
    assert_eq!(env().plugin.call("MailSetConfig", &mut set).code(), 0);
    let name = format!("eyeballs.test:{port}");
    for (opt, first) in [("PREFER_IPV6", "([::1]"), ("", "(127.0.0.1")] {
        let t = Instant::now();
        let (o, _) = connect_with(&name, "u", "p", 0, 20, s(opt));
        let took = t.elapsed();
        let st = status_text(&o);
        assert!(o.code() > 0, "{opt}: {}\n{st}", env().plugin.last_error());
        // The second address starts 250 ms after the first: with IPv6 first
        // the call waits for that delay (so it is over 200 ms) and not much
        // more; with IPv4 first there is nothing to wait for, and the IPv6
        // attempt never starts.
        let tried: Vec<&str> = st.lines().filter(|l| l.contains("Connecting to")).collect();
        assert!(tried[0].contains(first), "{opt}: {st}");
        if opt == "PREFER_IPV6" {
            assert!(
                took > Duration::from_millis(200) && took < Duration::from_millis(700),
                "{opt}: {took:?}\n{st}"
            );
            assert_eq!(tried.len(), 2, "{st}");
            assert!(tried[1].contains("(127.0.0.1"), "{st}");
        } else {
            assert!(took < Duration::from_millis(250), "{opt}: {took:?}\n{st}");
            assert_eq!(tried.len(), 1, "{st}");
        }
        assert!(st.contains("Connected to 127.0.0.1"), "{st}");
        assert_eq!(disconnect(o.code()).code(), 0);
    }
    server.join().unwrap();
    unsafe { libc::close(fd) };
}

#[test]
fn a_second_tls_connect_resumes_the_session() {
    let d = Dovecot::start(&env().good, &Options::resumable());
    let server = format!("127.0.0.1:{}", d.imaps_port);
    let mut resumed = Vec::new();
    for opt in ["", "", "TRUSTEDSITE", "", "SECURE_FALLBACK"] {
        let o = ok_connect(&server, "u12", PASSWORD, 1, opt);
        resumed.push(status_text(&o).contains("session resumed"));
        assert_eq!(disconnect(o.code()).code(), 0);
    }
    // The first connect is full; the next resumes; a session made with other
    // settings (no verification, legacy TLS) is never offered.
    assert_eq!(resumed, [false, true, false, true, false]);
}

#[test]
fn cancel_mid_command_closes_the_connection_cleanly() {
    let server = Scripted::start(|peer| {
        peer.send("* PREAUTH ready\r\n");
        let _ = peer.line(); // NOOP, never answered
        peer.drain();
    });
    let (o, _) = connect_with(
        &format!("127.0.0.1:{}", server.port),
        "u",
        "p",
        0,
        30,
        s(""),
    );
    let sock = o.code();
    assert!(sock > 0);
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        env().plugin.call("IMAPCancel", &mut [i(sock)]).code()
    });
    let t = Instant::now();
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), -516);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(canceller.join().unwrap(), 1);
    // Never half-way: the connection is closed, later commands say so.
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), -1127);
    assert_eq!(disconnect(sock).code(), 0);
    server.received();
}

/// Greets after `delay`, takes LOGIN, then answers NOOPs until LOGOUT.
/// `logged_in` hears when the LOGIN reply has gone out.
fn login_server(delay: Duration, logged_in: Option<std::sync::mpsc::Sender<()>>) -> Scripted {
    Scripted::start(move |peer| {
        std::thread::sleep(delay);
        peer.send("* OK [CAPABILITY IMAP4rev1] scripted\r\n");
        let tag = peer.command("LOGIN");
        peer.send(&format!("{tag} OK logged in\r\n"));
        if let Some(tx) = logged_in {
            let _ = tx.send(());
        }
        while let Some(l) = peer.line() {
            let (tag, verb) = l.split_once(' ').unwrap_or((&l, ""));
            if verb == "LOGOUT" {
                peer.send(&format!("* BYE bye\r\n{tag} OK bye\r\n"));
                return;
            }
            peer.send(&format!("{tag} OK done\r\n"));
        }
    })
}

fn kinds(o: &CallOutcome) -> Vec<(&'static str, i64)> {
    o.events.iter().map(|e| (e.kind, e.code)).collect()
}

#[test]
fn disconnect_event_when_the_server_closes_or_says_bye() {
    // Closes right after the login.
    let server = Scripted::start(|peer| {
        peer.send("* OK [CAPABILITY IMAP4rev1] hi\r\n");
        let tag = peer.command("LOGIN");
        peer.send(&format!("{tag} OK in\r\n"));
    });
    let (o, _) = connect_with(
        &format!("127.0.0.1:{}", server.port),
        "u",
        "p",
        0,
        10,
        s(""),
    );
    let sock = o.code();
    assert!(sock > 0, "{}", env().plugin.last_error());
    assert_eq!(kinds(&o), [("COMMAND", 0), ("CONNECT", 0)]);
    server.received(); // the server has closed
    let o = env().plugin.call("IMAPNoOp", &mut [i(sock)]);
    assert_eq!(o.code(), -1106, "{}", status_text(&o));
    assert_eq!(kinds(&o), [("DISCONNECT", -1106)], "{:?}", o.events);
    let ev = &o.events[0];
    assert_eq!((ev.socket, ev.proc_name.as_str()), (sock, "onEvent"));
    assert_eq!(format!("{} (-1106)", ev.text), env().plugin.last_error());
    // Once: the broken socket's -1127 is no event, nor is the disconnect.
    let o = env().plugin.call("IMAPNoOp", &mut [i(sock)]);
    assert_eq!(o.code(), -1127);
    assert!(o.events.is_empty(), "{:?}", o.events);
    let o = disconnect(sock);
    assert_eq!(o.code(), 0);
    assert!(o.events.is_empty(), "{:?}", o.events);

    // Says BYE in answer to a command, then closes.
    let server = Scripted::start(|peer| {
        peer.send("* OK [CAPABILITY IMAP4rev1] hi\r\n");
        let tag = peer.command("LOGIN");
        peer.send(&format!("{tag} OK in\r\n"));
        peer.command("NOOP");
        peer.send("* BYE shutting down for maintenance\r\n");
    });
    let (o, _) = connect_with(
        &format!("127.0.0.1:{}", server.port),
        "u",
        "p",
        0,
        10,
        s(""),
    );
    let sock = o.code();
    assert!(sock > 0);
    let o = env().plugin.call("IMAPNoOp", &mut [i(sock)]);
    assert_eq!(o.code(), -1122, "{}", status_text(&o));
    assert_eq!(kinds(&o), [("DISCONNECT", -1122)], "{:?}", o.events);
    assert!(o.events[0].text.contains("shutting down for maintenance"));
    assert_eq!(disconnect(sock).code(), 0);
    server.received();
}

#[test]
fn timeout_event_when_the_server_stops_answering() {
    let server = Scripted::start(|peer| {
        peer.send("* OK [CAPABILITY IMAP4rev1] hi\r\n");
        let tag = peer.command("LOGIN");
        peer.send(&format!("{tag} OK in\r\n"));
        peer.drain(); // the NOOP is never answered
    });
    let (o, _) = connect_with(&format!("127.0.0.1:{}", server.port), "u", "p", 0, 1, s(""));
    let sock = o.code();
    assert!(sock > 0);
    let t = Instant::now();
    let o = env().plugin.call("IMAPNoOp", &mut [i(sock)]);
    let took = t.elapsed();
    assert_eq!(o.code(), -522, "{}", status_text(&o));
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(kinds(&o), [("TIMEOUT", -522)], "{:?}", o.events);
    assert!(o.events[0].text.contains("NOOP"), "{:?}", o.events);
    assert_eq!(o.events[0].socket, sock);
    assert_eq!(disconnect(sock).code(), 0);
    server.received();
}

#[test]
fn events_of_a_finished_background_connect_wait_for_the_next_call() {
    // Collected by IMAPWait.
    let (tx, rx) = std::sync::mpsc::channel();
    let server = login_server(Duration::ZERO, Some(tx));
    let (o, _) = connect_with(
        &format!("127.0.0.1:{}", server.port),
        "u",
        "p",
        0,
        10,
        s("ASYNC"),
    );
    let sock = o.code();
    assert!(sock > 0, "{}", env().plugin.last_error());
    assert!(o.events.is_empty(), "{:?}", o.events);
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // Long enough for the connect thread to read the reply and finish with
    // no command running: its events wait in the socket's queue.
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let mut args = [i(sock), i(10), HostValue::Proc("onStatus".into()), list()];
    let w = env().plugin.call("IMAPWait", &mut args);
    assert_eq!(w.code(), 0, "{}", env().plugin.last_error());
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        kinds(&w),
        [("COMMAND", 0), ("CONNECT", 0)],
        "{:?}",
        w.events
    );
    assert!(
        w.events[0].text.starts_with("A0001 OK logged in"),
        "{:?}",
        w.events
    );
    assert!(w
        .events
        .iter()
        .all(|e| e.socket == sock && e.proc_name == "onEvent"));
    assert_eq!(lines(&args[3]).len(), 2, "{:?}", lines(&args[3]));
    // Delivered once.
    let again = env().plugin.call("IMAPWait", &mut [i(sock)]);
    assert_eq!(again.code(), 0);
    assert!(again.events.is_empty(), "{:?}", again.events);
    assert_eq!(disconnect(sock).code(), 0);
    server.received();

    // Collected by the first command on the socket, before its own events.
    let (tx, rx) = std::sync::mpsc::channel();
    let server = login_server(Duration::ZERO, Some(tx));
    let (o, _) = connect_with(
        &format!("127.0.0.1:{}", server.port),
        "u",
        "p",
        0,
        10,
        s("ASYNC"),
    );
    let sock = o.code();
    assert!(sock > 0);
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let n = env().plugin.call("IMAPNoOp", &mut [i(sock)]);
    assert_eq!(n.code(), 0, "{}", env().plugin.last_error());
    assert_eq!(
        kinds(&n),
        [("COMMAND", 0), ("CONNECT", 0), ("COMMAND", 0)],
        "{:?}",
        n.events
    );
    assert!(n.events[0].text.starts_with("A0001 OK"), "{:?}", n.events);
    assert!(n.events[2].text.starts_with("A0002 OK"), "{:?}", n.events);
    // IMAPWait still reports the outcome and the background's status
    // messages, but the events have gone already.
    let mut args = [i(sock), i(10), HostValue::Proc("onStatus".into())];
    let w = env().plugin.call("IMAPWait", &mut args);
    assert_eq!(w.code(), 0);
    assert!(w.events.is_empty(), "{:?}", w.events);
    assert!(
        status_text(&w).contains("Connected to 127.0.0.1"),
        "{}",
        status_text(&w)
    );
    assert_eq!(disconnect(sock).code(), 0);
    server.received();
}

#[test]
fn asynchronous_connect_returns_at_once_and_a_short_wait_runs_out() {
    // The greeting comes after 2 s: longer than IMAPWait's shortest wait.
    let server = login_server(Duration::from_secs(2), None);
    let addr = format!("127.0.0.1:{}", server.port);
    let t = Instant::now();
    let (o, responses) = connect_with(&addr, "u", "p", 0, 10, s("ASYNC"));
    let took = t.elapsed();
    let sock = o.code();
    assert!(sock > 0, "{}", env().plugin.last_error());
    assert!(took < Duration::from_millis(300), "{took:?}");
    assert!(responses.is_empty(), "{responses:?}");
    assert_eq!(
        status_text(&o),
        format!(
            "onStatus: Socket {sock}: connecting in the background; IMAPWait reports the outcome"
        )
    );
    // Other commands are refused at once while it runs.
    let n = Instant::now();
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), -1139);
    assert!(n.elapsed() < Duration::from_millis(100));
    assert!(env().plugin.last_error().contains("call IMAPWait first"));
    // IMAPWait's own timeout runs out first; the list is cleared anyway.
    let mut args = [i(sock), i(1), HostValue::Proc("onStatus".into()), s("")];
    args[3] = HostValue::List(plugin_abi::host::List {
        columns: vec![("old".into(), plugin_abi::MAILEXT_KIND_CHARACTER)],
        rows: vec![vec![s("stale")]],
    });
    let w0 = Instant::now();
    let w = env().plugin.call("IMAPWait", &mut args);
    let waited = w0.elapsed();
    assert_eq!(w.code(), -1139, "{}", env().plugin.last_error());
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
    assert!(
        env().plugin.last_error().contains(&format!(
            "the connect to {addr} has not finished after 1 s; call IMAPWait again"
        )),
        "{}",
        env().plugin.last_error()
    );
    assert!(lines(&args[3]).is_empty());
    assert!(w.events.is_empty(), "{:?}", w.events);
    // The connect went on; a longer wait gets everything it did.
    let mut args = [i(sock), i(10), HostValue::Proc("onStatus".into()), list()];
    let w = env().plugin.call("IMAPWait", &mut args);
    assert_eq!(w.code(), 0, "{}", env().plugin.last_error());
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    let st = status_text(&w);
    assert!(st.contains(&format!("Connecting to {addr}")), "{st}");
    assert!(
        st.contains("S: * OK [CAPABILITY IMAP4rev1] scripted"),
        "{st}"
    );
    assert!(!st.contains("is ready"), "{st}");
    assert_eq!(
        lines(&args[3]),
        ["* OK [CAPABILITY IMAP4rev1] scripted", "A0001 OK logged in"]
    );
    assert_eq!(
        kinds(&w),
        [("COMMAND", 0), ("CONNECT", 0)],
        "{:?}",
        w.events
    );
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), 0);
    assert_eq!(disconnect(sock).code(), 0);
    let seen = server.received();
    assert!(seen.iter().any(|l| l.ends_with(" NOOP")), "{seen:?}");
}

#[test]
fn cancel_ends_a_background_connect() {
    // A server that never greets: the connect waits for the greeting.
    for delay in [Duration::from_millis(300), Duration::ZERO] {
        let server = Scripted::start(|peer| peer.drain());
        let (o, _) = connect_with(
            &format!("127.0.0.1:{}", server.port),
            "u",
            "p",
            0,
            30,
            s("ASYNC"),
        );
        let sock = o.code();
        assert!(sock > 0, "{}", env().plugin.last_error());
        // At once (before the background thread has done anything), or
        // while it waits for the greeting.
        std::thread::sleep(delay);
        let mut args = [i(sock), HostValue::Proc("onStatus".into())];
        let c = env().plugin.call("IMAPCancel", &mut args);
        assert_eq!(c.code(), 1, "{delay:?}: {}", status_text(&c));
        assert!(status_text(&c).contains("cancel requested"));
        let t = Instant::now();
        let w = env().plugin.call("IMAPWait", &mut [i(sock), i(20)]);
        assert_eq!(w.code(), -516, "{delay:?}: {}", env().plugin.last_error());
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(
            kinds(&w),
            [("CANCEL", -516), ("CONNECT", -516)],
            "{delay:?}: {:?}",
            w.events
        );
        // The number is gone with the connect.
        assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), -509);
        assert_eq!(env().plugin.call("IMAPWait", &mut [i(sock)]).code(), -509);
        assert_eq!(env().plugin.call("IMAPCancel", &mut [i(sock)]).code(), -509);
        // The connection was closed: the server sees the end.
        let seen = server.received();
        assert!(seen.is_empty(), "{seen:?}");
    }
}
