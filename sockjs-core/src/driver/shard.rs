//! One engine shard: a `std::sync::Mutex` around an [`Engine`] and the tables that route
//! its transmits to requests and its events to sessions.
//!
//! Every input takes the lock, feeds the engine, drains what it produced with non-blocking
//! pushes, re-arms the timer and releases the lock; the tasks those pushes gave work (a
//! handler's message, a connection's frame) are woken and the handlers of sessions that
//! opened start only after that, so none of them runs into the lock still held. Nothing
//! awaits under the lock and no handler or admission hook runs under it (only the option
//! callbacks the engine calls, an origin predicate and a custom cookie, which must be
//! quick), so a slow client or application only ever delays itself.
//!
//! Why a mutex and not an actor task per shard: the work under the lock is microseconds of
//! pure computation, so a mutex costs one uncontended atomic in the common case, while an
//! actor adds two channel hops and a task wake-up to every request and every `send`, and a
//! reply channel for `send`'s verdict.

use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;

use crate::driver::config::{INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON};
use crate::driver::connection::{Connection, ConnectionProbe};
use crate::driver::drain::SHUTTING_DOWN;
use crate::driver::inbound::{Delivery, InboundError, SessionShared};
use crate::driver::metrics::{Counters, Endpoint, Outside};
use crate::driver::queue::{self, PushError, Watch};
use crate::driver::runtime::Timer;
use crate::driver::service::Common;
use crate::driver::session::Session;
use crate::driver::waiters::{Waiters, Wakers, wake_all};
use crate::route::Route;
use crate::{
    Content, Engine, Event, Rejection, RequestId, SendError, SessionInfo, SessionKey, SessionState,
    Transmit,
};

/// A map keyed by a request id or a session key. Both are counters, never chosen by a
/// client, so one multiply spreads them well enough and no keyed hash is needed on every
/// transmit.
type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let x = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

/// Where one request's transmits go.
struct Slot {
    tx: queue::Sender,
    /// Tells whether the request's client is still connected.
    probe: Option<ConnectionProbe>,
    /// Requests waiting for this one to end (see [`Shard::submit`]).
    watchers: Waiters,
    /// The session of a WebSocket request, once it opened (for its pump's backpressure).
    session: Option<Arc<SessionShared>>,
    /// What the request asked for; `None` once its answer's head was counted.
    endpoint: Option<Endpoint>,
}

impl Slot {
    fn new(tx: queue::Sender, probe: Option<ConnectionProbe>, endpoint: Option<Endpoint>) -> Slot {
        Slot {
            tx,
            probe,
            watchers: Waiters::default(),
            session: None,
            endpoint,
        }
    }
}

/// Work found while draining that needs the engine again.
enum Feedback {
    /// A request's connection overflowed or its task is gone.
    Abort(RequestId),
    /// A session's application stopped taking messages.
    Overflow(SessionKey),
}

pub(crate) struct State {
    engine: Engine,
    requests: KeyMap<RequestId, Slot>,
    sessions: KeyMap<SessionKey, Arc<SessionShared>>,
    /// The deadline the timer task sleeps until.
    timer_at: Option<Instant>,
    /// Sessions opened while draining; their handlers start once the lock is released.
    opened: Vec<(SessionKey, Box<SessionInfo>, Arc<SessionShared>)>,
    /// While an input is tracked: the last message it handed to an application.
    delivered: Option<Option<Delivery>>,
    /// Senders waiting for room in a session's engine queue (see [`Shard::send_or_wait`]).
    room: KeyMap<SessionKey, Room>,
    /// The session the current input (one request, one socket read) handed messages to:
    /// the hard inbound bound is checked once per input, at its first message.
    fed: Option<SessionKey>,
    counters: Counters,
    /// Tasks to wake once the lock is released (see [`Shard::settle`]): a task woken under
    /// it (a handler given a message, a socket given a frame) would often run at once on
    /// another thread and wait for this same lock to answer, and a runtime that polled
    /// inside `wake()` would deadlock.
    wake: Wakers,
}

/// One engine and everything routed through it.
pub(crate) struct Shard {
    state: Mutex<State>,
    pub(crate) common: Arc<Common>,
    /// Wakes the timer task when the next deadline moved earlier or the service stopped.
    kick: Kick,
    /// The timer task is running (or spawned).
    pub(crate) timer_running: AtomicBool,
    /// What is counted outside the lock.
    pub(crate) outside: Outside,
}

/// What [`Shard::submit`] did with a request.
pub(crate) enum Submitted {
    /// Handed to the engine; the last message it delivered, if any.
    Fed(Option<Delivery>),
    /// Held back: it would get 2010 because `attached` holds its session, and whether that
    /// request's client is still there cannot be told at once.
    Deferred {
        request: Box<http::Request<Bytes>>,
        connection: Connection,
        tx: queue::Sender,
        attached: RequestId,
    },
    /// Held back: it would open a session, which the service's admission hook must allow
    /// first. The hook sees the connection's facts as the request's extensions (the probe
    /// too, which [`Connection::take_from`] takes back).
    Admit {
        request: Box<http::Request<Bytes>>,
        tx: queue::Sender,
    },
}

