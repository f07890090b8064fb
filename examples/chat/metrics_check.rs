//! What the chat's tests check on either runtime: `GET /metrics` serves the Prometheus text
//! format and counts an open session. Included by `sockjs-tokio/tests/chat.rs` and
//! `sockjs-smol/tests/chat.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conformance::http::{Conn, Request};

/// Opens an xhr-streaming session on the chat at `addr` and waits (at most 10 s) until
/// `/metrics` shows it open; checks that every line is a comment or a sample.
///
/// Returns the session's receiving connection: the session stays open while the caller holds
/// it (closing it aborts the receiver, which closes the session).
pub fn metrics_show_an_open_session(addr: SocketAddr) -> Conn {
    let conn = || Conn::connect(&addr.to_string(), Duration::from_secs(5)).unwrap();
    let mut stream = conn();
    stream
        .send(&Request::new("POST", "/chat/000/metrics/xhr_streaming"))
        .unwrap();
    assert_eq!(stream.read_head().unwrap().status, 200);
    assert_eq!(stream.read_chunk().unwrap().len(), 2049, "prelude");
    assert_eq!(stream.read_chunk().unwrap(), b"o\n");

    let open = r#"sockjs_sessions_open{service="/chat",transport="xhr-streaming"} 1"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let response = conn().roundtrip(&Request::new("GET", "/metrics")).unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text();
        if text.lines().any(|line| line == open) {
            break text;
        }
        assert!(Instant::now() < deadline, "never open: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    for line in text.lines() {
        let sample = line.rsplit_once(' ').is_some_and(|(series, value)| {
            series.starts_with("sockjs_") && series.ends_with('}') && value.parse::<u64>().is_ok()
        });
        assert!(
            line.starts_with("# HELP ") || line.starts_with("# TYPE ") || sample,
            "{line}"
        );
    }
    assert!(text.contains(
        r#"sockjs_requests_total{service="/chat",endpoint="xhr_streaming",status="200"} 1"#
    ));
    stream
}
