//! Metrics of a [`Service`](crate::driver::Service): [`Service::metrics`] takes a
//! [`Metrics`] snapshot, [`write_prometheus`] renders snapshots in the Prometheus text
//! format, and with the cargo feature `metrics`, `Metrics::record` hands them to the
//! [`metrics`](https://docs.rs/metrics) facade, for the exporters an application already
//! uses (Prometheus, OpenTelemetry): at snapshot time (each counter set to the process's
//! total for its series, so that a service built again under the same prefix counts on
//! from its predecessor's), so the facade costs nothing between snapshots either.
//!
//! [`Service::metrics`]: crate::driver::Service::metrics
//!
//! # Cost
//!
//! Counting is always on and costs what an add costs: each shard keeps plain counters in
//! the state its mutex guards, bumped by the input that holds the lock anyway; what happens
//! outside the lock (bytes a WebSocket pump reads and writes, answers an adapter writes
//! itself) goes to relaxed atomics on cache lines of the shard's own. Every label is an
//! index into a fixed table: no allocation, hashing or formatting per event, and no
//! cardinality a client controls. Nothing else runs for them (no task, no timer), and
//! nothing is allocated until a snapshot is taken: a snapshot locks each shard once,
//! briefly, and sums. Without the `metrics` feature the facade is not compiled in.
//!
//! # Series
//!
//! Every series but `sockjs_unrouted_requests_total`, `sockjs_connections_open` and
//! `sockjs_connections_reclaimed_total` carries `service`, the service's prefix
//! (sockjs-tokio's `Routes::metrics`: its mount prefix). Counters are totals since
//! the service (or server) started; series of the label-matrix families (`sockjs_requests_total`,
//! `sockjs_sessions_closed_total`) are written once non-zero.
//!
//! | Series | Type | Labels | What |
//! |---|---|---|---|
//! | `sockjs_sessions_open` | gauge | `transport` | Sessions open or closing now, by the transport that opened them |
//! | `sockjs_sessions_opened_total` | counter | `transport` | Sessions opened |
//! | `sockjs_sessions_closed_total` | counter | `reason`, `code` | Sessions ended: `reason` is `closed` (by the application or the driver, e.g. shutdown or inbound overflow), `timeout`, `client_closed`, `aborted`, `broken_framing`, `message_too_big`, `unsupported_data`, `peer_unresponsive`, `message_timeout`; `code` the close code (`other` outside a fixed table, `none` without one) |
//! | `sockjs_messages_received_total` | counter | | Messages clients sent |
//! | `sockjs_message_received_bytes_total` | counter | | Their bytes (UTF-8 text) |
//! | `sockjs_messages_sent_total` | counter | | Messages the application queued (`send`, `try_send`, broadcast) |
//! | `sockjs_message_sent_bytes_total` | counter | | Their bytes (UTF-8 text) |
//! | `sockjs_received_bytes_total` | counter | | Bytes received: request bodies and WebSocket frames |
//! | `sockjs_sent_bytes_total` | counter | | Bytes sent: response bodies and chunks (not heads) and WebSocket frames. WebSocket frames count as written; HTTP bodies and chunks as their connection takes them into its queue ([`Config::max_connection_queue_bytes`](crate::driver::Config::max_connection_queue_bytes)), so what is still queued when the connection is cut (its client gone, or past a bound) is counted though never written |
//! | `sockjs_requests_total` | counter | `endpoint`, `status` | Requests answered, by endpoint (`greeting`, `info`, `iframe`, `xhr`, `xhr_send`, `xhr_streaming`, `eventsource`, `htmlfile`, `jsonp`, `jsonp_send`, `websocket`, `raw_websocket`, `other`) and status (`other` outside a fixed table): 404, 405, 413, 503 (too many sessions, shutting down) included. A WebSocket counts as `101` once upgraded, also one refused right after its handshake (admission, shutdown), which then gets a close (one past the session limit is refused before it, `503`); `sockjs_sessions_opened_total` counts those that opened |
//! | `sockjs_connection_queue_overflows_total` | counter | | Connections dropped because the client did not read ([`Config::max_connection_queue`](crate::driver::Config::max_connection_queue)) |
//! | `sockjs_queue_full_total` | counter | | `SendError::QueueFull` returned to the application |
//! | `sockjs_inbound_overflow_closes_total` | counter | | Sessions closed with [`INBOUND_OVERFLOW_CODE`](crate::driver::INBOUND_OVERFLOW_CODE) 1013: the application did not take its messages |
//! | `sockjs_aborts_total` | counter | | Requests whose client went away before they ended (PROTOCOL.md §7.1.6) |
//! | `sockjs_heartbeats_total` | counter | | Heartbeats sent (`h` frames, and raw WebSocket pings) |
//! | `sockjs_unrouted_requests_total` | counter | `status` (no `service`) | Answers the adapter wrote to requests that reached no service ([`Unrouted`]): a head too large (431), a request target too long (414) or a head malformed (400), a body too large (413), malformed (400) or too slow (408) on a request outside every service, a path outside every prefix (404); the answer to a request for a service whose body could not be read counts in that service's `sockjs_requests_total` |
//! | `sockjs_connections_open` | gauge | (no `service`) | Connections open on the adapter's standalone servers that count in this [`Unrouted`] ([`Unrouted::open_connections`]): HTTP connections, TLS handshakes and WebSockets, summed over the servers that share it (each server's [`Config::max_connections`](crate::driver::Config::max_connections) bounds its own); also the connections handed to either adapter's `Handler::serve_connection`; absent under axum and for sockjs-tokio's free `serve_connection` |
//! | `sockjs_connections_reclaimed_total` | counter | (no `service`) | Idle keep-alive connections those servers closed at their [`Config::max_connections`](crate::driver::Config::max_connections) to make room for a new connection ([`Unrouted::reclaimed_connections`]); present where `sockjs_connections_open` is |
//!
//! A 1009 close is `sockjs_sessions_closed_total{reason="message_too_big",code="1009"}`;
//! a client's close handshake is `reason="client_closed",code="none"` (the engine does not
//! report the client's code).
//! Answers written by a server the application runs a service in (hyper's own 400 or 431
//! under axum or plain hyper, and whatever a router answers) reach neither.

