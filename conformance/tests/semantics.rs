//! The driver's shared semantics over real loopback sockets, written once and run against
//! both adapters (sockjs-smol and sockjs-tokio's `serve`): the session API, the lifecycle
//! of a session and its handles, the inbound and outgoing bounds, the delivery wait, the
//! request and write timeouts, graceful shutdown, binary WebSocket messages and hixie-76's
//! key3. Every test asserts the same outcome on both adapters.
//!
//! Tests never assert tight timings: lower bounds are the configured delays (timers do not
//! fire early), upper bounds are generous; every wait is bounded.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conformance::http::{Conn, Request, Response};
use sockjs_core::driver::{
    Config, INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON, Session, SessionSender,
};
use sockjs_core::{CloseReason, Options, OriginalUri, SendError, SessionState, Transport};
use support::{
    ADAPTERS, Adapter, Handler, Mount, Target, handler, sleep, start_services, wait_for, within,
};
use tungstenite::{Message, WebSocket};

/// Bound of one test (both adapters).
const LIMIT: Duration = Duration::from_secs(60);
/// How long a test waits for something a handler reports.
const WAIT: Duration = Duration::from_secs(10);
/// The services' disconnect delay: HTTP sessions end this long after their last receiver.
const DISCONNECT: Duration = Duration::from_secs(3);

fn options() -> Options {
    Options {
        disconnect_delay: DISCONNECT,
        ..Options::default()
    }
}

fn config() -> Config {
    Config {
        shards: 2,
        ..Config::default()
    }
}

/// Starts `adapter` with one service at `/app`.
fn serve(adapter: Adapter, config: Config, options: Options, handler: Handler) -> Target {
    start_services(adapter, config, vec![Mount::new("/app", options, handler)])
}

/// Starts `adapter` with one service at `/app` whose handler reports to the test.
fn serve_reporting<T: Send + 'static>(
    adapter: Adapter,
    config: Config,
    options: Options,
    make: impl FnOnce(Sender<T>) -> Handler,
) -> (Target, Reports<T>) {
    let reports = Reports::new();
    let target = serve(adapter, config, options, make(reports.sender()));
    (target, reports)
}

/// Options whose sessions hold at most 8 KiB of messages no receiver has taken.
fn small_queue() -> Options {
    Options {
        max_queued_bytes: 8 * 1024,
        ..options()
    }
}

/// Starts `adapter` with one service at `/app` whose sessions hold at most 8 KiB
/// ([`small_queue`]), each running `body` with a sender of reports to the test.
fn small_queue_reporting<T, F>(
    adapter: Adapter,
    config: Config,
    body: impl Fn(Session, Sender<T>) -> F + Send + Sync + 'static,
) -> (Target, Reports<T>)
where
    T: Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    serve_reporting(adapter, config, small_queue(), |tx| {
        handler(move |session| body(session, tx.clone()))
    })
}

/// Whether the session's `ready()` resolves at its first poll.
async fn ready_at_once(session: &Session) -> bool {
    at_once(session.ready()).await
}

/// Whether `future` resolves at its first poll.
async fn at_once(future: impl std::future::Future) -> bool {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_ready())).await
}

/// A session id no other test uses, starting with `kind`.
fn sid(kind: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{kind}{}x{}",
        N.fetch_add(1, Ordering::Relaxed),
        std::process::id()
    )
}

fn path(id: &str, transport: &str) -> String {
    format!("/app/000/{id}/{transport}")
}

fn post(target: &Target, path: &str, body: &str) -> Response {
    target.request(&Request::new("POST", path).body(body))
}

/// One xhr poll of session `id`: the response body.
fn xhr(target: &Target, id: &str) -> String {
    let response = post(target, &path(id, "xhr"), "");
    assert_eq!(response.status(), 200, "{}", response.text());
    response.text()
}

/// One xhr_send to session `id`: the status.
fn xhr_send(target: &Target, id: &str, body: &str) -> u16 {
    post(target, &path(id, "xhr_send"), body).status()
}

/// An open xhr_streaming receiver, past the prelude and the `o` frame.
fn stream(target: &Target, id: &str) -> Conn {
    let mut conn = target.conn();
    conn.send(&Request::new("POST", &path(id, "xhr_streaming")))
        .unwrap();
    let head = conn.read_head().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(conn.read_chunk().unwrap().len(), 2049, "prelude");
    assert_eq!(conn.read_chunk().unwrap(), b"o\n");
    conn
}

fn chunk_text(conn: &mut Conn) -> String {
    String::from_utf8(conn.read_chunk().unwrap()).unwrap()
}

/// A SockJS WebSocket of session `id`, past the `o` frame.
fn ws(target: &Target, id: &str) -> WebSocket<TcpStream> {
    target.ws(&path(id, "websocket"))
}

/// The next text frame (heartbeats skipped), or `close CODE REASON`, or `None`.
fn next(ws: &mut WebSocket<TcpStream>) -> Option<String> {
    support::ws_text(ws)
}

fn say(ws: &mut WebSocket<TcpStream>, text: &str) {
    ws.send(Message::text(text)).unwrap();
}

/// Reads until the connection ends (EOF or reset), discarding what comes; `false` if it
/// is still open after `limit`.
fn ends_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut scratch = vec![0u8; 256 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut scratch) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Handler reports, received by the test.
struct Reports<T> {
    tx: Sender<T>,
    rx: Receiver<T>,
}

impl<T: Send + 'static> Reports<T> {
    fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Reports { tx, rx }
    }

    fn sender(&self) -> Sender<T> {
        self.tx.clone()
    }

    fn next(&self) -> T {
        self.rx.recv_timeout(WAIT).expect("a handler report")
    }

    fn none_for(&self, wait: Duration) -> bool {
        self.rx.recv_timeout(wait).is_err()
    }
}

/// Named one-shot signals from the test to handlers (and their threads).
#[derive(Clone, Default)]
struct Gates(Arc<Mutex<HashSet<String>>>);

impl Gates {
    fn open(&self, name: &str) {
        self.0.lock().unwrap().insert(name.to_owned());
    }

    fn take(&self, name: &str) -> bool {
        self.0.lock().unwrap().remove(name)
    }

    async fn wait(&self, name: &str) {
        while !self.take(name) {
            sleep(Duration::from_millis(5)).await;
        }
    }

    fn wait_blocking(&self, name: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.take(name) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn closed_with(code: u16, reason: &str) -> Option<CloseReason> {
    Some(CloseReason::Closed {
        code,
        reason: reason.to_owned(),
    })
}

fn close_frame(code: u16, reason: &str) -> String {
    format!("c[{code},\"{reason}\"]")
}

// ---------------------------------------------------------------------------------------
// The session API
// ---------------------------------------------------------------------------------------

/// What a handler saw of its session when it opened.
#[derive(Debug)]
struct Opened {
    id: String,
    sender_id: String,
    key_matches: bool,
    transport: Transport,
    /// The path as the client asked for it (`OriginalUri` where a router stripped it).
    asked: String,
    /// The path of the request the service got.
    path: String,
    probe: Option<String>,
    peer: Option<SocketAddr>,
    state: SessionState,
    is_closed: bool,
    reason: Option<CloseReason>,
}

fn opened(session: &Session) -> Opened {
    let request = session.request();
    let asked = request
        .extensions
        .get::<OriginalUri>()
        .map_or(request.uri.path(), |original| original.0.path());
    Opened {
        id: session.id().to_owned(),
        sender_id: session.sender().id().to_owned(),
        key_matches: session.key() == session.sender().key(),
        transport: session.transport(),
        asked: asked.to_owned(),
        path: request.uri.path().to_owned(),
        probe: request
            .headers
            .get("x-probe")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        peer: session.peer_addr(),
        state: session.state(),
        is_closed: session.is_closed(),
        reason: session.close_reason(),
    }
}

fn check_opened(
    adapter: Adapter,
    seen: &Opened,
    id: &str,
    transport: Transport,
    asked: &str,
    probe: &str,
) {
    assert_eq!(seen.id, id);
    assert_eq!(seen.sender_id, id);
    assert!(seen.key_matches, "the session and its sender share a key");
    assert_eq!(seen.transport, transport);
    assert_eq!(seen.asked, asked);
    // Under sockjs-tokio's `Routes` (as under axum) the application sees the path with its
    // mount point (`/app`) stripped; sockjs-smol hands it over whole.
    let expected = match adapter {
        Adapter::Tokio => asked.strip_prefix("/app").unwrap_or(asked),
        Adapter::Smol => asked,
    };
    assert_eq!(seen.path, expected, "{adapter:?}");
    assert_eq!(seen.probe.as_deref(), Some(probe));
    assert_eq!(seen.state, SessionState::Open);
    assert!(!seen.is_closed);
    assert_eq!(seen.reason, None);
}

#[test]
fn a_session_exposes_its_id_key_transport_opening_request_and_peer() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let reports = Reports::new();
            let tx = reports.sender();
            let target = serve(
                adapter,
                config(),
                options(),
                handler(move |mut session: Session| {
                    let _ = tx.send(opened(&session));
                    async move {
                        while let Some(text) = session.recv().await {
                            let _ = session.send(text).await;
                        }
                    }
                }),
            );

            // xhr polling, from a client whose address is known.
            let id = sid("api");
            let (socket, _) = target.conn().into_stream();
            let local = socket.local_addr().unwrap();
            let mut conn = Conn::new(socket, &target.host());
            let response = conn
                .roundtrip(&Request::new("POST", &path(&id, "xhr")).header("X-Probe", "xhr-1"))
                .unwrap();
            assert_eq!(response.text(), "o\n");
            let seen = reports.next();
            check_opened(
                adapter,
                &seen,
                &id,
                Transport::XhrPolling,
                &path(&id, "xhr"),
                "xhr-1",
            );
            assert_eq!(seen.peer, Some(local), "{adapter:?}");

            // A SockJS WebSocket.
            let id = sid("api");
            let mut socket = target.raw_ws(&path(&id, "websocket"), &[("X-Probe", "ws-1")]);
            assert_eq!(next(&mut socket).as_deref(), Some("o"));
            let seen = reports.next();
            check_opened(
                adapter,
                &seen,
                &id,
                Transport::WebSocket,
                &path(&id, "websocket"),
                "ws-1",
            );
            assert_eq!(seen.peer, Some(socket.get_ref().local_addr().unwrap()));
            say(&mut socket, r#"["hi"]"#);
            assert_eq!(next(&mut socket).as_deref(), Some(r#"a["hi"]"#));

            // A raw WebSocket: no session id.
            let mut raw = target.raw_ws("/app/websocket", &[("X-Probe", "raw-1")]);
            let seen = reports.next();
            check_opened(
                adapter,
                &seen,
                "",
                Transport::RawWebSocket,
                "/app/websocket",
                "raw-1",
            );
            let ip = seen.peer.map(|p| p.ip());
            assert_eq!(ip, Some([127, 0, 0, 1].into()), "{adapter:?}");
            say(&mut raw, "plain");
            assert_eq!(next(&mut raw).as_deref(), Some("plain"));
        }
    });
}

/// What a handler saw around `close` and after the end.
#[derive(Debug)]
enum Lived {
    Closing {
        first: Result<(), SendError>,
        state: SessionState,
        second: Result<(), SendError>,
        send: Result<(), SendError>,
        is_closed: bool,
        reason: Option<CloseReason>,
    },
    Ended {
        state: SessionState,
        is_closed: bool,
        reason: Option<CloseReason>,
        send: Result<(), SendError>,
        close: Result<(), SendError>,
        sender_send: Result<(), SendError>,
        sender_state: SessionState,
    },
}

/// Closes the session with 3001 "bye" on `close`, echoes anything else; reports around
/// the close and once the session has ended.
fn lifecycle_handler(tx: Sender<Lived>) -> Handler {
    handler(move |mut session: Session| {
        let tx = tx.clone();
        async move {
            let sender = session.sender();
            while let Some(text) = session.recv().await {
                if text != "close" {
                    let _ = session.send(text).await;
                    continue;
                }
                let first = session.close(3001, "bye");
                let state = session.state();
                let second = session.close(3002, "again");
                let send = session.send("late").await;
                let _ = tx.send(Lived::Closing {
                    first,
                    state,
                    second,
                    send,
                    is_closed: session.is_closed(),
                    reason: session.close_reason(),
                });
            }
            // `recv` returned `None`: the session has ended, `closed()` resolves at once.
            session.closed().await;
            let _ = tx.send(Lived::Ended {
                state: session.state(),
                is_closed: session.is_closed(),
                reason: session.close_reason(),
                send: session.send("after the end").await,
                close: session.close(3003, "after the end"),
                sender_send: sender.try_send("after the end"),
                sender_state: sender.state(),
            });
        }
    })
}

fn check_ended(lived: Lived, reason: Option<CloseReason>) {
    let Lived::Ended {
        state,
        is_closed,
        reason: seen,
        send,
        close,
        sender_send,
        sender_state,
    } = lived
    else {
        panic!("expected the end, got {lived:?}");
    };
    assert_eq!(state, SessionState::Closed);
    assert_eq!(sender_state, SessionState::Closed);
    assert!(is_closed);
    assert_eq!(seen, reason);
    assert_eq!(send, Err(SendError::UnknownSession));
    assert_eq!(close, Err(SendError::UnknownSession));
    assert_eq!(sender_send, Err(SendError::UnknownSession));
}

#[test]
fn over_http_close_is_ok_then_not_open_and_the_state_goes_open_closing_closed() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let reports = Reports::new();
            let target = serve(
                adapter,
                config(),
                options(),
                lifecycle_handler(reports.sender()),
            );
            let id = sid("life");
            assert_eq!(xhr(&target, &id), "o\n");
            assert_eq!(xhr_send(&target, &id, r#"["close"]"#), 204);
            match reports.next() {
                Lived::Closing {
                    first,
                    state,
                    second,
                    send,
                    is_closed,
                    reason,
                } => {
                    assert_eq!(first, Ok(()), "{adapter:?}");
                    assert_eq!(state, SessionState::Closing);
                    assert_eq!(second, Err(SendError::NotOpen));
                    assert_eq!(send, Err(SendError::NotOpen));
                    assert!(!is_closed, "closing is not closed yet");
                    assert_eq!(reason, None);
                }
                other => panic!("{adapter:?}: {other:?}"),
            }
            // The close frame is replayed to every receiver until the disconnect delay.
            assert_eq!(xhr(&target, &id), close_frame(3001, "bye") + "\n");
            assert_eq!(xhr(&target, &id), close_frame(3001, "bye") + "\n");
            check_ended(reports.next(), closed_with(3001, "bye"));
        }
    });
}

