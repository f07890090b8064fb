//! A server's open connections, counted, and the accept loop's wait for room under
//! [`Config::max_connections`](crate::driver::Config::max_connections).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use super::metrics::Unrouted;
use super::waiters::Waiters;

/// The connections a server has open (HTTP connections, TLS handshakes, WebSockets), and
/// the bound its accept loop keeps them under.
///
/// An adapter's server counts each connection from accept to close with a
/// [`ConnectionGuard`] (a WebSocket takes its own before its HTTP connection lets go, so
/// an upgrade never opens a gap). Its accept loop accepts one connection, then waits for
/// [`room_for_accepted`](OpenConnections::room_for_accepted) before it counts and serves
/// it: at the bound, that asks the longest idle keep-alive connection (one that has served
/// a request and waits for the next, see [`idle`](OpenConnections::idle)) to close for
/// it, as nginx reuses its idle connections (with none idle, the next to go idle), and
/// resolves once a connection has ended; the connections after it wait in the kernel's
/// listen backlog meanwhile. (A loop that
/// waits for [`room`](OpenConnections::room) before each accept instead leaves them all
/// there and closes no idle connection.) Graceful shutdown waits for
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
    /// Idle keep-alive connections, and the accept loop's asks that one of them close.
    reuse: Mutex<Reuse>,
}

/// Idle keep-alive connections that may be asked to close for a connection the accept loop
/// holds (see [`OpenConnections::room_for_accepted`]).
#[derive(Debug, Default)]
struct Reuse {
    /// Their waits ([`Idle`]) by id, ids given in the order they began: the first is the
    /// longest idle. A map, so that a request arriving on one of many idle connections
    /// takes its wait out in logarithmic time.
    idle: BTreeMap<u64, Waker>,
    /// The next wait's id.
    next: u64,
    /// Waits asked to end that have not seen it yet.
    asked: Vec<u64>,
    /// Asks made while no connection was idle: the next wait to begin ends at once.
    wanted: usize,
    /// Counts the withdrawals: an ask made before the last one was taken back.
    withdrawals: u64,
}

impl Reuse {
    /// Asks the longest idle connection to close, or the next to go idle: the waker to
    /// wake once the lock is released.
    fn ask_one(&mut self) -> Option<Waker> {
        match self.idle.pop_first() {
            Some((id, waker)) => {
                self.asked.push(id);
                Some(waker)
            }
            None => {
                self.wanted += 1;
                None
            }
        }
    }

    /// Takes back every ask not seen yet: room came another way. Only a withdrawal that
    /// took one back counts: an ask answered already (its connection closing) stays answered.
    fn withdraw(&mut self) {
        if !self.asked.is_empty() || self.wanted > 0 {
            self.asked.clear();
            self.wanted = 0;
            self.withdrawals += 1;
        }
    }

    /// Takes `id`'s ask, if it has one it has not seen.
    fn take_ask(&mut self, id: u64) -> bool {
        let at = self.asked.iter().position(|&asked| asked == id);
        at.map(|at| self.asked.swap_remove(at)).is_some()
    }
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
            reuse: Mutex::default(),
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

    /// Whether there is a bound.
    pub fn is_bounded(&self) -> bool {
        self.max != usize::MAX
    }

    /// Whether one more connection fits under the bound.
    pub fn has_room(&self) -> bool {
        self.len() < self.max
    }

