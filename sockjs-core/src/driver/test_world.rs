//! A service in a test harness that moves only as a test says: a runtime whose clock stands
//! still until the test moves it (then waking the timers due), in-memory sockets driven as
//! a reactor would, and every pending poll watched with a waker of its own. The wake-up
//! model test drives it with random operations; other tests with fixed ones.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use crate::driver::shard::Shard;
use crate::driver::{
    Admission, AdmissionRequest, Config, Connection, ConnectionProbe, Exchange, Runtime, Service,
    Session, Socket, Task, Timer, TryNext, WebSocket,
};
use crate::{Content, Options, Rejection};

/// A runtime whose clock moves only when the test says, whose timers complete once it
/// passes their deadline (woken then), and whose spawned tasks the test takes to run.
#[derive(Clone)]
pub(super) struct Manual(Arc<Mutex<Clock>>);

pub(super) struct Clock {
    now: std::time::Instant,
    timers: Vec<std::sync::Weak<Mutex<Deadline>>>,
    spawned: Vec<Task>,
}

/// A timer's deadline, and the task waiting for it.
pub(super) struct Deadline {
    at: std::time::Instant,
    waker: Option<Waker>,
}

impl std::fmt::Debug for Manual {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Manual")
    }
}

impl Manual {
    pub(super) fn new() -> Manual {
        Manual(Arc::new(Mutex::new(Clock {
            now: std::time::Instant::now(),
            timers: Vec::new(),
            spawned: Vec::new(),
        })))
    }

