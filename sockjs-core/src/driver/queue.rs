//! The bounded queue between a shard and one request's task: what the engine asked to be
//! written, in order.
//!
//! The shard is the only producer (pushing under its own lock, never waiting, and handing
//! back the consumer's waker to be woken once that lock is released) and one task the only
//! consumer, so a mutex around a `VecDeque` and one waker slot is all it takes: no
//! allocation per message or per wait, and none while it holds at most one item (the
//! usual case: one answer, one frame at a time), so an idle socket's queue holds no
//! buffer. Dropping the [`Sender`] ends the queue after what it holds; [`Sender::kill`]
//! ends it at once (the consumer gets `None` and drops the connection); dropping the
//! [`Receiver`] makes later pushes fail.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::Content;
use crate::driver::waiters::{Waiters, Wakers, wake_all};

/// Bytes an item counts for in the byte bound: what it carries. Heads are small and
/// bounded by the item count.
pub(crate) fn weight(content: &Content) -> usize {
    match content {
        Content::Response(response) => response.body().len(),
        Content::Chunk(data) => data.len(),
        Content::WsText(text) => text.len(),
        Content::WsClose { reason, .. } => reason.len(),
        _ => 0,
    }
}

struct State {
    items: Items<Content>,
    bytes: usize,
    /// The sender is gone: the queue ends after its items.
    ended: bool,
    /// The sender gave up: the queue ends now.
    killed: bool,
    /// The receiver is gone.
    gone: bool,
    /// The consumer has taken an item: from then on, a push past the byte bound says the
    /// client does not read.
    taken: bool,
    waker: Option<Waker>,
    /// Senders waiting for room (see [`Watch`]), and the fill below which they go on.
    room: Waiters,
    low: (usize, usize),
}

struct Shared {
    state: Mutex<State>,
    /// A lock-free mirror of `State::ended` (set only by the sender, with it): the sender's
    /// drop after `kill` or `close` then takes no lock.
    sender_done: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A FIFO of queued items: the first one inline, the rest in a deque allocated only when
/// two or more are queued at once and given back when it runs dry, so that a queue that
/// carries one item at a time (one answer, one frame, one message) never allocates, and an
/// idle one holds no buffer (a WebSocket's opening queues two items at once, the 101 and
/// `o`; a burst of messages grows the deque only while it lasts).
pub(crate) struct Items<T> {
    /// The oldest item; `None` only if `rest` is empty too.
    first: Option<T>,
    rest: VecDeque<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items {
            first: None,
            rest: VecDeque::new(),
        }
    }
}

impl<T> Items<T> {
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub(crate) fn push_back(&mut self, item: T) {
        if self.first.is_none() {
            self.first = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let item = self.first.take()?;
        self.first = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > 0 {
            self.rest = VecDeque::new();
        }
        Some(item)
    }

    /// Whether a buffer is allocated (for tests of what idle queues hold).
    #[cfg(test)]
    pub(crate) fn holds_buffer(&self) -> bool {
        self.rest.capacity() > 0
    }
}

/// A new empty queue.
pub(crate) fn channel() -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: Items::default(),
            bytes: 0,
            ended: false,
            killed: false,
            gone: false,
            taken: false,
            waker: None,
            room: Waiters::default(),
            low: (0, 0),
        }),
        sender_done: AtomicBool::new(false),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// Why a push failed (the item is dropped).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue holds `max_items` items, or would pass `max_bytes`.
    Full,
    /// The receiver is gone.
    Gone,
}

