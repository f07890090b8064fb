//! Test servers (standalone `serve` or mounted in axum) and a tiny raw HTTP/1.x client that
//! keeps chunk boundaries.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use sockjs_tokio::{Options, Routes, Session, SockJs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every socket read or write in the tests gives up after this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How the services are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Axum,
}

/// Generates one `#[tokio::test]` per mode for an `async fn(Mode)`, each bounded in time.
#[macro_export]
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        mod serve_mode {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    tokio::time::timeout(std::time::Duration::from_secs(30), super::$name(super::common::Mode::Serve))
                        .await
                        .expect("test timed out");
                }
            )*
        }
        mod axum_mode {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    tokio::time::timeout(std::time::Duration::from_secs(30), super::$name(super::common::Mode::Axum))
                        .await
                        .expect("test timed out");
                }
            )*
        }
    };
}

/// Timing knobs of a test server.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
    pub disconnect: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_secs(25),
            disconnect: Duration::from_secs(5),
        }
    }
}

pub async fn echo(mut session: Session) {
    while let Some(text) = session.recv().await {
        if session.send(text).is_err() {
            break;
        }
    }
}

pub async fn close(session: Session) {
    let _ = session.close(3000, "Go away!");
}

/// The suite's four services (PROTOCOL.md §1), plus hixie-76.
pub fn suite_services(timing: Timing) -> Vec<(&'static str, SockJs)> {
    let base = Options {
        hixie76: true,
        heartbeat_delay: timing.heartbeat,
        disconnect_delay: timing.disconnect,
        max_request_body: 64 * 1024,
        ..Options::default()
    };
    vec![
        (
            "/echo",
            SockJs::new(
                Options {
                    response_limit: 4096,
                    ..base.clone()
                },
                echo,
            ),
        ),
        ("/close", SockJs::new(base.clone(), close)),
        (
            "/disabled_websocket_echo",
            SockJs::new(
                Options {
                    websocket: false,
                    ..base.clone()
                },
                echo,
            ),
        ),
        (
            "/cookie_needed_echo",
            SockJs::new(
                Options {
                    jsessionid: true,
                    ..base
                },
                echo,
            ),
        ),
    ]
}

/// A running test server.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
    pub services: Vec<(&'static str, SockJs)>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Triggers the graceful shutdown.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        self.task.abort();
    }
}

fn from_axum(mut req: axum::extract::Request) -> axum::extract::Request {
    use axum::extract::{ConnectInfo, OriginalUri};
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        let addr = *addr;
        req.extensions_mut().insert(sockjs_tokio::PeerAddr(addr));
    }
    if let Some(OriginalUri(uri)) = req.extensions().get::<OriginalUri>() {
        let uri = uri.clone();
        req.extensions_mut().insert(sockjs_tokio::OriginalUri(uri));
    }
    req
}

/// Starts a server with these services on 127.0.0.1:0.
pub async fn start_with(mode: Mode, services: Vec<(&'static str, SockJs)>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let signal = async move {
        let _ = stopped.await;
    };
    let task = match mode {
        Mode::Serve => {
            let mut routes = Routes::new();
            for (prefix, service) in &services {
                routes = routes.mount(prefix, service.clone());
            }
            let serve = sockjs_tokio::serve(listener, routes)
                .with_graceful_shutdown(signal)
                .drain_timeout(Duration::from_secs(3));
            tokio::spawn(serve.into_future())
        }
        Mode::Axum => {
            use tower::ServiceExt as _;
            let mut app = axum::Router::new();
            for (prefix, service) in &services {
                app = app.nest_service(prefix, service.clone().map_request(from_axum));
            }
            let all: Vec<SockJs> = services.iter().map(|(_, s)| s.clone()).collect();
            let signal = async move {
                signal.await;
                for service in all {
                    service.close_all(1001, "Server shutting down");
                }
            };
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(signal)
                .await
            })
        }
    };
    Server {
        addr,
        stop: Some(stop),
        task,
        services,
    }
}

pub async fn start(mode: Mode) -> Server {
    start_with(mode, suite_services(Timing::default())).await
}

pub async fn start_timed(mode: Mode, timing: Timing) -> Server {
    start_with(mode, suite_services(timing)).await
}

use std::future::IntoFuture as _;

/// A response head.
#[derive(Debug, Clone)]
pub struct Head {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.x connection.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Conn {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        tokio::time::timeout(IO_TIMEOUT, self.stream.write_all(bytes))
            .await
            .expect("write timed out")
            .expect("write");
    }

    /// Sends a request; `Content-Length` is added for non-empty bodies and POSTs.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        version: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) {
        let mut req = format!("{method} {path} HTTP/{version}\r\nHost: localhost\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.send_raw(req.as_bytes()).await;
    }

    async fn fill(&mut self) -> usize {
        let mut tmp = [0u8; 8192];
        let n = tokio::time::timeout(IO_TIMEOUT, self.stream.read(&mut tmp))
            .await
            .expect("read timed out")
            .expect("read");
        self.buf.extend_from_slice(&tmp[..n]);
        n
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(self.fill().await > 0, "connection closed mid-line");
        }
    }

    pub async fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await > 0, "connection closed early");
        }
        self.buf.drain(..n).collect()
    }

    pub async fn head(&mut self) -> Head {
        let status_line = self.line().await;
        let mut it = status_line.splitn(3, ' ');
        let version = it.next().unwrap_or_default().to_owned();
        let status = it.next().and_then(|s| s.parse().ok()).expect("status code");
        let reason = it.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("header line");
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        Head {
            version,
            status,
            reason,
            headers,
        }
    }

    /// The next chunk of a chunked body; `None` at the terminating chunk.
    pub async fn chunk(&mut self) -> Option<Vec<u8>> {
        let size_line = self.line().await;
        let size = usize::from_str_radix(size_line.trim(), 16).expect("chunk size");
        if size == 0 {
            let trailer = self.line().await;
            assert!(trailer.is_empty());
            return None;
        }
        let data = self.exact(size).await;
        assert_eq!(self.exact(2).await, b"\r\n");
        Some(data)
    }

    pub async fn chunk_text(&mut self) -> Option<String> {
        self.chunk()
            .await
            .map(|c| String::from_utf8_lossy(&c).into_owned())
    }

    /// Reads until the peer closes.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        while self.fill().await > 0 {}
        std::mem::take(&mut self.buf)
    }

    /// Whether the peer closed the connection (EOF) within the IO timeout.
    pub async fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill().await == 0
    }

    /// Reads a whole response (Content-Length, chunked, or no body).
    pub async fn response(&mut self) -> Resp {
        let head = self.head().await;
        let body = if head.is_chunked() {
            let mut body = Vec::new();
            while let Some(c) = self.chunk().await {
                body.extend_from_slice(&c);
            }
            body
        } else if let Some(len) = head.header("content-length") {
            let len: usize = len.parse().expect("content-length");
            self.exact(len).await
        } else if matches!(head.status, 101 | 204 | 304) {
            Vec::new()
        } else {
            self.read_to_close().await
        };
        Resp { head, body }
    }
}

/// One request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut conn = Conn::connect(addr).await;
    conn.send(method, path, "1.1", headers, body).await;
    conn.response().await
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], "").await
}

pub async fn post(addr: SocketAddr, path: &str, body: &str) -> Resp {
    request(addr, "POST", path, &[], body).await
}

/// A fresh random-enough session path under a service: `/<service>/000/<unique>`.
pub fn session(service: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{service}/000/s{n}x{nanos}")
}
