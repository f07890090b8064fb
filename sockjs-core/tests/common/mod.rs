//! A virtual-clock harness: one engine, time advanced by hand, transmits collected per
//! request, and an optional built-in application (echo, or close on open).
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use sockjs_core::{
    CloseReason, Content, Engine, Event, Handshake, Options, RequestId, SessionInfo, SessionKey,
    Start, Transmit,
};

/// What the harness's application does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum App {
    /// Nothing: events are only recorded.
    Passive,
    /// Sends every message back.
    Echo,
    /// Closes with 3000 "Go away!" as soon as the session opens.
    Close,
}

/// Everything that happened to one request.
#[derive(Debug, Default)]
pub struct Exchange {
    pub response: Option<Response<Bytes>>,
    pub stream_head: Option<Response<()>>,
    pub chunks: Vec<Bytes>,
    pub ended: bool,
    pub upgrade: Option<(Response<()>, Handshake)>,
    pub ws_texts: Vec<String>,
    pub ws_pings: usize,
    pub ws_close: Option<(u16, String)>,
    /// The request had its last write ([`Content::is_last`]).
    pub finished: bool,
}

impl Exchange {
    pub fn status(&self) -> u16 {
        if let Some(r) = &self.response {
            return r.status().as_u16();
        }
        if let Some(r) = &self.stream_head {
            return r.status().as_u16();
        }
        if let Some((r, _)) = &self.upgrade {
            return r.status().as_u16();
        }
        0
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let headers = self
            .response
            .as_ref()
            .map(|r| r.headers())
            .or(self.stream_head.as_ref().map(|r| r.headers()))
            .or(self.upgrade.as_ref().map(|(r, _)| r.headers()))?;
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn body(&self) -> String {
        match &self.response {
            Some(r) => String::from_utf8_lossy(r.body()).into_owned(),
            None => self
                .chunks
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect(),
        }
    }

    pub fn chunk_strings(&self) -> Vec<String> {
        self.chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }

    /// Whether the request got its full answer (a response, an ended stream, or a socket).
    pub fn done(&self) -> bool {
        self.response.is_some() || self.ended
    }
}

pub struct Harness {
    pub engine: Engine,
    pub now: Instant,
    pub t0: Instant,
    pub app: App,
    next_id: u64,
    pub exchanges: HashMap<RequestId, Exchange>,
    pub opened: Vec<(SessionKey, SessionInfo)>,
    pub messages: Vec<(SessionKey, String)>,
    pub closed: Vec<(SessionKey, CloseReason)>,
    /// Order in which transmits and events were drained, for ordering assertions.
    pub log: Vec<String>,
    /// Which session each receiver request or WebSocket served.
    pub owner: HashMap<RequestId, SessionKey>,
    /// The live HTTP session under each URL session id.
    pub current: HashMap<String, SessionKey>,
    /// Requests the client dropped, and sockets that closed: after the input that said so,
    /// the engine writes nothing more to them.
    pub gone: std::collections::HashSet<RequestId>,
    last_request: Option<RequestId>,
}

/// The header fields of a valid RFC 6455 upgrade ([`Harness::ws_open`]).
pub const WS_HEADERS: [(&str, &str); 4] = [
    ("upgrade", "websocket"),
    ("connection", "Upgrade"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "x3JJHMbDL1EzLkh9GBhXDw=="),
];

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Harness {
    pub fn new(options: Options, app: App) -> Self {
        let t0 = Instant::now();
        let start = Start {
            now: t0,
            wall_clock: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            seed: 7,
        };
        Harness {
            engine: Engine::new(options, start).expect("valid options"),
            now: t0,
            t0,
            app,
            next_id: 1,
            exchanges: HashMap::new(),
            opened: Vec::new(),
            messages: Vec::new(),
            closed: Vec::new(),
            log: Vec::new(),
            owner: HashMap::new(),
            current: HashMap::new(),
            gone: std::collections::HashSet::new(),
            last_request: None,
        }
    }

    /// The suite's `/echo` service: echo app, response_limit 4096.
    pub fn echo() -> Self {
        Harness::new(
            Options {
                response_limit: 4096,
                ..Options::default()
            },
            App::Echo,
        )
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    pub fn request(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> RequestId {
        let mut builder = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Bytes::from(body.to_owned())).expect("request");
        self.raw_request(request)
    }

    pub fn raw_request(&mut self, request: Request<Bytes>) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.exchanges.insert(id, Exchange::default());
        let path = request.uri().path().to_owned();
        self.last_request = Some(id);
        self.engine.handle_request(self.now, id, request);
        self.drain();
        let segments: Vec<&str> = path.split('/').collect();
        if let [_, _, session, kind] = segments[..] {
            let receiver =
                ["xhr", "xhr_streaming", "eventsource", "htmlfile", "jsonp"].contains(&kind);
            if let (true, Some(key)) = (receiver, self.current.get(session)) {
                self.owner.entry(id).or_insert(*key);
            }
        }
        id
    }

    pub fn get(&mut self, uri: &str) -> RequestId {
        self.request("GET", uri, &[], "")
    }

    pub fn post(&mut self, uri: &str, body: &str) -> RequestId {
        self.request("POST", uri, &[], body)
    }

    pub fn ex(&self, id: RequestId) -> &Exchange {
        &self.exchanges[&id]
    }

    pub fn ws_open(&mut self, path: &str) -> RequestId {
        self.request("GET", path, &WS_HEADERS, "")
    }

    /// Whether the engine would open a session for this request now.
    pub fn opens(&self, method: &str, uri: &str, headers: &[(&str, &str)]) -> bool {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(()).expect("request");
        self.engine.opens_session(&request.into_parts().0)
    }

    pub fn ws_send(&mut self, id: RequestId, text: &str) {
        self.engine.handle_ws_message(self.now, id, text);
        self.drain();
    }

    /// A pong (or any control frame) arrived on the socket.
    pub fn ws_pong(&mut self, id: RequestId) {
        self.engine.handle_ws_pong(self.now, id);
        self.drain();
    }

    pub fn ws_reads_held(&mut self, id: RequestId, held: bool) {
        self.engine.handle_ws_reads_held(self.now, id, held);
        self.drain();
    }

    pub fn ws_closed(&mut self, id: RequestId) {
        self.engine.handle_ws_closed(self.now, id);
        // Timers due by now fire first, and may still answer it.
        self.drain();
        self.gone.insert(id);
    }

    pub fn abort(&mut self, id: RequestId) {
        self.engine.handle_abort(self.now, id);
        // Timers due by now fire first, and may still answer it.
        self.drain();
        self.gone.insert(id);
    }

    /// Advances virtual time as a driver's timer does: the timer input only at the
    /// deadlines the engine asked for (at once for one already past), each of which must
    /// leave the next deadline in the future, or a driver would spin.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        while let Some(at) = self.engine.poll_timeout() {
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            self.engine.handle_timeout(self.now);
            self.drain();
            if let Some(next) = self.engine.poll_timeout() {
                assert!(
                    next > self.now,
                    "the timer input at {:?} left a deadline at {:?}",
                    self.now - self.t0,
                    next - self.t0
                );
            }
        }
        self.now = target;
    }

    /// Moves the clock on without a timer input: the driver's timer is late.
    pub fn skip(&mut self, by: Duration) {
        self.now += by;
    }

    pub fn app_send(&mut self, session: SessionKey, text: &str) {
        self.engine.send(self.now, session, text).expect("send");
        self.drain();
    }

    pub fn app_close(&mut self, session: SessionKey, code: u16, reason: &str) {
        self.engine
            .close(self.now, session, code, reason)
            .expect("close");
        self.drain();
    }

    pub fn last_session(&self) -> SessionKey {
        self.opened.last().expect("a session opened").0
    }

    /// Drains transmits and events, running the built-in app on events, until both queues
    /// are empty. Like a driver, it writes every queued transmit before it reacts to the
    /// events, and reacts to all of them before it writes again.
    pub fn drain(&mut self) {
        loop {
            while let Some(Transmit { request, content }) = self.engine.poll_transmit() {
                self.transmit(request, content);
            }
            let mut reactions = Vec::new();
            let mut any = false;
            while let Some(event) = self.engine.poll_event() {
                any = true;
                self.event(event, &mut reactions);
            }
            if !any {
                return;
            }
            for (session, message) in reactions {
                match message {
                    Some(text) => {
                        let _ = self.engine.send(self.now, session, &text);
                    }
                    None => {
                        let _ = self.engine.close(self.now, session, 3000, "Go away!");
                    }
                }
            }
        }
    }

    fn transmit(&mut self, request: RequestId, content: Content) {
        assert!(
            !self.gone.contains(&request),
            "request {request:?} written after the client dropped it"
        );
        let ex = self
            .exchanges
            .get_mut(&request)
            .unwrap_or_else(|| panic!("written to request {request:?}, never handed in"));
        assert!(
            !ex.finished,
            "request {request:?} written after its last write"
        );
        ex.finished = content.is_last();
        match content {
            Content::Response(response) => {
                self.log.push(format!("respond {}", request.0));
                assert!(
                    ex.response.is_none() && !ex.ended,
                    "request {request:?} answered twice"
                );
                ex.response = Some(*response);
            }
            Content::StreamStart(response) => {
                self.log.push(format!("start {}", request.0));
                assert!(ex.stream_head.is_none(), "stream started twice");
                ex.stream_head = Some(*response);
            }
            Content::Chunk(data) => {
                self.log.push(format!("chunk {}", request.0));
                assert!(
                    ex.stream_head.is_some() && !ex.ended,
                    "chunk outside a stream"
                );
                assert!(!data.is_empty(), "empty chunk would end the stream");
                ex.chunks.push(data);
            }
            Content::StreamEnd => {
                self.log.push(format!("end {}", request.0));
                assert!(ex.stream_head.is_some() && !ex.ended, "bad stream end");
                ex.ended = true;
            }
            Content::Upgrade {
                response,
                handshake,
            } => {
                self.log.push(format!("upgrade {}", request.0));
                ex.upgrade = Some((*response, handshake));
            }
            Content::WsText(text) => {
                self.log.push(format!("ws {} {text}", request.0));
                assert!(
                    ex.upgrade.is_some() && ex.ws_close.is_none(),
                    "text outside a socket"
                );
                ex.ws_texts.push(text);
            }
            Content::WsPing => ex.ws_pings += 1,
            Content::WsClose { code, reason } => {
                self.log.push(format!("wsclose {}", request.0));
                assert!(ex.ws_close.is_none(), "socket closed twice");
                ex.ws_close = Some((code, reason.into()));
            }
            other => panic!("unknown transmit {other:?}"),
        }
    }

    fn event(&mut self, event: Event, reactions: &mut Vec<(SessionKey, Option<String>)>) {
        match event {
            Event::Opened { session, info } => {
                self.log.push(format!("opened {session}"));
                assert!(
                    !self.opened.iter().any(|(k, _)| *k == session),
                    "session opened twice"
                );
                if matches!(
                    info.transport,
                    sockjs_core::Transport::WebSocket | sockjs_core::Transport::RawWebSocket
                ) {
                    if let Some(request) = self.last_request {
                        self.owner.insert(request, session);
                    }
                } else {
                    self.current.insert(info.id.to_string(), session);
                }
                self.opened.push((session, *info));
                if self.app == App::Close {
                    reactions.push((session, None));
                }
            }
            Event::Message { session, text } => {
                self.log.push(format!("message {session} {text}"));
                assert!(self.opened.iter().any(|(k, _)| *k == session));
                assert!(
                    !self.closed.iter().any(|(k, _)| *k == session),
                    "message after close"
                );
                if self.app == App::Echo {
                    reactions.push((session, Some(text.clone())));
                }
                self.messages.push((session, text));
            }
            Event::Closed { session, reason } => {
                self.log.push(format!("closed {session}"));
                assert!(
                    self.opened.iter().any(|(k, _)| *k == session),
                    "closed before opened"
                );
                assert!(
                    !self.closed.iter().any(|(k, _)| *k == session),
                    "closed twice"
                );
                self.current.retain(|_, k| *k != session);
                self.closed.push((session, reason));
            }
            other => panic!("unknown event {other:?}"),
        }
    }
}
