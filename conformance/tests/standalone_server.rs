//! Both adapters' standalone servers beyond SockJS: the fallback handler for requests
//! outside every service (sockjs-smol's `Server::fallback`, sockjs-tokio's
//! `Routes::fallback`), and the headers they add to every response (`Server::header`,
//! `Routes::header`).

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
    let node = (
        HeaderName::from_static("x-node"),
        HeaderValue::from_static("n1"),
    );
    match adapter {
        Adapter::Smol => {
            let mut server = sockjs_smol::Server::new()
                .threads(1)
                .service("/echo", Options::default(), echo)
                .expect("valid service")
                .header(node.0, node.1);
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
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let service = sockjs_tokio::SockJs::new(Options::default(), echo);
            let mut routes = sockjs_tokio::Routes::new()
                .mount("/echo", service)
                .header(node.0, node.1);
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
