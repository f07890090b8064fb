//! The runtime-agnostic driver (cargo feature `driver`): everything between the engine and a
//! runtime adapter that does not depend on the runtime, written once.
//!
//! ```text
//!  application      Session / SessionSender: recv, send, close, state, closed, ...
//!       │                    broadcast::Broadcast: topics, publish (+ Backend, Redis)
//!  driver           Service ─ shards: Mutex<Engine + routing tables>, timer task each
//!  (this module)    Exchange: one request's writes, in order; abort guard; WebSocket pump
//!       │           queues bounded in items and bytes; Runtime trait: now, spawn, timers
//!       │           http1: the standalone servers' HTTP/1 connections (`wire` codec)
//!  adapter          sockjs-tokio (+ a tower service for hyper, axum) / sockjs-smol:
//!       │           sockets, accepting, spawning, timers: nothing else
//!  engine           Engine: routes, sessions, transports, frames, timers; pure
//! ```
//!
//! An adapter implements [`Runtime`] (the time, spawning, timers) and [`Socket`] (its
//! upgraded connections), builds a [`Service`] per SockJS endpoint, and for each HTTP
//! request:
//!
//! 1. reads the head and the whole body (bounded by
//!    [`Options::max_request_body`](crate::Options::max_request_body)) and calls
//!    [`Service::submit_on`] with what it knows of the [`Connection`] (the client's
//!    address, TLS, a [`ConnectionProbe`]);
//! 2. writes what the returned [`Exchange`] yields ([`Exchange::next`]): a whole response,
//!    or a stream head and then each chunk as its own flushed HTTP chunk until the end, or
//!    a 101 head, after which [`Exchange::serve_websocket`] runs the socket;
//! 3. drops the exchange when the connection fails or the client hangs up: that is the
//!    abort the engine needs to know of.
//!
//! An adapter whose server owns its connections' bytes hands each connection to
//! [`http1::serve`] instead, which does all three on the core's [`wire`](crate::wire)
//! codec, with every bound and timeout; it only implements [`http1::Host`] for its server.
//! Both adapters' standalone servers do.
//!
//! A service may have an [`Admission`] hook ([`Service::set_admission`]): a request that
//! would open a session then waits, inside its exchange, for the application's verdict
//! (PROTOCOL.md §7.3); the adapter sees nothing of it but a later first item.
//!
//! Everything else happens here, identically on every runtime: sessions spread over shards
//! (one mutex each, never held across an `.await`), outputs routed to their request or
//! session, bounded queues with their overflow policies, session handles and their
//! futures (std [`Waker`](std::task::Waker)s only), handler tasks, timers, broadcast, and
//! the [`metrics`] every service keeps ([`Service::metrics`]).
//!
//! # Bounds and overflow
//!
//! - Outgoing, per connection: [`Config::max_connection_queue`] items and
//!   [`Config::max_connection_queue_bytes`] bytes the client has not read; beyond them the
//!   engine is told at once that the client aborted (what that does to the session follows
//!   [`Options::abort`](crate::Options::abort); a WebSocket session ends), what was queued
//!   is dropped, and the connection closes as soon as its blocked write goes through or
//!   fails after [`Config::write_timeout`].
//! - Outgoing, per session: what the application sends while no receiver is attached queues
//!   in the engine up to [`Options::max_queued_bytes`](crate::Options::max_queued_bytes);
//!   beyond it `Session::send` waits for room and `Session::try_send` fails with
//!   [`SendError::QueueFull`](crate::SendError::QueueFull). A WebSocket session's `send`
//!   also waits while its connection's queue is over half full.
//! - Incoming, per session: [`Config::max_session_inbound_bytes`] of messages the
//!   application has not taken. Past it the client is held back, not refused: a WebSocket's
//!   socket is not read and an `xhr_send`'s answer is held until the application has taken
//!   half of it. An application that takes nothing for [`Config::inbound_stall_timeout`]
//!   while its queue is past the bound, or a client that starts a new send while it is past
//!   twice the bound (several sends in flight), gets the session closed with
//!   [`INBOUND_OVERFLOW_CODE`] [`INBOUND_OVERFLOW_REASON`].

mod accept;
mod admission;
#[cfg(test)]
mod backpressure_tests;
pub mod broadcast;
mod config;
mod connection;
mod drain;
mod exchange;
mod head;
pub mod http1;
mod inbound;
pub mod metrics;
mod open;
mod queue;
mod rfc6455;
mod runtime;
pub mod scratch;
mod service;
mod session;
mod shard;
mod socket;
pub mod suite;
#[cfg(test)]
mod test_world;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
mod waiters;
#[cfg(test)]
mod wake_model_tests;
pub mod web;
mod websocket;

pub use accept::{ACCEPT_BACKOFF, AcceptError};
pub use admission::{Admission, AdmissionRequest};
pub use config::{Config, INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON};
pub use connection::{Connection, ConnectionProbe};
pub use exchange::{Exchange, TryNext};
pub use open::{ConnectionGuard, ConnectionRoom, CountedTask, Idle, OpenConnections};
pub use runtime::{Runtime, Task, Timer};
pub use service::{Service, shutdown};
pub use session::{Closed, Ready, Send, Session, SessionSender};
pub use socket::{PollIo, Polled, Socket, write_all};
pub use websocket::WebSocket;

#[cfg(test)]
mod tests {
    use super::{Session, Socket, WebSocket};
    /// What every idle session holds for its whole life stays small: the `Session` in its
    /// handler's future (twice in an `async fn` handler), the WebSocket pump in its task.
    #[test]
    fn per_session_state_stays_small() {
        struct Idle;
        impl Socket for Idle {
            fn try_read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Ok(0)
            }
            fn try_write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Ok(0)
            }
            fn poll_readable(
                &mut self,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Pending
            }
            fn poll_writable(
                &mut self,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Pending
            }
            fn shutdown(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let session = size_of::<Session>();
        assert!(session <= 32, "Session: {session} B");
        let socket = size_of::<WebSocket<Idle>>();
        assert!(socket <= 384, "WebSocket: {socket} B");
    }
}
