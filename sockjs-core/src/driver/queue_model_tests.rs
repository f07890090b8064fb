//! Model-based property tests of the connection queue: random sequences of pushes (of
//! every kind of item, with weights up to past the byte bound, under the case's bounds or
//! others), receives, polls for items and for room with counting wakers, forgets,
//! `wake_all`, kill and drops, checked after every step against a `VecDeque` and a few
//! counters written from the documented contract (the module's, [`Sender::push`]'s,
//! [`Watch::poll_room`]'s, and [`Config::max_connection_queue`] /
//! [`Config::max_connection_queue_bytes`]'s).
//!
//! [`Config::max_connection_queue`]: crate::driver::Config::max_connection_queue
//! [`Config::max_connection_queue_bytes`]: crate::driver::Config::max_connection_queue_bytes

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use super::*;
use crate::Handshake;

/// Room futures the sequences poll (each with its own slot).
const FUTURES: usize = 3;
/// Counting wakers the sequences poll with.
const WAKERS: usize = 5;

/// A waker that counts its wakes.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

pub(super) struct Wakers {
    counts: Vec<Arc<Count>>,
    wakers: Vec<Waker>,
}

impl Wakers {
    pub(super) fn new(n: usize) -> Self {
        let counts: Vec<Arc<Count>> = (0..n).map(|_| Arc::new(Count::default())).collect();
        let wakers = counts.iter().map(|c| Waker::from(c.clone())).collect();
        Wakers { counts, wakers }
    }

    pub(super) fn cx(&self, n: usize) -> Context<'_> {
        Context::from_waker(&self.wakers[n])
    }

    pub(super) fn wakes(&self) -> Vec<usize> {
        self.counts
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .collect()
    }
}

/// What tells an item apart from every other one in a sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    Response(Option<String>, Bytes),
    Head(Option<String>),
    Chunk(Bytes),
    End,
    Upgrade(Option<String>),
    Text(String),
    Ping,
    Close(u16, Box<str>),
}

