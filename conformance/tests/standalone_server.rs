//! Both adapters' standalone servers beyond SockJS: the fallback handler for requests
//! outside every service (sockjs-smol's `Server::fallback`, sockjs-tokio's
//! `Routes::fallback`), and the headers they add to every response (`Server::header`,
//! `Routes::header`), and the close their graceful shutdown gives.

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use conformance::http::{Conn, Request};
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use sockjs_core::{Options, PeerAddr};
use support::{ADAPTERS, Adapter, raw_status, ws_text};

type Fallback = Arc<dyn Fn(http::Request<Bytes>) -> Response<Bytes> + Send + Sync>;

/// A running server: its address, and dropped, it shuts down.
struct Running {
    addr: std::net::SocketAddr,
    _stop: Box<dyn Send>,
}

async fn echo(mut session: sockjs_core::driver::Session) {
    while let Some(text) = session.recv().await {
        let _ = session.send(text).await;
    }
}

/// An echo service at `/echo`, the header `x-node: n1` on every response, and `fallback`
/// if given, on an ephemeral port.
fn run(adapter: Adapter, fallback: Option<Fallback>) -> Running {
    run_at(adapter, Some("/echo"), fallback)
}

/// [`run`], with the echo service at `prefix` as the adapter reads it, or none.
fn run_at(adapter: Adapter, prefix: Option<&str>, fallback: Option<Fallback>) -> Running {
    let node = (
        HeaderName::from_static("x-node"),
        HeaderValue::from_static("n1"),
    );
    match adapter {
        Adapter::Smol => {
            let mut server = sockjs_smol::Server::new().threads(1);
            if let Some(prefix) = prefix {
                server = server
                    .service(prefix, Options::default(), echo)
                    .expect("valid service");
            }
            let mut server = server.header(node.0, node.1);
            if let Some(fallback) = fallback {
                server = server.fallback(move |request| fallback(request));
            }
            let listener = async_io::Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
            let addr = listener.get_ref().local_addr().expect("addr");
            let handle = server.handle();
            std::thread::spawn(move || async_io::block_on(server.serve(listener)));
            struct Stop(sockjs_smol::ServerHandle);
            impl Drop for Stop {
                fn drop(&mut self) {
                    self.0.shutdown();
                }
            }
            Running {
                addr,
                _stop: Box::new(Stop(handle)),
            }
        }
        Adapter::Tokio => {
            let (runtime, service) = tokio_echo();
            let mut routes = sockjs_tokio::Routes::new();
            if let Some(prefix) = prefix {
                routes = routes.mount(prefix, service);
            }
            let mut routes = routes.header(node.0, node.1);
            if let Some(fallback) = fallback {
                routes = routes.fallback(move |request| fallback(request));
            }
            let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
            listener.set_nonblocking(true).expect("nonblocking");
            let addr = listener.local_addr().expect("addr");
            let _guard = runtime.enter();
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            runtime.spawn(std::future::IntoFuture::into_future(sockjs_tokio::serve(
                listener, routes,
            )));
            drop(_guard);
            Running {
                addr,
                _stop: Box::new(runtime),
            }
        }
    }
}

/// A tokio runtime of one worker, and an echo service with the default config.
fn tokio_echo() -> (tokio::runtime::Runtime, sockjs_tokio::SockJs) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    (runtime, sockjs_tokio::SockJs::new(Options::default(), echo))
}

fn conn(addr: std::net::SocketAddr) -> Conn {
    Conn::connect(&addr.to_string(), Duration::from_secs(5)).expect("connect")
}

#[test]
fn the_fallback_answers_outside_the_services_and_every_response_gets_the_headers() {
    let fallback: Fallback = Arc::new(|request| {
        let peer = request.extensions().get::<PeerAddr>().map(|p| p.0.ip());
        let mut response = Response::new(Bytes::new());
        match request.uri().path() {
            "/" => {
                *response.body_mut() = Bytes::from_static(b"<!doctype html><p>page</p>");
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            }
            "/form" => {
                let said = format!(
                    "{} {} bytes from {peer:?}",
                    request.method(),
                    request.body().len()
                );
                *response.body_mut() = Bytes::from(said);
            }
            "/own-node" => {
                response
                    .headers_mut()
                    .insert("x-node", HeaderValue::from_static("mine"));
            }
            _ => *response.status_mut() = StatusCode::NOT_FOUND,
        }
        response
    });
    for adapter in ADAPTERS {
        let running = run(adapter, Some(fallback.clone()));
        fallback_and_headers(running.addr);
    }
}

