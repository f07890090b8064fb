//! Hostile-input checks: malformed and oversized requests, bad payloads and callbacks,
//! odd `Upgrade` headers, slowloris clients and clients that vanish mid-request, sent over
//! real sockets to any SockJS server.
//!
//! Every case must get a clear, bounded outcome: the protocol's status (or any error
//! status for malformed HTTP) or a closed connection, within the I/O timeout (or the
//! server's request timeout for the slowloris cases). While the cases run, a control
//! WebSocket session echoes a ping every few milliseconds; the run fails if the server
//! stops answering, if a control echo goes missing or arrives out of order, or if its
//! round trip ever takes longer than [`HostileConfig::max_control_latency`]. After every
//! case a fresh polling session must still open and echo.
//!
//! The server must expose an echo service at [`HostileConfig::prefix`] (the suite's
//! `/echo` with its default 256 KiB request body limit).
//!
//! ```no_run
//! use std::time::Duration;
//! let config = conformance::hostile::HostileConfig::new("http://127.0.0.1:8081")
//!     .request_timeout(Duration::from_secs(10));
//! let report = conformance::hostile::run(&config);
//! print!("{}", report.table());
//! assert!(report.is_success());
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{Conn, Request, find, parse_head};
use crate::util::esc_short;

/// What the hostile run needs to know about the server.
#[derive(Debug, Clone)]
pub struct HostileConfig {
    /// `http://host:port` of the server.
    pub base_url: String,
    /// The echo service's prefix. Default `/echo`.
    pub prefix: String,
    /// How long one exchange may take before the server counts as hung. Default 3 s.
    pub io_timeout: Duration,
    /// The server's request (head and body) read timeout and idle keep-alive timeout,
    /// whichever is longer. When set, the slowloris cases run and must see the connection
    /// closed within it (plus [`io_timeout`](Self::io_timeout)); when not, they are
    /// skipped.
    pub request_timeout: Option<Duration>,
    /// The service's `max_request_body`. Default 256 KiB (the protocol engine's default).
    pub max_request_body: usize,
    /// Longest round trip the control session may see while the hostile cases run.
    /// Default 1 s.
    pub max_control_latency: Duration,
    /// Run only cases whose name contains this.
    pub filter: Option<String>,
}

impl HostileConfig {
    /// Defaults for a server at `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        HostileConfig {
            base_url: base_url.into(),
            prefix: "/echo".into(),
            io_timeout: Duration::from_secs(3),
            request_timeout: None,
            max_request_body: 256 * 1024,
            max_control_latency: Duration::from_secs(1),
            filter: None,
        }
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Sets [`io_timeout`](Self::io_timeout).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    fn host(&self) -> &str {
        let rest = self
            .base_url
            .strip_prefix("http://")
            .unwrap_or(&self.base_url);
        rest.split('/').next().unwrap_or(rest)
    }
}

/// The result of one hostile case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's name.
    pub name: &'static str,
    /// What the server did for each variant (`Ok`), or why the case failed (`Err`).
    pub outcome: Result<String, String>,
    /// How long the case took.
    pub elapsed: Duration,
}

/// The results of a hostile run.
#[derive(Debug, Clone, Default)]
pub struct HostileReport {
    /// One entry per case run.
    pub cases: Vec<CaseResult>,
    /// Failures of the control session (liveness, order, latency), if any.
    pub control: Vec<String>,
    /// Control pings echoed while the cases ran.
    pub control_pings: usize,
    /// The slowest control round trip.
    pub control_max_latency: Duration,
    /// Cases skipped (e.g. slowloris without a request timeout).
    pub skipped: Vec<&'static str>,
}

impl HostileReport {
    /// Whether every case and the control session passed.
    pub fn is_success(&self) -> bool {
        self.control.is_empty()
            && !self.cases.is_empty()
            && self.cases.iter().all(|c| c.outcome.is_ok())
    }

    /// A text table of the cases and the control session's figures.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for case in &self.cases {
            let (mark, detail) = match &case.outcome {
                Ok(d) => ("ok  ", d),
                Err(d) => ("FAIL", d),
            };
            out.push_str(&format!(
                "{mark} {:<28} {:>6} ms  {detail}\n",
                case.name,
                case.elapsed.as_millis()
            ));
        }
        for name in &self.skipped {
            out.push_str(&format!("skip {name:<28}  (needs --request-timeout-ms)\n"));
        }
        out.push_str(&format!(
            "control session: {} echoes, slowest round trip {} ms{}\n",
            self.control_pings,
            self.control_max_latency.as_millis(),
            if self.control.is_empty() {
                String::new()
            } else {
                format!(", FAILED: {}", self.control.join("; "))
            }
        ));
        out
    }

    /// Panics with the table unless the run succeeded.
    pub fn assert_success(&self) {
        assert!(self.is_success(), "hostile run failed:\n{}", self.table());
    }
}

/// What a raw exchange ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A complete response head (and as much of the body as was read).
    Status(u16, Vec<u8>),
    /// The server closed the connection without a (complete) response.
    Closed,
    /// Nothing happened within the timeout.
    Hung,
    /// A response head that is not HTTP/1.x (a bad status line or header field).
    Malformed,
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Observed::Status(s, body) => write!(f, "{s} \"{}\"", esc_short(body, 40)),
            Observed::Closed => f.write_str("closed"),
            Observed::Hung => f.write_str("HUNG"),
            Observed::Malformed => f.write_str("a malformed response"),
        }
    }
}

/// What a variant may get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// An error status (400..=599) or a closed connection.
    Rejected,
    /// Exactly this status.
    Status(u16),
    /// This status, or a closed connection (the server may refuse before reading).
    StatusOrClosed(u16),
    /// Any response or a closed connection, as long as it comes in time.
    Bounded,
}

