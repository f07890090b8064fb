//! HTTP transports over real loopback sockets, through `serve` and through axum.

mod common;

use std::time::Duration;

use common::{Conn, Mode, Timing, get, post, request, session, start, start_timed};

both_modes!(
    greeting_info_and_404,
    xhr_polling_session,
    xhr_streaming_one_chunk_per_frame,
    eventsource_frames,
    htmlfile_frames,
    jsonp_polling_and_send,
    close_frame_repeats,
    second_receiver_gets_2010,
    response_limit_ends_stream,
    heartbeat_on_held_poll,
    disconnect_expiry,
    http10_streaming_is_close_delimited,
    keep_alive_reuse,
    abort_xhr_streaming_closes_session,
    abort_xhr_polling_closes_session,
    oversized_body_is_413,
    cookie_and_disabled_websocket,
    echoes_are_queued_before_the_send_is_answered,
);

async fn greeting_info_and_404(mode: Mode) {
    let server = start(mode).await;
    for path in ["/echo", "/echo/"] {
        let r = get(server.addr, path).await;
        assert_eq!(r.head.status, 200, "{path}");
        assert_eq!(r.text(), "Welcome to SockJS!\n");
        assert_eq!(r.head.header("content-length"), Some("19"));
    }
    let info = get(server.addr, "/echo/info").await;
    assert_eq!(info.head.status, 200);
    assert!(
        info.text().contains("\"websocket\":true"),
        "{}",
        info.text()
    );
    for path in ["/echo/a", "/echo//", "/echo/a/a", "/nothing", "/echo//xhr"] {
        assert_eq!(get(server.addr, path).await.head.status, 404, "{path}");
    }
    let r = post(server.addr, "/echo/a/a/websocket", "").await;
    assert_eq!(r.head.status, 405);
    assert_eq!(r.head.header("allow"), Some("GET"));
    assert!(r.body.is_empty());
}

