//! The driver's metrics over real loopback sockets, against both adapters through their
//! own accessors (sockjs-smol's `ServerHandle::metrics`, sockjs-tokio's `Routes::metrics`):
//! sessions by transport, messages and bytes both ways, requests by endpoint and status,
//! closes by code, `QueueFull`, the connection and inbound overflows, and the Prometheus
//! text of it all.
//!
//! Counters move after the event that moves them, so every check waits for its value,
//! within a bound.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use conformance::http::Request;
use sockjs_core::driver::metrics::{Endpoint, Metrics, write_prometheus};
use sockjs_core::driver::{Config, Session};
use sockjs_core::{Options, Transport};
use support::{ADAPTERS, Mount, Target, handler, start_services, within};
use tungstenite::{Message, WebSocket};

/// Bound of one test (both adapters).
const LIMIT: Duration = Duration::from_secs(60);
/// How long a check waits for a counter.
const WAIT: Duration = Duration::from_secs(10);
/// `/echo`'s request body bound.
const MAX_BODY: usize = 1024;

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// A session id no other test uses.
fn sid(kind: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{kind}{n}x{}", std::process::id())
}

/// `/echo` echoes, and obeys `close` (3000), `fill` (try_send until `QueueFull`, then
/// tells the client) and `flood` (try_send 1 KB messages until one is refused).
/// `/deaf` takes nothing. `/big` only raises the largest body bound, so that an over-large
/// body for `/echo` is over `/echo`'s own bound only: refused by the connection for `/echo`
/// (or read and refused by `/echo`, under hyper), and counted as `/echo`'s.
fn serve(adapter: support::Adapter) -> Target {
    let echo = handler(|mut session: Session| async move {
        while let Some(text) = session.recv().await {
            match text.as_str() {
                "close" => {
                    let _ = session.close(3000, "Go away!");
                }
                "fill" => while session.try_send("x".repeat(256)).is_ok() {},
                "flood" => {
                    // Under `max_queued_bytes`: a WebSocket's messages go straight to its
                    // connection's queue, which is what refuses them once the client
                    // stops reading.
                    let big = "y".repeat(1000);
                    for _ in 0..(256 * 1024) {
                        if session.try_send(big.as_str()).is_err() {
                            break;
                        }
                    }
                }
                _ => {
                    let _ = session.send(text).await;
                }
            }
        }
    });
    let deaf = handler(|session: Session| async move { session.closed().await });
    let idle = handler(|session: Session| async move { session.closed().await });
    let config = Config {
        shards: 2,
        max_connection_queue_bytes: 256 * 1024,
        max_session_inbound_bytes: 4 * 1024,
        inbound_stall_timeout: Duration::from_millis(200),
        body_read_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let echo_options = Options {
        max_request_body: MAX_BODY,
        max_queued_bytes: 4 * 1024,
        ..Options::default()
    };
    start_services(
        adapter,
        config,
        vec![
            Mount::new("/echo", echo_options, echo),
            Mount::new("/deaf", Options::default(), deaf),
            Mount::new("/big", Options::default(), idle),
        ],
    )
}

/// Waits until `/echo` has counted `total` requests; its counters, and the requests by
/// endpoint and status, sorted.
fn counted_requests(
    target: &Target,
    total: u64,
) -> (Metrics, Vec<(&'static str, &'static str, u64)>) {
    let m = eventually(target, "/echo", "every request counted", |m| {
        m.requests().map(|(_, _, n)| n).sum::<u64>() == total
    });
    let mut requests: Vec<_> = m.requests().map(|(e, s, n)| (e.name(), s, n)).collect();
    requests.sort();
    (m, requests)
}

/// Waits until `check` holds for `/echo`'s (or `prefix`'s) counters; the last snapshot.
fn eventually(
    target: &Target,
    prefix: &str,
    what: &str,
    check: impl Fn(&Metrics) -> bool,
) -> Metrics {
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = target.metrics_of(prefix);
        if check(&metrics) {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}: {what} never held: {metrics:#?}",
            target.adapter
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ws(target: &Target, prefix: &str, id: &str) -> WebSocket<TcpStream> {
    target.ws(&format!("{prefix}/000/{id}/websocket"))
}

fn say(ws: &mut WebSocket<TcpStream>, text: &str) {
    ws.send(Message::text(text)).unwrap();
}

/// Each line of the Prometheus text is a comment or `name{labels} value` with quoted
/// label values; the samples, as (name, labels, value).
fn parse_prometheus(text: &str) -> Vec<(String, String, u64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').unwrap();
        let value = value.parse().unwrap_or_else(|_| panic!("a value: {line}"));
        let (name, labels) = head.split_once('{').unwrap();
        let labels = labels.strip_suffix('}').unwrap();
        assert!(
            name.starts_with("sockjs_")
                && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{line}"
        );
        for pair in labels.split("\",") {
            let (label, value) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
            assert!(label.bytes().all(|b| b.is_ascii_lowercase()), "{line}");
            assert!(!value.trim_end_matches('"').contains('"'), "{line}");
        }
        samples.push((name.to_owned(), labels.to_owned(), value));
    }
    samples
}

fn prometheus(target: &Target) -> String {
    let mut text = String::new();
    write_prometheus(&mut text, &target.metrics());
    text
}

/// PROTOCOL.md §9.2: a WebSocket session shows in `sockjs_sessions_open` while open, its
/// messages and bytes count both ways, its handshake as `websocket` 101, and its end by
/// reason and code.
#[test]
fn metrics_count_a_websocket_session_9_2() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = serve(adapter);
            let mut socket = ws(&target, "/echo", &sid("ws"));
            say(&mut socket, r#"["hello"]"#);
            assert_eq!(
                support::ws_text(&mut socket).as_deref(),
                Some(r#"a["hello"]"#)
            );
            let m = eventually(&target, "/echo", "one open WebSocket", |m| {
                // The pump counts what it wrote once the write returned: after the client
                // may have read it.
                m.sessions_open(Transport::WebSocket) == 1
                    && m.messages_sent == 1
                    && m.bytes_sent > 5
            });
            assert_eq!(m.sessions_opened(Transport::WebSocket), 1, "{adapter:?}");
            assert_eq!(m.sessions_open(Transport::XhrStreaming), 0, "{adapter:?}");
            assert_eq!((m.messages_received, m.message_bytes_received), (1, 5));
            assert_eq!(m.message_bytes_sent, 5, "{adapter:?}");
            assert!(
                m.bytes_received > 5 && m.bytes_sent > 5,
                "{adapter:?}: {m:?}"
            );
            assert_eq!(m.requests_with(Endpoint::WebSocket, 101), 1, "{adapter:?}");

            let text = prometheus(&target);
            let samples = parse_prometheus(&text);
            let line = r#"sockjs_sessions_open{service="/echo",transport="websocket"} 1"#;
            assert!(text.lines().any(|l| l == line), "{adapter:?}: {text}");
            assert!(
                samples
                    .iter()
                    .any(|(name, labels, value)| name == "sockjs_requests_total"
                        && labels == r#"service="/echo",endpoint="websocket",status="101""#
                        && *value == 1)
            );
            // Several services, one HELP and TYPE per family.
            assert_eq!(text.matches("# TYPE sockjs_sessions_open ").count(), 1);
            assert!(
                text.contains(r#"sockjs_sessions_open{service="/deaf",transport="websocket"} 0"#)
            );

            // The application closes it: 3000.
            say(&mut socket, r#"["close"]"#);
            assert_eq!(
                support::ws_text(&mut socket).as_deref(),
                Some(r#"c[3000,"Go away!"]"#),
                "{adapter:?}"
            );
            let m = eventually(&target, "/echo", "the close counted", |m| {
                m.sessions_closed_with(3000) == 1
            });
            assert_eq!(m.sessions_open(Transport::WebSocket), 0, "{adapter:?}");
            assert_eq!(
                m.sessions_closed().collect::<Vec<_>>(),
                [("closed", "3000", 1)],
                "{adapter:?}"
            );
        }
    });
}

/// PROTOCOL.md §2 and §6: requests count by endpoint and status, a 404 for a path no
/// endpoint matches and a 413 for a body over `max_request_body` included.
#[test]
fn metrics_count_requests_by_endpoint_and_status_2_and_6() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = serve(adapter);
            assert_eq!(
                target.request(&Request::new("GET", "/echo/info")).status(),
                200
            );
            assert_eq!(
                target
                    .request(&Request::new("GET", "/echo/nope/x"))
                    .status(),
                404
            );
            let id = sid("xhr");
            let opened = target.request(&Request::new("POST", &format!("/echo/000/{id}/xhr")));
            assert_eq!(opened.text(), "o\n", "{adapter:?}");
            let send = format!("/echo/000/{id}/xhr_send");
            let too_big = format!("[\"{}\"]", "z".repeat(MAX_BODY));
            let request = Request::new("POST", &send).body(too_big.as_str());
            assert_eq!(target.request(&request).status(), 413, "{adapter:?}");
            // Counted once, as the service's answer.
            assert_eq!(target.unrouted(413), 0, "{adapter:?}");
            let request = Request::new("POST", &send).body(r#"["small"]"#);
            assert_eq!(target.request(&request).status(), 204, "{adapter:?}");

            let (m, requests) = counted_requests(&target, 5);
            assert_eq!(
                requests,
                [
                    ("info", "200", 1),
                    ("other", "404", 1),
                    ("xhr", "200", 1),
                    ("xhr_send", "204", 1),
                    ("xhr_send", "413", 1),
                ],
                "{adapter:?}"
            );
            assert_eq!(m.sessions_opened(Transport::XhrPolling), 1, "{adapter:?}");
            let text = prometheus(&target);
            parse_prometheus(&text);
            assert!(text.contains(
                "sockjs_requests_total{service=\"/echo\",endpoint=\"xhr_send\",status=\"413\"} 1\n"
            ));
            assert!(text.contains(
                "sockjs_requests_total{service=\"/echo\",endpoint=\"other\",status=\"404\"} 1\n"
            ));
        }
    });
}

