//! WebSockets after the 101, over any [`Socket`]: the dispatch to the RFC 6455 pump
//! ([`rfc6455`](super::rfc6455)) or the hixie-76 one (here), and what both use.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::driver::exchange::{Link, TryNext};
use crate::driver::inbound::{SessionShared, Stall};
use crate::driver::rfc6455;
use crate::driver::runtime::{Timer, later};
use crate::driver::socket::Socket;
use crate::handshake::hixie76_answer;
use crate::wire::hixie76;
use crate::{Content, Handshake};
use bytes::BytesMut;

/// An upgraded connection run to its end (from
/// [`Exchange::serve_websocket`](crate::driver::Exchange::serve_websocket)): a future that
/// completes when the socket is done. Dropping it drops the connection and, unless the
/// socket closed cleanly, tells the engine the client went away.
#[must_use = "futures do nothing unless polled"]
pub struct WebSocket<S> {
    kind: Kind<S>,
}

// The common case inline, the rare one boxed: that is the point of the difference.
#[allow(clippy::large_enum_variant)]
enum Kind<S> {
    Rfc6455 {
        exchange: Link,
        pump: rfc6455::Serve<S>,
    },
    /// Rare enough for a boxed `async fn`.
    Hixie76(Pin<Box<dyn Future<Output = ()> + Send>>),
    Done,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebSocket")
    }
}

impl<S: Socket> WebSocket<S> {
    /// The 101 head is written; `read_ahead` holds bytes the client sent after its request
    /// (the first frames, or hixie-76's key3).
    pub(crate) fn new(
        exchange: Link,
        socket: S,
        read_ahead: Vec<u8>,
        handshake: Handshake,
    ) -> WebSocket<S> {
        let kind = match handshake {
            Handshake::Rfc6455 { deflate } => Kind::Rfc6455 {
                pump: rfc6455::Serve::new(&exchange, socket, read_ahead, deflate),
                exchange,
            },
            Handshake::Hixie76 { key1, key2 } => {
                Kind::Hixie76(Box::pin(hixie76(exchange, socket, read_ahead, key1, key2)))
            }
        };
        WebSocket { kind }
    }
}