    /// Waits until one more connection fits under the bound: at once without one. For an
    /// accept loop that waits before it accepts; it closes no idle connection.
    pub fn room(&self) -> ConnectionRoom<'_> {
        ConnectionRoom {
            open: self,
            slot: None,
            logged: false,
            reclaim: Reclaim::Never,
        }
    }

    /// Waits until the connection the accept loop has just accepted (and holds, not yet
    /// counted) fits under the bound: at once below it. At the bound it asks the longest
    /// idle keep-alive connection to close (or, with none idle, the next one to go idle),
    /// once per wait, and resolves when any connection has ended. Room found another way
    /// first (a connection ending) withdraws the ask that has not reached its connection
    /// yet. Keep the one wait until it resolves: each new one asks again. (One ask per
    /// wait: while connections beyond the bound are open, a WebSocket handing over from
    /// its HTTP connection or `Handler::serve_connection`'s, the one that closed may not make room,
    /// and the wait goes on until another ends.)
    pub fn room_for_accepted(&self) -> ConnectionRoom<'_> {
        ConnectionRoom {
            reclaim: Reclaim::NotAsked,
            ..self.room()
        }
    }

    /// The wait of a connection that has served a request and is idle until the next:
    /// it resolves when the accept loop needs its place for a client it holds (see
    /// [`room_for_accepted`](OpenConnections::room_for_accepted)), and the connection then
    /// closes, as on its idle timeout. The longest idle is asked first: a connection keeps
    /// one wait for as long as it stays idle. A wait dropped unfinished (a request arrived)
    /// hands an ask it had not seen to the next idle connection; one that ends in
    /// [`Idle::closing`] (the connection closes anyway) does not.
    pub fn idle(&self) -> Idle<'_> {
        Idle {
            open: self,
            id: None,
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an idle connection closed for a new one, in the gauge's metrics.
    fn reclaimed(&self) {
        if let Some(gauge) = &self.gauge {
            gauge.connection_reclaimed();
        }
    }

    fn reuse(&self) -> std::sync::MutexGuard<'_, Reuse> {
        self.reuse.lock().unwrap_or_else(PoisonError::into_inner)
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
            if before == self.max {
                // Room now: no idle connection need close for the accept loop's client.
                self.reuse().withdraw();
            }
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

/// The future of [`OpenConnections::room`] and [`OpenConnections::room_for_accepted`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct ConnectionRoom<'a> {
    open: &'a OpenConnections,
    slot: Option<u64>,
    /// Whether this wait was logged.
    logged: bool,
    reclaim: Reclaim,
}

/// Whether a wait for room asks an idle connection to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reclaim {
    Never,
    NotAsked,
    /// Asked, after this many withdrawals: one after it took the ask back.
    Asked(u64),
}

impl ConnectionRoom<'_> {
    /// Withdraws this wait's ask, if it has not reached its connection (the one accept
    /// loop per counter makes every ask this wait's).
    fn withdraw(&mut self) {
        if let Reclaim::Asked(_) = self.reclaim {
            self.reclaim = Reclaim::NotAsked;
            self.open.reuse().withdraw();
        }
    }
}

impl Future for ConnectionRoom<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.open.has_room() {
            this.withdraw();
            return Poll::Ready(());
        }
        let mut waiting = this.open.waiting();
        waiting.register(&mut this.slot, cx);
        if this.open.has_room() {
            waiting.remove(this.slot.take());
            drop(waiting);
            this.withdraw();
            return Poll::Ready(());
        }
        drop(waiting);
        if this.reclaim != Reclaim::Never {
            let mut reuse = this.open.reuse();
            // Under the lock a connection ending takes to withdraw: room that came after
            // this look withdraws this ask, so no connection closes for nothing.
            if this.open.has_room() {
                if let Reclaim::Asked(_) = this.reclaim {
                    this.reclaim = Reclaim::NotAsked;
                    reuse.withdraw();
                }
                drop(reuse);
                this.open.waiting().remove(this.slot.take());
                return Poll::Ready(());
            }
            let asked = match this.reclaim {
                // Withdrawn since (room came, then went again before this poll): ask again.
                Reclaim::Asked(withdrawals) if withdrawals == reuse.withdrawals => None,
                _ => {
                    let waker = reuse.ask_one();
                    this.reclaim = Reclaim::Asked(reuse.withdrawals);
                    Some(waker)
                }
            };
            drop(reuse);
            if let Some(Some(waker)) = asked {
                waker.wake();
            }
        }
        if !this.logged {
            this.logged = true;
            let max = this.open.max;
            // Once as a warning, so that a bound set too low shows in the logs without a
            // flood of connections flooding them too.
            if this.open.warned.swap(true, Ordering::Relaxed) {
                tracing::debug!(max, "max_connections reached: not accepting");
            } else if this.reclaim == Reclaim::Never {
                tracing::warn!(
                    max,
                    "max_connections reached: new connections wait in the listen backlog \
                     until one ends (logged once per server; then at debug level)"
                );
            } else {
                tracing::warn!(
                    max,
                    "max_connections reached: an idle keep-alive connection is closed for \
                     each new one (with none idle, the next to go idle; logged once per \
                     server; then at debug level)"
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
        self.withdraw();
    }
}

/// The future of [`OpenConnections::idle`]: resolves when the connection is to close.
///
/// A connection keeps one wait for as long as it stays idle (its place in the order is
/// when it began), drops it when a request arrives, and hands it to
/// [`closing`](Idle::closing) when it closes for a reason of its own.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Idle<'a> {
    open: &'a OpenConnections,
    /// Its id once it has been polled, until it ends.
    id: Option<u64>,
}

