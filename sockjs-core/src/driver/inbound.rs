//! What the shard and a session's handles share: the messages waiting for the
//! application, the backpressure on the client, and how the session ended.
//!
//! The queue is bounded in bytes ([`Config::max_session_inbound_bytes`]). Past the bound
//! nothing is refused: what a client already sent is queued, but whoever feeds the queue
//! is told to wait — a WebSocket stops reading its socket, a send's answer is held — until
//! the application has taken enough ([`SessionShared::poll_room`]). One input (a request's
//! body, one read of a socket) is always queued whole; only a client that starts one while
//! the queue is past twice its bound (it has several sends in flight at once), or an
//! application that takes nothing for [`Config::inbound_stall_timeout`], ends the session.
//!
//! [`Config::max_session_inbound_bytes`]: crate::driver::Config::max_session_inbound_bytes
//! [`Config::inbound_stall_timeout`]: crate::driver::Config::inbound_stall_timeout

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::driver::queue::{Items, Watch};
use crate::driver::runtime::later;
use crate::driver::waiters::{Waiters, Wakers, wake_all};
use crate::{CloseReason, SessionKey};

/// What a queued message counts for beyond its text: the queue's own bookkeeping, so a
/// flood of empty messages is bounded too (the engine weighs one input's messages alike).
const OVERHEAD: usize = crate::payload::MESSAGE_OVERHEAD;

/// Why the shard could not queue a message for the application.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InboundError {
    /// Past the hard bound: the client sent far more than the application takes.
    Full,
    /// The `Session` was dropped (nobody reads any more), or the session is being closed
    /// for an overflow: the message is dropped.
    Gone,
}

/// What the shard and a session's handles share.
pub(crate) struct SessionShared {
    pub(crate) id: Box<str>,
    pub(crate) key: SessionKey,
    /// The transport that opened the session (the metrics' label when it ends).
    pub(crate) transport: crate::Transport,
    /// Set once the session is closed and forgotten (a lock-free fast path for handles).
    closed: AtomicBool,
    /// Whether the queue is past its bound (see [`SessionShared::is_over`]): kept beside
    /// the lock because the WebSocket pump asks after every read.
    over: AtomicBool,
    /// A WebSocket session's outgoing queue, for senders that wait for room.
    pub(crate) outbound: OnceLock<Watch>,
    state: Mutex<SharedState>,
}

pub(crate) struct SharedState {
    items: Items<String>,
    /// What the queued messages count for.
    bytes: usize,
    /// Past this, feeders wait; below half of it, they go on.
    limit: usize,
    /// An input that starts past this ends the session.
    hard: usize,
    /// The session ended: `recv` returns `None` after the queued items.
    ended: bool,
    /// The `Session` was dropped: nothing is received any more.
    gone: bool,
    /// An input started past the hard bound: the session is being closed, and the rest of
    /// that input is dropped.
    refused: bool,
    recv_waker: Option<Waker>,
    /// Messages queued so far, and how many of them the application is done with.
    pushed: u64,
    taken: u64,
    /// Messages the application took off the queue so far (its progress).
    popped: u64,
    /// Requests waiting for `taken` to move (see [`Delivery`]).
    delivery: Waiters,
    /// Feeders waiting for room.
    room: Waiters,
    pub(crate) reason: Option<CloseReason>,
    /// `closed()` futures.
    pub(crate) closing: Waiters,
}