mod counters;
#[cfg(feature = "metrics")]
mod facade;
#[cfg(feature = "metrics")]
pub(crate) use facade::Recorded;
mod prometheus;
mod unrouted;

pub(crate) use counters::{Counters, Outside};
pub use prometheus::write_prometheus;
pub use unrouted::Unrouted;

use std::fmt;

use crate::Transport;
use crate::route::{Route, SessionEndpoint};

use counters::{CLOSES, STATUS_SLOTS, status_label};

/// A SockJS endpoint (PROTOCOL.md §2), the `endpoint` label of `sockjs_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `P` or `P/`: the greeting.
    Greeting,
    /// `P/info`.
    Info,
    /// `P/iframe*.html`.
    Iframe,
    /// `P/S/I/xhr`.
    Xhr,
    /// `P/S/I/xhr_send`.
    XhrSend,
    /// `P/S/I/xhr_streaming`.
    XhrStreaming,
    /// `P/S/I/eventsource`.
    EventSource,
    /// `P/S/I/htmlfile`.
    HtmlFile,
    /// `P/S/I/jsonp`.
    Jsonp,
    /// `P/S/I/jsonp_send`.
    JsonpSend,
    /// `P/S/I/websocket`.
    WebSocket,
    /// `P/websocket`: raw WebSocket.
    RawWebSocket,
    /// Anything else (answered 404).
    Other,
}

impl Endpoint {
    /// Every endpoint, in declaration order.
    pub const ALL: [Endpoint; 13] = [
        Endpoint::Greeting,
        Endpoint::Info,
        Endpoint::Iframe,
        Endpoint::Xhr,
        Endpoint::XhrSend,
        Endpoint::XhrStreaming,
        Endpoint::EventSource,
        Endpoint::HtmlFile,
        Endpoint::Jsonp,
        Endpoint::JsonpSend,
        Endpoint::WebSocket,
        Endpoint::RawWebSocket,
        Endpoint::Other,
    ];

