//! The shared test kit: start sockjs-smol or sockjs-tokio in-process on an ephemeral
//! loopback port, with the protocol suite's four services, with one service at `/echo`
//! running one of a few test applications, or with any services; and small synchronous
//! clients. Both adapters run the same handlers: the `Session` type is the driver's.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use conformance::http::{Conn, Request, Response};
use sockjs_core::driver::metrics::Metrics;
use sockjs_core::driver::{Admission, Config, Session};
use sockjs_core::{Options, SendError};

/// Which adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// sockjs-smol's `Server`.
    Smol,
    /// sockjs-tokio's `serve`.
    Tokio,
}

pub const ADAPTERS: [Adapter; 2] = [Adapter::Smol, Adapter::Tokio];

/// What a flooding application saw.
#[derive(Debug, Default)]
pub struct Flood {
    pub accepted_bytes: AtomicUsize,
    pub queue_full: AtomicUsize,
    pub ended_by: Mutex<Option<SendError>>,
    pub done: AtomicBool,
}

/// What the sequence application saw.
#[derive(Debug, Default)]
pub struct Seq {
    /// Client messages received in order.
    pub received: AtomicU64,
    /// Out-of-order, duplicated or unexpected client messages.
    pub errors: Mutex<Vec<String>>,
    /// Server messages sent.
    pub sent: AtomicU64,
}

/// The test applications, chosen per session by the session id's prefix.
#[derive(Debug, Default)]
pub struct App {
    /// `floodws*` and `floodpoll*` sessions: send 1 KiB messages as fast as accepted.
    pub flood_ws: Flood,
    pub flood_poll: Flood,
    /// How long flooding goes on at most.
    pub flood_for: Mutex<Duration>,
    /// `seq*` sessions: "more:K" makes the app send K numbered messages `s{n}`; client
    /// messages `c{n}` must arrive in order.
    pub seq: Seq,
    /// Sessions opened so far.
    pub opened: AtomicUsize,
}

/// What one session's handler does, by the session id's prefix.
pub async fn app_body(app: Arc<App>, mut session: Session) {
    app.opened.fetch_add(1, Ordering::Relaxed);
    let id = session.id().to_owned();
    if id.starts_with("floodws") || id.starts_with("floodpoll") {
        let flood = if id.starts_with("floodws") {
            &app.flood_ws
        } else {
            &app.flood_poll
        };
        let message = "x".repeat(1024);
        let until = Instant::now() + *app.flood_for.lock().unwrap();
        let mut n = 0u64;
        while Instant::now() < until {
            match session.try_send(&message) {
                Ok(()) => {
                    flood.accepted_bytes.fetch_add(1024, Ordering::Relaxed);
                    n += 1;
                    if n % 64 == 0 {
                        sleep(Duration::from_millis(1)).await;
                    }
                }
                Err(SendError::QueueFull) => {
                    flood.queue_full.fetch_add(1, Ordering::Relaxed);
                    sleep(Duration::from_millis(2)).await;
                }
                Err(e) => {
                    *flood.ended_by.lock().unwrap() = Some(e);
                    break;
                }
            }
        }
        flood.done.store(true, Ordering::Release);
    } else if id.starts_with("stuckapp") {
        // Never reads; holds the session until it is closed under it.
        sleep(Duration::from_secs(60)).await;
    } else if id.starts_with("seq") {
        let mut next_client = 0u64;
        while let Some(message) = session.recv().await {
            if let Some(j) = message.strip_prefix("mark:") {
                let _ = session.send(format!("m{j}")).await;
            } else if let Some(k) = message.strip_prefix("more:") {
                let k: u64 = k.parse().unwrap_or(0);
                for _ in 0..k {
                    let n = app.seq.sent.load(Ordering::Relaxed);
                    // Waits for room: a slow client paces the application.
                    if let Err(e) = session.send(format!("s{n}")).await {
                        app.seq
                            .errors
                            .lock()
                            .unwrap()
                            .push(format!("send s{n}: {e}"));
                    }
                    app.seq.sent.fetch_add(1, Ordering::Relaxed);
                }
            } else if message == format!("c{next_client}") {
                next_client += 1;
                app.seq.received.store(next_client, Ordering::Relaxed);
            } else {
                app.seq
                    .errors
                    .lock()
                    .unwrap()
                    .push(format!("expected c{next_client}, got {message:?}"));
            }
        }
    } else {
        while let Some(message) = session.recv().await {
            let _ = session.send(message).await;
        }
    }
}

