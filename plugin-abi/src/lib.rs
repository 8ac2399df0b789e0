//! The C ABI between mailext and the 4GL hosts that load it.
//!
//! Everything here is `#[repr(C)]` and mirrored by `include/mailext.h`; a test
//! compiles that header and compares every size, offset and constant with
//! these definitions. Rules that keep old hosts and new plugins compatible:
//! every struct starts with `struct_size`, fields are only ever appended, and
//! arrays of structs are strided by the element's `struct_size`.
//!
//! Ownership: every pointer one side passes to the other is borrowed for the
//! duration of that call only; the receiver copies what it keeps. Neither side
//! ever frees memory the other allocated.

use std::ffi::{c_char, c_void};

pub mod host;
pub mod layout;
pub mod script;

/// Incompatible changes bump the major version; appended fields bump the minor.
pub const MAILEXT_ABI_MAJOR: u32 = 1;
pub const MAILEXT_ABI_MINOR: u32 = 2;
/// The one symbol a plugin exports.
pub const MAILEXT_ENTRY_SYMBOL: &str = "mailext_entry";

// Value kinds. Parameters carry a mask of the kinds they accept.
/// An argument that was not given (`,,` in a 4GL call, or past `argc`).
pub const MAILEXT_KIND_NONE: u32 = 0;
pub const MAILEXT_KIND_INTEGER: u32 = 1;
pub const MAILEXT_KIND_BOOLEAN: u32 = 2;
/// UTF-8 text, `data`/`len`, no terminator required.
pub const MAILEXT_KIND_CHARACTER: u32 = 4;
pub const MAILEXT_KIND_BINARY: u32 = 8;
/// A host-owned list, identified by the opaque `list` handle.
pub const MAILEXT_KIND_LIST: u32 = 16;
/// The name of a host method (stsproc), UTF-8 in `data`/`len`.
pub const MAILEXT_KIND_PROC: u32 = 32;

// Boolean values, in `integer`.
pub const MAILEXT_FALSE: i64 = 0;
pub const MAILEXT_TRUE: i64 = 1;
pub const MAILEXT_UNKNOWN: i64 = 2;

// Event kinds (`MailextEvent.kind`), delivered to a socket's event proc.
/// The connection (and login) finished; `code` is 0 or the error.
pub const MAILEXT_EVENT_CONNECT: u32 = 1;
/// The server closed the connection.
pub const MAILEXT_EVENT_DISCONNECT: u32 = 2;
/// A wait for the server ran out of time.
pub const MAILEXT_EVENT_TIMEOUT: u32 = 3;
/// IMAPCancel ended a blocking call.
pub const MAILEXT_EVENT_CANCEL: u32 = 4;
/// A protocol command completed; `code` is 0 (OK) or the error, `text` the reply.
pub const MAILEXT_EVENT_COMMAND: u32 = 5;
/// A long transfer moved on: `done` of `total` bytes.
pub const MAILEXT_EVENT_PROGRESS: u32 = 6;
/// IMAPIdle heard of a mailbox change (EXISTS, RECENT, EXPUNGE or FETCH):
/// `text` is the update ("3 EXISTS"), `done` its number, `code` 0.
pub const MAILEXT_EVENT_UPDATE: u32 = 7;

// Parameter flags.
pub const MAILEXT_PARAM_IN: u32 = 1;
pub const MAILEXT_PARAM_OUT: u32 = 2;
pub const MAILEXT_PARAM_OPTIONAL: u32 = 4;

// Command flags.
/// The command may run while other host threads run commands.
pub const MAILEXT_COMMAND_MULTITHREADED: u32 = 1;

// ABI-level results of `call` and of host callbacks.
pub const MAILEXT_OK: i32 = 0;
/// Incorrect parameter type (the Omnis code).
pub const MAILEXT_ERR_PARAM_TYPE: i32 = -501;
/// A parameter could not be read (NULL pointer, bad struct size).
pub const MAILEXT_ERR_PARAM_INFO: i32 = -502;
/// Incorrect number of parameters.
pub const MAILEXT_ERR_PARAM_COUNT: i32 = -503;
/// Unrecognised command.
pub const MAILEXT_ERR_UNKNOWN_COMMAND: i32 = -506;
/// The host could not take a list or output the plugin produced.
pub const MAILEXT_ERR_BAD_LIST: i32 = -508;
/// The plugin failed internally (a caught panic); the host is unharmed.
pub const MAILEXT_ERR_INTERNAL: i32 = -1190;
/// The two sides speak incompatible ABI versions.
pub const MAILEXT_ERR_ABI_VERSION: i32 = -1191;

