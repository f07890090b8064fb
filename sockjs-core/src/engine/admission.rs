//! Admission: which requests would open a session, and refusing one before it does.

use std::time::Instant;

use http::Method;

use super::websocket::asks_websocket_upgrade;
use super::{Engine, receiving_transport};
use crate::frame;
use crate::output::{Content, RequestId};
use crate::peer::Peer;
use crate::rejection::Rejection;
use crate::response::{Headers, TEXT_PLAIN};
use crate::route::{Route, SessionEndpoint};
use crate::transport::Transport;

impl Engine {
    /// Whether handing `request` to [`Engine::handle_request`] now would open a new session:
    /// a receiving request (`xhr`, `xhr_streaming`, `eventsource`, `htmlfile`, `jsonp`)
    /// for a session id the engine does not hold, or a WebSocket upgrade (SockJS or raw;
    /// every one opens a session of its own), on a served transport, with an allowed
    /// method and origin.
    ///
    /// A driver that lets the application admit sessions asks this first and, if it says
    /// yes, waits for the application's verdict before handing the request over (or hands
    /// [`Engine::handle_rejected`] the refusal). Requests for existing sessions, sends and
    /// the static endpoints are never asked about. Deciding, asking and handing over must
    /// happen without another input in between, or the answer may be stale; and with the
    /// timers due by the request's time fed first ([`Engine::handle_timeout`] once
    /// [`Engine::poll_timeout`] has passed): the engine runs them before a request itself,
    /// so a session past its disconnect delay is gone for the request, while this query,
    /// which takes no time, would still count it.
    ///
    /// A pure query: nothing changes. It does not check what the engine checks later (the
    /// body's size, the WebSocket handshake beyond `Upgrade: websocket`, the callback,
    /// [`Options::max_sessions`](crate::Options::max_sessions)), so a request it names may
    /// still be refused for another reason.
    ///
    /// ```
    /// use std::time::{Instant, SystemTime};
    /// use sockjs_core::{Engine, Options, RequestId, Start};
    /// let now = Instant::now();
    /// let start = Start { now, wall_clock: SystemTime::now(), seed: 1 };
    /// let mut engine = Engine::new(Options { prefix: "/echo".into(), ..Options::default() }, start)?;
    ///
    /// let poll = http::Request::post("/echo/000/abc/xhr").body(bytes::Bytes::new())?;
    /// assert!(engine.opens_session(&poll.clone().into_parts().0));
    /// engine.handle_request(now, RequestId(1), poll.clone());
    /// // The session exists now: the next poll joins it.
    /// assert!(!engine.opens_session(&poll.into_parts().0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn opens_session(&self, request: &http::request::Parts) -> bool {
        let route = Route::of_target(request.uri.path(), &self.shared.options.prefix);
        self.opens_session_routed(request, route)
    }

    /// [`Engine::opens_session`] of a request the driver has routed already.
    pub(crate) fn opens_session_routed(
        &self,
        request: &http::request::Parts,
        route: Option<Route<'_>>,
    ) -> bool {
        self.may_open_session_routed(request, route) && !self.origin_refused(request)
    }

    /// Whether the request would open a session if its origin is allowed: the question
    /// without the application's origin predicate, which the session limit asks of every
    /// request (a place held for a request its origin then refuses is given back).
    pub(crate) fn may_open_session_routed(
        &self,
        request: &http::request::Parts,
        route: Option<Route<'_>>,
    ) -> bool {
        let options = &self.shared.options;
        let Some(route) = route else {
            return false;
        };
        if request.method == Method::OPTIONS || !route.allows(&request.method) {
            return false;
        }
        match route {
            Route::RawWebSocket => {
                options.transports.contains(Transport::RawWebSocket)
                    && asks_websocket_upgrade(request)
            }
            Route::Session { session, kind, .. } if options.transports.serves(kind) => {
                if kind == SessionEndpoint::WebSocket {
                    asks_websocket_upgrade(request)
                } else {
                    receiving_transport(kind).is_some() && !self.by_id.contains_key(session)
                }
            }
            _ => false,
        }
    }

    /// Refuses a request that would have opened a session (see [`Engine::opens_session`])
    /// on the application's behalf, without creating anything: nothing of it stays in the
    /// engine, and no event comes out.
    ///
    /// A WebSocket upgrade the engine would accept is accepted, then closed at once: a
    /// SockJS WebSocket gets the frame `c[code,"reason"]` and a `1000` close, a raw
    /// WebSocket a close frame with the rejection's code and reason (browsers show a failed
    /// upgrade to scripts as a bare error, while a close reaches them with its code and
    /// reason). Any other request gets the rejection's status and body, with the CORS
    /// headers of its transport (PROTOCOL.md §3.3). A malformed upgrade gets the engine's
    /// usual `400`.
    pub fn handle_rejected(
        &mut self,
        now: Instant,
        id: RequestId,
        request: &http::request::Parts,
        rejection: &Rejection,
    ) {
        self.advance(now);
        let options = &self.shared.options;
        let route = Route::of_target(request.uri.path(), &options.prefix);
        let raw = match route {
            Some(Route::RawWebSocket) => Some(true),
            Some(Route::Session {
                kind: SessionEndpoint::WebSocket,
                ..
            }) => Some(false),
            _ => None,
        };
        if let Some(raw) = raw.filter(|_| request.method == Method::GET) {
            let (response, handshake) = match self.handshake(request, Peer::of(request).tls) {
                Ok(accepted) => accepted,
                Err(refused) => return self.respond(id, *refused),
            };
            let out = &mut self.shared.out;
            out.push(
                id,
                Content::Upgrade {
                    response: Box::new(response),
                    handshake,
                },
            );
            let (code, reason) = (rejection.close_code(), rejection.close_reason());
            let close = if raw {
                Content::WsClose {
                    code: super::websocket::ws_close_code(code),
                    reason: super::websocket::ws_close_reason(reason),
                }
            } else {
                out.push(id, Content::WsText(frame::close(code, reason)));
                Content::WsClose {
                    code: 1000,
                    reason: "Normal closure".into(),
                }
            };
            return out.push(id, close);
        }
        let request_headers = super::request_headers(&request.headers, options);
        let mut headers = Headers::new(options.protocol, &request_headers).no_cache();
        if !rejection.body().is_empty() {
            headers = headers.insert(http::header::CONTENT_TYPE, TEXT_PLAIN);
        }
        let transport = match route {
            Some(Route::Session { kind, .. }) => receiving_transport(kind),
            _ => None,
        };
        if transport.is_some_and(Transport::receiver_has_cors) {
            headers = headers.cors();
        }
        let response = headers.response(rejection.status(), rejection.body().clone());
        self.respond(id, response);
    }
}
