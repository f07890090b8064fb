//! The application's view of one session: [`Session`] and [`SessionSender`].

use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use crate::driver::head::Head;
use crate::driver::inbound::SessionShared;
use crate::driver::shard::{Outbound, Shard};
use crate::driver::waiters::{Wakers, wake_all};
use crate::{CloseReason, PeerAddr, SendError, SessionInfo, SessionKey, SessionState, Transport};

/// Close code and reason of a session whose every handle was dropped while it was open.
const DROPPED: (u16, &str) = (1000, "Normal closure");

/// The last handle closes the session.
struct Handle {
    shard: Arc<Shard>,
    key: SessionKey,
    shared: Arc<SessionShared>,
    /// What the `Session` reads about how it opened. Kept here, in the allocation every
    /// session has anyway, so that the `Session` is a few words: a handler's future holds
    /// it for the session's whole life, and an `async fn` handler holds it twice.
    opening: Opening,
}

/// How a session opened.
struct Opening {
    head: Head,
    peer: Option<SocketAddr>,
    client: Option<std::net::IpAddr>,
    /// What the service's admission hook admitted the session with.
    admitted: Option<crate::driver::admission::Value>,
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
pub struct SessionSender {
    handle: Arc<Handle>,
    /// What this handle's `try_send` was last refused. Each handle has its own, so that
    /// what one was refused (the broadcast hub's, say) does not change what another's
    /// `ready()` waits for.
    refused: Refusal,
}

impl Clone for SessionSender {
    /// Another handle to the same session, with no refusal of its own yet.
    fn clone(&self) -> SessionSender {
        SessionSender {
            handle: self.handle.clone(),
            refused: Refusal::default(),
        }
    }
}

/// The message a handle's `try_send` was last refused for want of room, until the handle
/// sends one: what its `ready()` waits to fit.
///
/// One word, so that a send that went through clears exactly the refusal it saw and never
/// a later one: the refused message's length plus one (0 for none) above a count of
/// refusals that tells two refusals of the same length apart.
#[derive(Default)]
struct Refusal(AtomicU64);

impl Refusal {
    /// Bits of the refusal count: a send would clear a later refusal only if 65,536 more
    /// came between its look and its going through.
    const COUNT_BITS: u32 = 16;
    const COUNT_MASK: u64 = (1 << Refusal::COUNT_BITS) - 1;
    /// The largest length kept, 2^48 - 2: more than any queue holds.
    const MAX_LEN: u64 = (u64::MAX >> Refusal::COUNT_BITS) - 1;

    /// What it is now, to hand back to [`ended`](Refusal::ended) after a send.
    fn seen(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The refused message's length, in what [`seen`](Refusal::seen) gave.
    fn len_in(seen: u64) -> Option<usize> {
        let len = (seen >> Refusal::COUNT_BITS).checked_sub(1)?;
        Some(usize::try_from(len).unwrap_or(usize::MAX))
    }

    /// The refused message's length.
    fn len(&self) -> Option<usize> {
        Refusal::len_in(self.seen())
    }

    /// A message of `len` bytes was refused.
    fn refused(&self, len: usize) {
        let len = u64::try_from(len).unwrap_or(u64::MAX).min(Refusal::MAX_LEN);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                let count = old.wrapping_add(1) & Refusal::COUNT_MASK;
                Some(((len + 1) << Refusal::COUNT_BITS) | count)
            });
    }

    /// A send went through after [`seen`](Refusal::seen) gave `seen`: whether that ended a
    /// refusal. It is cleared unless another task's send through the same handle was
    /// refused meanwhile (of any length: each refusal counts).
    fn ended(&self, seen: u64) -> bool {
        if Refusal::len_in(seen).is_none() {
            return false;
        }
        let _ = self.0.compare_exchange(
            seen,
            seen & Refusal::COUNT_MASK,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        true
    }
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

    /// Queues a message for the client, waiting for room first if the session's queue is
    /// full: the way to send without losing messages to a slow client. It goes out at once
    /// if a receiver or socket is attached, else with the next receiver.
    ///
    /// The session has room while it holds less than
    /// [`Options::max_queued_bytes`](crate::Options::max_queued_bytes) of messages no
    /// receiver has taken and, while a receiver or socket is attached, while that
    /// connection's queue is at most half of
    /// [`Config::max_connection_queue`](crate::driver::Config::max_connection_queue) /
    /// [`max_connection_queue_bytes`](crate::driver::Config::max_connection_queue_bytes)
    /// with room for this message; once full, a waiting sender goes on when it is half
    /// empty and its message fits (it is not woken before). Fails with
    /// [`SendError::QueueFull`] only for a message larger than the whole queue,
    /// [`SendError::NotOpen`] once the session is closing and [`SendError::UnknownSession`]
    /// once it has ended (also while waiting).
    ///
    /// ```
    /// # async fn app(session: sockjs_core::driver::Session) -> Result<(), sockjs_core::SendError> {
    /// for n in 0..10_000 {
    ///     session.send(format!("tick {n}")).await?; // paced by the client
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn send(&self, text: impl Into<String>) -> Send<'_> {
        Send {
            sender: self,
            text: text.into(),
            room: None,
            outbound: Outbound::default(),
        }
    }

