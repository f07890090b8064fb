//! The Prometheus text exposition format (version 0.0.4) of [`Metrics`] snapshots.

use std::fmt::Write as _;

use super::{FAMILIES, Kind, Metrics};

/// Appends `services`' series to `out` in the Prometheus text format: one `# HELP` and
/// `# TYPE` per family, then that family's series of every service, told apart by their
/// `service` label. Serve it as `text/plain; version=0.0.4`.
///
/// ```
/// use sockjs_core::driver::metrics::write_prometheus;
/// let mut out = String::new();
/// write_prometheus(&mut out, &[]);
/// assert!(out.contains("# TYPE sockjs_sessions_open gauge\n"));
/// ```
pub fn write_prometheus(out: &mut String, services: &[Metrics]) {
    for family in FAMILIES {
        let kind = match family.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let name = family.name;
        let _ = write!(out, "# HELP {name} {}\n# TYPE {name} {kind}\n", family.help);
        for m in services {
            m.series(family, &mut |labels, value| {
                series(out, name, m, labels, value)
            });
        }
    }
}

/// One line: `name{service="…",labels…} value`.
fn series(out: &mut String, name: &str, m: &Metrics, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    out.push_str("{service=\"");
    escape(out, &m.service);
    out.push('"');
    for (label, value) in labels {
        let _ = write!(out, ",{label}=\"");
        escape(out, value);
        out.push('"');
    }
    let _ = writeln!(out, "}} {value}");
}

/// A label value's escapes: backslash, double quote, line feed.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::metrics::{Counters, Endpoint};
    use crate::{CloseReason, Transport};

    fn sample(service: &str) -> Metrics {
        let mut c = Counters::default();
        c.opened(Transport::WebSocket);
        c.opened(Transport::WebSocket);
        c.opened(Transport::XhrStreaming);
        c.ended(Transport::WebSocket, &CloseReason::MessageTooBig);
        c.answered(Endpoint::XhrSend, 413);
        c.answered(Endpoint::Other, 404);
        c.answered(Endpoint::Info, 418);
        c.messages_received = 3;
        c.queue_full = 1;
        Metrics::new(service, c)
    }

    /// A sample line: name, labels, value.
    type Sample = (String, Vec<(String, String)>, u64);

    /// Every line is a comment or `name{labels} value` with well-formed labels.
    fn parse(text: &str) -> Vec<Sample> {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (head, value) = line.rsplit_once(' ').expect("a value");
            let value: u64 = value.parse().expect("an integer");
            let (name, rest) = head.split_once('{').expect("labels");
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            let mut rest = rest.strip_suffix('}').expect("closing brace");
            let mut labels = Vec::new();
            while !rest.is_empty() {
                let (label, after) = rest.split_once("=\"").expect("label=\"");
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next().expect("closing quote") {
                        (_, '\\') => value.push(chars.next().expect("escaped").1),
                        (i, '"') => break i,
                        (_, c) => value.push(c),
                    }
                };
                labels.push((label.to_owned(), value));
                rest = after[end + 1..]
                    .strip_prefix(',')
                    .unwrap_or(&after[end + 1..]);
            }
            samples.push((name.to_owned(), labels, value));
        }
        samples
    }

    fn find(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        samples.iter().find_map(|(n, l, v)| {
            let all = labels
                .iter()
                .all(|(k, want)| l.iter().any(|(lk, lv)| lk == k && lv == want));
            (n == name && all).then_some(*v)
        })
    }

    #[test]
    fn renders_parseable_series_with_help_and_type_once_per_family() {
        let text = sample("/echo").prometheus_text();
        let samples = parse(&text);
        let open = [("service", "/echo"), ("transport", "websocket")];
        assert_eq!(find(&samples, "sockjs_sessions_open", &open), Some(1));
        let streaming = [("service", "/echo"), ("transport", "xhr-streaming")];
        assert_eq!(find(&samples, "sockjs_sessions_open", &streaming), Some(1));
        let closed = [("reason", "message_too_big"), ("code", "1009")];
        assert_eq!(
            find(&samples, "sockjs_sessions_closed_total", &closed),
            Some(1)
        );
        let too_large = [("endpoint", "xhr_send"), ("status", "413")];
        assert_eq!(find(&samples, "sockjs_requests_total", &too_large), Some(1));
        let other = [("endpoint", "info"), ("status", "other")];
        assert_eq!(find(&samples, "sockjs_requests_total", &other), Some(1));
        assert_eq!(
            find(&samples, "sockjs_messages_received_total", &[]),
            Some(3)
        );
        assert_eq!(find(&samples, "sockjs_queue_full_total", &[]), Some(1));
        // Zero cells of the label matrices are left out.
        let absent = [("endpoint", "jsonp")];
        assert_eq!(find(&samples, "sockjs_requests_total", &absent), None);
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            assert!(
                line.ends_with(" counter") || line.ends_with(" gauge"),
                "{line}"
            );
        }
    }

    #[test]
    fn several_services_share_each_family_header() {
        let mut out = String::new();
        write_prometheus(&mut out, &[sample("/a"), sample("/b\"\\")]);
        let samples = parse(&out);
        let types: Vec<_> = out.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        let mut unique = types.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(types.len(), unique.len(), "one TYPE per family");
        assert_eq!(types.len(), 15);
        for service in ["/a", "/b\"\\"] {
            let labels = [("service", service), ("transport", "websocket")];
            assert_eq!(
                find(&samples, "sockjs_sessions_opened_total", &labels),
                Some(2)
            );
        }
        // A family's series follow its header, never another family's.
        let mut current = "";
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap_or("");
            } else if !line.starts_with('#') {
                assert!(line.starts_with(current), "{line} outside {current}");
            }
        }
    }

    #[test]
    fn debug_shows_the_non_zero_series() {
        let debug = format!("{:?}", sample("/echo"));
        assert!(debug.starts_with("{\"service\": \"/echo\""), "{debug}");
        assert!(debug.contains("sockjs_queue_full_total[]: 1"), "{debug}");
        assert!(!debug.contains("sockjs_aborts_total"), "{debug}");
    }
}
