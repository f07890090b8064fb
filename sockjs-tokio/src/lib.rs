//! SockJS server on tokio: a tower service for axum and hyper, and a standalone server.
//!
//! This crate drives the sans-IO [`sockjs_core`] engine with real sockets, clocks and
//! tasks. All protocol decisions (routing, framing, sessions, heartbeats, limits) are the
//! engine's; this crate moves bytes, spawns tasks and sleeps until the next deadline.
//!
//! # Mounting in axum
//!
//! ```no_run
//! use axum::Router;
//! use sockjs_tokio::{Options, SockJs};
//!
//! # async fn run() -> std::io::Result<()> {
//! let echo = SockJs::new(Options::default(), |mut session| async move {
//!     while let Some(text) = session.recv().await {
//!         let _ = session.send(text).await;
//!     }
//! });
//! let app = Router::new().nest_service("/echo", echo);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! axum strips the mount prefix, so the service sees paths relative to it and
//! [`Options::prefix`] stays empty. The same service works under plain hyper (any
//! `http::Request<B>` whose body is an [`http_body::Body`]); for WebSockets the connection
//! must be served with upgrades enabled (hyper's `serve_connection(..).with_upgrades()`;
//! `axum::serve` does this): without, hyper sends the `101` and then closes the connection,
//! so each WebSocket's session opens and ends at once, logged as a warning. WebSockets
//! over HTTP/2 (RFC 8441's extended `CONNECT`) are not served: such a request gets `405`,
//! and the browser falls back to a streaming transport; leave hyper's
//! `enable_connect_protocol` off (browsers then open WebSockets as HTTP/1.1 upgrades on a
//! connection of their own). Without a stripping router, set [`Options::prefix`] to the
//! mount path instead.
//!
//! Three request extensions are read when present: [`PeerAddr`] (for
//! [`Session::peer_addr`], [`Session::client_addr`] and [`SessionBinding::PeerIp`]),
//! [`OriginalUri`] (the URI before the router stripped the mount path: hixie-76's
//! `Sec-WebSocket-Location` names it, and it lets near-miss paths such as `/echo//xhr` still
//! get 404 under axum) and [`Tls`] (the request came over TLS: hixie-76 then answers
//! `wss://`; a request whose URI says `https` counts as one). [`serve`] sets them; behind
//! a TLS acceptor of your own under axum or hyper, insert [`Tls`] yourself (a `map_request`). With the `axum` feature the service also reads
//! axum's own `ConnectInfo<SocketAddr>` (from `into_make_service_with_connect_info`) and
//! `OriginalUri`, so no `map_request` is needed.
//!
//! # Standalone
//!
//! [`serve`] runs services at prefixes on a `TcpListener` with graceful shutdown:
//!
//! ```no_run
//! # async fn run(echo: sockjs_tokio::SockJs, chat: sockjs_tokio::SockJs) -> std::io::Result<()> {
//! use sockjs_tokio::{Routes, serve};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! serve(listener, Routes::new().mount("/echo", echo).mount("/chat", chat))
//!     .with_graceful_shutdown(async move { let _ = stopped.await; })
//!     .await
//! # }
//! ```
//!
//! It runs the driver's HTTP/1.x connections ([`sockjs_core::driver::http1`]), the same
//! code as sockjs-smol's server: the same reads, writes, limits, timeouts and answers on
//! both runtimes (keep-alive, one chunk per frame, close-delimited streaming for HTTP/1.0,
//! upgrades that hand over bytes already read), and an idle HTTP session costs a few KiB
//! (no read or write buffer of its own between requests). The tower service answers the
//! same way under hyper or axum, whose HTTP/1 parts are theirs. Requests outside the
//! mounts get `404`, or the answer of one plain handler given to [`Routes::fallback`];
//! [`Routes::header`] adds a header to every response (as sockjs-smol's `Server`).
//! [`Handler::serve_connection`] serves one connection given as any `AsyncRead +
//! AsyncWrite` stream, counted and shut down gracefully with the handler's others (as
//! sockjs-smol's `Handler`; the free [`serve_connection`] serves one on its own); with the
//! `tls` feature, `Config::tls` serves HTTPS and WSS (the `tls` module).
//!
//! # Layers
//!
//! ```text
//!  your handler      Session / SessionSender, broadcast::Broadcast
//!  driver            sockjs_core::driver: shards, queues, handles, WebSocket pump
//!  this crate        tokio sockets, spawning, timers; the tower service (hyper, axum)
//!  engine            sockjs_core::Engine: the protocol, pure
//! ```
//!
//! [`Session`], [`SessionSender`], [`Config`], broadcast and every limit, default and close
//! reason are the driver's, so they are the same here as in `sockjs-smol`; see
//! [`sockjs_core::driver`] for the bounds and overflow policies. A handler
//! `Fn(Session) -> impl Future<Output = ()>` runs in its own task once per session, when it
//! opens.
//!
//! # Options
//!
//! Every type the services' [`Options`] take is re-exported here, so that every option can
//! be set through this crate alone:
//!
//! ```
//! use std::time::Duration;
//! use sockjs_tokio::{
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
//! # Ok::<(), sockjs_tokio::IpRangeError>(())
//! ```
//!
//! # Limits
//!
//! Request bodies: at most [`Options::max_request_body`] bytes (413, checked against
//! `Content-Length` first, then while reading), arriving within
//! [`Config::body_read_timeout`] (408). With [`serve`]: request heads within
//! [`Config::header_read_timeout`] of the connection going idle (which also closes idle
//! keep-alive connections), at most [`Config::max_head_bytes`] and [`Config::max_headers`]
//! (431), every write within [`Config::write_timeout`], and at most
//! [`Config::max_connections`] connections open at once (WebSockets included): at the
//! bound it holds one new connection while an idle keep-alive one closes for it (with
//! none idle, the next to go idle), and the rest wait in the listen backlog. Under another
//! server those are that server's settings, and hyper (so axum) has no write timeout: a
//! streaming response whose client stopped reading waits until the kernel gives the
//! connection up, which [`Config::tune_tcp`] on the sockets you accept (axum's `tap_io`)
//! bounds with [`Config::tcp_user_timeout`] (30 s; Linux counts it also while the client
//! keeps its receive window shut). WebSockets always get the write timeout.
//!
//! # Who may open a session
//!
//! [`Options::origins`] ([`OriginPolicy`]) refuses browsers on other sites; an
//! [`Admission`] hook, set with [`Builder::admission`], sees each request that would open a session
//! (headers, cookies, query, [`AdmissionRequest::client_addr`]) and admits it with a value
//! the handler reads with [`Session::admitted`], or refuses it with a [`Rejection`]: its
//! status on HTTP, a close on WebSocket, and no session. It is the same hook with the same
//! outcomes in both adapters, bounded by [`Config::admission_timeout`]; SECURITY.md explains
//! why a service that trusts cookies needs both.
//!
//! # Graceful shutdown
//!
//! [`Serve::with_graceful_shutdown`] stops accepting, closes every session with
//! [`Config::shutdown_code`] / [`Config::shutdown_reason`] ([`SockJs::shutdown`]; streams
//! and polls get the close frame and end, WebSockets get it and close) and opens no new one
//! (such requests get `503`, as does anything but a session's own request), then waits
//! until every session, handler task and connection is done, and after
//! [`Config::shutdown_timeout`] drops the connections and WebSockets left: the same
//! shutdown as sockjs-smol's. (Handler tasks still running then are the runtime's, and
//! run on until it ends, as on an executor of the application's with sockjs-smol; its own
//! executor drops them.) HTTP sessions closed
//! this way stay CLOSING for their disconnect delay, and kept-alive connections stay open
//! meanwhile, so a client that polls again on its connection still gets the close frame;
//! idle connections close once no session is left. Shutdown therefore usually lasts about
//! one [`Options::disconnect_delay`]. Under axum (whose own graceful shutdown runs the
//! connections), call [`SockJs::shutdown`] from your shutdown signal (it opens no session
//! from then on, and closes them all as above), and after axum's `serve` returns, wait for
//! the WebSockets with [`SockJs::settled`].
//!
//! # Tracing
//!
//! Session open and close are `info` events (session id, transport, close reason); each
//! handler runs in a `sockjs_session` span; overflows are `warn`, connection and framing
//! errors `debug`.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
pub mod broadcast;
mod runtime;
mod server;
mod service;
mod socket;

/// TLS settings for [`Config::tls`] (cargo feature `tls`), the same as `sockjs_smol::tls`.
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use sockjs_core::driver::tls;

pub use body::{Body, BodyError};
pub use server::{Handler, Routes, Serve, serve, serve_connection};
pub use service::{BoxError, Builder, ResponseFuture, SockJs};
/// Counters of the services: [`SockJs::metrics`], [`Routes::metrics`], the Prometheus text
/// format, the series and what they cost.
pub use sockjs_core::driver::metrics;
pub use sockjs_core::driver::{
    Admission, AdmissionRequest, Closed, Config, INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON,
    Session, SessionSender,
};
pub use sockjs_core::{
    AbortPolicy, CloseReason, Options, OptionsError, OriginPolicy, OriginalUri, PeerAddr,
    ProtocolVersion, Rejection, SendError, SessionBinding, SessionKey, SessionState, Tls,
    Transport,
};
pub use sockjs_core::{
    CookieAttributes, CookieError, CookieFn, DEFAULT_SOCKJS_URL, DeflateOptions, ForwardingHeader,
    IpRange, IpRangeError, Jsessionid, OriginFn, PingOptions, SameSite, Transports,
};
