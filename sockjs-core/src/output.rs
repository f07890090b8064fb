//! What the engine tells its driver: identifiers, outputs and application events.

use std::fmt;

use bytes::Bytes;
use http::Response;

use crate::transport::Transport;

/// An adapter-chosen identifier of one HTTP request; after an upgrade it identifies the
/// WebSocket that request became. It must be unique among requests the engine still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The engine's handle on one session, given in [`Output::Opened`]. Never reused, so a
/// stale key can never reach a newer session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub(crate) u64);

impl SessionKey {
    /// The key as a number (unique within one engine), e.g. for logs or sharding.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Which WebSocket handshake an [`Output::Upgrade`] completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// RFC 6455: write the 101 head and speak RFC 6455 frames.
    Rfc6455,
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
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The client sent a WebSocket message that is not valid SockJS framing.
    BrokenFraming,
    /// The client sent a WebSocket message over the size limit.
    MessageTooBig,
}

/// Everything the engine asks of its driver, drained with [`Engine::poll_output`].
///
/// Transmit outputs (responses, chunks, WebSocket frames) for one request come in the order
/// they must be written. Each [`Output::StreamChunk`] must go out as its own HTTP chunk and
/// be flushed (PROTOCOL.md §10).
///
/// [`Engine::poll_output`]: crate::Engine::poll_output
#[derive(Debug)]
pub enum Output {
    /// Write this complete response; the request is done.
    Respond {
        /// The request answered.
        request: RequestId,
        /// The response; its body is complete.
        response: Response<Bytes>,
    },
    /// Start a streaming response with this head (no Content-Length: chunked on HTTP/1.1,
    /// close-delimited on HTTP/1.0).
    StreamStart {
        /// The request answered.
        request: RequestId,
        /// The response head.
        response: Response<()>,
    },
    /// Write one chunk of a streaming response and flush it.
    StreamChunk {
        /// The streaming request.
        request: RequestId,
        /// The chunk.
        data: Bytes,
    },
    /// End a streaming response (terminating chunk, or close on HTTP/1.0).
    StreamEnd {
        /// The streaming request.
        request: RequestId,
    },
    /// Accept the WebSocket upgrade: write this 101 head and complete the handshake. The
    /// request id now identifies the WebSocket.
    Upgrade {
        /// The request upgraded.
        request: RequestId,
        /// The 101 response head.
        response: Response<()>,
        /// Which handshake to finish.
        handshake: Handshake,
    },
    /// Send a WebSocket text message.
    WsText {
        /// The WebSocket.
        request: RequestId,
        /// The text.
        text: String,
    },
    /// Send a WebSocket ping (raw WebSocket heartbeat).
    WsPing {
        /// The WebSocket.
        request: RequestId,
    },
    /// Send a WebSocket close frame with this code and reason, then close the connection.
    /// The engine has already forgotten the WebSocket.
    WsClose {
        /// The WebSocket.
        request: RequestId,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// Application event: a session opened.
    Opened {
        /// The new session.
        session: SessionKey,
        /// Its first request.
        info: SessionInfo,
    },
    /// Application event: the client sent a message.
    Message {
        /// The session.
        session: SessionKey,
        /// The message.
        text: String,
    },
    /// Application event: the session ended and is forgotten.
    Closed {
        /// The session.
        session: SessionKey,
        /// Why.
        reason: CloseReason,
    },
}

/// Why [`Engine::send`] or [`Engine::close`] refused.
///
/// [`Engine::send`]: crate::Engine::send
/// [`Engine::close`]: crate::Engine::close
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
