//! WebSocket: the upgrade handshake (RFC 6455 and hixie-76) and socket inputs.

use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::{Engine, Shared, quiet, too_many_sessions};
use crate::handshake::{accept_key, hixie76_key_number};
use crate::options::ProtocolVersion;
use crate::output::{CloseReason, Content, Event, Handshake, RequestId, SessionKey};
use crate::payload::decode_ws_message_each;
use crate::peer::Peer;
use crate::response::plain;
use crate::session::{Alive, Link, Session, SocketTimers};
use crate::transport::Transport;
use crate::wire::tokens::lists_token;

impl Engine {
    /// A text message arrived on an upgraded WebSocket.
    pub fn handle_ws_message(&mut self, now: Instant, id: RequestId, text: &str) {
        self.advance(now);
        let Some((key, raw)) = self.heard_from(id) else {
            return;
        };
        if raw {
            self.shared.out.event(Event::Message {
                session: key,
                text: text.to_owned(),
            });
            return;
        }
        let bound = self.shared.options.max_message_size;
        let queued = self
            .shared
            .out
            .queue_input(Some(key), bound, |f| decode_ws_message_each(text, f));
        match queued {
            Err(_) => self.end_socket(id, key, 3000, "Broken framing.", CloseReason::BrokenFraming),
            // A message too big for what it carries: as one past the size bound.
            Ok(false) => {
                self.end_socket(id, key, 1009, "Message too big", CloseReason::MessageTooBig)
            }
            Ok(true) => {}
        }
    }

    /// A binary message arrived on an upgraded WebSocket.
    ///
    /// SockJS carries text, but some clients send it in binary frames (sockjs-node and
    /// sockjs-go accept those as text), so valid UTF-8 is handled exactly like
    /// [`Engine::handle_ws_message`]. Anything else ends the session: a SockJS socket as for
    /// broken JSON (close 3000 "Broken framing.", [`CloseReason::BrokenFraming`]), a raw one
    /// with close 1003 "Unsupported data" ([`CloseReason::UnsupportedData`]).
    pub fn handle_ws_binary(&mut self, now: Instant, id: RequestId, data: &[u8]) {
        if let Ok(text) = std::str::from_utf8(data) {
            return self.handle_ws_message(now, id, text);
        }
        self.advance(now);
        let Some((key, raw)) = self.socket(id) else {
            return;
        };
        if raw {
            self.end_socket(
                id,
                key,
                1003,
                "Unsupported data",
                CloseReason::UnsupportedData,
            );
        } else {
            self.end_socket(id, key, 3000, "Broken framing.", CloseReason::BrokenFraming);
        }
    }

    /// A pong arrived on an upgraded WebSocket: the peer is alive. With
    /// [`Options::websocket_ping`](crate::Options::websocket_ping) on, the session would
    /// otherwise be closed once the ping timeout passes ([`CloseReason::PeerUnresponsive`]).
    ///
    /// Messages ([`Engine::handle_ws_message`], [`Engine::handle_ws_binary`]) count as
    /// signs of life on their own; a driver reports every other frame the peer sends here
    /// (pongs, and pings too, which it answers itself). Unknown sockets are ignored, and so
    /// is everything when the option is off.
    pub fn handle_ws_pong(&mut self, now: Instant, id: RequestId) {
        self.advance(now);
        self.heard_from(id);
    }

