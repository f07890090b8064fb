//! The engine: sessions, requests and timers of one SockJS service.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use foldhash::SharedSeed;
use foldhash::quality::SeedableRandomState;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::frame::{self, HEARTBEAT, OPEN};
use crate::handshake::{accept_key, hixie76_key_number, md5_hex};
use crate::options::{
    AbortPolicy, Options, OptionsError, OriginPolicy, ProtocolVersion, SessionBinding,
};
use crate::output::{
    CloseReason, Handshake, Output, RequestId, SendError, SessionInfo, SessionKey, SessionState,
};
use crate::pages::{GREETING, iframe_page};
use crate::payload::{decode_messages, decode_ws_message, jsonp_payload, query_param};
use crate::response::{Headers, RequestHeaders, plain};
use crate::route::{Route, SessionEndpoint};
use crate::session::{Link, Phase, Receiver, ReceiverMode, Session};
use crate::timer::Timers;
use crate::transport::Transport;

type Map<K, V> = HashMap<K, V, SeedableRandomState>;

/// Longest jsonp/htmlfile callback name accepted.
const MAX_CALLBACK_LEN: usize = 64;

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
/// can be borrowed mutably while outputs are written.
struct Shared {
    options: Options,
    outputs: VecDeque<Output>,
    /// Pending receivers and open WebSockets, to their session.
    requests: Map<RequestId, u64>,
    timers: Timers,
    now: Instant,
}

/// A sans-IO SockJS service: feed it requests, WebSocket events, application calls and
/// time; drain [`Output`]s; call back at [`Engine::poll_timeout`].
///
/// See the crate documentation for the driving loop.
pub struct Engine {
    shared: Shared,
    sessions: Map<u64, Session>,
    /// HTTP sessions by their URL id.
    by_id: Map<Box<str>, u64>,
    /// Sessions with messages to flush at the next [`Engine::poll_output`].
    dirty: Vec<u64>,
    next_key: u64,
    rng: u64,
    clock: (Instant, SystemTime),
    iframe: Bytes,
    etag: HeaderValue,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("prefix", &self.shared.options.prefix)
            .field("sessions", &self.sessions.len())
            .field("pending_requests", &self.shared.requests.len())
            .field("queued_outputs", &self.shared.outputs.len())
            .finish()
    }
}

