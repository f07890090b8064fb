//! The queues between a shard and the tasks it feeds: one connection's outgoing messages
//! and one session's inbound messages.
//!
//! The shard is the only producer (pushing under its own lock, never waiting) and one task
//! the only consumer, so a mutex around a `VecDeque` and one waker slot is all it takes:
//! no allocation per message or per wait, and nothing is allocated before the first push.
//! Dropping the [`Sender`] closes the queue (the receiver gets what is queued, then `None`);
//! dropping the [`Receiver`] makes later pushes fail.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// What an item counts for in a queue's byte bound.
pub(crate) trait Weight {
    fn weight(&self) -> usize;
}

struct State<T> {
    items: VecDeque<T>,
    /// Sum of the queued items' weights.
    bytes: usize,
    /// The sender is gone.
    closed: bool,
    /// The receiver is gone.
    gone: bool,
    waker: Option<Waker>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new empty queue.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            bytes: 0,
            closed: false,
            gone: false,
            waker: None,
        }),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// Why a push failed (the item is dropped).
pub(crate) enum PushError {
    /// The queue holds `max_items` items, or `max_bytes` would be exceeded.
    Full,
    /// The receiver is gone.
    Gone,
}

/// The producing side; dropping it closes the queue.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T: Weight> Sender<T> {
    /// Queues `item` unless the queue holds `max_items` items already, or is not empty and
    /// would pass `max_bytes` (so one item larger than `max_bytes` still fits an empty
    /// queue).
    pub(crate) fn push(
        &self,
        item: T,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<(), PushError> {
        let weight = item.weight();
        let waker = {
            let mut st = self.shared.lock();
            if st.gone {
                return Err(PushError::Gone);
            }
            if st.items.len() >= max_items
                || (st.bytes > 0 && st.bytes.saturating_add(weight) > max_bytes)
            {
                return Err(PushError::Full);
            }
            st.items.push_back(item);
            st.bytes += weight;
            st.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut st = self.shared.lock();
            st.closed = true;
            st.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// What [`Receiver::try_recv`] found.
pub(crate) enum TryRecv<T> {
    Item(T),
    Empty,
    Closed,
}

/// The consuming side; dropping it makes later pushes fail.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T: Weight> Receiver<T> {
    /// Takes the next item without waiting.
    pub(crate) fn try_recv(&self) -> TryRecv<T> {
        let mut st = self.shared.lock();
        match st.items.pop_front() {
            Some(item) => {
                st.bytes -= item.weight();
                TryRecv::Item(item)
            }
            None if st.closed => TryRecv::Closed,
            None => TryRecv::Empty,
        }
    }

    /// Takes the next item; `Ready(None)` once the queue is closed and empty.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut st = self.shared.lock();
        if let Some(item) = st.items.pop_front() {
            st.bytes -= item.weight();
            return Poll::Ready(Some(item));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        register(&mut st.waker, cx);
        Poll::Pending
    }

    /// Ready once an item is queued or the queue is closed; takes nothing.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.shared.lock();
        if !st.items.is_empty() || st.closed {
            return Poll::Ready(());
        }
        register(&mut st.waker, cx);
        Poll::Pending
    }

    /// The next item; `None` once the queue is closed and empty.
    pub(crate) async fn recv(&self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut st = self.shared.lock();
            st.gone = true;
            st.waker = None;
            st.bytes = 0;
            std::mem::take(&mut st.items)
        };
        drop(items);
    }
}

fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}
