//! The driver's [`Runtime`] on tokio: the current runtime (or the one the service first
//! ran on), tokio's timers.

use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use sockjs_core::driver::{Runtime, Task, Timer};
use tokio::runtime::Handle;

#[derive(Debug, Default)]
pub(crate) struct Tokio {
    /// The runtime of the first task spawned from inside one, for tasks spawned from
    /// outside any (e.g. a handle dropped on a plain thread).
    home: OnceLock<Handle>,
}

impl Tokio {
    /// Spawns on `home` when called from outside any runtime.
    #[cfg(feature = "redis")]
    pub(crate) fn at_home(home: Handle) -> Tokio {
        Tokio {
            home: OnceLock::from(home),
        }
    }
}

impl Runtime for Tokio {
    fn now(&self) -> Instant {
        // tokio's clock, so that a test runtime with paused time drives the engines too.
        tokio::time::Instant::now().into_std()
    }

    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }

    fn spawn(&self, task: Task) {
        match Handle::try_current() {
            Ok(handle) => {
                let _ = self.home.set(handle.clone());
                handle.spawn(task);
            }
            Err(_) => match self.home.get() {
                Some(handle) => {
                    handle.spawn(task);
                }
                None => tracing::error!("no tokio runtime to spawn on"),
            },
        }
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        Box::pin(Sleep(Box::pin(tokio::time::sleep_until(deadline.into()))))
    }

    fn random_seed(&self) -> u64 {
        // std's randomly keyed hasher is the random source at hand.
        let keys = std::collections::hash_map::RandomState::new();
        keys.hash_one(std::thread::current().id())
    }
}

/// tokio's `Sleep` behind a pointer, so the wrapper can be moved freely.
struct Sleep(Pin<Box<tokio::time::Sleep>>);

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl Timer for Sleep {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.as_mut().reset(deadline.into());
    }
}
