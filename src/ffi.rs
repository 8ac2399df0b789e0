//! The exported C ABI: one entry symbol and the functions of the plugin
//! table. Every function runs inside `ffi_boundary!`, so no panic crosses
//! into the host, and checks every pointer it is given.

use crate::commands::{dispatch, COMMANDS, COMMAND_COUNT};
use crate::error::{error_text, last_error, set_last_error, MailError};
use plugin_abi::*;
use std::ffi::{c_char, CStr};

/// Runs `$body`; a panic becomes `$on_panic` and the thread's last error.
macro_rules! ffi_boundary {
    ($on_panic:expr, $body:block) => {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(p) => {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                set_last_error(&MailError::Internal(what));
                $on_panic
            }
        }
    };
}

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("version contains NUL"),
    };

/// The callbacks every ABI 1.x host provides. Fields appended in later minors
/// must be treated as optional, so older hosts keep working.
const CALLBACKS_1_0_SIZE: usize = std::mem::offset_of!(MailextHostCallbacks, event);

/// How much of a host's callbacks struct of `given` bytes to read: whole
/// fields only, so one the struct reaches only in part counts as NULL.
fn covered_callbacks(given: usize) -> usize {
    use std::mem::{offset_of, size_of};
    let ends = [
        CALLBACKS_1_0_SIZE,
        offset_of!(MailextHostCallbacks, event) + size_of::<usize>(),
        offset_of!(MailextHostCallbacks, append_output) + size_of::<usize>(),
    ];
    debug_assert_eq!(ends[2], size_of::<MailextHostCallbacks>());
    ends.into_iter().filter(|&e| e <= given).max().unwrap_or(0)
}

static PLUGIN: MailextPlugin = MailextPlugin {
    struct_size: std::mem::size_of::<MailextPlugin>() as u32,
    abi_major: MAILEXT_ABI_MAJOR,
    abi_minor: MAILEXT_ABI_MINOR,
    command_count: COMMAND_COUNT as u32,
    name: c"mailext".as_ptr(),
    version: VERSION.as_ptr(),
    commands: COMMANDS.as_ptr(),
    call: Some(call),
    error_text: Some(text_of_code),
    last_error: Some(text_of_last_error),
};

/// The handshake. Returns the plugin table, or NULL with a static reason.
///
/// # Safety
/// `host` must be NULL or point to a `MailextHostInfo`; `refusal` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mailext_entry(
    host: *const MailextHostInfo,
    refusal: *mut *const c_char,
) -> *const MailextPlugin {
    ffi_boundary!(std::ptr::null(), {
        let refuse = |why: &'static CStr| {
            if !refusal.is_null() {
                *refusal = why.as_ptr();
            }
            std::ptr::null()
        };
        if host.is_null() {
            return refuse(c"mailext: the host passed no MailextHostInfo");
        }
        let h = &*host;
        if (h.struct_size as usize) < std::mem::offset_of!(MailextHostInfo, _reserved) {
            return refuse(c"mailext: the host's MailextHostInfo is too small");
        }
        if !abi_compatible(h.abi_major) {
            return refuse(c"mailext speaks ABI major version 1 and cannot serve a host built for another major version; use a matching mailext release");
        }
        &PLUGIN as *const MailextPlugin
    })
}

unsafe extern "C" fn call(
    index: u32,
    args: *const MailextValue,
    argc: u32,
    host: *const MailextHostCallbacks,
) -> i32 {
    ffi_boundary!(MAILEXT_ERR_INTERNAL, {
        if host.is_null() {
            return MAILEXT_ERR_PARAM_INFO;
        }
        let given = (*host).struct_size as usize;
        if given < CALLBACKS_1_0_SIZE {
            return MAILEXT_ERR_PARAM_INFO;
        }
        // Copy only what the host's struct has: fields it predates stay NULL.
        let mut copy = std::mem::MaybeUninit::<MailextHostCallbacks>::zeroed();
        let n = covered_callbacks(given);
        std::ptr::copy_nonoverlapping(host as *const u8, copy.as_mut_ptr() as *mut u8, n);
        // SAFETY: every field is a pointer, an Option of a fn pointer or an
        // integer, for all of which all-zero bytes are valid.
        let cb = &copy.assume_init();
        if cb.set_return.is_none() {
            return MAILEXT_ERR_PARAM_INFO;
        }
        if index as usize >= COMMAND_COUNT {
            set_last_error(&MailError::UnknownCommand);
            return MAILEXT_ERR_UNKNOWN_COMMAND;
        }
        dispatch(index as usize, args, argc, cb)
    })
}

unsafe extern "C" fn text_of_code(code: i32, buf: *mut c_char, cap: usize) -> usize {
    ffi_boundary!(0, { write_text(&error_text(code), buf, cap) })
}

unsafe extern "C" fn text_of_last_error(_code: i32, buf: *mut c_char, cap: usize) -> usize {
    ffi_boundary!(0, { write_text(&last_error(), buf, cap) })
}
