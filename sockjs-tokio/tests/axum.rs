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
