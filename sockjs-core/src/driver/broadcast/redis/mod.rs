//! The Redis pub/sub backend, on any runtime: its two tasks are spawned, and every wait
//! timed, through the driver's [`Runtime`]; the connections are the `redis` crate's.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use redis::{Client, RedisError};

use super::{Backend, Inbox, Target};

mod connect;
mod meter;
mod publisher;
mod retry;
mod subscriber;

use crate::driver::Runtime;
use publisher::Publisher;
use subscriber::Subscriber;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const PING_EVERY: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// PUBLISH commands sent in one pipeline.
const BATCH: usize = 64;
/// Most payload bytes in one pipeline (beyond its first message): large messages go in
/// smaller batches, each well within the command timeout.
const BATCH_BYTES: usize = 1 << 20;
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
///   before it costs messages. A connection counts as up once a command went through (a
///   server that refuses commands, such as one that wants a password, is retried with the
///   same backoff; so is a subscribing connection whose subscription an ACL refuses), and
///   the backoff starts over only after a connection has served.
/// - While the publishing connection is down, messages published on this node reach only
///   this node's members: the rest are dropped, not buffered. Messages waiting for the
///   connection are bounded too, in number and in bytes ([`RedisBackend::queue`], default
///   4096; [`RedisBackend::queue_bytes`], default 16 MiB); beyond that they are dropped.
/// - Messages from other nodes are read from the subscribing connection's socket no further
///   than 1 MiB ahead of what this node has delivered (a larger message comes in steps of
///   1 MiB); the `redis` crate would otherwise read as fast as it can and queue the rest
///   without a bound. A node that delivers slower than the cluster publishes to its topics
///   leaves the backlog in Redis, whose `client-output-buffer-limit pubsub` (32 MiB, or
///   8 MiB for a minute, by default) cuts a subscriber that stays behind: that is a lost
///   connection, made again as any other, and what was published meanwhile does not reach
///   this node. A command on that connection (a subscription, the ping) waits behind what
///   was sent before it, delivering it meanwhile, and times out only after 2 s without
///   either an answer or a message. Where the `redis` crate connects itself (a Unix
///   socket; TLS, with its TLS features), its reads have no such bound.
/// - Losing a connection is logged once at `error` level, every failed retry at `debug`,
///   the recovery at `warn` with the outage's length and the messages dropped.
///   [`Broadcast::is_connected`](super::Broadcast::is_connected) tells whether both are
///   up.
///
/// Its tasks stop once the backend is dropped: with the last clone of its
/// [`Broadcast`](super::Broadcast) and the last [`Member`](super::Member) (each member
/// keeps the hub, and so the backend, alive).
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
    queue_bytes: usize,
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
    /// Their payloads' bytes.
    outbox_bytes: usize,
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

    /// Queues a message for the publishing task; `false` if `capacity` are waiting, or it
    /// would take the waiting ones past `bytes` (one alone may, else it could never go).
    fn push(&self, message: Outgoing, capacity: usize, bytes: usize) -> bool {
        let waker = {
            let mut signals = self.signals();
            let size = message.size();
            let over = signals.outbox_bytes.saturating_add(size) > bytes;
            if signals.outbox.len() >= capacity || (over && !signals.outbox.is_empty()) {
                return false;
            }
            signals.outbox_bytes += size;
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
        let (publisher, subscriber, queued) = {
            let mut signals = self.signals();
            signals.stopped = true;
            let queued = std::mem::take(&mut signals.outbox).len();
            signals.outbox_bytes = 0;
            (signals.publisher.take(), signals.subscriber.take(), queued)
        };
        // The publisher stops with the hub: what it had not sent never leaves this node.
        if queued > 0 {
            self.lost(queued);
            tracing::warn!(queued, "redis backend dropped: queued publications lost");
        }
        publisher
            .into_iter()
            .chain(subscriber)
            .for_each(Waker::wake);
    }

    /// Up to `max` waiting messages, and [`BATCH_BYTES`] of them past the first, into
    /// `batch`; `None` once stopped.
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
        let mut n = 0;
        let mut taken = 0usize;
        while let Some(next) = signals.outbox.front() {
            let size = next.size();
            if n == max || (n > 0 && taken.saturating_add(size) > BATCH_BYTES) {
                break;
            }
            taken += size;
            n += 1;
            batch.extend(signals.outbox.pop_front());
        }
        signals.outbox_bytes -= taken;
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

impl Outgoing {
    /// What it holds, and sends: a topic's name counts as its payload does (a long one,
    /// chosen by a client, would otherwise multiply what the bound allows).
    fn size(&self) -> usize {
        self.channel.len().saturating_add(self.payload.len())
    }
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
            queue_bytes: 16 << 20,
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
    /// ones. The channels are `<prefix>all` and `<prefix>t:<topic>`, so no application's
    /// prefix may be another's followed by `t:` (`app:` and `app:t:`, or `chat` and
    /// `chatt:`): the second's channels would be topics of the first (its `all`, the first's
    /// topic `all`; the first's topic `t:x`, the second's `x`), and a client that names
    /// topics would read the other application's. Prefixes that end with `:` and are none
    /// another's start (`app1:`, `app2:`) never meet.
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

    /// How many bytes of published messages (their topics' names included) may wait for
    /// the publishing connection (default 16 MiB): with [`queue`](RedisBackend::queue)'s
    /// count alone, 4096 messages of the 256 KiB a client may send could hold 1 GiB while
    /// Redis is slow. Beyond it,
    /// messages reach this node only; one message larger than the bound still goes when
    /// none is waiting.
    pub fn queue_bytes(mut self, bytes: usize) -> RedisBackend {
        self.queue_bytes = bytes;
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
        if !self.shared.push(message, self.queue, self.queue_bytes) {
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

    fn dropped(&self) -> u64 {
        RedisBackend::dropped(self)
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
    use super::retry::Backoff;
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

    // Its tasks are dropped: the backend's tasks never run.
    use crate::driver::runtime::inert::Inert;

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
        // Dropping the backend stops its tasks; the three still queued never leave.
        let shared = backend.shared.clone();
        drop(backend);
        assert!(shared.signals().stopped);
        assert!(shared.signals().outbox.is_empty());
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_and_batches_too() {
        let backend = RedisBackend::new("redis://127.0.0.1:1/", Arc::new(Inert))
            .expect("valid url")
            .queue_bytes(3 * ("sockjs:all".len() + 17 + 400_000));
        backend.shared.publisher_up.store(true, Ordering::Relaxed);
        let big = "x".repeat(400_000);
        // Three fit; the fourth would pass the bound, and is dropped; small ones too.
        for _ in 0..4 {
            backend.publish(Target::All, &big);
        }
        backend.publish(Target::All, "small");
        assert_eq!(backend.dropped(), 2);
        assert_eq!(backend.shared.signals().outbox.len(), 3);
        // A batch takes one message past a megabyte at most: two of these, then one.
        let cx = Context::from_waker(Waker::noop());
        let mut batch = Vec::new();
        let taken = backend.shared.poll_outbox(&cx, &mut batch, BATCH);
        assert_eq!((taken, batch.len()), (Poll::Ready(Some(2)), 2));
        // Room again: a small one is queued.
        backend.publish(Target::All, "small");
        assert_eq!(backend.dropped(), 2);
        batch.clear();
        let taken = backend.shared.poll_outbox(&cx, &mut batch, BATCH);
        assert_eq!(taken, Poll::Ready(Some(2)));
        assert_eq!(backend.shared.signals().outbox_bytes, 0);
        // One message larger than the whole bound goes when nothing waits.
        let tiny = RedisBackend::new("redis://127.0.0.1:1/", Arc::new(Inert))
            .expect("valid url")
            .queue_bytes(10);
        tiny.shared.publisher_up.store(true, Ordering::Relaxed);
        tiny.publish(Target::All, &big);
        tiny.publish(Target::All, "small");
        assert_eq!(tiny.dropped(), 1);
    }

    #[test]
    fn a_topics_name_counts_against_the_bound_as_its_payload_does() {
        let backend = RedisBackend::new("redis://127.0.0.1:1/", Arc::new(Inert))
            .expect("valid url")
            .queue_bytes(1 << 20);
        backend.shared.publisher_up.store(true, Ordering::Relaxed);
        let room = "r".repeat(256 << 10);
        for _ in 0..100 {
            backend.publish(Target::Topic(&room), "x");
        }
        // Each holds 256 KiB of name and a few bytes more: three fit a MiB.
        let signals = backend.shared.signals();
        let held: usize = signals.outbox.iter().map(Outgoing::size).sum();
        assert_eq!(signals.outbox.len(), 3, "{held} bytes held");
        assert_eq!(held, signals.outbox_bytes);
        assert!(held <= 1 << 20, "{held}");
        drop(signals);
        assert_eq!(backend.dropped(), 97);
    }

    #[test]
    fn channel_names() {
        assert_eq!(channel("sockjs:", Target::All), "sockjs:all");
        assert_eq!(channel("sockjs:", Target::Topic("all")), "sockjs:t:all");
    }
}
