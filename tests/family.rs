//! The IMAP command family against a real Dovecot holding fixture mail
//! stores written by the harness. Each test uses its own user (u1..u30).

mod support;

use plugin_abi::host::{HostValue, Tri};
use support::dovecot::PASSWORD;
use support::*;

const PLAIN: &[u8] = b"From: Ann <ann@example.com>\r\nTo: Bob <bob@example.com>\r\nSubject: plain\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <p1@example.com>\r\n\r\nHello Bob.\r\n";
const MULTIPART: &[u8] = b"From: Ann <ann@example.com>\r\nTo: Bob <bob@example.com>\r\nSubject: multipart\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nbody\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--XX--\r\n";
const EIGHT_BIT: &[u8] = "From: Ann <ann@example.com>\r\nTo: Bob <bob@example.com>\r\nSubject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln, ünïcødé ✓\r\n".as_bytes();

fn login(user: &str) -> i64 {
    let (o, _) = connect(&local(dovecot().imap_port), user, PASSWORD, 0, true);
    assert!(o.code() > 0, "{}", status_text(&o));
    o.code()
}

fn call(cmd: &str, args: &mut [HostValue]) -> i64 {
    let o = env().plugin.call(cmd, args);
    if o.code() < 0 {
        eprintln!("{cmd} -> {}: {}", o.code(), env().plugin.last_error());
    }
    o.code()
}

fn rows(v: &HostValue) -> Vec<Vec<HostValue>> {
    match v {
        HostValue::List(l) => l.rows.clone(),
        other => panic!("not a list: {other:?}"),
    }
}

fn text(v: &HostValue) -> String {
    match v {
        HostValue::Character(s) => s.clone(),
        other => panic!("not text: {other:?}"),
    }
}

