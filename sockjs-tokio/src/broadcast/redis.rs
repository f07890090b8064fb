//! The Redis pub/sub backend.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use redis::aio::{MultiplexedConnection, PubSubSink};
use redis::{AsyncConnectionConfig, Client, RedisError};
use tokio::sync::{Notify, mpsc, watch};

use super::{Backend, Inbox, Target};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const PING_EVERY: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// PUBLISH commands sent in one pipeline.
const BATCH: usize = 64;

/// Cross-node delivery through Redis pub/sub.
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
pub struct RedisBackend {
    client: Client,
    prefix: String,
    origin: u64,
    queue: usize,
    shared: Arc<Shared>,
    outbox: Mutex<Option<mpsc::Sender<Outgoing>>>,
    /// Dropped with the backend: stops its tasks.
    shutdown: watch::Sender<()>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.prefix)
            .field("origin", &format_args!("{:016x}", self.origin))
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    publisher_up: AtomicBool,
    subscriber_up: AtomicBool,
    topics_changed: Notify,
    /// Messages that did not leave this node (connection down, queue full or failed).
    dropped: AtomicU64,
    /// When the last "queue full" error was logged (ms since `epoch`), to log it rarely.
    last_full_log: AtomicU64,
    epoch: Option<Instant>,
}

struct Outgoing {
    channel: String,
    payload: Vec<u8>,
}

impl RedisBackend {
    /// A backend for the Redis server at `url` (`redis://[:password@]host[:port][/db]`).
    /// Fails only if the URL is invalid; nothing connects until the backend is started by
    /// [`Broadcast::with_backend`](super::Broadcast::with_backend).
    pub fn new(url: &str) -> Result<RedisBackend, RedisError> {
        let client = Client::open(url)?;
        Ok(RedisBackend {
            client,
            prefix: "sockjs:".to_owned(),
            origin: random_u64(),
            queue: 4096,
            shared: Arc::new(Shared {
                epoch: Some(Instant::now()),
                ..Shared::default()
            }),
            outbox: Mutex::new(None),
            shutdown: watch::Sender::new(()),
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

    fn channel(&self, target: Target<'_>) -> String {
        channel(&self.prefix, target)
    }

    fn note_full(&self) {
        let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.shared.epoch.map_or(0, |e| {
            u64::try_from(e.elapsed().as_millis()).unwrap_or(u64::MAX)
        });
        let last = self.shared.last_full_log.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .shared
                .last_full_log
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                dropped,
                "redis broadcast: publish queue full, messages reach this node only"
            );
        }
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
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                "redis broadcast: not started from a Tokio runtime; messages reach this node only"
            );
            return;
        };
        let (tx, rx) = mpsc::channel(self.queue);
        *self.outbox.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        runtime.spawn(publisher(
            self.client.clone(),
            self.shared.clone(),
            rx,
            self.shutdown.subscribe(),
            self.origin,
        ));
        runtime.spawn(subscriber(Subscriber {
            client: self.client.clone(),
            shared: self.shared.clone(),
            inbox,
            prefix: self.prefix.clone(),
            origin: self.origin,
            shutdown: self.shutdown.subscribe(),
        }));
    }

    fn publish(&self, target: Target<'_>, text: &str) {
        if !self.shared.publisher_up.load(Ordering::Relaxed) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = outbox.as_ref() else {
            return;
        };
        let mut payload = Vec::with_capacity(17 + text.len());
        payload.extend_from_slice(format!("{:016x}\n", self.origin).as_bytes());
        payload.extend_from_slice(text.as_bytes());
        let message = Outgoing {
            channel: self.channel(target),
            payload,
        };
        if tx.try_send(message).is_err() {
            drop(outbox);
            self.note_full();
        }
    }

    fn subscribe(&self, _topic: &str) {
        self.shared.topics_changed.notify_one();
    }

    fn unsubscribe(&self, _topic: &str) {
        self.shared.topics_changed.notify_one();
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

    fn down(&mut self, shared: &Shared, flag: &AtomicBool, error: &dyn fmt::Display) {
        flag.store(false, Ordering::Relaxed);
        if self.since.is_none() {
            self.since = Some(Instant::now());
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

    fn up(&mut self, shared: &Shared, flag: &AtomicBool) {
        flag.store(true, Ordering::Relaxed);
        match self.since.take() {
            Some(since) => tracing::warn!(
                connection = self.name,
                outage_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                dropped = shared.dropped.load(Ordering::Relaxed) - self.dropped_before,
                "redis broadcast reconnected"
            ),
            None => tracing::info!(connection = self.name, "redis broadcast connected"),
        }
    }
}

async fn publisher(
    client: Client,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Outgoing>,
    mut shutdown: watch::Receiver<()>,
    seed: u64,
) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut backoff = Backoff::new(seed);
    let mut outage = Outage::new("publish");
    loop {
        let connected = tokio::select! {
            result = client.get_multiplexed_async_connection_with_config(&config) => result,
            _ = shutdown.changed() => return,
        };
        let mut connection = match connected {
            Ok(connection) => connection,
            Err(error) => {
                outage.down(&shared, &shared.publisher_up, &error);
                let delay = backoff.next_delay();
                // Messages queued while down are dropped: they reached this node only.
                let until = tokio::time::Instant::now() + delay;
                loop {
                    tokio::select! {
                        message = rx.recv() => match message {
                            Some(_) => {
                                shared.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            None => return,
                        },
                        () = tokio::time::sleep_until(until) => break,
                        _ = shutdown.changed() => return,
                    }
                }
                continue;
            }
        };
        outage.up(&shared, &shared.publisher_up);
        backoff.reset();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let error = loop {
            let mut batch = Vec::with_capacity(BATCH);
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
                // An idle connection that died is noticed before the next message is lost.
                _ = ping.tick() => {
                    match redis::cmd("PING").query_async::<redis::Value>(&mut connection).await {
                        Ok(_) => continue,
                        Err(error) => break error,
                    }
                }
                _ = shutdown.changed() => return,
            }
            ping.reset();
            if let Err(error) = publish_batch(&mut connection, &batch).await {
                shared
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                break error;
            }
        };
        outage.down(&shared, &shared.publisher_up, &error);
    }
}

async fn publish_batch(
    connection: &mut MultiplexedConnection,
    batch: &[Outgoing],
) -> Result<(), RedisError> {
    let mut pipe = redis::pipe();
    for message in batch {
        pipe.cmd("PUBLISH")
            .arg(&message.channel)
            .arg(&message.payload)
            .ignore();
    }
    pipe.query_async::<()>(connection).await
}

struct Subscriber {
    client: Client,
    shared: Arc<Shared>,
    inbox: Inbox,
    prefix: String,
    origin: u64,
    shutdown: watch::Receiver<()>,
}

enum Lost {
    Redis(RedisError),
    Closed,
    Timeout,
    Shutdown,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Redis(error) => error.fmt(f),
            Lost::Closed => f.write_str("connection closed"),
            Lost::Timeout => f.write_str("timed out"),
            Lost::Shutdown => f.write_str("shutting down"),
        }
    }
}

