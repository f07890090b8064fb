//! The application's view of one session: [`Session`] and [`SessionSender`].

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
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

    /// The server's key of the session: unique among every session of the process (raw
    /// WebSocket ones included) and never reused. Key registries on it, not on
    /// [`id`](SessionSender::id), which the client chooses (two WebSocket sessions may share
    /// one, raw WebSocket sessions have none).
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
    transport: Transport,
    head: Head,
    peer: Option<SocketAddr>,
    client: Option<std::net::IpAddr>,
    /// Messages returned by `recv`; the previous one counts as taken at the next call.
    received: u64,
    /// The session's place in the count of running handlers.
    _running: crate::driver::service::Running,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("key", &self.key())
            .field("transport", &self.transport)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(
        shard: Arc<Shard>,
        key: SessionKey,
        info: Box<SessionInfo>,
        shared: Arc<SessionShared>,
    ) -> Session {
        let SessionInfo {
            transport,
            request,
            client_addr,
            ..
        } = *info;
        let peer = request.extensions.get::<PeerAddr>().map(|p| p.0);
        let running = shard.common.running();
        Session {
            sender: SessionSender {
                handle: Arc::new(Handle { shard, key, shared }),
            },
            transport,
            head: Head::new(request),
            peer,
            client: client_addr,
            received: 0,
            _running: running,
        }
    }

    /// The session id from the URL (`I` in `/S/I/...`), as the client chose it; empty for
    /// raw WebSocket. Not unique: see [`key`](Session::key).
    pub fn id(&self) -> &str {
        self.sender.id()
    }

    /// The server's key of the session, unique in the process: what to key registries on
    /// (see [`SessionSender::key`]).
    pub fn key(&self) -> SessionKey {
        self.sender.key()
    }

    /// The transport of the request that opened the session.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The head of the request that opened the session (method, URI, headers, and
    /// extensions such as the [`PeerAddr`]).
    pub fn request(&self) -> &http::request::Parts {
        self.head.parts()
    }

    /// The address of the other end of the connection, when the adapter recorded one:
    /// the client's, or a proxy's. See [`client_addr`](Session::client_addr).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The client's address: the peer's, unless the peer is one of the
    /// [`Options::trusted_proxies`](crate::Options::trusted_proxies), in which case what the
    /// trusted hops' `Forwarded`, `X-Forwarded-For` or `X-Real-IP` headers say. It is what
    /// [`SessionBinding::PeerIp`](crate::SessionBinding::PeerIp) binds to.
    pub fn client_addr(&self) -> Option<std::net::IpAddr> {
        self.client
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

/// A session's opening request head, kept small while the application does not look at
/// it: the header fields packed into one buffer of their own (not slices of the
/// connection's read buffer, which a long-lived session would otherwise keep alive), the
/// `HeaderMap` built the first time [`Session::request`] is called.
struct Head {
    built: OnceLock<Box<http::request::Parts>>,
    packed: Mutex<Option<Packed>>,
}

struct Packed {
    /// The head without its header fields.
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    extensions: http::Extensions,
    /// Per field: name length (u16), name, value length (u16), sensitive (u8), value.
    fields: Box<[u8]>,
}

impl Head {
    fn new(mut parts: http::request::Parts) -> Head {
        // The driver's own extension is for the driver.
        parts.extensions.remove::<crate::driver::ConnectionProbe>();
        if let Some(original) = parts.extensions.get_mut::<crate::OriginalUri>() {
            original.0 = compact_uri(&original.0);
        }
        let mut fields = Vec::with_capacity(
            parts
                .headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 5)
                .sum(),
        );
        for (name, value) in &parts.headers {
            let (name, sensitive, value) = (name.as_str(), value.is_sensitive(), value.as_bytes());
            let (Ok(name_len), Ok(value_len)) =
                (u16::try_from(name.len()), u16::try_from(value.len()))
            else {
                continue;
            };
            fields.extend_from_slice(&name_len.to_le_bytes());
            fields.extend_from_slice(name.as_bytes());
            fields.extend_from_slice(&value_len.to_le_bytes());
            fields.push(u8::from(sensitive));
            fields.extend_from_slice(value);
        }
        Head {
            built: OnceLock::new(),
            packed: Mutex::new(Some(Packed {
                method: parts.method,
                uri: compact_uri(&parts.uri),
                version: parts.version,
                extensions: parts.extensions,
                fields: fields.into_boxed_slice(),
            })),
        }
    }

    fn parts(&self) -> &http::request::Parts {
        self.built.get_or_init(|| {
            let packed = self
                .packed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let mut parts = http::Request::new(()).into_parts().0;
            if let Some(packed) = packed {
                parts.method = packed.method;
                parts.uri = packed.uri;
                parts.version = packed.version;
                parts.extensions = packed.extensions;
                parts.headers = unpack(&packed.fields);
            }
            Box::new(parts)
        })
    }
}

/// The header fields [`Head::new`] packed.
fn unpack(mut fields: &[u8]) -> http::HeaderMap {
    fn take<'a>(fields: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = fields.split_at_checked(n)?;
        *fields = rest;
        Some(head)
    }
    fn length(fields: &mut &[u8]) -> Option<usize> {
        let bytes = take(fields, 2)?;
        Some(usize::from(u16::from_le_bytes([bytes[0], bytes[1]])))
    }
    let mut headers = http::HeaderMap::new();
    while !fields.is_empty() {
        let field = (|| {
            let n = length(&mut fields)?;
            let name = take(&mut fields, n)?;
            let n = length(&mut fields)?;
            let sensitive = take(&mut fields, 1)?[0] != 0;
            let value = take(&mut fields, n)?;
            Some((name, sensitive, value))
        })();
        let Some((name, sensitive, value)) = field else {
            break;
        };
        let (Ok(name), Ok(mut value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        value.set_sensitive(sensitive);
        headers.append(name, value);
    }
    headers
}

fn compact_uri(uri: &http::Uri) -> http::Uri {
    http::Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_head_comes_back_whole() {
        let mut request = http::Request::get("/echo/0/a/websocket?x=1")
            .header("host", "example.com")
            .header("x-custom", "one")
            .header("x-custom", "two")
            .header("cookie", "JSESSIONID=abc")
            .body(())
            .expect("request");
        request
            .headers_mut()
            .get_mut("cookie")
            .expect("cookie")
            .set_sensitive(true);
        request
            .extensions_mut()
            .insert(crate::driver::ConnectionProbe::new(|| false));
        request.extensions_mut().insert(7u32);
        let (parts, ()) = request.into_parts();
        let head = Head::new(parts.clone());
        let built = head.parts();
        assert_eq!(built.method, parts.method);
        assert_eq!(built.uri, parts.uri);
        assert_eq!(built.headers, parts.headers);
        assert!(built.headers["cookie"].is_sensitive());
        assert_eq!(built.extensions.get::<u32>(), Some(&7));
        assert!(
            built
                .extensions
                .get::<crate::driver::ConnectionProbe>()
                .is_none()
        );
        // Built once.
        assert!(std::ptr::eq(built, head.parts()));
    }
}
