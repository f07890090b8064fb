//! What only sockjs-smol has: the `serve` convenience function, `Server::service`'s checks,
//! its own HTTP/1.1 connection handling (pipelining, unknown prefixes) and `serve`
//! returning after a graceful shutdown. The shared semantics are tested once, against
//! both adapters, in the conformance crate (`conformance/tests/semantics.rs`).
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_io::Async;
use conformance::http::{Conn, Request};
use sockjs_smol::{Options, OptionsError, Server, ServerHandle, Session};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

async fn echo(mut session: Session) {
    while let Some(text) = session.recv().await {
        let _ = session.send(text).await;
    }
}

/// A server running on its own thread.
struct Running {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    fn start(server: Server) -> Running {
        let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
        let addr = listener.get_ref().local_addr().unwrap();
        let handle = server.handle();
        let thread =
            std::thread::spawn(move || async_io::block_on(server.threads(2).serve(listener)));
        Running {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    fn conn(&self) -> Conn {
        Conn::connect(&self.addr.to_string(), IO_TIMEOUT).unwrap()
    }

    fn get(&self, path: &str) -> conformance::http::Response {
        self.conn().roundtrip(&Request::new("GET", path)).unwrap()
    }

    /// Shuts down and waits for `serve` to return (at most `limit`).
    fn stop(mut self, limit: Duration) -> Option<std::io::Result<()>> {
        self.handle.shutdown();
        let thread = self.thread.take()?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(thread.join().unwrap());
        });
        rx.recv_timeout(limit).ok()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn echo_server() -> Running {
    let options = Options {
        disconnect_delay: Duration::from_millis(200),
        ..Options::default()
    };
    Running::start(Server::new().service("/echo", options, echo).unwrap())
}

#[test]
fn serve_runs_one_service_at_the_options_prefix() {
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = listener.get_ref().local_addr().unwrap();
    let options = Options {
        prefix: "/one".into(),
        ..Options::default()
    };
    // `serve` runs until the process ends: the thread is left to it.
    std::thread::spawn(move || async_io::block_on(sockjs_smol::serve(listener, options, echo)));
    let host = addr.to_string();
    let request = |req: Request| {
        Conn::connect(&host, IO_TIMEOUT)
            .unwrap()
            .roundtrip(&req)
            .unwrap()
    };
    assert_eq!(
        request(Request::new("GET", "/one")).text(),
        "Welcome to SockJS!\n"
    );
    assert_eq!(request(Request::new("GET", "/two")).status(), 404);
    let xhr = "/one/000/s/xhr";
    assert_eq!(request(Request::new("POST", xhr)).text(), "o\n");
    let sent = request(Request::new("POST", "/one/000/s/xhr_send").body(r#"["hi"]"#));
    assert_eq!(sent.status(), 204);
    assert_eq!(request(Request::new("POST", xhr)).text(), "a[\"hi\"]\n");
}

#[test]
fn serve_refuses_invalid_options() {
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let options = Options {
        prefix: "no-slash".into(),
        ..Options::default()
    };
    let error = async_io::block_on(sockjs_smol::serve(listener, options, echo)).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

/// A prefix is read as sockjs-tokio's `Routes::mount` reads one (a leading `/` added,
/// trailing ones dropped: `a`, `/a` and `/a/` are one prefix, `/` the root), and one
/// prefix is refused a second time however it is written.
#[test]
fn service_reads_a_prefix_as_a_mount_and_refuses_a_duplicate() {
    for prefix in ["/a", "a", "/a/", "a//"] {
        for again in ["/a", "a", "/a/"] {
            let server = Server::new()
                .service(prefix, Options::default(), echo)
                .unwrap();
            assert_eq!(
                server.service(again, Options::default(), echo).unwrap_err(),
                OptionsError::Prefix,
                "{prefix:?} then {again:?}"
            );
        }
    }
    let root = Server::new()
        .service("/", Options::default(), echo)
        .unwrap();
    assert_eq!(
        root.service("", Options::default(), echo).unwrap_err(),
        OptionsError::Prefix
    );
    // The prefix argument wins over `options.prefix`.
    let options = Options {
        prefix: "/ignored".into(),
        ..Options::default()
    };
    let server = Server::new()
        .service("", options, echo)
        .unwrap()
        .service("/b", Options::default(), echo)
        .unwrap();
    // Other invalid options are refused too.
    let zero = Options {
        response_limit: 0,
        ..Options::default()
    };
    assert_eq!(
        server.service("/c", zero, echo).unwrap_err(),
        OptionsError::ZeroLimit
    );
}

#[test]
fn the_root_and_the_longest_prefix_win() {
    let server = Server::new()
        .service("", Options::default(), echo)
        .unwrap()
        .service(
            "/deep/er",
            Options::default(),
            |session: Session| async move {
                let _ = session.close(3000, "deeper");
            },
        )
        .unwrap();
    let running = Running::start(server);
    assert_eq!(running.get("/").text(), "Welcome to SockJS!\n");
    assert_eq!(running.get("/deep/er").text(), "Welcome to SockJS!\n");
    let mut conn = running.conn();
    let deeper = conn
        .roundtrip(&Request::new("POST", "/deep/er/000/s/xhr"))
        .unwrap();
    assert_eq!(deeper.text(), "o\n");
    let again = conn
        .roundtrip(&Request::new("POST", "/deep/er/000/s/xhr"))
        .unwrap();
    assert_eq!(again.text(), "c[3000,\"deeper\"]\n");
    // `/deep` alone is not a service: the root service answers it (and knows no such
    // path).
    assert_eq!(running.get("/deep").status(), 404);
}

#[test]
fn pipelined_requests_on_one_connection_are_answered_in_order() {
    let running = echo_server();
    let mut conn = running.conn();
    let host = running.addr.to_string();
    let requests = [
        Request::new("GET", "/echo"),
        Request::new("GET", "/echo/info"),
        Request::new("POST", "/echo/000/p/xhr"),
        Request::new("POST", "/echo/000/p/xhr_send").body(r#"["x","y"]"#),
        Request::new("GET", "/nope"),
        Request::new("POST", "/echo/000/p/xhr"),
    ];
    let mut bytes = Vec::new();
    for request in &requests {
        bytes.extend_from_slice(&request.to_bytes(&host));
    }
    // All of them in one write.
    conn.write_raw(&bytes).unwrap();
    let mut answers = Vec::new();
    for request in &requests {
        let response = conn.read_response(&request.method).unwrap();
        answers.push((response.status(), response.text()));
    }
    assert_eq!(answers[0], (200, "Welcome to SockJS!\n".to_owned()));
    assert_eq!(answers[1].0, 200);
    assert!(
        answers[1].1.contains("\"websocket\":true"),
        "{:?}",
        answers[1]
    );
    assert_eq!(answers[2], (200, "o\n".to_owned()));
    assert_eq!(answers[3], (204, String::new()));
    assert_eq!(answers[4].0, 404);
    assert_eq!(answers[5], (200, "a[\"x\",\"y\"]\n".to_owned()));
    // Still usable afterwards.
    let response = conn.roundtrip(&Request::new("GET", "/echo")).unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn an_unknown_prefix_gets_404_and_keeps_the_connection() {
    let running = echo_server();
    let mut conn = running.conn();
    for path in ["/nope", "/echox", "/ech", "/nope/000/s/xhr", "/"] {
        let response = conn.roundtrip(&Request::new("GET", path)).unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let response = conn
        .roundtrip(&Request::new("POST", "/nope/000/s/xhr"))
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = conn.roundtrip(&Request::new("GET", "/echo")).unwrap();
    assert_eq!(response.text(), "Welcome to SockJS!\n");
}

#[test]
fn serve_returns_after_a_graceful_shutdown() {
    // A disconnect delay that outlasts the count below on a busy machine.
    let options = Options {
        disconnect_delay: Duration::from_secs(2),
        ..Options::default()
    };
    let running = Running::start(Server::new().service("/echo", options, echo).unwrap());
    let mut conn = running.conn();
    assert_eq!(
        conn.roundtrip(&Request::new("POST", "/echo/000/g/xhr"))
            .unwrap()
            .text(),
        "o\n"
    );
    let handle = running.handle.clone();
    assert!(!handle.is_shutdown());
    assert_eq!(handle.session_count(), 1);
    // The session is closed at once and forgotten after its disconnect delay; then
    // `serve` returns.
    let result = running.stop(Duration::from_secs(10));
    assert!(matches!(result, Some(Ok(()))), "{result:?}");
    assert!(handle.is_shutdown());
    assert_eq!(handle.session_count(), 0);
}

/// A connection's task is held for the connection's whole life, by every idle streaming or
/// polling client: it stays small whatever the build's features (a TLS connection's state
/// is boxed apart, only for TLS connections), and a request's future holds what came of the
/// request, not the request (1,200 B; 2,200 B when it held the request twice, 1,480 B when
/// the driver's connection held each of its races' futures twice).
#[test]
fn connection_future_stays_small() {
    let handler = Server::new()
        .service("/echo", Options::default(), echo)
        .unwrap()
        .start()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::net::TcpStream::connect(addr).unwrap();
    let stream = Async::new(listener.accept().unwrap().0).unwrap();
    let connection = handler.serve_connection(stream, addr);
    let size = std::mem::size_of_val(&connection);
    assert!(size <= 1280, "a connection's future: {size} B");
    drop((connection, client));
}

/// A started server (`Server::start`, connections accepted by the application) shuts down
/// from its `ServerHandle` alone, as a serving one does: its sessions are closed, a new
/// one is refused, and `Handler::shutdown` returns once they are gone. (The handle only
/// marked the server as shutting down: sessions stayed open, new ones opened, and every
/// other request got `503`.)
#[test]
fn a_started_server_shuts_down_from_its_handle() {
    let options = Options {
        disconnect_delay: Duration::from_millis(300),
        ..Options::default()
    };
    let server = Server::new().service("/echo", options, echo).unwrap();
    let handle = server.handle();
    let handler = server.threads(1).start().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepting = handler.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let handler = accepting.clone();
            std::thread::spawn(move || {
                let peer = stream.peer_addr().unwrap();
                let stream = Async::new(stream).unwrap();
                let _ = async_io::block_on(handler.serve_connection(stream, peer));
            });
        }
    });
    let post = |path: &str| {
        let mut conn = Conn::connect(&addr.to_string(), IO_TIMEOUT).unwrap();
        conn.roundtrip(&Request::new("POST", path))
    };
    assert_eq!(post("/echo/000/a/xhr").unwrap().text(), "o\n");
    assert_eq!(handle.session_count(), 1);
    handle.shutdown();
    let poll = post("/echo/000/a/xhr").unwrap();
    assert_eq!(poll.text(), "c[1001,\"Server shutting down\"]\n");
    assert_eq!(post("/echo/000/b/xhr").unwrap().status(), 503);
    assert!(shuts_down_within(handler, Duration::from_secs(10)));
    assert_eq!(handle.session_count(), 0);
}

/// `Handler::shutdown` on a started server runs the shutdown itself when the server's task
/// that watches for the signal has not run (an executor of the application's that nobody
/// drives any more): it returns, where it waited on that task for good.
#[test]
fn a_started_server_s_shutdown_needs_no_executor_running() {
    let config = sockjs_smol::Config {
        shutdown_timeout: Duration::from_millis(200),
        ..sockjs_smol::Config::default()
    };
    let executor = std::sync::Arc::new(async_executor::Executor::new());
    let handler = Server::with_config(config)
        .executor(executor.clone())
        .service("/echo", Options::default(), echo)
        .unwrap()
        .start()
        .unwrap();
    assert!(shuts_down_within(handler, Duration::from_secs(5)));
    drop(executor);
}

/// Whether `Handler::shutdown`, on a thread of its own, returns within `limit`.
fn shuts_down_within(handler: sockjs_smol::Handler, limit: Duration) -> bool {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        async_io::block_on(handler.shutdown());
        let _ = tx.send(());
    });
    rx.recv_timeout(limit).is_ok()
}
