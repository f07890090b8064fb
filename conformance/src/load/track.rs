//! Messages in flight, echo verification (content and order) and per-session counters.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::Instant;

use super::hist::Histogram;
use crate::json;

/// Most error messages kept as examples per counter set.
const SAMPLES: usize = 5;

/// The measured interval of a run: echoes received in `[start, end)` are counted.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Start of the measured interval (after the warm-up).
    pub start: Instant,
    /// End of the measured interval.
    pub end: Instant,
}

impl Window {
    /// Whether `t` falls in the measured interval.
    pub fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// Counters of one session, or of a whole run once merged.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Sessions that opened (saw their `o` frame, or completed the raw handshake).
    pub opened: u64,
    /// Messages sent (all phases).
    pub sent: u64,
    /// Echoes verified in the measured interval.
    pub received: u64,
    /// Round trips of the echoes counted in `received` (microseconds).
    pub rtt: Histogram,
    /// Heartbeat frames seen.
    pub heartbeats: u64,
    /// Receiving requests re-opened after the server ended a response
    /// (response limit on streaming transports; every poll on xhr-polling).
    pub reconnects: u64,
    /// Errors by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// The first few error messages.
    pub samples: Vec<String>,
    /// Sessions that negotiated permessage-deflate.
    pub deflated: u64,
    /// Bytes read from the server after the handshake (own WebSocket client only).
    pub wire_in: u64,
    /// Bytes written to the server after the handshake (own WebSocket client only).
    pub wire_out: u64,
    /// Echoes verified over the same span as `wire_in` and `wire_out` (all phases).
    pub wire_echoes: u64,
}

impl Stats {
    /// Counts an error of `kind`, keeping `msg` as an example if there is room.
    pub fn error(&mut self, kind: &'static str, msg: impl Into<String>) {
        *self.errors.entry(kind).or_default() += 1;
        let sample = format!("{kind}: {}", msg.into());
        if self.samples.len() < SAMPLES && !self.samples.contains(&sample) {
            self.samples.push(sample);
        }
    }

    /// Total number of errors.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds `other`'s counters to these.
    pub fn merge(&mut self, other: &Stats) {
        self.opened += other.opened;
        self.sent += other.sent;
        self.received += other.received;
        self.rtt.merge(&other.rtt);
        self.heartbeats += other.heartbeats;
        self.reconnects += other.reconnects;
        self.deflated += other.deflated;
        self.wire_in += other.wire_in;
        self.wire_out += other.wire_out;
        self.wire_echoes += other.wire_echoes;
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for s in &other.samples {
            if self.samples.len() < SAMPLES && !self.samples.contains(s) {
                self.samples.push(s.clone());
            }
        }
    }
}

/// A JSON-like payload of message `seq`, `size` bytes long (longer only when the number
/// alone does not fit): records of ids, names, numbers, flags and words that vary with
/// `seq`, as an application's messages do, cut at `size`. Compresses the way real JSON
/// does, unlike [`payload`]'s letters.
pub fn json_payload(seq: u64, size: usize) -> String {
    const WORDS: [&str; 16] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
    ];
    let mut state = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut s = format!("{{\"seq\":{seq},\"items\":[");
    let mut i = 0u64;
    while s.len() < size {
        let r = next();
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"id\":{},\"user\":\"{}-{}\",\"score\":{}.{:02},\"active\":{},\
             \"tags\":[\"{}\",\"{}\"],\"note\":\"{} {} {}\"}}",
            r % 1_000_000,
            WORDS[(r >> 20) as usize % 16],
            (r >> 24) % 1000,
            (r >> 34) % 100,
            (r >> 40) % 100,
            (r >> 47) & 1 == 1,
            WORDS[(r >> 48) as usize % 16],
            WORDS[(r >> 52) as usize % 16],
            WORDS[(r >> 56) as usize % 16],
            WORDS[(r >> 60) as usize % 16],
            WORDS[(r >> 4) as usize % 16],
        ));
        i += 1;
    }
    let cut = size.max(format!("{{\"seq\":{seq},").len());
    s.truncate(cut);
    s
}

