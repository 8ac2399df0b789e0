//! A FETCH whose message body goes to a sink as it arrives instead of
//! being kept: IMAPRecvMessage into a host that takes an out-value in
//! pieces (ABI 1.2) then never holds a 50 MB body in the plugin.

use super::codec::Response;
use super::family::{Batch, BatchOp};
use super::session::{ImapSession, Operation, Outbox, Step};
use crate::error::MailError;
use std::time::Instant;

/// Bodies from this size on are streamed; smaller ones arrive in their
/// frame (one host call, and no pieces to track).
pub const STREAM_MIN: u64 = 1024 * 1024;

/// Where a streamed body goes.
pub trait BodySink {
    /// A body of `size` bytes starts; its pieces follow.
    fn begin(&mut self, size: u64) -> Result<(), MailError>;
    fn piece(&mut self, bytes: &[u8]) -> Result<(), MailError>;
}

/// Which of the batch's data frames held the streamed body (its place
/// there is an empty literal), and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamedBody {
    pub frame: usize,
    pub size: u64,
}

/// What the operation ends with.
#[derive(Debug)]
pub struct Fetched {
    pub batch: Batch,
    pub streamed: Option<StreamedBody>,
    /// The sink's refusal. Not an error of the operation: the exchange
    /// ended in step, so the session stays usable.
    pub refused: Option<MailError>,
}

enum State {
    /// No body streamed yet.
    Waiting,
    Streaming {
        size: u64,
        got: u64,
    },
    /// All its bytes went to the sink; the next data frame is its frame.
    Ended {
        size: u64,
    },
    Delivered(StreamedBody),
}

pub struct BodyStreamOp<'a> {
    inner: BatchOp,
    uid: String,
    /// The item whose literal is streamed, as in the reply: `BODY[]`.
    item: String,
    sink: &'a mut dyn BodySink,
    state: State,
    /// The sink's first refusal: the rest of the body is read and dropped,
    /// so the session stays in step.
    refused: Option<MailError>,
}

impl<'a> BodyStreamOp<'a> {
    /// Streams `item`'s literal (`BODY[]`) of message `uid` from the
    /// replies to `inner`'s commands.
    pub fn new(inner: BatchOp, uid: u32, item: &str, sink: &'a mut dyn BodySink) -> Self {
        BodyStreamOp {
            inner,
            uid: uid.to_string(),
            item: item.to_string(),
            sink,
            state: State::Waiting,
            refused: None,
        }
    }

    fn fetched(&mut self, batch: Batch) -> Fetched {
        Fetched {
            batch,
            streamed: match self.state {
                State::Delivered(d) => Some(d),
                _ => None,
            },
            refused: self.refused.take(),
        }
    }

    fn refuse(&mut self, r: Result<(), MailError>) {
        if let (Err(e), None) = (r, &self.refused) {
            self.refused = Some(e);
        }
    }
}

/// Whether `frame` (up to its `{size}` line) is `* n FETCH (... UID uid
/// ... item {size}`, with no literal before. The UID must come before the
/// body: otherwise the body is kept in its frame as usual. The whole frame
/// is checked again once decoded.
fn is_body_of(frame: &[u8], uid: &str, item: &str) -> bool {
    let Some(open) = frame.iter().rposition(|&b| b == b'{') else {
        return false;
    };
    let head = &frame[..open];
    let Some(items) = head
        .strip_prefix(b"* ")
        .and_then(|r| r.strip_suffix(b" "))
        .filter(|r| !r.contains(&b'\n'))
        .and_then(|r| std::str::from_utf8(r).ok())
    else {
        return false;
    };
    let words = match atoms(items) {
        Some(w) => w,
        None => return false,
    };
    let fetch = words.len() >= 4
        && words[0].0 == 0
        && words[0].1.bytes().all(|b| b.is_ascii_digit())
        && words[1].0 == 0
        && words[1].1.eq_ignore_ascii_case("FETCH")
        && words[2].0 == 1;
    let Some(&(last_depth, last)) = words.last().filter(|_| fetch) else {
        return false;
    };
    if last_depth != 1 || !last.eq_ignore_ascii_case(item) {
        return false;
    }
    // `UID uid` as an item of the FETCH list itself (depth 1), not inside
    // FLAGS (...), another item's list or a quoted string.
    words[2..words.len() - 1].windows(2).any(|pair| {
        let ((d1, a), (d2, b)) = (pair[0], pair[1]);
        d1 == 1 && d2 == 1 && a.eq_ignore_ascii_case("UID") && b == uid
    })
}

