//! The Redis pub/sub backend, on any runtime: its two tasks are spawned, and every wait
//! timed, through the driver's [`Runtime`]; the connections are the `redis` crate's.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;
use redis::aio::{MultiplexedConnection, PubSubSink};
use redis::{AsyncConnectionConfig, Client, Msg, RedisError};

use super::{Backend, Inbox, Target};
use crate::driver::{Runtime, Timer};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const PING_EVERY: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// PUBLISH commands sent in one pipeline.
const BATCH: usize = 64;
/// "Queue full" is logged at most this often.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Cross-node delivery through Redis pub/sub.
///
/// Build it with the adapter's constructor, which supplies the runtime
/// (`sockjs_tokio::broadcast::redis_backend(url)`, `sockjs_smol::broadcast::redis_backend(url)`,
/// or `redis(url)` for a ready [`Broadcast`](super::Broadcast)), or with
/// [`RedisBackend::new`] and a [`Runtime`] of your own; then hand it to
/// [`Broadcast::with_backend`](super::Broadcast::with_backend).
///
/// Two connections per node: one publishes (messages go out in one pipeline per batch, in
/// order), the other subscribes to `<prefix>all` and to `<prefix>t:<topic>` for each topic
/// that has a member on this node, following joins and leaves. Each message carries a
/// random id of the node that published it, so a node skips its own messages (it delivered
/// them locally already). The default prefix is `sockjs:`.
///
/// # Failures
///
/// Redis being down or unreachable never fails a call and never blocks a publisher:
///
/// - Each connection reconnects on its own, with exponential backoff from 100 ms to 5 s
///   (with jitter), resubscribing to the current topics. Connecting and every command time
///   out after 2 s; an idle connection is pinged every 5 s, so a lost one is noticed
///   before it costs messages.
/// - While the publishing connection is down, messages published on this node reach only
///   this node's members: the rest are dropped, not buffered. Messages waiting for the
///   connection are bounded too ([`RedisBackend::queue`], default 4096); beyond that they
///   are dropped.
/// - Losing a connection is logged once at `error` level, every failed retry at `debug`,
///   the recovery at `warn` with the outage's length and the messages dropped.
///   [`Broadcast::is_connected`](super::Broadcast::is_connected) tells whether both are
///   up.
///
/// Dropping the backend (with its [`Broadcast`](super::Broadcast)) stops its tasks.
///
/// # Runtimes
///
/// The `redis` crate runs each connection on a runtime of its own choosing: tokio with
/// sockjs-core's `redis-tokio` feature, smol with `redis-smol`; with both, tokio when the
/// connection is made from inside a tokio runtime and smol otherwise. The [`Runtime`]
/// given here should therefore spawn onto tokio with `redis-tokio` and off it with
/// `redis-smol`, as the adapters' constructors do.
pub struct RedisBackend {
    client: Client,
    prefix: String,
    origin: u64,
    queue: usize,
    runtime: Arc<dyn Runtime>,
    shared: Arc<Shared>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.prefix)
            .field("origin", &format_args!("{:016x}", self.origin))
            .field("connected", &self.is_connected())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

/// What the backend and its two tasks share.
struct Shared {
    publisher_up: AtomicBool,
    subscriber_up: AtomicBool,
    /// Messages that did not leave this node (connection down, queue full or failed).
    dropped: AtomicU64,
    /// When the last "queue full" error was logged, in ms since `epoch` plus one (0:
    /// never), to log it rarely.
    last_full_log: AtomicU64,
    epoch: Instant,
    signals: Mutex<Signals>,
}

/// The tasks' wake-ups: what std offers instead of channels and `Notify`.
#[derive(Default)]
struct Signals {
    /// Published messages waiting for the publishing connection.
    outbox: VecDeque<Outgoing>,
    /// The publishing task, waiting for messages.
    publisher: Option<Waker>,
    /// The subscribing task, waiting for the topics to change.
    subscriber: Option<Waker>,
    topics_changed: bool,
    /// The backend is gone: both tasks end.
    stopped: bool,
}

