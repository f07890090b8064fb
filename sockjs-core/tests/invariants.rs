//! Property tests over random scripts of engine inputs (virtual time):
//! - the engine never panics;
//! - each session opens once and closes once, with no event after its close;
//! - each request is answered at most once, chunks only inside a started stream;
//! - the application's messages reach the client in order, none lost or duplicated, across
//!   any sequence of receiver reconnects, heartbeats, response limits and aborts;
//! - queues stay within their bound, and the engine holds no request it has finished;
//! - a receiver or WebSocket opens a session exactly when `Engine::opens_session` said it
//!   would (PROTOCOL.md §7.3.1);
//! - a client's send is answered as PROTOCOL.md §6 says for the session's state (204 and
//!   delivered in order while open, 204 and dropped while closing, 404 without a session);
//! - a stream ends with the frame that takes it to the response limit, and no sooner
//!   unless closed;
//! - every frame is one of the protocol's, `o` first and once per session, nothing after a
//!   `c` on its request, and WebSocket close codes none of RFC 6455's reserved ones;
//! - a WebSocket's messages reach the application in order while its session is open, and
//!   broken JSON ends the socket with 3000 "Broken framing." and delivers nothing;
//! - an open WebSocket session has written everything the application's sends were
//!   accepted for (no receiver to wait for);
//! - every close frame and every session's close reason is one the script caused: the
//!   application's close, a second receiver (2010), an interrupted one (1002, under
//!   `AbortPolicy::Interrupt`), the client's close or broken JSON on a socket, a dropped
//!   request, a silent peer (with pings on), or expiry (HTTP sessions only);
//! - timers: the engine is given its timer input only at the deadlines it asks for, and
//!   each leaves the next deadline in the future (a driver would spin otherwise);
//! - all of this with heartbeats on or off, WebSocket dead-peer detection on or off, and
//!   timer inputs on time or late (a driver's timer fires after requests that come later
//!   than its deadline: the engine must act as time left the sessions).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{App, Harness};
use proptest::prelude::*;
use sockjs_core::{
    AbortPolicy, CloseReason, Options, PingOptions, RequestId, SessionKey, SessionState,
};

#[derive(Debug, Clone)]
enum Op {
    Receive {
        sid: u8,
        transport: u8,
    },
    ClientSend {
        sid: u8,
        count: u8,
    },
    AppSend {
        sid: u8,
        count: u8,
    },
    AppClose {
        sid: u8,
    },
    Abort {
        pick: u8,
    },
    Advance {
        ms: u32,
    },
    /// Time passes without the timer input: the next input comes late.
    Skip {
        ms: u32,
    },
    WsOpen,
    WsMessage {
        pick: u8,
        broken: bool,
    },
    WsClose {
        pick: u8,
    },
    WsPong {
        pick: u8,
    },
    WsReadsHeld {
        pick: u8,
        held: bool,
    },
    AppSendWs {
        pick: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u8, 0..5u8).prop_map(|(sid, transport)| Op::Receive { sid, transport }),
        2 => (0..3u8, 0..4u8).prop_map(|(sid, count)| Op::ClientSend { sid, count }),
        4 => (0..3u8, 1..4u8).prop_map(|(sid, count)| Op::AppSend { sid, count }),
        1 => (0..3u8).prop_map(|sid| Op::AppClose { sid }),
        2 => any::<u8>().prop_map(|pick| Op::Abort { pick }),
        3 => prop_oneof![0..100u32, 0..3_000u32, 0..30_000u32].prop_map(|ms| Op::Advance { ms }),
        1 => prop_oneof![0..3_000u32, 0..30_000u32].prop_map(|ms| Op::Skip { ms }),
        1 => Just(Op::WsOpen),
        1 => (any::<u8>(), prop::bool::weighted(0.1)).prop_map(|(pick, broken)| Op::WsMessage { pick, broken }),
        1 => any::<u8>().prop_map(|pick| Op::WsClose { pick }),
        1 => any::<u8>().prop_map(|pick| Op::WsPong { pick }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(pick, held)| Op::WsReadsHeld { pick, held }),
        2 => any::<u8>().prop_map(|pick| Op::AppSendWs { pick }),
    ]
}