fn after(now: Instant, delay: Duration) -> Option<Instant> {
    now.checked_add(delay)
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
        Ok(Engine {
            shared: Shared {
                options,
                outputs: VecDeque::new(),
                requests: HashMap::with_hasher(hasher(1)),
                timers: Timers::default(),
                now: start.now,
            },
            sessions: HashMap::with_hasher(hasher(2)),
            by_id: HashMap::with_hasher(hasher(3)),
            dirty: Vec::new(),
            next_key: 1,
            rng: start.seed,
            clock: (start.now, start.wall_clock),
            iframe: Bytes::from(page),
            etag,
        })
    }

    /// The options the engine runs with.
    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// Live sessions (open or closing).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Requests the engine holds: pending receivers and open WebSockets.
    pub fn pending_requests(&self) -> usize {
        self.shared.requests.len()
    }

    /// The state of a session, or `None` once it is closed and forgotten.
    pub fn session_state(&self, session: SessionKey) -> Option<SessionState> {
        self.sessions.get(&session.0).map(Session::state)
    }

    /// Escaped bytes queued for a session, waiting for a receiver.
    pub fn queued_bytes(&self, session: SessionKey) -> Option<usize> {
        self.sessions.get(&session.0).map(|s| s.batch.escaped_len())
    }

    fn advance(&mut self, now: Instant) {
        self.shared.now = self.shared.now.max(now);
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

    fn respond(&mut self, request: RequestId, response: Response<Bytes>) {
        self.shared
            .outputs
            .push_back(Output::Respond { request, response });
    }

    // ----- inputs -----------------------------------------------------------------------

    /// Handles a complete HTTP request (head and whole body). The answer comes out of
    /// [`Engine::poll_output`], at once or later (held polls, streams, upgrades).
    ///
    /// The body should already be limited by the driver to
    /// [`Options::max_request_body`]; a larger one gets 413 here.
    pub fn handle_request(&mut self, now: Instant, id: RequestId, request: Request<Bytes>) {
        self.advance(now);
        let (parts, body) = request.into_parts();
        let uri = parts.uri.clone();
        let Some(path) = strip_prefix(uri.path(), &self.shared.options.prefix) else {
            return self.respond(id, not_found());
        };
        let Some(route) = Route::parse(path) else {
            return self.respond(id, not_found());
        };
        let options = &self.shared.options;
        let disabled = match route {
            Route::RawWebSocket => !options.websocket || !options.raw_websocket,
            Route::Session {
                kind: SessionEndpoint::WebSocket,
                ..
            } => !options.websocket,
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
        let needs_origin_check = !matches!(route, Route::Greeting | Route::Iframe)
            && !matches!(options.origins, OriginPolicy::Any);
        if needs_origin_check {
            // Old WebSocket drafts (0.3.3's versions 7 and 8) send Sec-WebSocket-Origin.
            let origin = parts
                .headers
                .get(header::ORIGIN)
                .or_else(|| parts.headers.get("sec-websocket-origin"));
            if let Some(origin) = origin {
                let allowed = origin
                    .to_str()
                    .is_ok_and(|origin| options.origins.allows(origin));
                if !allowed {
                    return self.respond(id, plain(StatusCode::FORBIDDEN, "Origin not allowed.\n"));
                }
            }
        }
        let request_headers = RequestHeaders::from_map(&parts.headers);
        match route {
            Route::Greeting => {
                let response = Headers::new(options.protocol, &request_headers)
                    .content_type("text/plain; charset=UTF-8")
                    .response(StatusCode::OK, Bytes::from_static(GREETING.as_bytes()));
                self.respond(id, response);
            }
            Route::Info => self.info(id, &parts.method, &request_headers),
            Route::Iframe => self.iframe(id, &parts.headers),
            Route::RawWebSocket => self.websocket(id, parts, "", true),
            Route::Session { session, kind, .. } => match kind {
                SessionEndpoint::WebSocket => self.websocket(id, parts, session, false),
                SessionEndpoint::Xhr | SessionEndpoint::XhrStreaming
                    if parts.method == Method::OPTIONS =>
                {
                    let response = Headers::new(options.protocol, &request_headers)
                        .cors()
                        .cookie(options.jsessionid)
                        .preflight("OPTIONS, POST", self.wall_clock())
                        .response(StatusCode::NO_CONTENT, Bytes::new());
                    self.respond(id, response);
                }
                SessionEndpoint::XhrSend if parts.method == Method::OPTIONS => {
                    let response = Headers::new(options.protocol, &request_headers)
                        .cors()
                        .cookie(options.jsessionid)
                        .preflight("OPTIONS, POST", self.wall_clock())
                        .response(StatusCode::NO_CONTENT, Bytes::new());
                    self.respond(id, response);
                }
                SessionEndpoint::Xhr => {
                    self.receive(id, parts, session, Transport::XhrPolling, &request_headers)
                }
                SessionEndpoint::XhrStreaming => self.receive(
                    id,
                    parts,
                    session,
                    Transport::XhrStreaming,
                    &request_headers,
                ),
                SessionEndpoint::EventSource => {
                    self.receive(id, parts, session, Transport::EventSource, &request_headers)
                }
                SessionEndpoint::HtmlFile => {
                    self.receive(id, parts, session, Transport::HtmlFile, &request_headers)
                }
                SessionEndpoint::Jsonp => self.receive(
                    id,
                    parts,
                    session,
                    Transport::JsonpPolling,
                    &request_headers,
                ),
                SessionEndpoint::XhrSend => {
                    self.send_endpoint(id, &parts, &body, session, false, &request_headers)
                }
                SessionEndpoint::JsonpSend => {
                    self.send_endpoint(id, &parts, &body, session, true, &request_headers)
                }
            },
        }
    }

    /// The peer dropped a request's connection before its response ended (a pending
    /// receiver, a stream, or a WebSocket). Unknown or finished requests are ignored.
    pub fn handle_abort(&mut self, now: Instant, id: RequestId) {
        self.advance(now);
        let Some(&key) = self.shared.requests.get(&id) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&key) else {
            self.shared.requests.remove(&id);
            return;
        };
        match &mut session.link {
            Link::WebSocket { .. } => self.forget(key, CloseReason::Aborted),
            Link::Http { receiver } => {
                if receiver.as_ref().is_some_and(|r| r.request == id) {
                    *receiver = None;
                }
                self.shared.requests.remove(&id);
                match self.shared.options.abort {
                    AbortPolicy::CloseSession => self.forget(key, CloseReason::Aborted),
                    AbortPolicy::Interrupt => {
                        if matches!(session.phase, Phase::Open) {
                            session.phase = Phase::Closing {
                                code: 1002,
                                reason: "Connection interrupted".into(),
                                cause: CloseReason::Aborted,
                            };
                        }
                        self.shared.detached(key, session);
                    }
                    AbortPolicy::Detach => self.shared.detached(key, session),
                }
            }
        }
    }

    /// A text message arrived on an upgraded WebSocket.
    pub fn handle_ws_message(&mut self, now: Instant, id: RequestId, text: &str) {
        self.advance(now);
        let Some((key, raw)) = self.socket(id) else {
            return;
        };
        if raw {
            self.shared.outputs.push_back(Output::Message {
                session: SessionKey(key),
                text: text.to_owned(),
            });
            return;
        }
        match decode_ws_message(text) {
            Ok(messages) => {
                for text in messages {
                    self.shared.outputs.push_back(Output::Message {
                        session: SessionKey(key),
                        text,
                    });
                }
            }
            Err(_) => {
                self.shared.outputs.push_back(Output::WsClose {
                    request: id,
                    code: 3000,
                    reason: "Broken framing.".into(),
                });
                self.forget(key, CloseReason::BrokenFraming);
            }
        }
    }

    /// A WebSocket message exceeded the driver's size limit
    /// ([`Options::max_message_size`]): the socket is closed with 1009 and the session ends.
    pub fn handle_ws_too_big(&mut self, now: Instant, id: RequestId) {
        self.advance(now);
        let Some((key, _)) = self.socket(id) else {
            return;
        };
        self.shared.outputs.push_back(Output::WsClose {
            request: id,
            code: 1009,
            reason: "Message too big".into(),
        });
        self.forget(key, CloseReason::MessageTooBig);
    }

    /// The WebSocket closed (close frame received, or the connection ended).
    pub fn handle_ws_closed(&mut self, now: Instant, id: RequestId) {
        self.advance(now);
        if let Some((key, _)) = self.socket(id) {
            self.forget(key, CloseReason::ClientClosed);
        }
    }

    fn socket(&self, id: RequestId) -> Option<(u64, bool)> {
        let key = *self.shared.requests.get(&id)?;
        match self.sessions.get(&key)?.link {
            Link::WebSocket { socket, raw } if socket == id => Some((key, raw)),
            _ => None,
        }
    }

    /// Queues a message for the client. It goes out at the next [`Engine::poll_output`],
    /// batched with other messages queued before it, if a receiver or socket is there;
    /// otherwise it waits for the next receiver.
    pub fn send(&mut self, now: Instant, session: SessionKey, text: &str) -> Result<(), SendError> {
        self.advance(now);
        let key = session.0;
        let s = self
            .sessions
            .get_mut(&key)
            .ok_or(SendError::UnknownSession)?;
        if !matches!(s.phase, Phase::Open) {
            return Err(SendError::NotOpen);
        }
        if let Link::WebSocket { socket, raw: true } = s.link {
            self.shared.outputs.push_back(Output::WsText {
                request: socket,
                text: text.to_owned(),
            });
            let at = after(self.shared.now, self.shared.options.heartbeat_delay);
            self.shared.timers.set(key, &mut s.deadline, at);
            return Ok(());
        }
        let max = self.shared.options.max_queued_bytes;
        // Escaping grows a text by at most 6x: only a send that might cross the bound pays
        // for an exact check.
        if s.batch.escaped_len() + 6 * text.len() + 3 > max {
            let before = s.batch.escaped_len();
            let count = s.batch.len();
            s.batch.push(text);
            if s.batch.escaped_len() > max {
                s.batch.truncate(before, count);
                return Err(SendError::QueueFull);
            }
        } else {
            s.batch.push(text);
        }
        if s.connected() && !s.dirty {
            s.dirty = true;
            self.dirty.push(key);
        }
        Ok(())
    }

    /// Closes a session with a code and reason (PROTOCOL.md §7.1.7). Queued messages go
    /// out first, then `c[code,"reason"]`.
    pub fn close(
        &mut self,
        now: Instant,
        session: SessionKey,
        code: u16,
        reason: &str,
    ) -> Result<(), SendError> {
        self.advance(now);
        let key = session.0;
        let s = self
            .sessions
            .get_mut(&key)
            .ok_or(SendError::UnknownSession)?;
        if !matches!(s.phase, Phase::Open) {
            return Err(SendError::NotOpen);
        }
        let cause = CloseReason::Closed {
            code,
            reason: reason.to_owned(),
        };
        s.phase = Phase::Closing {
            code,
            reason: reason.into(),
            cause: cause.clone(),
        };
        match s.link {
            Link::WebSocket { socket, raw } => {
                let (code, reason) = if raw {
                    (ws_close_code(code), ws_close_reason(reason))
                } else {
                    self.shared.flush_socket(key, socket, s);
                    let frame = frame::close(code, reason);
                    self.shared.outputs.push_back(Output::WsText {
                        request: socket,
                        text: frame,
                    });
                    (1000, "Normal closure".to_owned())
                };
                self.shared.outputs.push_back(Output::WsClose {
                    request: socket,
                    code,
                    reason,
                });
                self.forget(key, cause);
            }
            Link::Http { receiver: Some(_) } => {
                self.shared.attach_closing(key, s);
            }
            Link::Http { receiver: None } => {}
        }
        Ok(())
    }

    /// Closes every open session (graceful shutdown). Streams get the close frame and end;
    /// WebSockets get it and close. Sessions already closing are left to expire.
    pub fn close_all(&mut self, now: Instant, code: u16, reason: &str) {
        let mut keys: Vec<u64> = self.sessions.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let _ = self.close(now, SessionKey(key), code, reason);
        }
    }

    /// Fires every timer due at `now`: heartbeats and disconnect timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        while let Some((entry, key)) = self.shared.timers.pop_due(now) {
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            if !self.shared.timers.fires(key, entry, &mut s.deadline, now) {
                continue;
            }
            match &s.link {
                Link::WebSocket { socket, raw } => {
                    let socket = *socket;
                    self.shared.outputs.push_back(if *raw {
                        Output::WsPing { request: socket }
                    } else {
                        Output::WsText {
                            request: socket,
                            text: "h".to_owned(),
                        }
                    });
                    let at = after(self.shared.now, self.shared.options.heartbeat_delay);
                    self.shared.timers.set(key, &mut s.deadline, at);
                }
                Link::Http { receiver: Some(_) } => {
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
    /// harmless.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shared.timers.next()
    }

    /// The next output, or `None` when there is nothing more to do until the next input.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.shared.outputs.is_empty() && !self.dirty.is_empty() {
            self.flush_dirty();
        }
        self.shared.outputs.pop_front()
    }

    fn flush_dirty(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            s.dirty = false;
            if s.batch.is_empty() {
                continue;
            }
            match s.link {
                Link::WebSocket { socket, .. } => self.shared.flush_socket(key, socket, s),
                Link::Http { receiver: Some(_) } => {
                    let frame = take_messages_frame(s);
                    self.shared.write_frame(key, s, frame, false);
                }
                Link::Http { receiver: None } => {}
            }
        }
    }

    /// Removes a session and tells the application.
    fn forget(&mut self, key: u64, reason: CloseReason) {
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
                            self.shared.outputs.push_back(Output::Respond {
                                request: r.request,
                                response: Response::from_parts(parts, Bytes::from(body)),
                            });
                        }
                        ReceiverMode::Streaming { .. } => {
                            self.shared
                                .outputs
                                .push_back(Output::StreamEnd { request: r.request });
                        }
                    }
                }
            }
            Link::WebSocket { socket, .. } => {
                self.shared.requests.remove(&socket);
            }
        }
        self.shared.outputs.push_back(Output::Closed {
            session: SessionKey(key),
            reason,
        });
    }

    // ----- endpoints --------------------------------------------------------------------

    fn info(&mut self, id: RequestId, method: &Method, request_headers: &RequestHeaders) {
        let options = &self.shared.options;
        let headers = Headers::new(options.protocol, request_headers).cors();
        if method == Method::OPTIONS {
            let response = headers
                .preflight("OPTIONS, GET", self.wall_clock())
                .response(StatusCode::NO_CONTENT, Bytes::new());
            return self.respond(id, response);
        }
        let (websocket, cookie_needed) = (options.websocket, options.jsessionid);
        let headers = headers
            .content_type("application/json; charset=UTF-8")
            .no_cache();
        let body = format!(
            "{{\"websocket\":{websocket},\"origins\":[\"*:*\"],\"cookie_needed\":{cookie_needed},\"entropy\":{}}}",
            self.entropy()
        );
        let response = headers.response(StatusCode::OK, Bytes::from(body));
        self.respond(id, response);
    }

    fn iframe(&mut self, id: RequestId, request: &HeaderMap) {
        if request.get(header::IF_NONE_MATCH) == Some(&self.etag) {
            let mut response = plain(StatusCode::NOT_MODIFIED, "");
            response
                .headers_mut()
                .insert(header::ETAG, self.etag.clone());
            return self.respond(id, response);
        }
        let none = RequestHeaders::default();
        let response = Headers::new(self.shared.options.protocol, &none)
            .content_type("text/html; charset=UTF-8")
            .long_cache(self.wall_clock())
            .insert(header::ETAG, self.etag.clone())
            .response(StatusCode::OK, self.iframe.clone());
        self.respond(id, response);
    }

    fn websocket(
        &mut self,
        id: RequestId,
        parts: http::request::Parts,
        session_id: &str,
        raw: bool,
    ) {
        let options = &self.shared.options;
        let h = &parts.headers;
        let upgrade_ok = h
            .get(header::UPGRADE)
            .is_some_and(|v| has_token(v.as_bytes(), b"websocket"));
        if !upgrade_ok {
            return self.respond(
                id,
                plain(
                    StatusCode::BAD_REQUEST,
                    "Can \"Upgrade\" only to \"WebSocket\".",
                ),
            );
        }
        let connection_ok = h
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v.as_bytes(), b"upgrade"));
        if !connection_ok {
            return self.respond(
                id,
                plain(
                    StatusCode::BAD_REQUEST,
                    "\"Connection\" must be \"Upgrade\".",
                ),
            );
        }
        let key1 = h.get("sec-websocket-key1");
        let key2 = h.get("sec-websocket-key2");
        let version = h.get(header::SEC_WEBSOCKET_VERSION);
        let (response, handshake) = if let (Some(k1), Some(k2), None) = (key1, key2, version) {
            if !options.hixie76 {
                return self.respond(id, unsupported_version());
            }
            let numbers = (
                k1.to_str().ok().and_then(hixie76_key_number),
                k2.to_str().ok().and_then(hixie76_key_number),
            );
            let (Some(key1), Some(key2)) = numbers else {
                return self.respond(id, plain(StatusCode::BAD_REQUEST, "Invalid hixie-76 key."));
            };
            let tls = parts.uri.scheme_str() == Some("https")
                || parts.extensions.get::<crate::Tls>().is_some();
            let scheme = if tls { "wss" } else { "ws" };
            let host = h
                .get(header::HOST)
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let mut location = Vec::with_capacity(host.len() + path.len() + 6);
            location.extend_from_slice(scheme.as_bytes());
            location.extend_from_slice(b"://");
            location.extend_from_slice(host);
            location.extend_from_slice(path.as_bytes());
            let mut response = Response::new(());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            if let Some(origin) = h.get(header::ORIGIN) {
                headers.insert("sec-websocket-origin", origin.clone());
            }
            if let Ok(location) = HeaderValue::from_bytes(&location) {
                headers.insert("sec-websocket-location", location);
            }
            response
                .extensions_mut()
                .insert(crate::wire::hixie76::HANDSHAKE_REASON);
            (response, Handshake::Hixie76 { key1, key2 })
        } else {
            let version_ok = version.is_some_and(|v| match options.protocol {
                ProtocolVersion::Current => v == "13",
                ProtocolVersion::V0_3_3 => v == "13" || v == "8" || v == "7",
            });
            if !version_ok {
                return self.respond(id, unsupported_version());
            }
            let Some(key) = h.get(header::SEC_WEBSOCKET_KEY).filter(|k| !k.is_empty()) else {
                return self.respond(
                    id,
                    plain(StatusCode::BAD_REQUEST, "Missing Sec-WebSocket-Key."),
                );
            };
            let mut response = Response::new(());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            if let Ok(accept) = HeaderValue::from_str(&accept_key(key.as_bytes())) {
                headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
            }
            (response, Handshake::Rfc6455)
        };
        if self.sessions.len() >= options.max_sessions {
            return self.respond(id, too_many_sessions());
        }
        if self.shared.requests.contains_key(&id) {
            return; // a live request id: the driver broke its contract; answer nothing
        }
        let key = self.new_key();
        let mut session = Session::new(session_id.into(), Link::WebSocket { socket: id, raw });
        self.shared.requests.insert(id, key);
        self.shared.outputs.push_back(Output::Upgrade {
            request: id,
            response,
            handshake,
        });
        if !raw {
            self.shared.outputs.push_back(Output::WsText {
                request: id,
                text: "o".to_owned(),
            });
        }
        let at = after(self.shared.now, self.shared.options.heartbeat_delay);
        self.shared.timers.set(key, &mut session.deadline, at);
        self.sessions.insert(key, session);
        let transport = if raw {
            Transport::RawWebSocket
        } else {
            Transport::WebSocket
        };
        self.shared.outputs.push_back(Output::Opened {
            session: SessionKey(key),
            info: SessionInfo {
                id: session_id.into(),
                transport,
                opened_by: id,
                request: parts,
            },
        });
    }

    fn new_key(&mut self) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        key
    }

    fn receive(
        &mut self,
        id: RequestId,
        parts: http::request::Parts,
        session_id: &str,
        transport: Transport,
        request_headers: &RequestHeaders,
    ) {
        let options = &self.shared.options;
        let callback: Box<str> =
            if matches!(transport, Transport::HtmlFile | Transport::JsonpPolling) {
                let query = parts.uri.query();
                let value = query_param(query, "c")
                    .filter(|v| !v.is_empty())
                    .or_else(|| query_param(query, "callback").filter(|v| !v.is_empty()));
                let Some(value) = value else {
                    return self.respond(
                        id,
                        plain(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "\"callback\" parameter required",
                        ),
                    );
                };
                let valid = value.len() <= MAX_CALLBACK_LEN
                    && value
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
                if !valid {
                    return self.respond(
                        id,
                        plain(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "invalid \"callback\" parameter",
                        ),
                    );
                }
                String::from_utf8_lossy(&value).into()
            } else {
                "".into()
            };
        let existing = self.by_id.get(session_id).copied();
        let binding = options.session_binding;
        // A fresh session bound by cookie gets a fresh random JSESSIONID, never "dummy".
        let mut request_headers = std::borrow::Cow::Borrowed(request_headers);
        if binding == SessionBinding::Cookie
            && request_headers.jsessionid.is_none()
            && existing.is_none()
        {
            let token = format!("{:016x}{:08x}", self.rng_next(), self.entropy());
            request_headers.to_mut().jsessionid = HeaderValue::from_str(&token).ok();
        }
        let token = binding_token(binding, &parts, &request_headers);
        if let Some(key) = existing {
            if self.sessions.get(&key).is_none_or(|s| s.binding != token) {
                return self.respond(id, not_found());
            }
        }
        let options = &self.shared.options;
        let mut headers = Headers::new(options.protocol, &request_headers)
            .content_type(transport.content_type(options.protocol))
            .no_cache()
            .cookie(options.jsessionid || binding == SessionBinding::Cookie);
        if matches!(
            transport,
            Transport::XhrPolling | Transport::XhrStreaming | Transport::EventSource
        ) {
            headers = headers.cors();
        }
        if transport != Transport::HtmlFile && transport != Transport::EventSource {
            // Script responses: browsers must not sniff them as anything else.
            headers = headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
        }
        let head = headers.response(StatusCode::OK, ());
        if self.shared.requests.contains_key(&id) {
            return; // a live request id: the driver broke its contract; answer nothing
        }

        let key = match existing {
            Some(key) => key,
            None => {
                if self.sessions.len() >= options.max_sessions {
                    return self.respond(id, too_many_sessions());
                }
                let key = self.new_key();
                let mut session = Session::new(session_id.into(), Link::Http { receiver: None });
                session.binding = token;
                self.sessions.insert(key, session);
                self.by_id.insert(session_id.into(), key);
                key
            }
        };
        let Some(s) = self.sessions.get_mut(&key) else {
            return self.respond(id, not_found());
        };
        let receiver = Receiver {
            request: id,
            transport,
            callback,
            mode: ReceiverMode::Streaming { written: 0 },
        };
        let Link::Http { receiver: slot } = &mut s.link else {
            return self.respond(id, not_found());
        };
        if slot.is_some() {
            // §7.1.2: another receiver is attached; this one gets 2010 and ends.
            let frame = frame::close(2010, "Another connection still open").into_bytes();
            self.shared.one_shot(receiver, head, frame);
            return;
        }
        let receiver = self.shared.start_receiver(receiver, head);
        *slot = Some(receiver);
        self.shared.requests.insert(id, key);
        if existing.is_none() {
            self.shared.write_frame(key, s, OPEN.to_vec(), false);
            self.shared.outputs.push_back(Output::Opened {
                session: SessionKey(key),
                info: SessionInfo {
                    id: session_id.into(),
                    transport,
                    opened_by: id,
                    request: parts,
                },
            });
            return;
        }
        match s.phase {
            Phase::Closing { .. } => self.shared.attach_closing(key, s),
            Phase::Open => {
                if s.batch.is_empty() {
                    let at = after(self.shared.now, self.shared.options.heartbeat_delay);
                    self.shared.timers.set(key, &mut s.deadline, at);
                } else {
                    let frame = take_messages_frame(s);
                    self.shared.write_frame(key, s, frame, false);
                }
            }
        }
    }

    fn send_endpoint(
        &mut self,
        id: RequestId,
        parts: &http::request::Parts,
        body: &Bytes,
        session_id: &str,
        jsonp: bool,
        request_headers: &RequestHeaders,
    ) {
        let options = &self.shared.options;
        let payload = if jsonp {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            jsonp_payload(content_type, body)
        } else {
            std::borrow::Cow::Borrowed(&body[..])
        };
        let binding = options.session_binding;
        let mut headers = Headers::new(options.protocol, request_headers)
            .content_type("text/plain; charset=UTF-8")
            .no_cache()
            .cookie(options.jsessionid || binding == SessionBinding::Cookie);
        if !jsonp {
            headers = headers.cors();
        }
        let messages = match decode_messages(&payload) {
            Ok(messages) => messages,
            Err(e) => {
                let body = Bytes::from_static(e.message().as_bytes());
                return self.respond(
                    id,
                    headers.response(StatusCode::INTERNAL_SERVER_ERROR, body),
                );
            }
        };
        let token = binding_token(binding, parts, request_headers);
        let key = self
            .by_id
            .get(session_id)
            .copied()
            .filter(|key| self.sessions.get(key).is_some_and(|s| s.binding == token));
        let Some(key) = key else {
            // Unknown, or bound to another client: indistinguishable on purpose.
            return self.respond(id, headers.response(StatusCode::NOT_FOUND, Bytes::new()));
        };
        let open = self
            .sessions
            .get(&key)
            .is_some_and(|s| matches!(s.phase, Phase::Open));
        if open {
            for text in messages {
                self.shared.outputs.push_back(Output::Message {
                    session: SessionKey(key),
                    text,
                });
            }
        }
        let response = if jsonp {
            headers.response(StatusCode::OK, Bytes::from_static(b"ok"))
        } else {
            headers.response(StatusCode::NO_CONTENT, Bytes::new())
        };
        self.respond(id, response);
    }
}