async fn xhr_polling_session(mode: Mode) {
    let server = start(mode).await;
    let s = session("/echo");
    let r = post(server.addr, &format!("{s}/xhr"), "").await;
    assert_eq!(r.text(), "o\n");
    assert_eq!(
        r.head.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    let r = post(server.addr, &format!("{s}/xhr_send"), r#"["a","b"]"#).await;
    assert_eq!(r.head.status, 204);
    let r = post(server.addr, &format!("{s}/xhr"), "").await;
    assert_eq!(r.text(), "a[\"a\",\"b\"]\n");
    let r = post(
        server.addr,
        "/echo/000/unknown_session/xhr_send",
        r#"["x"]"#,
    )
    .await;
    assert_eq!(r.head.status, 404);
    let r = post(server.addr, &format!("{s}/xhr_send"), r#"["x"#).await;
    assert_eq!(r.head.status, 500);
    assert!(r.text().contains("Broken JSON encoding."));
}

async fn xhr_streaming_one_chunk_per_frame(mode: Mode) {
    let server = start(mode).await;
    let s = session("/echo");
    let mut conn = Conn::connect(server.addr).await;
    conn.send("POST", &format!("{s}/xhr_streaming"), "1.1", &[], "")
        .await;
    let head = conn.head().await;
    assert_eq!(head.status, 200);
    assert!(head.is_chunked());
    assert!(head.header("content-length").is_none());
    let prelude = conn.chunk().await.expect("prelude");
    assert_eq!(prelude.len(), 2049);
    assert!(prelude[..2048].iter().all(|&b| b == b'h'));
    assert_eq!(conn.chunk_text().await.as_deref(), Some("o\n"));
    post(server.addr, &format!("{s}/xhr_send"), r#"["x"]"#).await;
    assert_eq!(conn.chunk_text().await.as_deref(), Some("a[\"x\"]\n"));
    // The echo app sends each message on its own, and each send is flushed at once.
    post(server.addr, &format!("{s}/xhr_send"), r#"["y","z"]"#).await;
    assert_eq!(conn.chunk_text().await.as_deref(), Some("a[\"y\"]\n"));
    assert_eq!(conn.chunk_text().await.as_deref(), Some("a[\"z\"]\n"));
}

async fn eventsource_frames(mode: Mode) {
    let server = start(mode).await;
    let s = session("/echo");
    let mut conn = Conn::connect(server.addr).await;
    conn.send("GET", &format!("{s}/eventsource"), "1.1", &[], "")
        .await;
    let head = conn.head().await;
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(conn.chunk_text().await.as_deref(), Some("\r\n"));
    assert_eq!(conn.chunk_text().await.as_deref(), Some("data: o\r\n\r\n"));
    post(server.addr, &format!("{s}/xhr_send"), r#"["x%"]"#).await;
    assert_eq!(
        conn.chunk_text().await.as_deref(),
        Some("data: a[\"x%25\"]\r\n\r\n")
    );
}

async fn htmlfile_frames(mode: Mode) {
    let server = start(mode).await;
    let s = session("/echo");
    let mut conn = Conn::connect(server.addr).await;
    conn.send("GET", &format!("{s}/htmlfile?c=%63allback"), "1.1", &[], "")
        .await;
    let head = conn.head().await;
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    let prelude = conn.chunk_text().await.expect("prelude");
    assert!(prelude.len() > 1024);
    assert!(prelude.contains("var c = parent.callback;"));
    assert_eq!(
        conn.chunk_text().await.as_deref(),
        Some("<script>\np(\"o\");\n</script>\r\n")
    );
    let r = get(server.addr, "/echo/a/a/htmlfile").await;
    assert_eq!(r.head.status, 500);
}

async fn jsonp_polling_and_send(mode: Mode) {
    let server = start(mode).await;
    let s = session("/echo");
    let r = get(server.addr, &format!("{s}/jsonp?c=cb")).await;
    assert_eq!(r.text(), "/**/cb(\"o\");\r\n");
    let r = request(
        server.addr,
        "POST",
        &format!("{s}/jsonp_send"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "d=%5B%22x%22%5D",
    )
    .await;
    assert_eq!(r.head.status, 200);
    assert_eq!(r.text(), "ok");
    let r = get(server.addr, &format!("{s}/jsonp?c=cb")).await;
    assert_eq!(r.text(), "/**/cb(\"a[\\\"x\\\"]\");\r\n");
}

async fn close_frame_repeats(mode: Mode) {
    let server = start(mode).await;
    let s = session("/close");
    let r = post(server.addr, &format!("{s}/xhr"), "").await;
    assert_eq!(r.text(), "o\n");
    for _ in 0..2 {
        let r = post(server.addr, &format!("{s}/xhr"), "").await;
        assert_eq!(r.text(), "c[3000,\"Go away!\"]\n");
    }
}

async fn second_receiver_gets_2010(mode: Mode) {
    let server = start(mode).await;
    let s = session("/echo");
    let mut first = Conn::connect(server.addr).await;
    first
        .send("POST", &format!("{s}/xhr_streaming"), "1.1", &[], "")
        .await;
    first.head().await;
    first.chunk().await;
    assert_eq!(first.chunk_text().await.as_deref(), Some("o\n"));
    let mut second = Conn::connect(server.addr).await;
    second
        .send("POST", &format!("{s}/xhr_streaming"), "1.1", &[], "")
        .await;
    second.head().await;
    assert_eq!(second.chunk().await.map(|c| c.len()), Some(2049));
    assert_eq!(
        second.chunk_text().await.as_deref(),
        Some("c[2010,\"Another connection still open\"]\n")
    );
    assert_eq!(second.chunk().await, None);
    // The first receiver is untouched.
    post(server.addr, &format!("{s}/xhr_send"), r#"["still"]"#).await;
    assert_eq!(first.chunk_text().await.as_deref(), Some("a[\"still\"]\n"));
}

async fn response_limit_ends_stream(mode: Mode) {
    let server = start(mode).await;
    let s = session("/echo");
    let mut conn = Conn::connect(server.addr).await;
    conn.send("POST", &format!("{s}/xhr_streaming"), "1.1", &[], "")
        .await;
    conn.head().await;
    conn.chunk().await;
    assert_eq!(conn.chunk_text().await.as_deref(), Some("o\n"));
    let message = format!("[\"{}\"]", "x".repeat(128));
    for i in 0..31 {
        post(server.addr, &format!("{s}/xhr_send"), &message).await;
        let chunk = conn.chunk().await.expect("frame");
        assert_eq!(chunk.len(), 134, "frame {i}");
    }
    assert_eq!(conn.chunk().await, None, "stream ends after the 31st frame");
}

async fn heartbeat_on_held_poll(mode: Mode) {
    let server = start_timed(
        mode,
        Timing {
            heartbeat: Duration::from_millis(200),
            ..Timing::default()
        },
    )
    .await;
    let s = session("/echo");
    assert_eq!(
        post(server.addr, &format!("{s}/xhr"), "").await.text(),
        "o\n"
    );
    let started = std::time::Instant::now();
    let r = post(server.addr, &format!("{s}/xhr"), "").await;
    assert_eq!(r.text(), "h\n");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
}

async fn disconnect_expiry(mode: Mode) {
    let server = start_timed(
        mode,
        Timing {
            disconnect: Duration::from_millis(300),
            ..Timing::default()
        },
    )
    .await;
    let s = session("/echo");
    assert_eq!(
        post(server.addr, &format!("{s}/xhr"), "").await.text(),
        "o\n"
    );
    let r = post(server.addr, &format!("{s}/xhr_send"), r#"["a"]"#).await;
    assert_eq!(r.head.status, 204, "alive before the delay");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = post(server.addr, &format!("{s}/xhr_send"), r#"["a"]"#).await;
    assert_eq!(r.head.status, 404, "forgotten after the delay");
    assert_eq!(
        post(server.addr, &format!("{s}/xhr"), "").await.text(),
        "o\n",
        "the id opens a fresh session"
    );
}

async fn http10_streaming_is_close_delimited(mode: Mode) {
    let server = start(mode).await;
    let s = session("/close");
    let mut conn = Conn::connect(server.addr).await;
    conn.send(
        "POST",
        &format!("{s}/xhr_streaming"),
        "1.0",
        &[("Connection", "Keep-Alive")],
        "",
    )
    .await;
    let head = conn.head().await;
    assert_eq!(head.status, 200);
    assert!(head.header("transfer-encoding").is_none());
    assert!(head.header("content-length").is_none());
    let body = conn.read_to_close().await;
    let mut expected = vec![b'h'; 2048];
    expected.extend_from_slice(b"\no\nc[3000,\"Go away!\"]\n");
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(&expected)
    );

    // Synchronous HTTP/1.0: Content-Length, no chunking.
    let mut conn = Conn::connect(server.addr).await;
    conn.send("GET", "/echo", "1.0", &[("Connection", "Keep-Alive")], "")
        .await;
    let r = conn.response().await;
    assert!(r.head.header("transfer-encoding").is_none());
    assert_eq!(r.head.header("content-length"), Some("19"));
}

async fn keep_alive_reuse(mode: Mode) {
    let server = start(mode).await;
    let mut conn = Conn::connect(server.addr).await;
    for _ in 0..3 {
        conn.send("GET", "/echo", "1.1", &[], "").await;
        let r = conn.response().await;
        assert_eq!(r.text(), "Welcome to SockJS!\n");
    }
    let s = session("/close");
    conn.send("POST", &format!("{s}/xhr_streaming"), "1.1", &[], "")
        .await;
    let head = conn.head().await;
    assert!(head.is_chunked());
    assert_eq!(conn.chunk().await.map(|c| c.len()), Some(2049));
    assert_eq!(conn.chunk_text().await.as_deref(), Some("o\n"));
    assert_eq!(
        conn.chunk_text().await.as_deref(),
        Some("c[3000,\"Go away!\"]\n")
    );
    assert_eq!(conn.chunk().await, None);
    conn.send("GET", "/echo/info", "1.1", &[], "").await;
    assert_eq!(conn.response().await.head.status, 200);
}

async fn abort_xhr_streaming_closes_session(mode: Mode) {
    let server = start(mode).await;
    let s = session("/echo");
    let mut conn = Conn::connect(server.addr).await;
    conn.send("POST", &format!("{s}/xhr_streaming"), "1.1", &[], "")
        .await;
    conn.head().await;
    conn.chunk().await;
    assert_eq!(conn.chunk_text().await.as_deref(), Some("o\n"));
    drop(conn);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = post(server.addr, &format!("{s}/xhr"), "").await;
    assert_eq!(r.text(), "o\n", "the aborted session is gone");
}

async fn abort_xhr_polling_closes_session(mode: Mode) {
    let server = start(mode).await;
    let s = session("/echo");
    assert_eq!(
        post(server.addr, &format!("{s}/xhr"), "").await.text(),
        "o\n"
    );
    let mut conn = Conn::connect(server.addr).await;
    conn.send("POST", &format!("{s}/xhr"), "1.1", &[], "").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(conn);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = post(server.addr, &format!("{s}/xhr"), "").await;
    assert_eq!(r.text(), "o\n", "not 2010: the held poll was dropped");
}

async fn oversized_body_is_413(mode: Mode) {
    let server = start(mode).await;
    let s = session("/echo");
    assert_eq!(
        post(server.addr, &format!("{s}/xhr"), "").await.text(),
        "o\n"
    );
    let big = format!("[\"{}\"]", "x".repeat(70 * 1024));
    let r = post(server.addr, &format!("{s}/xhr_send"), &big).await;
    assert_eq!(r.head.status, 413);
    // Chunked, without Content-Length: caught while reading.
    let mut conn = Conn::connect(server.addr).await;
    let mut raw =
        format!("POST {s}/xhr_send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..80 {
        raw.push_str(&format!("400\r\n{}\r\n", "y".repeat(1024)));
    }
    raw.push_str("0\r\n\r\n");
    conn.send_raw(raw.as_bytes()).await;
    assert_eq!(conn.head().await.status, 413);
}

async fn cookie_and_disabled_websocket(mode: Mode) {
    let server = start(mode).await;
    let s = session("/cookie_needed_echo");
    let r = post(server.addr, &format!("{s}/xhr"), "").await;
    assert_eq!(
        r.head.header("set-cookie"),
        Some("JSESSIONID=dummy; path=/")
    );
    let info = get(server.addr, "/disabled_websocket_echo/info").await;
    assert!(info.text().contains("\"websocket\":false"));
    let r = get(server.addr, "/disabled_websocket_echo/a/a/websocket").await;
    assert_eq!(r.head.status, 404);
}

async fn echoes_are_queued_before_the_send_is_answered(mode: Mode) {
    let server = start(mode).await;
    for _ in 0..5 {
        let s = session("/echo");
        assert_eq!(
            post(server.addr, &format!("{s}/xhr"), "").await.text(),
            "o\n"
        );
        for body in [r#"["1"]"#, r#"["2","3"]"#, r#"["4"]"#] {
            assert_eq!(
                post(server.addr, &format!("{s}/xhr_send"), body)
                    .await
                    .head
                    .status,
                204
            );
        }
        let r = post(server.addr, &format!("{s}/xhr"), "").await;
        assert_eq!(r.text(), "a[\"1\",\"2\",\"3\",\"4\"]\n");
    }
}