impl<S: Socket> Future for WebSocket<S> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let done = match &mut self.kind {
            Kind::Rfc6455 { exchange, pump } => pump.poll(exchange, cx).is_ready(),
            Kind::Hixie76(future) => future.as_mut().poll(cx).is_ready(),
            Kind::Done => true,
        };
        if done {
            // Dropping the exchange tells the engine, unless the socket closed cleanly.
            self.kind = Kind::Done;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

// The pump holds no self-references.
impl<S> Unpin for WebSocket<S> {}

/// A deadline the loop may wait on, with one timer reused for every deadline.
pub(crate) struct Alarm {
    timer: Option<Pin<Box<dyn Timer>>>,
    at: Option<Instant>,
}

impl Alarm {
    pub(crate) fn new() -> Alarm {
        Alarm {
            timer: None,
            at: None,
        }
    }

    pub(crate) fn set(&mut self, exchange: &Link, at: Option<Instant>) {
        if self.at == at {
            return;
        }
        self.at = at;
        if let Some(at) = at {
            match self.timer.as_mut() {
                Some(timer) => timer.as_mut().reset(at),
                None => self.timer = Some(exchange.runtime().timer(at)),
            }
        }
    }

    /// Makes the next [`set`](Alarm::set) arm the timer even for the deadline it has: a
    /// timer that fired may not fire again for it (async-io's do not).
    pub(crate) fn rearm(&mut self) {
        self.at = None;
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match (self.at, self.timer.as_mut()) {
            (Some(_), Some(timer)) => timer.as_mut().poll(cx),
            _ => Poll::Pending,
        }
    }
}

/// Holds a socket's reads back while its session's inbound queue is past its bound
/// ([`Config::max_session_inbound_bytes`]), until the application has taken it down to half,
/// and closes the session if the application takes nothing for the stall timeout.
///
/// [`Config::max_session_inbound_bytes`]: crate::driver::Config::max_session_inbound_bytes
pub(crate) struct Gate {
    inbound: Option<Arc<SessionShared>>,
    /// Waiting for room in it.
    room: Option<u64>,
    /// While the queue is past its bound: when the application is stuck if it has taken
    /// nothing by then, and how much it had taken.
    stall: Stall,
    /// `inbound` was looked up.
    looked_up: bool,
    /// Reads are held back, as the engine was told (`Engine::handle_ws_reads_held`).
    held: bool,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate {
            inbound: None,
            room: None,
            stall: Stall::default(),
            looked_up: false,
            held: false,
        }
    }

    /// Tells the engine that reads are held back, or no longer: it cannot hear the peer
    /// meanwhile, so its dead-peer detection must not count the time.
    #[cold]
    fn hold(flag: &mut bool, exchange: &Link, held: bool) {
        *flag = held;
        // Only dead-peer detection cares; without it, no lock for nothing.
        if exchange.options().websocket_ping.is_some() {
            exchange.feed(|engine, now, id| engine.handle_ws_reads_held(now, id, held));
        }
    }

    /// Whether the queue is past its bound now (after a read: look again at once, so that
    /// the next read waits for room).
    #[inline]
    pub(crate) fn is_over(&self) -> bool {
        self.inbound
            .as_ref()
            .is_some_and(|inbound| inbound.is_over())
    }

    /// Whether the socket must not be read now (`open`: the session still takes messages);
    /// registers `cx` for room. Closes the session if the application has taken nothing for
    /// the stall timeout. Returns the stall deadline to wait for while paused.
    // Polled several times per message on the RFC 6455 path, where a call costs more than
    // the usual answer (open, not over: not paused).
    #[inline(always)]
    pub(crate) fn paused(
        &mut self,
        exchange: &Link,
        cx: &Context<'_>,
        open: bool,
    ) -> (bool, Option<Instant>) {
        if !self.looked_up {
            self.looked_up = true;
            self.inbound = exchange.session();
        }
        let Some(inbound) = &self.inbound else {
            return (false, None);
        };
        // Once paused, it waits for what wakes it (the queue down to half its bound), not
        // for the queue to be merely under its bound again: a poll for another reason (a
        // frame to write, a timer) must not resume reads sooner than that wake would.
        if !open
            || (self.room.is_none() && !inbound.is_over())
            || inbound.poll_room(cx, &mut self.room).is_ready()
        {
            self.stall.reset();
            if self.held {
                Gate::hold(&mut self.held, exchange, false);
            }
            return (false, None);
        }
        if !self.held {
            Gate::hold(&mut self.held, exchange, true);
        }
        if !inbound.is_over() {
            // Back under its bound, waiting for half: paused, but not a stuck application,
            // which only one that leaves its queue past the bound is taken for (a slow one,
            // busy with a message, has its memory bounded all the same).
            self.stall.reset();
            return (true, None);
        }
        let now = exchange.runtime().now();
        let timeout = exchange.config().inbound_stall_timeout;
        match self.stall.check(inbound, now, timeout) {
            Some(at) => (true, Some(at)),
            None => {
                exchange.close_overflowed(inbound.key);
                (true, None)
            }
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(inbound) = &self.inbound {
            inbound.forget_room(self.room.take());
        }
    }
}

/// Hixie-76: read key3 (maybe already read ahead), answer it, then exchange
/// `0x00 text 0xFF` frames.
async fn hixie76<S: Socket>(
    mut exchange: Link,
    mut socket: S,
    read_ahead: Vec<u8>,
    key1: u32,
    key2: u32,
) {
    let runtime = exchange.runtime().clone();
    let config = exchange.config().clone();
    let mut buf = BytesMut::from(&read_ahead[..]);
    let mut alarm = Alarm::new();
    alarm.set(
        &exchange,
        Some(later(runtime.now(), config.header_read_timeout)),
    );
    // Every early return below drops the exchange without a close handshake: the engine
    // takes it for an abort.
    while buf.len() < 8 {
        match read_some(&mut socket, &mut buf, &mut alarm).await {
            Some(n) if n > 0 => {}
            _ => return,
        }
    }
    let key3: [u8; 8] = match buf.split_to(8)[..].try_into() {
        Ok(key3) => key3,
        Err(_) => return,
    };
    let mut out = BytesMut::new();
    out.extend_from_slice(&hixie76_answer(key1, key2, key3));
    if write_all(&mut socket, &out, &exchange, &mut alarm)
        .await
        .is_err()
    {
        return;
    }
    let mut decoder = hixie76::Decoder::new(exchange.options().max_message_size);
    let mut gate = Gate::new();
    // Since when `buf` has held the start of a message that has not ended
    // (`Config::message_read_timeout`, as on RFC 6455 sockets).
    let mut unfinished_since: Option<Instant> = None;
    // Reads and writes take turns when both are ready, so that neither starves the other.
    let mut read_next = true;
    loop {
        // The whole frames read so far go to the engine under one lock: a read is one input,
        // as on RFC 6455 sockets (the inbound bound holds inputs whole).
        let mut finished = false;
        let stop = if buf.is_empty() {
            None
        } else {
            exchange.feed(|engine, now, id| {
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(hixie76::Frame::Text(text))) => {
                            finished = true;
                            engine.handle_ws_message(now, id, &text)
                        }
                        Ok(Some(hixie76::Frame::Close)) => break Some(Ok(())),
                        Ok(None) => break None,
                        Err(error) => break Some(Err(error)),
                    }
                }
            })
        };
        // Legacy sockets are few: an idle one keeps no large buffer rather than saving
        // the allocations of the next large message.
        if buf.is_empty() && buf.capacity() > SMALL {
            buf = BytesMut::new();
        }
        // A message ended, or none begun: the clock starts again (below) at the next one.
        if finished || buf.is_empty() {
            unfinished_since = None;
        }
        if let Some(stop) = stop {
            match stop {
                Ok(()) => {
                    // The session ends at once (§9.2), not once our answer is out: a
                    // client that reads slowly would keep it open, taking sends that no
                    // one reads, for up to the write timeout.
                    exchange.ws_closed();
                    let _ =
                        write_all(&mut socket, hixie76::CLOSE_FRAME, &exchange, &mut alarm).await;
                    let _ = socket.shutdown();
                    return;
                }
                Err(hixie76::Error::MessageTooLarge) => {
                    exchange.ws_too_big();
                    return close_now(&mut socket, &mut out, &mut exchange, &mut alarm).await;
                }
                Err(error) => {
                    tracing::debug!(%error, "hixie-76 framing error");
                    return;
                }
            }
        }
        enum Event {
            Queue,
            Read,
            /// The stall deadline passed: look again.
            Stall,
            /// The message begun did not end in time.
            MessageTimeout,
        }
        let message_timeout = config.message_read_timeout;
        let event = poll_fn(|cx| {
            // Past the inbound bound the socket is not read (as on RFC 6455 sockets), and
            // what the server does not read is not the client's delay: the message's time
            // starts again when reads do.
            let (paused, stall_at) = gate.paused(&exchange, cx, true);
            if paused {
                unfinished_since = None;
            } else if unfinished_since.is_none() && !buf.is_empty() {
                unfinished_since = Some(runtime.now());
            }
            let message_at = unfinished_since.map(|since| later(since, message_timeout));
            alarm.set(&exchange, if paused { stall_at } else { message_at });
            let readable = !paused && socket.poll_readable(cx).is_ready();
            let queued = exchange.poll_ready(cx).is_ready();
            if readable && (read_next || !queued) {
                return Poll::Ready(Event::Read);
            }
            // A deadline counts only with nothing left to read: the rest of a message
            // may be waiting in the socket.
            if !readable && alarm.poll(cx).is_ready() {
                return Poll::Ready(if paused {
                    Event::Stall
                } else {
                    Event::MessageTimeout
                });
            }
            if queued {
                return Poll::Ready(Event::Queue);
            }
            Poll::Pending
        })
        .await;
        read_next = matches!(event, Event::Queue);
        match event {
            Event::Queue => match exchange.try_next() {
                TryNext::Item(content) => {
                    // A write that waits for the client holds reads back, but what came
                    // meanwhile is read before a deadline counts (above): the clock runs
                    // on, as on RFC 6455 sockets, and a client that reads slowly earns its
                    // unfinished message no time.
                    if !write_hixie(&mut socket, content, &mut out, &exchange, &mut alarm).await {
                        return;
                    }
                }
                TryNext::Empty => {}
                TryNext::Ended => return,
            },
            Event::Stall => {}
            // A socket that did not say it was readable may still hold bytes: async-io
            // reports readiness once per registration, and a turn that wrote, or read only
            // part of what came, used it up. The message times out only if a read finds
            // nothing, as on RFC 6455 sockets.
            Event::MessageTimeout => match read_now(&mut socket, &mut buf) {
                Ok(Some(0)) | Err(_) => return,
                // The deadline stands for the rest of the message (unless these bytes end
                // it): its timer, fired, must ring again.
                Ok(Some(n)) => {
                    exchange.outside().received(n);
                    alarm.rearm();
                }
                Ok(None) => {
                    tracing::debug!("hixie-76 message timed out");
                    exchange.ws_message_timeout();
                    return close_now(&mut socket, &mut out, &mut exchange, &mut alarm).await;
                }
            },
            Event::Read => match read_now(&mut socket, &mut buf) {
                Ok(Some(0)) | Err(_) => return,
                Ok(n) => exchange.outside().received(n.unwrap_or(0)),
            },
        }
    }
}