/// The producing side.
pub(crate) struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    /// Queues `item` unless the queue holds `max_items` items already, or holds bytes and
    /// would pass `max_bytes` (one item larger than `max_bytes` still fits a queue that
    /// holds no bytes: an empty one, or one of heads only, which weigh nothing and count
    /// against `max_items`). Until its consumer has taken an item, the byte bound does not
    /// apply: what is queued then is the engine's answer to the request, all at once (a
    /// session's backlog flushed behind a stream's prelude, say), bounded by the engine's
    /// own bounds, and says nothing yet of a client that does not read.
    ///
    /// The consumer's waker goes into `wake`, for the caller to wake once it has released
    /// its own lock (the shard's: the consumer's task may take it as soon as it runs).
    pub(crate) fn push(
        &self,
        item: Content,
        max_items: usize,
        max_bytes: usize,
        wake: &mut Wakers,
    ) -> Result<(), PushError> {
        let weight = weight(&item);
        let waker = {
            let mut st = self.shared.lock();
            if st.gone {
                return Err(PushError::Gone);
            }
            if st.items.len() >= max_items
                || (st.taken && st.bytes > 0 && st.bytes.saturating_add(weight) > max_bytes)
            {
                return Err(PushError::Full);
            }
            st.items.push_back(item);
            st.bytes += weight;
            st.waker.take()
        };
        wake.extend(waker);
        Ok(())
    }

    /// Ends the queue at once: what it holds is dropped and the consumer sees the end. The
    /// wakers go into `wake`, as [`push`](Sender::push)'s.
    pub(crate) fn kill(self, wake: &mut Wakers) {
        let items = {
            let mut st = self.shared.lock();
            st.killed = true;
            // The sender is gone too (its drop then finds nothing to do).
            st.ended = true;
            self.shared.sender_done.store(true, Ordering::Relaxed);
            st.bytes = 0;
            wake.extend(st.waker.take());
            wake.extend(st.room.take());
            std::mem::take(&mut st.items)
        };
        drop(items);
    }

    /// Ends the queue after what it holds, as dropping the sender does, but with the
    /// wakers into `wake`, as [`push`](Sender::push)'s.
    pub(crate) fn close(self, wake: &mut Wakers) {
        self.end(wake);
    }

    /// Marks the queue ended (once); takes the consumer's waker and the waiting senders'.
    fn end(&self, wake: &mut Wakers) {
        let mut st = self.shared.lock();
        if st.ended {
            return;
        }
        st.ended = true;
        self.shared.sender_done.store(true, Ordering::Relaxed);
        wake.extend(st.waker.take());
        // Senders waiting for room here go on elsewhere (the session's next receiver, or
        // its end), not when this queue's last items are written.
        wake.extend(st.room.take());
    }

    /// A view of the queue's fill, for senders that wait for room.
    pub(crate) fn watch(&self) -> Watch {
        Watch {
            shared: self.shared.clone(),
        }
    }
}

#[cfg(test)]
impl Sender {
    /// [`push`](Sender::push), waking at once (for tests that hold no lock).
    pub(crate) fn push_now(
        &self,
        item: Content,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<(), PushError> {
        let mut wake = Wakers::default();
        let pushed = self.push(item, max_items, max_bytes, &mut wake);
        wake_all(wake);
        pushed
    }

    /// [`kill`](Sender::kill), waking at once.
    pub(crate) fn kill_now(self) {
        let mut wake = Wakers::default();
        self.kill(&mut wake);
        wake_all(wake);
    }
}

/// A view of a queue's fill: a sender that would overfill it waits here instead.
#[derive(Clone)]
pub(crate) struct Watch {
    shared: Arc<Shared>,
}

impl Watch {
    /// Ready once the queue holds at most half of `max_items` items and half of
    /// `max_bytes` bytes, and `more` bytes would still fit under `max_bytes` (or the
    /// queue holds no bytes, which takes anything), or once it has ended: room for more.
    /// Every waiter of a queue passes the same bounds (its connection's). Waiters are woken
    /// once the message of the one that needs least fits, not at each item taken before
    /// it does (a message larger than half the queue would otherwise wake its sender at
    /// every take from half full on, to find no room yet).
    #[inline]
    pub(crate) fn poll_room(
        &self,
        cx: &Context<'_>,
        slot: &mut Option<u64>,
        (max_items, max_bytes): (usize, usize),
        more: usize,
    ) -> Poll<()> {
        let mut st = self.shared.lock();
        if st.has_room((max_items, max_bytes), more) {
            st.room.remove(slot.take());
            return Poll::Ready(());
        }
        let low_bytes = (max_bytes / 2).min(max_bytes.saturating_sub(more));
        st.low.0 = max_items / 2;
        st.low.1 = if st.room.is_empty() {
            low_bytes
        } else {
            st.low.1.max(low_bytes)
        };
        st.room.register(slot, cx);
        Poll::Pending
    }

    /// Whether [`poll_room`](Watch::poll_room) would be ready now, without waiting.
    pub(crate) fn has_room(&self, bounds: (usize, usize), more: usize) -> bool {
        self.shared.lock().has_room(bounds, more)
    }

    /// Stops waiting.
    pub(crate) fn forget(&self, slot: Option<u64>) {
        if slot.is_some() {
            self.shared.lock().room.remove(slot);
        }
    }

    /// Bytes queued.
    pub(crate) fn bytes(&self) -> usize {
        self.shared.lock().bytes
    }

