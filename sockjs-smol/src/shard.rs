//! One engine shard: the engine, its routing tables and its timer task.
//!
//! Every input takes the shard's lock, feeds the engine, drains its outputs into the
//! per-connection and per-session queues with non-blocking sends, re-arms the timer and
//! releases the lock. Nothing awaits while the lock is held.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use async_executor::Executor;
use async_io::Timer;
use bytes::Bytes;
use futures_lite::future;
use http::Response;
use sockjs_core::{Engine, Handshake, Output, RequestId, SessionKey};

use crate::config::Config;
use crate::session::{Session, SessionShared};

/// The application's handler, type-erased.
pub(crate) type Handler =
    Arc<dyn Fn(Session) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Close code used when a session's inbound queue overflows.
pub const INBOUND_OVERFLOW_CODE: u16 = 1013;
/// Close reason used when a session's inbound queue overflows.
pub const INBOUND_OVERFLOW_REASON: &str = "Receive queue overflow";

/// The smallest message-count bound used, so that a head and its first chunks always fit.
const MIN_CONNECTION_QUEUE: usize = 8;

/// Server-wide state shared by every shard and connection.
pub(crate) struct Ctx {
    pub(crate) config: Config,
    /// The executor; weak so tasks holding the context do not keep it alive.
    pub(crate) executor: Weak<Executor<'static>>,
    pub(crate) shutting_down: AtomicBool,
    /// Closed (all senders dropped) when graceful shutdown starts.
    pub(crate) shutdown_rx: async_channel::Receiver<()>,
    /// Closed when the server stops: timer tasks end.
    pub(crate) stop_rx: async_channel::Receiver<()>,
    pub(crate) sessions: AtomicUsize,
    pub(crate) handlers: AtomicUsize,
    pub(crate) connections: AtomicUsize,
    pub(crate) next_request: std::sync::atomic::AtomicU64,
}

impl Ctx {
    /// Spawns a detached task; dropped if the server is gone.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if let Some(executor) = self.executor.upgrade() {
            executor.spawn(task).detach();
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub(crate) fn request_id(&self) -> RequestId {
        RequestId(self.next_request.fetch_add(1, Ordering::Relaxed))
    }
}

/// Decrements a counter when dropped.
pub(crate) struct CountGuard<'a>(pub(crate) &'a AtomicUsize);

impl<'a> CountGuard<'a> {
    pub(crate) fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        CountGuard(counter)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a connection task is told to write.
#[derive(Debug)]
pub(crate) enum ConnMsg {
    Respond(Response<Bytes>),
    StreamStart(Response<()>),
    Chunk(Bytes),
    StreamEnd,
    Upgrade(Response<()>, Handshake),
    WsText(String),
    WsPing,
    WsClose(u16, String),
}

impl ConnMsg {
    /// Bytes the message accounts for in the connection's byte bound: its body. Heads
    /// are small and bounded by the message count.
    pub(crate) fn weight(&self) -> usize {
        match self {
            ConnMsg::Respond(r) => r.body().len(),
            ConnMsg::Chunk(data) => data.len(),
            ConnMsg::WsText(text) => text.len(),
            ConnMsg::WsClose(_, reason) => reason.len(),
            ConnMsg::StreamStart(_) | ConnMsg::Upgrade(..) => 0,
            ConnMsg::StreamEnd | ConnMsg::WsPing => 0,
        }
    }
}

/// The sending side of one request's outgoing queue.
pub(crate) struct ConnTx {
    pub(crate) tx: async_channel::Sender<ConnMsg>,
    pub(crate) queued: Arc<AtomicUsize>,
}

/// The application side of a live session.
struct SessionSlot {
    inbound: async_channel::Sender<String>,
    shared: Arc<SessionShared>,
}

pub(crate) struct ShardState {
    pub(crate) engine: Engine,
    conns: HashMap<RequestId, ConnTx>,
    sessions: HashMap<SessionKey, SessionSlot>,
    /// The deadline the timer task sleeps until.
    scheduled: Option<Instant>,
    /// Sessions opened while draining, handed to the handler once the lock is released.
    opened: Vec<Session>,
}

/// One engine and everything routed through it.
pub(crate) struct Shard {
    state: Mutex<ShardState>,
    kick: async_channel::Sender<()>,
    kick_rx: async_channel::Receiver<()>,
    pub(crate) ctx: Arc<Ctx>,
    handler: Handler,
    pub(crate) prefix: Arc<str>,
}

/// Work found while draining that needs the engine again.
enum Deferred {
    Abort(RequestId),
    Close(SessionKey),
}

impl Shard {
    pub(crate) fn new(engine: Engine, ctx: Arc<Ctx>, handler: Handler, prefix: Arc<str>) -> Self {
        let (kick, kick_rx) = async_channel::bounded(1);
        Shard {
            state: Mutex::new(ShardState {
                engine,
                conns: HashMap::new(),
                sessions: HashMap::new(),
                scheduled: None,
                opened: Vec::new(),
            }),
            kick,
            kick_rx,
            ctx,
            handler,
            prefix,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ShardState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the engine under the lock, dispatches every output, re-arms the timer,
    /// releases the lock and only then starts the handlers of sessions that opened.
    pub(crate) fn with_engine<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut ShardState, Instant) -> R,
    ) -> R {
        let mut st = self.lock();
        let now = Instant::now();
        let result = f(&mut st, now);
        self.drain(&mut st, now);
        let opened = std::mem::take(&mut st.opened);
        drop(st);
        for session in opened {
            self.start_handler(session);
        }
        result
    }

