//! The application's view of one session: [`Session`] and [`SessionSender`].

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::driver::shard::Shard;
use crate::driver::waiters::{Waiters, wake_all};
use crate::{CloseReason, PeerAddr, SendError, SessionInfo, SessionKey, SessionState, Transport};

/// Close code and reason of a session whose every handle was dropped while it was open.
const DROPPED: (u16, &str) = (1000, "Normal closure");

/// Why the shard could not queue a message for the application.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InboundError {
    /// Over the session's inbound bounds.
    Full,
    /// The `Session` was dropped: nobody reads any more.
    Gone,
}

/// What the shard and a session's handles share: the inbound queue, and how it ended.
pub(crate) struct SessionShared {
    pub(crate) id: Box<str>,
    /// Set once the session is closed and forgotten (a lock-free fast path for handles).
    closed: AtomicBool,
    state: Mutex<SharedState>,
}

#[derive(Default)]
struct SharedState {
    items: VecDeque<String>,
    bytes: usize,
    /// The session ended: `recv` returns `None` after the queued items.
    ended: bool,
    /// The `Session` was dropped: nothing is received any more.
    gone: bool,
    recv_waker: Option<Waker>,
    /// Messages queued so far, and how many of them the application is done with.
    pushed: u64,
    taken: u64,
    /// Requests waiting for `taken` to move (see [`Delivery`]).
    delivery: Waiters,
    reason: Option<CloseReason>,
    /// `closed()` futures.
    closing: Waiters,
}

