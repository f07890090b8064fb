//! The options beyond the protocol's defaults over real loopback sockets, against both
//! adapters: transports switched off one by one (PROTOCOL.md §2), the JSESSIONID cookie's
//! attributes and custom form (§3.4) and `cookie_needed` (§4.2), heartbeats off (§7.1.3)
//! and WebSocket dead-peer detection (§9.2).
//!
//! As in `semantics.rs`, lower time bounds are the configured delays (timers never fire
//! early) and upper bounds are generous; every wait is bounded.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use conformance::http::Request;
use sockjs_core::driver::{Config, Session};
use sockjs_core::{
    CloseReason, CookieAttributes, Jsessionid, Options, PingOptions, SameSite, SessionBinding,
    Transport, Transports,
};
use support::{ADAPTERS, Handler, Mount, Target, handler, start_services, within};
use tungstenite::{Message, WebSocket};

/// Bound of one test (both adapters).
const LIMIT: Duration = Duration::from_secs(60);

fn config() -> Config {
    Config {
        shards: 2,
        ..Config::default()
    }
}

fn echo() -> Handler {
    handler(|mut session: Session| async move {
        while let Some(text) = session.recv().await {
            let _ = session.send(text).await;
        }
    })
}

/// A session id no other test uses.
fn sid(kind: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{kind}{n}x{}", std::process::id())
}

fn info(target: &Target, prefix: &str) -> String {
    target
        .request(&Request::new("GET", &format!("{prefix}/info")))
        .text()
}

// ---------------------------------------------------------------------------------------
// §2: transports on and off
// ---------------------------------------------------------------------------------------

/// The mount path of the service without `t`.
fn without(t: Transport) -> String {
    format!("/no_{}", t.name().replace('-', "_"))
}

/// A WebSocket upgrade request's status, read from the head alone.
fn upgrade_status(target: &Target, path: &str) -> u16 {
    let mut conn = target.conn();
    let request = Request::new("GET", path).headers(&[
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
    ]);
    conn.send(&request).unwrap();
    conn.read_head().unwrap().status
}

/// What the transport's receiver answers on service `prefix`: 404, or proof that it works
/// (the open frame, or the 101 and an echo).
fn probe(target: &Target, prefix: &str, t: Transport) -> Result<(), u16> {
    let id = sid("t");
    let session = |kind: &str| format!("{prefix}/000/{id}/{kind}");
    match t {
        Transport::WebSocket | Transport::RawWebSocket => {
            let path = match t {
                Transport::WebSocket => session("websocket"),
                _ => format!("{prefix}/websocket"),
            };
            let status = upgrade_status(target, &path);
            if status != 101 {
                return Err(status);
            }
            let mut ws = target.raw_ws(&path, &[]);
            if t == Transport::WebSocket {
                assert_eq!(support::ws_text(&mut ws).as_deref(), Some("o"));
                ws.send(Message::text("[\"x\"]")).unwrap();
                assert_eq!(support::ws_text(&mut ws).as_deref(), Some("a[\"x\"]"));
            } else {
                ws.send(Message::text("x")).unwrap();
                assert_eq!(support::ws_text(&mut ws).as_deref(), Some("x"));
            }
            Ok(())
        }
        Transport::XhrPolling | Transport::JsonpPolling => {
            let (request, open) = match t {
                Transport::XhrPolling => (Request::new("POST", &session("xhr")), "o\n"),
                _ => (
                    Request::new("GET", &session("jsonp?c=cb")),
                    "/**/cb(\"o\");\r\n",
                ),
            };
            let response = target.request(&request);
            if response.status() != 200 {
                return Err(response.status());
            }
            assert_eq!(response.text(), open);
            Ok(())
        }
        Transport::XhrStreaming | Transport::EventSource | Transport::HtmlFile => {
            let request = match t {
                Transport::XhrStreaming => Request::new("POST", &session("xhr_streaming")),
                Transport::EventSource => Request::new("GET", &session("eventsource")),
                _ => Request::new("GET", &session("htmlfile?c=cb")),
            };
            let mut conn = target.conn();
            conn.send(&request).unwrap();
            let head = conn.read_head().unwrap();
            if head.status != 200 {
                return Err(head.status);
            }
            let _prelude = conn.read_chunk().unwrap();
            let open = String::from_utf8(conn.read_chunk().unwrap()).unwrap();
            assert!(open.contains('o'), "{t:?}: {open:?}");
            Ok(())
        }
    }
}