    /// Reads engine state under the lock, without feeding it anything.
    pub(crate) fn inspect<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        f(&self.lock().engine)
    }

    /// Registers a request's outgoing queue and hands the request to the engine.
    pub(crate) fn handle_request(
        self: &Arc<Self>,
        id: RequestId,
        conn: ConnTx,
        request: http::Request<Bytes>,
    ) {
        self.with_engine(|st, now| {
            st.conns.insert(id, conn);
            st.engine.handle_request(now, id, request);
        });
    }

    /// The connection of `id` went away: forget its queue and tell the engine.
    pub(crate) fn abort(self: &Arc<Self>, id: RequestId) {
        self.with_engine(|st, now| {
            st.conns.remove(&id);
            st.engine.handle_abort(now, id);
        });
    }

    fn drain(self: &Arc<Self>, st: &mut ShardState, now: Instant) {
        loop {
            let mut deferred = Vec::new();
            while let Some(output) = st.engine.poll_output() {
                self.dispatch(st, output, &mut deferred);
            }
            if deferred.is_empty() {
                break;
            }
            for work in deferred {
                match work {
                    Deferred::Abort(id) => st.engine.handle_abort(now, id),
                    Deferred::Close(key) => {
                        let _ = st.engine.close(
                            now,
                            key,
                            INBOUND_OVERFLOW_CODE,
                            INBOUND_OVERFLOW_REASON,
                        );
                    }
                }
            }
        }
        // Wake the timer task early if the next deadline moved closer.
        if let Some(next) = st.engine.poll_timeout() {
            if st.scheduled.is_none_or(|s| next < s) {
                st.scheduled = Some(next);
                let _ = self.kick.try_send(());
            }
        }
    }

