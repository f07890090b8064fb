//! The [`metrics`] facade (cargo feature `metrics`): snapshots handed to whatever recorder
//! the application installed.
//!
//! Why absolute values at snapshot time and not facade counters bumped per event: the
//! facade resolves a key and its labels to a handle through the recorder, which costs a
//! lookup (or a handle kept per label combination) on the hot path, and it would count
//! twice what the shards already count. Recording a snapshot costs nothing until it is
//! taken, and the totals are the same: counters are set with
//! [`Counter::absolute`](metrics::Counter::absolute), gauges with `set`.

use metrics::{Label, Unit};

use super::{FAMILIES, Kind, Metrics, Unrouted, unrouted};

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
        for family in FAMILIES {
            self.series(family, &mut |labels, value| {
                let labels: Vec<Label> =
                    std::iter::once(Label::new("service", self.service.clone()))
                        .chain(labels.iter().map(|&(k, v)| Label::new(k, v)))
                        .collect();
                match family.kind {
                    Kind::Gauge => metrics::gauge!(family.name, labels).set(value as f64),
                    Kind::Counter => metrics::counter!(family.name, labels).absolute(value),
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
        for (status, n) in self.counts() {
            metrics::counter!(unrouted::NAME, "status" => status).absolute(n);
        }
        if let Some(open) = self.open_connections() {
            metrics::gauge!(unrouted::CONNECTIONS).set(open as f64);
        }
        if let Some(reclaimed) = self.reclaimed_connections() {
            metrics::counter!(unrouted::RECLAIMED).absolute(reclaimed);
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