/// §7.1.8: a client's messages reach the application only while its session is open:
/// sent after the application closed it, they are acknowledged (`204`, §6) and dropped;
/// the next poll gets the close frame, and the application's `recv` ends with nothing
/// more.
#[test]
fn s7_1_8_client_messages_after_the_close_never_reach_the_application() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, reports) = serve_reporting(adapter, config(), options(), |tx| {
                handler(move |mut session: Session| {
                    let tx = tx.clone();
                    async move {
                        while let Some(text) = session.recv().await {
                            if text == "close" {
                                let _ = session.close(3001, "bye");
                            }
                            let _ = tx.send(text);
                        }
                        let _ = tx.send("(ended)".to_owned());
                    }
                })
            });
            let id = sid("late");
            assert_eq!(xhr(&target, &id), "o\n");
            assert_eq!(xhr_send(&target, &id, r#"["close"]"#), 204);
            assert_eq!(reports.next(), "close", "{adapter:?}");
            assert_eq!(xhr_send(&target, &id, r#"["after"]"#), 204, "{adapter:?}");
            assert_eq!(xhr(&target, &id), close_frame(3001, "bye") + "\n");
            assert_eq!(
                reports.next(),
                "(ended)",
                "{adapter:?}: nothing after the close"
            );
        }
    });
}

#[test]
fn over_a_websocket_close_ends_the_session_at_once() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let reports = Reports::new();
            let target = serve(
                adapter,
                config(),
                options(),
                lifecycle_handler(reports.sender()),
            );
            // SockJS framing: the close frame as a message, then a 1000 close.
            let id = sid("life");
            let mut socket = ws(&target, &id);
            say(&mut socket, r#"["close"]"#);
            assert_eq!(next(&mut socket), Some(close_frame(3001, "bye")));
            assert_eq!(
                next(&mut socket).as_deref(),
                Some("close 1000 Normal closure")
            );
            // Raw: the close code and reason go in the close frame.
            let mut raw = target.raw_ws("/app/websocket", &[]);
            say(&mut raw, "close");
            assert_eq!(next(&mut raw).as_deref(), Some("close 3001 bye"));
            for _ in 0..2 {
                // A WebSocket session has no closing phase: `close` ends it at once.
                match reports.next() {
                    Lived::Closing {
                        first,
                        state,
                        second,
                        send,
                        is_closed,
                        reason,
                    } => {
                        assert_eq!(first, Ok(()), "{adapter:?}");
                        assert_eq!(state, SessionState::Closed);
                        assert_eq!(second, Err(SendError::UnknownSession));
                        assert_eq!(send, Err(SendError::UnknownSession));
                        assert!(is_closed);
                        assert_eq!(reason, closed_with(3001, "bye"));
                    }
                    other => panic!("{adapter:?}: {other:?}"),
                }
                check_ended(reports.next(), closed_with(3001, "bye"));
            }
        }
    });
}

/// §7.2: a WebSocket that the server fails for breaking RFC 6455 (here a frame with a
/// reserved bit set) ends its session at once, as aborted, not when the server's close
/// linger runs out with the client still connected; the client gets the 1002 close.
#[test]
fn a_websocket_that_breaks_rfc6455_ends_its_session_at_once_not_after_the_linger() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let config = Config {
                close_linger: Duration::from_secs(30),
                ..config()
            };
            let reports = Reports::new();
            let target = serve(
                adapter,
                config,
                options(),
                lifecycle_handler(reports.sender()),
            );
            let mut socket = ws(&target, &sid("rsv"));
            let started = Instant::now();
            // FIN, RSV2, text; masked, empty.
            socket
                .get_mut()
                .write_all(&[0xA1, 0x80, 1, 2, 3, 4])
                .expect("write");
            check_ended(reports.next(), Some(CloseReason::Aborted));
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{adapter:?}: ended after {:?}",
                started.elapsed()
            );
            let close = next(&mut socket).unwrap_or_default();
            assert!(close.starts_with("close 1002"), "{adapter:?}: {close:?}");
            drop(socket);
        }
    });
}

/// What a `SessionSender` on another thread saw.
#[derive(Debug)]
struct SenderSaw {
    sent: Result<(), SendError>,
    state: SessionState,
    after: SessionState,
    is_closed: bool,
    reason: Option<CloseReason>,
    send_after: Result<(), SendError>,
    close_after: Result<(), SendError>,
}

#[test]
fn a_session_sender_sends_and_watches_from_another_thread() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let reports = Reports::new();
            let tx = reports.sender();
            let target = serve(
                adapter,
                config(),
                options(),
                handler(move |mut session: Session| {
                    let tx = tx.clone();
                    async move {
                        let sender = session.sender();
                        std::thread::spawn(move || {
                            let sent = async_io::block_on(sender.send("from another thread"));
                            let state = sender.state();
                            async_io::block_on(sender.closed());
                            let _ = tx.send(SenderSaw {
                                sent,
                                state,
                                after: sender.state(),
                                is_closed: sender.is_closed(),
                                reason: sender.close_reason(),
                                send_after: sender.try_send("late"),
                                close_after: sender.close(3000, "late"),
                            });
                        });
                        while let Some(text) = session.recv().await {
                            if text == "bye" {
                                let _ = session.close(3002, "done");
                            }
                        }
                    }
                }),
            );
            let check = |saw: SenderSaw, reason: Option<CloseReason>| {
                assert_eq!(saw.sent, Ok(()), "{adapter:?}");
                assert_eq!(saw.state, SessionState::Open);
                assert_eq!(saw.after, SessionState::Closed);
                assert!(saw.is_closed);
                assert_eq!(saw.reason, reason);
                assert_eq!(saw.send_after, Err(SendError::UnknownSession));
                assert_eq!(saw.close_after, Err(SendError::UnknownSession));
            };

            // Over xhr: the application closes.
            let id = sid("sender");
            assert_eq!(xhr(&target, &id), "o\n");
            assert_eq!(xhr(&target, &id), "a[\"from another thread\"]\n");
            assert_eq!(xhr_send(&target, &id, r#"["bye"]"#), 204);
            assert_eq!(xhr(&target, &id), close_frame(3002, "done") + "\n");
            check(reports.next(), closed_with(3002, "done"));

            // Over a WebSocket: the client closes.
            let id = sid("sender");
            let mut socket = ws(&target, &id);
            assert_eq!(
                next(&mut socket).as_deref(),
                Some(r#"a["from another thread"]"#)
            );
            socket.close(None).unwrap();
            while next(&mut socket).is_some() {}
            check(reports.next(), Some(CloseReason::ClientClosed));
        }
    });
}

#[test]
fn the_close_reason_tells_timeout_client_close_and_abort_apart() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let reports = Reports::new();
            let tx = reports.sender();
            let target = serve(
                adapter,
                config(),
                options(),
                handler(move |mut session: Session| {
                    let tx = tx.clone();
                    async move {
                        while session.recv().await.is_some() {}
                        let _ = tx.send((session.id().to_owned(), session.close_reason()));
                    }
                }),
            );
            let mut expected = HashMap::new();

            // No receiver comes back within the disconnect delay.
            let id = sid("timeout");
            assert_eq!(xhr(&target, &id), "o\n");
            expected.insert(id, CloseReason::Timeout);

            // The client closes its WebSocket with a close handshake.
            let id = sid("client");
            let mut socket = ws(&target, &id);
            socket.close(None).unwrap();
            while next(&mut socket).is_some() {}
            expected.insert(id, CloseReason::ClientClosed);

            // The client's WebSocket connection drops without a close handshake.
            let id = sid("wsdrop");
            let socket = ws(&target, &id);
            drop(socket);
            expected.insert(id, CloseReason::Aborted);

            // A streaming receiver's connection drops.
            let id = sid("streamdrop");
            let conn = stream(&target, &id);
            conn.close();
            expected.insert(id, CloseReason::Aborted);

            let mut seen = HashMap::new();
            while seen.len() < expected.len() {
                let (id, reason) = reports.next();
                seen.insert(id, reason.expect("a reason once ended"));
            }
            assert_eq!(seen, expected, "{adapter:?}");
        }
    });
}

// ---------------------------------------------------------------------------------------
// Lifecycle: handles and the end of a session
// ---------------------------------------------------------------------------------------

#[test]
fn dropping_every_handle_closes_the_session_with_1000() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            // The handler returns at once: the `Session`, the only handle, is dropped.
            let target = serve(
                adapter,
                config(),
                options(),
                handler(|_session: Session| async {}),
            );
            let id = sid("dropped");
            assert_eq!(xhr(&target, &id), "o\n");
            assert_eq!(
                xhr(&target, &id),
                close_frame(1000, "Normal closure") + "\n",
                "{adapter:?}"
            );

            let mut socket = ws(&target, &sid("dropped"));
            assert_eq!(next(&mut socket), Some(close_frame(1000, "Normal closure")));
            assert_eq!(
                next(&mut socket).as_deref(),
                Some("close 1000 Normal closure")
            );

            let mut raw = target.raw_ws("/app/websocket", &[]);
            assert_eq!(next(&mut raw).as_deref(), Some("close 1000 Normal closure"));
        }
    });
}

