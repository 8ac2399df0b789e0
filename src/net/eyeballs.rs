//! Happy Eyeballs v2 (RFC 8305): which address to try next, and when.
//!
//! No sockets and no clock reads: the caller passes `Instant`s in, starts the
//! connects that [`Eyeballs::poll`] asks for, and reports failures. Its loop:
//!
//! ```text
//! loop {
//!     match eyeballs.poll(now) {
//!         Action::Start(i, addr) => start a connect to addr, known as i,
//!         Action::WaitUntil(t) => wait for an attempt's event until t:
//!             failure of i => eyeballs.failed(i, now),
//!             success of i => close eyeballs.in_flight() other than i; done,
//!         Action::GiveUp => fail (deadline passed, or every address failed),
//!     }
//! }
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Connection Attempt Delay recommended by RFC 8305 section 5.
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);
/// Shortest delay RFC 8305 section 5 recommends; [`Eyeballs::new`] clamps to it.
pub const MIN_ATTEMPT_DELAY: Duration = Duration::from_millis(100);
/// Longest delay RFC 8305 section 5 recommends; [`Eyeballs::new`] clamps to it.
pub const MAX_ATTEMPT_DELAY: Duration = Duration::from_secs(2);

/// Orders resolved addresses as RFC 8305 section 4 says: duplicates removed,
/// then the two families interleaved one by one, starting with the preferred
/// family (IPv4 unless `prefer_ipv6`), keeping the resolver's order within a
/// family. A name with one family keeps its order.
pub fn order(addrs: &[SocketAddr], prefer_ipv6: bool) -> Vec<SocketAddr> {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
    for a in addrs {
        if !unique.contains(a) {
            unique.push(*a);
        }
    }
    let (preferred, other): (Vec<_>, Vec<_>) =
        unique.into_iter().partition(|a| a.is_ipv6() == prefer_ipv6);
    let mut out = Vec::with_capacity(preferred.len() + other.len());
    let (mut p, mut o) = (preferred.into_iter(), other.into_iter());
    loop {
        match (p.next(), o.next()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// What the caller should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start connecting to this address; the index names the attempt in
    /// [`Eyeballs::failed`] and [`Eyeballs::in_flight`]. Poll again at once.
    Start(usize, SocketAddr),
    /// Wait for attempts' events until this instant (never past the
    /// deadline), then poll again; also poll again after any failure.
    WaitUntil(Instant),
    /// The deadline has passed, or every address was tried and failed.
    GiveUp,
}

/// Connection attempts to an ordered address list (see [`order`]).
#[derive(Debug)]
pub struct Eyeballs {
    addrs: Vec<SocketAddr>,
    /// `failed[i]` for started attempts `i < started`.
    failed: Vec<bool>,
    started: usize,
    in_flight: usize,
    next_start: Instant,
    deadline: Instant,
    delay: Duration,
}

impl Eyeballs {
    /// The first attempt is due at `now`; nothing starts after `deadline`.
    /// `attempt_delay` (normally [`ATTEMPT_DELAY`]) is clamped to
    /// [`MIN_ATTEMPT_DELAY`]..=[`MAX_ATTEMPT_DELAY`].
    pub fn new(
        ordered: Vec<SocketAddr>,
        now: Instant,
        deadline: Instant,
        attempt_delay: Duration,
    ) -> Eyeballs {
        Eyeballs {
            failed: vec![false; ordered.len()],
            addrs: ordered,
            started: 0,
            in_flight: 0,
            next_start: now,
            deadline,
            delay: attempt_delay.clamp(MIN_ATTEMPT_DELAY, MAX_ATTEMPT_DELAY),
        }
    }

    /// The next step. Returns at most one `Start` per call: call again until
    /// it returns `WaitUntil` or `GiveUp`.
    pub fn poll(&mut self, now: Instant) -> Action {
        if now >= self.deadline {
            return Action::GiveUp;
        }
        if self.started == self.addrs.len() {
            return match self.in_flight {
                0 => Action::GiveUp,
                _ => Action::WaitUntil(self.deadline),
            };
        }
        if now >= self.next_start {
            let index = self.started;
            self.started += 1;
            self.in_flight += 1;
            self.next_start = now + self.delay;
            return Action::Start(index, self.addrs[index]);
        }
        Action::WaitUntil(self.next_start.min(self.deadline))
    }

    /// Attempt `index` failed (refused, unreachable, reset...). When no
    /// attempt is left in flight the next address is due at `now`.
    /// Unknown indices and repeated reports are ignored.
    pub fn failed(&mut self, index: usize, now: Instant) {
        if index < self.started && !self.failed[index] {
            self.failed[index] = true;
            self.in_flight -= 1;
            if self.in_flight == 0 {
                self.next_start = self.next_start.min(now);
            }
        }
    }

    /// Attempts started and not failed: when one connects, close the others.
    pub fn in_flight(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.started).filter(|&i| !self.failed[i])
    }

    /// The address of attempt `index`.
    pub fn addr(&self, index: usize) -> SocketAddr {
        self.addrs[index]
    }

    /// Addresses not started yet.
    pub fn remaining(&self) -> usize {
        self.addrs.len() - self.started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(n: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, n], 993))
    }
    fn v6(n: u16) -> SocketAddr {
        SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, n], 993))
    }
    fn clock() -> impl Fn(u64) -> Instant {
        let base = Instant::now();
        move |ms| base + Duration::from_millis(ms)
    }
    /// Three addresses, started at t=0 with a 1 s deadline.
    fn three(at: &impl Fn(u64) -> Instant) -> Eyeballs {
        Eyeballs::new(vec![v6(1), v4(1), v6(2)], at(0), at(1000), ATTEMPT_DELAY)
    }

    #[test]
    fn ordering() {
        let mixed = [v6(1), v6(2), v6(3), v4(1), v4(2)];
        assert_eq!(order(&mixed, false), [v4(1), v6(1), v4(2), v6(2), v6(3)]);
        assert_eq!(order(&mixed, true), [v6(1), v4(1), v6(2), v4(2), v6(3)]);
        assert_eq!(order(&[v4(3), v4(1), v4(2)], true), [v4(3), v4(1), v4(2)]);
        assert_eq!(order(&[v6(3), v6(1)], false), [v6(3), v6(1)]);
        let dup = [v4(1), v6(1), v4(1), v4(2), v6(1)];
        assert_eq!(order(&dup, false), [v4(1), v6(1), v4(2)]);
        assert_eq!(order(&[], true), []);
    }

    #[test]
    fn first_now_second_after_exactly_the_delay() {
        let at = clock();
        let mut e = three(&at);
        assert_eq!(e.poll(at(0)), Action::Start(0, v6(1)));
        assert_eq!(e.poll(at(0)), Action::WaitUntil(at(250)));
        assert_eq!(e.poll(at(249)), Action::WaitUntil(at(250)));
        assert_eq!(e.poll(at(250)), Action::Start(1, v4(1)));
        assert_eq!(e.poll(at(250)), Action::WaitUntil(at(500)));
        assert_eq!(e.in_flight().collect::<Vec<_>>(), [0, 1]);
        assert_eq!((e.addr(1), e.remaining()), (v4(1), 1));
    }

    #[test]
    fn silent_first_address_does_not_hold_up_the_second() {
        let at = clock();
        let mut e = three(&at);
        assert_eq!(e.poll(at(0)), Action::Start(0, v6(1)));
        // Attempt 0 never answers; polls late still start the rest in turn.
        assert_eq!(e.poll(at(260)), Action::Start(1, v4(1)));
        assert_eq!(e.poll(at(260)), Action::WaitUntil(at(510)));
        assert_eq!(e.poll(at(510)), Action::Start(2, v6(2)));
        // Nothing beyond the last address: wait for the deadline.
        assert_eq!(e.poll(at(510)), Action::WaitUntil(at(1000)));
        assert_eq!(e.poll(at(900)), Action::WaitUntil(at(1000)));
        assert_eq!(e.remaining(), 0);
    }

    #[test]
    fn failure_starts_the_next_at_once() {
        let at = clock();
        let mut e = three(&at);
        assert_eq!(e.poll(at(0)), Action::Start(0, v6(1)));
        e.failed(0, at(10));
        assert_eq!(e.poll(at(10)), Action::Start(1, v4(1)));
        // With another attempt still in flight a failure changes no timing.
        assert_eq!(e.poll(at(260)), Action::Start(2, v6(2)));
        e.failed(2, at(300));
        assert_eq!(e.poll(at(300)), Action::WaitUntil(at(1000)));
        assert_eq!(e.in_flight().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn gives_up_when_all_failed() {
        let at = clock();
        let mut e = three(&at);
        for i in 0..3 {
            assert_eq!(e.poll(at(i as u64)), Action::Start(i, e.addrs[i]));
            e.failed(i, at(i as u64));
            e.failed(i, at(i as u64)); // repeated report: ignored
        }
        e.failed(7, at(3)); // unknown index: ignored
        assert_eq!(e.poll(at(3)), Action::GiveUp);
        assert_eq!(e.in_flight().count(), 0);
        let mut empty = Eyeballs::new(vec![], at(0), at(1000), ATTEMPT_DELAY);
        assert_eq!(empty.poll(at(0)), Action::GiveUp);
    }

    #[test]
    fn deadline_bounds_everything() {
        let at = clock();
        let mut e = Eyeballs::new(vec![v4(1), v4(2)], at(0), at(100), ATTEMPT_DELAY);
        assert_eq!(e.poll(at(0)), Action::Start(0, v4(1)));
        // Next start (250) is past the deadline: wait only until the deadline.
        assert_eq!(e.poll(at(0)), Action::WaitUntil(at(100)));
        assert_eq!(e.poll(at(100)), Action::GiveUp);
        assert_eq!(e.in_flight().collect::<Vec<_>>(), [0]);
        let mut late = Eyeballs::new(vec![v4(1)], at(0), at(0), ATTEMPT_DELAY);
        assert_eq!(late.poll(at(0)), Action::GiveUp);
    }

    #[test]
    fn delay_is_clamped() {
        let at = clock();
        let mut e = Eyeballs::new(vec![v4(1), v4(2)], at(0), at(9000), Duration::ZERO);
        assert_eq!(e.poll(at(0)), Action::Start(0, v4(1)));
        assert_eq!(e.poll(at(0)), Action::WaitUntil(at(100)));
        let mut e = Eyeballs::new(vec![v4(1), v4(2)], at(0), at(9000), Duration::MAX);
        assert_eq!(e.poll(at(0)), Action::Start(0, v4(1)));
        assert_eq!(e.poll(at(0)), Action::WaitUntil(at(2000)));
    }
}
