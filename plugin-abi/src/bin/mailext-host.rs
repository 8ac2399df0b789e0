//! `mailext-host`: a test host that loads the plugin through the C ABI and
//! runs scripts of 4GL-style calls (see `plugin_abi::script`), printing what
//! a 4GL developer would see: status messages, filled lists, outputs, the
//! return value and, for negative returns, the error text and detail.

use plugin_abi::host::{
    default_plugin_path, CallOutcome, CommandInfo, HostValue, List, ParamInfo, Plugin, Tri,
};
use plugin_abi::script::{self, escape, quote, ArgValue, Vars};
use plugin_abi::*;
use serde_json::{json, Map, Value};
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: mailext-host [--plugin PATH] [--json] commands
       mailext-host [--plugin PATH] [--json] run FILE     (FILE - reads stdin)
       mailext-host [--plugin PATH] [--json] -e LINE [-e LINE ...]
       mailext-host [--plugin PATH] [--json]              (script from stdin)

Script lines: [var =] Command(arg, ...)   # comment
  arguments: \"text\" (escapes \\\" \\\\ \\n \\r \\t \\0 \\xHH), integers, kTrue/kFalse/kUnknown,
  nothing (not given), or a name (a variable, a list, or a method name).
--plugin defaults to $MAILEXT_PLUGIN, else libmailext next to this binary.
Exit status: 0 ok, 1 some line had a script error, 2 usage or load error.
";

enum Source {
    Stdin,
    File(PathBuf),
    Lines(String),
}

enum Mode {
    Commands,
    Run(Source),
}

struct Options {
    plugin: PathBuf,
    json: bool,
    mode: Mode,
}

/// `Ok(None)` means help was asked for.
fn parse_cli(args: Vec<String>) -> Result<Option<Options>, String> {
    let (mut plugin, mut json, mut lines, mut positional) = (None, false, Vec::new(), Vec::new());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => json = true,
            "--plugin" => plugin = Some(it.next().ok_or("--plugin needs a PATH")?),
            "-e" => lines.push(it.next().ok_or("-e needs a script LINE")?),
            "--" => positional.extend(it.by_ref()),
            s if s.starts_with("--plugin=") => plugin = Some(s["--plugin=".len()..].to_string()),
            s if s.starts_with('-') && s != "-" => return Err(format!("unknown option {s}")),
            _ => positional.push(a),
        }
    }
    let mode = match (positional.as_slice(), lines.is_empty()) {
        ([], true) => Mode::Run(Source::Stdin),
        // Each -e is one line, numbered in order (one holding newlines counts as several).
        ([], false) => Mode::Run(Source::Lines(lines.join("\n"))),
        (_, false) => return Err("-e cannot be combined with a subcommand".into()),
        ([c], true) if c == "commands" => Mode::Commands,
        ([r, f], true) if r == "run" && f == "-" => Mode::Run(Source::Stdin),
        ([r, f], true) if r == "run" => Mode::Run(Source::File(f.into())),
        ([r], true) if r == "run" => return Err("run needs a FILE (- for stdin)".into()),
        ([first, ..], true) => return Err(format!("unexpected argument {first}")),
    };
    let plugin = plugin
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("MAILEXT_PLUGIN")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(default_plugin_path);
    Ok(Some(Options { plugin, json, mode }))
}

fn main() -> ExitCode {
    let opts = match parse_cli(std::env::args().skip(1).collect()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprint!("mailext-host: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let plugin = match Plugin::load(&opts.plugin) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let mut out = io::stdout().lock();
    let result = match opts.mode {
        Mode::Commands => print_commands(&mut out, &plugin, opts.json).map(|_| true),
        Mode::Run(source) => {
            let reader: Box<dyn BufRead> = match source {
                Source::Stdin => Box::new(io::stdin().lock()),
                Source::Lines(text) => Box::new(io::Cursor::new(text.into_bytes())),
                Source::File(path) => match std::fs::File::open(&path) {
                    Ok(f) => Box::new(io::BufReader::new(f)),
                    Err(e) => return fail(format!("{}: {e}", path.display())),
                },
            };
            let mut runner = Runner {
                plugin: &plugin,
                json: opts.json,
                vars: Vars::default(),
                ok: true,
                out: &mut out,
            };
            runner.run(reader).map(|_| runner.ok)
        }
    };
    match result.and_then(|ok| out.flush().map(|_| ok)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        // A reader that went away (`| head`) needs no explanation.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(2),
        Err(e) => fail(e),
    }
}

/// For errors that stop the host before or instead of running the script.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("mailext-host: {e}");
    ExitCode::from(2)
}

fn kind_names(kinds: u32) -> Vec<&'static str> {
    if kinds == MAILEXT_KIND_NONE {
        return vec!["None"];
    }
    [
        (MAILEXT_KIND_INTEGER, "Integer"),
        (MAILEXT_KIND_BOOLEAN, "Boolean"),
        (MAILEXT_KIND_CHARACTER, "Character"),
        (MAILEXT_KIND_BINARY, "Binary"),
        (MAILEXT_KIND_LIST, "List"),
        (MAILEXT_KIND_PROC, "Proc"),
    ]
    .iter()
    .filter(|(k, _)| kinds & k != 0)
    .map(|(_, n)| *n)
    .collect()
}

