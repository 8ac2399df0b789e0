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
            "verify",
            "timeout",
            "options",
            "eventproc"
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

/// A host whose set_return refuses everything: `call` then returns the
/// result itself, and a refused socket is not left open.
#[test]
fn refused_return_values_come_back_from_call() {
    use plugin_abi::*;
    use std::ffi::c_void;
    unsafe extern "C" fn refuse(_: *mut c_void, _: *const MailextValue) -> i32 {
        -1
    }
    let d = dovecot();
    env();
    let lib = unsafe { libloading::Library::new(plugin_path()) }.unwrap();
    let entry: libloading::Symbol<MailextEntryFn> = unsafe { lib.get(b"mailext_entry") }.unwrap();
    let info = MailextHostInfo {
        struct_size: std::mem::size_of::<MailextHostInfo>() as u32,
        abi_major: MAILEXT_ABI_MAJOR,
        abi_minor: MAILEXT_ABI_MINOR,
        _reserved: 0,
        host_name: std::ptr::null(),
    };
    let api = unsafe { &*entry(&info, std::ptr::null_mut()) };
    // An ABI 1.0 host: its callbacks struct ends before `event`.
    let cb = MailextHostCallbacks {
        struct_size: std::mem::offset_of!(MailextHostCallbacks, event) as u32,
        _reserved: 0,
        ctx: std::ptr::null_mut(),
        set_return: Some(refuse),
        set_output: None,
        list_define: None,
        list_append: None,
        status: None,
        event: None,
        append_output: None,
    };
    let (index, _) = env().plugin.command("IMAPConnect").unwrap();
    let server = local(d.imap_port);
    let strs = [
        server.as_str(),
        support::dovecot::USER,
        support::dovecot::PASSWORD,
    ];
    let args: Vec<MailextValue> = strs
        .iter()
        .map(|t| MailextValue::bytes(MAILEXT_KIND_CHARACTER, t.as_bytes()))
        .collect();
    let call = api.call.unwrap();
    let rc = unsafe { call(index, args.as_ptr(), 3, &cb) };
    assert_eq!(rc, MAILEXT_ERR_BAD_LIST, "a refused socket id");
    let bad = [MailextValue::integer(7)];
    let rc = unsafe { call(index, bad.as_ptr(), 1, &cb) };
    assert_eq!(rc, -501, "a refused error code comes back as the result");
}