#[test]
fn a_kept_sender_keeps_the_session_open_and_what_the_client_sends_meanwhile_is_discarded() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            // A few messages would overflow the inbound queue if they were kept.
            let config = Config {
                max_session_inbound_bytes: 40,
                inbound_stall_timeout: Duration::from_millis(200),
                ..config()
            };
            let gates = Gates::default();
            let reports = Reports::new();
            let tx = reports.sender();
            let handler_gates = gates.clone();
            let target = serve(
                adapter,
                config,
                options(),
                handler(move |session: Session| {
                    let (gates, tx) = (handler_gates.clone(), tx.clone());
                    async move {
                        let sender = session.sender();
                        let id = session.id().to_owned();
                        drop(session);
                        // The handler has dropped its `Session`; a thread keeps the sender
                        // until the test lets it go.
                        let _ = tx.send(("returned", None));
                        std::thread::spawn(move || {
                            gates.wait_blocking(&id);
                            let sent = sender.try_send("still here");
                            let _ = tx.send(("sent", Some((sent, sender.state()))));
                        });
                    }
                }),
            );
            let sent = || match reports.next() {
                ("sent", Some((sent, state))) => {
                    assert_eq!(sent, Ok(()), "{adapter:?}");
                    assert_eq!(state, SessionState::Open);
                }
                other => panic!("{other:?}"),
            };

            let id = sid("kept");
            assert_eq!(xhr(&target, &id), "o\n");
            assert_eq!(reports.next().0, "returned");
            assert_eq!(xhr_send(&target, &id, r#"["1","2","3"]"#), 204);
            assert_eq!(xhr_send(&target, &id, r#"["4"]"#), 204);
            gates.open(&id);
            assert_eq!(xhr(&target, &id), "a[\"still here\"]\n", "{adapter:?}");
            sent();
            assert_eq!(
                xhr(&target, &id),
                close_frame(1000, "Normal closure") + "\n"
            );

            let id = sid("kept");
            let mut socket = ws(&target, &id);
            assert_eq!(reports.next().0, "returned");
            say(&mut socket, r#"["1","2","3"]"#);
            say(&mut socket, r#"["4"]"#);
            // Let the server read them before the sender is used (if it has not, they
            // arrive after the session's end, which proves nothing but fails nothing).
            gates.open(&id);
            assert_eq!(next(&mut socket).as_deref(), Some(r#"a["still here"]"#));
            sent();
            assert_eq!(next(&mut socket), Some(close_frame(1000, "Normal closure")));
            assert_eq!(
                next(&mut socket).as_deref(),
                Some("close 1000 Normal closure")
            );
        }
    });
}

#[test]
fn a_handler_returning_after_the_session_ended_closes_nothing_twice() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let gates = Gates::default();
            let reports = Reports::new();
            let tx = reports.sender();
            let handler_gates = gates.clone();
            let target = serve(
                adapter,
                config(),
                options(),
                handler(move |mut session: Session| {
                    let (gates, tx) = (handler_gates.clone(), tx.clone());
                    async move {
                        let id = session.id().to_owned();
                        if id.starts_with("closer") {
                            // Returns while the session is closing.
                            let _ = session.close(3001, "bye");
                            return;
                        }
                        while let Some(text) = session.recv().await {
                            let _ = session.send(text).await;
                        }
                        let _ = tx.send(session.close_reason());
                        // Holds the ended session until the test lets go.
                        gates.wait(&format!("release {id}")).await;
                        drop(session);
                        let _ = tx.send(None);
                    }
                }),
            );

            // Dropped while closing: no second close frame, the first one stays.
            let id = sid("closer");
            assert_eq!(xhr(&target, &id), "o\n");
            for _ in 0..3 {
                assert_eq!(
                    xhr(&target, &id),
                    close_frame(3001, "bye") + "\n",
                    "{adapter:?}"
                );
            }

            // Dropped after the end, while a new session with the same id is open.
            let id = sid("holder");
            let mut socket = ws(&target, &id);
            socket.close(None).unwrap();
            while next(&mut socket).is_some() {}
            assert_eq!(reports.next(), Some(CloseReason::ClientClosed));
            assert_eq!(xhr(&target, &id), "o\n");
            gates.open(&format!("release {id}"));
            assert_eq!(reports.next(), None, "the old handler returned");
            assert_eq!(xhr_send(&target, &id, r#"["still open"]"#), 204);
            assert_eq!(xhr(&target, &id), "a[\"still open\"]\n", "{adapter:?}");
        }
    });
}

// ---------------------------------------------------------------------------------------
// Inbound flow control
// ---------------------------------------------------------------------------------------

/// What a slow reader saw: the messages it took, whether they came in order, how its
/// session ended (`None` while open).
#[derive(Debug, PartialEq)]
struct Taken {
    count: usize,
    in_order: bool,
    reason: Option<CloseReason>,
}

/// Takes `expect` messages (`"0"`, `"1"`, …), pausing 2 ms every 100 so the client is
/// faster than the application, then reports; ids starting with `deaf` never read and
/// report their close reason once the session has ended.
fn slow_reader(expect: usize, tx: Sender<Taken>) -> Handler {
    handler(move |mut session: Session| {
        let tx = tx.clone();
        async move {
            if session.id().starts_with("deaf") {
                session.closed().await;
                let _ = tx.send(Taken {
                    count: 0,
                    in_order: true,
                    reason: session.close_reason(),
                });
                return;
            }
            let mut tally = Tally::new(|n| n.to_string());
            while tally.count < expect {
                if !tally
                    .take(&mut session, (expect - tally.count).min(100))
                    .await
                {
                    break;
                }
                sleep(Duration::from_millis(2)).await;
            }
            let _ = tx.send(tally.taken(&session));
            tally.answer(&mut session).await;
        }
    })
}

/// What a reader has taken so far: how many messages, and whether each was the one
/// expected (`name(n)` for the `n`th).
struct Tally {
    count: usize,
    in_order: bool,
    name: fn(usize) -> String,
}

impl Tally {
    fn new(name: fn(usize) -> String) -> Self {
        Tally {
            count: 0,
            in_order: true,
            name,
        }
    }

    /// Takes up to `n` messages; `false` if the session ended first.
    async fn take(&mut self, session: &mut Session, n: usize) -> bool {
        for _ in 0..n {
            let Some(text) = session.recv().await else {
                return false;
            };
            self.in_order &= text == (self.name)(self.count);
            self.count += 1;
        }
        true
    }

    /// The report, with how the session ended (`None` while open).
    fn taken(&self, session: &Session) -> Taken {
        Taken {
            count: self.count,
            in_order: self.in_order,
            reason: session.close_reason(),
        }
    }

    /// Answers `took N`, then stays open until the session ends: the test checks that it
    /// outlived what the client sent.
    async fn answer(self, session: &mut Session) {
        let _ = session.send(format!("took {}", self.count)).await;
        while session.recv().await.is_some() {}
    }
}

/// A JSON array of the numbers `from..to` as strings.
fn numbers(from: usize, to: usize) -> String {
    let items: Vec<String> = (from..to).map(|n| format!("\"{n}\"")).collect();
    format!("[{}]", items.join(","))
}

/// 4 KiB: far below what the floods carry, so the backpressure is exercised.
fn small_inbound() -> Config {
    Config {
        max_session_inbound_bytes: 4096,
        ..config()
    }
}

#[test]
fn a_10000_message_xhr_send_is_delivered_in_order_and_the_session_stays_open() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            // No receiver is attached while the application reads the flood: under a short
            // disconnect delay a loaded machine would time the session out first
            // (PROTOCOL.md §7.1 rule 5), which is not what this test is about.
            let options = Options {
                disconnect_delay: Duration::from_secs(20),
                ..options()
            };
            let (target, reports) = serve_reporting(adapter, small_inbound(), options, |tx| {
                slow_reader(10_000, tx)
            });
            let id = sid("batch");
            assert_eq!(xhr(&target, &id), "o\n");
            // About 70 KiB of messages (410 KiB as the queue counts them): held, not refused.
            assert_eq!(xhr_send(&target, &id, &numbers(0, 10_000)), 204);
            let taken = reports.next();
            assert_eq!(
                taken,
                Taken {
                    count: 10_000,
                    in_order: true,
                    reason: None
                },
                "{adapter:?}"
            );
            assert_eq!(xhr(&target, &id), "a[\"took 10000\"]\n", "{adapter:?}");
            assert_eq!(xhr_send(&target, &id, r#"["more"]"#), 204, "still open");
        }
    });
}

#[test]
fn a_fast_websocket_writer_is_slowed_not_closed() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, reports) = serve_reporting(adapter, small_inbound(), options(), |tx| {
                slow_reader(10_000, tx)
            });
            let mut socket = ws(&target, &sid("writer"));
            // One frame per message, as fast as the socket takes them: the server stops
            // reading while the application is behind, which blocks these writes.
            for n in 0..10_000 {
                say(&mut socket, &format!("[\"{n}\"]"));
            }
            let taken = reports.next();
            assert_eq!(
                (taken.count, taken.in_order, taken.reason),
                (10_000, true, None),
                "{adapter:?}"
            );
            assert_eq!(next(&mut socket).as_deref(), Some(r#"a["took 10000"]"#));
        }
    });
}

/// A deaf session past its bound: its send's answer is held until the stall timeout,
/// then the session is closed with 1013.
#[test]
fn a_stuck_application_is_closed_with_1013_after_the_stall_timeout() {
    within(LIMIT, || {
        assert_eq!(
            (INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON),
            (1013, "Receive queue overflow")
        );
        let stall = Duration::from_millis(300);
        for adapter in ADAPTERS {
            let config = Config {
                inbound_stall_timeout: stall,
                ..small_inbound()
            };
            let (target, reports) =
                serve_reporting(adapter, config, options(), |tx| slow_reader(0, tx));
            let overflowed = closed_with(INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON);

            // HTTP: the answer is held, then the receiver gets the close.
            let id = sid("deaf");
            let mut receiver = stream(&target, &id);
            let started = Instant::now();
            assert_eq!(xhr_send(&target, &id, &numbers(0, 1000)), 204);
            assert!(started.elapsed() >= stall, "{adapter:?}: answer held");
            assert_eq!(
                chunk_text(&mut receiver),
                close_frame(INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON) + "\n",
                "{adapter:?}"
            );
            assert_eq!(reports.next().reason, overflowed);

            // WebSocket: the socket is no longer read, then the session is closed.
            let mut socket = ws(&target, &sid("deaf"));
            let started = Instant::now();
            say(&mut socket, &numbers(0, 1000));
            assert_eq!(
                next(&mut socket),
                Some(close_frame(INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON)),
                "{adapter:?}"
            );
            assert!(started.elapsed() >= stall, "{adapter:?}");
            assert_eq!(reports.next().reason, overflowed);
        }
    });
}

/// Backpressure asks the client to wait for each send's answer; one that sends again
/// while the queue is past twice its bound is closed at once, not at the stall timeout.
#[test]
fn a_client_that_does_not_wait_for_its_answers_is_closed_with_1013() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let config = Config {
                inbound_stall_timeout: Duration::from_secs(600),
                ..small_inbound()
            };
            let (target, reports) =
                serve_reporting(adapter, config, options(), |tx| slow_reader(0, tx));
            let id = sid("deaf");
            let mut receiver = stream(&target, &id);
            // Held: past the bound, and the application takes nothing.
            let mut sends = vec![target.conn()];
            sends[0]
                .send(&Request::new("POST", &path(&id, "xhr_send")).body(numbers(0, 1000).as_str()))
                .unwrap();
            let started = Instant::now();
            // More sends without waiting for the answers: once one starts after the big
            // one was queued, the session is closed.
            for _ in 0..20 {
                sleep_blocking(Duration::from_millis(25));
                let mut conn = target.conn();
                conn.send(&Request::new("POST", &path(&id, "xhr_send")).body(r#"["again"]"#))
                    .unwrap();
                sends.push(conn);
            }
            assert_eq!(
                chunk_text(&mut receiver),
                close_frame(INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON) + "\n",
                "{adapter:?}"
            );
            assert!(
                started.elapsed() < WAIT,
                "{adapter:?}: long before the stall timeout"
            );
            assert_eq!(
                reports.next().reason,
                closed_with(INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON)
            );
            // Every send is answered: 204, or 404 once the closed session is gone.
            for (n, mut conn) in sends.into_iter().enumerate() {
                let status = conn.read_head().unwrap().status;
                assert!(
                    status == 204 || (n > 0 && status == 404),
                    "{adapter:?}: send {n} got {status}"
                );
            }
        }
    });
}

fn sleep_blocking(duration: Duration) {
    std::thread::sleep(duration);
}

/// The steps a [`Stepped`] application takes: how many messages at each.
const STEPS: [usize; 4] = [30, 20, 44, 57];

/// A service whose application takes messages (`"m000"`, `"m001"`, …) in the [`STEPS`]
/// the test lets it take, one session (`id`) at a time: its inbound queue is bounded at
/// 4 KiB, so that 150 messages (5,400 bytes as the queue counts them: 4 of text and 32 of
/// overhead each) are past the bound; after the second step (100 left, 3,600) the queue is
/// under the bound but above half; after the third (56 left, 2,016) at half or below.
struct Stepped {
    adapter: Adapter,
    target: Target,
    reports: Reports<Taken>,
    gates: Gates,
    id: String,
    /// The stall timeout: long enough that the test's own steps, while the queue is past
    /// its bound, never take it, even with every test of the file running at once.
    stall: Duration,
}

impl Stepped {
    /// Longer than a stall could take to close the session: it closes between one and two
    /// timeouts after the application last took a message (`Config::inbound_stall_timeout`).
    fn past_the_stall(&self) -> Duration {
        2 * self.stall + Duration::from_millis(500)
    }

    fn start(adapter: Adapter) -> Self {
        let stall = Duration::from_secs(2);
        let config = Config {
            inbound_stall_timeout: stall,
            ..small_inbound()
        };
        let gates = Gates::default();
        let application = gates.clone();
        let (target, reports) = serve_reporting(adapter, config, options(), |tx| {
            handler(move |mut session: Session| {
                let (gates, tx) = (application.clone(), tx.clone());
                async move {
                    let id = session.id().to_owned();
                    let mut tally = Tally::new(|n| format!("m{n:03}"));
                    for (step, n) in STEPS.into_iter().enumerate() {
                        gates.wait(&format!("{id} {step}")).await;
                        tally.take(&mut session, n).await;
                        let _ = tx.send(tally.taken(&session));
                    }
                    tally.answer(&mut session).await;
                }
            })
        });
        Stepped {
            adapter,
            target,
            reports,
            gates,
            id: sid("stepped"),
            stall,
        }
    }

    /// `["m<from>",…,"m<to - 1>"]`.
    fn messages(from: usize, to: usize) -> String {
        let items: Vec<String> = (from..to).map(|n| format!("\"m{n:03}\"")).collect();
        format!("[{}]", items.join(","))
    }

    /// Lets the application take step `n`, and checks it has taken `count` messages in
    /// all, its session still open.
    fn step(&self, n: usize, count: usize) {
        self.gates.open(&format!("{} {n}", self.id));
        let taken = self.reports.next();
        let expected = Taken {
            count,
            in_order: true,
            reason: None,
        };
        assert_eq!(taken, expected, "{:?} step {n}", self.adapter);
    }
}

/// A send's answer held for the bound (`Config::max_session_inbound_bytes`) goes once
/// the application has taken the queue down to half, not as soon as it is under the
/// bound; an application that takes its time meanwhile is slow, not stuck: under the bound
/// the stall timeout closes nothing, however long it waits.
#[test]
fn a_held_send_is_answered_at_half_and_only_a_queue_past_the_bound_stalls() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let app = Stepped::start(adapter);
            let (target, id) = (&app.target, &app.id);
            let mut receiver = stream(target, id);
            let mut send = target.conn();
            let flood = Request::new("POST", &path(id, "xhr_send"));
            send.send(&flood.body(Stepped::messages(0, 150))).unwrap();
            app.step(0, 30);
            app.step(1, 50);
            // Under the bound, above half, past the stall timeout: held, and open.
            sleep_blocking(app.past_the_stall());
            let answered = send.has_input().unwrap();
            assert!(!answered, "{adapter:?}: answered above half");
            assert!(!receiver.has_input().unwrap(), "{adapter:?}: closed");
            app.step(2, 94);
            send.set_read_timeout(WAIT).unwrap();
            assert_eq!(send.read_head().unwrap().status, 204, "{adapter:?}");
            assert_eq!(xhr_send(target, id, &Stepped::messages(150, 151)), 204);
            app.step(3, 151);
            let took = chunk_text(&mut receiver);
            assert_eq!(took, "a[\"took 151\"]\n", "{adapter:?}");
        }
    });
}

/// A WebSocket whose reads were paused for the bound is read again once the application
/// has taken the queue down to half (a ping sent meanwhile is answered only then), and,
/// as for a held send, an application slow under the bound is not taken for stuck.
#[test]
fn paused_websocket_reads_resume_at_half_and_only_a_queue_past_the_bound_stalls() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let app = Stepped::start(adapter);
            let mut socket = ws(&app.target, &app.id);
            say(&mut socket, &Stepped::messages(0, 150));
            app.step(0, 30);
            // Past the bound: these wait, unread, in the socket.
            say(&mut socket, &Stepped::messages(150, 151));
            socket.send(Message::Ping(b"half".to_vec().into())).unwrap();
            app.step(1, 50);
            // Under the bound, above half, past the stall timeout: unread, and open.
            let tcp = socket.get_ref();
            tcp.set_read_timeout(Some(app.past_the_stall())).unwrap();
            match socket.read() {
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                other => panic!("{adapter:?}: read above half, or closed: {other:?}"),
            }
            app.step(2, 94);
            socket.get_ref().set_read_timeout(Some(WAIT)).unwrap();
            loop {
                match socket.read() {
                    Ok(Message::Pong(payload)) => {
                        assert_eq!(&payload[..], b"half", "{adapter:?}");
                        break;
                    }
                    Ok(Message::Text(t)) if t.as_str() == "h" => {}
                    other => panic!("{adapter:?}: {other:?}"),
                }
            }
            app.step(3, 151);
            assert_eq!(next(&mut socket).as_deref(), Some(r#"a["took 151"]"#));
        }
    });
}

