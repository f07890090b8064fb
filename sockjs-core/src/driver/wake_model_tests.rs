//! A property test of the driver's wake-ups: random requests on every HTTP transport,
//! sends, receives, closes, clients gone and drops over a service, with every pending poll
//! watched. A task that was not woken must find nothing new when it is polled anyway (no
//! lost wake-up), and no task is woken while a shard's lock is held.
//!
//! The runtime runs nothing (its timers never fire and its tasks are dropped), so only the
//! inputs the test gives move anything: whatever becomes ready became so through them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use crate::Options;
use crate::driver::runtime::inert::Inert;
use crate::driver::shard::Shard;
use crate::driver::{Config, Connection, ConnectionProbe, Exchange, Service, Session};

/// A waker that notes whether it was woken, and counts wakes that came while a shard's
/// lock was held.
struct Probe {
    shards: Vec<Arc<Shard>>,
    woken: AtomicBool,
    under_lock: Arc<AtomicUsize>,
}

impl Wake for Probe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.shards.iter().any(|shard| shard.is_locked()) {
            self.under_lock.fetch_add(1, Ordering::AcqRel);
        }
        self.woken.store(true, Ordering::Release);
    }
}

/// Something polled with its own [`Probe`]; `pending` while its last poll registered it.
struct Watched<T> {
    item: T,
    probe: Arc<Probe>,
    waker: Waker,
    pending: bool,
}

/// A request's exchange, the flag its connection's liveness probe reads, and what it
/// asked for.
struct Request {
    exchange: Exchange,
    gone: Arc<AtomicBool>,
    ended: bool,
    asked: (u8, u8, u8),
}

#[derive(Debug, Clone)]
enum Op {
    /// A request on one of the transports, for one of a few session ids; `probed` gives
    /// its connection a liveness probe (else the driver cannot tell its client left).
    Request {
        kind: u8,
        session: u8,
        body: u8,
        probed: bool,
    },
    /// Polls an exchange with its waker.
    Poll(usize),
    /// Takes what an exchange holds without a waker (as a connection writing several
    /// frames at once does); it is then no longer registered.
    Drain(usize),
    /// The client of an exchange's connection left (its probe says so from now on), and
    /// came back with the same request on a new connection (as a browser's next poll).
    Gone(usize, bool),
    /// The connection ended: the exchange is dropped.
    Drop(usize),
    /// The application polls a session for a message.
    Recv(usize),
    /// The application sends a message of this many bytes.
    Send(usize, u16),
    /// The application closes a session.
    Close(usize),
    /// The application drops a session.
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..7, 0u8..3, 0u8..4, any::<bool>()).prop_map(|(kind, session, body, probed)| {
            Op::Request { kind, session, body, probed }
        }),
        4 => any::<usize>().prop_map(Op::Poll),
        2 => any::<usize>().prop_map(Op::Drain),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(at, probed)| Op::Gone(at, probed)),
        1 => any::<usize>().prop_map(Op::Drop),
        3 => any::<usize>().prop_map(Op::Recv),
        3 => (any::<usize>(), 0u16..300).prop_map(|(at, len)| Op::Send(at, len)),
        1 => any::<usize>().prop_map(Op::Close),
        1 => any::<usize>().prop_map(Op::Release),
    ]
}

/// The request of `kind` for session `session`, with a body drawn from a few.
fn request(kind: u8, session: u8, body: u8) -> http::Request<Bytes> {
    let id = format!("s{session}");
    let (method, path) = match kind {
        0 => ("POST", format!("/000/{id}/xhr")),
        1 => ("POST", format!("/000/{id}/xhr_streaming")),
        2 => ("GET", format!("/000/{id}/eventsource")),
        3 => ("GET", format!("/000/{id}/htmlfile?c=cb")),
        4 => ("GET", format!("/000/{id}/jsonp?c=cb")),
        5 => ("POST", format!("/000/{id}/xhr_send")),
        _ => ("POST", format!("/000/{id}/jsonp_send")),
    };
    let body: &[u8] = match body {
        0 => b"[\"a\"]",
        1 => b"[\"b\",\"c\",\"d\"]",
        2 => b"[\"broken",
        _ => b"",
    };
    http::Request::builder()
        .method(method)
        .uri(path)
        .body(Bytes::from_static(body))
        .expect("request")
}

struct World {
    service: Service,
    kept: Arc<Mutex<Vec<Session>>>,
    shards: Vec<Arc<Shard>>,
    under_lock: Arc<AtomicUsize>,
    requests: Vec<Watched<Request>>,
    sessions: Vec<Watched<Session>>,
}

impl World {
    fn new(shards: usize) -> World {
        let options = Options {
            response_limit: 256,
            max_queued_bytes: 200,
            ..Options::default()
        };
        let config = Config {
            shards,
            max_connection_queue: 8,
            max_connection_queue_bytes: 600,
            max_session_inbound_bytes: 64,
            abort_grace: Duration::from_secs(3600),
            ..Config::default()
        };
        let kept = Arc::new(Mutex::new(Vec::new()));
        let keep = kept.clone();
        let service = Service::new(options, config, Arc::new(Inert), move |session| {
            keep.lock().expect("unpoisoned").push(session);
            async {}
        })
        .expect("service");
        let shards = service.shards().to_vec();
        World {
            service,
            kept,
            shards,
            under_lock: Arc::default(),
            requests: Vec::new(),
            sessions: Vec::new(),
        }
    }

