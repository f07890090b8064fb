//! The driver's [`Runtime`] on smol: the server's executor (or smol's global one), async-io
//! timers.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use async_executor::Executor;
use sockjs_core::driver::{Runtime, Task, Timer};

#[derive(Debug)]
pub(crate) enum Smol {
    /// Spawns on the server's executor; tasks spawned after it is gone are dropped.
    Server {
        executor: Weak<Executor<'static>>,
        /// Held while the server's own worker threads ([`Server::start`]) may run: every
        /// service, session, timer and socket task holds this runtime, so the threads run
        /// until the last of them has ended (a dropped server's sessions closing, their
        /// handlers seeing the end), not only while the server's handle is kept.
        ///
        /// [`Server::start`]: crate::Server::start
        _workers: Option<async_channel::Sender<()>>,
    },
    /// Spawns on smol's global executor, for tasks that outlive any one server (the Redis
    /// broadcast backend's).
    #[cfg(feature = "redis")]
    Global,
}

impl Runtime for Smol {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }

    fn spawn(&self, task: Task) {
        match self {
            Smol::Server { executor, .. } => {
                if let Some(executor) = executor.upgrade() {
                    executor.spawn(task).detach();
                }
            }
            #[cfg(feature = "redis")]
            Smol::Global => smol::spawn(task).detach(),
        }
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        Box::pin(At {
            timer: async_io::Timer::at(deadline),
            deadline: Some(deadline),
        })
    }

    fn random_seed(&self) -> u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x5eed);
        hasher.finish()
    }
}

/// An async-io timer and its deadline.
struct At {
    timer: async_io::Timer,
    /// The deadline it has not fired for yet, kept so that moving to the same one costs
    /// nothing: async-io's `set_at` takes a registered timer out of the reactor and puts it
    /// back, and the driver moves a request's one timer to each wait's deadline, again at
    /// every poll of that wait. `None` once fired (a fired async-io timer never fires
    /// again unless set).
    deadline: Option<Instant>,
}

impl Future for At {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let fired = Pin::new(&mut self.timer).poll(cx).map(|_| ());
        if fired.is_ready() {
            self.deadline = None;
        }
        fired
    }
}

impl Timer for At {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        if self.deadline != Some(deadline) {
            self.deadline = Some(deadline);
            self.timer.set_at(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn timer(deadline: Instant) -> Pin<Box<dyn Timer>> {
        Box::pin(At {
            timer: async_io::Timer::at(deadline),
            deadline: Some(deadline),
        })
    }

    fn fired(timer: &mut Pin<Box<dyn Timer>>) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        timer.as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn a_timer_moved_to_the_same_deadline_fires_again_once_fired() {
        let past = Instant::now();
        let mut t = timer(past);
        assert!(fired(&mut t));
        // The contract: a reset timer completes at its deadline even if it had completed.
        t.as_mut().reset(past);
        assert!(fired(&mut t));
        let later = Instant::now() + Duration::from_secs(3600);
        t.as_mut().reset(later);
        assert!(!fired(&mut t));
        // Moved to its own deadline again: still waiting, not fired.
        t.as_mut().reset(later);
        assert!(!fired(&mut t));
        t.as_mut().reset(past);
        assert!(fired(&mut t));
    }
}
