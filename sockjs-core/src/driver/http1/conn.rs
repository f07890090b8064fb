//! One connection's loop: read and decode a request, route it, write what its exchange
//! yields, again until the connection ends or becomes a WebSocket.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};

use super::Host;
use super::deadline::Deadline;
use super::race::or;
use crate::driver::drain::SHUTTING_DOWN;
use crate::driver::runtime::{later, yield_now};
use crate::driver::scratch::{READ_BUFFER, SpareBuffer, with_read_buffer};
use crate::driver::socket::write_now;
use crate::driver::web::{BodyError, not_found, plain};
use crate::driver::{Connection, Exchange, Idle, OpenConnections, Service, Socket, Timer, TryNext};
use crate::wire::{
    AfterResponse, CONTINUE_RESPONSE, Decoded, DecodedRequest, HttpDate, Limits, RequestDecoder,
    ResponseEncoder, hixie76,
};
use crate::{Content, Handshake, PeerAddr};

/// Most bytes of stream chunks gathered into one write.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Most bytes buffered from a client while its response is pending (e.g. a pipelined
/// request); past it the connection is not read until the response ends.
const MAX_READ_AHEAD: usize = 64 * 1024;

/// Requests served before the connection lets other tasks run: a client that keeps the
/// socket full of pipelined requests answered at once would otherwise hold its thread.
pub(super) const REQUESTS_BEFORE_YIELD: u32 = 32;

