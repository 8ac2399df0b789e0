//! The IMAP command family: mailboxes, messages, flags, search, append and
//! idle. Each function checks its arguments, builds the commands, runs them
//! as one operation on the socket, and turns the replies into outputs.

use super::imap::{on_socket, with_socket};
use super::Ret;
use crate::error::MailError;
use crate::host_call::{HostCall, ListHandle};
use crate::imap::codec::is_safe_text;
use crate::imap::driver::run;
use crate::imap::family::{check_phase, Batch, BatchOp, IdleOp, Needs};
use crate::imap::mutf7;
use crate::imap::session::{CommandLine, Phase};
use crate::imap::values::{parse, Value};
use plugin_abi::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn text_arg(call: &HostCall, i: usize, what: &str) -> Result<String, MailError> {
    let s = call.string(i)?.unwrap_or_default();
    if !is_safe_text(&s) {
        return Err(MailError::BadValue(format!(
            "{what} contains CR, LF or NUL"
        )));
    }
    Ok(s)
}

fn mailbox_arg(call: &HostCall, i: usize) -> Result<String, MailError> {
    let name = text_arg(call, i, "the mailbox name")?;
    if name.is_empty() {
        return Err(MailError::BadValue("the mailbox name is empty".into()));
    }
    Ok(name)
}

pub(super) fn uid_arg(call: &HostCall) -> Result<u32, MailError> {
    let uid = call.integer(1)?.unwrap_or_default();
    u32::try_from(uid)
        .ok()
        .filter(|u| *u > 0)
        .ok_or_else(|| MailError::BadValue(format!("a UID is 1 to 4294967295, not {uid}")))
}

fn list_arg(call: &HostCall, i: usize) -> Result<ListHandle, MailError> {
    call.list(i)
        .ok_or_else(|| MailError::ParamType(format!("argument {} must be a list", i + 1)))
}

fn batch(
    call: &HostCall,
    what: String,
    needs: Needs,
    lines: Vec<CommandLine>,
) -> Result<Batch, MailError> {
    on_socket(call, BatchOp::new(what, needs, lines))
}

fn ok() -> Result<Ret, MailError> {
    Ok(Ret::Integer(0))
}

// ---- mailboxes -------------------------------------------------------------

