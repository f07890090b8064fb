//! Settings of the driver and the adapters around the engine: one struct, the same names
//! and defaults on every runtime. The engine's own settings live in
//! [`Options`](crate::Options).

use std::time::Duration;

/// Close code of a session whose application stopped taking its messages (RFC 6455's
/// "Try Again Later"), see [`Config::max_session_inbound_bytes`].
pub const INBOUND_OVERFLOW_CODE: u16 = 1013;
/// Close reason that goes with [`INBOUND_OVERFLOW_CODE`].
pub const INBOUND_OVERFLOW_REASON: &str = "Receive queue overflow";

/// Server and service settings beyond the protocol's [`Options`](crate::Options).
///
/// Build it from [`Config::default`] with struct update syntax:
///
/// ```
/// use std::time::Duration;
/// use sockjs_core::driver::Config;
///
/// let config = Config { write_timeout: Duration::from_secs(10), ..Config::default() };
/// assert_eq!(config.header_read_timeout, Duration::from_secs(10));
/// ```
///
/// Fields marked *(server)* apply to a whole server, as the adapters' standalone servers
/// read them; the rest apply to each service. A WebSocket belongs to its service, under
/// any server: its [`write_timeout`](Config::write_timeout) and
/// [`close_linger`](Config::close_linger) are its service's. Embedded in another HTTP
/// server (axum, hyper), a service reads the *(server)* fields it needs (the body's
/// timeout, say) from its own config. (sockjs-smol's server gives its one config to every
/// service, so there the two are one.) A duration of [`Duration::MAX`] sets no limit.
#[derive(Debug, Clone)]
pub struct Config {
    /// Engine shards per service: sessions are spread over them by id, each behind its own
    /// lock with its own timer task. Default: the available parallelism (at most 64).
    pub shards: usize,
    /// Most outgoing items (responses, chunks, WebSocket messages) queued for one
    /// connection that the client has not read. The application's sends wait for (or, with
    /// `try_send`, are refused for want of) room at or under half of it and of
    /// [`max_connection_queue_bytes`](Config::max_connection_queue_bytes), so only the
    /// server's own frames could go past: beyond either bound, the engine is told the client
    /// aborted, the queue is dropped, and the connection closes once its blocked write goes
    /// through or times out (under hyper, which has no write timeout, once the kernel gives
    /// it up: [`tcp_user_timeout`](Config::tcp_user_timeout)). The byte bound holds once the connection has taken its first
    /// item: the engine's answer to a request goes in whole (a session's backlog flushed to
    /// its next streaming receiver behind the prelude, bounded by
    /// [`Options::max_queued_bytes`](crate::Options::max_queued_bytes)). Non-zero
    /// ([`Config::validate`]). Default 4096.
    pub max_connection_queue: usize,
    /// Most outgoing bytes queued for one connection (one larger item still fits a queue
    /// that holds no bytes). Non-zero ([`Config::validate`]). Default 1 MiB.
    pub max_connection_queue_bytes: usize,
    /// Received messages queued for one session that the application has not taken with
    /// `Session::recv`, in bytes (each message counts its length and 32 bytes more). Past
    /// it the client is held back, not refused: a WebSocket's socket is no longer read and
    /// an `xhr_send`'s answer is held, until the application has taken the queue down to
    /// half of it. A read or request already under way is queued whole, so the queue
    /// stays within twice the bound and one request
    /// ([`Options::max_request_body`](crate::Options::max_request_body)) or one read's
    /// messages (at most one message,
    /// [`Options::max_message_size`](crate::Options::max_message_size), past 16 KiB); a
    /// client that starts another send while the queue is past twice the bound, which
    /// takes several sends at once, gets its session closed with [`INBOUND_OVERFLOW_CODE`]
    /// [`INBOUND_OVERFLOW_REASON`]. Zero holds the client back whenever a message it sent
    /// waits to be taken (one read or request at a time). Default 1 MiB.
    pub max_session_inbound_bytes: usize,
    /// How long the application may leave a session's inbound queue past
    /// [`max_session_inbound_bytes`](Config::max_session_inbound_bytes) without taking a
    /// message before the session is closed with [`INBOUND_OVERFLOW_CODE`]
    /// [`INBOUND_OVERFLOW_REASON`] (a stuck application). It is checked at each deadline,
    /// so the close comes one to two of these after the last message taken. Once the
    /// queue is back under the bound, its client stays held back until the application
    /// has taken it down to half, but the session is not closed, however long the
    /// application takes (its memory is bounded all the same). Zero closes a session as
    /// soon as its queue is found past the bound. Default 10 s.
    pub inbound_stall_timeout: Duration,
    /// How long an `xhr_send` or `jsonp_send` is held until the application has taken the
    /// messages it carried (came back to `Session::recv` after them). What the application
    /// sends in reaction, such as an echo, is then queued before the client learns its send
    /// succeeded, and a client that sends faster than the application reads is slowed down.
    /// Zero answers at once. Default 500 ms.
    pub delivery_wait: Duration,
    /// How long a new receiver waits for the previous receiver of its session to turn out
    /// gone, when the adapter cannot tell at once whether that receiver's client is still
    /// connected (no [`ConnectionProbe`](crate::driver::ConnectionProbe) on it); then it gets
    /// `c[2010,"Another connection still open"]`. Default 250 ms.
    pub abort_grace: Duration,
    /// Longest time a service's [`Admission`](crate::driver::Admission) hook may take to
    /// decide on a request; then the request is refused with `503 Service Unavailable`
    /// (close `4503` on a WebSocket). Default 10 s.
    pub admission_timeout: Duration,
    /// *(server)* Longest time a client may take to send a request head, counted from when
    /// the connection starts waiting for it: its accept for the first (with `tls`, feature
    /// `tls`, the TLS handshake must end within it too, and the first head is due within
    /// it of the accept all the same), the end of the previous response for the others.
    /// Closes idle keep-alive connections and cuts slowloris heads and handshakes.
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// *(server)* Longest time a request body may take to arrive once its head was read;
    /// then `408 Request Timeout` and the connection closes. Default 10 s.
    pub body_read_timeout: Duration,
    /// Longest time a WebSocket message may take to arrive once its first bytes came (its
    /// first frame's head, on RFC 6455 sockets, or its `0x00` on hixie-76 ones): what a
    /// request body gets from [`body_read_timeout`](Config::body_read_timeout), on every
    /// adapter, under hyper and axum too. The socket holds an unfinished message's bytes
    /// (up to [`Options::max_message_size`](crate::Options::max_message_size)) while it
    /// waits, and a client that began one and sends no more of it, answering pings all the
    /// while, would hold them for the socket's life. Then the socket is closed with `1008
    /// Message timeout` ([`CloseReason::MessageTimeout`](crate::CloseReason::MessageTimeout)).
    /// It counts from the first bytes of each message: control frames between fragments
    /// neither extend it nor end it, and a client that sends whole messages back to back,
    /// however fast and however its reads split them, never meets it. While the server
    /// holds the socket's reads back ([`max_session_inbound_bytes`](Config::max_session_inbound_bytes))
    /// it does not run. Default 10 s.
    pub message_read_timeout: Duration,
    /// *(server)* Longest time a write (a response, a chunk, WebSocket messages) may wait
    /// on a client that takes none of it, counted from the last bytes the client took (as
    /// nginx's `send_timeout`): a client on a slow link that reads a large answer bit by
    /// bit is not cut. For an RFC 6455 WebSocket whose close is on its way, it counts from the first
    /// wait instead, so that a client taking a byte now and then cannot hold it open (at a
    /// shutdown, say). Then the connection is dropped. Default 30 s.
    ///
    /// Over TLS, what the client takes of the records rustls holds (at most 16 KiB,
    /// `tls::SEND_BUFFER`, feature `tls`) shows only as room for more of the
    /// server's bytes, or once all of it is out: a client that takes less than 16 KiB per
    /// `write_timeout` may be cut. (That is with the adapters' own TLS handshakes; a TLS
    /// stream the application accepts itself keeps rustls's 64 KiB unless it is set up
    /// with `tls::tune`.)
    pub write_timeout: Duration,
    /// *(server)* `TCP_USER_TIMEOUT` of every TCP connection the adapter's server accepts
    /// or is handed as a plain socket (Linux and Android; elsewhere ignored): how long data
    /// it sent may stay unacknowledged before the kernel gives the connection up. It is how
    /// a client whose link went silent (a cut cable, a NAT that forgot the flow, a phone
    /// that left coverage: no FIN, no RST) is noticed on transports where the client sends
    /// nothing upstream, HTTP streaming above all: the next heartbeat (at most
    /// [`Options::heartbeat_delay`](crate::Options::heartbeat_delay) later) goes
    /// unacknowledged, and this long after it the connection fails, its receiver is gone,
    /// and the session closes (at once with the default
    /// [`AbortPolicy`](crate::AbortPolicy), after its disconnect delay with `Interrupt` or
    /// `Detach`; DEPLOYMENT.md lists the bounds). Linux counts it also while a client that
    /// stopped reading keeps its receive window shut, so under hyper or axum, which have
    /// no write timeout, it is what gives such a client up: set it there with
    /// [`tune_tcp`](Config::tune_tcp) on the sockets you accept (axum's `tap_io`).
    /// `None` leaves the kernel's default (retransmissions for about 15 minutes). Default
    /// 30 s, as [`write_timeout`](Config::write_timeout).
    pub tcp_user_timeout: Option<Duration>,
    /// *(server)* How long a WebSocket that sent its close frame waits for the client's
    /// before the connection is dropped; also how long a connection the server closes
    /// while the client may still be sending goes on reading and dropping what comes, so
    /// that the server's last answer is not lost to a reset: an HTTP request it refused
    /// (400, 408, 413, 414, 431), an upgrade not answered with `101`, a shutdown's `503`, an
    /// answer after which the server closes a connection the client meant to keep open (an
    /// HTTP/1.0 stream's end, say) or that holds the client's next bytes already, and a
    /// WebSocket closed for a message too big or a broken frame (its FIN goes with its
    /// close, then the client's bytes are dropped). Default 1 s.
    pub close_linger: Duration,
    /// *(server)* Most connections the server keeps open at once: HTTP connections (idle
    /// keep-alive ones included), TLS handshakes and WebSockets. At the bound the server
    /// accepts one more connection and holds it, unanswered and not yet counted, and the
    /// longest idle keep-alive connection (one that has answered a request and waits for
    /// the next) closes to make room for it, as nginx reuses its idle connections: its
    /// client opens a new connection for its next request, as after the
    /// [`header_read_timeout`](Config::header_read_timeout). With none idle, the next
    /// connection to go idle after answering a request closes for it, unless a connection
    /// ends first; a connection that has not sent its first request is never closed for
    /// it. Those closes are counted in `sockjs_connections_reclaimed_total`. The
    /// connections after the held one wait in the kernel's listen backlog (their clients
    /// see a slow connect, not a refusal; past the backlog, the kernel drops their SYNs and
    /// they retry). It bounds file descriptors, memory and the TLS handshakes in progress
    /// at once (one descriptor more, for the held connection; not how fast handshakes
    /// come: one that fails at once frees its place at once), and keeps a flood of
    /// connections from waiting on more than the backlog. Connections handed to a started
    /// server (either adapter's `Handler::serve_connection`) are not bounded by it: they
    /// are counted, for the graceful shutdown and the gauge (and on a server that also
    /// accepts, they take up room too, and they too may close, idle, for a client its
    /// accept loop holds; while they keep the count above the bound, one closing may not
    /// make room, and the held client waits for more to end). sockjs-tokio's free
    /// `serve_connection` counts nothing.
    /// Default `None`: no bound but the process's file descriptors (an accept that fails
    /// for want of one is retried 50 ms later). `Some(0)` counts as one.
    pub max_connections: Option<usize>,
    /// *(server)* Most header fields in a request (431 beyond). Default 100.
    pub max_headers: usize,
    /// *(server)* Most bytes in a request head (431 beyond; 414 if the request line alone is
    /// over). Default 16 KiB.
    pub max_head_bytes: usize,
    /// *(server)* Close code sent to open sessions at graceful shutdown. Default 1001.
    pub shutdown_code: u16,
    /// *(server)* Close reason sent at graceful shutdown. Default `"Server shutting down"`.
    pub shutdown_reason: String,
    /// *(server)* Longest time a graceful shutdown waits for sessions, handlers and
    /// connections to end. Default 10 s.
    pub shutdown_timeout: Duration,
    /// *(server)* Serve HTTPS and WSS: every connection the adapter's server accepts, or is
    /// handed, starts with a TLS handshake with these rustls settings (see
    /// [`tls::config_from_pem`](crate::driver::tls::config_from_pem)), which must end,
    /// and the first request head arrive, within
    /// [`header_read_timeout`](Config::header_read_timeout) of the accept. Its requests
    /// carry the
    /// [`Tls`](crate::Tls) extension. The liveness probe needs a plain TCP socket, so over
    /// TLS a new receiver waits up to [`abort_grace`](Config::abort_grace) for the previous
    /// one to turn out gone. Default `None`: plain HTTP. Feature `tls`.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<crate::driver::tls::ServerConfig>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get().min(64)),
            max_connection_queue: 4096,
            max_connection_queue_bytes: 1024 * 1024,
            max_session_inbound_bytes: 1024 * 1024,
            inbound_stall_timeout: Duration::from_secs(10),
            delivery_wait: Duration::from_millis(500),
            abort_grace: Duration::from_millis(250),
            admission_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            message_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            tcp_user_timeout: Some(Duration::from_secs(30)),
            close_linger: Duration::from_secs(1),
            max_connections: None,
            max_headers: 100,
            max_head_bytes: 16 * 1024,
            shutdown_code: 1001,
            shutdown_reason: "Server shutting down".to_owned(),
            shutdown_timeout: Duration::from_secs(10),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl Config {
    /// Checks the settings a service cannot run with ([`Service::new`](crate::driver::Service::new)
    /// calls it): [`OptionsError::ZeroQueue`](crate::OptionsError::ZeroQueue) for a
    /// connection queue bound of zero.
    ///
    /// ```
    /// use sockjs_core::driver::Config;
    /// use sockjs_core::OptionsError;
    ///
    /// assert_eq!(Config::default().validate(), Ok(()));
    /// let none = Config { max_connection_queue_bytes: 0, ..Config::default() };
    /// assert_eq!(none.validate(), Err(OptionsError::ZeroQueue));
    /// ```
    pub fn validate(&self) -> Result<(), crate::OptionsError> {
        if self.max_connection_queue == 0 || self.max_connection_queue_bytes == 0 {
            return Err(crate::OptionsError::ZeroQueue);
        }
        Ok(())
    }

    /// Sets the socket options every accepted TCP connection gets: `TCP_NODELAY` (each
    /// frame goes out at once) and [`tcp_user_timeout`](Config::tcp_user_timeout). The
    /// adapters call it on each TCP socket they accept or are handed; a failure is only
    /// logged, as the connection still works without them.
    #[cfg(unix)]
    pub fn tune_tcp(&self, socket: &impl std::os::fd::AsFd) {
        self.tune(socket2::SockRef::from(socket));
    }

    /// Sets the socket options every accepted TCP connection gets: `TCP_NODELAY` (each
    /// frame goes out at once) and [`tcp_user_timeout`](Config::tcp_user_timeout). The
    /// adapters call it on each TCP socket they accept or are handed; a failure is only
    /// logged, as the connection still works without them.
    #[cfg(windows)]
    pub fn tune_tcp(&self, socket: &impl std::os::windows::io::AsSocket) {
        self.tune(socket2::SockRef::from(socket));
    }

    fn tune(&self, socket: socket2::SockRef<'_>) {
        if let Err(error) = socket.set_tcp_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(timeout) = self.tcp_user_timeout {
            if let Err(error) = socket.set_tcp_user_timeout(Some(timeout)) {
                tracing::debug!(%error, "TCP_USER_TIMEOUT not set");
            }
        }
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn tune_tcp_sets_nodelay_and_the_user_timeout() -> std::io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let _client = TcpStream::connect(listener.local_addr()?)?;
        let (accepted, _) = listener.accept()?;
        let config = Config {
            tcp_user_timeout: Some(Duration::from_millis(4500)),
            ..Config::default()
        };
        config.tune_tcp(&accepted);
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.tcp_nodelay()?);
        assert_eq!(
            socket.tcp_user_timeout()?,
            Some(Duration::from_millis(4500))
        );

        // None leaves the kernel's default (0: no user timeout).
        let (other, _) = {
            let _c = TcpStream::connect(listener.local_addr()?)?;
            listener.accept()?
        };
        Config {
            tcp_user_timeout: None,
            ..Config::default()
        }
        .tune_tcp(&other);
        assert_eq!(socket2::SockRef::from(&other).tcp_user_timeout()?, None);
        assert_eq!(
            Config::default().tcp_user_timeout,
            Some(Duration::from_secs(30))
        );
        Ok(())
    }
}