/// The server's shutdown as one connection watches it.
type ShutdownStarted = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Whether every service of `host` ended its drain (see
/// [`shutdown`](crate::driver::shutdown)).
fn drains_over<H: Host>(host: &H) -> bool {
    host.services().all(Service::drain_is_over)
}

/// Completes once every service of `host` ended its drain.
pub(super) fn drains_ended<H: Host>(host: &H) -> ShutdownStarted {
    let drains: Vec<_> = host.services().map(Service::drain_over).collect();
    Box::pin(async move {
        for drain in drains {
            drain.await;
        }
    })
}

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

/// See [`super::serve`]. The connection's state is built before the returned future
/// starts, so that the future holds it once (an `async fn` would also keep its arguments).
pub(super) fn serve<H: Host, S: Socket>(
    host: Arc<H>,
    stream: S,
    connection: Connection,
) -> impl Future<Output = io::Result<()>> + Send {
    let config = host.config();
    let bounds = || {
        host.services()
            .map(|service| service.options().max_request_body)
    };
    let limits = Limits {
        max_headers: config.max_headers,
        max_head_bytes: config.max_head_bytes,
        // With no service, the fallback's bound: the services' default.
        max_body_bytes: bounds()
            .max()
            .unwrap_or(crate::options::DEFAULT_MAX_REQUEST_BODY),
    };
    // One bound for all (the usual case, one service): the decoder's, no routing for it.
    let first = bounds().next();
    let bounds_differ = !bounds().all(|bound| Some(bound) == first);
    let mut conn = Conn {
        stream,
        drained: false,
        grown: false,
        spent: 0,
        refused: false,
        served: false,
        bounds_differ,
        buf: BytesMut::new(),
        decoder: RequestDecoder::new(limits),
        host,
        connection,
        shutdown: None,
        read_deadline: Deadline::default(),
        write_timer: None,
    };
    async move {
        let Some(upgraded) = conn.run().await? else {
            // The end of the last response (TLS: its close_notify), then FIN.
            let shut = conn.stream.shutdown();
            if conn.refused {
                // Boxed: rare, and every connection's future would carry its room.
                Box::pin(conn.linger()).await;
            }
            return shut;
        };
        let Upgraded {
            exchange,
            read_ahead,
            handshake,
        } = *upgraded;
        let Conn { host, stream, .. } = conn;
        host.spawn_websocket(exchange.serve_websocket(stream, read_ahead, handshake));
        Ok(())
    }
}

/// The body bound of the service a request goes to, which it holds to its own
/// [`Options::max_request_body`](crate::Options::max_request_body) before the body is read
/// (no `100 Continue`, no body read only to be refused); a request outside every service
/// gets the decoder's bound, the largest. Asked only where the services' bounds differ.
fn body_limit<H: Host>(host: &H, target: &Uri) -> usize {
    host.route(target.path())
        .map_or(usize::MAX, |(service, _)| {
            service.options().max_request_body
        })
}

struct Conn<H, S> {
    stream: S,
    /// The last read came back short or blocked (see [`Conn::read`]).
    drained: bool,
    /// `buf` grew past one read (a large body, a burst of pipelined requests) since it was
    /// last given back. A `BytesMut` emptied by `split_to` still shares the whole
    /// allocation it grew to, and takes it back for its next read once the requests cut
    /// from it are dropped: a connection that once carried a large body would hold that
    /// much for as long as it stays open (a long poll, a stream: hours), even with only a
    /// byte of the client's next request left in it. So such a buffer is given back at a
    /// request decoded (see [`give_back`]); a buffer that never grew past one read keeps
    /// its allocation, which saves one per request.
    grown: bool,
    /// Bytes decoded from `buf` since it grew or was last given back: what copying what
    /// is left may cost (see [`give_back`]).
    spent: usize,
    /// The connection ends on a request it could not read, or would not go on after (an
    /// upgrade not answered with `101`, the `503` of a shutdown, an answer that closes a
    /// connection the client meant to keep, or one that holds the client's next bytes
    /// already): the client may still be sending (see [`Conn::linger`]).
    refused: bool,
    /// It has answered a request: idle, it may be closed for a waiting client
    /// ([`OpenConnections::idle`](crate::driver::OpenConnections::idle)).
    served: bool,
    /// The services' body bounds differ: each request's is its service's
    /// ([`body_limit`]).
    bounds_differ: bool,
    buf: BytesMut,
    decoder: RequestDecoder,
    host: Arc<H>,
    /// What each request's service is told of the connection.
    connection: Connection,
    /// The server's shutdown, this connection's own watch of it: made the first time the
    /// connection waits idle, kept for the next waits. Out of the struct while a wait
    /// polls it.
    shutdown: Option<ShutdownStarted>,
    /// The read deadline's timer, kept from one wait to the next.
    read_deadline: Deadline,
    /// The write timeout's timer, made the first time a write has to wait.
    write_timer: Option<Pin<Box<dyn Timer>>>,
}

impl<H: Host, S: Socket> Conn<H, S> {
    /// Serves requests until the connection closes, or becomes a WebSocket.
    async fn run(&mut self) -> io::Result<Option<Box<Upgraded>>> {
        let mut served = 0u32;
        loop {
            let Some(request) = self.next_request().await? else {
                return Ok(None);
            };
            let client_goes_on = request.keep_alive;
            match self.handle(request).await? {
                Next::KeepAlive => self.served = true,
                Next::Close => {
                    // The server closes a connection the client meant to keep (an HTTP/1.0
                    // stream's end, an answer that says `close`), or one it has sent more
                    // on already: the client may be sending its next request, whose bytes
                    // unread would draw a reset that can destroy this answer.
                    self.refused |= client_goes_on || !self.buf.is_empty();
                    return Ok(None);
                }
                Next::Upgrade(upgraded) => return Ok(Some(upgraded)),
            }
            served = served.wrapping_add(1);
            if served % REQUESTS_BEFORE_YIELD == 0 {
                yield_now().await;
            }
        }
    }

    /// Writes all of `data` (one system call per HTTP chunk or frame where the socket
    /// takes it), or fails once the client has taken nothing for the write timeout.
    async fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        if let Poll::Ready(result) = write_now(&mut self.stream, &mut data) {
            return result;
        }
        // Boxed: rare, and inline every connection's future would carry its room.
        Box::pin(self.write_waiting(data)).await
    }

    /// [`write`](Conn::write) once the client did not take it all at once: from here each
    /// wait is bounded, counted from the last progress (as nginx's `send_timeout`), so
    /// that a client on a slow link that reads a large answer bit by bit is not taken for
    /// one that reads nothing.
    async fn write_waiting(&mut self, mut data: &[u8]) -> io::Result<()> {
        let runtime = self.host.runtime();
        let timeout = self.host.config().write_timeout;
        loop {
            let deadline = later(runtime.now(), timeout);
            let timer = match &mut self.write_timer {
                Some(timer) => {
                    timer.as_mut().reset(deadline);
                    timer
                }
                None => self.write_timer.insert(runtime.timer(deadline)),
            };
            let stream = &mut self.stream;
            let left = data.len();
            let progress = async {
                loop {
                    // A buffering stream (TLS) may pass on some of what it holds while
                    // its writability waits for all of it: progress too.
                    let moved = poll_fn(|cx| match stream.poll_writable(cx) {
                        Poll::Ready(result) => Poll::Ready(result.map(|()| false)),
                        Poll::Pending if stream.progressed() => Poll::Ready(Ok(true)),
                        Poll::Pending => Poll::Pending,
                    })
                    .await?;
                    match write_now(stream, &mut data) {
                        Poll::Ready(result) => return result.map(|()| true),
                        // Passed on from a buffer (a TLS stream's) toward the client,
                        // while waiting or just now, or taken: progress either way.
                        Poll::Pending if moved || data.len() < left || stream.progressed() => {
                            return Ok(false);
                        }
                        Poll::Pending => {}
                    }
                }
            };
            let timed_out = async {
                timer.as_mut().await;
                Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))
            };
            if or(progress, timed_out).await? {
                return Ok(());
            }
        }
    }

    /// Reads some bytes into the buffer (cancel-safe). After a short read the socket is
    /// taken to be empty and readiness is awaited before the next read (it fires at once if
    /// bytes arrived meanwhile), which saves the read that would only say `EAGAIN`.
    async fn read(&mut self) -> io::Result<usize> {
        loop {
            if !self.drained {
                let (stream, buf) = (&mut self.stream, &mut self.buf);
                let read: io::Result<usize> = with_read_buffer(|chunk| {
                    let n = stream.try_read(&mut chunk[..])?;
                    buf.extend_from_slice(&chunk[..n]);
                    Ok(n)
                });
                if !self.grown && self.buf.len() > READ_BUFFER {
                    // What it may cost to copy counts from here (see `give_back`).
                    self.grown = true;
                    self.spent = 0;
                }
                match read {
                    Ok(n) => {
                        self.drained = n < READ_BUFFER;
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            poll_fn(|cx| self.stream.poll_readable(cx)).await?;
            self.drained = false;
        }
    }

    /// After a refusal, our FIN sent: reads and drops what the client still sends (the
    /// body of a request refused at its head, requests pipelined behind it or behind an
    /// answer after which the server closes) until it closes
    /// its side or [`Config::close_linger`](crate::driver::Config::close_linger) has passed
    /// (bounded in time, not bytes: dropping bytes costs next to nothing).
    /// A socket closed with input unread makes the kernel send a reset, which can destroy
    /// the refusal before the client reads it (RFC 9112 §9.6).
    async fn linger(&mut self) {
        let runtime = self.host.runtime();
        let deadline = later(runtime.now(), self.host.config().close_linger);
        let mut timer = runtime.timer(deadline);
        let mut reads = 0u32;
        loop {
            let stream = &mut self.stream;
            match with_read_buffer(|chunk| stream.try_read(chunk)) {
                Ok(0) => return,
                Ok(_) => {
                    // A client that sends faster than this reads never lets a read come
                    // back empty: the deadline is looked at, and other tasks let run, as
                    // it goes on.
                    reads = reads.wrapping_add(1);
                    if reads % crate::driver::socket::LINGER_READS_BEFORE_YIELD == 0 {
                        if runtime.now() >= deadline {
                            return;
                        }
                        yield_now().await;
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
            let readable = poll_fn(|cx| {
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
                self.stream.poll_readable(cx).map(|ready| ready.is_ok())
            })
            .await;
            if !readable {
                return;
            }
        }
    }

    /// The answer to a request that could not be read, counted and encoded (as HTTP/1.1
    /// whatever the request said: its head may not have been read). Encoded before the
    /// write, so that the wait for the write does not also hold the response.
    fn refusal(&self, status: StatusCode, encode: impl FnOnce(&mut BytesMut)) -> BytesMut {
        // A request whose body could not be read counts where it was going.
        let routed = self.decoder.target().and_then(|target| {
            let path = target.path();
            self.host
                .route(path)
                .map(|(service, mount)| (service, path, mount))
        });
        match routed {
            Some((service, path, mount)) => {
                service.answered(path.get(mount..).unwrap_or(path), status);
            }
            None => self.host.unrouted().count(status),
        }
        let mut out = BytesMut::new();
        encode(&mut out);
        out
    }

    /// Reads and decodes the next request. `None`: close quietly (end of input, a
    /// timeout, shutdown, or a request that could not be read, already answered).
    async fn next_request(&mut self) -> io::Result<Option<DecodedRequest>> {
        let host = self.host.clone();
        // The connection's wait to be closed for a waiting client while it is idle (at
        // `max_connections`), kept while it stays idle so that it keeps its place in line.
        let mut idle = None;
        let next = self.read_request(&*host, &mut idle).await;
        if let Some(idle) = idle {
            match next {
                // Busy again: an ask it had not seen goes to the next idle connection.
                Ok(Some(_)) => drop(idle),
                _ => idle.closing(),
            }
        }
        next
    }

    /// [`next_request`](Conn::next_request), keeping `idle` while the connection is idle
    /// and has served a request.
    async fn read_request<'h>(
        &mut self,
        host: &'h H,
        idle: &mut Option<Idle<'h>>,
    ) -> io::Result<Option<DecodedRequest>> {
        let config = host.config();
        let runtime = host.runtime();
        // The head must arrive within the header read timeout of the connection going idle;
        // the first one within it of the connection's accept, when the adapter said when
        // that was (a TLS handshake does not give the client a second timeout's time); the
        // body within the body read timeout of its head.
        let mut deadline = later(runtime.now(), config.header_read_timeout);
        if let Some(accepted) = self.connection.accepted_at().filter(|_| !self.served) {
            deadline = deadline.min(later(accepted, config.header_read_timeout));
        }
        let mut reading_body = false;
        loop {
            // What to do is decided before any wait, so that the wait does not also hold
            // the decoder's result.
            enum Step {
                Continue,
                Refuse(BytesMut),
                Read,
            }
            let bounds_differ = self.bounds_differ;
            let limit = |target: &Uri| match bounds_differ {
                true => body_limit(host, target),
                false => usize::MAX,
            };
            // In a block of its own, so that nothing of the decoder's result is kept across
            // the waits below (the connection's future would hold room for it).
            let step = {
                let before = self.buf.len();
                let decoded = self.decoder.decode_limited(&mut self.buf, limit);
                self.spent = self
                    .spent
                    .saturating_add(before.saturating_sub(self.buf.len()));
                match decoded {
                    Ok(Some(Decoded::Request(request))) => {
                        give_back(&mut self.buf, &mut self.grown, &mut self.spent);
                        return Ok(Some(request));
                    }
                    Ok(Some(Decoded::Continue)) => Step::Continue,
                    Ok(None) => Step::Read,
                    Err(err) => {
                        tracing::debug!(peer = ?self.connection.peer(), error = %err, "bad request");
                        let date = Some(date(host));
                        let head_request = self.decoder.asks_head();
                        Step::Refuse(self.refusal(err.status(), |out| {
                            err.encode_refusal(date, head_request, out)
                        }))
                    }
                }
            };
            if !matches!(step, Step::Read) {
                // Busy writing (a body to come, or a refusal): not the connection to close for
                // another, so an ask it had not seen goes to the next idle one now.
                *idle = None;
            }
            match step {
                Step::Continue => {
                    self.write(CONTINUE_RESPONSE).await?;
                    continue;
                }
                Step::Refuse(out) => {
                    // The connection closes after it whether or not the client takes it.
                    let _ = self.write(&out).await;
                    self.refused = true;
                    return Ok(None);
                }
                Step::Read => {}
            }
            if !reading_body && !self.decoder.is_idle() {
                reading_body = true;
                deadline = later(runtime.now(), config.body_read_timeout);
            }
            let idle_now = self.decoder.is_idle() && self.buf.is_empty();
            if !(idle_now && self.served) {
                // A request is on its way (or none served yet): not to be closed for another.
                *idle = None;
            } else if idle.is_none() {
                *idle = host.open_connections().map(OpenConnections::idle);
            }
            if idle_now && host.is_shutting_down() && drains_over(host) {
                return Ok(None);
            }
            enum Wake {
                Read(io::Result<usize>),
                Timeout,
                Shutdown,
                Reclaimed,
            }
            let mut shutdown = match self.shutdown.take() {
                Some(shutdown) => Some(shutdown),
                // Shutting down, the services still draining: this connection may yet
                // carry a poll that collects its session's close frame.
                None if idle_now && host.is_shutting_down() => Some(drains_ended(host)),
                None if idle_now => Some(host.shutdown_started()),
                None => None,
            };
            let mut read_deadline = std::mem::take(&mut self.read_deadline);
            read_deadline.arm(runtime, deadline);
            let read = async { Wake::Read(self.read().await) };
            let timeout = async {
                read_deadline.fired().await;
                Wake::Timeout
            };
            let stop = async {
                // An idle connection also ends when graceful shutdown starts.
                match shutdown.as_mut().filter(|_| idle_now) {
                    Some(shutdown) => {
                        shutdown.as_mut().await;
                        Wake::Shutdown
                    }
                    None => std::future::pending().await,
                }
            };
            // At `max_connections`, the accept loop may need an idle connection's place.
            let reclaim = async {
                match idle.as_mut() {
                    Some(idle) => {
                        idle.await;
                        Wake::Reclaimed
                    }
                    None => std::future::pending().await,
                }
            };
            let woken = or(read, or(timeout, or(stop, reclaim))).await;
            // A wait that completed is not polled again.
            self.shutdown = shutdown.filter(|_| !matches!(woken, Wake::Shutdown));
            self.read_deadline = read_deadline;
            match woken {
                Wake::Read(Ok(0)) => return Ok(None),
                // Decided again above: close, or wait for the drain.
                Wake::Shutdown => {}
                Wake::Read(Ok(_)) => {}
                Wake::Read(Err(e)) => return Err(e),
                // Armed for an earlier wait's deadline: set again for this one's.
                Wake::Timeout if runtime.now() < deadline => {}
                Wake::Timeout if reading_body => {
                    let response = BodyError::TimedOut.response();
                    let head_request = self.decoder.asks_head();
                    let out = self.refusal(response.status(), |out| {
                        ResponseEncoder::new(http::Version::HTTP_11, false)
                            .with_head_request(head_request)
                            .encode_dated(&response, Some(&date(host)), out);
                    });
                    drop(response);
                    let _ = self.write(&out).await;
                    self.refused = true;
                    return Ok(None);
                }
                Wake::Timeout | Wake::Reclaimed => return Ok(None),
            }
        }
    }

    /// Where a request goes, decided (and the request handed on) before anything is
    /// written.
    fn route(&self, mut request: Request<Bytes>) -> Routed {
        let host = &*self.host;
        let path = request.uri().path();
        let service = host.route(path);
        // Until its service's drain ends, a session's request is the service's to answer:
        // it serves the sessions it holds and, once draining, refuses new ones.
        let held = |&(service, mount): &(&Service, usize)| {
            !service.drain_is_over() && service.is_session_path(path, mount)
        };
        if host.is_shutting_down() && !service.as_ref().is_some_and(held) {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            match service {
                Some((service, mount)) => {
                    service.answered(path.get(mount..).unwrap_or(path), status)
                }
                None => host.unrouted().count(status),
            }
            let mut response = plain(status, SHUTTING_DOWN);
            host.decorate(response.headers_mut());
            return Routed::Answer {
                response: closing(response),
                close: true,
            };
        }
        let Some((service, mount)) = service else {
            // What the application reads of a request wherever it reads one: a fallback
            // that redirects to https or sets Secure cookies needs to know.
            if let Some(peer) = self.connection.peer() {
                request.extensions_mut().insert(PeerAddr(peer));
            }
            if self.connection.is_tls() {
                request.extensions_mut().insert(crate::Tls);
            }
            let mut response = host.fallback(request).unwrap_or_else(|| {
                host.unrouted().count(StatusCode::NOT_FOUND);
                not_found()
            });
            if response.status().is_informational() {
                // An interim answer would leave the request without its final one (and a
                // 101 nobody asked for would switch protocols): the fallback failed.
                tracing::warn!(status = %response.status(), "fallback answered 1xx: 500 instead");
                response = plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
            }
            host.decorate(response.headers_mut());
            return Routed::Answer {
                response,
                close: false,
            };
        };
        Routed::Exchange(service.submit_mounted(request, &self.connection, mount))
    }

    /// Serves one request to completion.
    ///
    /// The request is routed and handed on before the returned future starts, so that the
    /// future, which a connection holds for as long as its response stays open (a stream,
    /// a long poll), holds what came of the request and not the request itself (an
    /// `async fn` keeps its arguments for its whole life, beside what they were moved
    /// into).
    fn handle(&mut self, decoded: DecodedRequest) -> impl Future<Output = io::Result<Next>> + '_ {
        let encoder = decoded.response_encoder();
        // Bytes after an upgrade request's head belong to the protocol it asked for (hixie-76
        // sends eight of them unannounced): refused, the connection cannot go on as HTTP.
        let upgrade = decoded.upgrade;
        let mut routed = self.route(decoded.request);
        async move {
            // Answered with anything but a 101, the connection closes on a client that may
            // be sending more (hixie-76's key3 comes only once a proxy saw the answer).
            self.refused |= upgrade;
            let mut out = SpareBuffer::default();
            let finish = |after: AfterResponse| {
                if after.must_close() || upgrade {
                    Next::Close
                } else {
                    Next::KeepAlive
                }
            };
            let exchange = match &mut routed {
                Routed::Exchange(exchange) => exchange,
                Routed::Answer { response, close } => {
                    let after = encoder.encode_dated(response, Some(&date(&*self.host)), &mut out);
                    self.write(&out).await?;
                    if *close {
                        // The server's own close (a shutdown's 503): the client may have
                        // pipelined more.
                        self.refused = true;
                        return Ok(Next::Close);
                    }
                    return Ok(finish(after));
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
                        self.host.decorate(response.headers_mut());
                        let after =
                            encoder.encode_dated(&*response, Some(&date(&*self.host)), &mut out);
                        self.write(&out).await?;
                        return Ok(finish(after));
                    }
                    Content::StreamStart(mut head) => {
                        self.host.decorate(head.headers_mut());
                        stream = Some(encoder.start_stream_dated(
                            &*head,
                            Some(&date(&*self.host)),
                            &mut out,
                        ));
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
                        self.host.decorate(head.headers_mut());
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
            match or(next, read).await {
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

/// The `Date` of a response written now (RFC 9110 §6.6.1): the host's wall clock, formatted
/// once a second per thread.
fn date<H: Host>(host: &H) -> HttpDate {
    thread_local! {
        static LAST: std::cell::Cell<Option<HttpDate>> = const { std::cell::Cell::new(None) };
    }
    let now = host.runtime().wall_clock();
    let second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    LAST.with(|last| match last.get() {
        Some(date) if date.second() == second => date,
        _ => {
            let date = HttpDate::from(now);
            last.set(Some(date));
            date
        }
    })
}

/// At a request decoded, replaces a read buffer that `grown` past one read with a copy of
/// what is left in it (the client's next bytes, if any), so that the allocation the decoded
/// requests were cut from goes with them; but only once what is left is no more than what
/// was decoded from it since it grew or was last given back (`spent`), so that each copy
/// costs no more than the reads before it: a burst of pipelined requests is decoded from
/// the buffer it came in, with a few copies at most, none larger than half the burst.
fn give_back(buf: &mut BytesMut, grown: &mut bool, spent: &mut usize) {
    if !*grown || buf.len() > *spent {
        return;
    }
    *buf = match buf.is_empty() {
        true => BytesMut::new(),
        false => BytesMut::from(&buf[..]),
    };
    *grown = buf.len() > READ_BUFFER;
    *spent = 0;
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::{READ_BUFFER, give_back};

    /// A large body, then the client's next request cut short (a byte of it): the buffer
    /// is given back with the byte in a new allocation, not the body's.
    #[test]
    fn a_grown_buffer_is_given_back_with_what_is_left_of_it() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&vec![b'x'; 300_000]);
        buf.extend_from_slice(b"G");
        let body = buf.split_to(300_000).freeze();
        let (mut grown, mut spent) = (true, 300_000);
        give_back(&mut buf, &mut grown, &mut spent);
        assert_eq!(&buf[..], b"G");
        assert!(!grown);
        assert_eq!(spent, 0);
        drop(body);
        buf.extend_from_slice(&[b'y'; 100]);
        assert!(buf.capacity() < 64 * 1024, "kept: {}", buf.capacity());
        assert_eq!(&buf[..2], b"Gy");
    }

    /// A burst of small pipelined requests is not copied at each one: only once half of
    /// it is decoded, then at each halving of what is left.
    #[test]
    fn a_burst_of_pipelined_requests_is_copied_a_few_times_at_most() {
        let request = 100;
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&vec![b'r'; 4 * READ_BUFFER]);
        let (mut grown, mut spent) = (true, 0);
        let (mut copies, mut copied) = (0, 0);
        while !buf.is_empty() {
            let _ = buf.split_to(request.min(buf.len()));
            spent += request;
            let at = buf.as_ptr();
            let left = buf.len();
            give_back(&mut buf, &mut grown, &mut spent);
            if buf.as_ptr() != at && left > 0 {
                copies += 1;
                copied += left;
            }
        }
        assert!(copies <= 3, "{copies} copies");
        assert!(copied <= 4 * READ_BUFFER, "{copied} bytes copied");
    }

    /// Why a spent read buffer is replaced rather than kept (see `Conn::grown`): emptied by
    /// `split_to`, it takes back the whole allocation the requests cut from it used, once
    /// they are dropped; a new one holds no more than its next read.
    #[test]
    fn a_spent_read_buffer_takes_back_its_allocation_and_a_new_one_does_not() {
        let spent = |replace: bool| {
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&vec![b'x'; 300_000]);
            let body = buf.split_to(300_000).freeze();
            if replace {
                buf = BytesMut::new();
            }
            drop(body);
            buf.extend_from_slice(&[b'y'; 100]);
            buf.capacity()
        };
        assert!(spent(false) >= 300_000, "kept: {}", spent(false));
        assert!(spent(true) < 64 * 1024, "replaced: {}", spent(true));
    }
}
