//! The `mounted` example over sockets: the application's own route and the SockJS service
//! from one listener, on the application's executor.
#![allow(clippy::unwrap_used)]

#[path = "../examples/mounted.rs"]
mod mounted;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use async_executor::Executor;
use async_io::Async;
use conformance::http::{Conn, Request};

#[test]
fn the_applications_route_and_the_sockjs_service_share_one_listener_and_executor() {
    let executor = Arc::new(Executor::new());
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = listener.get_ref().local_addr().unwrap();
    for _ in 0..2 {
        let executor = executor.clone();
        std::thread::spawn(move || async_io::block_on(executor.run(std::future::pending::<()>())));
    }
    executor
        .spawn(mounted::app(executor.clone(), listener))
        .detach();
    let conn = || Conn::connect(&addr.to_string(), Duration::from_secs(5)).unwrap();
    // A client that connects and says nothing (checked at the end); the time taken before
    // the connection, so that the server's clock cannot have started earlier.
    let connected = std::time::Instant::now();
    let silent = std::net::TcpStream::connect(addr).unwrap();

    // The application's own route, and its 404.
    let page = conn().roundtrip(&Request::new("GET", "/")).unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().contains("new SockJS(\"/echo\")"));
    assert_eq!(
        conn()
            .roundtrip(&Request::new("GET", "/x"))
            .unwrap()
            .status(),
        404
    );

    // SockJS: the greeting and an xhr session, then the page again on the same
    // (keep-alive) connection, answered by the server's fallback.
    let mut c = conn();
    let greeting = c.roundtrip(&Request::new("GET", "/echo")).unwrap();
    assert_eq!(greeting.text(), "Welcome to SockJS!\n");
    assert_eq!(
        c.roundtrip(&Request::new("POST", "/echo/0/m/xhr"))
            .unwrap()
            .text(),
        "o\n"
    );
    let send = Request::new("POST", "/echo/0/m/xhr_send").body(r#"["hi"]"#);
    assert_eq!(c.roundtrip(&send).unwrap().status(), 204);
    assert_eq!(
        c.roundtrip(&Request::new("POST", "/echo/0/m/xhr"))
            .unwrap()
            .text(),
        "a[\"hi\"]\n"
    );
    let again = c.roundtrip(&Request::new("GET", "/")).unwrap();
    assert!(again.text().contains("new SockJS(\"/echo\")"));

    // A WebSocket, on the application's executor too.
    let url = format!("ws://{addr}/echo/websocket");
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (mut ws, _) = tungstenite::client(url.as_str(), stream).unwrap();
    ws.send(tungstenite::Message::text("over the socket"))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        tungstenite::Message::text("over the socket")
    );

    // The silent client is let go once the head's time is up: its task and socket are not
    // held for ever.
    let bound = mounted::HEAD_TIMEOUT + Duration::from_secs(5);
    silent.set_read_timeout(Some(bound)).unwrap();
    let read = std::io::Read::read(&mut &silent, &mut [0u8; 64]);
    assert!(matches!(read, Ok(0)), "{read:?}");
    let waited = connected.elapsed();
    assert!(
        waited >= mounted::HEAD_TIMEOUT && waited < bound,
        "{waited:?}"
    );
}