#[test]
fn s2_a_disabled_transport_gets_404_and_the_others_still_work() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let mounts = Transport::ALL
                .into_iter()
                .map(|t| {
                    let options = Options {
                        transports: Transports::ALL.without(t),
                        ..Options::default()
                    };
                    Mount::new(&without(t), options, echo())
                })
                .collect();
            let target = start_services(adapter, config(), mounts);
            for off in Transport::ALL {
                let prefix = without(off);
                for t in Transport::ALL {
                    let got = probe(&target, &prefix, t);
                    if t == off {
                        assert_eq!(got, Err(404), "{adapter:?} {prefix}: {t:?}");
                    } else {
                        assert_eq!(got, Ok(()), "{adapter:?} {prefix}: {t:?}");
                    }
                }
                let websocket = off != Transport::WebSocket;
                let info = info(&target, &prefix);
                assert!(
                    info.contains(&format!("\"websocket\":{websocket}")),
                    "{adapter:?} {prefix}: {info}"
                );
            }
            // The senders follow their receivers: jsonp_send is gone with JSONP-polling,
            // xhr_send stays while other transports send through it.
            let id = sid("s");
            let jsonp_send = format!("{}/000/{id}/jsonp_send", without(Transport::JsonpPolling));
            let form = ("Content-Type", "application/x-www-form-urlencoded");
            let response = target.request(
                &Request::new("POST", &jsonp_send)
                    .header(form.0, form.1)
                    .body("d=[]"),
            );
            assert_eq!(response.status(), 404, "{adapter:?}");
            let prefix = without(Transport::XhrPolling);
            let open = format!("{prefix}/000/{id}/xhr_streaming");
            let mut stream = target.conn();
            stream.send(&Request::new("POST", &open)).unwrap();
            assert_eq!(stream.read_head().unwrap().status, 200);
            let send = format!("{prefix}/000/{id}/xhr_send");
            let response = target.request(&Request::new("POST", &send).body("[\"y\"]"));
            assert_eq!(response.status(), 204, "{adapter:?}");
        }
    });
}

// ---------------------------------------------------------------------------------------
// §3.4 and §4.2: the cookie
// ---------------------------------------------------------------------------------------

