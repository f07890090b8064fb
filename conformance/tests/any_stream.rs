//! Both adapters serve a connection handed over as any byte stream (here a Unix socket),
//! with the client's address passed alongside: `sockjs_tokio::serve_connection` and
//! `sockjs_smol::Handler::serve_connection`. HTTP transports and WebSockets go through the
//! driver's `Polled`; without a liveness probe, the abort grace applies. A started server
//! (`Handler` on both) counts the connections handed over and shuts them down gracefully.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use conformance::http::{Conn, Request};
use sockjs_core::Options;
use sockjs_core::driver::{Config, Session};
use support::{ADAPTERS, Adapter, within};

/// The address the tests pass for the client.
fn peer() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 4567))
}

/// Echoes, and answers `peer?` with the session's peer address.
async fn app(mut session: Session) {
    while let Some(message) = session.recv().await {
        let answer = match message.as_str() {
            "peer?" => format!("{:?}", session.peer_addr()),
            _ => message,
        };
        let _ = session.send(answer).await;
    }
}

/// Something that serves connections handed over as Unix sockets; dropped, it stops.
struct Served {
    connect: Box<dyn Fn() -> UnixStream + Send + Sync>,
    _stop: Box<dyn Send>,
}

/// sockjs-smol's server with the echo application at `/echo`, on one thread, not started.
fn smol_server(config: &Config, options: Options) -> sockjs_smol::Server {
    sockjs_smol::Server::with_config(config.clone())
        .threads(1)
        .service("/echo", options, app)
        .unwrap()
}

/// Serves `stream` with `handler`, on a thread of its own.
fn serve_on_smol(handler: &sockjs_smol::Handler, stream: UnixStream) {
    let stream = async_io::Async::new(stream).unwrap();
    let handler = handler.clone();
    std::thread::spawn(move || async_io::block_on(handler.serve_connection(stream, peer())));
}

/// A tokio runtime of one worker, and sockjs-tokio's routes with the echo application at
/// `/echo`.
fn tokio_server(
    config: &Config,
    options: Options,
) -> (tokio::runtime::Runtime, sockjs_tokio::Routes) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let service = sockjs_tokio::SockJs::builder(options)
        .config(config.clone())
        .build(app)
        .unwrap();
    (runtime, sockjs_tokio::Routes::new().mount("/echo", service))
}

/// Serves `stream` with `routes` on the runtime of `handle`.
fn serve_on_tokio(
    handle: &tokio::runtime::Handle,
    routes: &sockjs_tokio::Routes,
    config: &Arc<Config>,
    stream: UnixStream,
) {
    stream.set_nonblocking(true).unwrap();
    let _guard = handle.enter();
    let stream = tokio::net::UnixStream::from_std(stream).unwrap();
    handle.spawn(sockjs_tokio::serve_connection(
        stream,
        peer(),
        routes.clone(),
        config.clone(),
    ));
}

fn serve(adapter: Adapter) -> Served {
    let config = Config {
        abort_grace: Duration::from_millis(50),
        ..Config::default()
    };
    match adapter {
        Adapter::Smol => {
            let handler = smol_server(&config, Options::default()).start().unwrap();
            Served {
                connect: Box::new(move || {
                    let (client, server) = UnixStream::pair().unwrap();
                    serve_on_smol(&handler, server);
                    client
                }),
                _stop: Box::new(()),
            }
        }
        Adapter::Tokio => {
            let (runtime, routes) = tokio_server(&config, Options::default());
            let config = Arc::new(config);
            let handle = runtime.handle().clone();
            Served {
                connect: Box::new(move || {
                    let (client, server) = UnixStream::pair().unwrap();
                    serve_on_tokio(&handle, &routes, &config, server);
                    client
                }),
                _stop: Box::new(runtime),
            }
        }
    }
}

/// Reads until the close frame (or the error that came instead).
fn close_frame<S: std::io::Read + std::io::Write>(
    ws: &mut tungstenite::WebSocket<S>,
) -> Result<Option<tungstenite::protocol::CloseFrame>, tungstenite::Error> {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => return Ok(frame),
            Ok(_) => {}
            Err(error) => return Err(error),
        }
    }
}

fn conn(served: &Served) -> Conn<UnixStream> {
    let stream = (served.connect)();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    Conn::new(stream, "localhost")
}