/// Waits up to `limit` for `done`; whether it came.
pub fn wait_for(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Sleeps on async-io's timer, which works under either adapter's runtime.
pub async fn sleep(d: Duration) {
    async_io::Timer::after(d).await;
}

/// A running server; stopped when dropped.
pub struct Target {
    pub adapter: Adapter,
    pub addr: SocketAddr,
    pub app: Arc<App>,
    count: Box<dyn Fn() -> usize + Send + Sync>,
    /// Requests the adapter holds.
    requests: Box<dyn Fn() -> usize + Send + Sync>,
    /// Starts the adapter's graceful shutdown.
    shutdown: Box<dyn Fn() + Send + Sync>,
    /// What the server's `serve` returned, once it has.
    ended: Arc<OnceLock<Result<(), std::io::ErrorKind>>>,
    /// The adapter's metrics accessor.
    metrics: Box<dyn Fn() -> Vec<Metrics> + Send + Sync>,
    /// Answers to requests that reached no service, by status.
    unrouted: Box<dyn Fn(u16) -> u64 + Send + Sync>,
    /// Its open connections and the idle ones it closed for new ones, as its metrics
    /// show them.
    connections: Box<dyn Fn() -> (Option<usize>, Option<u64>) + Send + Sync>,
    stop: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            stop();
        }
    }
}

impl Target {
    /// Sessions the server holds (the adapter's API).
    pub fn session_count(&self) -> usize {
        (self.count)()
    }

    /// Requests the server holds (pending receivers, streams, WebSockets).
    pub fn open_requests(&self) -> usize {
        (self.requests)()
    }

    /// Whether the server's `serve` has returned (after a graceful shutdown).
    pub fn has_ended(&self) -> bool {
        self.ended.get().is_some()
    }

    /// What the server's `serve` returned (the kind of its error), once it has.
    pub fn outcome(&self) -> Option<Result<(), std::io::ErrorKind>> {
        self.ended.get().copied()
    }

    /// Starts the adapter's graceful shutdown.
    pub fn shutdown(&self) {
        (self.shutdown)();
    }

    /// Every service's counters, through the adapter's accessor.
    pub fn metrics(&self) -> Vec<Metrics> {
        (self.metrics)()
    }

    /// Answers with `status` to requests that reached no service (the adapter's count).
    pub fn unrouted(&self, status: u16) -> u64 {
        (self.unrouted)(status)
    }

    /// The server's open connections, as its `sockjs_connections_open` gauge shows them.
    pub fn open_connections(&self) -> Option<usize> {
        (self.connections)().0
    }

    /// The idle connections the server closed for new ones at its `max_connections`, as
    /// its `sockjs_connections_reclaimed_total` counter shows them.
    pub fn reclaimed_connections(&self) -> Option<u64> {
        (self.connections)().1
    }

    /// The counters of the service mounted at `prefix`.
    pub fn metrics_of(&self, prefix: &str) -> Metrics {
        self.metrics()
            .into_iter()
            .find(|m| m.service == prefix)
            .unwrap()
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(&self.host(), Duration::from_secs(5)).unwrap()
    }

    /// One request on a fresh connection.
    pub fn request(&self, req: &Request) -> Response {
        self.conn().roundtrip(req).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// A WebSocket client on `path`, past the `o` frame.
    pub fn ws(&self, path: &str) -> tungstenite::WebSocket<TcpStream> {
        let mut ws = self.raw_ws(path, &[]);
        assert_eq!(ws_text(&mut ws).as_deref(), Some("o"));
        ws
    }

    /// A WebSocket client on `path` right after the handshake (nothing read yet), sending
    /// these extra header fields; reads time out after 5 s.
    pub fn raw_ws(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> tungstenite::WebSocket<TcpStream> {
        use tungstenite::client::IntoClientRequest as _;
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let mut request = self.url(path).into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                tungstenite::http::HeaderValue::from_str(value).unwrap(),
            );
        }
        let (ws, _) = tungstenite::client(request, stream).unwrap();
        ws
    }
}

/// Runs `body` on its own thread and fails the test if it has not finished within
/// `limit` (a hang becomes a failure instead of a stuck run).
pub fn within<R: Send + 'static>(limit: Duration, body: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let result = body();
        let _ = tx.send(());
        result
    });
    match rx.recv_timeout(limit) {
        Ok(()) => thread.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test did not finish within {limit:?}")
        }
    }
}

/// The next text frame other than a heartbeat, or `None` once closed.
pub fn ws_text(ws: &mut tungstenite::WebSocket<TcpStream>) -> Option<String> {
    for _ in 0..1000 {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) if t.as_str() == "h" => continue,
            Ok(tungstenite::Message::Text(t)) => return Some(t.as_str().to_owned()),
            Ok(tungstenite::Message::Close(frame)) => {
                return frame.map(|f| format!("close {} {}", u16::from(f.code), f.reason));
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Adapter settings for the tests.
#[derive(Debug, Clone)]
pub struct Settings {
    pub options: Options,
    pub config: Config,
}

impl Settings {
    /// These options, on two shards and the default connection settings.
    pub fn new(options: Options) -> Self {
        Settings {
            options,
            config: Config {
                shards: 2,
                ..Config::default()
            },
        }
    }
}

/// A type-erased session handler.
pub type Handler = Arc<dyn Fn(Session) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Wraps a handler.
pub fn handler<H, F>(handler: H) -> Handler
where
    H: Fn(Session) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |session| Box::pin(handler(session)))
}

