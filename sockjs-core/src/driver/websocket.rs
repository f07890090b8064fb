//! WebSockets after the 101: RFC 6455 through tungstenite, hixie-76 through the core's
//! framing, over any [`Socket`].
//!
//! One loop per socket both reads and writes: it reads every frame that is there, moves
//! every queued outgoing message into one buffer and writes it with one system call, then
//! waits for the socket, the queue or a deadline, whichever comes first. Reads wait for
//! readiness only after a read came back short or blocked.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Error as WsError, Message, WebSocket};

use crate::driver::exchange::{Exchange, TryNext};
use crate::driver::runtime::Timer;
use crate::driver::socket::Socket;
use crate::handshake::hixie76_answer;
use crate::wire::hixie76;
use crate::{Content, Handshake};

/// Bytes tungstenite reads at a time (its default, 128 KiB, is allocated per connection
/// and zero-filled before every read).
const WS_READ_BUFFER: usize = 4096;
/// Most incoming frames handled, and most outgoing bytes buffered, before the loop lets
/// other tasks run.
const READ_BATCH: usize = 64;
const WRITE_BATCH: usize = 64 * 1024;

/// Runs an upgraded connection to its end: the 101 head is written; `read_ahead` holds
/// bytes the client sent after its request (the first frames, or hixie-76's key3).
pub(crate) async fn run<S: Socket>(
    mut exchange: Exchange,
    socket: S,
    read_ahead: Vec<u8>,
    handshake: Handshake,
) {
    match handshake {
        Handshake::Rfc6455 => rfc6455(&mut exchange, socket, read_ahead).await,
        Handshake::Hixie76 { key1, key2 } => {
            hixie76(&mut exchange, socket, read_ahead, key1, key2).await;
        }
    }
    // Dropping the exchange tells the engine, unless the socket closed cleanly.
}

/// tungstenite's view of the socket. After a short read the socket is most likely empty,
/// so the next read reports `WouldBlock` without a system call and the loop waits for
/// readiness, which fires at once if bytes arrived meanwhile.
struct Bridge<S> {
    socket: S,
    drained: bool,
}

impl<S: Socket> io::Read for Bridge<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.drained {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match self.socket.try_read(buf) {
            Ok(n) => {
                self.drained = n < buf.len();
                Ok(n)
            }
            Err(e) => {
                self.drained = e.kind() == io::ErrorKind::WouldBlock;
                Err(e)
            }
        }
    }
}

impl<S: Socket> io::Write for Bridge<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.try_flush()
    }
}

/// A deadline the loop may wait on, with one timer reused for every deadline.
struct Alarm {
    timer: Option<Pin<Box<dyn Timer>>>,
    at: Option<Instant>,
}

impl Alarm {
    fn new() -> Alarm {
        Alarm {
            timer: None,
            at: None,
        }
    }

    fn set(&mut self, exchange: &Exchange, at: Option<Instant>) {
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

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match (self.at, self.timer.as_mut()) {
            (Some(_), Some(timer)) => timer.as_mut().poll(cx),
            _ => Poll::Pending,
        }
    }
}

