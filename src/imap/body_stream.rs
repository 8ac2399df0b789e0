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
    /// The sink's first refusal: the rest of the body is read and dropped
    /// (the session stays in step), then the command fails with it.
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
    let words: Vec<&str> = items.split(' ').collect();
    let fetch = words.len() >= 4
        && words[0].bytes().all(|b| b.is_ascii_digit())
        && words[1].eq_ignore_ascii_case("FETCH")
        && words[2].starts_with('(');
    fetch
        && words.last().is_some_and(|w| w.eq_ignore_ascii_case(item))
        && words[2..words.len() - 1]
            .windows(2)
            .any(|w| w[0].trim_start_matches('(').eq_ignore_ascii_case("UID") && w[1] == uid)
}

impl Operation for BodyStreamOp<'_> {
    type Output = (Batch, Option<StreamedBody>);

    fn start(&mut self, s: &mut ImapSession, out: &mut Outbox) -> Step<Self::Output> {
        match self.inner.start(s, out) {
            Step::Continue => Step::Continue,
            Step::Done(r) => Step::Done(r.map(|b| (b, None))),
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
            Step::Done(r) => Step::Done(match self.refused.take() {
                Some(e) => Err(e),
                None => r.map(|b| {
                    let streamed = match self.state {
                        State::Delivered(d) => Some(d),
                        _ => None,
                    };
                    (b, streamed)
                }),
            }),
        }
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
        self.inner.on_closed(s).map(|r| r.map(|b| (b, None)))
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

    #[test]
    fn only_the_wanted_uids_body_is_streamed() {
        let yes = |f: &[u8]| is_body_of(f, "7", "BODY[]");
        assert!(yes(b"* 3 FETCH (UID 7 BODY[] {5000000}\r\n"));
        assert!(yes(b"* 3 fetch (uid 7 FLAGS (\\Seen) body[] {5000000}\r\n"));
        assert!(yes(b"* 3 FETCH (FLAGS () UID 7 BODY[] {5000000+}\r\n"));
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
        ] {
            assert!(!yes(no), "{}", String::from_utf8_lossy(no));
        }
    }
}
