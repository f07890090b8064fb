//! The RFC 6455 pump: one loop per socket that reads, writes and waits, on the core's own
//! frame codec ([`wire::rfc6455`](crate::wire::rfc6455)).
//!
//! Reads land in a buffer shared by every socket of the thread, and the frames in them go
//! to the engine under one lock per read; writes are encoded into another shared buffer,
//! as many queued messages as there are, and go out in one system call. A socket keeps a
//! buffer of its own only for an unfinished frame or a write the kernel did not take, so
//! an idle connection holds none.
//!
//! With permessage-deflate negotiated (RFC 7692, [`Handshake::Rfc6455`]'s `deflate`), the
//! decoder inflates compressed messages and text messages of at least
//! [`DeflateOptions::min_size`] bytes go out compressed; without context takeover the
//! compressor and decompressor are the thread's, so this too keeps no state per socket.
//!
//! [`Handshake::Rfc6455`]: crate::Handshake::Rfc6455
//! [`DeflateOptions::min_size`]: crate::DeflateOptions::min_size

use std::io;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::driver::exchange::{Link, TryNext};
use crate::driver::runtime::later;
use crate::driver::scratch::{self, with_read_buffer, with_write_buffer};
use crate::driver::socket::Socket;
use crate::driver::websocket::{Alarm, Gate};
use crate::wire::rfc6455::{
    Decoder, Deflater, Error, Message, encode_close, encode_ping, encode_pong, encode_text,
};
use crate::{Content, DeflateParams};

/// Reads handled, and bytes encoded, before the loop lets other tasks run.
const READ_BATCH: usize = 16;
const WRITE_BATCH: usize = 64 * 1024;
/// Message bytes one feed hands the engine, about what one read of plain frames carries:
/// compressed frames inflate to far more than a read holds, and the inbound bound is
/// looked at between feeds.
const FEED_BUDGET: usize = scratch::READ_BUFFER;

/// What the socket is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Messages flow both ways.
    Open,
    /// A close frame is on its way out (ours, or our answer to the client's): write what is
    /// pending, then linger.
    Closing,
    /// The close frame is out: read and drop what the client still sends until it closes
    /// the connection or the linger ends.
    Lingering,
}

/// How a read went.
enum Read {
    /// Bytes came and were handled; `short`: fewer than asked, the socket is likely empty.
    Data { short: bool },
    /// Nothing there.
    Empty,
    /// The client closed the connection.
    End,
    /// While lingering: the client answered our close frame.
    CloseAnswered,
}

struct Pump<S> {
    socket: S,
    decoder: Decoder,
    /// permessage-deflate's sending side, when negotiated.
    deflater: Option<Deflater>,
    /// Encoded bytes the socket has not taken yet.
    pending: Vec<u8>,
    phase: Phase,
    /// The client sent a message over the limit, or did not finish one in time: nothing
    /// more is read until the engine's close is out.
    deaf: bool,
    /// The client broke the protocol: the session ends as aborted, not closed.
    broken: bool,
    /// The client started the close: once our answer is out, close the connection.
    answered: bool,
    /// A feed stopped at its budget with whole frames left in the decoder: they are
    /// handled before the socket is read again.
    backlog: bool,
    /// The socket took bytes since the write timeout's wait last looked: a client that
    /// reads, however slowly, is not one that does not read.
    wrote: bool,
    /// Bytes of pongs added to `pending` since it was last empty: a client that pings
    /// without reading the answers (a ping flood) is told from one that is slow to take a
    /// large message of ours.
    pong_bytes: usize,
    /// A frame ended outside any message since the time limit of an unfinished one last
    /// looked: a message (text or binary), or a control frame with no fragmented message
    /// under way.
    finished: bool,
}

/// What a socket's phase times: never both at once, so one field (an idle socket's state
/// is what a server holds for each of its sessions).
#[derive(Debug, Clone, Copy)]
enum Clock {
    None,
    /// Open: since when the decoder has held the start of a message that has not ended
    /// ([`Config::message_read_timeout`](crate::driver::Config::message_read_timeout)).
    Unfinished(Instant),
    /// Lingering: when the linger ends.
    Linger(Instant),
}

