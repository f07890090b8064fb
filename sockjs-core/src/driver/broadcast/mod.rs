//! Topics (rooms) of sessions, and publishing to a topic or to everyone: on one node, or on
//! every node of a cluster through a pub/sub [`Backend`] such as Redis.
//!
//! A [`Broadcast`] is a cheap, cloneable hub. Each session that takes part registers once
//! with [`Broadcast::member`] and gets a [`Member`], which joins and leaves topics; dropping
//! the `Member` (usually when the handler returns) leaves everything.
//! [`Broadcast::publish`] sends a text message to every member of a topic,
//! [`Broadcast::publish_all`] to every member.
//!
//! ```
//! use sockjs_core::driver::Session;
//! use sockjs_core::driver::broadcast::Broadcast;
//!
//! let hub = Broadcast::new(); // or the adapter's broadcast::redis(url): see Backends
//! // A chat room: the handler of a service (`sockjs_tokio::SockJs::new(options, chat)`, or
//! // `sockjs_smol::Server::service(prefix, options, chat)`).
//! let chat = move |mut session: Session| {
//!     let hub = hub.clone();
//!     async move {
//!         let member = hub.member(session.sender());
//!         member.join("lobby");
//!         while let Some(text) = session.recv().await {
//!             hub.publish("lobby", &text);
//!         }
//!     }
//! };
//! # let _ = chat;
//! ```
//!
//! # Delivery
//!
//! Members on this node get a message at once, from the publishing call itself, through
//! [`SessionSender::try_send`]: it never waits. A member whose queue is full, or whose
//! connection has not written what it holds
//! ([`SendError::QueueFull`](crate::SendError::QueueFull)), misses that message; a member
//! whose session has ended is skipped. Local delivery happens under the hub's lock, so
//! messages published on this node reach every local member of a topic in the same order.
//!
//! With a backend, the message also goes to the other nodes, which deliver it to their own
//! members; a node does not deliver its own messages twice. Delivery across nodes is at
//! most once and, for messages from one node, in publishing order, as the pub/sub engine
//! provides. When the backend is unavailable (Redis down), publishing keeps working on this
//! node alone: the backend logs an error, drops what it cannot send (it never buffers
//! without bound and never blocks the publisher) and reconnects with backoff.
//!
//! # Backends
//!
//! [`Broadcast::new`] is in-process only. `RedisBackend` (sockjs-core's features
//! `redis-tokio` and `redis-smol`, which the adapters' `redis` feature turns on) uses Redis
//! pub/sub; each adapter supplies its runtime in a constructor of the same name:
//!
//! ```text
//! sockjs_tokio::broadcast::redis(url)?           // -> Broadcast
//! sockjs_smol::broadcast::redis(url)?
//! sockjs_tokio::broadcast::redis_backend(url)?   // -> RedisBackend, to configure first
//! sockjs_smol::broadcast::redis_backend(url)?
//! ```
//!
//! Any other engine plugs in by implementing [`Backend`] and passing it to
//! [`Broadcast::with_backend`]; a backend that needs tasks takes a
//! [`Runtime`](crate::driver::Runtime), as `RedisBackend::new` does.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::driver::SessionSender;
use crate::driver::waiters::{Wakers, wake_all};

#[cfg(any(feature = "redis-tokio", feature = "redis-smol"))]
mod redis;
#[cfg(any(feature = "redis-tokio", feature = "redis-smol"))]
pub use self::redis::RedisBackend;
/// The error of an invalid Redis URL (the `redis` crate's).
#[cfg(any(feature = "redis-tokio", feature = "redis-smol"))]
pub use ::redis::RedisError;

/// Where a published message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target<'a> {
    /// Every member of this topic.
    Topic(&'a str),
    /// Every member.
    All,
}