/// The payload of message `seq`: its number, a dash, then letters up to `size` bytes
/// (longer than `size` only when the number alone does not fit). Letters and digits
/// only, so no transport or JSON layer needs to escape it.
pub fn payload(seq: u64, size: usize) -> String {
    /// The alphabet twice, so that any 26 letters in a row from any start are one slice.
    const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";
    let mut s = String::with_capacity(size.max(21));
    let _ = write!(s, "{seq}-");
    let mut at = (seq % 26) as usize;
    while s.len() < size {
        let take = (size - s.len()).min(26);
        s.push_str(&LETTERS[at..at + take]);
        at = (at + take) % 26;
    }
    s
}

/// A SockJS frame as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `o`
    Open,
    /// `h`
    Heartbeat,
    /// `a[...]`: the messages.
    Messages(Vec<String>),
    /// `c[...]`: the close frame's text.
    Close(String),
}

/// Parses one SockJS frame.
pub fn parse_frame(text: &str) -> Result<Frame, String> {
    match text.as_bytes().first() {
        Some(b'o') if text.len() == 1 => Ok(Frame::Open),
        Some(b'h') if text.len() == 1 => Ok(Frame::Heartbeat),
        Some(b'a') => json::parse_string_array(&text[1..])
            .map(Frame::Messages)
            .map_err(|e| format!("bad message frame ({e}): {}", short(text))),
        Some(b'c') => Ok(Frame::Close(text[1..].to_owned())),
        _ => Err(format!("unexpected frame: {}", short(text))),
    }
}

