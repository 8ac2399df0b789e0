//! Connect defaults from the configuration (the ActiveX control's HostName,
//! RemotePort, UserName, Password, Timeout and Options), through the
//! mailext-host shim in its own process so the settings stay there.

mod support;

use support::dovecot::PASSWORD;
use support::*;

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
