//! Answers that belong to no service: what an adapter writes before a request reaches one.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::counters::{STATUS_SLOTS, status_label, status_slot};

/// The family of [`Unrouted`], and its help text.
pub(crate) const NAME: &str = "sockjs_unrouted_requests_total";
pub(crate) const HELP: &str = "Answers to requests that reached no service, by status.";
/// The gauge of open connections, and its help text.
pub(crate) const CONNECTIONS: &str = "sockjs_connections_open";
pub(crate) const CONNECTIONS_HELP: &str =
    "Connections open on the server: HTTP connections, TLS handshakes and WebSockets.";
/// The count of idle connections closed for new ones, and its help text.
pub(crate) const RECLAIMED: &str = "sockjs_connections_reclaimed_total";
pub(crate) const RECLAIMED_HELP: &str =
    "Idle keep-alive connections closed at max_connections to make room for a new one.";

/// Counts the answers an adapter writes to requests that reach no service, by status: a
/// head too large (431), a request target too long (414) or a head malformed (400), a body
/// too large (413), malformed (400) or too slow (408) on a request outside every service,
/// a path outside every prefix (404). (The connection's answer to a request for a service
/// whose body it could not read counts as that service's.) One per server, shared by its connections: relaxed atomic adds. A
/// standalone server also counts its open connections here (see
/// [`open_connections`](Unrouted::open_connections)).
///
/// Rendered as `sockjs_unrouted_requests_total{status="…"}`, the gauge
/// `sockjs_connections_open` and the counter `sockjs_connections_reclaimed_total`, without
/// a `service` label.
///
/// ```
/// use sockjs_core::driver::metrics::Unrouted;
/// let unrouted = Unrouted::default();
/// unrouted.count(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
/// assert_eq!(unrouted.answered(431), 1);
/// let mut text = String::new();
/// unrouted.write_prometheus(&mut text);
/// assert!(text.ends_with("sockjs_unrouted_requests_total{status=\"431\"} 1\n"));
/// ```
#[derive(Default)]
#[repr(align(128))]
pub struct Unrouted {
    answers: [AtomicU64; STATUS_SLOTS],
    /// Connections open on the servers that count here
    /// ([`OpenConnections::reporting_to`](crate::driver::OpenConnections::reporting_to)).
    connections: AtomicUsize,
    /// Whether a server counts its connections here.
    counting: AtomicBool,
    /// Idle keep-alive connections closed at the bound for a new one.
    reclaimed: AtomicU64,
    /// What [`record`](Unrouted::record) added to the process's totals last.
    #[cfg(feature = "metrics")]
    pub(super) recorded: super::Recorded,
}

impl Unrouted {
    /// Counts one answer with `status`.
    pub fn count(&self, status: http::StatusCode) {
        self.answers[status_slot(status.as_u16())].fetch_add(1, Ordering::Relaxed);
    }

    /// Answers counted with `status` (statuses outside the table of the module docs count
    /// together, under any of them).
    pub fn answered(&self, status: u16) -> u64 {
        self.answers[status_slot(status)].load(Ordering::Relaxed)
    }

    /// Connections open on the standalone servers that count here, as the gauge
    /// `sockjs_connections_open` (HTTP connections, TLS handshakes and WebSockets); `None`
    /// where no server counts here (a service under axum: the connections are axum's).
    pub fn open_connections(&self) -> Option<usize> {
        self.counting
            .load(Ordering::Relaxed)
            .then(|| self.connections.load(Ordering::Relaxed))
    }

    /// Idle keep-alive connections the standalone servers that count here closed at their
    /// [`Config::max_connections`](crate::driver::Config::max_connections) to make room for
    /// a new connection, as the counter `sockjs_connections_reclaimed_total`; `None` where
    /// no server counts here.
    pub fn reclaimed_connections(&self) -> Option<u64> {
        self.counting
            .load(Ordering::Relaxed)
            .then(|| self.reclaimed.load(Ordering::Relaxed))
    }

    pub(crate) fn connection_reclaimed(&self) {
        self.reclaimed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn start_counting(&self) {
        self.counting.store(true, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// The non-zero counts, by status label (`"431"`, ..., `"other"`).
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.answers.iter().enumerate().filter_map(|(slot, n)| {
            let n = n.load(Ordering::Relaxed);
            (n > 0).then(|| (status_label(slot), n))
        })
    }

    /// Appends `sockjs_connections_open` and `sockjs_connections_reclaimed_total` (where a
    /// server counts here) and `sockjs_unrouted_requests_total` (its `# HELP`, `# TYPE`
    /// and non-zero series) to
    /// `out`, in the Prometheus text format; next to
    /// [`write_prometheus`](super::write_prometheus)'s output. Write one `Unrouted` per
    /// text: two would repeat their families.
    pub fn write_prometheus(&self, out: &mut String) {
        if let Some(open) = self.open_connections() {
            let _ = write!(
                out,
                "# HELP {CONNECTIONS} {CONNECTIONS_HELP}\n# TYPE {CONNECTIONS} gauge\n{CONNECTIONS} {open}\n"
            );
        }
        if let Some(reclaimed) = self.reclaimed_connections() {
            let _ = write!(
                out,
                "# HELP {RECLAIMED} {RECLAIMED_HELP}\n# TYPE {RECLAIMED} counter\n{RECLAIMED} {reclaimed}\n"
            );
        }
        let _ = write!(out, "# HELP {NAME} {HELP}\n# TYPE {NAME} counter\n");
        for (status, n) in self.counts() {
            let _ = writeln!(out, "{NAME}{{status=\"{status}\"}} {n}");
        }
    }
}

impl fmt::Debug for Unrouted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.counts()).finish()
    }
}
