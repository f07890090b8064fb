//! Server-wide settings: timeouts, queue bounds, threads, shards and shutdown.

use std::num::NonZeroUsize;
use std::time::Duration;

/// Server settings (per-service protocol settings live in [`Options`](crate::Options)).
///
/// Build from [`Config::default`] with struct update syntax:
///
/// ```
/// use std::time::Duration;
/// let config = sockjs_smol::Config {
///     keep_alive_timeout: Duration::from_secs(30),
///     ..Default::default()
/// };
/// assert_eq!(config.header_read_timeout, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Executor threads, the thread that polls [`Server::serve`](crate::Server::serve)
    /// included. Default: the available parallelism.
    pub threads: usize,
    /// Engine shards per service. Default: the available parallelism.
    pub shards: usize,
    /// Longest time a request may take to arrive, head and body, counted from its first
    /// byte (and from accept for a connection's first request). When it passes the
    /// connection is closed (slowloris protection). Default 10 s.
    pub header_read_timeout: Duration,
    /// Longest time an idle keep-alive connection waits for its next request. Default 60 s.
    pub keep_alive_timeout: Duration,
    /// Longest time one write (a response, a chunk, a WebSocket message) may block on a
    /// client that does not read; then the connection is closed. Default 30 s.
    pub write_timeout: Duration,
    /// Most outgoing messages (responses, chunks, WebSocket messages) queued for one
    /// connection (at least 8 are always allowed). Default 4096.
    pub max_connection_queue: usize,
    /// Most outgoing bytes queued for one connection. One message larger than this is
    /// still accepted into an empty queue. Default 1 MiB.
    pub max_connection_queue_bytes: usize,
    /// Most incoming messages queued for one session's application (see
    /// [`Session::recv`](crate::Session::recv)). Default 1024.
    pub max_session_inbound: usize,
    /// Most header fields in a request. Default 100.
    pub max_headers: usize,
    /// Most bytes in a request head. Default 16 KiB.
    pub max_head_bytes: usize,
    /// Close code sent to open sessions at graceful shutdown. Default 1001.
    pub shutdown_code: u16,
    /// Close reason sent to open sessions at graceful shutdown.
    /// Default `"Server shutting down"`.
    pub shutdown_reason: String,
    /// Longest time graceful shutdown waits for sessions, handlers and connections to end
    /// before [`Server::serve`](crate::Server::serve) returns anyway. Default 10 s.
    pub shutdown_timeout: Duration,
}

/// The available parallelism, or 1.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threads: cores(),
            shards: cores(),
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connection_queue: 4096,
            max_connection_queue_bytes: 1024 * 1024,
            max_session_inbound: 1024,
            max_headers: 100,
            max_head_bytes: 16 * 1024,
            shutdown_code: 1001,
            shutdown_reason: "Server shutting down".to_owned(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}