impl SessionShared {
    pub(crate) fn new(id: Box<str>) -> Self {
        SessionShared {
            id,
            closed: AtomicBool::new(false),
            state: Mutex::new(SharedState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message for the application; returns its sequence number (for
    /// [`Delivery`]).
    pub(crate) fn push(
        &self,
        text: String,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<u64, InboundError> {
        let waker = {
            let mut st = self.lock();
            if st.gone {
                return Err(InboundError::Gone);
            }
            let len = text.len();
            if st.items.len() >= max_items
                || (st.bytes > 0 && st.bytes.saturating_add(len) > max_bytes)
            {
                return Err(InboundError::Full);
            }
            st.items.push_back(text);
            st.bytes += len;
            st.pushed += 1;
            (st.pushed, st.recv_waker.take())
        };
        if let Some(waker) = waker.1 {
            waker.wake();
        }
        Ok(waker.0)
    }

    /// The session is over: `recv` ends after the queued messages, handles report it.
    pub(crate) fn end(&self, reason: CloseReason) {
        let wakers = {
            let mut st = self.lock();
            st.ended = true;
            st.reason = Some(reason);
            self.closed.store(true, Ordering::Release);
            let mut wakers = st.closing.take();
            wakers.extend(st.delivery.take());
            wakers.extend(st.recv_waker.take());
            wakers
        };
        wake_all(wakers);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A message handed to a session's application by one request, done once the application
/// has taken it.
pub(crate) struct Delivery {
    pub(crate) shared: Arc<SessionShared>,
    pub(crate) seq: u64,
}

impl Delivery {
    /// Ready once the application came back to `recv` after the message, dropped its
    /// `Session`, or the session ended.
    pub(crate) fn poll_taken(&self, cx: &mut Context<'_>, slot: &mut Option<u64>) -> Poll<()> {
        let mut st = self.shared.lock();
        if st.taken >= self.seq || st.gone || st.ended {
            st.delivery.remove(slot.take());
            return Poll::Ready(());
        }
        st.delivery.register(slot, cx);
        Poll::Pending
    }

    /// Stops waiting.
    pub(crate) fn forget(&self, slot: Option<u64>) {
        self.shared.lock().delivery.remove(slot);
    }
}

/// The last handle closes the session.
struct Handle {
    shard: Arc<Shard>,
    key: SessionKey,
    shared: Arc<SessionShared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.shared.is_closed() {
            let _ = self.shard.close(self.key, DROPPED.0, DROPPED.1);
        }
    }
}

/// A cheap, cloneable handle that sends to, closes and watches one session from any task.
///
/// Like the [`Session`] itself, it keeps the session open: a session is closed with
/// `1000 "Normal closure"` once its `Session` and every `SessionSender` are dropped.
#[derive(Clone)]
pub struct SessionSender {
    handle: Arc<Handle>,
}

impl fmt::Debug for SessionSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSender")
            .field("id", &self.handle.shared.id)
            .field("key", &self.handle.key)
            .finish_non_exhaustive()
    }
}

impl SessionSender {
    /// The session id from the URL (`I` in `/S/I/...`); empty for raw WebSocket.
    pub fn id(&self) -> &str {
        &self.handle.shared.id
    }

    /// The engine's key of the session (unique within its shard).
    pub fn key(&self) -> SessionKey {
        self.handle.key
    }

    /// Queues a message for the client without waiting. It goes out at once if a receiver
    /// or socket is attached, else with the next receiver.
    ///
    /// Fails with [`SendError::QueueFull`] when the session already holds
    /// [`Options::max_queued_bytes`](crate::Options::max_queued_bytes) of unsent messages
    /// (nothing is queued then), [`SendError::NotOpen`] once it is closing and
    /// [`SendError::UnknownSession`] once it has ended.
    pub fn send(&self, text: impl AsRef<str>) -> Result<(), SendError> {
        if self.handle.shared.is_closed() {
            return Err(SendError::UnknownSession);
        }
        self.handle.shard.send(self.handle.key, text.as_ref())
    }

    /// Closes the session with a code and reason: queued messages go out first, then
    /// `c[code,"reason"]` (a WebSocket close frame with this code and reason on raw
    /// WebSocket).
    ///
    /// Fails with [`SendError::NotOpen`] if it is already closing and
    /// [`SendError::UnknownSession`] once it has ended.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), SendError> {
        if self.handle.shared.is_closed() {
            return Err(SendError::UnknownSession);
        }
        self.handle.shard.close(self.handle.key, code, reason)
    }

    /// The session's state now.
    pub fn state(&self) -> SessionState {
        if self.handle.shared.is_closed() {
            return SessionState::Closed;
        }
        self.handle.shard.session_state(self.handle.key)
    }

    /// Whether the session has ended (cheap: no lock).
    pub fn is_closed(&self) -> bool {
        self.handle.shared.is_closed()
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.handle.shared.lock().reason.clone()
    }

    /// Resolves once the session has ended.
    pub fn closed(&self) -> Closed {
        Closed {
            shared: self.handle.shared.clone(),
            slot: None,
        }
    }
}

/// The future of [`SessionSender::closed`] and [`Session::closed`].
#[must_use = "futures do nothing unless polled"]
pub struct Closed {
    shared: Arc<SessionShared>,
    slot: Option<u64>,
}

impl fmt::Debug for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closed")
            .field("session", &self.shared.id)
            .finish()
    }
}

impl Future for Closed {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut st = this.shared.lock();
        if st.ended {
            st.closing.remove(this.slot.take());
            return Poll::Ready(());
        }
        st.closing.register(&mut this.slot, cx);
        Poll::Pending
    }
}

impl Drop for Closed {
    fn drop(&mut self) {
        if self.slot.is_some() {
            self.shared.lock().closing.remove(self.slot.take());
        }
    }
}

/// One SockJS session, handed to the service's handler when it opens (after the client
/// got `o`).
///
/// Receive with [`recv`](Session::recv); send and close here or through a
/// [`SessionSender`] from [`sender`](Session::sender), from any task.
///
/// # Lifecycle
///
/// - The handler runs in its own task and is never cancelled by the server.
/// - The session ends when the client goes (WebSocket closed, a receiver aborted, or no
///   receiver came back within the disconnect delay), when the application closes it, at
///   graceful shutdown, or when the application stops taking its messages (see
///   [`Config::max_session_inbound`](crate::driver::Config::max_session_inbound)).
///   [`close_reason`](Session::close_reason) says which.
/// - Once it has ended, [`recv`](Session::recv) returns the messages still queued and then
///   `None`, [`closed`](Session::closed) resolves and sends fail: the handler should return.
/// - No session outlives its handles: once the `Session` and every [`SessionSender`] are
///   dropped, an open session is closed with `1000 "Normal closure"`. Messages the client
///   sends after the `Session` was dropped are discarded.
pub struct Session {
    sender: SessionSender,
    info: Box<SessionInfo>,
    peer: Option<SocketAddr>,
    /// Messages returned by `recv`; the previous one counts as taken at the next call.
    received: u64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("key", &self.key())
            .field("transport", &self.info.transport)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(
        shard: Arc<Shard>,
        key: SessionKey,
        mut info: Box<SessionInfo>,
        shared: Arc<SessionShared>,
    ) -> Session {
        compact(&mut info.request);
        let peer = info.request.extensions.get::<PeerAddr>().map(|p| p.0);
        Session {
            sender: SessionSender {
                handle: Arc::new(Handle { shard, key, shared }),
            },
            info,
            peer,
            received: 0,
        }
    }

