//! A test server on 127.0.0.1:0 in a background thread, and a raw HTTP/1.x client over
//! std `TcpStream` with read timeouts.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_io::Async;
use sockjs_smol::{Config, Options, Server, ServerHandle, Session};

/// How long any single read may block before a test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn echo(mut session: Session) {
    while let Some(message) = session.recv().await {
        let _ = session.send(&message);
    }
}

pub async fn close(session: Session) {
    session.close(3000, "Go away!");
}

/// The suite's four services.
pub fn suite_server(base: Options, config: Config) -> Server {
    let base = Options {
        hixie76: true,
        ..base
    };
    Server::with_config(config)
        .service(
            "/echo",
            Options {
                response_limit: 4096,
                ..base.clone()
            },
            echo,
        )
        .and_then(|s| s.service("/close", base.clone(), close))
        .and_then(|s| {
            s.service(
                "/disabled_websocket_echo",
                Options {
                    websocket: false,
                    ..base.clone()
                },
                echo,
            )
        })
        .and_then(|s| {
            s.service(
                "/cookie_needed_echo",
                Options {
                    jsessionid: true,
                    ..base.clone()
                },
                echo,
            )
        })
        .expect("valid options")
}

pub fn test_config() -> Config {
    Config {
        threads: 2,
        shards: 2,
        shutdown_timeout: Duration::from_secs(3),
        ..Config::default()
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    done: mpsc::Receiver<()>,
}

impl TestServer {
    /// The suite's services with default options.
    pub fn start() -> TestServer {
        TestServer::with(suite_server(Options::default(), test_config()))
    }

    /// The suite's services with these delays.
    pub fn with_delays(heartbeat_ms: u64, disconnect_ms: u64) -> TestServer {
        let options = Options {
            heartbeat_delay: Duration::from_millis(heartbeat_ms),
            disconnect_delay: Duration::from_millis(disconnect_ms),
            ..Options::default()
        };
        TestServer::with(suite_server(options, test_config()))
    }

    pub fn with(server: Server) -> TestServer {
        let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
        let addr = listener.get_ref().local_addr().expect("addr");
        let handle = server.handle();
        let (tx, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let result = async_io::block_on(server.serve(listener));
            let _ = tx.send(());
            result
        });
        TestServer {
            addr,
            handle,
            thread: Some(thread),
            done,
        }
    }

    /// Starts graceful shutdown and waits (bounded) for `serve` to return.
    pub fn shutdown(&mut self, within: Duration) -> bool {
        self.handle.shutdown();
        let ok = self.done.recv_timeout(within).is_ok();
        if ok {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
        ok
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A response read off the wire.
#[derive(Debug, Default)]
pub struct Resp {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }
}

pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    /// Writes an HTTP/1.1 request (with a Content-Length for POST or a body).
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) {
        self.write(raw_request(method, path, headers, body).as_bytes());
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read line");
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    /// Reads a status line and headers.
    pub fn read_head(&mut self) -> Resp {
        let status_line = self.line();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("header line");
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        Resp {
            version,
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// Reads one HTTP chunk; `None` for the terminating chunk.
    pub fn read_chunk(&mut self) -> Option<Vec<u8>> {
        let size_line = self.line();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
        let mut data = vec![0; size];
        self.reader.read_exact(&mut data).expect("chunk data");
        let crlf = self.line();
        assert!(crlf.is_empty(), "chunk not followed by CRLF");
        (size > 0).then_some(data)
    }

    pub fn read_chunk_text(&mut self) -> Option<String> {
        self.read_chunk()
            .map(|c| String::from_utf8(c).expect("utf-8 chunk"))
    }

    /// Reads a complete response (Content-Length, chunked, or none for bodiless statuses).
    pub fn read_response(&mut self) -> Resp {
        let mut resp = self.read_head();
        if resp.is_chunked() {
            while let Some(chunk) = self.read_chunk() {
                resp.body.extend_from_slice(&chunk);
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().expect("content-length");
            resp.body = vec![0; len];
            self.reader.read_exact(&mut resp.body).expect("body");
        }
        resp
    }

    /// Reads until the server closes the connection.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).expect("read to end");
        rest
    }

    /// Whether the server closed the connection (EOF, or a reset) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

pub fn raw_request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Resp {
    let mut client = Client::connect(addr);
    client.request(method, path, &[], body);
    client.read_response()
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, "")
}

pub fn post(addr: SocketAddr, path: &str, body: &str) -> Resp {
    request(addr, "POST", path, body)
}

/// A fresh session path under `prefix`.
pub fn session_path(prefix: &str, transport: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}/000/s{n}x{nanos}/{transport}")
}

/// Replaces the transport segment of a session path.
pub fn with_transport(path: &str, transport: &str) -> String {
    let base = path.rsplit_once('/').expect("session path").0;
    format!("{base}/{transport}")
}

/// Fails the test if `f` does not finish within `limit`.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let start = Instant::now();
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("failed after {:?} (see the panic above)", start.elapsed())
        }
    }
}