#[test]
fn s3_4_cookie_attributes_custom_cookies_and_cookie_needed() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let attributes = CookieAttributes::new()
                .with_name("SRV")
                .unwrap()
                .with_same_site(SameSite::None)
                .with_http_only(true);
            let echo_options = Options {
                jsessionid: Jsessionid::Echo(attributes),
                ..Options::default()
            };
            let custom_options = Options {
                jsessionid: Jsessionid::custom(|request| {
                    let node = request.headers.get("x-node")?.to_str().ok()?;
                    http::HeaderValue::from_str(&format!("LB={node}; Path=/; Secure")).ok()
                }),
                ..Options::default()
            };
            let bound_options = Options {
                session_binding: SessionBinding::Cookie,
                ..Options::default()
            };
            let mounts = vec![
                Mount::new("/attrs", echo_options, echo()),
                Mount::new("/custom", custom_options, echo()),
                Mount::new("/bound", bound_options, echo()),
                Mount::new("/plain", Options::default(), echo()),
            ];
            let target = start_services(adapter, config(), mounts);
            let xhr = |prefix: &str, headers: &[(&str, &str)]| {
                let path = format!("{prefix}/000/{}/xhr", sid("c"));
                let response = target.request(&Request::new("POST", &path).headers(headers));
                assert_eq!(response.text(), "o\n");
                response.header("set-cookie").map(str::to_owned)
            };
            let tail = "; path=/; Secure; HttpOnly; SameSite=None";
            assert_eq!(xhr("/attrs", &[]), Some(format!("SRV=dummy{tail}")));
            let jar = [("Cookie", "SRV=node7")];
            assert_eq!(xhr("/attrs", &jar), Some(format!("SRV=node7{tail}")));
            let node = [("X-Node", "n1")];
            assert_eq!(
                xhr("/custom", &node).as_deref(),
                Some("LB=n1; Path=/; Secure")
            );
            assert_eq!(xhr("/custom", &[]), None);
            // A bound service's tokens: 128 random bits each, never `dummy`, which counts as
            // no cookie, in an `HttpOnly` cookie; a send without one gets no `dummy` to come
            // back with.
            let token = |cookie: Option<String>| {
                let cookie = cookie.expect("a cookie");
                let token = cookie
                    .strip_prefix("JSESSIONID=")
                    .and_then(|c| c.strip_suffix("; path=/; HttpOnly"))
                    .unwrap_or_else(|| panic!("{cookie}"))
                    .to_owned();
                assert_eq!(token.len(), 32, "{adapter:?} {token}");
                assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
                token
            };
            let first = token(xhr("/bound", &[]));
            let again = token(xhr("/bound", &[("Cookie", "JSESSIONID=dummy")]));
            assert_ne!(first, again, "{adapter:?}");
            let send = Request::new("POST", &format!("/bound/000/{}/xhr_send", sid("s")));
            let refused = target.request(&send.body(r#"["x"]"#));
            assert_eq!(refused.status(), 404, "{adapter:?}");
            assert_eq!(refused.header("set-cookie"), None, "{adapter:?}");
            assert_eq!(xhr("/plain", &jar), None);
            for (prefix, needed) in [
                ("/attrs", true),
                ("/custom", true),
                ("/bound", true),
                ("/plain", false),
            ] {
                let response = target.request(&Request::new("GET", &format!("{prefix}/info")));
                assert_eq!(response.header("set-cookie"), None, "{adapter:?} {prefix}");
                let field = format!("\"cookie_needed\":{needed}");
                assert!(response.text().contains(&field), "{adapter:?} {prefix}");
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// §7.1.3: heartbeats off
// ---------------------------------------------------------------------------------------

#[test]
fn s7_1_3_heartbeats_off_nothing_is_sent_to_an_idle_receiver() {
    const QUIET: Duration = Duration::from_millis(1500);
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let options = |heartbeat_delay| Options {
                heartbeat_delay,
                ..Options::default()
            };
            let short = Some(Duration::from_millis(300));
            let mounts = vec![
                Mount::new("/off", options(None), echo()),
                Mount::new("/on", options(short), echo()),
            ];
            let target = start_services(adapter, config(), mounts);
            // The same receivers with a short heartbeat get `h`: the check can see one.
            for (prefix, beats) in [("/on", true), ("/off", false)] {
                let id = sid("hb");
                let path = format!("{prefix}/000/{id}/xhr_streaming");
                let mut stream = target.conn();
                stream.send(&Request::new("POST", &path)).unwrap();
                assert_eq!(stream.read_head().unwrap().status, 200);
                assert_eq!(stream.read_chunk().unwrap().len(), 2049, "prelude");
                assert_eq!(stream.read_chunk().unwrap(), b"o\n");
                let mut ws = target.raw_ws(&format!("{prefix}/000/{id}/websocket"), &[]);
                assert_eq!(ws_read(&mut ws).as_deref(), Some("o"));
                let mut raw = target.raw_ws(&format!("{prefix}/websocket"), &[]);
                stream.set_read_timeout(QUIET).unwrap();
                set_ws_timeout(&ws, QUIET);
                set_ws_timeout(&raw, QUIET);
                let chunk = stream.read_chunk().ok();
                let text = ws_read(&mut ws);
                let ping = ws_read(&mut raw);
                if beats {
                    assert_eq!(chunk.as_deref(), Some(&b"h\n"[..]), "{adapter:?}");
                    assert_eq!(text.as_deref(), Some("h"), "{adapter:?}");
                    assert_eq!(ping.as_deref(), Some("ping"), "{adapter:?}");
                } else {
                    assert_eq!(chunk, None, "{adapter:?}: no h on the stream");
                    assert_eq!(text, None, "{adapter:?}: no h on the WebSocket");
                    assert_eq!(ping, None, "{adapter:?}: no ping on the raw WebSocket");
                    // The sockets are alive: they still echo.
                    ws.send(Message::text("[\"x\"]")).unwrap();
                    assert_eq!(ws_read(&mut ws).as_deref(), Some("a[\"x\"]"));
                    raw.send(Message::text("y")).unwrap();
                    assert_eq!(ws_read(&mut raw).as_deref(), Some("y"));
                }
            }
        }
    });
}