#[test]
fn both_adapters_serve_http_and_websockets_over_a_unix_socket() {
    for adapter in ADAPTERS {
        within(Duration::from_secs(30), move || {
            let served = serve(adapter);
            // Keep-alive requests on one connection: greeting, info, an xhr session.
            let mut c = conn(&served);
            let greeting = c.roundtrip(&Request::new("GET", "/echo")).unwrap();
            assert_eq!(greeting.text(), "Welcome to SockJS!\n", "{adapter:?}");
            let info = c.roundtrip(&Request::new("GET", "/echo/info")).unwrap();
            assert!(info.text().contains("\"websocket\":true"), "{adapter:?}");
            let missing = c.roundtrip(&Request::new("GET", "/nowhere")).unwrap();
            assert_eq!(missing.status(), 404, "{adapter:?}");
            let open = c
                .roundtrip(&Request::new("POST", "/echo/0/unix/xhr"))
                .unwrap();
            assert_eq!(open.text(), "o\n", "{adapter:?}");
            let send = Request::new("POST", "/echo/0/unix/xhr_send").body(r#"["peer?"]"#);
            assert_eq!(c.roundtrip(&send).unwrap().status(), 204, "{adapter:?}");
            let poll = c
                .roundtrip(&Request::new("POST", "/echo/0/unix/xhr"))
                .unwrap();
            assert_eq!(
                poll.text(),
                format!("a[\"Some({})\"]\n", peer()),
                "{adapter:?}"
            );
            // A streaming response, chunk by chunk.
            let mut s = conn(&served);
            s.send(&Request::new("POST", "/echo/0/stream/xhr_streaming"))
                .unwrap();
            assert_eq!(s.read_head().unwrap().status, 200, "{adapter:?}");
            assert_eq!(s.read_chunk().unwrap().len(), 2049, "{adapter:?}");
            assert_eq!(s.read_chunk().unwrap(), b"o\n", "{adapter:?}");
            // A WebSocket: a big echo crosses the pump's buffers both ways.
            let (mut ws, _) =
                tungstenite::client("ws://localhost/echo/websocket", (served.connect)()).unwrap();
            let big = "x".repeat(200_000);
            for message in ["hello", big.as_str()] {
                ws.send(tungstenite::Message::text(message)).unwrap();
                match ws.read().unwrap() {
                    tungstenite::Message::Text(text) => {
                        assert_eq!(text.len(), message.len(), "{adapter:?}")
                    }
                    other => panic!("{adapter:?}: {other:?}"),
                }
            }
            ws.close(None).unwrap();
        });
    }
}

/// A server the application drops without a graceful shutdown (sockjs-smol's last
/// `Handler`, sockjs-tokio's last `Routes`) closes its sessions as a shutdown does: an open
/// WebSocket gets the shutdown's close frame, not a cut connection, on both adapters. (On
/// sockjs-smol the server's own threads run until its last task has ended.)
#[test]
fn a_websocket_gets_its_close_when_its_server_is_dropped_on_both_adapters() {
    for adapter in ADAPTERS {
        within(Duration::from_secs(30), move || {
            let (client, server) = UnixStream::pair().unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let config = Config::default();
            // Keeps the runtime the tokio server's tasks run on (an application's own).
            let mut runtime = None;
            // A handle kept past the server (for its metrics, say) keeps nothing running.
            let mut kept = None;
            let dropped: Box<dyn FnOnce()> = match adapter {
                Adapter::Smol => {
                    let smol = smol_server(&config, Options::default());
                    kept = Some(smol.handle());
                    let handler = smol.start().unwrap();
                    serve_on_smol(&handler, server);
                    Box::new(move || drop(handler))
                }
                Adapter::Tokio => {
                    let (tokio, routes) = tokio_server(&config, Options::default());
                    serve_on_tokio(tokio.handle(), &routes, &Arc::new(config.clone()), server);
                    runtime = Some(tokio);
                    Box::new(move || drop(routes))
                }
            };
            let (mut ws, _) = tungstenite::client("ws://localhost/echo/websocket", client).unwrap();
            ws.send(tungstenite::Message::text("hello")).unwrap();
            assert!(
                matches!(ws.read().unwrap(), tungstenite::Message::Text(t) if t.as_str() == "hello"),
                "{adapter:?}"
            );
            dropped();
            let ending = close_frame(&mut ws);
            assert!(
                matches!(
                    &ending,
                    Ok(Some(frame)) if u16::from(frame.code) == config.shutdown_code
                ),
                "{adapter:?}: {ending:?}"
            );
            drop((runtime, kept));
        });
    }
}

/// A started server on either adapter (`Handler`, on both) counts the connections handed
/// over to it, a WebSocket too until its pump ends, and shuts them down as its own server
/// does: `Handler::shutdown` closes every session (a WebSocket gets the close frame, a
/// polling client the `c` frame on its kept-alive connection), a new session gets `503`,
/// idle connections close once no session is left, and it returns once none is open.
/// (sockjs-tokio had only the free `serve_connection`: its connections were neither
/// counted nor shut down.)
#[test]
fn connections_handed_to_a_started_server_are_counted_and_shut_down_on_both_adapters() {
    for adapter in ADAPTERS {
        within(Duration::from_secs(30), move || {
            let options = Options {
                // Long enough for the steps below to run before the session is forgotten
                // (a closed HTTP session without a receiver stays this long).
                disconnect_delay: Duration::from_secs(2),
                ..Options::default()
            };
            // Connections close by the shutdown's doing, not by timing out: a shutdown that
            // did not end their drain would wait its whole timeout.
            let config = Config {
                abort_grace: Duration::from_millis(50),
                header_read_timeout: Duration::from_secs(60),
                shutdown_timeout: Duration::from_secs(60),
                ..Config::default()
            };
            // How to hand a connection over, to shut down (blocking), and to count.
            type Connect = Box<dyn Fn() -> UnixStream + Send + Sync>;
            type Shutdown = Box<dyn FnOnce() + Send>;
            type Open = Box<dyn Fn() -> Option<usize> + Send + Sync>;
            let (connect, shutdown, open, _runtime): (Connect, Shutdown, Open, Box<dyn Send>) =
                match adapter {
                    Adapter::Smol => {
                        let handler = smol_server(&config, options).start().unwrap();
                        let (serving, counting) = (handler.clone(), handler.clone());
                        (
                            Box::new(move || {
                                let (client, server) = UnixStream::pair().unwrap();
                                serve_on_smol(&serving, server);
                                client
                            }),
                            Box::new(move || async_io::block_on(handler.shutdown())),
                            Box::new(move || counting.unrouted().open_connections()),
                            Box::new(()),
                        )
                    }
                    Adapter::Tokio => {
                        let (runtime, routes) = tokio_server(&config, options);
                        let handler = sockjs_tokio::Handler::new(routes, config.clone());
                        let (serving, counting) = (handler.clone(), handler.clone());
                        let (spawning, blocking) =
                            (runtime.handle().clone(), runtime.handle().clone());
                        (
                            Box::new(move || {
                                let (client, server) = UnixStream::pair().unwrap();
                                server.set_nonblocking(true).unwrap();
                                let _guard = spawning.enter();
                                let server = tokio::net::UnixStream::from_std(server).unwrap();
                                spawning.spawn(serving.serve_connection(server, peer()));
                                client
                            }),
                            Box::new(move || blocking.block_on(handler.shutdown())),
                            Box::new(move || counting.unrouted().open_connections()),
                            Box::new(runtime),
                        )
                    }
                };
            let count_reaches = |n: usize| {
                let until = std::time::Instant::now() + Duration::from_secs(5);
                while open() != Some(n) && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(10));
                }
                open() == Some(n)
            };
            let conn = || {
                let stream = connect();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                Conn::new(stream, "localhost")
            };
            let mut c = conn();
            let open_session = c
                .roundtrip(&Request::new("POST", "/echo/000/a/xhr"))
                .unwrap();
            assert_eq!(open_session.text(), "o\n", "{adapter:?}");
            let (mut ws, _) =
                tungstenite::client("ws://localhost/echo/websocket", connect()).unwrap();
            ws.send(tungstenite::Message::text("hello")).unwrap();
            assert!(
                matches!(ws.read().unwrap(), tungstenite::Message::Text(t) if t.as_str() == "hello"),
                "{adapter:?}"
            );
            // The kept-alive HTTP connection and the WebSocket.
            assert!(count_reaches(2), "{adapter:?}: {:?} open", open());

            let (done_tx, done_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                shutdown();
                let _ = done_tx.send(());
            });
            let ending = close_frame(&mut ws);
            assert!(
                matches!(&ending, Ok(Some(frame)) if u16::from(frame.code) == config.shutdown_code),
                "{adapter:?}: {ending:?}"
            );
            let poll = c
                .roundtrip(&Request::new("POST", "/echo/000/a/xhr"))
                .unwrap();
            assert_eq!(
                poll.text(),
                format!("c[{},{:?}]\n", config.shutdown_code, config.shutdown_reason),
                "{adapter:?}"
            );
            let refused = conn()
                .roundtrip(&Request::new("POST", "/echo/000/b/xhr"))
                .unwrap();
            assert_eq!(refused.status(), 503, "{adapter:?}");
            assert!(
                done_rx.recv_timeout(Duration::from_secs(15)).is_ok(),
                "{adapter:?}: the shutdown did not return ({:?} open)",
                open()
            );
            assert_eq!(open(), Some(0), "{adapter:?}");
            // The idle kept-alive connection was closed by the server.
            assert_eq!(c.is_closed().ok(), Some(true), "{adapter:?}");
        });
    }
}