impl Shard {
    pub(crate) fn new(engine: Engine, common: Arc<Common>) -> Shard {
        Shard {
            state: Mutex::new(State {
                engine,
                requests: KeyMap::default(),
                sessions: KeyMap::default(),
                timer_at: None,
                opened: Vec::new(),
                delivered: None,
                fed: None,
                room: KeyMap::default(),
                counters: Counters::default(),
                wake: Wakers::default(),
            }),
            common,
            kick: Kick::default(),
            timer_running: AtomicBool::new(false),
            outside: Outside::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(st) => {
                debug_assert!(
                    st.wake.is_empty(),
                    "a lock was released with tasks left to wake"
                );
                st
            }
            // A panic under the lock may have left tasks to wake: the next settle wakes them.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Runs one input under the lock, routes everything it produced, then starts the
    /// handlers of sessions that opened (outside the lock).
    pub(crate) fn run<R>(self: &Arc<Self>, f: impl FnOnce(&mut Engine, Instant) -> R) -> R {
        let mut st = self.lock();
        let now = self.common.runtime.now();
        let result = f(&mut st.engine, now);
        self.settle(st, now);
        result
    }

    /// [`run`](Shard::run) on every shard at once: all their locks are taken (in order;
    /// nothing else holds two) before `f` runs on any, and released one by one after. So
    /// no task woken by what `f` did on one shard (a handler whose session `f` ended)
    /// can reach another shard before `f` ran there too.
    pub(crate) fn run_all(shards: &[Arc<Shard>], f: impl Fn(&mut Engine, Instant)) {
        let Some(first) = shards.first() else {
            return;
        };
        let mut locked: Vec<_> = shards.iter().map(|shard| shard.lock()).collect();
        let now = first.common.runtime.now();
        for st in &mut locked {
            f(&mut st.engine, now);
        }
        // Every lock is released before any task is woken.
        let settled: Vec<_> = shards
            .iter()
            .zip(locked)
            .map(|(shard, st)| shard.settle_locked(st, now))
            .collect();
        for (shard, settled) in shards.iter().zip(settled) {
            shard.finish(settled);
        }
    }

    /// Drains the engine, re-arms the timer, releases the lock, then wakes the tasks that
    /// have work (never under the lock) and starts new handlers.
    fn settle(self: &Arc<Self>, st: MutexGuard<'_, State>, now: Instant) {
        let settled = self.settle_locked(st, now);
        self.finish(settled);
    }

    /// [`settle`](Shard::settle), with the tasks to wake handed to the caller.
    fn settle_into(self: &Arc<Self>, st: MutexGuard<'_, State>, now: Instant, into: &mut Wakers) {
        // Only a send settles this way, and a send (or the timers it fires) opens no
        // session, so no handler starts under the caller's lock (and starting one would
        // only spawn it, not run it).
        let settled = self.settle_locked(st, now);
        self.finish_into(settled, into);
    }

    /// [`settle`](Shard::settle) up to releasing the lock; what is left to do after it.
    fn settle_locked(&self, mut st: MutexGuard<'_, State>, now: Instant) -> Settled {
        st.drain(now, &self.common);
        if !st.room.is_empty() {
            st.wake_room(self.common.options.max_queued_bytes);
        }
        let mut kick = false;
        if let Some(at) = st.engine.poll_timeout() {
            if st.timer_at.is_none_or(|armed| at < armed) {
                st.timer_at = Some(at);
                kick = true;
            }
        }
        st.fed = None;
        let settled = Settled {
            wake: std::mem::take(&mut st.wake),
            kick,
            opened: std::mem::take(&mut st.opened),
        };
        drop(st);
        settled
    }

    /// Wakes and starts what [`settle_locked`](Shard::settle_locked) left, with no lock
    /// held.
    fn finish(self: &Arc<Self>, settled: Settled) {
        let mut wake = Wakers::default();
        self.finish_into(settled, &mut wake);
        wake_all(wake);
    }

    /// [`finish`](Shard::finish), with the tasks to wake handed to the caller, for one
    /// that holds a lock of its own (the broadcast hub's) and wakes them once it let go.
    fn finish_into(self: &Arc<Self>, settled: Settled, into: &mut Wakers) {
        let Settled { wake, kick, opened } = settled;
        if kick {
            into.extend(self.kick.kick());
        }
        into.extend(wake);
        for (key, info, shared) in opened {
            let session = Session::new(self.clone(), key, info, shared);
            self.common.start_handler(session);
        }
    }

    /// Whether some thread holds the lock now (for tests of what runs under it).
    #[cfg(test)]
    pub(crate) fn is_locked(&self) -> bool {
        matches!(
            self.state.try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        )
    }

    /// Reads engine state without feeding it anything.
    pub(crate) fn peek<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        f(&self.lock().engine)
    }

    /// Registers a request's queue and hands the request to the engine, unless it would be
    /// refused with 2010 for a receiver whose client may already be gone (PROTOCOL.md
    /// §7.1.6): then that receiver is probed and, if its client has left, aborted first, so
    /// the newcomer gets what it would have got had the abort been noticed first. Without a
    /// probe the request is deferred (unless `force`): the caller waits for the receiver to
    /// end, at most [`Config::abort_grace`](crate::driver::Config::abort_grace).
    ///
    /// Unless `admitted`, a request that would open a session is held back for the
    /// service's admission hook, if it has one: asked under the same lock that would hand
    /// the request over, so no session opens unasked.
    pub(crate) fn submit(
        self: &Arc<Self>,
        id: RequestId,
        request: http::Request<Bytes>,
        connection: Connection,
        tx: queue::Sender,
        force: bool,
        admitted: bool,
    ) -> Submitted {
        // Routed once, before the lock (nothing under it but the engine's work), for the
        // engine and the metrics alike.
        let (parts, body) = request.into_parts();
        let uri = parts.uri.clone();
        // A target with no path is in no service (`Route::of_target`), whatever the mount.
        let route = Some(uri.path())
            .filter(|path| path.starts_with('/'))
            .and_then(|path| connection.facts().routed(path))
            .and_then(|path| Route::in_service(path, &self.common.prefix));
        let endpoint = Endpoint::of_route(route);
        let mut st = self.lock();
        let now = self.common.runtime.now();
        // Timers due by now fire first: every question below (is a receiver attached, would
        // it open a session) is then answered about the sessions as they are now, the same
        // ones the engine will hand the request to. A late timer input would otherwise let
        // a request for a session just expired skip the drain, admission and the session
        // limit, and then open a fresh one.
        let mut ended = st.fire_due(now, &self.common);
        if let Some(attached) = st.engine.attached_receiver_routed(&parts, route) {
            let verdict = st
                .requests
                .get(&attached)
                .map(|slot| slot.probe.as_ref().map(ConnectionProbe::is_gone));
            match verdict {
                Some(Some(true)) => {
                    tracing::debug!(request = attached.0, "receiver's client is gone");
                    st.counters.aborts += 1;
                    st.remove_request(attached);
                    st.engine.handle_abort(now, attached);
                    ended = true;
                }
                Some(None) if !force && !self.common.config.abort_grace.is_zero() => {
                    // What the timers did above goes out now.
                    self.settle(st, now);
                    return Submitted::Deferred {
                        request: Box::new(http::Request::from_parts(parts, body)),
                        connection,
                        tx,
                        attached,
                    };
                }
                _ => {}
            }
        }
        if ended {
            // What the timers and the abort ended is counted now (the service's session
            // count falls as their `Closed` events are drained), before this request may
            // ask for a place under `max_sessions`.
            st.drain(now, &self.common);
        }
        // Asked after the abort above, which may have ended the session this request
        // would have joined: it would then open a new one.
        let may_open = st.engine.may_open_session_routed(&parts, route);
        let mut parts = parts;
        if may_open {
            // Stamped before the questions below: the application's origin predicate reads
            // the request as the engine will hand it over (its peer address, TLS, the path
            // without the mount prefix), or it could answer one way here and the other
            // once the engine asks, and open a session the drain or the hook never saw.
            // The rejections read the path without the mount prefix too (to know an
            // upgrade, refused with a close).
            connection.facts().stamp(&mut parts);
        }
        // Graceful shutdown: the service serves the sessions it holds and opens no more,
        // decided under the lock that would open one. Asked after the abort above, as the
        // admission hook is.
        if may_open
            && self.common.drain.is_draining()
            && st.engine.opens_session_routed(&parts, route)
        {
            let config = &self.common.config;
            let (code, reason) = self
                .common
                .drain
                .close()
                .unwrap_or((config.shutdown_code, &config.shutdown_reason));
            let rejection = Rejection::new(StatusCode::SERVICE_UNAVAILABLE)
                .with_body(SHUTTING_DOWN)
                .with_close(code, reason);
            self.reject_locked(st, id, &parts, &rejection, tx, endpoint);
            return Submitted::Fed(None);
        }
        // A full service answers 503 without asking the hook (a database or an
        // authentication round trip, for up to `admission_timeout`): the request goes on
        // below, where it gets no place, as it would after the hook. Decided once: a place
        // another shard frees meanwhile must not open a session the hook never saw.
        let asks = may_open && !admitted && self.common.admission.get().is_some();
        let full_unasked = asks && self.common.is_full();
        if asks && !full_unasked && st.engine.opens_session_routed(&parts, route) {
            self.settle(st, now);
            if let Some(probe) = connection.into_probe() {
                parts.extensions.insert(probe);
            }
            return Submitted::Admit {
                request: Box::new(http::Request::from_parts(parts, body)),
                tx,
            };
        }
        // `Options::max_sessions` bounds the service, whose sessions are spread over
        // shards whose engines each count only their own. Without a place, the engine
        // runs its usual checks (a body too large, a refused origin, a bad callback, a
        // malformed upgrade answer first) and then refuses as past its own count.
        let held = if may_open && !full_unasked {
            self.common.hold_session()
        } else {
            None
        };
        st.engine.service_full = may_open && held.is_none();
        let peer = connection.facts();
        st.requests
            .insert(id, Slot::new(tx, connection.into_probe(), Some(endpoint)));
        st.counters.wire_received += body.len() as u64;
        st.delivered = Some(None);
        st.engine.handle_routed(now, id, parts, body, route, peer);
        st.engine.service_full = false;
        st.drain(now, &self.common);
        // The session, if it opened, counts itself from here.
        drop(held);
        let delivered = st.delivered.take().flatten();
        self.settle(st, now);
        Submitted::Fed(delivered)
    }

    /// Answers a request the admission hook refused (see
    /// [`Engine::handle_rejected`](crate::Engine::handle_rejected)).
    pub(crate) fn reject(
        self: &Arc<Self>,
        id: RequestId,
        request: &http::request::Parts,
        rejection: &crate::Rejection,
        tx: queue::Sender,
    ) {
        let endpoint = Endpoint::of_path(request.uri.path(), &self.common.prefix);
        let st = self.lock();
        self.reject_locked(st, id, request, rejection, tx, endpoint);
    }

    /// Answers a refused request under the lock already held, then settles.
    fn reject_locked(
        self: &Arc<Self>,
        mut st: MutexGuard<'_, State>,
        id: RequestId,
        request: &http::request::Parts,
        rejection: &crate::Rejection,
        tx: queue::Sender,
        endpoint: Endpoint,
    ) {
        let now = self.common.runtime.now();
        st.requests.insert(id, Slot::new(tx, None, Some(endpoint)));
        st.engine.handle_rejected(now, id, request, rejection);
        self.settle(st, now);
    }

    /// Whether `attached` still holds a slot; if so, `cx` is woken once it ends.
    pub(crate) fn poll_ended(
        &self,
        attached: RequestId,
        cx: &Context<'_>,
        slot: &mut Option<u64>,
    ) -> Poll<()> {
        let mut st = self.lock();
        match st.requests.get_mut(&attached) {
            Some(request) => {
                request.watchers.register(slot, cx);
                Poll::Pending
            }
            None => Poll::Ready(()),
        }
    }

    /// Stops watching `attached`.
    pub(crate) fn unwatch(&self, attached: RequestId, slot: Option<u64>) {
        if let Some(request) = self.lock().requests.get_mut(&attached) {
            request.watchers.remove(slot);
        }
    }

    /// The request is over on the adapter's side (its client went away, or its WebSocket
    /// closed): forget where its transmits went, then tell the engine with `f`.
    pub(crate) fn end_request(
        self: &Arc<Self>,
        id: RequestId,
        f: impl FnOnce(&mut Engine, Instant, RequestId),
    ) {
        let mut st = self.lock();
        let now = self.common.runtime.now();
        st.remove_request(id);
        f(&mut st.engine, now, id);
        self.settle(st, now);
    }

    /// The peer went away: forget the request and tell the engine.
    pub(crate) fn abort(self: &Arc<Self>, id: RequestId) {
        let mut st = self.lock();
        let now = self.common.runtime.now();
        // Counted once: a request the shard no longer holds was answered in full, or
        // aborted already (found gone by the next receiver's probe, or its connection
        // dropped for an overflow, each counted where it was seen).
        if st.remove_request(id) {
            st.counters.aborts += 1;
        }
        st.engine.handle_abort(now, id);
        self.settle(st, now);
    }

    /// Requests that still have somewhere for their transmits to go.
    pub(crate) fn open_requests(&self) -> usize {
        self.lock().requests.len()
    }

    /// The application queues a message; the tasks to wake are handed to the caller (see
    /// [`finish_into`](Shard::finish_into)), who wakes them once it holds no lock.
    ///
    /// `was_refused`: the sending handle was refused a message before, and has a `ready()`
    /// perhaps parked for that message's room, which a send that goes through ends.
    pub(crate) fn send_into(
        self: &Arc<Self>,
        key: SessionKey,
        shared: &SessionShared,
        text: &str,
        was_refused: bool,
        into: &mut Wakers,
    ) -> Result<(), SendError> {
        let mut st = self.lock();
        let now = self.common.runtime.now();
        let fired = st.fire_due(now, &self.common);
        // The connection the message would go out on is as good as full: refused, as when
        // the session's own queue is, rather than pushed past its bound (which would end
        // the session).
        let bounds = self.outbound_bounds();
        let full = st.with_outbound(key, shared, |watch| {
            !watch.has_room(bounds, framed_bound(text.len()))
        });
        if full == Some(true) {
            st.counters.queue_full += 1;
            if fired {
                self.settle_into(st, now, into);
            }
            return Err(SendError::QueueFull);
        }
        let result = st.engine.send(now, key, text);
        st.sent(key, &result, text, was_refused);
        self.settle_into(st, now, into);
        result
    }

    /// Queues a message if the session has room for it, else registers `cx` to be woken
    /// once it has (half its bound free again). A message that could not fit even an empty
    /// queue fails at once.
    ///
    /// First, the connection the message would go out on (the session's WebSocket, or its
    /// attached HTTP receiver) must have room for it, as [`Watch::poll_room`] says, or the
    /// sender waits there (`outbound`): checked under the shard's lock, the only pusher to
    /// that queue, so that senders woken together cannot overfill it between check and
    /// push.
    pub(crate) fn send_or_wait(
        self: &Arc<Self>,
        key: SessionKey,
        shared: &SessionShared,
        text: &str,
        cx: &Context<'_>,
        slot: &mut Option<u64>,
        outbound: &mut Outbound,
    ) -> Poll<Result<(), SendError>> {
        let mut st = self.lock();
        let now = self.common.runtime.now();
        let fired = st.fire_due(now, &self.common);
        if st.wait_outbound(
            key,
            shared,
            self.outbound_bounds(),
            framed_bound(text.len()),
            cx,
            outbound,
        ) {
            if fired {
                self.settle(st, now);
            }
            return Poll::Pending;
        }
        // A waiter woken for another reason than room (a handle whose refusal ended wakes
        // every waiter of its session) finds its message still too large, or the queue
        // emptied (a receiver takes it whole): it never goes on above half, as `send`
        // promises, with no check of its own that would let later senders overtake it.
        match st.engine.send(now, key, text) {
            Err(SendError::QueueFull) if st.engine.queued_bytes(key).unwrap_or(0) > 0 => {
                let need = escaped_bound(text.len());
                st.room.entry(key).or_default().register(slot, cx, need);
                if fired {
                    self.settle(st, now);
                }
                Poll::Pending
            }
            result => {
                if let Some(room) = st.room.get_mut(&key) {
                    room.waiters.remove(slot.take());
                }
                st.sent(key, &result, text, false);
                self.settle(st, now);
                Poll::Ready(result)
            }
        }
    }

    /// Ready once the session's connection has room (as for
    /// [`send_or_wait`](Shard::send_or_wait)) and its engine queue is at most half full
    /// (or the session ended); after [`send_into`](Shard::send_into) refused the waiting
    /// handle a message of length `refused` for want of room, once that message would fit
    /// (or could fit nowhere: the queues are empty), so that a sender looping on the two is
    /// not woken to be refused again.
    pub(crate) fn poll_room(
        &self,
        key: SessionKey,
        shared: &SessionShared,
        refused: Option<usize>,
        cx: &Context<'_>,
        slot: &mut Option<u64>,
        outbound: &mut Outbound,
    ) -> Poll<()> {
        let mut st = self.lock();
        let max = self.common.options.max_queued_bytes;
        let need = refused.map_or(0, escaped_bound);
        // A message that may not fit even the empty engine queue waits for the connection
        // to empty too: when it still does not fit, nothing is queued anywhere (the sign a
        // sender has that it never will), rather than `ready` resolving for it again and
        // again while the connection drains.
        let more = match refused {
            Some(_) if need > max => usize::MAX,
            Some(len) => framed_bound(len),
            None => 0,
        };
        if st.wait_outbound(key, shared, self.outbound_bounds(), more, cx, outbound) {
            return Poll::Pending;
        }
        if engine_room(&st.engine, key, need, max) {
            if let Some(room) = st.room.get_mut(&key) {
                room.waiters.remove(slot.take());
            }
            return Poll::Ready(());
        }
        st.room.entry(key).or_default().register(slot, cx, need);
        Poll::Pending
    }

    /// The connection queue's bounds, which a sender waits to see half free.
    fn outbound_bounds(&self) -> (usize, usize) {
        let config = &self.common.config;
        (
            config.max_connection_queue.max(8),
            config.max_connection_queue_bytes,
        )
    }

    /// A handle that was refused a message sent one, through
    /// [`send_or_wait`](Shard::send_or_wait): see [`send_into`](Shard::send_into)'s
    /// `was_refused`.
    pub(crate) fn refusal_ended(&self, key: SessionKey) {
        let wake = {
            let mut st = self.lock();
            st.end_refusal(key);
            std::mem::take(&mut st.wake)
        };
        wake_all(wake);
    }

    /// Stops waiting for room.
    pub(crate) fn forget_room(&self, key: SessionKey, slot: Option<u64>) {
        if slot.is_none() {
            return;
        }
        let mut st = self.lock();
        if let Some(room) = st.room.get_mut(&key) {
            room.waiters.remove(slot);
            if room.waiters.is_empty() {
                st.room.remove(&key);
            }
        }
    }

    /// Escaped bytes the engine holds for a session (0 once it ended), and those queued on
    /// the connection its messages go out on.
    pub(crate) fn queued_bytes(&self, key: SessionKey, shared: &SessionShared) -> usize {
        let st = self.lock();
        let held = st.engine.queued_bytes(key).unwrap_or(0);
        held + st.with_outbound(key, shared, Watch::bytes).unwrap_or(0)
    }

    /// The session of a WebSocket request, once it opened.
    pub(crate) fn session_of(&self, id: RequestId) -> Option<Arc<SessionShared>> {
        self.lock().requests.get(&id)?.session.clone()
    }

    /// The application closes a session.
    pub(crate) fn close(
        self: &Arc<Self>,
        key: SessionKey,
        code: u16,
        reason: &str,
    ) -> Result<(), SendError> {
        self.run(|engine, now| engine.close(now, key, code, reason))
    }

    /// The driver closes a session whose application does not take its messages.
    pub(crate) fn close_overflowed(self: &Arc<Self>, key: SessionKey) {
        let mut st = self.lock();
        let now = self.common.runtime.now();
        st.close_overflowed(now, key);
        self.settle(st, now);
    }

    /// Adds this shard's counters into `into`.
    pub(crate) fn add_counters(&self, into: &mut Counters) {
        {
            let st = self.lock();
            into.add(&st.counters);
            into.heartbeats += st.engine.heartbeats();
        }
        self.outside.add_to(into);
    }

    /// The session's state now: the timers due by now fire first (a session past its
    /// disconnect delay is closed, not open until the timer task comes round), as for a
    /// send.
    pub(crate) fn session_state(self: &Arc<Self>, key: SessionKey) -> SessionState {
        let mut st = self.lock();
        let now = self.common.runtime.now();
        let fired = st.fire_due(now, &self.common);
        let state = st.engine.session_state(key);
        if fired {
            self.settle(st, now);
        }
        state
    }

    /// Sleeps until the engine's next deadline (or an earlier one announced by an input)
    /// and fires its timers, until the service stops and its last session has ended.
    ///
    /// A stopped service has closed its sessions (see `Inner`'s `Drop`), and opens no new
    /// one: what is left are closing HTTP sessions, which end at their disconnect delay,
    /// by this task's timer, and only then do their handlers see the end.
    pub(crate) async fn timer_task(self: Arc<Self>) {
        let mut timer: Option<Pin<Box<dyn Timer>>> = None;
        loop {
            let next = {
                let mut st = self.lock();
                if self.common.stopped.load(Ordering::Acquire) && st.engine.session_count() == 0 {
                    return;
                }
                st.timer_at = st.engine.poll_timeout();
                st.timer_at
            };
            if let Some(at) = next {
                match timer.as_mut() {
                    Some(timer) => timer.as_mut().reset(at),
                    None => timer = Some(self.common.runtime.timer(at)),
                }
            }
            let fired = poll_fn(|cx| {
                if self.kick.poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
                match (next, timer.as_mut()) {
                    (Some(_), Some(timer)) => timer.as_mut().poll(cx).map(|()| true),
                    _ => Poll::Pending,
                }
            })
            .await;
            if fired {
                self.run(|engine, now| engine.handle_timeout(now));
            }
        }
    }

    /// Wakes the timer task (to see the service stopped).
    pub(crate) fn wake_timer(&self) {
        if let Some(waker) = self.kick.kick() {
            waker.wake();
        }
    }
}

/// What is left of [`Shard::settle`] once the lock is released.
struct Settled {
    /// The tasks the input gave work.
    wake: Wakers,
    /// The next deadline moved earlier: the timer task must look again.
    kick: bool,
    /// Sessions that opened: their handlers start.
    opened: Vec<(SessionKey, Box<SessionInfo>, Arc<SessionShared>)>,
}

/// Where a sender waits for room on a connection queue, for as long as it waits.
#[derive(Default)]
pub(crate) struct Outbound {
    waiting: Option<(Watch, Option<u64>)>,
}

impl Outbound {
    /// Stops waiting (the sender was woken, or dropped).
    #[inline]
    pub(crate) fn forget(&mut self) {
        if let Some((watch, slot)) = self.waiting.take() {
            watch.forget(slot);
        }
    }
}

/// At most what a message of `len` bytes takes once framed and escaped, on any transport:
/// SockJS escapes a control character as six bytes (`\u0001`), and htmlfile and JSONP
/// quote that frame again as a JavaScript string (`\\u0001`, seven); the frame, the
/// transport's wrapper and a JSONP callback (at most 64 bytes) add under 128.
fn framed_bound(len: usize) -> usize {
    len.saturating_mul(7).saturating_add(128)
}

/// At most what a message of `len` bytes adds to a session's engine queue: escaped (six
/// bytes a character at most), quoted, and the comma before it.
fn escaped_bound(len: usize) -> usize {
    len.saturating_mul(6).saturating_add(3)
}

/// Whether a session's engine queue holding `queued` escaped bytes (of at most `max`) lets
/// a waiting sender go on: once it is half empty and, for a sender of a message that adds
/// up to `need` bytes, once that fits too, or once the queue is empty (then the message
/// fits, or never will and is refused for good). A receiver takes the whole queue at once,
/// so a wait for room never outlasts the next receiver.
fn has_room(queued: usize, need: usize, max: usize) -> bool {
    queued <= max / 2 && (queued == 0 || queued.saturating_add(need) <= max)
}

/// Whether a sender waiting for `need` bytes ([`has_room`]) in the engine queue of session
/// `key` goes on: it has room, or the session is no longer open (its `send` then fails).
fn engine_room(engine: &Engine, key: SessionKey, need: usize, max: usize) -> bool {
    engine.session_state(key) != SessionState::Open
        || engine
            .queued_bytes(key)
            .is_none_or(|queued| has_room(queued, need, max))
}

/// The senders of one session waiting for room in its engine queue.
#[derive(Default)]
struct Room {
    waiters: Waiters,
    /// The least a waiting sender needs ([`has_room`]): they are woken once it fits, not
    /// at every input of the shard while it does not. Taken anew from those that wait on
    /// after each wake-up.
    need: usize,
}

impl Room {
    fn register(&mut self, slot: &mut Option<u64>, cx: &Context<'_>, need: usize) {
        self.need = if self.waiters.is_empty() {
            need
        } else {
            self.need.min(need)
        };
        self.waiters.register(slot, cx);
    }
}

impl State {
    /// Fires the engine's timers due by `now` and routes what they did, before an input
    /// whose checks look at the sessions (a send's room): a session past its ping timeout
    /// or disconnect delay is then gone for it, however late the timer task is. Whether
    /// any were due (then the caller settles, even on a path that feeds nothing).
    fn fire_due(&mut self, now: Instant, common: &Common) -> bool {
        if self.engine.poll_timeout().is_none_or(|at| at > now) {
            return false;
        }
        self.engine.handle_timeout(now);
        self.drain(now, common);
        true
    }

