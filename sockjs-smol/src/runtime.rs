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
    Server(Weak<Executor<'static>>),
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
            Smol::Server(executor) => {
                if let Some(executor) = executor.upgrade() {
                    executor.spawn(task).detach();
                }
            }
            #[cfg(feature = "redis")]
            Smol::Global => smol::spawn(task).detach(),
        }
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        Box::pin(At(async_io::Timer::at(deadline)))
    }

    fn random_seed(&self) -> u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x5eed);
        hasher.finish()
    }
}

struct At(async_io::Timer);

impl Future for At {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl Timer for At {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.set_at(deadline);
    }
}
