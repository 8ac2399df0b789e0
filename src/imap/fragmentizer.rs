//! IMAP framing, free of I/O: `Fragmentizer` cuts the byte stream into
//! whole responses (a line, plus any `{n}` literals and the lines that
//! continue after them) with caps on line and literal size, so a hostile
//! server cannot make us buffer without bound.

use std::cell::Cell;

/// Caps on what one frame may hold.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// Longest line segment (between literals), CRLF included.
    pub max_line: usize,
    /// Largest literal announced by the server.
    pub max_literal: usize,
    /// Largest whole frame: a server chaining literals cannot exceed it.
    pub max_frame: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        // A line holds at most 8 MiB: enough for a SEARCH reply listing about a
        // million UIDs, and still bounded (a whole frame is capped below).
        FrameLimits {
            max_line: 8 * 1024 * 1024,
            max_literal: 64 * 1024 * 1024,
            max_frame: 65 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    LineTooLong { limit: usize },
    LiteralTooLarge { size: u64, limit: usize },
}

#[derive(Debug)]
pub struct Fragmentizer {
    buf: Vec<u8>,
    limits: FrameLimits,
    /// Start of the line segment being scanned (after any literal).
    segment_start: usize,
    /// Bytes the frames handed out so far held, in total.
    consumed: u64,
    /// The literal being received: (where its bytes start, its size).
    literal: Option<(usize, u64)>,
    /// How far the current line has been searched for its end.
    scanned: usize,
    /// A literal handed out in pieces (`drain_literal`) instead of kept.
    stream: Option<LiteralStream>,
    /// The streamed literal that ended in the frame being cut.
    finished: Option<Streamed>,
    /// Set when the frame last returned had a streamed literal.
    streamed: Option<Streamed>,
}

/// A literal being handed out as it arrives. In the buffer its `{n}` has
/// become `{0}`, so the frame that remains decodes as usual.
#[derive(Debug, Clone, Copy)]
struct LiteralStream {
    /// Where the literal's bytes start in the buffer.
    at: usize,
    /// Offset of the `{0}` placeholder in the frame.
    placeholder: usize,
    size: u64,
    remaining: u64,
}

/// Where a frame's streamed literal was: the frame holds `{0}` at `at`
/// in place of `size` bytes handed out in pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streamed {
    pub at: usize,
    pub size: u64,
}

/// Largest read buffer a thread keeps between commands.
const SPARE_MAX: usize = 512 * 1024;

