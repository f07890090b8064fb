//! The application's view of one SockJS session.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sockjs_core::{CloseReason, SendError, SessionInfo, SessionKey, Transport};

use crate::queue;
use crate::shard::Shard;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Messages flow both ways.
    Open,
    /// Closed by the application or the server; the close frame is still being replayed to
    /// the client until the disconnect delay passes. Nothing more can be sent.
    Closing,
    /// Over and forgotten.
    Closed,
}

/// State shared between the shard and the session's handles.
pub(crate) struct SessionShared {
    pub(crate) id: Box<str>,
    closed: AtomicBool,
    reason: Mutex<Option<CloseReason>>,
    /// Never sent on; its sender is dropped when the session closes, which wakes every
    /// [`SessionSender::closed`] waiter.
    closed_tx: Mutex<Option<async_channel::Sender<()>>>,
    closed_rx: async_channel::Receiver<()>,
}

impl SessionShared {
    pub(crate) fn new(id: Box<str>) -> Self {
        let (closed_tx, closed_rx) = async_channel::bounded(1);
        SessionShared {
            id,
            closed: AtomicBool::new(false),
            reason: Mutex::new(None),
            closed_tx: Mutex::new(Some(closed_tx)),
            closed_rx,
        }
    }

    pub(crate) fn set_closed(&self, reason: CloseReason) {
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        self.closed.store(true, Ordering::Release);
        self.closed_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// A cheap, cloneable handle that sends to and closes one session from any task.
///
/// It does not keep the session alive: once the session is closed, sends fail.
#[derive(Clone)]
pub struct SessionSender {
    shard: Arc<Shard>,
    key: SessionKey,
    shared: Arc<SessionShared>,
}

impl fmt::Debug for SessionSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSender")
            .field("id", &self.shared.id)
            .field("key", &self.key)
            .finish()
    }
}

impl SessionSender {
    /// The session id from the URL (empty for raw WebSocket).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Queues a message for the client. Never waits: it goes out as soon as a receiver or
    /// socket is there. Fails if the session is not open, or if the session's queue already
    /// holds [`Options::max_queued_bytes`](crate::Options::max_queued_bytes) (nothing is
    /// queued then).
    pub fn send(&self, text: &str) -> Result<(), SendError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(SendError::UnknownSession);
        }
        self.shard
            .with_engine(|st, now| st.engine.send(now, self.key, text))
    }

    /// Closes the session with a code and reason: queued messages go out first, then
    /// `c[code,"reason"]` (or a WebSocket close frame for raw WebSocket). Does nothing if
    /// the session is already closing or closed.
    pub fn close(&self, code: u16, reason: &str) {
        if self.shared.closed.load(Ordering::Acquire) {
            return;
        }
        let _ = self
            .shard
            .with_engine(|st, now| st.engine.close(now, self.key, code, reason));
    }

    /// The session's state now.
    pub fn state(&self) -> SessionState {
        if self.shared.closed.load(Ordering::Acquire) {
            return SessionState::Closed;
        }
        match self.shard.inspect(|engine| engine.session_state(self.key)) {
            Some(sockjs_core::SessionState::Open) => SessionState::Open,
            Some(sockjs_core::SessionState::Closing) => SessionState::Closing,
            None => SessionState::Closed,
        }
    }

    /// Why the session ended, once it is [`SessionState::Closed`].
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Resolves once the session is closed and forgotten.
    pub async fn closed(&self) {
        // The channel never carries a value: `recv` returns when its sender is dropped.
        let _ = self.shared.closed_rx.recv().await;
    }
}

/// One SockJS session, handed to the service's handler when the session opens.
///
/// Receive with [`recv`](Session::recv); send and close directly or through a
/// [`SessionSender`] from [`sender`](Session::sender). The session can be moved to
/// another task.
///
/// When the session ends (the client left, the disconnect delay passed, or it was closed),
/// `recv` returns the messages still queued and then `None`; the handler task is not
/// cancelled, it should return then. Dropping the `Session` while the session is still
/// open closes it with 1000 `"Normal closure"`; [`SessionSender`]s do not keep it open.
pub struct Session {
    sender: SessionSender,
    transport: Transport,
    request: http::request::Parts,
    peer: Option<SocketAddr>,
    inbound: queue::Receiver<String>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.sender.shared.id)
            .field("transport", &self.transport)
            .field("peer", &self.peer)
            .finish()
    }
}

impl Session {
    pub(crate) fn new(
        shard: Arc<Shard>,
        key: SessionKey,
        info: SessionInfo,
        inbound: queue::Receiver<String>,
        shared: Arc<SessionShared>,
    ) -> Self {
        let peer = info
            .request
            .extensions
            .get::<sockjs_core::PeerAddr>()
            .map(|p| p.0);
        Session {
            sender: SessionSender { shard, key, shared },
            transport: info.transport,
            request: info.request,
            peer,
            inbound,
        }
    }

    /// The session id from the URL (`I` in `/S/I/...`); empty for raw WebSocket.
    pub fn id(&self) -> &str {
        self.sender.id()
    }

    /// The transport of the request that opened the session.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The head of the request that opened the session (method, URI, headers; the peer
    /// address is in its extensions as a [`PeerAddr`](sockjs_core::PeerAddr)).
    pub fn request(&self) -> &http::request::Parts {
        &self.request
    }

    /// The client's address, as seen by the server socket.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The next message from the client, or `None` once the session is closed and every
    /// queued message was taken.
    pub async fn recv(&mut self) -> Option<String> {
        self.inbound.recv().await
    }

    /// Queues a message for the client; see [`SessionSender::send`].
    pub fn send(&self, text: &str) -> Result<(), SendError> {
        self.sender.send(text)
    }

    /// Closes the session; see [`SessionSender::close`].
    pub fn close(&self, code: u16, reason: &str) {
        self.sender.close(code, reason);
    }

    /// The session's state now.
    pub fn state(&self) -> SessionState {
        self.sender.state()
    }

    /// Why the session ended, once it is closed.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.sender.close_reason()
    }

    /// Resolves once the session is closed and forgotten.
    pub async fn closed(&self) {
        self.sender.closed().await;
    }

    /// A cloneable handle for sending and closing from other tasks.
    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.sender.close(1000, "Normal closure");
    }
}