/// Writes what the engine queued up to its close (after a message too big or too slow),
/// then the socket is done.
async fn close_now<S: Socket>(
    socket: &mut S,
    out: &mut BytesMut,
    exchange: &mut Link,
    alarm: &mut Alarm,
) {
    while let TryNext::Item(content) = exchange.try_next() {
        if !write_hixie(socket, content, out, exchange, alarm).await {
            break;
        }
    }
}

/// Writes one outgoing item as hixie-76; `false` once the socket is done.
async fn write_hixie<S: Socket>(
    socket: &mut S,
    content: Content,
    out: &mut BytesMut,
    exchange: &Link,
    alarm: &mut Alarm,
) -> bool {
    out.clear();
    let last = match content {
        Content::WsText(text) => {
            hixie76::encode_text(&text, out);
            false
        }
        Content::WsClose { .. } => {
            hixie76::encode_close(out);
            true
        }
        // Hixie-76 has no ping; SockJS sessions send `h` frames instead.
        _ => return true,
    };
    if write_all(socket, out, exchange, alarm).await.is_err() {
        let _ = socket.shutdown();
        return false;
    }
    exchange.outside().sent(out.len());
    if last {
        let _ = socket.shutdown();
        drain_until_closed(socket, exchange, alarm).await;
        return false;
    }
    if out.capacity() > SMALL {
        *out = BytesMut::new();
    }
    true
}