    pub(super) fn clock(&self) -> std::sync::MutexGuard<'_, Clock> {
        self.0.lock().expect("unpoisoned")
    }

    /// Moves the clock on and wakes the timers now due.
    pub(super) fn advance(&self, by: Duration) {
        let wakers: Vec<Waker> = {
            let mut clock = self.clock();
            clock.now += by;
            let now = clock.now;
            clock.timers.retain(|timer| timer.strong_count() > 0);
            clock
                .timers
                .iter()
                .filter_map(std::sync::Weak::upgrade)
                .filter_map(|timer| {
                    let mut timer = timer.lock().expect("unpoisoned");
                    if timer.at <= now {
                        timer.waker.take()
                    } else {
                        None
                    }
                })
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    pub(super) fn take_spawned(&self) -> Vec<Task> {
        std::mem::take(&mut self.clock().spawned)
    }
}

pub(super) struct ManualTimer {
    deadline: Arc<Mutex<Deadline>>,
    runtime: Manual,
}

impl Future for ManualTimer {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = self.runtime.clock().now;
        let mut deadline = self.deadline.lock().expect("unpoisoned");
        if deadline.at <= now {
            return Poll::Ready(());
        }
        deadline.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Timer for ManualTimer {
    fn reset(self: std::pin::Pin<&mut Self>, at: std::time::Instant) {
        self.deadline.lock().expect("unpoisoned").at = at;
    }
}

impl Runtime for Manual {
    fn now(&self) -> std::time::Instant {
        self.clock().now
    }

    fn wall_clock(&self) -> std::time::SystemTime {
        std::time::SystemTime::UNIX_EPOCH
    }

    fn spawn(&self, task: Task) {
        self.clock().spawned.push(task);
    }

    fn timer(&self, at: std::time::Instant) -> std::pin::Pin<Box<dyn Timer>> {
        let deadline = Arc::new(Mutex::new(Deadline { at, waker: None }));
        self.clock().timers.push(Arc::downgrade(&deadline));
        Box::pin(ManualTimer {
            deadline,
            runtime: self.clone(),
        })
    }

    fn random_seed(&self) -> u64 {
        7
    }
}

/// A waker that notes whether it was woken, and counts its wakes, everyone's, and those
/// that came while a shard's lock was held.
pub(super) struct Probe {
    pub(super) shards: Vec<Arc<Shard>>,
    pub(super) woken: AtomicBool,
    pub(super) own: AtomicUsize,
    pub(super) all: Arc<AtomicUsize>,
    pub(super) under_lock: Arc<AtomicUsize>,
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
        self.own.fetch_add(1, Ordering::AcqRel);
        self.all.fetch_add(1, Ordering::AcqRel);
    }
}

impl Probe {
    /// Wakes of tasks other than this one so far.
    pub(super) fn others(&self) -> usize {
        self.all.load(Ordering::Acquire) - self.own.load(Ordering::Acquire)
    }
}

/// Something polled with its own [`Probe`]; `pending` while its last poll registered it.
pub(super) struct Watched<T> {
    pub(super) item: T,
    pub(super) probe: Arc<Probe>,
    pub(super) waker: Waker,
    pub(super) pending: bool,
}

/// A request's exchange, the flag its connection's liveness probe reads, and what it
/// asked for.
pub(super) struct Request {
    pub(super) exchange: Exchange,
    pub(super) gone: Arc<AtomicBool>,
    pub(super) ended: bool,
    pub(super) asked: (u8, u8, u8),
}

/// One side of an in-memory connection, as a reactor would drive it: reads find what the
/// client sent, writes go to what it will read while it takes them, and a wait for either
/// is woken when that changes.
#[derive(Default)]
pub(super) struct Pipe {
    /// From the client, not yet read.
    pub(super) input: Vec<u8>,
    /// The client closed its side.
    pub(super) eof: bool,
    /// To the client.
    pub(super) output: Vec<u8>,
    /// The client stopped reading: writes would block.
    pub(super) blocked: bool,
    /// The most one write takes (the client reads slowly: writes go through in pieces).
    pub(super) piece: usize,
    pub(super) readable: Option<Waker>,
    pub(super) writable: Option<Waker>,
}

/// The server's end of a [`Pipe`].
#[derive(Clone)]
pub(super) struct PipeEnd(pub(super) Arc<Mutex<Pipe>>);

impl Default for PipeEnd {
    fn default() -> PipeEnd {
        PipeEnd(Arc::new(Mutex::new(Pipe {
            piece: usize::MAX,
            ..Pipe::default()
        })))
    }
}

impl PipeEnd {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Pipe> {
        self.0.lock().expect("unpoisoned")
    }

    /// What the client sent and what it was sent so far: what a poll changes when it does
    /// anything.
    pub(super) fn marks(&self) -> (usize, usize, bool) {
        let pipe = self.lock();
        (pipe.input.len(), pipe.output.len(), pipe.eof)
    }

    /// The client sends `bytes` (or, for `None`, closes its side).
    pub(super) fn client_sends(&self, bytes: Option<&[u8]>) {
        let waker = {
            let mut pipe = self.lock();
            match bytes {
                Some(bytes) => pipe.input.extend_from_slice(bytes),
                None => pipe.eof = true,
            }
            pipe.readable.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The client stops reading (0), reads slowly (1: each write takes a few bytes) or
    /// reads whatever comes.
    pub(super) fn client_reads(&self, pace: u8) {
        let waker = {
            let mut pipe = self.lock();
            pipe.blocked = pace == 0;
            pipe.piece = if pace == 1 { 7 } else { usize::MAX };
            if pace > 0 { pipe.writable.take() } else { None }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Socket for PipeEnd {
    fn try_read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut pipe = self.lock();
        if pipe.input.is_empty() {
            return if pipe.eof {
                Ok(0)
            } else {
                Err(std::io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(pipe.input.len());
        buf[..n].copy_from_slice(&pipe.input[..n]);
        pipe.input.drain(..n);
        Ok(n)
    }

    fn try_write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut pipe = self.lock();
        if pipe.blocked {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(pipe.piece);
        pipe.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut pipe = self.lock();
        if !pipe.input.is_empty() || pipe.eof {
            return Poll::Ready(Ok(()));
        }
        pipe.readable = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut pipe = self.lock();
        if !pipe.blocked {
            return Poll::Ready(Ok(()));
        }
        pipe.writable = Some(cx.waker().clone());
        Poll::Pending
    }

    fn shutdown(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A WebSocket's task, and the client's end of its connection.
pub(super) struct Socketed {
    pub(super) task: WebSocket<PipeEnd>,
    pub(super) pipe: PipeEnd,
    pub(super) done: bool,
    /// A hixie-76 socket: its frames are `0x00 text 0xFF`.
    pub(super) hixie: bool,
}

impl Socketed {
    /// The client's frame `kind` (as [`Op::Frame`] numbers them) in this socket's framing;
    /// `None` to close its side of the connection.
    pub(super) fn frame(&self, kind: u8) -> Option<Vec<u8>> {
        let text: &[u8] = match kind {
            0 => b"[\"w\"]",
            1 => b"[\"u\",\"v\",\"w\"]",
            2 => b"[\"broken",
            3 if !self.hixie => return Some(client_frame(0x9, b"p")),
            3 => b"[\"p\"]",
            4 if !self.hixie => return Some(client_frame(0x8, &1000u16.to_be_bytes())),
            4 => return Some(vec![0xFF, 0x00]),
            _ => return None,
        };
        if self.hixie {
            let mut frame = vec![0x00];
            frame.extend_from_slice(text);
            frame.push(0xFF);
            Some(frame)
        } else {
            Some(client_frame(0x1, text))
        }
    }
}

/// A client's masked text frame of `payload` (the mask all zeros: the bytes as they are).
pub(super) fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    match u8::try_from(payload.len()) {
        Ok(len) if len < 126 => frame.push(0x80 | len),
        _ => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(
                &u16::try_from(payload.len())
                    .unwrap_or(u16::MAX)
                    .to_be_bytes(),
            );
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

#[derive(Debug, Clone)]
pub(super) enum Op {
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
    /// A WebSocket opens for one of a few session ids, (3) a raw WebSocket, or (4) a
    /// hixie-76 one (its task polled once, as spawned).
    Upgrade(u8),
    /// Polls a WebSocket's task with its waker.
    Pump(usize),
    /// A WebSocket's client sends a frame: a message, three, broken JSON, a ping (a message
    /// on hixie-76), a close, or closes its side of the connection.
    Frame(usize, u8),
    /// A WebSocket's client stops reading, reads slowly, or reads whatever comes.
    Reads(usize, u8),
    /// A WebSocket's task is dropped (its connection ends).
    Abandon(usize),
    /// The application waits to send a message of this many bytes (`send().await`).
    SendWait(usize, u16),
    /// The application waits for room (`ready().await`).
    ReadyWait(usize),
    /// The clock moves on by one of a few steps (past the held answers' wait, the
    /// disconnect delay, a heartbeat, the write timeout), and the tasks woken run.
    Advance(u8),
    /// Every woken task runs, as an executor would run them.
    RunWoken,
}

/// The upgrade to a WebSocket for session `w{session}`, a raw one for 3, a hixie-76 one for
/// 4.
pub(super) fn upgrade_request(session: u8) -> http::Request<Bytes> {
    let path = match session {
        3 => "/websocket".to_owned(),
        _ => format!("/000/w{session}/websocket"),
    };
    let request = http::Request::get(path)
        .header("host", "localhost")
        .header("upgrade", "websocket")
        .header("connection", "Upgrade");
    let request = if session == 4 {
        request
            .header("origin", "http://localhost")
            .header("sec-websocket-key1", "4 @1  46546xW%0l 1 5")
            .header("sec-websocket-key2", "12998 5 Y3 1  .P00")
    } else {
        request
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
    };
    request.body(Bytes::new()).expect("request")
}

/// The kind of [`request`] that is a WebSocket upgrade (see [`World::upgrade`]).
pub(super) const UPGRADE: u8 = 7;

/// The request of `kind` for session `session`, with a body drawn from a few.
pub(super) fn request(kind: u8, session: u8, body: u8) -> http::Request<Bytes> {
    if kind == UPGRADE {
        return upgrade_request(session);
    }
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

pub(super) struct World {
    pub(super) service: Service,
    pub(super) kept: Arc<Mutex<Vec<Session>>>,
    pub(super) shards: Vec<Arc<Shard>>,
    pub(super) runtime: Manual,
    pub(super) all: Arc<AtomicUsize>,
    pub(super) under_lock: Arc<AtomicUsize>,
    pub(super) requests: Vec<Watched<Request>>,
    pub(super) sessions: Vec<Watched<Session>>,
    pub(super) sockets: Vec<Watched<Socketed>>,
    /// The runtime's tasks and the application's waiting sends.
    pub(super) tasks: Vec<Watched<Task>>,
}

impl World {
    pub(super) fn new(shards: usize) -> World {
        World::with(shards, Duration::from_millis(500), false)
    }

    /// A world whose send answers wait `delivery_wait` for their messages to be taken (see
    /// [`Config::delivery_wait`]), and whose sessions open only once an admission hook
    /// answered (50 ms later on the clock, refusing the ids that end in 2), if `admits`.
    pub(super) fn with(shards: usize, delivery_wait: Duration, admits: bool) -> World {
        let options = Options {
            response_limit: 256,
            max_queued_bytes: 200,
            hixie76: true,
            ..Options::default()
        };
        let config = Config {
            shards,
            max_connection_queue: 8,
            max_connection_queue_bytes: 600,
            max_session_inbound_bytes: 64,
            inbound_stall_timeout: Duration::from_millis(100),
            delivery_wait,
            abort_grace: Duration::from_millis(250),
            ..Config::default()
        };
        let kept = Arc::new(Mutex::new(Vec::new()));
        let keep = kept.clone();
        let runtime = Manual::new();
        let service = Service::new(options, config, Arc::new(runtime.clone()), move |session| {
            keep.lock().expect("unpoisoned").push(session);
            async {}
        })
        .expect("service");
        if admits {
            let clock = runtime.clone();
            let hook = Admission::new(move |request: AdmissionRequest| {
                let wait = clock.timer(clock.now() + Duration::from_millis(50));
                let refused = request.uri().path().contains("2/");
                async move {
                    wait.await;
                    if refused {
                        Err(Rejection::new(http::StatusCode::FORBIDDEN))
                    } else {
                        Ok(())
                    }
                }
            });
            assert!(service.set_admission(hook).is_ok());
        }
        let shards = service.shards().to_vec();
        World {
            service,
            kept,
            shards,
            runtime,
            all: Arc::default(),
            under_lock: Arc::default(),
            requests: Vec::new(),
            sessions: Vec::new(),
            sockets: Vec::new(),
            tasks: Vec::new(),
        }
    }

    pub(super) fn watch<T>(&self, item: T) -> Watched<T> {
        let probe = Arc::new(Probe {
            shards: self.shards.clone(),
            woken: AtomicBool::new(false),
            own: AtomicUsize::new(0),
            all: self.all.clone(),
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
    pub(super) fn submit(&mut self, (kind, session, body): (u8, u8, u8), probed: bool) {
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

    pub(super) fn run(&mut self, op: Op) {
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
            Op::Upgrade(session) => self.upgrade(session),
            Op::Pump(at) => {
                if let Some(i) = pick(at, self.sockets.len()) {
                    poll_socket(&mut self.sockets[i]);
                }
            }
            Op::Frame(at, frame) => {
                if let Some(i) = pick(at, self.sockets.len()) {
                    let socket = &self.sockets[i].item;
                    socket.pipe.client_sends(socket.frame(frame).as_deref());
                }
            }
            Op::Reads(at, pace) => {
                if let Some(i) = pick(at, self.sockets.len()) {
                    self.sockets[i].item.pipe.client_reads(pace);
                }
            }
            Op::Abandon(at) => {
                if let Some(i) = pick(at, self.sockets.len()) {
                    drop(self.sockets.swap_remove(i));
                }
            }
            Op::SendWait(at, len) => {
                if let Some(i) = pick(at, self.sessions.len()) {
                    let sender = self.sessions[i].item.sender();
                    let text = "y".repeat(usize::from(len));
                    self.start(Box::pin(async move {
                        let _ = sender.send(text).await;
                    }));
                }
            }
            Op::ReadyWait(at) => {
                if let Some(i) = pick(at, self.sessions.len()) {
                    let sender = self.sessions[i].item.sender();
                    self.start(Box::pin(async move { sender.ready().await }));
                }
            }
            Op::Advance(step) => {
                const STEPS: [u64; 5] = [1, 120, 600, 5_100, 30_100];
                let by = STEPS[usize::from(step) % STEPS.len()];
                self.runtime.advance(Duration::from_millis(by));
                // The timer tasks woken run at once, as an executor would run them: until
                // then, any input fires the timers due itself (and wakes what they end),
                // which a poll that was not woken must not be blamed for.
                self.run_woken();
            }
            Op::RunWoken => self.run_woken(),
        }
        self.collect();
    }

    /// Takes the sessions the handlers were given and starts the tasks spawned.
    pub(super) fn collect(&mut self) {
        loop {
            let opened: Vec<Session> = self.kept.lock().expect("unpoisoned").drain(..).collect();
            for session in opened {
                let watched = self.watch(session);
                self.sessions.push(watched);
            }
            let spawned = self.runtime.take_spawned();
            if spawned.is_empty() {
                return;
            }
            for task in spawned {
                self.start(task);
            }
        }
    }

    /// Watches a task and runs its first poll, as an executor does once it is spawned.
    pub(super) fn start(&mut self, task: Task) {
        let mut watched = self.watch(task);
        // A finished task is let go: it must not be polled again.
        if !poll_task(&mut watched) {
            self.tasks.push(watched);
        }
    }

    /// Polls everything woken, again while polling wakes more (a few rounds: a task may
    /// yield, waking itself, but not forever).
    pub(super) fn run_woken(&mut self) {
        for _ in 0..8 {
            let ran = run_woken_in(&mut self.requests, poll_request)
                | run_woken_in(&mut self.sessions, poll_session)
                | run_woken_in(&mut self.sockets, poll_socket)
                | run_woken_in(&mut self.tasks, poll_task);
            self.tasks.retain(|task| task.pending);
            self.collect();
            if !ran {
                return;
            }
        }
        panic!("tasks still woken after eight rounds: one wakes itself forever");
    }

    /// Opens a WebSocket for session `w{session}` (a raw one for 3) and runs its task's
    /// first poll.
    pub(super) fn upgrade(&mut self, session: u8) {
        let hixie = session == 4;
        let request = upgrade_request(session);
        let mut exchange = self.service.submit(request);
        let TryNext::Item(Content::Upgrade { handshake, .. }) = exchange.try_next() else {
            // Refused, or waiting for the admission hook: watched as a request (an
            // upgrade that comes later is taken and dropped, as by a connection gone).
            let mut watched = self.watch(Request {
                exchange,
                gone: Arc::default(),
                ended: false,
                asked: (UPGRADE, session, 0),
            });
            poll_request(&mut watched);
            self.requests.push(watched);
            return;
        };
        let pipe = PipeEnd::default();
        // Hixie-76's key3, read ahead with the request.
        let read_ahead = if hixie {
            b"^n:ds[4U".to_vec()
        } else {
            Vec::new()
        };
        let task = exchange.serve_websocket(pipe.clone(), read_ahead, handshake);
        let mut watched = self.watch(Socketed {
            task,
            pipe,
            done: false,
            hixie,
        });
        poll_socket(&mut watched);
        self.sockets.push(watched);
    }

    /// Polls every registered poll that was not woken: none may find anything new.
    pub(super) fn check_no_progress_without_wake(&mut self) -> Result<(), TestCaseError> {
        let found = [
            unwoken_in(&mut self.requests, poll_request).map(|i| format!("request {i}")),
            unwoken_in(&mut self.sessions, poll_session).map(|i| format!("session {i}")),
            unwoken_in(&mut self.sockets, poll_socket).map(|i| format!("WebSocket {i}")),
            unwoken_in(&mut self.tasks, poll_task).map(|i| format!("task {i}")),
        ];
        for found in found.into_iter().flatten() {
            prop_assert!(
                false,
                "{found} made progress (or woke another) without a wake"
            );
        }
        prop_assert_eq!(
            self.under_lock.load(Ordering::Acquire),
            0,
            "a task was woken under a shard's lock"
        );
        Ok(())
    }
}

/// The first of `watched` that made progress though it was not woken, if any.
pub(super) fn unwoken_in<T>(
    watched: &mut [Watched<T>],
    poll: fn(&mut Watched<T>) -> bool,
) -> Option<usize> {
    watched
        .iter_mut()
        .position(|one| unwoken_progress(one, poll))
}

/// Polls each of `watched` that was woken; whether any was.
pub(super) fn run_woken_in<T>(
    watched: &mut [Watched<T>],
    poll: fn(&mut Watched<T>) -> bool,
) -> bool {
    let mut ran = false;
    for one in watched.iter_mut() {
        if one.probe.woken.load(Ordering::Acquire) {
            ran = true;
            poll(one);
        }
    }
    ran
}

/// Whether a poll that was not woken (pending, its waker never called since) made progress
/// when polled anyway: `poll` says so, or it woke another task.
pub(super) fn unwoken_progress<T>(
    watched: &mut Watched<T>,
    poll: impl FnOnce(&mut Watched<T>) -> bool,
) -> bool {
    if !watched.pending || watched.probe.woken.load(Ordering::Acquire) {
        return false;
    }
    let others = watched.probe.others();
    let progressed = poll(watched);
    progressed || watched.probe.others() != others
}

/// Polls a task with its waker; whether it completed.
pub(super) fn poll_task(task: &mut Watched<Task>) -> bool {
    task.probe.woken.store(false, Ordering::Release);
    let mut cx = Context::from_waker(&task.waker);
    let ready = task.item.as_mut().poll(&mut cx).is_ready();
    task.pending = !ready;
    ready
}

pub(super) fn pick(at: usize, len: usize) -> Option<usize> {
    (len > 0).then(|| at % len)
}

/// Polls an exchange with its waker; whether it gave something (an item or its end).
pub(super) fn poll_request(request: &mut Watched<Request>) -> bool {
    request.probe.woken.store(false, Ordering::Release);
    if request.item.ended {
        return false;
    }
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

/// Polls a WebSocket's task with its waker; whether it did anything (read, wrote, ended).
pub(super) fn poll_socket(socket: &mut Watched<Socketed>) -> bool {
    // A finished task has nothing left to run, whoever still wakes it.
    socket.probe.woken.store(false, Ordering::Release);
    if socket.item.done {
        return false;
    }
    let before = socket.item.pipe.marks();
    let mut cx = Context::from_waker(&socket.waker);
    let ready = std::pin::Pin::new(&mut socket.item.task)
        .poll(&mut cx)
        .is_ready();
    socket.item.done = ready;
    socket.pending = !ready;
    ready || socket.item.pipe.marks() != before
}

/// Polls a session for a message with its waker; whether it gave one or its end.
pub(super) fn poll_session(session: &mut Watched<Session>) -> bool {
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
