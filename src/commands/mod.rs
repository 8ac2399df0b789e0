//! The command table the host reads, and dispatch to the command functions.
//! The table is static data in ABI form; `HANDLERS` runs in the same order.

mod imap;
mod misc;

use crate::error::{set_last_error, MailError};
use crate::host_call::HostCall;
use plugin_abi::*;
use std::ffi::CStr;

/// What a command returns on success.
pub enum Ret {
    Integer(i64),
    Character(String),
    /// A new socket id: closed again if the host cannot take it.
    Socket(i64),
}

type Handler = fn(&HostCall) -> Result<Ret, MailError>;

const IN: u32 = MAILEXT_PARAM_IN;
const OPT: u32 = MAILEXT_PARAM_IN | MAILEXT_PARAM_OPTIONAL;
const CHAR: u32 = MAILEXT_KIND_CHARACTER;
const INT: u32 = MAILEXT_KIND_INTEGER;
const BOOL: u32 = MAILEXT_KIND_BOOLEAN;
const LIST: u32 = MAILEXT_KIND_LIST;
const PROC: u32 = MAILEXT_KIND_PROC | MAILEXT_KIND_CHARACTER;

const fn p(
    name: &'static CStr,
    kinds: u32,
    flags: u32,
    default: Option<&'static CStr>,
    desc: &'static CStr,
) -> MailextParam {
    MailextParam {
        struct_size: std::mem::size_of::<MailextParam>() as u32,
        kinds,
        flags,
        _reserved: 0,
        name: name.as_ptr(),
        default_text: match default {
            Some(d) => d.as_ptr(),
            None => std::ptr::null(),
        },
        description: desc.as_ptr(),
    }
}

const STSPROC: MailextParam = p(
    c"stsproc",
    PROC,
    OPT,
    None,
    c"method called with each status message",
);
const RESPONSES: MailextParam = p(
    c"responselist",
    LIST,
    OPT,
    None,
    c"cleared, then filled with the server's response lines",
);
const SOCKET: MailextParam = p(c"socket", INT, IN, None, c"socket returned by IMAPConnect");

static IMAP_CONNECT: [MailextParam; 7] = [
    p(
        c"server",
        CHAR,
        IN,
        None,
        c"host name, IPv4 or [IPv6] address, optionally :port",
    ),
    p(c"username", CHAR, IN, None, c"user name to log in with"),
    p(
        c"password",
        CHAR,
        IN,
        None,
        c"password (never shown in status messages)",
    ),
    STSPROC,
    RESPONSES,
    p(
        c"secure",
        INT | BOOL,
        OPT,
        Some(c"0"),
        c"0 plaintext, 1 TLS from the first byte, 2 STARTTLS",
    ),
    p(
        c"verify",
        BOOL | INT,
        OPT,
        Some(c"kTrue"),
        c"verify the server certificate and host name",
    ),
];
static SOCKET_STS_RESPONSES: [MailextParam; 3] = [SOCKET, STSPROC, RESPONSES];
static ERROR_TEXT: [MailextParam; 1] = [p(
    c"code",
    INT,
    IN,
    None,
    c"an error code returned by a command",
)];
static NO_PARAMS: [MailextParam; 0] = [];
static SET_CONFIG: [MailextParam; 2] = [
    p(c"name", CHAR, IN, None, c"setting name: commstimeout"),
    p(
        c"value",
        INT,
        IN,
        None,
        c"new value (commstimeout: seconds, 0 = default 60)",
    ),
];
static GET_CONFIG: [MailextParam; 1] = [p(c"name", CHAR, IN, None, c"setting name: commstimeout")];

const fn c(
    name: &'static CStr,
    ret: u32,
    params: &'static [MailextParam],
    summary: &'static CStr,
) -> MailextCommand {
    MailextCommand {
        struct_size: std::mem::size_of::<MailextCommand>() as u32,
        flags: MAILEXT_COMMAND_MULTITHREADED,
        return_kind: ret,
        param_count: params.len() as u32,
        name: name.as_ptr(),
        params: params.as_ptr(),
        summary: summary.as_ptr(),
    }
}