impl Expect {
    fn accepts(self, seen: &Observed) -> bool {
        match (self, seen) {
            (_, Observed::Hung | Observed::Malformed) => false,
            (Expect::Bounded, _) => true,
            (Expect::Rejected, Observed::Closed) => true,
            (Expect::Rejected, Observed::Status(s, _)) => (400..=599).contains(s),
            (Expect::Status(want), Observed::Status(s, _)) => *s == want,
            (Expect::Status(_), Observed::Closed) => false,
            (Expect::StatusOrClosed(want), Observed::Status(s, _)) => *s == want,
            (Expect::StatusOrClosed(_), Observed::Closed) => true,
        }
    }
}

struct Ctx<'a> {
    config: &'a HostileConfig,
    addr: SocketAddr,
    counter: std::sync::atomic::AtomicU64,
}

impl Ctx<'_> {
    fn connect(&self) -> Result<TcpStream, String> {
        let stream = TcpStream::connect_timeout(&self.addr, self.config.io_timeout)
            .map_err(|e| format!("connect: {e} (server down?)"))?;
        let _ = stream.set_read_timeout(Some(self.config.io_timeout));
        let _ = stream.set_write_timeout(Some(self.config.io_timeout));
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    fn conn(&self) -> Result<Conn, String> {
        Conn::connect(self.config.host(), self.config.io_timeout).map_err(|e| e.0)
    }

    fn p(&self, rest: &str) -> String {
        format!("{}{rest}", self.config.prefix)
    }

    fn fresh_session(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        self.p(&format!("/000/hostile{n}x{nanos}"))
    }

    /// Sends `bytes` on a new connection and reads what comes back.
    fn exchange(&self, bytes: &[u8]) -> Result<Observed, String> {
        let mut stream = self.connect()?;
        // A server may close before reading everything: a failed write is not an error.
        let _ = stream.write_all(bytes);
        Ok(read_outcome(&mut stream, self.config.io_timeout))
    }

    /// Sends `bytes` and checks the outcome against `expect`.
    fn expect(&self, what: &str, bytes: &[u8], expect: Expect) -> Result<String, String> {
        let seen = self.exchange(bytes)?;
        if expect.accepts(&seen) {
            Ok(format!("{what}: {seen}"))
        } else {
            Err(format!("{what}: got {seen}, expected {expect:?}"))
        }
    }

    /// A new polling session opens and echoes.
    fn liveness(&self) -> Result<(), String> {
        let session = self.fresh_session();
        let mut conn = self.conn()?;
        let open = conn
            .roundtrip(&Request::new("POST", &format!("{session}/xhr")))
            .map_err(|e| format!("liveness: opening a session: {}", e.0))?;
        if open.text() != "o\n" {
            return Err(format!("liveness: opening a session got {}", open.text()));
        }
        let sent = conn
            .roundtrip(&Request::new("POST", &format!("{session}/xhr_send")).body("[\"alive\"]"))
            .map_err(|e| format!("liveness: sending: {}", e.0))?;
        if sent.status() != 204 {
            return Err(format!("liveness: xhr_send got {}", sent.status()));
        }
        let polled = conn
            .roundtrip(&Request::new("POST", &format!("{session}/xhr")))
            .map_err(|e| format!("liveness: polling: {}", e.0))?;
        if polled.text() != "a[\"alive\"]\n" {
            return Err(format!("liveness: the echo was {:?}", polled.text()));
        }
        Ok(())
    }
}

/// Reads a response head (and a bounded part of its body) or the connection's end.
fn read_outcome(stream: &mut TcpStream, timeout: Duration) -> Observed {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let Ok(head) = parse_head(&buf[..end]) else {
                return Observed::Malformed;
            };
            let mut body = buf[end + 4..].to_vec();
            // Read a little of the body when it is short and delimited.
            if let Some(Ok(n)) = head.content_length() {
                let want = n.min(256);
                while body.len() < want && Instant::now() < deadline {
                    match stream.read(&mut tmp) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => body.extend_from_slice(&tmp[..k]),
                    }
                }
                body.truncate(want);
            }
            return Observed::Status(head.status, body);
        }
        if Instant::now() >= deadline || buf.len() > 64 * 1024 {
            return Observed::Hung;
        }
        match stream.read(&mut tmp) {
            Ok(0) => return Observed::Closed,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Observed::Hung;
            }
            Err(_) => return Observed::Closed,
        }
    }
}

