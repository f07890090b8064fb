//! What an adapter knows of the connection a request came on.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::peer::Peer;

/// The connection a request came on, as the adapter knows it: handed to
/// [`Service::submit_on`](crate::driver::Service::submit_on) beside each request.
///
/// The engine reads the peer's address and whether the connection is TLS (a session's
/// [`client_addr`](crate::driver::Session::client_addr), the
/// [`PeerIp`](crate::SessionBinding::PeerIp) binding, hixie-76's `wss://` location); the
/// application sees them as the request's [`PeerAddr`](crate::PeerAddr) and
/// [`Tls`](crate::Tls) extensions wherever it reads a request. Handed beside the request
/// rather than as its extensions, they cost no allocation on the requests that never
/// look at them (most xhr requests).
///
/// ```
/// use sockjs_core::driver::{Connection, ConnectionProbe};
///
/// let connection = Connection::new()
///     .with_peer(([127, 0, 0, 1], 50_000).into())
///     .with_probe(ConnectionProbe::new(|| false))
///     .with_tls(true);
/// assert_eq!(connection.peer(), Some(([127, 0, 0, 1], 50_000).into()));
/// assert!(connection.is_tls());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Connection {
    peer: Peer,
    probe: Option<ConnectionProbe>,
    accepted: Option<Instant>,
}

impl Connection {
    /// A connection the adapter knows nothing about.
    pub fn new() -> Connection {
        Connection::default()
    }

    /// The peer's address.
    pub fn with_peer(mut self, addr: SocketAddr) -> Connection {
        self.peer.addr = Some(addr);
        self
    }

    /// Whether the connection is TLS.
    pub fn with_tls(mut self, tls: bool) -> Connection {
        self.peer.tls = tls;
        self
    }

    /// The probe that tells whether the connection's client has gone (`None`: no probe,
    /// for a stream that cannot be peeked at).
    pub fn with_probe(mut self, probe: impl Into<Option<ConnectionProbe>>) -> Connection {
        self.probe = probe.into();
        self
    }

    /// When the adapter took the connection on, by its [`Runtime`](crate::driver::Runtime)'s
    /// clock: the connection's first request head is then due within
    /// [`header_read_timeout`](crate::driver::Config::header_read_timeout) of it, whatever
    /// the adapter did before handing the connection to
    /// [`http1::serve`](crate::driver::http1::serve) (a TLS handshake), rather than of
    /// when `serve` starts reading. Without it, the first head is due within the timeout
    /// of that start.
    pub fn with_accepted_at(mut self, at: Instant) -> Connection {
        self.accepted = Some(at);
        self
    }

    /// The peer's address, if known.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer.addr
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.peer.tls
    }

    /// Its probe, if it has one.
    pub fn probe(&self) -> Option<&ConnectionProbe> {
        self.probe.as_ref()
    }

    /// When the adapter took it on ([`with_accepted_at`](Connection::with_accepted_at)),
    /// if it said.
    pub fn accepted_at(&self) -> Option<Instant> {
        self.accepted
    }

    /// What a request carries as extensions ([`PeerAddr`](crate::PeerAddr),
    /// [`Tls`](crate::Tls) and a [`ConnectionProbe`]), the probe taken out of them (it is
    /// the driver's, not the application's).
    pub(crate) fn take_from(parts: &mut http::request::Parts) -> Connection {
        Connection {
            peer: Peer::of(parts),
            probe: parts.extensions.remove::<ConnectionProbe>(),
            accepted: None,
        }
    }

    /// The same connection, for a request whose first `mount` path bytes a router matched
    /// (see [`Service::submit_mounted`](crate::driver::Service::submit_mounted)).
    pub(crate) fn mounted(mut self, mount: usize) -> Connection {
        self.peer.mount = mount;
        self
    }

    pub(crate) fn facts(&self) -> Peer {
        self.peer
    }

    pub(crate) fn into_probe(self) -> Option<ConnectionProbe> {
        self.probe
    }
}

/// Tells, without waiting, whether a request's client has gone (closed or reset its
/// connection). Adapters hand one with each request ([`Connection::with_probe`]).
///
/// The driver asks it in one situation only: a new receiver arrives for a session whose
/// previous receiver is still attached, which would get `c[2010,…]`. If that receiver's
/// client has in fact gone and the adapter has not noticed yet, the driver aborts it first,
/// so the newcomer gets what it would have got had the abort been seen first
/// (PROTOCOL.md §7.1.6). Without a probe the newcomer waits for the old receiver to end,
/// at most [`Config::abort_grace`](crate::driver::Config::abort_grace).
///
/// ```
/// use sockjs_core::driver::ConnectionProbe;
/// let probe = ConnectionProbe::new(|| false);
/// assert!(!probe.is_gone());
/// ```
#[derive(Clone)]
pub struct ConnectionProbe(Arc<dyn Fn() -> bool + Send + Sync>);

impl ConnectionProbe {
    /// A probe answering with `is_gone`, which must not block (e.g. a non-blocking
    /// `MSG_PEEK` read that reports end of input or a reset).
    pub fn new(is_gone: impl Fn() -> bool + Send + Sync + 'static) -> ConnectionProbe {
        ConnectionProbe(Arc::new(is_gone))
    }

    /// A probe for a socket held weakly (so the probe never keeps a connection open):
    /// gone once the socket is dropped, or when `peek`, a non-blocking `MSG_PEEK` read of
    /// at most a byte, finds the end of input or an error. Bytes waiting to be read (a
    /// pipelined request) and `WouldBlock` say the client is still there.
    ///
    /// ```
    /// use std::sync::{Arc, OnceLock};
    /// use sockjs_core::driver::ConnectionProbe;
    ///
    /// let socket = Arc::new(std::io::ErrorKind::WouldBlock);
    /// let probe = ConnectionProbe::peeking(Arc::downgrade(&socket), |kind, _buf| Err((*kind).into()));
    /// assert!(!probe.is_gone());
    /// drop(socket);
    /// assert!(probe.is_gone());
    /// ```
    pub fn peeking<S: Send + Sync + 'static>(
        socket: std::sync::Weak<S>,
        peek: impl Fn(&S, &mut [u8]) -> std::io::Result<usize> + Send + Sync + 'static,
    ) -> ConnectionProbe {
        ConnectionProbe::new(move || {
            let Some(socket) = socket.upgrade() else {
                return true;
            };
            match peek(&socket, &mut [0u8; 1]) {
                Ok(n) => n == 0,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            }
        })
    }

    /// Whether the client has gone.
    pub fn is_gone(&self) -> bool {
        (self.0)()
    }
}

impl fmt::Debug for ConnectionProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectionProbe")
    }
}
