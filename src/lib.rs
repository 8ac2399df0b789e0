//! mailext: IMAP (and later SMTP) commands for 4GL hosts, loaded as a
//! plugin through the C ABI in `plugin-abi`.
//!
//! Layers, outermost first: `ffi` (the exported ABI, panic boundary) ->
//! `commands` (the table and one function per command, on the caller's
//! thread) -> `imap` (protocol logic without I/O) and `net` (the mio I/O
//! thread, TLS, addresses).

pub mod commands;
pub mod config;
pub mod error;
pub mod events;
pub mod ffi;
pub mod host_call;
pub mod imap;
pub mod net;
pub mod options;
pub mod smtp;
pub mod socket_table;
