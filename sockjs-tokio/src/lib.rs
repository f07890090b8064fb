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
//!         let _ = session.send(text);
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
//! `axum::serve` does this). Without a stripping router, set [`Options::prefix`] to the
//! mount path instead.
//!
//! Two request extensions are read when present: [`PeerAddr`] (for
//! [`Session::peer_addr`]) and [`OriginalUri`]. The latter serves two purposes: the
//! hixie-76 `Sec-WebSocket-Location` header, which must name the full path (hixie-76 is
//! off by default), and undoing axum's rewrite of `/echo//...` to `/...`, so near-miss
//! paths with an empty segment still get 404. [`serve`] sets both. axum's `ConnectInfo`
//! and `OriginalUri` are axum types this crate does not depend on; copy them with one
//! `map_request` if you need them:
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use axum::extract::{ConnectInfo, OriginalUri};
//! use tower::ServiceExt as _;
//!
//! fn from_axum(mut req: axum::extract::Request) -> axum::extract::Request {
//!     if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
//!         let addr = *addr;
//!         req.extensions_mut().insert(sockjs_tokio::PeerAddr(addr));
//!     }
//!     if let Some(OriginalUri(uri)) = req.extensions().get::<OriginalUri>() {
//!         let uri = uri.clone();
//!         req.extensions_mut().insert(sockjs_tokio::OriginalUri(uri));
//!     }
//!     req
//! }
//! # let service = sockjs_tokio::SockJs::new(Default::default(), |_s| async {});
//! let app: axum::Router = axum::Router::new().nest_service("/echo", service.map_request(from_axum));
//! ```
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
//! It uses hyper's HTTP/1.1 connection driver (through hyper-util's tokio I/O and timer)
//! rather than the core's [`wire`](sockjs_core::wire) codec: the tower service needs hyper
//! anyway, so one HTTP implementation serves both paths, behaves identically under axum
//! and standalone, and hyper already does what the protocol asks of HTTP/1.x: keep-alive,
//! one chunk per body frame, close-delimited streaming for HTTP/1.0 clients, upgrades that
//! hand over bytes already read (hixie-76's key3), custom reason phrases
//! ([`hyper::ext::ReasonPhrase`]) and early detection of a client that hangs up while its
//! response is pending.
//!
//! # The application API
//!
//! A handler `Fn(Session) -> impl Future<Output = ()>` runs in its own task, once per
//! session, when the session opens (after the client got `o`). [`Session::recv`] yields
//! messages until the session ends; [`Session::send`] queues without waiting;
//! [`Session::close`] ends it with a code and reason; [`Session::sender`] gives a
//! `Clone + Send` [`SessionSender`] for other tasks (broadcast registries).
//!
//! An `xhr_send` or `jsonp_send` is answered once the handler has taken the messages it
//! carried (came back to [`Session::recv`] after them), or after
//! [`Builder::delivery_wait`] (500 ms): what an application sends in reaction, like an
//! echo, is then queued before the client's next poll, as with sockjs-node's synchronous
//! events.
//!
//! WebSocket text messages go to the engine as they are; binary messages are handled as
//! text when they are valid UTF-8 and ignored otherwise.
//!
//! # Design
//!
//! - **Shards.** Each service runs N engines (default: the available parallelism). A
//!   request for `/S/I/...` picks its shard by hashing `I`, so a session's requests always
//!   meet the same engine; other requests go round-robin. A shard is a
//!   `std::sync::Mutex<Engine + routing tables>`, locked for one input and the drain of its
//!   outputs (microseconds), never across an `.await`, and no application code runs under
//!   it. A mutex beats an actor task here: no channel hop or extra task wake-up per
//!   request, `send` stays synchronous and returns the engine's verdict
//!   ([`SendError::QueueFull`]) directly, and contention is spread over N locks.
//! - **Timers.** Each shard has one task sleeping until the engine's `poll_timeout`
//!   (`tokio::time::sleep_until`), woken early through a `Notify` whenever an input moves
//!   the next deadline earlier.
//! - **Output routing.** Every request gets an id and a slot: a oneshot for the first
//!   answer, then a bounded queue feeding its streaming body or WebSocket task. Application
//!   events go to a bounded per-session queue read by [`Session::recv`].
//! - **Abort detection.** A dropped response future, streaming body or WebSocket task
//!   (hyper drops them when the client hangs up) reports the abort to the engine from a
//!   drop guard, so the next request sees the session's fate at once.
//!
//! # Limits and overflow policies
//!
//! Nothing one client or one session does can block another session, and every queue is
//! bounded:
//!
//! - Request bodies: at most [`Options::max_request_body`] bytes (413 beyond, checked
//!   against `Content-Length` first, then while reading).
//! - Request heads: [`serve`] closes a connection whose next request head has not arrived
//!   within [`Serve::header_read_timeout`] (30 s), which also ends idle keep-alive and
//!   silent connections; request bodies must arrive within
//!   [`Builder::request_body_timeout`] (10 s, then 408 and the connection closes).
//! - WebSocket messages: at most [`Options::max_message_size`] (the engine closes with
//!   1009).
//! - Messages the application queued while no receiver is attached: at most
//!   [`Options::max_queued_bytes`] per session; beyond it [`Session::send`] fails with
//!   [`SendError::QueueFull`] and nothing is queued.
//! - **Outgoing queue per connection** (a streaming response or a WebSocket): at most 256
//!   frames ([`Builder::outbound_queue`]) and [`Options::max_queued_bytes`] bytes that the
//!   client has not read. On overflow the connection is dropped (the stream fails, the
//!   socket closes) and the engine is told the client aborted, so with the default
//!   [`AbortPolicy`] the session closes. A polling response holds one frame and cannot
//!   overflow; a streaming response also ends by itself at [`Options::response_limit`].
//! - **Inbound queue per session** (messages the application has not taken with
//!   [`Session::recv`]): at most 1024 messages ([`Builder::inbound_queue`]) and
//!   [`Options::max_queued_bytes`] bytes. On overflow the session is closed with
//!   `1013 "Application not reading"` and further messages are dropped.
//! - Sessions per shard: [`Options::max_sessions`] (503 beyond).
//!
//! # Graceful shutdown
//!
//! [`Serve::with_graceful_shutdown`] stops accepting, closes every session with
//! `1001 "Server shutting down"` ([`SockJs::close_all`]; streams and polls get the close
//! frame and end, WebSockets get it and close), lets hyper finish in-flight responses and
//! close idle keep-alive connections, and drops what is left after the drain timeout.
//! Under axum, call [`SockJs::close_all`] from your shutdown signal.
//!
//! # Tracing
//!
//! Session open and close are `info` events (session id, transport, close reason); each
//! handler runs in a `sockjs_session` span; overflows are `warn`, connection and framing
//! errors `debug`.
#![forbid(unsafe_code)]

mod body;
pub mod broadcast;
mod queue;
mod server;
mod service;
mod session;
mod shard;
mod ws;

pub use body::{Body, BodyError};
pub use server::{OriginalUri, PeerAddr, Routes, Serve, serve};
pub use service::{BoxError, Builder, ResponseFuture, SockJs};
pub use session::{Session, SessionSender, SessionState};
pub use sockjs_core::{AbortPolicy, CloseReason, Options, OptionsError, SendError, Transport};
