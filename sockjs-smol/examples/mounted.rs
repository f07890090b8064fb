//! SockJS mounted in an application's own server, on the application's own executor: one
//! listener and one accept loop, the application's own page at `/`, and every connection
//! whose first request is for `/echo` handed to SockJS with
//! [`Handler::serve_connection`](sockjs_smol::Handler::serve_connection).
//!
//! ```text
//! cargo run --release -p sockjs-smol --example mounted -- [ADDR]
//! ```
//!
//! Then open http://127.0.0.1:8080 (the default ADDR): the page is the application's, the
//! echo it talks to is SockJS's. The pieces:
//!
//! - [`Server::executor`](sockjs_smol::Server::executor): the SockJS sessions, timers and
//!   WebSockets run on the application's executor, which the application drives on its
//!   own threads; the server starts none.
//! - [`Server::start`](sockjs_smol::Server::start): the services, ready for connections
//!   the application accepts itself.
//! - [`Handler::serve_connection`](sockjs_smol::Handler::serve_connection): one connection,
//!   any stream (here the `Async<TcpStream>` the application accepted, which keeps the
//!   liveness probe); it serves that connection's later requests too, so the server's
//!   [`fallback`](sockjs_smol::Server::fallback) answers the application's routes there.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use async_executor::Executor;
use async_io::{Async, Timer};
use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use http::{Request, Response, StatusCode, header};
use sockjs_smol::{Handler, Options, Server, Session};

/// The application's page: a SockJS client talking to `/echo`.
const PAGE: &str = r#"<!doctype html>
<title>mounted</title>
<script src="https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"></script>
<p id="out">connecting...</p>
<script>
  const sock = new SockJS("/echo");
  sock.onopen = () => sock.send("hello from the page");
  sock.onmessage = (e) => { document.getElementById("out").textContent = "echo: " + e.data; };
</script>
"#;

/// The application's routes: `/` is the page, anything else 404.
pub fn page(request: &Request<Bytes>) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    if request.uri().path() == "/" {
        *response.body_mut() = Bytes::from_static(PAGE.as_bytes());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/html; charset=UTF-8"),
        );
    } else {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
}

async fn echo(mut session: Session) {
    while let Some(text) = session.recv().await {
        let _ = session.send(text).await;
    }
}

/// The application: accepts on `listener` forever, on `executor`.
pub async fn app(executor: Arc<Executor<'static>>, listener: Async<TcpListener>) -> io::Result<()> {
    let sockjs = Server::new()
        .executor(executor.clone())
        .service("/echo", Options::default(), echo)
        .map_err(io::Error::other)?
        .fallback(|request| page(&request))
        .start()?;
    loop {
        let (stream, peer) = listener.accept().await?;
        let sockjs = sockjs.clone();
        executor
            .spawn(async move {
                if let Err(error) = route(stream, peer, sockjs).await {
                    eprintln!("{peer}: {error}");
                }
            })
            .detach();
    }
}

/// How long a client may take to show its request line, and for the application's own
/// routes its whole head, as SockJS's own `Config::header_read_timeout`: a client that
/// connects and sends nothing holds its task and socket no longer.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Looks at the first request line without taking it off the socket, and serves the
/// connection: SockJS's for `/echo` (its own timeouts from there), the application's own
/// otherwise.
async fn route(stream: Async<TcpStream>, peer: SocketAddr, sockjs: Handler) -> io::Result<()> {
    let path = within(HEAD_TIMEOUT, request_path(&stream)).await?;
    if path == "/echo" || path.starts_with("/echo/") {
        return sockjs.serve_connection(stream, peer).await;
    }
    within(HEAD_TIMEOUT, own(stream, &path)).await
}

/// `work`, or a `TimedOut` error once `limit` has passed.
async fn within<T>(limit: Duration, work: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    future::or(work, async {
        Timer::after(limit).await;
        Err(io::ErrorKind::TimedOut.into())
    })
    .await
}

/// The first request line's path, peeked (left on the socket for whoever serves it).
async fn request_path(stream: &Async<TcpStream>) -> io::Result<String> {
    let mut head = [0u8; 1024];
    let mut seen = 0;
    for _ in 0..100 {
        seen = stream.peek(&mut head).await?;
        if seen == 0 || head[..seen].contains(&b'\n') {
            break;
        }
        // The request line is still on its way.
        Timer::after(Duration::from_millis(10)).await;
    }
    let line = String::from_utf8_lossy(&head[..seen]);
    Ok(line.split(' ').nth(1).unwrap_or_default().to_owned())
}

/// The application's own HTTP: one request, one answer, then close.
async fn own(mut stream: Async<TcpStream>, path: &str) -> io::Result<()> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let request = Request::get(path)
        .body(Bytes::new())
        .map_err(io::Error::other)?;
    let response = page(&request);
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status(),
        response.body().len()
    );
    for (name, value) in response.headers() {
        out.push_str(&format!(
            "{name}: {}\r\n",
            value.to_str().unwrap_or_default()
        ));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).await?;
    stream.write_all(response.body()).await?;
    stream.close().await
}

#[allow(dead_code)]
fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
    let listener = Async::<TcpListener>::bind(addr)?;
    println!("listening on http://{}", listener.get_ref().local_addr()?);
    // The application's executor, on two threads of its own.
    let executor = Arc::new(Executor::new());
    let worker = executor.clone();
    std::thread::spawn(move || async_io::block_on(worker.run(std::future::pending::<()>())));
    // The accept loop in a task of its own: as `run`'s own future it would be polled on
    // every wake-up of this thread, and each poll of async-io's `accept` is a system call.
    let accepting = executor.spawn(app(executor.clone(), listener));
    async_io::block_on(executor.run(accepting))
}