/// The largest buffer an idle hixie-76 socket keeps.
const SMALL: usize = 4096;

/// Reads what is there into `buf`: `Ok(None)` if nothing was.
fn read_now<S: Socket>(socket: &mut S, buf: &mut BytesMut) -> io::Result<Option<usize>> {
    let mut chunk = [0u8; 4096];
    match socket.try_read(&mut chunk) {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(Some(n))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads some bytes into `buf`, waiting for them until the alarm rings (`None`).
async fn read_some<S: Socket>(
    socket: &mut S,
    buf: &mut BytesMut,
    alarm: &mut Alarm,
) -> Option<usize> {
    loop {
        match read_now(socket, buf) {
            Ok(Some(n)) => return Some(n),
            Ok(None) => {}
            Err(_) => return None,
        }
        let ready = poll_fn(|cx| {
            if socket.poll_readable(cx).is_ready() {
                return Poll::Ready(true);
            }
            alarm.poll(cx).map(|()| false)
        })
        .await;
        if !ready {
            return None;
        }
    }
}

/// After our close and FIN: reads and drops what the client still sends (the rest of a
/// message too big) until it closes its side, the socket fails, or the close linger
/// passes, so that its bytes draw no reset that could destroy our close before the client
/// reads it (as after an HTTP refusal).
async fn drain_until_closed<S: Socket>(socket: &mut S, exchange: &Link, alarm: &mut Alarm) {
    let deadline = later(exchange.runtime().now(), exchange.config().close_linger);
    alarm.set(exchange, Some(deadline));
    let mut dropped = BytesMut::new();
    let mut reads = 0u32;
    while let Some(n) = read_some(socket, &mut dropped, alarm).await {
        if n == 0 {
            return;
        }
        dropped.clear();
        // A client that sends faster than this reads never lets a read come back empty:
        // the deadline is looked at, and other tasks let run, as it goes on.
        reads = reads.wrapping_add(1);
        if reads % crate::driver::socket::LINGER_READS_BEFORE_YIELD == 0 {
            if exchange.runtime().now() >= deadline {
                return;
            }
            crate::driver::runtime::yield_now().await;
        }
    }
}

/// Writes all of `data`, or fails after the write timeout.
async fn write_all<S: Socket>(
    socket: &mut S,
    mut data: &[u8],
    exchange: &Link,
    alarm: &mut Alarm,
) -> io::Result<()> {
    let timeout = exchange.config().write_timeout;
    let mut since = None;
    loop {
        let before = data.len();
        if let Poll::Ready(result) = crate::driver::socket::write_now(socket, &mut data) {
            return result;
        }
        if data.len() < before || socket.progressed() {
            // The write timeout counts from the last progress.
            since = None;
        }
        let start = *since.get_or_insert_with(|| exchange.runtime().now());
        alarm.set(exchange, Some(later(start, timeout)));
        // A buffering stream (TLS) may pass on some of what it holds while its
        // writability waits for all of it: progress too, looked at before the deadline.
        let writable = poll_fn(|cx| {
            if socket.poll_writable(cx).is_ready() {
                return Poll::Ready(true);
            }
            if socket.progressed() {
                since = None;
                return Poll::Ready(true);
            }
            alarm.poll(cx).map(|()| false)
        })
        .await;
        if !writable {
            return Err(io::ErrorKind::TimedOut.into());
        }
    }
}
