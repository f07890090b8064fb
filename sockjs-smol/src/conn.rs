//! One connection (a TCP socket, or any stream through the driver's `Polled`): HTTP/1.x
//! requests through the core's `wire` codec, what each request's [`Exchange`] yields
//! written back, and the WebSocket after an upgrade.

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use async_io::Timer;
use bytes::{Bytes, BytesMut};
use futures_lite::{Stream, future};
use http::{HeaderValue, Request, Response, StatusCode, header};
use sockjs_core::driver::scratch::{READ_BUFFER, SpareBuffer, with_read_buffer};
use sockjs_core::driver::web::{BodyError, not_found, plain};
use sockjs_core::driver::{Connection, ConnectionProbe, Exchange, Socket, TryNext, write_all};
use sockjs_core::wire::{
    CONTINUE_RESPONSE, Decoded, DecodedRequest, Limits, RequestDecoder, ResponseEncoder, hixie76,
};
use sockjs_core::{Content, Handshake, PeerAddr};

use crate::server::Shared;

/// Most bytes of stream chunks gathered into one write.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Most bytes buffered from a client while its response is pending (e.g. a pipelined
/// request); past it the connection is not read until the response ends.
const MAX_READ_AHEAD: usize = 64 * 1024;

/// What happens to the connection after a request.
enum Next {
    KeepAlive,
    Close,
    /// It became a WebSocket.
    Upgrade(Box<Upgraded>),
}

/// Where a request went, before anything is written.
enum Routed {
    /// An answer of the server's own (404, the fallback's, 503 while shutting down);
    /// `close`: the connection closes after it.
    Answer {
        response: Response<Bytes>,
        close: bool,
    },
    /// A service took the request.
    Exchange(Exchange),
}

/// A connection past its 101: what its WebSocket pump needs.
struct Upgraded {
    exchange: Exchange,
    read_ahead: Vec<u8>,
    handshake: Handshake,
}

/// Serves one connection until it closes, or becomes a WebSocket (which goes on in a task
/// of its own). Requests go to their service with `peer`, `probe` when there is one, and
/// `tls`.
pub(crate) async fn serve<S: Socket>(
    shared: Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    probe: Option<ConnectionProbe>,
    tls: bool,
) -> io::Result<()> {
    let config = &shared.config;
    let limits = Limits {
        max_headers: config.max_headers,
        max_head_bytes: config.max_head_bytes,
        max_body_bytes: shared.max_body,
    };
    let mut conn = Conn {
        stream,
        drained: AtomicBool::new(false),
        buf: BytesMut::new(),
        decoder: RequestDecoder::new(limits),
        peer,
        shared: shared.clone(),
        connection: Connection::new()
            .with_peer(peer)
            .with_tls(tls)
            .with_probe(probe),
        signal: Some(Box::pin(shared.handle.signal.clone())),
        read_timer: ReadTimer::default(),
    };
    let Some(upgraded) = conn.run().await? else {
        // The end of the last response (TLS: its close_notify), then FIN.
        return conn.stream.shutdown();
    };
    // The WebSocket gets a task of its own, so that it does not carry this one's HTTP
    // state for the rest of its life.
    let Upgraded {
        exchange,
        read_ahead,
        handshake,
    } = *upgraded;
    let websocket = exchange.serve_websocket(conn.stream, read_ahead, handshake);
    shared.spawn_counted(websocket);
    Ok(())
}

struct Conn<S> {
    stream: S,
    /// The last read came back short or blocked (see [`Conn::read`]).
    drained: AtomicBool,
    buf: BytesMut,
    decoder: RequestDecoder,
    peer: SocketAddr,
    shared: Arc<Shared>,
    /// What each request's service is told of the connection.
    connection: Connection,
    /// The server's shutdown signal, this connection's own: its listener, made the first
    /// time the connection waits idle, stays for the next waits (one allocation per
    /// connection, not one per request; pinned, as it holds the listener inline). Out of
    /// the struct while a wait polls it.
    signal: Option<Pin<Box<async_channel::Receiver<()>>>>,
    /// The read deadline's timer, kept from one wait to the next.
    read_timer: ReadTimer,
}

/// A read deadline's timer, re-armed lazily. Each wait for a request has a deadline, and
/// most are later than the one before (the next request's head is due a header read
/// timeout after the last response). A timer made per wait costs the reactor an insertion,
/// a removal and a wake-up of its poller every time; this one stays armed at the earliest
/// deadline it was given and, when it fires early, is set again to the deadline now due:
/// about one re-arm per header read timeout instead of one per request.
#[derive(Debug)]
struct ReadTimer {
    timer: Timer,
    /// Where `timer` is armed; `None` once it has fired (or before the first wait).
    armed: Option<Instant>,
}

impl Default for ReadTimer {
    fn default() -> Self {
        ReadTimer {
            timer: Timer::never(),
            armed: None,
        }
    }
}

impl ReadTimer {
    /// Arms the timer for `deadline` unless it is already armed no later.
    fn arm(&mut self, deadline: Instant) {
        if self.armed.is_none_or(|armed| armed > deadline) {
            self.timer.set_at(deadline);
            self.armed = Some(deadline);
        }
    }