/// One service to start: its prefix, options (`prefix` set to it), handler and admission
/// hook, if any.
pub struct Mount {
    pub prefix: String,
    pub options: Options,
    pub handler: Handler,
    pub admission: Option<Admission>,
}

impl Mount {
    pub fn new(prefix: &str, mut options: Options, handler: Handler) -> Mount {
        prefix.clone_into(&mut options.prefix);
        Mount {
            prefix: prefix.to_owned(),
            options,
            handler,
            admission: None,
        }
    }

    /// The same service behind this admission hook.
    pub fn admission(mut self, admission: Admission) -> Mount {
        self.admission = Some(admission);
        self
    }
}

/// The heartbeat delay of [`suite_base`].
pub const HEARTBEAT: Duration = Duration::from_millis(1000);
/// The disconnect delay of [`suite_base`].
pub const DISCONNECT: Duration = Duration::from_millis(1500);
/// Abort stress rounds for the suite against a server that cannot probe its sockets (TLS,
/// or mounted in another server). A receiver that would get 2010 there waits the abort
/// grace (default 250 ms, which must outlast a busy machine's scheduling delay) for the
/// attached one to turn out gone, and every polling round of the abort stress checks
/// provokes a real 2010: fewer rounds than the default 200 keep the run short.
pub const UNPROBED_ABORT_ROUNDS: usize = 20;

/// Options for the protocol suite's services in the tests: hixie-76 on, short delays.
pub fn suite_base() -> Options {
    Options {
        hixie76: true,
        heartbeat_delay: Some(HEARTBEAT),
        disconnect_delay: DISCONNECT,
        ..Options::default()
    }
}

/// The protocol suite's four services (PROTOCOL.md §1) on `base`.
pub fn suite(base: &Options) -> Vec<Mount> {
    sockjs_core::driver::suite::services(base)
        .into_iter()
        .map(|service| {
            let app = service.app;
            Mount::new(
                service.prefix,
                service.options,
                handler(move |s| app.run(s)),
            )
        })
        .collect()
}

/// Starts `adapter` with `/echo` running the test applications.
pub fn start(adapter: Adapter, settings: Settings) -> Target {
    let app = Arc::new(App::default());
    *app.flood_for.lock().unwrap() = Duration::from_secs(3);
    let handler_app = app.clone();
    let echo = Mount::new(
        "/echo",
        settings.options,
        handler(move |session| app_body(handler_app.clone(), session)),
    );
    let mut target = start_services(adapter, settings.config, vec![echo]);
    target.app = app;
    target
}

/// Starts `adapter` with these services and settings.
pub fn start_services(adapter: Adapter, config: Config, mounts: Vec<Mount>) -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    start_services_on(adapter, config, mounts, listener)
}

/// [`start_services`] on a listener of the test's own (a socket option the accepted
/// connections inherit).
pub fn start_services_on(
    adapter: Adapter,
    config: Config,
    mounts: Vec<Mount>,
    listener: TcpListener,
) -> Target {
    match adapter {
        Adapter::Smol => start_smol(config, mounts, listener),
        Adapter::Tokio => start_tokio(config, mounts, listener),
    }
}

fn start_smol(config: Config, mounts: Vec<Mount>, listener: TcpListener) -> Target {
    let services = mounts.len();
    let mut server = sockjs_smol::Server::with_config(config).threads(2);
    for mount in mounts {
        let handler = mount.handler;
        server = server
            .service(&mount.prefix, mount.options, move |s| handler(s))
            .unwrap();
        if let Some(admission) = mount.admission {
            server = server.admission(admission);
        }
    }
    let listener = async_io::Async::new(listener).unwrap();
    let addr = listener.get_ref().local_addr().unwrap();
    let handle = server.handle();
    let ended = Arc::new(OnceLock::new());
    let ending = ended.clone();
    let thread = std::thread::spawn(move || {
        let served = async_io::block_on(server.serve(listener));
        let _ = ending.set(served.map_err(|e| e.kind()));
    });
    let counter = handle.clone();
    // Wait until `serve` has made the services' engines (the handle shows them), so that
    // counts and metrics read through it are meaningful from the first request.
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.metrics().len() < services && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let shutdown = handle.clone();
    let requests = handle.clone();
    let metrics = handle.clone();
    let unrouted = handle.clone();
    let open = handle.clone();
    Target {
        adapter: Adapter::Smol,
        addr,
        app: Arc::default(),
        count: Box::new(move || counter.session_count()),
        requests: Box::new(move || requests.open_requests()),
        shutdown: Box::new(move || shutdown.shutdown()),
        ended,
        metrics: Box::new(move || metrics.metrics()),
        unrouted: Box::new(move |status| unrouted.unrouted().answered(status)),
        connections: Box::new(move || {
            let unrouted = open.unrouted();
            (
                unrouted.open_connections(),
                unrouted.reclaimed_connections(),
            )
        }),
        stop: Mutex::new(Some(Box::new(move || {
            // Graceful shutdown lasts about one disconnect delay; let it finish on its own.
            handle.shutdown();
            drop(thread);
        }))),
    }
}