fn options() -> impl Strategy<Value = Options> {
    (
        prop_oneof![
            Just(AbortPolicy::CloseSession),
            Just(AbortPolicy::Interrupt),
            Just(AbortPolicy::Detach)
        ],
        20..400usize,
        prop_oneof![Just(Some(1_000u64)), Just(Some(25_000)), Just(None)],
        prop_oneof![Just(500u64), Just(5_000)],
        prop_oneof![Just(64usize), Just(1 << 20)],
        prop_oneof![
            Just(None),
            Just(Some((700u64, 300u64))),
            Just(Some((2_000, 5_000)))
        ],
    )
        .prop_map(|(abort, limit, hb, dc, queue, ping)| Options {
            abort,
            response_limit: limit,
            heartbeat_delay: hb.map(Duration::from_millis),
            disconnect_delay: Duration::from_millis(dc),
            max_queued_bytes: queue,
            websocket_ping: ping.map(|(interval, timeout)| PingOptions {
                interval: Duration::from_millis(interval),
                timeout: Duration::from_millis(timeout),
            }),
            ..Options::default()
        })
}

const TRANSPORTS: [(&str, &str, &str); 5] = [
    ("POST", "xhr", ""),
    ("POST", "xhr_streaming", ""),
    ("GET", "eventsource", ""),
    ("GET", "jsonp", "?c=cb"),
    ("GET", "htmlfile", "?c=cb"),
];

/// The SockJS frame inside one transport's wrapping.
fn unwrap_frame(wrapped: &str) -> String {
    if let Some(rest) = wrapped.strip_prefix("data: ") {
        rest.trim_end()
            .replace("%25", "%")
            .replace("%0D", "\r")
            .replace("%0A", "\n")
            .replace("%00", "\0")
    } else if let Some(rest) = wrapped.strip_prefix("/**/cb(") {
        let js = rest.trim_end().trim_end_matches(';').trim_end_matches(')');
        serde_json::from_str::<String>(js).expect("jsonp literal")
    } else if let Some(rest) = wrapped.strip_prefix("<script>\np(") {
        let js = rest
            .trim_end()
            .trim_end_matches("</script>")
            .trim_end()
            .trim_end_matches(';')
            .trim_end_matches(')');
        serde_json::from_str::<String>(js).expect("htmlfile literal")
    } else {
        wrapped.trim_end().to_owned()
    }
}

/// Whether `frame` is one of the protocol's four (PROTOCOL.md §5): `o`, `h`, `a` with a
/// JSON array of strings, or `c` with a JSON `[code, "reason"]`.
fn well_formed(frame: &str) -> bool {
    match frame.split_at_checked(1) {
        Some(("o" | "h", "")) => true,
        Some(("a", json)) => serde_json::from_str::<Vec<String>>(json).is_ok(),
        Some(("c", json)) => serde_json::from_str::<(u16, String)>(json).is_ok(),
        _ => false,
    }
}

/// Every frame written to `id` so far, unwrapped, in order.
fn frames_of(ex: &common::Exchange) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = &ex.response {
        for line in String::from_utf8_lossy(r.body())
            .split_inclusive("\r\n")
            .flat_map(|s| s.split_inclusive('\n'))
        {
            out.push(unwrap_frame(line));
        }
    }
    for chunk in ex.chunk_strings().iter().skip(1) {
        out.push(unwrap_frame(chunk));
    }
    out.extend(ex.ws_texts.iter().map(|t| t.trim_end().to_owned()));
    out
}

/// The messages of an unwrapped `a[...]` frame; none for the other frames.
fn frame_messages(frame: &str) -> Vec<String> {
    match frame.strip_prefix('a') {
        Some(json) => serde_json::from_str(json).expect("a frame is a JSON array of strings"),
        None => Vec::new(),
    }
}

struct Model {
    /// Per session key: messages the app sent that the engine accepted, in order.
    accepted: HashMap<SessionKey, Vec<String>>,
    /// Requests to which session key (receivers) or websockets.
    receivers: Vec<(RequestId, String)>,
    sockets: Vec<RequestId>,
    /// Requests the client dropped.
    aborted: HashSet<RequestId>,
    /// Per session key: the client's messages the engine acknowledged while open, in order.
    received: HashMap<SessionKey, Vec<String>>,
    /// Sessions the application closed (always with 3000 "Go away!").
    app_closed: HashSet<SessionKey>,
    /// Sessions whose socket the client closed with a handshake.
    client_closed: HashSet<SessionKey>,
    /// Sessions whose socket carried broken JSON.
    broken: HashSet<SessionKey>,
    counter: u64,
}

