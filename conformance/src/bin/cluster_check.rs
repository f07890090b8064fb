//! The client side of the cluster test (deploy/test-cluster.sh): SockJS clients over
//! websocket, xhr-streaming and xhr-polling, through a load balancer in front of two
//! instances of the chat example (`--node a`, `--node b`; the script runs node a on
//! sockjs-smol and node b on sockjs-tokio) that share a room through Redis. It only
//! talks HTTP and WebSocket to the balancer, so it does not care which adapter a node runs.
//!
//! ```text
//! cluster_check --lb 127.0.0.1:8080 --stop-node-b 'kill -TERM 1234' \
//!     [--stop-redis CMD --start-redis CMD]
//! ```
//!
//! It checks, and prints figures for:
//!
//! 1. sticky routing: server ids spread over both nodes, and every request of a session
//!    (each poll, each send, the stream, the WebSocket handshake) is answered by the node
//!    that holds it (the `X-Node` header and the node's welcome message);
//! 2. cross-node broadcast: every chat message, from any client, reaches all six clients,
//!    three per node;
//! 3. with the Redis hooks, a Redis outage: each node keeps delivering to its own clients
//!    (only), and cross-node delivery comes back both ways after Redis does;
//! 4. stopping node b: its sessions get `c[1001,"Server shutting down"]` on every
//!    transport, while node a's keep chatting and new sessions for node b's server ids land
//!    on node a.
//!
//! Exits non-zero on the first failed check.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const PREFIX: &str = "/chat";
const STEP: Duration = Duration::from_secs(10);

type Result<T> = std::result::Result<T, String>;

macro_rules! fail {
    ($($arg:tt)*) => { return Err(format!($($arg)*)) };
}

// ---------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client: one request per connection (Connection: close).

struct Head {
    status: u16,
    headers: HashMap<String, String>,
}

impl Head {
    fn node(&self) -> String {
        self.headers.get("x-node").cloned().unwrap_or_default()
    }
}

/// A response whose body is read as it arrives (chunked or not).
struct Response {
    head: Head,
    reader: BufReader<TcpStream>,
    chunked: bool,
    remaining: Option<usize>,
    done: bool,
}

impl Response {
    /// The next piece of the body, or `None` at its end.
    async fn piece(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        if self.chunked {
            let mut line = String::new();
            if self
                .reader
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?
                == 0
            {
                fail!("connection closed inside a chunked body");
            }
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            let mut chunk = vec![0; size + 2];
            self.reader
                .read_exact(&mut chunk)
                .await
                .map_err(|e| e.to_string())?;
            chunk.truncate(size);
            if size == 0 {
                self.done = true;
                return Ok(None);
            }
            return Ok(Some(chunk));
        }
        let mut buf = vec![0; 16384];
        let want = self.remaining.map_or(buf.len(), |r| r.min(buf.len()));
        if want == 0 {
            self.done = true;
            return Ok(None);
        }
        let n = self
            .reader
            .read(&mut buf[..want])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            self.done = true;
            return Ok(None);
        }
        if let Some(r) = self.remaining.as_mut() {
            *r -= n;
        }
        buf.truncate(n);
        Ok(Some(buf))
    }

    async fn body(mut self) -> Result<String> {
        let mut body = Vec::new();
        while let Some(piece) = self.piece().await? {
            body.extend_from_slice(&piece);
        }
        String::from_utf8(body).map_err(|_| "body is not UTF-8".to_owned())
    }
}

/// Sends a request and reads the response head (10 s at most).
async fn request(lb: &str, method: &str, path: &str, body: &str) -> Result<Response> {
    tokio::time::timeout(STEP, request_head(lb, method, path, body))
        .await
        .map_err(|_| format!("{method} {path}: no response head within {STEP:?}"))?
}

