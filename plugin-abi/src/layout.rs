//! The ABI described as data: every struct's size, every field's offset and
//! every constant. The header test compiles `include/mailext.h` into a C
//! program that prints the same facts and fails on any difference, so the
//! header cannot drift from these Rust definitions.

use crate::*;
use std::mem::{offset_of, size_of};

/// (struct name, size, [(field, offset)]).
pub type StructLayout = (&'static str, usize, Vec<(&'static str, usize)>);

macro_rules! layout {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        (stringify!($ty), size_of::<$ty>(), vec![$((stringify!($field), offset_of!($ty, $field))),*])
    };
}

pub fn structs() -> Vec<StructLayout> {
    vec![
        layout!(MailextValue {
            struct_size,
            kind,
            integer,
            data,
            len,
            list
        }),
        layout!(MailextColumn {
            struct_size,
            kind,
            name
        }),
        layout!(MailextParam {
            struct_size,
            kinds,
            flags,
            _reserved,
            name,
            default_text,
            description
        }),
        layout!(MailextCommand {
            struct_size,
            flags,
            return_kind,
            param_count,
            name,
            params,
            summary
        }),
        layout!(MailextHostCallbacks {
            struct_size,
            _reserved,
            ctx,
            set_return,
            set_output,
            list_define,
            list_append,
            status,
            event,
            append_output
        }),
        layout!(MailextEvent {
            struct_size,
            kind,
            socket,
            code,
            done,
            total,
            text,
            text_len
        }),
        layout!(MailextHostInfo {
            struct_size,
            abi_major,
            abi_minor,
            _reserved,
            host_name
        }),
        layout!(MailextPlugin {
            struct_size,
            abi_major,
            abi_minor,
            command_count,
            name,
            version,
            commands,
            call,
            error_text,
            last_error
        }),
    ]
}

macro_rules! constants {
    ($($name:ident),* $(,)?) => { vec![$((stringify!($name), $name as i64)),*] };
}

pub fn constants() -> Vec<(&'static str, i64)> {
    constants!(
        MAILEXT_ABI_MAJOR,
        MAILEXT_ABI_MINOR,
        MAILEXT_KIND_NONE,
        MAILEXT_KIND_INTEGER,
        MAILEXT_KIND_BOOLEAN,
        MAILEXT_KIND_CHARACTER,
        MAILEXT_KIND_BINARY,
        MAILEXT_KIND_LIST,
        MAILEXT_KIND_PROC,
        MAILEXT_FALSE,
        MAILEXT_TRUE,
        MAILEXT_UNKNOWN,
        MAILEXT_EVENT_CONNECT,
        MAILEXT_EVENT_DISCONNECT,
        MAILEXT_EVENT_TIMEOUT,
        MAILEXT_EVENT_CANCEL,
        MAILEXT_EVENT_COMMAND,
        MAILEXT_EVENT_PROGRESS,
        MAILEXT_EVENT_UPDATE,
        MAILEXT_PARAM_IN,
        MAILEXT_PARAM_OUT,
        MAILEXT_PARAM_OPTIONAL,
        MAILEXT_COMMAND_MULTITHREADED,
        MAILEXT_OK,
        MAILEXT_ERR_PARAM_TYPE,
        MAILEXT_ERR_PARAM_INFO,
        MAILEXT_ERR_PARAM_COUNT,
        MAILEXT_ERR_UNKNOWN_COMMAND,
        MAILEXT_ERR_BAD_LIST,
        MAILEXT_ERR_INTERNAL,
        MAILEXT_ERR_ABI_VERSION,
    )
}

/// The function-pointer typedefs and the entry symbol the header must declare.
pub const DECLARATIONS: &[&str] = &[
    "MailextCallFn",
    "MailextTextFn",
    "MailextEntryFn",
    "mailext_entry",
];