fn set_ws_timeout(ws: &WebSocket<TcpStream>, timeout: Duration) {
    ws.get_ref().set_read_timeout(Some(timeout)).unwrap();
}

/// The next frame as text: a text message, `ping`, `close CODE REASON`; `None` on a
/// timeout or error. Pings are answered (tungstenite queues the pong; it is flushed here).
fn ws_read(ws: &mut WebSocket<TcpStream>) -> Option<String> {
    let message = ws.read();
    let _ = ws.flush();
    match message.ok()? {
        Message::Text(t) => Some(t.as_str().to_owned()),
        Message::Ping(_) => Some("ping".to_owned()),
        Message::Pong(_) => Some("pong".to_owned()),
        Message::Close(frame) => frame.map(|f| format!("close {} {}", u16::from(f.code), f.reason)),
        other => Some(format!("{other:?}")),
    }
}

// ---------------------------------------------------------------------------------------
// §9.2: WebSocket dead-peer detection
// ---------------------------------------------------------------------------------------

const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(300);
/// The pong timeout for the peer that answers: it pongs only while the test thread reads,
/// so a short timeout would close it whenever the machine stalls the thread that long.
const ALIVE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Slack on the upper bound of the close (scheduling on a shared machine).
const SLACK: Duration = Duration::from_secs(3);

/// While the server holds a socket's reads back (its application's queue full), the
/// client's pongs wait unread in the socket: that is no silence of the client's, and the
/// session is not closed as unresponsive (before: closed `interval + timeout` into the
/// hold, 3000 "No response from heartbeat", a healthy client blamed for the server's
/// backpressure). Pings start again once reads resume.
#[test]
fn s9_2_a_websocket_whose_reads_are_held_back_is_not_taken_for_unresponsive() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    within(LIMIT, || {
        for adapter in ADAPTERS {
            let go = Arc::new(AtomicBool::new(false));
            let taking = go.clone();
            // Takes nothing until the test says so, then everything, and says `done`.
            let slow = handler(move |mut session: Session| {
                let taking = taking.clone();
                async move {
                    while !taking.load(Ordering::Acquire) {
                        async_io::Timer::after(Duration::from_millis(20)).await;
                    }
                    for _ in 0..MESSAGES {
                        if session.recv().await.is_none() {
                            return;
                        }
                    }
                    let _ = session.send("done").await;
                    while session.recv().await.is_some() {}
                }
            });
            let options = Options {
                websocket_ping: Some(PingOptions {
                    interval: INTERVAL,
                    timeout: ALIVE_TIMEOUT,
                }),
                ..Options::default()
            };
            let config = Config {
                max_session_inbound_bytes: 16 * 1024,
                ..config()
            };
            let target = start_services(adapter, config, vec![Mount::new("/held", options, slow)]);
            let mut ws = target.ws(&format!("/held/000/{}/websocket", sid("h")));
            // 24 KiB: past the 16 KiB bound (reads are held), under twice it (no overflow).
            let message = format!("[\"{}\"]", "m".repeat(1020));
            for _ in 0..MESSAGES {
                ws.write(Message::text(message.clone())).unwrap();
            }
            ws.flush().unwrap();
            // Held longer than a ping's interval and timeout together, answering pings.
            set_ws_timeout(&ws, Duration::from_millis(50));
            let until = Instant::now() + INTERVAL + ALIVE_TIMEOUT + Duration::from_millis(700);
            while Instant::now() < until {
                match ws_read(&mut ws) {
                    Some(frame) if frame == "ping" => {}
                    Some(frame) => panic!("{adapter:?}: {frame} while reads are held"),
                    None => {}
                }
            }
            go.store(true, Ordering::Release);
            set_ws_timeout(&ws, Duration::from_secs(5));
            loop {
                match ws_read(&mut ws).as_deref() {
                    Some("ping") => continue,
                    other => {
                        assert_eq!(other, Some("a[\"done\"]"), "{adapter:?}");
                        break;
                    }
                }
            }
        }
    });
}

