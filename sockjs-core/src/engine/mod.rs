//! The engine: sessions, requests and timers of one SockJS service.
//!
//! This module holds the engine's state, the request dispatch, timers, the two output
//! queues' polls and the forgetting of sessions. The rest is split by job: `receive`
//! (receiving requests, frame writing, aborts), `send` (the sending endpoints and the
//! application's sends and closes), `websocket` (the upgrade and WebSocket inputs) and
//! `pages` (static endpoints).

mod admission;
mod pages;
mod receive;
mod send;
mod websocket;

#[cfg(feature = "driver")]
pub(crate) use websocket::asks_websocket_upgrade;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use foldhash::SharedSeed;
use foldhash::quality::SeedableRandomState;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

use crate::cookie::{CookieAttributes, Jsessionid};
use crate::frame::{self, HEARTBEAT};
use crate::handshake::md5_hex;
use crate::options::{Options, OptionsError, OriginPolicy, PingOptions, SessionBinding};
use crate::output::{
    CloseReason, Content, Event, Outbox, RequestId, SessionKey, SessionState, Transmit,
};
use crate::pages::iframe_page;
use crate::peer::Peer;
use crate::response::{Headers, RequestHeaders, not_found, plain};
use crate::route::{Route, SessionEndpoint};
use crate::session::{Alive, Link, Phase, ReceiverMode, Session};
use crate::timer::Timers;
use crate::transport::Transport;

type Map<K, V> = HashMap<K, V, SeedableRandomState>;

/// What the engine needs from the outside world at start: the time, the wall clock at that
/// time (for `Expires` headers) and a random seed (for `/info` entropy and hashing).
///
/// The engine never reads a clock or a random source itself; adapters fill this in.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// The monotonic time at start.
    pub now: Instant,
    /// The wall-clock time at `now`.
    pub wall_clock: SystemTime,
    /// A random seed.
    pub seed: u64,
}

/// Per-request things the engine's helpers share, split from the session maps so a session
/// can be borrowed mutably while transmits are queued.
struct Shared {
    options: Options,
    out: Outbox,
    /// Pending receivers and open WebSockets, to their session.
    requests: Map<RequestId, SessionKey>,
    timers: Timers,
    /// The engine's clock: an input's time, or, while the timers it found due fire, each
    /// one's deadline ([`Engine::advance`]).
    now: Instant,
    /// The input's own time: what a timer writes goes out then, however long ago it was
    /// due ([`Shared::written_at`]).
    input_now: Instant,
}

/// A sans-IO SockJS service: feed it requests, WebSocket events, application calls and
/// time; drain [`Transmit`]s and [`Event`]s; call back at [`Engine::poll_timeout`].
///
/// See the crate documentation for the driving loop.
pub struct Engine {
    shared: Shared,
    /// Boxed: the map's slots stay small, so its spare capacity costs little per session.
    sessions: Map<SessionKey, Box<Session>>,
    /// HTTP sessions by their URL id.
    by_id: Map<Box<str>, SessionKey>,
    /// Sessions with messages to flush when the transmit queue runs dry.
    dirty: Vec<SessionKey>,
    next_key: u64,
    /// How far apart this engine's keys are (see [`Engine::with_key_space`]).
    key_step: u64,
    /// `/info` entropy and the like: values any client sees.
    rng: u64,
    /// Tokens that bind a session to its client ([`SessionBinding::Cookie`]): a
    /// cryptographic generator of its own, so that no value the server hands out (the
    /// entropy, other tokens) tells the next one.
    tokens: ChaCha12Rng,
    clock: (Instant, SystemTime),
    iframe: Bytes,
    etag: HeaderValue,
    /// Heartbeats sent so far (see [`Engine::heartbeats`]).
    heartbeats: u64,
    /// Set by a driver around a request while the service it belongs to is at
    /// `max_sessions` over all its engines: the request opens nothing and gets the `503`,
    /// at the same gate as past this engine's own count.
    pub(crate) service_full: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("prefix", &self.shared.options.prefix)
            .field("sessions", &self.sessions.len())
            .field("pending_requests", &self.shared.requests.len())
            .field("queued_transmits", &self.shared.out.transmits())
            .field("queued_events", &self.shared.out.events())
            .finish()
    }
}