thread_local! {
    /// One read buffer per calling thread, kept between its commands, so
    /// that a command does not allocate (and fault in) a fresh 64 KiB.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The placeholder a streamed literal leaves in its frame.
const PLACEHOLDER: &[u8] = b"{0}";

impl Fragmentizer {
    pub fn new(limits: FrameLimits) -> Self {
        Fragmentizer {
            buf: Vec::new(),
            limits,
            segment_start: 0,
            consumed: 0,
            literal: None,
            scanned: 0,
            stream: None,
            finished: None,
            streamed: None,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Lets a reader append to the buffer in place (no copy on the way in).
    pub fn fill<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        if self.buf.capacity() == 0 {
            self.buf = SPARE.try_with(Cell::take).unwrap_or_default();
        }
        f(&mut self.buf)
    }

    /// Gives up the read buffer when it holds nothing (between commands):
    /// an idle session keeps no read buffer, like OpenSSL's
    /// RELEASE_BUFFERS. The thread keeps one for its next command.
    pub fn release_idle(&mut self) {
        if self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            if buf.capacity() <= SPARE_MAX {
                let _ = SPARE.try_with(|spare| {
                    let kept = spare.take();
                    spare.set(if kept.capacity() >= buf.capacity() {
                        kept
                    } else {
                        buf
                    });
                });
            }
        }
    }

    /// Bytes received but not yet handed out as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// (received, announced) bytes of the literal still arriving, if any.
    pub fn literal_progress(&self) -> Option<(u64, u64)> {
        if let Some(s) = &self.stream {
            let here = (self.buf.len() - s.at) as u64;
            return Some(((s.size - s.remaining + here).min(s.size), s.size));
        }
        self.literal
            .map(|(start, size)| ((self.buf.len() - start) as u64, size))
    }

    /// Whether the frame last returned had a literal handed out in pieces,
    /// and where its placeholder is.
    pub fn streamed(&self) -> Option<Streamed> {
        self.streamed
    }

    /// Hands the streamed literal's bytes received so far to `piece` and
    /// drops them. True when that ended the literal: the rest of its frame
    /// can be cut now.
    pub fn drain_literal(&mut self, piece: impl FnOnce(&[u8])) -> bool {
        let Some(s) = &mut self.stream else {
            return false;
        };
        let here = (self.buf.len() - s.at).min(usize::try_from(s.remaining).unwrap_or(usize::MAX));
        if here > 0 {
            piece(&self.buf[s.at..s.at + here]);
            // Usually the whole buffer tail: a truncate, and the buffer is
            // reused for the next read, hot in the cache.
            self.buf.drain(s.at..s.at + here);
            s.remaining -= here as u64;
            self.consumed += here as u64;
        }
        if s.remaining > 0 {
            return false;
        }
        self.finished = Some(Streamed {
            at: s.placeholder,
            size: s.size,
        });
        self.stream = None;
        true
    }

    /// Total bytes handed out as frames.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        self.next_frame_with(&mut |_, _| false)
    }

    /// The same, asking `stream(frame so far, size)` about each literal:
    /// when it says yes, the literal's bytes are handed out through
    /// `drain_literal` as they arrive and not kept in the frame.
    pub fn next_frame_with(
        &mut self,
        stream: &mut dyn FnMut(&[u8], u64) -> bool,
    ) -> Result<Option<Vec<u8>>, FrameError> {
        if self.stream.is_some() {
            return Ok(None);
        }
        loop {
            // Resume the search where the last one stopped: long lines arrive
            // in many pieces and must not be rescanned each time.
            let from = self.scanned.max(self.segment_start);
            let seg = &self.buf[self.segment_start..];
            let Some(nl) =
                memchr::memchr(b'\n', &self.buf[from..]).map(|p| p + from - self.segment_start)
            else {
                self.scanned = self.buf.len();
                if seg.len() > self.limits.max_line {
                    return Err(FrameError::LineTooLong {
                        limit: self.limits.max_line,
                    });
                }
                return Ok(None);
            };
            if nl + 1 > self.limits.max_line {
                return Err(FrameError::LineTooLong {
                    limit: self.limits.max_line,
                });
            }
            let line_end = self.segment_start + nl + 1;
            // Status and continuation text may end in "{5}" without a literal.
            let literal = if self.segment_start == 0 && is_text_line(&self.buf[..line_end]) {
                None
            } else {
                literal_size(&self.buf[self.segment_start..line_end])
            };
            match literal {
                Some(size) => {
                    if size > self.limits.max_literal as u64 {
                        return Err(FrameError::LiteralTooLarge {
                            size,
                            limit: self.limits.max_literal,
                        });
                    }
                    let literal_end = line_end + size as usize;
                    // A literal streamed out of this frame still counts.
                    let frame_size = literal_end + self.finished.map_or(0, |f| f.size as usize);
                    if frame_size > self.limits.max_frame {
                        let limit = self.limits.max_frame;
                        return Err(FrameError::LiteralTooLarge {
                            size: frame_size as u64,
                            limit,
                        });
                    }
                    // One streamed literal per frame: it keeps one mark.
                    if self.literal.is_none()
                        && self.finished.is_none()
                        && stream(&self.buf[..line_end], size)
                    {
                        self.start_stream(line_end, size);
                        return Ok(None);
                    }
                    if self.buf.len() < literal_end {
                        if self.literal.is_none() {
                            // Room for the whole literal once, instead of doubling,
                            // and for the reply's tail (reads stop short of growing it).
                            self.buf
                                .reserve_exact(literal_end - self.buf.len() + LITERAL_TAIL_ROOM);
                            advise_huge_pages(&mut self.buf);
                        }
                        self.literal = Some((line_end, size));
                        return Ok(None);
                    }
                    self.literal = None;
                    self.segment_start = literal_end;
                    self.scanned = literal_end;
                }
                None => {
                    // The smaller part is copied: a frame that is most of
                    // the buffer (a message body) is taken, not copied.
                    let frame: Vec<u8> = if line_end == self.buf.len() && line_end < TAKE_MIN {
                        // A short reply: copied, so the read buffer is reused
                        // instead of a fresh 64 KiB one per reply.
                        let frame = self.buf.clone();
                        self.buf.clear();
                        frame
                    } else if line_end == self.buf.len() {
                        std::mem::take(&mut self.buf)
                    } else if line_end > self.buf.len() - line_end {
                        let rest = self.buf.split_off(line_end);
                        std::mem::replace(&mut self.buf, rest)
                    } else {
                        self.buf.drain(..line_end).collect()
                    };
                    self.segment_start = 0;
                    self.scanned = 0;
                    self.streamed = self.finished.take();
                    // Give back the memory a large literal needed.
                    if self.buf.capacity() > 1 << 20 && self.buf.len() < 1 << 16 {
                        self.buf.shrink_to(1 << 16);
                    }
                    self.consumed += frame.len() as u64;
                    return Ok(Some(frame));
                }
            }
        }
    }
}