/// A request for a service whose body the connection could not read (too slow: 408;
/// malformed chunks: 400; past every service's bound: 413) counts as that service's
/// answer; a body past every bound outside every service, as the server's own
/// (PROTOCOL.md §6's 413, and the bounds of SECURITY.md).
#[test]
fn metrics_count_a_body_that_could_not_be_read_as_its_services_answer_6() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = serve(adapter);
            let send = format!("/echo/000/{}/xhr_send", sid("body"));
            let slow = format!("POST {send} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
            let chunks = format!(
                "POST {send} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
            );
            let huge =
                format!("POST {send} HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n");
            for (request, status) in [(slow, 408), (chunks, 400), (huge, 413)] {
                let (answered, head) = support::raw_status(target.addr, request.as_bytes());
                assert_eq!(answered, status, "{adapter:?}: {head}");
            }
            let outside = "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n";
            assert_eq!(support::raw_status(target.addr, outside.as_bytes()).0, 413);
            let (_, requests) = counted_requests(&target, 3);
            assert_eq!(
                requests,
                [
                    ("xhr_send", "400", 1),
                    ("xhr_send", "408", 1),
                    ("xhr_send", "413", 1)
                ],
                "{adapter:?}"
            );
            let unrouted = [400, 408, 413].map(|status| target.unrouted(status));
            assert_eq!(unrouted, [0, 0, 1], "{adapter:?}");
        }
    });
}

