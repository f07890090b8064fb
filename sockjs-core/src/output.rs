//! What the engine tells its driver: identifiers, transmits, application events, and the
//! queues that hold them.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;
use http::Response;

use crate::payload::{MESSAGE_OVERHEAD, carried_bound};
use crate::transport::Transport;

/// An adapter-chosen identifier of one HTTP request; after an upgrade it identifies the
/// WebSocket that request became. It must be unique among requests the engine still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The engine's handle on one session, given in [`Event::Opened`]. Never reused, so a
/// stale key can never reach a newer session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub(crate) u64);

impl SessionKey {
    /// The key as a number (unique within one engine, and within a process when the driver
    /// hands out the key spaces), e.g. for logs or registries.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Which WebSocket handshake a [`Content::Upgrade`] completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// RFC 6455: write the 101 head and speak RFC 6455 frames.
    Rfc6455 {
        /// permessage-deflate, when the handshake negotiated it (RFC 7692; the 101 head
        /// carries the matching `Sec-WebSocket-Extensions`): the codec must then accept
        /// compressed messages and may send them
        /// ([`wire::rfc6455`](crate::wire::rfc6455), cargo feature `deflate`).
        deflate: Option<crate::DeflateParams>,
    },
    /// Hixie-76 (PROTOCOL.md §9.1): write the head with the reason phrase
    /// [`Handshake::HIXIE76_REASON`], read the 8-byte key3 that follows the request, write
    /// [`hixie76_answer`](crate::handshake::hixie76_answer)`(key1, key2, key3)`, then speak
    /// hixie-76 frames.
    Hixie76 {
        /// The number from `Sec-WebSocket-Key1`.
        key1: u32,
        /// The number from `Sec-WebSocket-Key2`.
        key2: u32,
    },
}

impl Handshake {
    /// The reason phrase of a hixie-76 101 response.
    pub const HIXIE76_REASON: &'static str = "WebSocket Protocol Handshake";
}

/// The state of a session, as [`Engine::session_state`] reports it.
///
/// A session only moves forward: `Open`, then possibly `Closing`, then `Closed`.
///
/// [`Engine::session_state`]: crate::Engine::session_state
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Open: messages flow both ways.
    Open,
    /// Closed by the application or the client; the close frame is replayed to any
    /// receiver until the disconnect delay passes.
    Closing,
    /// Ended and forgotten (its `Closed` event is out), or never known to this engine.
    Closed,
}

/// The first request of a session, as the application sees it.
#[derive(Debug)]
pub struct SessionInfo {
    /// The session id from the URL (`I` in `/S/I/...`); empty for raw WebSocket.
    pub id: Box<str>,
    /// The transport of the request that opened the session.
    pub transport: Transport,
    /// The request that opened the session; for WebSocket sessions, the socket for the
    /// session's whole life.
    pub opened_by: RequestId,
    /// The opening request's head (method, URI, headers, extensions such as a peer address
    /// the adapter attached).
    pub request: http::request::Parts,
    /// The client's address: the socket's peer, or what trusted proxies said it is
    /// ([`Options::trusted_proxies`](crate::Options::trusted_proxies)); `None` when the
    /// adapter recorded no [`PeerAddr`](crate::PeerAddr).
    pub client_addr: Option<std::net::IpAddr>,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Closed by the application with this code and reason (or by [`close_all`]).
    ///
    /// [`close_all`]: crate::Engine::close_all
    Closed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// No receiver came back within the disconnect delay.
    Timeout,
    /// The client closed its WebSocket with a close handshake.
    ClientClosed,
    /// The connection dropped: a pending receiver's (PROTOCOL.md §7.1.6), or a WebSocket's
    /// without a close handshake (or closed by the driver, e.g. on overflow).
    Aborted,
    /// The client sent a WebSocket message that is not valid SockJS framing (broken JSON,
    /// or a binary message that is not UTF-8).
    BrokenFraming,
    /// The client sent a WebSocket message over the size limit.
    MessageTooBig,
    /// The client sent a binary message that is not UTF-8 text over a raw WebSocket, which
    /// carries text only (closed with 1003).
    UnsupportedData,
    /// The WebSocket's peer sent nothing, not even a pong, within the ping timeout of
    /// [`Options::websocket_ping`](crate::Options::websocket_ping): the socket was closed
    /// with [`PingOptions::CLOSE_CODE`](crate::PingOptions::CLOSE_CODE) `3000`
    /// "No response from heartbeat".
    PeerUnresponsive,
    /// The client began a WebSocket message and did not finish it in time
    /// ([`Engine::handle_ws_message_timeout`](crate::Engine::handle_ws_message_timeout)):
    /// the socket was closed with 1008 "Message timeout".
    MessageTimeout,
}

/// One write for one request (or the WebSocket it became), drained with
/// [`Engine::poll_transmit`].
///
/// Transmits of one request come in the order they must be written (a driver that hands
/// them to per-connection writers must keep that order); transmits of different requests
/// are independent. Each [`Content::Chunk`] goes out as its own flushed HTTP chunk
/// (PROTOCOL.md §10).
///
/// [`Engine::poll_transmit`]: crate::Engine::poll_transmit
#[derive(Debug)]
pub struct Transmit {
    /// The request (or WebSocket) to write to.
    pub request: RequestId,
    /// What to write.
    pub content: Content,
}