// ---------------------------------------------------------------------------------------
// Outgoing flow control
// ---------------------------------------------------------------------------------------

/// Sends `count` messages of `size` bytes (`"<n>:zzz…"`) with `send().await`, then reports
/// what failed, if anything.
fn paced_sender(count: usize, size: usize, tx: Sender<Result<(), SendError>>) -> Handler {
    handler(move |mut session: Session| {
        let tx = tx.clone();
        async move {
            let mut result = Ok(());
            for n in 0..count {
                let mut text = format!("{n}:");
                text.extend(std::iter::repeat_n('z', size.saturating_sub(text.len())));
                if let Err(e) = session.send(text).await {
                    result = Err(e);
                    break;
                }
            }
            let _ = tx.send(result);
            while session.recv().await.is_some() {}
        }
    })
}

/// The messages of a SockJS `a[...]` frame (its transport's newline trimmed).
fn a_frame(frame: &str) -> Vec<String> {
    let json = frame.trim_end().strip_prefix('a').expect("an a frame");
    serde_json::from_str(json).expect("a JSON array of strings")
}

/// The message numbers in a SockJS frame's array, with every message's length checked.
fn frame_numbers(frame: &str, size: usize) -> Vec<usize> {
    let messages = a_frame(frame);
    messages
        .iter()
        .map(|m| {
            assert_eq!(m.len(), size, "{m:.20}");
            m.split(':').next().unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn send_await_paces_a_slow_client_without_losing_messages() {
    within(LIMIT, || {
        const COUNT: usize = 2000;
        const SIZE: usize = 1000;
        for adapter in ADAPTERS {
            let config = Config {
                max_connection_queue_bytes: 64 * 1024,
                ..config()
            };
            let options = Options {
                max_queued_bytes: 32 * 1024,
                ..options()
            };
            let (target, reports) =
                serve_reporting(adapter, config, options, |tx| paced_sender(COUNT, SIZE, tx));

            // xhr-polling: 2 MB through a 32 KiB session queue, one poll at a time.
            let id = sid("polled");
            assert_eq!(xhr(&target, &id), "o\n");
            let mut got = Vec::new();
            while got.len() < COUNT {
                got.extend(frame_numbers(&xhr(&target, &id), SIZE));
                sleep_blocking(Duration::from_millis(2));
            }
            assert_eq!(got, (0..COUNT).collect::<Vec<_>>(), "{adapter:?}");
            assert_eq!(reports.next(), Ok(()), "{adapter:?}");

            // A WebSocket read slowly: 2 MB through a 64 KiB connection queue.
            let mut socket = ws(&target, &sid("socket"));
            let mut got = Vec::new();
            while got.len() < COUNT {
                let frame = next(&mut socket).unwrap();
                got.extend(frame_numbers(&frame, SIZE));
                if got.len() % 100 == 0 {
                    sleep_blocking(Duration::from_millis(2));
                }
            }
            assert_eq!(got, (0..COUNT).collect::<Vec<_>>(), "{adapter:?}");
            assert_eq!(reports.next(), Ok(()), "{adapter:?}");
        }
    });
}

/// A session's backlog, queued while no receiver was attached, reaches the next streaming
/// receiver whole, behind its prelude, though it is larger than
/// `max_connection_queue_bytes`: what is queued before the connection took anything says
/// nothing of a client that does not read. (It was taken for an overflow: the connection
/// dropped unanswered, the messages lost, the session aborted.) xhr-streaming, and
/// htmlfile, whose wrapping escapes the frame again.
#[test]
fn a_backlog_past_the_connection_queue_reaches_the_next_streaming_receiver() {
    within(LIMIT, || {
        const COUNT: usize = 40;
        const SIZE: usize = 1000;
        for adapter in ADAPTERS {
            let config = Config {
                max_connection_queue_bytes: 16 * 1024,
                ..config()
            };
            let reports = Reports::new();
            let tx = reports.sender();
            let target = serve(
                adapter,
                config,
                options(),
                handler(move |mut session: Session| {
                    let tx = tx.clone();
                    async move {
                        // The client's word, sent while no receiver is attached.
                        let _ = session.recv().await;
                        let mut result = Ok(());
                        for n in 0..COUNT {
                            let mut text = format!("{n}:");
                            text.extend(std::iter::repeat_n('"', SIZE - text.len()));
                            result = result.and(session.send(text).await);
                        }
                        let _ = tx.send(result);
                        while session.recv().await.is_some() {}
                    }
                }),
            );
            for transport in ["xhr_streaming", "htmlfile?c=f"] {
                let id = sid("backlog");
                assert_eq!(xhr(&target, &id), "o\n");
                assert_eq!(xhr_send(&target, &id, r#"["go"]"#), 204);
                assert_eq!(reports.next(), Ok(()), "{adapter:?}");
                let method = if transport == "xhr_streaming" {
                    "POST"
                } else {
                    "GET"
                };
                let mut conn = target.conn();
                conn.send(&Request::new(method, &path(&id, transport)))
                    .unwrap();
                let head = conn.read_head().unwrap();
                assert_eq!(head.status, 200, "{adapter:?} {transport}");
                let _prelude = conn.read_chunk().unwrap();
                let frame = chunk_text(&mut conn);
                let frame = match transport {
                    "xhr_streaming" => frame,
                    // `<script>\np("FRAME");\n</script>\r\n`, the frame a JS string.
                    _ => serde_json::from_str::<String>(
                        frame
                            .strip_prefix("<script>\np(")
                            .and_then(|f| f.strip_suffix(");\n</script>\r\n"))
                            .unwrap(),
                    )
                    .unwrap(),
                };
                let got: Vec<usize> = a_frame(&frame)
                    .iter()
                    .map(|m| m.split(':').next().unwrap().parse().unwrap())
                    .collect();
                assert_eq!(
                    got,
                    (0..COUNT).collect::<Vec<_>>(),
                    "{adapter:?} {transport}"
                );
            }
        }
    });
}

/// What a `try_send` user saw: how many messages went in before `QueueFull`, and whether
/// `ready()` resolved (once the client took some) while the session was open.
#[derive(Debug, PartialEq)]
struct Tried {
    before_full: usize,
    full: bool,
    ready_while_open: bool,
}

#[test]
fn try_send_reports_a_full_queue_and_ready_waits_for_room() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, reports) =
                small_queue_reporting(adapter, config(), |mut session, tx| async move {
                    let text = "q".repeat(1000);
                    let mut before_full = 0;
                    let full = loop {
                        match session.try_send(&text) {
                            Ok(()) => before_full += 1,
                            Err(e) => break e == SendError::QueueFull,
                        }
                        if before_full > 100 {
                            break false;
                        }
                    };
                    let queued = session.queued_bytes();
                    session.ready().await;
                    let _ = tx.send((
                        Tried {
                            before_full,
                            full,
                            ready_while_open: !session.is_closed(),
                        },
                        queued,
                    ));
                    while session.recv().await.is_some() {}
                });
            let id = sid("tried");
            // The first poll opens the session; nothing is taken until the next one.
            assert_eq!(xhr(&target, &id), "o\n");
            sleep_blocking(Duration::from_millis(100));
            let frame = xhr(&target, &id);
            let (tried, queued) = reports.next();
            assert_eq!(
                tried,
                Tried {
                    before_full: 8,
                    full: true,
                    ready_while_open: true
                },
                "{adapter:?}"
            );
            assert!((8000..=8 * 1024).contains(&queued), "{adapter:?}: {queued}");
            assert_eq!(frame_numbers_plain(&frame), 8, "{adapter:?}");
        }
    });
}

/// A `ready()` after `try_send` refused a message resolves once that message fits, not as
/// soon as the queue is half empty: a sender looping on the two (`ready().await`, then
/// `try_send` again) would otherwise be refused at once, over and over, until a receiver
/// came. Here 3,002 bytes are queued (under half of 8 KiB) and a 6,000-byte message does
/// not fit until the next poll takes them.
#[test]
fn ready_after_a_refused_try_send_waits_until_that_message_fits() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, reports) =
                small_queue_reporting(adapter, config(), |mut session, tx| async move {
                    let small = session.try_send("a".repeat(3000));
                    let large = "b".repeat(6000);
                    let refused = session.try_send(&large);
                    let at_once = ready_at_once(&session).await;
                    session.ready().await;
                    let after = session.try_send(&large);
                    let _ = tx.send((small, refused, at_once, after));
                    while session.recv().await.is_some() {}
                });
            let id = sid("refused");
            assert_eq!(xhr(&target, &id), "o\n");
            sleep_blocking(Duration::from_millis(100));
            let first = xhr(&target, &id);
            let (small, refused, at_once, after) = reports.next();
            assert_eq!(small, Ok(()), "{adapter:?}");
            assert_eq!(refused, Err(SendError::QueueFull), "{adapter:?}");
            assert!(
                !at_once,
                "{adapter:?}: ready() resolved with no room for the message"
            );
            assert_eq!(after, Ok(()), "{adapter:?}: refused again once ready");
            assert_eq!(
                first,
                format!("a[\"{}\"]\n", "a".repeat(3000)),
                "{adapter:?}"
            );
            let second = xhr(&target, &id);
            assert_eq!(
                second,
                format!("a[\"{}\"]\n", "b".repeat(6000)),
                "{adapter:?}"
            );
        }
    });
}

/// Each handle remembers its own refusal: a clone of the session's sender (the broadcast
/// hub's, say) refused a large message leaves the handler's own `ready()` at the usual
/// half, while the clone's waits for its message to fit.
#[test]
fn a_refusal_to_one_handle_leaves_the_others_ready_at_the_usual_half() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, reports) =
                small_queue_reporting(adapter, config(), |mut session, tx| async move {
                    let small = session.try_send("a".repeat(3000));
                    let clone = session.sender();
                    let refused = clone.try_send("b".repeat(6000));
                    let own = ready_at_once(&session).await;
                    let cloned = at_once(clone.ready()).await;
                    let _ = tx.send((small, refused, own, cloned));
                    while session.recv().await.is_some() {}
                });
            let id = sid("handles");
            assert_eq!(xhr(&target, &id), "o\n");
            let (small, refused, own, cloned) = reports.next();
            assert_eq!(small, Ok(()), "{adapter:?}");
            assert_eq!(refused, Err(SendError::QueueFull), "{adapter:?}");
            assert!(
                own,
                "{adapter:?}: the session waited for its clone's message"
            );
            assert!(
                !cloned,
                "{adapter:?}: the clone's ready() with no room for it"
            );
        }
    });
}

/// A `ready()` after `try_send` refused a message larger than the session's whole queue
/// waits until nothing at all is queued for the session, its connection's queue included:
/// then the message fits, or the sender can tell it never will (`queued_bytes() == 0`).
/// Resolving while the connection still held bytes, it would be refused again at once, a
/// busy loop for as long as a slow client took to read them.
#[test]
fn ready_after_refusing_a_message_larger_than_the_queue_waits_for_both_queues_to_empty() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, reports) =
                small_queue_reporting(adapter, config(), |mut session, tx| async move {
                    // Fill the socket and a good part of the connection's queue: the
                    // client does not read.
                    let chunk = "c".repeat(4000);
                    for _ in 0..10_000 {
                        if session.queued_bytes() >= 256 * 1024 {
                            break;
                        }
                        if session.send(chunk.as_str()).await.is_err() {
                            break;
                        }
                    }
                    let filled = session.queued_bytes();
                    let refused = session.try_send("m".repeat(10_000));
                    let at_once = ready_at_once(&session).await;
                    let left = session.queued_bytes();
                    // A send that went through ends that wait; a `send().await` that
                    // fails (its message never fits) starts none.
                    let small = session.try_send("x");
                    let failed = session.send("m".repeat(10_000)).await;
                    let ready_after = ready_at_once(&session).await;
                    let _ = tx.send((filled, refused, at_once, left));
                    let _ = tx.send((0, small.and(failed), ready_after, 0));
                    while session.recv().await.is_some() {}
                });
            let stuck = stuck_ws(&target, &sid("larger"));
            let (filled, refused, at_once, left) = reports.next();
            assert!(filled >= 256 * 1024, "{adapter:?}: {filled} bytes queued");
            assert_eq!(refused, Err(SendError::QueueFull), "{adapter:?}");
            assert!(
                !at_once || left == 0,
                "{adapter:?}: ready() with {left} bytes still queued"
            );
            let (_, failed, ready_after, _) = reports.next();
            assert_eq!(failed, Err(SendError::QueueFull), "{adapter:?}");
            assert!(
                ready_after,
                "{adapter:?}: a failed send() made ready() wait"
            );
            drop(stuck);
        }
    });
}

/// A `send().await` waiting for room for a message that does not fit yet is woken once it
/// fits, not at every input of its shard meanwhile (each of which found the queue under
/// half full, woke it, and saw it refused again): here 50 messages to another session on
/// the same shard come while it waits.
#[test]
fn a_waiting_send_is_woken_once_its_message_fits_not_at_every_input() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, reports) = serve_reporting(
                adapter,
                Config {
                    shards: 1,
                    ..config()
                },
                small_queue(),
                |tx| {
                    handler(move |mut session: Session| {
                        let tx = tx.clone();
                        async move {
                            if session.id().starts_with("waits") {
                                let small = session.try_send("a".repeat(3000));
                                let mut polls = 0;
                                let sent = {
                                    let mut send = std::pin::pin!(session.send("b".repeat(6000)));
                                    std::future::poll_fn(|cx| {
                                        polls += 1;
                                        send.as_mut().poll(cx)
                                    })
                                    .await
                                };
                                let _ = tx.send((small, sent, polls));
                            }
                            while session.recv().await.is_some() {}
                        }
                    })
                },
            );
            let id = sid("waits");
            let other = sid("other");
            assert_eq!(xhr(&target, &id), "o\n");
            assert_eq!(xhr(&target, &other), "o\n");
            for n in 0..50 {
                assert_eq!(xhr_send(&target, &other, &format!("[\"{n}\"]")), 204);
            }
            let first = xhr(&target, &id);
            assert_eq!(
                first,
                format!("a[\"{}\"]\n", "a".repeat(3000)),
                "{adapter:?}"
            );
            let (small, sent, polls) = reports.next();
            assert_eq!((small, sent), (Ok(()), Ok(())), "{adapter:?}");
            assert!(
                polls <= 5,
                "{adapter:?}: the waiting send was polled {polls} times"
            );
            let second = xhr(&target, &id);
            assert_eq!(
                second,
                format!("a[\"{}\"]\n", "b".repeat(6000)),
                "{adapter:?}"
            );
        }
    });
}