/// Carries messages between nodes. Implement it to plug a pub/sub engine into
/// [`Broadcast::with_backend`].
///
/// No method may block or wait on I/O: each runs in an application's task. Hand the work
/// to a task (through a bounded queue) instead.
///
/// [`publish`](Backend::publish) is called from the publishing task with the hub's lock
/// held, so that publications reach the backend in the order this node's members got
/// them: it must not call back into the [`Broadcast`] (nor wake a task on a runtime that
/// would poll it inside `wake()`).
///
/// [`subscribe`](Backend::subscribe) and [`unsubscribe`](Backend::unsubscribe) are
/// called with no lock of the hub held, one call at a time, from whichever task is telling
/// the backend of changes (one that joined, left or dropped a member, perhaps after
/// another task's join or leave has returned), and may call back into the hub
/// ([`Inbox::topics`], say). They follow the hub's topics rather than each join and leave:
/// a topic's calls alternate, `subscribe` first; a topic that changed after a call is
/// followed by another call (both, if it went and came back), so a backend that reads
/// [`Inbox::topics`] when called reads it again after any later change; and once the joins
/// and leaves stop, the topics the backend was last told of are the hub's. A panic in one
/// (unless panics abort) is logged and taken as the call made; one in `publish` reaches
/// the publishing task.
pub trait Backend: Send + Sync + 'static {
    /// Called once, when the [`Broadcast`] is built: keep the [`Inbox`] and deliver what
    /// other nodes publish through it. Spawn the backend's tasks here.
    fn start(&self, inbox: Inbox);

    /// Sends a message published on this node to the other nodes (it has already been
    /// delivered to this node's members).
    fn publish(&self, target: Target<'_>, text: &str);

    /// A topic got its first member on this node: start receiving it.
    fn subscribe(&self, topic: &str);

    /// A topic lost its last member on this node: stop receiving it.
    fn unsubscribe(&self, topic: &str);

    /// Whether messages currently reach the other nodes (for health checks and logs).
    fn is_connected(&self) -> bool {
        true
    }

    /// Messages published on this node that never reached the other nodes so far (a
    /// connection down, a queue full, a publication refused, a shutdown with messages
    /// still queued). `0` for a backend that loses none or does not count.
    fn dropped(&self) -> u64 {
        0
    }
}

/// The in-process "backend": nothing leaves this node.
struct LocalOnly;

impl Backend for LocalOnly {
    fn start(&self, _inbox: Inbox) {}
    fn publish(&self, _target: Target<'_>, _text: &str) {}
    fn subscribe(&self, _topic: &str) {}
    fn unsubscribe(&self, _topic: &str) {}
}

/// A hub of topics and their members; cheap to clone (clones share everything).
///
/// See the [module documentation](self).
#[derive(Clone)]
pub struct Broadcast {
    hub: Arc<Hub>,
}

struct Hub {
    state: Mutex<State>,
    backend: Box<dyn Backend>,
    next_member: AtomicU64,
    /// The topics the backend was last told of; `None` while a thread is telling it of
    /// changes (see [`Hub::tell_backend`]).
    told: Mutex<Option<HashSet<Arc<str>>>>,
}

#[derive(Default)]
struct State {
    /// Every member: its session and the topics it is in.
    members: HashMap<u64, MemberEntry>,
    /// Every topic with at least one member on this node: the member ids.
    topics: HashMap<Arc<str>, HashSet<u64>>,
    /// Topics that gained their first member or lost their last since the backend was
    /// last told: at most one entry per topic.
    changed: HashSet<Arc<str>>,
}

struct MemberEntry {
    sender: SessionSender,
    topics: HashSet<Arc<str>>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock can leave the state half-updated, so a panic elsewhere
        // while it was held does not make it unusable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the backend of the topics that gained their first member or lost their last,
    /// with no lock of the hub held: its calls may wake tasks that read the hub (Redis's
    /// subscribing task reads the topics), or call back into it themselves.
    ///
    /// One thread tells it at a time, so its calls never overlap and a topic's calls
    /// alternate. A thread that finds another telling leaves its change to that one, which
    /// looks for changes until it finds none (under steady churn of topics on other
    /// threads, that may take a while: each call is the backend's, and short). Each topic
    /// is told its state when it is told, not every join and leave in between, but a
    /// topic that went and came back since it was last told gets both calls.
    fn tell_backend(&self) {
        let Some(told) = self.told().take() else {
            return;
        };
        // Handed back should anything below unwind (a logger that panics), or no change
        // would ever be told again.
        let mut telling = Telling {
            hub: self,
            told: Some(told),
        };
        loop {
            let changes: Vec<(Arc<str>, bool)> = {
                let mut state = self.lock();
                if state.changed.is_empty() {
                    // Handed back under the hub's lock: a change made after this look
                    // finds it there, and its thread tells it.
                    *self.told() = telling.told.take();
                    return;
                }
                let state = &mut *state;
                let topics = &state.topics;
                state
                    .changed
                    .drain()
                    .map(|topic| {
                        let on = topics.contains_key(&topic);
                        (topic, on)
                    })
                    .collect()
            };
            let told = telling.told.get_or_insert_with(HashSet::new);
            for (topic, on) in changes {
                let was = if on {
                    !told.insert(topic.clone())
                } else {
                    told.remove(&topic)
                };
                if was == on {
                    // Back where it was when last told, after going the other way in
                    // between: both calls, so that a backend that read the topics
                    // meanwhile (Redis's, woken by another topic's call) reads them again.
                    self.call(&topic, !on);
                }
                self.call(&topic, on);
            }
        }
    }

