//! One engine shard: a `std::sync::Mutex` around an [`Engine`] and the tables that route
//! its outputs to requests, sockets and sessions. Locked only for the length of one input
//! and the drain of its outputs; never across an `.await`, and no application code runs
//! under it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Response, request::Parts};
use sockjs_core::{Engine, Handshake, Output, RequestId, SessionKey};
use tokio::sync::{Notify, oneshot, watch};

use crate::queue::{QueueRx, QueueTx, TrySendError, queue};
use crate::service::Common;
use crate::session::Session;

/// Close code used when a session's inbound queue overflows (RFC 6455 "Try Again Later").
pub(crate) const INBOUND_OVERFLOW_CODE: u16 = 1013;
/// Close reason used when a session's inbound queue overflows.
pub(crate) const INBOUND_OVERFLOW_REASON: &str = "Application not reading";

/// What a WebSocket task is asked to write.
#[derive(Debug)]
pub(crate) enum WsOut {
    Text(String),
    Ping,
    Close(u16, String),
}

impl WsOut {
    fn len(&self) -> usize {
        match self {
            WsOut::Text(t) => t.len(),
            WsOut::Ping => 0,
            WsOut::Close(_, r) => r.len(),
        }
    }
}

/// The first answer to a request, handed to the waiting service future.
pub(crate) enum Reply {
    Full(Response<Bytes>),
    Stream(Response<()>, OutboxRx<Bytes>),
    Upgrade(Response<()>, Handshake, OutboxRx<WsOut>),
}

/// The sending half of a bounded per-connection outgoing queue: at most `frames` items and
/// (past the first queued item) at most `max_bytes` bytes.
pub(crate) struct Outbox<T> {
    tx: QueueTx<T>,
    shared: Arc<OutboxShared>,
    max_bytes: usize,
}

#[derive(Default)]
pub(crate) struct OutboxShared {
    pub(crate) bytes: AtomicUsize,
    pub(crate) overflowed: AtomicBool,
}

/// The receiving half, owned by a response body or a WebSocket task.
pub(crate) struct OutboxRx<T> {
    pub(crate) rx: QueueRx<T>,
    pub(crate) shared: Arc<OutboxShared>,
}

impl<T> OutboxRx<T> {
    /// Accounts for an item taken off the queue.
    pub(crate) fn took(&self, len: usize) {
        self.shared.bytes.fetch_sub(len, Ordering::Relaxed);
    }
}

enum PushError {
    Closed,
    Full,
}

fn outbox<T>(frames: usize, max_bytes: usize) -> (Outbox<T>, OutboxRx<T>) {
    let (tx, rx) = queue(frames);
    let shared = Arc::new(OutboxShared::default());
    (
        Outbox {
            tx,
            shared: shared.clone(),
            max_bytes,
        },
        OutboxRx { rx, shared },
    )
}

