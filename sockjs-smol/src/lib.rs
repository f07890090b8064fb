//! SockJS server on smol / async-io: the sans-IO [`sockjs_core`] engine and its shared
//! driver (HTTP/1.1 connections on the core's own `wire` codec included), with sockets,
//! timers and an executor.
//!
//! ```no_run
//! use async_io::Async;
//! use sockjs_smol::{Options, Server};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let options = Options { response_limit: 4096, ..Options::default() };
//! let server = Server::new()
//!     .service("/echo", options, |mut session| async move {
//!         tracing::info!(id = session.id(), transport = ?session.transport(), "hello");
//!         while let Some(message) = session.recv().await {
//!             let _ = session.send(message).await;
//!         }
//!         // The session is closed: `recv` returned `None`.
//!     })?
//!     .service("/close", Options::default(), |session| async move {
//!         let _ = session.close(3000, "Go away!");
//!     })?;
//! let handle = server.handle(); // `handle.shutdown()` stops it gracefully
//! let listener = Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 8081))?;
//! async_io::block_on(server.serve(listener))?;
//! # drop(handle);
//! # Ok(())
//! # }
//! ```
//!
//! # Layers
//!
//! ```text
//!  your handler      Session / SessionSender, broadcast::Broadcast
//!  driver            sockjs_core::driver: shards, queues, handles, WebSocket pump,
//!                    HTTP/1.1 connections (sockjs_core::wire)
//!  this crate        sockets, accepting, executor, timers
//!  engine            sockjs_core::Engine: the protocol, pure
//! ```
//!
//! [`Session`], [`SessionSender`], [`Config`], broadcast and every limit and close reason
//! are the driver's, so they are the same here as in `sockjs-tokio`; see
//! [`sockjs_core::driver`] for the bounds and overflow policies.
//!
//! This crate is also the worked example of embedding the engine in a runtime of one's own:
//! it implements the driver's [`Runtime`](sockjs_core::driver::Runtime) (time, timers,
//! spawning on its executor) and [`Socket`](sockjs_core::driver::Socket) (its TCP sockets),
//! accepts connections, and hands each to the driver's
//! [`http1::serve`](sockjs_core::driver::http1::serve) with its server as the
//! [`Host`](sockjs_core::driver::http1::Host): the connection's task reads into the thread's
//! buffer and runs [`RequestDecoder`](sockjs_core::wire::RequestDecoder) over it
//! (keep-alive, pipelining, HTTP/1.0 and 1.1, `Expect: 100-continue`); each request goes to
//! its service with the client's address and a liveness probe; what the
//! [`Exchange`](sockjs_core::driver::Exchange) yields is encoded with
//! [`ResponseEncoder`](sockjs_core::wire::ResponseEncoder) (one HTTP chunk and one write per
//! stream chunk, close-delimited for HTTP/1.0), while the socket is watched for the client
//! hanging up; after a 101 the socket goes to the driver's WebSocket pump, in a task of its
//! own. sockjs-tokio's standalone server is the same code on tokio.

