//! One call from the host, seen safely: arguments checked against the
//! command table (count, kinds, pointers) before any command code runs, and
//! the host's callbacks wrapped so commands never touch raw pointers.

use crate::error::MailError;
use crate::imap::driver::Observer;
use plugin_abi::*;
use std::ffi::{c_void, CStr};

/// A host list handle, only obtainable from a checked List argument.
#[derive(Clone, Copy)]
pub struct ListHandle(*mut c_void);

/// A typed, checked view of one call.
pub struct HostCall<'a> {
    args: Vec<MailextValue>,
    cb: &'a MailextHostCallbacks,
    params: &'static [MailextParam],
    stsproc: Option<String>,
}

fn param_name(p: &MailextParam) -> String {
    // SAFETY: table names are static C strings.
    unsafe { CStr::from_ptr(p.name) }
        .to_string_lossy()
        .into_owned()
}

fn kinds_text(kinds: u32) -> String {
    let names = [
        (MAILEXT_KIND_INTEGER, "Integer"),
        (MAILEXT_KIND_BOOLEAN, "Boolean"),
        (MAILEXT_KIND_CHARACTER, "Character"),
        (MAILEXT_KIND_BINARY, "Binary"),
        (MAILEXT_KIND_LIST, "List"),
        (MAILEXT_KIND_PROC, "method name"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(k, _)| kinds & k != 0)
        .map(|(_, n)| *n)
        .collect();
    v.join(" or ")
}

impl<'a> HostCall<'a> {
    /// Copies the argument array (strided by the host's struct size) and
    /// checks it against the parameter table.
    ///
    /// # Safety
    /// `args` must be NULL or point to `argc` values as the ABI describes.
    pub unsafe fn new(
        args: *const MailextValue,
        argc: u32,
        cb: &'a MailextHostCallbacks,
        params: &'static [MailextParam],
    ) -> Result<Self, MailError> {
        if argc as usize > params.len() {
            return Err(MailError::ParamCount(format!(
                "{argc} given, at most {} accepted",
                params.len()
            )));
        }
        if argc > 0 && args.is_null() {
            return Err(MailError::ParamInfo("the argument array is NULL".into()));
        }
        let mut values = Vec::with_capacity(argc as usize);
        let stride = if argc > 0 {
            (*args).struct_size as usize
        } else {
            0
        };
        if argc > 0 && stride < std::mem::size_of::<MailextValue>() {
            return Err(MailError::ParamInfo(format!(
                "argument struct_size {stride} is too small"
            )));
        }
        for (i, p) in params.iter().enumerate().take(argc as usize) {
            let v = *((args as *const u8).add(i * stride) as *const MailextValue);
            // Only an error names the parameter: no allocation per argument.
            let name = || param_name(p);
            if v.kind != MAILEXT_KIND_NONE && v.kind & p.kinds != v.kind {
                return Err(MailError::ParamType(format!(
                    "argument {} ({}) must be {}",
                    i + 1,
                    name(),
                    kinds_text(p.kinds)
                )));
            }
            if v.kind & (MAILEXT_KIND_CHARACTER | MAILEXT_KIND_BINARY | MAILEXT_KIND_PROC) != 0
                && v.data.is_null()
                && v.len > 0
            {
                return Err(MailError::ParamInfo(format!(
                    "argument {} ({}) has NULL data",
                    i + 1,
                    name()
                )));
            }
            if v.kind == MAILEXT_KIND_LIST && v.list.is_null() {
                return Err(MailError::ParamInfo(format!(
                    "argument {} ({}) is a NULL list",
                    i + 1,
                    name()
                )));
            }
            values.push(v);
        }
        for (i, p) in params.iter().enumerate() {
            let given = values.get(i).is_some_and(|v| v.kind != MAILEXT_KIND_NONE);
            if p.flags & MAILEXT_PARAM_OPTIONAL == 0 && !given {
                return Err(MailError::ParamCount(format!(
                    "argument {} ({}) is required",
                    i + 1,
                    param_name(p)
                )));
            }
        }
        let mut call = HostCall {
            args: values,
            cb,
            params,
            stsproc: None,
        };
        if let Some(i) = params.iter().position(|p| p.kinds & MAILEXT_KIND_PROC != 0) {
            call.stsproc = call.string(i)?.filter(|s| !s.is_empty());
        }
        Ok(call)
    }

    fn given(&self, i: usize) -> Option<&MailextValue> {
        self.args.get(i).filter(|v| v.kind != MAILEXT_KIND_NONE)
    }

    fn name(&self, i: usize) -> String {
        format!("argument {} ({})", i + 1, param_name(&self.params[i]))
    }

    fn bytes(&self, v: &MailextValue) -> &[u8] {
        if v.len == 0 {
            &[]
        } else {
            // SAFETY: checked non-NULL in `new`; the host keeps it valid for the call.
            unsafe { std::slice::from_raw_parts(v.data, v.len) }
        }
    }

    /// A Character (or method name) argument.
    pub fn string(&self, i: usize) -> Result<Option<String>, MailError> {
        let Some(v) = self.given(i) else {
            return Ok(None);
        };
        if v.kind & (MAILEXT_KIND_CHARACTER | MAILEXT_KIND_PROC) == 0 {
            return Err(MailError::ParamType(format!(
                "{} must be Character",
                self.name(i)
            )));
        }
        String::from_utf8(self.bytes(v).to_vec())
            .map(Some)
            .map_err(|_| MailError::ParamType(format!("{} is not valid UTF-8", self.name(i))))
    }

    /// An Integer argument; a Boolean counts as 0 / 1.
    pub fn integer(&self, i: usize) -> Result<Option<i64>, MailError> {
        let Some(v) = self.given(i) else {
            return Ok(None);
        };
        match (v.kind, v.integer) {
            (MAILEXT_KIND_INTEGER, n) => Ok(Some(n)),
            (MAILEXT_KIND_BOOLEAN, MAILEXT_FALSE) => Ok(Some(0)),
            (MAILEXT_KIND_BOOLEAN, MAILEXT_TRUE) => Ok(Some(1)),
            (MAILEXT_KIND_BOOLEAN, _) => Err(MailError::BadValue(format!(
                "{} cannot be kUnknown",
                self.name(i)
            ))),
            _ => Err(MailError::ParamType(format!(
                "{} must be Integer",
                self.name(i)
            ))),
        }
    }

    /// A Boolean argument (Integer 0 / 1 accepted); None when not given.
    pub fn boolean(&self, i: usize) -> Result<Option<i64>, MailError> {
        let Some(v) = self.given(i) else {
            return Ok(None);
        };
        match (v.kind, v.integer) {
            (MAILEXT_KIND_BOOLEAN, b @ (MAILEXT_FALSE | MAILEXT_TRUE | MAILEXT_UNKNOWN)) => {
                Ok(Some(b))
            }
            (MAILEXT_KIND_INTEGER, b @ (0 | 1)) => Ok(Some(b)),
            (MAILEXT_KIND_BOOLEAN | MAILEXT_KIND_INTEGER, n) => Err(MailError::BadValue(format!(
                "{} must be kTrue or kFalse, not {n}",
                self.name(i)
            ))),
            _ => Err(MailError::ParamType(format!(
                "{} must be Boolean",
                self.name(i)
            ))),
        }
    }

    /// The index of the parameter called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        // SAFETY: table names are static C strings. Compared in place: no
        // String per parameter.
        self.params
            .iter()
            .position(|p| unsafe { CStr::from_ptr(p.name) }.to_bytes() == name.as_bytes())
    }

    /// The response list, wherever the command has it.
    pub fn responses(&self) -> Option<ListHandle> {
        self.index_of("responselist").and_then(|i| self.list(i))
    }

    /// A Character or Binary argument as bytes (message data).
    pub fn data(&self, i: usize) -> Result<Option<Vec<u8>>, MailError> {
        let Some(v) = self.given(i) else {
            return Ok(None);
        };
        if v.kind & (MAILEXT_KIND_CHARACTER | MAILEXT_KIND_BINARY) == 0 {
            return Err(MailError::ParamType(format!(
                "{} must be Character or Binary",
                self.name(i)
            )));
        }
        Ok(Some(self.bytes(v).to_vec()))
    }

    /// The kind the host passed for argument `i` (NONE when not given).
    pub fn kind(&self, i: usize) -> u32 {
        self.given(i).map_or(MAILEXT_KIND_NONE, |v| v.kind)
    }

    /// A list argument's handle.
    pub fn list(&self, i: usize) -> Option<ListHandle> {
        self.given(i)
            .filter(|v| v.kind == MAILEXT_KIND_LIST)
            .map(|v| ListHandle(v.list))
    }

    pub fn set_return(&self, v: &MailextValue) -> i32 {
        match self.cb.set_return {
            // SAFETY: the host gave us this callback for this call.
            Some(f) => unsafe { f(self.cb.ctx, v) },
            None => MAILEXT_ERR_PARAM_INFO,
        }
    }

    pub fn set_output(&self, i: usize, v: &MailextValue) -> Result<(), MailError> {
        let f = self
            .cb
            .set_output
            .ok_or_else(|| MailError::ParamInfo("the host has no set_output".into()))?;
        match unsafe { f(self.cb.ctx, i as u32, v) } {
            MAILEXT_OK => Ok(()),
            rc => Err(MailError::BadList(format!(
                "the host refused {} ({rc})",
                self.name(i)
            ))),
        }
    }

    /// Whether the host can take an out-argument in pieces (ABI 1.2).
    pub fn can_append_output(&self) -> bool {
        self.cb.append_output.is_some()
    }

    /// Appends `bytes` to out-argument `i`, which `set_output` set in this
    /// call with the same `kind`; `total` is the length it will reach.
    pub fn append_output(
        &self,
        i: usize,
        kind: u32,
        bytes: &[u8],
        total: u64,
    ) -> Result<(), MailError> {
        let f = self
            .cb
            .append_output
            .ok_or_else(|| MailError::ParamInfo("the host has no append_output".into()))?;
        let mut v = MailextValue::bytes(kind, bytes);
        v.integer = i64::try_from(total).unwrap_or(i64::MAX);
        // SAFETY: the host gave us this callback for this call; `v` borrows
        // `bytes` only until it returns.
        match unsafe { f(self.cb.ctx, i as u32, &v) } {
            MAILEXT_OK => Ok(()),
            rc => Err(MailError::BadList(format!(
                "the host refused more of {} (append_output returned {rc})",
                self.name(i)
            ))),
        }
    }

    /// Clears `list` and gives it these (name, kind) columns.
    pub fn define_list(
        &self,
        list: ListHandle,
        columns: &[(&'static CStr, u32)],
    ) -> Result<(), MailError> {
        let f = self
            .cb
            .list_define
            .ok_or_else(|| MailError::BadList("the host has no list_define".into()))?;
        let cols: Vec<MailextColumn> = columns
            .iter()
            .map(|(n, k)| MailextColumn {
                struct_size: std::mem::size_of::<MailextColumn>() as u32,
                kind: *k,
                name: n.as_ptr(),
            })
            .collect();
        match unsafe { f(self.cb.ctx, list.0, cols.as_ptr(), cols.len() as u32) } {
            MAILEXT_OK => Ok(()),
            rc => Err(MailError::BadList(format!(
                "the host could not define the list ({rc})"
            ))),
        }
    }

    pub fn append_row(&self, list: ListHandle, cells: &[MailextValue]) -> Result<(), MailError> {
        let f = self
            .cb
            .list_append
            .ok_or_else(|| MailError::BadList("the host has no list_append".into()))?;
        match unsafe { f(self.cb.ctx, list.0, cells.as_ptr(), cells.len() as u32) } {
            MAILEXT_OK => Ok(()),
            rc => Err(MailError::BadList(format!(
                "the host refused a list row ({rc})"
            ))),
        }
    }

    pub fn has_stsproc(&self) -> bool {
        self.stsproc.is_some() && self.cb.status.is_some()
    }

    /// Sends a status message to the stsproc, if one was given.
    pub fn status(&self, message: &str) {
        if let (Some(p), Some(f)) = (&self.stsproc, self.cb.status) {
            unsafe {
                f(
                    self.cb.ctx,
                    p.as_ptr(),
                    p.len(),
                    message.as_ptr(),
                    message.len(),
                )
            };
        }
    }
}

impl HostCall<'_> {
    /// Delivers one event to `proc_name` on this (the calling) thread.
    pub fn event(&self, proc_name: &str, socket: i64, e: &crate::events::MailEvent) {
        if let Some(f) = self.cb.event {
            let raw = MailextEvent {
                struct_size: std::mem::size_of::<MailextEvent>() as u32,
                kind: e.kind.abi(),
                socket,
                code: e.code,
                done: e.done,
                total: e.total,
                text: e.text.as_ptr(),
                text_len: e.text.len(),
            };
            // SAFETY: the host's callback, during the call, on its thread.
            unsafe { f(self.cb.ctx, proc_name.as_ptr(), proc_name.len(), &raw) };
        } else if let Some(f) = self.cb.status {
            let m = e.as_status(socket);
            unsafe {
                f(
                    self.cb.ctx,
                    proc_name.as_ptr(),
                    proc_name.len(),
                    m.as_ptr(),
                    m.len(),
                )
            };
        }
    }
}

/// Feeds a command's progress to the host: status messages to the stsproc
/// and response lines to the response list (cleared first).
pub struct CommandObserver<'c, 'a> {
    call: &'c HostCall<'a>,
    list: Option<ListHandle>,
    list_failed: bool,
    /// The socket's event proc and id, when it has one.
    events: Option<(String, i64)>,
}

impl<'c, 'a> CommandObserver<'c, 'a> {
    pub fn new(call: &'c HostCall<'a>, list: Option<ListHandle>) -> Result<Self, MailError> {
        if let Some(l) = list {
            call.define_list(l, &[(c"response", MAILEXT_KIND_CHARACTER)])?;
        }
        Ok(CommandObserver {
            call,
            list,
            list_failed: false,
            events: None,
        })
    }

    /// Sends events to `proc_name` for socket `id` (no-op for None).
    pub fn with_events(mut self, proc_name: Option<String>, id: i64) -> Self {
        self.events = proc_name.map(|p| (p, id));
        self
    }

    pub fn call(&self) -> &HostCall<'a> {
        self.call
    }
}

impl Observer for CommandObserver<'_, '_> {
    fn status(&mut self, message: &str) {
        self.call.status(message);
    }

    fn wants_events(&self) -> bool {
        self.events.is_some()
    }

    fn wants_lines(&self) -> bool {
        self.call.has_stsproc() || (self.list.is_some() && !self.list_failed)
    }

    fn event(&mut self, e: crate::events::MailEvent) {
        if let Some((p, id)) = &self.events {
            self.call.event(p, *id, &e);
        }
    }

    fn response(&mut self, line: &str) {
        if let (Some(l), false) = (self.list, self.list_failed) {
            let cell = MailextValue::bytes(MAILEXT_KIND_CHARACTER, line.as_bytes());
            if self.call.append_row(l, &[cell]).is_err() {
                // Keep the protocol going; the caller learns of it in the status.
                self.list_failed = true;
                self.call
                    .status("The host refused a response list row; the rest are not stored");
            }
        }
    }
}
