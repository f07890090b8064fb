//! Receiving requests: attaching, 2010 for a second receiver, the closing replay, frame
//! writing, the response limit, and what a dropped receiver does to its session.

use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};

use super::{Engine, Shared, after, receiving_transport, too_many_sessions};
use crate::frame::{self, OPEN};
use crate::options::{AbortPolicy, SessionBinding};
use crate::output::{CloseReason, Content, Event, RequestId, SessionInfo, SessionKey};
use crate::payload::query_param;
use crate::peer::Peer;
use crate::response::{Headers, RequestHeaders, not_found, plain};
use crate::route::Route;
use crate::session::{Link, Phase, Receiver, ReceiverMode, Session};
use crate::transport::Transport;

/// Longest jsonp/htmlfile callback name accepted.
const MAX_CALLBACK_LEN: usize = 64;

impl Engine {
    /// The pending receiver a receiving request would collide with, if any.
    ///
    /// If `request` is a receiving request (`xhr`, `xhr_streaming`, `eventsource`,
    /// `htmlfile` or `jsonp`, with its method, under this engine's prefix) for a session that
    /// has a receiver attached, this is that receiver's request id: handed the request, the
    /// engine would answer it with `c[2010,"Another connection still open"]` (§7.1.2). A
    /// driver that notices dropped connections only when it next touches them asks this
    /// first, checks whether the attached receiver's client is still there, and if it is
    /// gone feeds [`Engine::handle_abort`] before [`Engine::handle_request`], so the
    /// newcomer is served instead of refused.
    ///
    /// A pure query: nothing changes. It does not check what the engine checks later
    /// (origin, session binding, callback), so a request it names may still be refused for
    /// another reason.
    #[must_use]
    pub fn attached_receiver(&self, request: &http::request::Parts) -> Option<RequestId> {
        let route = Route::of_target(request.uri.path(), &self.shared.options.prefix);
        self.attached_receiver_routed(request, route)
    }

    /// [`Engine::attached_receiver`] of a request the driver has routed already.
    pub(crate) fn attached_receiver_routed(
        &self,
        request: &http::request::Parts,
        route: Option<Route<'_>>,
    ) -> Option<RequestId> {
        let Some(route @ Route::Session { session, kind, .. }) = route else {
            return None;
        };
        receiving_transport(kind)?;
        if request.method == Method::OPTIONS || !route.allows(&request.method) {
            return None;
        }
        if !self.shared.options.transports.serves(kind) {
            return None; // answered with 404
        }
        let key = self.by_id.get(session)?;
        self.sessions.get(key)?.receiver().map(|r| r.request)
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

    pub(super) fn receive(
        &mut self,
        id: RequestId,
        parts: http::request::Parts,
        session_id: &str,
        transport: Transport,
        request_headers: &RequestHeaders,
        peer: Peer,
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
            let token = self.binding_token();
            request_headers.to_mut().jsessionid = HeaderValue::from_str(&token).ok();
        }
        let options = &self.shared.options;
        let Some(token) = binding_token(binding, &parts, peer.addr, &request_headers, options)
        else {
            return self.respond(id, not_found());
        };
        if let Some(key) = existing {
            if self.sessions.get(&key).is_none_or(|s| s.binding != token) {
                return self.respond(id, not_found());
            }
        }
        let options = &self.shared.options;
        let headers = Headers::new(options.protocol, &request_headers)
            .content_type(transport.content_type(options.protocol))
            .no_cache();
        let mut headers = self.shared.cookie(headers, &parts);
        if transport.receiver_has_cors() {
            headers = headers.cors();
        }
        if transport != Transport::HtmlFile && transport != Transport::EventSource {
            // Script responses: browsers must not sniff them as anything else.
            headers = headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
        }
        if transport.is_streaming() {
            // nginx (and proxies that honour it) must pass a stream on frame by frame even
            // where response buffering is on: with gzip, a buffered stream reaches the
            // client only when the compressor's buffer fills (DEPLOYMENT.md).
            headers = headers.insert(
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            );
        }
        let head = headers.response(StatusCode::OK, ());
        if self.shared.requests.contains_key(&id) {
            return; // a live request id: the driver broke its contract; answer nothing
        }

        let key = match existing {
            Some(key) => key,
            None => {
                if self.sessions.len() >= options.max_sessions || self.service_full {
                    return self.respond(id, too_many_sessions());
                }
                let key = self.new_key();
                let mut session = Session::new(session_id.into(), Link::Http { receiver: None });
                session.binding = token;
                self.sessions.insert(key, Box::new(session));
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
            self.shared
                .opened(key, session_id, transport, id, parts, peer);
            return;
        }
        match s.phase {
            Phase::Closing { .. } => self.shared.attach_closing(key, s),
            Phase::Open => {
                if s.batch.is_empty() {
                    let at = self.shared.heartbeat_at();
                    self.shared.timers.set(key, &mut s.deadline, at);
                } else {
                    let frame = s.batch.take_frame();
                    self.shared.write_frame(key, s, frame, false);
                }
            }
        }
    }
}

impl Shared {
    /// Tells the application a session opened (after its `o` was queued).
    pub(super) fn opened(
        &mut self,
        key: SessionKey,
        session_id: &str,
        transport: Transport,
        opened_by: RequestId,
        mut request: http::request::Parts,
        peer: Peer,
    ) {
        // The application reads them from the session's request.
        peer.stamp(&mut request);
        self.out.event(Event::Opened {
            session: key,
            info: Box::new(SessionInfo {
                id: session_id.into(),
                transport,
                opened_by,
                client_addr: self.client_addr(&request, peer),
                request,
            }),
        });
    }