/// One typed value: an argument, a return value, an output or a list cell.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MailextValue {
    pub struct_size: u32,
    /// One `MAILEXT_KIND_*`.
    pub kind: u32,
    /// Integer value, or Boolean (`MAILEXT_FALSE` / `TRUE` / `UNKNOWN`).
    pub integer: i64,
    /// Character, Binary and Proc bytes; borrowed for the call.
    pub data: *const u8,
    pub len: usize,
    /// List handle (host-owned, opaque to the plugin).
    pub list: *mut c_void,
}

/// A list column the plugin defines.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MailextColumn {
    pub struct_size: u32,
    /// One `MAILEXT_KIND_*` (Integer, Boolean, Character or Binary).
    pub kind: u32,
    /// NUL-terminated UTF-8.
    pub name: *const c_char,
}

/// One parameter of a command in the command table.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MailextParam {
    pub struct_size: u32,
    /// Mask of the `MAILEXT_KIND_*` the parameter accepts.
    pub kinds: u32,
    /// `MAILEXT_PARAM_*` flags.
    pub flags: u32,
    pub _reserved: u32,
    pub name: *const c_char,
    /// The default as text, or NULL when there is none.
    pub default_text: *const c_char,
    pub description: *const c_char,
}

/// One command in the command table.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MailextCommand {
    pub struct_size: u32,
    /// `MAILEXT_COMMAND_*` flags.
    pub flags: u32,
    /// The `MAILEXT_KIND_*` of the return value.
    pub return_kind: u32,
    pub param_count: u32,
    pub name: *const c_char,
    /// `param_count` entries, strided by their `struct_size`.
    pub params: *const MailextParam,
    pub summary: *const c_char,
}

/// Host callbacks for one call. The plugin invokes them only on the calling
/// thread and only before `call` returns; the host copies what it is given.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MailextHostCallbacks {
    pub struct_size: u32,
    pub _reserved: u32,
    /// Passed back unchanged as the first argument of every callback.
    pub ctx: *mut c_void,
    /// The command's return value. Called exactly once per successful `call`.
    pub set_return:
        Option<unsafe extern "C" fn(ctx: *mut c_void, value: *const MailextValue) -> i32>,
    /// Writes an out-argument (index into the `args` array).
    pub set_output: Option<
        unsafe extern "C" fn(ctx: *mut c_void, arg_index: u32, value: *const MailextValue) -> i32,
    >,
    /// Clears the list and gives it these columns.
    pub list_define: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            list: *mut c_void,
            columns: *const MailextColumn,
            count: u32,
        ) -> i32,
    >,
    /// Appends one row; `count` cells, strided by their `struct_size`.
    pub list_append: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            list: *mut c_void,
            cells: *const MailextValue,
            count: u32,
        ) -> i32,
    >,
    /// Delivers one status message for the named stsproc.
    pub status: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            proc_name: *const u8,
            proc_len: usize,
            message: *const u8,
            message_len: usize,
        ),
    >,
    /// ABI 1.1: one event for an event proc (see `MailextEvent`). Optional:
    /// a 1.0 host, or NULL here, gets events through `status` as text.
    pub event: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            proc_name: *const u8,
            proc_len: usize,
            event: *const MailextEvent,
        ),
    >,
    /// ABI 1.2: appends `value`'s bytes to an out-argument that `set_output`
    /// set earlier in the same call, with the same kind. `value.integer` is
    /// the length the argument will have in all (a hint for reserving room,
    /// 0 if unknown). Optional: without it, large bodies arrive in one
    /// `set_output`.
    pub append_output: Option<
        unsafe extern "C" fn(ctx: *mut c_void, arg_index: u32, value: *const MailextValue) -> i32,
    >,
}

/// ABI 1.1: an event, borrowed for the duration of the `event` callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MailextEvent {
    pub struct_size: u32,
    /// One of `MAILEXT_EVENT_*`.
    pub kind: u32,
    pub socket: i64,
    /// 0, or the error code that goes with the event.
    pub code: i64,
    /// PROGRESS: bytes so far and in all; UPDATE: the update's number in
    /// `done`; 0 otherwise.
    pub done: i64,
    pub total: i64,
    /// UTF-8 detail (a reply line, an error text).
    pub text: *const u8,
    pub text_len: usize,
}