pub fn select(call: &HostCall) -> Result<Ret, MailError> {
    let name = mailbox_arg(call, 1)?;
    let b = with_socket(call, |s, obs| {
        s.session.exists = None;
        s.session.recent = None;
        let mut op = BatchOp::new(
            format!("SELECT {name}"),
            Needs::Authenticated,
            vec![CommandLine::new("SELECT").string(&mutf7::encode(&name))],
        );
        let r = run(&mut op, &mut s.session, &mut s.frag, &mut s.conn, obs);
        // A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
        s.session.phase = match (&r, &s.session.phase) {
            (Ok(_), _) => Phase::Selected(name.clone()),
            (Err(_), Phase::Selected(_)) => Phase::Authenticated,
            (_, p) => p.clone(),
        };
        r.map(|b| (b, s.session.exists, s.session.recent))
    })?;
    let (b, exists, recent) = b;
    let number = |name: &str| {
        b.code(name)
            .and_then(|a| a.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    let outs = [
        (2, exists.map_or(0, i64::from)),
        (3, recent.map_or(0, i64::from)),
        (4, number("UIDNEXT")),
        (5, number("UIDVALIDITY")),
        (6, number("UNSEEN")),
    ];
    // Out-arguments the host did not pass are skipped.
    for (i, v) in outs {
        if call.kind(i) != MAILEXT_KIND_NONE {
            call.set_output(i, &MailextValue::integer(v))?;
        }
    }
    ok()
}

/// `VERB "name" ...` with mailbox names encoded for the wire.
fn mailbox_command(verb: &str, names: &[String]) -> CommandLine {
    names.iter().fold(CommandLine::new(verb), |line, n| {
        line.string(&mutf7::encode(n))
    })
}

fn simple(call: &HostCall, verb: &str, needs: Needs, args: &[String]) -> Result<Ret, MailError> {
    let line = mailbox_command(verb, args);
    let what = std::iter::once(verb.to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    batch(call, what, needs, vec![line]).and_then(|_| ok())
}

/// DELETE or RENAME. Servers end the session (BYE) when the selected mailbox
/// goes away under it, so the plugin leaves it first, in the same round trip:
/// UNSELECT (RFC 3691) when offered, else CLOSE.
fn leave_if_selected(call: &HostCall, verb: &str, args: &[String]) -> Result<Ret, MailError> {
    let target = &args[0];
    with_socket(call, |s, obs| {
        let same = |sel: &str| {
            sel == target
                || (sel.eq_ignore_ascii_case("INBOX") && target.eq_ignore_ascii_case("INBOX"))
        };
        let selected = matches!(&s.session.phase, Phase::Selected(sel) if same(sel));
        let mut lines = Vec::new();
        if selected {
            lines.push(CommandLine::new(if s.session.has_cap("UNSELECT") {
                "UNSELECT"
            } else {
                "CLOSE"
            }));
        }
        lines.push(mailbox_command(verb, args));
        let mut op = BatchOp::new(
            format!("{verb} {}", args.join(" ")),
            Needs::Authenticated,
            lines,
        );
        let r = run(&mut op, &mut s.session, &mut s.frag, &mut s.conn, obs);
        if selected {
            s.session.phase = Phase::Authenticated;
        }
        r.map(|_| Ret::Integer(0))
    })
}

pub fn create(call: &HostCall) -> Result<Ret, MailError> {
    simple(
        call,
        "CREATE",
        Needs::Authenticated,
        &[mailbox_arg(call, 1)?],
    )
}
pub fn delete(call: &HostCall) -> Result<Ret, MailError> {
    leave_if_selected(call, "DELETE", &[mailbox_arg(call, 1)?])
}
pub fn subscribe(call: &HostCall) -> Result<Ret, MailError> {
    simple(
        call,
        "SUBSCRIBE",
        Needs::Authenticated,
        &[mailbox_arg(call, 1)?],
    )
}
pub fn unsubscribe(call: &HostCall) -> Result<Ret, MailError> {
    simple(
        call,
        "UNSUBSCRIBE",
        Needs::Authenticated,
        &[mailbox_arg(call, 1)?],
    )
}
pub fn rename(call: &HostCall) -> Result<Ret, MailError> {
    leave_if_selected(
        call,
        "RENAME",
        &[mailbox_arg(call, 1)?, mailbox_arg(call, 2)?],
    )
}
pub fn check(call: &HostCall) -> Result<Ret, MailError> {
    simple(call, "CHECK", Needs::Selected, &[])
}
pub fn expunge(call: &HostCall) -> Result<Ret, MailError> {
    simple(call, "EXPUNGE", Needs::Selected, &[])
}

pub fn list_mailboxes(call: &HostCall) -> Result<Ret, MailError> {
    list_boxes(call, false)
}
pub fn list_subscribed(call: &HostCall) -> Result<Ret, MailError> {
    list_boxes(call, true)
}

fn list_boxes(call: &HostCall, subscribed: bool) -> Result<Ret, MailError> {
    let reference = text_arg(call, 1, "the reference name")?;
    let pattern = text_arg(call, 2, "the pattern")?;
    let list = list_arg(call, 3)?;
    // An empty pattern asks for the hierarchy delimiter; only LIST answers that.
    let verb = if subscribed && !pattern.is_empty() {
        "LSUB"
    } else {
        "LIST"
    };
    let line = CommandLine::new(verb)
        .string(&mutf7::encode(&reference))
        .string(&mutf7::encode(&pattern));
    let b = batch(
        call,
        format!("{verb} {reference:?} {pattern:?}"),
        Needs::Authenticated,
        vec![line],
    )?;
    call.define_list(
        list,
        &[
            (c"name", MAILEXT_KIND_CHARACTER),
            (c"delimiter", MAILEXT_KIND_CHARACTER),
            (c"attributes", MAILEXT_KIND_CHARACTER),
        ],
    )?;
    for raw in &b.data {
        let Ok(v) = parse(raw) else { continue };
        let [Value::Atom(kind), Value::List(attrs), delim, name, ..] = v.as_slice() else {
            continue;
        };
        if !kind.eq_ignore_ascii_case(verb) {
            continue;
        }
        let wire = name.as_str().unwrap_or_default();
        let name = mutf7::decode(&wire).unwrap_or(wire);
        let delim = delim.as_str().unwrap_or_default();
        let attrs: Vec<String> = attrs.iter().filter_map(Value::as_str).collect();
        let cells = [name, delim, attrs.join(" ")];
        let values: Vec<MailextValue> = cells
            .iter()
            .map(|c| MailextValue::bytes(MAILEXT_KIND_CHARACTER, c.as_bytes()))
            .collect();
        call.append_row(list, &values)?;
    }
    ok()
}

// ---- messages --------------------------------------------------------------

/// The items of a `n FETCH (...)` response as (sequence number, key/value pairs).
fn fetch_items(raw: &[u8]) -> Option<(u32, Vec<(String, Value)>)> {
    fetch_items_with(raw, parse)
}

pub(super) fn fetch_items_with(
    raw: &[u8],
    parse: fn(&[u8]) -> Result<Vec<Value>, String>,
) -> Option<(u32, Vec<(String, Value)>)> {
    let mut v = parse(raw).ok()?;
    if v.len() < 3 || !v[1].as_str()?.eq_ignore_ascii_case("FETCH") {
        return None;
    }
    let seq = v[0].as_u64()? as u32;
    let Value::List(items) = v.swap_remove(2) else {
        return None;
    };
    let mut pairs = Vec::new();
    let mut it = items.into_iter();
    while let (Some(k), Some(val)) = (it.next(), it.next()) {
        pairs.push((k.as_str()?.to_ascii_uppercase(), val));
    }
    Some((seq, pairs))
}

/// `n EXPUNGE` as the batch records it.
fn expunged(raw: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(raw).ok()?;
    let (n, word) = text.split_once(' ')?;
    word.eq_ignore_ascii_case("EXPUNGE")
        .then(|| n.parse().ok())
        .flatten()
}

pub(super) fn item<'a>(pairs: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

pub fn list_messages(call: &HostCall) -> Result<Ret, MailError> {
    let list = list_arg(call, 1)?;
    // NOOP first (as Omnis does), pipelined with the FETCH: one round trip.
    // UID FETCH 1:* is valid on an empty mailbox, where FETCH 1:* is not.
    let lines = vec![
        CommandLine::new("NOOP"),
        CommandLine::new("UID FETCH").raw("1:* (UID RFC822.SIZE INTERNALDATE FLAGS)"),
    ];
    let b = batch(call, "FETCH".into(), Needs::Selected, lines)?;
    // Unsolicited FETCH updates (flag changes) lack RFC822.SIZE: skip them.
    // An EXPUNGE removes its message and renumbers the ones after it.
    // By sequence number: a later FETCH of the same message replaces it.
    let mut rows: BTreeMap<u32, Vec<(String, Value)>> = BTreeMap::new();
    for raw in &b.data {
        if let Some(n) = expunged(raw) {
            rows.remove(&n);
            let after = rows.split_off(&n);
            rows.extend(after.into_iter().map(|(seq, p)| (seq - 1, p)));
        } else if let Some((seq, pairs)) =
            fetch_items(raw).filter(|(_, p)| item(p, "RFC822.SIZE").is_some())
        {
            rows.insert(seq, pairs);
        }
    }
    call.define_list(
        list,
        &[
            (c"UID", MAILEXT_KIND_INTEGER),
            (c"Size", MAILEXT_KIND_INTEGER),
            (c"InternalDate", MAILEXT_KIND_CHARACTER),
            (c"Answered", MAILEXT_KIND_BOOLEAN),
            (c"Deleted", MAILEXT_KIND_BOOLEAN),
            (c"Draft", MAILEXT_KIND_BOOLEAN),
            (c"Flagged", MAILEXT_KIND_BOOLEAN),
            (c"Recent", MAILEXT_KIND_BOOLEAN),
            (c"Seen", MAILEXT_KIND_BOOLEAN),
        ],
    )?;
    for (_, pairs) in rows {
        let Some(uid) = item(&pairs, "UID").and_then(Value::as_u64) else {
            continue;
        };
        let size = item(&pairs, "RFC822.SIZE")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let date = item(&pairs, "INTERNALDATE")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let flags: Vec<String> = item(&pairs, "FLAGS")
            .and_then(Value::as_list)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(|f| f.to_ascii_uppercase())
                    .collect()
            })
            .unwrap_or_default();
        let has = |f: &str| {
            MailextValue::boolean(if flags.iter().any(|x| x == f) {
                MAILEXT_TRUE
            } else {
                MAILEXT_FALSE
            })
        };
        let cells = [
            MailextValue::integer(uid as i64),
            MailextValue::integer(size as i64),
            MailextValue::bytes(MAILEXT_KIND_CHARACTER, date.as_bytes()),
            has("\\ANSWERED"),
            has("\\DELETED"),
            has("\\DRAFT"),
            has("\\FLAGGED"),
            has("\\RECENT"),
            has("\\SEEN"),
        ];
        call.append_row(list, &cells)?;
    }
    ok()
}

/// `UID FETCH uid (UID)` pipelined before a command that servers answer OK
/// even for a missing UID, so "no such message" can be told apart.
fn probe(uid: u32) -> CommandLine {
    CommandLine::new("UID FETCH").raw(&format!("{uid} (UID)"))
}

fn require_uid(b: &Batch, uid: u32) -> Result<(), MailError> {
    let found = b
        .data
        .iter()
        .filter_map(|r| fetch_items(r))
        .any(|(_, p)| item(&p, "UID").and_then(Value::as_u64) == Some(uid as u64));
    if found {
        Ok(())
    } else {
        Err(MailError::NoSuchMessage(format!(
            "UID {uid} is not in the selected mailbox"
        )))
    }
}

pub fn set_flags(call: &HostCall) -> Result<Ret, MailError> {
    let uid = uid_arg(call)?;
    let names = ["\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen"];
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    for (i, name) in names.iter().enumerate() {
        match call.boolean(2 + i)? {
            Some(MAILEXT_TRUE) => add.push(*name),
            Some(MAILEXT_FALSE) => remove.push(*name),
            _ => {}
        }
    }
    let mut lines = vec![probe(uid)];
    for (sign, flags) in [("+", &add), ("-", &remove)] {
        if !flags.is_empty() {
            lines.push(
                CommandLine::new("UID STORE")
                    .raw(&format!("{uid} {sign}FLAGS.SILENT ({})", flags.join(" "))),
            );
        }
    }
    let b = batch(call, format!("UID STORE {uid}"), Needs::Selected, lines)?;
    require_uid(&b, uid).and_then(|_| ok())
}

pub fn copy(call: &HostCall) -> Result<Ret, MailError> {
    let uid = uid_arg(call)?;
    let dest = mailbox_arg(call, 2)?;
    let lines = vec![
        probe(uid),
        CommandLine::new("UID COPY")
            .raw(&uid.to_string())
            .string(&mutf7::encode(&dest)),
    ];
    let b = batch(
        call,
        format!("UID COPY {uid} {dest}"),
        Needs::Selected,
        lines,
    )?;
    require_uid(&b, uid).and_then(|_| ok())
}

pub fn search(call: &HostCall) -> Result<Ret, MailError> {
    let criteria = text_arg(call, 1, "the search criteria")?;
    let list = list_arg(call, 2)?;
    let parsed = parse(criteria.as_bytes())
        .map_err(|e| MailError::BadValue(format!("search criteria: {e}")))?;
    if parsed.is_empty() {
        return Err(MailError::BadValue("the search criteria are empty".into()));
    }
    let mut line = CommandLine::new("UID SEARCH");
    let has_charset = parsed
        .first()
        .and_then(Value::as_str)
        .is_some_and(|w| w.eq_ignore_ascii_case("CHARSET"));
    if !criteria.is_ascii() && !has_charset {
        line = line.atom("CHARSET UTF-8");
    }
    line = encode_criteria(line, &parsed, true);
    let b = batch(
        call,
        format!("UID SEARCH {criteria}"),
        Needs::Selected,
        vec![line],
    )?;
    call.define_list(list, &[(c"uid", MAILEXT_KIND_INTEGER)])?;
    for raw in &b.data {
        let Ok(v) = parse(raw) else { continue };
        if v.first()
            .and_then(Value::as_str)
            .is_some_and(|k| k.eq_ignore_ascii_case("SEARCH"))
        {
            for uid in v[1..].iter().filter_map(Value::as_u64) {
                call.append_row(list, &[MailextValue::integer(uid as i64)])?;
            }
        }
    }
    ok()
}

/// Re-emits parsed criteria: atoms as given, strings quoted or as literals
/// (so non-ASCII text is sent correctly), lists in parentheses.
fn encode_criteria(mut line: CommandLine, values: &[Value], spaced: bool) -> CommandLine {
    for (i, v) in values.iter().enumerate() {
        let space = spaced || i > 0;
        line = match v {
            // 8-bit text is never valid in an atom: send it as a string.
            // 8-bit text or specials ({ " \\ controls) are never valid in an
            // atom: send them as a string, never as raw syntax.
            Value::Atom(a)
                if !a
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"{}\"\\".contains(&b)) =>
            {
                line.string_spaced(a, space)
            }
            Value::Atom(a) => line.word(a, space),
            Value::Nil => line.word("NIL", space),
            Value::Str(s) => line.string_spaced(&String::from_utf8_lossy(s), space),
            Value::List(items) => {
                encode_criteria(line.word("(", space), items, false).word(")", false)
            }
            // Criteria are parsed with `parse`, which copies literals.
            Value::Span(..) => line,
        };
    }
    line
}