    /// Takes every waiting sender, to be woken to look again (the session ended, or what
    /// it waits for changed) once the caller's lock is released.
    pub(crate) fn take_waiters(&self) -> Wakers {
        self.shared.lock().room.take()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        // After `kill` or `close`, there is nothing left to do.
        if self.shared.sender_done.load(Ordering::Relaxed) {
            return;
        }
        let mut wake = Wakers::default();
        self.end(&mut wake);
        wake_all(wake);
    }
}

/// What [`Receiver::try_recv`] found.
#[derive(Debug)]
pub(crate) enum TryRecv {
    Item(Content),
    Empty,
    Ended,
}

/// The consuming side.
pub(crate) struct Receiver {
    shared: Arc<Shared>,
}

impl Receiver {
    /// Takes the next item without waiting.
    pub(crate) fn try_recv(&self) -> TryRecv {
        let (item, room) = take(&mut self.shared.lock());
        if let Some(room) = room {
            wake_all(room);
        }
        item
    }

    /// Takes the next item; `Ready(None)` once the queue ended.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Content>> {
        let (item, room) = {
            let mut st = self.shared.lock();
            let (item, room) = take(&mut st);
            if let TryRecv::Empty = item {
                register(&mut st.waker, cx);
            }
            (item, room)
        };
        if let Some(room) = room {
            wake_all(room);
        }
        match item {
            TryRecv::Item(item) => Poll::Ready(Some(item)),
            TryRecv::Ended => Poll::Ready(None),
            TryRecv::Empty => Poll::Pending,
        }
    }

    /// Ready once an item is queued or the queue ended; takes nothing.
    #[inline]
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.shared.lock();
        if !st.items.is_empty() || st.ended || st.killed {
            return Poll::Ready(());
        }
        register(&mut st.waker, cx);
        Poll::Pending
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let (items, room) = {
            let mut st = self.shared.lock();
            st.gone = true;
            st.waker = None;
            st.bytes = 0;
            (std::mem::take(&mut st.items), st.room.take())
        };
        drop(items);
        wake_all(room);
    }
}

impl State {
    /// At most half full in items and bytes, with `more` bytes still under the byte bound
    /// (an empty queue takes anything), or no longer taking items at all.
    #[inline(always)]
    fn has_room(&self, (max_items, max_bytes): (usize, usize), more: usize) -> bool {
        let fits = self.bytes == 0 || self.bytes.saturating_add(more) <= max_bytes;
        (self.items.len() <= max_items / 2 && self.bytes <= max_bytes / 2 && fits)
            || self.gone
            || self.killed
            || self.ended
    }
}

/// Takes the next item, with the senders to wake (once the lock is released: a sender's
/// task takes this queue's lock when it runs) if this take left room for them.
fn take(st: &mut State) -> (TryRecv, Option<Wakers>) {
    if st.killed {
        return (TryRecv::Ended, None);
    }
    match st.items.pop_front() {
        Some(item) => {
            st.taken = true;
            st.bytes -= weight(&item);
            let room = (!st.room.is_empty() && st.items.len() <= st.low.0 && st.bytes <= st.low.1)
                .then(|| st.room.take());
            (TryRecv::Item(item), room)
        }
        None if st.ended => (TryRecv::Ended, None),
        None => (TryRecv::Empty, None),
    }
}