fn serial_of(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("x-serial")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn key(content: &Content) -> Key {
    match content {
        Content::Response(r) => Key::Response(serial_of(r.headers()), r.body().clone()),
        Content::StreamStart(r) => Key::Head(serial_of(r.headers())),
        Content::Chunk(d) => Key::Chunk(d.clone()),
        Content::StreamEnd => Key::End,
        Content::Upgrade { response, .. } => Key::Upgrade(serial_of(response.headers())),
        Content::WsText(t) => Key::Text(t.clone()),
        Content::WsPing => Key::Ping,
        Content::WsClose { code, reason } => Key::Close(*code, reason.clone()),
    }
}

/// `len` bytes that spell `serial` over and over.
fn fill(serial: usize, len: usize) -> String {
    format!("{serial}.").chars().cycle().take(len).collect()
}

fn head(serial: usize) -> http::response::Builder {
    http::Response::builder().header("x-serial", serial)
}

/// An item of `kind`, number `serial`, carrying `weight` bytes if it carries any, and the
/// bytes it counts for: what it carries, a head nothing ([`weight`]'s doc).
fn item(kind: u8, weight: usize, serial: usize) -> (Content, usize) {
    let text = fill(serial, weight);
    match kind % 8 {
        0 => (Content::Chunk(Bytes::from(text)), weight),
        1 => (Content::WsText(text), weight),
        2 => (
            Content::WsClose {
                code: u16::try_from(serial).expect("few items"),
                reason: text.into(),
            },
            weight,
        ),
        3 => (
            Content::Response(Box::new(
                head(serial).body(Bytes::from(text)).expect("a response"),
            )),
            weight,
        ),
        4 => (
            Content::StreamStart(Box::new(head(serial).body(()).expect("a head"))),
            0,
        ),
        5 => (
            Content::Upgrade {
                response: Box::new(head(serial).body(()).expect("a head")),
                handshake: Handshake::Rfc6455 { deflate: None },
            },
            0,
        ),
        6 => (Content::StreamEnd, 0),
        _ => (Content::WsPing, 0),
    }
}

/// What a receive found.
#[derive(Debug, PartialEq, Eq)]
enum Taken {
    Item(Key),
    Empty,
    Ended,
}

impl From<TryRecv> for Taken {
    fn from(found: TryRecv) -> Self {
        match found {
            TryRecv::Item(c) => Taken::Item(key(&c)),
            TryRecv::Empty => Taken::Empty,
            TryRecv::Ended => Taken::Ended,
        }
    }
}

/// The documented queue.
struct Model {
    /// The bounds every room waiter waits under (the shard passes its connection bounds,
    /// the same for every sender).
    bounds: (usize, usize),
    items: VecDeque<(Key, usize)>,
    bytes: usize,
    ended: bool,
    killed: bool,
    gone: bool,
    /// The consumer has taken an item.
    taken: bool,
    /// The waker of the consumer's last pending poll ("one waker slot").
    rx_waker: Option<usize>,
    /// Each room future's registration: its waker, and the bytes it waits to send.
    room: [Option<(usize, usize)>; FUTURES],
    /// The fill in bytes at or below which room waiters are woken: where the message of
    /// the one that needs least fits, over the registrations since the room was last
    /// empty (a waiter that stopped waiting may leave it higher: an early wake-up, never
    /// a missed one).
    low_bytes: usize,
    wakes: Vec<usize>,
}

impl Model {
    fn new(bounds: (usize, usize)) -> Self {
        Model {
            bounds,
            items: VecDeque::new(),
            bytes: 0,
            ended: false,
            killed: false,
            gone: false,
            taken: false,
            rx_waker: None,
            room: [None; FUTURES],
            low_bytes: 0,
            wakes: vec![0; WAKERS],
        }
    }

    fn wake_rx(&mut self) {
        if let Some(w) = self.rx_waker.take() {
            self.wakes[w] += 1;
        }
    }

    fn wake_room(&mut self) {
        for waiter in &mut self.room {
            if let Some((w, _)) = waiter.take() {
                self.wakes[w] += 1;
            }
        }
    }

    /// `Sender::push`: refused if the receiver is gone; else if the queue holds
    /// `max_items`, or holds bytes and would pass `max_bytes` once the consumer has taken
    /// an item (one larger item still fits a queue that holds no bytes, heads only
    /// included). An accepted item wakes the consumer.
    fn push(
        &mut self,
        key: Key,
        weight: usize,
        (max_items, max_bytes): (usize, usize),
    ) -> Result<(), PushError> {
        if self.gone {
            return Err(PushError::Gone);
        }
        if self.items.len() >= max_items
            || (self.taken && self.bytes > 0 && self.bytes + weight > max_bytes)
        {
            return Err(PushError::Full);
        }
        self.items.push_back((key, weight));
        self.bytes += weight;
        self.wake_rx();
        Ok(())
    }

    /// `Watch::poll_room`: at most half of the bounds in items and bytes with `more` still
    /// under the byte bound (an empty queue takes anything), or ended.
    fn has_room(&self, (max_items, max_bytes): (usize, usize), more: usize) -> bool {
        let fits = self.bytes == 0 || self.bytes + more <= max_bytes;
        (self.items.len() <= max_items / 2 && self.bytes <= max_bytes / 2 && fits)
            || self.gone
            || self.killed
            || self.ended
    }

    /// A room future that has to wait registers; the wake threshold follows.
    fn wait_room(&mut self, future: usize, waker: usize, more: usize) {
        let max_bytes = self.bounds.1;
        let low = (max_bytes / 2).min(max_bytes.saturating_sub(more));
        self.low_bytes = if self.room.iter().all(Option::is_none) {
            low
        } else {
            self.low_bytes.max(low)
        };
        self.room[future] = Some((waker, more));
    }

    /// FIFO; nothing once killed; the end after the last item once the sender is gone.
    /// Room waiters go on once the fill is down to half the items and to where the
    /// smallest waiting message fits ([`Model::wait_room`]).
    fn take(&mut self) -> Taken {
        if self.killed {
            return Taken::Ended;
        }
        match self.items.pop_front() {
            Some((key, weight)) => {
                self.taken = true;
                self.bytes -= weight;
                if self.items.len() <= self.bounds.0 / 2 && self.bytes <= self.low_bytes {
                    self.wake_room();
                }
                Taken::Item(key)
            }
            None if self.ended => Taken::Ended,
            None => Taken::Empty,
        }
    }

    fn ready(&self) -> bool {
        !self.items.is_empty() || self.ended || self.killed
    }

    /// `Sender::kill`: what it holds is dropped, the consumer sees the end; then the
    /// sender is dropped.
    fn kill(&mut self) {
        self.killed = true;
        self.items.clear();
        self.bytes = 0;
        self.wake_rx();
        self.wake_room();
        self.end();
    }

    /// The sender is dropped: the queue ends after its items; room waiters go on.
    fn end(&mut self) {
        self.ended = true;
        self.wake_rx();
        self.wake_room();
    }

    /// The receiver is dropped: later pushes fail, what was queued is dropped, room
    /// waiters go on; its own waker is dropped unwoken.
    fn gone(&mut self) {
        self.gone = true;
        self.rx_waker = None;
        self.items.clear();
        self.bytes = 0;
        self.wake_room();
    }
}

#[derive(Clone, Debug)]
enum Op {
    Push {
        kind: u8,
        weight: usize,
        /// Other bounds than the case's.
        bounds: Option<(usize, usize)>,
    },
    TryRecv,
    PollRecv(usize),
    PollReady(usize),
    PollRoom {
        future: usize,
        waker: usize,
        more: usize,
    },
    Forget {
        future: usize,
        take: bool,
    },
    WakeAll,
    Kill,
    DropSender,
    DropReceiver,
}

fn bounds() -> impl Strategy<Value = (usize, usize)> {
    (0usize..=10, 0usize..=64)
}

/// Small weights mostly, some past any byte bound.
fn weights() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0usize..=8, 1 => 0usize..=80]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => (any::<u8>(), weights(), proptest::option::weighted(0.2, bounds()))
            .prop_map(|(kind, weight, bounds)| Op::Push { kind, weight, bounds }),
        25 => Just(Op::TryRecv),
        10 => (0..WAKERS).prop_map(Op::PollRecv),
        10 => (0..WAKERS).prop_map(Op::PollReady),
        15 => (0..FUTURES, 0..WAKERS, weights())
            .prop_map(|(future, waker, more)| Op::PollRoom { future, waker, more }),
        5 => (0..FUTURES, any::<bool>()).prop_map(|(future, take)| Op::Forget { future, take }),
        3 => Just(Op::WakeAll),
        1 => Just(Op::Kill),
        1 => Just(Op::DropSender),
        1 => Just(Op::DropReceiver),
    ]
}