/// The close frames the script can cause (PROTOCOL.md §7.1): the application's, a second
/// receiver's, and an interrupted receiver's.
const GO_AWAY: (u16, &str) = (3000, "Go away!");
const ANOTHER: (u16, &str) = (2010, "Another connection still open");
const INTERRUPTED: (u16, &str) = (1002, "Connection interrupted");

fn delivered(h: &Harness, key: SessionKey, model: &Model) -> Vec<String> {
    // Frames written to each receiver request of this session, in output order.
    let mut out = Vec::new();
    let mut order: Vec<(usize, RequestId)> = Vec::new();
    for (id, _) in &model.receivers {
        if let Some(pos) = h
            .log
            .iter()
            .position(|l| l == &format!("start {}", id.0) || l == &format!("respond {}", id.0))
        {
            order.push((pos, *id));
        }
    }
    for id in &model.sockets {
        if let Some(pos) = h.log.iter().position(|l| l == &format!("upgrade {}", id.0)) {
            order.push((pos, *id));
        }
    }
    order.sort();
    for (_, id) in order {
        let owner = session_of(h, id);
        if owner != Some(key) {
            continue;
        }
        for frame in frames_of(h.ex(id)) {
            out.extend(frame_messages(&frame));
        }
    }
    out
}

/// Which session a request served: the last session opened under its URL id before or at
/// the request (tracked through the log).
fn session_of(h: &Harness, id: RequestId) -> Option<SessionKey> {
    h.owner.get(&id).copied()
}