impl Shared {
    /// Starts a receiver's response: streaming ones get their head and prelude now.
    fn start_receiver(&mut self, mut receiver: Receiver, head: Response<()>) -> Receiver {
        if receiver.transport.is_streaming() {
            self.outputs.push_back(Output::StreamStart {
                request: receiver.request,
                response: head,
            });
            if let Some(prelude) = receiver.transport.prelude(&receiver.callback) {
                self.outputs.push_back(Output::StreamChunk {
                    request: receiver.request,
                    data: Bytes::from(prelude),
                });
            }
        } else {
            receiver.mode = ReceiverMode::Polling(head);
        }
        receiver
    }

    /// Answers a receiver that is not attached with one frame and ends it.
    fn one_shot(&mut self, receiver: Receiver, head: Response<()>, frame: Vec<u8>) {
        let request = receiver.request;
        let receiver = self.start_receiver(receiver, head);
        let data = receiver
            .transport
            .wrap(frame, &receiver.callback, self.options.protocol);
        match receiver.mode {
            ReceiverMode::Polling(head) => {
                let (parts, ()) = head.into_parts();
                self.outputs.push_back(Output::Respond {
                    request,
                    response: Response::from_parts(parts, Bytes::from(data)),
                });
            }
            ReceiverMode::Streaming { .. } => {
                self.outputs.push_back(Output::StreamChunk {
                    request,
                    data: Bytes::from(data),
                });
                self.outputs.push_back(Output::StreamEnd { request });
            }
        }
    }

