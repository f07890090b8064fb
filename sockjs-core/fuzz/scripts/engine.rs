//! The engine fuzz target's scripts, shared with `sockjs-core/tests/engine_scripts.rs`,
//! which replays the committed seeds and random scripts under `cargo test`.
//!
//! Whole scripts of engine inputs on virtual time, under options drawn from the script
//! (transports, cookie and binding, origins, protocol version, body and message limits,
//! permessage-deflate, trusted proxies, heartbeats, dead-peer detection). Invariants
//! checked on every transmit and event: writes go only to requests handed in and not
//! dropped; each request is answered at most once, nothing is written after a request's
//! last write, and streams are well formed; sessions open once, only for a request
//! `opens_session` named, and close once, with no event after their close; queues and the
//! session count stay within their bounds; after every input the engine holds exactly the
//! requests it has not finished with; a timer input leaves the next deadline in the
//! future; and at the end, once every client is gone and the timers the engine asks for
//! have run, nothing is left.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use arbitrary::Arbitrary;
use bytes::Bytes;
use sockjs_core::{
    AbortPolicy, Content, DeflateOptions, Engine, Event, Jsessionid, Options, OriginPolicy,
    PeerAddr, PingOptions, ProtocolVersion, Rejection, RequestId, SessionBinding, SessionKey,
    SessionState, Start, Transmit, Transport, Transports,
};

#[derive(Debug, Arbitrary)]
enum Op {
    Request {
        method: u8,
        path: u8,
        session: u8,
        query: u8,
        headers: Vec<(u8, String)>,
        body: Vec<u8>,
        peer: u8,
    },
    /// A well-formed WebSocket handshake: SockJS's, raw, or hixie-76's.
    WsUpgrade {
        kind: u8,
        session: u8,
        peer: u8,
    },
    /// The application refuses a request that would open a session (its admission).
    Rejected {
        kind: u8,
        session: u8,
        status: u16,
        code: u16,
        reason: String,
    },
    /// A clock that goes back (two shards' readings, a virtualised one): the engine keeps
    /// the latest time it was given.
    Rewind {
        ms: u16,
    },
    RawRequest {
        method: String,
        uri: String,
        body: Vec<u8>,
    },
    Abort {
        pick: u8,
    },
    WsText {
        pick: u8,
        text: String,
    },
    WsBinary {
        pick: u8,
        data: Vec<u8>,
    },
    WsClosed {
        pick: u8,
    },
    WsTooBig {
        pick: u8,
    },
    WsMessageTimeout {
        pick: u8,
    },
    Send {
        pick: u8,
        text: String,
    },
    Close {
        pick: u8,
        code: u16,
        reason: String,
    },
    CloseAll,
    Advance {
        ms: u16,
    },
    WsPong {
        pick: u8,
    },
    WsReadsHeld {
        pick: u8,
        held: bool,
    },
}

#[derive(Debug, Arbitrary)]
pub struct Script {
    abort: u8,
    response_limit: u16,
    max_queued: u16,
    max_sessions: u8,
    /// Which transports are off, one bit each.
    transports_off: u8,
    /// Cookie, binding, origins, protocol, deflate, proxies, limits: see `options`.
    flags: u16,
    limit: u16,
    ops: Vec<Op>,
}

const METHODS: [&str; 5] = ["GET", "POST", "OPTIONS", "PUT", "HEAD"];
const PATHS: [&str; 14] = [
    "",
    "/info",
    "/iframe.html",
    "/websocket",
    "/xhr",
    "/xhr_streaming",
    "/xhr_send",
    "/eventsource",
    "/htmlfile",
    "/jsonp",
    "/jsonp_send",
    "/websocket",
    "/iframe-1.2.html",
    "/",
];
const HEADERS: [&str; 15] = [
    "origin",
    "upgrade",
    "connection",
    "sec-websocket-version",
    "sec-websocket-key",
    "sec-websocket-key1",
    "sec-websocket-key2",
    "cookie",
    "content-type",
    "access-control-request-headers",
    "if-none-match",
    "host",
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
];

#[derive(Default)]
struct Check {
    /// Requests handed to the engine, and those it must write nothing more to (dropped by
    /// the client, or closed sockets).
    handed: HashSet<RequestId>,
    gone: HashSet<RequestId>,
    answered: HashSet<RequestId>,
    streaming: HashSet<RequestId>,
    sockets: HashSet<RequestId>,
    opened: HashSet<SessionKey>,
    closed: HashSet<SessionKey>,
    live: Vec<SessionKey>,
}

