//! A sans-IO SockJS server engine.
//!
//! SockJS gives browsers a WebSocket-like object that keeps working where WebSockets don't,
//! by falling back to HTTP streaming and polling transports. This crate is the whole server
//! side of the protocol as a pure state machine: requests, WebSocket events, application
//! calls and time go in; writes (responses, stream chunks, WebSocket frames) and
//! application events come out. It has no sockets, threads, async runtime, clock reads or
//! randomness, so the same inputs always give the same outputs: it can be tested on a
//! virtual clock, fuzzed, and embedded in any runtime (see `sockjs-smol` and
//! `sockjs-tokio` for two).
//!
//! # Driving the engine
//!
//! A runtime owns the sockets and the clock, and runs this loop:
//!
//! 1. feed an input, with the current time: [`Engine::handle_request`] (a complete request
//!    with a request id the runtime chooses), [`Engine::handle_abort`] (the peer dropped a
//!    pending request), [`Engine::handle_ws_message`] / [`Engine::handle_ws_binary`] /
//!    [`Engine::handle_ws_pong`] / [`Engine::handle_ws_closed`] (a WebSocket),
//!    [`Engine::send`] / [`Engine::close`] (the application), [`Engine::handle_timeout`];
//! 2. drain [`Engine::poll_transmit`] and [`Engine::poll_event`] until both are empty:
//!    carry out each [`Transmit`] (write a response, start a stream and write each chunk as
//!    its own flushed HTTP chunk, finish a WebSocket upgrade, send WebSocket frames) and hand
//!    each [`Event`] to the application, whose reactions may queue more of both;
//! 3. sleep until [`Engine::poll_timeout`] or the next input, whichever comes first. Read
//!    it after the drain: the application's messages are written during the drain, and
//!    what they end (a poll, whose disconnect delay then starts) arms timers there.
//!
//! Every input first fires the timers due by its time, each at its own deadline and in
//! order, so what a timer concludes about the peer holds however late the timer input
//! comes: a session past its disconnect delay is gone for a request or a send that comes
//! before the timer input does, and a socket past its ping timeout is closed for a pong
//! that comes so. What a late timer writes (a heartbeat, a ping) goes out only with the
//! input, so what waits on the peer's answer to it (the ping's timeout, the disconnect
//! delay of a poll the heartbeat ended) counts from the input's time: the peer is never
//! blamed for the driver's lateness.
//!
//! A [`RequestId`] may be used again once the request is done for both sides: its last
//! transmit ([`Content::is_last`]) drained, or its abort or WebSocket close fed. After
//! [`Engine::handle_ws_closed`] or [`Engine::handle_abort`] the engine writes nothing more
//! for it: answering the client's close frame, and dropping what was not written yet, are
//! the driver's.
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use bytes::Bytes;
//! use sockjs_core::{Content, Engine, Event, Options, RequestId, Start, Transmit};
//!
//! let mut now = Instant::now();
//! let start = Start { now, wall_clock: SystemTime::now(), seed: 0x5eed };
//! let mut engine = Engine::new(Options { prefix: "/echo".into(), ..Options::default() }, start)?;
//!
//! // A client opens an xhr-polling session; an echo application answers its messages.
//! let open = http::Request::post("/echo/000/abc/xhr").body(Bytes::new())?;
//! engine.handle_request(now, RequestId(1), open);
//! let send = http::Request::post("/echo/000/abc/xhr_send").body(Bytes::from(r#"["hi"]"#))?;
//! engine.handle_request(now, RequestId(2), send);
//! let poll = http::Request::post("/echo/000/abc/xhr").body(Bytes::new())?;
//! engine.handle_request(now, RequestId(3), poll);
//!
//! let mut answers = Vec::new();
//! loop {
//!     while let Some(Transmit { request, content }) = engine.poll_transmit() {
//!         match content {
//!             Content::Response(response) => answers.push((request, response)),
//!             other => unreachable!("no streams or sockets here: {other:?}"),
//!         }
//!     }
//!     let mut reacted = false;
//!     while let Some(event) = engine.poll_event() {
//!         reacted = true;
//!         if let Event::Message { session, text } = event {
//!             engine.send(now, session, &text)?; // echo
//!         }
//!     }
//!     if !reacted {
//!         break; // both queues are empty
//!     }
//! }
//! let bodies: Vec<_> = answers.iter().map(|(id, r)| (id.0, r.body().clone())).collect();
//! assert_eq!(bodies[0], (1, Bytes::from("o\n")));
//! assert_eq!(bodies[1], (2, Bytes::new())); // 204
//! assert_eq!(bodies[2], (3, Bytes::from("a[\"hi\"]\n")));
//!
//! // Nothing is pending: the session's disconnect timer is the next deadline.
//! let deadline = engine.poll_timeout().expect("a timer is armed");
//! assert_eq!(deadline, now + Duration::from_secs(5));
//! now = deadline;
//! engine.handle_timeout(now);
//! assert!(matches!(engine.poll_event(), Some(Event::Closed { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Scaling across cores
//!
//! Sessions are independent, so a runtime may run several engines (say one per core) and
//! pick one per request by hashing the URL's session id (`I` in `/prefix/S/I/xhr`).
//! WebSocket sessions are not registered under their URL id and can go to any engine.
//!
//! # The driver
//!
//! With the `driver` feature, `sockjs_core::driver` is everything between the engine and an
//! async runtime that does not depend on the runtime: sharded engines behind short locks,
//! output routing, bounded queues, the application's `Session` handles, abort detection,
//! the WebSocket pump, broadcast. `sockjs-tokio` and `sockjs-smol` are thin adapters over
//! it; a runtime of your own needs a few dozen lines of `Runtime` and `Socket`. Without the
//! feature, this crate has no async code at all.
//!
//! # permessage-deflate
//!
//! [`Options::permessage_deflate`] (off by default) offers WebSocket compression
//! (RFC 7692), which every Chromium asks for: `Some(DeflateOptions::default())` compresses
//! each message on its own, from 256 bytes on, so a socket keeps no compression state
//! between messages; [`DeflateOptions`] also sets the level and lets context takeover trade
//! memory for ratio. The engine negotiates ([`deflate`]) and tells the driver the result in
//! [`Handshake::Rfc6455`]; the codec that compresses is in [`wire::rfc6455`] (feature
//! `deflate`, which `driver` turns on). Compressed messages are bounded by
//! `max_message_size` once inflated.
//!
//! # Options beyond the protocol
//!
//! [`Options::default`] is the protocol's service. Besides the bounds below, a service can
//! offer only some transports ([`Options::transports`], a [`Transports`] set; the others
//! answer 404 and `/info` agrees), set the load balancer's cookie ([`Options::jsessionid`]:
//! the protocol's `JSESSIONID` echo with the attributes browsers need cross-site, such as
//! `SameSite=None; Secure`, or a cookie of its own, see [`Jsessionid`]), turn heartbeats off
//! ([`Options::heartbeat_delay`] `None`), and detect dead WebSocket peers
//! ([`Options::websocket_ping`]: pings, and close `3000` after the [`PingOptions`] timeout,
//! [`CloseReason::PeerUnresponsive`]).
//!
//! # Who may open a session
//!
//! [`Options::origins`] refuses browsers on other sites ([`OriginPolicy::list`], or
//! [`OriginPolicy::predicate`] over the origin and the whole request head). For the rest,
//! [`Engine::opens_session`] tells a driver which requests would open a session, so it can
//! ask the application first, and [`Engine::handle_rejected`] answers a refused one with a
//! [`Rejection`] without creating anything: the driver's admission hook is built on the
//! two (PROTOCOL.md §7.3).
//!
//! # Bounds
//!
//! Every buffer the engine holds has a bound in [`Options`]: request bodies
//! (`max_request_body`, 413), queued outgoing bytes per session (`max_queued_bytes`,
//! [`SendError::QueueFull`]), sessions (`max_sessions`, 503), WebSocket messages
//! (`max_message_size`, close 1009). Bad input gets the protocol's own error response and
//! never a panic. What it hands out is the driver's to bound: the transmit and event
//! queues grow until drained (drain after every input), a raw WebSocket's messages go
//! straight to transmits (no SockJS batch holds them; bound them on the connection, as
//! the `driver` does), and messages to the application wait in the driver.
//!
//! # Modules
//!
//! The engine and its types live at the crate root. Besides them:
//!
//! - [`transport`]: the transports a session can use;
//! - [`handshake`]: WebSocket handshake arithmetic (hixie-76 needs the driver's help);
//! - [`deflate`]: permessage-deflate's settings and negotiation;
//! - [`wire`]: an HTTP/1.1 codec for runtimes that own raw byte streams;
//! - `driver` (feature `driver`): the runtime-agnostic layer the adapters share.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client_addr;
mod cookie;
pub mod deflate;
#[cfg(feature = "driver")]
#[cfg_attr(docsrs, doc(cfg(feature = "driver")))]
pub mod driver;
mod engine;
pub mod handshake;
mod options;
mod output;
mod peer;
mod rejection;
mod response;
mod session;
mod swar;
mod timer;
pub mod transport;
pub mod wire;