pub fn append(call: &HostCall) -> Result<Ret, MailError> {
    let mailbox = mailbox_arg(call, 1)?;
    let message = call.data(2)?.unwrap_or_default();
    let flags = text_arg(call, 3, "the flags")?;
    let date = text_arg(call, 4, "the date")?;
    // Anything the server could reject as BAD must be refused here: after a
    // BAD, a server may read a LITERAL+ message body as commands.
    let flag_ok = |f: &str| match f.strip_prefix('\\') {
        Some(system) => ["Answered", "Flagged", "Deleted", "Seen", "Draft"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(system)),
        None => {
            !f.is_empty()
                && f.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
        }
    };
    let date = date.trim();
    let date = if date.is_empty() {
        String::new()
    } else {
        date_time(date).ok_or_else(|| {
            MailError::BadValue(format!(
                "{date:?} is not an IMAP date-time like 17-Jul-1996 02:44:25 -0700"
            ))
        })?
    };
    if let Some(bad) = flags.split_whitespace().find(|f| !flag_ok(f)) {
        return Err(MailError::BadValue(format!("{bad:?} is not a flag")));
    }
    let mut line = CommandLine::new("APPEND").string(&mutf7::encode(&mailbox));
    if !flags.trim().is_empty() {
        line = line.raw(&format!(
            "({})",
            flags.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    if !date.is_empty() {
        line = line.string(&date);
    }
    line = line.literal(message);
    batch(
        call,
        format!("APPEND {mailbox}"),
        Needs::Authenticated,
        vec![line],
    )
    .and_then(|_| ok())
}

pub fn idle(call: &HostCall) -> Result<Ret, MailError> {
    let secs = call.integer(1)?.unwrap_or(0);
    if !(0..=86_400).contains(&secs) {
        return Err(MailError::BadValue(format!(
            "timeout must be 0 to 86400 seconds, not {secs}"
        )));
    }
    let list = list_arg(call, 2)?;
    let updates = with_socket(call, |s, obs| {
        check_phase(&s.session, Needs::Authenticated)?;
        let wait = if secs == 0 {
            s.session.clock.timeout()
        } else {
            Duration::from_secs(secs as u64)
        };
        run(
            &mut IdleOp::new(wait),
            &mut s.session,
            &mut s.frag,
            &mut s.conn,
            obs,
        )
    })?;
    call.define_list(list, &[(c"update", MAILEXT_KIND_CHARACTER)])?;
    for u in updates {
        let text = String::from_utf8_lossy(&u);
        call.append_row(
            list,
            &[MailextValue::bytes(MAILEXT_KIND_CHARACTER, text.as_bytes())],
        )?;
    }
    ok()
}

/// RFC 3501 date-time `dd-Mon-yyyy hh:mm:ss +zzzz`, returned with the day
/// padded to two digits; `None` when any part is out of form or range.
fn date_time(d: &str) -> Option<String> {
    let (date, rest) = d.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let num = |s: &str, len: std::ops::RangeInclusive<usize>, max: u32| {
        (len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
            .filter(|v| *v < max)
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = date.split('-');
    let day = num(parts.next()?, 1..=2, 32).filter(|d| *d > 0)?;
    let month = parts.next().filter(|m| months.contains(m))?;
    let year = num(parts.next()?, 4..=4, 10_000)?;
    let mut t = time.split(':');
    let (h, m, sec) = (
        num(t.next()?, 2..=2, 24)?,
        num(t.next()?, 2..=2, 60)?,
        num(t.next()?, 2..=2, 61)?,
    );
    let (sign, digits) = (zone.get(..1)?, zone.get(1..)?);
    let ok = parts.next().is_none()
        && t.next().is_none()
        && (sign == "+" || sign == "-")
        && num(digits, 4..=4, 10_000).is_some()
        && num(&digits[2..], 2..=2, 60).is_some();
    ok.then(|| format!("{day:02}-{month}-{year:04} {h:02}:{m:02}:{sec:02} {zone}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_times() {
        assert_eq!(
            super::date_time("17-Jul-1996 02:44:25 -0700").unwrap(),
            "17-Jul-1996 02:44:25 -0700"
        );
        assert_eq!(
            super::date_time("1-Jan-2026 00:00:00 +0000").unwrap(),
            "01-Jan-2026 00:00:00 +0000"
        );
        let bad = [
            "17-Jul-1996 25:00:00 +0000",
            "32-Jul-1996 02:44:25 +0000",
            "17-Jul-1996 02:44:25 +0099",
            "17-Jul-1996 02:44:25 +",
            "17-jul-1996 02:44:25 -0700",
            "17-Jul-96 02:44:25 -0700",
            "17-Jul-1996 2:44:25 -0700",
            "x",
            "17-Jul-1996 02:44:25",
        ];
        for b in bad {
            assert!(super::date_time(b).is_none(), "{b}");
        }
    }
}