/// What a [`Transmit`] writes. The request is done after a content that
/// [`is_last`](Content::is_last); the engine has already forgotten it then.
#[derive(Debug)]
#[non_exhaustive]
pub enum Content {
    /// A complete response (its body is whole); the request is done.
    Response(Box<Response<Bytes>>),
    /// The head of a streaming response: no Content-Length, so chunked on HTTP/1.1 and
    /// close-delimited on HTTP/1.0.
    StreamStart(Box<Response<()>>),
    /// One chunk of a streaming response: write it as its own HTTP chunk and flush it.
    Chunk(Bytes),
    /// The end of a streaming response (terminating chunk, or close on HTTP/1.0); the
    /// request is done.
    StreamEnd,
    /// Accept the WebSocket upgrade: write this 101 head and finish the handshake. From now
    /// on the request id names the WebSocket.
    Upgrade {
        /// The 101 head (for hixie-76 it carries the [`ReasonPhrase`] extension that makes
        /// [`ResponseEncoder`] write its reason phrase).
        ///
        /// [`ReasonPhrase`]: crate::wire::ReasonPhrase
        /// [`ResponseEncoder`]: crate::wire::ResponseEncoder
        response: Box<Response<()>>,
        /// Which handshake to finish.
        handshake: Handshake,
    },
    /// A WebSocket text message.
    WsText(String),
    /// A WebSocket ping: the raw WebSocket heartbeat, and the probe of
    /// [`Options::websocket_ping`](crate::Options::websocket_ping), whose pong the driver
    /// reports with [`Engine::handle_ws_pong`](crate::Engine::handle_ws_pong). A hixie-76
    /// driver drops it (that protocol has no ping).
    WsPing,
    /// A WebSocket close frame with this code and reason; then close the connection. The
    /// socket is done.
    WsClose {
        /// The close code.
        code: u16,
        /// The close reason (at most 123 bytes, so it fits a control frame).
        reason: Box<str>,
    },
}

impl Content {
    /// Whether this is the last write of its request ([`Content::Response`],
    /// [`Content::StreamEnd`], [`Content::WsClose`]).
    pub fn is_last(&self) -> bool {
        matches!(
            self,
            Content::Response(_) | Content::StreamEnd | Content::WsClose { .. }
        )
    }
}

/// What the application hears of, drained with [`Engine::poll_event`].
///
/// Events come in the order they happened. An [`Event::Opened`] is queued after the
/// session's `o` frame was queued as a [`Transmit`], so whatever the application does in
/// answer to it goes out after `o`. Reacting to an event may queue more transmits and
/// events: a driver drains both queues until both are empty.
///
/// [`Engine::poll_event`]: crate::Engine::poll_event
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A session opened.
    Opened {
        /// The new session.
        session: SessionKey,
        /// Its first request.
        info: Box<SessionInfo>,
    },
    /// The client sent a message.
    Message {
        /// The session.
        session: SessionKey,
        /// The message.
        text: String,
    },
    /// The session ended and is forgotten; its key is never used again.
    Closed {
        /// The session.
        session: SessionKey,
        /// Why.
        reason: CloseReason,
    },
}

/// The engine's two outgoing queues.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Outbox {
    pub fn push(&mut self, request: RequestId, content: Content) {
        self.transmits.push_back(Transmit { request, content });
    }

    pub fn respond(&mut self, request: RequestId, response: Response<Bytes>) {
        self.push(request, Content::Response(Box::new(response)));
    }

    pub fn event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    pub fn pop_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn pop_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn transmits(&self) -> usize {
        self.transmits.len()
    }

    pub fn events(&self) -> usize {
        self.events.len()
    }

    /// Queues the messages of one input (a SockJS WebSocket message, a send's body) for
    /// `session` (`None`: weighed, not queued) as `decode` hands them over. Each weighs its
    /// length and [`MESSAGE_OVERHEAD`]; past [`carried_bound`] of `bound` (the input's own
    /// byte bound) nothing more is queued and what was is dropped: `Ok(false)`, the input
    /// refused whole. `decode`'s error comes back as it is (it hands nothing over then).
    pub fn queue_input<E>(
        &mut self,
        session: Option<SessionKey>,
        bound: usize,
        decode: impl FnOnce(&mut dyn FnMut(String)) -> Result<(), E>,
    ) -> Result<bool, E> {
        let bound = carried_bound(bound);
        let before = self.events.len();
        let mut weight = 0usize;
        decode(&mut |text| {
            weight = weight.saturating_add(text.len() + MESSAGE_OVERHEAD);
            if let Some(session) = session.filter(|_| weight <= bound) {
                self.events.push_back(Event::Message { session, text });
            }
        })?;
        if weight > bound {
            self.events.truncate(before);
        }
        Ok(weight <= bound)
    }
}

/// Why [`Engine::send`] or [`Engine::close`] refused.
///
/// [`Engine::send`]: crate::Engine::send
/// [`Engine::close`]: crate::Engine::close
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed and forgotten (or never existed).
    UnknownSession,
    /// The session is closing; nothing more can be sent.
    NotOpen,
    /// The session's queue is at [`Options::max_queued_bytes`]; the message was not queued.
    ///
    /// [`Options::max_queued_bytes`]: crate::Options::max_queued_bytes
    QueueFull,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::UnknownSession => "unknown session",
            SendError::NotOpen => "session is closing",
            SendError::QueueFull => "session queue is full",
        })
    }
}

impl std::error::Error for SendError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_items_stay_small() {
        assert!(size_of::<Content>() <= 40, "{}", size_of::<Content>());
        assert!(size_of::<Event>() <= 48, "{}", size_of::<Event>());
    }

    #[test]
    fn last_writes() {
        let response = Response::new(Bytes::new());
        assert!(Content::Response(Box::new(response)).is_last());
        assert!(Content::StreamEnd.is_last());
        let close = Content::WsClose {
            code: 1000,
            reason: "".into(),
        };
        assert!(close.is_last());
        assert!(!Content::Chunk(Bytes::from_static(b"o\n")).is_last());
        assert!(!Content::WsText("o".into()).is_last());
        assert!(!Content::WsPing.is_last());
    }
}