    /// The session id from the URL (`I` in `/S/I/...`); empty for raw WebSocket.
    pub fn id(&self) -> &str {
        self.sender.id()
    }

    /// The engine's key of the session (unique within its shard).
    pub fn key(&self) -> SessionKey {
        self.sender.key()
    }

    /// The transport of the request that opened the session.
    pub fn transport(&self) -> Transport {
        self.info.transport
    }

    /// The head of the request that opened the session (method, URI, headers, and
    /// extensions such as the [`PeerAddr`]).
    pub fn request(&self) -> &http::request::Parts {
        &self.info.request
    }

    /// The client's address as the server's socket saw it, when the adapter recorded one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The next message from the client, or `None` once the session has ended and every
    /// queued message was received.
    ///
    /// Calling it again also tells the server the application is done with the previous
    /// message (see [`Config::delivery_wait`](crate::driver::Config::delivery_wait)).
    pub async fn recv(&mut self) -> Option<String> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message: the poll form of [`recv`](Session::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<String>> {
        let shared = &self.sender.handle.shared;
        let mut wakers = Vec::new();
        let result = {
            let mut st = shared.lock();
            if st.taken < self.received {
                st.taken = self.received;
                wakers = st.delivery.take();
            }
            match st.items.pop_front() {
                Some(text) => {
                    st.bytes -= text.len();
                    if st.items.is_empty() && st.items.capacity() > 16 {
                        st.items.shrink_to(16);
                    }
                    self.received += 1;
                    Poll::Ready(Some(text))
                }
                None if st.ended => Poll::Ready(None),
                None => {
                    crate::driver::queue::register(&mut st.recv_waker, cx);
                    Poll::Pending
                }
            }
        };
        wake_all(wakers);
        result
    }

    /// Queues a message for the client; see [`SessionSender::send`].
    pub fn send(&self, text: impl AsRef<str>) -> Result<(), SendError> {
        self.sender.send(text)
    }

    /// Closes the session; see [`SessionSender::close`].
    pub fn close(&self, code: u16, reason: &str) -> Result<(), SendError> {
        self.sender.close(code, reason)
    }

    /// The session's state now.
    pub fn state(&self) -> SessionState {
        self.sender.state()
    }

    /// Whether the session has ended (cheap: no lock).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.sender.close_reason()
    }

    /// Resolves once the session has ended.
    pub fn closed(&self) -> Closed {
        self.sender.closed()
    }

    /// A cloneable handle for sending and closing from other tasks.
    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let (items, wakers) = {
            let mut st = self.sender.handle.shared.lock();
            st.gone = true;
            st.bytes = 0;
            st.recv_waker = None;
            (std::mem::take(&mut st.items), st.delivery.take())
        };
        drop(items);
        wake_all(wakers);
    }
}

/// Gives a session's request head storage of its own: HTTP layers hand out header values
/// and URIs as slices of the connection's read buffer (kilobytes), which a long-lived
/// session would otherwise keep alive. One buffer for all the values, the URIs as strings.
fn compact(parts: &mut http::request::Parts) {
    let total = parts.headers.iter().map(|(_, v)| v.len()).sum();
    let mut buf = bytes::BytesMut::with_capacity(total);
    for value in parts.headers.values() {
        buf.extend_from_slice(value.as_bytes());
    }
    let buf = buf.freeze();
    let mut headers = http::HeaderMap::with_capacity(parts.headers.len());
    let mut at = 0;
    for (name, value) in &parts.headers {
        let end = at + value.len();
        let copy = match http::HeaderValue::from_maybe_shared(buf.slice(at..end)) {
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

fn compact_uri(uri: &http::Uri) -> http::Uri {
    http::Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}