fn command_flags(flags: u32) -> Vec<String> {
    let known = flags & MAILEXT_COMMAND_MULTITHREADED != 0;
    let mut v: Vec<String> = known.then(|| "multithreaded".into()).into_iter().collect();
    // Flags this host does not know yet are still shown, not hidden.
    let rest = flags & !MAILEXT_COMMAND_MULTITHREADED;
    v.extend((rest != 0).then(|| format!("0x{rest:x}")));
    v
}

fn direction(flags: u32) -> &'static str {
    // Indexed by the IN (1) and OUT (2) bits.
    ["-", "in", "out", "in/out"][(flags & (MAILEXT_PARAM_IN | MAILEXT_PARAM_OUT)) as usize]
}

fn print_commands(out: &mut dyn Write, plugin: &Plugin, json: bool) -> io::Result<()> {
    if json {
        let table: Vec<Value> = plugin.commands.iter().map(command_json).collect();
        return writeln!(out, "{}", Value::Array(table));
    }
    let (major, minor) = plugin.abi;
    writeln!(
        out,
        "{} {} (ABI {major}.{minor}), {} commands",
        plugin.name,
        plugin.version,
        plugin.commands.len()
    )?;
    // One table for all commands, so every parameter line aligns.
    let rows: Vec<Vec<[String; 5]>> = plugin
        .commands
        .iter()
        .map(|c| c.params.iter().map(param_row).collect())
        .collect();
    let mut w = [0; 4];
    for cells in rows.iter().flatten() {
        for (w, c) in w.iter_mut().zip(cells) {
            *w = (*w).max(c.len());
        }
    }
    for (c, rows) in plugin.commands.iter().zip(&rows) {
        let flags: String = command_flags(c.flags)
            .iter()
            .map(|f| format!("  [{f}]"))
            .collect();
        let ret = kind_names(c.return_kind).join("|");
        writeln!(out, "\n{} -> {ret}{flags}\n    {}", c.name, c.summary)?;
        for [name, kinds, dir, need, desc] in rows {
            let [w0, w1, w2, w3] = w;
            writeln!(
                out,
                "    {name:<w0$}  {kinds:<w1$}  {dir:<w2$}  {need:<w3$}  {desc}"
            )?;
        }
    }
    Ok(())
}

/// name, kinds, direction, required/optional with default, description.
fn param_row(p: &ParamInfo) -> [String; 5] {
    let optional = p.flags & MAILEXT_PARAM_OPTIONAL != 0;
    let mut need = String::from(if optional { "optional" } else { "required" });
    if let Some(d) = &p.default {
        need += &format!(", default {d}");
    }
    let kinds = kind_names(p.kinds).join("|");
    [
        p.name.clone(),
        kinds,
        direction(p.flags).into(),
        need,
        p.description.clone(),
    ]
}

fn command_json(c: &CommandInfo) -> Value {
    let params: Vec<Value> = c
        .params
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "kinds": kind_names(p.kinds),
                "in": p.flags & MAILEXT_PARAM_IN != 0,
                "out": p.flags & MAILEXT_PARAM_OUT != 0,
                "optional": p.flags & MAILEXT_PARAM_OPTIONAL != 0,
                "default": p.default,
                "description": p.description,
            })
        })
        .collect();
    json!({
        "name": c.name,
        "summary": c.summary,
        "return": kind_names(c.return_kind).join("|"),
        "flags": command_flags(c.flags),
        "multithreaded": c.flags & MAILEXT_COMMAND_MULTITHREADED != 0,
        "params": params,
    })
}

fn tri(t: Tri) -> &'static str {
    match t {
        Tri::True => "kTrue",
        Tri::False => "kFalse",
        Tri::Unknown => "kUnknown",
    }
}