fn after(now: Instant, delay: Duration) -> Option<Instant> {
    now.checked_add(delay)
}

/// A socket's dead-peer watch after its peer was heard from at `now`: the next ping an
/// `interval` away (unwatched if that is past what `Instant` holds).
fn quiet(now: Instant, interval: Duration) -> Alive {
    after(now, interval).map_or(Alive::Unwatched, Alive::Quiet)
}

impl Shared {
    /// When what is written now leaves: the input's time, also while a timer fires at its
    /// (past) deadline, since its heartbeat, ping or last frame goes out only now. What
    /// then waits on the peer counts from it: the next heartbeat (an input long after the
    /// last, a machine that was suspended, makes one heartbeat, not one for each delay
    /// missed), a ping's timeout, and the disconnect delay of a poll the write ended (the
    /// client cannot come back before it has the answer).
    fn written_at(&self) -> Instant {
        self.now.max(self.input_now)
    }

    /// When a receiver or socket written to now gets its next heartbeat (`None`: never,
    /// heartbeats are off).
    fn heartbeat_at(&self) -> Option<Instant> {
        self.options
            .heartbeat_delay
            .and_then(|delay| after(self.written_at(), delay))
    }

    /// Something was written to a WebSocket: its heartbeat starts over.
    fn socket_wrote(&mut self, key: SessionKey, s: &mut Session) {
        let heartbeat = self.heartbeat_at();
        if let Link::WebSocket { timers, .. } = &mut s.link {
            timers.heartbeat = heartbeat.filter(|_| timers.beats);
            self.timers.set(key, &mut s.deadline, timers.next());
        }
    }

    /// The WebSocket's peer sent a frame: it is alive, and the next ping is an interval
    /// away.
    fn socket_heard(&mut self, key: SessionKey, s: &mut Session) {
        let Some(ping) = self.options.websocket_ping else {
            return;
        };
        if let Link::WebSocket { timers, .. } = &mut s.link {
            // While reads are held, what was read before is no news: the interval starts
            // when they resume.
            if matches!(timers.alive, Alive::Quiet(_) | Alive::Pinged(_)) {
                timers.alive = quiet(self.now, ping.interval);
                self.timers.set(key, &mut s.deadline, timers.next());
            }
        }
    }

    /// The driver holds the WebSocket's reads back (`held`) or reads it again: dead-peer
    /// detection pauses, and starts a whole interval afresh on resuming.
    fn socket_reads_held(&mut self, key: SessionKey, s: &mut Session, held: bool) {
        let Some(ping) = self.options.websocket_ping else {
            return;
        };
        if let Link::WebSocket { timers, .. } = &mut s.link {
            timers.alive = match (timers.alive, held) {
                (Alive::Unwatched, _) => return,
                (_, true) => Alive::Held,
                (Alive::Held, false) => quiet(self.now, ping.interval),
                (_, false) => return,
            };
            self.timers.set(key, &mut s.deadline, timers.next());
        }
    }

    /// §3.4: the cookie of a session endpoint's response, if the service sets one.
    fn cookie<'a>(&self, headers: Headers<'a>, parts: &http::request::Parts) -> Headers<'a> {
        match &self.options.jsessionid {
            Jsessionid::Custom(f) => {
                headers.set_cookie(crate::options::application_call(None, || f(parts)))
            }
            Jsessionid::Echo(attributes)
                if self.options.session_binding == SessionBinding::Cookie =>
            {
                headers.bound_cookie(attributes)
            }
            Jsessionid::Echo(attributes) => headers.cookie(Some(attributes)),
            Jsessionid::Off if self.options.session_binding == SessionBinding::Cookie => {
                headers.bound_cookie(&CookieAttributes::BINDING)
            }
            Jsessionid::Off => headers,
        }
    }

    /// Whether `/info` says `cookie_needed` (§4.2): whenever a cookie is set.
    fn cookie_needed(&self) -> bool {
        self.options.jsessionid.is_on() || self.options.session_binding == SessionBinding::Cookie
    }
}

