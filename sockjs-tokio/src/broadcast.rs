//! Topics (rooms) of sessions, and publishing to a topic or to everyone: on this node, or
//! on every node through Redis pub/sub (cargo feature `redis`).
//!
//! The hub is the driver's ([`sockjs_core::driver::broadcast`], where delivery, ordering
//! and failures are described): the same types as in `sockjs-smol`. This module adds the
//! constructors that run the Redis backend's tasks on tokio.
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # async fn run() -> Result<(), sockjs_tokio::broadcast::RedisError> {
//! use sockjs_tokio::broadcast;
//!
//! // Inside a tokio runtime: the backend's tasks are spawned on it.
//! let hub = broadcast::redis("redis://127.0.0.1:6379/")?; // Broadcast::new() for one node
//! // Or configured first:
//! let backend = broadcast::redis_backend("redis://127.0.0.1:6379/")?.channel_prefix("chat:");
//! let chat_hub = broadcast::Broadcast::with_backend(backend);
//! # drop((hub, chat_hub));
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "redis")]
use std::sync::Arc;

pub use sockjs_core::driver::broadcast::{Backend, Broadcast, Inbox, Member, Target};
#[cfg(feature = "redis")]
pub use sockjs_core::driver::broadcast::{RedisBackend, RedisError};

/// A hub whose messages also reach the members on every node that uses the Redis server at
/// `url` (`redis://[:password@]host[:port][/db]`): [`redis_backend`] with its defaults.
///
/// Call it from within a tokio runtime: the backend's two tasks are spawned on it. Fails
/// if the URL is invalid or there is no tokio runtime; Redis being down is not an error
/// (see [`RedisBackend`]).
#[cfg(feature = "redis")]
pub fn redis(url: &str) -> Result<Broadcast, RedisError> {
    redis_backend(url).map(Broadcast::with_backend)
}

/// A [`RedisBackend`] whose tasks run on tokio, to configure before
/// [`Broadcast::with_backend`]: on the runtime current when the hub starts it, or else on
/// the runtime current now. Fails outside any tokio runtime (its tasks would have nowhere
/// to run, and the hub would stay on this node alone), or if the URL is invalid.
#[cfg(feature = "redis")]
pub fn redis_backend(url: &str) -> Result<RedisBackend, RedisError> {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return Err(RedisError::from(std::io::Error::other(
            "sockjs-tokio's Redis backend needs a tokio runtime: call it from within one",
        )));
    };
    RedisBackend::new(url, Arc::new(crate::runtime::Tokio::at_home(handle)))
}
