//! The sending endpoints (`xhr_send`, `jsonp_send`) and the application's `send` and
//! `close`.

use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use http::header;

use super::Engine;
use super::receive::binding_token;
use super::websocket::{ws_close_code, ws_close_reason};
use crate::frame;
use crate::output::{CloseReason, Content, RequestId, SendError, SessionKey};
use crate::payload::{decode_messages_each, jsonp_payload};
use crate::peer::Peer;
use crate::response::{Headers, RequestHeaders, TEXT_PLAIN};
use crate::session::{Link, Phase};

/// Most entries of the dirty list's buffer kept from one flush to the next.
const MAX_KEPT_DIRTY: usize = 1024;

impl Engine {
    /// Queues a message for the client. If a receiver or socket is there, it goes out from
    /// [`Engine::poll_transmit`] once the transmits already queued are drained, batched with
    /// the other messages queued by then; otherwise it waits for the next receiver.
    pub fn send(&mut self, now: Instant, session: SessionKey, text: &str) -> Result<(), SendError> {
        self.advance(now);
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(SendError::UnknownSession)?;
        if !matches!(s.phase, Phase::Open) {
            return Err(SendError::NotOpen);
        }
        if let Link::WebSocket {
            socket, raw: true, ..
        } = s.link
        {
            self.shared
                .out
                .push(socket, Content::WsText(text.to_owned()));
            self.shared.socket_wrote(session, s);
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
            self.dirty.push(session);
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
        let s = self
            .sessions
            .get_mut(&session)
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
            Link::WebSocket { socket, raw, .. } => {
                let (code, reason) = if raw {
                    (ws_close_code(code), ws_close_reason(reason))
                } else {
                    self.shared.flush_socket(session, socket, s);
                    let frame = frame::close(code, reason);
                    self.shared.out.push(socket, Content::WsText(frame));
                    (1000, "Normal closure".into())
                };
                self.shared
                    .out
                    .push(socket, Content::WsClose { code, reason });
                self.forget(session, cause);
            }
            Link::Http { receiver: Some(_) } => {
                self.shared.attach_closing(session, s);
            }
            Link::Http { receiver: None } => {}
        }
        Ok(())
    }

    /// Closes every open session (graceful shutdown). Streams get the close frame and end;
    /// WebSockets get it and close. Sessions already closing are left to expire.
    pub fn close_all(&mut self, now: Instant, code: u16, reason: &str) {
        let mut keys: Vec<SessionKey> = self.sessions.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let _ = self.close(now, key, code, reason);
        }
    }

    /// Writes the messages of every session marked dirty by [`Engine::send`].
    pub(super) fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for key in dirty.drain(..) {
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
                    let frame = s.batch.take_frame();
                    self.shared.write_frame(key, s, frame, false);
                }
                Link::Http { receiver: None } => {}
            }
        }
        // The list's buffer is kept for the next sends (one allocation per flush less),
        // unless a burst grew it past what steady traffic needs.
        if dirty.capacity() <= MAX_KEPT_DIRTY && self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the request's parts as handle_routed split them, each used once"
    )]
    pub(super) fn send_endpoint(
        &mut self,
        id: RequestId,
        parts: &http::request::Parts,
        body: &Bytes,
        session_id: &str,
        jsonp: bool,
        request_headers: &RequestHeaders,
        peer: Peer,
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
        let headers = Headers::new(options.protocol, request_headers)
            .content_type(TEXT_PLAIN)
            .no_cache();
        let mut headers = self.shared.cookie(headers, parts);
        if !jsonp {
            headers = headers.cors();
        }
        let token = binding_token(binding, parts, peer.addr, request_headers, options);
        let key = token.and_then(|token| {
            let key = self.by_id.get(session_id).copied()?;
            let session = self.sessions.get(&key)?;
            (session.binding == token).then_some(key)
        });
        let open = key.and_then(|key| {
            let session = self.sessions.get(&key)?;
            matches!(session.phase, Phase::Open).then_some(key)
        });
        // Messages go straight to the application, with no list of them in between: the
        // decoder hands nothing over unless the whole payload is valid, and a broken one
        // gets its 500 whatever the session.
        let bound = options.max_request_body;
        let queued = self
            .shared
            .out
            .queue_input(open, bound, |f| decode_messages_each(&payload, f));
        let fits = match queued {
            Ok(fits) => fits,
            Err(e) => {
                let body = Bytes::from_static(e.message().as_bytes());
                return self.respond(
                    id,
                    headers.response(StatusCode::INTERNAL_SERVER_ERROR, body),
                );
            }
        };
        if !fits {
            // Refused whole, as a body past the size bound.
            let body = Bytes::from_static(b"Payload too large.\n");
            return self.respond(id, headers.response(StatusCode::PAYLOAD_TOO_LARGE, body));
        }
        if key.is_none() {
            // Unknown, or bound to another client: indistinguishable on purpose.
            return self.respond(id, headers.response(StatusCode::NOT_FOUND, Bytes::new()));
        }
        let response = if jsonp {
            headers.response(StatusCode::OK, Bytes::from_static(b"ok"))
        } else {
            headers.response(StatusCode::NO_CONTENT, Bytes::new())
        };
        self.respond(id, response);
    }
}