impl Idle<'_> {
    /// The connection closes anyway (its client closed it, a timeout, an error): an ask
    /// it had not seen yet is answered by that, not handed to another idle connection.
    pub fn closing(mut self) {
        if let Some(id) = self.id.take() {
            let mut reuse = self.open.reuse();
            reuse.idle.remove(&id);
            reuse.take_ask(id);
        }
    }
}

impl Future for Idle<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut reuse = this.open.reuse();
        if let Some(id) = this.id {
            if reuse.take_ask(id) {
                this.id = None;
                this.open.reclaimed();
                return Poll::Ready(());
            }
            if let Some(waker) = reuse.idle.get_mut(&id) {
                if !waker.will_wake(cx.waker()) {
                    *waker = cx.waker().clone();
                }
                return Poll::Pending;
            }
        }
        if reuse.wanted > 0 {
            reuse.wanted -= 1;
            if let Some(id) = this.id.take() {
                reuse.idle.remove(&id);
            }
            this.open.reclaimed();
            return Poll::Ready(());
        }
        // First polled (in line from now), or withdrawn after an ask (back in its place:
        // ids are never given twice, and its own is out of the map).
        let id = this.id.unwrap_or_else(|| {
            reuse.next += 1;
            reuse.next
        });
        reuse.idle.insert(id, cx.waker().clone());
        this.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let mut reuse = self.open.reuse();
        reuse.idle.remove(&id);
        if !reuse.take_ask(id) {
            return;
        }
        // Asked, and busy again before it saw it: the next idle connection goes instead.
        let next = reuse.ask_one();
        drop(reuse);
        if let Some(waker) = next {
            waker.wake();
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
        assert!(text.contains(
            "# TYPE sockjs_connections_reclaimed_total counter\nsockjs_connections_reclaimed_total 0\n"
        ));
        // An idle connection closed for a new one is counted.
        let (_, waker) = flag();
        let mut idle = open.idle();
        assert!(poll_idle(&mut idle, &waker).is_pending());
        let mut room = open.room_for_accepted();
        assert!(poll(&mut room, &waker).is_pending());
        assert_eq!(
            unrouted.reclaimed_connections(),
            Some(0),
            "asked, not yet closed"
        );
        assert!(poll_idle(&mut idle, &waker).is_ready());
        assert_eq!(unrouted.reclaimed_connections(), Some(1));
        drop(room);
        drop(guards);
        assert_eq!(unrouted.open_connections(), Some(0));
        let mut text = String::new();
        Unrouted::default().write_prometheus(&mut text);
        assert!(
            !text.contains("sockjs_connections_open")
                && !text.contains("sockjs_connections_reclaimed_total"),
            "no server counts there"
        );
    }

    fn poll_idle(idle: &mut Idle<'_>, waker: &Waker) -> Poll<()> {
        Pin::new(idle).poll(&mut Context::from_waker(waker))
    }

    /// An idle connection's wait, polled once (pending): its wake flag, waker and wait.
    fn waiting_idle(open: &OpenConnections) -> (Arc<Flag>, Waker, Idle<'_>) {
        let (woken, waker) = flag();
        let mut idle = open.idle();
        assert!(poll_idle(&mut idle, &waker).is_pending());
        (woken, waker, idle)
    }

    #[test]
    fn at_the_bound_the_longest_idle_connection_is_asked_to_close() {
        let open = OpenConnections::new(Some(3));
        let guards: Vec<_> = (0..3).map(|_| open.enter()).collect();
        let (first_woken, first_waker, mut first) = waiting_idle(&open);
        let (second_woken, second_waker, mut second) = waiting_idle(&open);
        // Waiting before the accept closes nothing.
        let (_, waker) = flag();
        let mut room = open.room();
        assert!(poll(&mut room, &waker).is_pending());
        drop(room);
        assert!(!first_woken.0.load(Ordering::SeqCst));

        let (room_woken, room_waker) = flag();
        let mut room = open.room_for_accepted();
        assert!(poll(&mut room, &room_waker).is_pending());
        assert!(
            first_woken.0.load(Ordering::SeqCst),
            "the longest idle is asked"
        );
        assert!(!second_woken.0.load(Ordering::SeqCst), "one at a time");
        // Polled again (another branch of the accept loop woke it): no second ask.
        assert!(poll(&mut room, &room_waker).is_pending());
        assert!(poll_idle(&mut second, &second_waker).is_pending());
        assert!(poll_idle(&mut first, &first_waker).is_ready());
        drop(first);
        // The asked connection closes: room for the accepted one.
        let mut guards = guards;
        guards.pop();
        assert!(room_woken.0.load(Ordering::SeqCst));
        assert!(poll(&mut room, &room_waker).is_ready());
        drop(room);
        assert!(
            poll_idle(&mut second, &second_waker).is_pending(),
            "not asked"
        );
    }

    #[test]
    fn an_ask_with_none_idle_closes_the_next_to_go_idle() {
        let open = OpenConnections::new(Some(1));
        let _only = open.enter();
        let (_, waker) = flag();
        let mut room = open.room_for_accepted();
        assert!(poll(&mut room, &waker).is_pending());
        let mut idle = open.idle();
        assert!(poll_idle(&mut idle, &waker).is_ready());
        // Only one: the next idle connection stays.
        let mut later = open.idle();
        assert!(poll_idle(&mut later, &waker).is_pending());
    }

    #[test]
    fn an_asked_connection_that_got_a_request_hands_the_ask_on() {
        let open = OpenConnections::new(Some(2));
        let _guards = [open.enter(), open.enter()];
        let (first_woken, _, first) = waiting_idle(&open);
        let (second_woken, second_waker, mut second) = waiting_idle(&open);
        let (_, waker) = flag();
        let mut room = open.room_for_accepted();
        assert!(poll(&mut room, &waker).is_pending());
        assert!(first_woken.0.load(Ordering::SeqCst));
        // A request came first: its wait ends unfinished, the next idle one is asked.
        drop(first);
        assert!(second_woken.0.load(Ordering::SeqCst));
        assert!(poll_idle(&mut second, &second_waker).is_ready());
    }

    #[test]
    fn an_asked_connection_closing_anyway_is_the_room_asked_for() {
        let open = OpenConnections::new(Some(2));
        let mut guards = vec![open.enter(), open.enter()];
        let (first_woken, _, first) = waiting_idle(&open);
        let (second_woken, second_waker, mut second) = waiting_idle(&open);
        let (room_woken, room_waker) = flag();
        let mut room = open.room_for_accepted();
        assert!(poll(&mut room, &room_waker).is_pending());
        assert!(first_woken.0.load(Ordering::SeqCst));
        // Its client closed it at the same moment: it closes, and no other goes with it.
        first.closing();
        assert!(!second_woken.0.load(Ordering::SeqCst));
        guards.pop();
        assert!(room_woken.0.load(Ordering::SeqCst));
        assert!(poll(&mut room, &room_waker).is_ready());
        assert!(poll_idle(&mut second, &second_waker).is_pending());
    }

    #[test]
    fn a_wait_polled_again_keeps_its_place() {
        let open = OpenConnections::new(Some(1));
        let _only = open.enter();
        let (first_woken, first_waker, mut first) = waiting_idle(&open);
        let (second_woken, _, _second) = waiting_idle(&open);
        let (_, other_waker) = flag();
        assert!(poll_idle(&mut first, &other_waker).is_pending());
        assert!(poll_idle(&mut first, &first_waker).is_pending());
        let (_, waker) = flag();
        let mut room = open.room_for_accepted();
        assert!(poll(&mut room, &waker).is_pending());
        assert!(
            first_woken.0.load(Ordering::SeqCst),
            "still the longest idle"
        );
        assert!(!second_woken.0.load(Ordering::SeqCst));
    }

    #[test]
    fn room_from_a_connection_ending_withdraws_the_ask_before_the_loop_runs() {
        let open = OpenConnections::new(Some(1));
        let only = open.enter();
        let (_, waker) = flag();
        let mut room = open.room_for_accepted();
        assert!(poll(&mut room, &waker).is_pending());
        // None was idle: the next to go idle would close. A connection ends first.
        drop(only);
        let mut idle = open.idle();
        assert!(
            poll_idle(&mut idle, &waker).is_pending(),
            "room came: no connection closes for it"
        );
        assert!(poll(&mut room, &waker).is_ready());
    }

    #[test]
    fn a_wait_asks_again_when_room_came_and_went_before_it_looked() {
        let open = OpenConnections::new(Some(1));
        let first = open.enter();
        let (woken, idle_waker, mut idle) = waiting_idle(&open);
        let (other_woken, _, _other) = waiting_idle(&open);
        let (_, waker) = flag();
        let mut room = open.room_for_accepted();
        assert!(poll(&mut room, &waker).is_pending());
        assert!(woken.0.load(Ordering::SeqCst));
        // A connection ends (the ask is withdrawn), and another takes its place (a
        // `serve_connection` one, say) before the accept loop looks again.
        drop(first);
        let _second = open.enter();
        assert!(poll_idle(&mut idle, &idle_waker).is_pending(), "withdrawn");
        woken.0.store(false, Ordering::SeqCst);
        assert!(poll(&mut room, &waker).is_pending());
        assert!(
            woken.0.load(Ordering::SeqCst),
            "asked again, and the same connection: it kept its place"
        );
        assert!(!other_woken.0.load(Ordering::SeqCst));
        assert!(poll_idle(&mut idle, &idle_waker).is_ready());
    }

    #[test]
    fn an_answered_ask_is_not_made_again_when_the_count_climbs_back() {
        let open = OpenConnections::new(Some(2));
        let mut guards = vec![open.enter(), open.enter()];
        let (first_woken, first_waker, mut first) = waiting_idle(&open);
        let (second_woken, _, _second) = waiting_idle(&open);
        let (_, waker) = flag();
        let mut room = open.room_for_accepted();
        assert!(poll(&mut room, &waker).is_pending());
        assert!(first_woken.0.load(Ordering::SeqCst));
        // The asked connection sees its ask and closes...
        assert!(poll_idle(&mut first, &first_waker).is_ready());
        drop(first);
        guards.pop();
        // ... and a WebSocket takes its own place before its HTTP connection lets go.
        let websocket = open.enter();
        assert!(poll(&mut room, &waker).is_pending());
        assert!(
            !second_woken.0.load(Ordering::SeqCst),
            "one ask for one held client"
        );
        guards.pop();
        assert!(poll(&mut room, &waker).is_ready());
        drop(websocket);
    }

    #[test]
    fn room_found_otherwise_withdraws_the_ask() {
        let open = OpenConnections::new(Some(2));
        let first = open.enter();
        let _second = open.enter();
        let (woken, idle_waker, mut idle) = waiting_idle(&open);
        let (_, waker) = flag();
        let mut room = open.room_for_accepted();
        assert!(poll(&mut room, &waker).is_pending());
        assert!(woken.0.load(Ordering::SeqCst));
        // Another connection ended before the asked one saw its ask.
        drop(first);
        assert!(poll(&mut room, &waker).is_ready());
        assert!(poll_idle(&mut idle, &idle_waker).is_pending(), "withdrawn");
        // The same when the wait is dropped (the server stopping) instead.
        let _third = open.enter();
        let mut room = open.room_for_accepted();
        assert!(poll(&mut room, &waker).is_pending());
        drop(room);
        let mut next = open.idle();
        assert!(
            poll_idle(&mut next, &waker).is_pending(),
            "no ask left behind"
        );
        assert!(poll_idle(&mut idle, &idle_waker).is_pending());
        drop((idle, next));
        let reuse = open.reuse();
        assert!(reuse.idle.is_empty() && reuse.asked.is_empty() && reuse.wanted == 0);
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
