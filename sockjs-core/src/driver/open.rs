//! A server's open connections, counted, and the accept loop's wait for room under
//! [`Config::max_connections`](crate::driver::Config::max_connections).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use super::metrics::Unrouted;
use super::waiters::Waiters;

/// The connections a server has open (HTTP connections, TLS handshakes, WebSockets), and
/// the bound its accept loop keeps them under.
///
/// An adapter's server counts each connection from accept to close with a
/// [`ConnectionGuard`] (a WebSocket takes its own before its HTTP connection lets go, so
/// an upgrade never opens a gap), and waits for [`room`](OpenConnections::room) before
/// each accept: at the bound, new connections wait in the kernel's listen backlog until
/// one ends, as a listener that is not accepting leaves them. Graceful shutdown waits for
/// [`len`](OpenConnections::len) to reach zero. The wait, the accept and the count are
/// three steps: one accept loop per counter keeps the bound exact (each more loop could
/// take one connection past it).
///
/// ```
/// use sockjs_core::driver::OpenConnections;
///
/// let open = OpenConnections::new(Some(1));
/// let first = open.enter();
/// assert_eq!(open.len(), 1);
/// assert!(!open.has_room());
/// drop(first);
/// assert!(open.has_room());
/// ```
#[derive(Debug)]
pub struct OpenConnections {
    count: AtomicUsize,
    /// `usize::MAX` without a bound.
    max: usize,
    /// The accept loop waiting for room (any number may wait).
    waiting: Mutex<Waiters>,
    /// Whether reaching the bound was logged as a warning already (then it is debug).
    warned: AtomicBool,
    /// Where the count is shown as `sockjs_connections_open` too.
    gauge: Option<Arc<Unrouted>>,
}

impl OpenConnections {
    /// A count of none, under `max` (at least one; `None`: no bound beyond the process's
    /// file descriptors).
    pub fn new(max: Option<usize>) -> Arc<OpenConnections> {
        OpenConnections::with_gauge(max, None)
    }

    fn with_gauge(max: Option<usize>, gauge: Option<Arc<Unrouted>>) -> Arc<OpenConnections> {
        Arc::new(OpenConnections {
            count: AtomicUsize::new(0),
            max: max.map_or(usize::MAX, |max| max.max(1)),
            waiting: Mutex::default(),
            warned: AtomicBool::new(false),
            gauge,
        })
    }

    /// [`new`](OpenConnections::new), also counting in the server's `unrouted`, whose
    /// [`open_connections`](Unrouted::open_connections) and Prometheus text
    /// (`sockjs_connections_open`) then show it (summed over the servers that share it).
    pub fn reporting_to(max: Option<usize>, unrouted: Arc<Unrouted>) -> Arc<OpenConnections> {
        unrouted.start_counting();
        OpenConnections::with_gauge(max, Some(unrouted))
    }

    /// Counts one connection until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> ConnectionGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        if let Some(gauge) = &self.gauge {
            gauge.connection_opened();
        }
        ConnectionGuard(self.clone())
    }

    /// Connections counted now.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether no connection is counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether one more connection fits under the bound.
    pub fn has_room(&self) -> bool {
        self.len() < self.max
    }

    /// Waits until one more connection fits under the bound: at once without one.
    pub fn room(&self) -> ConnectionRoom<'_> {
        ConnectionRoom {
            open: self,
            slot: None,
            logged: false,
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn leave(&self) {
        if let Some(gauge) = &self.gauge {
            gauge.connection_closed();
        }
        let before = self.count.fetch_sub(1, Ordering::AcqRel);
        // Only a count that was at or past the bound can have an accept loop waiting: it
        // registers under the lock and looks at the count again after, so a wait that
        // began before this decrement is woken here and one that began after sees room.
        if before >= self.max {
            let wakers = self.waiting().take();
            wakers.into_iter().for_each(std::task::Waker::wake);
        }
    }
}

/// One counted connection (see [`OpenConnections::enter`]); dropping it lets the count
/// go down and wakes an accept loop waiting for room.
#[derive(Debug)]
#[must_use = "the connection is counted only while the guard lives"]
pub struct ConnectionGuard(Arc<OpenConnections>);

impl ConnectionGuard {
    /// The connection's task, counted until it ends (or is dropped unfinished).
    pub fn counting<F: Future>(self, task: F) -> CountedTask<F> {
        CountedTask { task, _open: self }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.leave();
    }
}

pin_project_lite::pin_project! {
    /// A connection's task and its count as one future (see [`ConnectionGuard::counting`]):
    /// an `async` block awaiting the task would hold it twice for its whole life (once as
    /// what the block captured, once as what it awaits), doubling every connection's task.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct CountedTask<F> {
        #[pin]
        task: F,
        // Dropped after the task (fields drop in order).
        _open: ConnectionGuard,
    }
}