impl Fragmentizer {
    /// Turns the literal announced by the line ending at `line_end` into a
    /// stream: its `{n}` becomes `{0}` and its bytes leave through
    /// `drain_literal`.
    fn start_stream(&mut self, line_end: usize, size: u64) {
        let line = &self.buf[self.segment_start..line_end];
        // literal_size found `{digits[+]}` right before the line end.
        let close = self.segment_start + line.iter().rposition(|&b| b == b'}').unwrap_or(0);
        let open = self.segment_start
            + line[..close - self.segment_start]
                .iter()
                .rposition(|&b| b == b'{')
                .unwrap_or(0);
        let header = close + 1 - open;
        self.buf.splice(open..=close, PLACEHOLDER.iter().copied());
        let at = line_end - header + PLACEHOLDER.len();
        self.consumed += (header - PLACEHOLDER.len()) as u64;
        self.stream = Some(LiteralStream {
            at,
            placeholder: open,
            size,
            remaining: size,
        });
        // The zero-length literal ends where the line does.
        self.segment_start = at;
        self.scanned = at;
    }
}

/// A frame that fills the buffer is taken whole from this size on, and
/// copied out below it.
const TAKE_MIN: usize = 16 * 1024;

/// Room kept after a literal for the rest of its response (`)`, the tagged
/// reply): reads fill spare room before asking for more (see reactor.rs).
const LITERAL_TAIL_ROOM: usize = 64 * 1024;

/// Literal buffers from this size on are worth backing with huge pages.
/// Above glibc's largest mmap threshold (32 MiB), so the buffer is its own
/// mapping and the hint leaves with it when it is freed.
const HUGE_PAGE_MIN: usize = 32 * 1024 * 1024 + 1;

/// Asks the kernel for transparent huge pages under a large literal's
/// buffer: a 50 MB body then takes ~25 page faults instead of ~12,800, which
/// on a VM is most of the kernel time of a fetch. Only a hint; no effect
/// where THP is off.
fn advise_huge_pages(buf: &mut Vec<u8>) {
    #[cfg(target_os = "linux")]
    if buf.capacity() >= HUGE_PAGE_MIN {
        // Whole 2 MiB huge pages inside the allocation only: both ends
        // rounded inwards, whatever the base page size.
        const HUGE: usize = 2 * 1024 * 1024;
        let start = buf.as_mut_ptr() as usize;
        let end = start + buf.capacity();
        let first = start.div_ceil(HUGE) * HUGE;
        let last = end / HUGE * HUGE;
        if last > first {
            // SAFETY: [first, last) lies inside the Vec's own allocation;
            // MADV_HUGEPAGE changes no contents, only how pages are backed.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                )
            };
        }
    }
}

