//! One request as the adapter carries it out: what to write, in order, and the abort guard.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;

use crate::driver::admission::{Decided, Pending};
use crate::driver::connection::Connection;
use crate::driver::inbound::{Delivery, Stall};
use crate::driver::queue::{self, TryRecv};
use crate::driver::runtime::{Timer, later};
use crate::driver::shard::{Shard, Submitted};
use crate::{Content, RequestId};

/// One request handed to a [`Service`](crate::driver::Service), from the adapter's side:
/// the [`Content`] to write, in order, until the last item ([`Content::is_last`]); for an
/// upgraded request, also the WebSocket's inputs.
///
/// Dropping an `Exchange` before its last item was taken (or, for a WebSocket, before the
/// client closed it) tells the engine the client went away (PROTOCOL.md §7.1.6): adapters
/// drop it when the connection fails or ends.
pub struct Exchange {
    link: Link,
    http: Http,
}

/// What a WebSocket keeps of its exchange for the socket's whole life: where its frames
/// come from and where its inputs go. Dropping it before the socket closed cleanly tells
/// the engine the client went away.
pub(crate) struct Link {
    shard: Arc<Shard>,
    id: RequestId,
    rx: queue::Receiver,
    /// The request is over: nothing to abort.
    done: bool,
    /// The request was handed to the engine (not waiting for the admission hook or for
    /// another request): dropping it early is an abort.
    live: bool,
    /// It was answered with an upgrade: counted among the service's sockets until it is
    /// dropped (its socket done, or the upgrade never handed over), past the engine's own
    /// end of it (the close queued is not the close written).
    socket: bool,
}

/// What only a request answered over HTTP needs; a WebSocket drops it at the upgrade.
struct Http {
    phase: Phase,
    /// A send's answer, held until the application has taken what it delivered.
    held: Option<Held>,
    timer: Option<Pin<Box<dyn Timer>>>,
}

enum Phase {
    /// Not handed to the engine yet: it waits for the admission hook's verdict.
    Admitting {
        pending: Box<Pending>,
        tx: queue::Sender,
        until: Instant,
    },
    /// Not handed to the engine yet: it waits for `attached` to end.
    Deferred {
        request: Box<Deferral>,
        tx: queue::Sender,
        attached: RequestId,
        until: Instant,
        slot: Option<u64>,
        /// The admission hook has let it through already.
        admitted: bool,
    },
    Live {
        delivered: Option<Delivery>,
    },
}

/// A deferred request, with its shard: to stop watching `attached` if the exchange is
/// dropped while it waits.
struct Deferral {
    shard: Arc<Shard>,
    request: http::Request<Bytes>,
    connection: Connection,
}

/// What [`Exchange::try_next`] found.
#[derive(Debug)]
pub enum TryNext {
    /// The next thing to write.
    Item(Content),
    /// Nothing yet.
    Empty,
    /// Nothing ever again (the last item was taken, or the exchange ended without one).
    Ended,
}

struct Held {
    content: Content,
    /// When the delivery wait ends.
    until: Instant,
    /// The handler was woken once already before a timer was armed.
    yielded: bool,
    /// Waiting for the messages to be taken.
    slot: Option<u64>,
    /// Waiting for room in the session's inbound queue.
    room: Option<u64>,
    /// While the queue is past its bound: when the application is stuck if it has taken
    /// nothing by then, and how much it had taken.
    stall: Stall,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("request", &self.link.id.0)
            .field("done", &self.link.done)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    pub(crate) fn submit(
        shard: Arc<Shard>,
        id: RequestId,
        request: http::Request<Bytes>,
        connection: Connection,
    ) -> Self {
        let (tx, rx) = queue::channel();
        let phase = enter(&shard, id, request, connection, tx, false, false);
        Exchange {
            link: Link {
                live: matches!(phase, Phase::Live { .. }),
                shard,
                id,
                rx,
                done: false,
                socket: false,
            },
            http: Http {
                phase,
                held: None,
                timer: None,
            },
        }
    }