/// How many messages a SockJS array frame carries.
fn frame_numbers_plain(frame: &str) -> usize {
    a_frame(frame).len()
}

// ---------------------------------------------------------------------------------------
// Outgoing bounds and the write timeout
// ---------------------------------------------------------------------------------------

/// What a flooding handler saw.
#[derive(Debug)]
struct Flooded {
    accepted: usize,
    /// Sends refused with `QueueFull`.
    refused: usize,
    error: Option<SendError>,
    reason: Option<CloseReason>,
    /// From the last accepted send to the session's end.
    after_last_send: Duration,
}

/// Sessions whose id starts with `flood` send `message`-byte messages until a send fails
/// (or `total` bytes were accepted), then wait for the end and report; others echo.
fn flood_handler(message: usize, total: usize, tx: Sender<Flooded>) -> Handler {
    handler(move |mut session: Session| {
        let tx = tx.clone();
        async move {
            if !session.id().starts_with("flood") {
                while let Some(text) = session.recv().await {
                    let _ = session.send(text).await;
                }
                return;
            }
            let text = "z".repeat(message);
            let mut accepted = 0;
            let mut refused = 0;
            let mut error = None;
            let mut last = Instant::now();
            let give_up = Instant::now() + Duration::from_secs(20);
            while accepted < total && Instant::now() < give_up {
                match session.try_send(&text) {
                    Ok(()) => {
                        accepted += message;
                        last = Instant::now();
                        if accepted % (64 * message) == 0 {
                            // Let the connection's writer run.
                            sleep(Duration::from_millis(1)).await;
                        }
                    }
                    Err(SendError::QueueFull) => {
                        refused += 1;
                        sleep(Duration::from_millis(2)).await;
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            session.closed().await;
            let _ = tx.send(Flooded {
                accepted,
                refused,
                error,
                reason: session.close_reason(),
                after_last_send: last.elapsed(),
            });
        }
    })
}

/// A TCP connection to `addr` whose receive buffer stays small (no autotuning), so a
/// client that does not read blocks the server's writes soon.
fn small_window(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// A SockJS WebSocket on a small-window connection, past `o`, that the test then stops
/// reading.
fn stuck_ws(target: &Target, id: &str) -> WebSocket<TcpStream> {
    let url = target.url(&path(id, "websocket"));
    let (mut socket, _) = tungstenite::client(url.as_str(), small_window(target.addr)).unwrap();
    assert_eq!(next(&mut socket).as_deref(), Some("o"));
    socket
}

/// An xhr_streaming receiver on a small-window connection, past `o`.
fn stuck_stream(target: &Target, id: &str) -> Conn {
    let mut conn = Conn::new(small_window(target.addr), &target.host());
    conn.send(&Request::new("POST", &path(id, "xhr_streaming")))
        .unwrap();
    assert_eq!(conn.read_head().unwrap().status, 200);
    assert_eq!(conn.read_chunk().unwrap().len(), 2049);
    assert_eq!(conn.read_chunk().unwrap(), b"o\n");
    conn
}

/// Echo round trips on a fresh WebSocket session, each bounded by the read timeout.
fn echo_round_trips(target: &Target, n: usize) {
    let mut socket = ws(target, &sid("other"));
    for i in 0..n {
        say(&mut socket, &format!("[\"ping {i}\"]"));
        assert_eq!(next(&mut socket), Some(format!("a[\"ping {i}\"]")));
    }
}

fn outgoing_overflow_setup(adapter: Adapter) -> (Target, Reports<Flooded>) {
    let config = Config {
        max_connection_queue_bytes: 256 * 1024,
        write_timeout: WRITE_TIMEOUT,
        ..config()
    };
    let options = Options {
        // Streams must not end on their own while they are flooded.
        response_limit: 1 << 30,
        ..options()
    };
    let reports = Reports::new();
    let target = serve(
        adapter,
        config,
        options,
        flood_handler(1024, 256 << 20, reports.sender()),
    );
    (target, reports)
}

/// The flood was refused once the connection's queue was as good as full (never pushed
/// past it), and the blocked write's timeout then dropped the client.
fn check_dropped(flooded: &Flooded, adapter: Adapter) {
    assert!(flooded.refused > 0, "{adapter:?}: {flooded:?}");
    assert!(flooded.accepted < 256 << 20, "{adapter:?}: {flooded:?}");
    assert_eq!(
        flooded.reason,
        Some(CloseReason::Aborted),
        "{adapter:?}: {flooded:?}"
    );
    assert!(
        matches!(
            flooded.error,
            Some(SendError::UnknownSession | SendError::NotOpen)
        ),
        "{adapter:?}: {flooded:?}"
    );
}

#[test]
fn a_websocket_client_that_never_reads_is_refused_past_the_connection_queue_then_dropped() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, reports) = outgoing_overflow_setup(adapter);
            let mut stuck = stuck_ws(&target, &sid("flood"));
            // Other sessions keep working meanwhile.
            echo_round_trips(&target, 20);
            let flooded = reports.next();
            check_dropped(&flooded, adapter);
            echo_round_trips(&target, 5);
            // The connection ends (once what the kernel holds is read).
            assert!(ends_within(stuck.get_mut(), WAIT), "{adapter:?}");
        }
    });
}

#[test]
fn an_xhr_streaming_reader_that_never_reads_is_refused_past_the_connection_queue_then_dropped() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, reports) = outgoing_overflow_setup(adapter);
            let stuck = stuck_stream(&target, &sid("flood"));
            echo_round_trips(&target, 20);
            let flooded = reports.next();
            check_dropped(&flooded, adapter);
            echo_round_trips(&target, 5);
            let (mut socket, _) = stuck.into_stream();
            assert!(ends_within(&mut socket, WAIT), "{adapter:?}");
        }
    });
}

/// The write timeout in these tests: long enough that the handler has queued its whole
/// burst before it fires, on a busy machine too (the client stops reading at once).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

fn write_timeout_setup(adapter: Adapter) -> (Target, Reports<Flooded>) {
    let config = Config {
        write_timeout: WRITE_TIMEOUT,
        // Room for the whole burst: only the write timeout can end it.
        max_connection_queue_bytes: 64 << 20,
        ..config()
    };
    let options = Options {
        response_limit: 1 << 30,
        ..options()
    };
    let reports = Reports::new();
    // 16 MiB: more than the kernel's buffers between a small-window client and the server.
    let target = serve(
        adapter,
        config,
        options,
        flood_handler(64 * 1024, 16 << 20, reports.sender()),
    );
    (target, reports)
}

fn check_timed_out(flooded: &Flooded, adapter: Adapter) {
    println!(
        "{adapter:?}: dropped {:?} after the last send",
        flooded.after_last_send
    );
    assert_eq!(flooded.error, None, "{adapter:?}: the burst fit the queue");
    assert_eq!(flooded.accepted, 16 << 20);
    assert_eq!(flooded.reason, Some(CloseReason::Aborted), "{adapter:?}");
    // About the write timeout (plus the close linger on a WebSocket); loosely bounded.
    assert!(
        flooded.after_last_send < WRITE_TIMEOUT + Duration::from_secs(6),
        "{adapter:?}: {flooded:?}"
    );
}

#[test]
fn a_websocket_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, reports) = write_timeout_setup(adapter);
            let mut stuck = stuck_ws(&target, &sid("flood"));
            echo_round_trips(&target, 20);
            let flooded = reports.next();
            check_timed_out(&flooded, adapter);
            echo_round_trips(&target, 5);
            assert!(ends_within(stuck.get_mut(), WAIT), "{adapter:?}");
        }
    });
}

#[test]
fn an_xhr_streaming_reader_that_stops_reading_is_dropped_after_the_write_timeout() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (target, reports) = write_timeout_setup(adapter);
            let stuck = stuck_stream(&target, &sid("flood"));
            echo_round_trips(&target, 20);
            let flooded = reports.next();
            check_timed_out(&flooded, adapter);
            echo_round_trips(&target, 5);
            let (mut socket, _) = stuck.into_stream();
            assert!(ends_within(&mut socket, WAIT), "{adapter:?}");
        }
    });
}

// ---------------------------------------------------------------------------------------
// The delivery wait
// ---------------------------------------------------------------------------------------

/// The echo service at `/app` and another at `prefix` with `options`, on one server.
fn beside_app(adapter: Adapter, prefix: &str, options: Options) -> Target {
    start_services(
        adapter,
        config(),
        vec![
            Mount::new("/app", self::options(), echo_handler()),
            Mount::new(prefix, options, echo_handler()),
        ],
    )
}

fn echo_handler() -> Handler {
    handler(sockjs_core::driver::suite::App::Echo.runner())
}

/// Never reads, holds the session until it ends.
fn stuck_handler() -> Handler {
    handler(|session: Session| async move { session.closed().await })
}

/// sockjs-rs's readings of §6 and §5.2: an element of a send that is not a string reaches
/// the application as its JSON text, and a lone surrogate escape as U+FFFD (echoed here,
/// so the client reads them back).
#[test]
fn s6_non_string_elements_and_lone_surrogates_reach_the_application_as_documented() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = serve(adapter, config(), options(), echo_handler());
            let id = sid("elements");
            assert_eq!(xhr(&target, &id), "o\n");
            let body = r#"[1,{"a":2},"a\ud800b"]"#;
            assert_eq!(xhr_send(&target, &id, body), 204, "{adapter:?}");
            let messages = a_frame(&xhr(&target, &id));
            assert_eq!(messages, ["1", r#"{"a":2}"#, "a\u{FFFD}b"], "{adapter:?}");
        }
    });
}

/// sockjs-rs's CORS (PROTOCOL.md §3.3 notes), over sockets: an EventSource for a page of
/// another origin gets CORS with credentials, and every answer with CORS varies by
/// `Origin` (`/info` without one too); the greeting, which has none, does not.
#[test]
fn s3_3_cors_on_eventsource_and_vary_origin_on_every_cors_answer() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = serve(adapter, config(), options(), echo_handler());
            let mut conn = target.conn();
            let request = Request::new("GET", &path(&sid("es"), "eventsource"))
                .header("Origin", "https://page.example");
            conn.send(&request).unwrap();
            let head = conn.read_head().unwrap();
            assert_eq!(head.status, 200, "{adapter:?}");
            let cors = [
                ("access-control-allow-origin", "https://page.example"),
                ("access-control-allow-credentials", "true"),
                ("vary", "Origin"),
            ];
            for (name, value) in cors {
                assert_eq!(head.header(name), Some(value), "{adapter:?}: {name}");
            }
            let info = target.request(&Request::new("GET", "/app/info"));
            assert_eq!(info.header("vary"), Some("Origin"), "{adapter:?}: /info");
            let greeting = target.request(&Request::new("GET", "/app"));
            assert_eq!(greeting.status(), 200, "{adapter:?}");
            assert_eq!(greeting.header("vary"), None, "{adapter:?}: the greeting");
        }
    });
}

#[test]
fn an_xhr_send_is_answered_once_the_echo_is_queued() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = serve(adapter, config(), options(), echo_handler());
            let id = sid("echo");
            assert_eq!(xhr(&target, &id), "o\n");
            let mut conn = target.conn();
            for i in 0..50 {
                for body in [format!("[\"a{i}\"]"), format!("[\"b{i}\",\"c{i}\"]")] {
                    let request = Request::new("POST", &path(&id, "xhr_send")).body(body);
                    assert_eq!(conn.roundtrip(&request).unwrap().status(), 204);
                }
                // Every echo is queued before the sends were answered: one poll gets all.
                let poll = conn
                    .roundtrip(&Request::new("POST", &path(&id, "xhr")))
                    .unwrap();
                assert_eq!(
                    poll.text(),
                    format!("a[\"a{i}\",\"b{i}\",\"c{i}\"]\n"),
                    "{adapter:?} round {i}"
                );
            }
        }
    });
}

/// How long an xhr_send to an application that never reads takes to be answered.
fn send_to_stuck(adapter: Adapter, wait: Duration) -> Duration {
    let config = Config {
        delivery_wait: wait,
        ..config()
    };
    let target = serve(adapter, config, options(), stuck_handler());
    let id = sid("stuck");
    // A receiver stays attached, so the session does not time out meanwhile.
    let _receiver = stream(&target, &id);
    let mut conn = target.conn();
    let request = Request::new("POST", &path(&id, "xhr_send")).body(r#"["x"]"#);
    let started = Instant::now();
    assert_eq!(conn.roundtrip(&request).unwrap().status(), 204);
    started.elapsed()
}

#[test]
fn with_a_zero_delivery_wait_a_send_is_answered_at_once() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let took = send_to_stuck(adapter, Duration::ZERO);
            // Far below the 2 s a held send would take (see the next test).
            assert!(took < Duration::from_millis(1500), "{adapter:?}: {took:?}");
        }
    });
}

