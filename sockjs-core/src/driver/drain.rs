//! A service's drain at graceful shutdown ([`shutdown`](crate::driver::shutdown)).
//!
//! While a service drains, it opens no session (such requests get `503` under the same
//! shard lock that would open one, so none slips through), and it keeps serving the
//! sessions it holds: a polling client that comes back on a kept-alive connection collects
//! its close frame. The drain ends once no session or handler is left; only then do the
//! server's idle connections close, since one of them may carry such a poll.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

use crate::driver::service::Common;
use crate::driver::waiters::{Waiters, wake_all};

/// The body of the `503` a shutting-down server answers with.
pub(crate) const SHUTTING_DOWN: &str = "Server shutting down.\n";

/// Where a service is in its drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Stage {
    /// Serving as usual.
    Serving = 0,
    /// Shutting down: no new session, the held ones still served.
    Draining = 1,
    /// No session or handler left.
    Drained = 2,
}

/// One service's drain stage, and the idle connections waiting for its end.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    stage: AtomicU8,
    waiters: Mutex<Waiters>,
    /// The close code and reason of the shutdown that started the drain: the server's
    /// (its `Config`, which may not be the service's), given to the sessions it closes and
    /// to a WebSocket refused while it lasts alike.
    close: OnceLock<(u16, String)>,
}

impl Drain {
    fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Acquire) {
            0 => Stage::Serving,
            1 => Stage::Draining,
            _ => Stage::Drained,
        }
    }

    /// Starts the drain (once; a drained service stays drained), with the close code and
    /// reason of the shutdown (the first one's, if started again).
    pub(crate) fn start(&self, code: u16, reason: &str) {
        let _ = self.close.set((code, reason.to_owned()));
        let _ = self.stage.compare_exchange(
            Stage::Serving as u8,
            Stage::Draining as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// The close code and reason the drain's shutdown gives (`None` before it starts).
    pub(crate) fn close(&self) -> Option<(u16, &str)> {
        self.close
            .get()
            .map(|(code, reason)| (*code, reason.as_str()))
    }

    /// Ends the drain and wakes whoever waits for it (once; later calls do nothing).
    pub(crate) fn finish(&self) {
        if self.stage.swap(Stage::Drained as u8, Ordering::AcqRel) == Stage::Drained as u8 {
            return;
        }
        let wakers = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        wake_all(wakers);
    }

    /// Draining or drained: new sessions are refused (for good: a service shared with
    /// another server, or reached through a connection of the application's own, must not
    /// open sessions once its shutdown is over either), held ones served.
    pub(crate) fn is_draining(&self) -> bool {
        self.stage() != Stage::Serving
    }

    /// Whether the drain ended. Until [`shutdown`](crate::driver::shutdown) starts it, a
    /// server that is shutting down waits too: its adapter says so before the drain
    /// starts.
    pub(crate) fn is_over(&self) -> bool {
        self.stage() == Stage::Drained
    }

    fn poll_over(&self, cx: &Context<'_>, slot: &mut Option<u64>) -> Poll<()> {
        if self.is_over() {
            return Poll::Ready(());
        }
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        // Asked again under the lock `finish` takes to wake: no wakeup is lost between.
        if self.is_over() {
            waiters.remove(slot.take());
            return Poll::Ready(());
        }
        waiters.register(slot, cx);
        Poll::Pending
    }
}

/// Completes once a service's drain ended ([`Drain::is_over`]).
pub(crate) struct Over {
    common: Arc<Common>,
    slot: Option<u64>,
}

impl Over {
    pub(crate) fn new(common: Arc<Common>) -> Over {
        Over { common, slot: None }
    }
}

impl Future for Over {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.common.drain.poll_over(cx, &mut this.slot)
    }
}

impl Drop for Over {
    fn drop(&mut self) {
        if self.slot.is_some() {
            self.common
                .drain
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(self.slot.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::waiters::tests::Count;
    use std::sync::atomic::AtomicUsize;
    use std::task::Waker;

    #[test]
    fn a_drain_goes_serving_draining_drained_and_wakes_its_waiters_once() {
        let drain = Drain::default();
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let cx = Context::from_waker(&waker);
        let mut slot = None;

        // Serving: a shutting-down server waits for the drain to start and end.
        assert!(!drain.is_draining() && !drain.is_over());
        assert!(drain.poll_over(&cx, &mut slot).is_pending());
        assert_eq!(drain.close(), None);
        drain.start(4001, "bye");
        assert!(drain.is_draining() && !drain.is_over());
        assert_eq!(drain.close(), Some((4001, "bye")));
        // Polled again: the same slot, not a second waker.
        assert!(drain.poll_over(&cx, &mut slot).is_pending());
        drain.finish();
        assert_eq!(woken.0.load(Ordering::Relaxed), 1);
        assert!(drain.is_draining() && drain.is_over());
        assert!(drain.poll_over(&cx, &mut slot).is_ready());
        // Drained stays drained, with the first shutdown's close, and ends once.
        drain.start(1001, "again");
        assert_eq!(drain.close(), Some((4001, "bye")));
        drain.finish();
        assert!(drain.is_over());
        assert_eq!(woken.0.load(Ordering::Relaxed), 1);
    }
}