/// `try_send` into a session nobody receives from fails with `QueueFull` once
/// `max_queued_bytes` are queued (PROTOCOL.md §7.1): counted.
#[test]
fn metrics_count_queue_full_7_1() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = serve(adapter);
            let id = sid("fill");
            let opened = target.request(&Request::new("POST", &format!("/echo/000/{id}/xhr")));
            assert_eq!(opened.text(), "o\n", "{adapter:?}");
            let request =
                Request::new("POST", &format!("/echo/000/{id}/xhr_send")).body(r#"["fill"]"#);
            assert_eq!(target.request(&request).status(), 204, "{adapter:?}");
            let m = eventually(&target, "/echo", "QueueFull counted", |m| m.queue_full == 1);
            assert!(m.messages_sent >= 1, "{adapter:?}");
            assert!(prometheus(&target).contains("sockjs_queue_full_total{service=\"/echo\"} 1\n"));
        }
    });
}

/// An application flooding a WebSocket client that never reads is refused once the
/// connection's queue is as good as full (`QueueFull`, counted), and the session stays:
/// the queue never overflows (PROTOCOL.md §7.1.6); a message over `max_message_size`
/// closes with 1009 (§9.2); an application that takes nothing closes with 1013.
#[test]
fn metrics_count_overflows_and_their_closes_7_1_6_and_9_2() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = serve(adapter);

            let mut stuck = ws(&target, "/echo", &sid("stuck"));
            say(&mut stuck, r#"["flood"]"#);
            let m = eventually(&target, "/echo", "the flood refused", |m| m.queue_full == 1);
            assert_eq!(m.connection_queue_overflows, 0, "{adapter:?}");
            assert_eq!(m.sessions_open(Transport::WebSocket), 1, "{adapter:?}");
            assert_eq!(m.sessions_closed().count(), 0, "{adapter:?}");
            drop(stuck);

            let mut deaf = ws(&target, "/deaf", &sid("deaf"));
            let batch = format!("[{}]", vec!["\"0123456789\""; 1000].join(","));
            say(&mut deaf, &batch);
            let m = eventually(&target, "/deaf", "1013", |m| m.inbound_overflow_closes == 1);
            assert_eq!(m.sessions_closed_with(1013), 1, "{adapter:?}");

            let mut big = ws(&target, "/deaf", &sid("big"));
            let huge = format!("[\"{}\"]", "b".repeat(300 * 1024));
            say(&mut big, &huge);
            let m = eventually(&target, "/deaf", "1009", |m| {
                m.sessions_closed_with(1009) == 1
            });
            assert!(
                m.sessions_closed()
                    .any(|c| c == ("message_too_big", "1009", 1)),
                "{adapter:?}: {m:?}"
            );

            let text = prometheus(&target);
            parse_prometheus(&text);
            for line in [
                "sockjs_connection_queue_overflows_total{service=\"/echo\"} 0",
                "sockjs_queue_full_total{service=\"/echo\"} 1",
                "sockjs_inbound_overflow_closes_total{service=\"/deaf\"} 1",
                "sockjs_sessions_closed_total{service=\"/deaf\",reason=\"closed\",code=\"1013\"} 1",
                "sockjs_sessions_closed_total{service=\"/deaf\",reason=\"message_too_big\",code=\"1009\"} 1",
            ] {
                assert!(
                    text.lines().any(|l| l == line),
                    "{adapter:?}: {line} in {text}"
                );
            }
        }
    });
}