/// Messages of the held-reads test: 24 of 1 KiB.
const MESSAGES: usize = 24;

/// Echoes, then reports the session's transport, close reason and the time it closed.
fn closing_echo(tx: Sender<(Transport, Option<CloseReason>, Instant)>) -> Handler {
    handler(move |mut session: Session| {
        let tx = tx.clone();
        async move {
            while let Some(text) = session.recv().await {
                let _ = session.send(text).await;
            }
            let _ = tx.send((session.transport(), session.close_reason(), Instant::now()));
        }
    })
}

#[test]
fn s9_2_a_websocket_peer_that_stops_answering_pings_is_closed_within_the_bound() {
    within(LIMIT, || {
        for adapter in ADAPTERS {
            let (tx, rx) = mpsc::channel();
            let pinging = |timeout| Options {
                websocket_ping: Some(PingOptions {
                    interval: INTERVAL,
                    timeout,
                }),
                ..Options::default()
            };
            let target = start_services(
                adapter,
                config(),
                vec![
                    Mount::new("/app", pinging(TIMEOUT), closing_echo(tx.clone())),
                    Mount::new("/alive", pinging(ALIVE_TIMEOUT), closing_echo(tx)),
                ],
            );
            let bound = INTERVAL + TIMEOUT;
            for transport in [Transport::WebSocket, Transport::RawWebSocket] {
                let path = match transport {
                    Transport::WebSocket => format!("/app/000/{}/websocket", sid("p")),
                    _ => "/app/websocket".to_owned(),
                };
                // A peer that stops answering: after the handshake it reads nothing, so the
                // pings sit in its socket unanswered.
                let start = Instant::now();
                let mut silent = target.raw_ws(&path, &[]);
                let (seen, reason, at) = rx.recv_timeout(bound + SLACK).unwrap_or_else(|_| {
                    panic!(
                        "{adapter:?} {transport:?}: not closed within {:?}",
                        bound + SLACK
                    )
                });
                let after = at - start;
                assert_eq!(seen, transport);
                assert_eq!(reason, Some(CloseReason::PeerUnresponsive), "{adapter:?}");
                assert!(
                    after >= bound,
                    "{adapter:?} {transport:?}: closed after {after:?}"
                );
                // What it would have read: (the `o` frame,) the ping, then the close.
                let mut frames = Vec::new();
                set_ws_timeout(&silent, Duration::from_secs(5));
                while let Some(frame) = ws_read(&mut silent) {
                    let end = frame.starts_with("close");
                    frames.push(frame);
                    if end {
                        break;
                    }
                }
                let close = format!(
                    "close {} {}",
                    PingOptions::CLOSE_CODE,
                    PingOptions::CLOSE_REASON
                );
                assert_eq!(frames.last(), Some(&close), "{adapter:?}: {frames:?}");
                assert!(
                    frames.contains(&"ping".to_owned()),
                    "{adapter:?}: {frames:?}"
                );
                assert!(
                    !frames.iter().any(|f| f.starts_with("c[")),
                    "{adapter:?}: no c frame, as sockjs-node: {frames:?}"
                );
            }
            // A peer that answers (tungstenite pongs as it reads) stays past the bound.
            let mut alive = target.ws(&format!("/alive/000/{}/websocket", sid("a")));
            set_ws_timeout(&alive, Duration::from_millis(50));
            let until = Instant::now() + 2 * (INTERVAL + ALIVE_TIMEOUT);
            let mut pings = 0;
            while Instant::now() < until {
                match ws_read(&mut alive) {
                    Some(frame) if frame == "ping" => pings += 1,
                    Some(frame) => panic!("{adapter:?}: {frame}"),
                    None => {}
                }
            }
            assert!(pings >= 2, "{adapter:?}: {pings} pings");
            alive.send(Message::text("[\"still\"]")).unwrap();
            set_ws_timeout(&alive, Duration::from_secs(5));
            loop {
                match ws_read(&mut alive).as_deref() {
                    Some("ping") => continue,
                    other => {
                        assert_eq!(other, Some("a[\"still\"]"), "{adapter:?}");
                        break;
                    }
                }
            }
            assert!(
                rx.try_recv().is_err(),
                "{adapter:?}: the answering peer was closed"
            );
        }
    });
}
