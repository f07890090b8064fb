//! Robustness over real loopback sockets, against sockjs-smol and sockjs-tokio: the
//! security options, slow-consumer isolation and no message loss across aborted polls.
//!
//! The long no-loss variant (5000 aborts per adapter) runs with `SOCKJS_LONG_TESTS=1`:
//!
//! ```text
//! SOCKJS_LONG_TESTS=1 cargo test --release -p conformance --test robustness -- --nocapture
//! ```

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use conformance::http::Request;
use conformance::tls::ClientStream;
use sockjs_core::driver::Config;
use sockjs_core::{AbortPolicy, Options, OriginPolicy, SessionBinding};
use support::*;

// ---------------------------------------------------------------------------------------
// Security options.

fn origin_checks(target: &Target, good: &str, evil: &str) {
    let a = target.adapter;
    let path = session("sec");
    let xhr = |origin: Option<&str>| {
        let mut req = Request::new("POST", &format!("{}/xhr", session("sec")));
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        target.request(&req)
    };
    let refused = xhr(Some(evil));
    assert_eq!(refused.status(), 403, "{a:?}: xhr from {evil}");
    let allowed = xhr(Some(good));
    assert_eq!(allowed.status(), 200, "{a:?}: xhr from {good}");
    assert_eq!(allowed.header("access-control-allow-origin"), Some(good));
    assert_eq!(xhr(None).status(), 200, "{a:?}: no Origin (not a browser)");
    // CORS preflight.
    let preflight = |origin: &str| {
        target.request(
            &Request::new("OPTIONS", &format!("{path}/xhr_send"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST"),
        )
    };
    assert_eq!(
        preflight(evil).status(),
        403,
        "{a:?}: preflight from {evil}"
    );
    assert_eq!(
        preflight(good).status(),
        204,
        "{a:?}: preflight from {good}"
    );
    // WebSocket upgrades.
    let upgrade = |origin: &str| {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Origin: {origin}\r\n\r\n",
            format_args!("{}/websocket", session("secws"))
        );
        raw_status(target.addr, request.as_bytes()).0
    };
    assert_eq!(upgrade(evil), 403, "{a:?}: WebSocket from {evil}");
    assert_eq!(upgrade(good), 101, "{a:?}: WebSocket from {good}");
    // Raw WebSocket too.
    let raw = format!(
        "GET /echo/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: {evil}\r\n\r\n"
    );
    assert_eq!(
        raw_status(target.addr, raw.as_bytes()).0,
        403,
        "{a:?}: raw WebSocket"
    );
}

#[test]
fn origin_allow_list_and_predicate_cover_cors_and_websockets() {
    for adapter in ADAPTERS {
        let list = start(
            adapter,
            Settings::new(Options {
                origins: OriginPolicy::List(vec!["https://good.example".into()]),
                ..Options::default()
            }),
        );
        origin_checks(&list, "https://good.example", "https://evil.example");
        drop(list);
        let predicate = start(
            adapter,
            Settings::new(Options {
                origins: OriginPolicy::predicate(|o, _| {
                    o.strip_prefix("https://")
                        .is_some_and(|host| host.ends_with(".good.example"))
                }),
                ..Options::default()
            }),
        );
        origin_checks(
            &predicate,
            "https://app.good.example",
            "https://good.example.evil",
        );
    }
}

#[test]
fn a_panicking_origin_predicate_refuses_and_holds_nothing() {
    for adapter in ADAPTERS {
        let target = start(
            adapter,
            Settings::new(Options {
                origins: OriginPolicy::predicate(|origin, _| {
                    assert_ne!(origin, "https://boom.example", "the application's bug");
                    true
                }),
                ..Options::default()
            }),
        );
        for _ in 0..3 {
            let request =
                Request::new("POST", "/echo/000/boom/xhr").header("Origin", "https://boom.example");
            assert_eq!(target.request(&request).status(), 403, "{adapter:?}");
        }
        let request =
            Request::new("POST", "/echo/000/fine/xhr").header("Origin", "https://ok.example");
        assert_eq!(target.request(&request).text(), "o\n", "{adapter:?}");
        // Nothing held for the refused requests (their slots would keep a graceful
        // shutdown waiting for its whole timeout).
        assert!(
            wait_for(Duration::from_secs(5), || target.open_requests() == 0),
            "{adapter:?}: {} requests held",
            target.open_requests()
        );
    }
}

#[test]
fn htmlfile_frames_are_script_safe_and_script_responses_nosniff() {
    const XSS: &str = "</script><script>alert(1)</script><!--";
    for adapter in ADAPTERS {
        let target = start(adapter, Settings::new(Options::default()));
        let path = session("html");
        let mut html = target.conn();
        html.send(&Request::new("GET", &format!("{path}/htmlfile?c=cb")))
            .unwrap();
        let head = html.read_head().unwrap();
        assert_eq!(head.status, 200);
        let prelude = html.read_chunk().unwrap();
        assert!(prelude.len() > 1024);
        let open = String::from_utf8(html.read_chunk().unwrap()).unwrap();
        assert!(open.contains("p(\"o\")"), "{open}");
        let sent = target.request(
            &Request::new("POST", &format!("{path}/xhr_send")).body(serde_like_array(XSS)),
        );
        assert_eq!(sent.status(), 204);
        let frame = String::from_utf8(html.read_chunk().unwrap()).unwrap();
        let payload = frame
            .split_once("p(")
            .and_then(|(_, rest)| rest.rsplit_once(");"))
            .map(|(p, _)| p)
            .unwrap_or_else(|| panic!("{adapter:?}: frame {frame:?}"));
        assert!(!payload.contains('<'), "{adapter:?}: '<' in {payload}");
        assert!(payload.contains("\\\\u003c/script") || payload.contains("\\u003c/script"));
        assert_eq!(
            frame.matches("</script>").count(),
            1,
            "{adapter:?}: {frame}"
        );
        // The jsonp and xhr receivers' answers carry nosniff.
        let jsonp = target.request(&Request::new(
            "GET",
            &format!("{}/jsonp?c=cb", session("ns")),
        ));
        assert_eq!(jsonp.header("x-content-type-options"), Some("nosniff"));
        let xhr = target.request(&Request::new("POST", &format!("{}/xhr", session("ns"))));
        assert_eq!(xhr.header("x-content-type-options"), Some("nosniff"));
        drop(html);
    }
}

/// A JSON array with one string, escaped by hand.
fn serde_like_array(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("[\"{escaped}\"]")
}

#[test]
fn cookie_binding_refuses_other_clients() {
    for adapter in ADAPTERS {
        let target = start(
            adapter,
            Settings::new(Options {
                session_binding: SessionBinding::Cookie,
                ..Options::default()
            }),
        );
        let path = session("bound");
        let open = target.request(&Request::new("POST", &format!("{path}/xhr")));
        assert_eq!(open.text(), "o\n");
        let cookie = open
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .unwrap_or_else(|| panic!("{adapter:?}: no cookie"))
            .to_owned();
        assert!(cookie.starts_with("JSESSIONID=") && cookie != "JSESSIONID=dummy");
        let send = |cookie: Option<&str>| {
            let mut req = Request::new("POST", &format!("{path}/xhr_send")).body("[\"m\"]");
            if let Some(c) = cookie {
                req = req.header("Cookie", c);
            }
            target.request(&req).status()
        };
        assert_eq!(send(None), 404, "{adapter:?}: no cookie");
        assert_eq!(
            send(Some("JSESSIONID=guess")),
            404,
            "{adapter:?}: wrong cookie"
        );
        let poll = target.request(
            &Request::new("POST", &format!("{path}/xhr")).header("Cookie", "JSESSIONID=guess"),
        );
        assert_eq!(poll.status(), 404, "{adapter:?}: a stranger's poll");
        assert_eq!(send(Some(&cookie)), 204, "{adapter:?}: the owner");
        let poll =
            target.request(&Request::new("POST", &format!("{path}/xhr")).header("Cookie", &cookie));
        assert_eq!(poll.text(), "a[\"m\"]\n");
    }
}

/// One HTTP/1.1 request from a client socket bound to `from` (another loopback address),
/// answered on a fresh connection: (status, body).
fn request_from(
    from: std::net::IpAddr,
    to: std::net::SocketAddr,
    head: &str,
    body: &str,
) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
        socket.connect(to).await.unwrap()
    });
    let mut stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = format!(
        "{head} HTTP/1.1\r\nHost: {to}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn peer_ip_binding_refuses_other_addresses() {
    let owner: std::net::IpAddr = [127, 0, 0, 1].into();
    let stranger: std::net::IpAddr = [127, 0, 0, 2].into();
    for adapter in ADAPTERS {
        let target = start(
            adapter,
            Settings::new(Options {
                session_binding: SessionBinding::PeerIp,
                ..Options::default()
            }),
        );
        let path = session("peer");
        let (status, body) = request_from(owner, target.addr, &format!("POST {path}/xhr"), "");
        assert_eq!((status, body.as_str()), (200, "o\n"), "{adapter:?}: open");
        let send = |from| {
            request_from(
                from,
                target.addr,
                &format!("POST {path}/xhr_send"),
                "[\"m\"]",
            )
            .0
        };
        assert_eq!(
            send(stranger),
            404,
            "{adapter:?}: another address may not send"
        );
        let (status, _) = request_from(stranger, target.addr, &format!("POST {path}/xhr"), "");
        assert_eq!(status, 404, "{adapter:?}: another address may not poll");
        assert_eq!(send(owner), 204, "{adapter:?}: the owner sends");
        let (_, body) = request_from(owner, target.addr, &format!("POST {path}/xhr"), "");
        assert!(
            body.contains("a[\"m\"]"),
            "{adapter:?}: the owner polls: {body:?}"
        );
    }
}

/// `adapter` serving `/echo` with room for three sessions over `shards` shards.
fn three_sessions_at_most(adapter: Adapter, shards: usize, disconnect_delay: Duration) -> Target {
    let options = Options {
        max_sessions: 3,
        disconnect_delay,
        ..Options::default()
    };
    let config = Config {
        shards,
        ..Config::default()
    };
    start(adapter, Settings { options, config })
}