impl<T> Outbox<T> {
    fn push(&self, item: T, len: usize) -> Result<(), PushError> {
        let queued = self.shared.bytes.load(Ordering::Relaxed);
        if queued > 0 && queued.saturating_add(len) > self.max_bytes {
            return Err(PushError::Full);
        }
        match self.tx.try_send(item) {
            Ok(()) => {
                self.shared.bytes.fetch_add(len, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(PushError::Full),
            Err(TrySendError::Closed(_)) => Err(PushError::Closed),
        }
    }

    /// Marks the queue as overflowed and wakes its owner so it drops the connection.
    fn overflow(&self) {
        self.shared.overflowed.store(true, Ordering::Relaxed);
        self.tx.kill();
    }
}

/// Where a request's outputs go.
pub(crate) enum Slot {
    /// Waiting for the engine's first answer.
    Waiting {
        reply: oneshot::Sender<Reply>,
        /// `Sec-WebSocket-Location` to use for a hixie-76 upgrade when the service is mounted
        /// under a path the engine does not see.
        location: Option<HeaderValue>,
    },
    /// A streaming response body.
    Stream(Outbox<Bytes>),
    /// An upgraded WebSocket.
    Socket(Outbox<WsOut>),
}

/// A live session as the shard sees it.
pub(crate) struct SessionSlot {
    tx: QueueTx<String>,
    inbound: Arc<AtomicUsize>,
    closed: watch::Sender<bool>,
    /// Messages pushed to the application so far, and how many it has finished with.
    pushed: u64,
    /// A handle on the session's `done` counter; waiting requests subscribe to it, so its
    /// receivers are exactly the waiters.
    done: watch::Sender<u64>,
    id: Box<str>,
    /// The inbound queue overflowed; further messages are dropped while the session closes.
    overflowed: bool,
}

/// A message handed to a session's handler: done once `done` reaches `target`.
pub(crate) struct Delivered {
    done: watch::Receiver<u64>,
    target: u64,
}

impl Delivered {
    /// Whether the handler has taken the message already.
    pub(crate) fn is_done(&self) -> bool {
        *self.done.borrow() >= self.target
    }

    /// Resolves once the handler came back to [`Session::recv`] after taking the message
    /// (or dropped its `Session`).
    pub(crate) async fn wait(mut self) {
        let target = self.target;
        let _ = self.done.wait_for(|done| *done >= target).await;
    }
}

/// A map keyed by a request id or a session key. Both are counters (the service numbers
/// requests, the engine numbers sessions), never chosen by a client, so one multiply
/// spreads them well enough and SipHash is not needed on every output.
pub(crate) type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

#[derive(Default)]
pub(crate) struct KeyHasher(u64);

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

/// The lockable part of a shard.
pub(crate) struct State {
    pub(crate) engine: Engine,
    /// Messages delivered during the current input (see [`Shard::run_delivering`]).
    delivered: Vec<Delivered>,
    /// Whether the current input collects `delivered` (only a sending request waits on it).
    track_deliveries: bool,
    pub(crate) requests: KeyMap<RequestId, Slot>,
    sessions: KeyMap<SessionKey, SessionSlot>,
    /// The deadline the timer task sleeps until (`None`: no deadline).
    timer_at: Option<Instant>,
}

/// One engine shard.
pub(crate) struct Shard {
    state: Mutex<State>,
    /// Wakes the timer task when a deadline moved earlier or the service stopped.
    pub(crate) notify: Notify,
    pub(crate) common: Arc<Common>,
    timer_started: AtomicBool,
}

impl Shard {
    pub(crate) fn new(engine: Engine, common: Arc<Common>) -> Shard {
        Shard {
            state: Mutex::new(State {
                engine,
                requests: KeyMap::default(),
                sessions: KeyMap::default(),
                timer_at: None,
                delivered: Vec::new(),
                track_deliveries: false,
            }),
            notify: Notify::new(),
            common,
            timer_started: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one input under the lock, routes every output, then spawns the handlers of
    /// sessions that opened (outside the lock).
    pub(crate) fn run<R>(self: &Arc<Self>, f: impl FnOnce(&mut State, Instant) -> R) -> R {
        self.run_inner(false, f).0
    }

    /// Like [`Shard::run`], also returning the messages this input delivered to sessions,
    /// so a sending request can wait until the application has taken them.
    pub(crate) fn run_delivering<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut State, Instant) -> R,
    ) -> (R, Vec<Delivered>) {
        self.run_inner(true, f)
    }

    fn run_inner<R>(
        self: &Arc<Self>,
        track: bool,
        f: impl FnOnce(&mut State, Instant) -> R,
    ) -> (R, Vec<Delivered>) {
        let mut opened = Vec::new();
        let (result, delivered) = {
            let mut state = self.lock();
            let now = Instant::now();
            state.track_deliveries = track;
            let result = f(&mut state, now);
            state.drain(now, self, &mut opened);
            if let Some(at) = state.engine.poll_timeout() {
                if state.timer_at.is_none_or(|armed| at < armed) {
                    state.timer_at = Some(at);
                    self.notify.notify_one();
                }
            }
            (result, std::mem::take(&mut state.delivered))
        };
        for session in opened {
            self.common.spawn_handler(session);
        }
        (result, delivered)
    }

    /// Reads something from the engine without feeding it an input.
    pub(crate) fn peek<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        f(&self.lock().engine)
    }

    /// The peer went away (or its queue overflowed): forget the request's slot and tell the
    /// engine.
    pub(crate) fn abort(self: &Arc<Self>, id: RequestId) {
        self.run(|state, now| {
            state.requests.remove(&id);
            state.engine.handle_abort(now, id);
        });
    }

    /// Starts the timer task on first use (needs a runtime).
    pub(crate) fn ensure_timer(self: &Arc<Self>) {
        if self.timer_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let shard = self.clone();
        self.common.spawn(async move { shard.timer().await });
    }

    /// Sleeps until the engine's next deadline, fires it, repeats; woken early through
    /// `notify` when a deadline moves earlier.
    async fn timer(self: Arc<Self>) {
        loop {
            if self.common.stopped.load(Ordering::Acquire) {
                return;
            }
            let next = {
                let mut state = self.lock();
                let next = state.engine.poll_timeout();
                state.timer_at = next;
                next
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at.into()) => {
                            self.run(|state, now| state.engine.handle_timeout(now));
                        }
                        () = self.notify.notified() => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }
}

impl State {
    /// Drains the engine, delivering each output; overflow and dead receivers feed back in
    /// as aborts or closes until the engine is quiet.
    fn drain(&mut self, now: Instant, shard: &Arc<Shard>, opened: &mut Vec<Session>) {
        loop {
            let mut aborts = Vec::new();
            let mut closes = Vec::new();
            while let Some(output) = self.engine.poll_output() {
                self.deliver(output, shard, opened, &mut aborts, &mut closes);
            }
            if aborts.is_empty() && closes.is_empty() {
                return;
            }
            for id in aborts {
                self.requests.remove(&id);
                self.engine.handle_abort(now, id);
            }
            for key in closes {
                let _ = self
                    .engine
                    .close(now, key, INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON);
            }
        }
    }

    fn deliver(
        &mut self,
        output: Output,
        shard: &Arc<Shard>,
        opened: &mut Vec<Session>,
        aborts: &mut Vec<RequestId>,
        closes: &mut Vec<SessionKey>,
    ) {
        let config = &shard.common.config;
        match output {
            Output::Respond { request, response } => {
                if let Some(Slot::Waiting { reply, .. }) = self.requests.remove(&request) {
                    let _ = reply.send(Reply::Full(response));
                }
            }
            Output::StreamStart { request, response } => match self.requests.remove(&request) {
                Some(Slot::Waiting { reply, .. }) => {
                    let (tx, rx) = outbox(config.outbound_frames, config.outbound_bytes);
                    if reply.send(Reply::Stream(response, rx)).is_ok() {
                        self.requests.insert(request, Slot::Stream(tx));
                    } else {
                        aborts.push(request);
                    }
                }
                Some(other) => {
                    self.requests.insert(request, other);
                }
                None => {}
            },
            Output::StreamChunk { request, data } => {
                if let Some(Slot::Stream(tx)) = self.requests.get(&request) {
                    let len = data.len();
                    if let Err(e) = tx.push(data, len) {
                        if matches!(e, PushError::Full) {
                            tracing::warn!(
                                request = request.0,
                                "stream queue full, dropping connection"
                            );
                            tx.overflow();
                        }
                        aborts.push(request);
                    }
                }
            }
            Output::StreamEnd { request } => {
                self.requests.remove(&request);
            }
            Output::Upgrade {
                request,
                mut response,
                handshake,
            } => match self.requests.remove(&request) {
                Some(Slot::Waiting { reply, location }) => {
                    if let (Handshake::Hixie76 { .. }, Some(location)) = (handshake, location) {
                        response
                            .headers_mut()
                            .insert("sec-websocket-location", location);
                    }
                    let (tx, rx) = outbox(config.outbound_frames, config.outbound_bytes);
                    if reply.send(Reply::Upgrade(response, handshake, rx)).is_ok() {
                        self.requests.insert(request, Slot::Socket(tx));
                    } else {
                        aborts.push(request);
                    }
                }
                Some(other) => {
                    self.requests.insert(request, other);
                }
                None => {}
            },
            Output::WsText { request, text } => self.queue_ws(request, WsOut::Text(text), aborts),
            Output::WsPing { request } => self.queue_ws(request, WsOut::Ping, aborts),
            Output::WsClose {
                request,
                code,
                reason,
            } => {
                if let Some(Slot::Socket(tx)) = self.requests.remove(&request) {
                    let item = WsOut::Close(code, reason);
                    let len = item.len();
                    if tx.push(item, len).is_err() {
                        tx.overflow();
                    }
                }
            }
            Output::Opened { session, info } => {
                let (tx, rx) = queue(config.inbound_messages);
                let inbound = Arc::new(AtomicUsize::new(0));
                let (closed, closed_rx) = watch::channel(false);
                let (done_tx, _) = watch::channel(0u64);
                let done = done_tx.clone();
                tracing::info!(
                    session = %info.id,
                    key = session.as_u64(),
                    transport = info.transport.name(),
                    "session opened"
                );
                self.sessions.insert(
                    session,
                    SessionSlot {
                        tx,
                        inbound: inbound.clone(),
                        closed,
                        id: info.id.clone(),
                        overflowed: false,
                        pushed: 0,
                        done,
                    },
                );
                opened.push(Session::new(
                    shard.clone(),
                    session,
                    info.id,
                    info.transport,
                    info.request,
                    rx,
                    inbound,
                    closed_rx,
                    done_tx,
                ));
            }
            Output::Message { session, text } => {
                let Some(slot) = self.sessions.get_mut(&session) else {
                    return;
                };
                if slot.overflowed {
                    return;
                }
                let len = text.len();
                let queued = slot.inbound.load(Ordering::Relaxed);
                let over_bytes = queued > 0 && queued.saturating_add(len) > config.inbound_bytes;
                let result = if over_bytes {
                    Err(TrySendError::Full(text))
                } else {
                    slot.tx.try_send(text)
                };
                match result {
                    Ok(()) => {
                        slot.inbound.fetch_add(len, Ordering::Relaxed);
                        slot.pushed += 1;
                        if self.track_deliveries {
                            self.delivered.push(Delivered {
                                done: slot.done.subscribe(),
                                target: slot.pushed,
                            });
                        }
                    }
                    Err(TrySendError::Full(_)) => {
                        tracing::warn!(
                            session = %slot.id,
                            "inbound queue full, closing session"
                        );
                        slot.overflowed = true;
                        closes.push(session);
                    }
                    Err(TrySendError::Closed(_)) => {
                        tracing::trace!(session = %slot.id, "message dropped: session handle gone");
                    }
                }
            }
            Output::Closed { session, reason } => {
                if let Some(slot) = self.sessions.remove(&session) {
                    tracing::info!(session = %slot.id, key = session.as_u64(), ?reason, "session closed");
                    let _ = slot.closed.send(true);
                }
            }
        }
    }

    fn queue_ws(&mut self, request: RequestId, item: WsOut, aborts: &mut Vec<RequestId>) {
        if let Some(Slot::Socket(tx)) = self.requests.get(&request) {
            let len = item.len();
            if let Err(e) = tx.push(item, len) {
                if matches!(e, PushError::Full) {
                    tracing::warn!(
                        request = request.0,
                        "websocket queue full, dropping connection"
                    );
                    tx.overflow();
                }
                aborts.push(request);
            }
        }
    }
}

/// Reports an abort to the shard when dropped, unless disarmed: a dropped response future,
/// response body or WebSocket task means the peer went away.
pub(crate) struct AbortGuard {
    shard: Arc<Shard>,
    id: RequestId,
    armed: bool,
}

impl AbortGuard {
    pub(crate) fn new(shard: Arc<Shard>, id: RequestId) -> AbortGuard {
        AbortGuard {
            shard,
            id,
            armed: true,
        }
    }

    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    pub(crate) fn shard(&self) -> &Arc<Shard> {
        &self.shard
    }

    pub(crate) fn id(&self) -> RequestId {
        self.id
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if self.armed {
            self.shard.abort(self.id);
        }
    }
}

/// The request head a session is opened with, for the peer address lookup.
pub(crate) fn peer_of(parts: &Parts) -> Option<std::net::SocketAddr> {
    parts.extensions.get::<crate::PeerAddr>().map(|p| p.0)
}
