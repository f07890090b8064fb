//! HTTP transports and HTTP/1.x behaviour over real loopback sockets.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn greeting_info_and_unknown_prefix() {
    within(LIMIT, || {
        let server = TestServer::start();
        let greeting = get(server.addr, "/echo");
        assert_eq!(greeting.status, 200);
        assert_eq!(greeting.text(), "Welcome to SockJS!\n");
        assert_eq!(greeting.header("content-length"), Some("19"));
        let info = get(server.addr, "/disabled_websocket_echo/info");
        assert_eq!(info.status, 200);
        assert!(
            info.text().contains("\"websocket\":false"),
            "{}",
            info.text()
        );
        let info = get(server.addr, "/cookie_needed_echo/info");
        assert!(info.text().contains("\"cookie_needed\":true"));
        assert_eq!(get(server.addr, "/nothing/here").status, 404);
        assert_eq!(get(server.addr, "/echoes").status, 404);
        assert_eq!(get(server.addr, "/echo/a/a").status, 404);
        assert_eq!(
            get(server.addr, "/disabled_websocket_echo/a/a/websocket").status,
            404
        );
    });
}

#[test]
fn xhr_polling_open_echo_and_close() {
    within(LIMIT, || {
        let server = TestServer::start();
        let path = session_path("/echo", "xhr");
        let open = post(server.addr, &path, "");
        assert_eq!(open.status, 200);
        assert_eq!(open.text(), "o\n");
        let sent = post(
            server.addr,
            &with_transport(&path, "xhr_send"),
            r#"["a","b"]"#,
        );
        assert_eq!(sent.status, 204);
        assert_eq!(post(server.addr, &path, "").text(), "a[\"a\",\"b\"]\n");
        // Unknown session: 404 from the sender.
        let missing = session_path("/echo", "xhr_send");
        assert_eq!(post(server.addr, &missing, r#"["x"]"#).status, 404);
        // /close: o, then the close frame, repeated.
        let path = session_path("/close", "xhr");
        assert_eq!(post(server.addr, &path, "").text(), "o\n");
        assert_eq!(
            post(server.addr, &path, "").text(),
            "c[3000,\"Go away!\"]\n"
        );
        assert_eq!(
            post(server.addr, &path, "").text(),
            "c[3000,\"Go away!\"]\n"
        );
    });
}

#[test]
fn xhr_second_receiver_gets_2010_without_delaying_others() {
    within(LIMIT, || {
        let server = TestServer::start();
        let path = session_path("/echo", "xhr");
        assert_eq!(post(server.addr, &path, "").text(), "o\n");
        // A held poll...
        let mut held = server.client();
        held.request("POST", &path, &[], "");
        std::thread::sleep(Duration::from_millis(100));
        // ...does not delay other sessions, and a second receiver gets 2010 at once.
        let other = session_path("/echo", "xhr");
        assert_eq!(post(server.addr, &other, "").text(), "o\n");
        assert_eq!(
            post(server.addr, &path, "").text(),
            "c[2010,\"Another connection still open\"]\n"
        );
        // The held poll still gets the next message.
        post(server.addr, &with_transport(&path, "xhr_send"), r#"["x"]"#);
        assert_eq!(held.read_response().text(), "a[\"x\"]\n");
    });
}

#[test]
fn xhr_streaming_chunks_echo_and_close() {
    within(LIMIT, || {
        let server = TestServer::start();
        let path = session_path("/echo", "xhr_streaming");
        let mut stream = server.client();
        stream.request("POST", &path, &[], "");
        let head = stream.read_head();
        assert_eq!(head.status, 200);
        assert!(head.is_chunked());
        assert_eq!(head.header("content-length"), None);
        let prelude = stream.read_chunk_text().expect("prelude");
        assert_eq!(prelude, format!("{}\n", "h".repeat(2048)));
        assert_eq!(stream.read_chunk_text().as_deref(), Some("o\n"));
        post(server.addr, &with_transport(&path, "xhr_send"), r#"["x"]"#);
        assert_eq!(stream.read_chunk_text().as_deref(), Some("a[\"x\"]\n"));

        let path = session_path("/close", "xhr_streaming");
        let mut stream = server.client();
        stream.request("POST", &path, &[], "");
        stream.read_head();
        assert_eq!(stream.read_chunk().map(|c| c.len()), Some(2049));
        assert_eq!(stream.read_chunk_text().as_deref(), Some("o\n"));
        assert_eq!(
            stream.read_chunk_text().as_deref(),
            Some("c[3000,\"Go away!\"]\n")
        );
        assert_eq!(stream.read_chunk(), None);
        // Keep-alive: the connection serves another request.
        stream.request("GET", "/echo", &[], "");
        assert_eq!(stream.read_response().text(), "Welcome to SockJS!\n");
    });
}

#[test]
fn xhr_streaming_response_limit() {
    within(LIMIT, || {
        let server = TestServer::start();
        let path = session_path("/echo", "xhr_streaming");
        let mut stream = server.client();
        stream.request("POST", &path, &[], "");
        stream.read_head();
        stream.read_chunk().expect("prelude");
        assert_eq!(stream.read_chunk_text().as_deref(), Some("o\n"));
        let message = "x".repeat(128);
        let send = with_transport(&path, "xhr_send");
        for i in 0..31 {
            let sent = post(server.addr, &send, &format!("[\"{message}\"]"));
            assert_eq!(sent.status, 204, "send {i}");
            let frame = stream.read_chunk().expect("frame");
            assert_eq!(frame.len(), 134, "frame {i}");
        }
        assert_eq!(stream.read_chunk(), None, "the stream ends after 31 frames");
    });
}

#[test]
fn eventsource_htmlfile_and_jsonp() {
    within(LIMIT, || {
        let server = TestServer::start();
        let path = session_path("/echo", "eventsource");
        let mut es = server.client();
        es.request("GET", &path, &[], "");
        let head = es.read_head();
        assert_eq!(head.header("content-type"), Some("text/event-stream"));
        assert_eq!(es.read_chunk_text().as_deref(), Some("\r\n"));
        assert_eq!(es.read_chunk_text().as_deref(), Some("data: o\r\n\r\n"));
        post(server.addr, &with_transport(&path, "xhr_send"), r#"["e"]"#);
        assert_eq!(
            es.read_chunk_text().as_deref(),
            Some("data: a[\"e\"]\r\n\r\n")
        );

        let path = session_path("/echo", "htmlfile?c=%63allback");
        let mut html = server.client();
        html.request("GET", &path, &[], "");
        let head = html.read_head();
        assert_eq!(head.status, 200);
        let prelude = html.read_chunk_text().expect("prelude");
        assert!(prelude.len() > 1024);
        assert!(prelude.contains("var c = parent.callback;"));
        assert_eq!(
            html.read_chunk_text().as_deref(),
            Some("<script>\np(\"o\");\n</script>\r\n")
        );
        assert_eq!(
            get(server.addr, &session_path("/echo", "htmlfile")).status,
            500
        );

        let path = session_path("/echo", "jsonp?c=cb");
        assert_eq!(get(server.addr, &path).text(), "/**/cb(\"o\");\r\n");
        let base = path.split('?').next().unwrap_or_default();
        let send = request(
            server.addr,
            "POST",
            &with_transport(base, "jsonp_send"),
            "d=%5B%22j%22%5D",
        );
        // No form content type: the raw body is the payload, which is not JSON.
        assert_eq!(send.status, 500);
        let mut client = server.client();
        client.request(
            "POST",
            &with_transport(base, "jsonp_send"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "d=%5B%22j%22%5D",
        );
        let send = client.read_response();
        assert_eq!((send.status, send.text().as_str()), (200, "ok"));
        assert_eq!(
            get(server.addr, &path).text(),
            "/**/cb(\"a[\\\"j\\\"]\");\r\n"
        );
    });
}

#[test]
fn cookie_needed_sets_jsessionid() {
    within(LIMIT, || {
        let server = TestServer::start();
        let path = session_path("/cookie_needed_echo", "xhr");
        let open = post(server.addr, &path, "");
        assert_eq!(open.header("set-cookie"), Some("JSESSIONID=dummy; path=/"));
        let mut client = server.client();
        client.request(
            "POST",
            &session_path("/cookie_needed_echo", "xhr"),
            &[("Cookie", "JSESSIONID=abcdef")],
            "",
        );
        assert_eq!(
            client.read_response().header("set-cookie"),
            Some("JSESSIONID=abcdef; path=/")
        );
        assert_eq!(
            get(server.addr, "/cookie_needed_echo/info").header("set-cookie"),
            None
        );
    });
}

#[test]
fn heartbeat_with_short_delay() {
    within(LIMIT, || {
        let server = TestServer::with_delays(200, 5000);
        let path = session_path("/echo", "xhr");
        assert_eq!(post(server.addr, &path, "").text(), "o\n");
        let started = std::time::Instant::now();
        assert_eq!(post(server.addr, &path, "").text(), "h\n");
        assert!(started.elapsed() >= Duration::from_millis(150));

        let path = session_path("/echo", "xhr_streaming");
        let mut stream = server.client();
        stream.request("POST", &path, &[], "");
        stream.read_head();
        stream.read_chunk().expect("prelude");
        assert_eq!(stream.read_chunk_text().as_deref(), Some("o\n"));
        assert_eq!(stream.read_chunk_text().as_deref(), Some("h\n"));
        assert_eq!(stream.read_chunk_text().as_deref(), Some("h\n"));
    });
}

#[test]
fn disconnect_delay_expires_sessions() {
    within(LIMIT, || {
        let server = TestServer::with_delays(25_000, 200);
        let path = session_path("/echo", "xhr");
        assert_eq!(post(server.addr, &path, "").text(), "o\n");
        let send = with_transport(&path, "xhr_send");
        assert_eq!(post(server.addr, &send, r#"["a"]"#).status, 204);
        std::thread::sleep(Duration::from_millis(100));
        // A poll within the delay keeps the session; it answers with the message.
        assert_eq!(post(server.addr, &path, "").text(), "a[\"a\"]\n");
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(post(server.addr, &send, r#"["b"]"#).status, 404);
        assert_eq!(
            post(server.addr, &path, "").text(),
            "o\n",
            "a fresh session"
        );
    });
}

#[test]
fn http10_synchronous_and_streaming() {
    within(LIMIT, || {
        let server = TestServer::start();
        let mut client = server.client();
        client.write(b"GET /echo HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        let resp = client.read_response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("transfer-encoding"), None);
        assert_eq!(resp.header("content-length"), Some("19"));
        assert_eq!(resp.header("connection"), Some("keep-alive"));
        client.write(b"GET /echo HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert_eq!(client.read_response().text(), "Welcome to SockJS!\n");

        // Without keep-alive the server closes after the response.
        let mut client = server.client();
        client.write(b"GET /echo HTTP/1.0\r\n\r\n");
        assert_eq!(client.read_response().text(), "Welcome to SockJS!\n");
        assert!(client.is_closed());

        // Streaming: raw bytes, no length, then the socket closes.
        let path = session_path("/close", "xhr_streaming");
        let mut client = server.client();
        client.write(
            format!("POST {path} HTTP/1.0\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        );
        let head = client.read_head();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("transfer-encoding"), None);
        assert_eq!(head.header("content-length"), None);
        let body = client.read_to_end();
        let expected = format!("{}\no\nc[3000,\"Go away!\"]\n", "h".repeat(2048));
        assert_eq!(String::from_utf8_lossy(&body), expected);
    });
}

#[test]
fn keep_alive_and_pipelining() {
    within(LIMIT, || {
        let server = TestServer::start();
        let mut client = server.client();
        let path = session_path("/echo", "xhr");
        let mut both = raw_request("GET", "/echo", &[], "");
        both.push_str(&raw_request("POST", &path, &[], ""));
        client.write(both.as_bytes());
        assert_eq!(client.read_response().text(), "Welcome to SockJS!\n");
        assert_eq!(client.read_response().text(), "o\n");
        // And a third request later on the same connection.
        client.request("POST", &with_transport(&path, "xhr_send"), &[], r#"["p"]"#);
        assert_eq!(client.read_response().status, 204);
        client.request("POST", &path, &[], "");
        assert_eq!(client.read_response().text(), "a[\"p\"]\n");
        // Expect: 100-continue.
        client.write(
            format!(
                "POST {} HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
                with_transport(&path, "xhr_send")
            )
            .as_bytes(),
        );
        assert_eq!(client.read_head().status, 100);
        client.write(br#"["c"]"#);
        assert_eq!(client.read_response().status, 204);
    });
}

#[test]
fn bad_requests_are_answered_and_closed() {
    within(LIMIT, || {
        let server = TestServer::start();
        let mut client = server.client();
        client.write(b"GARBAGE\r\n\r\n");
        assert_eq!(client.read_response().status, 400);
        assert!(client.is_closed());
        let mut client = server.client();
        client.write(b"GET /echo HTTP/2.0\r\n\r\n");
        assert_eq!(client.read_response().status, 505);
        assert!(client.is_closed());
        let mut client = server.client();
        client.write(b"POST /echo/a/a/xhr_send HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(client.read_response().status, 400);
        assert!(client.is_closed());
    });
}

#[test]
fn aborted_receivers_close_their_sessions() {
    within(LIMIT, || {
        let server = TestServer::start();
        // xhr_streaming: drop the connection while the stream is open.
        let path = session_path("/echo", "xhr_streaming");
        let mut stream = server.client();
        stream.request("POST", &path, &[], "");
        stream.read_head();
        stream.read_chunk().expect("prelude");
        assert_eq!(stream.read_chunk_text().as_deref(), Some("o\n"));
        drop(stream);
        std::thread::sleep(Duration::from_millis(100));
        let mut next = server.client();
        next.request("POST", &path, &[], "");
        next.read_head();
        next.read_chunk().expect("prelude");
        assert_eq!(next.read_chunk_text().as_deref(), Some("o\n"));

        // xhr polling: drop a held poll.
        let path = session_path("/echo", "xhr");
        assert_eq!(post(server.addr, &path, "").text(), "o\n");
        let mut held = server.client();
        held.request("POST", &path, &[], "");
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(post(server.addr, &path, "").text(), "o\n");
    });
}

/// A JSON string literal of `s` (enough for frames: quotes and backslashes).
fn js(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// How a transport wraps one frame.
type Wrap = fn(&str) -> String;

struct Streaming {
    transport: &'static str,
    method: &'static str,
    wrap: Wrap,
}

const STREAMING: [Streaming; 3] = [
    Streaming {
        transport: "xhr_streaming",
        method: "POST",
        wrap: |f| format!("{f}\n"),
    },
    Streaming {
        transport: "eventsource",
        method: "GET",
        wrap: |f| format!("data: {f}\r\n\r\n"),
    },
    Streaming {
        transport: "htmlfile?c=cb",
        method: "GET",
        wrap: |f| format!("<script>\np({});\n</script>\r\n", js(f)),
    },
];

fn open_stream(server: &TestServer, t: &Streaming, path: &str) -> Client {
    let mut client = server.client();
    client.request(t.method, path, &[], "");
    let head = client.read_head();
    assert_eq!(head.status, 200, "{}", t.transport);
    assert!(head.is_chunked());
    client.read_chunk().expect("prelude");
    client
}

#[test]
fn every_streaming_transport_open_echo_close_2010_and_limit() {
    within(LIMIT, || {
        let server = TestServer::start();
        for t in &STREAMING {
            let path = session_path("/echo", t.transport);
            let base = path.split('?').next().unwrap_or_default().to_owned();
            let send = with_transport(&base, "xhr_send");
            let mut stream = open_stream(&server, t, &path);
            assert_eq!(
                stream.read_chunk_text(),
                Some((t.wrap)("o")),
                "{}",
                t.transport
            );
            post(server.addr, &send, r#"["x"]"#);
            assert_eq!(stream.read_chunk_text(), Some((t.wrap)(r#"a["x"]"#)));

            // A second receiver: prelude, 2010, end; the first is untouched.
            let mut second = open_stream(&server, t, &path);
            assert_eq!(
                second.read_chunk_text(),
                Some((t.wrap)(r#"c[2010,"Another connection still open"]"#))
            );
            assert_eq!(second.read_chunk(), None);

            // Response limit 4096: the stream ends on the frame that reaches it.
            let message = "x".repeat(128);
            let frame = (t.wrap)(&format!("a[{}]", js(&message)));
            let mut written = (t.wrap)("o").len() + (t.wrap)(r#"a["x"]"#).len();
            while written < 4096 {
                post(server.addr, &send, &format!("[\"{message}\"]"));
                assert_eq!(stream.read_chunk_text().as_ref(), Some(&frame));
                written += frame.len();
            }
            assert_eq!(
                stream.read_chunk(),
                None,
                "{} ends at the limit",
                t.transport
            );

            let path = session_path("/close", t.transport);
            let mut stream = open_stream(&server, t, &path);
            assert_eq!(stream.read_chunk_text(), Some((t.wrap)("o")));
            assert_eq!(
                stream.read_chunk_text(),
                Some((t.wrap)(r#"c[3000,"Go away!"]"#))
            );
            assert_eq!(stream.read_chunk(), None);
        }
    });
}

#[test]
fn every_polling_transport_open_echo_close_and_2010() {
    within(LIMIT, || {
        let server = TestServer::start();
        let polling: [(&str, &str, Wrap); 2] = [
            ("xhr", "POST", |f| format!("{f}\n")),
            ("jsonp?c=cb", "GET", |f| format!("/**/cb({});\r\n", js(f))),
        ];
        for (transport, method, wrap) in polling {
            let path = session_path("/echo", transport);
            let base = path.split('?').next().unwrap_or_default().to_owned();
            let poll = |server: &TestServer| request(server.addr, method, &path, "").text();
            assert_eq!(poll(&server), wrap("o"), "{transport}");
            post(
                server.addr,
                &with_transport(&base, "xhr_send"),
                r#"["x","y"]"#,
            );
            assert_eq!(poll(&server), wrap(r#"a["x","y"]"#));
            let mut held = server.client();
            held.request(method, &path, &[], "");
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(
                poll(&server),
                wrap(r#"c[2010,"Another connection still open"]"#)
            );
            post(server.addr, &with_transport(&base, "xhr_send"), r#"["z"]"#);
            assert_eq!(held.read_response().text(), wrap(r#"a["z"]"#));

            let path = session_path("/close", transport);
            let poll = |server: &TestServer| request(server.addr, method, &path, "").text();
            assert_eq!(poll(&server), wrap("o"));
            assert_eq!(poll(&server), wrap(r#"c[3000,"Go away!"]"#));
            assert_eq!(poll(&server), wrap(r#"c[3000,"Go away!"]"#));
        }
    });
}
