//! Under axum with the `axum` feature: the client's address and the unstripped URI come
//! from axum's `ConnectInfo` and `OriginalUri`, without any `map_request`.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use conformance::http::{Conn, Request};
use sockjs_tokio::{OriginalUri, Session, SockJs};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What a session's handler saw when it opened.
#[derive(Debug)]
struct Opened {
    peer: Option<SocketAddr>,
    path: String,
    original: Option<String>,
}

fn service(tx: mpsc::Sender<Opened>) -> SockJs {
    SockJs::new(Default::default(), move |mut session: Session| {
        let request = session.request();
        let _ = tx.send(Opened {
            peer: session.peer_addr(),
            path: request.uri.path().to_owned(),
            original: request
                .extensions
                .get::<OriginalUri>()
                .map(|uri| uri.0.path().to_owned()),
        });
        async move {
            while let Some(text) = session.recv().await {
                let _ = session.send(text).await;
            }
        }
    })
}

/// Opens an xhr session at `path` from a client whose address is returned.
async fn open(addr: SocketAddr, path: &'static str) -> SocketAddr {
    tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let local = stream.local_addr().unwrap();
        let mut conn = Conn::new(stream, &addr.to_string());
        let response = conn.roundtrip(&Request::new("POST", path)).unwrap();
        assert_eq!(response.text(), "o\n");
        local
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_addr_is_set_under_axum_serve_with_connect_info_without_map_request() {
    let (tx, opened) = mpsc::channel();
    let app = axum::Router::new().nest_service("/echo", service(tx));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let local = open(addr, "/echo/000/a/xhr").await;
    let seen = opened.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(seen.peer, Some(local));
    // axum stripped the mount path; its `OriginalUri` is copied too.
    assert_eq!(seen.path, "/000/a/xhr");
    assert_eq!(seen.original.as_deref(), Some("/echo/000/a/xhr"));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_connect_info_there_is_no_peer_addr() {
    let (tx, opened) = mpsc::channel();
    let app = axum::Router::new().nest_service("/echo", service(tx));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    open(addr, "/echo/000/b/xhr").await;
    let seen = opened.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(seen.peer, None);
    assert_eq!(seen.original.as_deref(), Some("/echo/000/b/xhr"));
    server.abort();
}

/// Reads `stream` until `done` says the bytes so far are enough, or to its end; fails on
/// a read that times out.
fn read_until(stream: &mut TcpStream, mut done: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
    use std::io::Read as _;
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !done(&seen) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&seen)),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_opens_no_session_and_settled_waits_for_the_websockets() {
    use std::future::IntoFuture as _;
    use std::io::Write as _;
    use tower::ServiceExt as _;

    let config = sockjs_tokio::Config {
        close_linger: Duration::from_millis(1500),
        ..Default::default()
    };
    let sockjs = SockJs::builder(Default::default())
        .config(config)
        .build(|mut session: Session| async move {
            while let Some(text) = session.recv().await {
                let _ = session.send(text).await;
            }
        })
        .unwrap();
    let app = axum::Router::new().nest_service("/echo", sockjs.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let closing = sockjs.clone();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                closing.shutdown();
            })
            .into_future(),
    );

    // A WebSocket whose client will never answer the close frame.
    let mut socket = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let head = "GET /echo/000/w/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        stream.write_all(head.as_bytes()).unwrap();
        let open = read_until(&mut stream, |seen| seen.ends_with(b"\x81\x01o"));
        assert!(open.starts_with(b"HTTP/1.1 101"), "{open:?}");
        stream
    })
    .await
    .unwrap();
    assert_eq!(sockjs.session_count(), 1);

    stop.send(()).unwrap();
    tokio::time::timeout(IO_TIMEOUT, server)
        .await
        .expect("axum's graceful shutdown ended")
        .unwrap()
        .unwrap();
    // From the shutdown on, the service opens no session, whoever asks.
    let late = http::Request::post("/000/late/xhr")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = sockjs.clone().oneshot(late).await.unwrap();
    assert_eq!(response.status(), 503);
    // The session and its handler are over, but the socket is not: its close is out, and
    // it waits out its linger for the client's.
    assert!(
        !sockjs.settled(Duration::from_millis(300)).await,
        "settled while the WebSocket still lingers"
    );
    assert!(sockjs.settled(IO_TIMEOUT).await, "the WebSocket let go");
    // By then the WebSocket had its close frame and was let go of.
    let rest = tokio::task::spawn_blocking(move || read_until(&mut socket, |_| false))
        .await
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains("c[1001,\"Server shutting down\"]"),
        "{rest:?}"
    );
}
