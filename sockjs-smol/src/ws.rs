//! WebSocket after the engine accepted an upgrade: RFC 6455 through tungstenite, and
//! hixie-76 through the core's framing.

use std::future::{Future, poll_fn};
use std::io;
use std::net::TcpStream;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::tungstenite::{Error as WsError, Message, WebSocket};
use bytes::BytesMut;
use futures_lite::future;
use sockjs_core::RequestId;
use sockjs_core::handshake::hixie76_answer;
use sockjs_core::wire::hixie76;

use crate::conn::{ConnRx, Io};
use crate::queue::TryRecv;
use crate::shard::{ConnMsg, Shard};

/// How long to wait for the peer's side of the closing handshake after sending a close
/// frame, before dropping the TCP connection.
const CLOSE_LINGER: Duration = Duration::from_millis(500);

/// Bytes tungstenite reads at a time (its default, 128 KiB, is allocated per connection
/// and zero-filled before every read).
const WS_READ_BUFFER: usize = 4096;

/// Most incoming frames handled, and most outgoing bytes buffered, before the loop lets
/// other tasks run.
const READ_BATCH: usize = 64;
const WRITE_BATCH: usize = 64 * 1024;

/// tungstenite's view of the socket: non-blocking reads and writes on the descriptor
/// itself; [`Socket::rfc6455`] awaits readiness.
struct Direct<'a> {
    stream: &'a TcpStream,
    /// A read came back short: the socket is most likely empty, so the next read reports
    /// `WouldBlock` without a system call and the loop waits for readiness, which fires
    /// at once if bytes did arrive meanwhile.
    drained: bool,
}

impl io::Read for Direct<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.drained {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match (&mut &*self.stream).read(buf) {
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

impl io::Write for Direct<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&mut &*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An upgraded connection and the engine request it belongs to.
pub(crate) struct Socket<'a> {
    pub(crate) io: &'a Io,
    pub(crate) shard: &'a std::sync::Arc<Shard>,
    pub(crate) id: RequestId,
    pub(crate) rx: ConnRx,
    pub(crate) max_message_size: usize,
    pub(crate) header_read_timeout: Duration,
}

impl Socket<'_> {
    fn message(&self, text: &str) {
        let id = self.id;
        self.shard
            .with_engine(|st, now| st.engine.handle_ws_message(now, id, text));
    }

    fn closed(&self) {
        let id = self.id;
        self.shard
            .with_engine(|st, now| st.engine.handle_ws_closed(now, id));
    }

    fn too_big(&self) {
        let id = self.id;
        self.shard
            .with_engine(|st, now| st.engine.handle_ws_too_big(now, id));
    }