/// The pump of one socket, as a future of fixed, small size: an `async fn` would carry
/// room for every temporary of every await point for the socket's whole life.
pub(crate) struct Serve<S> {
    pump: Pump<S>,
    alarm: Alarm,
    /// Bytes the client sent with its handshake, handled at the first poll.
    read_ahead: Box<[u8]>,
    /// The deadline of an unfinished message, or of the linger.
    clock: Clock,
    /// Since when a write has waited for the socket.
    blocked_since: Option<Instant>,
    /// Whether a read may find bytes (otherwise wait for readiness first).
    may_read: bool,
    /// The client ended its side while our close was on its way: nothing more is read.
    read_ended: bool,
    /// The session's inbound queue: from when it is past its bound until it is down to half,
    /// the socket is not read.
    gate: Gate,
}

impl<S: Socket> Serve<S> {
    pub(crate) fn new(
        exchange: &Link,
        socket: S,
        read_ahead: Vec<u8>,
        deflate: Option<DeflateParams>,
    ) -> Serve<S> {
        let options = exchange.options();
        let max = options.max_message_size;
        let (decoder, deflater) = match deflate {
            Some(params) => {
                let settings = options.permessage_deflate.unwrap_or_default();
                (
                    Decoder::with_deflate(max, &params),
                    Some(Deflater::new(&params, &settings)),
                )
            }
            None => (Decoder::new(max), None),
        };
        Serve {
            pump: Pump {
                socket,
                decoder,
                deflater,
                pending: Vec::new(),
                phase: Phase::Open,
                deaf: false,
                broken: false,
                answered: false,
                backlog: false,
                wrote: false,
                pong_bytes: 0,
                finished: false,
            },
            alarm: Alarm::new(),
            read_ahead: read_ahead.into_boxed_slice(),
            clock: Clock::None,
            blocked_since: None,
            may_read: true,
            read_ended: false,
            gate: Gate::new(),
        }
    }