async fn rfc6455<S: Socket>(exchange: &mut Exchange, socket: S, read_ahead: Vec<u8>) {
    let max = exchange.options().max_message_size;
    let config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let bridge = Bridge {
        socket,
        drained: false,
    };
    let mut ws = WebSocket::from_partially_read(bridge, read_ahead, Role::Server, Some(config));
    let write_timeout = exchange.config().write_timeout;
    let linger = exchange.config().close_linger;
    let runtime = exchange.runtime().clone();
    let mut alarm = Alarm::new();

    // The reader stops after the client sent a message over the limit (the engine then
    // queued a close, which the writer still sends within the write timeout).
    let mut reading = true;
    // The writer stops once it sent a close frame, its queue ended or a write failed; the
    // reader then gets the close linger to see the client's side of the close.
    let mut writing = true;
    // Deadline of the last phase (one of the two above stopped).
    let mut end: Option<Instant> = None;
    // Bytes tungstenite holds that the socket did not take yet, since when.
    let mut blocked_since: Option<Instant> = None;
    // A close frame is queued or the queue ended: flush, then the writer stops.
    let mut closing = false;
    // Whether a read may find bytes (otherwise wait for readiness first).
    let mut may_read = true;
    loop {
        let mut busy = false;
        if reading && may_read {
            let mut budget = READ_BATCH;
            loop {
                if budget == 0 {
                    busy = true;
                    break;
                }
                budget -= 1;
                match ws.read() {
                    Ok(Message::Text(text)) => exchange.ws_text(text.as_str()),
                    Ok(Message::Binary(data)) => exchange.ws_binary(&data),
                    // A close frame: tungstenite queues the reply, sent by the next write.
                    Ok(Message::Close(_)) => exchange.ws_closed(),
                    Ok(_) => {}
                    Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        may_read = false;
                        break;
                    }
                    Err(WsError::Capacity(_)) => {
                        exchange.ws_too_big();
                        if !writing {
                            return;
                        }
                        reading = false;
                        end = Some(runtime.now() + write_timeout);
                        break;
                    }
                    // The end after the client's close frame (already reported).
                    Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                        exchange.ws_closed();
                        return;
                    }
                    // The connection dropped without a close handshake, or the client broke
                    // the protocol: dropping the exchange tells the engine it aborted.
                    Err(error) => {
                        tracing::debug!(%error, "websocket read ended");
                        return;
                    }
                }
            }
        }

        if writing {
            let mut stop = false;
            let mut wrote = false;
            if blocked_since.is_none() && !closing {
                let mut batch = 0;
                while batch < WRITE_BATCH {
                    let message = match exchange.try_next() {
                        TryNext::Item(Content::WsText(text)) => {
                            batch += text.len();
                            Message::text(text)
                        }
                        TryNext::Item(Content::WsPing) => Message::Ping(Default::default()),
                        TryNext::Item(Content::WsClose { code, reason }) => {
                            let frame = CloseFrame {
                                code: CloseCode::from(code),
                                reason: String::from(reason).into(),
                            };
                            closing = true;
                            wrote = true;
                            if ws.close(Some(frame)).is_err() {
                                stop = true;
                            }
                            break;
                        }
                        TryNext::Item(_) => continue,
                        TryNext::Empty => break,
                        // The exchange ended: write what is buffered, then stop.
                        TryNext::Ended => {
                            closing = true;
                            break;
                        }
                    };
                    wrote = true;
                    match ws.write(message) {
                        Ok(()) => {}
                        // Buffered; the flush below goes on with it.
                        Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            stop = true;
                            break;
                        }
                    }
                    if batch >= WRITE_BATCH {
                        busy = true;
                    }
                }
            }
            if !stop && (wrote || closing || blocked_since.is_some()) {
                match ws.flush() {
                    Ok(()) => {
                        blocked_since = None;
                        stop = closing;
                    }
                    Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        let now = runtime.now();
                        let since = *blocked_since.get_or_insert(now);
                        stop = now.saturating_duration_since(since) >= write_timeout;
                    }
                    Err(_) => stop = true,
                }
            }
            if stop {
                writing = false;
                if !reading {
                    // The rest of the oversize message may still be unread: consume what
                    // is there, so that closing sends FIN rather than RST (which could
                    // destroy the close frame before the client reads it).
                    discard_input(&mut ws.get_mut().socket);
                    let _ = ws.get_mut().socket.shutdown();
                    return;
                }
                end = Some(runtime.now() + linger);
            }
        }

        if busy {
            yield_now().await;
            continue;
        }

        let now = runtime.now();
        let deadline = match (end, blocked_since) {
            (Some(end), Some(since)) => Some(end.min(since + write_timeout)),
            (end, since) => end.or(since.map(|since| since + write_timeout)),
        };
        if deadline.is_some_and(|at| at <= now) {
            if end.is_some_and(|at| at <= now) {
                return;
            }
            continue;
        }
        alarm.set(exchange, deadline);
        let wait_read = reading && !may_read;
        let wait_write = writing && blocked_since.is_some();
        let wait_queue = writing && blocked_since.is_none() && !closing;
        let readable = poll_fn(|cx| {
            let mut readable = false;
            let socket = &mut ws.get_mut().socket;
            if wait_read && socket.poll_readable(cx).is_ready() {
                readable = true;
            }
            let mut ready = readable;
            if wait_write && socket.poll_writable(cx).is_ready() {
                ready = true;
            }
            if wait_queue && exchange.poll_ready(cx).is_ready() {
                ready = true;
            }
            if alarm.poll(cx).is_ready() {
                ready = true;
            }
            if ready {
                Poll::Ready(readable)
            } else {
                Poll::Pending
            }
        })
        .await;
        if readable {
            may_read = true;
            ws.get_mut().drained = false;
        }
        if end.is_some_and(|at| at <= runtime.now()) {
            return;
        }
    }
}