    fn dispatch(
        self: &Arc<Self>,
        st: &mut ShardState,
        output: Output,
        deferred: &mut Vec<Deferred>,
    ) {
        let (request, msg, last) = match output {
            Output::Respond { request, response } => (request, ConnMsg::Respond(response), true),
            Output::StreamStart { request, response } => {
                (request, ConnMsg::StreamStart(response), false)
            }
            Output::StreamChunk { request, data } => (request, ConnMsg::Chunk(data), false),
            Output::StreamEnd { request } => (request, ConnMsg::StreamEnd, true),
            Output::Upgrade {
                request,
                response,
                handshake,
            } => (request, ConnMsg::Upgrade(response, handshake), false),
            Output::WsText { request, text } => (request, ConnMsg::WsText(text), false),
            Output::WsPing { request } => (request, ConnMsg::WsPing, false),
            Output::WsClose {
                request,
                code,
                reason,
            } => (request, ConnMsg::WsClose(code, reason), true),
            Output::Opened { session, info } => return self.opened(st, session, info),
            Output::Message { session, text } => {
                if let Some(slot) = st.sessions.get(&session) {
                    // The queue is unbounded in type and bounded here: a bounded channel
                    // allocates all its slots up front, tens of KiB for every session.
                    if slot.inbound.len() >= self.ctx.config.max_session_inbound.max(1) {
                        tracing::warn!(
                            service = %self.prefix,
                            session = %slot.shared.id,
                            "session inbound queue overflow; closing the session"
                        );
                        deferred.push(Deferred::Close(session));
                    } else {
                        // Fails only once the handler dropped its session: nothing to do.
                        let _ = slot.inbound.try_send(text);
                    }
                }
                return;
            }
            Output::Closed { session, reason } => {
                if let Some(slot) = st.sessions.remove(&session) {
                    tracing::info!(
                        service = %self.prefix,
                        session = %slot.shared.id,
                        reason = ?reason,
                        "session closed"
                    );
                    self.ctx.sessions.fetch_sub(1, Ordering::AcqRel);
                    slot.shared.set_closed(reason);
                }
                return;
            }
        };
        let Some(conn) = st.conns.get(&request) else {
            return;
        };
        let weight = msg.weight();
        let queued = conn.queued.load(Ordering::Acquire);
        let config = &self.ctx.config;
        let overflow = conn.tx.len() >= config.max_connection_queue.max(MIN_CONNECTION_QUEUE)
            || (queued > 0 && queued.saturating_add(weight) > config.max_connection_queue_bytes);
        if overflow {
            tracing::warn!(
                service = %self.prefix,
                request = request.0,
                "connection queue overflow; closing the connection"
            );
            st.conns.remove(&request);
            deferred.push(Deferred::Abort(request));
            return;
        }
        conn.queued.fetch_add(weight, Ordering::AcqRel);
        if conn.tx.try_send(msg).is_err() {
            // The connection task is gone.
            st.conns.remove(&request);
            deferred.push(Deferred::Abort(request));
            return;
        }
        if last {
            st.conns.remove(&request);
        }
    }

    fn opened(
        self: &Arc<Self>,
        st: &mut ShardState,
        key: SessionKey,
        info: sockjs_core::SessionInfo,
    ) {
        // Bounded by `max_session_inbound` where messages are queued (see `Output::Message`).
        let (inbound, rx) = async_channel::unbounded();
        let shared = Arc::new(SessionShared::new(info.id.clone()));
        tracing::info!(
            service = %self.prefix,
            session = %info.id,
            transport = info.transport.name(),
            "session opened"
        );
        st.sessions.insert(
            key,
            SessionSlot {
                inbound,
                shared: shared.clone(),
            },
        );
        self.ctx.sessions.fetch_add(1, Ordering::AcqRel);
        st.opened
            .push(Session::new(self.clone(), key, info, rx, shared));
    }

    fn start_handler(&self, session: Session) {
        let task = (self.handler)(session);
        let ctx = self.ctx.clone();
        ctx.handlers.fetch_add(1, Ordering::AcqRel);
        let counted = async move {
            let _guard = CountGuard(&ctx.handlers);
            task.await;
        };
        self.ctx.spawn(counted);
    }

    /// Sleeps until the engine's next deadline (or an earlier one announced by an input)
    /// and fires its timers, until the server stops.
    pub(crate) async fn timer_task(self: Arc<Self>) {
        enum Wake {
            Fire,
            Kick,
            Stop,
        }
        loop {
            let deadline = {
                let mut st = self.lock();
                st.scheduled = st.engine.poll_timeout();
                st.scheduled
            };
            let sleep = async {
                match deadline {
                    Some(at) => {
                        Timer::at(at).await;
                        Wake::Fire
                    }
                    None => future::pending().await,
                }
            };
            let kicked = async {
                match self.kick_rx.recv().await {
                    Ok(()) => Wake::Kick,
                    Err(_) => Wake::Stop,
                }
            };
            let stop = async {
                let _ = self.ctx.stop_rx.recv().await;
                Wake::Stop
            };
            match future::or(stop, future::or(kicked, sleep)).await {
                Wake::Fire => self.with_engine(|st, now| st.engine.handle_timeout(now)),
                Wake::Kick => {}
                Wake::Stop => return,
            }
        }
    }
}