struct Real {
    tx: Option<Sender>,
    rx: Option<Receiver>,
    watch: Watch,
    slots: [Option<u64>; FUTURES],
}

fn apply(
    real: &mut Real,
    model: &mut Model,
    wakers: &Wakers,
    serial: usize,
    op: Op,
) -> Result<(), TestCaseError> {
    let bounds = model.bounds;
    match op {
        Op::Push {
            kind,
            weight: w,
            bounds: other,
        } => {
            let Some(tx) = &real.tx else { return Ok(()) };
            let (content, w) = item(kind, w, serial);
            prop_assert_eq!(weight(&content), w, "weight of {:?}", content);
            let at = other.unwrap_or(bounds);
            let expected = model.push(key(&content), w, at);
            prop_assert_eq!(
                tx.push_now(content, at.0, at.1),
                expected,
                "push under {:?}",
                at
            );
        }
        Op::TryRecv => {
            let Some(rx) = &real.rx else { return Ok(()) };
            prop_assert_eq!(Taken::from(rx.try_recv()), model.take());
        }
        Op::PollRecv(w) => {
            let Some(rx) = &real.rx else { return Ok(()) };
            let got = match rx.poll_recv(&mut wakers.cx(w)) {
                Poll::Ready(Some(c)) => Taken::Item(key(&c)),
                Poll::Ready(None) => Taken::Ended,
                Poll::Pending => Taken::Empty,
            };
            let expected = model.take();
            if expected == Taken::Empty {
                model.rx_waker = Some(w);
            }
            prop_assert_eq!(got, expected);
        }
        Op::PollReady(w) => {
            let Some(rx) = &real.rx else { return Ok(()) };
            let got = rx.poll_ready(&mut wakers.cx(w)).is_ready();
            let expected = model.ready();
            if !expected {
                model.rx_waker = Some(w);
            }
            prop_assert_eq!(got, expected);
        }
        Op::PollRoom {
            future,
            waker,
            more,
        } => {
            let slot = &mut real.slots[future];
            let got = real
                .watch
                .poll_room(&wakers.cx(waker), slot, bounds, more)
                .is_ready();
            let expected = model.has_room(bounds, more);
            if expected {
                model.room[future] = None;
            } else {
                model.wait_room(future, waker, more);
            }
            prop_assert_eq!(got, expected, "poll_room(more {})", more);
            prop_assert_eq!(
                slot.is_some(),
                !expected,
                "a slot is held while waiting only"
            );
        }
        Op::Forget { future, take } => {
            let slot = &mut real.slots[future];
            real.watch.forget(if take { slot.take() } else { *slot });
            model.room[future] = None;
        }
        Op::WakeAll => {
            wake_all(real.watch.take_waiters());
            model.wake_room();
        }
        Op::Kill => {
            if let Some(tx) = real.tx.take() {
                tx.kill_now();
                model.kill();
            }
        }
        Op::DropSender => {
            if real.tx.take().is_some() {
                model.end();
            }
        }
        Op::DropReceiver => {
            if real.rx.take().is_some() {
                model.gone();
            }
        }
    }
    Ok(())
}