async fn request_head(lb: &str, method: &str, path: &str, body: &str) -> Result<Response> {
    let stream = TcpStream::connect(lb)
        .await
        .map_err(|e| format!("connect {lb}: {e}"))?;
    let mut reader = BufReader::new(stream);
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {lb}\r\nConnection: close\r\n");
    if method == "POST" {
        let _ = write!(
            text,
            "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    text.push_str("\r\n");
    text.push_str(body);
    reader
        .get_mut()
        .write_all(text.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .await
        .map_err(|e| e.to_string())?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?} for {method} {path}"))?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?
            == 0
        {
            fail!("connection closed in the response head");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let remaining = headers.get("content-length").and_then(|v| v.parse().ok());
    let done = method == "HEAD" || status == 204 || status == 304;
    Ok(Response {
        head: Head { status, headers },
        reader,
        chunked,
        remaining,
        done,
    })
}

// ---------------------------------------------------------------------------------------
// SockJS clients.

#[derive(Debug, Clone, PartialEq)]
enum Event {
    /// A chat message (the JSON the chat example sends).
    Chat(Value),
    /// The session was closed by the server.
    Close(u16, String),
    /// The transport failed or ended without a close frame.
    Broken(String),
}

/// Splits a SockJS frame into events (`h` and `o` are checked by the callers).
fn frame_events(frame: &str) -> Vec<Event> {
    if let Some(array) = frame.strip_prefix('a') {
        let Ok(messages) = serde_json::from_str::<Vec<String>>(array) else {
            return vec![Event::Broken(format!("bad frame {frame:?}"))];
        };
        return messages
            .iter()
            .map(|m| {
                serde_json::from_str(m)
                    .map(Event::Chat)
                    .unwrap_or_else(|_| Event::Broken(format!("not JSON: {m}")))
            })
            .collect();
    }
    if let Some(close) = frame.strip_prefix('c') {
        let parsed: Value = serde_json::from_str(close).unwrap_or(Value::Null);
        let code = parsed[0]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(0);
        return vec![Event::Close(
            code,
            parsed[1].as_str().unwrap_or("").to_owned(),
        )];
    }
    if frame == "h" {
        return Vec::new();
    }
    vec![Event::Broken(format!("unexpected frame {frame:?}"))]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    WebSocket,
    XhrStreaming,
    XhrPolling,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::WebSocket => "websocket",
            Kind::XhrStreaming => "xhr-streaming",
            Kind::XhrPolling => "xhr-polling",
        }
    }
}

/// Which node answered each HTTP request of a session.
#[derive(Default)]
struct Trace {
    nodes: Mutex<BTreeMap<String, u64>>,
    requests: AtomicU64,
}

impl Trace {
    fn saw(&self, head: &Head) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        *self
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(head.node())
            .or_default() += 1;
    }

    fn nodes(&self) -> BTreeMap<String, u64> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct Client {
    nick: String,
    kind: Kind,
    node: String,
    lb: String,
    base: String,
    events: mpsc::UnboundedReceiver<(Instant, Event)>,
    /// When the last event returned by `next` arrived.
    arrived: Instant,
    ws_out: Option<mpsc::UnboundedSender<String>>,
    trace: Arc<Trace>,
    /// A polling client's poll: since when it has been out without an answer.
    poll_out: Option<Arc<Mutex<Option<Instant>>>>,
}

impl Client {
    /// Opens a session on server id `sid` and reads the node's welcome.
    async fn open(lb: &str, kind: Kind, sid: &str, nick: &str) -> Result<Client> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let session = format!("{nick}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let base = format!("{PREFIX}/{sid}/{session}");
        let (tx, events) = mpsc::unbounded_channel::<(Instant, Event)>();
        let trace = Arc::new(Trace::default());
        let mut ws_out = None;
        let mut poll_out = None;
        match kind {
            Kind::WebSocket => {
                let stream = TcpStream::connect(lb).await.map_err(|e| e.to_string())?;
                let url = format!("ws://{lb}{base}/websocket");
                let (mut ws, response) = tokio_tungstenite::client_async(url, stream)
                    .await
                    .map_err(|e| format!("websocket handshake: {e}"))?;
                let node = response
                    .headers()
                    .get("x-node")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                *trace
                    .nodes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(node)
                    .or_default() += 1;
                trace.requests.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(STEP, ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "o" => {}
                    other => fail!("websocket: expected o, got {other:?}"),
                }
                let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
                ws_out = Some(out_tx);
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            out = out_rx.recv() => {
                                let Some(out) = out else { return };
                                if ws.send(Message::text(out)).await.is_err() {
                                    let _ = tx.send((Instant::now(), Event::Broken("websocket send failed".into())));
                                    return;
                                }
                            }
                            incoming = ws.next() => match incoming {
                                Some(Ok(Message::Text(t))) => {
                                    for event in frame_events(t.as_str()) {
                                        let _ = tx.send((Instant::now(), event));
                                    }
                                }
                                Some(Ok(Message::Close(frame))) => {
                                    let _ = tx.send((Instant::now(), Event::Broken(format!("websocket closed ({frame:?})"))));
                                    return;
                                }
                                Some(Ok(_)) => {}
                                Some(Err(e)) => {
                                    let _ = tx.send((Instant::now(), Event::Broken(format!("websocket error: {e}"))));
                                    return;
                                }
                                None => {
                                    let _ = tx.send((Instant::now(), Event::Broken("websocket ended".into())));
                                    return;
                                }
                            }
                        }
                    }
                });
            }
            Kind::XhrStreaming => {
                let mut response =
                    request(lb, "POST", &format!("{base}/xhr_streaming"), "").await?;
                trace.saw(&response.head);
                if response.head.status != 200 {
                    fail!("xhr_streaming: status {}", response.head.status);
                }
                let mut buffer = Vec::new();
                let mut opened = false;
                let tx_stream = tx.clone();
                // Read the prelude and `o` here, the rest in a task.
                while !opened {
                    let Some(piece) = tokio::time::timeout(STEP, response.piece())
                        .await
                        .map_err(|_| "xhr_streaming: no o".to_owned())??
                    else {
                        fail!("xhr_streaming ended before o");
                    };
                    buffer.extend_from_slice(&piece);
                    while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        let line = String::from_utf8_lossy(&line[..end]).into_owned();
                        if line == "o" {
                            opened = true;
                        } else if !opened && line.bytes().all(|b| b == b'h') {
                            // The 2 KiB prelude.
                        } else {
                            for event in frame_events(&line) {
                                let _ = tx_stream.send((Instant::now(), event));
                            }
                        }
                    }
                }
                tokio::spawn(async move {
                    loop {
                        match response.piece().await {
                            Ok(Some(piece)) => {
                                buffer.extend_from_slice(&piece);
                                while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                                    let line: Vec<u8> = buffer.drain(..=end).collect();
                                    let line = String::from_utf8_lossy(&line[..end]).into_owned();
                                    for event in frame_events(&line) {
                                        let _ = tx_stream.send((Instant::now(), event));
                                    }
                                }
                            }
                            Ok(None) => {
                                let _ = tx_stream
                                    .send((Instant::now(), Event::Broken("stream ended".into())));
                                return;
                            }
                            Err(e) => {
                                let _ = tx_stream.send((Instant::now(), Event::Broken(e)));
                                return;
                            }
                        }
                    }
                });
            }
            Kind::XhrPolling => {
                let response = request(lb, "POST", &format!("{base}/xhr"), "").await?;
                trace.saw(&response.head);
                let body = response.body().await?;
                if body != "o\n" {
                    fail!("xhr: expected o, got {body:?}");
                }
                let (lb, poll_base, trace) = (lb.to_owned(), base.clone(), trace.clone());
                let out = Arc::new(Mutex::new(None));
                poll_out = Some(out.clone());
                let set_out = move |since| *out.lock().unwrap_or_else(|e| e.into_inner()) = since;
                tokio::spawn(async move {
                    loop {
                        set_out(Some(Instant::now()));
                        let polled = async {
                            let response =
                                request(&lb, "POST", &format!("{poll_base}/xhr"), "").await?;
                            trace.saw(&response.head);
                            response.body().await
                        };
                        let polled = polled.await;
                        set_out(None);
                        match polled {
                            Ok(body) => {
                                let frame = body.trim_end_matches('\n');
                                if frame == "o" {
                                    let _ = tx.send((
                                        Instant::now(),
                                        Event::Broken("a poll opened a new session".into()),
                                    ));
                                    return;
                                }
                                let events = frame_events(frame);
                                let last = events
                                    .iter()
                                    .any(|e| matches!(e, Event::Close(..) | Event::Broken(_)));
                                for event in events {
                                    let _ = tx.send((Instant::now(), event));
                                }
                                if last {
                                    return;
                                }
                            }
                            Err(e) => {
                                let _ = tx.send((
                                    Instant::now(),
                                    Event::Broken(format!("poll failed: {e}")),
                                ));
                                return;
                            }
                        }
                    }
                });
            }
        }
        let mut client = Client {
            nick: nick.to_owned(),
            kind,
            node: String::new(),
            lb: lb.to_owned(),
            base,
            events,
            arrived: Instant::now(),
            ws_out,
            trace,
            poll_out,
        };
        match client.next(STEP).await? {
            Event::Chat(m) if m["type"] == "welcome" => {
                client.node = m["node"].as_str().unwrap_or("").to_owned();
            }
            other => fail!("{nick}: expected the welcome, got {other:?}"),
        }
        client.send(&json!({"nick": nick})).await?;
        Ok(client)
    }

    async fn next(&mut self, wait: Duration) -> Result<Event> {
        match tokio::time::timeout(wait, self.events.recv()).await {
            Ok(Some((at, event))) => {
                self.arrived = at;
                Ok(event)
            }
            Ok(None) => Ok(Event::Broken("client task gone".into())),
            Err(_) => fail!("{}: nothing within {wait:?}", self.nick),
        }
    }

    async fn send(&self, message: &Value) -> Result<()> {
        let payload = serde_json::to_string(&[message.to_string()]).map_err(|e| e.to_string())?;
        if let Some(out) = &self.ws_out {
            return out
                .send(payload)
                .map_err(|_| format!("{}: websocket gone", self.nick));
        }
        let response = request(
            &self.lb,
            "POST",
            &format!("{}/xhr_send", self.base),
            &payload,
        )
        .await?;
        self.trace.saw(&response.head);
        let status = response.head.status;
        if status != 204 {
            fail!("{}: xhr_send answered {status}", self.nick);
        }
        Ok(())
    }

    async fn say(&self, text: &str) -> Result<()> {
        self.send(&json!({"text": text})).await
    }

    /// Waits for `text` said by `from`; skips other chat messages. Returns how long after
    /// `sent` it arrived.
    async fn expect_said_since(
        &mut self,
        from: &str,
        text: &str,
        sent: Instant,
    ) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let left = STEP.saturating_sub(start.elapsed());
            match self.next(left).await {
                Ok(Event::Chat(m))
                    if m["type"] == "say" && m["nick"] == from && m["text"] == text =>
                {
                    return Ok(self.arrived.saturating_duration_since(sent));
                }
                Ok(Event::Chat(_)) => {}
                Ok(other) => fail!(
                    "{}: waiting for {text:?} from {from}, got {other:?}",
                    self.nick
                ),
                Err(e) => fail!("{e} (waiting for {text:?} from {from})"),
            }
        }
    }

    /// Waits for `text` said by `from`; skips other chat messages.
    async fn expect_said(&mut self, from: &str, text: &str) -> Result<Duration> {
        self.expect_said_since(from, text, Instant::now()).await
    }

    /// Nothing but heartbeats and join/leave notices for `wait`; fails on a `say`.
    async fn expect_no_say(&mut self, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match tokio::time::timeout(left, self.events.recv()).await {
                Err(_) => return Ok(()),
                Ok(Some((_, Event::Chat(m)))) if m["type"] != "say" => {}
                Ok(other) => fail!("{}: expected silence, got {other:?}", self.nick),
            }
        }
    }

    /// For a polling client, waits until its poll has been out for `quiet` without an
    /// answer: parked at its node, which answers it when it has something to say. Other
    /// clients always have their receiver open.
    ///
    /// A client between two polls (the few milliseconds from one answer to the next
    /// poll's arrival) when its node stops gets its close frame only if that next poll
    /// reaches the node on a connection the balancer kept alive to it: the node accepts
    /// no new connection, so the balancer sends the poll to the other node, which opens a
    /// new session.
    async fn until_receiving(&self, quiet: Duration) -> Result<()> {
        let Some(out) = &self.poll_out else {
            return Ok(());
        };
        let start = Instant::now();
        loop {
            let since = *out.lock().unwrap_or_else(|e| e.into_inner());
            if since.is_some_and(|since| since.elapsed() >= quiet) {
                return Ok(());
            }
            if start.elapsed() > STEP {
                fail!("{}: no poll parked within {STEP:?}", self.nick);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the close frame; returns how long it took.
    async fn expect_close(&mut self, code: u16, reason: &str) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let left = STEP.saturating_sub(start.elapsed());
            match self.next(left).await? {
                Event::Chat(_) => {}
                Event::Close(c, r) if c == code && r == reason => return Ok(start.elapsed()),
                other => fail!(
                    "{}: expected c[{code},{reason:?}], got {other:?}",
                    self.nick
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------

struct Args {
    lb: String,
    stop_node_b: String,
    stop_redis: Option<String>,
    start_redis: Option<String>,
}

/// Prints `n` free loopback ports (for the test script's configs) and exits.
fn print_free_ports(n: &str) {
    let n: usize = n.parse().unwrap_or(0);
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|_| std::net::TcpListener::bind("127.0.0.1:0").ok())
        .collect();
    let ports: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.port().to_string())
        .collect();
    if ports.len() != n {
        eprintln!("could not find {n} free ports");
        std::process::exit(1);
    }
    println!("{}", ports.join(" "));
    std::process::exit(0);
}

fn args() -> Args {
    let mut lb = None;
    let mut stop_node_b = None;
    let mut stop_redis = None;
    let mut start_redis = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match arg.as_str() {
            "--free-ports" => print_free_ports(value.as_deref().unwrap_or("")),
            "--lb" => lb = value,
            "--stop-node-b" => stop_node_b = value,
            "--stop-redis" => stop_redis = value,
            "--start-redis" => start_redis = value,
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let (Some(lb), Some(stop_node_b)) = (lb, stop_node_b) else {
        eprintln!(
            "usage: cluster_check --lb HOST:PORT --stop-node-b CMD [--stop-redis CMD --start-redis CMD]"
        );
        std::process::exit(2);
    };
    Args {
        lb,
        stop_node_b,
        stop_redis,
        start_redis,
    }
}

async fn run_hook(what: &str, command: &str) -> Result<()> {
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("bash")
            .arg("-c")
            .arg(command)
            .kill_on_drop(true)
            .status(),
    )
    .await
    .map_err(|_| format!("{what}: `{command}` still running after 30 s"))?
    .map_err(|e| format!("{what}: {e}"))?;
    if !status.success() {
        fail!("{what}: `{command}` exited with {status}");
    }
    Ok(())
}

/// Has `clients[from]` speak until `clients[to]` (on the other node) hears it, for at most
/// 20 s after `since`; returns how long after `since` that was, and the attempts.
async fn until_heard(
    clients: &mut [Client],
    from: usize,
    to: usize,
    since: Instant,
) -> Result<(Duration, u32)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if since.elapsed() > Duration::from_secs(20) {
            fail!(
                "{} never heard {} within 20 s",
                clients[to].nick,
                clients[from].nick
            );
        }
        let text = format!("after redis is back #{attempt}");
        let nick = clients[from].nick.clone();
        clients[from].say(&text).await?;
        clients[from].expect_said(&nick, &text).await?;
        let listener = &mut clients[to];
        let heard = tokio::time::timeout(Duration::from_millis(250), async {
            loop {
                match listener.events.recv().await {
                    Some((_, Event::Chat(m))) if m["text"] == text.as_str() => return true,
                    Some((_, Event::Chat(_))) => {}
                    _ => return false,
                }
            }
        })
        .await;
        if heard == Ok(true) {
            return Ok((since.elapsed(), attempt));
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn stats(mut samples: Vec<Duration>) -> String {
    samples.sort();
    if samples.is_empty() {
        return "no samples".into();
    }
    let median = samples[samples.len() / 2];
    let p95 = samples[(samples.len() * 95 / 100).min(samples.len() - 1)];
    let max = samples[samples.len() - 1];
    format!(
        "{} deliveries: median {}, p95 {}, max {}",
        samples.len(),
        ms(median),
        ms(p95),
        ms(max)
    )
}

struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, result: Result<String>) -> bool {
        match result {
            Ok(figures) => {
                self.passed += 1;
                println!("PASS {name}");
                for line in figures.lines() {
                    println!("     {line}");
                }
                true
            }
            Err(error) => {
                self.failed += 1;
                println!("FAIL {name}: {error}");
                false
            }
        }
    }
}

/// Which node answers each of `count` server ids (probed with a 404 request: the balancer
/// routes it by its server id like any other).
async fn probe(lb: &str, count: u32) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for i in 0..count {
        let sid = format!("{:03}", (i * 7 + 100) % 1000);
        let response = request(lb, "GET", &format!("{PREFIX}/{sid}/"), "").await?;
        let node = response.head.node();
        let _ = response.body().await;
        map.insert(sid, node);
    }
    Ok(map)
}

async fn wait_ready(lb: &str) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(map) = probe(lb, 20).await {
            if map.values().any(|n| n == "a") && map.values().any(|n| n == "b") {
                return Ok(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fail!("the balancer did not reach both nodes within 30 s")
}

#[tokio::main]
async fn main() {
    let args = args();
    let mut report = Report {
        passed: 0,
        failed: 0,
    };
    let ok = run(&args, &mut report).await;
    println!("{} passed, {} failed", report.passed, report.failed);
    if !ok || report.failed > 0 {
        std::process::exit(1);
    }
}

async fn run(args: &Args, report: &mut Report) -> bool {
    let lb = args.lb.as_str();
    if !report.check(
        "both nodes answer through the balancer",
        wait_ready(lb)
            .await
            .map(|d| format!("ready after {}", ms(d))),
    ) {
        return false;
    }

    // Server ids to nodes.
    let map = match probe(lb, 200).await {
        Ok(map) => map,
        Err(e) => return report.check("probe", Err(e)),
    };
    let on = |node: &str| -> Vec<String> {
        map.iter()
            .filter(|(_, n)| *n == node)
            .map(|(s, _)| s.clone())
            .collect()
    };
    let (sids_a, sids_b) = (on("a"), on("b"));
    if !report.check(
        "server ids spread over both nodes",
        if sids_a.len() >= 3 && sids_b.len() >= 4 {
            Ok(format!(
                "of {} server ids, {} go to node a and {} to node b",
                map.len(),
                sids_a.len(),
                sids_b.len()
            ))
        } else {
            Err(format!("a: {}, b: {}", sids_a.len(), sids_b.len()))
        },
    ) {
        return false;
    }

    // Six clients: every transport on both nodes.
    let mut clients = Vec::new();
    let plan = [
        (Kind::WebSocket, "a"),
        (Kind::XhrStreaming, "a"),
        (Kind::XhrPolling, "a"),
        (Kind::WebSocket, "b"),
        (Kind::XhrStreaming, "b"),
        (Kind::XhrPolling, "b"),
    ];
    for (i, (kind, node)) in plan.iter().enumerate() {
        let sids = if *node == "a" { &sids_a } else { &sids_b };
        let sid = &sids[i % 3];
        let nick = format!("{}-{}", kind.name(), node);
        match Client::open(lb, *kind, sid, &nick).await {
            Ok(client) if client.node == *node => clients.push(client),
            Ok(client) => {
                return report.check(
                    "open",
                    Err(format!("{nick}: welcomed by node {}", client.node)),
                );
            }
            Err(e) => return report.check("open", Err(format!("{nick}: {e}"))),
        }
    }
    report.check(
        "six sessions open through the balancer, three per node",
        Ok(clients
            .iter()
            .map(|c| format!("{} on node {} ({})", c.kind.name(), c.node, c.base))
            .collect::<Vec<_>>()
            .join("\n")),
    );
    // Let every join notice arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // (b) Cross-node broadcast: rounds in which every client speaks once.
    let rounds = 10;
    let mut same = Vec::new();
    let mut cross = Vec::new();
    let mut by_kind: BTreeMap<Kind, Vec<Duration>> = BTreeMap::new();
    let result: Result<String> = async {
        for round in 0..rounds {
            for speaker in 0..clients.len() {
                let text = format!("round {round} from {}", clients[speaker].nick);
                let from = clients[speaker].nick.clone();
                let from_node = clients[speaker].node.clone();
                let sent = Instant::now();
                clients[speaker].say(&text).await?;
                for listener in clients.iter_mut() {
                    let took = listener.expect_said_since(&from, &text, sent).await?;
                    by_kind.entry(listener.kind).or_default().push(took);
                    if listener.node == from_node {
                        same.push(took);
                    } else {
                        cross.push(took);
                    }
                }
            }
        }
        let mut figures = format!(
            "{} messages x 6 clients, all delivered (time from send to arrival)\n\
             same node:  {}\ncross node: {}",
            rounds * clients.len(),
            stats(same.clone()),
            stats(cross.clone())
        );
        for (kind, samples) in &by_kind {
            let _ = write!(figures, "\nto {}: {}", kind.name(), stats(samples.clone()));
        }
        Ok(figures)
    }
    .await;
    if !report.check(
        "chat messages reach every client on both nodes (websocket, xhr-streaming, xhr-polling)",
        result,
    ) {
        return false;
    }

    // (a) Sticky routing: every HTTP request of every session went to its node.
    let sticky: Result<String> = {
        let mut lines = Vec::new();
        let mut bad = Vec::new();
        for c in &clients {
            let nodes = c.trace.nodes();
            let requests = c.trace.requests.load(Ordering::Relaxed);
            if nodes.len() != 1 || !nodes.contains_key(&c.node) {
                bad.push(format!("{}: {nodes:?}", c.nick));
            }
            lines.push(format!(
                "{}: {requests} HTTP requests, answered by {nodes:?}",
                c.nick
            ));
        }
        if bad.is_empty() {
            Ok(lines.join("\n"))
        } else {
            Err(bad.join("; "))
        }
    };
    if !report.check(
        "every request of a session reaches the node that holds it",
        sticky,
    ) {
        return false;
    }

    // Redis outage: local delivery goes on; cross-node delivery returns with Redis.
    if let (Some(stop), Some(start)) = (&args.stop_redis, &args.start_redis) {
        let result: Result<String> = async {
            run_hook("stop redis", stop).await?;
            let stopped = Instant::now();
            // Until the nodes notice, a message may still be lost either way: wait for it.
            tokio::time::sleep(Duration::from_millis(500)).await;
            // Each node keeps delivering to its own clients, and to them only.
            for speaker in [0, 3] {
                let here = clients[speaker].node.clone();
                let text = format!("said on node {here} while redis is down");
                let from = clients[speaker].nick.clone();
                clients[speaker].say(&text).await?;
                for c in clients.iter_mut().filter(|c| c.node == here) {
                    c.expect_said(&from, &text).await?;
                }
                for c in clients.iter_mut().filter(|c| c.node != here) {
                    c.expect_no_say(Duration::from_millis(500)).await?;
                }
            }
            let down_for = stopped.elapsed();
            run_hook("start redis", start).await?;
            let restarted = Instant::now();
            // Speak from each node until the other hears it again.
            let (b_to_a, b_tries) = until_heard(&mut clients, 3, 0, restarted).await?;
            let (a_to_b, a_tries) = until_heard(&mut clients, 0, 3, restarted).await?;
            // Drain what the other clients got meanwhile, then a full round from each node.
            tokio::time::sleep(Duration::from_millis(300)).await;
            for c in clients.iter_mut() {
                while let Ok(Event::Chat(_)) = c.next(Duration::from_millis(50)).await {}
            }
            for speaker in [5, 2] {
                let text = format!("everyone again, from {}", clients[speaker].nick);
                let from = clients[speaker].nick.clone();
                clients[speaker].say(&text).await?;
                for c in clients.iter_mut() {
                    c.expect_said(&from, &text).await?;
                }
            }
            Ok(format!(
                "redis down for {}: each node's message reached its own three clients only\n\
                 cross-node delivery back after redis restarted: b to a {} ({b_tries} attempts), \
                 a to b {} ({a_tries} attempts)",
                ms(down_for),
                ms(b_to_a),
                ms(a_to_b)
            ))
        }
        .await;
        if !report.check(
            "a redis outage degrades to local delivery, and recovery follows",
            result,
        ) {
            return false;
        }
    }

    // (c) Stop node b.
    let result: Result<String> = async {
        // Every receiver on node b open and waiting, as it is nearly all the time.
        for c in clients.iter().filter(|c| c.node == "b") {
            c.until_receiving(Duration::from_millis(200)).await?;
        }
        let stop = Instant::now();
        run_hook("stop node b", &args.stop_node_b).await?;
        let mut lines = Vec::new();
        for c in clients.iter_mut().filter(|c| c.node == "b") {
            let took = c.expect_close(1001, "Server shutting down").await?;
            lines.push(format!(
                "{}: c[1001,\"Server shutting down\"] {} after SIGTERM",
                c.nick,
                ms(took + stop.elapsed().saturating_sub(took))
            ));
        }
        Ok(lines.join("\n"))
    }
    .await;
    if !report.check(
        "stopping node b closes its sessions cleanly on every transport",
        result,
    ) {
        return false;
    }

    let result: Result<String> = async {
        let text = "node a carries on";
        let from = clients[0].nick.clone();
        let sent = Instant::now();
        clients[0].say(text).await?;
        let mut took = Vec::new();
        for c in clients.iter_mut().filter(|c| c.node == "a") {
            took.push(c.expect_said_since(&from, text, sent).await?);
        }
        // A new session on a server id that belonged to node b now lands on node a.
        let start = Instant::now();
        let sid = &sids_b[0];
        let mut attempts = 0;
        let client = loop {
            attempts += 1;
            match Client::open(lb, Kind::XhrPolling, sid, "newcomer").await {
                Ok(client) => break client,
                Err(e) if start.elapsed() > Duration::from_secs(15) => {
                    fail!("no new session on server id {sid} within 15 s: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        if client.node != "a" {
            fail!("the newcomer landed on node {}", client.node);
        }
        let mut client = client;
        let text = "hello from the newcomer";
        client.say(text).await?;
        client.expect_said("newcomer", text).await?;
        clients[0].expect_said("newcomer", text).await?;
        Ok(format!(
            "node a's three clients still chat ({})\n\
             a new session on server id {sid} (node b's) landed on node a after {} ({attempts} attempts)",
            stats(took),
            ms(start.elapsed())
        ))
    }
    .await;
    report.check("node a keeps serving", result)
}