    /// Its label.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Greeting => "greeting",
            Endpoint::Info => "info",
            Endpoint::Iframe => "iframe",
            Endpoint::Xhr => "xhr",
            Endpoint::XhrSend => "xhr_send",
            Endpoint::XhrStreaming => "xhr_streaming",
            Endpoint::EventSource => "eventsource",
            Endpoint::HtmlFile => "htmlfile",
            Endpoint::Jsonp => "jsonp",
            Endpoint::JsonpSend => "jsonp_send",
            Endpoint::WebSocket => "websocket",
            Endpoint::RawWebSocket => "raw_websocket",
            Endpoint::Other => "other",
        }
    }

    /// The endpoint a request path names in a service at `prefix`, routed as the engine
    /// routes it (PROTOCOL.md §2).
    ///
    /// ```
    /// use sockjs_core::driver::metrics::Endpoint;
    /// assert_eq!(Endpoint::of_path("/echo/000/abc/xhr_send", "/echo"), Endpoint::XhrSend);
    /// assert_eq!(Endpoint::of_path("/echo/info", "/echo"), Endpoint::Info);
    /// assert_eq!(Endpoint::of_path("/echo/nope", "/echo"), Endpoint::Other);
    /// ```
    pub fn of_path(path: &str, prefix: &str) -> Endpoint {
        Endpoint::of_route(Route::in_service(path, prefix))
    }

    /// The endpoint of a request routed already.
    pub(crate) fn of_route(route: Option<Route<'_>>) -> Endpoint {
        match route {
            Some(Route::Greeting) => Endpoint::Greeting,
            Some(Route::Info) => Endpoint::Info,
            Some(Route::Iframe) => Endpoint::Iframe,
            Some(Route::RawWebSocket) => Endpoint::RawWebSocket,
            Some(Route::Session { kind, .. }) => match kind {
                SessionEndpoint::WebSocket => Endpoint::WebSocket,
                SessionEndpoint::Xhr => Endpoint::Xhr,
                SessionEndpoint::XhrStreaming => Endpoint::XhrStreaming,
                SessionEndpoint::XhrSend => Endpoint::XhrSend,
                SessionEndpoint::EventSource => Endpoint::EventSource,
                SessionEndpoint::HtmlFile => Endpoint::HtmlFile,
                SessionEndpoint::Jsonp => Endpoint::Jsonp,
                SessionEndpoint::JsonpSend => Endpoint::JsonpSend,
            },
            None => Endpoint::Other,
        }
    }
}

/// A snapshot of one service's counters, from
/// [`Service::metrics`](crate::driver::Service::metrics). Counters are totals since the
/// service started; see the [module docs](self) for the series they become.
#[derive(Clone)]
#[non_exhaustive]
pub struct Metrics {
    /// The service's prefix: the `service` label.
    pub service: String,
    /// Messages clients sent.
    pub messages_received: u64,
    /// Bytes of the messages clients sent (UTF-8 text).
    pub message_bytes_received: u64,
    /// Messages the application queued.
    pub messages_sent: u64,
    /// Bytes of the messages the application queued (UTF-8 text).
    pub message_bytes_sent: u64,
    /// Bytes received: request bodies and WebSocket frames.
    pub bytes_received: u64,
    /// Bytes sent: response bodies and chunks (heads excluded) and WebSocket frames.
    pub bytes_sent: u64,
    /// Connections dropped because their queue overflowed (the client did not read).
    pub connection_queue_overflows: u64,
    /// `SendError::QueueFull` returned to the application.
    pub queue_full: u64,
    /// Sessions closed with 1013 because the application did not take its messages.
    pub inbound_overflow_closes: u64,
    /// Requests whose client went away before they ended.
    pub aborts: u64,
    /// Heartbeats sent: `h` frames, and raw WebSocket pings.
    pub heartbeats: u64,
    opened: [u64; counters::TRANSPORTS],
    ended: [u64; counters::TRANSPORTS],
    closes: [u64; CLOSES.len()],
    requests: counters::Requests,
    /// What the service's snapshots added to the process's totals last.
    #[cfg(feature = "metrics")]
    recorded: Option<std::sync::Arc<facade::Recorded>>,
}