    /// Calls `f` with the queue of the connection a session's messages go out on now:
    /// its WebSocket's, or its attached HTTP receiver's; `None` while it has neither (they
    /// wait in the engine, under its own bound).
    #[inline(always)]
    fn with_outbound<R>(
        &self,
        key: SessionKey,
        shared: &SessionShared,
        f: impl FnOnce(&Watch) -> R,
    ) -> Option<R> {
        if let Some(watch) = shared.outbound.get() {
            return Some(f(watch));
        }
        let request = self.engine.receiver_request(key)?;
        self.requests.get(&request).map(|slot| f(&slot.tx.watch()))
    }

    /// Whether a sender of `more` bytes must wait for room on the session's connection;
    /// if so, it is registered there.
    #[inline(always)]
    fn wait_outbound(
        &self,
        key: SessionKey,
        shared: &SessionShared,
        bounds: (usize, usize),
        more: usize,
        cx: &Context<'_>,
        outbound: &mut Outbound,
    ) -> bool {
        // A registration from an earlier poll may be on another receiver's queue.
        outbound.forget();
        self.with_outbound(key, shared, |watch| {
            let mut slot = None;
            let wait = watch.poll_room(cx, &mut slot, bounds, more).is_pending();
            if wait {
                outbound.waiting = Some((watch.clone(), slot));
            }
            wait
        })
        .unwrap_or(false)
    }

