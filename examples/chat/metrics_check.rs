//! What the chat's tests check on either runtime: `GET /metrics` serves the Prometheus text
//! format and counts an open session; the chat cleans names, tags each user's messages and
//! paces them. Included by `sockjs-tokio/tests/chat.rs` and
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
        // A series with labels, or a bare name (the server's `sockjs_connections_open`).
        let sample = line.rsplit_once(' ').is_some_and(|(series, value)| {
            let bare = series.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            series.starts_with("sockjs_")
                && (series.ends_with('}') || bare)
                && value.parse::<u64>().is_ok()
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

/// The chat's protocol on the chat at `addr`, over xhr-polling: a name is cleaned of
/// invisible characters, the user learns its own `from` tag, which the server puts on its
/// messages, and a burst past the chat's pace gets `slow` notices instead of being said.
pub fn names_tags_and_pace(addr: SocketAddr) {
    let mut conn = Conn::connect(&addr.to_string(), Duration::from_secs(5)).unwrap();
    let base = format!("/chat/000/pace{}", std::process::id());
    let mut poll = || {
        let text = conn
            .roundtrip(&Request::new("POST", &format!("{base}/xhr")))
            .unwrap()
            .text();
        let Some(batch) = text.trim_end().strip_prefix('a') else {
            return Vec::new();
        };
        let batch: Vec<String> = serde_json::from_str(batch).unwrap();
        batch
            .iter()
            .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap())
            .collect()
    };
    assert!(poll().is_empty(), "the open frame");
    let welcome = poll();
    assert_eq!(welcome[0]["type"], "welcome");
    let send = |messages: Vec<serde_json::Value>| {
        let messages: Vec<String> = messages.iter().map(|m| m.to_string()).collect();
        let body = serde_json::to_string(&messages).unwrap();
        let mut conn = Conn::connect(&addr.to_string(), Duration::from_secs(5)).unwrap();
        let sent = conn
            .roundtrip(&Request::new("POST", &format!("{base}/xhr_send")).body(body))
            .unwrap();
        assert_eq!(sent.status(), 204);
    };
    send(vec![serde_json::json!({"nick": "\u{200b} an\u{202e}n "})]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.iter().any(|m: &serde_json::Value| m["type"] == "join") {
        assert!(Instant::now() < deadline, "no join: {seen:?}");
        seen.extend(poll());
    }
    let you = seen
        .iter()
        .find(|m| m["type"] == "you")
        .expect("told its tag");
    assert_eq!(you["nick"], "ann");
    let from = you["from"].as_str().unwrap().to_owned();

    let burst: Vec<_> = (0..30)
        .map(|i| serde_json::json!({"text": format!("m{i}")}))
        .collect();
    send(burst);
    let (mut said, mut slow) = (Vec::new(), 0);
    while said.len() + slow < 30 {
        assert!(Instant::now() < deadline, "said {said:?}, slow {slow}");
        for m in poll() {
            match m["type"].as_str() {
                Some("say") => {
                    assert_eq!(m["from"], from.as_str(), "{m}");
                    said.push(m["text"].as_str().unwrap().to_owned());
                }
                Some("slow") => slow += 1,
                _ => {}
            }
        }
    }
    // The burst's first twenty were said, in order; the rest refused (the bucket refills
    // five a second, so one more may have slipped in on a slow machine).
    assert!((20..=22).contains(&said.len()), "said {said:?}");
    let first: Vec<String> = (0..said.len()).map(|i| format!("m{i}")).collect();
    assert_eq!(said, first);

    // A message keeps its zero-width joiners (an emoji sequence, Persian text), where a
    // name loses every invisible character.
    std::thread::sleep(Duration::from_millis(1100));
    let joined =
        "\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645} \u{1f469}\u{200d}\u{1f4bb}";
    send(vec![
        serde_json::json!({"text": format!("\u{202e}{joined}")}),
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the joined text was not said");
        let said: Vec<_> = poll().into_iter().filter(|m| m["type"] == "say").collect();
        if let Some(m) = said.first() {
            assert_eq!(m["text"], joined, "{m}");
            break;
        }
    }

    // A name with nothing visible left is refused with a close, not left unanswered.
    let base = format!("/chat/000/noname{}", std::process::id());
    let mut conn = Conn::connect(&addr.to_string(), Duration::from_secs(5)).unwrap();
    let open = conn.roundtrip(&Request::new("POST", &format!("{base}/xhr")));
    assert_eq!(open.unwrap().text(), "o\n");
    let body =
        serde_json::to_string(&[serde_json::json!({"nick": "\u{200b}\u{202e} "}).to_string()])
            .unwrap();
    let mut sender = Conn::connect(&addr.to_string(), Duration::from_secs(5)).unwrap();
    let sent = sender.roundtrip(&Request::new("POST", &format!("{base}/xhr_send")).body(body));
    assert_eq!(sent.unwrap().status(), 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no close for a blank name");
        let text = conn
            .roundtrip(&Request::new("POST", &format!("{base}/xhr")))
            .unwrap()
            .text();
        if text.starts_with('c') {
            assert_eq!(text, "c[4002,\"A name needs a visible character\"]\n");
            break;
        }
    }
}