/// What the host tells the plugin about itself in the handshake.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MailextHostInfo {
    pub struct_size: u32,
    pub abi_major: u32,
    pub abi_minor: u32,
    pub _reserved: u32,
    /// NUL-terminated, may be NULL.
    pub host_name: *const c_char,
}

/// Runs command `command_index` with `argc` arguments.
/// Returns `MAILEXT_OK` when `set_return` accepted the return value (the
/// command's own failures are negative return values). Otherwise the host
/// takes the result as the return value: a `MAILEXT_ERR_*` when the call could
/// not run (NULL callbacks, unknown index), the command's own negative code
/// when `set_return` refused it, or `MAILEXT_ERR_BAD_LIST` when `set_return`
/// refused a successful result (a socket it carried is closed again).
pub type MailextCallFn = unsafe extern "C" fn(
    command_index: u32,
    args: *const MailextValue,
    argc: u32,
    host: *const MailextHostCallbacks,
) -> i32;

/// snprintf-style text getter: writes at most `cap - 1` bytes and a NUL into
/// `buf` (when `cap > 0`) and returns the full length without the NUL.
pub type MailextTextFn = unsafe extern "C" fn(code: i32, buf: *mut c_char, cap: usize) -> usize;

/// What the plugin exposes. Static: valid until the library is unloaded.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MailextPlugin {
    pub struct_size: u32,
    pub abi_major: u32,
    pub abi_minor: u32,
    pub command_count: u32,
    pub name: *const c_char,
    pub version: *const c_char,
    /// `command_count` entries, strided by their `struct_size`.
    pub commands: *const MailextCommand,
    pub call: Option<MailextCallFn>,
    /// Text for an error code (the same as the MailErrorText command).
    pub error_text: Option<MailextTextFn>,
    /// The calling thread's last error detail; `code` is ignored.
    pub last_error: Option<MailextTextFn>,
}

/// The entry symbol's type. Returns NULL and sets `*refusal` (a static
/// string, never freed) when the host's ABI version is incompatible.
pub type MailextEntryFn = unsafe extern "C" fn(
    host: *const MailextHostInfo,
    refusal: *mut *const c_char,
) -> *const MailextPlugin;

// Raw pointers are only ever borrowed for a call; the statics a plugin
// exposes are immutable, so sharing them between threads is sound.
unsafe impl Sync for MailextColumn {}
unsafe impl Sync for MailextParam {}
unsafe impl Sync for MailextCommand {}
unsafe impl Sync for MailextPlugin {}
unsafe impl Send for MailextPlugin {}

impl MailextValue {
    pub const fn none() -> Self {
        MailextValue {
            struct_size: std::mem::size_of::<MailextValue>() as u32,
            kind: MAILEXT_KIND_NONE,
            integer: 0,
            data: std::ptr::null(),
            len: 0,
            list: std::ptr::null_mut(),
        }
    }
    pub const fn integer(v: i64) -> Self {
        let mut x = Self::none();
        x.kind = MAILEXT_KIND_INTEGER;
        x.integer = v;
        x
    }
    pub const fn boolean(v: i64) -> Self {
        let mut x = Self::none();
        x.kind = MAILEXT_KIND_BOOLEAN;
        x.integer = v;
        x
    }
    /// Borrows `bytes`: the value must not outlive them.
    pub fn bytes(kind: u32, bytes: &[u8]) -> Self {
        let mut x = Self::none();
        x.kind = kind;
        x.data = bytes.as_ptr();
        x.len = bytes.len();
        x
    }
    pub fn list(handle: *mut c_void) -> Self {
        let mut x = Self::none();
        x.kind = MAILEXT_KIND_LIST;
        x.list = handle;
        x
    }
}

/// The handshake rule both sides apply: the majors must be equal. Minors may
/// differ (fields are appended; each side reads `struct_size`).
pub fn abi_compatible(other_major: u32) -> bool {
    other_major == MAILEXT_ABI_MAJOR
}

/// Writes `text` snprintf-style (see [`MailextTextFn`]).
///
/// # Safety
/// `buf` must be NULL or valid for `cap` bytes.
pub unsafe fn write_text(text: &str, buf: *mut c_char, cap: usize) -> usize {
    if !buf.is_null() && cap > 0 {
        let mut n = text.len().min(cap - 1);
        // Never cut a UTF-8 sequence in half.
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf as *mut u8, n);
        *buf.add(n) = 0;
    }
    text.len()
}
