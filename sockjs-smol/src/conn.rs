//! One TCP connection: HTTP/1.x requests through the core's `wire` codec, responses and
//! streams from the engine's outputs, then WebSocket after an upgrade.

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncWriteExt, future};
use http::{Response, StatusCode, header};
use sockjs_core::wire::{
    CONTINUE_RESPONSE, Decoded, DecodedRequest, Limits, RequestDecoder, hixie76,
};
use sockjs_core::{Handshake, RequestId};

use crate::queue::{self, TryRecv};
use crate::server::Inner;
use crate::shard::{ConnMsg, CountGuard, Shard};
use crate::ws;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

thread_local! {
    /// Where [`Io::read_into`] reads before copying into the connection's buffer.
    static SCRATCH: std::cell::RefCell<[u8; READ_CHUNK]> = const { std::cell::RefCell::new([0; READ_CHUNK]) };
}

/// Most bytes of stream chunks gathered into one write.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Most bytes buffered from a client while its response is pending (e.g. a pipelined
/// request); past it the connection is no longer read until the response ends.
const MAX_READ_AHEAD: usize = 64 * 1024;

/// What happens to the connection after a request.
enum Next {
    KeepAlive,
    Close,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve_connection(
    server: Arc<Inner>,
    stream: Async<TcpStream>,
    peer: SocketAddr,
) {
    let ctx = server.ctx.clone();
    let _count = CountGuard::new(&ctx.connections);
    let limits = Limits {
        max_headers: server.ctx.config.max_headers,
        max_head_bytes: server.ctx.config.max_head_bytes,
        max_body_bytes: server.max_body,
    };
    let mut conn = Conn {
        io: Io {
            stream,
            write_timeout: server.ctx.config.write_timeout,
            drained: AtomicBool::new(false),
        },
        buf: BytesMut::new(),
        decoder: RequestDecoder::new(limits),
        peer,
        server,
    };
    match conn.run().await {
        Ok(()) => tracing::trace!(%peer, "connection closed"),
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
    }
}

/// The socket, with the write timeout applied to every write.
pub(crate) struct Io {
    pub(crate) stream: Async<TcpStream>,
    pub(crate) write_timeout: Duration,
    /// The last read came back short or blocked (see [`Io::read_into`]).
    drained: AtomicBool,
}

impl Io {
    /// Writes all of `data` (one write call per HTTP chunk or frame; the socket has no
    /// user-space buffer, so nothing needs flushing), or fails after the write timeout.
    pub(crate) async fn write_all(&self, data: &[u8]) -> io::Result<()> {
        let write = async {
            let mut stream = &self.stream;
            stream.write_all(data).await
        };
        let timeout = async {
            Timer::after(self.write_timeout).await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))
        };
        future::or(write, timeout).await
    }

    /// Reads some bytes into `buf`. Cancel-safe: nothing is lost if the future is dropped.
    ///
    /// The bytes land in a per-thread scratch buffer first, so that no connection's task
    /// carries a read buffer of its own while it waits. After a short read the socket is
    /// taken to be empty and readiness is awaited before the next read (it fires at once
    /// if bytes arrived meanwhile), which saves the read that would only say `EAGAIN`.
    pub(crate) async fn read_into(&self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            if !self.drained.load(Ordering::Relaxed) {
                let read: io::Result<usize> = SCRATCH.with_borrow_mut(|chunk| {
                    let n = io::Read::read(&mut self.stream.get_ref(), &mut chunk[..])?;
                    buf.extend_from_slice(&chunk[..n]);
                    Ok(n)
                });
                match read {
                    Ok(n) => {
                        self.drained.store(n < READ_CHUNK, Ordering::Relaxed);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            // The connection's task is the socket's only reader: its waker stays registered
            // between waits, so interest is re-armed once per readiness event.
            poll_fn(|cx| self.stream.poll_readable(cx)).await?;
            self.drained.store(false, Ordering::Relaxed);
        }
    }

    /// Reads some bytes into `buf` unless `deadline` passes first (`Ok(None)`).
    pub(crate) async fn read_until(
        &self,
        buf: &mut BytesMut,
        deadline: Instant,
    ) -> io::Result<Option<usize>> {
        let read = async { self.read_into(buf).await.map(Some) };
        let timeout = async {
            Timer::at(deadline).await;
            Ok(None)
        };
        future::or(read, timeout).await
    }
}

struct Conn {
    io: Io,
    buf: BytesMut,
    decoder: RequestDecoder,
    peer: SocketAddr,
    server: Arc<Inner>,
}

/// Tells the engine a request's connection went away, unless its response completed.
struct PendingRequest {
    shard: Arc<Shard>,
    id: RequestId,
    done: bool,
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        if !self.done {
            self.shard.abort(self.id);
        }
    }
}

