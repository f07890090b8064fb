//! One session's state (PROTOCOL.md §7).

use std::time::Instant;

use http::Response;

use crate::frame::MessageBatch;
use crate::output::{CloseReason, RequestId, SessionState};
use crate::timer::Deadline;
use crate::transport::Transport;

/// How a session is connected to its client.
#[derive(Debug)]
pub(crate) enum Link {
    /// HTTP transports: at most one receiver at a time.
    Http { receiver: Option<Receiver> },
    /// A WebSocket (its own session, not registered under the URL's id, §7.2).
    WebSocket {
        socket: RequestId,
        raw: bool,
        timers: SocketTimers,
    },
}

/// A WebSocket's two clocks, which share the session's one timer: its next heartbeat and
/// its peer's liveness.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketTimers {
    /// When the next heartbeat goes out (`None`: heartbeats are off).
    pub heartbeat: Option<Instant>,
    /// Whether the socket gets heartbeats at all: not a raw hixie-76 one, whose heartbeat
    /// would be a ping (§9.3), which hixie-76 does not have.
    pub beats: bool,
    /// Dead-peer detection (`Options::websocket_ping`).
    pub alive: Alive,
}

impl SocketTimers {
    /// When the session's timer must fire next.
    pub fn next(&self) -> Option<Instant> {
        let alive = match self.alive {
            Alive::Unwatched | Alive::Held => None,
            Alive::Quiet(at) | Alive::Pinged(at) => Some(at),
        };
        match (self.heartbeat, alive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Where a WebSocket's dead-peer detection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alive {
    /// Not watched: the option is off, or the socket is hixie-76 (which has no ping).
    Unwatched,
    /// The peer was heard from lately; a ping goes out at this time.
    Quiet(Instant),
    /// A ping is out; the session closes at this time unless the peer is heard from.
    Pinged(Instant),
    /// The driver holds the socket's reads back (the application's queue is full): the
    /// peer cannot be heard until they resume, so it is not watched meanwhile.
    Held,
}

/// A pending receiving request bound to a session.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub request: RequestId,
    pub transport: Transport,
    /// jsonp and htmlfile callback name.
    pub callback: Box<str>,
    pub mode: ReceiverMode,
}

#[derive(Debug)]
pub(crate) enum ReceiverMode {
    /// Answered with one complete response once a frame is ready; the head waits here.
    /// Boxed, so that sessions that never poll (WebSocket, streaming) stay small.
    Polling(Box<Response<()>>),
    /// A streaming response, with the frame bytes written so far (prelude excluded).
    Streaming { written: usize },
}

/// Open or closing, with what closing needs to replay.
#[derive(Debug)]
pub(crate) enum Phase {
    Open,
    Closing {
        code: u16,
        reason: Box<str>,
        /// What the application is told when the session is finally forgotten.
        cause: CloseReason,
    },
}

#[derive(Debug)]
pub(crate) struct Session {
    /// The URL's session id (key of the id map for HTTP sessions).
    pub id: Box<str>,
    pub link: Link,
    pub phase: Phase,
    /// Messages waiting for a receiver, escaped.
    pub batch: MessageBatch,
    pub deadline: Deadline,
    /// Queued in the engine's flush list.
    pub dirty: bool,
    /// The client the session is bound to (`Options::session_binding`), if any.
    pub binding: Option<Box<[u8]>>,
}

impl Session {
    pub fn new(id: Box<str>, link: Link) -> Self {
        Session {
            id,
            link,
            phase: Phase::Open,
            batch: MessageBatch::default(),
            deadline: Deadline::default(),
            dirty: false,
            binding: None,
        }
    }

    pub fn state(&self) -> SessionState {
        match self.phase {
            Phase::Open => SessionState::Open,
            Phase::Closing { .. } => SessionState::Closing,
        }
    }

    pub fn receiver(&self) -> Option<&Receiver> {
        match &self.link {
            Link::Http { receiver } => receiver.as_ref(),
            Link::WebSocket { .. } => None,
        }
    }

    /// Whether queued messages can go out now (a receiver or a socket is there).
    pub fn connected(&self) -> bool {
        match &self.link {
            Link::Http { receiver } => receiver.is_some(),
            Link::WebSocket { .. } => true,
        }
    }
}
