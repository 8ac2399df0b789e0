//! The host side of the ABI: loads a plugin with libloading, performs the
//! handshake, copies the command table, and makes calls with host-owned
//! values and lists. `mailext-host` and the integration tests use it the way
//! a 4GL host would.

use crate::*;
use std::collections::HashSet;
use std::ffi::{c_void, CStr};
use std::path::Path;

/// A value as the host keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum HostValue {
    None,
    Integer(i64),
    Boolean(Tri),
    Character(String),
    Binary(#[serde(serialize_with = "ser_binary")] Vec<u8>),
    List(List),
    Proc(String),
}

/// The 4GL three-valued Boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Tri {
    #[serde(rename = "kFalse")]
    False,
    #[serde(rename = "kTrue")]
    True,
    #[serde(rename = "kUnknown")]
    Unknown,
}

fn ser_binary<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("<binary {} bytes>", b.len()))
}

/// A host-owned list: named, typed columns and rows of cells.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct List {
    pub columns: Vec<(String, u32)>,
    pub rows: Vec<Vec<HostValue>>,
}

#[derive(Debug, Clone)]
pub struct ParamInfo {
    pub name: String,
    pub kinds: u32,
    pub flags: u32,
    pub default: Option<String>,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct CommandInfo {
    pub name: String,
    pub flags: u32,
    pub return_kind: u32,
    pub params: Vec<ParamInfo>,
    pub summary: String,
}

/// One status message, with the stsproc it was addressed to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatusMessage {
    pub proc_name: String,
    pub message: String,
}

/// One event, with the event proc it was addressed to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventMessage {
    pub proc_name: String,
    pub kind: &'static str,
    pub socket: i64,
    pub code: i64,
    pub done: i64,
    pub total: i64,
    pub text: String,
}

/// The name of a `MAILEXT_EVENT_*` kind.
pub fn event_name(kind: u32) -> &'static str {
    match kind {
        MAILEXT_EVENT_CONNECT => "CONNECT",
        MAILEXT_EVENT_DISCONNECT => "DISCONNECT",
        MAILEXT_EVENT_TIMEOUT => "TIMEOUT",
        MAILEXT_EVENT_CANCEL => "CANCEL",
        MAILEXT_EVENT_COMMAND => "COMMAND",
        MAILEXT_EVENT_PROGRESS => "PROGRESS",
        MAILEXT_EVENT_UPDATE => "UPDATE",
        _ => "UNKNOWN",
    }
}

/// What one call produced besides the lists it filled in place.
#[derive(Debug, Clone, Default)]
pub struct CallOutcome {
    pub ret: Option<HostValue>,
    /// (argument index, value) in the order the plugin wrote them. The
    /// last value written to an argument is moved into `args` (a 50 MB
    /// message is not held twice); its entry here is `HostValue::None`.
    pub outputs: Vec<(u32, HostValue)>,
    pub status: Vec<StatusMessage>,
    pub events: Vec<EventMessage>,
    /// A protocol error the host noticed in what the plugin passed back.
    pub host_error: Option<String>,
}

impl CallOutcome {
    /// The return value as an integer (socket ids, status codes).
    pub fn code(&self) -> i64 {
        match self.ret {
            Some(HostValue::Integer(v)) => v,
            _ => i64::MIN,
        }
    }
}