    /// Writes one frame to the session's receiver. A poll then ends; a stream ends when it
    /// reaches the response limit or when `last` is set. Ending detaches the receiver.
    fn write_frame(&mut self, key: u64, s: &mut Session, frame: Vec<u8>, last: bool) {
        let Link::Http { receiver: slot } = &mut s.link else {
            return;
        };
        let Some(receiver) = slot else {
            return;
        };
        let request = receiver.request;
        let data = receiver
            .transport
            .wrap(frame, &receiver.callback, self.options.protocol);
        if let ReceiverMode::Streaming { written } = &mut receiver.mode {
            *written += data.len();
            let ended = last || *written >= self.options.response_limit;
            self.outputs.push_back(Output::StreamChunk {
                request,
                data: Bytes::from(data),
            });
            if !ended {
                let at = after(self.now, self.options.heartbeat_delay);
                self.timers.set(key, &mut s.deadline, at);
                return;
            }
            self.outputs.push_back(Output::StreamEnd { request });
            *slot = None;
        } else if let Some(Receiver {
            mode: ReceiverMode::Polling(head),
            ..
        }) = slot.take()
        {
            let (parts, ()) = head.into_parts();
            self.outputs.push_back(Output::Respond {
                request,
                response: Response::from_parts(parts, Bytes::from(data)),
            });
        }
        self.requests.remove(&request);
        self.detached(key, s);
    }