//! # Beyond SockJS, any stream, TLS
//!
//! Requests outside the services get `404`, or the answer of one plain handler given to
//! [`Server::fallback`]; [`Server::header`] adds a header to every response. An
//! application with its own accept loop or executor mounts SockJS beside its own routes:
//! [`Server::executor`] runs everything on its executor, and [`Server::start`] returns a
//! [`Handler`] that serves one connection given as any futures-io stream
//! ([`Handler::serve_connection`]; the `mounted` example). With the `tls` feature,
//! `Config::tls` serves HTTPS and WSS (the `tls` module).
//!
//! # Options
//!
//! Every type the services' [`Options`] take is re-exported here, so that every option can
//! be set through this crate alone:
//!
//! ```
//! use std::time::Duration;
//! use sockjs_smol::{
//!     CookieAttributes, DeflateOptions, ForwardingHeader, IpRange, Jsessionid, Options,
//!     PingOptions, SameSite, Transport, Transports,
//! };
//! let options = Options {
//!     transports: Transports::ALL.without(Transport::JsonpPolling),
//!     jsessionid: Jsessionid::Echo(CookieAttributes::default().with_same_site(SameSite::Lax)),
//!     trusted_proxies: vec!["10.0.0.2".parse::<IpRange>()?],
//!     forwarding_header: ForwardingHeader::Forwarded,
//!     permessage_deflate: Some(DeflateOptions::default()),
//!     websocket_ping: Some(PingOptions {
//!         interval: Duration::from_secs(20),
//!         ..PingOptions::default()
//!     }),
//!     ..Options::default()
//! };
//! # drop(options);
//! # Ok::<(), sockjs_smol::IpRangeError>(())
//! ```
//!
//! # Limits
//!
//! Request heads are bounded by [`Config::max_head_bytes`] and [`Config::max_headers`],
//! and must arrive within [`Config::header_read_timeout`] of the connection going idle
//! (slowloris protection; idle keep-alive connections close then too); bodies by the
//! services' [`Options::max_request_body`] and [`Config::body_read_timeout`] (408). Each
//! write fails after [`Config::write_timeout`]. [`Server::serve`] keeps at most
//! [`Config::max_connections`] connections open at once (WebSockets included): at the
//! bound it holds one new connection while an idle keep-alive one closes for it (with
//! none idle, the next to go idle), and the rest wait in the listen backlog.
//!
//! # Who may open a session
//!
//! [`Options::origins`] ([`OriginPolicy`]) refuses browsers on other sites; an
//! [`Admission`] hook, set with [`Server::admission`] (for the service added last), sees each request that would open a session
//! (headers, cookies, query, [`AdmissionRequest::client_addr`]) and admits it with a value
//! the handler reads with [`Session::admitted`], or refuses it with a [`Rejection`]: its
//! status on HTTP, a close on WebSocket, and no session. It is the same hook with the same
//! outcomes in both adapters, bounded by [`Config::admission_timeout`]; SECURITY.md explains
//! why a service that trusts cookies needs both.
//!
//! # Graceful shutdown
//!
//! [`ServerHandle::shutdown`] stops accepting, closes every open session with
//! [`Config::shutdown_code`] / [`Config::shutdown_reason`] and opens no new one (such
//! requests get 503, as does anything but a session's own request), then waits until every
//! session, handler task and connection is done, at most [`Config::shutdown_timeout`].
//! HTTP sessions closed this way stay CLOSING for their disconnect delay, and kept-alive
//! connections stay open meanwhile, so a client that polls again on its connection still
//! gets the close frame; idle connections close once no session is left. Shutdown
//! therefore usually lasts about one [`Options::disconnect_delay`].
//!
//! # Tracing
//!
//! Session open and close are `info` events (with the service prefix, session id,
//! transport and close reason) and each handler runs in a `sockjs_session` span; overflows
//! and accept failures are `warn`; connection errors and bad requests are `debug`.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod broadcast;
mod runtime;
mod server;
mod socket;

/// TLS settings for [`Config::tls`] (cargo feature `tls`), the same as `sockjs_tokio::tls`.
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use sockjs_core::driver::tls;

pub use server::{Handler, Server, ServerHandle, serve};
/// Counters of the services: [`ServerHandle::metrics`], the Prometheus text format, the
/// series and what they cost.
pub use sockjs_core::driver::metrics;
pub use sockjs_core::driver::{
    Admission, AdmissionRequest, Closed, Config, INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON,
    Session, SessionSender,
};
pub use sockjs_core::{
    AbortPolicy, CloseReason, Options, OptionsError, OriginPolicy, PeerAddr, ProtocolVersion,
    Rejection, SendError, SessionBinding, SessionKey, SessionState, Tls, Transport,
};
pub use sockjs_core::{
    CookieAttributes, CookieError, CookieFn, DEFAULT_SOCKJS_URL, DeflateOptions, ForwardingHeader,
    IpRange, IpRangeError, Jsessionid, OriginFn, PingOptions, SameSite, Transports,
};
