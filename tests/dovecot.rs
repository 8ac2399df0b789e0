//! IMAPConnect / IMAPNoOp / IMAPDisconnect against a real Dovecot, through
//! the plugin loaded as a host loads it.

mod support;

use support::dovecot::{Dovecot, Options, PASSWORD, PASSWORD2, USER, USER2};
use support::*;

fn assert_no_secret(text: &str, secret: &str) {
    assert!(!text.contains(secret), "secret leaked into:\n{text}");
}

#[test]
fn cram_md5_login_noop_and_disconnect() {
    let d = dovecot();
    let (o, responses) = connect(&local(d.imap_port), USER, PASSWORD, 0, true);
    let sock = o.code();
    let status = status_text(&o);
    assert!(sock > 0, "connect returned {sock}\n{status}\n{}", d.log());
    assert!(status.contains("with CRAM-MD5"), "{status}");
    assert!(
        status.contains("onStatus: C: A0001 AUTHENTICATE CRAM-MD5"),
        "{status}"
    );
    assert!(status.contains("<CRAM-MD5 response redacted>"));
    assert_no_secret(&status, PASSWORD);
    let lines = lines(&responses);
    assert!(lines[0].starts_with("* OK"), "{lines:?}");
    assert!(lines.last().unwrap().starts_with("A0001 OK"), "{lines:?}");

    let mut args = [i(sock), s("st"), list()];
    let o = env().plugin.call("IMAPNoOp", &mut args);
    assert_eq!(o.code(), 0, "{}", status_text(&o));
    assert!(support::lines(&args[2])
        .last()
        .unwrap()
        .starts_with("A0002 OK"));

    let mut args = [i(sock), s("st"), list()];
    let o = env().plugin.call("IMAPDisconnect", &mut args);
    assert_eq!(o.code(), 0, "{}", status_text(&o));
    let bye = support::lines(&args[2]);
    assert!(bye.iter().any(|l| l.starts_with("* BYE")), "{bye:?}");
    assert_eq!(disconnect(sock).code(), -509);
    assert_eq!(env().plugin.call("IMAPNoOp", &mut [i(sock)]).code(), -509);
}

#[test]
fn login_fallback_when_cram_md5_is_off() {
    let d = Dovecot::start(
        &env().good,
        &Options {
            auth_mechanisms: "plain login",
            ..Default::default()
        },
    );
    let (o, _) = connect(&local(d.imap_port), USER, PASSWORD, 0, true);
    let status = status_text(&o);
    assert!(o.code() > 0, "{status}");
    assert!(status.contains("with LOGIN"), "{status}");
    assert!(status.contains("LOGIN \"alice\" <redacted>"), "{status}");
    assert_no_secret(&status, PASSWORD);
    assert_eq!(disconnect(o.code()).code(), 0);
}

#[test]
fn password_needing_a_literal_and_escapes() {
    let d = dovecot();
    // CRAM-MD5 first; the literal form of LOGIN is exercised by the fallback instance.
    let (o, _) = connect(&local(d.imap_port), USER2, PASSWORD2, 0, true);
    assert!(o.code() > 0, "{}\n{}", status_text(&o), d.log());
    assert_eq!(disconnect(o.code()).code(), 0);
    let d2 = Dovecot::start(
        &env().good,
        &Options {
            auth_mechanisms: "plain login",
            ..Default::default()
        },
    );
    let (o, _) = connect(&local(d2.imap_port), USER2, PASSWORD2, 0, true);
    let status = status_text(&o);
    assert!(o.code() > 0, "{status}\n{}", d2.log());
    assert_no_secret(&status, "wörd");
    assert_eq!(disconnect(o.code()).code(), 0);
}

