//! IMAPRecvMessage and IMAPRecvHeaders: one message's bytes by UID into an
//! out-argument. A large body goes to a host that can take it in pieces
//! (ABI 1.2 `append_output`) as it arrives, so the plugin never holds it.

use super::family::{fetch_items_with, item, uid_arg};
use super::imap::on_socket;
use super::Ret;
use crate::error::MailError;
use crate::host_call::HostCall;
use crate::imap::body_stream::{BodySink, BodyStreamOp, Fetched, StreamedBody};
use crate::imap::family::{Batch, BatchOp, Needs};
use crate::imap::session::CommandLine;
use crate::imap::values::{parse_in_place, Value};
use plugin_abi::*;
use std::borrow::Cow;

/// The out-argument that receives the bytes.
const OUT: usize = 2;

pub fn recv_message(call: &HostCall) -> Result<Ret, MailError> {
    receive(call, "")
}

pub fn recv_headers(call: &HostCall) -> Result<Ret, MailError> {
    receive(call, "HEADER")
}

/// Appends a streamed body to the host's out-argument.
struct HostBody<'c, 'h> {
    call: &'c HostCall<'h>,
    size: u64,
    /// The out-argument was set: unless the command succeeds, it is
    /// emptied again when this is dropped (a panic included).
    begun: bool,
    succeeded: bool,
}

impl Drop for HostBody<'_, '_> {
    fn drop(&mut self) {
        if self.begun && !self.succeeded {
            // No half-written message: empty, as if nothing came.
            let _ = self
                .call
                .set_output(OUT, &MailextValue::bytes(MAILEXT_KIND_BINARY, &[]));
        }
    }
}

impl BodySink for HostBody<'_, '_> {
    fn begin(&mut self, size: u64) -> Result<(), MailError> {
        self.size = size;
        self.begun = true;
        self.call
            .set_output(OUT, &MailextValue::bytes(MAILEXT_KIND_BINARY, &[]))
    }

    fn piece(&mut self, bytes: &[u8]) -> Result<(), MailError> {
        self.call
            .append_output(OUT, MAILEXT_KIND_BINARY, bytes, self.size)
    }
}

fn receive(call: &HostCall, section: &str) -> Result<Ret, MailError> {
    let uid = uid_arg(call)?;
    let line = CommandLine::new("UID FETCH").raw(&format!("{uid} (UID BODY.PEEK[{section}])"));
    let op = BatchOp::new(format!("UID FETCH {uid}"), Needs::Selected, vec![line]);
    let key = format!("BODY[{section}]");
    // Character needs the whole body checked as UTF-8 before its kind is
    // known, so only Binary is streamed.
    let text_wanted = call.kind(OUT) == MAILEXT_KIND_CHARACTER;
    if text_wanted || !call.can_append_output() {
        let b = on_socket(call, op)?;
        return deliver(call, uid, &key, &b, None);
    }
    let mut sink = HostBody {
        call,
        size: 0,
        begun: false,
        succeeded: false,
    };
    let r = on_socket(call, BodyStreamOp::new(op, uid, &key, &mut sink));
    let delivered = r.and_then(|f: Fetched| match f.refused {
        Some(e) => Err(e),
        None => deliver(call, uid, &key, &f.batch, f.streamed),
    });
    sink.succeeded = delivered.is_ok();
    delivered
}

/// Sets the out-argument from the batch's frame for `uid`, unless its body
/// was streamed there already.
fn deliver(
    call: &HostCall,
    uid: u32,
    key: &str,
    b: &Batch,
    streamed: Option<StreamedBody>,
) -> Result<Ret, MailError> {
    let (frame, bytes) = find_body(b, uid, key).ok_or_else(|| {
        MailError::NoSuchMessage(format!("UID {uid} is not in the selected mailbox"))
    })?;
    if streamed.is_some_and(|s| s.frame == frame) {
        return Ok(Ret::Integer(0));
    }
    // Character when the host asked for it and the bytes are text; else the exact bytes.
    let text = call.kind(OUT) == MAILEXT_KIND_CHARACTER && std::str::from_utf8(&bytes).is_ok();
    let value = match text {
        true => MailextValue::bytes(MAILEXT_KIND_CHARACTER, &bytes),
        false => MailextValue::bytes(MAILEXT_KIND_BINARY, &bytes),
    };
    call.set_output(OUT, &value)?;
    Ok(Ret::Integer(0))
}

/// The data frame that holds `uid`'s `key` item, and that item's bytes.
/// The body stays in the frame it arrived in: the host copies it from there.
fn find_body<'b>(b: &'b Batch, uid: u32, key: &str) -> Option<(usize, Cow<'b, [u8]>)> {
    b.data
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| Some((i, raw, fetch_items_with(raw, parse_in_place)?.1)))
        .filter(|(_, _, p)| item(p, "UID").and_then(Value::as_u64) == Some(uid as u64))
        // Unsolicited updates for the same UID may come first: take the one with the body.
        .find_map(|(i, raw, p)| {
            let v = p.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v)?;
            Some((
                i,
                match v {
                    Value::Span(start, end) => Cow::Borrowed(&raw[start..end]),
                    Value::Nil => Cow::Borrowed(&[][..]),
                    v => Cow::Owned(v.into_bytes().unwrap_or_default()),
                },
            ))
        })
}