    /// Queues a message for the client without waiting: [`send`](SessionSender::send)
    /// that fails with [`SendError::QueueFull`] instead of waiting when the session's
    /// queue, or the queue of the connection its messages go out on, is full (nothing is
    /// queued then). Never blocks, so it suits broadcasting to many sessions, where one slow
    /// client must not hold back the rest; a loop of them that outruns the client gets
    /// `QueueFull`, never a closed session.
    pub fn try_send(&self, text: impl AsRef<str>) -> Result<(), SendError> {
        let mut wake = Wakers::default();
        let sent = self.try_send_into(text.as_ref(), &mut wake);
        wake_all(wake);
        sent
    }

    /// [`try_send`](SessionSender::try_send), with the tasks to wake handed to the caller,
    /// for one that holds a lock of its own and wakes them once it let go.
    pub(crate) fn try_send_into(&self, text: &str, into: &mut Wakers) -> Result<(), SendError> {
        if self.handle.shared.is_closed() {
            return Err(SendError::UnknownSession);
        }
        let handle = &self.handle;
        let seen = self.refused.seen();
        let sent = handle.shard.send_into(
            handle.key,
            &handle.shared,
            text,
            Refusal::len_in(seen).is_some(),
            into,
        );
        match sent {
            Ok(()) => {
                self.refused.ended(seen);
            }
            Err(SendError::QueueFull) => self.refused.refused(text.len()),
            Err(_) => {}
        }
        sent
    }