/// A value for the human transcript; Character is quoted so CR/LF/NUL show.
fn show(v: &HostValue) -> String {
    match v {
        HostValue::None => "<none>".into(),
        HostValue::Integer(n) => n.to_string(),
        HostValue::Boolean(t) => tri(*t).into(),
        HostValue::Character(s) => quote(s),
        HostValue::Binary(b) => format!("<binary {} bytes>", b.len()),
        HostValue::List(l) => format!("<list: {} columns, {} rows>", l.columns.len(), l.rows.len()),
        HostValue::Proc(p) => format!("<method {}>", escape(p)),
    }
}

/// A list cell: like `show`, but text unquoted as a 4GL list would show it.
fn cell(v: &HostValue) -> String {
    match v {
        HostValue::Character(s) => escape(s),
        v => show(v),
    }
}

fn to_json(v: &HostValue) -> Value {
    match v {
        HostValue::None => Value::Null,
        HostValue::Integer(n) => json!(n),
        HostValue::Boolean(t) => json!(tri(*t)),
        HostValue::Character(s) | HostValue::Proc(s) => json!(s),
        HostValue::Binary(b) => json!({ "binary_len": b.len() }),
        HostValue::List(l) => list_json(l),
    }
}

fn list_json(l: &List) -> Value {
    let columns: Vec<&String> = l.columns.iter().map(|(n, _)| n).collect();
    let rows: Vec<Vec<Value>> = l
        .rows
        .iter()
        .map(|r| r.iter().map(to_json).collect())
        .collect();
    json!({ "columns": columns, "rows": rows })
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

struct Runner<'a> {
    plugin: &'a Plugin,
    json: bool,
    vars: Vars,
    /// Cleared by any script error; calls' own failures never clear it.
    ok: bool,
    out: &'a mut dyn Write,
}

/// Everything one call produced, ready to print either way.
struct Report<'a> {
    line: usize,
    command: &'a str,
    target: Option<&'a str>,
    outcome: CallOutcome,
    /// Each list argument after the call, by the variable that names it.
    lists: Vec<(&'a str, List)>,
    /// (label, value); the value is `None` when it must not be shown.
    outputs: Vec<(String, Option<HostValue>)>,
    /// (code, error text, last error detail) for a negative return.
    error: Option<(i64, String, String)>,
}

impl Runner<'_> {
    fn run(&mut self, mut reader: impl BufRead) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut n = 0;
        // Bytes, not `lines()`, so one non-UTF-8 line is an error for that line only.
        while {
            buf.clear();
            reader.read_until(b'\n', &mut buf)? > 0
        } {
            n += 1;
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            match std::str::from_utf8(&buf) {
                Ok(line) => self.line(n, line)?,
                Err(_) => self.script_error(n, "not valid UTF-8")?,
            }
        }
        Ok(())
    }

    /// Never quotes the line: it may hold a password.
    fn script_error(&mut self, n: usize, msg: &str) -> io::Result<()> {
        self.ok = false;
        self.out.flush()?;
        eprintln!("mailext-host: line {n}: {msg}");
        Ok(())
    }

    fn line(&mut self, n: usize, line: &str) -> io::Result<()> {
        let stmt = match script::parse_line(line) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(()),
            Err(e) => return self.script_error(n, &e.to_string()),
        };
        let plugin = self.plugin;
        let Some((index, info)) = plugin.command(&stmt.command) else {
            return self.script_error(n, &format!("unknown command {}", stmt.command));
        };
        let mut args = match script::bind(&stmt.args, &info.params, &self.vars) {
            Ok(a) => a,
            Err(e) => return self.script_error(n, &format!("{}: {e}", info.name)),
        };
        if !self.json {
            writeln!(self.out, "> {}", script::echo(&stmt, &info.params))?;
        }
        let outcome = plugin.call_index(index, &mut args);
        // Straight after the call, on this thread, detail first: the text
        // lookup must not get a chance to replace the thread's last error.
        let error = match outcome.ret {
            Some(HostValue::Integer(code)) if code < 0 => {
                let detail = plugin.last_error();
                let text = plugin.error_text(i32::try_from(code).unwrap_or(i32::MIN));
                Some((code, text, detail))
            }
            _ => None,
        };

        let name_at = |i: usize| match stmt.args.get(i).map(|a| &a.value) {
            Some(ArgValue::Name(name)) => Some(name.as_str()),
            _ => None,
        };
        let mut outputs = Vec::new();
        for (i, v) in &outcome.outputs {
            let (i, param) = (*i as usize, info.params.get(*i as usize));
            // The last value written to an argument was moved into it.
            let v = match v {
                HostValue::None => args.get(i).unwrap_or(v),
                v => v,
            };
            let label = match (name_at(i), param) {
                (Some(name), _) => name.to_string(),
                (None, Some(p)) => p.name.clone(),
                (None, None) => format!("argument {}", i + 1),
            };
            if let Some(name) = name_at(i) {
                self.vars.set(name, v.clone());
            }
            let secret = param.is_some_and(|p| script::is_secret(&p.name));
            outputs.push((label, (!secret).then(|| v.clone())));
        }
        // Lists were filled in place in `args`; keep them for later lines.
        let mut lists = Vec::new();
        for (i, v) in args.into_iter().enumerate() {
            if let (Some(name), HostValue::List(l)) = (name_at(i), v) {
                self.vars.set(name, HostValue::List(l.clone()));
                lists.push((name, l));
            }
        }
        if let (Some(t), Some(v)) = (&stmt.target, &outcome.ret) {
            self.vars.set(t, v.clone());
        }
        let target = stmt.target.as_deref();
        let command = info.name.as_str();
        let report = Report {
            line: n,
            command,
            target,
            outcome,
            lists,
            outputs,
            error,
        };
        if self.json {
            writeln!(self.out, "{}", report.json())
        } else {
            report.human(self.out)
        }
    }
}