/// Waits until the server closes `stream` (reading and discarding), at most `limit`.
fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut tmp = [0u8; 4096];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    while started.elapsed() < limit {
        match stream.read(&mut tmp) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

fn req(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: hostile\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !body.is_empty() || method == "POST" {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

type CaseFn = fn(&Ctx<'_>) -> Result<String, String>;

/// Every hostile case: name, whether it needs the request timeout, and the check.
fn cases() -> Vec<(&'static str, bool, CaseFn)> {
    vec![
        ("malformed_request_lines", false, malformed_request_lines),
        ("malformed_headers", false, malformed_headers),
        ("oversized_heads", false, oversized_heads),
        ("oversized_bodies", false, oversized_bodies),
        ("bad_framing", false, bad_framing),
        ("invalid_utf8_and_broken_json", false, invalid_payloads),
        ("bad_jsonp_callbacks", false, bad_jsonp_callbacks),
        ("unknown_sessions", false, unknown_sessions),
        ("upgrade_header_shapes", false, upgrade_shapes),
        ("websocket_garbage_frames", false, websocket_garbage),
        ("clients_vanish_mid_request", false, vanish_mid_request),
        ("clients_vanish_mid_stream", false, vanish_mid_stream),
        ("slowloris_trickled_head", true, slowloris_head),
        ("slowloris_unfinished_body", true, slowloris_body),
        ("idle_connection", true, idle_connection),
    ]
}

/// The names of every hostile case.
pub fn case_names() -> Vec<&'static str> {
    cases().into_iter().map(|c| c.0).collect()
}

/// Runs the hostile cases (sequentially) against the server while a control session
/// measures its responsiveness.
pub fn run(config: &HostileConfig) -> HostileReport {
    let mut report = HostileReport::default();
    let addr = match config.host().to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        _ => {
            report
                .control
                .push(format!("cannot resolve {}", config.host()));
            return report;
        }
    };
    let ctx = Ctx {
        config,
        addr,
        counter: Default::default(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let control = {
        let stop = stop.clone();
        let config = config.clone();
        thread::spawn(move || control_session(&config, addr, &stop))
    };
    // Let the control session open before the first case.
    thread::sleep(Duration::from_millis(100));
    for (name, needs_timeout, case) in cases() {
        if config.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        if needs_timeout && config.request_timeout.is_none() {
            report.skipped.push(name);
            continue;
        }
        let started = Instant::now();
        let mut outcome = case(&ctx);
        if outcome.is_ok() {
            if let Err(e) = ctx.liveness() {
                outcome = Err(format!("after the case: {e}"));
            }
        }
        report.cases.push(CaseResult {
            name,
            outcome,
            elapsed: started.elapsed(),
        });
    }
    stop.store(true, Ordering::Release);
    match control.join() {
        Ok(stats) => {
            report.control_pings = stats.pings;
            report.control_max_latency = stats.max_latency;
            report.control = stats.failures;
            if stats.max_latency > config.max_control_latency {
                report.control.push(format!(
                    "a control round trip took {} ms (bound {} ms)",
                    stats.max_latency.as_millis(),
                    config.max_control_latency.as_millis()
                ));
            }
        }
        Err(_) => report.control.push("the control thread panicked".into()),
    }
    report
}

struct ControlStats {
    pings: usize,
    max_latency: Duration,
    failures: Vec<String>,
}

/// A WebSocket echo session that pings until `stop`, checking order and latency.
fn control_session(config: &HostileConfig, addr: SocketAddr, stop: &AtomicBool) -> ControlStats {
    let mut stats = ControlStats {
        pings: 0,
        max_latency: Duration::ZERO,
        failures: Vec::new(),
    };
    let fail = |stats: &mut ControlStats, e: String| {
        stats.failures.push(e);
    };
    let stream = match TcpStream::connect_timeout(&addr, config.io_timeout) {
        Ok(s) => s,
        Err(e) => {
            fail(&mut stats, format!("control connect: {e}"));
            return stats;
        }
    };
    let _ = stream.set_read_timeout(Some(config.io_timeout));
    let _ = stream.set_nodelay(true);
    let url = format!(
        "ws://{}{}/000/hostile-control/websocket",
        config.host(),
        config.prefix
    );
    let mut ws = match tungstenite::client(url.as_str(), stream) {
        Ok((ws, _)) => ws,
        Err(e) => {
            fail(&mut stats, format!("control handshake: {e}"));
            return stats;
        }
    };
    // Heartbeats and pings are skipped, but only until the I/O timeout: a server that
    // sends nothing else must not keep the control session (and the run) waiting.
    let io_timeout = config.io_timeout;
    let read_text = |ws: &mut tungstenite::WebSocket<TcpStream>| {
        let deadline = Instant::now() + io_timeout;
        loop {
            if Instant::now() >= deadline {
                return Err(format!(
                    "control read: no message within {} ms",
                    io_timeout.as_millis()
                ));
            }
            match ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    let t = t.as_str();
                    if t == "h" {
                        continue;
                    }
                    return Ok(t.to_owned());
                }
                Ok(tungstenite::Message::Close(_)) => return Err("control session closed".into()),
                Ok(_) => continue,
                Err(e) => return Err(format!("control read: {e}")),
            }
        }
    };
    match read_text(&mut ws) {
        Ok(t) if t == "o" => {}
        Ok(t) => {
            fail(&mut stats, format!("control open frame {t:?}"));
            return stats;
        }
        Err(e) => {
            fail(&mut stats, e);
            return stats;
        }
    }
    // Bounded: at most one ping per 20 ms for at most ten minutes.
    let give_up = Instant::now() + Duration::from_secs(600);
    while !stop.load(Ordering::Acquire) && Instant::now() < give_up {
        let n = stats.pings;
        let sent = Instant::now();
        if let Err(e) = ws.send(tungstenite::Message::text(format!("[\"ping{n}\"]"))) {
            fail(&mut stats, format!("control send: {e}"));
            return stats;
        }
        match read_text(&mut ws) {
            Ok(t) if t == format!("a[\"ping{n}\"]") => {}
            Ok(t) => {
                fail(&mut stats, format!("control ping {n} echoed as {t:?}"));
                return stats;
            }
            Err(e) => {
                fail(&mut stats, format!("ping {n}: {e}"));
                return stats;
            }
        }
        stats.max_latency = stats.max_latency.max(sent.elapsed());
        stats.pings += 1;
        thread::sleep(Duration::from_millis(20));
    }
    let _ = ws.close(None);
    stats
}

/// Runs `variants` through `ctx.expect` and joins the outcomes.
fn all(ctx: &Ctx<'_>, variants: Vec<(&str, Vec<u8>, Expect)>) -> Result<String, String> {
    let mut seen = Vec::new();
    for (what, bytes, expect) in variants {
        seen.push(ctx.expect(what, &bytes, expect)?);
    }
    Ok(seen.join("; "))
}

fn malformed_request_lines(ctx: &Ctx<'_>) -> Result<String, String> {
    let long_target = format!("GET {} HTTP/1.1\r\n\r\n", ctx.p(&"/a".repeat(40_000)));
    all(
        ctx,
        vec![
            ("binary", b"\x00\x01\x02\xff\xfe garbage\r\n\r\n".to_vec(), Expect::Rejected),
            ("no target", b"GET\r\nHost: x\r\n\r\n".to_vec(), Expect::Rejected),
            ("no version", b"GET /echo\r\nHost: x\r\n\r\n".to_vec(), Expect::Rejected),
            ("bad version", b"GET /echo HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), Expect::Rejected),
            ("extra token", b"GET /echo HTTP/1.1 x\r\nHost: x\r\n\r\n".to_vec(), Expect::Rejected),
            ("double space", b"GET  /echo HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), Expect::Rejected),
            ("space in target", b"GET /echo /x HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), Expect::Rejected),
            ("bad method token", b"G(T /echo HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), Expect::Rejected),
            ("unknown method", b"BREW /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), Expect::Bounded),
            ("absolute target", b"GET http://evil.example/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), Expect::Bounded),
            ("asterisk target", b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), Expect::Bounded),
            ("non-UTF-8 target", [&b"GET /echo/\xff\xfe/\xc0/xhr HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..]].concat(), Expect::Bounded),
            ("percent garbage", b"POST /echo/%zz/%00/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(), Expect::Bounded),
            ("80 KB target", long_target.into_bytes(), Expect::Rejected),
            ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), Expect::Rejected),
            ("lone LF lines", b"GET /echo HTTP/1.1\nHost: x\nConnection: close\n\n".to_vec(), Expect::Bounded),
        ],
    )
}

fn malformed_headers(ctx: &Ctx<'_>) -> Result<String, String> {
    let h = |line: &[u8]| {
        [
            &b"GET /echo/info HTTP/1.1\r\nHost: x\r\n"[..],
            line,
            b"\r\nConnection: close\r\n\r\n",
        ]
        .concat()
    };
    all(
        ctx,
        vec![
            ("no colon", h(b"NoColonHere"), Expect::Rejected),
            ("space in name", h(b"Bad Name: x"), Expect::Rejected),
            (
                "space before colon",
                h(b"Origin : http://x"),
                Expect::Rejected,
            ),
            ("empty name", h(b": value"), Expect::Rejected),
            ("obs-fold", h(b"X-A: a\r\n  folded"), Expect::Bounded),
            (
                "NUL in value",
                h(b"Origin: http://a\x00b"),
                Expect::Rejected,
            ),
            ("CR in value", h(b"Origin: http://a\rb"), Expect::Rejected),
            (
                "non-UTF-8 value",
                h(b"Origin: http://\xff\xfe"),
                Expect::Bounded,
            ),
            (
                "non-UTF-8 cookie",
                h(b"Cookie: JSESSIONID=\xff"),
                Expect::Bounded,
            ),
            ("empty host", h(b"Host:"), Expect::Bounded),
            (
                "huge ACRH",
                h(format!("Access-Control-Request-Headers: {}", "a,".repeat(4000)).as_bytes()),
                Expect::Bounded,
            ),
        ],
    )
}

fn oversized_heads(ctx: &Ctx<'_>) -> Result<String, String> {
    let big_value = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        ctx.p(""),
        "v".repeat(600 * 1024)
    );
    let mut many = format!("GET {} HTTP/1.1\r\nHost: x\r\n", ctx.p(""));
    for i in 0..2000 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let mut endless = format!("GET {} HTTP/1.1\r\nHost: x\r\n", ctx.p("")).into_bytes();
    endless.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    all(
        ctx,
        vec![
            ("600 KB header", big_value.into_bytes(), Expect::Rejected),
            ("2000 headers", many.into_bytes(), Expect::Rejected),
            ("1 MB unterminated header", endless, Expect::Rejected),
        ],
    )
}

fn oversized_bodies(ctx: &Ctx<'_>) -> Result<String, String> {
    let limit = ctx.config.max_request_body;
    let session = ctx.fresh_session();
    let mut conn = ctx.conn()?;
    let open = conn
        .roundtrip(&Request::new("POST", &format!("{session}/xhr")))
        .map_err(|e| e.0)?;
    if open.text() != "o\n" {
        return Err(format!("opening: {:?}", open.text()));
    }
    let send = format!("{session}/xhr_send");
    let declared = format!(
        "POST {send} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
        limit + 1
    );
    let mut full = declared.clone().into_bytes();
    full.extend(std::iter::repeat_n(b'x', limit + 1));
    let mut chunked =
        format!("POST {send} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for _ in 0..(limit / 8192 + 2) {
        chunked.extend_from_slice(b"2000\r\n");
        chunked.extend(std::iter::repeat_n(b'y', 8192));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let huge = format!(
        "POST {send} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"
    );
    let jsonp = format!(
        "POST {session}/jsonp_send HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        limit * 4
    );
    all(
        ctx,
        vec![
            (
                "declared over the limit, no body",
                declared.into_bytes(),
                Expect::StatusOrClosed(413),
            ),
            ("sent over the limit", full, Expect::StatusOrClosed(413)),
            (
                "chunked over the limit",
                chunked,
                Expect::StatusOrClosed(413),
            ),
            ("absurd Content-Length", huge.into_bytes(), Expect::Rejected),
            (
                "jsonp_send over the limit",
                jsonp.into_bytes(),
                Expect::StatusOrClosed(413),
            ),
        ],
    )
}

fn bad_framing(ctx: &Ctx<'_>) -> Result<String, String> {
    let session = ctx.fresh_session();
    let send = format!("{session}/xhr_send");
    let with = |headers: &str, body: &str| {
        format!("POST {send} HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}").into_bytes()
    };
    all(
        ctx,
        vec![
            (
                "two Content-Lengths",
                with("Content-Length: 3\r\nContent-Length: 4\r\n", "[1]x"),
                Expect::Rejected,
            ),
            (
                "Content-Length list",
                with("Content-Length: 3, 4\r\n", "[1]x"),
                Expect::Rejected,
            ),
            // RFC 9112 §3.2 (a front end may route by one Host, the server by the other).
            (
                "two Host fields",
                with("Host: y\r\nContent-Length: 3\r\n", "[1]"),
                Expect::StatusOrClosed(400),
            ),
            // RFC 9112 §3.2: an HTTP/1.1 request must name its host, once, validly.
            (
                "no Host in HTTP/1.1",
                format!("POST {send} HTTP/1.1\r\nContent-Length: 3\r\n\r\n[1]").into_bytes(),
                Expect::StatusOrClosed(400),
            ),
            (
                "Host with user info and a path",
                format!("POST {send} HTTP/1.1\r\nHost: u@x/y\r\nContent-Length: 3\r\n\r\n[1]")
                    .into_bytes(),
                Expect::StatusOrClosed(400),
            ),
            (
                "negative Content-Length",
                with("Content-Length: -1\r\n", ""),
                Expect::Rejected,
            ),
            (
                "letters in Content-Length",
                with("Content-Length: 1a\r\n", ""),
                Expect::Rejected,
            ),
            (
                "bad chunk size",
                with("Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n"),
                Expect::Rejected,
            ),
            (
                "chunk size overflow",
                with(
                    "Transfer-Encoding: chunked\r\n",
                    "ffffffffffffffffffff\r\nabc\r\n",
                ),
                Expect::Rejected,
            ),
            (
                "unknown transfer coding",
                with("Transfer-Encoding: gzip\r\n", "abc"),
                Expect::Rejected,
            ),
            (
                "TE and CL together",
                with(
                    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
                    "0\r\n\r\n",
                ),
                Expect::Bounded,
            ),
            (
                "chunk missing CRLF",
                with("Transfer-Encoding: chunked\r\n", "3\r\nabcXY0\r\n\r\n"),
                Expect::Rejected,
            ),
        ],
    )
}

fn invalid_payloads(ctx: &Ctx<'_>) -> Result<String, String> {
    let session = ctx.fresh_session();
    let mut conn = ctx.conn()?;
    let open = conn
        .roundtrip(&Request::new("POST", &format!("{session}/xhr")))
        .map_err(|e| e.0)?;
    if open.text() != "o\n" {
        return Err(format!("opening: {:?}", open.text()));
    }
    let send = format!("{session}/xhr_send");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("invalid UTF-8 in a string", b"[\"\xff\xfe\"]".to_vec()),
        ("overlong UTF-8", b"[\"\xc0\xaf\"]".to_vec()),
        ("lone surrogate escape", br#"["\ud800"]"#.to_vec()),
        ("truncated", br#"["x"#.to_vec()),
        ("object", br#"{"a":1}"#.to_vec()),
        ("numbers (taken as their JSON text)", b"[1,2]".to_vec()),
        ("nested (taken as JSON text)", br#"[["x"]]"#.to_vec()),
        ("string", br#""x""#.to_vec()),
        (
            "100 000 levels deep (one element, taken as JSON text)",
            deep.into_bytes(),
        ),
        ("NUL bytes", b"\x00\x00\x00".to_vec()),
        ("trailing garbage", br#"["x"]]]"#.to_vec()),
    ];
    let mut seen = Vec::new();
    for (what, body) in bodies {
        let request = req("POST", &send, &[("Content-Type", "text/plain")], &body);
        let observed = ctx.exchange(&request)?;
        // The protocol answers a payload it cannot decode with 500; array items that are
        // not strings are delivered as their JSON text (as sockjs-node does), and a lone
        // surrogate escape may be accepted (decoded lossily) or refused.
        let ok = match &observed {
            Observed::Status(500, body) => {
                body.starts_with(b"Broken JSON encoding.") || body.starts_with(b"Payload expected.")
            }
            Observed::Status(204, _) => {
                what == "lone surrogate escape" || what.contains("JSON text")
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "{what}: got {observed}, expected 500 Broken JSON encoding."
            ));
        }
        seen.push(format!("{what}: {observed}"));
    }
    let empty = req("POST", &send, &[], b"");
    let observed = ctx.exchange(&empty)?;
    if !matches!(&observed, Observed::Status(500, b) if b.starts_with(b"Payload expected.")) {
        return Err(format!(
            "empty body: got {observed}, expected 500 Payload expected."
        ));
    }
    // The session survived its client's garbage.
    let sent = conn
        .roundtrip(&Request::new("POST", &send).body("[\"still here\"]"))
        .map_err(|e| e.0)?;
    let polled = conn
        .roundtrip(&Request::new("POST", &format!("{session}/xhr")))
        .map_err(|e| e.0)?;
    if sent.status() != 204 || !polled.text().contains("still here") {
        return Err(format!(
            "the session did not survive: send {} poll {:?}",
            sent.status(),
            polled.text()
        ));
    }
    seen.push("session still echoes".into());
    Ok(seen.join("; "))
}

fn bad_jsonp_callbacks(ctx: &Ctx<'_>) -> Result<String, String> {
    let mut seen = Vec::new();
    let long = "a".repeat(64 * 1024);
    for callback in [
        "alert(1)//",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "a%3Bb",
        "a%2Fb",
        "a%22b",
        "a%0Ab",
        "%E2%80%A8",
        "",
        long.as_str(),
    ] {
        for (method, transport) in [("GET", "jsonp"), ("GET", "htmlfile")] {
            let session = ctx.fresh_session();
            let path = format!("{session}/{transport}?c={callback}");
            let observed = ctx.exchange(&req(method, &path, &[], b""))?;
            let ok = match &observed {
                Observed::Status(500, body) => {
                    body.starts_with(b"\"callback\" parameter required")
                        || body.starts_with(b"invalid \"callback\" parameter")
                }
                // A 64 KB target may be refused as too long before routing.
                Observed::Status(s, _) => callback.len() > 1000 && (400..=499).contains(s),
                Observed::Closed => callback.len() > 1000,
                Observed::Hung | Observed::Malformed => false,
            };
            if !ok {
                return Err(format!(
                    "{transport} callback {:?}: got {observed}",
                    esc_short(callback.as_bytes(), 40)
                ));
            }
        }
        seen.push(format!("{}: refused", esc_short(callback.as_bytes(), 20)));
    }
    // The same without any callback parameter, and with a valid one under a bad name.
    let session = ctx.fresh_session();
    let observed = ctx.exchange(&req("GET", &format!("{session}/jsonp"), &[], b""))?;
    if !matches!(&observed, Observed::Status(500, _)) {
        return Err(format!("jsonp without c: got {observed}"));
    }
    seen.push("missing: 500".into());
    Ok(seen.join("; "))
}

fn unknown_sessions(ctx: &Ctx<'_>) -> Result<String, String> {
    let session = ctx.fresh_session();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    all(
        ctx,
        vec![
            (
                "xhr_send",
                req("POST", &format!("{session}/xhr_send"), &[], b"[\"x\"]"),
                Expect::Status(404),
            ),
            (
                "jsonp_send",
                req(
                    "POST",
                    &format!("{session}/jsonp_send"),
                    &form,
                    b"d=%5B%22x%22%5D",
                ),
                Expect::Status(404),
            ),
            (
                "dot in session id",
                req("POST", &ctx.p("/000/a.b/xhr"), &[], b""),
                Expect::Status(404),
            ),
            (
                "empty session id",
                req("POST", &ctx.p("/000//xhr"), &[], b""),
                Expect::Status(404),
            ),
            (
                "unknown transport",
                req("POST", &format!("{session}/nope"), &[], b""),
                Expect::Status(404),
            ),
            (
                "extra segment",
                req("POST", &format!("{session}/xhr/x"), &[], b""),
                Expect::Status(404),
            ),
            (
                "traversal",
                req("GET", &ctx.p("/../../etc/passwd"), &[], b""),
                Expect::Status(404),
            ),
        ],
    )
}

fn upgrade_shapes(ctx: &Ctx<'_>) -> Result<String, String> {
    let ws = ctx.p("/000/upgrade-shapes/websocket");
    let key = ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    let version = ("Sec-WebSocket-Version", "13");
    let conn_up = ("Connection", "Upgrade");
    let long_upgrade = "websocket,".repeat(1000);
    let mut variants: Vec<(String, Vec<u8>, Expect)> = Vec::new();
    let shapes: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no Upgrade", vec![conn_up, key, version]),
        (
            "empty Upgrade",
            vec![("Upgrade", ""), conn_up, key, version],
        ),
        (
            "Upgrade: foo",
            vec![("Upgrade", "foo"), conn_up, key, version],
        ),
        (
            "Upgrade: commas",
            vec![("Upgrade", ",,,"), conn_up, key, version],
        ),
        (
            "Upgrade: h2c",
            vec![
                ("Upgrade", "h2c"),
                ("Connection", "Upgrade, HTTP2-Settings"),
                ("HTTP2-Settings", "AAMAAABkAAQAAP__"),
            ],
        ),
        (
            "Upgrade: websocket/13",
            vec![("Upgrade", "websocket/13"), conn_up, key, version],
        ),
        (
            "Upgrade without Connection",
            vec![("Upgrade", "websocket"), key, version],
        ),
        (
            "Connection: close",
            vec![
                ("Upgrade", "websocket"),
                ("Connection", "close"),
                key,
                version,
            ],
        ),
        ("no key", vec![("Upgrade", "websocket"), conn_up, version]),
        ("no version", vec![("Upgrade", "websocket"), conn_up, key]),
        (
            "version 99",
            vec![
                ("Upgrade", "websocket"),
                conn_up,
                key,
                ("Sec-WebSocket-Version", "99"),
            ],
        ),
        (
            "version 13abc",
            vec![
                ("Upgrade", "websocket"),
                conn_up,
                key,
                ("Sec-WebSocket-Version", "13abc"),
            ],
        ),
        (
            "version list",
            vec![
                ("Upgrade", "websocket"),
                conn_up,
                key,
                ("Sec-WebSocket-Version", "13, 8"),
            ],
        ),
        (
            "hixie-76 keys",
            vec![
                ("Upgrade", "WebSocket"),
                conn_up,
                ("Sec-WebSocket-Key1", "4 @1  46546xW%0l 1 5"),
                ("Sec-WebSocket-Key2", "12998 5 Y3 1  .P00"),
            ],
        ),
        (
            "hixie-76 garbage keys",
            vec![
                ("Upgrade", "WebSocket"),
                conn_up,
                ("Sec-WebSocket-Key1", "no digits"),
                ("Sec-WebSocket-Key2", "   "),
            ],
        ),
        (
            "two Upgrade headers",
            vec![
                ("Upgrade", "websocket"),
                ("Upgrade", "websocket"),
                conn_up,
                key,
                version,
            ],
        ),
        (
            "very long Upgrade",
            vec![("Upgrade", long_upgrade.as_str()), conn_up, key, version],
        ),
    ];
    for (what, headers) in shapes {
        // Anything bounded, including 101 for shapes a lenient server accepts.
        variants.push((what.into(), req("GET", &ws, &headers, b""), Expect::Bounded));
    }
    // RFC 6455 §4.1: the key is the base64 of 16 bytes; anything else is a bad handshake.
    for (what, bad) in [
        ("short key", "abc"),
        ("key of 15 bytes", "AAECAwQFBgcICQoLDA0O"),
        ("key of 17 bytes", "AAECAwQFBgcICQoLDA0ODxA="),
        ("key without padding", "dGhlIHNhbXBsZSBub25jZQ"),
        ("key with a bad character", "dGhlIHNhbXBsZSBub25jZ*=="),
    ] {
        let headers = [
            ("Upgrade", "websocket"),
            conn_up,
            ("Sec-WebSocket-Key", bad),
            version,
        ];
        variants.push((
            what.into(),
            req("GET", &ws, &headers, b""),
            Expect::Status(400),
        ));
    }
    variants.push((
        "non-ASCII Upgrade".into(),
        [
            format!("GET {ws} HTTP/1.1\r\nHost: x\r\nUpgrade: web\u{ff}socket\r\nConnection: Upgrade\r\n\r\n")
                .as_bytes(),
            b"",
        ]
        .concat(),
        Expect::Bounded,
    ));
    variants.push((
        "binary Upgrade".into(),
        [
            format!("GET {ws} HTTP/1.1\r\nHost: x\r\nUpgrade: ").as_bytes(),
            b"\xff\xfe\x80",
            b"\r\nConnection: Upgrade\r\n\r\n",
        ]
        .concat(),
        Expect::Bounded,
    ));
    variants.push((
        "POST upgrade".into(),
        req(
            "POST",
            &ws,
            &[("Upgrade", "websocket"), conn_up, key, version],
            b"",
        ),
        Expect::Rejected,
    ));
    // CVE-2020-7693's shape: an Upgrade header on endpoints that are not WebSockets.
    let session = ctx.fresh_session();
    for rest in ["", "/info", "/iframe.html"] {
        variants.push((
            format!(
                "Upgrade on {}",
                if rest.is_empty() { "greeting" } else { rest }
            ),
            req(
                "GET",
                &ctx.p(rest),
                &[("Upgrade", "websocket"), conn_up, key, version],
                b"",
            ),
            Expect::Bounded,
        ));
    }
    for transport in ["xhr", "xhr_streaming", "xhr_send"] {
        variants.push((
            format!("Upgrade on {transport}"),
            req(
                "POST",
                &format!("{session}/{transport}"),
                &[("Upgrade", "websocket"), conn_up, key, version],
                b"",
            ),
            Expect::Bounded,
        ));
    }
    let mut seen = Vec::new();
    for (what, bytes, expect) in variants {
        seen.push(ctx.expect(&what, &bytes, expect)?);
    }
    Ok(seen.join("; "))
}

fn websocket_garbage(ctx: &Ctx<'_>) -> Result<String, String> {
    let mut seen = Vec::new();
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked frame", b"\x81\x05hello".to_vec()),
        ("reserved opcode", b"\x83\x80\x00\x00\x00\x00".to_vec()),
        (
            "huge length",
            b"\x81\xff\x7f\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00".to_vec(),
        ),
        ("plain text", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        (
            "invalid UTF-8 text",
            b"\x81\x82\x00\x00\x00\x00\xff\xfe".to_vec(),
        ),
        ("broken JSON", b"\x81\x83\x00\x00\x00\x00[\"x".to_vec()),
        ("fragmented control", b"\x09\x80\x00\x00\x00\x00".to_vec()),
    ];
    for (what, bytes) in garbage {
        let mut stream = ctx.connect()?;
        let handshake = req(
            "GET",
            &format!("{}/websocket", ctx.fresh_session()),
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ],
            b"",
        );
        stream.write_all(&handshake).map_err(|e| e.to_string())?;
        match read_outcome(&mut stream, ctx.config.io_timeout) {
            Observed::Status(101, _) => {}
            other => return Err(format!("{what}: handshake got {other}")),
        }
        let _ = stream.write_all(&bytes);
        // The server either ignores (broken JSON closes the session) or closes the socket;
        // either way the socket ends within the timeout once we stop talking.
        let limit = ctx.config.io_timeout + ctx.config.request_timeout.unwrap_or_default();
        match wait_closed(&mut stream, limit) {
            Some(after) => seen.push(format!("{what}: closed after {} ms", after.as_millis())),
            None if what == "fragmented control" || what == "invalid UTF-8 text" => {
                seen.push(format!("{what}: still open"))
            }
            None => return Err(format!("{what}: the socket stayed open")),
        }
    }
    Ok(seen.join("; "))
}

fn vanish_mid_request(ctx: &Ctx<'_>) -> Result<String, String> {
    let session = ctx.fresh_session();
    let pieces: Vec<(&str, Vec<u8>)> = vec![
        ("half a request line", b"GET /ec".to_vec()),
        ("half a head", format!("POST {session}/xhr HTTP/1.1\r\nHost: x\r\nConte").into_bytes()),
        ("half a body", format!("POST {session}/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[\"abc").into_bytes()),
        ("half a chunk", format!("POST {session}/xhr_send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n[\"a").into_bytes()),
        ("half a handshake", format!("GET {session}/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n").into_bytes()),
    ];
    // Many at once, each dropped mid-way.
    for _ in 0..20 {
        for (_, bytes) in &pieces {
            let mut stream = ctx.connect()?;
            let _ = stream.write_all(bytes);
            drop(stream);
        }
    }
    Ok(format!("{} partial requests dropped", pieces.len() * 20))
}

fn vanish_mid_stream(ctx: &Ctx<'_>) -> Result<String, String> {
    let mut seen = Vec::new();
    for transport in [
        "xhr_streaming",
        "eventsource",
        "htmlfile?c=cb",
        "xhr",
        "websocket",
    ] {
        for _ in 0..10 {
            let session = ctx.fresh_session();
            let mut stream = ctx.connect()?;
            let method = if transport.starts_with("xhr") {
                "POST"
            } else {
                "GET"
            };
            let headers: Vec<(&str, &str)> = if transport == "websocket" {
                vec![
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                    ("Sec-WebSocket-Version", "13"),
                ]
            } else {
                Vec::new()
            };
            let mut request = format!("{method} {session}/{transport} HTTP/1.1\r\nHost: x\r\n");
            for (n, v) in &headers {
                request.push_str(&format!("{n}: {v}\r\n"));
            }
            if method == "POST" {
                request.push_str("Content-Length: 0\r\n");
            }
            request.push_str("\r\n");
            stream
                .write_all(request.as_bytes())
                .map_err(|e| e.to_string())?;
            match read_outcome(&mut stream, ctx.config.io_timeout) {
                Observed::Status(200 | 101, _) => {}
                other => return Err(format!("{transport}: got {other}")),
            }
            drop(stream);
        }
        seen.push(format!("{transport}: 10 receivers dropped"));
    }
    // A client that opens a poll and sends into it from another connection, then vanishes.
    let session = ctx.fresh_session();
    let mut conn = ctx.conn()?;
    conn.roundtrip(&Request::new("POST", &format!("{session}/xhr")))
        .map_err(|e| e.0)?;
    let mut held = ctx.connect()?;
    let _ = held.write_all(&req("POST", &format!("{session}/xhr"), &[], b""));
    thread::sleep(Duration::from_millis(50));
    drop(held);
    let sent = conn
        .roundtrip(&Request::new("POST", &format!("{session}/xhr_send")).body("[\"x\"]"))
        .map_err(|e| e.0)?;
    seen.push(format!("send after a vanished poll: {}", sent.status()));
    Ok(seen.join("; "))
}

fn slowloris_head(ctx: &Ctx<'_>) -> Result<String, String> {
    let timeout = ctx.config.request_timeout.unwrap_or_default();
    let bound = timeout + ctx.config.io_timeout;
    let mut stream = ctx.connect()?;
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n",
        ctx.p(""),
        "s".repeat(10_000)
    );
    let started = Instant::now();
    let step = Duration::from_millis(20);
    for byte in head.as_bytes() {
        if stream.write_all(std::slice::from_ref(byte)).is_err() {
            break;
        }
        if started.elapsed() > bound {
            return Err(format!(
                "still accepting a trickled head after {} ms",
                started.elapsed().as_millis()
            ));
        }
        thread::sleep(step);
    }
    // The writes failed (server closed); confirm the close.
    match wait_closed(&mut stream, bound.saturating_sub(started.elapsed())) {
        Some(_) => Ok(format!(
            "one byte per {} ms: closed after {} ms (timeout {} ms)",
            step.as_millis(),
            started.elapsed().as_millis(),
            timeout.as_millis()
        )),
        None => Err("the trickled connection was never closed".into()),
    }
}

fn slowloris_body(ctx: &Ctx<'_>) -> Result<String, String> {
    let timeout = ctx.config.request_timeout.unwrap_or_default();
    let bound = timeout + ctx.config.io_timeout;
    let session = ctx.fresh_session();
    let mut conn = ctx.conn()?;
    conn.roundtrip(&Request::new("POST", &format!("{session}/xhr")))
        .map_err(|e| e.0)?;
    let mut seen = Vec::new();
    for (what, head) in [
        ("Content-Length", "Content-Length: 1000\r\n"),
        ("chunked", "Transfer-Encoding: chunked\r\n"),
    ] {
        let mut stream = ctx.connect()?;
        let request = format!("POST {session}/xhr_send HTTP/1.1\r\nHost: x\r\n{head}\r\n");
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let first = if what == "chunked" {
            "3e8\r\n[\""
        } else {
            "[\""
        };
        let _ = stream.write_all(first.as_bytes());
        // Then one byte now and then, never finishing.
        let mut closed = None;
        while started.elapsed() < bound {
            if stream.write_all(b"a").is_err() {
                break;
            }
            if let Some(after) = wait_closed(&mut stream, Duration::from_millis(200)) {
                closed = Some(after);
                break;
            }
        }
        let closed =
            closed.or_else(|| wait_closed(&mut stream, bound.saturating_sub(started.elapsed())));
        match closed {
            Some(_) => seen.push(format!(
                "{what} body: closed after {} ms",
                started.elapsed().as_millis()
            )),
            None => {
                return Err(format!(
                    "{what}: an unfinished body held the connection for {} ms",
                    started.elapsed().as_millis()
                ));
            }
        }
    }
    Ok(seen.join("; "))
}

fn idle_connection(ctx: &Ctx<'_>) -> Result<String, String> {
    let timeout = ctx.config.request_timeout.unwrap_or_default();
    let bound = timeout + ctx.config.io_timeout;
    let mut seen = Vec::new();
    // Silent from the start.
    let mut silent = ctx.connect()?;
    match wait_closed(&mut silent, bound) {
        Some(after) => seen.push(format!("silent: closed after {} ms", after.as_millis())),
        None => return Err("a silent connection stayed open".into()),
    }
    // Idle after one keep-alive request.
    let mut conn = ctx.connect()?;
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", ctx.p(""));
    conn.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    match read_outcome(&mut conn, ctx.config.io_timeout) {
        Observed::Status(200, _) => {}
        other => return Err(format!("keep-alive request got {other}")),
    }
    match wait_closed(&mut conn, bound) {
        Some(after) => seen.push(format!(
            "idle keep-alive: closed after {} ms",
            after.as_millis()
        )),
        None => return Err("an idle keep-alive connection stayed open".into()),
    }
    Ok(seen.join("; "))
}