    /// Drains transmits and events; overflows and dead requests feed back in as aborts or
    /// closes until the engine is quiet.
    fn drain(&mut self, now: Instant, common: &Common) {
        let mut feedback = Vec::new();
        loop {
            while let Some(transmit) = self.engine.poll_transmit() {
                self.route(transmit, common, &mut feedback);
            }
            while let Some(event) = self.engine.poll_event() {
                self.event(event, common, &mut feedback);
            }
            if feedback.is_empty() {
                return;
            }
            for work in feedback.drain(..) {
                match work {
                    Feedback::Abort(id) => self.engine.handle_abort(now, id),
                    Feedback::Overflow(key) => self.close_overflowed(now, key),
                }
            }
        }
    }

    /// Closes a session whose application does not take its messages.
    fn close_overflowed(&mut self, now: Instant, key: SessionKey) {
        if self
            .engine
            .close(now, key, INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON)
            .is_ok()
        {
            self.counters.inbound_overflows += 1;
        }
    }

    /// Counts a send; one that went through from a handle refused before (`was_refused`)
    /// ends the wait for room of the message [`Shard::send_into`] refused it
    /// ([`Shard::poll_room`]): a `ready()` parked for that message's room (or for empty
    /// queues) is woken to wait for the usual half instead.
    fn sent(
        &mut self,
        key: SessionKey,
        result: &Result<(), SendError>,
        text: &str,
        was_refused: bool,
    ) {
        match result {
            Ok(()) => {
                self.counters.messages_sent += 1;
                self.counters.message_bytes_sent += text.len() as u64;
                if was_refused {
                    self.end_refusal(key);
                }
            }
            Err(SendError::QueueFull) => self.counters.queue_full += 1,
            Err(_) => {}
        }
    }