    /// The driver holds an upgraded WebSocket's reads back (`held`: its application's queue
    /// of messages is full, so the client's frames wait unread) or reads it again (`false`).
    /// A peer whose frames are not read cannot be heard, pongs included: while reads are
    /// held, dead-peer detection ([`Options::websocket_ping`](crate::Options::websocket_ping))
    /// sends no ping and closes nothing, and on resuming the peer has a whole interval
    /// before the next ping. Nothing else changes, and nothing at all with the option off.
    pub fn handle_ws_reads_held(&mut self, now: Instant, id: RequestId, held: bool) {
        self.advance(now);
        let Some((key, _)) = self.socket(id) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&key) {
            self.shared.socket_reads_held(key, s, held);
        }
    }

    /// A WebSocket message exceeded the driver's size limit
    /// ([`Options::max_message_size`](crate::Options::max_message_size)): the socket is
    /// closed with 1009 and the session ends.
    pub fn handle_ws_too_big(&mut self, now: Instant, id: RequestId) {
        self.advance(now);
        let Some((key, _)) = self.socket(id) else {
            return;
        };
        self.end_socket(id, key, 1009, "Message too big", CloseReason::MessageTooBig);
    }

    /// A WebSocket message began (its first frame's first bytes came) and has not ended
    /// within the driver's time for it (`driver::Config::message_read_timeout`, with the
    /// `driver` feature): the socket is closed with 1008 `Message timeout` and the session ends
    /// ([`CloseReason::MessageTimeout`]). As for a message too big, no `c` frame goes
    /// before the close: the socket is the client's to mend, not the session's.
    pub fn handle_ws_message_timeout(&mut self, now: Instant, id: RequestId) {
        self.advance(now);
        let Some((key, _)) = self.socket(id) else {
            return;
        };
        self.end_socket(
            id,
            key,
            1008,
            "Message timeout",
            CloseReason::MessageTimeout,
        );
    }

    /// The client closed the WebSocket with a close handshake (the session ends with
    /// [`CloseReason::ClientClosed`]). A connection that ends without one is an abort:
    /// report it with [`Engine::handle_abort`] ([`CloseReason::Aborted`]).
    pub fn handle_ws_closed(&mut self, now: Instant, id: RequestId) {
        self.advance(now);
        if let Some((key, _)) = self.socket(id) {
            self.forget(key, CloseReason::ClientClosed);
        }
    }

    /// Closes a socket the client misused (or left silent) and forgets its session.
    pub(super) fn end_socket(
        &mut self,
        id: RequestId,
        key: SessionKey,
        code: u16,
        reason: &str,
        cause: CloseReason,
    ) {
        let reason = reason.into();
        self.shared.out.push(id, Content::WsClose { code, reason });
        self.forget(key, cause);
    }

    fn socket(&self, id: RequestId) -> Option<(SessionKey, bool)> {
        let key = *self.shared.requests.get(&id)?;
        match self.sessions.get(&key)?.link {
            Link::WebSocket { socket, raw, .. } if socket == id => Some((key, raw)),
            _ => None,
        }
    }

    /// [`Engine::socket`], noting that its peer is alive (§9.2, `websocket_ping`).
    fn heard_from(&mut self, id: RequestId) -> Option<(SessionKey, bool)> {
        let key = *self.shared.requests.get(&id)?;
        let s = self.sessions.get_mut(&key)?;
        match s.link {
            Link::WebSocket { socket, raw, .. } if socket == id => {
                self.shared.socket_heard(key, s);
                Some((key, raw))
            }
            _ => None,
        }
    }

    pub(super) fn websocket(
        &mut self,
        id: RequestId,
        parts: http::request::Parts,
        session_id: &str,
        raw: bool,
        peer: Peer,
    ) {
        let (response, handshake) = match self.handshake(&parts, peer.tls) {
            Ok(accepted) => accepted,
            Err(refused) => return self.respond(id, *refused),
        };
        let options = &self.shared.options;
        if self.sessions.len() >= options.max_sessions || self.service_full {
            return self.respond(id, too_many_sessions());
        }
        if self.shared.requests.contains_key(&id) {
            return; // a live request id: the driver broke its contract; answer nothing
        }
        // §9.2: dead-peer detection needs pings, which hixie-76 does not have.
        let alive = match (&handshake, options.websocket_ping) {
            (Handshake::Rfc6455 { .. }, Some(ping)) => quiet(self.shared.now, ping.interval),
            _ => Alive::Unwatched,
        };
        let key = self.new_key();
        let timers = SocketTimers {
            heartbeat: None,
            beats: !raw || matches!(handshake, Handshake::Rfc6455 { .. }),
            alive,
        };
        let link = Link::WebSocket {
            socket: id,
            raw,
            timers,
        };
        let mut session = Session::new(session_id.into(), link);
        self.shared.requests.insert(id, key);
        let response = Box::new(response);
        self.shared.out.push(
            id,
            Content::Upgrade {
                response,
                handshake,
            },
        );
        if !raw {
            self.shared.out.push(id, Content::WsText("o".to_owned()));
        }
        self.shared.socket_wrote(key, &mut session);
        self.sessions.insert(key, Box::new(session));
        let transport = if raw {
            Transport::RawWebSocket
        } else {
            Transport::WebSocket
        };
        self.shared
            .opened(key, session_id, transport, id, parts, peer);
    }

    /// The answer to a WebSocket upgrade request: the 101 head and the handshake to finish,
    /// or the error response that refuses it. `tls`: the connection is TLS (a `wss://`
    /// location for hixie-76).
    pub(super) fn handshake(
        &self,
        parts: &http::request::Parts,
        tls: bool,
    ) -> Result<(Response<()>, Handshake), Box<Response<Bytes>>> {
        let options = &self.shared.options;
        let h = &parts.headers;
        if !asks_websocket_upgrade(parts) {
            return Err(Box::new(plain(
                StatusCode::BAD_REQUEST,
                "Can \"Upgrade\" only to \"WebSocket\".",
            )));
        }
        let connection_ok = h
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| lists_token(v.as_bytes(), "upgrade"));
        if !connection_ok {
            return Err(Box::new(plain(
                StatusCode::BAD_REQUEST,
                "\"Connection\" must be \"Upgrade\".",
            )));
        }
        let key1 = h.get("sec-websocket-key1");
        let key2 = h.get("sec-websocket-key2");
        let version = h.get(header::SEC_WEBSOCKET_VERSION);
        let (response, handshake) = if let (Some(k1), Some(k2), None) = (key1, key2, version) {
            if !options.hixie76 {
                return Err(Box::new(unsupported_version(options.protocol)));
            }
            let numbers = (
                k1.to_str().ok().and_then(hixie76_key_number),
                k2.to_str().ok().and_then(hixie76_key_number),
            );
            let (Some(key1), Some(key2)) = numbers else {
                return Err(Box::new(plain(
                    StatusCode::BAD_REQUEST,
                    "Invalid hixie-76 key.",
                )));
            };
            // Under a router that stripped the mount path, the location names the URI the
            // client asked for.
            let uri = parts
                .extensions
                .get::<crate::OriginalUri>()
                .map_or(&parts.uri, |original| &original.0);
            let tls = uri.scheme_str() == Some("https") || tls;
            let scheme = if tls { "wss" } else { "ws" };
            // RFC 9112 §3.2.2: an absolute-form target's authority before the Host field
            // (the core's decoder puts it there already; hyper leaves the field as sent).
            let host = match uri.authority() {
                Some(authority) => authority.as_str().as_bytes(),
                None => h
                    .get(header::HOST)
                    .map(HeaderValue::as_bytes)
                    .unwrap_or_default(),
            };
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
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
            // Each of these fields may appear once (RFC 6455 §11.3.1 and RFC 6455 §11.3.5).
            let once = |name| h.get_all(name).iter().nth(1).is_none();
            let version_ok = once(header::SEC_WEBSOCKET_VERSION)
                && version.is_some_and(|v| match options.protocol {
                    ProtocolVersion::Current => v == "13",
                    ProtocolVersion::V0_3_3 => v == "13" || v == "8" || v == "7",
                });
            if !version_ok {
                return Err(Box::new(unsupported_version(options.protocol)));
            }
            let Some(key) = h.get(header::SEC_WEBSOCKET_KEY).filter(|k| !k.is_empty()) else {
                return Err(Box::new(plain(
                    StatusCode::BAD_REQUEST,
                    "Missing Sec-WebSocket-Key.",
                )));
            };
            if !once(header::SEC_WEBSOCKET_KEY) || !crate::handshake::is_valid_key(key.as_bytes()) {
                return Err(Box::new(plain(
                    StatusCode::BAD_REQUEST,
                    "Invalid Sec-WebSocket-Key.",
                )));
            }
            let mut response = Response::new(());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            if let Ok(accept) = HeaderValue::from_str(&accept_key(key.as_bytes())) {
                headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
            }
            // RFC 7692: only when the service offers it; a malformed or unacceptable
            // offer means no extension, never a failed handshake.
            let deflate = options.permessage_deflate.as_ref().and_then(|settings| {
                let offers = h.get_all(header::SEC_WEBSOCKET_EXTENSIONS);
                crate::deflate::negotiate(offers, settings)
            });
            let deflate = deflate.map(|(params, answer)| {
                headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, answer);
                params
            });
            (response, Handshake::Rfc6455 { deflate })
        };
        Ok((response, handshake))
    }
}

