//! Server behaviour over real loopback sockets: graceful shutdown, timeouts, the session
//! API and the overflow policies.

mod common;

use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use sockjs_smol::{
    CloseReason, Config, Options, SendError, Server, Session, SessionState, Transport,
};
use tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn graceful_shutdown_closes_sessions_and_connections() {
    within(LIMIT, || {
        let options = Options {
            disconnect_delay: Duration::from_millis(300),
            ..Options::default()
        };
        let mut server = TestServer::with(suite_server(options, test_config()));
        // An open stream, an open WebSocket and an idle keep-alive connection.
        let path = session_path("/echo", "xhr_streaming");
        let mut stream = server.client();
        stream.request("POST", &path, &[], "");
        stream.read_head();
        stream.read_chunk().expect("prelude");
        assert_eq!(stream.read_chunk_text().as_deref(), Some("o\n"));
        let tcp = TcpStream::connect(server.addr).expect("connect");
        tcp.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        let (mut ws, _) =
            tungstenite::client(server.url("/echo/a/b/websocket"), tcp).expect("handshake");
        assert!(matches!(ws.read(), Ok(Message::Text(t)) if t.as_str() == "o"));
        let mut idle = server.client();
        idle.request("GET", "/echo", &[], "");
        assert_eq!(idle.read_response().status, 200);

        let started = Instant::now();
        server.handle.shutdown();
        assert_eq!(
            stream.read_chunk_text().as_deref(),
            Some("c[1001,\"Server shutting down\"]\n")
        );
        assert_eq!(stream.read_chunk(), None);
        assert!(
            matches!(ws.read(), Ok(Message::Text(t)) if t.as_str() == "c[1001,\"Server shutting down\"]")
        );
        assert!(matches!(ws.read(), Ok(Message::Close(_))));
        assert!(idle.is_closed(), "idle keep-alive connections are closed");
        assert!(server.shutdown(Duration::from_secs(5)), "serve returned");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(
            TcpStream::connect(server.addr).is_err(),
            "no longer accepting"
        );
    });
}

#[test]
fn slow_request_heads_and_idle_connections_time_out() {
    within(LIMIT, || {
        let config = Config {
            header_read_timeout: Duration::from_millis(300),
            keep_alive_timeout: Duration::from_millis(300),
            ..test_config()
        };
        let server = TestServer::with(suite_server(Options::default(), config));
        // Slowloris: a head that never ends.
        let mut slow = server.client();
        let started = Instant::now();
        slow.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n");
        std::thread::sleep(Duration::from_millis(100));
        slow.write(b"X-Slow: 1\r\n");
        assert!(slow.is_closed());
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        // A connection that never sends anything.
        let mut silent = server.client();
        assert!(silent.is_closed());
        // Keep-alive idle timeout after a request.
        let mut idle = server.client();
        idle.request("GET", "/echo", &[], "");
        assert_eq!(idle.read_response().status, 200);
        let started = Instant::now();
        assert!(idle.is_closed());
        assert!(started.elapsed() < Duration::from_secs(2));
    });
}

#[derive(Debug)]
enum Event {
    Opened {
        id: String,
        transport: Transport,
        peer: bool,
        path: String,
        state: SessionState,
    },
    Ended {
        state: SessionState,
        reason: Option<CloseReason>,
        send_after_close: Result<(), SendError>,
    },
}

