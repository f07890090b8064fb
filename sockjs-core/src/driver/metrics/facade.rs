//! The [`metrics`] facade (cargo feature `metrics`): snapshots handed to whatever recorder
//! the application installed.
//!
//! Why snapshots at record time and not facade counters bumped per event: the facade
//! resolves a key and its labels to a handle through the recorder, which costs a lookup
//! (or a handle kept per label combination) on the hot path, and it would count twice what
//! the shards already count. Recording a snapshot costs nothing until it is taken, and the
//! totals are the same.
//!
//! Counters go to the recorder as absolute values: each series' total over every source
//! of it in the process (a service, an [`Unrouted`]), to which each source adds what it
//! counted since it last recorded. A recorder's absolute counter keeps the largest value
//! it was given (the `metrics` crate's atomic counters, and so its Prometheus exporter), so
//! a source's own total would not do: a service built again under the same prefix (a
//! reload) would leave its counters frozen at its predecessor's totals until it passed
//! them, and two sources of one series would show the larger count, not their sum. With
//! the process's totals, a reloaded service counts on from its predecessor's, two sources
//! add up, every series is set at every record, and a recorder installed late gets the
//! whole count at its first. Gauges are set: with two sources of one gauge, the last
//! recorded shows.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use metrics::{Label, Unit};

use super::{FAMILIES, Kind, Metrics, Unrouted, unrouted};

/// What one source (a service, an [`Unrouted`]) last added to the process's totals, by
/// series.
#[derive(Default)]
pub(crate) struct Recorded(Mutex<HashMap<String, u64>>);

impl Recorded {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every counter series' total over all the sources that recorded it in this process.
static TOTALS: LazyLock<Mutex<HashMap<String, u64>>> = LazyLock::new(Mutex::default);

/// Adds to the process's total for `series` what `value`, a source's own total, counts past
/// what that source added last, and sets `counter` to that total. A snapshot taken before
/// the one recorded last (two threads recording at once) adds nothing.
fn advance(last: &mut HashMap<String, u64>, series: String, value: u64, counter: metrics::Counter) {
    let recorded = last.entry(series.clone()).or_default();
    let more = value.saturating_sub(*recorded);
    *recorded = (*recorded).max(value);
    let mut totals = TOTALS.lock().unwrap_or_else(PoisonError::into_inner);
    let total = totals.entry(series).or_default();
    *total = total.saturating_add(more);
    counter.absolute(*total);
}

impl Metrics {
    /// Records this snapshot through the [`metrics`] facade, into the recorder the
    /// application installed (e.g. `metrics-exporter-prometheus`, an OpenTelemetry
    /// bridge): every series of the [module docs](super) with the same name and labels.
    /// Call it when the exporter is scraped or on a timer; between calls the recorder
    /// holds the last values. Families are described on the first call.
    ///
    /// ```
    /// # fn demo(service: &sockjs_core::driver::Service) {
    /// service.metrics().record();
    /// # }
    /// ```
    pub fn record(&self) {
        describe();
        let mut last = self.recorded.as_ref().map(|recorded| recorded.lock());
        for family in FAMILIES {
            self.series(family, &mut |pairs, value| {
                let labels: Vec<Label> =
                    std::iter::once(Label::new("service", self.service.clone()))
                        .chain(pairs.iter().map(|&(k, v)| Label::new(k, v)))
                        .collect();
                match family.kind {
                    Kind::Gauge => metrics::gauge!(family.name, labels).set(value as f64),
                    Kind::Counter => {
                        let counter = metrics::counter!(family.name, labels);
                        match last.as_mut() {
                            Some(last) => {
                                // The series: its name and every label, the service's too.
                                let series = format!("{}{}{pairs:?}", family.name, self.service);
                                advance(last, series, value, counter)
                            }
                            // A snapshot of no service (built by hand): as it stands.
                            None => counter.absolute(value),
                        }
                    }
                }
            });
        }
    }
}

impl Unrouted {
    /// Records these counts through the [`metrics`] facade as
    /// `sockjs_unrouted_requests_total{status}` (and `sockjs_connections_open` where a
    /// server counts here), as [`Metrics::record`] does a service's.
    pub fn record(&self) {
        describe();
        let mut last = self.recorded.lock();
        for (status, n) in self.counts() {
            let counter = metrics::counter!(unrouted::NAME, "status" => status);
            advance(&mut last, format!("{}{status}", unrouted::NAME), n, counter);
        }
        if let Some(open) = self.open_connections() {
            metrics::gauge!(unrouted::CONNECTIONS).set(open as f64);
        }
        if let Some(reclaimed) = self.reclaimed_connections() {
            let counter = metrics::counter!(unrouted::RECLAIMED);
            advance(
                &mut last,
                unrouted::RECLAIMED.to_owned(),
                reclaimed,
                counter,
            );
        }
    }
}

/// Every family's help text and unit, once per process.
fn describe() {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| {
        for family in FAMILIES {
            describe_family(family.name, family.kind, family.help);
        }
        describe_family(unrouted::NAME, Kind::Counter, unrouted::HELP);
        describe_family(
            unrouted::CONNECTIONS,
            Kind::Gauge,
            unrouted::CONNECTIONS_HELP,
        );
        describe_family(unrouted::RECLAIMED, Kind::Counter, unrouted::RECLAIMED_HELP);
    });
}