pub const COMMAND_COUNT: usize = 7;

pub static COMMANDS: [MailextCommand; COMMAND_COUNT] = [
    c(
        c"IMAPConnect",
        INT,
        &IMAP_CONNECT,
        c"Connects and logs in to an IMAP server; returns a socket or a negative code",
    ),
    c(
        c"IMAPDisconnect",
        INT,
        &SOCKET_STS_RESPONSES,
        c"Logs out, closes the connection and frees the socket",
    ),
    c(
        c"IMAPNoOp",
        INT,
        &SOCKET_STS_RESPONSES,
        c"Sends NOOP so the server can report updates",
    ),
    c(
        c"MailErrorText",
        CHAR,
        &ERROR_TEXT,
        c"The text for an error code",
    ),
    c(
        c"MailLastError",
        CHAR,
        &NO_PARAMS,
        c"The detail of the calling thread's most recent failure",
    ),
    c(
        c"MailSetConfig",
        INT,
        &SET_CONFIG,
        c"Changes a process-wide setting",
    ),
    c(
        c"MailGetConfig",
        INT,
        &GET_CONFIG,
        c"Reads a process-wide setting",
    ),
];

static HANDLERS: [Handler; COMMAND_COUNT] = [
    imap::connect,
    imap::disconnect,
    imap::noop,
    misc::error_text,
    misc::last_error,
    misc::set_config,
    misc::get_config,
];

fn params_of(cmd: &MailextCommand) -> &'static [MailextParam] {
    // SAFETY: every table entry points at a static array of param_count params.
    unsafe { std::slice::from_raw_parts(cmd.params, cmd.param_count as usize) }
}

/// Runs command `index` and delivers its return value through the host.
///
/// # Safety
/// `args`/`argc` as the ABI describes; `cb` checked by the caller.
pub unsafe fn dispatch(
    index: usize,
    args: *const MailextValue,
    argc: u32,
    cb: &MailextHostCallbacks,
) -> i32 {
    let cmd = &COMMANDS[index];
    let outcome = HostCall::new(args, argc, cb, params_of(cmd)).and_then(|call| {
        let r = HANDLERS[index](&call);
        if let Err(e) = &r {
            call.status(&format!("Error {}: {e}", e.code()));
        }
        r.map(|ret| (call, ret))
    });
    match outcome {
        Ok((call, ret)) => {
            let v = match &ret {
                Ret::Integer(n) | Ret::Socket(n) => MailextValue::integer(*n),
                Ret::Character(s) => MailextValue::bytes(MAILEXT_KIND_CHARACTER, s.as_bytes()),
            };
            if call.set_return(&v) == MAILEXT_OK {
                return MAILEXT_OK;
            }
            // The host never learns a socket it refused: close it, or it leaks.
            if let Ret::Socket(id) = ret {
                imap::abandon(id);
            }
            set_last_error(&MailError::BadList(
                "the host refused the return value".into(),
            ));
            MAILEXT_ERR_BAD_LIST
        }
        Err(e) => {
            set_last_error(&e);
            deliver_error(cb, cmd.return_kind, e.code())
        }
    }
}

/// An error becomes the return value: the code for Integer commands, empty
/// text for Character ones (the code and detail stay in the last error).
fn deliver_error(cb: &MailextHostCallbacks, kind: u32, code: i32) -> i32 {
    let Some(f) = cb.set_return else { return code };
    let v = if kind == MAILEXT_KIND_CHARACTER {
        MailextValue::bytes(MAILEXT_KIND_CHARACTER, b"")
    } else {
        MailextValue::integer(code as i64)
    };
    // SAFETY: the host's callback, on the calling thread, during the call.
    match unsafe { f(cb.ctx, &v) } {
        MAILEXT_OK => MAILEXT_OK,
        _ => code,
    }
}