/// Stores the task's waker unless the one stored already wakes it.
pub(crate) fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use bytes::Bytes;

    use super::*;

    fn chunk(n: usize) -> Content {
        Content::Chunk(Bytes::from(vec![b'x'; n]))
    }

    #[test]
    fn bounded_by_items_and_bytes_in_order() {
        let (tx, rx) = channel();
        // The byte bound holds once the consumer has begun taking.
        assert_eq!(tx.push_now(chunk(0), 2, 15), Ok(()));
        assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
        assert_eq!(tx.push_now(chunk(10), 2, 15), Ok(()));
        assert_eq!(tx.push_now(chunk(10), 2, 15), Err(PushError::Full));
        assert_eq!(tx.push_now(chunk(5), 2, 15), Ok(()));
        assert_eq!(tx.push_now(chunk(0), 2, 15), Err(PushError::Full));
        assert!(matches!(rx.try_recv(), TryRecv::Item(Content::Chunk(d)) if d.len() == 10));
        // One item larger than the byte bound still fits an empty queue.
        assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
        assert_eq!(tx.push_now(chunk(100), 2, 15), Ok(()));
        drop(tx);
        assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
        assert!(matches!(rx.try_recv(), TryRecv::Ended));
    }

    #[test]
    fn a_sender_of_a_large_message_is_woken_once_it_fits_not_at_every_take() {
        let bounds = (64, 1000);
        let (tx, rx) = channel();
        assert_eq!(tx.push_now(chunk(0), 64, 1000), Ok(()));
        assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
        for _ in 0..12 {
            assert_eq!(tx.push_now(chunk(50), 64, 1000), Ok(()));
        }
        let watch = tx.watch();
        // Waker 0 waits to send 700 bytes, waker 1 only for half the queue.
        let wakers = super::model_tests::Wakers::new(2);
        let (mut large, mut small) = (None, None);
        // 600 bytes queued: a 700-byte message fits once 300 are left.
        assert!(
            watch
                .poll_room(&wakers.cx(0), &mut large, bounds, 700)
                .is_pending()
        );
        let mut left = 600;
        while left > 300 {
            assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
            left -= 50;
            assert_eq!(
                wakers.wakes()[0],
                usize::from(left <= 300),
                "at {left} bytes"
            );
        }
        assert!(
            watch
                .poll_room(&wakers.cx(0), &mut large, bounds, 700)
                .is_ready()
        );

        // Beside a sender that waits only for half, both are woken at half.
        for _ in 0..6 {
            assert_eq!(tx.push_now(chunk(50), 64, 1000), Ok(()));
        }
        assert!(
            watch
                .poll_room(&wakers.cx(0), &mut large, bounds, 700)
                .is_pending()
        );
        assert!(
            watch
                .poll_room(&wakers.cx(1), &mut small, bounds, 0)
                .is_pending()
        );
        for _ in 0..2 {
            assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
        }
        assert_eq!(wakers.wakes(), [2, 1], "both woken at 500 bytes");
        assert!(
            watch
                .poll_room(&wakers.cx(1), &mut small, bounds, 0)
                .is_ready()
        );
        assert!(
            watch
                .poll_room(&wakers.cx(0), &mut large, bounds, 700)
                .is_pending()
        );
    }

    /// A waker that notes whether the queue's lock was free when it was woken.
    struct LockProbe {
        shared: Arc<Shared>,
        free: Mutex<Vec<bool>>,
    }

    impl std::task::Wake for LockProbe {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            let free = self.shared.state.try_lock().is_ok();
            self.free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(free);
        }
    }

    #[test]
    fn senders_waiting_for_room_are_woken_after_the_queue_lock_is_released() {
        let bounds = (8, 1000);
        for by_poll in [false, true] {
            let (tx, rx) = channel();
            assert_eq!(tx.push_now(chunk(0), 8, 1000), Ok(()));
            assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
            for _ in 0..6 {
                assert_eq!(tx.push_now(chunk(100), 8, 1000), Ok(()));
            }
            let probe = Arc::new(LockProbe {
                shared: rx.shared.clone(),
                free: Mutex::new(Vec::new()),
            });
            let waker = Waker::from(probe.clone());
            let watch = tx.watch();
            let mut slot = None;
            let cx = Context::from_waker(&waker);
            assert!(watch.poll_room(&cx, &mut slot, bounds, 0).is_pending());
            let mut noop = Context::from_waker(Waker::noop());
            for _ in 0..6 {
                if by_poll {
                    assert!(rx.poll_recv(&mut noop).is_ready());
                } else {
                    assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
                }
            }
            let free = probe
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            assert_eq!(
                free,
                [true],
                "woken once, with the lock free (by poll: {by_poll})"
            );
        }
    }

    #[test]
    fn kill_ends_at_once_and_a_gone_receiver_refuses() {
        let (tx, rx) = channel();
        assert_eq!(tx.push_now(chunk(1), 8, 8), Ok(()));
        tx.kill_now();
        assert!(matches!(rx.try_recv(), TryRecv::Ended));
        let (tx, rx) = channel();
        drop(rx);
        assert_eq!(tx.push_now(chunk(1), 8, 8), Err(PushError::Gone));
    }

    #[test]
    fn pending_until_pushed() {
        let (tx, rx) = channel();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(rx.poll_recv(&mut cx).is_pending());
        assert!(rx.poll_ready(&mut cx).is_pending());
        assert_eq!(tx.push_now(chunk(1), 8, 8), Ok(()));
        assert!(rx.poll_ready(&mut cx).is_ready());
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(Some(_))));
        drop(tx);
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn items_keep_their_order_and_no_buffer_once_dry() {
        let mut items = Items::default();
        items.push_back(1);
        assert!(!items.holds_buffer(), "one item is held inline");
        assert_eq!(items.pop_front(), Some(1));
        for n in 2..40 {
            items.push_back(n);
        }
        assert!(items.holds_buffer());
        assert_eq!(items.len(), 38);
        let mut seen = Vec::new();
        let mut late = Some(100);
        while let Some(n) = items.pop_front() {
            seen.push(n);
            if items.len() == 5 {
                if let Some(late) = late.take() {
                    items.push_back(late);
                }
            }
        }
        let mut expected: Vec<i32> = (2..40).collect();
        expected.push(100);
        assert_eq!(seen, expected);
        assert!(items.is_empty());
        assert!(
            !items.holds_buffer(),
            "a queue that ran dry gives its buffer back"
        );
    }
}
#[cfg(test)]
#[path = "queue_model_tests.rs"]
mod model_tests;