impl fmt::Debug for Metrics {
    /// The service and its non-zero series, named as in the Prometheus text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        map.entry(&"service", &self.service);
        for family in FAMILIES {
            self.series(family, &mut |labels, value| {
                if value > 0 {
                    map.entry(&format_args!("{}{labels:?}", family.name), &value);
                }
            });
        }
        map.finish()
    }
}

impl Metrics {
    pub(crate) fn new(service: &str, c: Counters) -> Metrics {
        Metrics {
            service: service.to_owned(),
            messages_received: c.messages_received,
            message_bytes_received: c.message_bytes_received,
            messages_sent: c.messages_sent,
            message_bytes_sent: c.message_bytes_sent,
            bytes_received: c.wire_received,
            bytes_sent: c.wire_sent,
            connection_queue_overflows: c.connection_overflows,
            queue_full: c.queue_full,
            inbound_overflow_closes: c.inbound_overflows,
            aborts: c.aborts,
            heartbeats: c.heartbeats,
            opened: c.opened,
            ended: c.ended,
            closes: c.closes,
            requests: c.requests,
            #[cfg(feature = "metrics")]
            recorded: None,
        }
    }

    /// This snapshot as the service's, whose earlier snapshots added `recorded` to the
    /// process's totals.
    #[cfg(feature = "metrics")]
    pub(crate) fn recorded_by(mut self, recorded: std::sync::Arc<facade::Recorded>) -> Metrics {
        self.recorded = Some(recorded);
        self
    }

    /// Sessions of this transport open (or closing) now.
    pub fn sessions_open(&self, transport: Transport) -> u64 {
        let i = transport as usize;
        self.opened[i].saturating_sub(self.ended[i])
    }

    /// Sessions of this transport opened so far.
    pub fn sessions_opened(&self, transport: Transport) -> u64 {
        self.opened[transport as usize]
    }

