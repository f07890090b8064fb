//! Topics (rooms) of sessions, and publishing to a topic or to everyone: on this node, or
//! on every node through Redis pub/sub (cargo feature `redis`).
//!
//! The hub is the driver's ([`sockjs_core::driver::broadcast`], where delivery, ordering
//! and failures are described): the same types as in `sockjs-tokio`. This module adds the
//! constructors that run the Redis backend's tasks on smol.
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # fn run() -> Result<(), sockjs_smol::broadcast::RedisError> {
//! use sockjs_smol::broadcast::{self, Broadcast};
//!
//! // From any thread: the backend runs on smol's global executor.
//! let hub = broadcast::redis("redis://127.0.0.1:6379/")?; // Broadcast::new() for one node
//! // Or configured first:
//! let backend = broadcast::redis_backend("redis://127.0.0.1:6379/")?.queue(1024);
//! let busy_hub = Broadcast::with_backend(backend);
//! # drop((hub, busy_hub));
//! # Ok(())
//! # }
//! ```

pub use sockjs_core::driver::broadcast::{Backend, Broadcast, Inbox, Member, Target};
#[cfg(feature = "redis")]
pub use sockjs_core::driver::broadcast::{RedisBackend, RedisError};

/// A hub whose messages also reach the members on every node that uses the Redis server at
/// `url` (`redis://[:password@]host[:port][/db]`): [`redis_backend`] with its defaults.
///
/// Call it from anywhere, before or while a [`Server`](crate::Server) runs. Fails only if
/// the URL is invalid; Redis being down is not an error (see [`RedisBackend`]).
#[cfg(feature = "redis")]
pub fn redis(url: &str) -> Result<Broadcast, RedisError> {
    Ok(Broadcast::with_backend(redis_backend(url)?))
}

/// A [`RedisBackend`] whose tasks run on smol's global executor (`smol::spawn`, where the
/// `redis` crate runs its connections too), so a hub outlives any one server; configure
/// it, then pass it to [`Broadcast::with_backend`].
#[cfg(feature = "redis")]
pub fn redis_backend(url: &str) -> Result<RedisBackend, RedisError> {
    let runtime = crate::runtime::Smol::Global;
    RedisBackend::new(url, std::sync::Arc::new(runtime))
}