    /// Wakes the `ready()`s parked for the room of a message a handle was refused (or for
    /// empty queues), now that it sent one: they wait for the usual half instead.
    fn end_refusal(&mut self, key: SessionKey) {
        if let Some(room) = self.room.get_mut(&key) {
            self.wake.extend(room.waiters.take());
        }
        if let Some(shared) = self.sessions.get(&key) {
            if let Some(waiters) = self.with_outbound(key, shared, Watch::take_waiters) {
                self.wake.extend(waiters);
            }
        }
    }

    fn route(&mut self, transmit: Transmit, common: &Common, feedback: &mut Vec<Feedback>) {
        let Transmit { request, content } = transmit;
        let Some(slot) = self.requests.get_mut(&request) else {
            return;
        };
        let last = content.is_last();
        // A request's answer is counted at its head; WebSocket frames by the pump that
        // encodes them.
        let (status, body) = match &content {
            Content::Response(response) => (Some(response.status()), response.body().len()),
            Content::StreamStart(head) => (Some(head.status()), 0),
            Content::Upgrade { .. } => (Some(http::StatusCode::SWITCHING_PROTOCOLS), 0),
            Content::Chunk(data) => (None, data.len()),
            _ => (None, 0),
        };
        if let (Some(status), Some(endpoint)) = (status, slot.endpoint.take()) {
            self.counters.answered(endpoint, status.as_u16());
        }
        let config = &common.config;
        let pushed = slot.tx.push(
            content,
            config.max_connection_queue.max(8),
            config.max_connection_queue_bytes,
            &mut self.wake,
        );
        // Bytes count once the connection has taken them: a frame past its bound, or
        // for a client gone, is dropped, not sent.
        if pushed.is_ok() {
            self.counters.wire_sent += body as u64;
        }
        match pushed {
            Ok(()) if last => {
                self.remove_request(request);
            }
            Ok(()) => {}
            Err(PushError::Full) => {
                self.counters.connection_overflows += 1;
                tracing::warn!(
                    service = %common.prefix,
                    request = request.0,
                    "connection queue overflow; dropping the connection"
                );
                if let Some(slot) = self.take_slot(request) {
                    slot.tx.kill(&mut self.wake);
                }
                feedback.push(Feedback::Abort(request));
            }
            Err(PushError::Gone) => {
                self.counters.aborts += 1;
                self.remove_request(request);
                feedback.push(Feedback::Abort(request));
            }
        }
    }