fn run(options: Options, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let max_queue = options.max_queued_bytes;
    let response_limit = options.response_limit;
    let interrupts = options.abort == AbortPolicy::Interrupt;
    let pings = options.websocket_ping.is_some();
    let mut h = Harness::new(options, App::Passive);
    let mut m = Model {
        accepted: HashMap::new(),
        receivers: Vec::new(),
        sockets: Vec::new(),
        aborted: HashSet::new(),
        received: HashMap::new(),
        app_closed: HashSet::new(),
        client_closed: HashSet::new(),
        broken: HashSet::new(),
        counter: 0,
    };
    for op in ops {
        match op {
            Op::Receive { sid, transport } => {
                let (method, name, query) = TRANSPORTS[transport as usize];
                let uri = format!("/s/{sid}/{name}{query}");
                // Asked as a driver asks: with the timers due by now fed first (the query
                // takes no time; the request runs them itself).
                h.advance(Duration::ZERO);
                let asks = h.opens(method, &uri, &[]);
                let before = h.opened.len();
                let id = h.request(method, &uri, &[], "");
                prop_assert_eq!(h.opened.len() - before, usize::from(asks), "{}", uri);
                m.receivers.push((id, sid.to_string()));
            }
            Op::ClientSend { sid, count } => {
                let msgs: Vec<String> = (0..count)
                    .map(|_| {
                        m.counter += 1;
                        format!("c{}", m.counter)
                    })
                    .collect();
                let id = h.request(
                    "POST",
                    &format!("/s/{sid}/xhr_send"),
                    &[],
                    &serde_json::to_string(&msgs).expect("json"),
                );
                // A send changes no session's state: what it found is what is left after
                // it (due timers ran first, however late their input).
                let key = h.current.get(&sid.to_string()).copied();
                let state = key.map(|key| h.engine.session_state(key));
                let status = h.ex(id).response.as_ref().map(|r| r.status().as_u16());
                match (key, state) {
                    (Some(key), Some(SessionState::Open)) => {
                        prop_assert_eq!(status, Some(204), "send to open {}", key);
                        m.received.entry(key).or_default().extend(msgs);
                    }
                    (Some(key), Some(SessionState::Closing)) => {
                        prop_assert_eq!(status, Some(204), "send to closing {}", key);
                    }
                    _ => prop_assert_eq!(status, Some(404), "send to no session {}", sid),
                }
            }
            Op::AppSend { sid, count } => {
                let key = h.current.get(&sid.to_string()).copied();
                if let Some(key) = key {
                    for _ in 0..count {
                        m.counter += 1;
                        let text = format!("m{}\u{2028}\"", m.counter);
                        if h.engine.send(h.now, key, &text).is_ok() {
                            m.accepted.entry(key).or_default().push(text);
                        }
                    }
                    h.drain();
                }
            }
            Op::AppClose { sid } => {
                if let Some(key) = h.current.get(&sid.to_string()).copied() {
                    let _ = h.engine.close(h.now, key, GO_AWAY.0, GO_AWAY.1);
                    m.app_closed.insert(key);
                    h.drain();
                }
            }
            Op::Abort { pick } => {
                let open: Vec<RequestId> = m
                    .receivers
                    .iter()
                    .map(|(id, _)| *id)
                    .chain(m.sockets.iter().copied())
                    .filter(|id| {
                        !h.ex(*id).done() && h.ex(*id).ws_close.is_none() && !m.aborted.contains(id)
                    })
                    .collect();
                if !open.is_empty() {
                    let id = open[pick as usize % open.len()];
                    m.aborted.insert(id);
                    h.abort(id);
                }
            }
            Op::Advance { ms } => h.advance(Duration::from_millis(u64::from(ms))),
            Op::Skip { ms } => h.skip(Duration::from_millis(u64::from(ms))),
            Op::WsOpen => {
                prop_assert!(h.opens("GET", "/s/w/websocket", &common::WS_HEADERS));
                let before = h.opened.len();
                let id = h.ws_open("/s/w/websocket");
                prop_assert_eq!(h.opened.len(), before + 1);
                m.sockets.push(id);
            }
            Op::WsMessage { pick, broken } => {
                if !m.sockets.is_empty() {
                    let id = m.sockets[pick as usize % m.sockets.len()];
                    // Half the time the timers due by now get their input first, so the
                    // state the message meets is known; otherwise it comes late and the
                    // engine runs them itself.
                    let on_time = pick % 2 == 0;
                    if on_time {
                        h.advance(Duration::ZERO);
                    }
                    let key = h.owner.get(&id).copied();
                    let open = key.is_some_and(|k| h.engine.session_state(k) == SessionState::Open)
                        && h.ex(id).ws_close.is_none()
                        && !m.aborted.contains(&id);
                    m.counter += 1;
                    let text = format!("i{}", m.counter);
                    let json = if broken {
                        "[\"x".to_owned()
                    } else {
                        format!("[\"{text}\"]")
                    };
                    if broken {
                        m.broken.extend(key);
                    }
                    let before = h.messages.len();
                    h.ws_send(id, &json);
                    let delivered = h.messages.len() - before;
                    match (key, open, broken) {
                        // A message on an open socket reaches the application (late timers
                        // may have closed it first).
                        (Some(key), true, false) => {
                            prop_assert!(delivered == 1 || !on_time && delivered == 0);
                            if delivered == 1 {
                                m.received.entry(key).or_default().push(text);
                            }
                        }
                        // Broken JSON delivers nothing and ends the socket: 3000 "Broken
                        // framing." (PROTOCOL.md §9.2).
                        (Some(key), true, true) => {
                            prop_assert_eq!(delivered, 0);
                            if on_time {
                                prop_assert_eq!(
                                    h.ex(id).ws_close.clone(),
                                    Some((3000, "Broken framing.".to_owned()))
                                );
                            }
                            prop_assert_eq!(h.engine.session_state(key), SessionState::Closed);
                        }
                        _ => prop_assert_eq!(delivered, 0, "a message on a socket no longer open"),
                    }
                }
            }
            Op::WsClose { pick } => {
                if !m.sockets.is_empty() {
                    let id = m.sockets[pick as usize % m.sockets.len()];
                    m.client_closed.extend(h.owner.get(&id).copied());
                    h.ws_closed(id);
                }
            }
            Op::WsPong { pick } => {
                if !m.sockets.is_empty() {
                    let id = m.sockets[pick as usize % m.sockets.len()];
                    h.engine.handle_ws_pong(h.now, id);
                    h.drain();
                }
            }
            Op::WsReadsHeld { pick, held } => {
                if !m.sockets.is_empty() {
                    let id = m.sockets[pick as usize % m.sockets.len()];
                    h.ws_reads_held(id, held);
                }
            }
            Op::AppSendWs { pick } => {
                if !m.sockets.is_empty() {
                    let id = m.sockets[pick as usize % m.sockets.len()];
                    if let Some(key) = h.owner.get(&id).copied() {
                        m.counter += 1;
                        let text = format!("w{}", m.counter);
                        if h.engine.send(h.now, key, &text).is_ok() {
                            m.accepted.entry(key).or_default().push(text);
                        }
                        h.drain();
                    }
                }
            }
        }
        // Queues within their bound.
        for key in m.accepted.keys() {
            if let Some(q) = h.engine.queued_bytes(*key) {
                prop_assert!(q <= max_queue);
            }
        }
        // The engine holds exactly the requests still unanswered.
        let unanswered = m
            .receivers
            .iter()
            .filter(|(id, _)| !h.ex(*id).done() && !m.aborted.contains(id))
            .count()
            + m.sockets
                .iter()
                .filter(|id| {
                    !m.aborted.contains(id)
                        && h.ex(**id).upgrade.is_some()
                        && h.ex(**id).ws_close.is_none()
                        && h.owner
                            .get(id)
                            .is_some_and(|k| !h.closed.iter().any(|(c, _)| c == k))
                })
                .count();
        prop_assert_eq!(h.engine.pending_requests(), unanswered);
        // Every frame is one of the protocol's, a session's `o` comes first and once, and
        // nothing follows a `c` on the request that carried it.
        for id in m
            .receivers
            .iter()
            .map(|(id, _)| *id)
            .chain(m.sockets.iter().copied())
        {
            let ex = h.ex(id);
            if !(200..300).contains(&ex.status()) && ex.upgrade.is_none() {
                continue;
            }
            let frames = frames_of(ex);
            for (i, frame) in frames.iter().enumerate() {
                prop_assert!(well_formed(frame), "request {}: frame {:?}", id.0, frame);
                // A close frame says why, and the why happened.
                if let Some(json) = frame.strip_prefix('c') {
                    let (code, reason): (u16, String) =
                        serde_json::from_str(json).expect("well formed");
                    let close = (code, reason.as_str());
                    let key = h.owner.get(&id);
                    prop_assert!(
                        close == GO_AWAY && key.is_some_and(|k| m.app_closed.contains(k))
                            || close == ANOTHER
                            || close == INTERRUPTED && interrupts,
                        "request {}: {:?} unasked",
                        id.0,
                        frame
                    );
                }
                prop_assert!(
                    !frame.starts_with('c') || i + 1 == frames.len(),
                    "request {}: {:?} after a close frame",
                    id.0,
                    &frames[i..]
                );
            }
        }
        for (key, _) in &h.opened {
            let opens: Vec<(usize, RequestId)> = m
                .receivers
                .iter()
                .map(|(id, _)| *id)
                .chain(m.sockets.iter().copied())
                .filter(|id| h.owner.get(id) == Some(key))
                .flat_map(|id| {
                    let frames = frames_of(h.ex(id));
                    frames
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| *f == "o")
                        .map(|(i, _)| (i, id))
                        .collect::<Vec<_>>()
                })
                .collect();
            prop_assert!(
                opens.len() <= 1,
                "session {}: `o` sent {} times",
                key,
                opens.len()
            );
            if let Some((i, id)) = opens.first() {
                prop_assert_eq!(*i, 0, "session {}: `o` not first on request {}", key, id.0);
            }
        }
        // A stream ends with the frame that takes its bytes (prelude excluded) to the
        // response limit, and nothing is written to it after that (PROTOCOL.md §7.1).
        for (id, _) in &m.receivers {
            let ex = h.ex(*id);
            if ex.stream_head.is_none() {
                continue;
            }
            let mut written = 0;
            for chunk in ex.chunks.iter().skip(1) {
                prop_assert!(
                    written < response_limit,
                    "request {}: a frame after {} bytes, limit {}",
                    id.0,
                    written,
                    response_limit
                );
                written += chunk.len();
            }
            if written >= response_limit {
                prop_assert!(ex.ended, "request {}: open past the limit", id.0);
            } else if ex.ended {
                let last = ex.chunk_strings().last().map(|c| unwrap_frame(c));
                prop_assert!(
                    last.as_deref().is_some_and(|f| f.starts_with('c')),
                    "request {}: ended at {} bytes, limit {}, after {:?}",
                    id.0,
                    written,
                    response_limit,
                    last
                );
            }
        }
        // A close code a WebSocket may carry (RFC 6455 §7.4): none of the reserved ones.
        for id in &m.sockets {
            if let Some((code, reason)) = &h.ex(*id).ws_close {
                prop_assert!(
                    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
                    "socket {}: close code {}",
                    id.0,
                    code
                );
                prop_assert!(reason.len() <= 123);
            }
        }
        // The timer heap within a constant factor of the sessions held (stale entries swept).
        prop_assert!(h.engine.timer_entries() <= 4 * h.engine.session_count() + 1024);
        // The client's messages reached the application in order, none lost or duplicated.
        for (key, sent) in &m.received {
            let got: Vec<&String> = h
                .messages
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, text)| text)
                .collect();
            prop_assert_eq!(got, sent.iter().collect::<Vec<_>>(), "session {}", key);
        }
        // A WebSocket has no receiver to wait for: while its session is open, everything
        // the application's sends were accepted for is out.
        for id in &m.sockets {
            let Some(key) = h.owner.get(id).copied() else {
                continue;
            };
            if h.engine.session_state(key) == SessionState::Open {
                let sent = m.accepted.get(&key).cloned().unwrap_or_default();
                prop_assert_eq!(delivered(&h, key, &m), sent, "open socket {}", id.0);
            }
        }
        // Each session's close reason is one the script caused.
        let is_ws = |key: &SessionKey| m.sockets.iter().any(|id| h.owner.get(id) == Some(key));
        for (key, reason) in &h.closed {
            let aborted = m.aborted.iter().any(|id| h.owner.get(id) == Some(key));
            let caused = match reason {
                CloseReason::Closed { code, reason } => {
                    (*code, reason.as_str()) == GO_AWAY && m.app_closed.contains(key)
                }
                CloseReason::ClientClosed => m.client_closed.contains(key),
                CloseReason::BrokenFraming => m.broken.contains(key),
                CloseReason::PeerUnresponsive => pings && is_ws(key),
                CloseReason::Aborted => aborted,
                CloseReason::Timeout => !is_ws(key),
                _ => false,
            };
            prop_assert!(caused, "session {}: closed {:?} uncaused", key, reason);
        }
        // Order, no loss, no duplicates: what reached the client is a prefix of what the
        // application had accepted.
        for (key, sent) in &m.accepted {
            let got = delivered(&h, *key, &m);
            prop_assert!(
                got.len() <= sent.len() && got[..] == sent[..got.len()],
                "session {key}: sent {sent:?} got {got:?}"
            );
        }
    }
    // Drain every live session: attach receivers until nothing is left queued. Then all
    // accepted messages must have arrived, unless the session ended (abort, close, expiry).
    for round in 0..4 {
        for sid in 0..3u8 {
            let id = h.request("POST", &format!("/s/{sid}/xhr"), &[], "");
            m.receivers.push((id, sid.to_string()));
            let _ = round;
        }
    }
    for (key, sent) in &m.accepted {
        let got = delivered(&h, *key, &m);
        let alive = h.engine.session_state(*key) != SessionState::Closed;
        let is_ws = m.sockets.iter().any(|id| h.owner.get(id) == Some(key));
        if alive && !is_ws {
            prop_assert_eq!(
                &got,
                sent,
                "live session {} must have delivered everything",
                key
            );
        }
        prop_assert!(got.len() <= sent.len() && got[..] == sent[..got.len()]);
    }
    // Lifecycle: the client goes away (every open request dropped); after the disconnect
    // delay every session is forgotten, each closed exactly once.
    let open: Vec<RequestId> = m
        .receivers
        .iter()
        .map(|(id, _)| *id)
        .chain(m.sockets.iter().copied())
        .filter(|id| !m.aborted.contains(id) && !h.ex(*id).done() && h.ex(*id).ws_close.is_none())
        .collect();
    for id in open {
        h.abort(id);
    }
    h.advance(Duration::from_secs(60));
    prop_assert_eq!(h.engine.session_count(), 0);
    prop_assert_eq!(h.engine.pending_requests(), 0);
    for (key, _) in &h.opened {
        let closes = h.closed.iter().filter(|(k, _)| k == key).count();
        prop_assert_eq!(closes, 1, "session {} closes once", key);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_scripts_keep_every_invariant(options in options(), ops in prop::collection::vec(op(), 1..60)) {
        run(options, ops)?;
    }
}
