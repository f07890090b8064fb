//! A server dropped without a graceful shutdown: its sessions still end, so their
//! handlers (tasks of the runtime, which outlive the server) end too and let go of them.
#![allow(clippy::unwrap_used)]

use std::future::IntoFuture as _;
use std::net::TcpStream;
use std::time::Duration;

use conformance::http::{Conn, Request};
use sockjs_tokio::{Options, Routes, Session, SockJs};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_end_when_their_server_is_dropped_without_a_shutdown() {
    let (ended_tx, mut ended) = tokio::sync::mpsc::unbounded_channel();
    let options = Options {
        disconnect_delay: Duration::from_millis(100),
        ..Options::default()
    };
    let service = SockJs::new(options, move |mut session: Session| {
        let ended_tx = ended_tx.clone();
        async move {
            while let Some(text) = session.recv().await {
                let _ = session.send(text).await;
            }
            let _ = ended_tx.send(session.id().to_owned());
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        sockjs_tokio::serve(listener, Routes::new().mount("/echo", service)).into_future(),
    );

    // A polling client that opens its session and never comes back.
    tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut conn = Conn::new(stream, &addr.to_string());
        let response = conn
            .roundtrip(&Request::new("POST", "/echo/000/gone/xhr"))
            .unwrap();
        assert_eq!(response.text(), "o\n");
    })
    .await
    .unwrap();

    // The server goes, with every handle to its service.
    server.abort();
    let _ = server.await;
    let ended = tokio::time::timeout(IO_TIMEOUT, ended.recv()).await;
    assert_eq!(
        ended.ok().flatten().as_deref(),
        Some("gone"),
        "the handler still waits"
    );
}