#[test]
fn a_send_to_an_application_that_never_reads_is_answered_after_the_delivery_wait() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let wait = Duration::from_secs(2);
            let took = send_to_stuck(adapter, wait);
            assert!(took >= wait, "{adapter:?}: {took:?}");
            assert!(
                took < wait + Duration::from_secs(4),
                "{adapter:?}: {took:?}"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------
// Request timeouts and head limits
// ---------------------------------------------------------------------------------------

/// The head and body read timeouts in these tests.
const READ_TIMEOUT: Duration = Duration::from_millis(400);

fn timeouts_target(adapter: Adapter) -> Target {
    let config = Config {
        header_read_timeout: READ_TIMEOUT,
        body_read_timeout: READ_TIMEOUT,
        max_head_bytes: 4096,
        max_headers: 20,
        ..config()
    };
    serve(adapter, config, options(), echo_handler())
}

fn connect(target: &Target) -> TcpStream {
    let stream = TcpStream::connect(target.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Whether the server has closed the connection (EOF or reset), waiting at most `limit`;
/// whatever arrives before is returned too.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> (bool, Vec<u8>) {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (false, got);
            }
            Err(_) => return (true, got),
        }
        if Instant::now() >= deadline {
            return (false, got);
        }
    }
}

#[test]
fn a_head_that_trickles_in_is_cut_after_the_header_read_timeout() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = timeouts_target(adapter);
            // Before the connect: the server counts the head's time from the accept.
            let started = Instant::now();
            let mut stream = connect(&target);
            stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            stream
                .write_all(b"GET /app HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            // One byte of one header value every 100 ms: never too large, never done.
            let mut closed = false;
            let mut answer = Vec::new();
            while started.elapsed() < Duration::from_secs(5) {
                if stream.write_all(b"a").is_err() {
                    closed = true;
                    break;
                }
                let mut buf = [0u8; 1024];
                match stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            let took = started.elapsed();
            println!("{adapter:?}: trickling head cut after {took:?}");
            assert!(closed, "{adapter:?}: still open after {took:?}");
            assert!(took >= READ_TIMEOUT, "{adapter:?}: {took:?}");
            assert!(took < Duration::from_secs(3), "{adapter:?}: {took:?}");
            assert!(
                !answer.starts_with(b"HTTP/1.1 200"),
                "{adapter:?}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
    });
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = timeouts_target(adapter);
            // After a response.
            let mut conn = target.conn();
            // Timed from before the request: the server's clock starts at the end of its
            // response, no sooner.
            let started = Instant::now();
            let response = conn.roundtrip(&Request::new("GET", "/app")).unwrap();
            assert_eq!(response.text(), "Welcome to SockJS!\n");
            let (mut socket, _) = conn.into_stream();
            let (closed, extra) = closed_within(&mut socket, Duration::from_secs(3));
            assert!(closed && extra.is_empty(), "{adapter:?}: {extra:?}");
            assert!(
                started.elapsed() >= READ_TIMEOUT - Duration::from_millis(50),
                "{adapter:?}: {:?}",
                started.elapsed()
            );
            // A connection that never sends anything (its clock starts at the accept).
            let started = Instant::now();
            let mut silent = connect(&target);
            let (closed, extra) = closed_within(&mut silent, Duration::from_secs(3));
            assert!(closed && extra.is_empty(), "{adapter:?}: {extra:?}");
            assert!(started.elapsed() >= READ_TIMEOUT - Duration::from_millis(50));
        }
    });
}

/// Each wait for a request has its own deadline, counted from the end of the response
/// before it: a connection asking again within the timeout, time after time, stays open
/// for longer than one timeout, and is closed one timeout after its last response.
#[test]
fn the_header_read_timeout_restarts_after_every_response() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = timeouts_target(adapter);
            let mut conn = target.conn();
            let started = Instant::now();
            // Short gaps, so that a stalled test thread does not outlast the timeout.
            let last = loop {
                std::thread::sleep(READ_TIMEOUT / 4);
                // Before the request: the server's clock starts at the end of its response.
                let sent = Instant::now();
                let response = conn.roundtrip(&Request::new("GET", "/app")).unwrap();
                assert_eq!(response.text(), "Welcome to SockJS!\n", "{adapter:?}");
                if started.elapsed() >= READ_TIMEOUT * 3 {
                    break sent;
                }
            };
            let (mut socket, _) = conn.into_stream();
            let (closed, extra) = closed_within(&mut socket, Duration::from_secs(3));
            assert!(closed && extra.is_empty(), "{adapter:?}: {extra:?}");
            assert!(
                last.elapsed() >= READ_TIMEOUT - Duration::from_millis(50),
                "{adapter:?}: closed {:?} after the last response",
                last.elapsed()
            );
        }
    });
}

#[test]
fn a_body_that_stops_midway_gets_408_and_a_close_after_the_body_read_timeout() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = timeouts_target(adapter);
            let id = sid("body");
            assert_eq!(xhr(&target, &id), "o\n");
            let mut conn = target.conn();
            let started = Instant::now();
            conn.write_raw(
                format!(
                    "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[\"abc",
                    path(&id, "xhr_send")
                )
                .as_bytes(),
            )
            .unwrap();
            let response = conn.read_response("POST").unwrap_or_else(|e| {
                panic!("{adapter:?}: no 408 after {:?}: {e}", started.elapsed())
            });
            let took = started.elapsed();
            assert_eq!(response.status(), 408, "{adapter:?}");
            assert!(took >= READ_TIMEOUT, "{adapter:?}: {took:?}");
            assert!(took < Duration::from_secs(3), "{adapter:?}: {took:?}");
            let (mut socket, rest) = conn.into_stream();
            assert!(rest.is_empty());
            let (closed, extra) = closed_within(&mut socket, Duration::from_secs(3));
            assert!(closed && extra.is_empty(), "{adapter:?}: {extra:?}");
        }
    });
}

/// A `GET /app` head of exactly `len` bytes.
fn head_of(len: usize) -> String {
    let bare = "GET /app HTTP/1.1\r\nHost: x\r\nX-Long: \r\n\r\n";
    format!(
        "GET /app HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "a".repeat(len - bare.len())
    )
}

/// A `GET /app` head with `n` header fields (`Host` included).
fn head_with(n: usize) -> String {
    let mut head = String::from("GET /app HTTP/1.1\r\nHost: x\r\n");
    for i in 1..n {
        head.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    head + "\r\n"
}

#[test]
fn a_head_over_max_head_bytes_or_max_headers_gets_431_and_a_target_over_it_414() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            // max_head_bytes 4096 and max_headers 20, counted the same way on both.
            let target = timeouts_target(adapter);
            let status = |head: String| support::raw_status(target.addr, head.as_bytes()).0;
            assert_eq!(status(head_of(4096)), 200, "{adapter:?}");
            assert_eq!(status(head_of(4097)), 431, "{adapter:?}");
            assert_eq!(status(head_of(9000)), 431, "{adapter:?}");
            assert_eq!(status(head_with(20)), 200, "{adapter:?}");
            assert_eq!(status(head_with(21)), 431, "{adapter:?}");
            assert_eq!(status(head_with(50)), 431, "{adapter:?}");
            // RFC 9112 §3: a request line that alone is over the bound, 414.
            let long = format!("GET /app/{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5000));
            assert_eq!(status(long), 414, "{adapter:?}");
        }
    });
}

// ---------------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------------

#[test]
fn graceful_shutdown_closes_sessions_with_1001_and_refuses_new_requests() {
    within(LIMIT, || {
        let defaults = Config::default();
        assert_eq!(defaults.shutdown_code, 1001);
        assert_eq!(defaults.shutdown_reason, "Server shutting down");
        let shutting_down = close_frame(1001, "Server shutting down");
        for adapter in ADAPTERS {
            let reports = Reports::new();
            let tx = reports.sender();
            let target = serve(
                adapter,
                config(),
                options(),
                handler(move |mut session: Session| {
                    let tx = tx.clone();
                    async move {
                        while let Some(text) = session.recv().await {
                            let _ = session.send(text).await;
                        }
                        let _ = tx.send(session.close_reason());
                    }
                }),
            );
            let mut streaming = stream(&target, &sid("down"));
            let mut socket = ws(&target, &sid("down"));
            let mut idle = target.conn();
            assert_eq!(
                idle.roundtrip(&Request::new("GET", "/app"))
                    .unwrap()
                    .status(),
                200
            );

            target.shutdown();
            assert_eq!(
                chunk_text(&mut streaming),
                shutting_down.clone() + "\n",
                "{adapter:?}"
            );
            assert_eq!(streaming.read_chunk().unwrap(), b"", "the stream ends");
            assert_eq!(next(&mut socket), Some(shutting_down.clone()));
            assert_eq!(
                next(&mut socket).as_deref(),
                Some("close 1000 Normal closure")
            );
            let closed = closed_with(1001, "Server shutting down");
            assert_eq!(reports.next(), closed);
            assert_eq!(reports.next(), closed);

            // The listener is closed, or new requests are refused.
            match TcpStream::connect(target.addr) {
                Err(e) => println!("{adapter:?}: a new connection: {e}"),
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(3)))
                        .unwrap();
                    let mut conn = Conn::new(stream, &target.host());
                    match conn.roundtrip(&Request::new("GET", "/app")) {
                        Ok(response) => assert_eq!(response.status(), 503, "{adapter:?}"),
                        Err(e) => println!("{adapter:?}: a new request: {e}"),
                    }
                }
            }
            // An idle keep-alive connection is closed, or refuses its next request.
            idle.set_read_timeout(Duration::from_secs(3)).unwrap();
            match idle.roundtrip(&Request::new("GET", "/app")) {
                Ok(response) => assert_eq!(response.status(), 503, "{adapter:?}"),
                Err(e) => println!("{adapter:?}: the idle connection: {e}"),
            }
        }
    });
}

/// A WebSocket that would open a session while the service drains is upgraded and closed
/// with the shutdown's code and reason (as an admission refusal is), also when the service
/// is mounted under a prefix: the refusal reads the request's path without it.
#[test]
fn graceful_shutdown_refuses_a_new_websocket_with_the_shutdown_close() {
    use tungstenite::client::IntoClientRequest as _;
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = serve(
                adapter,
                config(),
                options(),
                handler(|mut session: Session| async move {
                    while session.recv().await.is_some() {}
                    // Holds the drain open for a while after the session closed.
                    sleep(Duration::from_secs(3)).await;
                }),
            );
            let poll = Request::new("POST", &path(&sid("hold"), "xhr"));
            assert_eq!(target.request(&poll).text(), "o\n", "{adapter:?}");
            // A kept-alive connection from before the shutdown: the listener may be closed.
            let mut early = target.conn();
            let greeting = early.roundtrip(&Request::new("GET", "/app")).unwrap();
            assert_eq!(greeting.status(), 200, "{adapter:?}");

            target.shutdown();
            // The signal takes effect on the server's own task, its listener closed just
            // before the services drain: an upgrade sent before that would open a session.
            let deadline = Instant::now() + WAIT;
            while TcpStream::connect(target.addr).is_ok() && Instant::now() < deadline {
                sleep_blocking(Duration::from_millis(10));
            }
            let (stream, _) = early.into_stream();
            let url = target.url(&path(&sid("late"), "websocket"));
            let (mut socket, answer) =
                tungstenite::client(url.into_client_request().unwrap(), stream)
                    .unwrap_or_else(|e| panic!("{adapter:?}: no upgrade: {e}"));
            assert_eq!(answer.status(), 101, "{adapter:?}");
            assert_eq!(
                next(&mut socket),
                Some(close_frame(1001, "Server shutting down")),
                "{adapter:?}"
            );
            assert_eq!(
                next(&mut socket).as_deref(),
                Some("close 1000 Normal closure"),
                "{adapter:?}"
            );
        }
    });
}