    /// Sessions ended, by `(reason, code, count)` labels (see the [module docs](self)),
    /// only the non-zero ones.
    pub fn sessions_closed(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> {
        CLOSES
            .iter()
            .zip(self.closes)
            .filter(|(_, n)| *n > 0)
            .map(|(&(reason, code), n)| (reason, code, n))
    }

    /// Sessions ended with close code `code`, whatever the reason.
    pub fn sessions_closed_with(&self, code: u16) -> u64 {
        let code = code.to_string();
        self.sessions_closed()
            .filter(|(_, c, _)| *c == code)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Requests answered, by `(endpoint, status, count)`, `status` being a code such as
    /// `"404"` or `"other"`; only the non-zero ones.
    pub fn requests(&self) -> impl Iterator<Item = (Endpoint, &'static str, u64)> + '_ {
        Endpoint::ALL
            .into_iter()
            .zip(&self.requests)
            .flat_map(|(endpoint, row)| {
                (0..STATUS_SLOTS).filter_map(move |slot| {
                    let n = row[slot];
                    (n > 0).then(|| (endpoint, status_label(slot), n))
                })
            })
    }

    /// Requests to `endpoint` answered with `status`.
    pub fn requests_with(&self, endpoint: Endpoint, status: u16) -> u64 {
        let status = status.to_string();
        self.requests()
            .filter(|(e, s, _)| *e == endpoint && *s == status)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Calls `f` with the labels (beside `service`) and the value of each series of
    /// `family`.
    pub(crate) fn series(&self, family: Family, f: &mut dyn FnMut(&[Label], u64)) {
        match family.series {
            Series::Open | Series::Opened => {
                for t in Transport::ALL {
                    let value = match family.series {
                        Series::Open => self.sessions_open(t),
                        _ => self.sessions_opened(t),
                    };
                    f(&[("transport", t.name())], value);
                }
            }
            Series::Closed => {
                for (reason, code, n) in self.sessions_closed() {
                    f(&[("reason", reason), ("code", code)], n);
                }
            }
            Series::Requests => {
                for (endpoint, status, n) in self.requests() {
                    f(&[("endpoint", endpoint.name()), ("status", status)], n);
                }
            }
            Series::Scalar(value) => f(&[], value(self)),
        }
    }

    /// This snapshot in the Prometheus text format (see [`write_prometheus`] for several
    /// services at once).
    pub fn prometheus_text(&self) -> String {
        let mut out = String::new();
        write_prometheus(&mut out, std::slice::from_ref(self));
        out
    }
}

/// A label and its value, beside `service`.
pub(crate) type Label = (&'static str, &'static str);

/// Whether a family goes up and down, or only up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Gauge,
    Counter,
}

/// Where a family's series come from.
#[derive(Clone, Copy)]
pub(crate) enum Series {
    Open,
    Opened,
    Closed,
    Requests,
    Scalar(fn(&Metrics) -> u64),
}

/// One metric family: what both renderers write.
#[derive(Clone, Copy)]
pub(crate) struct Family {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) help: &'static str,
    pub(crate) series: Series,
}

const fn family(name: &'static str, kind: Kind, help: &'static str, series: Series) -> Family {
    Family {
        name,
        kind,
        help,
        series,
    }
}

/// Every family, in the order they are written (the table in the module docs).
pub(crate) const FAMILIES: [Family; 15] = [
    family(
        "sockjs_sessions_open",
        Kind::Gauge,
        "Sessions open or closing now, by the transport that opened them.",
        Series::Open,
    ),
    family(
        "sockjs_sessions_opened_total",
        Kind::Counter,
        "Sessions opened, by transport.",
        Series::Opened,
    ),
    family(
        "sockjs_sessions_closed_total",
        Kind::Counter,
        "Sessions ended, by why and close code.",
        Series::Closed,
    ),
    family(
        "sockjs_messages_received_total",
        Kind::Counter,
        "Messages clients sent.",
        Series::Scalar(|m| m.messages_received),
    ),
    family(
        "sockjs_message_received_bytes_total",
        Kind::Counter,
        "Bytes of the messages clients sent.",
        Series::Scalar(|m| m.message_bytes_received),
    ),
    family(
        "sockjs_messages_sent_total",
        Kind::Counter,
        "Messages the application queued.",
        Series::Scalar(|m| m.messages_sent),
    ),
    family(
        "sockjs_message_sent_bytes_total",
        Kind::Counter,
        "Bytes of the messages the application queued.",
        Series::Scalar(|m| m.message_bytes_sent),
    ),
    family(
        "sockjs_received_bytes_total",
        Kind::Counter,
        "Bytes received: request bodies and WebSocket frames.",
        Series::Scalar(|m| m.bytes_received),
    ),
    family(
        "sockjs_sent_bytes_total",
        Kind::Counter,
        "Bytes sent: response bodies and chunks and WebSocket frames.",
        Series::Scalar(|m| m.bytes_sent),
    ),
    family(
        "sockjs_requests_total",
        Kind::Counter,
        "Requests answered, by SockJS endpoint and status.",
        Series::Requests,
    ),
    family(
        "sockjs_connection_queue_overflows_total",
        Kind::Counter,
        "Connections dropped because the client did not read.",
        Series::Scalar(|m| m.connection_queue_overflows),
    ),
    family(
        "sockjs_queue_full_total",
        Kind::Counter,
        "QueueFull errors returned to the application.",
        Series::Scalar(|m| m.queue_full),
    ),
    family(
        "sockjs_inbound_overflow_closes_total",
        Kind::Counter,
        "Sessions closed with 1013: the application did not take its messages.",
        Series::Scalar(|m| m.inbound_overflow_closes),
    ),
    family(
        "sockjs_aborts_total",
        Kind::Counter,
        "Requests whose client went away before they ended.",
        Series::Scalar(|m| m.aborts),
    ),
    family(
        "sockjs_heartbeats_total",
        Kind::Counter,
        "Heartbeats sent.",
        Series::Scalar(|m| m.heartbeats),
    ),
];