#[derive(Debug)]
pub enum LoadError {
    Library(String),
    Symbol(String),
    Refused(String),
    Incompatible(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Library(s) => write!(f, "cannot load the plugin library: {s}"),
            LoadError::Symbol(s) => write!(f, "not a mailext plugin (no entry symbol): {s}"),
            LoadError::Refused(s) => write!(f, "the plugin refused this host: {s}"),
            LoadError::Incompatible(s) => write!(f, "this host refuses the plugin: {s}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// A loaded, handshaken plugin.
pub struct Plugin {
    api: *const MailextPlugin,
    pub name: String,
    pub version: String,
    pub abi: (u32, u32),
    pub commands: Vec<CommandInfo>,
    /// The `MailextHostCallbacks` size this host passes: that of the minor
    /// version it was loaded as, so a test can act as an older host.
    callbacks_size: u32,
    // Dropped last: `api` points into it.
    _lib: libloading::Library,
}

// The plugin's API table is immutable and its functions are thread-safe by contract.
unsafe impl Send for Plugin {}
unsafe impl Sync for Plugin {}

/// # Safety
/// `p` must be NULL or a NUL-terminated string.
unsafe fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Size of `MailextHostCallbacks` as a host built for ABI 1.`minor` has it.
fn callbacks_size(minor: u32) -> usize {
    use std::mem::offset_of;
    match minor {
        0 => offset_of!(MailextHostCallbacks, event),
        1 => offset_of!(MailextHostCallbacks, append_output),
        _ => std::mem::size_of::<MailextHostCallbacks>(),
    }
}

impl Plugin {
    /// Loads the plugin at `path` with this host's ABI version.
    pub fn load(path: &Path) -> Result<Plugin, LoadError> {
        Self::load_as(path, MAILEXT_ABI_MAJOR, MAILEXT_ABI_MINOR)
    }

    /// Loads claiming another ABI version (to test the plugin's refusal).
    pub fn load_as(path: &Path, major: u32, minor: u32) -> Result<Plugin, LoadError> {
        // SAFETY: loading a library runs its initialisers; mailext's are trivial.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| LoadError::Library(format!("{}: {e}", path.display())))?;
        let entry: MailextEntryFn = unsafe {
            *lib.get::<MailextEntryFn>(MAILEXT_ENTRY_SYMBOL.as_bytes())
                .map_err(|e| LoadError::Symbol(e.to_string()))?
        };
        let info = MailextHostInfo {
            struct_size: std::mem::size_of::<MailextHostInfo>() as u32,
            abi_major: major,
            abi_minor: minor,
            _reserved: 0,
            host_name: c"mailext-host".as_ptr(),
        };
        let mut refusal: *const c_char = std::ptr::null();
        let api = unsafe { entry(&info, &mut refusal) };
        if api.is_null() {
            let why = unsafe { cstr(refusal) };
            return Err(LoadError::Refused(if why.is_empty() {
                "no reason given".into()
            } else {
                why
            }));
        }
        let p = unsafe { &*api };
        let min = std::mem::offset_of!(MailextPlugin, last_error) + std::mem::size_of::<usize>();
        if !abi_compatible(p.abi_major) || (p.struct_size as usize) < min {
            return Err(LoadError::Incompatible(format!(
                "plugin speaks ABI {}.{}, this host needs {}.x",
                p.abi_major, p.abi_minor, MAILEXT_ABI_MAJOR
            )));
        }
        let mut commands = Vec::new();
        for i in 0..p.command_count as usize {
            // Strided by struct_size so a newer plugin's longer structs still read.
            let c = unsafe {
                &*((p.commands as *const u8).add(i * (*p.commands).struct_size as usize)
                    as *const MailextCommand)
            };
            let mut params = Vec::new();
            for j in 0..c.param_count as usize {
                let q = unsafe {
                    &*((c.params as *const u8).add(j * (*c.params).struct_size as usize)
                        as *const MailextParam)
                };
                params.push(ParamInfo {
                    name: unsafe { cstr(q.name) },
                    kinds: q.kinds,
                    flags: q.flags,
                    default: (!q.default_text.is_null()).then(|| unsafe { cstr(q.default_text) }),
                    description: unsafe { cstr(q.description) },
                });
            }
            commands.push(CommandInfo {
                name: unsafe { cstr(c.name) },
                flags: c.flags,
                return_kind: c.return_kind,
                params,
                summary: unsafe { cstr(c.summary) },
            });
        }
        Ok(Plugin {
            api,
            name: unsafe { cstr(p.name) },
            version: unsafe { cstr(p.version) },
            abi: (p.abi_major, p.abi_minor),
            commands,
            callbacks_size: callbacks_size(minor) as u32,
            _lib: lib,
        })
    }

    pub fn command(&self, name: &str) -> Option<(u32, &CommandInfo)> {
        self.commands
            .iter()
            .enumerate()
            .find(|(_, c)| c.name.eq_ignore_ascii_case(name))
            .map(|(i, c)| (i as u32, c))
    }

    /// Calls command `name`. Lists among `args` are filled in place; outputs
    /// are reported in the outcome (and also written back into `args`).
    pub fn call(&self, name: &str, args: &mut [HostValue]) -> CallOutcome {
        match self.command(name) {
            Some((index, _)) => self.call_index(index, args),
            None => CallOutcome {
                ret: Some(HostValue::Integer(MAILEXT_ERR_UNKNOWN_COMMAND as i64)),
                ..CallOutcome::default()
            },
        }
    }

    pub fn call_index(&self, index: u32, args: &mut [HostValue]) -> CallOutcome {
        let mut lists: HashSet<usize> = HashSet::new();
        let raw: Vec<MailextValue> = args
            .iter_mut()
            .map(|a| match a {
                HostValue::None => MailextValue::none(),
                HostValue::Integer(v) => MailextValue::integer(*v),
                HostValue::Boolean(t) => MailextValue::boolean(match t {
                    Tri::False => MAILEXT_FALSE,
                    Tri::True => MAILEXT_TRUE,
                    Tri::Unknown => MAILEXT_UNKNOWN,
                }),
                HostValue::Character(s) => {
                    MailextValue::bytes(MAILEXT_KIND_CHARACTER, s.as_bytes())
                }
                HostValue::Binary(b) => MailextValue::bytes(MAILEXT_KIND_BINARY, b),
                HostValue::Proc(s) => MailextValue::bytes(MAILEXT_KIND_PROC, s.as_bytes()),
                HostValue::List(l) => {
                    let h = l as *mut List as *mut c_void;
                    lists.insert(h as usize);
                    MailextValue::list(h)
                }
            })
            .collect();
        let mut ctx = CallCtx {
            outcome: CallOutcome::default(),
            lists,
            argc: raw.len() as u32,
        };
        let cb = MailextHostCallbacks {
            struct_size: self.callbacks_size,
            _reserved: 0,
            ctx: &mut ctx as *mut CallCtx as *mut c_void,
            set_return: Some(cb_set_return),
            set_output: Some(cb_set_output),
            list_define: Some(cb_list_define),
            list_append: Some(cb_list_append),
            status: Some(cb_status),
            event: Some(cb_event),
            append_output: Some(cb_append_output),
        };
        let call = unsafe { (*self.api).call.expect("plugin without call") };
        let rc = unsafe { call(index, raw.as_ptr(), raw.len() as u32, &cb) };
        drop(raw);
        let mut outcome = ctx.outcome;
        if rc != MAILEXT_OK {
            outcome.ret = Some(HostValue::Integer(rc as i64));
        } else if outcome.ret.is_none() {
            outcome
                .host_error
                .get_or_insert_with(|| "plugin returned OK without a return value".into());
        }
        let mut moved = HashSet::new();
        for (i, v) in outcome.outputs.iter_mut().rev() {
            if let Some(slot) = args.get_mut(*i as usize) {
                if moved.insert(*i) {
                    *slot = std::mem::replace(v, HostValue::None);
                }
            }
        }
        outcome
    }

    fn text(&self, f: Option<MailextTextFn>, code: i32) -> String {
        let Some(f) = f else { return String::new() };
        let n = unsafe { f(code, std::ptr::null_mut(), 0) };
        let mut buf = vec![0u8; n + 1];
        unsafe { f(code, buf.as_mut_ptr() as *mut c_char, buf.len()) };
        buf.truncate(n);
        String::from_utf8_lossy(&buf).into_owned()
    }

    pub fn error_text(&self, code: i32) -> String {
        self.text(unsafe { (*self.api).error_text }, code)
    }

    /// The calling thread's last error detail.
    pub fn last_error(&self) -> String {
        self.text(unsafe { (*self.api).last_error }, 0)
    }
}

struct CallCtx {
    outcome: CallOutcome,
    lists: HashSet<usize>,
    argc: u32,
}

/// Copies a plugin-owned value into a host value.
unsafe fn read_value(v: *const MailextValue) -> Result<HostValue, String> {
    if v.is_null() {
        return Err("NULL value".into());
    }
    let v = &*v;
    if (v.struct_size as usize) < std::mem::size_of::<MailextValue>() {
        return Err(format!("value struct_size {} too small", v.struct_size));
    }
    let bytes = || -> Result<Vec<u8>, String> {
        if v.len == 0 {
            Ok(Vec::new())
        } else if v.data.is_null() {
            Err("NULL data with a non-zero length".into())
        } else {
            Ok(std::slice::from_raw_parts(v.data, v.len).to_vec())
        }
    };
    Ok(match v.kind {
        MAILEXT_KIND_NONE => HostValue::None,
        MAILEXT_KIND_INTEGER => HostValue::Integer(v.integer),
        MAILEXT_KIND_BOOLEAN => HostValue::Boolean(match v.integer {
            MAILEXT_FALSE => Tri::False,
            MAILEXT_TRUE => Tri::True,
            _ => Tri::Unknown,
        }),
        MAILEXT_KIND_CHARACTER => HostValue::Character(
            String::from_utf8(bytes()?).map_err(|_| "Character value is not UTF-8".to_string())?,
        ),
        MAILEXT_KIND_BINARY => HostValue::Binary(bytes()?),
        k => return Err(format!("kind {k} cannot be a value")),
    })
}

unsafe fn ctx<'a>(p: *mut c_void) -> &'a mut CallCtx {
    &mut *(p as *mut CallCtx)
}

unsafe extern "C" fn cb_set_return(c: *mut c_void, v: *const MailextValue) -> i32 {
    let c = ctx(c);
    match read_value(v) {
        Ok(v) => {
            c.outcome.ret = Some(v);
            MAILEXT_OK
        }
        Err(e) => {
            c.outcome.host_error = Some(format!("set_return: {e}"));
            MAILEXT_ERR_PARAM_INFO
        }
    }
}

unsafe extern "C" fn cb_set_output(c: *mut c_void, i: u32, v: *const MailextValue) -> i32 {
    let c = ctx(c);
    if i >= c.argc {
        c.outcome.host_error = Some(format!("set_output: argument {i} out of range"));
        return MAILEXT_ERR_PARAM_COUNT;
    }
    match read_value(v) {
        Ok(v) => {
            c.outcome.outputs.push((i, v));
            MAILEXT_OK
        }
        Err(e) => {
            c.outcome.host_error = Some(format!("set_output: {e}"));
            MAILEXT_ERR_PARAM_INFO
        }
    }
}

/// Largest room reserved on the plugin's word: a hint, not a promise.
const RESERVE_MAX: i64 = 1 << 30;

unsafe extern "C" fn cb_append_output(c: *mut c_void, i: u32, v: *const MailextValue) -> i32 {
    let c = ctx(c);
    if v.is_null() || ((*v).struct_size as usize) < std::mem::size_of::<MailextValue>() {
        c.outcome.host_error = Some("append_output: NULL or short value".into());
        return MAILEXT_ERR_PARAM_INFO;
    }
    let v = &*v;
    let piece: &[u8] = match (v.len, v.data.is_null()) {
        (0, _) => &[],
        (_, true) => {
            c.outcome.host_error = Some("append_output: NULL data with a length".into());
            return MAILEXT_ERR_PARAM_INFO;
        }
        // SAFETY: the plugin lends `len` bytes at `data` for this callback.
        (n, false) => std::slice::from_raw_parts(v.data, n),
    };
    let total = v.integer.clamp(0, RESERVE_MAX) as usize;
    let Some((_, slot)) = c.outcome.outputs.iter_mut().rev().find(|(j, _)| *j == i) else {
        c.outcome.host_error = Some(format!("append_output: argument {i} was not set first"));
        return MAILEXT_ERR_PARAM_INFO;
    };
    // Room for the whole value once, not a doubling copy per append.
    let room = |have: usize| total.saturating_sub(have).max(piece.len());
    match (slot, v.kind) {
        (HostValue::Binary(have), MAILEXT_KIND_BINARY) => {
            have.reserve(room(have.len()));
            have.extend_from_slice(piece);
        }
        (HostValue::Character(have), MAILEXT_KIND_CHARACTER) => {
            let Ok(text) = std::str::from_utf8(piece) else {
                c.outcome.host_error = Some("append_output: Character piece is not UTF-8".into());
                return MAILEXT_ERR_PARAM_INFO;
            };
            have.reserve(room(have.len()));
            have.push_str(text);
        }
        _ => {
            c.outcome.host_error = Some(format!("append_output: argument {i} changed kind"));
            return MAILEXT_ERR_PARAM_TYPE;
        }
    }
    MAILEXT_OK
}

unsafe extern "C" fn cb_list_define(
    c: *mut c_void,
    l: *mut c_void,
    cols: *const MailextColumn,
    n: u32,
) -> i32 {
    let c = ctx(c);
    if !c.lists.contains(&(l as usize)) || (cols.is_null() && n > 0) {
        c.outcome.host_error = Some("list_define: not a list of this call".into());
        return MAILEXT_ERR_BAD_LIST;
    }
    let list = &mut *(l as *mut List);
    list.rows.clear();
    list.columns.clear();
    for i in 0..n as usize {
        let col =
            &*((cols as *const u8).add(i * (*cols).struct_size as usize) as *const MailextColumn);
        list.columns.push((cstr(col.name), col.kind));
    }
    MAILEXT_OK
}

unsafe extern "C" fn cb_list_append(
    c: *mut c_void,
    l: *mut c_void,
    cells: *const MailextValue,
    n: u32,
) -> i32 {
    let c = ctx(c);
    if !c.lists.contains(&(l as usize)) || (cells.is_null() && n > 0) {
        c.outcome.host_error = Some("list_append: not a list of this call".into());
        return MAILEXT_ERR_BAD_LIST;
    }
    let list = &mut *(l as *mut List);
    if n as usize != list.columns.len() {
        c.outcome.host_error = Some(format!(
            "list_append: {n} cells for {} columns",
            list.columns.len()
        ));
        return MAILEXT_ERR_BAD_LIST;
    }
    let mut row = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let cell =
            (cells as *const u8).add(i * (*cells).struct_size as usize) as *const MailextValue;
        match read_value(cell) {
            Ok(v) => row.push(v),
            Err(e) => {
                c.outcome.host_error = Some(format!("list_append: {e}"));
                return MAILEXT_ERR_BAD_LIST;
            }
        }
    }
    list.rows.push(row);
    MAILEXT_OK
}

unsafe extern "C" fn cb_status(c: *mut c_void, p: *const u8, pl: usize, m: *const u8, ml: usize) {
    let c = ctx(c);
    let s = |ptr: *const u8, len: usize| {
        if ptr.is_null() || len == 0 {
            String::new()
        } else {
            String::from_utf8_lossy(std::slice::from_raw_parts(ptr, len)).into_owned()
        }
    };
    c.outcome.status.push(StatusMessage {
        proc_name: s(p, pl),
        message: s(m, ml),
    });
}

unsafe extern "C" fn cb_event(c: *mut c_void, p: *const u8, pl: usize, e: *const MailextEvent) {
    let c = ctx(c);
    if e.is_null() || ((*e).struct_size as usize) < std::mem::size_of::<MailextEvent>() {
        c.outcome.host_error = Some("the plugin passed a bad event".into());
        return;
    }
    let e = &*e;
    let s = |ptr: *const u8, len: usize| {
        if ptr.is_null() || len == 0 {
            String::new()
        } else {
            String::from_utf8_lossy(std::slice::from_raw_parts(ptr, len)).into_owned()
        }
    };
    c.outcome.events.push(EventMessage {
        proc_name: s(p, pl),
        kind: event_name(e.kind),
        socket: e.socket,
        code: e.code,
        done: e.done,
        total: e.total,
        text: s(e.text, e.text_len),
    });
}

/// Where the workspace's build of the plugin is, for a binary in
/// `target/<profile>/` or its `deps/` or `examples/`. `cargo test` leaves a
/// fresh library only in `deps/` and `cargo build` also copies it up a level,
/// so the newer of the two is the current build.
pub fn default_plugin_path() -> std::path::PathBuf {
    let file = format!(
        "{}mailext{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let profile = profile_dir();
    let candidates = [profile.join(&file), profile.join("deps").join(&file)];
    let modified = |p: &std::path::PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    candidates
        .iter()
        .filter_map(|p| modified(p).map(|t| (t, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| candidates[0].clone())
}

/// `target/<profile>/` for a binary there or in its `deps/` or `examples/`:
/// where `mailext-host` lives.
pub fn profile_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    dir
}