/// What a request asks of CORS and cookies. Under [`SessionBinding::Cookie`] the protocol's
/// `dummy` (§3.4: what an echoing service hands a client without a cookie) is no token:
/// everyone knows it, so a session is never bound to it.
pub(super) fn request_headers(headers: &http::HeaderMap, options: &Options) -> RequestHeaders {
    let mut request = RequestHeaders::from_map(headers, cookie_name(options));
    if options.session_binding == SessionBinding::Cookie
        && request.jsessionid.as_ref().is_some_and(|v| v == "dummy")
    {
        request.jsessionid = None;
    }
    request
}

/// The session cookie's name, if the options read it: to echo it (§3.4) or to bind
/// sessions by it. Otherwise no request's cookies are looked at.
fn cookie_name(options: &Options) -> Option<&str> {
    match &options.jsessionid {
        Jsessionid::Echo(attributes) => Some(attributes.name()),
        _ if options.session_binding == SessionBinding::Cookie => {
            Some(CookieAttributes::DEFAULT.name())
        }
        _ => None,
    }
}

impl Engine {
    /// Creates an engine for one service.
    ///
    /// ```
    /// use std::time::{Instant, SystemTime};
    /// use sockjs_core::{Engine, Options, Start};
    /// let start = Start { now: Instant::now(), wall_clock: SystemTime::now(), seed: 42 };
    /// let engine = Engine::new(Options::default(), start).unwrap();
    /// assert_eq!(engine.session_count(), 0);
    /// ```
    pub fn new(options: Options, start: Start) -> Result<Engine, OptionsError> {
        options.validate()?;
        let hasher = |salt: u64| {
            SeedableRandomState::with_seed(start.seed ^ salt, SharedSeed::global_fixed())
        };
        let page = iframe_page(&options.sockjs_url, options.protocol);
        let etag = HeaderValue::from_str(&format!("\"{}\"", md5_hex(page.as_bytes())))
            .map_err(|_| OptionsError::SockjsUrl)?;
        // The entropy's generator starts from the seed's first output, not the seed: what it
        // hands out tells nothing of the seed, and so nothing of the tokens' generator.
        let mut root = ChaCha12Rng::seed_from_u64(start.seed);
        let rng = root.next_u64();
        let tokens = ChaCha12Rng::from_rng(&mut root);
        Ok(Engine {
            shared: Shared {
                options,
                out: Outbox::default(),
                requests: HashMap::with_hasher(hasher(1)),
                timers: Timers::default(),
                now: start.now,
                input_now: start.now,
            },
            sessions: HashMap::with_hasher(hasher(2)),
            by_id: HashMap::with_hasher(hasher(3)),
            dirty: Vec::new(),
            next_key: 1,
            key_step: 1,
            rng,
            tokens,
            clock: (start.now, start.wall_clock),
            iframe: Bytes::from(page),
            etag,
            heartbeats: 0,
            service_full: false,
        })
    }

    /// The options the engine runs with.
    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// Heartbeats sent since the engine started: `h` frames (PROTOCOL.md §5), and the pings
    /// that serve as a raw WebSocket's heartbeat.
    pub fn heartbeats(&self) -> u64 {
        self.heartbeats
    }

    /// Live sessions (open or closing).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Requests the engine holds: pending receivers and open WebSockets.
    pub fn pending_requests(&self) -> usize {
        self.shared.requests.len()
    }

    /// The state of a session: [`SessionState::Closed`] once it is forgotten (keys are
    /// never reused, so a stale key stays closed).
    pub fn session_state(&self, session: SessionKey) -> SessionState {
        self.sessions
            .get(&session)
            .map_or(SessionState::Closed, |s| s.state())
    }

