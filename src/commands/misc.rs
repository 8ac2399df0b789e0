//! Commands that do not touch the network: error texts and settings.

use super::Ret;
use crate::config;
use crate::error::{error_text as text_for, last_error as last, MailError};
use crate::host_call::HostCall;

pub fn error_text(call: &HostCall) -> Result<Ret, MailError> {
    let code = call.integer(0)?.unwrap_or_default();
    let code = i32::try_from(code).unwrap_or(i32::MIN);
    Ok(Ret::Character(text_for(code)))
}

pub fn last_error(_call: &HostCall) -> Result<Ret, MailError> {
    Ok(Ret::Character(last()))
}

pub fn set_config(call: &HostCall) -> Result<Ret, MailError> {
    let name = call.string(0)?.unwrap_or_default();
    let value = if call.kind(1) & plugin_abi::MAILEXT_KIND_CHARACTER != 0 {
        config::Value::Text(call.string(1)?.unwrap_or_default())
    } else {
        config::Value::Integer(call.integer(1)?.unwrap_or_default())
    };
    config::set(&name, value).map(|_| Ret::Integer(0))
}

pub fn get_config(call: &HostCall) -> Result<Ret, MailError> {
    let name = call.string(0)?.unwrap_or_default();
    Ok(match config::get(&name)? {
        config::Value::Integer(n) => Ret::Integer(n),
        config::Value::Text(t) => Ret::Character(t),
    })
}