impl Report<'_> {
    fn json(&self) -> Value {
        let lists: Map<String, Value> = self
            .lists
            .iter()
            .map(|(n, l)| (n.to_string(), list_json(l)))
            .collect();
        let outputs: Map<String, Value> = self
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map_or(json!("<redacted>"), to_json)))
            .collect();
        let status: Vec<Value> = self
            .outcome
            .status
            .iter()
            .map(|s| json!({ "proc": s.proc_name, "message": s.message }))
            .collect();
        let events: Vec<Value> = self
            .outcome
            .events
            .iter()
            .map(|e| {
                json!({ "proc": e.proc_name, "event": e.kind, "socket": e.socket,
                        "code": e.code, "done": e.done, "total": e.total, "text": e.text })
            })
            .collect();
        let mut obj = json!({
            "line": self.line,
            "command": self.command,
            "return": self.outcome.ret.as_ref().map_or(Value::Null, to_json),
            "status": status,
            "events": events,
            "lists": lists,
            "outputs": outputs,
        });
        if let Some((code, text, detail)) = &self.error {
            obj["error"] = json!({ "code": code, "text": text, "detail": detail });
        }
        if let Some(h) = &self.outcome.host_error {
            obj["host_error"] = json!(h);
        }
        obj
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        for s in &self.outcome.status {
            writeln!(out, "  {}: {}", escape(&s.proc_name), escape(&s.message))?;
        }
        for e in &self.outcome.events {
            let mut line = format!(
                "  {}: EVENT {} socket={} code={}",
                escape(&e.proc_name),
                e.kind,
                e.socket,
                e.code
            );
            if e.kind == "PROGRESS" {
                line.push_str(&format!(" {}/{}", e.done, e.total));
            }
            if !e.text.is_empty() {
                line.push_str(&format!(" {}", escape(&e.text)));
            }
            writeln!(out, "{line}")?;
        }
        for (name, l) in &self.lists {
            let names: Vec<&str> = l.columns.iter().map(|(c, _)| c.as_str()).collect();
            let mut cols = plural(names.len(), "column");
            if !names.is_empty() {
                cols = format!("{cols}: {}", names.join(", "));
            }
            let colon = if l.rows.is_empty() { "" } else { ":" };
            writeln!(
                out,
                "  {name} ({cols}, {}){colon}",
                plural(l.rows.len(), "row")
            )?;
            for (r, row) in l.rows.iter().enumerate() {
                let cells: Vec<String> = row.iter().map(cell).collect();
                writeln!(out, "    {}: {}", r + 1, cells.join(" | "))?;
            }
        }
        for (label, v) in &self.outputs {
            writeln!(
                out,
                "  {label} = {}",
                v.as_ref().map_or("<redacted>".into(), show)
            )?;
        }
        match (self.target, &self.outcome.ret) {
            (Some(t), Some(v)) => writeln!(out, "  {t} = {}", show(v))?,
            (None, Some(v)) => writeln!(out, "  return = {}", show(v))?,
            (_, None) => writeln!(out, "  no return value")?,
        }
        if let Some((_, text, detail)) = &self.error {
            writeln!(out, "  error: {text}")?;
            writeln!(out, "  detail: {detail}")?;
        }
        if let Some(h) = &self.outcome.host_error {
            writeln!(out, "  host error: {h}")?;
        }
        Ok(())
    }
}