/// Hixie-76: read key3 (maybe already read ahead), answer it, then exchange
/// `0x00 text 0xFF` frames.
async fn hixie76<S: Socket>(
    exchange: &mut Exchange,
    mut socket: S,
    read_ahead: Vec<u8>,
    key1: u32,
    key2: u32,
) {
    let runtime = exchange.runtime().clone();
    let config = exchange.config().clone();
    let mut buf = BytesMut::from(&read_ahead[..]);
    let mut alarm = Alarm::new();
    alarm.set(exchange, Some(runtime.now() + config.header_read_timeout));
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
    if write_all(&mut socket, &out, exchange, &mut alarm)
        .await
        .is_err()
    {
        return;
    }
    let mut decoder = hixie76::Decoder::new(exchange.options().max_message_size);
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(hixie76::Frame::Text(text))) => exchange.ws_text(&text),
                Ok(Some(hixie76::Frame::Close)) => {
                    let _ =
                        write_all(&mut socket, hixie76::CLOSE_FRAME, exchange, &mut alarm).await;
                    let _ = socket.shutdown();
                    return exchange.ws_closed();
                }
                Ok(None) => break,
                Err(hixie76::Error::MessageTooLarge) => {
                    exchange.ws_too_big();
                    // The engine queued its close at once: write what is queued.
                    while let TryNext::Item(content) = exchange.try_next() {
                        if !write_hixie(&mut socket, content, &mut out, exchange, &mut alarm).await
                        {
                            break;
                        }
                    }
                    return;
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
        }
        alarm.set(exchange, None);
        let event = poll_fn(|cx| {
            if exchange.poll_ready(cx).is_ready() {
                return Poll::Ready(Event::Queue);
            }
            socket.poll_readable(cx).map(|_| Event::Read)
        })
        .await;
        match event {
            Event::Queue => match exchange.try_next() {
                TryNext::Item(content) => {
                    if !write_hixie(&mut socket, content, &mut out, exchange, &mut alarm).await {
                        return;
                    }
                }
                TryNext::Empty => {}
                TryNext::Ended => return,
            },
            Event::Read => match read_now(&mut socket, &mut buf) {
                Ok(Some(0)) | Err(_) => return,
                Ok(_) => {}
            },
        }
    }
}

/// Writes one outgoing item as hixie-76; `false` once the socket is done.
async fn write_hixie<S: Socket>(
    socket: &mut S,
    content: Content,
    out: &mut BytesMut,
    exchange: &Exchange,
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
    if write_all(socket, out, exchange, alarm).await.is_err() || last {
        let _ = socket.shutdown();
        return false;
    }
    true
}

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

/// Writes all of `data`, or fails after the write timeout.
async fn write_all<S: Socket>(
    socket: &mut S,
    mut data: &[u8],
    exchange: &Exchange,
    alarm: &mut Alarm,
) -> io::Result<()> {
    let timeout = exchange.config().write_timeout;
    let mut since = None;
    loop {
        let step = if data.is_empty() {
            socket.try_flush().map(|()| 0)
        } else {
            socket.try_write(data)
        };
        match step {
            Ok(0) if data.is_empty() => return Ok(()),
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                data = &data[n..];
                since = None;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let start = *since.get_or_insert_with(|| exchange.runtime().now());
        alarm.set(exchange, Some(start + timeout));
        let writable = poll_fn(|cx| {
            if socket.poll_writable(cx).is_ready() {
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

/// Reads and drops what the client already sent, without waiting (bounded).
fn discard_input<S: Socket>(socket: &mut S) {
    let mut scratch = [0u8; 4096];
    for _ in 0..64 {
        match socket.try_read(&mut scratch) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// Lets other tasks run once.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}