fn start_tokio(config: Config, mounts: Vec<Mount>, std_listener: TcpListener) -> Target {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut routes = sockjs_tokio::Routes::new();
    let mut services = Vec::new();
    for mut mount in mounts {
        // `Routes` strips the mount path, as axum's `nest_service` does.
        mount.options.prefix.clear();
        let handler = mount.handler;
        let mut builder = sockjs_tokio::SockJs::builder(mount.options).config(config.clone());
        if let Some(admission) = mount.admission {
            builder = builder.admission(admission);
        }
        let service = builder.build(move |s| handler(s)).unwrap();
        services.push(service.clone());
        routes = routes.mount(&mount.prefix, service);
    }
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let metrics = routes.clone();
    let unrouted = routes.clone();
    let open = routes.clone();
    let ended = Arc::new(OnceLock::new());
    let ending = ended.clone();
    let server = {
        let _guard = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        let serve = sockjs_tokio::serve(listener, routes)
            .config(config)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            });
        runtime.spawn(async move {
            let served = serve.await;
            let _ = ending.set(served.map_err(|e| e.kind()));
        })
    };
    let counted = services.clone();
    let stop_tx = Mutex::new(Some(stop_tx));
    Target {
        adapter: Adapter::Tokio,
        addr,
        app: Arc::default(),
        count: Box::new(move || counted.iter().map(|s| s.session_count()).sum()),
        requests: Box::new(move || services.iter().map(|s| s.open_requests()).sum()),
        metrics: Box::new(move || metrics.metrics()),
        unrouted: Box::new(move |status| unrouted.unrouted().answered(status)),
        connections: Box::new(move || {
            let unrouted = open.unrouted();
            (
                unrouted.open_connections(),
                unrouted.reclaimed_connections(),
            )
        }),
        shutdown: Box::new(move || {
            if let Some(tx) = stop_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
        }),
        ended,
        stop: Mutex::new(Some(Box::new(move || {
            server.abort();
            runtime.shutdown_background();
        }))),
    }
}

/// A unique session path under `/echo` whose id starts with `kind`.
pub fn session(kind: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("/echo/000/{kind}{n}x{}", std::process::id())
}

/// Writes raw bytes on a fresh connection and returns the status line's code (0 when the
/// connection closed without one).
pub fn raw_status(addr: SocketAddr, bytes: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while conformance::http::find(&buf, b"\r\n\r\n").is_none() {
        match stream.read(&mut tmp) {
            Ok(0) | Err(_) => return (0, String::from_utf8_lossy(&buf).into_owned()),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Percentile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Resident set size of this process, from /proc (Linux), in KiB.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Whether the long variants run (`SOCKJS_LONG_TESTS=1`).
pub fn long_tests() -> bool {
    std::env::var("SOCKJS_LONG_TESTS").is_ok_and(|v| v == "1")
}

/// A throwaway CA and a server certificate for `127.0.0.1` and `localhost` signed by it,
/// written as PEM files into a fresh directory (removed on drop), and client settings that
/// trust that CA.
pub struct TestCerts {
    dir: std::path::PathBuf,
    /// The server's certificate chain.
    pub cert: std::path::PathBuf,
    /// Its private key.
    pub key: std::path::PathBuf,
    /// The CA's certificate.
    pub ca: std::path::PathBuf,
    /// Client settings trusting the CA.
    pub client: Arc<rustls::ClientConfig>,
}

impl TestCerts {
    pub fn new() -> TestCerts {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sockjs-certs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "sockjs-rs test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let certs = TestCerts {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            ca: dir.join("ca.pem"),
            client: conformance::tls::client_config(&[ca_cert.der().clone()]).unwrap(),
            dir,
        };
        std::fs::write(&certs.cert, cert.pem()).unwrap();
        std::fs::write(&certs.key, key.serialize_pem()).unwrap();
        std::fs::write(&certs.ca, ca_cert.pem()).unwrap();
        certs
    }

    /// The server settings, read back from the PEM files with the adapters' helper.
    pub fn server(&self) -> Arc<sockjs_core::driver::tls::ServerConfig> {
        sockjs_core::driver::tls::config_from_pem(&self.cert, &self.key).unwrap()
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
