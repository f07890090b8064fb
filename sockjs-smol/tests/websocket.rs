//! WebSocket transports over real loopback sockets: SockJS WebSocket and raw WebSocket
//! through a tungstenite client, and hixie-76 by hand.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use tungstenite::{Message, WebSocket};

const LIMIT: Duration = Duration::from_secs(20);

fn connect(server: &TestServer, path: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("timeout");
    let (ws, response) = tungstenite::client(server.url(path), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

fn text(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().expect("read") {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Reads until the close frame and returns it; then the connection must end.
fn close_frame(ws: &mut WebSocket<TcpStream>) -> (u16, String) {
    let frame = loop {
        match ws.read().expect("read") {
            Message::Close(frame) => break frame,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected close, got {other:?}"),
        }
    };
    // The client's reply is flushed by the next read, which then sees the end.
    assert!(matches!(
        ws.read(),
        Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)
    ));
    frame.map_or((1005, String::new()), |f| {
        (u16::from(f.code), f.reason.as_str().to_owned())
    })
}

#[test]
fn sockjs_websocket_open_echo_and_client_close() {
    within(LIMIT, || {
        let server = TestServer::start();
        let mut ws = connect(&server, &session_path("/echo", "websocket"));
        assert_eq!(text(&mut ws), "o");
        ws.send(Message::text(r#"["a","b"]"#)).expect("send");
        // The two echoes may or may not be batched in one frame.
        let mut echoed = text(&mut ws);
        if echoed == r#"a["a"]"# {
            echoed.push_str(&text(&mut ws));
        }
        assert!(
            echoed == r#"a["a","b"]"# || echoed == r#"a["a"]a["b"]"#,
            "{echoed}"
        );
        // Empty frames and [] are ignored.
        ws.send(Message::text("")).expect("send");
        ws.send(Message::text("[]")).expect("send");
        ws.send(Message::text(r#"["c"]"#)).expect("send");
        assert_eq!(text(&mut ws), r#"a["c"]"#);
        ws.close(None).expect("close");
        assert_eq!(close_frame(&mut ws).0, 1005, "our empty close frame echoed");
    });
}

#[test]
fn sockjs_websocket_server_close() {
    within(LIMIT, || {
        let server = TestServer::start();
        let mut ws = connect(&server, &session_path("/close", "websocket"));
        assert_eq!(text(&mut ws), "o");
        assert_eq!(text(&mut ws), r#"c[3000,"Go away!"]"#);
        let (code, _) = close_frame(&mut ws);
        assert_eq!(code, 1000);
    });
}

#[test]
fn sockjs_websocket_broken_json_closes() {
    within(LIMIT, || {
        let server = TestServer::start();
        let mut ws = connect(&server, &session_path("/echo", "websocket"));
        assert_eq!(text(&mut ws), "o");
        ws.send(Message::text(r#"["a"#)).expect("send");
        let (code, reason) = close_frame(&mut ws);
        assert_eq!((code, reason.as_str()), (3000, "Broken framing."));
    });
}

#[test]
fn sockjs_websocket_reused_session_ids_are_independent() {
    within(LIMIT, || {
        let server = TestServer::start();
        let path = session_path("/echo", "websocket");
        let mut first = connect(&server, &path);
        let mut second = connect(&server, &path);
        assert_eq!(text(&mut first), "o");
        assert_eq!(text(&mut second), "o");
        second.send(Message::text(r#"["2"]"#)).expect("send");
        first.send(Message::text(r#"["1"]"#)).expect("send");
        assert_eq!(text(&mut first), r#"a["1"]"#);
        assert_eq!(text(&mut second), r#"a["2"]"#);
    });
}

#[test]
fn websocket_oversize_message_closes_with_1009() {
    within(LIMIT, || {
        let options = sockjs_smol::Options {
            max_message_size: 1024,
            ..Default::default()
        };
        let server = TestServer::with(suite_server(options, test_config()));
        let mut ws = connect(&server, &session_path("/echo", "websocket"));
        assert_eq!(text(&mut ws), "o");
        let big = format!("[\"{}\"]", "x".repeat(4096));
        ws.send(Message::text(big)).expect("send");
        let (code, _) = close_frame(&mut ws);
        assert_eq!(code, 1009);
    });
}

#[test]
fn raw_websocket_echo_and_close() {
    within(LIMIT, || {
        let server = TestServer::start();
        let mut ws = connect(&server, "/echo/websocket");
        ws.send(Message::text("Hello world!\u{ffff}"))
            .expect("send");
        assert_eq!(text(&mut ws), "Hello world!\u{ffff}");
        ws.send(Message::text("[not json")).expect("send");
        assert_eq!(text(&mut ws), "[not json");

        let mut ws = connect(&server, "/close/websocket");
        let (code, reason) = close_frame(&mut ws);
        assert_eq!((code, reason.as_str()), (3000, "Go away!"));
    });
}

#[test]
fn websocket_handshake_errors() {
    within(LIMIT, || {
        let server = TestServer::start();
        let path = session_path("/echo", "websocket");
        assert_eq!(get(server.addr, &path).status, 400);
        assert_eq!(post(server.addr, &path, "").status, 405);
        let mut client = server.client();
        client.request(
            "GET",
            &path,
            &[("Upgrade", "websocket"), ("Connection", "close")],
            "",
        );
        assert_eq!(client.read_response().status, 400);
    });
}

#[test]
fn hixie76_handshake_and_echo() {
    within(LIMIT, || {
        let server = TestServer::start();
        let path = session_path("/echo", "websocket");
        let mut client = server.client();
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: example.com\r\nUpgrade: WebSocket\r\n\
             Connection: Upgrade\r\nOrigin: http://example.com/\r\n\
             Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n\
             Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n"
        );
        // The head first; key3 only once the 101 head is back (as behind HAProxy).
        client.write(head.as_bytes());
        let resp = client.read_head();
        assert_eq!(resp.status, 101);
        assert_eq!(resp.header("upgrade"), Some("WebSocket"));
        assert_eq!(
            resp.header("sec-websocket-origin"),
            Some("http://example.com/")
        );
        assert_eq!(
            resp.header("sec-websocket-location").map(str::to_owned),
            Some(format!("ws://example.com{path}"))
        );
        client.write(b"aaaaaaaa");
        let mut answer = [0u8; 16];
        client.reader.read_exact(&mut answer).expect("answer");
        assert_eq!(
            answer,
            [
                0xca, 0x34, 0x00, 0xd8, 0xa5, 0x08, 0x47, 0x97, 0x2c, 0xd5, 0x71, 0x5a, 0xba, 0xbf,
                0x43, 0x7b
            ]
        );
        let mut open = [0u8; 3];
        client.reader.read_exact(&mut open).expect("open frame");
        assert_eq!(open, [0x00, b'o', 0xff]);
        client.write(b"\x00[\"x\"]\xff");
        let mut frame = [0u8; 8];
        client.reader.read_exact(&mut frame).expect("message frame");
        assert_eq!(&frame, b"\x00a[\"x\"]\xff");
        // Client close frame: answered, then the connection ends.
        client.write(&[0xff, 0x00]);
        let mut close = [0u8; 2];
        client.reader.read_exact(&mut close).expect("close frame");
        assert_eq!(close, [0xff, 0x00]);
        assert!(client.is_closed());
    });
}

#[test]
fn hixie76_key3_in_the_same_write() {
    within(LIMIT, || {
        let server = TestServer::start();
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        let request = "GET /close/websocket HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n\
             Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\naaaaaaaa";
        stream.write_all(request.as_bytes()).expect("write");
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
        assert!(all.starts_with(b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n"));
        let rest = &all[head_end..];
        assert_eq!(
            rest[..16].to_vec(),
            vec![
                0xca, 0x34, 0x00, 0xd8, 0xa5, 0x08, 0x47, 0x97, 0x2c, 0xd5, 0x71, 0x5a, 0xba, 0xbf,
                0x43, 0x7b
            ]
        );
        // Raw WebSocket close on hixie-76: just the close frame.
        assert_eq!(&rest[16..], &[0xff, 0x00]);
    });
}
