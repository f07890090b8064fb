//! Deadlines of many sessions in one min-heap, with lazy deletion.
//!
//! Each session keeps its current deadline and the deadline of its entry in the heap. A new
//! entry is pushed only when the deadline moves earlier than the queued one, so a session
//! that writes a million frames (pushing its heartbeat later each time) adds no entries;
//! entries whose time no longer matches are skipped when popped.
//!
//! Stale entries (a session forgotten, or its deadline moved earlier) would otherwise stay
//! until their time comes, up to the longest delay: a peer opening and dropping sessions
//! quickly would leave entries in proportion to its rate times that delay. Whenever a
//! session ends, the heap is swept if they outnumber the live ones by [`STALE_FACTOR`], so
//! it stays within a constant factor of the sessions the engine holds, at an amortized
//! constant cost per entry. (Between two ends, live sessions whose deadlines move earlier
//! leave a few stale entries each, up to about one per disconnect delay within a
//! heartbeat delay.)

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::output::SessionKey;

/// A session's timer bookkeeping.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Deadline {
    /// When the session's timer fires, if it is armed.
    pub at: Option<Instant>,
    /// The time of the session's live heap entry, if any.
    queued: Option<Instant>,
}

impl Deadline {
    /// The time of the session's live heap entry, if any.
    pub fn queued(&self) -> Option<Instant> {
        self.queued
    }
}

/// The heap is swept once it holds more than this many entries per live session (plus
/// [`SWEEP_FLOOR`]).
pub(crate) const STALE_FACTOR: usize = 4;

/// Entries a heap may always hold before a sweep is worth its pass.
pub(crate) const SWEEP_FLOOR: usize = 1024;

/// The heap of `(deadline, session key)` entries.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, SessionKey)>>,
}

impl Timers {
    /// Arms (or re-arms, or with `None` disarms) a session's timer.
    pub fn set(&mut self, key: SessionKey, deadline: &mut Deadline, at: Option<Instant>) {
        deadline.at = at;
        if let Some(at) = at {
            if deadline.queued.is_none_or(|queued| at < queued) {
                self.heap.push(Reverse((at, key)));
                deadline.queued = Some(at);
            }
        }
    }

    /// The earliest entry's time (possibly stale: waking then is harmless).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops the next entry due at `now`, as `(entry time, key)`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, SessionKey)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Given a popped entry for this session, decides whether the session's timer fires
    /// now. A stale entry is ignored; an entry for a deadline that moved later is re-queued.
    pub fn fires(
        &mut self,
        key: SessionKey,
        entry: Instant,
        deadline: &mut Deadline,
        now: Instant,
    ) -> bool {
        if deadline.queued != Some(entry) {
            return false;
        }
        deadline.queued = None;
        match deadline.at {
            Some(at) if at <= now => {
                deadline.at = None;
                true
            }
            Some(at) => {
                self.heap.push(Reverse((at, key)));
                deadline.queued = Some(at);
                false
            }
            None => false,
        }
    }

    /// Entries in the heap, live or stale.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drops the stale entries once the heap holds more than [`STALE_FACTOR`] entries per
    /// live session (plus [`SWEEP_FLOOR`]). `queued(key)` is the time of that session's
    /// live entry (its [`Deadline`]'s), `None` when the session is gone or has none.
    pub fn sweep_if_stale(
        &mut self,
        live_sessions: usize,
        queued: impl Fn(SessionKey) -> Option<Instant>,
    ) {
        let bound = live_sessions
            .saturating_mul(STALE_FACTOR)
            .saturating_add(SWEEP_FLOOR);
        if self.heap.len() > bound {
            self.heap
                .retain(|Reverse((at, key))| queued(*key) == Some(*at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn later_deadlines_add_no_entries() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut d = Deadline::default();
        for i in 0..1000 {
            timers.set(SessionKey(1), &mut d, Some(t0 + Duration::from_millis(i)));
        }
        assert_eq!(timers.len(), 1);
        let (at, key) = timers.pop_due(t0).expect("due");
        assert!(
            !timers.fires(key, at, &mut d, t0),
            "deadline moved later: re-queued"
        );
        assert_eq!(timers.next(), Some(t0 + Duration::from_millis(999)));
        let late = t0 + Duration::from_secs(1);
        let (at, key) = timers.pop_due(late).expect("due");
        assert!(timers.fires(key, at, &mut d, late));
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn earlier_deadline_supersedes() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut d = Deadline::default();
        timers.set(SessionKey(7), &mut d, Some(t0 + Duration::from_secs(25)));
        timers.set(SessionKey(7), &mut d, Some(t0 + Duration::from_secs(5)));
        let t5 = t0 + Duration::from_secs(5);
        let (at, key) = timers.pop_due(t5).expect("due");
        assert!(timers.fires(key, at, &mut d, t5));
        let t25 = t0 + Duration::from_secs(25);
        let (at, key) = timers.pop_due(t25).expect("stale entry");
        assert!(!timers.fires(key, at, &mut d, t25));
    }

    #[test]
    fn a_sweep_keeps_the_live_entries_and_drops_the_stale_ones() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut live = Vec::new();
        for k in 0..10u64 {
            let mut d = Deadline::default();
            timers.set(SessionKey(k), &mut d, Some(t0 + Duration::from_secs(25)));
            // Moved earlier: the first entry is stale now.
            timers.set(SessionKey(k), &mut d, Some(t0 + Duration::from_secs(5 + k)));
            live.push(d);
        }
        // Sessions gone, with their entries left behind.
        for k in 10..(10 + 2 * SWEEP_FLOOR as u64) {
            let mut d = Deadline::default();
            timers.set(SessionKey(k), &mut d, Some(t0 + Duration::from_secs(25)));
        }
        let queued = |key: SessionKey| live.get(key.0 as usize).and_then(Deadline::queued);
        assert_eq!(timers.len(), 20 + 2 * SWEEP_FLOOR);
        timers.sweep_if_stale(10, queued);
        assert_eq!(timers.len(), 10, "only each live session's entry is left");
        // The live entries still fire, in order.
        for (k, d) in live.iter_mut().enumerate() {
            let at = t0 + Duration::from_secs(5 + k as u64);
            let (entry, key) = timers.pop_due(at).expect("due");
            assert_eq!(key, SessionKey(k as u64));
            assert!(timers.fires(key, entry, d, at));
        }
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn no_sweep_below_the_bound() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        for k in 0..SWEEP_FLOOR as u64 {
            let mut d = Deadline::default();
            timers.set(SessionKey(k), &mut d, Some(t0 + Duration::from_secs(25)));
        }
        // All stale, but within the floor: not worth a pass.
        timers.sweep_if_stale(0, |_| None);
        assert_eq!(timers.len(), SWEEP_FLOOR);
    }
}