/// A continuation or status response line: its text is never a literal.
fn is_text_line(line: &[u8]) -> bool {
    if line.starts_with(b"+") {
        return true;
    }
    let mut words = line.splitn(3, |&b| b == b' ');
    let word = words.nth(1).unwrap_or_default();
    [&b"OK"[..], b"NO", b"BAD", b"BYE", b"PREAUTH"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// `{n}` (or `{n+}`) right before the line end announces a literal of n bytes.
pub(crate) fn literal_size(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"\n")?;
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let body = body.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag() -> Fragmentizer {
        Fragmentizer::new(FrameLimits {
            max_line: 100,
            max_literal: 1000,
            max_frame: 1500,
        })
    }

    #[test]
    fn frames_split_across_pushes() {
        let mut f = frag();
        f.push(b"* OK hel");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"lo\r\na1 OK done\r\n* 3 EXI");
        assert_eq!(f.next_frame().unwrap().unwrap(), b"* OK hello\r\n");
        assert_eq!(f.next_frame().unwrap().unwrap(), b"a1 OK done\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        assert_eq!(f.buffered(), 7);
        assert_eq!(f.consumed(), 24);
    }

    #[test]
    fn literal_is_part_of_the_frame() {
        let mut f = frag();
        f.push(b"* 1 FETCH (BODY[] {5}\r\nab\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"c)\r\n* OK x\r\n");
        assert_eq!(
            f.next_frame().unwrap().unwrap(),
            b"* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\n"
        );
        assert_eq!(f.next_frame().unwrap().unwrap(), b"* OK x\r\n");
    }

    #[test]
    fn a_literal_is_given_room_once_with_its_tail() {
        let mut f = frag();
        f.push(b"* 1 FETCH (BODY[] {900}\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        let room = f.buf.capacity();
        assert!(room >= f.buf.len() + 900 + LITERAL_TAIL_ROOM);
        f.push(&[b'x'; 900]);
        f.push(b")\r\na1 OK done\r\n");
        assert_eq!(f.buf.capacity(), room, "the tail must not regrow the body");
        assert_eq!(f.next_frame().unwrap().unwrap().len(), 25 + 900 + 3);
    }

    #[test]
    fn short_replies_reuse_the_read_buffer_until_released() {
        let mut f = frag();
        f.fill(|b| {
            b.reserve(4096);
            b.extend_from_slice(b"a1 OK done\r\n");
        });
        let room = f.buf.capacity();
        assert_eq!(f.next_frame().unwrap().unwrap(), b"a1 OK done\r\n");
        assert_eq!(f.buf.capacity(), room, "a short reply is copied out");
        f.release_idle();
        assert_eq!(f.buf.capacity(), 0, "an idle session keeps no read buffer");
        let mut next = frag();
        next.fill(|b| assert_eq!(b.capacity(), room, "the thread's next command reuses it"));
        next.release_idle();
        let mut huge = frag();
        huge.buf = Vec::with_capacity(SPARE_MAX + 1);
        huge.release_idle();
        frag().fill(|b| assert_eq!(b.capacity(), room, "a huge buffer is not kept"));
    }

    #[test]
    fn chained_literals_cannot_exceed_the_frame_cap() {
        let mut f = frag();
        for _ in 0..3 {
            f.push(b"* 1 FETCH (A {900}\r\n");
            f.push(&[b'x'; 900]);
            if f.next_frame().is_err() {
                return;
            }
        }
        panic!("three 900-byte literals passed a 1500-byte frame cap");
    }

    #[test]
    fn status_text_ending_in_braces_is_not_a_literal() {
        let mut f = frag();
        f.push(b"* OK hello server {5}\r\n+ send {3}\r\nA1 NO sorry {2}\r\n");
        assert_eq!(
            f.next_frame().unwrap().unwrap(),
            b"* OK hello server {5}\r\n"
        );
        assert_eq!(f.next_frame().unwrap().unwrap(), b"+ send {3}\r\n");
        assert_eq!(f.next_frame().unwrap().unwrap(), b"A1 NO sorry {2}\r\n");
    }

    #[test]
    fn caps_are_enforced() {
        let mut f = frag();
        f.push(&[b'x'; 101]);
        assert_eq!(f.next_frame(), Err(FrameError::LineTooLong { limit: 100 }));
        let mut f = frag();
        f.push(b"* 1 FETCH (BODY[] {1001}\r\n");
        assert!(matches!(
            f.next_frame(),
            Err(FrameError::LiteralTooLarge { size: 1001, .. })
        ));
    }

    /// Streams the body of `* 1 FETCH (UID 7 BODY[] {size}` in pieces.
    fn body_only(prefix: &[u8], _: u64) -> bool {
        prefix.ends_with(b"BODY[] {12}\r\n")
    }

    fn drained(f: &mut Fragmentizer, out: &mut Vec<u8>) -> bool {
        f.drain_literal(|p| out.extend_from_slice(p))
    }

    #[test]
    fn a_streamed_literal_leaves_in_pieces_and_a_placeholder_stays() {
        let mut f = frag();
        let mut body = Vec::new();
        f.push(b"* 1 FETCH (UID 7 BODY[] {12}\r\nhello");
        assert_eq!(f.next_frame_with(&mut body_only).unwrap(), None);
        assert_eq!(f.literal_progress(), Some((5, 12)));
        assert!(!drained(&mut f, &mut body));
        assert_eq!(f.literal_progress(), Some((5, 12)));
        assert_eq!(f.buffered(), 29, "the body left the buffer");
        f.push(b" wor");
        assert_eq!(f.next_frame_with(&mut body_only).unwrap(), None);
        assert!(!drained(&mut f, &mut body));
        f.push(b"ld!)\r\na1 OK done\r\n");
        assert!(drained(&mut f, &mut body));
        assert_eq!(body, b"hello world!");
        let frame = f.next_frame_with(&mut body_only).unwrap().unwrap();
        assert_eq!(frame, b"* 1 FETCH (UID 7 BODY[] {0}\r\n)\r\n");
        assert_eq!(f.streamed(), Some(Streamed { at: 24, size: 12 }));
        assert_eq!(&frame[24..27], b"{0}");
        assert_eq!(f.next_frame().unwrap().unwrap(), b"a1 OK done\r\n");
        assert_eq!(f.streamed(), None, "the mark is the streamed frame's only");
        assert_eq!(f.consumed(), 57, "consumed counts what arrived");
    }

    #[test]
    fn a_whole_streamed_frame_in_one_read_and_literals_not_asked_for() {
        let mut f = frag();
        let mut body = Vec::new();
        f.push(
            b"* 1 FETCH (UID 7 BODY[] {12}\r\nhello world!)\r\n* 2 FETCH (BODY[] {3}\r\nabc)\r\n",
        );
        assert_eq!(f.next_frame_with(&mut body_only).unwrap(), None);
        assert!(drained(&mut f, &mut body));
        assert_eq!(body, b"hello world!");
        assert!(f
            .next_frame_with(&mut body_only)
            .unwrap()
            .unwrap()
            .ends_with(b"{0}\r\n)\r\n"));
        assert!(f.streamed().is_some());
        let kept = f.next_frame_with(&mut body_only).unwrap().unwrap();
        assert_eq!(kept, b"* 2 FETCH (BODY[] {3}\r\nabc)\r\n");
        assert_eq!(f.streamed(), None);
        assert!(!drained(&mut f, &mut body), "nothing is streaming");
    }

    #[test]
    fn a_streamed_literal_is_capped_like_any_other() {
        let mut f = frag();
        f.push(b"* 1 FETCH (BODY[] {1001}\r\n");
        assert!(matches!(
            f.next_frame_with(&mut |_, _| true),
            Err(FrameError::LiteralTooLarge { size: 1001, .. })
        ));
    }

    #[test]
    fn a_streamed_literal_counts_toward_its_frame_cap() {
        let mut f = frag();
        let mut body = Vec::new();
        let big = vec![b'x'; 1000];
        f.push(b"* 1 FETCH (BODY[] {1000}\r\n");
        f.push(&big);
        f.push(b" BODY[1] {480}\r\n");
        assert_eq!(f.next_frame_with(&mut |_, _| true).unwrap(), None);
        assert!(drained(&mut f, &mut body));
        assert!(matches!(
            f.next_frame_with(&mut |_, _| true),
            Err(FrameError::LiteralTooLarge { limit: 1500, .. })
        ));
    }

    #[test]
    fn a_second_literal_in_the_streamed_frame_is_kept() {
        let mut f = frag();
        let mut body = Vec::new();
        f.push(b"* 1 FETCH (BODY[] {2}\r\nab BODY[1] {2}\r\ncd)\r\n");
        assert_eq!(f.next_frame_with(&mut |_, _| true).unwrap(), None);
        assert!(drained(&mut f, &mut body));
        let frame = f.next_frame_with(&mut |_, _| true).unwrap().unwrap();
        assert_eq!(frame, b"* 1 FETCH (BODY[] {0}\r\n BODY[1] {2}\r\ncd)\r\n");
        assert_eq!(
            (body.as_slice(), f.streamed().unwrap().at),
            (&b"ab"[..], 18)
        );
    }
}