/// The queue's whole state against the model's, and that no waiter sleeps through its
/// condition.
fn check(real: &Real, model: &Model, wakers: &Wakers) -> Result<(), TestCaseError> {
    let (items, len, bytes, flags, rx_waiting, room_empty, buffer) = {
        let st = real.watch.shared.lock();
        let items: Vec<Key> = st
            .items
            .first
            .iter()
            .chain(&st.items.rest)
            .map(key)
            .collect();
        (
            items,
            st.items.len(),
            st.bytes,
            (st.ended, st.killed, st.gone),
            st.waker.is_some(),
            st.room.is_empty(),
            st.items.holds_buffer(),
        )
    };
    let expected: Vec<Key> = model.items.iter().map(|(k, _)| k.clone()).collect();
    prop_assert_eq!(&items, &expected, "contents, in order");
    prop_assert_eq!(len, expected.len());
    prop_assert_eq!(bytes, model.bytes);
    prop_assert_eq!(real.watch.bytes(), model.bytes, "Watch::bytes");
    prop_assert_eq!(flags, (model.ended, model.killed, model.gone));
    if len <= 1 {
        prop_assert!(!buffer, "a queue of at most one item holds no buffer");
    }
    prop_assert_eq!(wakers.wakes(), model.wakes.clone(), "wakes per waker");
    prop_assert_eq!(
        rx_waiting,
        model.rx_waker.is_some(),
        "the consumer's waker slot"
    );
    prop_assert_eq!(
        room_empty,
        model.room.iter().all(Option::is_none),
        "room waiters registered"
    );
    for more in [0, 1, model.bounds.1, model.bounds.1 + 1] {
        prop_assert_eq!(
            real.watch.has_room(model.bounds, more),
            model.has_room(model.bounds, more),
            "has_room(more {})",
            more
        );
    }
    // No lost wake-up: whoever still sleeps has nothing to wake for.
    for (future, waiter) in model.room.iter().enumerate() {
        if let Some((_, more)) = waiter {
            prop_assert!(
                !real.watch.has_room(model.bounds, *more),
                "room future {} sleeps with room for {} bytes",
                future,
                more
            );
        }
    }
    if rx_waiting {
        prop_assert!(
            len == 0 && !flags.0 && !flags.1,
            "the consumer sleeps with something to take"
        );
    }
    Ok(())
}