    /// A receiver left: the disconnect timer starts.
    fn detached(&mut self, key: u64, s: &mut Session) {
        let at = after(self.now, self.options.disconnect_delay);
        self.timers.set(key, &mut s.deadline, at);
    }

    /// A CLOSING session with a receiver attached: queued messages, then the close frame
    /// (a poll takes only the first of the two), then the receiver ends.
    fn attach_closing(&mut self, key: u64, s: &mut Session) {
        let Phase::Closing { code, reason, .. } = &s.phase else {
            return;
        };
        let close = frame::close(*code, reason).into_bytes();
        if !s.batch.is_empty() {
            let frame = take_messages_frame(s);
            self.write_frame(key, s, frame, false);
        }
        if s.receiver().is_some() {
            self.write_frame(key, s, close, true);
        }
    }

    /// Sends a WebSocket session's queued messages as one `a[...]` text message.
    fn flush_socket(&mut self, key: u64, socket: RequestId, s: &mut Session) {
        if s.batch.is_empty() {
            return;
        }
        let mut text = Vec::with_capacity(s.batch.frame_len());
        s.batch.write_frame(&mut text);
        s.batch.clear();
        let text = String::from_utf8(text).unwrap_or_default();
        self.outputs.push_back(Output::WsText {
            request: socket,
            text,
        });
        let at = after(self.now, self.options.heartbeat_delay);
        self.timers.set(key, &mut s.deadline, at);
    }
}