    /// Tells the backend that `topic` gained its first member (`subscribe`) or lost its
    /// last. A panic in the backend is logged and taken as the call made: it must neither
    /// leave other topics untold nor surface in whichever join, leave or drop happens to
    /// be telling (a member dropped while its task unwinds, say).
    fn call(&self, topic: &str, subscribe: bool) {
        let backend = &*self.backend;
        let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if subscribe {
                backend.subscribe(topic);
            } else {
                backend.unsubscribe(topic);
            }
        }));
        if let Err(payload) = called {
            // Not dropped: a payload whose drop panics in turn would unwind from here.
            std::mem::forget(payload);
            let call = if subscribe {
                "subscribe"
            } else {
                "unsubscribe"
            };
            // Caught too: a logger that panics would otherwise leave the rest of the
            // teller's batch untold (drained from `changed`, never called).
            let logged = std::panic::catch_unwind(|| {
                tracing::error!(topic, call, "broadcast: the backend panicked");
            });
            if let Err(payload) = logged {
                std::mem::forget(payload);
            }
        }
    }

    /// The topics the backend was last told of (`None` while a thread tells it). Taken
    /// alone, or under the hub's lock, never the other way round.
    fn told(&self) -> MutexGuard<'_, Option<HashSet<Arc<str>>>> {
        self.told.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `text` to this node's members of `target` and, if `publish`, hands it to the
    /// backend for the other nodes, under the same lock: two publications racing on this
    /// node reach the backend in the order its own members got them. Returns how many
    /// members on this node got it.
    ///
    /// The tasks the sends give work (the members' connections) are woken once the lock is
    /// released: one woken under it that publishes in turn would wait for it.
    fn deliver(&self, target: Target<'_>, text: &str, publish: bool) -> usize {
        // Woken on the way out of a panic too (one in `Backend::publish`): the members
        // were given the message already.
        let mut wake = WakeOnDrop(Wakers::default());
        self.deliver_locked(target, text, publish, &mut wake.0)
    }

    /// [`deliver`](Hub::deliver) under the lock, the tasks to wake left in `wake`.
    fn deliver_locked(
        &self,
        target: Target<'_>,
        text: &str,
        publish: bool,
        wake: &mut Wakers,
    ) -> usize {
        let state = self.lock();
        let mut delivered = 0;
        let mut send = |entry: &MemberEntry| match entry.sender.try_send_into(text, wake) {
            Ok(()) => delivered += 1,
            Err(crate::SendError::QueueFull) => {
                tracing::debug!(
                    session = entry.sender.id(),
                    "broadcast: queue full, message dropped"
                );
            }
            Err(_) => {}
        };
        match target {
            Target::All => state.members.values().for_each(&mut send),
            Target::Topic(topic) => {
                if let Some(ids) = state.topics.get(topic) {
                    ids.iter()
                        .filter_map(|id| state.members.get(id))
                        .for_each(&mut send);
                }
            }
        }
        if publish {
            // `Backend::publish` never blocks (its contract), so it may run under the lock.
            self.backend.publish(target, text);
        }
        delivered
    }
}

/// Tasks to wake, woken when it is dropped (after the hub's lock, which is taken after it).
struct WakeOnDrop(Wakers);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        wake_all(std::mem::take(&mut self.0));
    }
}

/// The topics told to the backend, held by the thread telling it, and handed back to the
/// hub should that thread unwind.
struct Telling<'a> {
    hub: &'a Hub,
    told: Option<HashSet<Arc<str>>>,
}

impl Drop for Telling<'_> {
    fn drop(&mut self) {
        if let Some(told) = self.told.take() {
            *self.hub.told() = Some(told);
        }
    }
}

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let connected = self.hub.backend.is_connected();
        let state = self.hub.lock();
        f.debug_struct("Broadcast")
            .field("members", &state.members.len())
            .field("topics", &state.topics.len())
            .field("connected", &connected)
            .finish_non_exhaustive()
    }
}

impl Default for Broadcast {
    fn default() -> Broadcast {
        Broadcast::new()
    }
}

impl Broadcast {
    /// An in-process hub: messages reach the members on this node only.
    pub fn new() -> Broadcast {
        Broadcast::with_backend(LocalOnly)
    }

    /// A hub whose messages also reach the members on every other node through `backend`.
    ///
    /// Calls [`Backend::start`], which for a backend with tasks (Redis) spawns them.
    pub fn with_backend(backend: impl Backend) -> Broadcast {
        let hub = Arc::new(Hub {
            state: Mutex::new(State::default()),
            backend: Box::new(backend),
            next_member: AtomicU64::new(1),
            told: Mutex::new(Some(HashSet::new())),
        });
        hub.backend.start(Inbox {
            hub: Arc::downgrade(&hub),
        });
        Broadcast { hub }
    }