impl Check {
    fn drain(&mut self, engine: &mut Engine) {
        loop {
            while let Some(Transmit { request, content }) = engine.poll_transmit() {
                self.transmit(request, content);
            }
            let Some(event) = engine.poll_event() else {
                return;
            };
            self.event(engine, event);
        }
    }

    /// The engine holds exactly the requests it has not finished with: neither answered
    /// (a stream until its end) nor dropped by the client, and the sockets it has not
    /// closed nor seen closed. A request it forgot unanswered, or one it kept after its
    /// answer, would pass the transmit checks.
    fn holds_exactly_the_unfinished(&self, engine: &Engine) {
        let unanswered = self
            .handed
            .iter()
            .filter(|id| !self.answered.contains(id) && !self.gone.contains(id))
            .count();
        let sockets = self
            .sockets
            .iter()
            .filter(|id| !self.gone.contains(id))
            .count();
        assert_eq!(
            engine.pending_requests(),
            unanswered + sockets,
            "held requests: {unanswered} unanswered, {sockets} open sockets"
        );
    }

    fn transmit(&mut self, request: RequestId, content: Content) {
        assert!(
            self.handed.contains(&request),
            "written to a request never handed in"
        );
        assert!(
            !self.gone.contains(&request),
            "written to a request the client dropped"
        );
        let last = content.is_last();
        match content {
            Content::Response(_) => {
                assert!(self.answered.insert(request), "answered twice");
                assert!(!self.streaming.contains(&request));
            }
            Content::StreamStart(_) => {
                assert!(!self.answered.contains(&request));
                assert!(self.streaming.insert(request));
            }
            Content::Chunk(data) => {
                assert!(self.streaming.contains(&request) && !self.answered.contains(&request));
                assert!(!data.is_empty());
            }
            Content::StreamEnd => {
                assert!(self.streaming.contains(&request));
                assert!(self.answered.insert(request), "stream ended twice");
            }
            Content::Upgrade { .. } => {
                assert!(self.answered.insert(request));
                self.sockets.insert(request);
            }
            Content::WsText(_) | Content::WsPing => {
                assert!(self.sockets.contains(&request));
            }
            Content::WsClose { code, reason } => {
                assert!(
                    reason.len() <= 123,
                    "close reason too long for a control frame"
                );
                // RFC 6455 §7.4: none of the codes an endpoint may not send.
                assert!(
                    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
                    "close code {code}"
                );
                assert!(self.sockets.remove(&request), "socket closed twice");
            }
            other => panic!("unknown transmit {other:?}"),
        }
        if last {
            assert!(self.answered.contains(&request) && !self.sockets.contains(&request));
        }
    }

    fn event(&mut self, engine: &Engine, event: Event) {
        match event {
            Event::Opened { session, .. } => {
                assert!(self.opened.insert(session), "opened twice");
                self.live.push(session);
            }
            Event::Message { session, .. } => {
                assert!(self.opened.contains(&session) && !self.closed.contains(&session));
            }
            Event::Closed { session, .. } => {
                assert!(self.opened.contains(&session));
                assert!(self.closed.insert(session), "closed twice");
                assert_eq!(engine.session_state(session), SessionState::Closed);
                self.live.retain(|k| *k != session);
            }
            other => panic!("unknown event {other:?}"),
        }
    }
}

/// The peer address a request comes from: none, a trusted proxy's, or a client's.
fn peer(pick: u8) -> Option<PeerAddr> {
    let ip = match pick % 4 {
        0 => return None,
        1 => Ipv4Addr::new(10, 0, 0, 1),
        2 => Ipv4Addr::new(192, 0, 2, pick),
        _ => Ipv4Addr::new(198, 51, 100, 7),
    };
    Some(PeerAddr(SocketAddr::new(IpAddr::V4(ip), 40_000)))
}