#[test]
fn max_sessions_answers_503_and_recovers() {
    for adapter in ADAPTERS {
        // The disconnect delay: long enough that the first session outlives the next three
        // requests on a busy machine.
        let target = three_sessions_at_most(adapter, 1, Duration::from_secs(3));
        for _ in 0..3 {
            let r = target.request(&Request::new("POST", &format!("{}/xhr", session("max"))));
            assert_eq!(r.text(), "o\n");
        }
        assert_eq!(target.session_count(), 3);
        let refused = target.request(&Request::new("POST", &format!("{}/xhr", session("max"))));
        assert_eq!(refused.status(), 503, "{adapter:?}");
        // The refused request created nothing; once the others expire there is room again.
        let deadline = Instant::now() + Duration::from_secs(15);
        while target.session_count() > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(target.session_count(), 0, "{adapter:?}");
        let r = target.request(&Request::new("POST", &format!("{}/xhr", session("max"))));
        assert_eq!(r.text(), "o\n");
    }
}

/// Sends an `/info` request on `stream` and says whether its `200` came within `wait`.
fn info_answered(stream: &mut std::net::TcpStream, wait: Duration) -> bool {
    stream
        .write_all(b"GET /echo/info HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    info_answer_within(stream, wait)
}

/// Whether a `200` (to a request sent already) arrives on `stream` within `wait`; the
/// whole response is read, so that the connection can carry the next one.
fn info_answer_within(stream: &mut std::net::TcpStream, wait: Duration) -> bool {
    match read_info_answer(stream, wait) {
        Exchange::Answered => true,
        Exchange::TimedOut => false,
        Exchange::Closed => panic!("closed before an answer"),
    }
}

/// A standalone server with room for `max` connections, whose idle ones only the bound
/// closes (the header read timeout outlasts the tests' waits).
fn bounded(adapter: Adapter, max: usize) -> Target {
    let config = Config {
        max_connections: Some(max),
        header_read_timeout: Duration::from_secs(120),
        ..Config::default()
    };
    start(
        adapter,
        Settings {
            options: Options::default(),
            config,
        },
    )
}

/// `Config::max_connections` bounds a standalone server's open connections, HTTP and
/// WebSocket alike. At the bound a new client is accepted and held, unanswered, while the
/// longest idle keep-alive connection (one that has served a request and waits for the
/// next) is closed to make room for it, as nginx reuses its idle connections; with none
/// (here: a connection that has sent no request and a WebSocket) it waits until a
/// connection ends, and is then served. A connection that has not sent a request yet is
/// not closed for it, and the connections at work are served as before.
#[test]
fn max_connections_holds_new_connections_until_one_ends() {
    const SERVED: Duration = Duration::from_secs(5);
    for adapter in ADAPTERS {
        let target = bounded(adapter, 2);
        // A connection that never sends a request, and a WebSocket: the bound, with no
        // idle keep-alive connection to close.
        let mut silent = std::net::TcpStream::connect(target.addr).unwrap();
        let mut ws = target.ws(&format!("{}/websocket", session("conns")));
        assert!(
            wait_for(SERVED, || target.open_connections() == Some(2)),
            "{adapter:?}: {:?}",
            target.open_connections()
        );
        let mut waiting = std::net::TcpStream::connect(target.addr).unwrap();
        assert!(
            !info_answered(&mut waiting, Duration::from_millis(500)),
            "{adapter:?}: a third connection was served past the bound"
        );
        assert_eq!(target.open_connections(), Some(2), "{adapter:?}");
        assert_eq!(target.reclaimed_connections(), Some(0), "{adapter:?}");
        // The open connections are still served.
        ws.send(tungstenite::Message::text(r#"["still here"]"#))
            .unwrap();
        assert_eq!(ws_text(&mut ws).as_deref(), Some(r#"a["still here"]"#));
        // The WebSocket ends: the waiting client is counted and answered.
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
        drop(ws);
        assert!(
            info_answer_within(&mut waiting, SERVED),
            "{adapter:?}: the waiting client was not served once a connection ended"
        );
        // `waiting` is idle now, having served a request: a new client takes its place
        // at once, and the silent connection (which served none) stays.
        let mut fourth = std::net::TcpStream::connect(target.addr).unwrap();
        assert!(
            info_answered(&mut fourth, SERVED),
            "{adapter:?}: no idle keep-alive connection was closed for a new client"
        );
        assert!(closed_by_server(&mut waiting, SERVED), "{adapter:?}");
        assert!(
            !closed_by_server(&mut silent, Duration::from_millis(200)),
            "{adapter:?}"
        );
        assert_eq!(target.open_connections(), Some(2), "{adapter:?}");
        assert_eq!(target.reclaimed_connections(), Some(1), "{adapter:?}");
        // The fourth, idle in turn, makes room for a fifth.
        let mut fifth = std::net::TcpStream::connect(target.addr).unwrap();
        assert!(info_answered(&mut fifth, SERVED), "{adapter:?}");
        assert!(closed_by_server(&mut fourth, SERVED), "{adapter:?}");
        assert_eq!(target.reclaimed_connections(), Some(2), "{adapter:?}");
        drop((silent, waiting, fourth, fifth));
        assert!(
            wait_for(SERVED, || target.open_connections() == Some(0)),
            "{adapter:?}: {:?}",
            target.open_connections()
        );
    }
}

/// `Config::max_connections` under churn, on both adapters: a dozen clients share three
/// places, each opening connections, making one to three requests on each, and keeping
/// some open and idle. Every request is answered: a connection's first request always
/// (a connection that has sent none is never closed for another), a later one after a
/// reconnect when the server closed the idle connection for a waiting client (as a
/// keep-alive client retries). Nothing waits for long, and the count comes back to zero.
#[test]
fn max_connections_under_churn_answers_every_client() {
    const THREADS: usize = 12;
    const ROUNDS: usize = 15;
    const WAIT: Duration = Duration::from_secs(20);
    for adapter in ADAPTERS {
        let target = bounded(adapter, 3);
        let addr = target.addr;
        let started = Instant::now();
        let clients: Vec<_> = (0..THREADS)
            .map(|t| {
                thread::spawn(move || {
                    let mut kept = None;
                    let mut reconnects = 0;
                    for round in 0..ROUNDS {
                        let mut stream = std::net::TcpStream::connect(addr).unwrap();
                        assert_eq!(
                            info_exchange(&mut stream, WAIT),
                            Exchange::Answered,
                            "thread {t} round {round}: a first request"
                        );
                        for _ in 0..(t + round) % 3 {
                            match info_exchange(&mut stream, WAIT) {
                                Exchange::Answered => {}
                                Exchange::Closed => {
                                    reconnects += 1;
                                    stream = std::net::TcpStream::connect(addr).unwrap();
                                    assert_eq!(
                                        info_exchange(&mut stream, WAIT),
                                        Exchange::Answered,
                                        "thread {t} round {round}: after a reconnect"
                                    );
                                }
                                Exchange::TimedOut => panic!("thread {t} round {round}"),
                            }
                        }
                        // Every other round the connection stays open, idle, until the next.
                        if round % 2 == 0 {
                            kept = Some(stream);
                        } else {
                            kept = None;
                        }
                    }
                    drop(kept);
                    reconnects
                })
            })
            .collect();
        let reconnects: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
        // Every reconnect was for a connection closed for another client, and each such
        // close was counted; and no more closed than one for each connection accepted.
        let reclaimed = target.reclaimed_connections().unwrap_or(0);
        let accepted = (THREADS * ROUNDS + reconnects) as u64;
        assert!(
            (reconnects as u64..=accepted).contains(&reclaimed),
            "{adapter:?}: {reclaimed} reclaimed, {reconnects} reconnects, {accepted} accepted"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{adapter:?}: {:?}",
            started.elapsed()
        );
        assert!(
            wait_for(Duration::from_secs(5), || target.open_connections()
                == Some(0)),
            "{adapter:?}: {:?}",
            target.open_connections()
        );
        eprintln!(
            "{adapter:?}: {} rounds in {:?}, {reconnects} reconnects, {reclaimed} reclaimed",
            THREADS * ROUNDS,
            started.elapsed()
        );
    }
}

/// What became of an `/info` request on a kept-alive connection.
#[derive(Debug, PartialEq, Eq)]
enum Exchange {
    Answered,
    /// The server had closed the connection: nothing of an answer came back.
    Closed,
    TimedOut,
}

/// Sends `GET /echo/info` on `stream` and reads the answer (a `200`, whole).
fn info_exchange(stream: &mut std::net::TcpStream, wait: Duration) -> Exchange {
    if stream
        .write_all(b"GET /echo/info HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return Exchange::Closed;
    }
    read_info_answer(stream, wait)
}

/// Reads the answer to an `/info` request sent on `stream` (a `200`, whole), if it begins
/// within `wait`.
fn read_info_answer(stream: &mut std::net::TcpStream, wait: Duration) -> Exchange {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut first = [0u8; 1];
    match stream.read(&mut first) {
        Ok(0) => return Exchange::Closed,
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Exchange::TimedOut;
        }
        Err(_) => return Exchange::Closed,
    }
    // An answer has begun: the rest follows, and a `200` it must be.
    let mut head = first.to_vec();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    Exchange::Answered
}

/// Whether the server closes `stream` (the client sent nothing more) within `wait`.
fn closed_by_server(stream: &mut std::net::TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("unexpected bytes from the server"),
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// `Options::max_sessions` bounds a service, not each of its shards: with four shards and
/// room for three sessions, the fourth is refused whichever shard its id falls on (each
/// shard's engine alone would have let up to twelve in), with the `503` on HTTP and on a
/// WebSocket alike; a session that ends makes room again.
#[test]
fn max_sessions_bounds_the_whole_service_over_its_shards() {
    for adapter in ADAPTERS {
        let target = three_sessions_at_most(adapter, 4, Duration::from_secs(30));
        let mut ws = target.ws(&format!("{}/websocket", session("cap")));
        for _ in 0..2 {
            let r = target.request(&Request::new("POST", &format!("{}/xhr", session("cap"))));
            assert_eq!(r.text(), "o\n", "{adapter:?}");
        }
        assert_eq!(target.session_count(), 3, "{adapter:?}");
        for _ in 0..8 {
            let r = target.request(&Request::new("POST", &format!("{}/xhr", session("cap"))));
            assert_eq!(
                (r.status(), r.text().as_str()),
                (503, "Too many sessions.\n"),
                "{adapter:?}"
            );
        }
        // PROTOCOL.md §2, §7.1: the request's other checks answer first, as past an
        // engine's own count: a missing callback gets its 500, not the 503.
        let r = target.request(&Request::new("GET", &format!("{}/jsonp", session("cap"))));
        assert_eq!(
            (r.status(), r.text().as_str()),
            (500, "\"callback\" parameter required"),
            "{adapter:?}"
        );
        // PROTOCOL.md §7.1, §9.1: a WebSocket gets the 503 too, a malformed one its 400.
        let upgrade = |path: &str, key: &str| {
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n{key}\r\n"
            )
        };
        let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        for path in [
            format!("{}/websocket", session("cap")),
            "/echo/websocket".into(),
        ] {
            let (status, head) = raw_status(target.addr, upgrade(&path, key).as_bytes());
            assert_eq!(status, 503, "{adapter:?} {path}: {head}");
            let (status, head) = raw_status(target.addr, upgrade(&path, "").as_bytes());
            assert_eq!(status, 400, "{adapter:?} {path}: {head}");
        }
        assert_eq!(
            target.session_count(),
            3,
            "{adapter:?}: refusals open nothing"
        );
        // The WebSocket's session ends with its socket's close: room for one more.
        ws.close(None).unwrap();
        assert!(
            wait_for(Duration::from_secs(5), || target.session_count() == 2),
            "{adapter:?}"
        );
        let r = target.request(&Request::new("POST", &format!("{}/xhr", session("cap"))));
        assert_eq!(r.text(), "o\n", "{adapter:?}");
    }
}

/// A plain socket that has sent a WebSocket handshake for session path `session` (its
/// answer not read yet), with a 5 s read timeout.
fn raw_websocket(target: &Target, session: &str) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(target.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let handshake = format!(
        "GET {session}/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).unwrap();
    stream
}

/// RFC 6455 §5.5.1: a close frame is answered with one, also when the client ends its side
/// of the connection right behind it and the server reads the close and that end in one
/// turn: a close sent with the handshake, or behind a message larger than one read. The
/// answer (the client's code, 1000) is the last thing before the server's FIN, on raw and
/// SockJS WebSockets.
#[test]
fn rfc6455_s5_5_1_a_close_is_answered_when_the_clients_end_comes_right_behind_it() {
    let close = client_frame(0x88, &1000u16.to_be_bytes());
    let answer = [0x88, 0x02, 0x03, 0xe8];
    for adapter in ADAPTERS {
        let target = start(adapter, Settings::new(Options::default()));
        for prefix in ["/echo".to_string(), session("endclose")] {
            // Sent with the handshake.
            let mut stream = raw_websocket(&target, &prefix);
            stream.write_all(&close).unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            let mut received = Vec::new();
            let _ = stream.read_to_end(&mut received);
            assert!(
                received.starts_with(b"HTTP/1.1 101"),
                "{adapter:?} {prefix}: {}",
                String::from_utf8_lossy(&received)
            );
            assert!(
                received.ends_with(&answer),
                "{adapter:?} {prefix}, with the handshake: ends with {:?}",
                &received[received.len().saturating_sub(8)..]
            );
            // Behind a message of 100 KiB, once the handshake is answered (whether the
            // close and the end come in one turn depends on timing: a few times).
            for _ in 0..4 {
                let mut stream = raw_websocket(&target, &prefix);
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                    head.push(byte[0]);
                }
                assert!(head.starts_with(b"HTTP/1.1 101"), "{adapter:?} {prefix}");
                let text = serde_like_array(&"m".repeat(100 * 1024));
                let mut bytes = client_frame(0x81, text.as_bytes());
                bytes.extend_from_slice(&close);
                stream.write_all(&bytes).unwrap();
                stream.shutdown(std::net::Shutdown::Write).unwrap();
                let mut received = Vec::new();
                let _ = stream.read_to_end(&mut received);
                assert!(
                    received.ends_with(&answer),
                    "{adapter:?} {prefix}, behind a message: {} bytes ending with {:?}",
                    received.len(),
                    &received[received.len().saturating_sub(8)..]
                );
            }
        }
    }
}

#[test]
fn websocket_message_size_limit_closes_with_1009() {
    for adapter in ADAPTERS {
        let target = start(
            adapter,
            Settings::new(Options {
                max_message_size: 1024,
                ..Options::default()
            }),
        );
        let mut ws = target.ws(&format!("{}/websocket", session("big")));
        ws.send(tungstenite::Message::text("[\"small\"]")).unwrap();
        assert_eq!(ws_text(&mut ws).as_deref(), Some("a[\"small\"]"));
        drop(ws);
        // Raw bytes from here, to see exactly what arrives before the socket ends.
        let mut stream = raw_websocket(&target, &session("big"));
        let big = serde_like_array(&"b".repeat(4096));
        let mut frame = vec![0x81, 0xfe];
        frame.extend_from_slice(&(big.len() as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the payload as is
        frame.extend_from_slice(big.as_bytes());
        let _ = stream.write_all(&frame);
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received);
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 101"), "{adapter:?}: {text}");
        // A WebSocket close with code 1009 reaches the client.
        assert!(
            received.windows(2).any(|w| w == [0x03, 0xf1]),
            "{adapter:?}: no 1009 close code in {text:?}"
        );
    }
}

/// A SockJS message of tiny messages weighs (each its length plus 32 bytes) up to 16.5
/// times its bytes: past twice `max_message_size` and 32 it is refused as one too big, with 1009
/// and nothing delivered, on both adapters; an xhr_send body alike gets 413.
#[test]
fn a_frame_of_tiny_messages_is_bounded_by_what_they_weigh() {
    for adapter in ADAPTERS {
        let target = start(
            adapter,
            Settings::new(Options {
                max_message_size: 1024,
                max_request_body: 1024,
                ..Options::default()
            }),
        );
        let array = |n: usize| format!("[{}]", vec!["0"; n].join(","));
        let mut ws = target.ws(&format!("{}/websocket", session("tiny")));
        // 63 messages of 33 bytes each fit the 2,080 bytes (twice the bound and 32); 64
        // (129 bytes) do not.
        ws.send(tungstenite::Message::text(array(63))).unwrap();
        let mut echoed = 0;
        while echoed < 63 {
            let frame = ws_text(&mut ws).unwrap_or_default();
            let messages: Vec<String> = serde_json::from_str(&frame[1..]).expect("a frame");
            echoed += messages.len();
        }
        assert_eq!(echoed, 63, "{adapter:?}");
        ws.send(tungstenite::Message::text(array(64))).unwrap();
        let close = ws_text(&mut ws);
        assert_eq!(
            close.as_deref(),
            Some("close 1009 Message too big"),
            "{adapter:?}"
        );
        let id = session("tiny");
        let open = target.request(&Request::new("POST", &format!("{id}/xhr")));
        assert_eq!(open.text(), "o\n", "{adapter:?}");
        let send = Request::new("POST", &format!("{id}/xhr_send")).body(array(64));
        assert_eq!(target.request(&send).status(), 413, "{adapter:?}");
        let send = Request::new("POST", &format!("{id}/xhr_send")).body(r#"["x"]"#);
        assert_eq!(target.request(&send).status(), 204, "{adapter:?}");
        let poll = target.request(&Request::new("POST", &format!("{id}/xhr")));
        assert_eq!(
            poll.text(),
            "a[\"x\"]\n",
            "{adapter:?}: nothing of the refused body"
        );
    }
}

/// RFC 6455 §8.1 within one frame (Autobahn 6.4.3), on both adapters: a text frame whose
/// first bytes can no longer begin UTF-8 is failed with 1007 at once, while the rest of it
/// has not been sent, rather than once it is whole (here: never).
#[test]
fn a_text_frame_that_cannot_be_utf8_fails_before_it_has_all_arrived() {
    for adapter in ADAPTERS {
        let target = start(adapter, Settings::new(Options::default()));
        let mut stream = raw_websocket(&target, &session("utf8"));
        // A 100-byte text frame, of which only `["` and then, in a read of its own, a
        // byte that begins no character are sent (masked: the server unmasks what came
        // so far, and goes on from there).
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let _ = stream.write_all(&[0x81, 0x80 | 100, mask[0], mask[1], mask[2], mask[3]]);
        let _ = stream.write_all(&[b'[' ^ mask[0], b'"' ^ mask[1]]);
        std::thread::sleep(Duration::from_millis(100));
        let _ = stream.write_all(&[0xff ^ mask[2]]);
        let mut received = Vec::new();
        let end = stream.read_to_end(&mut received);
        assert!(
            end.is_ok(),
            "{adapter:?}: no end of the connection: {end:?}"
        );
        assert_last_frame_closes_with(&received, 1007, adapter);
    }
}

/// A client's frame, masked (with a fixed mask) as RFC 6455 §5.3 requires.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x1d, 0x7e, 0x42, 0xa9];
    let mut frame = vec![first];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

fn message_timeout(adapter: Adapter, timeout: Duration) -> Target {
    let mut settings = Settings::new(Options::default());
    settings.config.message_read_timeout = timeout;
    start(adapter, settings)
}

/// `Config::message_read_timeout`, on both adapters: a WebSocket message begun and not
/// finished (a frame cut short, or a fragmented message whose client goes on pinging
/// between fragments) is closed with 1008 once the timeout has passed since its first
/// bytes, on SockJS and raw sockets, where the socket held its bytes for ever.
#[test]
fn a_websocket_message_that_does_not_end_in_time_is_closed_with_1008() {
    let timeout = Duration::from_millis(400);
    for adapter in ADAPTERS {
        let target = message_timeout(adapter, timeout);
        for (path, cut_short) in [
            (session("cut"), true),
            (session("fragments"), false),
            ("/echo".to_owned(), true),
        ] {
            let mut stream = raw_websocket(&target, &path);
            let started = Instant::now();
            if cut_short {
                // The head of a 100-byte text frame and 10 of its bytes.
                let frame = client_frame(0x81, &[b'x'; 100]);
                stream.write_all(&frame[..16]).unwrap();
            } else {
                // A first fragment, then pings between fragments and no more of it.
                stream.write_all(&client_frame(0x01, b"[\"part")).unwrap();
                // Pinging on past the 3 s bound: if pings restarted the clock, no close
                // would come while they do.
                let mut pinger = stream.try_clone().unwrap();
                thread::spawn(move || {
                    for _ in 0..100 {
                        thread::sleep(Duration::from_millis(50));
                        if pinger.write_all(&client_frame(0x89, b"alive")).is_err() {
                            break;
                        }
                    }
                });
            }
            let mut received = Vec::new();
            let end = stream.read_to_end(&mut received);
            let took = started.elapsed();
            assert!(end.is_ok(), "{adapter:?} {path}: {end:?}");
            assert_last_frame_closes_with(&received, 1008, adapter);
            assert!(
                took >= timeout && took < Duration::from_secs(3),
                "{adapter:?} {path}: closed after {took:?}"
            );
            let head = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let frames = server_frames(&received[head..]);
            let close = &frames.last().unwrap().1;
            assert_eq!(&close[2..], b"Message timeout", "{adapter:?} {path}");
            if !cut_short {
                assert!(
                    frames
                        .iter()
                        .any(|(opcode, data)| *opcode == 0xa && data == b"alive"),
                    "{adapter:?}: the pings between fragments were answered: {frames:?}"
                );
            }
        }
    }
}

/// `Config::message_read_timeout` counts from each message's first bytes: a client that
/// sends message after message, each split across writes so that no read ends between two
/// messages, for longer than the timeout, is echoed every message and never closed; so is
/// one that sends pings so split.
#[test]
fn messages_back_to_back_split_across_reads_do_not_meet_the_message_timeout() {
    let timeout = Duration::from_millis(400);
    for adapter in ADAPTERS {
        let target = message_timeout(adapter, timeout);
        let mut stream = raw_websocket(&target, &session("split"));
        let frames: Vec<Vec<u8>> = (0..12)
            .map(|n| client_frame(0x81, format!("[\"message {n}\"]").as_bytes()))
            .collect();
        let started = Instant::now();
        stream.write_all(&frames[0][..8]).unwrap();
        for pair in frames.windows(2) {
            thread::sleep(Duration::from_millis(80));
            let mut write = pair[0][8..].to_vec();
            write.extend_from_slice(&pair[1][..8]);
            stream.write_all(&write).unwrap();
        }
        thread::sleep(Duration::from_millis(80));
        stream.write_all(&frames[11][8..]).unwrap();
        assert!(
            started.elapsed() > 2 * timeout,
            "the test spans the timeout"
        );
        // So too pings outside any message, each split across writes.
        let ping = client_frame(0x89, b"ping");
        stream.write_all(&ping[..4]).unwrap();
        for _ in 0..8 {
            thread::sleep(Duration::from_millis(80));
            let mut write = ping[4..].to_vec();
            write.extend_from_slice(&ping[..4]);
            stream.write_all(&write).unwrap();
        }
        thread::sleep(Duration::from_millis(80));
        stream.write_all(&ping[4..]).unwrap();
        stream
            .write_all(&client_frame(0x88, &1000u16.to_be_bytes()))
            .unwrap();
        let mut received = Vec::new();
        let end = stream.read_to_end(&mut received);
        assert!(end.is_ok(), "{adapter:?}: {end:?}");
        assert_last_frame_closes_with(&received, 1000, adapter);
        let head = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let echoed: Vec<String> = server_frames(&received[head..])
            .into_iter()
            .filter(|(opcode, data)| *opcode == 0x1 && data.starts_with(b"a["))
            .map(|(_, data)| String::from_utf8(data).unwrap())
            .collect();
        let expected: Vec<String> = (0..12).map(|n| format!("a[\"message {n}\"]")).collect();
        assert_eq!(echoed, expected, "{adapter:?}");
        let pongs = server_frames(&received[head..])
            .into_iter()
            .filter(|frame| *frame == (0xa, b"ping".to_vec()))
            .count();
        assert_eq!(pongs, 9, "{adapter:?}");
    }
}

/// `Config::message_read_timeout` does not run while the server holds the socket's reads
/// back (`max_session_inbound_bytes`): the rest of a message that waits, unread, in the
/// socket for an application that takes its time is not the client's delay.
#[test]
fn the_message_timeout_does_not_run_while_reads_are_held_back() {
    for adapter in ADAPTERS {
        let (tx, rx) = std::sync::mpsc::channel();
        let taker = handler(move |mut session: sockjs_core::driver::Session| {
            let tx = tx.clone();
            async move {
                // Takes nothing for a while: the socket is held back meanwhile.
                sleep(Duration::from_millis(1200)).await;
                let mut count = 0;
                while count < 201 && session.recv().await.is_some() {
                    count += 1;
                }
                let _ = tx.send((count, session.close_reason()));
            }
        });
        let config = Config {
            shards: 2,
            max_session_inbound_bytes: 4096,
            message_read_timeout: Duration::from_millis(200),
            ..Config::default()
        };
        let target = start_services(
            adapter,
            config,
            vec![Mount::new("/echo", Options::default(), taker)],
        );
        let mut stream = raw_websocket(&target, &session("held"));
        // 200 messages, far past the bound, and the start of one more in the same write.
        let mut flood = Vec::new();
        for n in 0..200 {
            flood.extend(client_frame(
                0x81,
                format!("[\"message {n:>24}\"]").as_bytes(),
            ));
        }
        let last = client_frame(0x81, b"[\"last\"]");
        flood.extend_from_slice(&last[..8]);
        stream.write_all(&flood).unwrap();
        thread::sleep(Duration::from_millis(50));
        stream.write_all(&last[8..]).unwrap();
        let (count, reason) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((count, reason), (201, None), "{adapter:?}");
    }
}

/// An echo service refusing messages over 1 KiB, with this close linger.
fn refusing_big_messages(adapter: Adapter, close_linger: Duration) -> Target {
    let mut settings = Settings::new(Options {
        max_message_size: 1024,
        ..Options::default()
    });
    settings.config.close_linger = close_linger;
    start(adapter, settings)
}

/// After its 1009 close the server reads no further frame of the client's (the rest of the
/// message too big is never parsed), so it cannot wait for the client's close: its FIN
/// goes out with its close, as after a broken frame, and the client sees the end at once,
/// not after the whole close linger (RFC 6455 §7.1.1: the server closes first).
#[test]
fn after_a_1009_close_the_connection_ends_without_the_linger() {
    for adapter in ADAPTERS {
        let target = refusing_big_messages(adapter, Duration::from_secs(60));
        let mut stream = raw_websocket(&target, &session("big"));
        // Only the header of a message past the bound: the server refuses it from that.
        let _ = stream.write_all(&[0x81, 0xfe, 0x10, 0x00, 0, 0, 0, 0]);
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let started = Instant::now();
        let mut received = Vec::new();
        let end = stream.read_to_end(&mut received);
        assert!(
            end.is_ok(),
            "{adapter:?}: no end of the connection: {end:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{adapter:?}: held {:?}",
            started.elapsed()
        );
        assert_last_frame_closes_with(&received, 1009, adapter);
    }
}

/// A body refused at its head (413, over `max_request_body`) is still coming when the
/// answer goes out: the server reads and drops it before it closes, so the client's upload
/// goes through and it reads the 413 and a clean end, not a reset (RFC 9112 §9.6).
#[test]
fn a_body_refused_at_its_head_is_drained_so_the_413_is_not_lost_to_a_reset() {
    for adapter in ADAPTERS {
        let (_target, mut stream) = lingering(adapter, Options::default());
        // More than loopback's socket buffers hold: the server must read it.
        let body = vec![b'x'; 4 * 1024 * 1024];
        let head = format!(
            "POST /echo/000/{}/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            session("big"),
            body.len()
        );
        let (received, end) = upload_then_read(adapter, &mut stream, head.as_bytes(), &body);
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 413"), "{adapter:?}: {text}");
        assert!(end.is_ok(), "{adapter:?}: {end:?} after {text}");
    }
}

/// An HTTP/1.0 client that asked to keep its connection gets a stream, which ends by the
/// server closing the connection (HTTP/1.0 has no chunks), while the client sends its next
/// request and more: sent at once behind the first (the server has read some of it), or
/// only once the stream has come (the server has read none). The server reads and drops
/// what comes before it closes, so that the answer is not lost to a reset (RFC 9112 §9.6):
/// the client's upload goes through, and it reads the stream whole and a clean end.
#[test]
fn a_close_the_client_did_not_ask_for_is_lingering_so_the_answer_is_not_lost_to_a_reset() {
    for adapter in ADAPTERS {
        for pipelined in [true, false] {
            // Past its open frame, the stream ends at once.
            let options = Options {
                response_limit: 1,
                ..Options::default()
            };
            let (_target, mut stream) = lingering(adapter, options);
            let head = format!(
                "POST {}/xhr_streaming HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                session("ten")
            );
            // The next request, then more than loopback's socket buffers and the server's
            // read buffer hold: the server must read it.
            let mut more = b"GET /echo/info HTTP/1.0\r\n\r\n".to_vec();
            more.resize(4 * 1024 * 1024, b'x');
            let mut received = Vec::new();
            let end = if pipelined {
                let (rest, end) = upload_then_read(adapter, &mut stream, head.as_bytes(), &more);
                received = rest;
                end
            } else {
                stream.write_all(head.as_bytes()).unwrap();
                let mut byte = [0u8; 1];
                while !received.ends_with(b"\no\n") {
                    stream.read_exact(&mut byte).unwrap();
                    received.push(byte[0]);
                }
                let (rest, end) = upload_then_read(adapter, &mut stream, &[], &more);
                received.extend_from_slice(&rest);
                end
            };
            let text = String::from_utf8_lossy(&received);
            let case = format!("{adapter:?}, pipelined {pipelined}");
            assert!(text.starts_with("HTTP/1.1 200"), "{case}: {text}");
            assert!(text.ends_with("\no\n"), "{case}: the whole stream: {text}");
            assert!(end.is_ok(), "{case}: {end:?} after {text}");
        }
    }
}

/// A server with `options` and a close linger far longer than any upload here takes (even
/// on a busy machine: the client's end of input ends the server's reading), and a
/// connection to it.
fn lingering(adapter: Adapter, options: Options) -> (Target, TcpStream) {
    let mut settings = Settings::new(options);
    settings.config.close_linger = Duration::from_secs(10);
    let target = start(adapter, settings);
    let stream = TcpStream::connect(target.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (target, stream)
}

/// Sends `head` and then `body`, which the upload must get through whole, closes the
/// sending side, and reads to the end: what came back, and how the reading ended.
fn upload_then_read(
    adapter: Adapter,
    stream: &mut std::net::TcpStream,
    head: &[u8],
    body: &[u8],
) -> (Vec<u8>, std::io::Result<usize>) {
    stream.write_all(head).unwrap();
    let sent = stream.write_all(body);
    assert!(sent.is_ok(), "{adapter:?}: the upload was cut: {sent:?}");
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut received = Vec::new();
    let end = stream.read_to_end(&mut received);
    (received, end)
}

/// A WebSocket message far over the bound, sent whole: the server answers 1009 from its
/// header and reads no more frames, but it goes on reading and dropping the rest, so that
/// the upload goes through and the client reads the close and a clean end, not a reset
/// that destroys the close before it is read (RFC 6455 §7.1.1, RFC 9112 §9.6's reasoning).
#[test]
fn a_websocket_message_refused_as_too_big_is_drained_so_the_1009_is_not_lost_to_a_reset() {
    for adapter in ADAPTERS {
        // The upload ends well before, even on a busy machine: the client's end of input
        // ends the server's reading.
        let target = refusing_big_messages(adapter, Duration::from_secs(10));
        let mut stream = raw_websocket(&target, &session("bigws"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // More than loopback's socket buffers hold: the server must read it.
        let payload = vec![b'x'; 4 * 1024 * 1024];
        let mut frame = vec![0x81, 0xff];
        frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        let (received, end) = upload_then_read(adapter, &mut stream, &frame, &payload);
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 101"), "{adapter:?}: {text}");
        assert!(end.is_ok(), "{adapter:?}: {end:?} after {text:?}");
        let head = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let frames = server_frames(&received[head..]);
        assert_eq!(
            frames.last().map(|f| (f.0, f.1[..2].to_vec())),
            Some((0x8, 1009u16.to_be_bytes().to_vec())),
            "{adapter:?}: {frames:?}"
        );
    }
}

/// Writes to `stream` as fast as it takes bytes, for at most `limit`: how long until the
/// server cut the connection (`None`: never), with what the server sent meanwhile.
fn send_until_cut(
    stream: &mut std::net::TcpStream,
    limit: Duration,
) -> (Option<Duration>, Vec<u8>) {
    let mut reader = stream.try_clone().unwrap();
    let received = thread::spawn(move || {
        let mut received = Vec::new();
        let _ = reader.read_to_end(&mut received);
        received
    });
    let started = Instant::now();
    let junk = vec![b'j'; 64 * 1024];
    let cut = loop {
        if started.elapsed() > limit {
            break None;
        }
        if stream.write_all(&junk).is_err() {
            break Some(started.elapsed());
        }
    };
    let _ = stream.shutdown(std::net::Shutdown::Both);
    (cut, received.join().unwrap())
}

/// A client that never stops sending is not read for ever: nothing but empty lines is an
/// endless head (431), and after a refusal (400) or a WebSocket's 1009 the server reads
/// and drops what comes for its close linger and no longer, however fast it comes (and
/// lets the other connections run meanwhile), on both adapters.
#[test]
fn a_client_that_never_stops_sending_is_cut_after_the_linger() {
    let linger = Duration::from_millis(500);
    let bound = linger + Duration::from_secs(4);
    for adapter in ADAPTERS {
        let mut settings = Settings::new(Options {
            max_message_size: 1024,
            ..Options::default()
        });
        settings.config.close_linger = linger;
        let target = start(adapter, settings);

        // Empty lines and nothing else.
        let mut flood = std::net::TcpStream::connect(target.addr).unwrap();
        let crlf = b"\r\n".repeat(32 * 1024);
        let started = Instant::now();
        let mut answer = String::new();
        while started.elapsed() < bound && flood.write_all(&crlf).is_ok() {}
        let _ = flood.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "{adapter:?}: {answer:?}"
        );
        assert!(
            started.elapsed() < bound,
            "{adapter:?}: {:?}",
            started.elapsed()
        );

        // A bad request, then junk as fast as the server takes it.
        let mut bad = std::net::TcpStream::connect(target.addr).unwrap();
        bad.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let (cut, received) = send_until_cut(&mut bad, bound);
        assert!(cut.is_some(), "{adapter:?}: still read after {bound:?}");
        assert!(
            String::from_utf8_lossy(&received).starts_with("HTTP/1.1 400"),
            "{adapter:?}"
        );

        // A WebSocket message past its bound, then the rest of it without end.
        let mut ws = raw_websocket(&target, &session("endless"));
        ws.write_all(&[0x81, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
            .unwrap();
        let (cut, _) = send_until_cut(&mut ws, bound);
        assert!(cut.is_some(), "{adapter:?}: still read after {bound:?}");

        // Served all along.
        let mut conn = target.conn();
        let greeting = conn.roundtrip(&Request::new("GET", "/echo")).unwrap();
        assert_eq!(greeting.text(), "Welcome to SockJS!\n", "{adapter:?}");
    }
}

/// RFC 9110 §6.6.1: the standalone servers date their responses (full, streamed, refused)
/// in IMF-fixdate.
#[test]
fn responses_carry_a_date() {
    let dated = |head: &str| {
        head.lines()
            .find_map(|line| line.strip_prefix("Date: "))
            .is_some_and(|date| {
                date.len() == 29 && date.ends_with(" GMT") && date.as_bytes()[3] == b','
            })
    };
    for adapter in ADAPTERS {
        let target = start(adapter, Settings::new(Options::default()));
        for request in [
            "GET /echo/info HTTP/1.1\r\nHost: x\r\n\r\n",
            "OPTIONS /echo/info HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /echo HTTP/1.1\r\nHost: x\r\nBad Field\r\n\r\n",
        ] {
            let (status, head) = raw_status(target.addr, request.as_bytes());
            assert!(dated(&head), "{adapter:?} {status}: {head}");
        }
        let mut stream = std::net::TcpStream::connect(target.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let open = format!(
            "POST /echo/000/{}/xhr_streaming HTTP/1.1\r\nHost: x\r\n\r\n",
            session("dated")
        );
        stream.write_all(open.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(dated(&head), "{adapter:?}: {head}");
    }
}

/// Asserts that the last frame after the 101's head in `received` is a close with `code`.
fn assert_last_frame_closes_with(received: &[u8], code: u16, adapter: Adapter) {
    let head = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let frames = server_frames(&received[head..]);
    assert_eq!(
        frames.last().map(|f| f.0),
        Some(0x8),
        "{adapter:?}: {frames:?}"
    );
    assert_eq!(
        frames.last().unwrap().1[..2],
        code.to_be_bytes(),
        "{adapter:?}"
    );
}

/// The server's frames in `bytes` (unmasked, as a server sends them): opcode and payload.
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let (opcode, len) = (bytes[0] & 0x0f, usize::from(bytes[1] & 0x7f));
        let (start, len) = match len {
            126 if bytes.len() >= 4 => (4, usize::from(u16::from_be_bytes([bytes[2], bytes[3]]))),
            126 | 127 => break,
            len => (2, len),
        };
        let Some(payload) = bytes.get(start..start + len) else {
            break;
        };
        frames.push((opcode, payload.to_vec()));
        bytes = &bytes[start + len..];
    }
    frames
}

/// RFC 6455 §5.5.1: once the server has answered the client's close frame, it sends
/// nothing more: no pong for a ping that follows the close, and no second close frame for
/// a second one, even when they arrive in a later read.
#[test]
fn after_the_close_handshake_nothing_more_is_answered() {
    for adapter in ADAPTERS {
        let target = start(adapter, Settings::new(Options::default()));
        let mut stream = raw_websocket(&target, &session("twice"));
        // The 101 and the open frame, before anything is sent.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let mut open = [0u8; 3];
        stream.read_exact(&mut open).unwrap();
        assert_eq!(open, [0x81, 0x01, b'o'], "{adapter:?}");
        // A zero mask leaves each payload as it is.
        let close = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8];
        let ping = [0x89, 0x80, 0, 0, 0, 0];
        let mut input = close.to_vec();
        // More than one read's worth of pings, then a second close.
        for _ in 0..4000 {
            input.extend_from_slice(&ping);
        }
        input.extend_from_slice(&close);
        let _ = stream.write_all(&input);
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received);
        let frames = server_frames(&received);
        assert_eq!(
            frames,
            vec![(0x8, vec![0x03, 0xe8])],
            "{adapter:?}: one close frame with the client's code, and nothing else"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Slow links: a client that reads, however slowly, is not one that does not read.

/// The `seq` application (and the echo, for other session ids) on a server whose accepted
/// sockets have small send buffers, so that its writes wait on the client at once.
fn on_a_slow_link(adapter: Adapter, config: Config) -> Target {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener.set_send_buffer_size(4096).unwrap();
    listener
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(16).unwrap();
    let app = Arc::new(App::default());
    let handler_app = app.clone();
    let echo = Mount::new(
        "/echo",
        Options::default(),
        handler(move |session| app_body(handler_app.clone(), session)),
    );
    let mut target = start_services_on(adapter, config, vec![echo], listener.into());
    target.app = app;
    target
}

/// A client socket with a small receive buffer, connected to `target`.
fn slow_reader(target: &Target) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    client.set_recv_buffer_size(4096).unwrap();
    client.connect(&target.addr.into()).unwrap();
    let stream: TcpStream = client.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// The next text message on `ws`.
fn next_text<S: Read + Write>(
    ws: &mut tungstenite::WebSocket<S>,
) -> Result<String, tungstenite::Error> {
    loop {
        if let tungstenite::Message::Text(text) = ws.read()? {
            return Ok(text.as_str().to_owned());
        }
    }
}

/// Over a WebSocket session of the `seq` application on `stream`: asks for `total`
/// numbered messages and reads them 2 KiB at a time every `pause`, checking their order.
/// The reading must outlast twice `write_timeout`, or the client was not slow.
fn numbered_messages_read_slowly<S: Read + Write>(
    label: &str,
    url: &str,
    stream: S,
    (total, pause): (u64, Duration),
    write_timeout: Duration,
) {
    let (mut ws, _) = tungstenite::client(url, stream).unwrap();
    let opened = next_text(&mut ws).map_err(|e| e.to_string());
    assert_eq!(opened.as_deref(), Ok("o"), "{label}");
    ws.send(tungstenite::Message::text(format!("[\"more:{total}\"]")))
        .unwrap();
    let started = Instant::now();
    let (mut next, mut since_pause) = (0u64, 0usize);
    while next < total {
        let frame = next_text(&mut ws).unwrap_or_else(|error| {
            panic!(
                "{label}: cut after s{next}, {:?}: {error}",
                started.elapsed()
            )
        });
        since_pause += frame.len();
        let messages: Vec<String> = serde_json::from_str(&frame[1..]).unwrap();
        for message in messages {
            assert_eq!(message, format!("s{next}"), "{label}");
            next += 1;
        }
        if since_pause >= 2048 {
            since_pause = 0;
            thread::sleep(pause);
        }
    }
    assert!(
        started.elapsed() > write_timeout * 2,
        "{label}: the client was not slow ({:?})",
        started.elapsed()
    );
}

/// Over xhr-polling with the `seq` application, on streams `connect` opens: has the
/// application queue `total` numbered messages for the session (about 9 bytes each),
/// then reads the poll that carries them 8 KiB at a time every `pause`, which must outlast
/// twice `write_timeout`.
fn a_large_poll_read_slowly<S: Read + Write>(
    label: &str,
    target: &Target,
    connect: impl Fn() -> S,
    (total, pause): (u64, Duration),
    write_timeout: Duration,
) {
    let request = |path: &str, body: &str| {
        format!(
            "POST /echo/000/seqpoll/{path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut poll = connect();
    poll.write_all(request("xhr", "").as_bytes()).unwrap();
    let mut opened = [0u8; 512];
    let n = poll.read(&mut opened).unwrap();
    assert!(
        String::from_utf8_lossy(&opened[..n]).ends_with("o\n"),
        "{label}"
    );
    let mut send = connect();
    send.write_all(request("xhr_send", &format!("[\"more:{total}\"]")).as_bytes())
        .unwrap();
    let mut sent = [0u8; 512];
    let n = send.read(&mut sent).unwrap();
    assert!(sent[..n].starts_with(b"HTTP/1.1 204"), "{label}");
    // Let the application queue them all, so that the poll carries every one of them.
    assert!(
        wait_for(Duration::from_secs(10), || {
            target.app.seq.sent.load(Ordering::Relaxed) >= total
        }),
        "{label}"
    );
    poll.write_all(request("xhr", "").as_bytes()).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    // One read of at most 8 KiB, which must not find the connection cut.
    let mut read_some = |answer: &mut Vec<u8>| {
        let mut chunk = [0u8; 8192];
        let n = poll.read(&mut chunk).unwrap_or(0);
        assert!(
            n > 0,
            "{label}: cut after {} bytes, {:?}",
            answer.len(),
            started.elapsed()
        );
        answer.extend_from_slice(&chunk[..n]);
    };
    let body_at = loop {
        read_some(&mut answer);
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&answer[..body_at]).to_ascii_lowercase();
    let length: usize = head
        .split("content-length: ")
        .nth(1)
        .and_then(|rest| rest.split("\r\n").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{label}: {head}"));
    assert!(length as u64 > total * 3, "{label}: {length}");
    while answer.len() < body_at + length {
        thread::sleep(pause);
        read_some(&mut answer);
    }
    assert!(answer[body_at..].starts_with(b"a[\"s0\",\"s1\""), "{label}");
    assert!(
        started.elapsed() > write_timeout * 2,
        "{label}: the client was not slow ({:?})",
        started.elapsed()
    );
}

/// `Config::write_timeout` is for a client that does not read: counted from the last
/// bytes the client took, not from when the server's writes started to wait. An
/// application streaming to a client on a slow link (each wake-up frees less than the
/// server has for it) goes on for many times the timeout, on a WebSocket and for a large
/// xhr-polling answer alike, over TCP and TLS (whose stream keeps part of a write it could
/// not send), on both adapters.
#[test]
fn a_client_reading_slowly_is_not_cut_by_the_write_timeout() {
    let write_timeout = Duration::from_secs(1);
    let certs = TestCerts::new();
    for adapter in ADAPTERS {
        for tls in [false, true] {
            let label = format!("{adapter:?}{}", if tls { " TLS" } else { "" });
            let config = Config {
                write_timeout,
                tls: tls.then(|| certs.server()),
                ..Config::default()
            };
            let target = on_a_slow_link(adapter, config.clone());
            let scheme = if tls { "wss" } else { "ws" };
            let url = format!("{scheme}://{}/echo/000/seqws/websocket", target.addr);
            let connect = |target: &Target| {
                let tcp = slow_reader(target);
                if tls {
                    ClientStream::tls(tcp, &target.host(), &certs.client).unwrap()
                } else {
                    ClientStream::Plain(tcp)
                }
            };
            let stream = connect(&target);
            let pace = (30_000, Duration::from_millis(20));
            numbered_messages_read_slowly(&label, &url, stream, pace, write_timeout);
            let target = on_a_slow_link(adapter, config);
            let pace = (60_000, Duration::from_millis(40));
            a_large_poll_read_slowly(&label, &target, || connect(&target), pace, write_timeout);
        }
    }
}

/// The same over TLS at a client's pace of about 20 KiB a second against a write timeout
/// of 2 s: less per timeout than the TLS stream held (64 KiB of rustls's records, and the
/// 16 KiB its socket keeps of a write the stream could not take), more than it holds now
/// (16 KiB of records). Progress counts as the client takes what they hold, not only once
/// all of it is out; the client is not cut.
#[test]
fn a_tls_client_reading_less_per_timeout_than_the_stream_buffers_is_not_cut() {
    over_tls_on_a_slow_link(|label, target, connect, write_timeout| {
        let url = format!("wss://{}/echo/000/seqws/websocket", target.addr);
        let pace = (12_000, Duration::from_millis(100));
        numbered_messages_read_slowly(label, &url, connect(), pace, write_timeout);
    });
}

/// The same for a large xhr-polling answer over TLS, read at 20 to 30 KiB a second (8 KiB
/// reads, each of what the small socket buffers hold, every 250 ms).
#[test]
fn a_tls_client_reading_a_large_poll_less_per_timeout_than_the_stream_buffers_is_not_cut() {
    over_tls_on_a_slow_link(|label, target, connect, write_timeout| {
        let pace = (24_000, Duration::from_millis(250));
        a_large_poll_read_slowly(label, target, connect, pace, write_timeout);
    });
}

/// And one that stops reading over TLS is still dropped after the write timeout: what the
/// TLS stream holds moving on is progress, nothing moving is none. Seen from the
/// application, whose sends fail once its session has ended.
#[test]
fn a_tls_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    over_tls_on_a_slow_link(|label, target, connect, write_timeout| {
        let url = format!("wss://{}/echo/000/seqstop/websocket", target.addr);
        let (mut ws, _) = tungstenite::client(url.as_str(), connect()).unwrap();
        let opened = next_text(&mut ws).map_err(|e| e.to_string());
        assert_eq!(opened.as_deref(), Ok("o"), "{label}");
        ws.send(tungstenite::Message::text("[\"more:200000\"]"))
            .unwrap();
        for _ in 0..3 {
            next_text(&mut ws).unwrap();
        }
        let stopped = Instant::now();
        let ended = || !target.app.seq.errors.lock().unwrap().is_empty();
        assert!(
            wait_for(write_timeout + Duration::from_secs(8), ended),
            "{label}: still open {:?} after the client stopped reading",
            stopped.elapsed()
        );
        assert!(
            stopped.elapsed() >= write_timeout,
            "{label}: {:?}",
            stopped.elapsed()
        );
        let first = target.app.seq.errors.lock().unwrap()[0].clone();
        assert!(first.ends_with("unknown session"), "{label}: {first}");
        drop(ws);
    });
}

/// Runs `read` against each adapter's server over TLS, with a write timeout of 2 s, on a
/// slow link, given a function that opens a slow-reading TLS stream to it.
fn over_tls_on_a_slow_link(read: impl Fn(&str, &Target, &dyn Fn() -> ClientStream, Duration)) {
    let write_timeout = Duration::from_secs(2);
    let certs = TestCerts::new();
    for adapter in ADAPTERS {
        let config = Config {
            write_timeout,
            tls: Some(certs.server()),
            ..Config::default()
        };
        let target = on_a_slow_link(adapter, config);
        let connect =
            || ClientStream::tls(slow_reader(&target), &target.host(), &certs.client).unwrap();
        read(
            &format!("{adapter:?} TLS"),
            &target,
            &connect,
            write_timeout,
        );
    }
}

/// A client that pings without reading the pongs has its connection dropped once the
/// pongs it left pass `max_connection_queue_bytes`; one that is only slow to take a large
/// message of ours is not, whatever it sends meanwhile (a ping, a message): the bound is
/// on the pongs, not on our own bytes waiting for the client.
#[test]
fn a_ping_flood_is_dropped_and_a_slow_reader_s_ping_is_answered() {
    use tungstenite::Message;
    let config = Config {
        max_connection_queue_bytes: 64 * 1024,
        ..Config::default()
    };
    for adapter in ADAPTERS {
        let target = on_a_slow_link(adapter, config.clone());
        let connect = |id: &str| {
            let url = format!("ws://{}/echo/000/{id}/websocket", target.addr);
            let (mut ws, _) = tungstenite::client(url.as_str(), slow_reader(&target)).unwrap();
            assert_eq!(ws_text(&mut ws).as_deref(), Some("o"), "{adapter:?}");
            ws
        };

        // A message four times the connection's byte bound echoed to a client that reads
        // nothing for a while, and pings and writes meanwhile.
        let mut slow = connect("bigecho");
        let big = "x".repeat(256 * 1024 - 16);
        slow.send(Message::text(serde_json::to_string(&[&big]).unwrap()))
            .unwrap();
        thread::sleep(Duration::from_secs(1));
        slow.send(Message::Ping(vec![1u8; 100].into())).unwrap();
        slow.send(Message::text(r#"["after"]"#)).unwrap();
        let mut texts = Vec::new();
        while texts.len() < 2 {
            match slow.read() {
                Ok(Message::Text(text)) => texts.push(text.as_str().to_owned()),
                Ok(_) => {}
                Err(error) => panic!("{adapter:?}: {error} after {} frames", texts.len()),
            }
        }
        assert_eq!(texts[0].len(), big.len() + 5, "{adapter:?}");
        assert_eq!(texts[1], r#"a["after"]"#, "{adapter:?}");

        // Pings, and never a read: dropped, without a close frame, long before 2,000.
        let mut flood = connect("pingflood");
        let mut sent = 0;
        while sent < 2000 {
            if flood.send(Message::Ping(vec![7u8; 125].into())).is_err() {
                break;
            }
            sent += 1;
        }
        let started = Instant::now();
        let mut pongs = 0;
        let ending = loop {
            match flood.read() {
                Ok(Message::Pong(_)) => pongs += 1,
                Ok(other) => break Ok(other),
                Err(error) => break Err(error),
            }
        };
        assert!(
            ending.is_err() && started.elapsed() < Duration::from_secs(5),
            "{adapter:?}: {ending:?}"
        );
        assert!(pongs < 1500, "{adapter:?}: {pongs} pongs for {sent} pings");
    }
}

/// A listener that fails for good (here shut down under the server: every `accept` then
/// fails with `EINVAL`) ends the server as a graceful shutdown does, and `serve` returns
/// the error, rather than retrying and logging every 50 ms forever.
#[cfg(target_os = "linux")]
#[test]
fn a_listener_that_fails_for_good_ends_serve_with_its_error() {
    for adapter in ADAPTERS {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let under = listener.try_clone().unwrap();
        let target = start_services_on(adapter, Config::default(), suite(&suite_base()), listener);
        let greeting = || {
            let mut conn =
                conformance::http::Conn::connect(&target.host(), Duration::from_secs(5)).unwrap();
            let response = conn.roundtrip(&Request::new("GET", "/echo")).unwrap();
            assert_eq!(response.text(), "Welcome to SockJS!\n", "{adapter:?}");
        };
        greeting();
        assert_eq!(target.outcome(), None, "{adapter:?}: serving");

        socket2::SockRef::from(&under)
            .shutdown(std::net::Shutdown::Both)
            .unwrap();
        assert!(
            wait_for(Duration::from_secs(10), || target.has_ended()),
            "{adapter:?}: still serving on a failed listener"
        );
        assert_eq!(
            target.outcome(),
            Some(Err(std::io::ErrorKind::InvalidInput)),
            "{adapter:?}"
        );
    }
}

/// A duration setting of `Duration::MAX` (how one writes "never") is a deadline too far to
/// reach, not an overflow: every request, send, WebSocket message and close still works.
#[test]
fn duration_settings_of_duration_max_mean_never() {
    for adapter in ADAPTERS {
        let never = Duration::MAX;
        let target = start(
            adapter,
            Settings {
                // The engine's own delays are checked when a service is built
                // (`OptionsError::DelayTooLong`); the driver's durations are not (only its
                // queue bounds are, `OptionsError::ZeroQueue`).
                options: Options {
                    max_message_size: 1024,
                    ..Options::default()
                },
                config: Config {
                    shards: 2,
                    inbound_stall_timeout: never,
                    delivery_wait: never,
                    abort_grace: never,
                    admission_timeout: never,
                    header_read_timeout: never,
                    body_read_timeout: never,
                    write_timeout: never,
                    tcp_user_timeout: Some(never),
                    close_linger: never,
                    shutdown_timeout: never,
                    ..Config::default()
                },
            },
        );
        let a = adapter;
        let id = session("never");
        let poll = || target.request(&Request::new("POST", &format!("{id}/xhr")));
        assert_eq!(poll().text(), "o\n", "{a:?}");
        let sent = target.request(&Request::new("POST", &format!("{id}/xhr_send")).body("[\"x\"]"));
        assert_eq!(sent.status(), 204, "{a:?}");
        assert_eq!(poll().text(), "a[\"x\"]\n", "{a:?}");

        let mut ws = target.ws(&format!("{}/websocket", session("never")));
        ws.send(tungstenite::Message::text("[\"y\"]")).unwrap();
        assert_eq!(ws_text(&mut ws).as_deref(), Some("a[\"y\"]"), "{a:?}");
        // Too big: the server starts the close, then lingers for the client's close.
        ws.send(tungstenite::Message::text(format!(
            "[\"{}\"]",
            "z".repeat(2048)
        )))
        .unwrap();
        let closed = ws_text(&mut ws).unwrap_or_default();
        assert!(closed.starts_with("close 1009"), "{a:?}: {closed}");
        // The server is still whole.
        let again = session("never");
        let poll = || target.request(&Request::new("POST", &format!("{again}/xhr")));
        assert_eq!(poll().text(), "o\n", "{a:?}");
    }
}

/// A client that keeps its socket full of pipelined requests, each answered at once, does
/// not hold the server's threads: others are still served while it floods.
#[test]
fn a_pipelining_flood_does_not_starve_other_clients() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    for adapter in ADAPTERS {
        let target = start(adapter, Settings::new(Options::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let block = "GET /nothere HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
        // More flooding connections than the server has threads.
        let flooders: Vec<_> = (0..3)
            .map(|_| {
                let stream = std::net::TcpStream::connect(target.addr).unwrap();
                stream
                    .set_write_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                let mut reader = stream.try_clone().unwrap();
                let (stop_w, stop_r) = (stop.clone(), stop.clone());
                let block = block.clone();
                let writer = thread::spawn(move || {
                    let mut stream = stream;
                    while !stop_w.load(Ordering::Relaxed) {
                        if stream.write_all(block.as_bytes()).is_err() {
                            break;
                        }
                    }
                });
                let drainer = thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut answered = 0usize;
                    while !stop_r.load(Ordering::Relaxed) {
                        match reader.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => answered += n,
                        }
                    }
                    answered
                });
                (writer, drainer)
            })
            .collect();
        thread::sleep(Duration::from_millis(300));
        let mut slowest = Duration::ZERO;
        for _ in 0..5 {
            let started = Instant::now();
            let info = target.request(&Request::new("GET", "/echo/info"));
            slowest = slowest.max(started.elapsed());
            assert_eq!(info.status(), 200, "{adapter:?}");
        }
        stop.store(true, Ordering::Relaxed);
        let answered: usize = flooders
            .into_iter()
            .map(|(writer, drainer)| {
                let _ = writer.join();
                drainer.join().unwrap()
            })
            .sum();
        assert!(answered > 0, "{adapter:?}: the flooders were answered too");
        assert!(
            slowest < Duration::from_millis(1500),
            "{adapter:?}: a request waited {slowest:?} behind the flood"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Slow consumer isolation.

/// Echo round trips of `clients` WebSocket sessions for `window`, sorted.
fn echo_latencies(target: &Target, clients: usize, window: Duration) -> Vec<Duration> {
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let mut ws = target.ws(&format!("{}/websocket", session("probe")));
            thread::spawn(move || {
                let mut times = Vec::new();
                let until = Instant::now() + window;
                let mut n = 0u32;
                while Instant::now() < until && n < 100_000 {
                    let started = Instant::now();
                    ws.send(tungstenite::Message::text(format!("[\"p{n}\"]")))
                        .unwrap();
                    assert_eq!(ws_text(&mut ws), Some(format!("a[\"p{n}\"]")));
                    times.push(started.elapsed());
                    n += 1;
                    thread::sleep(Duration::from_millis(5));
                }
                times
            })
        })
        .collect();
    let mut all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    all
}

#[test]
fn a_stuck_session_does_not_slow_others_and_stays_bounded() {
    const MAX_QUEUED: usize = 256 * 1024;
    for adapter in ADAPTERS {
        let mut settings = Settings::new(Options {
            max_queued_bytes: MAX_QUEUED,
            disconnect_delay: Duration::from_millis(1200),
            ..Options::default()
        });
        // The unread application's queue fills past its bound quickly, and the stall
        // timeout ends it within the test.
        settings.config.max_session_inbound_bytes = 64 * 1024;
        settings.config.inbound_stall_timeout = Duration::from_secs(1);
        // The unread WebSocket's blocked write gives up within the test too.
        settings.config.write_timeout = Duration::from_secs(2);
        let target = start(adapter, settings);
        // Flooding ends with the session (overflow, or the disconnect delay); the bound
        // is only a backstop, well past both on a busy machine.
        *target.app.flood_for.lock().unwrap() = Duration::from_secs(10);
        let baseline = echo_latencies(&target, 4, Duration::from_millis(500));

        // 1. A WebSocket client that never reads, its application sending flat out.
        let stuck_ws = {
            let stream = std::net::TcpStream::connect(target.addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let url = target.url(&format!("{}/websocket", session("floodws")));
            let (ws, _) = tungstenite::client(url.as_str(), stream).unwrap();
            ws
        };
        // 2. A polling client that opened its session and never polls again.
        let open = target.request(&Request::new(
            "POST",
            &format!("{}/xhr", session("floodpoll")),
        ));
        assert_eq!(open.text(), "o\n");
        // 3. An application that never reads, its client sending flat out.
        let stuck_app = {
            let mut ws = target.ws(&format!("{}/websocket", session("stuckapp")));
            thread::spawn(move || {
                let batch = serde_like_array(&"m".repeat(100));
                let mut sent = 0;
                for _ in 0..5000 {
                    if ws.send(tungstenite::Message::text(batch.clone())).is_err() {
                        break;
                    }
                    sent += 1;
                }
                let mut end = None;
                for _ in 0..5000 {
                    match ws_text(&mut ws) {
                        Some(t) if t.starts_with("c[") || t.starts_with("close") => {
                            end = Some(t);
                            break;
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
                (sent, end)
            })
        };
        let during = echo_latencies(&target, 4, Duration::from_millis(1200));
        let (app_sent, app_end) = stuck_app.join().unwrap();

        // The stuck sessions hit their bounds and the overflow policies.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !(target.app.flood_ws.done.load(Ordering::Acquire)
            && target.app.flood_poll.done.load(Ordering::Acquire))
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(20));
        }
        let ws_bytes = target.app.flood_ws.accepted_bytes.load(Ordering::Relaxed);
        let ws_end = *target.app.flood_ws.ended_by.lock().unwrap();
        let poll_bytes = target.app.flood_poll.accepted_bytes.load(Ordering::Relaxed);
        let poll_full = target.app.flood_poll.queue_full.load(Ordering::Relaxed);
        let poll_end = *target.app.flood_poll.ended_by.lock().unwrap();
        let (b50, b99) = (percentile(&baseline, 0.5), percentile(&baseline, 0.99));
        let (d50, d99) = (percentile(&during, 0.5), percentile(&during, 0.99));
        let dmax = during.last().copied().unwrap_or_default();
        println!(
            "{adapter:?}: other sessions' echo round trip: baseline p50 {b50:?} p99 {b99:?} \
             ({} samples); with stuck sessions p50 {d50:?} p99 {d99:?} max {dmax:?} ({} samples)",
            baseline.len(),
            during.len()
        );
        println!(
            "{adapter:?}: unread WebSocket: {} KiB accepted, then {ws_end:?}; unpolled session: \
             {} KiB accepted, {poll_full} QueueFull, then {poll_end:?}; unread application: \
             {app_sent} client sends, ended with {app_end:?}",
            ws_bytes / 1024,
            poll_bytes / 1024
        );
        // Unread WebSocket: once its connection's queue is as good as full, the flood is
        // refused (QueueFull), never pushed past the bound; the blocked write's timeout
        // ends the session. What was accepted is bounded by the queues plus the kernel's
        // socket buffers.
        let ws_full = target.app.flood_ws.queue_full.load(Ordering::Relaxed);
        assert!(
            ws_full > 0,
            "{adapter:?}: the unread WebSocket was never refused"
        );
        assert!(
            ws_end.is_some(),
            "{adapter:?}: the unread WebSocket session never ended"
        );
        assert!(ws_bytes < 64 * 1024 * 1024, "{adapter:?}: {ws_bytes}");
        // Unpolled session: at most max_queued_bytes, then QueueFull, then closed by the
        // disconnect delay.
        assert!(poll_bytes <= MAX_QUEUED, "{adapter:?}: {poll_bytes}");
        assert!(poll_full > 0, "{adapter:?}");
        assert!(
            poll_end.is_some(),
            "{adapter:?}: the unpolled session never ended"
        );
        // Unread application: its client held back (the socket is not read) and, once the
        // stall timeout passed with nothing taken, closed with 1013.
        let app_end = app_end.unwrap_or_default();
        assert!(app_end.contains("1013"), "{adapter:?}: {app_end:?}");
        // Other sessions are not held up.
        assert!(d99 < Duration::from_millis(250), "{adapter:?}: p99 {d99:?}");
        assert!(dmax < Duration::from_secs(1), "{adapter:?}: max {dmax:?}");
        drop(stuck_ws);
    }
}

// ---------------------------------------------------------------------------------------
// No loss across aborted polls.

/// Parses an xhr polling response body into messages, or a close/open frame.
enum Poll {
    Messages(Vec<String>),
    Heartbeat,
    Busy,
}

fn parse_poll(body: &str) -> Poll {
    let body = body.trim_end_matches('\n');
    if body == "h" {
        return Poll::Heartbeat;
    }
    if body.starts_with("c[2010") {
        return Poll::Busy;
    }
    let json = body
        .strip_prefix('a')
        .unwrap_or_else(|| panic!("unexpected frame {body:?}"));
    // Messages are `s<digits>`: no escaping involved.
    let inner = json.trim_start_matches('[').trim_end_matches(']');
    Poll::Messages(
        inner
            .split(',')
            .map(|m| m.trim_matches('"').to_owned())
            .collect(),
    )
}

/// Drives one `seq` session with random aborts; returns the figures checked.
fn no_loss_run(target: &Target, aborts: usize, seed: u64) -> NoLoss {
    let a = target.adapter;
    let mut rng = seed;
    let mut rand = move |n: u64| {
        // xorshift64*
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    };
    let path = session("seq");
    let xhr = format!("{path}/xhr");
    let xhr_send = format!("{path}/xhr_send");
    let mut conn = target.conn();
    let open = conn.roundtrip(&Request::new("POST", &xhr)).unwrap();
    assert_eq!(open.text(), "o\n");
    let mut figures = NoLoss::default();
    let mut next_server = 0u64;
    let mut requested = 0u64;
    let mut marker = 0u64;
    let started = Instant::now();
    let send = |conn: &mut conformance::http::Conn, batch: Vec<String>| {
        let r = conn
            .roundtrip(&Request::new("POST", &xhr_send).body(format!("[{}]", batch.join(","))))
            .unwrap();
        assert_eq!(r.status(), 204, "{a:?}");
    };
    let mut iterations = 0;
    while figures.aborts < aborts
        && iterations < aborts * 20
        && started.elapsed() < Duration::from_secs(600)
    {
        iterations += 1;
        if rand(3) == 0 {
            // Abort a held, empty poll (everything requested was received), with or
            // without client messages sent while it is held.
            assert_eq!(next_server, requested);
            let mut held = target.conn();
            held.send(&Request::new("POST", &xhr)).unwrap();
            // Make sure the server holds it: a second receiver is then told 2010. (An
            // aborted request the server only reads later would otherwise become the
            // receiver after the sync below, and take messages with it.)
            thread::sleep(Duration::from_millis(1 + rand(3)));
            let r = conn.roundtrip(&Request::new("POST", &xhr)).unwrap();
            match parse_poll(&r.text()) {
                Poll::Busy => {}
                other => {
                    // The probe won the race: the held request was answered 2010 (or
                    // gets a late marker). Read it to the end, so nothing is in flight.
                    if let Poll::Messages(m) = other {
                        assert!(m.iter().all(|m| m.starts_with('m')), "{a:?}: {m:?}");
                    }
                    let late = held.read_response("POST").unwrap();
                    assert!(
                        matches!(parse_poll(&late.text()), Poll::Busy | Poll::Heartbeat)
                            || late.text().starts_with("a[\"m"),
                        "{a:?}: {}",
                        late.text()
                    );
                    figures.probe_races += 1;
                    continue;
                }
            }
            if rand(2) == 0 {
                let batch = (0..1 + rand(5))
                    .map(|_| {
                        figures.client += 1;
                        format!("\"c{}\"", figures.client - 1)
                    })
                    .collect();
                send(&mut conn, batch);
            }
            held.shutdown();
            drop(held);
            figures.aborts += 1;
            // Before asking for more, make sure the server saw the abort: a marker comes
            // back through a new poll. Markers written into the aborted poll before the
            // server noticed are lost with it (HTTP cannot deliver them); they are
            // counted, and the sequence never depends on them.
            let mut synced = false;
            for _ in 0..200 {
                marker += 1;
                send(&mut conn, vec![format!("\"mark:{marker}\"")]);
                let r = conn.roundtrip(&Request::new("POST", &xhr)).unwrap();
                match parse_poll(&r.text()) {
                    Poll::Messages(messages) if messages.contains(&format!("m{marker}")) => {
                        synced = true;
                        break;
                    }
                    Poll::Messages(_) | Poll::Heartbeat => figures.markers_lost += 1,
                    Poll::Busy => {
                        figures.markers_lost += 1;
                        thread::sleep(Duration::from_millis(2));
                    }
                }
            }
            assert!(
                synced,
                "{a:?}: the session never took a new poll after an abort"
            );
            continue;
        }
        // Client messages and a request for server messages in one batch.
        let k = rand(40);
        let mut batch: Vec<String> = (0..rand(6))
            .map(|_| {
                figures.client += 1;
                format!("\"c{}\"", figures.client - 1)
            })
            .collect();
        batch.push(format!("\"more:{k}\""));
        requested += k;
        send(&mut conn, batch);
        // Poll until everything requested has arrived.
        let polling = Instant::now();
        while next_server < requested {
            assert!(
                polling.elapsed() < Duration::from_secs(10),
                "{a:?}: s{next_server} never arrived"
            );
            let r = conn.roundtrip(&Request::new("POST", &xhr)).unwrap();
            match parse_poll(&r.text()) {
                Poll::Messages(messages) => {
                    // Late markers are not part of the sequence.
                    for m in messages.into_iter().filter(|m| !m.starts_with('m')) {
                        assert_eq!(
                            m,
                            format!("s{next_server}"),
                            "{a:?}: lost, duplicated or reordered"
                        );
                        next_server += 1;
                    }
                }
                Poll::Heartbeat => {}
                Poll::Busy => thread::sleep(Duration::from_millis(2)),
            }
        }
    }
    figures.server = next_server;
    // Every client message arrived, in order, exactly once.
    let deadline = Instant::now() + Duration::from_secs(5);
    while target.app.seq.received.load(Ordering::Relaxed) < figures.client
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(10));
    }
    let errors = target.app.seq.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "{a:?}: {errors:?}");
    assert_eq!(
        target.app.seq.received.load(Ordering::Relaxed),
        figures.client,
        "{a:?}"
    );
    assert_eq!(
        target.app.seq.sent.load(Ordering::Relaxed),
        next_server,
        "{a:?}"
    );
    assert_eq!(figures.aborts, aborts, "{a:?}: ran out of time");
    figures
}

#[derive(Debug, Default)]
struct NoLoss {
    aborts: usize,
    client: u64,
    server: u64,
    markers_lost: u64,
    probe_races: u64,
}

/// With [`AbortPolicy::Detach`] a session outlives its receivers' aborts (with the
/// default `CloseSession`, as in sockjs-node, an abort ends the session). What HTTP can
/// guarantee: a frame the server wrote into a response the client then dropped is gone,
/// since no SockJS transport acknowledges frames. So the check aborts polls while they are
/// held empty (everything the application queued for the client was received), with client
/// messages flowing in on another connection meanwhile, and waits until a marker message
/// comes back through a new poll before the application sends more. Under that condition
/// no message in either direction may be lost, duplicated or reordered; the markers that
/// raced into aborted polls are reported.
#[test]
fn no_loss_across_thousands_of_aborted_polls() {
    let aborts = if long_tests() { 5000 } else { 60 };
    for adapter in ADAPTERS {
        let target = start(
            adapter,
            Settings::new(Options {
                abort: AbortPolicy::Detach,
                heartbeat_delay: Some(Duration::from_millis(200)),
                ..Options::default()
            }),
        );
        let started = Instant::now();
        let f = no_loss_run(&target, aborts, 0x5eed_0001 + adapter as u64);
        println!(
            "{adapter:?}: {} aborted polls, {} client and {} server messages checked in {:?}: \
             none lost, duplicated or reordered ({} sync markers lost into aborted polls \
             or answered busy)",
            f.aborts,
            f.client,
            f.server,
            started.elapsed(),
            f.markers_lost
        );
    }
}