    fn watch<T>(&self, item: T) -> Watched<T> {
        let probe = Arc::new(Probe {
            shards: self.shards.clone(),
            woken: AtomicBool::new(false),
            under_lock: self.under_lock.clone(),
        });
        Watched {
            item,
            waker: Waker::from(probe.clone()),
            probe,
            pending: false,
        }
    }

    /// Submits a request, with a liveness probe for its connection if `probed`.
    fn submit(&mut self, (kind, session, body): (u8, u8, u8), probed: bool) {
        let gone = Arc::new(AtomicBool::new(false));
        let mut connection = Connection::new();
        if probed {
            let flag = gone.clone();
            connection =
                connection.with_probe(ConnectionProbe::new(move || flag.load(Ordering::Acquire)));
        }
        let exchange = self
            .service
            .submit_on(request(kind, session, body), &connection);
        let watched = self.watch(Request {
            exchange,
            gone,
            ended: false,
            asked: (kind, session, body),
        });
        self.requests.push(watched);
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Request {
                kind,
                session,
                body,
                probed,
            } => self.submit((kind, session, body), probed),
            Op::Poll(at) => {
                if let Some(i) = pick(at, self.requests.len()) {
                    poll_request(&mut self.requests[i]);
                }
            }
            Op::Drain(at) => {
                if let Some(i) = pick(at, self.requests.len()) {
                    let request = &mut self.requests[i];
                    while let crate::driver::TryNext::Item(_) = request.item.exchange.try_next() {}
                    request.pending = false;
                }
            }
            Op::Gone(at, probed) => {
                if let Some(i) = pick(at, self.requests.len()) {
                    let request = &self.requests[i].item;
                    request.gone.store(true, Ordering::Release);
                    let asked = request.asked;
                    self.submit(asked, probed);
                }
            }
            Op::Drop(at) => {
                if let Some(i) = pick(at, self.requests.len()) {
                    drop(self.requests.swap_remove(i));
                }
            }
            Op::Recv(at) => {
                if let Some(i) = pick(at, self.sessions.len()) {
                    poll_session(&mut self.sessions[i]);
                }
            }
            Op::Send(at, len) => {
                if let Some(i) = pick(at, self.sessions.len()) {
                    let _ = self.sessions[i].item.try_send("x".repeat(usize::from(len)));
                }
            }
            Op::Close(at) => {
                if let Some(i) = pick(at, self.sessions.len()) {
                    let _ = self.sessions[i].item.close(3000, "done");
                }
            }
            Op::Release(at) => {
                if let Some(i) = pick(at, self.sessions.len()) {
                    drop(self.sessions.swap_remove(i));
                }
            }
        }
        let opened: Vec<Session> = self.kept.lock().expect("unpoisoned").drain(..).collect();
        for session in opened {
            let watched = self.watch(session);
            self.sessions.push(watched);
        }
    }

    /// Polls every registered poll that was not woken: none may find anything new.
    fn check_no_lost_wakeup(&mut self) -> Result<(), TestCaseError> {
        for (i, request) in self.requests.iter_mut().enumerate() {
            if request.pending && !request.probe.woken.load(Ordering::Acquire) {
                let ended = request.item.ended;
                let progressed = poll_request(request);
                prop_assert!(
                    !progressed,
                    "request {i} made progress without a wake (ended before: {ended})"
                );
            }
        }
        for (i, session) in self.sessions.iter_mut().enumerate() {
            if session.pending && !session.probe.woken.load(Ordering::Acquire) {
                prop_assert!(
                    !poll_session(session),
                    "session {i} had a message or its end without a wake"
                );
            }
        }
        prop_assert_eq!(
            self.under_lock.load(Ordering::Acquire),
            0,
            "a task was woken under a shard's lock"
        );
        Ok(())
    }
}

fn pick(at: usize, len: usize) -> Option<usize> {
    (len > 0).then(|| at % len)
}

/// Polls an exchange with its waker; whether it gave something (an item or its end).
fn poll_request(request: &mut Watched<Request>) -> bool {
    if request.item.ended {
        return false;
    }
    request.probe.woken.store(false, Ordering::Release);
    let mut cx = Context::from_waker(&request.waker);
    match request.item.exchange.poll_next(&mut cx) {
        Poll::Ready(Some(_)) => {
            request.pending = false;
            true
        }
        Poll::Ready(None) => {
            request.pending = false;
            request.item.ended = true;
            true
        }
        Poll::Pending => {
            request.pending = true;
            false
        }
    }
}

/// Polls a session for a message with its waker; whether it gave one or its end.
fn poll_session(session: &mut Watched<Session>) -> bool {
    session.probe.woken.store(false, Ordering::Release);
    let mut cx = Context::from_waker(&session.waker);
    match session.item.poll_recv(&mut cx) {
        Poll::Ready(_) => {
            session.pending = false;
            true
        }
        Poll::Pending => {
            session.pending = true;
            false
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No lost wake-up and no wake under a shard's lock, whatever the inputs' order.
    #[test]
    fn every_wait_is_woken_and_never_under_a_lock(
        shards in 1usize..3,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut world = World::new(shards);
        for op in ops {
            world.run(op);
            world.check_no_lost_wakeup()?;
        }
    }
}
