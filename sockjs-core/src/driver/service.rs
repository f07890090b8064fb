//! One SockJS service: its shards, its handler, and where each request goes.

use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use foldhash::fast::FixedState;
use tracing::Instrument as _;

use crate::driver::admission::Admission;
use crate::driver::config::Config;
use crate::driver::connection::Connection;
use crate::driver::drain::{Drain, Over};
use crate::driver::exchange::Exchange;
use crate::driver::metrics::{Counters, Endpoint, Metrics};
use crate::driver::runtime::{Runtime, poll_until};
use crate::driver::session::Session;
use crate::driver::shard::Shard;
use crate::route::Route;
use crate::{Engine, Options, OptionsError, RequestId, Start};

/// The application's handler, type-erased: it makes the whole task of a session (the
/// handler's future in its tracing span) in one allocation.
type Handler = Arc<dyn Fn(Session, tracing::Span) -> crate::driver::Task + Send + Sync>;

/// Each service's session keys start in a block of their own (2^40 keys each), so keys are
/// unique in the process across services and shards: 2^24 services in all, past which a
/// block would repeat an earlier one (see [`Service::new`]'s panics).
fn next_key_block() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    take_key_block(&NEXT).unwrap_or_else(|| {
        panic!("more than {KEY_BLOCKS} services made in one process: session keys would repeat")
    })
}

/// The first key of the next block `next` counts, if any is left.
fn take_key_block(next: &AtomicU64) -> Option<u64> {
    let block = next
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < KEY_BLOCKS).then_some(n + 1)
        })
        .ok()?;
    Some(block << 40)
}

/// How many key blocks there are.
const KEY_BLOCKS: u64 = 1 << 24;

/// What every shard of a service shares.
/// A place held for a session about to open ([`Common::hold_session`]); given back when
/// dropped, also by a panic on the way.
pub(crate) struct HeldPlace<'a>(&'a Common);

impl Drop for HeldPlace<'_> {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) struct Common {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) config: Config,
    pub(crate) options: Options,
    pub(crate) prefix: Box<str>,
    handler: Handler,
    /// Sessions handed to handlers and not dropped yet.
    handlers: AtomicUsize,
    /// Requests answered with an upgrade whose socket is not done yet (its close written,
    /// its linger over): what a graceful shutdown waits for beside requests and handlers.
    sockets: AtomicUsize,
    /// The service was dropped: its sessions are closed, and timer tasks end once the last
    /// has ended.
    pub(crate) stopped: AtomicBool,
    /// Every shard's timer task is running (or spawned): cleared when one is dropped
    /// unfinished, so that the next request starts it again (see [`Service::start`]).
    pub(crate) timers_started: AtomicBool,
    /// The application's say on new sessions, if it wants one.
    pub(crate) admission: OnceLock<Admission>,
    /// Graceful shutdown's drain.
    pub(crate) drain: Drain,
    /// What the service's snapshots added to the process's totals last.
    #[cfg(feature = "metrics")]
    pub(crate) recorded: Arc<crate::driver::metrics::Recorded>,
    /// Live sessions over all shards, plus the places held for sessions about to open:
    /// [`Options::max_sessions`] bounds the service, while each shard's engine sees only its
    /// own sessions.
    sessions: AtomicUsize,
}