impl SessionShared {
    /// A session's shared state: its inbound queue holds `limit` bytes before feeders
    /// wait; an input that starts past `hard` ends the session.
    pub(crate) fn new(
        id: Box<str>,
        key: SessionKey,
        transport: crate::Transport,
        limit: usize,
        hard: usize,
    ) -> Self {
        SessionShared {
            id,
            key,
            transport,
            closed: AtomicBool::new(false),
            over: AtomicBool::new(false),
            outbound: OnceLock::new(),
            state: Mutex::new(SharedState {
                items: Items::default(),
                bytes: 0,
                limit,
                hard: hard.max(limit),
                ended: false,
                gone: false,
                refused: false,
                recv_waker: None,
                pushed: 0,
                taken: 0,
                popped: 0,
                delivery: Waiters::default(),
                room: Waiters::default(),
                reason: None,
                closing: Waiters::default(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message for the application; returns its sequence number (for
    /// [`Delivery`]). Past the bound it is still queued: the caller holds its client back.
    /// The first message of an input is refused when the queue is already past the hard
    /// bound; the rest of an input is never refused, so an input is bounded by its own
    /// size limit. The application's waker goes into `wake`, to be woken once the caller
    /// (the shard, which the application's task takes to answer) has released its lock.
    pub(crate) fn push(
        &self,
        text: String,
        first: bool,
        wake: &mut Wakers,
    ) -> Result<u64, InboundError> {
        let mut st = self.lock();
        if st.gone || st.refused {
            return Err(InboundError::Gone);
        }
        if first && st.bytes > st.hard {
            st.refused = true;
            return Err(InboundError::Full);
        }
        let weight = text.len() + OVERHEAD;
        st.items.push_back(text);
        st.bytes += weight;
        st.pushed += 1;
        self.mark(&st);
        wake.extend(st.recv_waker.take());
        Ok(st.pushed)
    }

    /// Whether the queue is past its bound: its feeders should wait. Lock-free; it may
    /// lag a change made on another thread, which [`poll_room`](Self::poll_room) settles
    /// under the lock.
    pub(crate) fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    /// Mirrors the queue's state into `over`; called under the lock after every change.
    fn mark(&self, st: &SharedState) {
        let over = st.bytes > st.limit && !st.gone && !st.ended;
        if self.over.load(Ordering::Relaxed) != over {
            self.over.store(over, Ordering::Release);
        }
    }

    /// Ready once the application has taken the queue down to half its bound (or is gone,
    /// or the session ended): feeders may go on.
    pub(crate) fn poll_room(&self, cx: &Context<'_>, slot: &mut Option<u64>) -> Poll<()> {
        let mut st = self.lock();
        if st.bytes <= st.limit / 2 || st.gone || st.ended {
            st.room.remove(slot.take());
            return Poll::Ready(());
        }
        st.room.register(slot, cx);
        Poll::Pending
    }

    /// Stops waiting for room.
    pub(crate) fn forget_room(&self, slot: Option<u64>) {
        if slot.is_some() {
            self.lock().room.remove(slot);
        }
    }

    /// How many messages the application has taken so far: a feeder that waited long for
    /// room tells a slow application from a stuck one by it.
    pub(crate) fn progress(&self) -> u64 {
        self.lock().popped
    }

    /// The application's next message: the poll form of `Session::recv`. `received` is how
    /// many messages it returned before; they count as taken now.
    #[inline]
    pub(crate) fn poll_next(&self, received: u64, cx: &Context<'_>) -> Poll<Option<String>> {
        let mut wakers = Wakers::default();
        let result = {
            let mut st = self.lock();
            if st.taken < received {
                st.taken = received;
                wakers = st.delivery.take();
            }
            match st.items.pop_front() {
                Some(text) => {
                    st.bytes -= text.len() + OVERHEAD;
                    st.popped += 1;
                    self.mark(&st);
                    if st.bytes <= st.limit / 2 {
                        wakers.extend(st.room.take());
                    }
                    Poll::Ready(Some(text))
                }
                None if st.ended => Poll::Ready(None),
                None => {
                    crate::driver::queue::register(&mut st.recv_waker, cx);
                    Poll::Pending
                }
            }
        };
        wake_all(wakers);
        result
    }

    /// The `Session` was dropped: what was queued is dropped, and nothing waits for it.
    pub(crate) fn abandon(&self) {
        let (items, wakers) = {
            let mut st = self.lock();
            st.gone = true;
            st.bytes = 0;
            self.mark(&st);
            st.recv_waker = None;
            let mut wakers = st.delivery.take();
            wakers.extend(st.room.take());
            (std::mem::take(&mut st.items), wakers)
        };
        drop(items);
        wake_all(wakers);
    }

    /// The session is over: `recv` ends after the queued messages, handles report it.
    /// Whoever waited on it goes into `wake`, as for [`push`](SessionShared::push).
    pub(crate) fn end(&self, reason: CloseReason, wake: &mut Wakers) {
        {
            let mut st = self.lock();
            st.ended = true;
            st.reason = Some(reason);
            self.mark(&st);
            self.closed.store(true, Ordering::Release);
            wake.extend(st.closing.take());
            wake.extend(st.delivery.take());
            wake.extend(st.room.take());
            wake.extend(st.recv_waker.take());
        }
        if let Some(outbound) = self.outbound.get() {
            wake.extend(outbound.take_waiters());
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the session ended (under the lock, for futures).
    pub(crate) fn has_ended(st: &SharedState) -> bool {
        st.ended
    }
}

/// A feeder's watch over an application whose queue is past its bound: has it taken
/// nothing for the whole [`Config::inbound_stall_timeout`]? Held by whoever holds a client
/// back (a send's held answer, a paused WebSocket).
///
/// [`Config::inbound_stall_timeout`]: crate::driver::Config::inbound_stall_timeout
#[derive(Debug, Default)]
pub(crate) struct Stall(Option<(Instant, u64)>);

impl Stall {
    /// `None` once the application has taken nothing for `timeout` since the watch began
    /// (or last saw it take something); else the deadline to look again.
    pub(crate) fn check(
        &mut self,
        shared: &SessionShared,
        now: Instant,
        timeout: Duration,
    ) -> Option<Instant> {
        let progress = shared.progress();
        match self.0 {
            Some((at, seen)) if seen == progress && at <= now => {
                tracing::warn!(
                    session = %shared.id,
                    "application not taking its messages; closing the session"
                );
                self.0 = None;
                None
            }
            Some((at, seen)) if seen == progress => Some(at),
            _ => {
                let at = later(now, timeout);
                self.0 = Some((at, progress));
                Some(at)
            }
        }
    }

    /// The queue has room again: the next wait starts a new watch.
    pub(crate) fn reset(&mut self) {
        self.0 = None;
    }
}

/// A message handed to a session's application by one request, done once the application
/// has taken it.
pub(crate) struct Delivery {
    pub(crate) shared: Arc<SessionShared>,
    pub(crate) seq: u64,
}

impl Delivery {
    /// Ready once the application came back to `recv` after the message, dropped its
    /// `Session`, or the session ended.
    pub(crate) fn poll_taken(&self, cx: &mut Context<'_>, slot: &mut Option<u64>) -> Poll<()> {
        let mut st = self.shared.lock();
        if st.taken >= self.seq || st.gone || st.ended {
            st.delivery.remove(slot.take());
            return Poll::Ready(());
        }
        st.delivery.register(slot, cx);
        Poll::Pending
    }

    /// Stops waiting.
    pub(crate) fn forget(&self, slot: Option<u64>) {
        self.shared.lock().delivery.remove(slot);
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll, Waker};

    use super::SessionShared;
    use crate::driver::waiters::Wakers;
    use crate::output::SessionKey;

    /// An idle session's inbound queue holds no buffer once the application has taken a
    /// burst of messages.
    #[test]
    fn drained_queue_holds_no_buffer() {
        let shared = SessionShared::new(
            "s".into(),
            SessionKey(1),
            crate::Transport::WebSocket,
            1 << 20,
            1 << 21,
        );
        for n in 0..50 {
            assert!(
                shared
                    .push(format!("m{n}"), n == 0, &mut Wakers::default())
                    .is_ok()
            );
        }
        assert!(shared.lock().items.holds_buffer());
        let cx = Context::from_waker(Waker::noop());
        for n in 0..50 {
            assert_eq!(shared.poll_next(n, &cx), Poll::Ready(Some(format!("m{n}"))));
        }
        assert!(shared.poll_next(50, &cx).is_pending());
        assert!(!shared.lock().items.holds_buffer());
    }
}