    /// Registers a session (from [`Session::sender`](crate::driver::Session::sender)) with the hub:
    /// it then gets [`publish_all`](Broadcast::publish_all) messages, and joins topics
    /// through the returned [`Member`]. Dropping the `Member` unregisters the session.
    pub fn member(&self, session: SessionSender) -> Member {
        let id = self.hub.next_member.fetch_add(1, Ordering::Relaxed);
        self.hub.lock().members.insert(
            id,
            MemberEntry {
                sender: session,
                topics: HashSet::new(),
            },
        );
        Member {
            hub: self.hub.clone(),
            id,
        }
    }

    /// Sends `text` to every member of `topic` on every node. Returns how many members on
    /// this node got it (those on other nodes are not counted).
    pub fn publish(&self, topic: &str, text: &str) -> usize {
        self.send(Target::Topic(topic), text)
    }

    /// Sends `text` to every member on every node. Returns how many members on this node
    /// got it.
    pub fn publish_all(&self, text: &str) -> usize {
        self.send(Target::All, text)
    }

    /// Sends to a [`Target`]: [`publish`](Broadcast::publish) or
    /// [`publish_all`](Broadcast::publish_all).
    pub fn send(&self, target: Target<'_>, text: &str) -> usize {
        self.hub.deliver(target, text, true)
    }

    /// Members on this node.
    pub fn len(&self) -> usize {
        self.hub.lock().members.len()
    }

    /// Whether this node has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Members of `topic` on this node.
    pub fn topic_len(&self, topic: &str) -> usize {
        self.hub.lock().topics.get(topic).map_or(0, HashSet::len)
    }

    /// The topics with at least one member on this node.
    pub fn topics(&self) -> Vec<String> {
        self.hub
            .lock()
            .topics
            .keys()
            .map(|t| String::from(&**t))
            .collect()
    }

    /// Whether messages currently reach the other nodes: always `true` in process; for
    /// Redis, whether both of its connections are up.
    pub fn is_connected(&self) -> bool {
        self.hub.backend.is_connected()
    }

    /// Messages published on this node that never reached the other nodes so far (their
    /// members here got them): `0` in process; for Redis, those published while its
    /// connection was down or its queue full, those it refused, and those still queued when
    /// the hub was dropped. A counter for monitoring; each loss is also logged.
    pub fn dropped(&self) -> u64 {
        self.hub.backend.dropped()
    }
}

/// One session's registration with a [`Broadcast`]: joins and leaves topics. Dropping it
/// leaves every topic and unregisters the session.
pub struct Member {
    hub: Arc<Hub>,
    id: u64,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.id)
            .field("topics", &self.topics())
            .finish()
    }
}

impl Member {
    /// Joins `topic`; returns `false` if already a member.
    pub fn join(&self, topic: &str) -> bool {
        let first = {
            let mut state = self.hub.lock();
            let state = &mut *state;
            let Some(entry) = state.members.get_mut(&self.id) else {
                return false;
            };
            if entry.topics.contains(topic) {
                return false;
            }
            let (key, first) = match state.topics.get_key_value(topic) {
                Some((key, _)) => (key.clone(), false),
                None => {
                    let key: Arc<str> = Arc::from(topic);
                    state.topics.insert(key.clone(), HashSet::new());
                    state.changed.insert(key.clone());
                    (key, true)
                }
            };
            if let Some(ids) = state.topics.get_mut(&key) {
                ids.insert(self.id);
            }
            entry.topics.insert(key);
            first
        };
        if first {
            self.hub.tell_backend();
        }
        true
    }

    /// Leaves `topic`; returns `false` if not a member.
    pub fn leave(&self, topic: &str) -> bool {
        let last = {
            let mut state = self.hub.lock();
            let state = &mut *state;
            let Some(entry) = state.members.get_mut(&self.id) else {
                return false;
            };
            if !entry.topics.remove(topic) {
                return false;
            }
            remove_from_topic(state, topic, self.id)
        };
        if last {
            self.hub.tell_backend();
        }
        true
    }

    /// Whether this member is in `topic`.
    pub fn is_in(&self, topic: &str) -> bool {
        self.hub
            .lock()
            .members
            .get(&self.id)
            .is_some_and(|e| e.topics.contains(topic))
    }