fn int(v: &HostValue) -> i64 {
    match v {
        HostValue::Integer(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// SELECT; returns (messages, recent, uidnext, uidvalidity, unseen).
fn select(sock: i64, mailbox: &str) -> (i64, [i64; 5]) {
    let mut a = [i(sock), s(mailbox), i(0), i(0), i(0), i(0), i(0)];
    let rc = call("IMAPSelectMailbox", &mut a);
    (
        rc,
        [int(&a[2]), int(&a[3]), int(&a[4]), int(&a[5]), int(&a[6])],
    )
}

fn messages(sock: i64) -> Vec<Vec<HostValue>> {
    let mut a = [i(sock), list()];
    assert_eq!(call("IMAPListMessages", &mut a), 0);
    rows(&a[1])
}

fn recv(sock: i64, uid: i64, headers: bool) -> (i64, Vec<u8>) {
    let mut a = [i(sock), i(uid), HostValue::Binary(vec![])];
    let rc = call(
        if headers {
            "IMAPRecvHeaders"
        } else {
            "IMAPRecvMessage"
        },
        &mut a,
    );
    match &a[2] {
        HostValue::Binary(b) => (rc, b.clone()),
        HostValue::Character(c) => (rc, c.as_bytes().to_vec()),
        other => panic!("{other:?}"),
    }
}

fn mailboxes(sock: i64, subscribed: bool, pattern: &str) -> Vec<String> {
    let mut a = [i(sock), s(""), s(pattern), list()];
    let cmd = if subscribed {
        "IMAPListSubscribedMailboxes"
    } else {
        "IMAPListMailboxes"
    };
    assert_eq!(call(cmd, &mut a), 0);
    rows(&a[3]).iter().map(|r| text(&r[0])).collect()
}

#[test]
fn select_list_and_receive_fixture_messages() {
    let d = dovecot();
    d.seed(
        "u1",
        "INBOX",
        &[(PLAIN, "S"), (MULTIPART, "FR"), (EIGHT_BIT, "")],
    );
    let sock = login("u1");
    let (rc, [n, _recent, uidnext, uidvalidity, _unseen]) = select(sock, "INBOX");
    assert_eq!(rc, 0);
    assert_eq!(n, 3);
    assert!(uidnext >= 4 && uidvalidity > 0, "{uidnext} {uidvalidity}");

    let rows = messages(sock);
    assert_eq!(rows.len(), 3);
    let mut seen_bodies = vec![];
    for r in &rows {
        let uid = int(&r[0]);
        let (rc, body) = recv(sock, uid, false);
        assert_eq!(rc, 0);
        assert_eq!(
            int(&r[1]) as usize,
            body.len(),
            "Size column is the exact size"
        );
        assert!(!text(&r[2]).is_empty(), "InternalDate");
        let flag = |i: usize| r[i] == HostValue::Boolean(Tri::True);
        if body == PLAIN {
            assert!(flag(8) && !flag(6));
        } else if body == MULTIPART {
            assert!(flag(6) && flag(3) && !flag(8), "flagged + answered");
        } else {
            assert_eq!(body, EIGHT_BIT, "8-bit bytes arrive exactly");
        }
        seen_bodies.push(body);
        let (rc, head) = recv(sock, uid, true);
        assert_eq!(rc, 0);
        assert!(seen_bodies.last().unwrap().starts_with(&head) && head.ends_with(b"\r\n\r\n"));
    }
    assert_eq!(recv(sock, 999, false).0, -1129);
    assert_eq!(
        recv(sock, 999, true).0,
        -1129,
        "IMAPRecvHeaders: the same code as IMAPRecvMessage"
    );
    assert_eq!(call("IMAPCheck", &mut [i(sock)]), 0);
    assert_eq!(disconnect(sock).code(), 0);
}

/// Every command that works on the selected mailbox, with valid arguments:
/// each must return -1128 when none is selected.
fn assert_not_selected(sock: i64) {
    let t = HostValue::Boolean(Tri::True);
    let calls: Vec<(&str, Vec<HostValue>)> = vec![
        ("IMAPSetMessageFlags", vec![i(sock), i(1), t]),
        ("IMAPCopyMessage", vec![i(sock), i(1), s("INBOX")]),
        ("IMAPSearch", vec![i(sock), s("ALL"), list()]),
        ("IMAPListMessages", vec![i(sock), list()]),
        ("IMAPCheck", vec![i(sock)]),
        ("IMAPExpungeMessages", vec![i(sock)]),
    ];
    for (cmd, mut args) in calls {
        assert_eq!(call(cmd, &mut args), -1128, "{cmd}");
    }
    assert_eq!(recv(sock, 1, false).0, -1128, "IMAPRecvMessage");
    assert_eq!(recv(sock, 1, true).0, -1128, "IMAPRecvHeaders");
}

#[test]
fn commands_that_need_a_selected_mailbox_say_so() {
    let sock = login("u2");
    assert_eq!(call("IMAPListMessages", &mut [i(sock), list()]), -1128);
    assert_eq!(call("IMAPCheck", &mut [i(sock)]), -1128);
    assert_eq!(call("IMAPExpungeMessages", &mut [i(sock)]), -1128);
    assert_eq!(recv(sock, 1, false).0, -1128);
    assert_not_selected(sock);
    assert_eq!(select(sock, "No Such Box").0, -1126);
    assert!(
        env().plugin.last_error().contains("SELECT"),
        "{}",
        env().plugin.last_error()
    );
    assert_eq!(call("IMAPSelectMailbox", &mut [i(sock), s("")]), -1132);
    assert_eq!(
        call("IMAPSelectMailbox", &mut [i(sock), s("a\r\nb")]),
        -1132
    );
    // The socket is still usable after those refusals.
    assert_eq!(select(sock, "INBOX").0, 0);
    assert_eq!(call("IMAPSearch", &mut [i(sock), s("ALL"), list()]), 0);
    // A failed SELECT leaves no mailbox selected, even after a good one.
    assert_eq!(select(sock, "No Such Box").0, -1126);
    assert_not_selected(sock);
    assert_eq!(select(sock, "INBOX").0, 0);
    assert_eq!(disconnect(sock).code(), 0);
    assert_eq!(call("IMAPCheck", &mut [i(sock)]), -509);
    // Every other command on the freed socket too (valid arguments: a bad
    // value would be -1132 first).
    let t = HostValue::Boolean(Tri::True);
    let calls: Vec<(&str, Vec<HostValue>)> = vec![
        ("IMAPNoOp", vec![i(sock)]),
        ("IMAPSelectMailbox", vec![i(sock), s("INBOX")]),
        ("IMAPListMessages", vec![i(sock), list()]),
        (
            "IMAPRecvMessage",
            vec![i(sock), i(1), HostValue::Binary(vec![])],
        ),
        (
            "IMAPRecvHeaders",
            vec![i(sock), i(1), HostValue::Binary(vec![])],
        ),
        ("IMAPSetMessageFlags", vec![i(sock), i(1), t]),
        ("IMAPCopyMessage", vec![i(sock), i(1), s("INBOX")]),
        ("IMAPExpungeMessages", vec![i(sock)]),
        ("IMAPSearch", vec![i(sock), s("ALL"), list()]),
        ("IMAPListMailboxes", vec![i(sock), s(""), s("*"), list()]),
        (
            "IMAPListSubscribedMailboxes",
            vec![i(sock), s(""), s("*"), list()],
        ),
        ("IMAPCreateMailbox", vec![i(sock), s("New")]),
        ("IMAPDeleteMailbox", vec![i(sock), s("New")]),
        ("IMAPRenameMailbox", vec![i(sock), s("New"), s("Newer")]),
        ("IMAPSubscribeMailbox", vec![i(sock), s("INBOX")]),
        ("IMAPUnsubscribeMailbox", vec![i(sock), s("INBOX")]),
        (
            "IMAPAppendMessage",
            vec![i(sock), s("INBOX"), HostValue::Binary(PLAIN.to_vec())],
        ),
        ("IMAPIdle", vec![i(sock), i(1), list()]),
        ("IMAPDisconnect", vec![i(sock)]),
    ];
    for (cmd, mut args) in calls {
        assert_eq!(call(cmd, &mut args), -509, "{cmd}");
    }
    assert_eq!(
        call("IMAPSelectMailbox", &mut [i(sock), s("")]),
        -1132,
        "argument values are checked before the socket"
    );
}

#[test]
fn mailbox_lifecycle_with_international_names() {
    let sock = login("u3");
    let delim = {
        let mut a = [i(sock), s(""), s(""), list()];
        assert_eq!(call("IMAPListMailboxes", &mut a), 0);
        text(&rows(&a[3])[0][1])
    };
    assert!(!delim.is_empty());
    let intl = "Entwürfe & Pläne 📬";
    assert_eq!(call("IMAPCreateMailbox", &mut [i(sock), s(intl)]), 0);
    let nested = format!("Projekte{delim}Köln");
    assert_eq!(call("IMAPCreateMailbox", &mut [i(sock), s(&nested)]), 0);
    let all = mailboxes(sock, false, "*");
    assert!(
        all.contains(&intl.to_string()) && all.contains(&nested),
        "{all:?}"
    );
    assert_eq!(
        call(
            "IMAPRenameMailbox",
            &mut [i(sock), s(intl), s("Archiv 2026")]
        ),
        0
    );
    let all = mailboxes(sock, false, "*");
    assert!(
        all.contains(&"Archiv 2026".to_string()) && !all.contains(&intl.to_string()),
        "{all:?}"
    );
    assert_eq!(
        call("IMAPSubscribeMailbox", &mut [i(sock), s("Archiv 2026")]),
        0
    );
    assert_eq!(mailboxes(sock, true, "*"), vec!["Archiv 2026".to_string()]);
    assert_eq!(
        call("IMAPUnsubscribeMailbox", &mut [i(sock), s("Archiv 2026")]),
        0
    );
    assert!(mailboxes(sock, true, "*").is_empty());
    assert_eq!(
        call("IMAPDeleteMailbox", &mut [i(sock), s("Archiv 2026")]),
        0
    );
    assert!(!mailboxes(sock, false, "*").contains(&"Archiv 2026".to_string()));
    assert_eq!(
        call("IMAPDeleteMailbox", &mut [i(sock), s("Archiv 2026")]),
        -1126
    );
    assert_eq!(
        call("IMAPCreateMailbox", &mut [i(sock), s(&nested)]),
        -1126,
        "exists already"
    );
    assert_eq!(
        call("IMAPRenameMailbox", &mut [i(sock), s("Nope"), s("Nope2")]),
        -1126
    );
    assert!(mailboxes(sock, false, "NothingMatches*").is_empty());
    // A server NO leaves the session usable.
    assert_eq!(call("IMAPNoOp", &mut [i(sock)]), 0);
    assert_eq!(select(sock, &nested).0, 0);
    // Deleting the selected mailbox leaves it first: the session survives.
    assert_eq!(call("IMAPDeleteMailbox", &mut [i(sock), s(&nested)]), 0);
    assert_eq!(call("IMAPNoOp", &mut [i(sock)]), 0);
    assert_eq!(
        call("IMAPCheck", &mut [i(sock)]),
        -1128,
        "no mailbox is selected now"
    );
    assert_eq!(disconnect(sock).code(), 0);
}

#[test]
fn flags_copy_expunge_and_append_round_trips() {
    let sock = login("u4");
    let date = "17-Jul-2024 02:44:25 -0700";
    let mut a = [
        i(sock),
        s("INBOX"),
        HostValue::Binary(EIGHT_BIT.to_vec()),
        s("\\Seen \\Flagged"),
        s(date),
    ];
    assert_eq!(call("IMAPAppendMessage", &mut a), 0);
    let mut a = [i(sock), s("INBOX"), HostValue::Binary(PLAIN.to_vec())];
    assert_eq!(call("IMAPAppendMessage", &mut a), 0);
    assert_eq!(
        call(
            "IMAPAppendMessage",
            &mut [i(sock), s("INBOX"), s("x"), s("(bad")]
        ),
        -1132
    );
    // Refused before anything goes out: a BAD could make the server read the body as commands.
    for (flags, date) in [
        ("\\Recent", ""),
        ("\\Bogus", ""),
        ("", "tomorrow"),
        ("", "17-Jul-2024 02:44:25"),
    ] {
        let mut a = [i(sock), s("INBOX"), s("x"), s(flags), s(date)];
        assert_eq!(call("IMAPAppendMessage", &mut a), -1132, "{flags} {date}");
    }
    assert_eq!(select(sock, "INBOX").0, 0);
    let rows = messages(sock);
    assert_eq!(rows.len(), 2);
    let (u1, u2) = (int(&rows[0][0]), int(&rows[1][0]));
    assert_eq!(
        recv(sock, u1, false),
        (0, EIGHT_BIT.to_vec()),
        "append then receive: same bytes"
    );
    // The same instant; servers may show it in their own zone.
    assert!(
        [date, "17-Jul-2024 09:44:25 +0000"].contains(&text(&rows[0][2]).as_str()),
        "{:?}",
        rows[0][2]
    );
    assert_eq!(rows[0][8], HostValue::Boolean(Tri::True));
    assert_eq!(rows[0][6], HostValue::Boolean(Tri::True));

    // kTrue adds, kFalse removes, kUnknown leaves.
    let t = HostValue::Boolean(Tri::True);
    let f = HostValue::Boolean(Tri::False);
    let u = HostValue::Boolean(Tri::Unknown);
    let mut a = [
        i(sock),
        i(u1),
        t.clone(),
        u.clone(),
        u.clone(),
        f.clone(),
        u.clone(),
    ];
    assert_eq!(call("IMAPSetMessageFlags", &mut a), 0);
    let r = &messages(sock)[0];
    assert_eq!(
        (&r[3], &r[6], &r[8]),
        (&t, &f, &t),
        "answered added, flagged removed, seen kept"
    );
    assert_eq!(
        call("IMAPSetMessageFlags", &mut [i(sock), i(424242), t.clone()]),
        -1129
    );

    assert_eq!(call("IMAPCreateMailbox", &mut [i(sock), s("Kopie")]), 0);
    assert_eq!(
        call("IMAPCopyMessage", &mut [i(sock), i(u2), s("Kopie")]),
        0
    );
    assert_eq!(
        call("IMAPCopyMessage", &mut [i(sock), i(u2), s("Nowhere")]),
        -1126
    );
    assert_eq!(
        call("IMAPCopyMessage", &mut [i(sock), i(777), s("Kopie")]),
        -1129
    );

    let mut a = [i(sock), i(u2), u.clone(), t.clone()];
    assert_eq!(call("IMAPSetMessageFlags", &mut a), 0);
    let mut a = [i(sock), s("st"), list()];
    assert_eq!(call("IMAPExpungeMessages", &mut a), 0);
    assert!(
        lines(&a[2]).iter().any(|l| l.ends_with("EXPUNGE")),
        "{:?}",
        lines(&a[2])
    );
    assert_eq!(messages(sock).len(), 1);

    assert_eq!(select(sock, "Kopie").1[0], 1);
    let copied = int(&messages(sock)[0][0]);
    assert_eq!(recv(sock, copied, false), (0, PLAIN.to_vec()));
    assert_eq!(disconnect(sock).code(), 0);
}

#[test]
fn search_returns_uids_with_unicode_criteria() {
    let d = dovecot();
    d.seed(
        "u5",
        "INBOX",
        &[(PLAIN, "S"), (EIGHT_BIT, ""), (MULTIPART, "")],
    );
    let sock = login("u5");
    assert_eq!(select(sock, "INBOX").0, 0);
    let search = |criteria: &str| {
        let mut a = [i(sock), s(criteria), list()];
        let rc = call("IMAPSearch", &mut a);
        (
            rc,
            if rc == 0 {
                rows(&a[2]).iter().map(|r| int(&r[0])).collect::<Vec<_>>()
            } else {
                vec![]
            },
        )
    };
    assert_eq!(search("ALL").1.len(), 3);
    assert_eq!(search("UNSEEN").1.len(), 2);
    assert_eq!(search("SUBJECT \"plain\"").1.len(), 1);
    assert_eq!(search("OR (SUBJECT plain) (SUBJECT multipart)").1.len(), 2);
    assert_eq!(
        search("BODY \"Grüße\"").1.len(),
        1,
        "non-ASCII goes as a UTF-8 literal"
    );
    assert_eq!(
        search("BODY Grüße").1.len(),
        1,
        "an unquoted non-ASCII word is sent as a string"
    );
    assert_eq!(search("ALL\r\nA1 DELETE INBOX").0, -1132);
    assert_eq!(search("(ALL").0, -1132);
    assert_eq!(search("NOSUCHKEY").0, -1126);
    // A typo next to non-ASCII text: an ordinary refusal, the socket stays usable.
    assert_eq!(search("SUBJCT \"Köln\"").0, -1126);
    assert_eq!(
        search("CHARSET UTF-8 BODY \"Grüße\"").1.len(),
        1,
        "CHARSET given once is not doubled"
    );
    assert_eq!(
        search("SUBJECT a{3}").0,
        0,
        "specials in a word go as a string"
    );
    assert_eq!(
        search(&"(".repeat(100_000)).0,
        -1132,
        "deep nesting is refused, not a crash"
    );
    assert_eq!(disconnect(sock).code(), 0);
}

#[test]
fn idle_sees_an_append_made_through_another_socket() {
    let watcher = login("u6");
    let writer = login("u6");
    assert_eq!(select(watcher, "INBOX").0, 0);
    let t0 = std::time::Instant::now();
    let idle = std::thread::spawn(move || {
        let mut a = [i(watcher), i(10), list()];
        let rc = call("IMAPIdle", &mut a);
        (
            rc,
            rows(&a[2]).iter().map(|r| text(&r[0])).collect::<Vec<_>>(),
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        call(
            "IMAPAppendMessage",
            &mut [i(writer), s("INBOX"), HostValue::Binary(PLAIN.to_vec())]
        ),
        0
    );
    let (rc, updates) = idle.join().unwrap();
    assert_eq!(rc, 0);
    assert!(updates.iter().any(|u| u.ends_with("EXISTS")), "{updates:?}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(8),
        "IDLE returned at the update, not the timeout"
    );
    // The session is usable after DONE.
    assert_eq!(call("IMAPNoOp", &mut [i(watcher)]), 0);
    // With nothing happening, IDLE ends at its timeout.
    let t0 = std::time::Instant::now();
    let mut a = [i(watcher), i(1), list()];
    assert_eq!(call("IMAPIdle", &mut a), 0);
    assert!(t0.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(disconnect(watcher).code(), 0);
    assert_eq!(disconnect(writer).code(), 0);
}

#[test]
fn idle_raises_an_update_event_for_an_append_made_through_another_socket() {
    // The IDLE caller's socket has an event proc (IMAPConnect's last argument).
    let mut args = vec![
        s(&local(dovecot().imap_port)),
        s("u13"),
        s(PASSWORD),
        HostValue::Proc("onStatus".into()),
        list(),
        i(0),
        TRUE,
        i(0),
        s(""),
        HostValue::Proc("onEvent".into()),
    ];
    let watcher = env().plugin.call("IMAPConnect", &mut args).code();
    assert!(watcher > 0, "{}", env().plugin.last_error());
    let writer = login("u13");
    assert_eq!(select(watcher, "INBOX").0, 0);
    let idle = std::thread::spawn(move || {
        let mut a = [i(watcher), i(10), list()];
        let o = env().plugin.call("IMAPIdle", &mut a);
        (o.code(), o.events)
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        call(
            "IMAPAppendMessage",
            &mut [i(writer), s("INBOX"), HostValue::Binary(PLAIN.to_vec())]
        ),
        0
    );
    let (rc, events) = idle.join().unwrap();
    assert_eq!(rc, 0);
    let updates: Vec<_> = events.iter().filter(|e| e.kind == "UPDATE").collect();
    assert!(
        updates
            .iter()
            .any(|e| e.text == "1 EXISTS" && e.done == 1 && e.code == 0),
        "{events:?}"
    );
    assert!(events
        .iter()
        .all(|e| e.proc_name == "onEvent" && e.socket == watcher));
    // The IDLE command itself still ends with its COMMAND event.
    assert!(
        events.iter().any(|e| e.kind == "COMMAND" && e.code == 0),
        "{events:?}"
    );
    // Other commands see the same untagged data without UPDATE events.
    assert_eq!(
        call(
            "IMAPAppendMessage",
            &mut [i(writer), s("INBOX"), HostValue::Binary(PLAIN.to_vec())]
        ),
        0
    );
    let mut a = [i(watcher), s("st"), list()];
    let o = env().plugin.call("IMAPNoOp", &mut a);
    assert_eq!(o.code(), 0);
    assert!(lines(&a[2]).iter().any(|l| l == "* 2 EXISTS"), "{a:?}");
    assert!(
        o.events.iter().all(|e| e.kind != "UPDATE"),
        "{:?}",
        o.events
    );
    // The writer has no event proc: no events at all.
    assert!(disconnect(writer).events.is_empty());
    assert_eq!(disconnect(watcher).code(), 0);
}

#[test]
fn ten_thousand_messages_and_a_fifty_megabyte_one() {
    let d = dovecot();
    let many: Vec<Vec<u8>> = (0..10_000)
        .map(|n| {
            format!("From: a@example.com\r\nSubject: message {n}\r\n\r\nbody {n}\r\n").into_bytes()
        })
        .collect();
    let refs: Vec<(&[u8], &str)> = many.iter().map(|m| (m.as_slice(), "")).collect();
    d.seed("u7", "INBOX", &refs);
    let mut big = Vec::with_capacity(50 * 1024 * 1024 + 200);
    big.extend_from_slice(b"From: a@example.com\r\nSubject: big\r\n\r\n");
    let line =
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789abcd\r\n";
    while big.len() < 50 * 1024 * 1024 {
        big.extend_from_slice(line);
    }
    d.seed("u7", "Big", &[(&big, "")]);

    let sock = login("u7");
    assert_eq!(select(sock, "INBOX").1[0], 10_000);
    let rows = messages(sock);
    assert_eq!(rows.len(), 10_000);
    let uids: std::collections::HashSet<i64> = rows.iter().map(|r| int(&r[0])).collect();
    assert_eq!(uids.len(), 10_000);

    assert_eq!(select(sock, "Big").1[0], 1);
    let uid = int(&messages(sock)[0][0]);
    let mut a = [i(sock), i(uid), HostValue::Binary(vec![]), s("st"), list()];
    let o = env().plugin.call("IMAPRecvMessage", &mut a);
    assert_eq!(o.code(), 0);
    let progress: Vec<&str> = o
        .status
        .iter()
        .map(|m| m.message.as_str())
        .filter(|m| m.starts_with("Receiving"))
        .collect();
    assert!(
        progress.len() >= 5 && progress.len() <= 11,
        "progress in tenths: {progress:?}"
    );
    assert!(
        a[2] == HostValue::Binary(big.clone()),
        "50 MB arrive exactly"
    );
    let responses = lines(&a[4]);
    assert!(
        responses.iter().all(|l| l.len() < 4096),
        "the body is not copied into the response list"
    );
    let size = format!("{{{0}}}\r\n<{0} bytes>)", big.len());
    assert!(
        responses.iter().any(|l| l.contains(&size)),
        "the streamed body shows as its size: {responses:?}"
    );

    // A host built for ABI 1.1 has no append_output: the body comes in one
    // set_output, and so does a Character value.
    let older = plugin_abi::host::Plugin::load_as(&plugin_path(), 1, 1).unwrap();
    let mut a = [i(sock), i(uid), HostValue::Binary(vec![])];
    assert_eq!(older.call("IMAPRecvMessage", &mut a).code(), 0);
    assert!(a[2] == HostValue::Binary(big.clone()), "the same 50 MB");
    let mut a = [i(sock), i(uid), s("")];
    assert_eq!(call("IMAPRecvMessage", &mut a), 0);
    assert!(a[2] == HostValue::Character(String::from_utf8(big.clone()).unwrap()));
    assert_eq!(disconnect(sock).code(), 0);
}

#[test]
fn append_to_a_missing_mailbox_and_refused_subscriptions() {
    let sock = login("u8");
    let mut a = [
        i(sock),
        s("Nowhere"),
        HostValue::Binary(PLAIN.to_vec()),
        s(""),
        s(""),
        s("st"),
        list(),
    ];
    assert_eq!(call("IMAPAppendMessage", &mut a), -1126);
    let responses = lines(&a[6]);
    assert!(
        responses.iter().any(|l| l.contains(" NO [TRYCREATE] ")),
        "{responses:?}"
    );
    let detail = env().plugin.last_error();
    assert!(
        detail.contains("APPEND Nowhere") && !detail.contains("TRYCREATE"),
        "the detail has the command and the text, not the code: {detail}"
    );
    // A NO, not a BAD: the message was not read as commands, the session is usable.
    assert_eq!(call("IMAPNoOp", &mut [i(sock)]), 0);
    // What TRYCREATE asks for: create it, and the same append works.
    assert_eq!(call("IMAPCreateMailbox", &mut [i(sock), s("Nowhere")]), 0);
    a[6] = list();
    assert_eq!(call("IMAPAppendMessage", &mut a), 0);
    assert_eq!(select(sock, "Nowhere").1[0], 1);
    let uid = int(&messages(sock)[0][0]);
    assert_eq!(recv(sock, uid, false), (0, PLAIN.to_vec()));

    // Dovecot validates the name: it refuses to subscribe a mailbox that
    // does not exist, and either command for a name it cannot store
    // (levels are separated by ".": two in a row is an empty level).
    assert_eq!(
        call("IMAPSubscribeMailbox", &mut [i(sock), s("Not There")]),
        -1126
    );
    for cmd in ["IMAPSubscribeMailbox", "IMAPUnsubscribeMailbox"] {
        let mut a = [i(sock), s("Archiv..2025"), s("st"), list()];
        assert_eq!(call(cmd, &mut a), -1126, "{cmd}");
        let responses = lines(&a[3]);
        assert!(
            responses.iter().any(|l| l.contains(" NO ")),
            "{cmd}: {responses:?}"
        );
        assert!(
            env().plugin.last_error().contains("SUBSCRIBE Archiv..2025"),
            "{}",
            env().plugin.last_error()
        );
    }
    assert!(mailboxes(sock, true, "*").is_empty());
    // The refusals leave the session usable, with the mailbox still selected.
    assert_eq!(call("IMAPNoOp", &mut [i(sock)]), 0);
    assert_eq!(call("IMAPCheck", &mut [i(sock)]), 0);
    assert_eq!(disconnect(sock).code(), 0);
}

#[test]
fn an_empty_pattern_gives_the_delimiter_for_subscribed_mailboxes_too() {
    let sock = login("u9");
    assert_eq!(call("IMAPCreateMailbox", &mut [i(sock), s("Archiv")]), 0);
    assert_eq!(call("IMAPSubscribeMailbox", &mut [i(sock), s("Archiv")]), 0);
    let list_rows = |cmd: &str| {
        let mut a = [i(sock), s(""), s(""), list(), s("st"), list()];
        let o = env().plugin.call(cmd, &mut a);
        assert_eq!(o.code(), 0, "{cmd}: {}", env().plugin.last_error());
        let sent: Vec<String> = o
            .status
            .iter()
            .filter_map(|m| m.message.strip_prefix("C: "))
            .map(String::from)
            .collect();
        assert!(
            sent.len() == 1 && sent[0].ends_with(r#" LIST "" """#),
            "{cmd}: LSUB cannot answer an empty pattern, LIST does: {sent:?}"
        );
        rows(&a[3])
    };
    let subscribed = list_rows("IMAPListSubscribedMailboxes");
    assert_eq!(subscribed.len(), 1, "{subscribed:?}");
    let row = &subscribed[0];
    assert_eq!(text(&row[0]), "", "no name: the row is about the hierarchy");
    assert_eq!(text(&row[1]), ".", "Maildir++ separates levels with a dot");
    assert!(text(&row[2]).contains("\\Noselect"), "{row:?}");
    assert_eq!(list_rows("IMAPListMailboxes"), subscribed);
    // A pattern still lists the subscriptions (LSUB).
    assert_eq!(mailboxes(sock, true, "*"), vec!["Archiv".to_string()]);
    assert_eq!(disconnect(sock).code(), 0);
}

/// IMAPIdle on another thread: (return code, updates).
fn idle_in_background(sock: i64, secs: i64) -> std::thread::JoinHandle<(i64, Vec<String>)> {
    std::thread::spawn(move || {
        let mut a = [i(sock), i(secs), list()];
        let rc = call("IMAPIdle", &mut a);
        let updates = if rc == 0 {
            rows(&a[2]).iter().map(|r| text(&r[0])).collect()
        } else {
            vec![]
        };
        (rc, updates)
    })
}

#[test]
fn idle_sees_flag_changes_and_expunges_made_through_another_socket() {
    let d = dovecot();
    d.seed("u10", "INBOX", &[(PLAIN, ""), (MULTIPART, "")]);
    let watcher = login("u10");
    let writer = login("u10");
    assert_eq!(select(watcher, "INBOX").1[0], 2);
    assert_eq!(select(writer, "INBOX").1[0], 2);
    let uids: Vec<i64> = messages(writer).iter().map(|r| int(&r[0])).collect();
    let (first, second) = (uids[0], uids[1]);
    let t = HostValue::Boolean(Tri::True);
    let u = HostValue::Boolean(Tri::Unknown);

    // A flag set through the writer: the watcher hears `* 1 FETCH (... FLAGS (\Seen))`.
    let t0 = std::time::Instant::now();
    let idle = idle_in_background(watcher, 10);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut a = [
        i(writer),
        i(first),
        u.clone(),
        u.clone(),
        u.clone(),
        u.clone(),
        t.clone(),
    ];
    assert_eq!(call("IMAPSetMessageFlags", &mut a), 0);
    let (rc, updates) = idle.join().unwrap();
    assert_eq!(rc, 0);
    assert!(
        updates
            .iter()
            .any(|u| u.starts_with("1 FETCH ") && u.contains("\\Seen")),
        "{updates:?}"
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(8),
        "IDLE returned at the flag update, not the timeout"
    );

    // \Deleted on the second message; the watcher's NOOP collects that update,
    // so the next IDLE has only the expunge to hear about.
    let mut a = [i(writer), i(second), u.clone(), t.clone()];
    assert_eq!(call("IMAPSetMessageFlags", &mut a), 0);
    let mut a = [i(watcher), s("st"), list()];
    assert_eq!(call("IMAPNoOp", &mut a), 0);
    let noop = lines(&a[2]);
    assert!(
        noop.iter()
            .any(|l| l.starts_with("* 2 FETCH ") && l.contains("\\Deleted")),
        "{noop:?}"
    );

    let t0 = std::time::Instant::now();
    let idle = idle_in_background(watcher, 10);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(call("IMAPExpungeMessages", &mut [i(writer)]), 0);
    let (rc, updates) = idle.join().unwrap();
    assert_eq!(rc, 0);
    assert!(updates.iter().any(|u| u == "2 EXPUNGE"), "{updates:?}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(8),
        "IDLE returned at the expunge, not the timeout"
    );

    // The watcher's view after DONE: one message left, seen.
    let rows = messages(watcher);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(int(&rows[0][0]), first);
    assert_eq!(rows[0][8], t, "\\Seen");
    assert_eq!(recv(watcher, second, false).0, -1129, "expunged");
    assert_eq!(disconnect(watcher).code(), 0);
    assert_eq!(disconnect(writer).code(), 0);
}

#[test]
fn a_mailbox_stored_in_modified_utf7_is_listed_selected_and_appended_in_unicode() {
    let d = dovecot();
    // Folders written by the server side, under their wire names: "Entwürfe"
    // with one message, and "Köln" inside "Projekte".
    d.seed("u11", "Entw&APw-rfe", &[(PLAIN, "S")]);
    d.seed("u11", "Projekte.K&APY-ln", &[]);
    let sock = login("u11");

    let mut a = [i(sock), s(""), s("*"), list(), s("st"), list()];
    assert_eq!(call("IMAPListMailboxes", &mut a), 0);
    let names: Vec<String> = rows(&a[3]).iter().map(|r| text(&r[0])).collect();
    assert!(
        names.contains(&"Entwürfe".to_string()) && names.contains(&"Projekte.Köln".to_string()),
        "{names:?}"
    );
    let responses = lines(&a[5]);
    assert!(
        responses.iter().any(|l| l.contains("Entw&APw-rfe"))
            && responses.iter().any(|l| l.contains("Projekte.K&APY-ln")),
        "the server sent the wire form: {responses:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains('&')),
        "every name is decoded: {names:?}"
    );

    let (rc, [n, ..]) = select(sock, "Entwürfe");
    assert_eq!((rc, n), (0, 1));
    assert_eq!(
        recv(sock, int(&messages(sock)[0][0]), false),
        (0, PLAIN.to_vec())
    );
    let mut a = [
        i(sock),
        s("Entwürfe"),
        HostValue::Binary(EIGHT_BIT.to_vec()),
    ];
    assert_eq!(call("IMAPAppendMessage", &mut a), 0);
    assert_eq!(select(sock, "Entwürfe").1[0], 2);
    let rows = messages(sock);
    assert_eq!(rows.len(), 2);
    assert_eq!(recv(sock, int(&rows[1][0]), false), (0, EIGHT_BIT.to_vec()));
    // The appended message is in the folder the fixture made, not a new one.
    let files = |dir: std::path::PathBuf| {
        ["cur", "new"]
            .iter()
            .map(|sub| std::fs::read_dir(dir.join(sub)).map_or(0, |r| r.count()))
            .sum::<usize>()
    };
    assert_eq!(files(d.mailbox_dir("u11", "Entw&APw-rfe")), 2);
    assert_eq!(select(sock, "Projekte.Köln").1[0], 0);
    assert!(mailboxes(sock, false, "Projekte.%").contains(&"Projekte.Köln".to_string()));

    // And the other way: a name the plugin creates is stored in the same form.
    assert_eq!(
        call("IMAPCreateMailbox", &mut [i(sock), s("Pläne & Ideen")]),
        0
    );
    assert!(d.mailbox_dir("u11", "Pl&AOQ-ne &- Ideen").is_dir());
    assert_eq!(disconnect(sock).code(), 0);
}

#[test]
fn recv_headers_calls_its_out_argument_headers() {
    let p = &env().plugin;
    let (_, message) = p.command("IMAPRecvMessage").unwrap();
    let (_, headers) = p.command("IMAPRecvHeaders").unwrap();
    let names = |c: &plugin_abi::host::CommandInfo| {
        c.params.iter().map(|p| p.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(message),
        ["socket", "uid", "message", "stsproc", "responselist"]
    );
    assert_eq!(
        names(headers),
        ["socket", "uid", "headers", "stsproc", "responselist"]
    );
    // Only the name (and its description) differs: same kinds, same flags.
    for (m, h) in message.params.iter().zip(&headers.params) {
        assert_eq!(
            (m.kinds, m.flags, &m.default),
            (h.kinds, h.flags, &h.default)
        );
    }
    assert_eq!(
        (message.return_kind, message.flags),
        (headers.return_kind, headers.flags)
    );
    // Still required, and the -503 detail uses the new name.
    let sock = login("u12");
    assert_eq!(select(sock, "INBOX").0, 0);
    assert_eq!(call("IMAPRecvHeaders", &mut [i(sock), i(1)]), -503);
    assert!(
        p.last_error().contains("argument 3 (headers) is required"),
        "{}",
        p.last_error()
    );
    assert_eq!(call("IMAPRecvMessage", &mut [i(sock), i(1)]), -503);
    assert!(
        p.last_error().contains("argument 3 (message) is required"),
        "{}",
        p.last_error()
    );
    assert_eq!(disconnect(sock).code(), 0);
}