    /// The HTTP receiver a session's messages go out on now (a stream, or a held poll),
    /// if one is attached: a runtime that bounds what it has yet to write for that request
    /// can hold the session's senders back while it is full.
    pub fn receiver_request(&self, session: SessionKey) -> Option<RequestId> {
        self.sessions
            .get(&session)
            .and_then(|s| s.receiver())
            .map(|r| r.request)
    }

    /// Escaped bytes queued for a session, waiting for a receiver.
    pub fn queued_bytes(&self, session: SessionKey) -> Option<usize> {
        self.sessions.get(&session).map(|s| s.batch.escaped_len())
    }

    /// Moves the engine's clock on to `now` (never back), firing first what was due by
    /// then, however late the timer input is: every input finds the sessions as time left
    /// them. A request finds a session past its disconnect delay gone (§7.1.5), a pong or
    /// a message that comes after its socket's ping timeout finds the socket closed, and
    /// an application's send to a session that timed out is refused.
    ///
    /// Each timer fires with the engine's clock at its own deadline, in order: what it
    /// concludes about the peer (gone past its disconnect delay, unresponsive past its
    /// ping's timeout) stands as of then, however late the timer input. What it writes
    /// goes out only now, so what waits on the peer's answer to that write (a ping's
    /// timeout, the disconnect delay of a poll a heartbeat ended, the next heartbeat)
    /// counts from the input's time ([`Shared::written_at`]): a late timer input never
    /// blames the peer for the wait.
    #[inline]
    fn advance(&mut self, now: Instant) {
        let now = self.shared.now.max(now);
        self.shared.input_now = now;
        if self.shared.timers.next().is_some_and(|at| at <= now) {
            self.fire_due(now);
        }
        self.shared.now = now;
    }

    fn wall_clock(&self) -> SystemTime {
        let elapsed = self.shared.now.saturating_duration_since(self.clock.0);
        self.clock.1.checked_add(elapsed).unwrap_or(self.clock.1)
    }

    fn rng_next(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn entropy(&mut self) -> u32 {
        (self.rng_next() >> 32) as u32
    }

    /// A fresh binding token: 128 bits from the cryptographic generator, in hex.
    fn binding_token(&mut self) -> String {
        format!(
            "{:016x}{:016x}",
            self.tokens.next_u64(),
            self.tokens.next_u64()
        )
    }

    fn respond(&mut self, request: RequestId, response: Response<Bytes>) {
        self.shared.out.respond(request, response);
    }

    /// Handles a complete HTTP request (head and whole body). The answer comes out of
    /// [`Engine::poll_transmit`], at once or later (held polls, streams, upgrades).
    ///
    /// The body should already be limited by the driver to
    /// [`Options::max_request_body`]; a larger one gets 413 here.
    pub fn handle_request(&mut self, now: Instant, id: RequestId, request: Request<Bytes>) {
        let (parts, body) = request.into_parts();
        let uri = parts.uri.clone();
        let route = Route::of_target(uri.path(), &self.shared.options.prefix);
        let peer = Peer::of(&parts);
        self.handle_routed(now, id, parts, body, route, peer);
    }

    /// [`Engine::handle_request`] for a driver that has routed the request already
    /// ([`Route::in_service`] with this engine's prefix): each request is parsed once. The
    /// driver hands the connection's facts as `peer`, not as the request's extensions.
    pub(crate) fn handle_routed(
        &mut self,
        now: Instant,
        id: RequestId,
        mut parts: http::request::Parts,
        body: Bytes,
        route: Option<Route<'_>>,
        peer: Peer,
    ) {
        // What was due by `now` happens first, however late the timer input is: a request
        // finds its session as time left it (past its disconnect delay, gone: §7.1.5).
        self.advance(now);
        if self.shared.options.reads_requests() {
            // The application's callbacks read the request as the adapter handed it.
            peer.stamp(&mut parts);
        }
        let Some(route) = route else {
            return self.respond(id, not_found());
        };
        let options = &self.shared.options;
        let disabled = match route {
            Route::RawWebSocket => !options.transports.contains(Transport::RawWebSocket),
            Route::Session { kind, .. } => !options.transports.serves(kind),
            _ => false,
        };
        if disabled {
            return self.respond(id, not_found());
        }
        if !route.allows(&parts.method) {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "");
            response.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static(route.allowed_methods()),
            );
            return self.respond(id, response);
        }
        if body.len() > options.max_request_body {
            return self.respond(
                id,
                plain(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large.\n"),
            );
        }
        if !matches!(route, Route::Greeting | Route::Iframe) && self.origin_refused(&parts) {
            return self.respond(id, plain(StatusCode::FORBIDDEN, "Origin not allowed.\n"));
        }
        let options = &self.shared.options;
        let request_headers = request_headers(&parts.headers, options);
        match route {
            Route::Greeting => self.greeting(id, &request_headers),
            Route::Info => self.info(id, &parts.method, &request_headers),
            Route::Iframe => self.iframe(id, &parts.headers),
            Route::RawWebSocket => self.websocket(id, parts, "", true, peer),
            Route::Session { session, kind, .. } => {
                if parts.method == Method::OPTIONS {
                    // Only the xhr endpoints allow OPTIONS (checked above): a CORS preflight.
                    return self.preflight(id, &parts, &request_headers);
                }
                match receiving_transport(kind) {
                    Some(transport) => {
                        self.receive(id, parts, session, transport, &request_headers, peer)
                    }
                    None if kind == SessionEndpoint::WebSocket => {
                        self.websocket(id, parts, session, false, peer)
                    }
                    None => {
                        let jsonp = kind == SessionEndpoint::JsonpSend;
                        self.send_endpoint(
                            id,
                            &parts,
                            &body,
                            session,
                            jsonp,
                            &request_headers,
                            peer,
                        )
                    }
                }
            }
        }
    }