#[test]
fn graceful_shutdown_lets_a_polling_client_collect_its_close_frame_on_a_kept_alive_connection() {
    within(LIMIT, || {
        let shutting_down = close_frame(1001, "Server shutting down") + "\n";
        for adapter in ADAPTERS {
            let closing = Options {
                disconnect_delay: Duration::from_millis(1000),
                ..options()
            };
            let target = serve(adapter, config(), closing, echo_handler());
            let id = sid("collect");
            let poll = Request::new("POST", &path(&id, "xhr"));
            let mut polling = target.conn();
            assert_eq!(polling.roundtrip(&poll).unwrap().text(), "o\n");
            let mut idle = target.conn();
            let mut spare = target.conn();
            for conn in [&mut idle, &mut spare] {
                let greeting = conn.roundtrip(&Request::new("GET", "/app")).unwrap();
                assert_eq!(greeting.status(), 200, "{adapter:?}");
            }

            // Between two polls when shutdown starts: the next poll, on the connection
            // the client kept alive, still gets the close frame (the listener is closed,
            // so a new connection could not), and again while the session is closing.
            target.shutdown();
            for _ in 0..2 {
                let response = polling.roundtrip(&poll).unwrap();
                assert_eq!(
                    (response.status(), response.text()),
                    (200, shutting_down.clone()),
                    "{adapter:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
            // No new session: 503, which a balancer may retry on another node.
            let opening = polling
                .roundtrip(&Request::new("POST", &path(&sid("late"), "xhr")))
                .unwrap();
            assert_eq!(
                (opening.status(), opening.text().as_str()),
                (503, "Server shutting down.\n"),
                "{adapter:?}"
            );
            // Nor anything but a session's own requests; the connection closes after it.
            let greeting = idle
                .roundtrip(&Request::new("GET", "/app"))
                .unwrap_or_else(|e| panic!("{adapter:?}: {e}"));
            assert_eq!(greeting.status(), 503, "{adapter:?}");
            idle.set_read_timeout(Duration::from_secs(3)).unwrap();
            assert!(idle.is_closed().unwrap(), "{adapter:?}");

            // Once the session expired, idle connections close and serve returns.
            assert!(
                wait_for(WAIT, || target.has_ended()),
                "{adapter:?}: serve still running"
            );
            for conn in [&mut polling, &mut spare] {
                conn.set_read_timeout(Duration::from_secs(3)).unwrap();
                assert!(
                    conn.is_closed().unwrap(),
                    "{adapter:?}: idle connection open"
                );
            }
        }
    });
}

#[test]
fn graceful_shutdown_closes_every_shard_at_once_so_no_parked_poll_takes_a_goodbye() {
    within(LIMIT, || {
        let shutting_down = close_frame(1001, "Server shutting down") + "\n";
        for adapter in ADAPTERS {
            // What a chat does when someone leaves: tell everyone else. Were the shards
            // closed one after another, a handler whose session closed first would reach
            // sessions still open on a later shard, and their parked polls would take the
            // goodbye instead of the close frame (and poll again, which a node going away
            // may no longer answer).
            let room: Arc<Mutex<Vec<SessionSender>>> = Arc::default();
            let members = room.clone();
            let goodbye = handler(move |mut session: Session| {
                let members = members.clone();
                async move {
                    members.lock().unwrap().push(session.sender());
                    while session.recv().await.is_some() {}
                    let others = members.lock().unwrap().clone();
                    for other in others {
                        let _ = other.try_send("left");
                    }
                }
            });
            let sharded = Config {
                shards: 4,
                ..config()
            };
            let target = serve(adapter, sharded, options(), goodbye);
            // WebSocket sessions end (and their handlers say goodbye) as soon as they are
            // closed; polling ones stay closing.
            let sockets: Vec<_> = (0..40).map(|_| ws(&target, &sid("leaver"))).collect();
            let ids: Vec<String> = (0..40).map(|_| sid("goodbye")).collect();
            for id in &ids {
                assert_eq!(xhr(&target, id), "o\n");
            }
            let mut polls: Vec<Conn> = ids
                .iter()
                .map(|id| {
                    let mut conn = target.conn();
                    conn.send(&Request::new("POST", &path(id, "xhr"))).unwrap();
                    conn
                })
                .collect();
            assert!(
                wait_for(WAIT, || target.open_requests() == ids.len() + sockets.len()),
                "{adapter:?}: polls not parked"
            );
            target.shutdown();
            let answers: Vec<_> = polls
                .iter_mut()
                .map(|poll| poll.read_response("POST").unwrap())
                .collect();
            for (id, response) in ids.iter().zip(answers) {
                assert_eq!(response.text(), shutting_down, "{adapter:?} {id}");
            }
            drop(sockets);
            room.lock().unwrap().clear();
        }
    });
}

#[test]
fn graceful_shutdown_waits_for_sessions_and_handlers_up_to_the_timeout() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            // A closed HTTP session stays CLOSING for its disconnect delay (a client that
            // polls again gets the close frame); `serve` returns once it is gone.
            let closing = Options {
                disconnect_delay: Duration::from_millis(500),
                ..options()
            };
            let target = serve(adapter, config(), closing, echo_handler());
            let id = sid("drain");
            assert_eq!(xhr(&target, &id), "o\n");
            target.shutdown();
            assert!(
                wait_for(WAIT, || target.has_ended()),
                "{adapter:?}: serve still running"
            );
            assert_eq!(
                target.session_count(),
                0,
                "{adapter:?}: ended with a session"
            );

            // A handler that never ends holds the shutdown until its timeout, no longer.
            let timeout = Duration::from_millis(800);
            let bounded = Config {
                shutdown_timeout: timeout,
                ..config()
            };
            let quick = Options {
                disconnect_delay: Duration::from_millis(50),
                ..options()
            };
            let stuck = handler(|session: Session| async move {
                let _held = session;
                std::future::pending::<()>().await
            });
            let target = serve(adapter, bounded, quick, stuck);
            assert_eq!(xhr(&target, &sid("stuck")), "o\n");
            let started = Instant::now();
            target.shutdown();
            assert!(
                wait_for(WAIT, || target.has_ended()),
                "{adapter:?}: serve still running past its shutdown timeout"
            );
            let waited = started.elapsed();
            assert!(waited >= timeout, "{adapter:?}: gave up after {waited:?}");
        }
    });
}

#[test]
fn graceful_shutdown_ends_websockets_before_serve_returns() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            // A client that never answers the close: the socket lingers for its close
            // frame, and the shutdown waits for that, then ends it; never after `serve`
            // returned (a `main` that returns would cut it mid-close).
            let linger = Config {
                close_linger: Duration::from_millis(300),
                ..config()
            };
            let target = serve(adapter, linger, options(), echo_handler());
            let mut socket = ws(&target, &sid("linger"));
            target.shutdown();
            assert!(
                wait_for(WAIT, || target.has_ended()),
                "{adapter:?}: serve still running"
            );
            let stream = socket.get_mut();
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut sent = Vec::new();
            let mut buf = [0u8; 256];
            loop {
                match std::io::Read::read(stream, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => sent.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                    Err(e) => panic!("{adapter:?}: the socket outlived serve: {e}"),
                }
            }
            let text = String::from_utf8_lossy(&sent);
            assert!(
                text.contains("c[1001,\"Server shutting down\"]"),
                "{adapter:?}: {text:?}"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------
// Binary WebSocket messages
// ---------------------------------------------------------------------------------------

fn reason_reporting_echo(tx: Sender<Option<CloseReason>>) -> Handler {
    handler(move |mut session: Session| {
        let tx = tx.clone();
        async move {
            while let Some(text) = session.recv().await {
                let _ = session.send(text).await;
            }
            let _ = tx.send(session.close_reason());
        }
    })
}

#[test]
fn a_binary_websocket_message_that_is_utf8_counts_as_text() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let reports = Reports::new();
            let target = serve(
                adapter,
                config(),
                options(),
                reason_reporting_echo(reports.sender()),
            );
            let mut socket = ws(&target, &sid("bin"));
            socket
                .send(Message::binary(r#"["hé"]"#.as_bytes().to_vec()))
                .unwrap();
            match socket.read().unwrap() {
                Message::Text(text) => assert_eq!(text.as_str(), r#"a["hé"]"#),
                other => panic!("{adapter:?}: {other:?}"),
            }

            let mut raw = target.raw_ws("/app/websocket", &[]);
            raw.send(Message::binary("naïve [\"x\"]".as_bytes().to_vec()))
                .unwrap();
            match raw.read().unwrap() {
                Message::Text(text) => assert_eq!(text.as_str(), "naïve [\"x\"]"),
                other => panic!("{adapter:?}: {other:?}"),
            }
            assert!(
                reports.none_for(Duration::from_millis(100)),
                "both still open"
            );
        }
    });
}

#[test]
fn a_binary_websocket_message_that_is_not_utf8_closes_3000_or_1003() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let reports = Reports::new();
            let target = serve(
                adapter,
                config(),
                options(),
                reason_reporting_echo(reports.sender()),
            );
            let mut socket = ws(&target, &sid("bin"));
            socket
                .send(Message::binary(vec![0xff, 0xfe, 0x00]))
                .unwrap();
            assert_eq!(
                next(&mut socket).as_deref(),
                Some("close 3000 Broken framing."),
                "{adapter:?}"
            );
            assert_eq!(reports.next(), Some(CloseReason::BrokenFraming));

            let mut raw = target.raw_ws("/app/websocket", &[]);
            raw.send(Message::binary(vec![b'a', 0xc3])).unwrap();
            assert_eq!(
                next(&mut raw).as_deref(),
                Some("close 1003 Unsupported data"),
                "{adapter:?}"
            );
            assert_eq!(reports.next(), Some(CloseReason::UnsupportedData));
        }
    });
}

// ---------------------------------------------------------------------------------------
// Hixie-76
// ---------------------------------------------------------------------------------------

const KEY1: &str = "4 @1  46546xW%0l 1 5";
const KEY2: &str = "12998 5 Y3 1  .P00";

fn hixie_head(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: example.com\r\nUpgrade: WebSocket\r\n\
         Connection: Upgrade\r\nOrigin: http://example.com\r\n\
         Sec-WebSocket-Key1: {KEY1}\r\nSec-WebSocket-Key2: {KEY2}\r\n\r\n"
    )
}

#[test]
fn hixie76_key3_in_the_same_write_as_the_head_is_answered() {
    within(LIMIT, || {
        let answer = conformance::ws::hixie76_answer(KEY1, KEY2, b"aaaaaaaa").unwrap();
        for adapter in ADAPTERS {
            let options = Options {
                hixie76: true,
                ..options()
            };
            let mounts = vec![
                Mount::new("/app", options.clone(), echo_handler()),
                Mount::new(
                    "/close",
                    options,
                    handler(sockjs_core::driver::suite::App::Close.runner()),
                ),
            ];
            let target = start_services(adapter, config(), mounts);

            // SockJS framing: head, key3 and a first frame in one write.
            let id = sid("hixie");
            let mut conn = target.conn();
            let mut bytes = hixie_head(&path(&id, "websocket")).into_bytes();
            bytes.extend_from_slice(b"aaaaaaaa\x00[\"x\"]\xff");
            conn.write_raw(&bytes).unwrap();
            let head = conn.read_head().unwrap();
            assert_eq!(head.status, 101, "{adapter:?}");
            assert_eq!(head.reason, "WebSocket Protocol Handshake");
            assert_eq!(
                head.header("sec-websocket-location").map(str::to_owned),
                Some(format!("ws://example.com{}", path(&id, "websocket")))
            );
            assert_eq!(conn.read_exact_bytes(16).unwrap(), answer, "{adapter:?}");
            assert_eq!(conn.read_exact_bytes(3).unwrap(), b"\x00o\xff");
            assert_eq!(conn.read_exact_bytes(8).unwrap(), b"\x00a[\"x\"]\xff");
            // The client's close frame is answered, then the connection ends.
            conn.write_raw(&[0xff, 0x00]).unwrap();
            assert_eq!(conn.read_exact_bytes(2).unwrap(), [0xff, 0x00]);
            assert!(conn.is_closed().unwrap());

            // RFC 9112 §3.2.2: an absolute-form target's authority, not the Host field, says
            // where the socket is.
            let id = sid("hixie-absolute");
            let mut conn = target.conn();
            let absolute = format!("http://good.example:81{}", path(&id, "websocket"));
            let mut bytes = hixie_head(&absolute).into_bytes();
            bytes.extend_from_slice(b"aaaaaaaa");
            conn.write_raw(&bytes).unwrap();
            let head = conn.read_head().unwrap();
            assert_eq!(head.status, 101, "{adapter:?}");
            assert_eq!(
                head.header("sec-websocket-location").map(str::to_owned),
                Some(format!("ws://good.example:81{}", path(&id, "websocket"))),
                "{adapter:?}"
            );

            // Raw WebSocket whose application closes at once.
            let mut conn = target.conn();
            let mut bytes = hixie_head("/close/websocket").into_bytes();
            bytes.extend_from_slice(b"aaaaaaaa");
            conn.write_raw(&bytes).unwrap();
            assert_eq!(conn.read_head().unwrap().status, 101);
            assert_eq!(conn.read_exact_bytes(16).unwrap(), answer, "{adapter:?}");
            let (mut socket, rest) = conn.into_stream();
            let (closed, more) = closed_within(&mut socket, Duration::from_secs(5));
            let mut tail = rest;
            tail.extend_from_slice(&more);
            assert!(closed, "{adapter:?}");
            assert_eq!(tail, [0xff, 0x00], "{adapter:?}: just the close frame");
        }
    });
}

/// A hixie-76 socket to session `id` of `/app`, past its handshake and open frame.
fn hixie_open(target: &Target, id: &str) -> conformance::http::Conn {
    let answer = conformance::ws::hixie76_answer(KEY1, KEY2, b"aaaaaaaa").unwrap();
    let mut conn = target.conn();
    let mut bytes = hixie_head(&path(id, "websocket")).into_bytes();
    bytes.extend_from_slice(b"aaaaaaaa");
    conn.write_raw(&bytes).unwrap();
    assert_eq!(conn.read_head().unwrap().status, 101);
    assert_eq!(conn.read_exact_bytes(16).unwrap(), answer);
    assert_eq!(conn.read_exact_bytes(3).unwrap(), b"\x00o\xff");
    conn
}

/// Hixie-76 sockets get the same backpressure as RFC 6455 ones
/// (`Config::max_session_inbound_bytes`): a client that writes faster than the application
/// reads is no longer read, not closed.
#[test]
fn a_fast_hixie76_writer_is_slowed_not_closed() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let options = Options {
                hixie76: true,
                ..options()
            };
            let (target, reports) = serve_reporting(adapter, small_inbound(), options, |tx| {
                slow_reader(10_000, tx)
            });
            let mut conn = hixie_open(&target, &sid("hixiewriter"));
            // 10,000 frames in writes of 100: far past the 4 KiB bound at once.
            for chunk in 0..100 {
                let mut frames = Vec::new();
                for n in chunk * 100..(chunk + 1) * 100 {
                    frames.push(0x00);
                    frames.extend_from_slice(format!("[\"{n}\"]").as_bytes());
                    frames.push(0xff);
                }
                conn.write_raw(&frames).unwrap();
            }
            let taken = reports.next();
            assert_eq!(
                (taken.count, taken.in_order, taken.reason),
                (10_000, true, None),
                "{adapter:?}"
            );
            let took = b"\x00a[\"took 10000\"]\xff";
            assert_eq!(conn.read_exact_bytes(took.len()).unwrap(), took);
        }
    });
}