#[test]
fn wrong_password_is_authentication_failed_with_server_text() {
    let d = dovecot();
    let (o, responses) = connect(&local(d.imap_port), USER, "not-the-password", 0, true);
    assert_eq!(o.code(), -1120, "{}", status_text(&o));
    let detail = env().plugin.last_error();
    assert!(detail.contains("Authentication failed"), "{detail}");
    assert_eq!(env().plugin.error_text(-1120), "Authentication failed");
    assert_no_secret(&status_text(&o), "not-the-password");
    // CRAM-MD5 was refused, then LOGIN: both replies are in the list.
    let lines = lines(&responses);
    assert!(
        lines.iter().filter(|l| l.contains(" NO ")).count() >= 2,
        "{lines:?}"
    );
}

#[test]
fn implicit_tls_and_starttls() {
    let d = dovecot();
    let (o, _) = connect(&local(d.imaps_port), USER, PASSWORD, 1, true);
    let status = status_text(&o);
    assert!(o.code() > 0, "{status}");
    assert!(status.contains("TLS established: TLSv1."), "{status}");
    assert!(
        status.contains("certificate verified for localhost"),
        "{status}"
    );
    assert_eq!(disconnect(o.code()).code(), 0);

    let (o, _) = connect(&local(d.imap_port), USER, PASSWORD, 2, true);
    let status = status_text(&o);
    assert!(o.code() > 0, "{status}");
    let tls_at = status.find("TLS established").expect("TLS milestone");
    let auth_at = status.find("AUTHENTICATE").expect("auth line");
    let starttls_at = status
        .find("C: A0001 STARTTLS")
        .or_else(|| status.find("STARTTLS\n"))
        .expect("STARTTLS");
    assert!(
        starttls_at < tls_at && tls_at < auth_at,
        "authentication must follow TLS:\n{status}"
    );
    assert!(
        status[tls_at..].contains("CAPABILITY"),
        "capabilities re-read after TLS:\n{status}"
    );
    assert_eq!(disconnect(o.code()).code(), 0);
}

#[test]
fn implicit_tls_against_a_plaintext_port_says_so() {
    let d = dovecot();
    let (o, _) = connect(&local(d.imap_port), USER, PASSWORD, 1, true);
    assert_eq!(o.code(), -1110, "{}", status_text(&o));
    let detail = env().plugin.last_error();
    assert!(detail.contains("did not answer with TLS"), "{detail}");
}

#[test]
fn secure_defaults_to_port_993_when_implicit() {
    // No port given with secure = 1 means 993; nothing listens there here.
    let (o, _) = connect("127.0.0.1", USER, PASSWORD, 1, true);
    let status = status_text(&o);
    assert!(status.contains("127.0.0.1:993"), "{status}");
    assert!(o.code() < 0);
}

#[test]
fn ipv6_literal() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let d = dovecot();
    let (o, _) = connect(&format!("[::1]:{}", d.imaps_port), USER, PASSWORD, 1, true);
    let status = status_text(&o);
    assert!(o.code() > 0, "{status}");
    assert!(status.contains("[::1]"), "{status}");
    assert_eq!(disconnect(o.code()).code(), 0);
}

#[test]
fn certificate_for_another_name_expired_or_untrusted() {
    let ca = &env().ca;
    let wrong = ca.leaf(
        "wrong.example",
        &["wrong.example", "*.example"],
        &[],
        -1,
        30,
    );
    let d = Dovecot::start(&wrong, &Options::default());
    let (o, _) = connect(&local(d.imaps_port), USER, PASSWORD, 1, true);
    assert_eq!(o.code(), -1113, "{}", status_text(&o));
    assert!(env().plugin.last_error().contains("localhost"));
    // kFalse keeps encryption and skips the check.
    let (o, _) = connect(&local(d.imaps_port), USER, PASSWORD, 1, false);
    let status = status_text(&o);
    assert!(o.code() > 0, "{status}");
    assert!(status.contains("verification is off"), "{status}");
    assert_eq!(disconnect(o.code()).code(), 0);

    let expired = ca.leaf("localhost", &["localhost"], &["127.0.0.1"], -30, -1);
    let d = Dovecot::start(&expired, &Options::default());
    let (o, _) = connect(&local(d.imap_port), USER, PASSWORD, 2, true);
    assert_eq!(o.code(), -1112, "{}", status_text(&o));

    // Signed by a CA nobody trusts.
    let other =
        pki::Ca::new("unknown CA").leaf("localhost", &["localhost"], &["127.0.0.1"], -1, 30);
    let d = Dovecot::start(&other, &Options::default());
    let (o, _) = connect(&local(d.imaps_port), USER, PASSWORD, 1, true);
    assert_eq!(o.code(), -1111, "{}", status_text(&o));
}