    /// Resolves once the session has room for more (see [`send`](SessionSender::send)), or
    /// is no longer open (closing or ended); pairs with
    /// [`try_send`](SessionSender::try_send). After this handle's `try_send` refused a
    /// message with [`SendError::QueueFull`], it resolves once that message would fit (or,
    /// for a message that may be larger than the whole queue, once nothing is queued for
    /// the session: then it fits, or never will), so a loop of the two waits instead of
    /// being refused again at once. Each handle (the `Session`, each clone of a sender)
    /// remembers its own refusal, until it sends a message, so wait on the handle that was
    /// refused (a loop that waits on one and sends through another goes round while the
    /// queue is at half without room for its message):
    ///
    /// ```
    /// # async fn app(session: sockjs_core::driver::Session, text: String) -> Result<(), sockjs_core::SendError> {
    /// loop {
    ///     session.ready().await;
    ///     match session.try_send(&text) {
    ///         // Another sender took the room first (with nothing queued, the message is
    ///         // larger than the whole queue: it never fits).
    ///         Err(sockjs_core::SendError::QueueFull) if session.queued_bytes() > 0 => continue,
    ///         result => break result,
    ///     }
    /// }
    /// # }
    /// ```
    pub fn ready(&self) -> Ready<'_> {
        Ready {
            sender: self,
            room: None,
            outbound: Outbound::default(),
        }
    }

    /// Bytes of messages waiting to go out: held by the session until a receiver takes
    /// them, and queued on the connection they go out on (its WebSocket's, or its attached
    /// receiver's) but not yet written to the socket.
    pub fn queued_bytes(&self) -> usize {
        let shared = &self.handle.shared;
        if shared.is_closed() {
            return 0;
        }
        self.handle.shard.queued_bytes(self.handle.key, shared)
    }

    fn forget(&self, room: Option<u64>, outbound: &mut Outbound) {
        self.handle.shard.forget_room(self.handle.key, room);
        outbound.forget();
    }

    /// Closes the session with a code and reason: queued messages go out first, then
    /// `c[code,"reason"]` (any code and reason: the SockJS frame carries them as given). On
    /// a raw WebSocket, a close frame with them, within the bounds of RFC 6455 §7.4 and its
    /// IANA registry: a code outside 1000 to 1003, 1007 to 1014 and 3000 to 4999 (those an
    /// endpoint may send) goes out as `1000`, and the reason is cut to 123 bytes at a
    /// character's end;
    /// [`close_reason`](Session::close_reason) still reports what was asked.
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
        if SessionShared::has_ended(&st) {
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
/// - The handler runs in its own task and is never cancelled by the server while it runs:
///   only a server that stops cancels handlers still running, once its shutdown has waited
///   [`Config::shutdown_timeout`](crate::driver::Config::shutdown_timeout) for them (the
///   tasks of sockjs-smol's `Server::serve`, which runs them on its own executor).
/// - The session ends when the client goes (WebSocket closed, a receiver aborted, or no
///   receiver came back within the disconnect delay), when the application closes it, at
///   graceful shutdown, or when the application stops taking its messages while they pile
///   up (see [`Config::inbound_stall_timeout`](crate::driver::Config::inbound_stall_timeout)).
///   [`close_reason`](Session::close_reason) says which.
/// - Once it has ended, [`recv`](Session::recv) returns the messages still queued and then
///   `None`, [`closed`](Session::closed) resolves and sends fail: the handler should return.
/// - No session outlives its handles: once the `Session` and every [`SessionSender`] are
///   dropped, an open session is closed with `1000 "Normal closure"`. Messages the client
///   sends after the `Session` was dropped are discarded.
pub struct Session {
    sender: SessionSender,
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
            .field("transport", &self.transport())
            .field("peer", &self.peer_addr())
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
            mut request,
            client_addr,
            ..
        } = *info;
        let admitted = request
            .extensions
            .remove::<crate::driver::admission::Admitted>()
            .map(|admitted| admitted.0);
        let peer = request.extensions.get::<PeerAddr>().map(|p| p.0);
        let running = shard.common.running();
        let opening = Opening {
            head: Head::new(request),
            peer,
            client: client_addr,
            admitted,
        };
        Session {
            sender: SessionSender {
                handle: Arc::new(Handle {
                    shard,
                    key,
                    shared,
                    opening,
                }),
                refused: Refusal::default(),
            },
            received: 0,
            _running: running,
        }
    }

    fn opening(&self) -> &Opening {
        &self.sender.handle.opening
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
        self.sender.handle.shared.transport
    }

    /// The head of the request that opened the session (method, URI, headers, and
    /// extensions such as the [`PeerAddr`]).
    pub fn request(&self) -> &http::request::Parts {
        self.opening().head.parts()
    }

    /// The address of the other end of the connection, when the adapter recorded one:
    /// the client's, or a proxy's. See [`client_addr`](Session::client_addr).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.opening().peer
    }

    /// The client's address: the peer's, unless the peer is one of the
    /// [`Options::trusted_proxies`](crate::Options::trusted_proxies), in which case what the
    /// trusted hops say in the one header
    /// [`Options::forwarding_header`](crate::Options::forwarding_header) names (the others
    /// are never read: a proxy passes them on as the client wrote them). It is what
    /// [`SessionBinding::PeerIp`](crate::SessionBinding::PeerIp) binds to.
    pub fn client_addr(&self) -> Option<std::net::IpAddr> {
        self.opening().client
    }

    /// The value the service's [`Admission`](crate::driver::Admission) hook admitted the
    /// session with, if it is a `T` (`None` without a hook, or for another type).
    ///
    /// ```
    /// # async fn handler(session: sockjs_core::driver::Session) {
    /// struct User(String);
    /// match session.admitted::<User>() {
    ///     Some(User(name)) => { let _ = session.send(format!("hello {name}")).await; }
    ///     None => { let _ = session.close(4401, "Unauthorized"); }
    /// }
    /// # }
    /// ```
    pub fn admitted<T: std::any::Any>(&self) -> Option<&T> {
        self.opening().admitted.as_deref()?.downcast_ref()
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
        let result = self.sender.handle.shared.poll_next(self.received, cx);
        if let Poll::Ready(Some(_)) = result {
            self.received += 1;
        }
        result
    }

    /// Queues a message for the client, waiting for room; see [`SessionSender::send`].
    pub fn send(&self, text: impl Into<String>) -> Send<'_> {
        self.sender.send(text)
    }

    /// Queues a message without waiting; see [`SessionSender::try_send`].
    pub fn try_send(&self, text: impl AsRef<str>) -> Result<(), SendError> {
        self.sender.try_send(text)
    }

    /// Resolves once the session has room; see [`SessionSender::ready`].
    pub fn ready(&self) -> Ready<'_> {
        self.sender.ready()
    }

    /// Bytes waiting to go out; see [`SessionSender::queued_bytes`].
    pub fn queued_bytes(&self) -> usize {
        self.sender.queued_bytes()
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
        self.sender.handle.shared.abandon();
    }
}

