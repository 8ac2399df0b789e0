//! The command table the host reads, and dispatch to the command functions.
//! The table is static data in ABI form; `HANDLERS` runs in the same order.

mod connect;
mod family;
mod imap;
mod misc;
mod receive;
mod smtp;

use crate::error::{set_last_error, MailError};
use crate::host_call::HostCall;
use plugin_abi::*;

/// What a command returns on success.
pub enum Ret {
    Integer(i64),
    Character(String),
    /// A new socket id: closed again if the host cannot take it.
    Socket(i64),
}

mod table;

use table::HANDLERS;
pub use table::{COMMANDS, COMMAND_COUNT};

pub(crate) type Handler = fn(&HostCall) -> Result<Ret, MailError>;

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
                smtp::abandon(id);
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