impl Shared {
    /// Sends a WebSocket session's queued messages as one `a[...]` text message.
    pub(super) fn flush_socket(&mut self, key: SessionKey, socket: RequestId, s: &mut Session) {
        if s.batch.is_empty() {
            return;
        }
        let text = s.batch.take_frame_text();
        self.out.push(socket, Content::WsText(text));
        self.socket_wrote(key, s);
    }
}

/// The refusal of a WebSocket version the service does not speak, naming the ones it does
/// (RFC 6455 §4.2.2 and RFC 6455 §4.4).
fn unsupported_version(protocol: ProtocolVersion) -> Response<Bytes> {
    let mut response = plain(
        StatusCode::BAD_REQUEST,
        "Only supported WebSocket protocol is RFC 6455.",
    );
    let versions = match protocol {
        ProtocolVersion::V0_3_3 => "13, 8, 7",
        _ => "13",
    };
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static(versions),
    );
    response
}

/// A close reason fits in a control frame: at most 123 bytes, cut at a char boundary.
pub(super) fn ws_close_reason(reason: &str) -> Box<str> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].into()
}

/// A close code the WebSocket protocol lets an endpoint send; others become 1000.
pub(super) fn ws_close_code(code: u16) -> u16 {
    match code {
        1000..=1003 | 1007..=1014 | 3000..=4999 => code,
        _ => 1000,
    }
}

/// Whether `parts` asks to upgrade to a WebSocket: the handshake's first check, and the
/// question admission and the session limit ask of an upgrade, so that what they let
/// through is what the handshake accepts. Only HTTP/1.1 upgrades (RFC 6455 §4.2.1): an
/// HTTP/1.0 request's `Upgrade` is ignored (RFC 9110 §7.8), since an HTTP/1.0 proxy may
/// have passed it on unread and would go on framing HTTP. `Upgrade` is a list, maybe over
/// several lines.
pub(crate) fn asks_websocket_upgrade(parts: &http::request::Parts) -> bool {
    parts.version == http::Version::HTTP_11
        && parts
            .headers
            .get_all(header::UPGRADE)
            .iter()
            .any(|v| lists_token(v.as_bytes(), "websocket"))
}
