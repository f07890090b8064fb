//! Deadlines of many sessions in one min-heap, with lazy deletion.
//!
//! Each session keeps its current deadline and the deadline of its entry in the heap. A new
//! entry is pushed only when the deadline moves earlier than the queued one, so a session
//! that writes a million frames (pushing its heartbeat later each time) adds no entries;
//! entries whose time no longer matches are skipped when popped.

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
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
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
}
