//! SockJS server on smol / async-io, driving the sans-IO [`sockjs_core`] engine.
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
//!             let _ = session.send(&message);
//!         }
//!         // The session is closed: `recv` returned `None`.
//!     })?
//!     .service("/close", Options::default(), |session| async move {
//!         session.close(3000, "Go away!");
//!     })?;
//! let handle = server.handle(); // `handle.shutdown()` stops it gracefully
//! let listener = Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 8081))?;
//! async_io::block_on(server.serve(listener))?;
//! # drop(handle);
//! # Ok(())
//! # }
//! ```
//!
//! # How it works: embedding the engine in a runtime
//!
//! The engine ([`sockjs_core::Engine`]) is a pure state machine: it never reads a clock,
//! never does I/O and never spawns. This crate is the part that does, and is meant to be
//! readable as a worked example of driving the engine from any runtime:
//!
//! 1. **Bytes to requests.** Each accepted connection gets a task that reads into a buffer
//!    and runs [`sockjs_core::wire::RequestDecoder`] over it (keep-alive, pipelining,
//!    HTTP/1.0 and 1.1, `Expect: 100-continue`). A decode error is answered with its
//!    own status and the connection is closed.
//! 2. **Requests in.** The request gets a fresh [`RequestId`](sockjs_core::RequestId) and
//!    a fresh outgoing queue registered under that id, then goes to
//!    [`Engine::handle_request`](sockjs_core::Engine::handle_request) with `now`.
//! 3. **Outputs out.** Right after every input the engine is drained with
//!    [`poll_output`](sockjs_core::Engine::poll_output): transmit outputs go to the
//!    queue of their request id (the connection task encodes them with
//!    [`ResponseEncoder`](sockjs_core::wire::ResponseEncoder): one HTTP chunk and one
//!    write per `StreamChunk`, close-delimited for HTTP/1.0); `Opened` starts the
//!    application's handler task with a [`Session`]; `Message` goes to that session's
//!    inbound queue; `Closed` closes it.
//! 4. **Time.** Each engine has a timer task sleeping on
//!    [`async_io::Timer::at`]`(poll_timeout())`. Whenever an input moves the engine's next
//!    deadline earlier, the task is kicked and sleeps again on the new deadline; when it
//!    fires it calls [`handle_timeout`](sockjs_core::Engine::handle_timeout) and drains.
//! 5. **Aborts.** While a poll or stream is pending, the connection task keeps reading the
//!    socket (buffering any pipelined request); end of input or an error drops the request,
//!    and a drop guard calls [`handle_abort`](sockjs_core::Engine::handle_abort).
//! 6. **WebSocket.** On `Output::Upgrade` the task writes the 101 head itself, then either
//!    wraps the socket (and any bytes already read) with tungstenite as an open server
//!    socket, or, for hixie-76, reads the 8-byte key3, writes
//!    [`hixie76_answer`](sockjs_core::handshake::hixie76_answer) and speaks
//!    [`hixie76`](sockjs_core::wire::hixie76) frames. Incoming messages go to
//!    `handle_ws_message`, oversize ones to `handle_ws_too_big`, the end to
//!    `handle_ws_closed`; `WsText` / `WsPing` / `WsClose` outputs are sent.
//!
//! # Concurrency
//!
//! Each service runs [`Config::shards`] engines (default: one per core). A request picks
//! its engine by hashing the session id in its URL
//! ([`Route::parse`](sockjs_core::route::Route::parse) on the path after the prefix), so
//! all requests of a session meet in one engine; requests without a session id (greeting,
//! `/info`, iframe, raw WebSocket) go round-robin. A shard is a
//! `std::sync::Mutex<Engine + routing tables>`, locked only to feed one input and drain
//! its outputs with non-blocking sends; it is never held across an `.await`.
//!
//! Why a mutex and not an actor task per shard: the work under the lock is a few
//! microseconds of pure computation, so a mutex costs one uncontended atomic in the common
//! case, while an actor adds two channel hops and a task wake-up to every request and
//! every `send`, and needs a reply channel for [`Session::send`]'s result. With one shard
//! per core, contention stays low, and because nothing under the lock can block, a slow
//! client or application only ever delays itself.
//!
//! All tasks run on one multi-threaded executor owned by the server
//! ([`Config::threads`] threads, the one polling [`Server::serve`] included).
//!
//! # Limits and overflow policies
//!
//! - **Outgoing, per connection**: at most [`Config::max_connection_queue`] messages and
//!   [`Config::max_connection_queue_bytes`] bytes wait to be written. If the client reads
//!   too slowly for that, the connection is closed and the engine told the request was
//!   aborted (what that does to the session follows
//!   [`Options::abort`](sockjs_core::Options::abort); a WebSocket session ends). Each
//!   write also fails after [`Config::write_timeout`].
//! - **Outgoing, per session**: [`Session::send`] never waits. While no receiver is
//!   attached, messages queue in the engine up to
//!   [`Options::max_queued_bytes`](sockjs_core::Options::max_queued_bytes); beyond it
//!   `send` fails with [`SendError::QueueFull`] and nothing is queued.
//! - **Incoming, per session**: at most [`Config::max_session_inbound`] messages wait
//!   for [`Session::recv`]. If the application falls that far behind, the session is
//!   closed with [`INBOUND_OVERFLOW_CODE`] [`INBOUND_OVERFLOW_REASON`] rather than
//!   dropping messages or stalling the engine.
//! - **Requests**: heads are bounded by [`Config::max_head_bytes`] and
//!   [`Config::max_headers`], bodies by the services'
//!   [`Options::max_request_body`](sockjs_core::Options::max_request_body), WebSocket
//!   messages by [`Options::max_message_size`](sockjs_core::Options::max_message_size)
//!   (closed with 1009). A request must arrive within [`Config::header_read_timeout`]
//!   of its first byte, and an idle keep-alive connection is closed after
//!   [`Config::keep_alive_timeout`] (slowloris protection).
//!
//! # Graceful shutdown
//!
//! [`ServerHandle::shutdown`] stops accepting, closes idle keep-alive connections,
//! answers new requests with 503, closes every open session with
//! [`Config::shutdown_code`] / [`Config::shutdown_reason`]
//! ([`Engine::close_all`](sockjs_core::Engine::close_all)), then waits until every
//! session, handler task and connection is done, at most [`Config::shutdown_timeout`].
//! HTTP sessions closed this way stay CLOSING for their disconnect delay, so a client
//! that polls again still gets the close frame; shutdown therefore usually lasts about
//! one [`Options::disconnect_delay`](sockjs_core::Options::disconnect_delay).
//!
//! # Tracing
//!
//! Session open and close are `info` events (with the service prefix, session id,
//! transport and close reason); overflows and accept failures are `warn`; connection
//! errors and bad requests are `debug`.
#![forbid(unsafe_code)]

mod config;
mod conn;
mod queue;
mod server;
mod session;
mod shard;
mod ws;

pub use config::Config;
pub use server::{Server, ServerHandle, serve};
pub use session::{Session, SessionSender, SessionState};
pub use shard::{INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON};
pub use sockjs_core::{
    AbortPolicy, CloseReason, Options, OriginPolicy, ProtocolVersion, SendError, Transport,
};