fn options(script: &Script) -> Options {
    let flags = script.flags;
    let mut transports: Transports = Transport::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| script.transports_off & (1 << i) == 0)
        .map(|(_, t)| t)
        .collect();
    if transports.is_empty() {
        transports = Transports::ALL;
    }
    let limit = usize::from(script.limit).max(1);
    Options {
        transports,
        jsessionid: if flags & 1 != 0 {
            Jsessionid::echo()
        } else {
            Jsessionid::Off
        },
        session_binding: match (flags >> 1) % 4 {
            1 => SessionBinding::Cookie,
            2 => SessionBinding::PeerIp,
            _ => SessionBinding::None,
        },
        origins: if flags & 8 != 0 {
            OriginPolicy::list(["http://a.example", "null"])
        } else {
            OriginPolicy::Any
        },
        protocol: if flags & 16 != 0 {
            ProtocolVersion::V0_3_3
        } else {
            ProtocolVersion::Current
        },
        permessage_deflate: (flags & 32 != 0).then(DeflateOptions::default),
        trusted_proxies: if flags & 64 != 0 {
            vec!["10.0.0.0/8".parse().expect("a range")]
        } else {
            Vec::new()
        },
        max_request_body: if flags & 128 != 0 { limit } else { 1 << 18 },
        max_message_size: if flags & 256 != 0 { limit } else { 1 << 18 },
        ..Options::default()
    }
}