    /// Runs the socket until it is done (`Ready`) or has to wait.
    pub(crate) fn poll(&mut self, exchange: &mut Link, cx: &mut Context<'_>) -> Poll<()> {
        if !self.read_ahead.is_empty() {
            let mut read_ahead = std::mem::take(&mut self.read_ahead);
            exchange.outside().received(read_ahead.len());
            self.pump.handle(exchange, &mut read_ahead);
        }
        let write_timeout = exchange.config().write_timeout;
        let message_timeout = exchange.config().message_read_timeout;
        loop {
            let open = self.pump.phase == Phase::Open;
            let (paused, stall_at) = self.gate.paused(exchange, cx, open);
            let pump = &mut self.pump;
            let mut busy = false;
            let mut over = false;
            // Whether this turn reads: a pump that stopped reading (a message too big, a
            // broken frame) starts again once it lingers, possibly later in this turn.
            let was_reading = pump.reading();
            let reads = was_reading && !paused && self.may_read && !self.read_ended;
            if reads {
                for round in 0..=READ_BATCH {
                    if round == READ_BATCH {
                        busy = true;
                        break;
                    }
                    match pump.read(exchange) {
                        // Past the bound: look again at once, so the next read waits for
                        // room and the stall timeout runs (`paused`).
                        Ok(Read::Data { .. }) if self.gate.is_over() => {
                            over = true;
                            break;
                        }
                        Ok(Read::Data { short: false }) => {}
                        Ok(Read::Data { short: true } | Read::Empty) => {
                            self.may_read = false;
                            break;
                        }
                        // The client ended its side after its close frame (read in this
                        // very turn, maybe), or with ours on its way: the close still goes
                        // out before our FIN (RFC 6455 §5.5.1), below.
                        Ok(Read::End) if pump.phase == Phase::Closing => {
                            self.read_ended = true;
                            break;
                        }
                        // Without a close frame the session ends as aborted (the exchange
                        // is dropped); after one, it has ended already.
                        Ok(Read::End) | Err(_) => return Poll::Ready(()),
                        Ok(Read::CloseAnswered) => {
                            pump.finish();
                            return Poll::Ready(());
                        }
                    }
                }
            }

            // A message begun must end in time, counted from its first bytes: what the
            // decoder holds of it is held for no longer. Only while the socket is read:
            // bytes the server does not read are not the client's delay.
            if pump.phase == Phase::Open && pump.reading() && !paused {
                if std::mem::take(&mut pump.finished) || pump.decoder.is_idle() {
                    self.clock = Clock::None;
                }
                if !pump.decoder.is_idle() {
                    let now = exchange.runtime().now();
                    let since = match self.clock {
                        Clock::Unfinished(since) => since,
                        _ => {
                            self.clock = Clock::Unfinished(now);
                            now
                        }
                    };
                    if now.saturating_duration_since(since) >= message_timeout {
                        if !reads {
                            // The rest may have come since the last read: read first.
                            self.may_read = true;
                            continue;
                        }
                        tracing::debug!("websocket message timed out");
                        self.clock = Clock::None;
                        // The engine queues its close, written below; as after a message
                        // too big, nothing more is read meanwhile (a blocked write may
                        // hold the close back).
                        pump.deaf = true;
                        exchange.ws_message_timeout();
                    }
                }
            } else if matches!(self.clock, Clock::Unfinished(_)) {
                self.clock = Clock::None;
            }

            if pump.phase != Phase::Lingering {
                let mut written = pump.write(exchange);
                if written.is_ok() && pump.phase == Phase::Closing {
                    // Taken is not yet sent: a TLS stream (any `Polled` one) takes a write
                    // it cannot send and keeps it. Our close must be out before the
                    // connection ends or lingers without writing, or it is lost.
                    written = pump.socket.try_flush().map(|()| false);
                }
                match written {
                    Ok(more) => {
                        busy |= more;
                        self.blocked_since = None;
                        pump.wrote = false;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let now = exchange.runtime().now();
                        // The write timeout counts from the last progress (as nginx's
                        // `send_timeout`): a client on a slow link, which takes less per
                        // wake-up than the server has for it, is still reading. Once our
                        // close is on its way it counts from the first wait after (the
                        // last progress of a turn that began open), so that a client
                        // taking a byte now and then cannot hold a closing socket (at a
                        // shutdown, say) for ever.
                        let progressed = pump.socket.progressed();
                        if (std::mem::take(&mut pump.wrote) || progressed) && open {
                            self.blocked_since = Some(now);
                        }
                        let since = *self.blocked_since.get_or_insert(now);
                        if now.saturating_duration_since(since) >= write_timeout {
                            tracing::debug!("websocket write timed out");
                            return Poll::Ready(());
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, "websocket write failed");
                        return Poll::Ready(());
                    }
                }
                if pump.phase == Phase::Closing
                    && pump.pending.is_empty()
                    && self.blocked_since.is_none()
                {
                    if pump.answered || self.read_ended {
                        // The server closes the connection first (RFC 6455 §7.1.1); a
                        // client that ended its side has nothing more to say.
                        pump.finish();
                        return Poll::Ready(());
                    }
                    if pump.broken || pump.deaf {
                        // After a message too big or a broken frame the decoder reads no
                        // further frame, so the client's close could not be seen: our FIN
                        // goes with our close at once. The client may still be sending (the
                        // rest of that message): what it sends is read and dropped until it
                        // closes too or the linger ends, so that it draws no reset, which
                        // could destroy our close before the client reads it (as after an
                        // HTTP refusal).
                        let _ = pump.socket.shutdown();
                    }
                    pump.phase = Phase::Lingering;
                    self.clock = Clock::Linger(later(
                        exchange.runtime().now(),
                        exchange.config().close_linger,
                    ));
                }
            }

            // The clock is read only when a deadline could have passed; also while busy, or
            // a client that keeps sending while we linger would keep the socket for ever.
            if matches!(self.clock, Clock::Linger(at) if at <= exchange.runtime().now()) {
                // The client never answered our close: still a FIN, not a reset.
                pump.finish();
                return Poll::Ready(());
            }
            if busy {
                // Let other tasks run, then go on.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let clock = match self.clock {
                Clock::None => None,
                Clock::Unfinished(since) => Some(later(since, message_timeout)),
                Clock::Linger(end) => Some(end),
            };
            let deadline = [
                clock,
                self.blocked_since.map(|since| later(since, write_timeout)),
                stall_at,
            ]
            .into_iter()
            .flatten()
            .min();
            self.alarm.set(exchange, deadline);
            // Lingering began in this turn, after the reads were skipped: read now, or the
            // socket would wait for the linger's deadline with neither a read nor its
            // readiness asked for (a client still uploading would stall, and its upload be
            // cut by the close).
            let mut again = over || (!was_reading && pump.reading());
            if pump.reading()
                && !paused
                && !self.may_read
                && !self.read_ended
                && pump.socket.poll_readable(cx).is_ready()
            {
                self.may_read = true;
                again = true;
            }
            if pump.phase != Phase::Lingering {
                if self.blocked_since.is_some() {
                    again |= pump.socket.poll_writable(cx).is_ready();
                    // A buffering stream (TLS) passed on some of what it holds while its
                    // writability waits for all of it: progress, counted now (not when
                    // the next wake-up comes, maybe the deadline's).
                    if pump.socket.progressed() {
                        pump.wrote = true;
                        again = true;
                    }
                } else if pump.phase == Phase::Open {
                    again |= exchange.poll_ready(cx).is_ready();
                }
            }
            again |= self.alarm.poll(cx).is_ready();
            if !again {
                return Poll::Pending;
            }
        }
    }
}