/// A held receiver gets `h` after the heartbeat delay (PROTOCOL.md §7.1.3), and one whose
/// client hangs up is aborted (§7.1.6): both counted.
#[test]
fn metrics_count_heartbeats_and_aborts_7_1_3_and_7_1_6() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let options = Options {
                heartbeat_delay: Some(Duration::from_millis(100)),
                ..Options::default()
            };
            let idle = handler(|session: Session| async move { session.closed().await });
            let config = Config {
                shards: 2,
                ..Config::default()
            };
            let target = start_services(adapter, config, vec![Mount::new("/beat", options, idle)]);
            let mut stream = target.conn();
            let id = sid("beat");
            stream
                .send(&Request::new(
                    "POST",
                    &format!("/beat/000/{id}/xhr_streaming"),
                ))
                .unwrap();
            assert_eq!(stream.read_head().unwrap().status, 200);
            assert_eq!(stream.read_chunk().unwrap().len(), 2049, "prelude");
            assert_eq!(stream.read_chunk().unwrap(), b"o\n");
            assert_eq!(stream.read_chunk().unwrap(), b"h\n", "{adapter:?}");
            eventually(&target, "/beat", "a heartbeat", |m| m.heartbeats >= 1);
            drop(stream);
            let m = eventually(&target, "/beat", "the abort", |m| m.aborts == 1);
            assert_eq!(m.sessions_opened(Transport::XhrStreaming), 1, "{adapter:?}");
        }
    });
}