    /// Whether [`Options::origins`] refuses the request's `Origin` (requests without one are
    /// never refused).
    fn origin_refused(&self, parts: &http::request::Parts) -> bool {
        let origins = &self.shared.options.origins;
        if matches!(origins, OriginPolicy::Any) {
            return false;
        }
        // Old WebSocket drafts (0.3.3's versions 7 and 8) send Sec-WebSocket-Origin.
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .or_else(|| parts.headers.get("sec-websocket-origin"));
        origin.is_some_and(|origin| {
            !origin
                .to_str()
                .is_ok_and(|origin| origins.allows(origin, parts))
        })
    }

    /// Fires every timer due at `now`: heartbeats, WebSocket pings and their timeouts, and
    /// disconnect timeouts. (Every other input fires what was due by its `now` first too,
    /// each timer at its own deadline: a late timer input leaves no session alive past its
    /// disconnect delay, nor a socket past its ping timeout. What a late timer writes goes
    /// out with the input, and what waits on the peer's answer counts from then.)
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// Fires every timer due at `now`, each at its deadline ([`Engine::advance`]).
    fn fire_due(&mut self, now: Instant) {
        while let Some((entry, key)) = self.shared.timers.pop_due(now) {
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            let due = s.deadline.at;
            if !self.shared.timers.fires(key, entry, &mut s.deadline, now) {
                continue;
            }
            if let Some(due) = due {
                self.shared.now = self.shared.now.max(due);
            }
            match &mut s.link {
                Link::WebSocket {
                    socket,
                    raw,
                    timers,
                } => {
                    let (socket, raw) = (*socket, *raw);
                    let now = self.shared.now;
                    if matches!(timers.alive, Alive::Pinged(at) if at <= now) {
                        // §9.2: the peer did not answer the ping in time.
                        self.end_socket(
                            socket,
                            key,
                            PingOptions::CLOSE_CODE,
                            PingOptions::CLOSE_REASON,
                            CloseReason::PeerUnresponsive,
                        );
                        continue;
                    }
                    let beat = timers.heartbeat.is_some_and(|at| at <= now);
                    let probe = matches!(timers.alive, Alive::Quiet(at) if at <= now);
                    // Messages the application sent since the last drain go instead of
                    // the heartbeat, as on HTTP receivers below: `h` would only go out
                    // ahead of them.
                    let batch = beat && !raw && !s.batch.is_empty();
                    if beat && !batch {
                        self.heartbeats += 1;
                        if !raw {
                            self.shared
                                .out
                                .push(socket, Content::WsText("h".to_owned()));
                        }
                    }
                    // A raw socket's heartbeat is a ping: one ping serves as both.
                    if probe || (beat && raw) {
                        self.shared.out.push(socket, Content::WsPing);
                    }
                    if probe {
                        let timeout = self.shared.options.websocket_ping.map(|p| p.timeout);
                        let sent = self.shared.written_at();
                        timers.alive = timeout
                            .and_then(|timeout| after(sent, timeout))
                            .map_or(Alive::Unwatched, Alive::Pinged);
                    }
                    if batch {
                        self.shared.flush_socket(key, socket, s);
                    } else if beat {
                        self.shared.socket_wrote(key, s);
                    } else {
                        self.shared.timers.set(key, &mut s.deadline, timers.next());
                    }
                }
                // Messages the application sent since the last drain (an embedder may feed
                // a timeout before it drains) are due anyway: they go instead of the
                // heartbeat, which would end a poll and leave them for the next (§7.1.3).
                Link::Http { receiver: Some(_) } if !s.batch.is_empty() => {
                    let frame = s.batch.take_frame();
                    self.shared.write_frame(key, s, frame, false);
                }
                Link::Http { receiver: Some(_) } => {
                    self.heartbeats += 1;
                    self.shared.write_frame(key, s, HEARTBEAT.to_vec(), false);
                }
                Link::Http { receiver: None } => {
                    let cause = match &s.phase {
                        Phase::Open => CloseReason::Timeout,
                        Phase::Closing { cause, .. } => cause.clone(),
                    };
                    self.forget(key, cause);
                }
            }
        }
    }