async fn subscriber(mut sub: Subscriber) {
    let mut backoff = Backoff::new(sub.origin.rotate_left(32));
    let mut outage = Outage::new("subscribe");
    while sub.inbox.is_alive() {
        let lost = sub.session(&mut backoff, &mut outage).await;
        if matches!(lost, Lost::Shutdown) {
            return;
        }
        outage.down(&sub.shared, &sub.shared.subscriber_up, &lost);
        let delay = backoff.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = sub.shutdown.changed() => return,
        }
    }
}

impl Subscriber {
    /// One connection: connect, subscribe, deliver until it fails.
    async fn session(&mut self, backoff: &mut Backoff, outage: &mut Outage) -> Lost {
        let connected = tokio::select! {
            result = tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub()) => result,
            _ = self.shutdown.changed() => return Lost::Shutdown,
        };
        let (mut sink, mut stream) = match connected {
            Ok(Ok(pubsub)) => pubsub.split(),
            Ok(Err(error)) => return Lost::Redis(error),
            Err(_) => return Lost::Timeout,
        };
        let all = channel(&self.prefix, Target::All);
        let topic_prefix = format!("{}t:", self.prefix);
        let mut subscribed = HashSet::new();
        if let Err(lost) = timed(sink.subscribe(&all)).await {
            return lost;
        }
        if let Err(lost) = self.sync(&mut sink, &mut subscribed).await {
            return lost;
        }
        outage.up(&self.shared, &self.shared.subscriber_up);
        backoff.reset();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { return Lost::Closed };
                    let name = message.get_channel_name();
                    let target = if name == all {
                        Target::All
                    } else if let Some(topic) = name.strip_prefix(&topic_prefix) {
                        Target::Topic(topic)
                    } else {
                        continue;
                    };
                    match decode(message.get_payload_bytes()) {
                        Some((origin, _)) if origin == self.origin => {}
                        Some((_, text)) => {
                            self.inbox.deliver(target, text);
                        }
                        None => tracing::debug!(channel = name, "redis broadcast: malformed message ignored"),
                    }
                }
                () = self.shared.topics_changed.notified() => {
                    if let Err(lost) = self.sync(&mut sink, &mut subscribed).await {
                        return lost;
                    }
                }
                _ = ping.tick() => {
                    if let Err(lost) = timed(sink.ping::<redis::Value>()).await {
                        return lost;
                    }
                }
                _ = self.shutdown.changed() => return Lost::Shutdown,
            }
        }
    }

    /// Brings the subscriptions in line with the hub's topics.
    async fn sync(
        &self,
        sink: &mut PubSubSink,
        subscribed: &mut HashSet<String>,
    ) -> Result<(), Lost> {
        let wanted: HashSet<String> = self
            .inbox
            .topics()
            .into_iter()
            .map(|t| channel(&self.prefix, Target::Topic(&t)))
            .collect();
        let add: Vec<&String> = wanted.difference(subscribed).collect();
        if !add.is_empty() {
            timed(sink.subscribe(&add)).await?;
        }
        let remove: Vec<&String> = subscribed.difference(&wanted).collect();
        if !remove.is_empty() {
            timed(sink.unsubscribe(&remove)).await?;
        }
        *subscribed = wanted;
        Ok(())
    }
}

async fn timed<T>(request: impl Future<Output = Result<T, RedisError>>) -> Result<T, Lost> {
    match tokio::time::timeout(RESPONSE_TIMEOUT, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Lost::Redis(error)),
        Err(_) => Err(Lost::Timeout),
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

fn random_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
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

    #[test]
    fn channel_names() {
        assert_eq!(channel("sockjs:", Target::All), "sockjs:all");
        assert_eq!(channel("sockjs:", Target::Topic("all")), "sockjs:t:all");
    }
}
