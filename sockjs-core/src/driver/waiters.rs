//! A list of tasks waiting for one condition, kept under the caller's lock.
//!
//! Each waiting future holds a slot id, so polling it again replaces its waker instead of
//! adding one, and dropping it removes it: the list never holds more wakers than there are
//! futures waiting.

use std::task::{Context, Waker};

#[derive(Debug, Default)]
pub(crate) struct Waiters {
    next: u64,
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
        let id = self.next;
        self.next += 1;
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

    /// Takes every waker, to be woken once the caller's lock is released.
    pub(crate) fn take(&mut self) -> Vec<Waker> {
        std::mem::take(&mut self.list)
            .into_iter()
            .map(|(_, waker)| waker)
            .collect()
    }
}

/// Wakes what [`Waiters::take`] returned.
pub(crate) fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);
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
}
