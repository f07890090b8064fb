//! A list of tasks waiting for one condition, kept under the caller's lock.
//!
//! Each waiting future holds a slot id, so polling it again replaces its waker instead of
//! adding one, and dropping it removes it: the list never holds more wakers than there are
//! futures waiting.
//!
//! Ids are unique in the process, not per list: a list may be dropped once woken and made
//! anew for the next waiter (the shard's per-session room lists are), while a future woken
//! from the old one still holds its id. Counted per list, that id could be a new waiter's,
//! and the old future's next poll or drop would take over or remove that waiter's entry,
//! leaving it never woken.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Waker};

/// The next waiter's id, over every list.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default)]
pub(crate) struct Waiters {
    list: Vec<(u64, Waker)>,
}

impl Waiters {
    /// Registers the task polling with `cx`, under the id in `slot` (given one if empty).
    pub(crate) fn register(&mut self, slot: &mut Option<u64>, cx: &Context<'_>) {
        if let Some(id) = *slot {
            if let Some((_, waker)) = self.list.iter_mut().find(|(i, _)| *i == id) {
                if !waker.will_wake(cx.waker()) {
                    *waker = cx.waker().clone();
                }
                return;
            }
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.list.push((id, cx.waker().clone()));
        *slot = Some(id);
    }

    /// Forgets a waiter that stopped waiting.
    pub(crate) fn remove(&mut self, slot: Option<u64>) {
        if let Some(id) = slot {
            self.list.retain(|(i, _)| *i != id);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Takes every waker, to be woken once the caller's lock is released. The list keeps
    /// its buffer for the next waiter, and one waker (the common case) is taken without an
    /// allocation.
    pub(crate) fn take(&mut self) -> Wakers {
        let mut wakers = Wakers::default();
        wakers.extend(self.list.drain(..).map(|(_, waker)| waker));
        wakers
    }
}

/// Wakers taken from [`Waiters`] (or anywhere else), to wake once a lock is released: the
/// first inline, any more in a list.
#[derive(Debug, Default)]
#[must_use = "taken wakers are to be woken"]
pub(crate) struct Wakers {
    first: Option<Waker>,
    more: Vec<Waker>,
}

impl Wakers {
    /// Whether there is no waker to wake.
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl Extend<Waker> for Wakers {
    fn extend<I: IntoIterator<Item = Waker>>(&mut self, wakers: I) {
        for waker in wakers {
            if self.first.is_none() {
                self.first = Some(waker);
            } else {
                self.more.push(waker);
            }
        }
    }
}

impl IntoIterator for Wakers {
    type Item = Waker;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Waker>, std::vec::IntoIter<Waker>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.more)
    }
}

/// Wakes what [`Waiters::take`] returned.
pub(crate) fn wake_all(wakers: Wakers) {
    for waker in wakers {
        waker.wake();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wakes.
    pub(crate) struct Count(pub(crate) AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn one_entry_per_waiter_and_removal() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let cx = Context::from_waker(&waker);
        let mut waiters = Waiters::default();
        let (mut a, mut b) = (None, None);
        waiters.register(&mut a, &cx);
        waiters.register(&mut a, &cx);
        waiters.register(&mut b, &cx);
        assert_eq!(waiters.list.len(), 2);
        waiters.remove(b);
        wake_all(waiters.take());
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert!(waiters.list.is_empty());
    }

    #[test]
    fn an_id_from_a_list_made_before_is_no_new_waiter_s() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let cx = Context::from_waker(&waker);
        // A waits in a list that is woken and dropped, as a session's room list is.
        let mut old = Waiters::default();
        let mut a = None;
        old.register(&mut a, &cx);
        wake_all(old.take());
        drop(old);
        // C waits in the list made anew; A, woken, polls again and waits there too.
        let mut new = Waiters::default();
        let (mut c, c_count) = (None, Arc::new(Count(AtomicUsize::new(0))));
        let c_waker = Waker::from(c_count.clone());
        new.register(&mut c, &Context::from_waker(&c_waker));
        new.register(&mut a, &cx);
        assert_eq!(new.list.len(), 2, "A took over C's entry");
        // A gives up (dropped by a select!): C still waits, and is woken.
        new.remove(a);
        wake_all(new.take());
        assert_eq!(c_count.0.load(Ordering::Relaxed), 1, "C was never woken");
    }

    #[test]
    fn every_taken_waker_is_woken_once() {
        for n in 0..5 {
            let count = Arc::new(Count(AtomicUsize::new(0)));
            let waker = Waker::from(count.clone());
            let cx = Context::from_waker(&waker);
            let mut waiters = Waiters::default();
            let mut slots = vec![None; n];
            for slot in &mut slots {
                waiters.register(slot, &cx);
            }
            let mut wakers = waiters.take();
            wakers.extend(Some(waker.clone()));
            wakers.extend(waiters.take());
            wake_all(wakers);
            assert_eq!(count.0.load(Ordering::Relaxed), n + 1, "{n} waiters");
            assert!(waiters.is_empty());
            // The list's buffer stays for the next waiter.
            assert!(waiters.list.capacity() >= n);
        }
    }
}