impl Common {
    /// Holds a place for a session about to open, unless the service is full
    /// ([`Options::max_sessions`], counted over all its shards, places held included). The
    /// place is given back when the [`HeldPlace`] drops, once the engine had the request:
    /// the session, if it opened, then counts itself. One atomic update per request that
    /// would open a session.
    pub(crate) fn hold_session(&self) -> Option<HeldPlace<'_>> {
        let max = self.options.max_sessions;
        self.sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| HeldPlace(self))
    }

    /// Whether [`hold_session`](Common::hold_session) would find no place now.
    pub(crate) fn is_full(&self) -> bool {
        self.sessions.load(Ordering::Acquire) >= self.options.max_sessions
    }

    /// A request became a socket (`true`), or its socket is done (`false`).
    pub(crate) fn socket_counted(&self, live: bool) {
        if live {
            self.sockets.fetch_add(1, Ordering::AcqRel);
        } else {
            self.sockets.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// A session opened (`true`) or ended (`false`) on one of the shards.
    pub(crate) fn session_counted(&self, opened: bool) {
        if opened {
            self.sessions.fetch_add(1, Ordering::AcqRel);
        } else {
            self.sessions.fetch_sub(1, Ordering::AcqRel);
        }
    }

    pub(crate) fn start_handler(self: &Arc<Self>, session: Session) {
        let span = tracing::info_span!(
            "sockjs_session",
            service = %self.prefix,
            id = %session.id(),
            transport = session.transport().name()
        );
        self.runtime.spawn((self.handler)(session, span));
    }

    /// A session handed to a handler, counted until its `Session` is dropped.
    pub(crate) fn running(self: &Arc<Self>) -> Running {
        self.handlers.fetch_add(1, Ordering::AcqRel);
        Running(self.clone())
    }
}

/// One `Session` in the count of running handlers until dropped: a handler is running
/// while it holds its session.
pub(crate) struct Running(Arc<Common>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.handlers.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Inner {
    common: Arc<Common>,
    shards: Box<[Arc<Shard>]>,
    /// Keyed per service, so clients cannot aim many sessions at one shard.
    hasher: FixedState,
    next_request: AtomicU64,
    next_shard: AtomicUsize,
}

/// A shard's claim on running its timer task, held by that task: dropped with the task
/// before it finished (its runtime shut down, or it never ran), it lets the next request
/// spawn the task again.
struct TimerRunning {
    shard: Arc<Shard>,
    finished: bool,
}

impl TimerRunning {
    /// The claim, unless the shard's timer task is running already.
    fn claim(shard: &Arc<Shard>) -> Option<TimerRunning> {
        (!shard.timer_running.swap(true, Ordering::AcqRel)).then(|| TimerRunning {
            shard: shard.clone(),
            finished: false,
        })
    }

    /// The task ended by itself (the service stopped, no session left): it is not started
    /// again.
    fn finished(mut self) {
        self.finished = true;
    }
}

impl Drop for TimerRunning {
    fn drop(&mut self) {
        if !self.finished {
            self.shard.timer_running.store(false, Ordering::Release);
            self.shard
                .common
                .timers_started
                .store(false, Ordering::Release);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Handlers and sockets hold their sessions' shards, not the service: with the
        // service gone (its server dropped without a graceful shutdown), every session is
        // closed, and the shards' timers run on until the last one has ended (its disconnect
        // delay, for HTTP sessions), so that every handler sees its end instead of waiting in
        // `recv` for good, holding its session.
        let config = &self.common.config;
        // No session opens from here (an exchange outliving the service, say one waiting
        // for its admission hook, holds a shard): the drain refuses it under the lock.
        self.common
            .drain
            .start(config.shutdown_code, &config.shutdown_reason);
        Shard::run_all(&self.shards, |engine, now| {
            engine.close_all(now, config.shutdown_code, &config.shutdown_reason);
        });
        self.common.stopped.store(true, Ordering::Release);
        for shard in &self.shards {
            shard.wake_timer();
        }
    }
}

/// One SockJS service at one prefix: its engine shards, its handler and its settings.
/// Cheap to clone (clones share everything); dropping the last clone stops its timers.
///
/// Adapters hand it each request (head and whole body) and its [`Connection`] with
/// [`Service::submit_on`] and carry out what the returned [`Exchange`] yields.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("prefix", &self.inner.common.prefix)
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service with these options and settings, on `runtime`; `handler` runs once per
    /// session, in its own task, when the session opens.
    ///
    /// Fails if the options or the settings are invalid ([`Options::validate`],
    /// [`Config::validate`]).
    ///
    /// # Panics
    ///
    /// When more than 2^24 (16,777,216) services have been made in the process: each takes
    /// a block of its own of the keys that are unique in the process
    /// ([`SessionKey`](crate::SessionKey)), and a repeated block would hand out the keys of
    /// a service still running.
    pub fn new<H, F>(
        options: Options,
        config: Config,
        runtime: Arc<dyn Runtime>,
        handler: H,
    ) -> Result<Service, OptionsError>
    where
        H: Fn(Session) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        options.validate()?;
        config.validate()?;
        let seed = runtime.random_seed();
        let count = config.shards.clamp(1, 1024);
        let common = Arc::new(Common {
            prefix: options.prefix.as_str().into(),
            options: options.clone(),
            // No async block around the handler's future: its captures would stay in the
            // task beside the future for the session's whole life.
            handler: Arc::new(move |session, span| Box::pin(handler(session).instrument(span))),
            handlers: AtomicUsize::new(0),
            sockets: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            timers_started: AtomicBool::new(false),
            #[cfg(feature = "metrics")]
            recorded: Arc::default(),
            admission: OnceLock::new(),
            drain: Drain::default(),
            sessions: AtomicUsize::new(0),
            runtime,
            config,
        });
        let block = next_key_block();
        let mut shards = Vec::with_capacity(count);
        for index in 0..count {
            let start = Start {
                now: common.runtime.now(),
                wall_clock: common.runtime.wall_clock(),
                seed: seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            // Keys unique in the process: this service's block, spread over its shards.
            let step = std::num::NonZeroU64::new(count as u64).unwrap_or(std::num::NonZeroU64::MIN);
            // The secret of the tokens that bind sessions to their clients: four draws of
            // the runtime's random source (std's hasher keyed by the system's randomness:
            // 128 bits of it, a new key each draw).
            let mut secret = [0u8; 32];
            for part in secret.chunks_exact_mut(8) {
                part.copy_from_slice(&common.runtime.random_seed().to_le_bytes());
            }
            let engine = Engine::new(options.clone(), start)?
                .with_key_space(block + index as u64 + 1, step)
                .with_secret(secret);
            shards.push(Arc::new(Shard::new(engine, common.clone())));
        }
        Ok(Service {
            inner: Arc::new(Inner {
                common,
                shards: shards.into_boxed_slice(),
                hasher: FixedState::with_seed(seed.rotate_left(17)),
                next_request: AtomicU64::new(1),
                next_shard: AtomicUsize::new(0),
            }),
        })
    }

    /// Sets the service's admission hook: from now on, every request that would open a
    /// session waits for its verdict (see [`Admission`]). Set it before the service takes
    /// requests; a service has at most one, so this fails, handing the hook back, if it has
    /// one already.
    ///
    /// ```
    /// # fn set(service: &sockjs_core::driver::Service) {
    /// use sockjs_core::Rejection;
    /// use sockjs_core::driver::Admission;
    ///
    /// let admission = Admission::new(|request| async move {
    ///     request.client_addr().filter(|ip| ip.is_loopback()).ok_or_else(Rejection::forbidden)
    /// });
    /// service.set_admission(admission).expect("no hook yet");
    /// # }
    /// ```
    pub fn set_admission(&self, admission: Admission) -> Result<(), Admission> {
        self.inner.common.admission.set(admission)
    }

    /// The service's prefix (its [`Options::prefix`]).
    pub fn prefix(&self) -> &str {
        &self.inner.common.prefix
    }

    /// The options it runs with.
    pub fn options(&self) -> &Options {
        &self.inner.common.options
    }

    /// The settings it runs with.
    pub fn config(&self) -> &Config {
        &self.inner.common.config
    }

    /// Whether `parts` asks this service for a WebSocket it offers: an HTTP/1.1 upgrade to
    /// `websocket` at a session's `websocket` endpoint or the raw one, inside its prefix,
    /// with that transport on ([`Options::transports`]). An adapter whose connection
    /// cannot be upgraded (no upgrade hand-over from its HTTP stack) answers such a
    /// request itself, before the service opens a session for it; any other request, a
    /// WebSocket one for a transport that is off or outside the prefix included, gets the
    /// service's own answer (404).
    ///
    /// ```
    /// # fn demo(service: &sockjs_core::driver::Service) {
    /// let request = http::Request::get("/echo/000/s/websocket")
    ///     .header("upgrade", "websocket")
    ///     .header("connection", "Upgrade")
    ///     .body(())
    ///     .unwrap();
    /// let (parts, ()) = request.into_parts();
    /// let _ = service.offers_websocket(&parts);
    /// # }
    /// ```
    pub fn offers_websocket(&self, parts: &http::request::Parts) -> bool {
        use crate::Transport;
        use crate::route::SessionEndpoint;
        let transports = self.options().transports;
        let offered = match Route::in_service(parts.uri.path(), self.prefix()) {
            Some(Route::RawWebSocket) => transports.contains(Transport::RawWebSocket),
            Some(Route::Session {
                kind: SessionEndpoint::WebSocket,
                ..
            }) => transports.contains(Transport::WebSocket),
            _ => false,
        };
        offered && crate::engine::asks_websocket_upgrade(parts)
    }

    /// Whether `path` is inside this service's prefix.
    pub fn matches(&self, path: &str) -> bool {
        let prefix = self.prefix();
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Hands one request (head and whole body) to the service, with what the adapter
    /// knows of its `connection`. The returned [`Exchange`] yields what to write.
    ///
    /// The first call starts the service's timer tasks on its runtime. A request that
    /// opens no session is dropped under the lock of the shard it went to, its extensions
    /// with it: none of them should wait on a lock in its `Drop`, or call into the service.
    pub fn submit_on(&self, request: http::Request<Bytes>, connection: &Connection) -> Exchange {
        self.submit_mounted(request, connection, 0)
    }

    /// [`submit_on`](Service::submit_on) for a request whose path starts with a mount
    /// prefix of `mount` bytes, which a router in front of the service matched (as
    /// `sockjs_tokio::Routes` does): the service routes on what follows. Wherever the
    /// application reads the request (a session's opening request, an admission hook, the
    /// option callbacks) it finds it as a nesting router would hand it on, the prefix
    /// stripped and the whole URI in an [`OriginalUri`](crate::OriginalUri) extension; the
    /// other requests are never rewritten, which would cost a URI parse and four
    /// allocations each. A `mount` longer than the path gets 404.
    pub fn submit_mounted(
        &self,
        request: http::Request<Bytes>,
        connection: &Connection,
        mount: usize,
    ) -> Exchange {
        self.start();
        let inner = &*self.inner;
        let connection = connection.clone().mounted(mount);
        let shard = self
            .pick(
                connection
                    .facts()
                    .routed(request.uri().path())
                    .unwrap_or(""),
            )
            .clone();
        let id = RequestId(inner.next_request.fetch_add(1, Ordering::Relaxed));
        Exchange::submit(shard, id, request, connection)
    }

    /// [`submit_on`](Service::submit_on) for a request that carries its connection's facts
    /// as extensions ([`PeerAddr`](crate::PeerAddr), [`Tls`](crate::Tls), a
    /// [`ConnectionProbe`](crate::driver::ConnectionProbe)), as a router or middleware in
    /// front of the service may have set them.
    pub fn submit(&self, request: http::Request<Bytes>) -> Exchange {
        let (mut parts, body) = request.into_parts();
        let connection = Connection::take_from(&mut parts);
        self.submit_on(http::Request::from_parts(parts, body), &connection)
    }

    /// Closes every open session with this code and reason (graceful shutdown): streams
    /// and polls get the close frame and end, WebSockets get it and close. HTTP sessions
    /// keep answering the close frame until their disconnect delay passes.
    ///
    /// Every shard closes its sessions before any handler learns of its own session's end:
    /// a handler that tells the others (a chat's "left" notice) finds them all closed, so
    /// that notice never lands in a waiting poll ahead of the close frame, which would
    /// leave that client to poll again, maybe of a server that no longer answers.
    pub fn close_all(&self, code: u16, reason: &str) {
        Shard::run_all(&self.inner.shards, |engine, now| {
            engine.close_all(now, code, reason);
        });
    }

    /// Starts graceful shutdown of this service under a server of the application's own
    /// (axum, hyper), which does not know of SockJS sessions: from now on the service opens
    /// no session (such requests get `503`, under the same lock that would open one, so a
    /// request that was still arriving cannot slip one in), and every session is closed
    /// with [`Config::shutdown_code`] and [`Config::shutdown_reason`] (as
    /// [`close_all`](Service::close_all)). Once started, it stays started. The standalone
    /// servers call this themselves ([`shutdown`]).
    pub fn start_shutdown(&self) {
        let (code, reason) = {
            let config = &self.inner.common.config;
            (config.shutdown_code, config.shutdown_reason.as_str())
        };
        self.inner.common.drain.start(code, reason);
        self.close_all(code, reason);
    }

    /// Completes with `true` once the service holds no request (streams, polls and
    /// WebSockets have written their last frame and let go of their connections) and no
    /// handler runs, or with `false` after `timeout`. After
    /// [`start_shutdown`](Service::start_shutdown) and the application server's own
    /// graceful shutdown, this is the wait for the WebSockets, which live outside the HTTP
    /// connections such a server waits for. HTTP sessions closed by the shutdown stay
    /// closing for their disconnect delay, so that a client polling again gets the close
    /// frame; their handlers run until then (`recv` gives `None` once a session is
    /// forgotten), so with HTTP sessions open at the shutdown this waits about one
    /// [`Options::disconnect_delay`](crate::Options::disconnect_delay): a `timeout` shorter
    /// than that returns `false` with those handlers still running.
    pub async fn settled(&self, timeout: std::time::Duration) -> bool {
        poll_until(&*self.inner.common.runtime, timeout, || {
            self.open_requests() + self.running_handlers() + self.open_sockets() == 0
        })
        .await
    }

    /// Whether the service's drain ended.
    pub(crate) fn drain_is_over(&self) -> bool {
        self.inner.common.drain.is_over()
    }

    /// Completes once the service's drain ended.
    pub(crate) fn drain_over(&self) -> Over {
        Over::new(self.inner.common.clone())
    }

    /// Whether `path`, `mount` bytes of which are a router's prefix, is a request of one
    /// session (a receiver, a send, a session's WebSocket).
    pub(crate) fn is_session_path(&self, path: &str, mount: usize) -> bool {
        path.get(mount..)
            .and_then(|path| Route::in_service(path, self.prefix()))
            .is_some_and(|route| matches!(route, Route::Session { .. }))
    }

    /// The service's shards (for tests of what runs under their locks).
    #[cfg(test)]
    pub(crate) fn shards(&self) -> &[Arc<Shard>] {
        &self.inner.shards
    }

    /// Live sessions (open or closing) over all shards.
    pub fn session_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.peek(Engine::session_count))
            .sum()
    }

    /// Requests the service holds: pending receivers, open streams and WebSockets, and
    /// answers not yet taken by their adapter. Zero once every client is gone (leak checks).
    pub fn open_requests(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.open_requests())
            .sum()
    }

    /// WebSockets (requests answered with an upgrade) whose socket is not done yet: a
    /// closed session's socket counts until its close is written and its linger over.
    pub fn open_sockets(&self) -> usize {
        self.inner.common.sockets.load(Ordering::Acquire)
    }

    /// Handlers still running: sessions handed to a handler whose `Session` has not been
    /// dropped yet.
    pub fn running_handlers(&self) -> usize {
        self.inner.common.handlers.load(Ordering::Acquire)
    }

    /// The number of engine shards.
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    /// A snapshot of the service's counters (see [`metrics`](crate::driver::metrics) for
    /// what they count and how little that costs). Locks each shard once, briefly.
    pub fn metrics(&self) -> Metrics {
        let mut counters = Counters::default();
        for shard in self.inner.shards.iter() {
            shard.add_counters(&mut counters);
        }
        let metrics = Metrics::new(&self.inner.common.prefix, counters);
        #[cfg(feature = "metrics")]
        let metrics = metrics.recorded_by(self.inner.common.recorded.clone());
        metrics
    }

    /// Counts an answer the adapter wrote itself to a request for this service, one it
    /// never [`submit`](Service::submit)ted (a body too large or too slow, shutting down):
    /// `path` is the request's, as the service would have seen it.
    pub fn answered(&self, path: &str, status: http::StatusCode) {
        let endpoint = Endpoint::of_path(path, self.prefix());
        self.pick(path).outside.answered(endpoint, status.as_u16());
    }

    /// Spawns each shard's timer task that is not running, on the runtime of the request
    /// that calls: the first request's, and again whenever a timer task was dropped
    /// unfinished. A runtime shut down drops its tasks (a tokio runtime per test, a service
    /// kept in a `static` and served from another runtime after): without its timer task a
    /// shard would fire its timers only when a request reaches it, so no heartbeat would
    /// go to an idle receiver and no session would pass its disconnect delay.
    fn start(&self) {
        let inner = &*self.inner;
        let common = &inner.common;
        if common.timers_started.load(Ordering::Relaxed)
            || common.timers_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        for shard in inner.shards.iter() {
            if let Some(running) = TimerRunning::claim(shard) {
                let shard = shard.clone();
                common.runtime.spawn(Box::pin(async move {
                    shard.timer_task().await;
                    running.finished();
                }));
            }
        }
    }

    /// Requests of one session must meet in one engine: pick by the URL's session id;
    /// requests without one (greeting, info, iframe, raw WebSocket) go round-robin.
    fn pick(&self, path: &str) -> &Arc<Shard> {
        let inner = &*self.inner;
        let n = inner.shards.len();
        if n == 1 {
            return &inner.shards[0];
        }
        let session = path
            .strip_prefix(self.prefix())
            .and_then(Route::parse)
            .and_then(|route| match route {
                Route::Session { session, .. } => Some(session),
                _ => None,
            });
        let index = match session {
            Some(session) => inner.hasher.hash_one(session) as usize,
            None => inner.next_shard.fetch_add(1, Ordering::Relaxed),
        };
        &inner.shards[index % n]
    }
}