/// A hixie-76 socket held back for an application that takes nothing is closed with 1013
/// after the stall timeout, as an RFC 6455 one is.
#[test]
fn a_stuck_application_on_a_hixie76_socket_is_closed_after_the_stall_timeout() {
    within(LIMIT, || {
        let stall = Duration::from_millis(300);
        for adapter in ADAPTERS {
            let config = Config {
                inbound_stall_timeout: stall,
                ..small_inbound()
            };
            let options = Options {
                hixie76: true,
                ..options()
            };
            let (target, reports) =
                serve_reporting(adapter, config, options, |tx| slow_reader(0, tx));
            let mut conn = hixie_open(&target, &sid("deaf"));
            let started = Instant::now();
            let mut frames = Vec::new();
            frames.push(0x00);
            frames.extend_from_slice(numbers(0, 1000).as_bytes());
            frames.push(0xff);
            conn.write_raw(&frames).unwrap();
            let mut expected = vec![0x00];
            expected.extend_from_slice(
                close_frame(INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON).as_bytes(),
            );
            expected.push(0xff);
            assert_eq!(
                conn.read_exact_bytes(expected.len()).unwrap(),
                expected,
                "{adapter:?}"
            );
            assert!(started.elapsed() >= stall, "{adapter:?}");
            assert_eq!(
                reports.next().reason,
                closed_with(INBOUND_OVERFLOW_CODE, INBOUND_OVERFLOW_REASON)
            );
        }
    });
}

/// A hixie-76 message far over `max_message_size`, sent whole: the server closes the
/// session (1009, as a close frame) and goes on reading and dropping the rest after its
/// FIN, so the upload goes through and the client reads the close and a clean end, not a
/// reset that destroys it, as on RFC 6455 sockets.
#[test]
fn a_hixie76_message_too_big_is_drained_so_the_close_is_not_lost_to_a_reset() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let options = Options {
                hixie76: true,
                max_message_size: 1024,
                ..options()
            };
            let target = serve(adapter, config(), options, echo_handler());
            let conn = hixie_open(&target, &sid("hixiebig"));
            let (mut socket, _) = conn.into_stream();
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            // More than loopback's socket buffers hold: the server must read it.
            let mut message = vec![0x00];
            message.resize(4 * 1024 * 1024, b'x');
            let sent = socket.write_all(&message);
            assert!(sent.is_ok(), "{adapter:?}: the upload was cut: {sent:?}");
            socket.shutdown(std::net::Shutdown::Write).unwrap();
            let mut received = Vec::new();
            let end = socket.read_to_end(&mut received);
            assert!(end.is_ok(), "{adapter:?}: {end:?} after {received:?}");
            assert!(
                received.ends_with(b"\xff\x00"),
                "{adapter:?}: no close frame last in {:?}",
                String::from_utf8_lossy(&received)
            );
        }
    });
}

/// `Config::message_read_timeout` on hixie-76 sockets, as on RFC 6455 ones: messages
/// back to back, each split across writes so that no read ends between two, for longer
/// than the timeout, are all taken; a message begun and not finished is closed (the
/// close frame, then the end) once the timeout has passed since its first byte.
#[test]
fn a_hixie76_message_that_does_not_end_in_time_is_closed() {
    within(LIMIT, || {
        let timeout = Duration::from_millis(300);
        for adapter in ADAPTERS {
            let config = Config {
                message_read_timeout: timeout,
                ..config()
            };
            let options = Options {
                hixie76: true,
                ..options()
            };
            let (target, reports) =
                serve_reporting(adapter, config, options, |tx| slow_reader(usize::MAX, tx));
            let conn = hixie_open(&target, &sid("hixieslow"));
            let (mut socket, _) = conn.into_stream();
            let frame = |n: usize| {
                let mut frame = vec![0x00];
                frame.extend_from_slice(format!("[\"{n}\"]").as_bytes());
                frame.push(0xff);
                frame
            };
            socket.write_all(&frame(0)[..3]).unwrap();
            for n in 0..8 {
                sleep_blocking(Duration::from_millis(80));
                let mut write = frame(n)[3..].to_vec();
                write.extend_from_slice(&frame(n + 1)[..3]);
                socket.write_all(&write).unwrap();
            }
            // The ninth message is begun and never finished.
            let started = Instant::now();
            let (closed, tail) = closed_within(&mut socket, Duration::from_secs(5));
            let took = started.elapsed();
            assert!(closed, "{adapter:?}");
            assert_eq!(tail, [0xff, 0x00], "{adapter:?}: just the close frame");
            assert!(
                took >= timeout - Duration::from_millis(80) && took < Duration::from_secs(3),
                "{adapter:?}: closed after {took:?}"
            );
            let taken = reports.next();
            assert_eq!(
                (taken.count, taken.in_order, taken.reason),
                (8, true, Some(CloseReason::MessageTimeout)),
                "{adapter:?}"
            );
        }
    });
}

/// The time of a hixie-76 message left unfinished when its socket's reads were held back
/// (`max_session_inbound_bytes`) starts again when they resume: it is closed the timeout
/// after the application has made room, not never.
#[test]
fn a_hixie76_message_left_unfinished_behind_held_back_reads_is_closed_once_they_resume() {
    within(LIMIT, || {
        let timeout = Duration::from_millis(300);
        let held = Duration::from_millis(1000);
        for adapter in ADAPTERS {
            let config = Config {
                message_read_timeout: timeout,
                ..small_inbound()
            };
            let options = Options {
                hixie76: true,
                ..options()
            };
            let (target, reports) = serve_reporting(adapter, config, options, |tx| {
                handler(move |mut session: Session| {
                    let tx = tx.clone();
                    async move {
                        sleep(held).await;
                        let mut count = 0;
                        while session.recv().await.is_some() {
                            count += 1;
                        }
                        let reason = session.close_reason();
                        let _ = tx.send(Taken {
                            count,
                            in_order: true,
                            reason,
                        });
                    }
                })
            });
            let conn = hixie_open(&target, &sid("hixieheld"));
            let (mut socket, _) = conn.into_stream();
            // 200 messages (6,600 bytes as the inbound queue counts them, past its 4 KiB)
            // and the start of one more, in one read.
            let mut flood = Vec::new();
            for n in 0..200 {
                flood.push(0x00);
                flood.extend_from_slice(format!("[\"{n}\"]").as_bytes());
                flood.push(0xff);
            }
            flood.extend_from_slice(b"\x00[\"never ends");
            let started = Instant::now();
            socket.write_all(&flood).unwrap();
            let (closed, tail) = closed_within(&mut socket, Duration::from_secs(8));
            let took = started.elapsed();
            assert!(closed, "{adapter:?}");
            assert_eq!(tail, [0xff, 0x00], "{adapter:?}: just the close frame");
            assert!(took >= held, "{adapter:?}: closed after {took:?}");
            let taken = reports.next();
            assert_eq!(
                (taken.count, taken.reason),
                (200, Some(CloseReason::MessageTimeout)),
                "{adapter:?}"
            );
        }
    });
}

/// An upgrade refused (here hixie-76 to a service without it, and to one without
/// WebSockets) closes the connection after its answer: the bytes the client sent after its
/// head (hixie-76's key3) are not HTTP and must not be read as the next request.
#[test]
fn a_refused_upgrade_closes_the_connection_after_its_answer() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let no_websockets = Options {
                transports: sockjs_core::Transports::ALL
                    .without(sockjs_core::Transport::WebSocket)
                    .without(sockjs_core::Transport::RawWebSocket),
                ..options()
            };
            let target = beside_app(adapter, "/nows", no_websockets);
            for path in [path(&sid("refused"), "websocket"), "/nows/websocket".into()] {
                let mut conn = target.conn();
                let mut bytes = hixie_head(&path).into_bytes();
                bytes.extend_from_slice(b"aaaaaaaa");
                conn.write_raw(&bytes).unwrap();
                let response = conn.read_response("GET").unwrap();
                assert_ne!(response.status(), 101, "{adapter:?} {path}");
                // Said up front, so that a client does not send its next request there.
                let connection = response.header("connection").map(str::to_ascii_lowercase);
                assert_eq!(connection.as_deref(), Some("close"), "{adapter:?} {path}");
                assert!(conn.is_closed().unwrap(), "{adapter:?} {path}: still open");
            }
            // An HTTP/1.0 request's Upgrade is not an upgrade (RFC 9110 §7.8).
            let mut conn = target.conn();
            let head = format!(
                "GET {} HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                path(&sid("http10"), "websocket")
            );
            conn.write_raw(head.as_bytes()).unwrap();
            let response = conn.read_response("GET").unwrap();
            assert_eq!(response.status(), 400, "{adapter:?}");
            assert!(conn.is_closed().unwrap(), "{adapter:?}: still open");
        }
    });
}

/// On a server with several services whose body bounds differ, each holds the bodies sent
/// to it to its own `max_request_body` before it reads them: a declared length past the
/// small service's bound gets `413` at once, with no `100 Continue` (the client need not
/// send the body), and the connection closes; the same body goes to the other service.
#[test]
fn each_service_holds_bodies_to_its_own_bound_before_reading_them() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let small = Options {
                max_request_body: 1024,
                ..options()
            };
            let target = beside_app(adapter, "/small", small);
            let body = format!("[\"{}\"]", "x".repeat(4000));
            let mut conn = target.conn();
            let head = format!(
                "POST /small/000/{}/xhr_send HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
                 Content-Length: {}\r\n\r\n",
                sid("small"),
                body.len()
            );
            conn.write_raw(head.as_bytes()).unwrap();
            let response = conn.read_response("POST").unwrap();
            assert_eq!(response.status(), 413, "{adapter:?}: {}", response.text());
            assert!(conn.is_closed().unwrap(), "{adapter:?}: still open");
            let id = sid("big");
            assert_eq!(xhr(&target, &id), "o\n", "{adapter:?}");
            assert_eq!(xhr_send(&target, &id, &body), 204, "{adapter:?}");
        }
    });
}

/// An upgrade answered with anything but 101 closes the connection while the client may
/// still be sending what follows its head (hixie-76's key3 and its first frames; here a
/// lot of it): the server reads and drops it for its close linger (a lingering close,
/// RFC 9112 §9.6), so that it draws no reset that would destroy the answer before the
/// client reads it.
#[test]
fn a_refused_upgrade_is_a_lingering_close() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let target = start_services(
                adapter,
                config(),
                vec![Mount::new("/app", options(), echo_handler())],
            );
            let conn = target.conn();
            let (mut socket, _) = conn.into_stream();
            let mut bytes = hixie_head(&path(&sid("late"), "websocket")).into_bytes();
            bytes.resize(bytes.len() + 4 * 1024 * 1024, b'a');
            let sent = socket.write_all(&bytes);
            assert!(sent.is_ok(), "{adapter:?}: cut while sending: {sent:?}");
            socket.shutdown(std::net::Shutdown::Write).unwrap();
            let mut received = Vec::new();
            let end = socket.read_to_end(&mut received);
            let answer = String::from_utf8_lossy(&received);
            assert!(end.is_ok(), "{adapter:?}: {end:?}");
            assert!(answer.starts_with("HTTP/1.1 4"), "{adapter:?}: {answer}");
        }
    });
}

#[test]
fn a_burst_of_awaited_sends_on_a_stream_arrives_whole() {
    // `send().await` is the way not to lose messages to a slow client: a handler that
    // sends in a tight loop on a streaming receiver waits for the connection's writer, it
    // is not closed for outrunning it.
    const BURST: usize = 10_000;
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (tx, rx) = mpsc::channel();
            let bursting = handler(move |mut session: Session| {
                let tx = tx.clone();
                async move {
                    let mut failed = None;
                    for n in 0..BURST {
                        if let Err(e) = session.send(format!("tick {n}")).await {
                            failed = Some(format!("send {n}: {e}"));
                            break;
                        }
                    }
                    let _ = tx.send(failed);
                    while session.recv().await.is_some() {}
                }
            });
            let long = Options {
                response_limit: 64 * 1024 * 1024,
                ..options()
            };
            let target = serve(adapter, config(), long, bursting);
            let mut conn = stream(&target, &sid("burst"));
            let mut seen = 0;
            while seen < BURST {
                let chunk = conn.read_chunk().unwrap();
                assert!(
                    !chunk.is_empty(),
                    "{adapter:?}: the stream ended after {seen}"
                );
                let text = String::from_utf8(chunk).unwrap();
                assert!(
                    !text.starts_with('c'),
                    "{adapter:?}: closed after {seen}: {text}"
                );
                seen += text.matches("tick ").count();
            }
            assert_eq!(rx.recv_timeout(WAIT).unwrap(), None, "{adapter:?}");
        }
    });
}

#[test]
fn a_try_send_flood_is_refused_with_queue_full_not_closed() {
    // `try_send` never waits, so a loop of them outruns any connection: once the
    // connection's queue is as good as full, the rest are refused (`QueueFull`, as a
    // broadcast to a slow member is), and the session stays open.
    const FLOOD: usize = 20_000;
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (tx, rx) = mpsc::channel();
            let flooding = handler(move |mut session: Session| {
                let tx = tx.clone();
                async move {
                    while let Some(text) = session.recv().await {
                        if text != "flood" {
                            let _ = session.send(text).await;
                            continue;
                        }
                        let (mut sent, mut full, mut other) = (0, 0, None);
                        for n in 0..FLOOD {
                            match session.try_send(format!("f{n}")) {
                                Ok(()) => sent += 1,
                                Err(SendError::QueueFull) => full += 1,
                                Err(e) => {
                                    other = Some(e.to_string());
                                    break;
                                }
                            }
                        }
                        let _ = tx.send((sent, full, other));
                    }
                }
            });
            let target = serve(adapter, config(), options(), flooding);
            let mut socket = ws(&target, &sid("flood"));
            socket.send(Message::text(r#"["flood"]"#)).unwrap();
            let (sent, full, other) = rx.recv_timeout(WAIT).unwrap();
            assert_eq!(other, None, "{adapter:?}");
            assert_eq!(sent + full, FLOOD, "{adapter:?}");
            // Every message taken arrives, in order, and the session goes on.
            let mut seen = 0;
            while seen < sent {
                let text = next(&mut socket).unwrap();
                assert!(text.starts_with("a["), "{adapter:?}: after {seen}: {text}");
                seen += text.matches("\"f").count();
            }
            socket.send(Message::text(r#"["still here"]"#)).unwrap();
            assert_eq!(next(&mut socket).as_deref(), Some(r#"a["still here"]"#));
        }
    });
}