#[test]
fn ip_address_san_is_checked() {
    let d = dovecot();
    let (o, _) = connect(
        &format!("127.0.0.1:{}", d.imaps_port),
        USER,
        PASSWORD,
        1,
        true,
    );
    assert!(o.code() > 0, "{}", status_text(&o));
    assert_eq!(disconnect(o.code()).code(), 0);
    let no_ip = env().ca.leaf("localhost", &["localhost"], &[], -1, 30);
    let d2 = Dovecot::start(&no_ip, &Options::default());
    let (o, _) = connect(
        &format!("127.0.0.1:{}", d2.imaps_port),
        USER,
        PASSWORD,
        1,
        true,
    );
    assert_eq!(o.code(), -1113, "{}", status_text(&o));
}

#[test]
fn cacerts_folder_beside_the_library_or_from_the_environment() {
    let d = dovecot();
    let script = format!(
        "sock = IMAPConnect(\"localhost:{}\", \"{USER}\", \"{PASSWORD}\", \"st\", r, 1, kTrue)",
        d.imaps_port
    );
    // No CA anywhere: untrusted.
    let empty = tempfile::tempdir().unwrap();
    let out = host_json(
        &[&script],
        &[("MAILEXT_CACERTS", empty.path().to_str().unwrap())],
        None,
    );
    assert_eq!(out[0]["return"], -1111, "{out:?}");
    // The CA in a cacerts folder beside a copy of the library.
    let lib = tempfile::tempdir().unwrap();
    let so = lib.path().join("libmailext.so");
    std::fs::copy(plugin_path(), &so).unwrap();
    std::fs::create_dir(lib.path().join("cacerts")).unwrap();
    env()
        .ca
        .write_pem(&lib.path().join("cacerts").join("ca.crt"));
    let out = host_json_without_cacerts_env(&[&script], &so);
    assert!(out[0]["return"].as_i64().unwrap() > 0, "{out:?}");
}

fn host_json_without_cacerts_env(
    lines: &[&str],
    plugin: &std::path::Path,
) -> Vec<serde_json::Value> {
    let exe = plugin_abi::host::profile_dir().join("mailext-host");
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--json")
        .arg("--plugin")
        .arg(plugin)
        .env_remove("MAILEXT_CACERTS");
    for l in lines {
        cmd.arg("-e").arg(l);
    }
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn unsafe_credentials_are_refused_before_connecting() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    for (u, p) in [
        ("alice\r\nA1 LOGOUT", "x"),
        ("alice", "pw\nA1 DELETE INBOX"),
        ("al\0ice", "x"),
    ] {
        let (o, _) = connect(&local(port), u, p, 0, true);
        assert_eq!(o.code(), -1123);
    }
    assert!(listener.accept().is_err(), "nothing may go out");
}

