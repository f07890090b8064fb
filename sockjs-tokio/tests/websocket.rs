//! WebSocket transports (SockJS framing, raw, hixie-76) through `serve` and through axum.

mod common;

use std::time::Duration;

use common::{Conn, IO_TIMEOUT, Mode, session, start};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

both_modes!(
    websocket_open_echo_and_heartbeat_free,
    websocket_close_3000_then_closed,
    websocket_broken_json_terminates,
    websocket_empty_frames_ignored,
    raw_websocket_echo,
    raw_websocket_close_reason,
    hixie76_handshake_and_frames,
    hixie76_key3_sent_with_the_head,
);

async fn connect(addr: std::net::SocketAddr, path: &str) -> WebSocketStream<TcpStream> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let url = format!("ws://{addr}{path}");
    let (ws, response) =
        tokio::time::timeout(IO_TIMEOUT, tokio_tungstenite::client_async(url, stream))
            .await
            .expect("handshake timed out")
            .expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

async fn next(ws: &mut WebSocketStream<TcpStream>) -> Option<Message> {
    tokio::time::timeout(IO_TIMEOUT, ws.next())
        .await
        .expect("read timed out")
        .and_then(Result::ok)
}

async fn text(ws: &mut WebSocketStream<TcpStream>) -> String {
    match next(ws).await {
        Some(Message::Text(t)) => t.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn websocket_open_echo_and_heartbeat_free(mode: Mode) {
    let server = start(mode).await;
    let mut ws = connect(server.addr, &format!("{}/websocket", session("/echo"))).await;
    assert_eq!(text(&mut ws).await, "o");
    ws.send(Message::text(r#"["a","b"]"#)).await.expect("send");
    assert_eq!(text(&mut ws).await, r#"a["a"]"#);
    assert_eq!(text(&mut ws).await, r#"a["b"]"#);
    ws.send(Message::text(r#""single""#)).await.expect("send");
    assert_eq!(text(&mut ws).await, r#"a["single"]"#);
}

async fn websocket_close_3000_then_closed(mode: Mode) {
    let server = start(mode).await;
    let mut ws = connect(server.addr, &format!("{}/websocket", session("/close"))).await;
    assert_eq!(text(&mut ws).await, "o");
    assert_eq!(text(&mut ws).await, r#"c[3000,"Go away!"]"#);
    match next(&mut ws).await {
        Some(Message::Close(_)) | None => {}
        other => panic!("expected close, got {other:?}"),
    }
    assert!(next(&mut ws).await.is_none(), "socket closed");
}

async fn websocket_broken_json_terminates(mode: Mode) {
    let server = start(mode).await;
    let mut ws = connect(server.addr, &format!("{}/websocket", session("/echo"))).await;
    assert_eq!(text(&mut ws).await, "o");
    ws.send(Message::text(r#"["a"#)).await.expect("send");
    match next(&mut ws).await {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(u16::from(frame.code), 3000);
            assert_eq!(frame.reason.as_str(), "Broken framing.");
        }
        other => panic!("expected close 3000, got {other:?}"),
    }
}

async fn websocket_empty_frames_ignored(mode: Mode) {
    let server = start(mode).await;
    let mut ws = connect(server.addr, &format!("{}/websocket", session("/echo"))).await;
    assert_eq!(text(&mut ws).await, "o");
    ws.send(Message::text("")).await.expect("send");
    ws.send(Message::text("[]")).await.expect("send");
    ws.send(Message::text(r#"["after"]"#)).await.expect("send");
    assert_eq!(text(&mut ws).await, r#"a["after"]"#);
}

async fn raw_websocket_echo(mode: Mode) {
    let server = start(mode).await;
    let mut ws = connect(server.addr, "/echo/websocket").await;
    ws.send(Message::text("Hello world!\u{ffff}"))
        .await
        .expect("send");
    assert_eq!(text(&mut ws).await, "Hello world!\u{ffff}");
}

async fn raw_websocket_close_reason(mode: Mode) {
    let server = start(mode).await;
    let mut ws = connect(server.addr, "/close/websocket").await;
    match next(&mut ws).await {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(u16::from(frame.code), 3000);
            assert_eq!(frame.reason.as_str(), "Go away!");
        }
        other => panic!("expected close, got {other:?}"),
    }
}

const KEY1: &str = "4 @1  46546xW%0l 1 5";
const KEY2: &str = "12998 5 Y3 1  .P00";
const ANSWER: [u8; 16] = [
    0xca, 0x34, 0x00, 0xd8, 0xa5, 0x08, 0x47, 0x97, 0x2c, 0xd5, 0x71, 0x5a, 0xba, 0xbf, 0x43, 0x7b,
];

fn hixie_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:1\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\
         Origin: http://localhost:1\r\nSec-WebSocket-Key1: {KEY1}\r\nSec-WebSocket-Key2: {KEY2}\r\n\r\n"
    )
}

/// HAProxy's order: the head first, key3 only after the 101 arrived.
async fn hixie76_handshake_and_frames(mode: Mode) {
    let server = start(mode).await;
    let path = format!("{}/websocket", session("/echo"));
    let mut conn = Conn::connect(server.addr).await;
    conn.send_raw(hixie_request(&path).as_bytes()).await;
    let head = conn.head().await;
    assert_eq!(head.status, 101);
    assert_eq!(head.reason, "WebSocket Protocol Handshake");
    assert_eq!(head.header("upgrade"), Some("WebSocket"));
    assert_eq!(head.header("connection"), Some("Upgrade"));
    assert_eq!(
        head.header("sec-websocket-origin"),
        Some("http://localhost:1")
    );
    assert_eq!(
        head.header("sec-websocket-location"),
        Some(format!("ws://localhost:1{path}").as_str())
    );
    assert!(head.header("content-length").is_none());
    conn.send_raw(b"aaaaaaaa").await;
    assert_eq!(conn.exact(16).await, ANSWER);
    assert_eq!(conn.exact(3).await, b"\x00o\xff");
    conn.send_raw(b"\x00[\"x\"]\xff").await;
    assert_eq!(conn.exact(8).await, b"\x00a[\"x\"]\xff");
    conn.send_raw(b"\xff\x00").await;
    assert_eq!(conn.exact(2).await, b"\xff\x00");
    assert!(conn.closed().await);
}

/// A browser's order: key3 right behind the head, in the same segment.
async fn hixie76_key3_sent_with_the_head(mode: Mode) {
    let server = start(mode).await;
    let path = format!("{}/websocket", session("/close"));
    let mut conn = Conn::connect(server.addr).await;
    let mut raw = hixie_request(&path).into_bytes();
    raw.extend_from_slice(b"aaaaaaaa");
    conn.send_raw(&raw).await;
    assert_eq!(conn.head().await.status, 101);
    assert_eq!(conn.exact(16).await, ANSWER);
    assert_eq!(conn.exact(3).await, b"\x00o\xff");
    let close = b"\x00c[3000,\"Go away!\"]\xff";
    assert_eq!(conn.exact(close.len()).await, close);
    assert_eq!(conn.exact(2).await, b"\xff\x00");
    tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("closed in time");
}