    fn event(&mut self, event: Event, common: &Common, feedback: &mut Vec<Feedback>) {
        let config = &common.config;
        match event {
            Event::Opened { session, info } => {
                tracing::info!(
                    service = %common.prefix,
                    session = %info.id,
                    key = session.as_u64(),
                    transport = info.transport.name(),
                    "session opened"
                );
                let limit = config.max_session_inbound_bytes;
                // A client that starts sending past twice the bound did not wait for its
                // answers: it has several sends in flight at once.
                self.counters.opened(info.transport);
                common.session_counted(true);
                let shared = Arc::new(SessionShared::new(
                    info.id.clone(),
                    session,
                    info.transport,
                    limit,
                    limit.saturating_mul(2),
                ));
                if info.transport.is_websocket() {
                    if let Some(slot) = self.requests.get_mut(&info.opened_by) {
                        let _ = shared.outbound.set(slot.tx.watch());
                        slot.session = Some(shared.clone());
                    }
                }
                self.sessions.insert(session, shared.clone());
                self.opened.push((session, info, shared));
            }
            Event::Message { session, text } => {
                self.counters.messages_received += 1;
                self.counters.message_bytes_received += text.len() as u64;
                let Some(shared) = self.sessions.get(&session) else {
                    return;
                };
                let first = self.fed.replace(session) != Some(session);
                match shared.push(text, first, &mut self.wake) {
                    Ok(seq) => {
                        if let Some(delivered) = &mut self.delivered {
                            *delivered = Some(Delivery {
                                shared: shared.clone(),
                                seq,
                            });
                        }
                    }
                    Err(InboundError::Full) => {
                        tracing::warn!(
                            service = %common.prefix,
                            session = %shared.id,
                            "session inbound queue overflow; closing the session"
                        );
                        feedback.push(Feedback::Overflow(session));
                    }
                    Err(InboundError::Gone) => {
                        tracing::trace!(session = %shared.id, "message dropped: session handle gone");
                    }
                }
            }
            Event::Closed { session, reason } => {
                if let Some(shared) = self.sessions.remove(&session) {
                    self.counters.ended(shared.transport, &reason);
                    common.session_counted(false);
                    tracing::info!(
                        service = %common.prefix,
                        session = %shared.id,
                        key = session.as_u64(),
                        ?reason,
                        "session closed"
                    );
                    shared.end(reason, &mut self.wake);
                }
            }
        }
    }