#[derive(Clone, Copy)]
enum Role {
    Publisher,
    Subscriber,
}

impl Signals {
    fn park(&mut self, role: Role, cx: &Context<'_>) {
        let slot = match role {
            Role::Publisher => &mut self.publisher,
            Role::Subscriber => &mut self.subscriber,
        };
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
    }
}

impl Shared {
    fn signals(&self) -> MutexGuard<'_, Signals> {
        // Every update under this lock is a single step, so a panic elsewhere cannot leave
        // it half done.
        self.signals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a message for the publishing task; `false` if `capacity` are waiting.
    fn push(&self, message: Outgoing, capacity: usize) -> bool {
        let waker = {
            let mut signals = self.signals();
            if signals.outbox.len() >= capacity {
                return false;
            }
            signals.outbox.push_back(message);
            signals.publisher.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    fn topics_changed(&self) {
        let waker = {
            let mut signals = self.signals();
            signals.topics_changed = true;
            signals.subscriber.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn stop(&self) {
        let (publisher, subscriber) = {
            let mut signals = self.signals();
            signals.stopped = true;
            (signals.publisher.take(), signals.subscriber.take())
        };
        publisher
            .into_iter()
            .chain(subscriber)
            .for_each(Waker::wake);
    }

    /// Up to `max` waiting messages into `batch`; `None` once stopped.
    fn poll_outbox(
        &self,
        cx: &Context<'_>,
        batch: &mut Vec<Outgoing>,
        max: usize,
    ) -> Poll<Option<usize>> {
        let mut signals = self.signals();
        if signals.stopped {
            return Poll::Ready(None);
        }
        if signals.outbox.is_empty() {
            signals.park(Role::Publisher, cx);
            return Poll::Pending;
        }
        let n = max.min(signals.outbox.len());
        batch.extend(signals.outbox.drain(..n));
        Poll::Ready(Some(n))
    }

    /// Ready with `true` when the topics changed (once per change), `false` once stopped.
    fn poll_topics_changed(&self, cx: &Context<'_>) -> Poll<bool> {
        let mut signals = self.signals();
        if signals.stopped {
            return Poll::Ready(false);
        }
        if std::mem::take(&mut signals.topics_changed) {
            return Poll::Ready(true);
        }
        signals.park(Role::Subscriber, cx);
        Poll::Pending
    }

    fn poll_stopped(&self, role: Role, cx: &Context<'_>) -> Poll<()> {
        let mut signals = self.signals();
        if signals.stopped {
            return Poll::Ready(());
        }
        signals.park(role, cx);
        Poll::Pending
    }

    /// Runs `future` to completion, or until the backend is dropped (`None`).
    async fn unless_stopped<T>(&self, role: Role, future: impl Future<Output = T>) -> Option<T> {
        let mut future = pin!(future);
        poll_fn(|cx| {
            if self.poll_stopped(role, cx).is_ready() {
                return Poll::Ready(None);
            }
            future.as_mut().poll(cx).map(Some)
        })
        .await
    }

    fn lost(&self, count: usize) {
        self.dropped.fetch_add(count as u64, Ordering::Relaxed);
    }
}

struct Outgoing {
    channel: String,
    payload: Vec<u8>,
}

impl RedisBackend {
    /// A backend for the Redis server at `url` (`redis://[:password@]host[:port][/db]`)
    /// whose tasks run on `runtime`. Fails only if the URL is invalid; nothing connects
    /// until the backend is started by
    /// [`Broadcast::with_backend`](super::Broadcast::with_backend).
    pub fn new(url: &str, runtime: Arc<dyn Runtime>) -> Result<RedisBackend, RedisError> {
        let client = Client::open(url)?;
        let origin = node_id(runtime.as_ref());
        Ok(RedisBackend {
            client,
            prefix: "sockjs:".to_owned(),
            origin,
            queue: 4096,
            shared: Arc::new(Shared {
                publisher_up: AtomicBool::new(false),
                subscriber_up: AtomicBool::new(false),
                dropped: AtomicU64::new(0),
                last_full_log: AtomicU64::new(0),
                epoch: runtime.now(),
                signals: Mutex::default(),
            }),
            runtime,
        })
    }

    /// The prefix of the pub/sub channel names (default `sockjs:`): nodes that should share
    /// topics use the same prefix, and different applications on one Redis use different
    /// ones.
    pub fn channel_prefix(mut self, prefix: &str) -> RedisBackend {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// How many published messages may wait for the publishing connection (default 4096);
    /// beyond that, messages reach this node only.
    pub fn queue(mut self, messages: usize) -> RedisBackend {
        self.queue = messages.max(1);
        self
    }

    /// Messages published on this node that did not reach Redis so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn note_full(&self) {
        let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let since = self
            .runtime
            .now()
            .saturating_duration_since(self.shared.epoch);
        let now = u64::try_from(since.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.shared.last_full_log.load(Ordering::Relaxed);
        let every = u64::try_from(FULL_LOG_EVERY.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= every)
            && self
                .shared
                .last_full_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                dropped,
                "redis broadcast: publish queue full, messages reach this node only"
            );
        }
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

fn channel(prefix: &str, target: Target<'_>) -> String {
    match target {
        Target::All => format!("{prefix}all"),
        Target::Topic(topic) => format!("{prefix}t:{topic}"),
    }
}

impl Backend for RedisBackend {
    fn start(&self, inbox: Inbox) {
        self.runtime.spawn(Box::pin(
            Publisher {
                client: self.client.clone(),
                shared: self.shared.clone(),
                runtime: self.runtime.clone(),
                seed: self.origin,
            }
            .run(),
        ));
        self.runtime.spawn(Box::pin(
            Subscriber {
                client: self.client.clone(),
                shared: self.shared.clone(),
                runtime: self.runtime.clone(),
                inbox,
                prefix: self.prefix.clone(),
                origin: self.origin,
            }
            .run(),
        ));
    }

    fn publish(&self, target: Target<'_>, text: &str) {
        if !self.shared.publisher_up.load(Ordering::Relaxed) {
            self.shared.lost(1);
            return;
        }
        let mut payload = Vec::with_capacity(17 + text.len());
        payload.extend_from_slice(format!("{:016x}\n", self.origin).as_bytes());
        payload.extend_from_slice(text.as_bytes());
        let message = Outgoing {
            channel: channel(&self.prefix, target),
            payload,
        };
        if !self.shared.push(message, self.queue) {
            self.note_full();
        }
    }

    fn subscribe(&self, _topic: &str) {
        self.shared.topics_changed();
    }

    fn unsubscribe(&self, _topic: &str) {
        self.shared.topics_changed();
    }

    fn is_connected(&self) -> bool {
        self.shared.publisher_up.load(Ordering::Relaxed)
            && self.shared.subscriber_up.load(Ordering::Relaxed)
    }
}

/// Exponential backoff with jitter.
struct Backoff {
    next: Duration,
    seed: u64,
}

impl Backoff {
    fn new(seed: u64) -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
            seed: seed | 1,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }

    /// The next delay: the current step ±25 %, then double the step.
    fn next_delay(&mut self) -> Duration {
        // xorshift64
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let quarter = base / 4;
        let spread = u32::try_from(self.seed % 1001).unwrap_or(500);
        base - quarter + quarter * 2 * spread / 1000
    }
}

/// Tracks one connection's outages for the logs.
struct Outage {
    name: &'static str,
    since: Option<Instant>,
    dropped_before: u64,
}

impl Outage {
    fn new(name: &'static str) -> Outage {
        Outage {
            name,
            since: None,
            dropped_before: 0,
        }
    }

    fn down(&mut self, now: Instant, shared: &Shared, flag: &AtomicBool, error: &dyn fmt::Display) {
        flag.store(false, Ordering::Relaxed);
        if self.since.is_none() {
            self.since = Some(now);
            self.dropped_before = shared.dropped.load(Ordering::Relaxed);
            tracing::error!(
                connection = self.name,
                %error,
                "redis broadcast unavailable: messages reach this node only; reconnecting"
            );
        } else {
            tracing::debug!(connection = self.name, %error, "redis broadcast: retry failed");
        }
    }

    fn up(&mut self, now: Instant, shared: &Shared, flag: &AtomicBool) {
        flag.store(true, Ordering::Relaxed);
        match self.since.take() {
            Some(since) => tracing::warn!(
                connection = self.name,
                outage_ms = u64::try_from(now.saturating_duration_since(since).as_millis())
                    .unwrap_or(u64::MAX),
                dropped = shared.dropped.load(Ordering::Relaxed) - self.dropped_before,
                "redis broadcast reconnected"
            ),
            None => tracing::info!(connection = self.name, "redis broadcast connected"),
        }
    }
}

/// Why a connection ended.
enum Lost {
    Redis(RedisError),
    Closed,
    Timeout,
    /// The backend was dropped.
    Stopped,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Redis(error) => error.fmt(f),
            Lost::Closed => f.write_str("connection closed"),
            Lost::Timeout => f.write_str("timed out"),
            Lost::Stopped => f.write_str("shutting down"),
        }
    }
}

/// The runtime's clock and one reusable timer, for a task's timeouts and pauses.
struct Clock {
    runtime: Arc<dyn Runtime>,
    timer: Pin<Box<dyn Timer>>,
}

impl Clock {
    fn new(runtime: Arc<dyn Runtime>) -> Clock {
        let timer = runtime.timer(runtime.now());
        Clock { runtime, timer }
    }

    fn now(&self) -> Instant {
        self.runtime.now()
    }

    /// `request`, failed if it takes longer than `limit` or the backend is dropped.
    async fn within<T>(
        &mut self,
        shared: &Shared,
        role: Role,
        limit: Duration,
        request: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, Lost> {
        let deadline = self.now() + limit;
        self.timer.as_mut().reset(deadline);
        let timer = &mut self.timer;
        let mut request = pin!(request);
        poll_fn(|cx| {
            if shared.poll_stopped(role, cx).is_ready() {
                return Poll::Ready(Err(Lost::Stopped));
            }
            if let Poll::Ready(result) = request.as_mut().poll(cx) {
                return Poll::Ready(result.map_err(Lost::Redis));
            }
            timer.as_mut().poll(cx).map(|()| Err(Lost::Timeout))
        })
        .await
    }

    /// Waits `delay`; `false` if the backend was dropped meanwhile.
    async fn pause(&mut self, shared: &Shared, role: Role, delay: Duration) -> bool {
        let deadline = self.now() + delay;
        self.timer.as_mut().reset(deadline);
        shared
            .unless_stopped(role, self.timer.as_mut())
            .await
            .is_some()
    }
}

/// The publishing connection's task.
struct Publisher {
    client: Client,
    shared: Arc<Shared>,
    runtime: Arc<dyn Runtime>,
    seed: u64,
}

impl Publisher {
    async fn run(self) {
        let shared = &*self.shared;
        // The timeouts are the clock's, on the driver's runtime.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let mut clock = Clock::new(self.runtime.clone());
        let mut backoff = Backoff::new(self.seed);
        let mut outage = Outage::new("publish");
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let connect = self
                .client
                .get_multiplexed_async_connection_with_config(&config);
            let mut connection = match clock
                .within(shared, Role::Publisher, CONNECT_TIMEOUT, connect)
                .await
            {
                Ok(connection) => connection,
                Err(Lost::Stopped) => return,
                Err(error) => {
                    outage.down(clock.now(), shared, &shared.publisher_up, &error);
                    if !self.wait_dropping(&mut clock, backoff.next_delay()).await {
                        return;
                    }
                    continue;
                }
            };
            outage.up(clock.now(), shared, &shared.publisher_up);
            backoff.reset();
            let lost = self.serve(&mut clock, &mut connection, &mut batch).await;
            if let Lost::Stopped = lost {
                return;
            }
            outage.down(clock.now(), shared, &shared.publisher_up, &lost);
        }
    }

    /// Waits `delay` before the next attempt, dropping what is queued meanwhile (it reached
    /// this node only). `false` if the backend was dropped.
    async fn wait_dropping(&self, clock: &mut Clock, delay: Duration) -> bool {
        let shared = &*self.shared;
        let deadline = clock.now() + delay;
        clock.timer.as_mut().reset(deadline);
        let timer = &mut clock.timer;
        let mut discard = Vec::new();
        poll_fn(|cx| {
            loop {
                match shared.poll_outbox(cx, &mut discard, usize::MAX) {
                    Poll::Ready(None) => return Poll::Ready(false),
                    Poll::Ready(Some(n)) => {
                        shared.lost(n);
                        discard.clear();
                    }
                    Poll::Pending => break,
                }
            }
            timer.as_mut().poll(cx).map(|()| true)
        })
        .await
    }

    /// Publishes batches as they come, pinging an idle connection, until it fails.
    async fn serve(
        &self,
        clock: &mut Clock,
        connection: &mut MultiplexedConnection,
        batch: &mut Vec<Outgoing>,
    ) -> Lost {
        let shared = &*self.shared;
        let mut ping = self.runtime.timer(clock.now() + PING_EVERY);
        loop {
            enum Wake {
                Batch,
                Ping,
                Stopped,
            }
            batch.clear();
            let wake = poll_fn(|cx| match shared.poll_outbox(cx, batch, BATCH) {
                Poll::Ready(Some(_)) => Poll::Ready(Wake::Batch),
                Poll::Ready(None) => Poll::Ready(Wake::Stopped),
                // An idle connection that died is noticed before the next message is lost.
                Poll::Pending => ping.as_mut().poll(cx).map(|()| Wake::Ping),
            })
            .await;
            let result = match wake {
                Wake::Stopped => return Lost::Stopped,
                Wake::Ping => {
                    let command = redis::cmd("PING");
                    let ping = command.query_async::<redis::Value>(connection);
                    clock
                        .within(shared, Role::Publisher, RESPONSE_TIMEOUT, ping)
                        .await
                        .map(drop)
                }
                Wake::Batch => {
                    let mut pipe = redis::pipe();
                    for message in batch.iter() {
                        pipe.cmd("PUBLISH")
                            .arg(&message.channel)
                            .arg(&message.payload)
                            .ignore();
                    }
                    let sent = pipe.query_async::<()>(connection);
                    let result = clock
                        .within(shared, Role::Publisher, RESPONSE_TIMEOUT, sent)
                        .await;
                    if result.is_err() {
                        shared.lost(batch.len());
                    }
                    result
                }
            };
            if let Err(lost) = result {
                return lost;
            }
            ping.as_mut().reset(clock.now() + PING_EVERY);
        }
    }
}

/// The subscribing connection's task.
struct Subscriber {
    client: Client,
    shared: Arc<Shared>,
    runtime: Arc<dyn Runtime>,
    inbox: Inbox,
    prefix: String,
    origin: u64,
}

impl Subscriber {
    async fn run(self) {
        // Timers are made on the task, inside the runtime (tokio's need one).
        let mut clock = Clock::new(self.runtime.clone());
        let mut backoff = Backoff::new(self.origin.rotate_left(32));
        let mut outage = Outage::new("subscribe");
        while self.inbox.is_alive() {
            let lost = self.session(&mut clock, &mut backoff, &mut outage).await;
            if let Lost::Stopped = lost {
                return;
            }
            let shared = &*self.shared;
            outage.down(clock.now(), shared, &shared.subscriber_up, &lost);
            let delay = backoff.next_delay();
            if !clock.pause(shared, Role::Subscriber, delay).await {
                return;
            }
        }
    }

    /// One connection: connect, subscribe, deliver until it fails.
    async fn session(&self, clock: &mut Clock, backoff: &mut Backoff, outage: &mut Outage) -> Lost {
        let shared = &*self.shared;
        let role = Role::Subscriber;
        let connect = self.client.get_async_pubsub();
        let (mut sink, mut stream) =
            match clock.within(shared, role, CONNECT_TIMEOUT, connect).await {
                Ok(pubsub) => pubsub.split(),
                Err(lost) => return lost,
            };
        let all = channel(&self.prefix, Target::All);
        let topic_prefix = format!("{}t:", self.prefix);
        let mut subscribed = HashSet::new();
        let subscribe_all = sink.subscribe(&all);
        if let Err(lost) = clock
            .within(shared, role, RESPONSE_TIMEOUT, subscribe_all)
            .await
        {
            return lost;
        }
        if let Err(lost) = self.sync(clock, &mut sink, &mut subscribed).await {
            return lost;
        }
        outage.up(clock.now(), shared, &shared.subscriber_up);
        backoff.reset();
        let mut ping = self.runtime.timer(clock.now() + PING_EVERY);
        loop {
            enum Wake {
                Message(Option<Msg>),
                TopicsChanged,
                Ping,
                Stopped,
            }
            let wake = poll_fn(|cx| {
                if let Poll::Ready(changed) = shared.poll_topics_changed(cx) {
                    return Poll::Ready(if changed {
                        Wake::TopicsChanged
                    } else {
                        Wake::Stopped
                    });
                }
                if let Poll::Ready(message) = Pin::new(&mut stream).poll_next(cx) {
                    return Poll::Ready(Wake::Message(message));
                }
                ping.as_mut().poll(cx).map(|()| Wake::Ping)
            })
            .await;
            match wake {
                Wake::Message(None) => return Lost::Closed,
                Wake::Message(Some(message)) => self.deliver(&message, &all, &topic_prefix),
                Wake::TopicsChanged => {
                    if let Err(lost) = self.sync(clock, &mut sink, &mut subscribed).await {
                        return lost;
                    }
                }
                Wake::Ping => {
                    let pong = sink.ping::<redis::Value>();
                    if let Err(lost) = clock.within(shared, role, RESPONSE_TIMEOUT, pong).await {
                        return lost;
                    }
                    ping.as_mut().reset(clock.now() + PING_EVERY);
                }
                Wake::Stopped => return Lost::Stopped,
            }
        }
    }

    /// Delivers a message from another node to this node's members.
    fn deliver(&self, message: &Msg, all: &str, topic_prefix: &str) {
        let name = message.get_channel_name();
        let target = if name == all {
            Target::All
        } else if let Some(topic) = name.strip_prefix(topic_prefix) {
            Target::Topic(topic)
        } else {
            return;
        };
        match decode(message.get_payload_bytes()) {
            Some((origin, _)) if origin == self.origin => {}
            Some((_, text)) => {
                self.inbox.deliver(target, text);
            }
            None => tracing::debug!(channel = name, "redis broadcast: malformed message ignored"),
        }
    }

    /// Brings the subscriptions in line with the hub's topics.
    async fn sync(
        &self,
        clock: &mut Clock,
        sink: &mut PubSubSink,
        subscribed: &mut HashSet<String>,
    ) -> Result<(), Lost> {
        let shared = &*self.shared;
        let wanted: HashSet<String> = self
            .inbox
            .topics()
            .into_iter()
            .map(|t| channel(&self.prefix, Target::Topic(&t)))
            .collect();
        let add: Vec<&String> = wanted.difference(subscribed).collect();
        if !add.is_empty() {
            let request = sink.subscribe(&add);
            clock
                .within(shared, Role::Subscriber, RESPONSE_TIMEOUT, request)
                .await?;
        }
        let remove: Vec<&String> = subscribed.difference(&wanted).collect();
        if !remove.is_empty() {
            let request = sink.unsubscribe(&remove);
            clock
                .within(shared, Role::Subscriber, RESPONSE_TIMEOUT, request)
                .await?;
        }
        *subscribed = wanted;
        Ok(())
    }
}

/// Splits `<16 hex digits of origin>\n<text>`.
fn decode(payload: &[u8]) -> Option<(u64, &str)> {
    let head = payload.get(..17)?;
    if head.get(16) != Some(&b'\n') {
        return None;
    }
    let origin = u64::from_str_radix(std::str::from_utf8(head.get(..16)?).ok()?, 16).ok()?;
    let text = std::str::from_utf8(payload.get(17..)?).ok()?;
    Some((origin, text))
}

/// A random id for this node's messages: the runtime's seed, mixed with the process id
/// and the wall clock so that nodes started together on one machine still differ.
fn node_id(runtime: &dyn Runtime) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(runtime.random_seed());
    hasher.write_u32(std::process::id());
    if let Ok(now) = runtime.wall_clock().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_round_trip_and_rejects() {
        let payload = format!("{:016x}\nhello\nworld", 0xabcdu64);
        assert_eq!(decode(payload.as_bytes()), Some((0xabcd, "hello\nworld")));
        assert_eq!(decode(b"0000000000000001\n"), Some((1, "")));
        assert_eq!(decode(b"short"), None);
        assert_eq!(decode(b"000000000000000g\nx"), None);
        assert_eq!(decode(b"0000000000000001-x"), None);
        assert_eq!(decode(b"0000000000000001\n\xff"), None);
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new(42);
        let first = backoff.next_delay();
        assert!(first >= BACKOFF_FIRST * 3 / 4 && first <= BACKOFF_FIRST * 5 / 4);
        for _ in 0..20 {
            let delay = backoff.next_delay();
            assert!(delay <= BACKOFF_MAX * 5 / 4);
        }
        assert!(backoff.next_delay() >= BACKOFF_MAX * 3 / 4);
        backoff.reset();
        assert!(backoff.next_delay() <= BACKOFF_FIRST * 5 / 4);
    }

    /// A runtime that drops its tasks: the backend's tasks never run.
    #[derive(Debug)]
    struct Inert;

    struct Never;

    impl Future for Never {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }

    impl Timer for Never {
        fn reset(self: Pin<&mut Self>, _deadline: Instant) {}
    }

    impl Runtime for Inert {
        fn now(&self) -> Instant {
            Instant::now()
        }
        fn wall_clock(&self) -> std::time::SystemTime {
            std::time::SystemTime::now()
        }
        fn spawn(&self, _task: crate::driver::Task) {}
        fn timer(&self, _deadline: Instant) -> Pin<Box<dyn Timer>> {
            Box::pin(Never)
        }
        fn random_seed(&self) -> u64 {
            7
        }
    }

    #[test]
    fn publishing_never_waits_drops_while_down_and_bounds_the_queue() {
        let backend = RedisBackend::new("redis://127.0.0.1:1/", Arc::new(Inert))
            .expect("valid url")
            .channel_prefix("p:")
            .queue(3);
        assert!(RedisBackend::new("not a url", Arc::new(Inert)).is_err());
        // Down (never connected): dropped at once, nothing queued.
        backend.publish(Target::All, "lost");
        assert_eq!(backend.dropped(), 1);
        assert!(backend.shared.signals().outbox.is_empty());
        assert!(!backend.is_connected());
        // Up but nobody sending: three wait, the rest are dropped.
        backend.shared.publisher_up.store(true, Ordering::Relaxed);
        for i in 0..5 {
            backend.publish(Target::Topic("red"), &format!("m{i}"));
        }
        assert_eq!(backend.dropped(), 3);
        {
            let signals = backend.shared.signals();
            let waiting: Vec<_> = signals.outbox.iter().map(|m| m.channel.as_str()).collect();
            assert_eq!(waiting, ["p:t:red"; 3]);
            let first = &signals.outbox[0].payload;
            assert_eq!(decode(first), Some((backend.origin, "m0")));
        }
        // Dropping the backend stops its tasks.
        let shared = backend.shared.clone();
        drop(backend);
        assert!(shared.signals().stopped);
    }

    #[test]
    fn channel_names() {
        assert_eq!(channel("sockjs:", Target::All), "sockjs:all");
        assert_eq!(channel("sockjs:", Target::Topic("all")), "sockjs:t:all");
    }
}