// Public only so the fuzz targets and benchmarks can reach them: not part of the API.
#[doc(hidden)]
pub mod escape;
#[doc(hidden)]
pub mod frame;
#[doc(hidden)]
pub mod pages;
#[doc(hidden)]
pub mod payload;
#[doc(hidden)]
pub mod route;

pub use client_addr::{ForwardingHeader, IpRange, IpRangeError};
pub use cookie::{CookieAttributes, CookieError, CookieFn, Jsessionid, SameSite};
pub use deflate::{DeflateOptions, DeflateParams};
pub use engine::{Engine, Start};
pub use options::{
    AbortPolicy, DEFAULT_SOCKJS_URL, Options, OptionsError, OriginFn, OriginPolicy, PingOptions,
    ProtocolVersion, SessionBinding,
};
pub use output::{
    CloseReason, Content, Event, Handshake, RequestId, SendError, SessionInfo, SessionKey,
    SessionState, Transmit,
};
pub use rejection::Rejection;
pub use transport::{Transport, Transports};

/// A request extension carrying the peer's address, so sessions can report it and
/// [`SessionBinding::PeerIp`] can check it. A runtime that feeds the [`Engine`] inserts it
/// into each request; the adapters hand it beside the request instead (the driver's
/// `Connection`), and the application finds it on every request it reads all the same (a
/// session's opening request, an admission hook's, the option callbacks').
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// A request extension carrying the request URI as the client sent it, before a router
/// stripped the mount path (e.g. axum's `nest_service`). Adapters and routers that strip
/// prefixes insert it; the engine names it in hixie-76's `Sec-WebSocket-Location`, which
/// must be the full URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalUri(pub http::Uri);

/// A request extension marking a request that arrived over TLS, so hixie-76 answers with a
/// `wss://` location. Set like [`PeerAddr`]: by a runtime that feeds the [`Engine`], or
/// beside the request by the adapters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tls;