    /// RFC 6455: the 101 head is written; `buffered` holds bytes the client sent after its
    /// request.
    ///
    /// One loop both reads and writes: it reads every frame that is there, moves every
    /// queued outgoing message into tungstenite's buffer and writes them with one system
    /// call, then waits for the socket or the queue, whichever comes first. Socket
    /// readiness is awaited only after a read came back short or blocked.
    pub(crate) async fn rfc6455(self, buffered: BytesMut) {
        let config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size));
        let direct = Direct {
            stream: self.io.stream.get_ref(),
            drained: false,
        };
        let mut ws =
            WebSocket::from_partially_read(direct, buffered.to_vec(), Role::Server, Some(config));
        let write_timeout = self.io.write_timeout;

        // The reader stops after the client sent a message over the limit (the engine then
        // queued a close, which the writer still sends within the write timeout).
        let mut reading = true;
        // The writer stops once it sent a close frame, its queue ended or a write failed;
        // the reader then gets `CLOSE_LINGER` to see the client's side of the close.
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
            // Read everything that is there, up to a batch.
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
                        Ok(Message::Text(text)) => self.message(text.as_str()),
                        // A close frame: tungstenite queues the reply, sent by the next read.
                        Ok(Message::Close(_)) => self.closed(),
                        Ok(_) => {}
                        Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                            may_read = false;
                            break;
                        }
                        Err(WsError::Capacity(_)) => {
                            self.too_big();
                            if !writing {
                                return;
                            }
                            reading = false;
                            end = Some(Instant::now() + write_timeout);
                            break;
                        }
                        Err(_) => {
                            self.closed();
                            return;
                        }
                    }
                }
            }

            // Move the queued messages into tungstenite's buffer and write them at once.
            if writing {
                let mut stop = false;
                let mut wrote = false;
                if blocked_since.is_none() && !closing {
                    let mut batch = 0;
                    while batch < WRITE_BATCH {
                        let message = match self.rx.try_recv() {
                            TryRecv::Item(ConnMsg::WsText(text)) => {
                                batch += text.len();
                                Message::text(text)
                            }
                            TryRecv::Item(ConnMsg::WsPing) => Message::Ping(Default::default()),
                            TryRecv::Item(ConnMsg::WsClose(code, reason)) => {
                                let frame = CloseFrame {
                                    code: CloseCode::from(code),
                                    reason: reason.into(),
                                };
                                closing = true;
                                wrote = true;
                                if ws.close(Some(frame)).is_err() {
                                    stop = true;
                                }
                                break;
                            }
                            TryRecv::Item(_) => continue,
                            TryRecv::Empty => break,
                            // The queue ended: write what is buffered, then stop.
                            TryRecv::Closed => {
                                closing = true;
                                break;
                            }
                        };
                        wrote = true;
                        match ws.write(message) {
                            Ok(()) => {}
                            // Queued; the flush below goes on with it.
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
                            let since = *blocked_since.get_or_insert_with(Instant::now);
                            stop = since.elapsed() >= write_timeout;
                        }
                        Err(_) => stop = true,
                    }
                }
                if stop {
                    writing = false;
                    if !reading {
                        // The rest of the oversize message may still be unread: consume
                        // what is there, so that closing sends FIN rather than RST (which
                        // could destroy the close frame before the client reads it).
                        discard_input(self.io.stream.get_ref());
                        return;
                    }
                    end = Some(Instant::now() + CLOSE_LINGER);
                }
            }

            if busy {
                future::yield_now().await;
                continue;
            }

            // Wait for the socket, the queue or a deadline.
            let deadline = match (end, blocked_since) {
                (Some(end), Some(since)) => Some(end.min(since + write_timeout)),
                (end, since) => end.or(since.map(|since| since + write_timeout)),
            };
            if deadline.is_some_and(|at| at <= Instant::now()) {
                if end.is_some_and(|at| at <= Instant::now()) {
                    return;
                }
                continue;
            }
            let mut timer = deadline.map(Timer::at);
            let stream = &self.io.stream;
            let rx = &self.rx;
            let wait_read = reading && !may_read;
            let wait_write = writing && blocked_since.is_some();
            let wait_queue = writing && blocked_since.is_none() && !closing;
            let readable = poll_fn(|cx| {
                let mut readable = false;
                if wait_read && stream.poll_readable(cx).is_ready() {
                    readable = true;
                }
                let mut ready = readable;
                if wait_write && stream.poll_writable(cx).is_ready() {
                    ready = true;
                }
                if wait_queue && rx.poll_ready(cx).is_ready() {
                    ready = true;
                }
                if let Some(timer) = timer.as_mut() {
                    if Pin::new(timer).poll(cx).is_ready() {
                        ready = true;
                    }
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
            if end.is_some_and(|at| at <= Instant::now()) {
                return;
            }
        }
    }

    /// Hixie-76: the 101 head is written; read key3 (maybe already in `buf`), answer it,
    /// then exchange `0x00 text 0xFF` frames.
    pub(crate) async fn hixie76(self, mut buf: BytesMut, key1: u32, key2: u32) {
        let deadline = Instant::now() + self.header_read_timeout;
        while buf.len() < 8 {
            match self.io.read_until(&mut buf, deadline).await {
                Ok(Some(n)) if n > 0 => {}
                _ => return self.closed(),
            }
        }
        let mut key3 = [0u8; 8];
        key3.copy_from_slice(&buf.split_to(8));
        if self
            .io
            .write_all(&hixie76_answer(key1, key2, key3))
            .await
            .is_err()
        {
            return self.closed();
        }
        let mut decoder = hixie76::Decoder::new(self.max_message_size);
        let mut out = BytesMut::new();
        enum Event {
            Msg(Option<ConnMsg>),
            Read(std::io::Result<usize>),
        }
        loop {
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(hixie76::Frame::Text(text))) => self.message(&text),
                    Ok(Some(hixie76::Frame::Close)) => {
                        let _ = self.io.write_all(hixie76::CLOSE_FRAME).await;
                        return self.closed();
                    }
                    Ok(None) => break,
                    Err(hixie76::Error::MessageTooLarge) => {
                        self.too_big();
                        // The engine queued its close synchronously; write what is queued.
                        while let TryRecv::Item(msg) = self.rx.try_recv() {
                            if self.write_hixie(msg, &mut out).await.is_err() {
                                break;
                            }
                        }
                        return;
                    }
                    Err(_) => return self.closed(),
                }
            }
            let msg = async { Event::Msg(self.rx.recv().await) };
            let read = async { Event::Read(self.io.read_into(&mut buf).await) };
            match future::or(msg, read).await {
                Event::Msg(Some(msg)) => match self.write_hixie(msg, &mut out).await {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return,
                },
                Event::Msg(None) => return,
                Event::Read(Ok(0)) | Event::Read(Err(_)) => return self.closed(),
                Event::Read(Ok(_)) => {}
            }
        }
    }

    /// Writes one outgoing message as hixie-76; `Ok(false)` once the socket is closed.
    async fn write_hixie(&self, msg: ConnMsg, out: &mut BytesMut) -> std::io::Result<bool> {
        out.clear();
        match msg {
            ConnMsg::WsText(text) => hixie76::encode_text(&text, out),
            ConnMsg::WsClose(..) => {
                hixie76::encode_close(out);
                self.io.write_all(out).await?;
                return Ok(false);
            }
            // Hixie-76 has no ping.
            _ => return Ok(true),
        }
        self.io.write_all(out).await?;
        Ok(true)
    }
}

/// Reads and drops what the client already sent, without waiting (bounded).
fn discard_input(stream: &TcpStream) {
    let mut scratch = [0u8; 4096];
    for _ in 0..64 {
        match io::Read::read(&mut &*stream, &mut scratch) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}