/// A receiver whose client hung up is one abort (§7.1.6), however it is noticed: by the
/// next receiver's liveness probe, by its own connection reading the end, or by both, one
/// after the other.
#[test]
fn metrics_count_an_abort_once_when_the_probe_and_the_connection_both_see_it_7_1_6() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let idle = handler(|session: Session| async move { session.closed().await });
            let config = Config {
                shards: 1,
                ..Config::default()
            };
            let target = start_services(
                adapter,
                config,
                vec![Mount::new("/gone", Options::default(), idle)],
            );
            const ROUNDS: u64 = 10;
            for round in 1..=ROUNDS {
                let path = format!("/gone/000/{}/xhr_streaming", sid("gone"));
                let mut first = target.conn();
                first.send(&Request::new("POST", &path)).unwrap();
                assert_eq!(first.read_head().unwrap().status, 200);
                assert_eq!(first.read_chunk().unwrap().len(), 2049, "prelude");
                assert_eq!(first.read_chunk().unwrap(), b"o\n");
                // Gone, and at once a receiver for the same session: the probe finds the
                // first one's client gone (a new session opens: `CloseSession`).
                drop(first);
                let mut second = target.conn();
                second.send(&Request::new("POST", &path)).unwrap();
                assert_eq!(second.read_head().unwrap().status, 200);
                assert_eq!(second.read_chunk().unwrap().len(), 2049, "prelude");
                assert_eq!(second.read_chunk().unwrap(), b"o\n", "{adapter:?}");
                drop(second);
                eventually(&target, "/gone", "both aborts", |m| m.aborts >= 2 * round);
            }
            // Settled: every connection's end has been seen by now.
            sleep_ms(300);
            let m = eventually(&target, "/gone", "the count", |_| true);
            assert_eq!(m.aborts, 2 * ROUNDS, "{adapter:?}: {m:?}");
        }
    });
}

/// Answers to requests that reach no service are the server's own, counted on both
/// adapters: a path outside every prefix (PROTOCOL.md §2), a head too large (431).
#[test]
fn metrics_count_unrouted_answers_2() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = serve(adapter);
            let missing = target.request(&Request::new("GET", "/nowhere"));
            assert_eq!(missing.status(), 404);
            assert_eq!(target.unrouted(404), 1, "{adapter:?}");
            // Not the service's: its counters saw nothing.
            assert_eq!(
                target.metrics_of("/echo").requests().count(),
                0,
                "{adapter:?}"
            );
            // Word for word the engine's 404 inside a service, on both adapters.
            let inside = target.request(&Request::new("GET", "/echo/nope/x"));
            assert_eq!(inside.status(), 404);
            assert_eq!(missing.text(), inside.text(), "{adapter:?}");
            assert_eq!(
                missing.header("content-type"),
                inside.header("content-type"),
                "{adapter:?}"
            );
            let head = format!(
                "GET /echo/info HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(20 * 1024)
            );
            let (status, _) = support::raw_status(target.addr, head.as_bytes());
            assert_eq!(status, 431, "{adapter:?}");
            assert_eq!(target.unrouted(431), 1, "{adapter:?}");
        }
    });
}
