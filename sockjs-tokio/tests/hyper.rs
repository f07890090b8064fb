//! The tower service under plain hyper (`hyper::server::conn::http1` with upgrades), with
//! no router in front: the service's own prefix, streaming, WebSockets, and the request
//! extensions it reads. The shared semantics are tested once, against both adapters, in
//! the conformance crate (`conformance/tests/semantics.rs`).
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use conformance::http::{Conn, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use sockjs_tokio::{Options, PeerAddr, Session, SockJs, Transport};
use tokio_tungstenite::tungstenite::{self, Message};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What a session's handler saw when it opened.
#[derive(Debug)]
struct Opened {
    path: String,
    transport: Transport,
    peer: Option<SocketAddr>,
}

/// Serves `service` on 127.0.0.1:0 with hyper's HTTP/1 connection driver, one task per
/// connection; with `peer`, each request gets the client's address as a [`PeerAddr`].
async fn serve_with_hyper(service: SockJs, peer: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, client)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            let hyper_service =
                hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                    if peer {
                        request.extensions_mut().insert(PeerAddr(client));
                    }
                    let mut service = service.clone();
                    async move { tower_service::Service::call(&mut service, request).await }
                });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

fn echo_service(tx: mpsc::Sender<Opened>) -> SockJs {
    let options = Options {
        // No router strips a mount path here: the service knows its own.
        prefix: "/echo".into(),
        ..Options::default()
    };
    SockJs::new(options, move |mut session: Session| {
        let _ = tx.send(Opened {
            path: session.request().uri.path().to_owned(),
            transport: session.transport(),
            peer: session.peer_addr(),
        });
        async move {
            while let Some(text) = session.recv().await {
                let _ = session.send(text).await;
            }
        }
    })
}

/// Runs the blocking client code off the runtime.
async fn client<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::time::timeout(Duration::from_secs(30), tokio::task::spawn_blocking(f))
        .await
        .expect("the client finished in time")
        .expect("the client did not panic")
}

fn ws_text(ws: &mut tungstenite::WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().unwrap() {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Close(frame) => return format!("close {frame:?}"),
            _ => {}
        }
    }
}