fn run(bounds: (usize, usize), ops: Vec<Op>) -> Result<(), TestCaseError> {
    let wakers = Wakers::new(WAKERS);
    let (tx, rx) = channel();
    let mut real = Real {
        watch: tx.watch(),
        tx: Some(tx),
        rx: Some(rx),
        slots: [None; FUTURES],
    };
    let mut model = Model::new(bounds);
    check(&real, &model, &wakers)?;
    for (serial, op) in ops.into_iter().enumerate() {
        apply(&mut real, &mut model, &wakers, serial, op)?;
        check(&real, &model, &wakers)?;
    }
    // Both ends dropped: every room waiter has been woken.
    for op in [Op::DropReceiver, Op::DropSender] {
        apply(&mut real, &mut model, &wakers, 0, op)?;
        check(&real, &model, &wakers)?;
    }
    prop_assert!(model.room.iter().all(Option::is_none));
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// `Sender::push`: "Queues `item` unless the queue holds `max_items` items already, or
    /// is not empty and would pass `max_bytes` (one item larger than `max_bytes` still
    /// fits an empty queue)"; `Config::max_connection_queue` / `_bytes`: the application's
    /// sends "wait for ... room under half of it and of `max_connection_queue_bytes`";
    /// `Watch::poll_room`: "Ready once the queue holds at most half of `max_items` items
    /// and half of `max_bytes` bytes, and `more` bytes would still fit under `max_bytes`
    /// (or the queue is empty, which takes anything), or once it has ended"; the module:
    /// dropping the `Sender` ends the queue after what it holds, `kill` ends it at once,
    /// dropping the `Receiver` makes later pushes fail; one waker slot for the consumer.
    ///
    /// After every step of a random sequence: contents in FIFO order, `bytes()`, the
    /// push's answer, each poll's answer, the exact wakes of every waker, registrations
    /// (none left once woken or forgotten), and no sleeper whose condition holds.
    #[test]
    fn queue_follows_its_model(
        bounds in bounds(),
        ops in proptest::collection::vec(op(), 0..100),
    ) {
        run(bounds, ops)?;
    }
}

/// How a future is polled over and over: with which wakers, in turn.
fn pattern() -> impl Strategy<Value = (usize, Vec<usize>)> {
    (1usize..=1000, proptest::collection::vec(0..WAKERS, 1..4))
}