/// The future of [`SessionSender::send`] and [`Session::send`].
#[must_use = "futures do nothing unless polled: the message is not sent"]
pub struct Send<'a> {
    sender: &'a SessionSender,
    text: String,
    room: Option<u64>,
    outbound: Outbound,
}

impl fmt::Debug for Send<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Send")
            .field("len", &self.text.len())
            .finish()
    }
}

impl Future for Send<'_> {
    type Output = Result<(), SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let handle = &this.sender.handle;
        if handle.shared.is_closed() {
            return Poll::Ready(Err(SendError::UnknownSession));
        }
        let seen = this.sender.refused.seen();
        let sent = handle.shard.send_or_wait(
            handle.key,
            &handle.shared,
            &this.text,
            cx,
            &mut this.room,
            &mut this.outbound,
        );
        if matches!(sent, Poll::Ready(Ok(()))) && this.sender.refused.ended(seen) {
            handle.shard.refusal_ended(handle.key);
        }
        sent
    }
}

impl Drop for Send<'_> {
    fn drop(&mut self) {
        self.sender.forget(self.room.take(), &mut self.outbound);
    }
}

/// The future of [`SessionSender::ready`] and [`Session::ready`].
#[must_use = "futures do nothing unless polled"]
pub struct Ready<'a> {
    sender: &'a SessionSender,
    room: Option<u64>,
    outbound: Outbound,
}

impl fmt::Debug for Ready<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ready")
    }
}

impl Future for Ready<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let handle = &this.sender.handle;
        if handle.shared.is_closed() {
            return Poll::Ready(());
        }
        handle.shard.poll_room(
            handle.key,
            &handle.shared,
            this.sender.refused.len(),
            cx,
            &mut this.room,
            &mut this.outbound,
        )
    }
}

impl Drop for Ready<'_> {
    fn drop(&mut self) {
        self.sender.forget(self.room.take(), &mut self.outbound);
    }
}

#[cfg(test)]
mod tests {
    use super::Refusal;

    #[test]
    fn a_send_clears_the_refusal_it_saw_and_no_later_one() {
        let refusal = Refusal::default();
        assert_eq!(refusal.len(), None);
        assert!(!refusal.ended(refusal.seen()), "no refusal to end");

        refusal.refused(10);
        let seen = refusal.seen();
        assert_eq!(refusal.len(), Some(10));
        assert!(refusal.ended(seen));
        assert_eq!(refusal.len(), None, "the send ended the refusal it saw");

        // Another task's send through the same handle is refused, a message of the same
        // length, between this one's look and its send going through: that refusal stays.
        refusal.refused(10);
        let seen = refusal.seen();
        refusal.refused(10);
        assert!(refusal.ended(seen));
        assert_eq!(refusal.len(), Some(10), "a later refusal is not cleared");
        let seen = refusal.seen();
        assert!(refusal.ended(seen));
        assert_eq!(refusal.len(), None);
    }

    #[test]
    fn a_refusal_keeps_its_length_across_the_count_wrapping() {
        let refusal = Refusal::default();
        let counts = usize::try_from(Refusal::COUNT_MASK + 1).unwrap_or(usize::MAX);
        for n in 0..3 * counts {
            refusal.refused(n);
            assert_eq!(refusal.len(), Some(n));
        }
        refusal.refused(usize::MAX);
        let most = usize::try_from(Refusal::MAX_LEN).unwrap_or(usize::MAX);
        assert_eq!(refusal.len(), Some(most));
        refusal.refused(16 << 20);
        assert_eq!(
            refusal.len(),
            Some(16 << 20),
            "lengths past 16 MiB are kept"
        );
        refusal.refused(0);
        assert_eq!(
            refusal.len(),
            Some(0),
            "an empty message's refusal is a refusal"
        );
    }
}
