//! Connect defaults from the configuration (the ActiveX control's HostName,
//! HostAddress, RemotePort, UserName, Password, Timeout and Options), through
//! the mailext-host shim in its own process so the settings stay there.

mod support;

use support::dovecot::{PASSWORD, USER};
use support::*;

/// Runs `script` in a mailext-host process; one JSON report per line.
fn run(script: &[String]) -> Vec<serde_json::Value> {
    let lines: Vec<&str> = script.iter().map(String::as_str).collect();
    let out = host_json(&lines, &[], None);
    assert_eq!(out.len(), script.len(), "{out:?}");
    out
}

/// The status messages of one report, one a line.
fn status(o: &serde_json::Value) -> String {
    o["status"]
        .as_array()
        .unwrap_or_else(|| panic!("no status: {o}"))
        .iter()
        .map(|m| m["message"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A report whose return is a socket.
fn socket(o: &serde_json::Value) -> i64 {
    let sock = o["return"].as_i64().unwrap_or(0);
    assert!(sock > 0, "{o}");
    sock
}

#[test]
fn omitted_arguments_take_the_configured_defaults() {
    let d = dovecot();
    let script = [
        format!(
            "MailSetConfig(\"hostname\", \"localhost:{}\")",
            d.imaps_port
        ),
        "MailSetConfig(\"username\", \"u11\")".to_string(),
        format!("MailSetConfig(\"password\", \"{PASSWORD}\")"),
        "MailSetConfig(\"options\", \"SECURE_IMPLICIT IDENTIFY\")".to_string(),
        "MailSetConfig(\"timeout\", 30)".to_string(),
        "p = MailGetConfig(\"password\")".to_string(),
        "u = MailGetConfig(\"username\")".to_string(),
        "o = MailGetConfig(\"options\")".to_string(),
        "t = MailGetConfig(\"timeout\")".to_string(),
        "sock = IMAPConnect(, , , st, r, , , , , onEvent)".to_string(),
        "IMAPNoOp(sock)".to_string(),
        "IMAPDisconnect(sock)".to_string(),
        "MailSetConfig(\"tunnel\", \"socks5://me:Pw0rd@127.0.0.1:1080\")".to_string(),
        "x = MailGetConfig(\"tunnel\")".to_string(),
        "MailSetConfig(\"remoteport\", 70000)".to_string(),
        "MailSetConfig(\"options\", \"NOPE\")".to_string(),
        "MailSetConfig(\"timeout\", \"soon\")".to_string(),
        "MailSetConfig(\"colour\", 1)".to_string(),
        "MailSetConfig(\"options\", \"CERT=/x.p12 CERTPASS=Hunter22 TUNNEL=http://u:Pw0rd@p:3128\")".to_string(),
        "y = MailGetConfig(\"options\")".to_string(),
    ];
    let lines: Vec<&str> = script.iter().map(String::as_str).collect();
    let out = host_json(&lines, &[], None);
    assert_eq!(out.len(), script.len(), "{out:?}");
    for o in &out[..5] {
        assert_eq!(o["return"], 0, "{o}");
    }
    assert_eq!(out[5]["return"], -1132, "the password is never read back");
    assert_eq!(out[6]["return"], "u11");
    assert_eq!(out[7]["return"], "SECURE_IMPLICIT IDENTIFY");
    assert_eq!(out[8]["return"], 30);
    let sock = &out[9];
    assert!(sock["return"].as_i64().unwrap() > 0, "{sock}");
    let st = sock["status"].to_string();
    assert!(st.contains("TLS established"), "{st}");
    assert!(st.contains("C: A0002 ID"), "{st}");
    assert!(sock["events"].to_string().contains("CONNECT"), "{sock}");
    assert_eq!(out[10]["return"], 0);
    assert_eq!(out[11]["return"], 0);
    assert_eq!(out[13]["return"], "socks5://127.0.0.1:1080");
    assert_eq!(out[14]["return"], -1102);
    assert_eq!(out[15]["return"], -1132);
    assert_eq!(out[16]["return"], -1132);
    assert_eq!(out[17]["return"], -1132);
    assert_eq!(out[18]["return"], 0);
    assert_eq!(
        out[19]["return"],
        "CERT=/x.p12 CERTPASS=<redacted> TUNNEL=http://p:3128"
    );
    for o in &out {
        for field in ["status", "events", "return", "lists"] {
            let t = o[field].to_string();
            assert!(
                !t.contains(PASSWORD) && !t.contains("Pw0rd") && !t.contains("Hunter22"),
                "{t}"
            );
        }
    }
}

#[test]
fn oauth_types_take_the_bearertoken_setting() {
    use support::scripted::Scripted;
    let b64 = openssl::base64::encode_block(b"user=u11\x01auth=Bearer tok-XYZ9\x01\x01");
    let server = Scripted::start(move |peer| {
        peer.send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n");
        assert_eq!(
            peer.line().unwrap(),
            format!("A0001 AUTHENTICATE XOAUTH2 {b64}")
        );
        peer.send("A0001 OK in\r\n");
        let tag = peer.command("LOGOUT");
        peer.send(&format!("* BYE\r\n{tag} OK bye\r\n"));
    });
    let script = [
        "MailSetConfig(\"password\", \"not-this\")".to_string(),
        "MailSetConfig(\"bearertoken\", \"tok-XYZ9\")".to_string(),
        "t = MailGetConfig(\"bearertoken\")".to_string(),
        format!(
            "sock = IMAPConnect(\"127.0.0.1:{}\", \"u11\", , st, r, , , , \"AUTH=XOAUTH2\")",
            server.port
        ),
        "IMAPDisconnect(sock)".to_string(),
    ];
    let lines: Vec<&str> = script.iter().map(String::as_str).collect();
    let out = host_json(&lines, &[], None);
    assert_eq!(out[2]["return"], -1132);
    assert!(out[3]["return"].as_i64().unwrap() > 0, "{}", out[3]);
    assert!(!out[3]["status"].to_string().contains("tok-XYZ9"));
    assert_eq!(out[4]["return"], 0);
    server.received();
}

#[test]
fn remoteport_is_the_port_of_a_server_without_one() {
    let d = dovecot();
    let (imap, imaps) = (d.imap_port, d.imaps_port);
    let script = [
        format!("MailSetConfig(\"remoteport\", {imap})"),
        "p = MailGetConfig(\"remoteport\")".to_string(),
        // A host name without a port, in plaintext.
        format!("a = IMAPConnect(\"localhost\", \"{USER}\", \"{PASSWORD}\", st, r)"),
        "IMAPDisconnect(a)".to_string(),
        // The hostname setting without a port takes it too.
        "MailSetConfig(\"hostname\", \"127.0.0.1\")".to_string(),
        format!("b = IMAPConnect(, \"{USER}\", \"{PASSWORD}\", st, r)"),
        "IMAPDisconnect(b)".to_string(),
        // It replaces 993 for implicit TLS as well.
        format!("MailSetConfig(\"remoteport\", {imaps})"),
        format!("c = IMAPConnect(\"localhost\", \"{USER}\", \"{PASSWORD}\", st, r, 1)"),
        "IMAPDisconnect(c)".to_string(),
        // A port in the server wins.
        format!("e = IMAPConnect(\"localhost:{imap}\", \"{USER}\", \"{PASSWORD}\", st, r)"),
        "IMAPDisconnect(e)".to_string(),
        // 0 clears it: 143 again.
        "MailSetConfig(\"remoteport\", 0)".to_string(),
        "q = MailGetConfig(\"remoteport\")".to_string(),
        format!("f = IMAPConnect(\"localhost\", \"{USER}\", \"{PASSWORD}\", st, r, , , 2)"),
    ];
    let out = run(&script);
    assert_eq!(out[0]["return"], 0, "{}", out[0]);
    assert_eq!(out[1]["return"], imap as i64);
    for (n, port) in [(2, imap), (5, imap), (8, imaps), (10, imap)] {
        socket(&out[n]);
        let st = status(&out[n]);
        let host = if n == 5 { "127.0.0.1" } else { "localhost" };
        assert!(
            st.contains(&format!("Connecting to {host}:{port} (")),
            "{st}"
        );
        let connected = st.lines().find(|l| l.starts_with("Connected to "));
        assert!(
            connected.is_some_and(|l| l.ends_with(&format!(":{port}"))),
            "{st}"
        );
        assert!(st.contains(&format!("Logged in as {USER}")), "{st}");
        assert_eq!(out[n + 1]["return"], 0, "{}", out[n + 1]);
    }
    assert!(status(&out[8]).contains("TLS established"), "{}", out[8]);
    assert!(!status(&out[2]).contains("TLS established"), "{}", out[2]);
    assert_eq!(out[12]["return"], 0);
    assert_eq!(out[13]["return"], 0);
    assert!(
        status(&out[14]).contains("Connecting to localhost:143 ("),
        "{}",
        out[14]
    );
}

#[test]
fn a_bare_tunnel_uses_the_tunnel_setting_and_integer_options_apply() {
    use support::proxies::Tinyproxy;
    let d = dovecot();
    let (imap, imaps) = (d.imap_port, d.imaps_port);
    let http = Tinyproxy::start(None);
    let proxy = http.url();
    // SECURE_IMPLICIT | TUNNEL | IDENTIFY
    let bits = 0x2000 | 0x400 | 0x1;
    let script = [
        format!("MailSetConfig(\"tunnel\", \"{proxy}\")"),
        format!("a = IMAPConnect(\"localhost:{imaps}\", \"{USER}\", \"{PASSWORD}\", st, r, 1, , , \"TUNNEL\")"),
        "IMAPDisconnect(a)".to_string(),
        format!("b = IMAPConnect(\"localhost:{imaps}\", \"{USER}\", \"{PASSWORD}\", st, r, 1, , , 1024)"),
        "IMAPDisconnect(b)".to_string(),
        // An Integer options setting, used when options are left out.
        format!("MailSetConfig(\"options\", {bits})"),
        "o = MailGetConfig(\"options\")".to_string(),
        format!("c = IMAPConnect(\"localhost:{imaps}\", \"{USER}\", \"{PASSWORD}\", st, r)"),
        "IMAPDisconnect(c)".to_string(),
        // 0: no options, whatever the setting says.
        format!("e = IMAPConnect(\"localhost:{imap}\", \"{USER}\", \"{PASSWORD}\", st, r, , , , 0)"),
        "IMAPDisconnect(e)".to_string(),
        // Without the tunnel setting the bare TUNNEL bit is a port forward:
        // a direct connection, TLS still from SECURE_IMPLICIT.
        "MailSetConfig(\"tunnel\", \"\")".to_string(),
        format!("f = IMAPConnect(\"localhost:{imaps}\", \"{USER}\", \"{PASSWORD}\", st, r)"),
        "IMAPDisconnect(f)".to_string(),
    ];
    let out = run(&script);
    assert_eq!(out[0]["return"], 0, "{}", out[0]);
    for n in [1, 3, 7] {
        socket(&out[n]);
        let st = status(&out[n]);
        assert!(
            st.contains(&format!(
                "Opening a tunnel to localhost:{imaps} through {proxy}"
            )),
            "{n}: {st}"
        );
        assert!(
            st.contains(&format!("Tunnel to localhost:{imaps} open")),
            "{st}"
        );
        assert!(
            st.contains(&format!("Connected to 127.0.0.1:{}", http.port)),
            "{st}"
        );
        assert!(st.contains("certificate verified for localhost"), "{st}");
        assert_eq!(out[n + 1]["return"], 0, "{}", out[n + 1]);
    }
    assert_eq!(out[5]["return"], 0, "{}", out[5]);
    assert_eq!(out[6]["return"], bits, "read back as the Integer it was");
    let st = status(&out[7]);
    assert!(st.contains("C: A0002 ID (\"name\" \"mailext\""), "{st}");
    assert!(!status(&out[1]).contains(" ID ("), "{}", out[1]);
    for n in [9, 12] {
        socket(&out[n]);
        let st = status(&out[n]);
        assert!(!st.contains("tunnel"), "{n}: {st}");
        assert_eq!(out[n + 1]["return"], 0, "{}", out[n + 1]);
    }
    let plain = status(&out[9]);
    assert!(!plain.contains("TLS established"), "{plain}");
    assert!(!plain.contains(" ID ("), "{plain}");
    assert!(
        plain.contains(&format!("Connected to 127.0.0.1:{imap}"))
            || plain.contains(&format!("Connected to [::1]:{imap}")),
        "{plain}"
    );
    let forward = status(&out[12]);
    assert!(forward.contains("TLS established"), "{forward}");
    assert!(forward.contains(" ID ("), "{forward}");
    assert_eq!(out[11]["return"], 0);
}

#[test]
fn hostaddress_is_the_server_when_hostname_is_not_set() {
    let d = dovecot();
    let imaps = d.imaps_port;
    let script = [
        "MailSetConfig(\"hostaddress\", \"mail.example.com\")".to_string(),
        "MailSetConfig(\"hostaddress\", \"127.0.0.1:143\")".to_string(),
        "MailSetConfig(\"hostaddress\", \"[127.0.0.1]\")".to_string(),
        "MailSetConfig(\"hostaddress\", 2130706433)".to_string(),
        "MailSetConfig(\"hostaddress\", \"[::1]\")".to_string(),
        "a = MailGetConfig(\"hostaddress\")".to_string(),
        "MailSetConfig(\"hostaddress\", \" 127.0.0.1 \")".to_string(),
        "b = MailGetConfig(\"hostaddress\")".to_string(),
        "h = MailGetConfig(\"hostname\")".to_string(),
        format!("MailSetConfig(\"remoteport\", {imaps})"),
        // 10: the address is the server, with its certificate checked for it.
        format!("s1 = IMAPConnect(, \"{USER}\", \"{PASSWORD}\", st, r, 1)"),
        "IMAPDisconnect(s1)".to_string(),
        // 12: a host name in hostname wins over the address.
        "MailSetConfig(\"hostname\", \"localhost\")".to_string(),
        format!("s2 = IMAPConnect(, \"{USER}\", \"{PASSWORD}\", st, r, 1)"),
        "IMAPDisconnect(s2)".to_string(),
        // 15: hostname cleared, an empty server: the address again.
        "MailSetConfig(\"hostname\", \"\")".to_string(),
        format!("s3 = IMAPConnect(\"\", \"{USER}\", \"{PASSWORD}\", st, r, 1)"),
        "IMAPDisconnect(s3)".to_string(),
        // 18: cleared: no server at all.
        "MailSetConfig(\"hostaddress\", \"\")".to_string(),
        "c = MailGetConfig(\"hostaddress\")".to_string(),
        format!("s4 = IMAPConnect(, \"{USER}\", \"{PASSWORD}\", st, r, 1)"),
        "MailSetConfig(\"colour\", 1)".to_string(),
    ];
    let out = run(&script);
    for n in [0, 1, 2] {
        assert_eq!(out[n]["return"], -1101, "{}", out[n]);
        let detail = out[n]["error"]["detail"].to_string();
        assert!(
            detail.contains("hostaddress must be an IPv4 or IPv6 address"),
            "{detail}"
        );
    }
    assert_eq!(out[3]["return"], -1132, "an Integer is not an address");
    assert_eq!(out[4]["return"], 0, "{}", out[4]);
    assert_eq!(out[5]["return"], "::1");
    assert_eq!(out[6]["return"], 0);
    assert_eq!(out[7]["return"], "127.0.0.1");
    assert_eq!(out[8]["return"], "", "hostname stays unset");
    assert_eq!(out[9]["return"], 0);
    for (n, host) in [(10, "127.0.0.1"), (13, "localhost"), (16, "127.0.0.1")] {
        socket(&out[n]);
        let st = status(&out[n]);
        assert!(
            st.contains(&format!("Connecting to {host}:{imaps} (")),
            "{n}: {st}"
        );
        assert!(
            st.contains(&format!("certificate verified for {host}")),
            "{n}: {st}"
        );
        assert_eq!(out[n + 1]["return"], 0, "{}", out[n + 1]);
    }
    assert_eq!(out[12]["return"], 0);
    assert_eq!(out[15]["return"], 0);
    assert_eq!(out[18]["return"], 0);
    assert_eq!(out[19]["return"], "");
    assert_eq!(out[20]["return"], -511, "{}", out[20]);
    assert_eq!(out[21]["return"], -1132);
    let known = out[21]["error"]["detail"].to_string();
    assert!(
        known.contains("hostname, hostaddress, remoteport"),
        "{known}"
    );
}