    /// The client's address behind trusted proxies.
    pub(super) fn client_addr(
        &self,
        parts: &http::request::Parts,
        peer: Peer,
    ) -> Option<std::net::IpAddr> {
        crate::client_addr::of_request(parts, peer.addr, &self.options)
    }

    /// Starts a receiver's response: streaming ones get their head and prelude now.
    pub(super) fn start_receiver(
        &mut self,
        mut receiver: Receiver,
        head: Response<()>,
    ) -> Receiver {
        if receiver.transport.is_streaming() {
            let request = receiver.request;
            self.out.push(request, Content::StreamStart(Box::new(head)));
            if let Some(prelude) = receiver.transport.prelude(&receiver.callback) {
                self.out.push(request, Content::Chunk(prelude));
            }
        } else {
            receiver.mode = ReceiverMode::Polling(Box::new(head));
        }
        receiver
    }

    /// Answers a receiver that is not attached with one frame and ends it.
    pub(super) fn one_shot(&mut self, receiver: Receiver, head: Response<()>, frame: Vec<u8>) {
        let request = receiver.request;
        let receiver = self.start_receiver(receiver, head);
        let data = receiver
            .transport
            .wrap(frame, &receiver.callback, self.options.protocol);
        match receiver.mode {
            ReceiverMode::Polling(head) => {
                let (parts, ()) = head.into_parts();
                let response = Response::from_parts(parts, Bytes::from(data));
                self.out.respond(request, response);
            }
            ReceiverMode::Streaming { .. } => {
                self.out.push(request, Content::Chunk(Bytes::from(data)));
                self.out.push(request, Content::StreamEnd);
            }
        }
    }

    /// Writes one frame to the session's receiver. A poll then ends; a stream ends when it
    /// reaches the response limit or when `last` is set. Ending detaches the receiver.
    pub(super) fn write_frame(
        &mut self,
        key: SessionKey,
        s: &mut Session,
        frame: Vec<u8>,
        last: bool,
    ) {
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
            self.out.push(request, Content::Chunk(Bytes::from(data)));
            if !ended {
                let at = self.heartbeat_at();
                self.timers.set(key, &mut s.deadline, at);
                return;
            }
            self.out.push(request, Content::StreamEnd);
            *slot = None;
        } else if let Some(Receiver {
            mode: ReceiverMode::Polling(head),
            ..
        }) = slot.take()
        {
            let (parts, ()) = head.into_parts();
            let response = Response::from_parts(parts, Bytes::from(data));
            self.out.respond(request, response);
        }
        self.requests.remove(&request);
        self.detached(key, s);
    }

    /// A receiver left: the disconnect timer starts (from when its last write went out).
    pub(super) fn detached(&mut self, key: SessionKey, s: &mut Session) {
        let at = after(self.written_at(), self.options.disconnect_delay);
        self.timers.set(key, &mut s.deadline, at);
    }

    /// A CLOSING session with a receiver attached: queued messages, then the close frame
    /// (a poll takes only the first of the two), then the receiver ends.
    pub(super) fn attach_closing(&mut self, key: SessionKey, s: &mut Session) {
        let Phase::Closing { code, reason, .. } = &s.phase else {
            return;
        };
        let close = frame::close(*code, reason).into_bytes();
        if !s.batch.is_empty() {
            let frame = s.batch.take_frame();
            self.write_frame(key, s, frame, false);
        }
        if s.receiver().is_some() {
            self.write_frame(key, s, close, true);
        }
    }
}

/// What ties a request to the client that created a session, under the binding policy;
/// `None` when the request cannot be tied to anyone: under [`SessionBinding::PeerIp`]
/// without a peer address (the adapter gave none), where every such request would
/// otherwise share one "unknown" address and bind nothing.
pub(super) fn binding_token(
    binding: SessionBinding,
    parts: &http::request::Parts,
    peer: Option<std::net::SocketAddr>,
    request_headers: &RequestHeaders,
    options: &crate::Options,
) -> Option<Option<Box<[u8]>>> {
    match binding {
        SessionBinding::None => Some(None),
        SessionBinding::Cookie => Some(
            request_headers
                .jsessionid
                .as_ref()
                .map(|v| v.as_bytes().into()),
        ),
        SessionBinding::PeerIp => crate::client_addr::of_request(parts, peer, options)
            .map(|ip| Some(ip.to_string().into_bytes().into())),
    }
}
