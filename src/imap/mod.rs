//! IMAP protocol logic: bytes and responses in, commands and events out.
//! Nothing here does I/O or reads the clock; see `driver` for the loop.

pub mod auth;
pub mod body_stream;
pub mod codec;
pub mod connect;
pub mod driver;
pub mod family;
pub mod fragmentizer;
pub mod mutf7;
pub mod sasl;
pub mod session;
pub mod simple;
pub mod values;

#[cfg(test)]
pub(crate) mod transcript;