/// The receiving side of one request's outgoing queue.
pub(crate) type ConnRx = queue::Receiver<ConnMsg>;

impl Conn {
    async fn run(&mut self) -> io::Result<()> {
        let mut first = true;
        loop {
            let Some(request) = self.next_request(first).await? else {
                return Ok(());
            };
            first = false;
            match self.handle(request).await? {
                Next::KeepAlive => {}
                Next::Close => return Ok(()),
            }
        }
    }

    /// Reads and decodes the next request. `None`: the connection should close quietly
    /// (end of input, idle or read timeout, shutdown, or a decode error already answered).
    async fn next_request(&mut self, first: bool) -> io::Result<Option<DecodedRequest>> {
        let config = &self.server.ctx.config;
        let mut deadline = None;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Decoded::Request(request))) => return Ok(Some(request)),
                Ok(Some(Decoded::Continue)) => {
                    self.io.write_all(CONTINUE_RESPONSE).await?;
                    continue;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(peer = %self.peer, error = %err, "bad request");
                    let mut out = BytesMut::new();
                    err.encode_response(&mut out);
                    self.io.write_all(&out).await?;
                    return Ok(None);
                }
            }
            let idle = self.decoder.is_idle() && self.buf.is_empty();
            let until = if idle && !first {
                if self.server.ctx.is_shutting_down() {
                    return Ok(None);
                }
                Instant::now() + config.keep_alive_timeout
            } else {
                *deadline.get_or_insert_with(|| Instant::now() + config.header_read_timeout)
            };
            let read = self.io.read_until(&mut self.buf, until);
            let outcome = if idle {
                // An idle connection also ends when graceful shutdown starts.
                let shutdown = async {
                    let _ = self.server.ctx.shutdown_rx.recv().await;
                    Ok(None)
                };
                future::or(read, shutdown).await
            } else {
                read.await
            };
            match outcome? {
                Some(0) | None => return Ok(None),
                Some(_) => {}
            }
        }
    }

    /// Serves one request to completion.
    async fn handle(&mut self, decoded: DecodedRequest) -> io::Result<Next> {
        let encoder = decoded.response_encoder();
        let mut request = decoded.request;
        let mut out = BytesMut::new();
        if self.server.ctx.is_shutting_down() {
            let response = plain(StatusCode::SERVICE_UNAVAILABLE, "Server shutting down.\n");
            let mut response = response;
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            encoder.encode(&response, &mut out);
            self.io.write_all(&out).await?;
            return Ok(Next::Close);
        }
        let Some(shard) = self.server.route(request.uri().path()) else {
            let response = plain(StatusCode::NOT_FOUND, "404 Error: Page not found\n");
            let after = encoder.encode(&response, &mut out);
            self.io.write_all(&out).await?;
            return Ok(if after.must_close() {
                Next::Close
            } else {
                Next::KeepAlive
            });
        };
        request
            .extensions_mut()
            .insert(sockjs_core::PeerAddr(self.peer));
        let id = self.server.ctx.request_id();
        let (tx, rx) = queue::channel();
        let mut pending = PendingRequest {
            shard: shard.clone(),
            id,
            done: false,
        };
        shard.handle_request(id, tx, request);
        let mut stream = None;
        // A message already taken from the queue, to go out in the same write.
        let mut next = None;
        loop {
            let msg = match next.take() {
                Some(msg) => msg,
                None => {
                    if !out.is_empty() {
                        self.io.write_all(&out).await?;
                        out.clear();
                    }
                    let Some(msg) = self.recv_watching(&rx).await? else {
                        // The queue closed before the response ended: the connection
                        // overflowed or the engine dropped the request. Nothing sensible
                        // can follow.
                        return Ok(Next::Close);
                    };
                    msg
                }
            };
            match msg {
                ConnMsg::Respond(response) => {
                    pending.done = true;
                    let after = encoder.encode(&response, &mut out);
                    self.io.write_all(&out).await?;
                    return Ok(if after.must_close() {
                        Next::Close
                    } else {
                        Next::KeepAlive
                    });
                }
                ConnMsg::StreamStart(head) => {
                    stream = Some(encoder.start_stream(&head, &mut out));
                }
                ConnMsg::Chunk(data) => {
                    if let Some(stream) = &stream {
                        stream.encode_chunk(&data, &mut out);
                    }
                }
                ConnMsg::StreamEnd => {
                    pending.done = true;
                    let after = match stream.take() {
                        Some(stream) => stream.encode_end(&mut out),
                        None => return Ok(Next::Close),
                    };
                    self.io.write_all(&out).await?;
                    return Ok(if after.must_close() {
                        Next::Close
                    } else {
                        Next::KeepAlive
                    });
                }
                ConnMsg::Upgrade(upgrade) => {
                    if !out.is_empty() {
                        self.io.write_all(&out).await?;
                        out.clear();
                    }
                    let (head, handshake) = *upgrade;
                    let mut head = head.map(|()| Bytes::new());
                    if matches!(handshake, Handshake::Hixie76 { .. }) {
                        head.extensions_mut().insert(hixie76::HANDSHAKE_REASON);
                    }
                    encoder.encode(&head, &mut out);
                    self.io.write_all(&out).await?;
                    let max = shard.inspect(|engine| engine.options().max_message_size);
                    let buffered = std::mem::take(&mut self.buf);
                    let socket = ws::Socket {
                        io: &self.io,
                        shard: &shard,
                        id,
                        rx,
                        max_message_size: max,
                        header_read_timeout: self.server.ctx.config.header_read_timeout,
                    };
                    match handshake {
                        Handshake::Rfc6455 => socket.rfc6455(buffered).await,
                        Handshake::Hixie76 { key1, key2 } => {
                            socket.hixie76(buffered, key1, key2).await
                        }
                    }
                    // `pending` aborts the socket in the engine if it is still open.
                    return Ok(Next::Close);
                }
                ConnMsg::WsText(_) | ConnMsg::WsPing | ConnMsg::WsClose(..) => {}
            }
            // What is queued already goes out in the same write (each stream message still
            // its own HTTP chunk).
            if out.len() < COALESCE_LIMIT {
                if let TryRecv::Item(msg) = rx.try_recv() {
                    next = Some(msg);
                }
            }
        }
    }

    /// Waits for the next outgoing message while watching the socket: a pipelined request
    /// is buffered, and end of input or an error means the client went away (the caller
    /// returns the error, and dropping the request tells the engine).
    async fn recv_watching(&mut self, rx: &ConnRx) -> io::Result<Option<ConnMsg>> {
        enum Event {
            Msg(Option<ConnMsg>),
            Read(io::Result<usize>),
        }
        loop {
            match rx.try_recv() {
                TryRecv::Item(msg) => return Ok(Some(msg)),
                TryRecv::Closed => return Ok(None),
                TryRecv::Empty => {}
            }
            if self.buf.len() >= MAX_READ_AHEAD {
                return Ok(rx.recv().await);
            }
            let msg = async { Event::Msg(rx.recv().await) };
            let read = async { Event::Read(self.io.read_into(&mut self.buf).await) };
            match future::or(msg, read).await {
                Event::Msg(msg) => return Ok(msg),
                Event::Read(Ok(0)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "client closed the connection while a response was pending",
                    ));
                }
                Event::Read(Ok(_)) => {}
                Event::Read(Err(e)) => return Err(e),
            }
        }
    }
}

/// A small text/plain response.
pub(crate) fn plain(status: StatusCode, body: &'static str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}