/// At most 80 bytes of `s` for an error message (cut on a character boundary).
pub fn short(s: &str) -> String {
    if s.len() <= 80 {
        return s.to_owned();
    }
    let mut end = 80;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

/// The body of an `xhr_send` (or the text of a WebSocket frame): a JSON array of strings.
pub fn send_body<S: AsRef<str>>(messages: &[S]) -> String {
    let mut out = String::from("[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&crate::util::json_quote(m.as_ref()));
    }
    out.push(']');
    out
}

/// One session's messages in flight, in send order, and its counters.
#[derive(Debug)]
pub struct Tracker {
    inflight: VecDeque<(String, Instant)>,
    next_seq: u64,
    size: usize,
    window: usize,
    /// JSON-like payloads ([`json_payload`]) instead of letters.
    json: bool,
    /// The session's counters.
    pub stats: Stats,
}

impl Tracker {
    /// A tracker keeping up to `window` messages of `size` bytes in flight.
    pub fn new(size: usize, window: usize) -> Self {
        Tracker {
            inflight: VecDeque::with_capacity(window),
            next_seq: 0,
            size,
            window,
            json: false,
            stats: Stats::default(),
        }
    }

    /// Sends JSON-like payloads ([`json_payload`]) when `json`.
    pub fn json(mut self, json: bool) -> Self {
        self.json = json;
        self
    }

    /// The next message to send, if the window has room; it counts as in flight from `now`.
    pub fn next_message(&mut self, now: Instant) -> Option<String> {
        if self.inflight.len() >= self.window {
            return None;
        }
        let m = if self.json {
            json_payload(self.next_seq, self.size)
        } else {
            payload(self.next_seq, self.size)
        };
        self.next_seq += 1;
        self.stats.sent += 1;
        self.inflight.push_back((m.clone(), now));
        Some(m)
    }

    /// Whether the window has room for another message.
    pub fn has_room(&self) -> bool {
        self.inflight.len() < self.window
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Checks one echoed message received at `now` against the oldest message in flight:
    /// counts it (and its round trip) when `now` is in `window`, or counts an error.
    pub fn on_echo(&mut self, msg: &str, now: Instant, window: Option<&Window>) {
        match self.inflight.front() {
            Some((sent, at)) if sent == msg => {
                let rtt = now.saturating_duration_since(*at);
                if window.is_some_and(|w| w.contains(now)) {
                    self.stats.received += 1;
                    self.stats.rtt.record(rtt.as_micros() as u64);
                }
                self.inflight.pop_front();
            }
            Some(_) => {
                if let Some(pos) = self.inflight.iter().position(|(m, _)| m == msg) {
                    self.stats.error(
                        "order",
                        format!("echo of {} arrived {pos} place(s) early", short(msg)),
                    );
                    self.inflight.remove(pos);
                } else {
                    self.stats
                        .error("content", format!("unexpected echo {}", short(msg)));
                }
            }
            None => self.stats.error(
                "content",
                format!("echo with nothing in flight: {}", short(msg)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn payloads_are_the_number_a_dash_and_the_alphabet_from_the_numbers_letter() {
        for seq in [0, 1, 25, 26, 27, 51, 123_456, u64::MAX] {
            for size in [0, 1, 2, 3, 7, 8, 26, 27, 32, 52, 53, 100, 1024] {
                let expected: String = format!("{seq}-")
                    .chars()
                    .chain((0..).map(|i| char::from(b'a' + ((seq % 26 + i) % 26) as u8)))
                    .take(size.max(format!("{seq}-").len()))
                    .collect();
                assert_eq!(payload(seq, size), expected, "seq {seq}, size {size}");
            }
        }
    }

    #[test]
    fn payloads_have_the_size_and_differ() {
        assert_eq!(payload(0, 32).len(), 32);
        assert_eq!(json_payload(5, 1024).len(), 1024);
        assert!(json_payload(5, 1024).starts_with(r#"{"seq":5,"items":[{"id":"#));
        assert_ne!(json_payload(5, 1024), json_payload(6, 1024));
        assert_eq!(json_payload(123_456, 3), r#"{"seq":123456,"#);
        assert_eq!(payload(123_456, 1024).len(), 1024);
        assert_eq!(payload(123_456, 3), "123456-");
        assert_ne!(payload(1, 32), payload(2, 32));
        assert!(
            payload(7, 64)
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        );
    }

    #[test]
    fn frames() {
        assert_eq!(parse_frame("o"), Ok(Frame::Open));
        assert_eq!(parse_frame("h"), Ok(Frame::Heartbeat));
        assert_eq!(
            parse_frame(r#"a["x","y\u2028"]"#),
            Ok(Frame::Messages(vec!["x".into(), "y\u{2028}".into()]))
        );
        assert_eq!(
            parse_frame(r#"c[3000,"Go away!"]"#),
            Ok(Frame::Close(r#"[3000,"Go away!"]"#.into()))
        );
        assert!(parse_frame("a[1]").is_err());
        assert!(parse_frame("").is_err());
        assert!(parse_frame("oo").is_err());
        assert!(parse_frame(&"z".repeat(500)).is_err_and(|e| e.len() < 200));
    }

    #[test]
    fn send_body_is_a_json_array() {
        assert_eq!(send_body(&["a", "b\"c"]), r#"["a","b\"c"]"#);
        assert_eq!(send_body::<&str>(&[]), "[]");
    }

    #[test]
    fn window_order_and_content() {
        let t0 = Instant::now();
        let w = Window {
            start: t0,
            end: t0 + Duration::from_secs(60),
        };
        let mut t = Tracker::new(16, 2);
        let a = t.next_message(t0);
        let b = t.next_message(t0);
        assert!(a.is_some() && b.is_some());
        assert!(t.next_message(t0).is_none(), "window of 2 is full");
        let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
        let later = t0 + Duration::from_millis(3);
        t.on_echo(&a, later, Some(&w));
        assert_eq!(t.stats.received, 1);
        assert_eq!(t.stats.rtt.max(), 3000);
        assert!(t.has_room());
        let c = t.next_message(later).unwrap_or_default();
        // c before b: an order error; b is then still expected.
        t.on_echo(&c, later, Some(&w));
        assert_eq!(t.stats.errors.get("order"), Some(&1));
        t.on_echo("nonsense", later, Some(&w));
        assert_eq!(t.stats.errors.get("content"), Some(&1));
        t.on_echo(&b, later, Some(&w));
        assert_eq!(t.stats.received, 2);
        assert_eq!(t.in_flight(), 0);
        // Outside the window: verified but not counted.
        let d = t.next_message(later).unwrap_or_default();
        t.on_echo(&d, w.end, Some(&w));
        assert_eq!(t.stats.received, 2);
        assert_eq!(t.stats.error_count(), 2);
    }

    #[test]
    fn stats_merge() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        a.error("x", "1");
        b.error("x", "2");
        b.error("x", "2");
        b.error("y", "3");
        b.received = 5;
        a.merge(&b);
        assert_eq!(a.error_count(), 4);
        assert_eq!(a.received, 5);
        assert_eq!(a.samples.len(), 3);
    }
}