    /// When to call [`Engine::handle_timeout`] next, if any timer is armed. Waking early is
    /// harmless. Read it once [`poll_transmit`](Engine::poll_transmit) has run dry: writing
    /// the application's messages may arm a timer (a poll they end starts its disconnect
    /// delay).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shared.timers.next()
    }

    /// The next write, or `None` when there is none until the next input (or until the
    /// application reacts to an event).
    ///
    /// Messages the application sent are batched: they go out, one frame per session, once
    /// the transmits queued before them are drained.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.shared.out.transmits() == 0 && !self.dirty.is_empty() {
            self.flush_dirty();
        }
        self.shared.out.pop_transmit()
    }

    /// The next application event, or `None` when there is none. Events come in the order
    /// they happened (see [`Event`] for how they are ordered against transmits).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.shared.out.pop_event()
    }

    /// Removes a session and tells the application.
    fn forget(&mut self, key: SessionKey, reason: CloseReason) {
        let Some(s) = self.sessions.remove(&key) else {
            return;
        };
        match s.link {
            Link::Http { receiver } => {
                if self.by_id.get(&s.id) == Some(&key) {
                    self.by_id.remove(&s.id);
                }
                if let Some(r) = receiver {
                    // Still attached (e.g. shutdown of a held poll): end it cleanly.
                    self.shared.requests.remove(&r.request);
                    match r.mode {
                        ReceiverMode::Polling(head) => {
                            let (parts, ()) = head.into_parts();
                            let frame = match &reason {
                                CloseReason::Closed { code, reason } => frame::close(*code, reason),
                                _ => frame::close(1002, "Connection interrupted"),
                            };
                            let body = r.transport.wrap(
                                frame.into_bytes(),
                                &r.callback,
                                self.shared.options.protocol,
                            );
                            let response = Response::from_parts(parts, Bytes::from(body));
                            self.shared.out.respond(r.request, response);
                        }
                        ReceiverMode::Streaming { .. } => {
                            self.shared.out.push(r.request, Content::StreamEnd);
                        }
                    }
                }
            }
            Link::WebSocket { socket, .. } => {
                self.shared.requests.remove(&socket);
            }
        }
        let sessions = &self.sessions;
        self.shared
            .timers
            .sweep_if_stale(sessions.len(), |key| sessions.get(&key)?.deadline.queued());
        self.shared.out.event(Event::Closed {
            session: key,
            reason,
        });
    }

    /// Entries in the engine's timer heap, live and stale: swept whenever a session ends,
    /// so at most four per session held (plus a small floor) then, however fast sessions
    /// come and go. For tests and memory accounting.
    #[doc(hidden)]
    #[must_use]
    pub fn timer_entries(&self) -> usize {
        self.shared.timers.len()
    }

    fn new_key(&mut self) -> SessionKey {
        let key = SessionKey(self.next_key);
        self.next_key = self.next_key.wrapping_add(self.key_step);
        key
    }

    /// Gives this engine its own share of the key space: its session keys are `first`,
    /// `first + step`, `first + 2 * step`... so that several engines (shards, services) of
    /// one process hand out keys no other engine uses. By default keys are 1, 2, 3...
    /// Keys are unique while they do not wrap past `u64::MAX`: take `first < step` and a
    /// `step` as small as the number of engines (with 64 of them, 2^58 sessions each).
    ///
    /// ```
    /// use std::num::NonZeroU64;
    /// use std::time::{Instant, SystemTime};
    /// use sockjs_core::{Engine, Options, Start};
    /// let start = Start { now: Instant::now(), wall_clock: SystemTime::now(), seed: 1 };
    /// // The second of four shards.
    /// let engine = Engine::new(Options::default(), start)?
    ///     .with_key_space(2, NonZeroU64::new(4).expect("non-zero"));
    /// # Ok::<(), sockjs_core::OptionsError>(())
    /// ```
    #[must_use]
    pub fn with_key_space(mut self, first: u64, step: std::num::NonZeroU64) -> Engine {
        self.next_key = first;
        self.key_step = step.get();
        self
    }

    /// Seeds the generator of the tokens that bind sessions to their clients
    /// ([`SessionBinding::Cookie`]) with 256 secret bits, for a strength the 64 bits of
    /// [`Start::seed`] do not give (without it, the tokens' generator is seeded from that
    /// seed). Adapters fill it from their random source; the same secret gives the same
    /// tokens, for tests and fuzzing.
    ///
    /// ```
    /// # use sockjs_core::{Engine, Options, Start};
    /// # let start = Start { now: std::time::Instant::now(), wall_clock: std::time::SystemTime::now(), seed: 7 };
    /// let engine = Engine::new(Options::default(), start)?.with_secret([7; 32]);
    /// # Ok::<(), sockjs_core::OptionsError>(())
    /// ```
    #[must_use]
    pub fn with_secret(mut self, secret: [u8; 32]) -> Engine {
        self.tokens = ChaCha12Rng::from_seed(secret);
        self
    }
}

/// The transport of a receiving endpoint; `None` for the others.
fn receiving_transport(kind: SessionEndpoint) -> Option<Transport> {
    Some(match kind {
        SessionEndpoint::Xhr => Transport::XhrPolling,
        SessionEndpoint::XhrStreaming => Transport::XhrStreaming,
        SessionEndpoint::EventSource => Transport::EventSource,
        SessionEndpoint::HtmlFile => Transport::HtmlFile,
        SessionEndpoint::Jsonp => Transport::JsonpPolling,
        SessionEndpoint::WebSocket | SessionEndpoint::XhrSend | SessionEndpoint::JsonpSend => {
            return None;
        }
    })
}

/// The body of the `503` past [`Options::max_sessions`](crate::Options::max_sessions).
pub(crate) const TOO_MANY_SESSIONS: &str = "Too many sessions.\n";

fn too_many_sessions() -> Response<Bytes> {
    plain(StatusCode::SERVICE_UNAVAILABLE, TOO_MANY_SESSIONS)
}