    /// Moves to `phase`: once live, dropping the exchange early is an abort.
    fn enter_phase(&mut self, phase: Phase) {
        self.link.live = matches!(phase, Phase::Live { .. });
        self.http.phase = phase;
    }

    /// The engine's id of this request (and of the WebSocket it may become).
    pub fn id(&self) -> RequestId {
        self.link.id
    }

    /// The next thing to write; `None` if the exchange ended without a last item (the
    /// connection overflowed or the engine dropped the request): end the connection then
    /// (the HTTP/1 loop lingers as after a refusal, for a client that may be sending).
    pub async fn next(&mut self) -> Option<Content> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The poll form of [`next`](Exchange::next).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Content>> {
        if self.link.done {
            return Poll::Ready(None);
        }
        loop {
            let waiting = match self.http.phase {
                Phase::Admitting { .. } => self.poll_admission(cx),
                Phase::Deferred { .. } => self.poll_deferred(cx),
                Phase::Live { .. } => break,
            };
            if waiting.is_pending() {
                return Poll::Pending;
            }
        }
        if self.http.held.is_some() {
            return self.poll_held(cx);
        }
        match self.link.rx.poll_recv(cx) {
            Poll::Ready(Some(content)) => self.taken(content, cx),
            Poll::Ready(None) => {
                self.link.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next thing to write if it is there already (to write several at once).
    ///
    /// `Empty` also while a send's answer is held for its messages to be taken, and while
    /// the request waits for the admission hook or for an earlier receiver to end (and
    /// [`poll_ready`](Exchange::poll_ready) is then `Ready`): after an `Empty`, wait with
    /// [`next`](Exchange::next) or [`poll_next`](Exchange::poll_next), never by looping
    /// on `poll_ready` and `try_next` alone.
    pub fn try_next(&mut self) -> TryNext {
        if self.link.done {
            return TryNext::Ended;
        }
        if self.http.held.is_some() || !matches!(self.http.phase, Phase::Live { .. }) {
            return TryNext::Empty;
        }
        match self.link.rx.try_recv() {
            TryRecv::Item(content) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                match self.taken(content, &mut cx) {
                    Poll::Ready(Some(content)) => TryNext::Item(content),
                    Poll::Ready(None) => TryNext::Ended,
                    Poll::Pending => TryNext::Empty,
                }
            }
            TryRecv::Empty => TryNext::Empty,
            TryRecv::Ended => {
                self.link.done = true;
                TryNext::Ended
            }
        }
    }

    /// Ready once [`poll_next`](Exchange::poll_next) may have something: for loops that
    /// wait on a socket and on this exchange at once.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.link.done
            || self.http.held.is_some()
            || !matches!(self.http.phase, Phase::Live { .. })
        {
            return Poll::Ready(());
        }
        self.link.poll_ready(cx)
    }

    /// An item came off the queue: the last one ends the exchange, unless it is a send's
    /// answer that waits for its messages to be taken.
    fn taken(&mut self, content: Content, cx: &mut Context<'_>) -> Poll<Option<Content>> {
        if !content.is_last() {
            if matches!(content, Content::Upgrade { .. }) && !self.link.socket {
                self.link.socket = true;
                self.link.shard.common.socket_counted(true);
            }
            return Poll::Ready(Some(content));
        }
        let delivered = match &mut self.http.phase {
            Phase::Live { delivered } => delivered.take(),
            Phase::Admitting { .. } | Phase::Deferred { .. } => None,
        };
        let wait = self.link.shard.common.config.delivery_wait;
        // A send's answer waits for the application to take what it carried, and for the
        // application's queue to have room again: that is the client's backpressure.
        let hold = delivered
            .as_ref()
            .is_some_and(|d| !wait.is_zero() || d.shared.is_over());
        if matches!(content, Content::Response(_)) && hold {
            self.http.phase = Phase::Live { delivered };
            self.http.held = Some(Held {
                content,
                until: later(self.link.shard.common.runtime.now(), wait),
                yielded: wait.is_zero(),
                slot: None,
                room: None,
                stall: Stall::default(),
            });
            return self.poll_held(cx);
        }
        self.link.done = true;
        Poll::Ready(Some(content))
    }

    fn poll_held(&mut self, cx: &mut Context<'_>) -> Poll<Option<Content>> {
        let (
            Some(held),
            Phase::Live {
                delivered: Some(delivery),
            },
        ) = (self.http.held.as_mut(), &self.http.phase)
        else {
            return self.release();
        };
        let common = &self.link.shard.common;
        let now = common.runtime.now();
        let taken = delivery.poll_taken(cx, &mut held.slot).is_ready();
        // Once it waits for room, it waits for what wakes it (the queue down to half its
        // bound), not for the queue to be merely under its bound again: a poll for another
        // reason (the delivery, a timer) must not let it go sooner than that wake would.
        let mut room = (held.room.is_none() && !delivery.shared.is_over())
            || delivery.shared.poll_room(cx, &mut held.room).is_ready();
        let mut deadline = None;
        if !room && !delivery.shared.is_over() {
            // Back under its bound, waiting for half: held back, but not a stuck
            // application, which only one that leaves its queue past the bound is taken
            // for (a slow one, busy with a message, has its memory bounded all the same).
            // Should a later send take the queue past the bound again, that send is held
            // and watches for the stall itself (and a close ends this wait too).
            held.stall.reset();
        } else if !room {
            let timeout = common.config.inbound_stall_timeout;
            match held.stall.check(&delivery.shared, now, timeout) {
                Some(at) => deadline = Some(at),
                None => {
                    self.link.shard.close_overflowed(delivery.shared.key);
                    room = true;
                }
            }
        }
        let waited = taken || held.until <= now;
        if !waited {
            if held.yielded {
                deadline = Some(deadline.map_or(held.until, |d: Instant| d.min(held.until)));
            } else {
                // The handler was just woken with the messages: let it run once before
                // arming a timer, which that usually makes unnecessary.
                held.yielded = true;
                cx.waker().wake_by_ref();
            }
        }
        if room && waited {
            return self.release();
        }
        if let Some(at) = deadline {
            if poll_deadline(&mut self.http.timer, common.runtime.as_ref(), at, cx).is_ready() {
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }

    /// Lets a held answer go.
    fn release(&mut self) -> Poll<Option<Content>> {
        let held = self.http.held.take();
        if let (
            Some(held),
            Phase::Live {
                delivered: Some(delivery),
            },
        ) = (&held, &self.http.phase)
        {
            delivery.forget(held.slot);
            delivery.shared.forget_room(held.room);
        }
        self.http.phase = Phase::Live { delivered: None };
        self.link.done = true;
        Poll::Ready(held.map(|held| held.content))
    }

    /// A deferred request: ready once it was handed to the engine.
    fn poll_deferred(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Phase::Deferred {
            attached,
            until,
            slot,
            ..
        } = &mut self.http.phase
        else {
            return Poll::Ready(());
        };
        let (attached, until) = (*attached, *until);
        let ended = self.link.shard.poll_ended(attached, cx, slot).is_ready();
        let runtime = self.link.runtime().as_ref();
        if !ended && poll_deadline(&mut self.http.timer, runtime, until, cx).is_pending() {
            return Poll::Pending;
        }
        self.http.timer = None;
        let phase = std::mem::replace(&mut self.http.phase, Phase::Live { delivered: None });
        if let Phase::Deferred {
            request,
            tx,
            slot,
            admitted,
            ..
        } = phase
        {
            self.link.shard.unwatch(attached, slot);
            let Deferral {
                request,
                connection,
                ..
            } = *request;
            let phase = enter(
                &self.link.shard,
                self.link.id,
                request,
                connection,
                tx,
                true,
                admitted,
            );
            self.enter_phase(phase);
        }
        Poll::Ready(())
    }

    /// A request waiting for the admission hook: ready once it was handed to the engine
    /// (admitted) or answered (refused, or no verdict in time).
    fn poll_admission(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Phase::Admitting { pending, until, .. } = &mut self.http.phase else {
            return Poll::Ready(());
        };
        let verdict = match pending.poll(cx) {
            Poll::Ready(verdict) => verdict,
            Poll::Pending => {
                let runtime = self.link.runtime().as_ref();
                if poll_deadline(&mut self.http.timer, runtime, *until, cx).is_pending() {
                    return Poll::Pending;
                }
                pending.timed_out()
            }
        };
        self.http.timer = None;
        let phase = std::mem::replace(&mut self.http.phase, Phase::Live { delivered: None });
        if let Phase::Admitting { tx, .. } = phase {
            match verdict {
                Decided::Admitted(request) => {
                    let (request, connection) = connection_of(request);
                    let (shard, id) = (&self.link.shard, self.link.id);
                    let phase = enter(shard, id, request, connection, tx, false, true);
                    self.enter_phase(phase);
                }
                Decided::Refused(head, rejection) => {
                    self.link.shard.reject(self.link.id, &head, &rejection, tx);
                    self.link.live = true;
                }
            }
        }
        Poll::Ready(())
    }

    /// Runs the WebSocket this request became, to its end: call it after writing the head
    /// of [`Content::Upgrade`] (with its handshake), with the upgraded connection and the
    /// bytes the client sent after its request (the first frames, or hixie-76's key3).
    pub fn serve_websocket<S: crate::driver::Socket>(
        self,
        socket: S,
        read_ahead: Vec<u8>,
        handshake: crate::Handshake,
    ) -> crate::driver::WebSocket<S> {
        // What only an HTTP answer needs is dropped here, not carried by every socket.
        let Exchange { link, http } = self;
        drop(http);
        crate::driver::websocket::WebSocket::new(link, socket, read_ahead, handshake)
    }

    /// The service's settings, for the adapter's own bounds.
    pub fn config(&self) -> &crate::driver::Config {
        self.link.config()
    }

    /// The service's options.
    pub fn options(&self) -> &crate::Options {
        self.link.options()
    }
}

impl Link {
    /// The next frame to write if it is there already (to write several at once).
    pub(crate) fn try_next(&mut self) -> TryNext {
        if self.done {
            return TryNext::Ended;
        }
        match self.rx.try_recv() {
            TryRecv::Item(content) => {
                self.done = content.is_last();
                TryNext::Item(content)
            }
            TryRecv::Empty => TryNext::Empty,
            TryRecv::Ended => {
                self.done = true;
                TryNext::Ended
            }
        }
    }

    /// Ready once [`try_next`](Link::try_next) may have something.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        self.rx.poll_ready(cx)
    }

    /// The session this request's WebSocket carries, once it opened.
    pub(crate) fn session(&self) -> Option<Arc<crate::driver::inbound::SessionShared>> {
        self.shard.session_of(self.id)
    }

    /// Closes the session this request serves (a stuck application) with
    /// [`INBOUND_OVERFLOW_CODE`](crate::driver::INBOUND_OVERFLOW_CODE).
    pub(crate) fn close_overflowed(&self, key: crate::SessionKey) {
        self.shard.close_overflowed(key);
    }

    /// The shard's counters for what its WebSocket pump reads and writes.
    pub(crate) fn outside(&self) -> &crate::driver::metrics::Outside {
        &self.shard.outside
    }

    /// Feeds the engine under one lock (several WebSocket messages at once).
    pub(crate) fn feed<R>(&self, f: impl FnOnce(&mut crate::Engine, Instant, RequestId) -> R) -> R {
        let id = self.id;
        self.shard.run(|engine, now| f(engine, now, id))
    }

    /// The client sent a WebSocket message over
    /// [`Options::max_message_size`](crate::Options::max_message_size): the engine answers
    /// with a 1009 close.
    pub(crate) fn ws_too_big(&self) {
        let id = self.id;
        self.shard
            .run(|engine, now| engine.handle_ws_too_big(now, id));
    }

    /// The client began a WebSocket message and did not finish it within
    /// [`Config::message_read_timeout`](crate::driver::Config::message_read_timeout): the
    /// engine answers with a 1008 close.
    pub(crate) fn ws_message_timeout(&self) {
        let id = self.id;
        self.shard
            .run(|engine, now| engine.handle_ws_message_timeout(now, id));
    }

    /// The client closed the WebSocket with a close handshake; the exchange is over. (A
    /// connection that ends without one is an abort: the link is dropped instead.)
    pub(crate) fn ws_closed(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.shard
            .end_request(self.id, |engine, now, id| engine.handle_ws_closed(now, id));
    }

    /// The pump failed the WebSocket connection (a frame that breaks RFC 6455, pongs the
    /// client leaves unread): the session ends now, as the connection's end would end it
    /// (aborted), while the pump sends its close frame and lingers (up to
    /// [`Config::close_linger`](crate::driver::Config::close_linger)).
    pub(crate) fn ws_failed(&mut self) {
        if self.live && !self.done {
            self.done = true;
            self.shard.abort(self.id);
        }
    }

    /// The service's settings.
    pub(crate) fn config(&self) -> &crate::driver::Config {
        &self.shard.common.config
    }

    /// The runtime the service runs on.
    pub(crate) fn runtime(&self) -> &Arc<dyn crate::driver::Runtime> {
        &self.shard.common.runtime
    }

    /// The service's options.
    pub(crate) fn options(&self) -> &crate::Options {
        &self.shard.common.options
    }
}

/// Hands a request to its shard, or holds it back as the shard says.
fn enter(
    shard: &Arc<Shard>,
    id: RequestId,
    request: http::Request<Bytes>,
    connection: Connection,
    tx: queue::Sender,
    force: bool,
    admitted: bool,
) -> Phase {
    let common = &shard.common;
    match shard.submit(id, request, connection, tx, force, admitted) {
        Submitted::Fed(delivered) => Phase::Live { delivered },
        Submitted::Deferred {
            request,
            connection,
            tx,
            attached,
        } => Phase::Deferred {
            // Rare (a receiver's conflict): the shard goes in the box.
            request: Box::new(Deferral {
                shard: shard.clone(),
                request: *request,
                connection,
            }),
            tx,
            attached,
            until: later(common.runtime.now(), common.config.abort_grace),
            slot: None,
            admitted,
        },
        Submitted::Admit { request, tx } => match common.admission.get() {
            Some(admission) => Phase::Admitting {
                pending: Box::new(Pending::start(admission, *request, &common.options)),
                tx,
                until: later(common.runtime.now(), common.config.admission_timeout),
            },
            None => {
                let (request, connection) = connection_of(*request);
                enter(shard, id, request, connection, tx, force, true)
            }
        },
    }
}

/// A request held for the admission hook, and its connection's facts taken back from its
/// extensions (see [`Submitted::Admit`]).
fn connection_of(request: http::Request<Bytes>) -> (http::Request<Bytes>, Connection) {
    let (mut parts, body) = request.into_parts();
    let connection = Connection::take_from(&mut parts);
    (http::Request::from_parts(parts, body), connection)
}

impl Drop for Http {
    fn drop(&mut self) {
        match &mut self.phase {
            // Nothing was handed to the engine (the link does not abort): dropping the
            // hook's future is all.
            Phase::Admitting { .. } => {}
            Phase::Deferred {
                request,
                attached,
                slot,
                ..
            } => request.shard.unwatch(*attached, slot.take()),
            Phase::Live {
                delivered: Some(delivery),
            } => {
                if let Some(held) = &mut self.held {
                    delivery.forget(held.slot.take());
                    delivery.shared.forget_room(held.room.take());
                }
            }
            Phase::Live { delivered: None } => {}
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if self.live && !self.done {
            self.shard.abort(self.id);
        }
        if self.socket {
            self.shard.common.socket_counted(false);
        }
    }
}

/// Polls `timer` for the deadline `at`: armed on `runtime` the first time, moved to `at`
/// after that, so one timer serves every wait of a request.
fn poll_deadline(
    timer: &mut Option<Pin<Box<dyn Timer>>>,
    runtime: &dyn crate::driver::Runtime,
    at: Instant,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let timer = timer.get_or_insert_with(|| runtime.timer(at));
    timer.as_mut().reset(at);
    timer.as_mut().poll(cx)
}
