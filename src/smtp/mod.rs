//! SMTP protocol logic: replies in, commands out, no I/O (the driver in
//! `session` runs an operation over a `Transport`).

pub mod connect;
pub mod mime;
pub mod reply;
pub mod send;
pub mod session;

#[cfg(test)]
mod transcript;
