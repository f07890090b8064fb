//! sockjs-smol's `Server` beyond SockJS: the fallback handler for requests outside every
//! service, and the headers it adds to every response.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use bytes::Bytes;
use conformance::http::{Conn, Request};
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use sockjs_core::{Options, PeerAddr};
use support::{raw_status, ws_text};

/// Starts `server` on an ephemeral port; returns its address and a guard that shuts it
/// down.
fn run(server: sockjs_smol::Server) -> (std::net::SocketAddr, sockjs_smol::ServerHandle) {
    let listener = async_io::Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
    let addr = listener.get_ref().local_addr().expect("addr");
    let handle = server.handle();
    std::thread::spawn(move || async_io::block_on(server.serve(listener)));
    (addr, handle)
}

fn echo_server() -> sockjs_smol::Server {
    sockjs_smol::Server::new()
        .threads(1)
        .service("/echo", Options::default(), |mut session| async move {
            while let Some(text) = session.recv().await {
                let _ = session.send(text).await;
            }
        })
        .expect("valid service")
        .header(
            HeaderName::from_static("x-node"),
            HeaderValue::from_static("n1"),
        )
}

fn conn(addr: std::net::SocketAddr) -> Conn {
    Conn::connect(&addr.to_string(), Duration::from_secs(5)).expect("connect")
}

#[test]
fn the_fallback_answers_outside_the_services_and_every_response_gets_the_headers() {
    let server = echo_server().fallback(|request| {
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
    let (addr, handle) = run(server);

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
    handle.shutdown();
}

#[test]
fn without_a_fallback_requests_outside_the_services_get_404() {
    let (addr, handle) = run(echo_server());
    let mut c = conn(addr);
    for path in ["/", "/echoes", "/other/page"] {
        let missing = c.roundtrip(&Request::new("GET", path)).expect("404");
        assert_eq!(missing.status(), 404, "{path}");
        assert_eq!(missing.text(), "404 Error: Page not found\n");
        assert_eq!(missing.header("x-node"), Some("n1"));
    }
    handle.shutdown();
}

/// A fallback that answers 1xx gave the request no final answer (and a 101 switched
/// protocols nobody asked for): the server answers 500 instead, and the connection goes on.
#[test]
fn a_fallback_answering_1xx_gets_a_500_instead() {
    let server = echo_server().fallback(|request| {
        let mut response = Response::new(Bytes::new());
        *response.status_mut() = match request.uri().path() {
            "/continue" => StatusCode::CONTINUE,
            "/switch" => StatusCode::SWITCHING_PROTOCOLS,
            _ => StatusCode::NO_CONTENT,
        };
        response
    });
    let (addr, handle) = run(server);
    let mut c = conn(addr);
    for path in ["/continue", "/switch"] {
        let answer = c.roundtrip(&Request::new("GET", path)).expect("answer");
        assert_eq!(answer.status(), 500, "{path}");
    }
    let after = c.roundtrip(&Request::new("GET", "/other")).expect("after");
    assert_eq!(after.status(), 204);
    handle.shutdown();
}

/// A field that frames the message, added to every response, would break the ones that
/// must not carry it (a length on a 204 or a 101): refused when the server is built.
#[test]
#[should_panic(expected = "frames the message")]
fn a_framing_header_for_every_response_is_refused() {
    let _ = echo_server().header(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
}