    /// Wakes senders waiting on sessions whose engine queue is half empty again, or that
    /// are no longer open (their `send` fails with `NotOpen` then, while the closing
    /// session keeps its queue for the close's replay).
    fn wake_room(&mut self, max_queued_bytes: usize) {
        let engine = &self.engine;
        let wake = &mut self.wake;
        self.room.retain(|key, room| {
            let ready = engine_room(engine, *key, room.need, max_queued_bytes);
            if ready {
                wake.extend(room.waiters.take());
            }
            !ready && !room.waiters.is_empty()
        });
    }

    /// Forgets where a request's transmits go: its queue ends after what it holds, and the
    /// requests waiting for it to end go on (woken once the lock is released). Whether the
    /// shard still held it.
    fn remove_request(&mut self, id: RequestId) -> bool {
        let Some(slot) = self.take_slot(id) else {
            return false;
        };
        slot.tx.close(&mut self.wake);
        true
    }

    /// Takes a request's slot; the requests waiting for it to end go on.
    fn take_slot(&mut self, id: RequestId) -> Option<Slot> {
        let mut slot = self.requests.remove(&id)?;
        self.wake.extend(slot.watchers.take());
        Some(slot)
    }
}

/// A one-slot wake-up: set by inputs, taken by the timer task.
#[derive(Default)]
struct Kick {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Kick {
    /// Sets the flag; the timer task's waker, to wake.
    #[must_use = "the timer task is to be woken"]
    fn kick(&self) -> Option<Waker> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.0 = true;
        st.1.take()
    }