proptest! {
    #![proptest_config(config(24))]

    /// `waiters` (under `Watch::poll_room`): "polling it again replaces its waker instead
    /// of adding one"; `Receiver` ("one waker slot"): the consumer's polls replace its
    /// waker. A future polled up to 1,000 times, with the same waker or changing ones,
    /// holds one registration: the condition wakes only its last waker, once, and leaves
    /// nothing registered.
    #[test]
    fn repeated_polls_keep_one_registration((polls, turns) in pattern()) {
        let wakers = Wakers::new(WAKERS);
        let last = turns[(polls - 1) % turns.len()];
        let mut expected = vec![0; WAKERS];
        expected[last] = 1;

        // Room: a full queue, drained to half.
        let (tx, rx) = channel();
        let watch = tx.watch();
        let bounds = (8, 64);
        for n in 0..8 {
            prop_assert_eq!(tx.push_now(item(0, 4, n).0, bounds.0, bounds.1), Ok(()));
        }
        let mut slot = None;
        for n in 0..polls {
            let cx = wakers.cx(turns[n % turns.len()]);
            prop_assert!(watch.poll_room(&cx, &mut slot, bounds, 4).is_pending());
        }
        for _ in 0..4 {
            prop_assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
        }
        prop_assert_eq!(wakers.wakes(), expected.clone(), "room wakes");
        prop_assert!(watch.shared.lock().room.is_empty());
        prop_assert!(watch.poll_room(&wakers.cx(last), &mut slot, bounds, 4).is_ready());
        prop_assert!(slot.is_none());

        // Items: the consumer polled on an empty queue, then one push.
        for poll_ready in [false, true] {
            let wakers = Wakers::new(WAKERS);
            let (tx, rx) = channel();
            for n in 0..polls {
                let mut cx = wakers.cx(turns[n % turns.len()]);
                let pending = if poll_ready {
                    rx.poll_ready(&mut cx).is_pending()
                } else {
                    rx.poll_recv(&mut cx).is_pending()
                };
                prop_assert!(pending);
            }
            prop_assert_eq!(tx.push_now(item(1, 1, 0).0, 8, 8), Ok(()));
            prop_assert_eq!(wakers.wakes(), expected.clone(), "consumer wakes");
            prop_assert!(rx.shared.lock().waker.is_none());
        }
    }
}

/// `Sender::push`: one item larger than `max_bytes` still fits a queue that holds no
/// bytes, "an empty one, or one of heads only, which weigh nothing and count against
/// `max_items`"; `Watch::has_room` agrees; once the queue holds bytes (and its consumer
/// has begun taking), it takes no more than the bound.
#[test]
fn a_larger_item_fits_a_queue_of_heads_only_and_not_one_that_holds_bytes() {
    let (tx, rx) = channel();
    let watch = tx.watch();
    assert_eq!(tx.push_now(item(4, 0, 0).0, 8, 15), Ok(()));
    assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
    assert_eq!(tx.push_now(item(4, 0, 0).0, 8, 15), Ok(()));
    assert!(watch.has_room((8, 15), 16));
    assert_eq!(tx.push_now(item(0, 16, 1).0, 8, 15), Ok(()));
    assert!(!watch.has_room((8, 15), 1));
    assert_eq!(tx.push_now(item(0, 1, 2).0, 8, 15), Err(PushError::Full));
}

/// `Sender::push`: "Until its consumer has taken an item, the byte bound does not apply":
/// a stream's head, its prelude and a session's whole backlog, queued at once for a new
/// receiver, all go in (the item bound still holds); once the consumer has taken one, the
/// byte bound holds again, and waiting senders wait under it meanwhile.
#[test]
fn what_is_queued_before_the_first_take_is_not_held_to_the_byte_bound() {
    let (tx, rx) = channel();
    let watch = tx.watch();
    assert_eq!(tx.push_now(item(4, 0, 0).0, 4, 15), Ok(()));
    assert_eq!(tx.push_now(item(0, 10, 1).0, 4, 15), Ok(()));
    assert_eq!(tx.push_now(item(0, 40, 2).0, 4, 15), Ok(()));
    assert!(!watch.has_room((4, 15), 1));
    assert_eq!(tx.push_now(item(0, 1, 3).0, 4, 15), Ok(()));
    assert_eq!(tx.push_now(item(0, 1, 4).0, 4, 15), Err(PushError::Full));
    assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
    assert_eq!(tx.push_now(item(0, 1, 5).0, 4, 15), Err(PushError::Full));
    for _ in 0..3 {
        assert!(matches!(rx.try_recv(), TryRecv::Item(_)));
    }
    assert_eq!(tx.push_now(item(0, 16, 6).0, 4, 15), Ok(()));
    assert_eq!(tx.push_now(item(0, 1, 7).0, 4, 15), Err(PushError::Full));
}