    /// The topics this member is in.
    pub fn topics(&self) -> Vec<String> {
        self.hub
            .lock()
            .members
            .get(&self.id)
            .map(|e| e.topics.iter().map(|t| String::from(&**t)).collect())
            .unwrap_or_default()
    }

    /// The session this member sends to.
    pub fn session(&self) -> Option<SessionSender> {
        self.hub
            .lock()
            .members
            .get(&self.id)
            .map(|e| e.sender.clone())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let (entry, last) = {
            let mut state = self.hub.lock();
            let state = &mut *state;
            let entry = state.members.remove(&self.id);
            let mut last = false;
            if let Some(entry) = &entry {
                for topic in &entry.topics {
                    last |= remove_from_topic(state, topic, self.id);
                }
            }
            (entry, last)
        };
        // Its sender may be the session's last handle, whose drop closes the session (and
        // wakes its tasks): not under the hub's lock.
        drop(entry);
        if last {
            self.hub.tell_backend();
        }
    }
}

/// Takes member `id` out of `topic`; `true` if it was the last (the topic is gone, and
/// marked for the backend).
fn remove_from_topic(state: &mut State, topic: &str, id: u64) -> bool {
    let Some(ids) = state.topics.get_mut(topic) else {
        return false;
    };
    ids.remove(&id);
    if !ids.is_empty() {
        return false;
    }
    if let Some((key, _)) = state.topics.remove_entry(topic) {
        state.changed.insert(key);
    }
    true
}