#[test]
fn session_api() {
    within(LIMIT, || {
        let (tx, events) = mpsc::channel();
        let options = Options {
            disconnect_delay: Duration::from_millis(200),
            ..Options::default()
        };
        let server = Server::with_config(test_config())
            .service("/app", options, move |mut session: Session| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(Event::Opened {
                        id: session.id().to_owned(),
                        transport: session.transport(),
                        peer: session.peer_addr().is_some(),
                        path: session.request().uri.path().to_owned(),
                        state: session.state(),
                    });
                    // A sender used from another thread.
                    let sender = session.sender();
                    std::thread::spawn(move || {
                        let _ = sender.send("from elsewhere");
                    })
                    .join()
                    .expect("sender thread");
                    while let Some(message) = session.recv().await {
                        if message == "close" {
                            session.close(3001, "bye");
                            assert_eq!(session.state(), SessionState::Closing);
                        } else {
                            let _ = session.send(&format!("got {message}"));
                        }
                    }
                    session.closed().await;
                    let _ = tx.send(Event::Ended {
                        state: session.state(),
                        reason: session.close_reason(),
                        send_after_close: session.send("late"),
                    });
                }
            })
            .expect("service");
        let server = TestServer::with(server);
        let path = "/app/1/sid/xhr";
        assert_eq!(post(server.addr, path, "").text(), "o\n");
        match events.recv_timeout(READ_TIMEOUT).expect("opened") {
            Event::Opened {
                id,
                transport,
                peer,
                path: opened_path,
                state,
            } => {
                assert_eq!(id, "sid");
                assert_eq!(transport, Transport::XhrPolling);
                assert!(peer);
                assert_eq!(opened_path, path);
                assert_eq!(state, SessionState::Open);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            post(server.addr, path, "").text(),
            "a[\"from elsewhere\"]\n"
        );
        post(server.addr, "/app/1/sid/xhr_send", r#"["hi"]"#);
        assert_eq!(post(server.addr, path, "").text(), "a[\"got hi\"]\n");
        post(server.addr, "/app/1/sid/xhr_send", r#"["close"]"#);
        assert_eq!(post(server.addr, path, "").text(), "c[3001,\"bye\"]\n");
        match events.recv_timeout(READ_TIMEOUT).expect("ended") {
            Event::Ended {
                state,
                reason,
                send_after_close,
            } => {
                assert_eq!(state, SessionState::Closed);
                assert_eq!(
                    reason,
                    Some(CloseReason::Closed {
                        code: 3001,
                        reason: "bye".into()
                    })
                );
                assert!(send_after_close.is_err());
            }
            other => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn dropping_the_session_closes_it() {
    within(LIMIT, || {
        let server = Server::with_config(test_config())
            .service("/drop", Options::default(), |_session: Session| async {})
            .expect("service");
        let server = TestServer::with(server);
        let path = session_path("/drop", "xhr");
        assert_eq!(post(server.addr, &path, "").text(), "o\n");
        assert_eq!(
            post(server.addr, &path, "").text(),
            "c[1000,\"Normal closure\"]\n"
        );
    });
}

#[test]
fn inbound_overflow_closes_the_session() {
    within(LIMIT, || {
        let config = Config {
            max_session_inbound: 2,
            ..test_config()
        };
        // An application that never reads.
        let server = Server::with_config(config)
            .service("/deaf", Options::default(), |session: Session| async move {
                session.closed().await;
            })
            .expect("service");
        let server = TestServer::with(server);
        let path = session_path("/deaf", "xhr");
        assert_eq!(post(server.addr, &path, "").text(), "o\n");
        let sent = post(
            server.addr,
            &with_transport(&path, "xhr_send"),
            r#"["1","2","3"]"#,
        );
        assert_eq!(sent.status, 204);
        assert_eq!(
            post(server.addr, &path, "").text(),
            "c[1013,\"Receive queue overflow\"]\n"
        );
    });
}

#[test]
fn outgoing_overflow_closes_only_that_connection() {
    within(LIMIT, || {
        // One executor thread makes the interleaving deterministic: the handler's two sends
        // run back to back, before the connection task can write the first.
        let config = Config {
            threads: 1,
            max_connection_queue_bytes: 100,
            ..test_config()
        };
        let server = Server::with_config(config)
            .service(
                "/burst",
                Options::default(),
                |mut session: Session| async move {
                    if session.transport() == Transport::WebSocket {
                        let big = "x".repeat(60);
                        let _ = session.send(&big);
                        let _ = session.send(&big);
                    }
                    while let Some(message) = session.recv().await {
                        let _ = session.send(&message);
                    }
                },
            )
            .expect("service");
        let server = TestServer::with(server);
        let tcp = TcpStream::connect(server.addr).expect("connect");
        tcp.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        let (mut ws, _) =
            tungstenite::client(server.url("/burst/a/b/websocket"), tcp).expect("handshake");
        assert!(matches!(ws.read(), Ok(Message::Text(t)) if t.as_str() == "o"));
        let mut texts = 0;
        let ended = loop {
            match ws.read() {
                Ok(Message::Text(_)) => texts += 1,
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(texts, 1, "the message that overflowed is not sent");
        assert!(
            !matches!(ended, tungstenite::Error::Io(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the connection was closed, not left hanging: {ended:?}"
        );
        // Other sessions are unaffected.
        let path = session_path("/burst", "xhr");
        assert_eq!(post(server.addr, &path, "").text(), "o\n");
        post(server.addr, &with_transport(&path, "xhr_send"), r#"["ok"]"#);
        assert_eq!(post(server.addr, &path, "").text(), "a[\"ok\"]\n");
    });
}

#[test]
fn convenience_serve_function() {
    within(LIMIT, || {
        let listener =
            async_io::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
        let addr = listener.get_ref().local_addr().expect("addr");
        let options = Options {
            prefix: "/one".into(),
            ..Options::default()
        };
        std::thread::spawn(move || {
            let _ = async_io::block_on(sockjs_smol::serve(listener, options, echo));
        });
        assert_eq!(get(addr, "/one").text(), "Welcome to SockJS!\n");
        assert_eq!(get(addr, "/two").status, 404);
    });
}
