//! The application's view of a session.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use http::Uri;
use http::header::{HeaderMap, HeaderValue};
use sockjs_core::{SendError, SessionKey, Transport};
use tokio::sync::watch;

use crate::queue::QueueRx;

use crate::shard::{Shard, peer_of};

/// The state of a session as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Messages flow both ways.
    Open,
    /// Closed by the application (or a shutdown); the close frame is replayed to the client
    /// until the disconnect delay passes. Nothing more can be sent.
    Closing,
    /// Ended and forgotten.
    Closed,
}

/// One SockJS session, handed to the application's handler when it opens.
///
/// Receive with [`Session::recv`]; send with [`Session::send`] or from other tasks with a
/// [`SessionSender`] from [`Session::sender`].
///
/// # Lifetime
///
/// The handler task is spawned once per session and is never cancelled by the server. When
/// the session ends (client gone, disconnect timeout, close), [`Session::recv`] returns
/// `None` after the messages already queued, [`Session::closed`] resolves, and sends fail
/// with [`SendError::UnknownSession`]: the handler should then return. Dropping the
/// `Session` (returning from the handler) does not close the session; messages the client
/// sends afterwards are discarded, while [`SessionSender`]s keep working until it ends.
pub struct Session {
    sender: SessionSender,
    transport: Transport,
    request: http::request::Parts,
    peer: Option<SocketAddr>,
    rx: QueueRx<String>,
    inbound: Arc<AtomicUsize>,
    /// Messages returned by `recv` so far, published (as "finished with") at the next call.
    received: u64,
    done: watch::Sender<u64>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("transport", &self.transport)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shard: Arc<Shard>,
        key: SessionKey,
        id: Box<str>,
        transport: Transport,
        request: http::request::Parts,
        rx: QueueRx<String>,
        inbound: Arc<AtomicUsize>,
        closed: watch::Receiver<bool>,
        done: watch::Sender<u64>,
    ) -> Session {
        let peer = peer_of(&request);
        Session {
            sender: SessionSender {
                shard,
                key,
                id: id.into(),
                closed,
            },
            transport,
            request,
            peer,
            rx,
            inbound,
            received: 0,
            done,
        }
    }

    /// Moves the request head out of the connection's read buffer: hyper hands out header
    /// values and URIs as slices of that buffer (8 KiB or more), which a long-lived session
    /// would otherwise keep alive. Runs once per session, outside the shard lock.
    pub(crate) fn compact_request(&mut self) {
        compact_parts(&mut self.request);
    }

    /// The session id from the URL (`/S/I/...`); empty for raw WebSocket sessions.
    pub fn id(&self) -> &str {
        &self.sender.id
    }

    /// The transport of the request that opened the session.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The head of the request that opened the session (method, URI as the service saw
    /// it, headers, extensions).
    pub fn request(&self) -> &http::request::Parts {
        &self.request
    }

    /// The client's address, when the server recorded one ([`PeerAddr`](crate::PeerAddr)
    /// in the request extensions; [`serve`](crate::serve) always does).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The next message from the client, or `None` once the session has ended and every
    /// queued message was received.
    ///
    /// Calling it again also tells the server the application is done with the previous
    /// message: an `xhr_send`/`jsonp_send` is answered once its messages were taken this
    /// way (or after a short bound, [`Builder::delivery_wait`](crate::Builder::delivery_wait)),
    /// so what the application sends in reaction goes out before the client's next poll.
    pub async fn recv(&mut self) -> Option<String> {
        // Wake waiters only when there may be some: every receiver belongs to a waiting
        // request, subscribed before its message was queued, so it is counted here once
        // that message has been received. Otherwise update the value quietly.
        let received = self.received;
        let waiters = self.done.receiver_count() > 0;
        self.done.send_if_modified(|done| {
            if *done == received {
                return false;
            }
            *done = received;
            waiters
        });
        let text = self.rx.recv().await?;
        self.inbound.fetch_sub(text.len(), Ordering::Relaxed);
        self.received += 1;
        Some(text)
    }

    /// Queues a message for the client without waiting. See [`SessionSender::send`].
    pub fn send(&self, text: impl AsRef<str>) -> Result<(), SendError> {
        self.sender.send(text)
    }

    /// Closes the session with a code and reason. See [`SessionSender::close`].
    pub fn close(&self, code: u16, reason: &str) -> Result<(), SendError> {
        self.sender.close(code, reason)
    }

    /// The session's current state.
    pub fn state(&self) -> SessionState {
        self.sender.state()
    }

    /// Resolves once the session has ended.
    pub async fn closed(&self) {
        self.sender.closed().await;
    }

    /// A cheap, cloneable handle for sending to this session from other tasks.
    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }
}

/// A cheap `Clone + Send + Sync` handle that sends to, closes and watches one session.
#[derive(Clone)]
pub struct SessionSender {
    shard: Arc<Shard>,
    key: SessionKey,
    id: Arc<str>,
    closed: watch::Receiver<bool>,
}

impl fmt::Debug for SessionSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSender")
            .field("id", &self.id)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl SessionSender {
    /// The session id from the URL; empty for raw WebSocket sessions.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Queues a message for the client without waiting. It goes out at once if a receiver
    /// or socket is attached, else with the next receiver.
    ///
    /// Fails with [`SendError::QueueFull`] when the session already holds
    /// [`Options::max_queued_bytes`](sockjs_core::Options::max_queued_bytes) of unsent
    /// messages (the message is not queued), [`SendError::NotOpen`] once it is closing and
    /// [`SendError::UnknownSession`] once it has ended.
    pub fn send(&self, text: impl AsRef<str>) -> Result<(), SendError> {
        let text = text.as_ref();
        self.shard
            .run(|state, now| state.engine.send(now, self.key, text))
    }

    /// Closes the session: queued messages go out first, then `c[code,"reason"]` (a WebSocket
    /// close frame with this code and reason on raw WebSocket).
    ///
    /// Fails with [`SendError::NotOpen`] if it is already closing and
    /// [`SendError::UnknownSession`] once it has ended.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), SendError> {
        self.shard
            .run(|state, now| state.engine.close(now, self.key, code, reason))
    }

    /// The session's current state.
    pub fn state(&self) -> SessionState {
        match self.shard.peek(|engine| engine.session_state(self.key)) {
            Some(sockjs_core::SessionState::Open) => SessionState::Open,
            Some(sockjs_core::SessionState::Closing) => SessionState::Closing,
            None => SessionState::Closed,
        }
    }

    /// Resolves once the session has ended.
    pub async fn closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// Whether the session has ended (cheap; no lock).
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

/// Copies header values into one buffer of their own, and URIs into their own strings.
fn compact_parts(parts: &mut http::request::Parts) {
    let total = parts.headers.iter().map(|(_, v)| v.len()).sum();
    let mut buf = BytesMut::with_capacity(total);
    for (_, value) in &parts.headers {
        buf.extend_from_slice(value.as_bytes());
    }
    let buf = buf.freeze();
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    let mut at = 0;
    for (name, value) in &parts.headers {
        let end = at + value.len();
        let copy = match HeaderValue::from_maybe_shared(buf.slice(at..end)) {
            Ok(mut copy) => {
                copy.set_sensitive(value.is_sensitive());
                copy
            }
            Err(_) => value.clone(),
        };
        headers.append(name.clone(), copy);
        at = end;
    }
    parts.headers = headers;
    parts.uri = compact_uri(&parts.uri);
    if let Some(original) = parts.extensions.get_mut::<crate::OriginalUri>() {
        original.0 = compact_uri(&original.0);
    }
}

fn compact_uri(uri: &Uri) -> Uri {
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}