/// Runs one script, panicking at the first broken invariant; returns how many sessions it
/// opened.
pub fn run(script: Script) -> usize {
    let options = Options {
        abort: match script.abort % 3 {
            0 => AbortPolicy::CloseSession,
            1 => AbortPolicy::Interrupt,
            _ => AbortPolicy::Detach,
        },
        response_limit: usize::from(script.response_limit).max(1),
        max_queued_bytes: usize::from(script.max_queued).max(1),
        max_sessions: usize::from(script.max_sessions).max(1),
        heartbeat_delay: (script.abort & 8 == 0).then_some(Duration::from_millis(700)),
        disconnect_delay: Duration::from_millis(300),
        hixie76: script.abort & 4 != 0,
        websocket_ping: (script.abort & 16 != 0).then_some(PingOptions {
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(200),
        }),
        // The requests below are built under `/p`: without the prefix every one of them
        // is a 404 and no session, socket or send is ever reached.
        prefix: "/p".to_owned(),
        ..options(&script)
    };
    let max_sessions = options.max_sessions;
    let max_queued = options.max_queued_bytes;
    // Rewinds stop at the start: the timeline never depends on the machine's uptime.
    let begin = Instant::now();
    let mut now = begin;
    // The latest time the engine was given: its own clock, which never goes back.
    let mut latest = begin;
    let start = Start {
        now,
        wall_clock: SystemTime::UNIX_EPOCH,
        seed: 1,
    };
    let mut engine = Engine::new(options, start).expect("valid options");
    let mut check = Check::default();
    let mut requests: Vec<RequestId> = Vec::new();
    for op in script.ops {
        match op {
            Op::Request {
                method,
                path,
                session,
                query,
                headers,
                body,
                peer: from,
            } => {
                let id = issue(&mut requests);
                let path = PATHS[usize::from(path) % PATHS.len()];
                let uri = if matches!(
                    path,
                    "" | "/" | "/info" | "/iframe.html" | "/iframe-1.2.html"
                ) || path == "/websocket" && session % 2 == 0
                {
                    format!("/p{path}{}", if query % 2 == 0 { "" } else { "?c=cb" })
                } else {
                    format!(
                        "/p/s/{}{path}{}",
                        session % 4,
                        ["", "?c=cb", "?c=a%28", "?callback=x.y"][usize::from(query) % 4]
                    )
                };
                let mut builder = http::Request::builder()
                    .method(METHODS[usize::from(method) % METHODS.len()])
                    .uri(uri);
                for (name, value) in headers.iter().take(8) {
                    if let Ok(value) = http::HeaderValue::from_str(value) {
                        builder =
                            builder.header(HEADERS[usize::from(*name) % HEADERS.len()], value);
                    }
                }
                if let Ok(request) = builder.body(Bytes::from(body)) {
                    check.hand_in(&mut engine, now, id, request, peer(from));
                }
            }
            Op::WsUpgrade {
                kind,
                session,
                peer: from,
            } => {
                let id = issue(&mut requests);
                let deflate = kind & 4 != 0;
                let (uri, headers, body): (String, &[(&str, &str)], &[u8]) = match kind % 3 {
                    0 => (format!("/p/s/{}/websocket", session % 4), &RFC6455, b""),
                    1 => ("/p/websocket".to_owned(), &RFC6455, b""),
                    _ => (
                        format!("/p/s/{}/websocket", session % 4),
                        &HIXIE76,
                        b"^n:ds[4U",
                    ),
                };
                let mut builder = head("GET", uri, headers);
                if deflate {
                    builder = builder.header(
                        "sec-websocket-extensions",
                        "permessage-deflate; client_max_window_bits",
                    );
                }
                if let Ok(request) = builder.body(Bytes::from_static(body)) {
                    check.hand_in(&mut engine, now, id, request, peer(from));
                }
            }
            Op::Rejected {
                kind,
                session,
                status,
                code,
                reason,
            } => {
                let id = issue(&mut requests);
                let sid = session % 4;
                let (method, uri, headers): (&str, String, &[(&str, &str)]) = match kind % 4 {
                    0 => ("POST", format!("/p/s/{sid}/xhr"), &[]),
                    1 => ("GET", format!("/p/s/{sid}/eventsource"), &[]),
                    2 => ("GET", format!("/p/s/{sid}/websocket"), &RFC6455),
                    _ => ("GET", "/p/websocket".to_owned(), &RFC6455),
                };
                let Ok(request) = head(method, uri, headers).body(()) else {
                    continue;
                };
                let (parts, ()) = request.into_parts();
                let status = http::StatusCode::from_u16(status.clamp(400, 599))
                    .unwrap_or(http::StatusCode::FORBIDDEN);
                let rejection = Rejection::new(status).with_close(code, &reason);
                let (opened, sessions) = (check.opened.len(), engine.session_count());
                let pending = engine.pending_requests();
                check.handed.insert(id);
                engine.handle_rejected(now, id, &parts, &rejection);
                check.drain(&mut engine);
                // Nothing of it stays, nothing opens, and it got its whole answer.
                assert_eq!(
                    check.opened.len(),
                    opened,
                    "a refused request opened a session"
                );
                assert_eq!(engine.session_count(), sessions);
                assert_eq!(engine.pending_requests(), pending, "a refused request held");
                assert!(check.answered.contains(&id), "a refused request unanswered");
                assert!(!check.sockets.contains(&id), "a refused socket left open");
            }
            Op::Rewind { ms } => {
                now = now
                    .checked_sub(Duration::from_millis(u64::from(ms)))
                    .map_or(begin, |then| then.max(begin));
            }
            Op::RawRequest { method, uri, body } => {
                let id = issue(&mut requests);
                if let Ok(request) = http::Request::builder()
                    .method(method.as_str())
                    .uri(uri)
                    .body(Bytes::from(body))
                {
                    check.hand_in(&mut engine, now, id, request, None);
                }
            }
            Op::Abort { pick } => {
                if let Some(id) = pick_from(&requests, pick) {
                    // Every timer due by now has had its input (time moves only in
                    // `Advance`): nothing at all may be written to it from here on.
                    check.gone.insert(id);
                    engine.handle_abort(now, id);
                }
            }
            Op::WsText { pick, text } => {
                if let Some(id) = pick_from(&requests, pick) {
                    engine.handle_ws_message(now, id, &text);
                }
            }
            Op::WsBinary { pick, data } => {
                if let Some(id) = pick_from(&requests, pick) {
                    engine.handle_ws_binary(now, id, &data);
                }
            }
            Op::WsClosed { pick } => {
                if let Some(id) = pick_from(&requests, pick) {
                    // Said of a request that is no socket, it is no input at all.
                    if check.sockets.contains(&id) {
                        check.gone.insert(id);
                    }
                    engine.handle_ws_closed(now, id);
                }
            }
            Op::WsTooBig { pick } => {
                if let Some(id) = pick_from(&requests, pick) {
                    engine.handle_ws_too_big(now, id);
                }
            }
            Op::WsMessageTimeout { pick } => {
                if let Some(id) = pick_from(&requests, pick) {
                    engine.handle_ws_message_timeout(now, id);
                }
            }
            Op::Send { pick, text } => {
                if let Some(key) = pick_from(&check.live, pick) {
                    let _ = engine.send(now, key, &text);
                    assert!(engine.queued_bytes(key).is_none_or(|q| q <= max_queued));
                }
            }
            Op::Close { pick, code, reason } => {
                if let Some(key) = pick_from(&check.live, pick) {
                    let _ = engine.close(now, key, code, &reason);
                }
            }
            Op::CloseAll => engine.close_all(now, 1001, "shutdown"),
            Op::WsPong { pick } => {
                if let Some(id) = pick_from(&requests, pick) {
                    engine.handle_ws_pong(now, id);
                }
            }
            Op::WsReadsHeld { pick, held } => {
                if let Some(id) = pick_from(&requests, pick) {
                    engine.handle_ws_reads_held(now, id, held);
                }
            }
            Op::Advance { ms } => {
                now += Duration::from_millis(u64::from(ms));
                latest = latest.max(now);
                engine.handle_timeout(now);
                check.drain(&mut engine);
                check.timers_ahead(&engine, latest);
            }
        }
        check.drain(&mut engine);
        latest = latest.max(now);
        assert!(engine.session_count() <= max_sessions);
        check.holds_exactly_the_unfinished(&engine);
    }
    // Every client goes away; the timers the engine asks for, given as a driver gives
    // them, must then end every session.
    for id in requests {
        check.gone.insert(id);
        engine.handle_abort(now, id);
        check.drain(&mut engine);
    }
    // Each input takes at least one entry off the heap; live sessions re-arm at most
    // twice (a heartbeat, then their expiry).
    let inputs = engine.timer_entries() + 2 * engine.session_count() + 64;
    let mut now = latest;
    for _ in 0..inputs {
        let Some(at) = engine.poll_timeout() else {
            break;
        };
        now = now.max(at);
        engine.handle_timeout(now);
        check.drain(&mut engine);
        check.timers_ahead(&engine, now);
    }
    assert_eq!(engine.session_count(), 0);
    assert_eq!(engine.pending_requests(), 0);
    assert_eq!(check.opened.len(), check.closed.len());
    check.opened.len()
}