    /// Waits until the timer fires.
    async fn fired(&mut self) {
        (&mut self.timer).await;
        self.armed = None;
    }
}

impl<S: Socket> Conn<S> {
    /// Serves requests until the connection closes, or becomes a WebSocket.
    async fn run(&mut self) -> io::Result<Option<Box<Upgraded>>> {
        loop {
            let Some(request) = self.next_request().await? else {
                return Ok(None);
            };
            match self.handle(request).await? {
                Next::KeepAlive => {}
                Next::Close => return Ok(None),
                Next::Upgrade(upgraded) => return Ok(Some(upgraded)),
            }
        }
    }

    /// Writes all of `data` (one system call per HTTP chunk or frame where the socket
    /// takes it), or fails after the write timeout.
    async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let write = write_all(&mut self.stream, data);
        let timeout = async {
            Timer::after(self.shared.config.write_timeout).await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))
        };
        future::or(write, timeout).await
    }

    /// Reads some bytes into the buffer (cancel-safe). After a short read the socket is
    /// taken to be empty and readiness is awaited before the next read (it fires at once if
    /// bytes arrived meanwhile), which saves the read that would only say `EAGAIN`.
    async fn read(&mut self) -> io::Result<usize> {
        loop {
            if !self.drained.load(Ordering::Relaxed) {
                let (stream, buf) = (&mut self.stream, &mut self.buf);
                let read: io::Result<usize> = with_read_buffer(|chunk| {
                    let n = stream.try_read(&mut chunk[..])?;
                    buf.extend_from_slice(&chunk[..n]);
                    Ok(n)
                });
                match read {
                    Ok(n) => {
                        self.drained.store(n < READ_BUFFER, Ordering::Relaxed);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            poll_fn(|cx| self.stream.poll_readable(cx)).await?;
            self.drained.store(false, Ordering::Relaxed);
        }
    }

    /// Reads and decodes the next request. `None`: close quietly (end of input, a
    /// timeout, shutdown, or a decode error already answered).
    async fn next_request(&mut self) -> io::Result<Option<DecodedRequest>> {
        let shared = self.shared.clone();
        let config = &shared.config;
        // The head must arrive within the header read timeout of the connection going idle;
        // the body within the body read timeout of its head.
        let mut deadline = Instant::now() + config.header_read_timeout;
        let mut reading_body = false;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Decoded::Request(request))) => return Ok(Some(request)),
                Ok(Some(Decoded::Continue)) => {
                    self.write(CONTINUE_RESPONSE).await?;
                    continue;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(peer = %self.peer, error = %err, "bad request");
                    shared.handle.unrouted.count(err.status());
                    let mut out = BytesMut::new();
                    err.encode_response(&mut out);
                    self.write(&out).await?;
                    return Ok(None);
                }
            }
            if !reading_body && !self.decoder.is_idle() {
                reading_body = true;
                deadline = Instant::now() + config.body_read_timeout;
            }
            let idle = self.decoder.is_idle() && self.buf.is_empty();
            if idle && self.shared.is_shutting_down() {
                return Ok(None);
            }
            enum Wake {
                Read(io::Result<usize>),
                Timeout,
                Shutdown,
            }
            let mut signal = self.signal.take();
            let mut read_timer = std::mem::take(&mut self.read_timer);
            read_timer.arm(deadline);
            let read = async { Wake::Read(self.read().await) };
            let timeout = async {
                read_timer.fired().await;
                Wake::Timeout
            };
            let stop = async {
                // An idle connection also ends when graceful shutdown starts.
                match signal.as_mut().filter(|_| idle) {
                    // Closed, never sent on: the end of the stream is the signal.
                    Some(signal) => {
                        while poll_fn(|cx| signal.as_mut().poll_next(cx)).await.is_some() {}
                        Wake::Shutdown
                    }
                    None => future::pending().await,
                }
            };
            let woken = future::or(read, future::or(timeout, stop)).await;
            self.signal = signal;
            self.read_timer = read_timer;
            match woken {
                Wake::Read(Ok(0)) | Wake::Shutdown => return Ok(None),
                Wake::Read(Ok(_)) => {}
                Wake::Read(Err(e)) => return Err(e),
                // Armed for an earlier wait's deadline: set again for this one's.
                Wake::Timeout if Instant::now() < deadline => {}
                Wake::Timeout if reading_body => {
                    shared.handle.unrouted.count(StatusCode::REQUEST_TIMEOUT);
                    let mut out = BytesMut::new();
                    let encoder = ResponseEncoder::new(http::Version::HTTP_11, false);
                    encoder.encode(&BodyError::TimedOut.response(), &mut out);
                    self.write(&out).await?;
                    return Ok(None);
                }
                Wake::Timeout => return Ok(None),
            }
        }
    }

    /// Where a request goes, decided (and the request handed on) before anything is
    /// written.
    fn route(&self, mut request: Request<Bytes>) -> Routed {
        if self.shared.is_shutting_down() {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            match self.shared.route(request.uri().path()) {
                Some(service) => service.answered(request.uri().path(), status),
                None => self.shared.handle.unrouted.count(status),
            }
            let mut response = plain(status, "Server shutting down.\n");
            self.shared.decorate(response.headers_mut());
            return Routed::Answer {
                response: closing(response),
                close: true,
            };
        }
        let Some(service) = self.shared.route(request.uri().path()) else {
            let mut response = match &self.shared.fallback {
                Some(fallback) => {
                    request.extensions_mut().insert(PeerAddr(self.peer));
                    fallback(request)
                }
                None => {
                    self.shared.handle.unrouted.count(StatusCode::NOT_FOUND);
                    not_found()
                }
            };
            self.shared.decorate(response.headers_mut());
            return Routed::Answer {
                response,
                close: false,
            };
        };
        Routed::Exchange(service.submit_on(request, &self.connection))
    }

    /// Serves one request to completion.
    ///
    /// The request is routed and handed on before the returned future starts, so that the
    /// future, which a connection holds for as long as its response stays open (a stream,
    /// a long poll), holds what came of the request and not the request itself (an
    /// `async fn` keeps its arguments for its whole life, beside what they were moved
    /// into: 1,536 B as an `async fn`, 752 B now).
    fn handle(&mut self, decoded: DecodedRequest) -> impl Future<Output = io::Result<Next>> + '_ {
        let encoder = decoded.response_encoder();
        let mut routed = self.route(decoded.request);
        async move {
            let mut out = SpareBuffer::default();
            let finish = |after: sockjs_core::wire::AfterResponse| {
                if after.must_close() {
                    Next::Close
                } else {
                    Next::KeepAlive
                }
            };
            let exchange = match &mut routed {
                Routed::Exchange(exchange) => exchange,
                Routed::Answer { response, close } => {
                    let after = encoder.encode(response, &mut out);
                    self.write(&out).await?;
                    return Ok(if *close { Next::Close } else { finish(after) });
                }
            };
            let mut stream = None;
            // An item already taken from the exchange, to go out in the same write.
            let mut next = None;
            loop {
                let content = match next.take() {
                    Some(content) => content,
                    None => {
                        if !out.is_empty() {
                            self.write(&out).await?;
                        }
                        out.release();
                        match self.watch(exchange).await? {
                            Some(content) => content,
                            // The exchange ended without its last item (the connection
                            // overflowed): nothing sensible can follow.
                            None => return Ok(Next::Close),
                        }
                    }
                };
                match content {
                    Content::Response(mut response) => {
                        self.shared.decorate(response.headers_mut());
                        let after = encoder.encode(&*response, &mut out);
                        self.write(&out).await?;
                        return Ok(finish(after));
                    }
                    Content::StreamStart(mut head) => {
                        self.shared.decorate(head.headers_mut());
                        stream = Some(encoder.start_stream(&*head, &mut out));
                    }
                    Content::Chunk(data) => {
                        if let Some(stream) = &stream {
                            stream.encode_chunk(&data, &mut out);
                        }
                    }
                    Content::StreamEnd => {
                        let Some(stream) = stream.take() else {
                            return Ok(Next::Close);
                        };
                        let after = stream.encode_end(&mut out);
                        self.write(&out).await?;
                        return Ok(finish(after));
                    }
                    Content::Upgrade {
                        response,
                        handshake,
                    } => {
                        let mut head = response.map(|()| Bytes::new());
                        self.shared.decorate(head.headers_mut());
                        if matches!(handshake, Handshake::Hixie76 { .. }) {
                            head.extensions_mut().insert(hixie76::HANDSHAKE_REASON);
                        }
                        encoder.encode(&head, &mut out);
                        self.write(&out).await?;
                        let Routed::Exchange(exchange) = routed else {
                            return Ok(Next::Close);
                        };
                        return Ok(Next::Upgrade(Box::new(Upgraded {
                            exchange,
                            read_ahead: std::mem::take(&mut self.buf).to_vec(),
                            handshake,
                        })));
                    }
                    _ => {}
                }
                // What is queued already goes out in the same write (each stream item still
                // its own HTTP chunk).
                if out.len() < COALESCE_LIMIT {
                    if let TryNext::Item(content) = exchange.try_next() {
                        next = Some(content);
                    }
                }
            }
        }
    }

    /// Waits for the exchange's next item while watching the socket: a pipelined request
    /// is buffered, and the end of input or an error means the client went away (the error
    /// is returned, and dropping the exchange tells the engine).
    async fn watch(&mut self, exchange: &mut Exchange) -> io::Result<Option<Content>> {
        enum Event {
            Next(Option<Content>),
            Read(io::Result<usize>),
        }
        loop {
            if self.buf.len() >= MAX_READ_AHEAD {
                return Ok(exchange.next().await);
            }
            let next = async { Event::Next(exchange.next().await) };
            let read = async { Event::Read(self.read().await) };
            match future::or(next, read).await {
                Event::Next(content) => return Ok(content),
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

/// `response`, closing the connection after it.
fn closing(mut response: Response<Bytes>) -> Response<Bytes> {
    let close = HeaderValue::from_static("close");
    response.headers_mut().insert(header::CONNECTION, close);
    response
}
