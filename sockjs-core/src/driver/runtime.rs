//! What the driver needs from an async runtime: the time, timers and spawning.
//!
//! This is the whole boundary between the driver and an executor, in the spirit of quinn's
//! `runtime` module: an adapter implements [`Runtime`] in a few dozen lines and everything
//! else (locks, queues, session handles, WebSocket pumps) is shared.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Instant, SystemTime};

/// A boxed, sendable task.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// An async runtime, as the driver sees it.
///
/// ```
/// use std::pin::Pin;
/// use std::time::{Instant, SystemTime};
/// use sockjs_core::driver::{Runtime, Task, Timer};
///
/// /// A runtime whose timers never fire and which drops its tasks: enough to build
/// /// services in a test that never runs them.
/// #[derive(Debug)]
/// struct Inert;
///
/// struct Never;
/// impl std::future::Future for Never {
///     type Output = ();
///     fn poll(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
///         std::task::Poll::Pending
///     }
/// }
/// impl Timer for Never {
///     fn reset(self: Pin<&mut Self>, _deadline: Instant) {}
/// }
///
/// impl Runtime for Inert {
///     fn now(&self) -> Instant { Instant::now() }
///     fn wall_clock(&self) -> SystemTime { SystemTime::now() }
///     fn spawn(&self, _task: Task) {}
///     fn timer(&self, _deadline: Instant) -> Pin<Box<dyn Timer>> { Box::pin(Never) }
///     fn random_seed(&self) -> u64 { 7 }
/// }
/// ```
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// The monotonic time now.
    fn now(&self) -> Instant;

    /// The wall-clock time now (for `Expires` headers).
    fn wall_clock(&self) -> SystemTime;

    /// Runs `task` to completion in the background.
    ///
    /// The same rule holds for every task an adapter spawns of its own (a connection's, a
    /// WebSocket's): a task should hold its future once. An `async` block that awaits a
    /// future made outside it keeps both, the captured value and the awaited one, for the
    /// task's whole life, doubling its memory; build the future inside the block, or wrap
    /// it in a plain future type instead of a block (sockjs-smol's connection and
    /// WebSocket tasks, sockjs-tokio's connection task; each has a size test).
    ///
    /// The driver wakes the tasks of sessions and connections only once it has released
    /// its own locks: a session's shard, and the broadcast hub when it delivers, collect
    /// the wakers of what they handed on and wake them after. Wakers should still
    /// schedule, as every executor in common use (tokio, async-executor, futures' pools)
    /// does: one that polled its task inside `wake()` would run it nested inside the task
    /// that woke it, and a broadcast backend's `publish` runs under the hub's lock (Redis's
    /// wakes its publishing task, which never takes that lock); wakers may also be dropped
    /// under a lock.
    fn spawn(&self, task: Task);

    /// A timer that completes at `deadline` (at once if it has passed).
    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>>;

    /// A random number, for `/info` entropy, the keys of hash maps that clients can
    /// influence and (four draws of it) the secret of the tokens that bind sessions to
    /// their clients: each call should give a value no other call tells, from the system's
    /// random source (the adapters key std's `RandomState` hasher, which draws from it).
    fn random_seed(&self) -> u64;
}

/// A timer from [`Runtime::timer`]: a future that completes at its deadline, and can be
/// moved to another deadline without allocating a new one.
pub trait Timer: Future<Output = ()> + Send + Sync {
    /// Moves the deadline; the timer completes at the new one (even if it had completed).
    fn reset(self: Pin<&mut Self>, deadline: Instant);
}

/// Returns `Pending` once, asking to be polled again: the executor runs other tasks first.
/// For loops whose every step may complete at once (a client or a backend that always
/// has more), which no executor would otherwise interrupt.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// The instant `after` from `now`, as a timer's deadline. A setting too large to add
/// (`Duration::MAX`, which users write to mean "never") gives a deadline a century away
/// instead of the panic of `Instant + Duration`.
pub(crate) fn later(now: Instant, after: std::time::Duration) -> Instant {
    const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(after)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

/// Checks `done` every 10 ms (and once more at the deadline) until it holds, or until
/// `timeout` has passed. `true` if it held. The shutdown waits look at counts spread over
/// shards and adapters that have no one place to be woken from, so they poll.
pub(crate) async fn poll_until(
    runtime: &dyn Runtime,
    timeout: std::time::Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(10);
    let deadline = later(runtime.now(), timeout);
    loop {
        if done() {
            return true;
        }
        let now = runtime.now();
        if now >= deadline {
            return false;
        }
        runtime.timer(deadline.min(now + EVERY)).await;
    }
}

/// A runtime for unit tests that never run the driver's tasks or timers.
#[cfg(test)]
pub(crate) mod inert {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::{Instant, SystemTime};

    use super::{Runtime, Task, Timer};

    /// Its timers never fire and its tasks are dropped; the clock is the real one.
    #[derive(Debug)]
    pub(crate) struct Inert;

    struct Never;

    impl Future for Never {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }

    impl Timer for Never {
        fn reset(self: Pin<&mut Self>, _deadline: Instant) {}
    }

    impl Runtime for Inert {
        fn now(&self) -> Instant {
            Instant::now()
        }
        fn wall_clock(&self) -> SystemTime {
            SystemTime::now()
        }
        fn spawn(&self, _task: Task) {}
        fn timer(&self, _deadline: Instant) -> Pin<Box<dyn Timer>> {
            Box::pin(Never)
        }
        fn random_seed(&self) -> u64 {
            7
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::later;

    #[test]
    fn a_deadline_past_the_clocks_range_is_far_but_not_a_panic() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let far = later(now, Duration::MAX);
        assert!(far >= now + Duration::from_secs(50 * 365 * 24 * 3600));
    }
}
