//! Process-wide settings, set with MailSetConfig (Omnis' WebDevSetConfig
//! commstimeout is the model: 0 means the default).

use crate::error::MailError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const DEFAULT_COMMS_TIMEOUT_SECS: u64 = 60;
/// A day: longer is certainly a mistake in the caller's units.
pub const MAX_COMMS_TIMEOUT_SECS: u64 = 86_400;

static COMMS_TIMEOUT_SECS: AtomicU64 = AtomicU64::new(DEFAULT_COMMS_TIMEOUT_SECS);

/// The bound on every network wait.
pub fn comms_timeout() -> Duration {
    Duration::from_secs(COMMS_TIMEOUT_SECS.load(Ordering::Relaxed))
}

/// The settings MailSetConfig / MailGetConfig know.
pub const NAMES: &[&str] = &["commstimeout"];

pub fn set(name: &str, value: i64) -> Result<(), MailError> {
    match name.to_ascii_lowercase().as_str() {
        "commstimeout" => {
            let secs = match value {
                0 => DEFAULT_COMMS_TIMEOUT_SECS,
                v if v < 0 || v as u64 > MAX_COMMS_TIMEOUT_SECS => {
                    return Err(MailError::BadValue(format!(
                        "commstimeout must be 0 (default) to {MAX_COMMS_TIMEOUT_SECS} seconds, not {v}"
                    )))
                }
                v => v as u64,
            };
            COMMS_TIMEOUT_SECS.store(secs, Ordering::Relaxed);
            Ok(())
        }
        _ => Err(unknown(name)),
    }
}

pub fn get(name: &str) -> Result<i64, MailError> {
    match name.to_ascii_lowercase().as_str() {
        "commstimeout" => Ok(COMMS_TIMEOUT_SECS.load(Ordering::Relaxed) as i64),
        _ => Err(unknown(name)),
    }
}

fn unknown(name: &str) -> MailError {
    MailError::BadValue(format!(
        "unknown setting {name:?}; known: {}",
        NAMES.join(", ")
    ))
}