fn ws_connect(addr: SocketAddr, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let (ws, response) = tungstenite::client(format!("ws://{addr}{path}"), stream).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_service_serves_http_transports_under_plain_hyper() {
    let (tx, opened) = mpsc::channel();
    let addr = serve_with_hyper(echo_service(tx), false).await;
    client(move || {
        let host = addr.to_string();
        let mut conn = Conn::connect(&host, IO_TIMEOUT).unwrap();
        let greeting = conn.roundtrip(&Request::new("GET", "/echo")).unwrap();
        assert_eq!(greeting.text(), "Welcome to SockJS!\n");
        let info = conn.roundtrip(&Request::new("GET", "/echo/info")).unwrap();
        assert!(
            info.text().contains("\"websocket\":true"),
            "{}",
            info.text()
        );
        // Outside the service's prefix.
        let elsewhere = conn.roundtrip(&Request::new("GET", "/other")).unwrap();
        assert_eq!(elsewhere.status(), 404);

        // Polling, on one keep-alive connection.
        let poll = Request::new("POST", "/echo/000/p/xhr");
        assert_eq!(conn.roundtrip(&poll).unwrap().text(), "o\n");
        let send = Request::new("POST", "/echo/000/p/xhr_send").body(r#"["a","b"]"#);
        assert_eq!(conn.roundtrip(&send).unwrap().status(), 204);
        assert_eq!(conn.roundtrip(&poll).unwrap().text(), "a[\"a\",\"b\"]\n");

        // Streaming: one HTTP chunk per frame.
        let mut stream = Conn::connect(&host, IO_TIMEOUT).unwrap();
        stream
            .send(&Request::new("POST", "/echo/000/s/xhr_streaming"))
            .unwrap();
        let head = stream.read_head().unwrap();
        assert_eq!(head.status, 200);
        assert!(head.is_chunked());
        assert_eq!(stream.read_chunk().unwrap().len(), 2049);
        assert_eq!(stream.read_chunk().unwrap(), b"o\n");
        let send = Request::new("POST", "/echo/000/s/xhr_send").body(r#"["x"]"#);
        assert_eq!(conn.roundtrip(&send).unwrap().status(), 204);
        assert_eq!(stream.read_chunk().unwrap(), b"a[\"x\"]\n");
    })
    .await;
    let first = opened.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(first.path, "/echo/000/p/xhr");
    assert_eq!(first.transport, Transport::XhrPolling);
    // Plain hyper records no client address unless the server inserts a `PeerAddr`.
    assert_eq!(first.peer, None);
    let second = opened.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(second.transport, Transport::XhrStreaming);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_service_runs_websockets_under_plain_hyper_with_upgrades() {
    let (tx, opened) = mpsc::channel();
    let addr = serve_with_hyper(echo_service(tx), true).await;
    let local = client(move || {
        let mut ws = ws_connect(addr, "/echo/000/w/websocket");
        let local = ws.get_ref().local_addr().unwrap();
        assert_eq!(ws_text(&mut ws), "o");
        ws.send(Message::text(r#"["over hyper"]"#)).unwrap();
        assert_eq!(ws_text(&mut ws), r#"a["over hyper"]"#);
        ws.close(None).unwrap();
        while ws.read().is_ok() {}

        let mut raw = ws_connect(addr, "/echo/websocket");
        raw.send(Message::text("raw")).unwrap();
        assert_eq!(ws_text(&mut raw), "raw");
        local
    })
    .await;
    let seen = opened.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(seen.transport, Transport::WebSocket);
    assert_eq!(seen.path, "/echo/000/w/websocket");
    // The `PeerAddr` the server inserted.
    assert_eq!(seen.peer, Some(local));
    let raw = opened.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(raw.transport, Transport::RawWebSocket);
}

/// A request whose URI says `https` (absolute-form, as a TLS terminator may write it, or
/// HTTP/2's `:scheme`) counts as TLS: hixie-76 answers with a `wss://` location. Without
/// it, `ws://`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_uri_counts_as_tls() {
    let options = Options {
        prefix: "/echo".into(),
        hixie76: true,
        ..Options::default()
    };
    let service = SockJs::new(options, |mut session: Session| async move {
        while session.recv().await.is_some() {}
    });
    let addr = serve_with_hyper(service, false).await;
    let locations = client(move || {
        ["https://example.com", "http://example.com", ""].map(|origin| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let head = format!(
                "GET {origin}/echo/000/tls/websocket HTTP/1.1\r\nHost: example.com\r\n\
                 Upgrade: WebSocket\r\nConnection: Upgrade\r\nOrigin: http://example.com\r\n\
                 Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n\
                 Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\naaaaaaaa"
            );
            std::io::Write::write_all(&mut stream, head.as_bytes()).unwrap();
            let mut conn = Conn::new(stream, "example.com");
            let head = conn.read_head().unwrap();
            assert_eq!(head.status, 101, "{origin}");
            head.header("sec-websocket-location").map(str::to_owned)
        })
    })
    .await;
    assert_eq!(
        locations.map(|l| l.unwrap_or_default()),
        [
            "wss://example.com/echo/000/tls/websocket",
            "ws://example.com/echo/000/tls/websocket",
            "ws://example.com/echo/000/tls/websocket",
        ]
    );
}

/// A WebSocket request for `path`, as a client sends it (RFC 6455 §4.1).
fn websocket_request(path: &str) -> http::Request<String> {
    http::Request::get(path)
        .header("host", "x")
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(String::new())
        .unwrap()
}

/// A WebSocket request on a connection that cannot be upgraded (no hyper upgrade hand-over:
/// another stack, a test's `oneshot`) gets its 500 before the service opens a session for
/// it: no handler runs, no session counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_request_that_cannot_be_upgraded_opens_no_session() {
    let (tx, rx) = mpsc::channel();
    let mut service = echo_service(tx);
    let request = websocket_request("/echo/000/nohyper/websocket");
    let response = tower_service::Service::call(&mut service, request)
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.try_recv().is_err(), "a handler ran");
    assert_eq!(service.session_count(), 0);

    // One the service would not upgrade anyway gets the service's own answer: outside its
    // prefix, or for a transport that is off (before: 500 for both).
    let options = Options {
        prefix: "/echo".into(),
        transports: sockjs_tokio::Transports::ALL.without(Transport::WebSocket),
        ..Options::default()
    };
    let mut service = SockJs::new(options, |_session: Session| async {});
    for path in ["/other/000/s/websocket", "/echo/000/s/websocket"] {
        let request = websocket_request(path);
        let response = tower_service::Service::call(&mut service, request)
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}

/// A target in authority form, which hyper hands on as an empty path, is no greeting of a
/// service mounted at the root (RFC 9112 §3.2.3: that form is CONNECT's); `/` still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_a_path_is_no_root_services_greeting() {
    let options = Options {
        prefix: String::new(),
        ..Options::default()
    };
    let service = SockJs::new(options, |_session: Session| async {});
    let addr = serve_with_hyper(service, false).await;
    client(move || {
        let mut conn = Conn::connect(&addr.to_string(), IO_TIMEOUT).unwrap();
        let greeting = conn.roundtrip(&Request::new("GET", "/")).unwrap();
        assert_eq!(greeting.text(), "Welcome to SockJS!\n");
        conn.write_raw(b"GET example.com:80 HTTP/1.1\r\nHost: example.com\r\n\r\n")
            .unwrap();
        let response = conn.read_response("GET").unwrap();
        assert_eq!(response.status(), 404, "{}", response.text());
    })
    .await;
}