    fn poll(&self, cx: &Context<'_>) -> Poll<()> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if std::mem::take(&mut st.0) {
            return Poll::Ready(());
        }
        queue::register(&mut st.1, cx);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::framed_bound;
    use crate::frame::MessageBatch;
    use crate::{ProtocolVersion, Transport};

    proptest! {
        /// The room a sender waits for is at least what its message takes on the wire, on
        /// every transport, for the characters that grow most: controls (`\u0001`, then
        /// `\\u0001` inside htmlfile's and JSONP's string), quotes, backslashes, `<`, `%`
        /// (EventSource's `%25`), the line separators SockJS escapes, and others; with the
        /// longest JSONP callback.
        #[test]
        fn the_framed_bound_holds_on_every_transport(
            text in proptest::collection::vec(
                prop::sample::select(vec![
                    '\u{1}', '\u{1f}', '"', '\\', '<', '>', '%', '\n', '\u{2028}', '\u{feff}',
                    '\u{fffe}', 'é', 'a', '\u{10ffff}', '\u{0}',
                ]),
                0..200,
            ).prop_map(|chars| chars.into_iter().collect::<String>())
        ) {
            let callback = "c".repeat(64);
            let mut batch = MessageBatch::default();
            batch.push(&text);
            for transport in [
                Transport::XhrPolling,
                Transport::XhrStreaming,
                Transport::EventSource,
                Transport::HtmlFile,
                Transport::JsonpPolling,
            ] {
                for protocol in [ProtocolVersion::Current, ProtocolVersion::V0_3_3] {
                    let mut frame = Vec::new();
                    batch.write_frame(&mut frame);
                    let wire = transport.wrap(frame, &callback, protocol).len();
                    prop_assert!(
                        wire <= framed_bound(text.len()),
                        "{transport:?}: {wire} bytes for {} of text", text.len()
                    );
                }
            }
        }
    }
}
