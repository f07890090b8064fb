//! A bounded single-producer, single-consumer queue: a `VecDeque` under a mutex plus the
//! consumer's waker. Unlike `tokio::sync::mpsc` it allocates nothing until the first item
//! (tokio preallocates a 32-slot block and a channel of some 350 bytes per queue, which
//! adds up over idle sessions), and a burst wakes the consumer once.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Capacity kept after the queue runs dry; a burst's larger buffer is given back.
const KEEP: usize = 16;

struct State<T> {
    items: VecDeque<T>,
    waker: Option<Waker>,
    tx_gone: bool,
    rx_gone: bool,
    killed: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why [`QueueTx::try_send`] gave the item back.
pub(crate) enum TrySendError<T> {
    Full(T),
    Closed(T),
}

/// The producing half; dropping it ends the queue (after the queued items).
pub(crate) struct QueueTx<T> {
    shared: Arc<Shared<T>>,
    limit: usize,
}

/// The consuming half; dropping it makes further sends fail with `Closed`.
pub(crate) struct QueueRx<T> {
    shared: Arc<Shared<T>>,
}

/// A queue holding at most `limit` items (at least one).
pub(crate) fn queue<T>(limit: usize) -> (QueueTx<T>, QueueRx<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            waker: None,
            tx_gone: false,
            rx_gone: false,
            killed: false,
        }),
    });
    (
        QueueTx {
            shared: shared.clone(),
            limit: limit.max(1),
        },
        QueueRx { shared },
    )
}

impl<T> QueueTx<T> {
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let waker = {
            let mut state = self.shared.lock();
            if state.rx_gone {
                return Err(TrySendError::Closed(item));
            }
            if state.items.len() >= self.limit {
                return Err(TrySendError::Full(item));
            }
            state.items.push_back(item);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> QueueTx<T> {
    /// Tells the consumer to give up at once (see [`Killed`]).
    pub(crate) fn kill(&self) {
        let waker = {
            let mut state = self.shared.lock();
            state.killed = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for QueueTx<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.tx_gone = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> QueueRx<T> {
    /// The next item; `None` once the sender is gone and the queue is empty.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if let Some(item) = state.items.pop_front() {
            if state.items.is_empty() && state.items.capacity() > KEEP {
                state.items.shrink_to(KEEP);
            }
            return Poll::Ready(Some(item));
        }
        if state.tx_gone {
            return Poll::Ready(None);
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next item (cancel-safe).
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        self.shared.lock().items.pop_front()
    }

    /// A handle that resolves once the producer called [`QueueTx::kill`]. It shares the
    /// consumer's waker, so it must be polled by the task that receives.
    pub(crate) fn killed(&self) -> Killed<T> {
        Killed {
            shared: self.shared.clone(),
        }
    }
}

/// See [`QueueRx::killed`].
pub(crate) struct Killed<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Killed<T> {
    /// Resolves once the queue was killed.
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.killed {
                return Poll::Ready(());
            }
            match &state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => state.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await;
    }
}

impl<T> Drop for QueueRx<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.lock();
            state.rx_gone = true;
            std::mem::take(&mut state.items)
        };
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_ordered_and_closing() {
        let (tx, mut rx) = queue::<u32>(2);
        assert!(tx.try_send(1).is_ok());
        assert!(tx.try_send(2).is_ok());
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert!(tx.try_send(4).is_ok());
        drop(tx);
        assert_eq!(rx.recv().await, Some(4));
        assert_eq!(rx.recv().await, None);

        let (tx, rx) = queue::<u32>(1);
        drop(rx);
        assert!(matches!(tx.try_send(1), Err(TrySendError::Closed(1))));
    }

    #[tokio::test]
    async fn kill_wakes_the_receiver() {
        let (tx, rx) = queue::<u32>(4);
        let killed = rx.killed();
        let task = tokio::spawn(async move {
            killed.wait().await;
            drop(rx);
        });
        tokio::task::yield_now().await;
        tx.kill();
        assert!(task.await.is_ok());
    }

    #[tokio::test]
    async fn wakes_the_receiver() {
        let (tx, mut rx) = queue::<u32>(4);
        let task = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        assert!(tx.try_send(7).is_ok());
        assert_eq!(task.await.ok().flatten(), Some(7));
    }
}