/// Graceful shutdown of `services`: each starts to drain (it opens no session from now
/// on, and answers such requests `503`), then closes every session with
/// [`Config::shutdown_code`] and [`Config::shutdown_reason`]. Sessions it holds are still
/// served, so a polling client that comes back on a kept-alive connection collects its
/// close frame; idle connections stay open until no session or handler is left, then
/// close. Returns once no session, handler or connection (`connections()`, the adapter's
/// count) is left, or after [`Config::shutdown_timeout`]. `false` if it gave up.
pub async fn shutdown(
    runtime: &dyn Runtime,
    services: &[Service],
    config: &Config,
    connections: impl Fn() -> usize,
) -> bool {
    for service in services {
        // The server's close, which a WebSocket refused while the drain lasts gets too.
        let (code, reason) = (config.shutdown_code, config.shutdown_reason.as_str());
        service.inner.common.drain.start(code, reason);
        service.close_all(code, reason);
    }
    let finish = || {
        for service in services {
            service.inner.common.drain.finish();
        }
    };
    let sessions = || services.iter().map(Service::session_count).sum::<usize>();
    let handlers = || {
        services
            .iter()
            .map(Service::running_handlers)
            .sum::<usize>()
    };
    let done = poll_until(runtime, config.shutdown_timeout, || {
        let held = sessions() + handlers();
        if held == 0 {
            // Idle connections may close now.
            finish();
        }
        held + connections() == 0
    })
    .await;
    if done {
        tracing::info!("graceful shutdown complete");
    } else {
        finish();
        tracing::warn!(
            sessions = sessions(),
            handlers = handlers(),
            connections = connections(),
            "graceful shutdown timed out"
        );
    }
    done
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Content;
    use crate::driver::runtime::inert::Inert;
    use crate::driver::{ConnectionProbe, TryNext};

    #[test]
    fn key_blocks_never_repeat_and_run_out_instead() {
        let next = AtomicU64::new(0);
        assert_eq!(take_key_block(&next), Some(0));
        assert_eq!(take_key_block(&next), Some(1 << 40));
        let next = AtomicU64::new(KEY_BLOCKS - 1);
        assert_eq!(take_key_block(&next), Some((KEY_BLOCKS - 1) << 40));
        assert_eq!(
            take_key_block(&next),
            None,
            "the next would be block 0 again"
        );
        assert_eq!(take_key_block(&next), None);
    }

    /// A `POST` of `path` with no body.
    fn post(path: &str) -> http::Request<Bytes> {
        http::Request::post(path)
            .body(Bytes::new())
            .expect("request")
    }

    /// A liveness probe that says the client is gone once the flag is set.
    fn scripted_probe() -> (Arc<std::sync::atomic::AtomicBool>, ConnectionProbe) {
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = gone.clone();
        (
            gone,
            ConnectionProbe::new(move || flag.load(Ordering::Acquire)),
        )
    }

    /// The status of what `exchange` answered at once.
    fn status(exchange: &mut Exchange) -> Option<u16> {
        match exchange.try_next() {
            TryNext::Item(Content::Response(response)) => Some(response.status().as_u16()),
            _ => None,
        }
    }

    /// The status of what `exchange` answered at once, a stream's head included.
    fn head_status(exchange: &mut Exchange) -> Option<u16> {
        match exchange.try_next() {
            TryNext::Item(Content::Response(response)) => Some(response.status().as_u16()),
            TryNext::Item(Content::StreamStart(head)) => Some(head.status().as_u16()),
            _ => None,
        }
    }

    /// Sessions a test's handler was given, kept so they stay open (this runtime drops its
    /// tasks, handlers too).
    type Kept = Arc<std::sync::Mutex<Vec<Session>>>;

    /// A service on a runtime that runs nothing, whose handler keeps each session.
    fn keeping_sessions(options: Options, config: Config) -> (Service, Kept) {
        let kept = Kept::default();
        let keep = kept.clone();
        let service = Service::new(options, config, Arc::new(Inert), move |session| {
            keep.lock().expect("unpoisoned").push(session);
            async {}
        })
        .expect("service");
        (service, kept)
    }

    /// A service of one shard whose connections hold at most 8 KiB, and a session whose
    /// xhr_streaming receiver reads nothing after its head.
    fn unread_stream() -> (Service, Exchange, Session) {
        let config = Config {
            shards: 1,
            max_connection_queue_bytes: 8 * 1024,
            ..Config::default()
        };
        let (service, kept) = keeping_sessions(Options::default(), config);
        let mut stream = service.submit(post("/000/unread/xhr_streaming"));
        assert_eq!(head_status(&mut stream), Some(200));
        let session = kept.lock().expect("unpoisoned").pop().expect("opened");
        (service, stream, session)
    }

    /// A waker that counts its wakes.
    struct Woken(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::AcqRel);
        }
    }

    impl Woken {
        fn new() -> (Arc<Woken>, std::task::Waker) {
            let woken = Arc::new(Woken(std::sync::atomic::AtomicUsize::new(0)));
            (woken.clone(), std::task::Waker::from(woken))
        }

        fn times(&self) -> usize {
            self.0.load(Ordering::Acquire)
        }
    }

    /// A waker that counts its wakes, and those that came while its shard's lock was held.
    struct LockFree {
        shard: Arc<Shard>,
        wakes: std::sync::atomic::AtomicUsize,
        under_lock: std::sync::atomic::AtomicUsize,
    }

    impl std::task::Wake for LockFree {
        fn wake(self: Arc<Self>) {
            if self.shard.is_locked() {
                self.under_lock.fetch_add(1, Ordering::AcqRel);
            }
            self.wakes.fetch_add(1, Ordering::AcqRel);
        }
    }

    impl LockFree {
        /// A waker for the one shard of `service`.
        fn new(service: &Service) -> (Arc<LockFree>, std::task::Waker) {
            let checker = Arc::new(LockFree {
                shard: service.inner.shards[0].clone(),
                wakes: std::sync::atomic::AtomicUsize::new(0),
                under_lock: std::sync::atomic::AtomicUsize::new(0),
            });
            (checker.clone(), std::task::Waker::from(checker))
        }

        /// Wakes so far; fails if any came under the lock.
        fn wakes(&self) -> usize {
            assert_eq!(
                self.under_lock.load(Ordering::Acquire),
                0,
                "woken while the shard's lock was held"
            );
            self.wakes.load(Ordering::Acquire)
        }
    }

    /// The shard wakes no task while it holds its lock: not a handler given a message or
    /// told its session ended, not a connection given a frame or ended, not a sender
    /// waiting for room, not a request waiting for the receiver ahead of it. A task woken
    /// under it would run on another thread only to wait for that lock (the handler's
    /// answer takes it), and a runtime that polls inside `wake()` would deadlock.
    #[test]
    fn the_shard_wakes_no_task_under_its_lock() {
        use std::future::Future;
        use std::task::Context;

        let config = Config {
            shards: 1,
            ..Config::default()
        };
        let options = Options {
            max_queued_bytes: 64,
            ..Options::default()
        };
        let (service, kept) = keeping_sessions(options, config);
        let mut stream = service.submit(post("/000/s/xhr_streaming"));
        assert_eq!(head_status(&mut stream), Some(200));
        let mut session = kept.lock().expect("unpoisoned").pop().expect("opened");

        // A handler waiting for a message, given one.
        let (handler, waker) = LockFree::new(&service);
        let mut cx = Context::from_waker(&waker);
        assert!(session.poll_recv(&mut cx).is_pending());
        let send = http::Request::post("/000/s/xhr_send")
            .body(Bytes::from_static(b"[\"m\"]"))
            .expect("request");
        let mut sent = service.submit(send);
        assert_eq!(handler.wakes(), 1, "given a message");
        assert_eq!(
            session.poll_recv(&mut cx),
            std::task::Poll::Ready(Some("m".to_owned()))
        );
        assert!(session.poll_recv(&mut cx).is_pending());
        assert_eq!(status(&mut sent), Some(204), "once taken");

        // A connection waiting for a frame, given one.
        while let TryNext::Item(_) = stream.try_next() {}
        let (connection, waker) = LockFree::new(&service);
        let mut cx = Context::from_waker(&waker);
        assert!(stream.poll_next(&mut cx).is_pending());
        session.try_send("a").expect("room");
        assert_eq!(connection.wakes(), 1, "given a frame");

        // A request waiting for the receiver ahead of it (whose client cannot be probed),
        // which then ends.
        let mut poll = service.submit(post("/000/p/xhr"));
        assert_eq!(status(&mut poll), Some(200), "opened");
        let polled = kept.lock().expect("unpoisoned").pop().expect("opened");
        let mut first = service.submit(post("/000/p/xhr"));
        let mut second = service.submit(post("/000/p/xhr"));
        let (waiting, waker) = LockFree::new(&service);
        let mut cx = Context::from_waker(&waker);
        assert!(
            second.poll_next(&mut cx).is_pending(),
            "waits for the first"
        );
        polled.try_send("p").expect("room");
        assert!(matches!(first.try_next(), TryNext::Item(_)), "answered");
        assert!(waiting.wakes() >= 1, "told the first ended");

        // A sender waiting for room, as its session closes, and a connection given its
        // close frame.
        let mut opening = service.submit(post("/000/q/xhr"));
        assert_eq!(status(&mut opening), Some(200), "opened");
        let closed = kept.lock().expect("unpoisoned").pop().expect("opened");
        closed.try_send("x".repeat(40)).expect("room");
        let (sender, waker) = LockFree::new(&service);
        let mut cx = Context::from_waker(&waker);
        let mut send = std::pin::pin!(closed.send("y".repeat(40)));
        assert!(
            send.as_mut().poll(&mut cx).is_pending(),
            "the queue is full"
        );
        let (connection, waker) = LockFree::new(&service);
        let mut cx = Context::from_waker(&waker);
        assert!(second.poll_next(&mut cx).is_pending(), "attached to `p`");
        closed.close(3000, "done").expect("open");
        polled.close(3000, "done").expect("open");
        assert_eq!(sender.wakes(), 1, "told its session closed");
        assert_eq!(connection.wakes(), 1, "given its close frame");

        // A handler whose session ends (its receiver's client went away).
        let (handler, waker) = LockFree::new(&service);
        let mut cx = Context::from_waker(&waker);
        assert!(session.poll_recv(&mut cx).is_pending());
        drop(stream);
        assert_eq!(handler.wakes(), 1, "told its session ended");
        assert_eq!(session.poll_recv(&mut cx), std::task::Poll::Ready(None));
    }

    /// `max_sessions` counts sessions over the shards as their engines report them ending.
    /// A session that a request's own arrival ends (its late timer, fired first; its
    /// receiver found gone by the probe and aborted, PROTOCOL.md §7.1.6) gives its place
    /// back before that request asks for one: at the bound, the request opens its session
    /// rather than getting `503` for a place no session holds.
    #[test]
    fn s7_1_6_a_session_a_request_ends_gives_its_place_to_that_request() {
        let options = Options {
            max_sessions: 1,
            disconnect_delay: Duration::from_millis(20),
            ..Options::default()
        };
        let config = Config {
            shards: 1,
            ..Config::default()
        };
        let service =
            Service::new(options, config, Arc::new(Inert), |_session| async {}).expect("service");

        // Expired, its timer input not come yet (the runtime's timers never fire here).
        assert_eq!(status(&mut service.submit(post("/000/a/xhr"))), Some(200));
        assert_eq!(status(&mut service.submit(post("/000/b/xhr"))), Some(503));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(status(&mut service.submit(post("/000/b/xhr"))), Some(200));

        // Its receiver's client gone, as the probe finds when the next receiver comes:
        // aborted, the session closes (the default abort policy), and the newcomer opens
        // a new one under the same id.
        let (gone, probe) = scripted_probe();
        let (service, kept) = keeping_sessions(
            Options {
                max_sessions: 1,
                ..Options::default()
            },
            Config {
                shards: 1,
                ..Config::default()
            },
        );
        let stream = "/000/s/xhr_streaming";
        let connection = Connection::new().with_probe(probe);
        let mut first = service.submit_on(post(stream), &connection);
        assert_eq!(head_status(&mut first), Some(200));
        gone.store(true, Ordering::Release);
        let mut second = service.submit_on(post(stream), &Connection::new());
        assert_eq!(head_status(&mut second), Some(200));
        let mut frames = Vec::new();
        while let TryNext::Item(Content::Chunk(chunk)) = second.try_next() {
            frames.push(chunk);
        }
        assert_eq!(
            frames.last().map(|f| &f[..]),
            Some(&b"o\n"[..]),
            "a new session"
        );
        assert_eq!(service.session_count(), 1);
        assert_eq!(kept.lock().expect("unpoisoned").len(), 2);
    }

    /// A receiver whose client has gone is one abort (PROTOCOL.md §7.1.6), whichever way it
    /// is seen: the next receiver's probe finds it gone and aborts it, and its own
    /// connection, ending after that, adds none. An exchange the engine answered in full is
    /// no abort when its connection drops before writing it.
    #[test]
    fn s7_1_6_an_abort_is_counted_once_however_it_is_seen() {
        let (service, _kept) = keeping_sessions(
            Options::default(),
            Config {
                shards: 1,
                ..Config::default()
            },
        );
        let (gone, probe) = scripted_probe();
        let stream = "/000/s/xhr_streaming";
        let first = service.submit_on(post(stream), &Connection::new().with_probe(probe));
        gone.store(true, Ordering::Release);
        let second = service.submit_on(post(stream), &Connection::new());
        assert_eq!(service.metrics().aborts, 1, "the probe's");
        // The first client's connection ends only now.
        drop(first);
        assert_eq!(
            service.metrics().aborts,
            1,
            "counted again at the end of its connection"
        );
        drop(second);
        assert_eq!(
            service.metrics().aborts,
            2,
            "the second receiver, still held"
        );
        // A poll answered in full (its `o` queued), dropped before it was written.
        let poll = service.submit_on(post("/000/p/xhr"), &Connection::new());
        drop(poll);
        assert_eq!(service.metrics().aborts, 2, "an answered poll");
    }

    /// A sender waiting for room in a session's full queue is woken when the session starts
    /// closing, and fails with `NotOpen` (as `send` says, "also while waiting"), rather
    /// than waiting until a client takes the queue or the session is forgotten.
    #[test]
    fn a_sender_waiting_for_room_fails_once_its_session_closes() {
        use std::future::Future;
        use std::task::Context;

        let options = Options {
            max_queued_bytes: 64,
            ..Options::default()
        };
        let (service, kept) = keeping_sessions(options, Config::default());
        let poll = http::Request::post("/000/full/xhr")
            .body(Bytes::new())
            .expect("request");
        assert_eq!(status(&mut service.submit(poll)), Some(200));
        let session = kept.lock().expect("unpoisoned").pop().expect("opened");
        session.try_send("x".repeat(40)).expect("room");
        let (woken, waker) = Woken::new();
        let mut cx = Context::from_waker(&waker);
        let mut send = std::pin::pin!(session.send("y".repeat(40)));
        assert!(
            send.as_mut().poll(&mut cx).is_pending(),
            "the queue is full"
        );

        session.close(3000, "done").expect("open");
        assert!(woken.times() > 0, "the waiting sender was woken");
        assert_eq!(
            send.as_mut().poll(&mut cx),
            std::task::Poll::Ready(Err(crate::SendError::NotOpen))
        );
    }

    /// The room a message needs on its connection is counted for the widest framing: an
    /// htmlfile (or JSONP) receiver quotes the escaped frame again as a JavaScript string,
    /// seven bytes for each control character. A message that would not fit is refused
    /// (`try_send`) or waits, rather than pushed past the queue's bound, which would count
    /// as the client aborting and close the session.
    #[test]
    fn a_message_waits_for_room_for_its_htmlfile_framing() {
        let config = Config {
            max_connection_queue_bytes: 8192,
            ..Config::default()
        };
        let (service, kept) = keeping_sessions(Options::default(), config);
        let stream = http::Request::get("/000/h/htmlfile?c=callback")
            .body(Bytes::new())
            .expect("request");
        // The client reads nothing: the prelude and `o` stay queued.
        let mut receiver = service.submit(stream);
        let session = kept.lock().expect("unpoisoned").pop().expect("opened");
        let controls = "\u{1}".repeat(1100);
        assert_eq!(
            session.try_send(&controls),
            Err(crate::SendError::QueueFull),
            "7.7 KB once framed does not fit beside the prelude in 8 KiB"
        );
        assert_eq!(session.state(), crate::SessionState::Open);
        session.try_send("small").expect("room for a small one");
        assert!(matches!(
            receiver.try_next(),
            TryNext::Item(Content::StreamStart(_))
        ));
        let mut chunks = 0;
        while let TryNext::Item(Content::Chunk(_)) = receiver.try_next() {
            chunks += 1;
        }
        assert_eq!(
            chunks, 3,
            "the prelude, `o` and the small message; nothing killed"
        );
    }

    /// `sockjs_sent_bytes_total` counts what a connection took, not what was routed to it:
    /// the close frame a full connection could not take (the client not reading; the
    /// connection dropped as an overflow) adds nothing.
    #[test]
    fn sent_bytes_leave_out_a_frame_the_connection_could_not_take() {
        // The client reads nothing after the head: its connection fills.
        let (service, _stream, session) = unread_stream();
        let refused = (0..10_000).find_map(|_| session.try_send("x").err());
        assert_eq!(refused, Some(crate::SendError::QueueFull));
        let before = service.metrics();
        assert_eq!(before.connection_queue_overflows, 0);
        // `try_send` refused with room to spare (it keeps room for any framing); a close
        // frame with a 4.8 KB reason goes past the connection's bound: an overflow.
        session.close(3000, &"done".repeat(1200)).expect("open");
        let after = service.metrics();
        assert_eq!(after.connection_queue_overflows, 1);
        assert_eq!(
            after.bytes_sent, before.bytes_sent,
            "the close frame was dropped"
        );
    }

    /// A `ready()` parked after `try_send` refused a message waits for that message's
    /// room; a send of the session that goes through ends that wait, and the parked
    /// `ready()` is woken to wait for the usual room (half the connection's queue), not
    /// left waiting for the refused message's (here: until a client that reads nothing
    /// had read).
    #[test]
    fn a_parked_ready_is_woken_when_a_later_send_ends_the_refused_wait() {
        use std::future::Future;
        use std::task::Context;

        let (_service, mut stream, session) = unread_stream();
        let large = "l".repeat(2000);
        let refused = (0..100).find_map(|_| session.try_send(&large).err());
        assert_eq!(refused, Some(crate::SendError::QueueFull));
        let (woken, waker) = Woken::new();
        let mut cx = Context::from_waker(&waker);
        let mut ready = std::pin::pin!(session.ready());
        assert!(ready.as_mut().poll(&mut cx).is_pending(), "no room for it");
        session.try_send("s").expect("room for a small one");
        assert_eq!(
            woken.times(),
            1,
            "the parked ready() is told its wait changed"
        );
        // The connection's queue is under half full: room as usual, though the client has
        // read nothing (the large message's wait would have lasted until it had).
        assert!(ready.as_mut().poll(&mut cx).is_ready());
        assert!(session.queued_bytes() > 0, "ready with bytes still queued");
        assert!(
            matches!(stream.try_next(), TryNext::Item(_)),
            "nothing taken yet"
        );

        // The same for a `ready()` parked on the engine's queue (no receiver attached).
        let options = Options {
            max_queued_bytes: 1000,
            ..Options::default()
        };
        let (service, kept) = keeping_sessions(options, Config::default());
        assert_eq!(
            status(&mut service.submit(post("/000/idle/xhr"))),
            Some(200)
        );
        let session = kept.lock().expect("unpoisoned").pop().expect("opened");
        session.try_send("a".repeat(600)).expect("room");
        assert_eq!(
            session.try_send("b".repeat(600)),
            Err(crate::SendError::QueueFull)
        );
        let (woken, waker) = Woken::new();
        let mut cx = Context::from_waker(&waker);
        let mut ready = std::pin::pin!(session.ready());
        assert!(ready.as_mut().poll(&mut cx).is_pending(), "no room for it");
        session.try_send("s").expect("room for a small one");
        assert_eq!(woken.times(), 1, "told its wait changed");
    }

    /// A connection queue with no room could take no answer: such settings are refused.
    #[test]
    fn a_connection_queue_bound_of_zero_is_refused() {
        for config in [
            Config {
                max_connection_queue: 0,
                ..Config::default()
            },
            Config {
                max_connection_queue_bytes: 0,
                ..Config::default()
            },
        ] {
            let made = Service::new(Options::default(), config, Arc::new(Inert), |_| async {});
            assert_eq!(made.err(), Some(OptionsError::ZeroQueue));
        }
    }

    /// Places for sessions about to open count against `max_sessions` until given back,
    /// which dropping them does, also on the way out of a panic.
    #[test]
    fn held_places_count_until_dropped_even_by_a_panic() {
        let options = Options {
            max_sessions: 2,
            ..Options::default()
        };
        let service = Service::new(options, Config::default(), Arc::new(Inert), |_| async {})
            .expect("service");
        let common = &service.inner.common;
        let first = common.hold_session().expect("room for one");
        let second = common.hold_session().expect("room for two");
        assert!(common.hold_session().is_none(), "full");
        drop(first);
        let third = common.hold_session().expect("one given back");
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = third;
            panic!("an engine bug");
        }));
        assert!(unwound.is_err());
        assert!(
            common.hold_session().is_some(),
            "the panic gave its place back"
        );
        drop(second);
        assert_eq!(common.sessions.load(Ordering::Acquire), 0);
    }

    /// A service of one shard whose sessions pass their disconnect delay after 20 ms.
    fn expiring_on_one_shard() -> (Options, Config) {
        let options = Options {
            disconnect_delay: Duration::from_millis(20),
            ..Options::default()
        };
        let config = Config {
            shards: 1,
            ..Config::default()
        };
        (options, config)
    }

    /// A session past its disconnect delay whose timer input has not come (the runtime's
    /// timers never fire here) is gone for the request that names it: while the service
    /// drains, that request would open a session, so it is refused, not let through to open
    /// a fresh one.
    #[test]
    fn a_session_expired_before_its_late_timer_opens_nothing_while_draining() {
        let (options, config) = expiring_on_one_shard();
        let service =
            Service::new(options, config, Arc::new(Inert), |_session| async {}).expect("service");
        let poll = || {
            http::Request::post("/000/late/xhr")
                .body(Bytes::new())
                .expect("request")
        };
        assert_eq!(status(&mut service.submit(poll())), Some(200));
        assert_eq!(service.session_count(), 1);
        std::thread::sleep(Duration::from_millis(60));
        service.inner.common.drain.start(1001, "");
        assert_eq!(status(&mut service.submit(poll())), Some(503));
        assert_eq!(service.session_count(), 0);
    }

    /// A session's state is its state now: past its disconnect delay, its timer input late
    /// (the runtime's timers never fire here), it is closed, as a send would find it, not
    /// open until the timer task comes round.
    #[test]
    fn a_session_past_its_disconnect_delay_is_closed_before_its_late_timer() {
        let (options, config) = expiring_on_one_shard();
        let (service, kept) = keeping_sessions(options, config);
        assert_eq!(
            status(&mut service.submit(post("/000/late/xhr"))),
            Some(200)
        );
        let session = kept.lock().expect("unpoisoned").pop().expect("opened");
        assert_eq!(session.state(), crate::SessionState::Open);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(session.state(), crate::SessionState::Closed);
        assert_eq!(
            session.try_send("late"),
            Err(crate::SendError::UnknownSession)
        );
    }

    /// A send that waits for room (its connection full) first fires the timers due by its
    /// time and routes what they did, as a request does: a session past its disconnect
    /// delay, its timer input late (the runtime's timers never fire here), ends then, not
    /// at the next request.
    #[test]
    fn a_send_that_waits_fires_the_timers_due_first() {
        use std::future::Future;
        use std::task::{Context, Waker};

        let options = Options {
            disconnect_delay: Duration::from_millis(20),
            ..Options::default()
        };
        let config = Config {
            shards: 1,
            max_connection_queue_bytes: 8 * 1024,
            ..Config::default()
        };
        let (service, kept) = keeping_sessions(options, config);
        // A session without a receiver, soon past its delay.
        assert_eq!(
            status(&mut service.submit(post("/000/gone/xhr"))),
            Some(200)
        );
        // A session whose streaming receiver takes nothing after its head: its connection
        // fills.
        let mut stream = service.submit(post("/000/full/xhr_streaming"));
        assert_eq!(head_status(&mut stream), Some(200));
        let full = {
            let mut kept = kept.lock().expect("unpoisoned");
            let at = kept.iter().position(|s| s.id() == "full").expect("kept");
            kept.swap_remove(at)
        };
        let message = "x".repeat(1000);
        let refused = (0..100).find_map(|_| full.try_send(&message).err());
        assert_eq!(refused, Some(crate::SendError::QueueFull));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(service.session_count(), 2, "no input yet");
        let mut send = std::pin::pin!(full.send(message));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(send.as_mut().poll(&mut cx).is_pending(), "waits for room");
        assert_eq!(service.session_count(), 1, "the expired session ended");
    }
}