impl Check {
    /// Hands a request in as a driver does, checking the session it opens was asked about.
    fn hand_in(
        &mut self,
        engine: &mut Engine,
        now: Instant,
        id: RequestId,
        request: http::Request<Bytes>,
        peer: Option<PeerAddr>,
    ) {
        let (mut parts, body) = request.into_parts();
        if let Some(peer) = peer {
            parts.extensions.insert(peer);
        }
        if let Some(held) = engine.attached_receiver(&parts) {
            assert!(
                !self.answered.contains(&held),
                "a finished receiver is not attached"
            );
        }
        let asked = engine.opens_session(&parts);
        let opened = self.opened.len();
        self.handed.insert(id);
        engine.handle_request(now, id, http::Request::from_parts(parts, body));
        self.drain(engine);
        assert!(
            self.opened.len() == opened || asked,
            "a session opened that opens_session did not name"
        );
    }

    /// A timer input leaves the next deadline in the future: a driver would spin otherwise.
    fn timers_ahead(&self, engine: &Engine, now: Instant) {
        if let Some(at) = engine.poll_timeout() {
            assert!(at > now, "a timer input left a deadline in the past");
        }
    }
}

/// A fresh request id, after the last one handed out.
fn issue(requests: &mut Vec<RequestId>) -> RequestId {
    let id = RequestId(requests.len() as u64 + 1);
    requests.push(id);
    id
}

/// A request head with these header fields.
fn head(method: &str, uri: String, headers: &[(&str, &str)]) -> http::request::Builder {
    headers.iter().fold(
        http::Request::builder().method(method).uri(uri),
        |builder, (name, value)| builder.header(*name, *value),
    )
}

/// A valid RFC 6455 handshake's header fields.
const RFC6455: [(&str, &str); 5] = [
    ("upgrade", "websocket"),
    ("connection", "Upgrade"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
    ("origin", "http://a.example"),
];

/// A valid hixie-76 handshake's header fields (its body is the 8-byte key3).
const HIXIE76: [(&str, &str); 6] = [
    ("upgrade", "WebSocket"),
    ("connection", "Upgrade"),
    ("host", "example.com"),
    ("origin", "http://a.example"),
    ("sec-websocket-key1", "4 @1  46546xW%0l 1 5"),
    ("sec-websocket-key2", "12998 5 Y3 1  .P00"),
];

fn pick_from<T: Copy>(items: &[T], pick: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(pick) % items.len()])
}