/// The atoms of a FETCH line with their parenthesis depth; a quoted string
/// is one atom `""` (its contents are data). None when quotes or
/// parentheses do not balance so far.
fn atoms(text: &str) -> Option<Vec<(i32, &str)>> {
    let bytes = text.as_bytes();
    let (mut out, mut depth, mut i) = (Vec::new(), 0i32, 0);
    while i < bytes.len() {
        match bytes[i] {
            b' ' => i += 1,
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
                i += 1;
            }
            b'"' => {
                i += 1;
                loop {
                    match bytes.get(i)? {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
                out.push((depth, "\"\""));
            }
            _ => {
                let start = i;
                // An atom may hold brackets: BODY[HEADER.FIELDS (FROM)] is
                // kept whole up to its closing bracket.
                let mut bracket = 0;
                while i < bytes.len() {
                    match bytes[i] {
                        b'[' => bracket += 1,
                        b']' => bracket -= 1,
                        b' ' | b'(' | b')' | b'"' if bracket <= 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
                out.push((depth, &text[start..i]));
            }
        }
    }
    Some(out)
}

impl Operation for BodyStreamOp<'_> {
    type Output = Fetched;

    fn start(&mut self, s: &mut ImapSession, out: &mut Outbox) -> Step<Self::Output> {
        match self.inner.start(s, out) {
            Step::Continue => Step::Continue,
            Step::Done(r) => Step::Done(r.map(|b| self.fetched(b))),
        }
    }

    fn on_response(
        &mut self,
        s: &mut ImapSession,
        r: Response,
        out: &mut Outbox,
    ) -> Step<Self::Output> {
        if let (State::Ended { size }, Response::Other(_)) = (&self.state, &r) {
            self.state = State::Delivered(StreamedBody {
                frame: self.inner.data_len(),
                size: *size,
            });
        }
        match self.inner.on_response(s, r, out) {
            Step::Continue => Step::Continue,
            Step::Done(r) => Step::Done(r.map(|b| self.fetched(b))),
        }
    }

    fn on_tls(&mut self, s: &mut ImapSession, out: &mut Outbox) -> Step<Self::Output> {
        match self.inner.on_tls(s, out) {
            Step::Continue => Step::Continue,
            Step::Done(r) => Step::Done(r.map(|b| self.fetched(b))),
        }
    }

    fn on_timeout(&mut self, s: &mut ImapSession, out: &mut Outbox) -> Step<Self::Output> {
        match self.inner.on_timeout(s, out) {
            Step::Continue => Step::Continue,
            Step::Done(r) => Step::Done(r.map(|b| self.fetched(b))),
        }
    }

    fn in_sasl(&self) -> bool {
        self.inner.in_sasl()
    }

    fn reports_updates(&self) -> bool {
        self.inner.reports_updates()
    }

    fn waiting_for(&self) -> String {
        self.inner.waiting_for()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn on_cancel(&mut self, out: &mut Outbox) -> bool {
        self.inner.on_cancel(out)
    }

    fn on_closed(&mut self, s: &mut ImapSession) -> Option<Result<Self::Output, MailError>> {
        self.inner.on_closed(s).map(|r| r.map(|b| self.fetched(b)))
    }

    fn stream_literal(&mut self, frame: &[u8], size: u64) -> bool {
        if !matches!(self.state, State::Waiting)
            || size < STREAM_MIN
            || !is_body_of(frame, &self.uid, &self.item)
        {
            return false;
        }
        self.state = State::Streaming { size, got: 0 };
        let r = self.sink.begin(size);
        self.refuse(r);
        true
    }

    fn on_literal_piece(&mut self, piece: &[u8]) {
        let State::Streaming { size, got } = &mut self.state else {
            return;
        };
        *got += piece.len() as u64;
        let (size, done) = (*size, *got >= *size);
        if self.refused.is_none() {
            let r = self.sink.piece(piece);
            self.refuse(r);
        }
        if done {
            self.state = State::Ended { size };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::codec::{Fragmentizer, FrameLimits};
    use crate::imap::driver::{run, Transport};
    use crate::imap::family::Needs;
    use crate::imap::session::{CommandLine, Phase};
    use crate::imap::simple::NoopOp;
    use crate::imap::transcript::Seen;
    use std::time::Duration;

    /// A server that sends `bytes` in reads of at most `chunk` bytes, then
    /// closes; what the client sends is only kept.
    struct Chunked {
        bytes: Vec<u8>,
        chunk: usize,
        now: Instant,
    }

    impl Transport for Chunked {
        fn send(&mut self, _: &[u8]) -> Result<(), MailError> {
            Ok(())
        }
        fn recv(&mut self, _: Option<Instant>) -> Result<Option<Vec<u8>>, MailError> {
            if self.bytes.is_empty() {
                return Err(MailError::Closed("end of script".into()));
            }
            let n = self.chunk.min(self.bytes.len());
            Ok(Some(self.bytes.drain(..n).collect()))
        }
        fn start_tls(&mut self, _: u64, _: Option<Instant>) -> Result<String, MailError> {
            unreachable!()
        }
        fn now(&self) -> Instant {
            self.now
        }
    }

    #[derive(Default)]
    struct Collect {
        size: Option<u64>,
        body: Vec<u8>,
        pieces: usize,
        /// Refuse from this piece on.
        refuse_at: Option<usize>,
    }

    impl BodySink for Collect {
        fn begin(&mut self, size: u64) -> Result<(), MailError> {
            self.size = Some(size);
            Ok(())
        }
        fn piece(&mut self, bytes: &[u8]) -> Result<(), MailError> {
            self.pieces += 1;
            if self.refuse_at.is_some_and(|n| self.pieces >= n) {
                return Err(MailError::BadList("the host refused more (-508)".into()));
            }
            self.body.extend_from_slice(bytes);
            Ok(())
        }
    }

    fn body(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"abcdefghij\r\n"[i % 12]).collect()
    }

    fn fetch_reply(head: &str, body: &[u8], tail: &str) -> Vec<u8> {
        let mut v = format!("{head}{{{}}}\r\n", body.len()).into_bytes();
        v.extend_from_slice(body);
        v.extend_from_slice(tail.as_bytes());
        v
    }

    type Outcome = Result<Fetched, MailError>;

    fn fetch(
        server: Vec<u8>,
        sink: &mut Collect,
    ) -> (Outcome, Seen, ImapSession, Fragmentizer, Chunked) {
        let mut t = Chunked {
            bytes: server,
            chunk: 64 * 1024,
            now: Instant::now(),
        };
        let mut s = ImapSession::new(Duration::from_secs(5));
        s.phase = Phase::Selected("INBOX".into());
        let mut f = Fragmentizer::new(FrameLimits::default());
        let mut seen = Seen::default();
        let line = CommandLine::new("UID FETCH").raw("7 (UID BODY.PEEK[])");
        let inner = BatchOp::new("UID FETCH 7", Needs::Selected, vec![line]);
        let mut op = BodyStreamOp::new(inner, 7, "BODY[]", sink);
        let r = run(&mut op, &mut s, &mut f, &mut t, &mut seen);
        (r, seen, s, f, t)
    }

    #[test]
    fn a_large_body_reaches_the_sink_in_pieces_and_not_the_batch() {
        let want = body(3 << 20);
        let server = fetch_reply("* 1 FETCH (UID 7 BODY[] ", &want, ")\r\nA0001 OK done\r\n");
        let mut sink = Collect::default();
        let (r, seen, ..) = fetch(server, &mut sink);
        let Fetched {
            batch,
            streamed,
            refused,
        } = r.unwrap();
        assert!(refused.is_none());
        assert_eq!(sink.size, Some(want.len() as u64));
        assert!(sink.body == want, "the body arrives exactly");
        assert!(sink.pieces >= 40, "in reads, not at once: {}", sink.pieces);
        assert_eq!(
            streamed,
            Some(StreamedBody {
                frame: 0,
                size: want.len() as u64
            })
        );
        assert_eq!(batch.data[0], b"1 FETCH (UID 7 BODY[] {0}\r\n)");
        let shown = format!(
            "* 1 FETCH (UID 7 BODY[] {{{0}}}\r\n<{0} bytes>)",
            want.len()
        );
        assert_eq!(seen.responses[0], shown, "shown as if kept");
        let progress = seen.status.iter().filter(|m| m.starts_with("Receiving"));
        assert!(progress.count() >= 5, "progress in tenths");
    }

    #[test]
    fn a_refusing_sink_fails_the_command_and_the_session_stays_in_step() {
        let want = body(2 << 20);
        let mut server = fetch_reply("* 1 FETCH (UID 7 BODY[] ", &want, ")\r\nA0001 OK done\r\n");
        server.extend_from_slice(b"A0002 OK noop\r\n");
        let mut sink = Collect {
            refuse_at: Some(2),
            ..Collect::default()
        };
        let (r, mut seen, mut s, mut f, mut t) = fetch(server, &mut sink);
        let refused = r.unwrap().refused;
        assert!(
            matches!(refused, Some(MailError::BadList(_))),
            "{refused:?}"
        );
        assert!(
            sink.pieces == 2 && s.broken.is_none(),
            "no piece after the refusal"
        );
        run(&mut NoopOp::default(), &mut s, &mut f, &mut t, &mut seen).unwrap();
    }

    #[test]
    fn small_bodies_and_bodies_before_their_uid_stay_in_the_frame() {
        for (head, n, tail) in [
            (
                "* 1 FETCH (UID 7 BODY[] ",
                (STREAM_MIN - 1) as usize,
                ")\r\n",
            ),
            ("* 1 FETCH (BODY[] ", 2 << 20, " UID 7)\r\n"),
            ("* 1 FETCH (UID 8 BODY[] ", 2 << 20, ")\r\n"),
        ] {
            let want = body(n);
            let mut server = fetch_reply(head, &want, tail);
            server.extend_from_slice(b"A0001 OK done\r\n");
            let mut sink = Collect::default();
            let Fetched {
                batch, streamed, ..
            } = fetch(server, &mut sink).0.unwrap();
            assert_eq!((sink.size, streamed), (None, None), "{head}");
            assert!(batch.data[0].len() > n, "the body stays in its frame");
        }
    }

    #[test]
    fn a_close_in_the_middle_of_a_streamed_body_is_an_error() {
        let want = body(2 << 20);
        let mut server = fetch_reply("* 1 FETCH (UID 7 BODY[] ", &want, "");
        server.truncate(server.len() - 1000);
        let mut sink = Collect::default();
        let (r, _, s, ..) = fetch(server, &mut sink);
        assert!(matches!(r, Err(MailError::Closed(_))), "{r:?}");
        assert!(s.broken.is_some() && sink.body.len() < want.len());
    }

    #[test]
    fn any_frame_head_is_answered_without_a_panic() {
        // Frame heads made of the bytes that matter to the scan.
        let alphabet = b"* FETCH(UID7)\\\"[]{}0 BODY";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut head = b"* ".to_vec();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for k in 0..(seed % 40) {
                head.push(alphabet[((seed >> (k % 50)) as usize + k as usize) % alphabet.len()]);
            }
            head.extend_from_slice(b" {5000000}\r\n");
            let _ = is_body_of(&head, "7", "BODY[]");
        }
    }

    #[test]
    fn only_the_wanted_uids_body_is_streamed() {
        let yes = |f: &[u8]| is_body_of(f, "7", "BODY[]");
        assert!(yes(b"* 3 FETCH (UID 7 BODY[] {5000000}\r\n"));
        assert!(yes(b"* 3 fetch (uid 7 FLAGS (\\Seen) body[] {5000000}\r\n"));
        assert!(yes(b"* 3 FETCH (FLAGS () UID 7 BODY[] {5000000+}\r\n"));
        assert!(yes(
            b"* 3 FETCH (FLAGS (\\Seen $x) UID 7 BODY[] {5000000}\r\n"
        ));
        // Quoted strings are data: their parentheses and words do not count.
        assert!(yes(
            b"* 3 FETCH (X-A \"a) \\\" (b\" UID 7 BODY[] {5000000}\r\n"
        ));
        assert!(yes(
            b"* 3 FETCH (BODY[HEADER.FIELDS (FROM)] NIL UID 7 BODY[] {5000000}\r\n"
        ));
        for no in [
            &b"* 3 FETCH (UID 8 BODY[] {5000000}\r\n"[..],
            b"* 3 FETCH (UID 77 BODY[] {5000000}\r\n",
            b"* 3 FETCH (BODY[] {5000000}\r\n",
            b"* 3 FETCH (BODY[HEADER] {9}\r\n UID 7 xx BODY[] {5000000}\r\n",
            b"* 3 FETCH (UID 7 BODY[HEADER] {5000000}\r\n",
            b"* 3 FETCH (UID 7 BODY[]{5000000}\r\n",
            b"* 3 EXISTS (UID 7 BODY[] {5000000}\r\n",
            b"a1 FETCH (UID 7 BODY[] {5000000}\r\n",
            b"* x FETCH (UID 7 BODY[] {5000000}\r\n",
            b"UID 7 BODY[] {5000000}\r\n",
            b"* 3 FETCH (FLAGS (UID 7 $x) UID 8 BODY[] {5000000}\r\n",
            b"* 3 FETCH (X-LABELS (\\Inbox UID) 7 BODY[] {5000000}\r\n",
            b"* 3 FETCH (X-A \"a UID 7 b\" UID 8 BODY[] {5000000}\r\n",
            b"* 3 FETCH (X-A \"open UID 7 BODY[] {5000000}\r\n",
            b"* 3 FETCH (X-A \"x\") UID 7 BODY[] {5000000}\r\n",
            b"*  {5000000}\r\n",
            b"* ( {5000000}\r\n",
            b"* \" {5000000}\r\n",
        ] {
            assert!(!yes(no), "{}", String::from_utf8_lossy(no));
        }
    }
}