fn fallback_and_headers(addr: std::net::SocketAddr) {
    // One keep-alive connection through the fallback and a service.
    let mut c = conn(addr);
    let page = c.roundtrip(&Request::new("GET", "/")).expect("page");
    assert_eq!(page.status(), 200);
    assert_eq!(page.text(), "<!doctype html><p>page</p>");
    assert_eq!(page.header("content-type"), Some("text/html"));
    assert_eq!(page.header("content-length"), Some("26"));
    assert_eq!(page.header("x-node"), Some("n1"));
    let head = c.roundtrip(&Request::new("HEAD", "/")).expect("head");
    assert_eq!((head.status(), head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some("26"));
    let form = c
        .roundtrip(&Request::new("POST", "/form").body("a=1&b=2"))
        .expect("form");
    assert_eq!(form.text(), "POST 7 bytes from Some(127.0.0.1)");
    let missing = c.roundtrip(&Request::new("GET", "/nothing")).expect("404");
    assert_eq!(
        (missing.status(), missing.header("x-node")),
        (404, Some("n1"))
    );
    // The response's own header wins over the server's.
    let own = c.roundtrip(&Request::new("GET", "/own-node")).expect("own");
    assert_eq!(own.head.header_all("x-node"), ["mine"]);
    // SockJS paths still reach the service, with the server's headers.
    let greeting = c
        .roundtrip(&Request::new("GET", "/echo"))
        .expect("greeting");
    assert_eq!(greeting.text(), "Welcome to SockJS!\n");
    assert_eq!(greeting.header("x-node"), Some("n1"));
    let near_miss = c
        .roundtrip(&Request::new("GET", "/echo/000/s1/nonsense"))
        .expect("near miss");
    assert_eq!(
        (near_miss.status(), near_miss.header("x-node")),
        (404, Some("n1"))
    );

    // A stream's head and a WebSocket handshake carry them too.
    let (status, head) = raw_status(
        addr,
        b"POST /echo/000/stream1/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("\r\nx-node: n1\r\n"),
        "{head}"
    );
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (mut ws, response) = tungstenite::client(
        format!("ws://{addr}/echo/000/ws1/websocket").as_str(),
        stream,
    )
    .expect("handshake");
    assert_eq!(
        response.headers().get("x-node").map(|v| v.as_bytes()),
        Some(&b"n1"[..])
    );
    assert_eq!(ws_text(&mut ws).as_deref(), Some("o"));
    ws.send(tungstenite::Message::text(r#"["hi"]"#))
        .expect("send");
    assert_eq!(ws_text(&mut ws).as_deref(), Some(r#"a["hi"]"#));
}

#[test]
fn without_a_fallback_requests_outside_the_services_get_404() {
    for adapter in ADAPTERS {
        let running = run(adapter, None);
        let mut c = conn(running.addr);
        for path in ["/", "/echoes", "/other/page"] {
            let missing = c.roundtrip(&Request::new("GET", path)).expect("404");
            assert_eq!(missing.status(), 404, "{adapter:?} {path}");
            assert_eq!(missing.text(), "404 Error: Page not found\n");
            assert_eq!(missing.header("x-node"), Some("n1"), "{adapter:?}");
        }
    }
}

/// A fallback that answers 1xx gave the request no final answer (and a 101 switched
/// protocols nobody asked for): the server answers 500 instead, and the connection goes on.
#[test]
fn a_fallback_answering_1xx_gets_a_500_instead() {
    let fallback: Fallback = Arc::new(|request| {
        let mut response = Response::new(Bytes::new());
        *response.status_mut() = match request.uri().path() {
            "/continue" => StatusCode::CONTINUE,
            "/switch" => StatusCode::SWITCHING_PROTOCOLS,
            _ => StatusCode::NO_CONTENT,
        };
        response
    });
    for adapter in ADAPTERS {
        let running = run(adapter, Some(fallback.clone()));
        let mut c = conn(running.addr);
        for path in ["/continue", "/switch"] {
            let answer = c.roundtrip(&Request::new("GET", path)).expect("answer");
            assert_eq!(answer.status(), 500, "{adapter:?} {path}");
        }
        let after = c.roundtrip(&Request::new("GET", "/other")).expect("after");
        assert_eq!(after.status(), 204, "{adapter:?}");
    }
}

/// A field that frames the message, added to every response, would break the ones that
/// must not carry it (a length on a 204 or a 101): refused when the server is built.
#[test]
#[should_panic(expected = "frames the message")]
fn a_framing_header_for_every_response_is_refused_by_sockjs_smol() {
    let _ =
        sockjs_smol::Server::new().header(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
}

#[test]
#[should_panic(expected = "frames the message")]
fn a_framing_header_for_every_response_is_refused_by_sockjs_tokio() {
    let _ = sockjs_tokio::Routes::new().header(header::UPGRADE, HeaderValue::from_static("x"));
}

/// A graceful shutdown closes with the server's `Config::shutdown_code` and
/// `shutdown_reason`: the sessions it closes, and a WebSocket that arrives while it drains
/// (on a kept-alive connection) alike, on both adapters, where sockjs-tokio's server
/// refused that WebSocket with its service's own settings.
#[test]
fn a_websocket_refused_while_draining_gets_the_server_s_close() {
    use std::io::{Read, Write};
    let config = sockjs_core::driver::Config {
        shutdown_code: 4001,
        shutdown_reason: "bye".into(),
        ..sockjs_core::driver::Config::default()
    };
    for adapter in ADAPTERS {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let _server: Box<dyn Send> = match adapter {
            Adapter::Smol => {
                let server = sockjs_smol::Server::with_config(config.clone())
                    .threads(1)
                    .service("/echo", Options::default(), echo)
                    .expect("valid service");
                let handle = server.handle();
                let listener = async_io::Async::new(listener).expect("listener");
                std::thread::spawn(move || async_io::block_on(server.serve(listener)));
                std::thread::spawn(move || {
                    let _ = stop_rx.recv();
                    handle.shutdown();
                });
                Box::new(())
            }
            Adapter::Tokio => {
                // The service keeps the default config: the server's decides the close.
                let (runtime, service) = tokio_echo();
                let routes = sockjs_tokio::Routes::new().mount("/echo", service);
                listener.set_nonblocking(true).expect("nonblocking");
                let _guard = runtime.enter();
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let (signal_tx, signal) = tokio::sync::oneshot::channel::<()>();
                std::thread::spawn(move || {
                    let _ = stop_rx.recv();
                    let _ = signal_tx.send(());
                });
                let serving = sockjs_tokio::serve(listener, routes)
                    .config(config.clone())
                    .with_graceful_shutdown(async move {
                        let _ = signal.await;
                    });
                runtime.spawn(std::future::IntoFuture::into_future(serving));
                drop(_guard);
                Box::new(runtime)
            }
        };
        // A session that holds the drain open, and two kept-alive connections: one to see
        // the drain begin, one for the WebSocket.
        let mut probe = conn(addr);
        let opened = conn(addr)
            .roundtrip(&Request::new("POST", "/echo/000/held/xhr"))
            .expect("open");
        assert_eq!(opened.text(), "o\n", "{adapter:?}");
        let mut kept = std::net::TcpStream::connect(addr).expect("connect");
        kept.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        kept.write_all(b"GET /echo/info HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        // Read exactly the answer (its length is given), so that the socket is at the next.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            kept.read_exact(&mut byte).expect("head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length: usize = head
            .split("content-length: ")
            .nth(1)
            .and_then(|rest| rest.split("\r\n").next())
            .and_then(|n| n.parse().ok())
            .expect("content-length");
        let mut body = vec![0u8; length];
        kept.read_exact(&mut body).expect("body");

        stop_tx.send(()).expect("stop");
        // The service drains once a request that would open a session gets its 503 (a
        // new session id each time: one that opened is polled, not opened, next time).
        let began = std::time::Instant::now();
        for attempt in 0.. {
            let path = format!("/echo/000/probe{attempt}/xhr");
            let answer = probe.roundtrip(&Request::new("POST", &path));
            if answer.expect("open while draining").status() == 503 {
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(5), "{adapter:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let url = format!("ws://{addr}/echo/000/late/websocket");
        let (mut ws, _) = tungstenite::client(url.as_str(), kept).expect("handshake");
        // Refused right after the handshake: the close frame, no session.
        assert_eq!(
            ws_text(&mut ws).as_deref(),
            Some("c[4001,\"bye\"]"),
            "{adapter:?}"
        );
    }
}

/// Everything `request` gets back, up to the end of the connection.
fn answer_to(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// RFC 9110 §9.3.2: a `HEAD` request's answer has no content, when the server refuses the
/// request before any service sees it too (no Host, a body too large to read).
#[test]
fn rfc9110_s9_3_2_a_refused_head_request_gets_no_content_on_both_adapters() {
    for adapter in ADAPTERS {
        let running = run(adapter, None);
        let answer = answer_to(running.addr, b"HEAD /echo/info HTTP/1.1\r\n\r\n");
        assert!(
            answer.starts_with("HTTP/1.1 400 "),
            "{adapter:?}: {answer:?}"
        );
        assert!(answer.contains("Content-Length: 18\r\n"), "{answer:?}");
        assert!(
            answer.ends_with("\r\n\r\n"),
            "{adapter:?}: content: {answer:?}"
        );
        let big = b"HEAD /echo/info HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n";
        let answer = answer_to(running.addr, big);
        assert!(
            answer.starts_with("HTTP/1.1 413 "),
            "{adapter:?}: {answer:?}"
        );
        assert!(
            answer.ends_with("\r\n\r\n"),
            "{adapter:?}: content: {answer:?}"
        );
        // A GET gets the reason as content.
        let answer = answer_to(running.addr, b"GET /echo/info HTTP/1.1\r\n\r\n");
        assert!(
            answer.ends_with("\r\n\r\nMissing Host field"),
            "{adapter:?}: {answer:?}"
        );
    }
}

/// A server with a fallback and no service reads request bodies for it up to the
/// services' default bound (256 KiB; it refused any over one byte), on both adapters.
#[test]
fn a_fallback_alone_reads_bodies_up_to_the_default_bound_on_both_adapters() {
    let fallback: Fallback =
        Arc::new(|request| Response::new(Bytes::from(format!("{} bytes", request.body().len()))));
    for adapter in ADAPTERS {
        let running = run_at(adapter, None, Some(fallback.clone()));
        let mut c = conn(running.addr);
        let body = "x".repeat(100_000);
        let form = c
            .roundtrip(&Request::new("POST", "/form").body(body.as_str()))
            .expect("form");
        assert_eq!(
            (form.status(), form.text()),
            (200, "100000 bytes".into()),
            "{adapter:?}"
        );
        let big = "x".repeat(256 * 1024 + 1);
        let refused = conn(running.addr)
            .roundtrip(&Request::new("POST", "/form").body(big.as_str()))
            .expect("refused");
        assert_eq!(refused.status(), 413, "{adapter:?}");
    }
}

/// Both adapters read a service's prefix alike: a missing leading `/` is added and a
/// trailing one dropped (`echo/` serves `/echo`).
#[test]
fn both_adapters_read_a_prefix_alike() {
    for adapter in ADAPTERS {
        let running = run_at(adapter, Some("echo/"), None);
        let mut c = conn(running.addr);
        let greeting = c
            .roundtrip(&Request::new("GET", "/echo"))
            .expect("greeting");
        assert_eq!(greeting.text(), "Welcome to SockJS!\n", "{adapter:?}");
        let info = c
            .roundtrip(&Request::new("GET", "/echo/info"))
            .expect("info");
        assert_eq!(info.status(), 200, "{adapter:?}");
    }
    // One prefix, however written: sockjs-smol refuses it twice.
    let twice = sockjs_smol::Server::new()
        .service("/echo", Options::default(), echo)
        .expect("valid service")
        .service("echo/", Options::default(), echo);
    assert_eq!(twice.err(), Some(sockjs_core::OptionsError::Prefix));
}

/// RFC 9112 §3.2.3-3.2.4: both standalone servers refuse a target whose form does not fit
/// its method with 400, even with a service mounted at the root, whose greeting the
/// authority form's empty path would otherwise name; the greeting itself is still served.
#[test]
fn rfc9112_s3_2_a_target_form_that_does_not_fit_its_method_gets_400_on_both_adapters() {
    for adapter in ADAPTERS {
        let running = run_at(adapter, Some("/"), None);
        let greeting = conn(running.addr)
            .roundtrip(&Request::new("GET", "/"))
            .expect("greeting");
        assert_eq!(greeting.text(), "Welcome to SockJS!\n", "{adapter:?}");
        for request in [
            &b"GET example.com:80 HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
            b"GET * HTTP/1.1\r\nHost: example.com\r\n\r\n",
            b"CONNECT /x HTTP/1.1\r\nHost: example.com\r\n\r\n",
        ] {
            let answer = answer_to(running.addr, request);
            assert!(
                answer.starts_with("HTTP/1.1 400 "),
                "{adapter:?} {}: {answer:?}",
                String::from_utf8_lossy(request)
            );
        }
    }
}
