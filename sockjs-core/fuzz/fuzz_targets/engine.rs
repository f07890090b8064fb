//! Whole scripts of engine inputs on virtual time. Invariants checked on every transmit and
//! event: each request is answered at most once, nothing is written after a request's last
//! write, and streams are well formed; sessions open once and close once, with no event
//! after their close; queues stay within their bound; and at the end, once every client is
//! gone and the disconnect delay has passed, nothing is left.
#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sockjs_core::{
    AbortPolicy, Content, Engine, Event, Options, PingOptions, RequestId, SessionKey, SessionState,
    Start, Transmit,
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
struct Script {
    abort: u8,
    response_limit: u16,
    max_queued: u16,
    max_sessions: u8,
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
const HEADERS: [&str; 12] = [
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
];

#[derive(Default)]
struct Check {
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

    fn transmit(&mut self, request: RequestId, content: Content) {
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
            Content::WsClose { reason, .. } => {
                assert!(
                    reason.len() <= 123,
                    "close reason too long for a control frame"
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

fuzz_target!(|script: Script| {
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
        ..Options::default()
    };
    let max_queued = options.max_queued_bytes;
    let mut now = Instant::now();
    let start = Start {
        now,
        wall_clock: SystemTime::UNIX_EPOCH,
        seed: 1,
    };
    let mut engine = Engine::new(options, start).expect("valid options");
    let mut check = Check::default();
    let mut next = 0u64;
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
            } => {
                next += 1;
                let id = RequestId(next);
                requests.push(id);
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
                    let (parts, body) = request.into_parts();
                    if let Some(held) = engine.attached_receiver(&parts) {
                        assert!(
                            !check.answered.contains(&held),
                            "a finished receiver is not attached"
                        );
                    }
                    engine.handle_request(now, id, http::Request::from_parts(parts, body));
                }
            }
            Op::RawRequest { method, uri, body } => {
                next += 1;
                let id = RequestId(next);
                requests.push(id);
                if let Ok(request) = http::Request::builder()
                    .method(method.as_str())
                    .uri(uri)
                    .body(Bytes::from(body))
                {
                    engine.handle_request(now, id, request);
                }
            }
            Op::Abort { pick } => {
                if let Some(id) = pick_from(&requests, pick) {
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
                engine.handle_timeout(now);
            }
        }
        check.drain(&mut engine);
    }
    // Every client goes away; after the disconnect delay nothing may be left.
    for id in requests {
        engine.handle_abort(now, id);
    }
    check.drain(&mut engine);
    now += Duration::from_secs(2);
    engine.handle_timeout(now);
    check.drain(&mut engine);
    assert_eq!(engine.session_count(), 0);
    assert_eq!(engine.pending_requests(), 0);
    assert_eq!(check.opened.len(), check.closed.len());
});

fn pick_from<T: Copy>(items: &[T], pick: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(pick) % items.len()])
}