impl<F: Future> Future for CountedTask<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().task.poll(cx)
    }
}

/// The future of [`OpenConnections::room`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct ConnectionRoom<'a> {
    open: &'a OpenConnections,
    slot: Option<u64>,
    /// Whether this wait was logged.
    logged: bool,
}

impl Future for ConnectionRoom<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.open.has_room() {
            return Poll::Ready(());
        }
        let mut waiting = this.open.waiting();
        waiting.register(&mut this.slot, cx);
        if this.open.has_room() {
            waiting.remove(this.slot.take());
            return Poll::Ready(());
        }
        drop(waiting);
        if !this.logged {
            this.logged = true;
            let max = this.open.max;
            // Once as a warning, so that a bound set too low shows in the logs without a
            // flood of connections flooding them too.
            if this.open.warned.swap(true, Ordering::Relaxed) {
                tracing::debug!(max, "max_connections reached: not accepting");
            } else {
                tracing::warn!(
                    max,
                    "max_connections reached: new connections wait in the listen backlog \
                     until one ends (logged once per server; then at debug level)"
                );
            }
        }
        Poll::Pending
    }
}

impl Drop for ConnectionRoom<'_> {
    fn drop(&mut self) {
        if self.slot.is_some() {
            self.open.waiting().remove(self.slot.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::task::{Wake, Waker};

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Polls `room` once with `waker`.
    fn poll(room: &mut ConnectionRoom<'_>, waker: &Waker) -> Poll<()> {
        Pin::new(room).poll(&mut Context::from_waker(waker))
    }

    fn flag() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        (flag.clone(), Waker::from(flag))
    }

    #[test]
    fn without_a_bound_there_is_always_room() {
        let open = OpenConnections::new(None);
        let guards: Vec<_> = (0..1000).map(|_| open.enter()).collect();
        assert_eq!(open.len(), 1000);
        let (_, waker) = flag();
        assert!(poll(&mut open.room(), &waker).is_ready());
        drop(guards);
        assert!(open.is_empty());
    }

    #[test]
    fn at_the_bound_the_wait_ends_when_a_connection_does() {
        let open = OpenConnections::new(Some(2));
        let first = open.enter();
        let second = open.enter();
        let (woken, waker) = flag();
        let mut room = open.room();
        assert!(poll(&mut room, &waker).is_pending());
        // An upgrade counts its WebSocket before its HTTP connection lets go: past the
        // bound for a moment, and still no room when the first of the two ends.
        let websocket = open.enter();
        drop(second);
        assert!(poll(&mut room, &waker).is_pending());
        woken.0.store(false, Ordering::SeqCst);
        drop(first);
        assert!(
            woken.0.load(Ordering::SeqCst),
            "the end of a connection wakes the wait"
        );
        assert!(poll(&mut room, &waker).is_ready());
        assert_eq!(open.len(), 1);
        drop(websocket);
        assert!(open.is_empty());
    }

    #[test]
    fn a_wait_dropped_leaves_no_waker_behind() {
        let open = OpenConnections::new(Some(1));
        let only = open.enter();
        let (_, waker) = flag();
        let mut room = open.room();
        assert!(poll(&mut room, &waker).is_pending());
        drop(room);
        assert!(open.waiting().is_empty());
        drop(only);
        assert!(open.has_room());
    }

    #[test]
    fn the_count_shows_in_the_servers_metrics() {
        let unrouted = Arc::new(Unrouted::default());
        assert_eq!(unrouted.open_connections(), None);
        let open = OpenConnections::reporting_to(Some(2), unrouted.clone());
        assert_eq!(unrouted.open_connections(), Some(0));
        let guards = [open.enter(), open.enter()];
        assert_eq!(unrouted.open_connections(), Some(2));
        let mut text = String::new();
        unrouted.write_prometheus(&mut text);
        assert!(text.contains("# TYPE sockjs_connections_open gauge\nsockjs_connections_open 2\n"));
        drop(guards);
        assert_eq!(unrouted.open_connections(), Some(0));
        let mut text = String::new();
        Unrouted::default().write_prometheus(&mut text);
        assert!(
            !text.contains("sockjs_connections_open"),
            "no server counts there"
        );
    }

    #[test]
    fn a_bound_of_zero_is_one() {
        let open = OpenConnections::new(Some(0));
        assert!(open.has_room());
        let _only = open.enter();
        assert!(!open.has_room());
    }

    #[test]
    fn counts_from_many_threads_come_back_to_zero() {
        let open = OpenConnections::new(Some(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let open = open.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        drop(open.enter());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        assert!(open.is_empty());
        assert!(open.waiting().is_empty());
    }
}
