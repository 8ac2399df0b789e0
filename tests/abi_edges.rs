//! Bad input at the ABI: wrong counts, kinds and values give clear codes,
//! never a panic; the handshake refuses an incompatible host.

mod support;

use plugin_abi::host::{HostValue, LoadError, Plugin, Tri};
use support::*;

fn code(cmd: &str, args: &mut [HostValue]) -> i64 {
    env().plugin.call(cmd, args).code()
}

#[test]
fn argument_count_kind_and_value_errors() {
    // Missing required arguments.
    assert_eq!(code("IMAPConnect", &mut [s("localhost")]), -503);
    assert_eq!(code("IMAPConnect", &mut []), -503);
    // Too many.
    let mut many: Vec<HostValue> = (0..9).map(|_| i(1)).collect();
    assert_eq!(code("IMAPNoOp", &mut many), -503);
    // Wrong kinds.
    assert_eq!(code("IMAPConnect", &mut [i(1), s("u"), s("p")]), -501);
    assert_eq!(
        code(
            "IMAPConnect",
            &mut [HostValue::Binary(vec![0xff]), s("u"), s("p")]
        ),
        -501
    );
    assert_eq!(code("IMAPNoOp", &mut [s("1")]), -501);
    assert!(
        env().plugin.last_error().contains("socket"),
        "{}",
        env().plugin.last_error()
    );
    // Bad values.
    let mut a = [
        s("localhost:1"),
        s("u"),
        s("p"),
        HostValue::None,
        HostValue::None,
        i(5),
    ];
    assert_eq!(code("IMAPConnect", &mut a), -1132);
    let mut a = [
        s("localhost:1"),
        s("u"),
        s("p"),
        HostValue::None,
        HostValue::None,
        i(0),
        i(7),
    ];
    assert_eq!(code("IMAPConnect", &mut a), -1132);
    let mut a = [
        s("localhost:1"),
        s("u"),
        s("p"),
        HostValue::None,
        HostValue::None,
        HostValue::Boolean(Tri::Unknown),
    ];
    assert_eq!(code("IMAPConnect", &mut a), -1132);
    // Unknown sockets.
    assert_eq!(code("IMAPNoOp", &mut [i(0)]), -509);
    assert_eq!(code("IMAPDisconnect", &mut [i(-4)]), -509);
    assert_eq!(code("NoSuchCommand", &mut []), -506);
}

#[test]
fn error_texts_and_last_error() {
    let o = env().plugin.call("MailErrorText", &mut [i(-1113)]);
    assert_eq!(
        o.ret,
        Some(s("Server certificate does not match the host name"))
    );
    let o = env().plugin.call("MailErrorText", &mut [i(-509)]);
    assert_eq!(o.ret, Some(s("Bad socket passed to command")));
    assert_eq!(
        env().plugin.error_text(-1124),
        "Socket busy: another thread is using it"
    );
    // Last error is per thread.
    assert_eq!(code("IMAPNoOp", &mut [i(424242)]), -509);
    let here = env().plugin.last_error();
    assert!(here.contains("424242"), "{here}");
    let other = std::thread::spawn(|| env().plugin.last_error())
        .join()
        .unwrap();
    assert!(!other.contains("424242"));
    let o = env().plugin.call("MailLastError", &mut []);
    assert_eq!(o.ret, Some(s(&here)));
}

#[test]
fn command_table_describes_imapconnect() {
    let (_, c) = env().plugin.command("IMAPConnect").unwrap();
    let names: Vec<&str> = c.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "server",
            "username",
            "password",
            "stsproc",
            "responselist",
            "secure",
            "verify"
        ]
    );
    assert_eq!(c.params[5].default.as_deref(), Some("0"));
    assert_eq!(c.params[6].default.as_deref(), Some("kTrue"));
    assert!(c.flags & plugin_abi::MAILEXT_COMMAND_MULTITHREADED != 0);
}

#[test]
fn handshake_refuses_an_incompatible_host() {
    env();
    match Plugin::load_as(&plugin_path(), plugin_abi::MAILEXT_ABI_MAJOR + 1, 0) {
        Err(LoadError::Refused(why)) => assert!(why.contains("major version"), "{why}"),
        Err(e) => panic!("wrong refusal: {e}"),
        Ok(_) => panic!("an incompatible host was accepted"),
    }
    // A newer minor on the host side is fine.
    assert!(Plugin::load_as(&plugin_path(), plugin_abi::MAILEXT_ABI_MAJOR, 99).is_ok());
    assert!(matches!(
        Plugin::load(std::path::Path::new("/nonexistent/libx.so")),
        Err(LoadError::Library(_))
    ));
}