fn describe_family(name: &'static str, kind: Kind, help: &'static str) {
    let unit = if name.ends_with("bytes_total") {
        Unit::Bytes
    } else {
        Unit::Count
    };
    match kind {
        Kind::Gauge => metrics::describe_gauge!(name, unit, help),
        Kind::Counter => metrics::describe_counter!(name, unit, help),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder,
        SharedString,
    };

    use super::*;
    use crate::Transport;
    use crate::driver::metrics::Counters;

    /// Remembers the last value of every series.
    #[derive(Default, Clone)]
    struct Last(Arc<Mutex<HashMap<String, f64>>>);

    struct Cell(String, Last);

    impl CounterFn for Cell {
        fn increment(&self, value: u64) {
            let mut map = self.1.0.lock().unwrap_or_else(|e| e.into_inner());
            *map.entry(self.0.clone()).or_default() += value as f64;
        }
        fn absolute(&self, value: u64) {
            let mut map = self.1.0.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(self.0.clone(), value as f64);
        }
    }

    impl GaugeFn for Cell {
        fn increment(&self, value: f64) {
            let mut map = self.1.0.lock().unwrap_or_else(|e| e.into_inner());
            *map.entry(self.0.clone()).or_default() += value;
        }
        fn decrement(&self, value: f64) {
            GaugeFn::increment(self, -value);
        }
        fn set(&self, value: f64) {
            let mut map = self.1.0.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(self.0.clone(), value);
        }
    }

    fn name(key: &Key) -> String {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Last {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Cell(name(key), self.clone())))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(Arc::new(Cell(name(key), self.clone())))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    /// Counters as the `metrics` crate's own atomic ones (its Prometheus exporter's): an
    /// absolute value only ever raises them.
    #[derive(Default, Clone)]
    struct Atomic(Arc<Mutex<HashMap<String, Arc<std::sync::atomic::AtomicU64>>>>);

    impl Atomic {
        fn get(&self, series: &str) -> u64 {
            let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.get(series)
                .map_or(0, |c| c.load(std::sync::atomic::Ordering::Acquire))
        }
    }

    impl Recorder for Atomic {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            Counter::from_arc(map.entry(name(key)).or_default().clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    /// A service built again under the same prefix (a reload) continues its counters
    /// from its predecessor's totals, and two sources of one series add up: with absolute
    /// values, the exporter's counters kept the larger total (a reloaded service's
    /// counters stood still until they passed the old ones; two servers' unrouted
    /// answers showed one server's). A recorder installed late is given the whole count.
    #[test]
    fn counters_of_successive_or_parallel_sources_add_up() {
        let sent = |n| Counters {
            messages_sent: n,
            ..Counters::default()
        };
        let recorder = Atomic::default();
        let series = "sockjs_messages_sent_total{service=/reloaded}";
        let second = Arc::new(Recorded::default());
        metrics::with_local_recorder(&recorder, || {
            let first = Arc::new(Recorded::default());
            Metrics::new("/reloaded", sent(10))
                .recorded_by(first.clone())
                .record();
            Metrics::new("/reloaded", sent(10))
                .recorded_by(first)
                .record();
            assert_eq!(recorder.get(series), 10, "recorded twice, counted once");

            // The service built again: its own count starts from zero.
            Metrics::new("/reloaded", sent(3))
                .recorded_by(second.clone())
                .record();
            assert_eq!(recorder.get(series), 13);
            Metrics::new("/reloaded", sent(5))
                .recorded_by(second.clone())
                .record();
            assert_eq!(recorder.get(series), 15);
            // A snapshot taken before the last one recorded adds nothing.
            Metrics::new("/reloaded", sent(4))
                .recorded_by(second.clone())
                .record();
            assert_eq!(recorder.get(series), 15);

            // (A status no other test records: the totals are the process's.)
            let (one, two) = (Unrouted::default(), Unrouted::default());
            one.count(http::StatusCode::URI_TOO_LONG);
            two.count(http::StatusCode::URI_TOO_LONG);
            two.count(http::StatusCode::URI_TOO_LONG);
            one.record();
            two.record();
            one.record();
            assert_eq!(
                recorder.get("sockjs_unrouted_requests_total{status=414}"),
                3
            );
        });
        // A recorder installed late gets the whole count at its first record.
        let late = Atomic::default();
        metrics::with_local_recorder(&late, || {
            Metrics::new("/reloaded", sent(5))
                .recorded_by(second)
                .record();
        });
        assert_eq!(late.get(series), 15);
    }

    /// Two services under different prefixes are two series: each counts its own.
    #[test]
    fn services_of_different_prefixes_count_apart() {
        let sent = |n| Counters {
            messages_sent: n,
            ..Counters::default()
        };
        let recorder = Atomic::default();
        metrics::with_local_recorder(&recorder, || {
            for (prefix, n) in [("/apart-a", 10), ("/apart-b", 7)] {
                Metrics::new(prefix, sent(n))
                    .recorded_by(Arc::new(Recorded::default()))
                    .record();
            }
        });
        assert_eq!(
            recorder.get("sockjs_messages_sent_total{service=/apart-a}"),
            10
        );
        assert_eq!(
            recorder.get("sockjs_messages_sent_total{service=/apart-b}"),
            7
        );
    }

    #[test]
    fn records_absolute_values_with_the_prometheus_names_and_labels() {
        let mut c = Counters::default();
        c.opened(Transport::WebSocket);
        c.answered(crate::driver::metrics::Endpoint::XhrSend, 413);
        c.messages_sent = 7;
        let snapshot = Metrics::new("/echo", c);
        let last = Last::default();
        metrics::with_local_recorder(&last, || {
            snapshot.record();
            // Absolute, not added: recording twice leaves the totals as they are.
            snapshot.record();
            let unrouted = Unrouted::default();
            unrouted.count(http::StatusCode::NOT_FOUND);
            unrouted.record();
        });
        let map = last.0.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(
            map["sockjs_sessions_open{service=/echo,transport=websocket}"],
            1.0
        );
        assert_eq!(map["sockjs_messages_sent_total{service=/echo}"], 7.0);
        assert_eq!(map["sockjs_unrouted_requests_total{status=404}"], 1.0);
        assert_eq!(
            map["sockjs_requests_total{service=/echo,endpoint=xhr_send,status=413}"],
            1.0
        );
    }
}