fn take_messages_frame(s: &mut Session) -> Vec<u8> {
    // One spare byte so xhr's newline needs no reallocation.
    let mut frame = Vec::with_capacity(s.batch.frame_len() + 1);
    s.batch.write_frame(&mut frame);
    s.batch.clear();
    frame
}

/// What ties a request to the client that created a session, under the binding policy.
fn binding_token(
    binding: SessionBinding,
    parts: &http::request::Parts,
    request_headers: &RequestHeaders,
) -> Option<Box<[u8]>> {
    match binding {
        SessionBinding::None => None,
        SessionBinding::Cookie => request_headers
            .jsessionid
            .as_ref()
            .map(|v| v.as_bytes().into()),
        SessionBinding::PeerIp => parts
            .extensions
            .get::<crate::PeerAddr>()
            .map(|peer| peer.0.ip().to_string().into_bytes().into()),
    }
}

fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn not_found() -> Response<Bytes> {
    plain(StatusCode::NOT_FOUND, "404 Error: Page not found\n")
}

fn too_many_sessions() -> Response<Bytes> {
    plain(StatusCode::SERVICE_UNAVAILABLE, "Too many sessions.\n")
}

fn unsupported_version() -> Response<Bytes> {
    let mut response = plain(
        StatusCode::BAD_REQUEST,
        "Only supported WebSocket protocol is RFC 6455.",
    );
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    response
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A close reason fits in a control frame: at most 123 bytes, cut at a char boundary.
fn ws_close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// A close code the WebSocket protocol lets an endpoint send; others become 1000.
fn ws_close_code(code: u16) -> u16 {
    match code {
        1000..=1003 | 1007..=1014 | 3000..=4999 => code,
        _ => 1000,
    }
}
