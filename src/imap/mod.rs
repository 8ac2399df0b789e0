//! IMAP protocol logic: bytes and responses in, commands and events out.
//! Nothing here does I/O or reads the clock; see `driver` for the loop.

pub mod auth;
pub mod codec;
pub mod connect;
pub mod driver;
pub mod session;
pub mod simple;

#[cfg(test)]
mod transcript;