/// `openssl x509 -hash`: the file name OpenSSL's hashed directory lookup wants.
fn subject_hash(pem: &std::path::Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-hash", "-noout", "-in"])
        .arg(pem)
        .output()
        .expect("the openssl command (Debian package openssl)");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn system_store_from_the_bundle_file_and_the_hashed_directory() {
    let d = dovecot();
    let script = format!(
        "sock = IMAPConnect(\"localhost:{}\", \"{USER}\", \"{PASSWORD}\", \"st\", r, 1, kTrue)",
        d.imaps_port
    );
    let tmp = tempfile::tempdir().unwrap();
    let path = |n: &str| tmp.path().join(n);
    let text = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let no_cacerts = path("cacerts");
    let no_dir = path("no-dir");
    std::fs::create_dir(&no_cacerts).unwrap();
    std::fs::create_dir(&no_dir).unwrap();
    // Two other CAs, one with the test CA's name but another key.
    let other = support::pki::Ca::new("another CA").cert.to_pem().unwrap();
    let same_name = support::pki::Ca::new("mailext test CA")
        .cert
        .to_pem()
        .unwrap();
    let ours = env().ca.cert.to_pem().unwrap();
    let run = |file: &std::path::Path, dir: &std::path::Path| {
        host_json(
            &[&script],
            &[
                ("MAILEXT_CACERTS", &text(&no_cacerts)),
                ("SSL_CERT_FILE", &text(file)),
                ("SSL_CERT_DIR", &text(dir)),
            ],
            None,
        )
    };

    // The CA only in the bundle, among others, CRLF line ends on one.
    let bundle = path("bundle.pem");
    let crlf = String::from_utf8(other.clone())
        .unwrap()
        .replace('\n', "\r\n");
    let all = [crlf.as_bytes(), &same_name, b"\n# comment\n", &ours].concat();
    std::fs::write(&bundle, all).unwrap();
    let out = run(&bundle, &no_dir);
    assert!(out[0]["return"].as_i64().unwrap() > 0, "{out:?}");
    // A second connect in the same process finds the CA already loaded.
    let out = host_json(
        &[&script, &script.replace("sock =", "sock2 =")],
        &[
            ("MAILEXT_CACERTS", &text(&no_cacerts)),
            ("SSL_CERT_FILE", &text(&bundle)),
            ("SSL_CERT_DIR", &text(&no_dir)),
        ],
        None,
    );
    assert!(
        out.iter().all(|o| o["return"].as_i64().unwrap() > 0),
        "{out:?}"
    );
    let status = out[0]["status"].to_string();
    assert!(
        status.contains("verifying against the system store"),
        "{status}"
    );

    // A CA of the same name in the cacerts folder does not hide the
    // bundle's (OpenSSL asks lookups only for names it holds nothing for).
    let shadow = path("shadow-cacerts");
    std::fs::create_dir(&shadow).unwrap();
    std::fs::write(shadow.join("same-name.pem"), &same_name).unwrap();
    let only_ours = path("only-ours.pem");
    std::fs::write(&only_ours, &ours).unwrap();
    let out = host_json(
        &[&script],
        &[
            ("MAILEXT_CACERTS", &text(&shadow)),
            ("SSL_CERT_FILE", &text(&only_ours)),
            ("SSL_CERT_DIR", &text(&no_dir)),
        ],
        None,
    );
    assert!(out[0]["return"].as_i64().unwrap() > 0, "{out:?}");

    // Not in the bundle: untrusted.
    let without = path("without.pem");
    std::fs::write(&without, [other.as_slice(), &same_name].concat()).unwrap();
    let out = run(&without, &no_dir);
    assert_eq!(out[0]["return"], -1111, "{out:?}");

    // Only in the hashed directory, no bundle at all.
    let hashed = path("hashed");
    std::fs::create_dir(&hashed).unwrap();
    let ca_file = path("ca.pem");
    std::fs::write(&ca_file, &ours).unwrap();
    std::fs::copy(
        &ca_file,
        hashed.join(format!("{}.0", subject_hash(&ca_file))),
    )
    .unwrap();
    let out = run(&path("missing.pem"), &hashed);
    assert!(out[0]["return"].as_i64().unwrap() > 0, "{out:?}");

    // A bundle with trust settings is read by OpenSSL itself.
    let trusted = std::process::Command::new("openssl")
        .args(["x509", "-trustout", "-addtrust", "serverAuth", "-in"])
        .arg(&ca_file)
        .output()
        .unwrap()
        .stdout;
    assert!(trusted.starts_with(b"-----BEGIN TRUSTED CERTIFICATE-----"));
    let with_trust = path("trusted.pem");
    std::fs::write(&with_trust, [other.as_slice(), &trusted].concat()).unwrap();
    let out = run(&with_trust, &no_dir);
    assert!(out[0]["return"].as_i64().unwrap() > 0, "{out:?}");
}
