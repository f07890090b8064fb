//! Graceful shutdown, the session API and overflow policies.

mod common;

use std::time::Duration;

use common::{Conn, IO_TIMEOUT, Mode, post, session, start, start_with};
use futures_util::{SinkExt as _, StreamExt as _};
use sockjs_tokio::{Options, Session, SessionState, SockJs, Transport};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

both_modes!(
    graceful_shutdown_closes_sessions,
    session_api,
    stuck_websocket_client_is_dropped_without_blocking_others,
    app_not_reading_closes_session,
);

async fn graceful_shutdown_closes_sessions(mode: Mode) {
    let mut server = start(mode).await;
    let s = session("/echo");
    let mut stream = Conn::connect(server.addr).await;
    stream
        .send("POST", &format!("{s}/xhr_streaming"), "1.1", &[], "")
        .await;
    stream.head().await;
    stream.chunk().await;
    assert_eq!(stream.chunk_text().await.as_deref(), Some("o\n"));

    let ws_stream = TcpStream::connect(server.addr).await.expect("connect");
    let url = format!("ws://{}{}/websocket", server.addr, session("/echo"));
    let (mut ws, _) = tokio_tungstenite::client_async(url, ws_stream)
        .await
        .expect("handshake");
    let open = ws.next().await.and_then(Result::ok);
    assert_eq!(open, Some(Message::text("o")));

    server.stop();
    assert_eq!(
        stream.chunk_text().await.as_deref(),
        Some("c[1001,\"Server shutting down\"]\n")
    );
    assert_eq!(stream.chunk().await, None);
    let close = tokio::time::timeout(IO_TIMEOUT, ws.next())
        .await
        .expect("ws read timed out")
        .and_then(Result::ok);
    assert_eq!(
        close,
        Some(Message::text("c[1001,\"Server shutting down\"]"))
    );
    // Let the ws close handshake finish so the server can drain.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(IO_TIMEOUT, ws.next()).await {}
    drop(ws);
    drop(stream);
    let task = &mut server.task;
    let result = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("server stopped within the drain timeout");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer accepting"
    );
}

/// What the test handler saw of its session.
#[derive(Debug)]
struct Seen {
    id: String,
    transport: Transport,
    peer: bool,
    path: String,
    state_before: SessionState,
    messages: Vec<String>,
    state_after: SessionState,
}

async fn session_api(mode: Mode) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let options = Options {
        disconnect_delay: Duration::from_millis(200),
        ..Options::default()
    };
    let service = SockJs::new(options, move |mut session: Session| {
        let tx = tx.clone();
        async move {
            let state_before = session.state();
            let sender = session.sender();
            // Send from another task through the cloneable handle.
            tokio::spawn(async move {
                let _ = sender.send("from another task");
            })
            .await
            .expect("join");
            let mut messages = Vec::new();
            while let Some(text) = session.recv().await {
                let done = text == "bye";
                messages.push(text);
                if done {
                    let _ = session.close(3001, "bye");
                }
            }
            session.closed().await;
            let _ = tx.send(Seen {
                id: session.id().to_owned(),
                transport: session.transport(),
                peer: session.peer_addr().is_some(),
                path: session.request().uri.path().to_owned(),
                state_before,
                messages,
                state_after: session.state(),
            });
        }
    });
    let server = start_with(mode, vec![("/api", service)]).await;
    let s = session("/api");
    let r = post(server.addr, &format!("{s}/xhr"), "").await;
    assert_eq!(r.text(), "o\n");
    let r = post(server.addr, &format!("{s}/xhr"), "").await;
    assert_eq!(r.text(), "a[\"from another task\"]\n");
    post(server.addr, &format!("{s}/xhr_send"), r#"["hi","bye"]"#).await;
    let r = post(server.addr, &format!("{s}/xhr"), "").await;
    assert_eq!(r.text(), "c[3001,\"bye\"]\n");
    let seen = tokio::time::timeout(IO_TIMEOUT, rx.recv())
        .await
        .expect("handler finished after the disconnect delay")
        .expect("seen");
    assert_eq!(Some(seen.id.as_str()), s.rsplit('/').next());
    assert_eq!(seen.transport, Transport::XhrPolling);
    assert!(seen.peer, "peer address recorded");
    assert!(seen.path.ends_with("/xhr") && !seen.path.starts_with("/api"));
    assert_eq!(seen.state_before, SessionState::Open);
    assert_eq!(seen.messages, ["hi", "bye"]);
    assert_eq!(seen.state_after, SessionState::Closed);
}

async fn stuck_websocket_client_is_dropped_without_blocking_others(mode: Mode) {
    let options = Options {
        max_queued_bytes: 64 * 1024,
        ..Options::default()
    };
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
    let flood = SockJs::builder(options.clone())
        .outbound_queue(16)
        .build(move |session: Session| {
            let closed_tx = closed_tx.clone();
            async move {
                // Flood a client that never reads.
                let chunk = "z".repeat(16 * 1024);
                for _ in 0..20_000 {
                    if session.send(&chunk).is_err() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                tokio::time::timeout(Duration::from_secs(10), session.closed())
                    .await
                    .expect("session closed after overflow");
                let _ = closed_tx.send(());
            }
        })
        .expect("options");
    let echo = SockJs::new(options, common::echo);
    let server = start_with(mode, vec![("/flood", flood), ("/echo", echo)]).await;

    let stuck = TcpStream::connect(server.addr).await.expect("connect");
    let url = format!("ws://{}/flood/websocket", server.addr);
    let (stuck_ws, _) = tokio_tungstenite::client_async(url, stuck)
        .await
        .expect("handshake");

    // Another session keeps working meanwhile.
    let other = TcpStream::connect(server.addr).await.expect("connect");
    let url = format!("ws://{}/echo/websocket", server.addr);
    let (mut ws, _) = tokio_tungstenite::client_async(url, other)
        .await
        .expect("handshake");
    for i in 0..20 {
        ws.send(Message::text(format!("ping {i}")))
            .await
            .expect("send");
        let reply = tokio::time::timeout(IO_TIMEOUT, ws.next())
            .await
            .expect("echo not blocked")
            .and_then(Result::ok);
        assert_eq!(reply, Some(Message::text(format!("ping {i}"))));
    }
    tokio::time::timeout(Duration::from_secs(15), closed_rx.recv())
        .await
        .expect("the flooded session was closed")
        .expect("signal");
    drop(stuck_ws);
}

async fn app_not_reading_closes_session(mode: Mode) {
    let service = SockJs::builder(Options::default())
        .inbound_queue(4)
        .build(|session: Session| async move {
            // Never reads; keeps the session (and its queue) alive.
            session.closed().await;
        })
        .expect("options");
    let server = start_with(mode, vec![("/lazy", service)]).await;
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let url = format!("ws://{}{}/websocket", server.addr, session("/lazy"));
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("handshake");
    assert_eq!(
        ws.next().await.and_then(Result::ok),
        Some(Message::text("o"))
    );
    ws.send(Message::text(r#"["1","2","3","4","5","6"]"#))
        .await
        .expect("send");
    let close = tokio::time::timeout(IO_TIMEOUT, ws.next())
        .await
        .expect("closed in time")
        .and_then(Result::ok);
    assert_eq!(
        close,
        Some(Message::text("c[1013,\"Application not reading\"]"))
    );
}