/// A backend's way back into its [`Broadcast`]: delivers messages that other nodes
/// published. Holds the hub weakly, so it does not keep it alive.
#[derive(Clone)]
pub struct Inbox {
    hub: Weak<Hub>,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl Inbox {
    /// Delivers a message from another node to this node's members (without publishing it
    /// again). Returns how many got it; 0 once the hub is gone.
    pub fn deliver(&self, target: Target<'_>, text: &str) -> usize {
        self.hub
            .upgrade()
            .map_or(0, |hub| hub.deliver(target, text, false))
    }

    /// The topics with at least one member on this node: what the backend should be
    /// subscribed to (after a reconnect, say).
    pub fn topics(&self) -> Vec<String> {
        self.hub.upgrade().map_or_else(Vec::new, |hub| {
            hub.lock()
                .topics
                .keys()
                .map(|t| String::from(&**t))
                .collect()
        })
    }

    /// Whether the hub still exists (a clone of its [`Broadcast`], or one of its
    /// [`Member`]s, which keep it); a backend's tasks stop once it is gone.
    pub fn is_alive(&self) -> bool {
        self.hub.strong_count() > 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, TryLockError};
    use std::task::{Context, Wake, Waker};

    use bytes::Bytes;

    use super::{Broadcast, Hub};
    use crate::Options;
    use crate::driver::exchange::Exchange;
    use crate::driver::runtime::inert::Inert;
    use crate::driver::{Config, Service, Session, SessionSender, TryNext};

    /// A waker that counts its wakes, and those that came while the hub's lock was held.
    struct HubFree {
        hub: Arc<Hub>,
        wakes: AtomicUsize,
        under_lock: AtomicUsize,
    }

    impl HubFree {
        fn new(broadcast: &Broadcast) -> Arc<HubFree> {
            Arc::new(HubFree {
                hub: broadcast.hub.clone(),
                wakes: AtomicUsize::new(0),
                under_lock: AtomicUsize::new(0),
            })
        }
    }

    /// Session `id` on a [`keeping_service`], with its xhr_streaming receiver read past
    /// what it has written so far.
    fn streaming_session(id: &str) -> (Service, Exchange, Session) {
        let (service, kept) = keeping_service();
        let stream = http::Request::post(format!("/000/{id}/xhr_streaming"))
            .body(Bytes::new())
            .expect("request");
        let mut stream = service.submit(stream);
        while let TryNext::Item(_) = stream.try_next() {}
        let session = kept.lock().expect("unpoisoned").pop().expect("opened");
        (service, stream, session)
    }

    impl Wake for HubFree {
        fn wake(self: Arc<Self>) {
            if matches!(self.hub.state.try_lock(), Err(TryLockError::WouldBlock)) {
                self.under_lock.fetch_add(1, Ordering::AcqRel);
            }
            self.wakes.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A delivery wakes its members' connections once the hub's lock is released, and so
    /// does a member whose drop closes its session (its sender the last handle): a task
    /// woken under it that publishes in turn would wait for it.
    #[test]
    fn the_hub_wakes_no_task_under_its_lock() {
        let (_service, mut stream, session) = streaming_session("s");
        let broadcast = Broadcast::new();
        let member = broadcast.member(session.sender());
        drop(session);

        let checker = HubFree::new(&broadcast);
        let waker = Waker::from(checker.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(stream.poll_next(&mut cx).is_pending());
        assert_eq!(broadcast.publish_all("m"), 1);
        assert_eq!(
            checker.wakes.load(Ordering::Acquire),
            1,
            "given the message"
        );
        while let TryNext::Item(_) = stream.try_next() {}
        assert!(stream.poll_next(&mut cx).is_pending());
        drop(member);
        assert_eq!(checker.wakes.load(Ordering::Acquire), 2, "given the close");
        assert_eq!(checker.under_lock.load(Ordering::Acquire), 0);
    }

    /// A backend whose `publish` panics.
    struct Panicking;

    impl super::Backend for Panicking {
        fn start(&self, _inbox: super::Inbox) {}
        fn publish(&self, _target: super::Target<'_>, _text: &str) {
            panic!("a backend bug");
        }
        fn subscribe(&self, _topic: &str) {}
        fn unsubscribe(&self, _topic: &str) {}
    }

    /// A panic in `Backend::publish` reaches the publishing task, but the members on this
    /// node, given the message already, have their connections woken all the same.
    #[test]
    fn a_panic_in_publish_still_wakes_the_members_given_the_message() {
        let (_service, mut stream, session) = streaming_session("p");
        let broadcast = Broadcast::with_backend(Panicking);
        let _member = broadcast.member(session.sender());
        let checker = HubFree::new(&broadcast);
        let waker = Waker::from(checker.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(stream.poll_next(&mut cx).is_pending());
        let published =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| broadcast.publish_all("m")));
        assert!(published.is_err(), "the panic reaches the publisher");
        assert_eq!(
            checker.wakes.load(Ordering::Acquire),
            1,
            "woken all the same"
        );
        assert_eq!(checker.under_lock.load(Ordering::Acquire), 0);
        assert!(
            matches!(stream.try_next(), TryNext::Item(_)),
            "given the message"
        );
    }

    /// A service on one shard whose handler keeps every session it is given.
    fn keeping_service() -> (Service, Arc<Mutex<Vec<Session>>>) {
        let kept = Arc::new(Mutex::new(Vec::<Session>::new()));
        let keep = kept.clone();
        let config = Config {
            shards: 1,
            ..Config::default()
        };
        let service = Service::new(Options::default(), config, Arc::new(Inert), move |s| {
            keep.lock().expect("unpoisoned").push(s);
            async {}
        })
        .expect("service");
        (service, kept)
    }

    /// `n` sessions' senders, from sessions opened on a [`keeping_service`] (kept open).
    fn senders(n: usize) -> (Service, Arc<Mutex<Vec<Session>>>, Vec<SessionSender>) {
        let (service, kept) = keeping_service();
        for k in 0..n {
            let open = http::Request::post(format!("/000/s{k}/xhr"))
                .body(Bytes::new())
                .expect("request");
            let mut open = service.submit(open);
            while let TryNext::Item(_) = open.try_next() {}
        }
        let senders = kept
            .lock()
            .expect("unpoisoned")
            .iter()
            .map(Session::sender)
            .collect();
        (service, kept, senders)
    }

    /// What a backend was told, checked as it was told: whether the hub's lock was held,
    /// whether two calls overlapped, whether a topic's calls alternated.
    #[derive(Default)]
    struct Told {
        hub: Mutex<Option<super::Inbox>>,
        subscribed: Mutex<HashSet<String>>,
        calls: AtomicUsize,
        under_lock: AtomicUsize,
        overlapped: AtomicUsize,
        out_of_turn: AtomicUsize,
        busy: std::sync::atomic::AtomicBool,
        /// What `Inbox::topics` said during each call (read back into the hub).
        seen: Mutex<Vec<Vec<String>>>,
    }

    struct Teller(Arc<Told>);

    impl Teller {
        fn call(&self, topic: &str, on: bool) {
            let told = &self.0;
            if told.busy.swap(true, Ordering::AcqRel) {
                told.overlapped.fetch_add(1, Ordering::AcqRel);
            }
            told.calls.fetch_add(1, Ordering::AcqRel);
            // A call that takes a while, so that other threads change topics meanwhile.
            std::thread::yield_now();
            let inbox = told.hub.lock().expect("unpoisoned").clone();
            if let Some(inbox) = inbox {
                let hub = inbox.hub.upgrade().expect("alive");
                if matches!(hub.state.try_lock(), Err(TryLockError::WouldBlock)) {
                    told.under_lock.fetch_add(1, Ordering::AcqRel);
                } else {
                    // Calls back into the hub: a deadlock if its lock were held.
                    let mut topics = inbox.topics();
                    topics.sort();
                    told.seen.lock().expect("unpoisoned").push(topics);
                }
            }
            let mut subscribed = told.subscribed.lock().expect("unpoisoned");
            let changed = if on {
                subscribed.insert(topic.to_owned())
            } else {
                subscribed.remove(topic)
            };
            if !changed {
                told.out_of_turn.fetch_add(1, Ordering::AcqRel);
            }
            drop(subscribed);
            told.busy.store(false, Ordering::Release);
        }
    }

    impl super::Backend for Teller {
        fn start(&self, inbox: super::Inbox) {
            *self.0.hub.lock().expect("unpoisoned") = Some(inbox);
        }
        fn publish(&self, _target: super::Target<'_>, _text: &str) {}
        fn subscribe(&self, topic: &str) {
            self.call(topic, true);
        }
        fn unsubscribe(&self, topic: &str) {
            self.call(topic, false);
        }
    }

    /// A topic's first join, last leave and its last member's drop are told to the backend
    /// with the hub's lock released, so that the backend may read the hub back (Redis's
    /// subscribing task, woken by the call, reads the topics).
    #[test]
    fn the_backend_is_told_of_topics_outside_the_hubs_lock() {
        let (_service, _kept, senders) = senders(2);
        let told = Arc::new(Told::default());
        let broadcast = Broadcast::with_backend(Teller(told.clone()));
        let ann = broadcast.member(senders[0].clone());
        let bob = broadcast.member(senders[1].clone());
        assert!(ann.join("red"));
        assert!(bob.join("red"));
        assert!(bob.join("blue"));
        assert!(ann.leave("red"));
        assert!(bob.leave("red"));
        drop(bob);
        assert_eq!(told.calls.load(Ordering::Acquire), 4);
        assert_eq!(told.under_lock.load(Ordering::Acquire), 0);
        assert_eq!(
            *told.seen.lock().expect("unpoisoned"),
            [
                vec!["red"],
                vec!["blue", "red"],
                vec!["blue"],
                Vec::<&str>::new()
            ]
        );
        assert!(told.subscribed.lock().expect("unpoisoned").is_empty());
        assert_eq!(told.out_of_turn.load(Ordering::Acquire), 0);
        drop(ann);
    }

    /// Joins, leaves and drops racing on several threads over a few topics: the backend's
    /// calls never overlap, each topic's alternate, and once they stop, the backend was
    /// last told exactly the hub's topics.
    #[test]
    fn racing_joins_and_leaves_leave_the_backend_told_the_hubs_topics() {
        let (_service, _kept, senders) = senders(8);
        let told = Arc::new(Told::default());
        let broadcast = Broadcast::with_backend(Teller(told.clone()));
        let threads: Vec<_> = senders
            .into_iter()
            .enumerate()
            .map(|(k, sender)| {
                let broadcast = broadcast.clone();
                std::thread::spawn(move || {
                    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (k as u64 + 1);
                    let mut member = broadcast.member(sender.clone());
                    for _ in 0..5_000 {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let topic = ["a", "b", "c"][(seed % 3) as usize];
                        match (seed >> 8) % 8 {
                            0 => member = broadcast.member(sender.clone()),
                            1..=3 => {
                                member.leave(topic);
                            }
                            _ => {
                                member.join(topic);
                            }
                        }
                    }
                    // Half the members stay, in whatever topics they are.
                    (k % 2 == 0).then_some(member)
                })
            })
            .collect();
        let members: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("no panic"))
            .collect();
        assert_eq!(told.overlapped.load(Ordering::Acquire), 0);
        // (Whether the lock was held is not asked here: other threads hold it by right.)
        assert_eq!(told.out_of_turn.load(Ordering::Acquire), 0);
        assert!(
            broadcast.hub.lock().changed.is_empty(),
            "a change left untold"
        );
        assert!(told.calls.load(Ordering::Acquire) > 0);
        let mut subscribed: Vec<String> = told
            .subscribed
            .lock()
            .expect("unpoisoned")
            .iter()
            .cloned()
            .collect();
        subscribed.sort();
        let mut topics = broadcast.topics();
        topics.sort();
        assert_eq!(subscribed, topics);
        drop(members);
        assert!(told.subscribed.lock().expect("unpoisoned").is_empty());
        assert!(broadcast.topics().is_empty());
    }

    /// A backend that logs its calls (`+topic`, `-topic`), panics on topic `boom`, and
    /// runs a hook, once, inside its first `subscribe` of topic `y`: what other tasks do
    /// while a thread tells it.
    #[derive(Clone, Default)]
    struct Scripted {
        log: Arc<Mutex<Vec<String>>>,
        hook: Arc<Mutex<Option<Hook>>>,
    }

    type Hook = Box<dyn FnOnce() + Send>;

    impl Scripted {
        fn log(&self) -> Vec<String> {
            self.log.lock().expect("unpoisoned").clone()
        }
    }

    impl super::Backend for Scripted {
        fn start(&self, _inbox: super::Inbox) {}
        fn publish(&self, _target: super::Target<'_>, _text: &str) {}
        fn subscribe(&self, topic: &str) {
            assert_ne!(topic, "boom", "the backend's own failure");
            self.log
                .lock()
                .expect("unpoisoned")
                .push(format!("+{topic}"));
            if topic == "y" {
                let hook = self.hook.lock().expect("unpoisoned").take();
                if let Some(hook) = hook {
                    hook();
                }
            }
        }
        fn unsubscribe(&self, topic: &str) {
            self.log
                .lock()
                .expect("unpoisoned")
                .push(format!("-{topic}"));
        }
    }

    /// While a thread tells the backend of `y`, `x` loses its last member and gets it back,
    /// `z` gets its first and loses it, and `boom` and `red` get their first: `x` and `z`
    /// each get both calls (a backend that read the topics in between, as Redis's does,
    /// must read them again), `boom`'s panic is logged, not raised in the join that was
    /// telling, and leaves `red` told all the same.
    #[test]
    fn changes_made_while_telling_are_told_and_a_panic_in_the_backend_loses_none() {
        let (_service, _kept, senders) = senders(2);
        let backend = Scripted::default();
        let broadcast = Broadcast::with_backend(backend.clone());
        let ann = broadcast.member(senders[0].clone());
        let bob = Arc::new(broadcast.member(senders[1].clone()));
        assert!(bob.join("x"));
        let hooked = bob.clone();
        *backend.hook.lock().expect("unpoisoned") = Some(Box::new(move || {
            assert!(hooked.leave("x"));
            assert!(hooked.join("x"));
            assert!(hooked.join("z"));
            assert!(hooked.leave("z"));
            assert!(hooked.join("boom"));
            assert!(hooked.join("red"));
        }));
        assert!(ann.join("y"), "the panic stayed in the backend");
        // The hook's changes come in one batch, in no particular order between topics but
        // in order for each.
        let of = |topic: &str| -> Vec<String> {
            let calls = backend.log().into_iter();
            calls.filter(|call| &call[1..] == topic).collect()
        };
        assert_eq!(of("x"), ["+x", "-x", "+x"]);
        assert_eq!(of("y"), ["+y"]);
        assert_eq!(of("z"), ["+z", "-z"]);
        assert_eq!(of("red"), ["+red"]);
        assert_eq!(backend.log().len(), 7);
        assert!(bob.leave("boom"));
        assert!(ann.join("blue"));
        assert_eq!(backend.log()[7..], ["-boom", "+blue"]);
        let mut topics = broadcast.topics();
        topics.sort();
        assert_eq!(topics, ["blue", "red", "x", "y"]);
    }

    /// A logger whose every event panics.
    struct PanickingLogger;

    impl tracing::Subscriber for PanickingLogger {
        fn enabled(&self, _metadata: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}
        fn event(&self, _event: &tracing::Event<'_>) {
            panic!("a logger bug");
        }
        fn enter(&self, _span: &tracing::span::Id) {}
        fn exit(&self, _span: &tracing::span::Id) {}
    }

    /// A logger that panics while the teller logs the backend's panic (on `boom`) neither
    /// surfaces in the join that was telling nor leaves the rest of its batch (`red`, in
    /// the same batch) untold.
    #[test]
    fn a_logger_that_panics_on_a_backends_panic_loses_no_change() {
        let (_service, _kept, senders) = senders(2);
        let backend = Scripted::default();
        let broadcast = Broadcast::with_backend(backend.clone());
        let ann = broadcast.member(senders[0].clone());
        let bob = Arc::new(broadcast.member(senders[1].clone()));
        let hooked = bob.clone();
        *backend.hook.lock().expect("unpoisoned") = Some(Box::new(move || {
            assert!(hooked.join("boom"));
            assert!(hooked.join("red"));
        }));
        let joined = tracing::subscriber::with_default(PanickingLogger, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ann.join("y")))
        });
        assert!(
            matches!(joined, Ok(true)),
            "the logger's panic stayed in the teller"
        );
        assert_eq!(backend.log(), ["+y", "+red"]);
        assert!(bob.join("blue"), "the teller was handed back");
        assert_eq!(backend.log()[2..], ["+blue"]);
    }
}