impl<S: Socket> Pump<S> {
    /// Whether the client's bytes are read: always while lingering (to see the client's
    /// close), else unless a message was too big or the protocol broken.
    fn reading(&self) -> bool {
        self.phase == Phase::Lingering || !(self.deaf || self.broken)
    }

    /// Reads once into the thread's buffer and handles what came (or handles the backlog).
    fn read(&mut self, exchange: &mut Link) -> io::Result<Read> {
        if self.backlog {
            if self.phase != Phase::Lingering {
                self.handle(exchange, &mut []);
                return Ok(Read::Data { short: false });
            }
            // Frames read before our close went out may hold the client's.
            if self.answered_close(&mut []) {
                return Ok(Read::CloseAnswered);
            }
        }
        with_read_buffer(|buf| {
            let n = match self.socket.try_read(buf) {
                Ok(0) => return Ok(Read::End),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Read::Empty),
                Err(e) => return Err(e),
            };
            exchange.outside().received(n);
            if self.phase == Phase::Lingering {
                if self.answered_close(&mut buf[..n]) {
                    return Ok(Read::CloseAnswered);
                }
            } else {
                self.handle(exchange, &mut buf[..n]);
            }
            Ok(Read::Data {
                short: n < buf.len() && !self.backlog,
            })
        })
    }

    /// Once our close frame is queued: whether `input` holds the client's. Everything else is
    /// dropped (also the rest of a message that was too big, which the decoder refuses).
    fn answered_close(&mut self, input: &mut [u8]) -> bool {
        self.backlog = false;
        // Only the client's close is looked for: its messages cost no inflating.
        self.decoder.discard_messages();
        let mut closed = false;
        let _ = self.decoder.feed(input, &mut |message| {
            closed |= matches!(message, Message::Close(_));
        });
        closed
    }

    /// Closes the write side after dropping what the client sent meanwhile, so that the
    /// close is a FIN and not a reset (which could destroy our last frames before the
    /// client reads them).
    fn finish(&mut self) {
        with_read_buffer(|buf| {
            for _ in 0..64 {
                match self.socket.try_read(buf) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        });
        let _ = self.socket.shutdown();
    }

    /// Decodes `input` and hands every message to the engine under one lock.
    fn handle(&mut self, exchange: &mut Link, input: &mut [u8]) {
        if self.phase != Phase::Open {
            // A close frame is on its way out: nothing more is answered (RFC 6455 §5.5.1,
            // one close frame each way) or handed to the session, which has ended. The
            // client's close frame only tells that, once ours is out, the connection may
            // be closed at once rather than after the linger.
            if self.answered_close(input) {
                self.answered = true;
            }
            return;
        }
        let decoder = &mut self.decoder;
        let pending = &mut self.pending;
        let pong_bytes = &mut self.pong_bytes;
        let finished = &mut self.finished;
        let mut control = false;
        let mut closed_by_client = None;
        let result = exchange.feed(|engine, now, id| {
            decoder.feed_at_most(input, FEED_BUDGET, &mut |message| {
                if closed_by_client.is_some() {
                    return;
                }
                match message {
                    Message::Text(text) => {
                        *finished = true;
                        engine.handle_ws_message(now, id, text);
                    }
                    Message::Binary(data) => {
                        *finished = true;
                        engine.handle_ws_binary(now, id, data);
                    }
                    // Either control frame shows the peer is alive (`Options::websocket_ping`).
                    Message::Ping(payload) => {
                        let before = pending.len();
                        encode_pong(payload, pending);
                        *pong_bytes += pending.len() - before;
                        control = true;
                        engine.handle_ws_pong(now, id);
                    }
                    Message::Pong(_) => {
                        control = true;
                        engine.handle_ws_pong(now, id);
                    }
                    Message::Close(close) => closed_by_client = Some(close.map(|(code, _)| code)),
                }
            })
        });
        self.backlog = matches!(result, Ok(true));
        // Control frames come between a message's fragments too: only with none under
        // way did they end outside a message.
        if control && !self.decoder.in_fragmented_message() {
            self.finished = true;
        }
        let result = result.map(drop);
        if self.pong_bytes > exchange.config().max_connection_queue_bytes {
            // Pongs the client does not read (a ping flood): its queue overflowed. (Our
            // own messages waiting for a slow client are bounded by the connection's
            // queue before they get here; they do not count.)
            tracing::warn!("websocket client does not read its pongs; dropping the connection");
            exchange.ws_failed();
            self.pending.clear();
            self.broken = true;
            self.phase = Phase::Closing;
            return;
        }
        if let Some(code) = closed_by_client {
            // Answer with the client's code, and end the session.
            encode_close(code.unwrap_or(1000), "", &mut self.pending);
            exchange.ws_closed();
            self.phase = Phase::Closing;
            self.answered = true;
            return;
        }
        match result {
            Ok(()) => {}
            Err(Error::TooBig) => {
                // The engine answers with its 1009 close; read nothing more.
                self.deaf = true;
                exchange.ws_too_big();
            }
            Err(error) => {
                tracing::debug!(%error, "websocket client broke the protocol");
                // The session ends now (§7.2), not when the linger does.
                exchange.ws_failed();
                encode_close(error.close_code(), "", &mut self.pending);
                self.broken = true;
                self.phase = Phase::Closing;
            }
        }
    }

    /// Encodes what the exchange queued and writes it with what was pending. `Ok(true)`:
    /// there is more to do at once; `Err(WouldBlock)`: the socket takes no more now.
    fn write(&mut self, exchange: &mut Link) -> io::Result<bool> {
        if !self.pending.is_empty() {
            self.wrote |= write_some(&mut self.socket, &mut self.pending, exchange)?;
            if !self.pending.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            // Written out: an idle connection holds no buffer, whatever it held before.
            self.pending = Vec::new();
            self.pong_bytes = 0;
        }
        if self.phase != Phase::Open {
            return self.socket.try_flush().map(|()| false);
        }
        with_write_buffer(|out| {
            let mut more = false;
            loop {
                if out.len() >= WRITE_BATCH {
                    more = true;
                    break;
                }
                match exchange.try_next() {
                    TryNext::Item(Content::WsText(text)) => match &mut self.deflater {
                        Some(deflater) => deflater.encode_text(&text, out),
                        None => encode_text(&text, out),
                    },
                    TryNext::Item(Content::WsPing) => encode_ping(out),
                    TryNext::Item(Content::WsClose { code, reason }) => {
                        encode_close(code, &reason, out);
                        self.phase = Phase::Closing;
                        break;
                    }
                    TryNext::Item(_) => {}
                    TryNext::Empty => break,
                    // The engine is done with the socket without a close frame (an
                    // overflow or an abort): drop the connection once this is out.
                    TryNext::Ended => {
                        self.phase = Phase::Closing;
                        self.broken = true;
                        break;
                    }
                }
            }
            let result = if out.is_empty() {
                Ok(())
            } else {
                let mut at = 0;
                let result = loop {
                    match self.socket.try_write(&out[at..]) {
                        Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => {
                            at += n;
                            if at == out.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.pending.extend_from_slice(&out[at..]);
                            break Err(e);
                        }
                        Err(e) => break Err(e),
                    }
                };
                exchange.outside().sent(at);
                self.wrote |= at > 0;
                result
            };
            result?;
            self.socket.try_flush()?;
            Ok(more)
        })
    }
}

/// Writes from the front of `pending`, removing what the socket took; whether it took any.
fn write_some<S: Socket>(
    socket: &mut S,
    pending: &mut Vec<u8>,
    exchange: &Link,
) -> io::Result<bool> {
    let mut at = 0;
    let result = loop {
        if at == pending.len() {
            break Ok(());
        }
        match socket.try_write(&pending[at..]) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(e) => break Err(e),
        }
    };
    pending.drain(..at);
    exchange.outside().sent(at);
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(at > 0),
        other => other.map(|()| at > 0),
    }
}
