//! A connection's read deadline.

use std::pin::Pin;
use std::time::Instant;

use crate::driver::{Runtime, Timer};

/// A read deadline's timer, made the first time it is needed and re-armed lazily. Each
/// wait for a request has a deadline, and most are later than the one before (the next
/// request's head is due a header read timeout after the last response). A timer moved to
/// every wait's deadline costs the runtime's timer wheel or heap a removal and an
/// insertion per request; this one stays armed at the earliest deadline it was given and,
/// when it fires early, is set again to the deadline now due: about one re-arm per header
/// read timeout instead of one per request.
#[derive(Default)]
pub(super) struct Deadline {
    timer: Option<Pin<Box<dyn Timer>>>,
    /// Where `timer` is armed; `None` once it has fired (or before the first wait).
    armed: Option<Instant>,
}

impl Deadline {
    /// Arms the timer for `deadline` unless it is already armed no later.
    pub(super) fn arm(&mut self, runtime: &dyn Runtime, deadline: Instant) {
        if self.armed.is_some_and(|armed| armed <= deadline) {
            return;
        }
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.timer = Some(runtime.timer(deadline)),
        }
        self.armed = Some(deadline);
    }

    /// Waits until the timer fires (forever if it was never armed).
    pub(super) async fn fired(&mut self) {
        match &mut self.timer {
            Some(timer) => timer.as_mut().await,
            None => std::future::pending().await,
        }
        self.armed = None;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};
    use std::time::{Duration, Instant, SystemTime};

    use super::Deadline;
    use crate::driver::{Runtime, Task, Timer};

    /// Timers that fire when the test says, recording every deadline they are set to.
    #[derive(Debug, Default)]
    pub(in crate::driver::http1) struct Manual {
        /// Deadlines set, in order (made or reset).
        set: Arc<Mutex<Vec<Instant>>>,
        /// Timers made.
        made: Mutex<usize>,
        /// The time the timers see.
        now: Arc<Mutex<Option<Instant>>>,
    }

    struct ManualTimer {
        deadline: Instant,
        set: Arc<Mutex<Vec<Instant>>>,
        now: Arc<Mutex<Option<Instant>>>,
    }

    impl Future for ManualTimer {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            let now = self.now.lock().expect("unpoisoned").expect("a time");
            if now >= self.deadline {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    impl Timer for ManualTimer {
        fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
            self.set.lock().expect("unpoisoned").push(deadline);
            self.deadline = deadline;
        }
    }

    impl Manual {
        /// A runtime whose clock reads `now` until [`set`](Manual::set) moves it.
        pub(in crate::driver::http1) fn at(now: Instant) -> Manual {
            let manual = Manual::default();
            manual.set(now);
            manual
        }

        pub(in crate::driver::http1) fn set(&self, now: Instant) {
            *self.now.lock().expect("unpoisoned") = Some(now);
        }
    }

    impl Runtime for Manual {
        fn now(&self) -> Instant {
            self.now.lock().expect("unpoisoned").expect("a time")
        }
        fn wall_clock(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH
        }
        fn spawn(&self, _: Task) {}
        fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
            *self.made.lock().expect("unpoisoned") += 1;
            self.set.lock().expect("unpoisoned").push(deadline);
            Box::pin(ManualTimer {
                deadline,
                set: self.set.clone(),
                now: self.now.clone(),
            })
        }
        fn random_seed(&self) -> u64 {
            1
        }
    }

    fn fired(deadline: &mut Deadline) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        std::pin::pin!(deadline.fired()).poll(&mut cx).is_ready()
    }

    /// One timer per connection: later deadlines leave it where it is (it fires early and
    /// the connection arms it again), an earlier one moves it, and once it has fired the
    /// next deadline re-arms it.
    #[test]
    fn one_timer_moved_only_when_it_must() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let runtime = Manual::default();
        *runtime.now.lock().expect("unpoisoned") = Some(t0);
        let mut deadline = Deadline::default();
        assert!(!fired(&mut deadline), "never armed: never fires");

        deadline.arm(&runtime, t0 + s(10));
        deadline.arm(&runtime, t0 + s(12));
        deadline.arm(&runtime, t0 + s(10));
        assert_eq!(*runtime.set.lock().expect("unpoisoned"), [t0 + s(10)]);
        deadline.arm(&runtime, t0 + s(5));
        assert_eq!(
            *runtime.set.lock().expect("unpoisoned"),
            [t0 + s(10), t0 + s(5)]
        );

        *runtime.now.lock().expect("unpoisoned") = Some(t0 + s(5));
        assert!(fired(&mut deadline));
        deadline.arm(&runtime, t0 + s(15));
        assert_eq!(
            *runtime.set.lock().expect("unpoisoned"),
            [t0 + s(10), t0 + s(5), t0 + s(15)]
        );
        assert!(!fired(&mut deadline));
        assert_eq!(
            *runtime.made.lock().expect("unpoisoned"),
            1,
            "one timer for every wait"
        );
    }
}
