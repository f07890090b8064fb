//! Reconnecting: backoff, outage logs, and the clock a task waits with.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use redis::RedisError;

use super::*;
use crate::driver::runtime::later;
use crate::driver::{Runtime, Timer};

/// Exponential backoff with jitter.
pub(super) struct Backoff {
    pub(super) next: Duration,
    pub(super) seed: u64,
}

impl Backoff {
    pub(super) fn new(seed: u64) -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
            seed: seed | 1,
        }
    }

    pub(super) fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }

    /// The next delay: the current step ±25 %, then double the step.
    pub(super) fn next_delay(&mut self) -> Duration {
        // xorshift64
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let quarter = base / 4;
        let spread = u32::try_from(self.seed % 1001).unwrap_or(500);
        base - quarter + quarter * 2 * spread / 1000
    }
}

/// The publishing connection's name in the logs.
pub(super) const PUBLISH: &str = "publish";
/// The subscribing connection's name in the logs.
pub(super) const SUBSCRIBE: &str = "subscribe";

/// Tracks one connection's outages for the logs.
pub(super) struct Outage {
    pub(super) name: &'static str,
    pub(super) since: Option<Instant>,
    pub(super) dropped_before: u64,
}

impl Outage {
    pub(super) fn new(name: &'static str) -> Outage {
        Outage {
            name,
            since: None,
            dropped_before: 0,
        }
    }

    pub(super) fn down(
        &mut self,
        now: Instant,
        shared: &Shared,
        flag: &AtomicBool,
        error: &dyn fmt::Display,
    ) {
        flag.store(false, Ordering::Relaxed);
        if self.since.is_none() {
            self.since = Some(now);
            self.dropped_before = shared.dropped.load(Ordering::Relaxed);
            tracing::error!(
                connection = self.name,
                %error,
                "redis broadcast unavailable: messages reach this node only; reconnecting"
            );
        } else {
            tracing::debug!(connection = self.name, %error, "redis broadcast: retry failed");
        }
    }

    pub(super) fn up(&mut self, now: Instant, shared: &Shared, flag: &AtomicBool) {
        flag.store(true, Ordering::Relaxed);
        let Some(since) = self.since.take() else {
            return tracing::info!(connection = self.name, "redis broadcast connected");
        };
        let outage_ms =
            u64::try_from(now.saturating_duration_since(since).as_millis()).unwrap_or(u64::MAX);
        // `dropped` counts what this node could not publish: the publishing connection's
        // loss. What the other nodes published while this node was not subscribed is not
        // known to it, so the subscribing connection reports no count.
        if self.name == PUBLISH {
            tracing::warn!(
                connection = self.name,
                outage_ms,
                dropped = shared.dropped.load(Ordering::Relaxed) - self.dropped_before,
                "redis broadcast reconnected"
            );
        } else {
            tracing::warn!(
                connection = self.name,
                outage_ms,
                "redis broadcast reconnected; what other nodes published meanwhile did not reach this node"
            );
        }
    }
}

/// Why a connection ended.
pub(super) enum Lost {
    Redis(RedisError),
    /// The server answered, but not as a working connection does: an error reply (it
    /// wants a password, an ACL forbids the command), or a subscription not taken.
    Refused(String),
    Closed,
    Timeout,
    /// The backend was dropped.
    Stopped,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Redis(error) => error.fmt(f),
            Lost::Refused(why) => write!(f, "refused: {why}"),
            Lost::Closed => f.write_str("connection closed"),
            Lost::Timeout => f.write_str("timed out"),
            Lost::Stopped => f.write_str("shutting down"),
        }
    }
}

/// What the work beside a request did at one poll ([`Clock::within_busy`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Beside {
    /// Nothing: it waits, and will wake the task when it has something.
    Idle,
    /// Some: the connection is alive; it waits for more.
    Progress,
    /// Some, and it stopped before it ran out: poll again, after other tasks.
    More,
}

/// The runtime's clock and one reusable timer, for a task's timeouts and pauses.
pub(super) struct Clock {
    pub(super) runtime: Arc<dyn Runtime>,
    pub(super) timer: Pin<Box<dyn Timer>>,
}

impl Clock {
    pub(super) fn new(runtime: Arc<dyn Runtime>) -> Clock {
        let timer = runtime.timer(runtime.now());
        Clock { runtime, timer }
    }

    pub(super) fn now(&self) -> Instant {
        self.runtime.now()
    }

    /// `request`, failed if it takes longer than `limit` or the backend is dropped.
    pub(super) async fn within<T>(
        &mut self,
        shared: &Shared,
        role: Role,
        limit: Duration,
        request: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, Lost> {
        self.within_busy(shared, role, limit, request, |_| Ok(Beside::Idle))
            .await
    }

    /// `request`, with `beside` polled while it waits (whatever else the connection
    /// carries meanwhile): failed if `limit` passes with neither an answer nor progress
    /// from `beside` (each restarts it), if `beside` fails, or if the backend is dropped.
    pub(super) async fn within_busy<T>(
        &mut self,
        shared: &Shared,
        role: Role,
        limit: Duration,
        request: impl Future<Output = Result<T, RedisError>>,
        mut beside: impl FnMut(&mut Context<'_>) -> Result<Beside, Lost>,
    ) -> Result<T, Lost> {
        let runtime = &self.runtime;
        let timer = &mut self.timer;
        timer.as_mut().reset(later(runtime.now(), limit));
        let mut request = pin!(request);
        poll_fn(|cx| {
            if shared.poll_stopped(role, cx).is_ready() {
                return Poll::Ready(Err(Lost::Stopped));
            }
            if let Poll::Ready(result) = request.as_mut().poll(cx) {
                return Poll::Ready(result.map_err(Lost::Redis));
            }
            let beside = match beside(cx) {
                Ok(beside) => beside,
                Err(lost) => return Poll::Ready(Err(lost)),
            };
            if beside != Beside::Idle {
                timer.as_mut().reset(later(runtime.now(), limit));
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Lost::Timeout));
            }
            if beside == Beside::More {
                // More may be waiting: other tasks first.
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }

    /// Waits `delay`; `false` if the backend was dropped meanwhile.
    pub(super) async fn pause(&mut self, shared: &Shared, role: Role, delay: Duration) -> bool {
        let deadline = later(self.now(), delay);
        self.timer.as_mut().reset(deadline);
        shared
            .unless_stopped(role, self.timer.as_mut())
            .await
            .is_some()
    }
}
