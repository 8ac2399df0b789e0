//! Networking: server addresses, the I/O thread, TLS, and the caller-side
//! connection that the protocol driver uses as its transport.

pub mod address;
pub mod connection;
pub mod eyeballs;
pub mod proxy;
pub mod reactor;
pub mod tls;
pub mod trust;
