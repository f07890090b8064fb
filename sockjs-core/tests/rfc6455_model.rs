//! The RFC 6455 decoder against a reference model of the client's side of RFC 6455 §5,
//! written here from the RFC alone: generated client frames (any FIN, RSV and opcode,
//! masked or not, lengths written minimally or not, payloads of any bytes), serialised and
//! fed whole, one byte at a time, in random pieces and under a random `feed_at_most`
//! budget, must give the same outcome every way, and that outcome must be the one the
//! model predicts: the messages and control frames in order with their exact content, the
//! close with its code and reason, or the close code of the failure. After every feed that
//! took all it could, `buffered()` is within the bound its documentation gives.
//!
//! Where the RFC leaves the receiver a choice, the model allows what the RFC allows:
//! - a text message that is not UTF-8 may fail as soon as its bytes so far cannot begin
//!   UTF-8 (at a fragment, or within a frame that has not all arrived), or only once it is
//!   complete (RFC 6455 §8.1 says only "MUST _Fail_");
//! - a frame with several faults may fail with the close code of any of them, and a data
//!   frame with a fault that would take the unfinished message past the bound may fail with
//!   1009 instead;
//! - what follows a close frame is the caller's to discard (RFC 6455 §5.5.1): the model
//!   stops at the first close.
//!
//! And it pins the decoder's documented or chosen behaviour where the RFC names none:
//! - lengths written with more bytes than needed are read like minimal ones (RFC 6455 §5.2
//!   puts its "MUST" on the sender and names no action for the receiver);
//! - the checks of a frame's own header (RSV, opcode, mask, length, a control frame's
//!   FIN and size, the message bound) fail once the header has arrived; where the frame
//!   stands in a message (RFC 6455 §5.4) and its payload, once the frame has all arrived;
//! - messages (all their fragments) over the decoder's bound fail with 1009; control
//!   frames are exempt (`Decoder::new`, `Decoder::buffered`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Write;

use flate2::write::DeflateEncoder;
use flate2::{Compression, Decompress, FlushDecompress, Status};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::Config;
use sockjs_core::DeflateParams;
use sockjs_core::wire::rfc6455::{Decoder, Error, Message};

// Opcodes (RFC 6455 §5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
/// RSV1 in the frame's three RSV bits (RFC 6455 §5.2).
const RSV1: u8 = 0b100;

// Close codes of failures (RFC 6455 §7.4.1).
const PROTOCOL_ERROR: u16 = 1002;
const INVALID_DATA: u16 = 1007;
const TOO_BIG: u16 = 1009;

/// What a sync flush ends with: the sender removes it, the receiver puts it back
/// (RFC 7692 §7.2.1 and RFC 7692 §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How a frame writes its payload length (RFC 6455 §5.2).
#[derive(Clone, Copy, Debug)]
enum Length {
    /// 7 bits up to 125, 16 bits up to 65535, else 64 bits.
    Minimal,
    /// 16 bits whenever they are enough (non-minimal below 126).
    Sixteen,
    /// Always 64 bits.
    SixtyFour,
}

/// One client frame, as the model sees it.
#[derive(Clone, Debug)]
struct Frame {
    fin: bool,
    /// RSV1, RSV2, RSV3 as the bits 0b100, 0b010, 0b001.
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    length: Length,
    payload: Vec<u8>,
    /// A length the header announces beyond `payload`: the frame is cut short, and is the
    /// stream's last.
    declared: Option<u64>,
}

impl Frame {
    fn new(fin: bool, opcode: u8, payload: Vec<u8>, (mask, length): ([u8; 4], Length)) -> Frame {
        Frame {
            fin,
            rsv: 0,
            opcode,
            mask: Some(mask),
            length,
            payload,
            declared: None,
        }
    }

    /// The payload length the header announces.
    fn declared(&self) -> u64 {
        self.declared.unwrap_or(self.payload.len() as u64)
    }

    /// Whether all of the frame's payload is there.
    fn complete(&self) -> bool {
        self.declared() == self.payload.len() as u64
    }

    /// The frame's bytes, as the figure of RFC 6455 §5.2 draws them.
    fn write(&self, out: &mut Vec<u8>) {
        out.push((u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode);
        let masked = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.declared();
        match self.length {
            Length::Minimal if len <= 125 => out.push(masked | len as u8),
            Length::Minimal | Length::Sixteen if len <= 0xFFFF => {
                out.push(masked | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(masked | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        // RFC 6455 §5.3: octet i is XORed with octet i MOD 4 of the masking key.
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
    }
}

fn serialise(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        frame.write(&mut out);
    }
    out
}

/// A message or control frame handed out, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

impl Msg {
    fn of(message: Message<'_>) -> Msg {
        match message {
            Message::Text(text) => Msg::Text(text.to_owned()),
            Message::Binary(data) => Msg::Binary(data.to_vec()),
            Message::Ping(data) => Msg::Ping(data.to_vec()),
            Message::Pong(data) => Msg::Pong(data.to_vec()),
            Message::Close(close) => Msg::Close(close.map(|(code, r)| (code, r.to_owned()))),
        }
    }
}

/// How the model says the stream ends.
#[derive(Debug)]
enum End {
    /// Every byte taken without fault. `idle`: nothing is held back (no unfinished frame or
    /// message). The decoder may instead fail with one of `or_fail` after all the messages
    /// (a misplaced frame whose payload has not all arrived).
    Open { idle: bool, or_fail: BTreeSet<u16> },
    /// The last message is a close: what comes after it is not the model's.
    Closed,
    /// The connection fails, with one of these close codes, after all the messages.
    Fail(BTreeSet<u16>),
}

#[derive(Debug)]
struct Expect {
    messages: Vec<Msg>,
    end: End,
    /// A text message that cannot be UTF-8 whatever follows was known bad after this many
    /// messages: the decoder may fail with 1007 there, or at any point after it.
    bad_text_from: Option<usize>,
}

/// The close codes a peer may send (RFC 6455 §7.4.1 and the ranges of RFC 6455 §7.4.2).
fn close_code_allowed(code: u16) -> bool {
    match code {
        // "0-999 ... are not used."
        0..=999 => false,
        // 1000 normal, 1001 going away, 1002 protocol error, 1003 unacceptable data.
        1000..=1003 => true,
        // 1004 reserved; 1005 and 1006 "MUST NOT be set as a status code in a Close
        // control frame by an endpoint".
        1004..=1006 => false,
        // 1007 invalid data, 1008 policy, 1009 too big, 1010 extension, 1011 unexpected
        // condition; 1012-1014 are in the IANA registry RFC 6455 §11.7 made (service
        // restart, try again later, bad gateway).
        1007..=1014 => true,
        // 1015 (TLS) "MUST NOT be set"; the rest of 1000-2999 is reserved for the protocol
        // and not yet defined.
        1015..=2999 => false,
        // Libraries and frameworks (IANA), then private use.
        3000..=4999 => true,
        _ => false,
    }
}

/// Inflates a compressed message's payload with its tail put back (RFC 7692 §7.2.2) into
/// at most `room` bytes: what it made, and whether it met no error on the way.
fn inflate(payload: &[u8], room: usize) -> (Vec<u8>, bool) {
    let input = [payload, &TAIL[..]].concat();
    let mut d = Decompress::new(false);
    let mut out = vec![0; room];
    let (mut taken, mut made) = (0, 0);
    let ok = loop {
        let status = d.decompress(&input[taken..], &mut out[made..], FlushDecompress::Sync);
        let (more_in, more_out) = (d.total_in() as usize - taken, d.total_out() as usize - made);
        (taken, made) = (taken + more_in, made + more_out);
        match status {
            Err(_) => break false,
            Ok(Status::StreamEnd) => break true,
            Ok(_) if made == room || taken == input.len() => break true,
            Ok(_) if more_in == 0 && more_out == 0 => break false,
            Ok(_) => {}
        }
    };
    out.truncate(made);
    (out, ok)
}

/// A message's data, checked as it is handed out: the close codes of its faults, if any.
fn finish(opcode: u8, compressed: bool, data: Vec<u8>, max: usize) -> Result<Msg, BTreeSet<u16>> {
    let data = if compressed {
        // A message that does not inflate is invalid data (1007, as `Error::InvalidDeflate`
        // documents); the bound applies to the inflated size.
        // Either fault may be the one seen first, when a message has both.
        let (inflated, ok) = inflate(&data, 1 << 20);
        let (bounded, _) = inflate(&data, max + 1);
        let mut codes = BTreeSet::new();
        if !ok {
            codes.insert(INVALID_DATA);
        }
        if bounded.len() > max {
            codes.insert(TOO_BIG);
        }
        if !codes.is_empty() {
            return Err(codes);
        }
        inflated
    } else {
        data
    };
    if opcode == TEXT {
        // RFC 6455 §8.1: a text message that is not UTF-8 fails the connection (1007).
        String::from_utf8(data)
            .map(Msg::Text)
            .map_err(|_| BTreeSet::from([INVALID_DATA]))
    } else {
        Ok(Msg::Binary(data))
    }
}

/// A close frame's payload (RFC 6455 §5.5.1): nothing, or a code a peer may send and a
/// UTF-8 reason.
fn close(payload: &[u8]) -> Result<Msg, BTreeSet<u16>> {
    match payload {
        [] => Ok(Msg::Close(None)),
        // "If there is a body, the first two bytes of the body MUST be a 2-byte unsigned
        // integer": one byte cannot be.
        [_] => Err(BTreeSet::from([PROTOCOL_ERROR])),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            let mut codes = BTreeSet::new();
            if !close_code_allowed(code) {
                codes.insert(PROTOCOL_ERROR);
            }
            let reason = std::str::from_utf8(reason);
            if reason.is_err() {
                codes.insert(INVALID_DATA);
            }
            match reason {
                Ok(reason) if codes.is_empty() => Ok(Msg::Close(Some((code, reason.to_owned())))),
                _ => Err(codes),
            }
        }
    }
}

/// The receiving endpoint, with the decoder's message bound, and permessage-deflate
/// (without client context takeover) negotiated or not.
#[derive(Clone, Copy, Debug)]
struct Model {
    max: usize,
    deflate: bool,
}

impl Model {
    fn decoder(self) -> Decoder {
        if self.deflate {
            let params = DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 15,
                client_max_window_bits: 15,
            };
            Decoder::with_deflate(self.max, &params)
        } else {
            Decoder::new(self.max)
        }
    }

    /// The bound a data frame's message is held to on the wire: for a compressed one,
    /// `Decoder::buffered`'s 64 bytes and 1/4096 more.
    fn wire_bound(self, compressed: bool) -> usize {
        if compressed {
            self.max + self.max / 4096 + 64
        } else {
            self.max
        }
    }

    /// What `Decoder::buffered` documents it never exceeds: a message at the wire bound and
    /// a whole control frame (125 bytes and a 14-byte header) beside it.
    fn hold(self) -> usize {
        self.wire_bound(self.deflate) + 125 + 14
    }

    fn predict(self, frames: &[Frame]) -> Expect {
        let mut messages = Vec::new();
        let mut bad_text_from = None;
        // The unfinished message: its opcode, whether it is compressed, its data so far.
        let mut open: Option<(u8, bool, Vec<u8>)> = None;
        let fail = |messages: Vec<Msg>, codes, bad_text_from| Expect {
            messages,
            end: End::Fail(codes),
            bad_text_from,
        };
        for frame in frames {
            let len = frame.declared();
            let data = matches!(frame.opcode, CONTINUATION | TEXT | BINARY);
            let control = matches!(frame.opcode, CLOSE | PING | PONG);
            // RFC 7692 §6: RSV1 marks a compressed message, on its first frame.
            let compressed =
                self.deflate && frame.rsv == RSV1 && matches!(frame.opcode, TEXT | BINARY);
            // Faults of the frame's own header: fail once it has arrived.
            let mut header = BTreeSet::new();
            // RFC 6455 §5.2: RSV1-3 "MUST be 0 unless an extension is negotiated that
            // defines meanings for non-zero values"; RFC 7692 §6.1: RSV1 on a control or
            // continuation frame is still a fault.
            if frame.rsv != 0 && !compressed {
                header.insert(PROTOCOL_ERROR);
            }
            // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST
            // _Fail the WebSocket Connection_."
            if !data && !control {
                header.insert(PROTOCOL_ERROR);
            }
            // RFC 6455 §5.1: "The server MUST close the connection upon receiving a frame
            // that is not masked" (with 1002, RFC 6455 §7.4.1).
            if frame.mask.is_none() {
                header.insert(PROTOCOL_ERROR);
            }
            // RFC 6455 §5.2: a 64-bit length's "most significant bit MUST be 0".
            if len >> 63 != 0 {
                header.insert(PROTOCOL_ERROR);
            }
            // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or
            // less and MUST NOT be fragmented."
            if control && (!frame.fin || len > 125) {
                header.insert(PROTOCOL_ERROR);
            }
            // RFC 6455 §5.4: a continuation continues an unfinished message; a new data
            // message may not start inside one (no extension interleaves).
            let placed = matches!(
                (&open, frame.opcode),
                (Some(_), CONTINUATION) | (None, TEXT | BINARY)
            );
            let mut placement = BTreeSet::new();
            if data && !placed {
                placement.insert(PROTOCOL_ERROR);
            }
            // The message bound, on what the message would hold with this frame.
            let held = open.as_ref().map_or(0, |(_, _, d)| d.len() as u128);
            let over = |bound: usize| data && held + u128::from(len) > bound as u128;
            let mut instead = BTreeSet::new();
            if header.is_empty() && placement.is_empty() {
                let message_compressed = match &open {
                    Some((_, c, _)) => *c,
                    None => compressed,
                };
                if over(self.wire_bound(message_compressed)) {
                    header.insert(TOO_BIG);
                }
            } else if over(self.max) {
                instead.insert(TOO_BIG);
            }
            if !frame.complete() {
                // The stream's last frame, cut short. Its text so far may fail fast too.
                let (first, compressed, so_far) = match &open {
                    Some((first, compressed, so_far)) => (*first, *compressed, so_far.clone()),
                    None => (frame.opcode, compressed, Vec::new()),
                };
                let so_far = [so_far, frame.payload.clone()].concat();
                let bad = std::str::from_utf8(&so_far).is_err_and(|e| e.error_len().is_some());
                if header.is_empty() && data && placed && first == TEXT && !compressed && bad {
                    bad_text_from.get_or_insert(messages.len());
                }
                let mut codes: BTreeSet<u16> = placement.union(&instead).copied().collect();
                if !header.is_empty() {
                    codes.extend(header);
                    return fail(messages, codes, bad_text_from);
                }
                if placement.is_empty() {
                    codes.clear();
                }
                return Expect {
                    messages,
                    end: End::Open {
                        idle: false,
                        or_fail: codes,
                    },
                    bad_text_from,
                };
            }
            if !header.is_empty() || !placement.is_empty() {
                let codes = header.into_iter().chain(placement).chain(instead).collect();
                return fail(messages, codes, bad_text_from);
            }
            let payload = frame.payload.clone();
            match frame.opcode {
                PING => messages.push(Msg::Ping(payload)),
                PONG => messages.push(Msg::Pong(payload)),
                CLOSE => match close(&payload) {
                    Ok(close) => {
                        messages.push(close);
                        return Expect {
                            messages,
                            end: End::Closed,
                            bad_text_from,
                        };
                    }
                    Err(codes) => return fail(messages, codes, bad_text_from),
                },
                opcode => {
                    let (first, compressed, mut so_far) = match open.take() {
                        Some(open) => open,
                        None => (opcode, compressed, Vec::new()),
                    };
                    so_far.extend_from_slice(&payload);
                    if !frame.fin {
                        // RFC 6455 §8.1 lets a text message fail as soon as its bytes so
                        // far cannot begin UTF-8 ("fail fast"), or once it is complete.
                        let bad =
                            std::str::from_utf8(&so_far).is_err_and(|e| e.error_len().is_some());
                        if first == TEXT && !compressed && bad {
                            bad_text_from.get_or_insert(messages.len());
                        }
                        open = Some((first, compressed, so_far));
                        continue;
                    }
                    match finish(first, compressed, so_far, self.max) {
                        Ok(message) => messages.push(message),
                        Err(codes) => return fail(messages, codes, bad_text_from),
                    }
                }
            }
        }
        Expect {
            messages,
            end: End::Open {
                idle: open.is_none(),
                or_fail: BTreeSet::new(),
            },
            bad_text_from,
        }
    }
}

/// What the decoder did with a stream.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    seen: Vec<Msg>,
    error: Option<Error>,
    idle: bool,
}

/// Feeds `pieces` in turn (with `feed_at_most` and then feeds of no bytes while it stops,
/// under a `budget`), checking the buffering bound after each call.
fn run(model: Model, pieces: &[&[u8]], budget: Option<usize>) -> Run {
    let mut decoder = model.decoder();
    let hold = model.hold();
    let mut seen = Vec::new();
    let mut error = None;
    'pieces: for piece in pieces {
        let mut copy = piece.to_vec();
        let mut input: &mut [u8] = &mut copy;
        loop {
            let mut on_message = |m: Message<'_>| seen.push(Msg::of(m));
            let result = match budget {
                None => decoder.feed(input, &mut on_message).map(|()| false),
                Some(budget) => decoder.feed_at_most(input, budget, &mut on_message),
            };
            match result {
                Err(e) => {
                    error = Some(e);
                    break 'pieces;
                }
                // Stopped by the budget, the decoder keeps the whole frames after it (as
                // `feed_at_most` documents): the bound holds once it has taken all it can.
                Ok(true) => input = &mut [],
                Ok(false) => {
                    assert!(
                        decoder.buffered() <= hold,
                        "holding {} over the documented {hold}",
                        decoder.buffered()
                    );
                    break;
                }
            }
        }
    }
    if let Some(e) = error {
        // After an error the decoder refuses everything.
        let mut more = [0x81, 0x80, 0, 0, 0, 0];
        assert_eq!(
            decoder.feed(&mut more, &mut |m| panic!("{m:?} after {e}")),
            Err(e)
        );
    }
    Run {
        seen,
        error,
        idle: decoder.is_idle(),
    }
}

/// `bytes` cut where `cuts` says (taken modulo its length plus one).
fn cut<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut last = 0;
    for cut in at {
        pieces.push(&bytes[last..cut]);
        last = cut;
    }
    pieces.push(&bytes[last..]);
    pieces
}

/// Whether the decoder's run is one the model allows; why not, if not.
fn agrees(expect: &Expect, run: &Run) -> Result<(), String> {
    let mut seen = &run.seen[..];
    let mut error = run.error.map(Error::close_code);
    if matches!(expect.end, End::Closed) {
        if let Some(at) = seen.iter().position(|m| matches!(m, Msg::Close(_))) {
            seen = &seen[..=at];
            error = None;
        }
    }
    let all = expect.messages.len();
    let k = seen.len();
    if k > all || seen != &expect.messages[..k] {
        return Err(format!("messages differ after {k} of {all}"));
    }
    match error {
        Some(code) => {
            let fail_fast = code == INVALID_DATA && expect.bad_text_from.is_some_and(|at| k >= at);
            let at_end = k == all
                && match &expect.end {
                    End::Fail(codes) => codes.contains(&code),
                    End::Open { or_fail, .. } => or_fail.contains(&code),
                    End::Closed => false,
                };
            if fail_fast || at_end {
                Ok(())
            } else {
                Err(format!("failed with {code} after {k} of {all} messages"))
            }
        }
        None if k < all => Err(format!("stopped after {k} of {all} messages")),
        None => match &expect.end {
            End::Fail(codes) => Err(format!("no failure; expected one of {codes:?}")),
            End::Open { idle, .. } if *idle != run.idle => {
                Err(format!("idle {} where the model says {idle}", run.idle))
            }
            _ => Ok(()),
        },
    }
}

/// Serialises `frames`, feeds them every way, and checks the runs agree with each other and
/// with the model; the model's verdict, for tests that want to steer their cases.
fn verify(
    model: Model,
    frames: &[Frame],
    cuts: &[usize],
    budget: usize,
) -> Result<Expect, TestCaseError> {
    let bytes = serialise(frames);
    let expect = model.predict(frames);
    let whole = run(model, &[&bytes], None);
    let bytewise = run(model, &bytes.chunks(1).collect::<Vec<_>>(), None);
    let pieces = cut(&bytes, cuts);
    let split = run(model, &pieces, None);
    let budgeted = run(model, &pieces, Some(budget));
    prop_assert_eq!(&bytewise, &whole, "one byte at a time, {:?}", frames);
    prop_assert_eq!(&split, &whole, "in pieces, {:?}", frames);
    prop_assert_eq!(
        &budgeted,
        &whole,
        "under a budget of {}, {:?}",
        budget,
        frames
    );
    if let Err(why) = agrees(&expect, &whole) {
        return Err(TestCaseError::fail(format!(
            "{why}\n{model:?}\nframes: {frames:?}\nexpected: {expect:?}\ndecoder: {whole:?}"
        )));
    }
    Ok(expect)
}

// ---------------------------------------------------------------------------------------
// Generators.

fn style() -> impl Strategy<Value = ([u8; 4], Length)> {
    let mask = prop_oneof![1 => Just([0; 4]), 4 => any::<[u8; 4]>()];
    let length = prop_oneof![
        6 => Just(Length::Minimal),
        1 => Just(Length::Sixteen),
        1 => Just(Length::SixtyFour),
    ];
    (mask, length)
}

/// Characters of 1 to 4 bytes in UTF-8, so that fragments and cuts split them.
fn character() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => select(vec!['a', 'z', ' ', '[', '"']),
        3 => select(vec!['é', '€', '𝄞', '\u{0}', '\u{FEFF}', '\u{10FFFF}', '\u{7FF}']),
        1 => any::<char>(),
    ]
}

fn utf8(chars: std::ops::Range<usize>) -> BoxedStrategy<Vec<u8>> {
    vec(character(), chars)
        .prop_map(|c| c.into_iter().collect::<String>().into_bytes())
        .boxed()
}

/// Byte sequences that are never UTF-8: a byte no UTF-8 has, an overlong `/`, a surrogate,
/// past U+10FFFF, a character cut short, a lone continuation byte, a 5-byte form.
fn not_utf8() -> impl Strategy<Value = Vec<u8>> {
    select(vec![
        vec![0xff],
        vec![0xc0, 0xaf],
        vec![0xed, 0xa0, 0x80],
        vec![0xf4, 0x90, 0x80, 0x80],
        vec![0xe2, 0x82],
        vec![0x80],
        vec![0xf8, 0x88, 0x80, 0x80, 0x80],
    ])
}

/// Mostly UTF-8, sometimes with a bad sequence put in anywhere, cut short, or any bytes.
fn text_bytes(chars: usize) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        6 => utf8(0..chars),
        2 => (utf8(0..chars), not_utf8(), any::<Index>()).prop_map(|(mut text, bad, at)| {
            let at = at.index(text.len() + 1);
            text.splice(at..at, bad);
            text
        }),
        1 => (utf8(1..chars.max(2)), 1usize..4).prop_map(|(text, short)| {
            text[..text.len().saturating_sub(short)].to_vec()
        }),
        1 => vec(any::<u8>(), 0..chars * 2),
    ]
    .boxed()
}

/// A ping or pong with `sizes` bytes, its FIN set with probability `fin`.
fn ping_or_pong(sizes: BoxedStrategy<usize>, fin: f64) -> BoxedStrategy<Frame> {
    (
        select(vec![PING, PONG]),
        sizes.prop_flat_map(|n| vec(any::<u8>(), n)),
        prop::bool::weighted(fin),
        style(),
    )
        .prop_map(|(opcode, payload, fin, style)| Frame::new(fin, opcode, payload, style))
        .boxed()
}

/// Control frames up to 125 bytes, many of them near it.
fn good_control() -> BoxedStrategy<Frame> {
    ping_or_pong(
        prop_oneof![3 => 0usize..=8, 1 => 118usize..=125].boxed(),
        1.0,
    )
}

/// Control frames around 125 bytes, some fragmented.
fn edgy_control() -> BoxedStrategy<Frame> {
    ping_or_pong(
        prop_oneof![1 => 0usize..=4, 3 => 122usize..=128].boxed(),
        0.85,
    )
}

/// Close codes a peer may send (RFC 6455 §7.4.1).
fn good_close_code() -> impl Strategy<Value = u16> {
    prop_oneof![
        select(vec![
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014
        ]),
        3000u16..=4999,
    ]
}

/// Close codes of every class of RFC 6455 §7.4.
fn close_code() -> impl Strategy<Value = u16> {
    let edges = vec![
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 3000, 3999, 4000, 4999, 5000,
        65535,
    ];
    prop_oneof![
        4 => good_close_code(),
        3 => select(edges),
        1 => 0u16..=999,
        1 => 1016u16..=2999,
        1 => 5000u16..=u16::MAX,
    ]
}

/// A close payload: empty, one byte, or a code and a reason (UTF-8 or not, some long
/// enough to take the frame past 125 bytes).
fn close_payload() -> impl Strategy<Value = Vec<u8>> {
    let reason = prop_oneof![
        4 => utf8(0..12),
        1 => (118usize..=125).prop_map(|n| vec![b'r'; n]),
        2 => (utf8(0..8), not_utf8(), any::<Index>()).prop_map(|(mut text, bad, at)| {
            let at = at.index(text.len() + 1);
            text.splice(at..at, bad);
            text
        }),
    ];
    prop_oneof![
        1 => Just(Vec::new()),
        1 => any::<u8>().prop_map(|b| vec![b]),
        6 => (close_code(), reason)
            .prop_map(|(code, reason)| [&code.to_be_bytes()[..], &reason].concat()),
    ]
}

/// Any control frame: pings and pongs of any size near the limit or not, closes.
fn any_control() -> BoxedStrategy<Frame> {
    prop_oneof![3 => good_control(), 1 => edgy_control(), 1 => close_frame()].boxed()
}

fn close_frame() -> BoxedStrategy<Frame> {
    (close_payload(), style())
        .prop_map(|(payload, style)| Frame::new(true, CLOSE, payload, style))
        .boxed()
}

/// A data message (`(text, data)`) in fragments cut anywhere, empty ones too, with
/// `controls` between some of them.
fn fragmented(
    message: BoxedStrategy<(bool, Vec<u8>)>,
    controls: BoxedStrategy<Frame>,
) -> BoxedStrategy<Vec<Frame>> {
    (
        message,
        prop_oneof![2 => Just(Vec::new()), 3 => vec(any::<usize>(), 1..5)],
        vec(option::weighted(0.4, controls), 5),
        vec(style(), 6),
    )
        .prop_map(|((text, data), cuts, between, styles)| {
            let pieces = cut(&data, &cuts);
            let mut frames = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                let last = i + 1 == pieces.len();
                let opcode = match (i, text) {
                    (0, true) => TEXT,
                    (0, false) => BINARY,
                    _ => CONTINUATION,
                };
                frames.push(Frame::new(
                    last,
                    opcode,
                    piece.to_vec(),
                    styles[i % styles.len()],
                ));
                if let (false, Some(Some(control))) = (last, between.get(i)) {
                    frames.push(control.clone());
                }
            }
            frames
        })
        .boxed()
}

/// Text (mostly UTF-8) or binary messages of up to about `chars` characters.
fn any_message(chars: usize) -> BoxedStrategy<(bool, Vec<u8>)> {
    (any::<bool>(), text_bytes(chars)).boxed()
}

/// Text (UTF-8) or binary messages.
fn good_message(chars: usize) -> BoxedStrategy<(bool, Vec<u8>)> {
    (any::<bool>(), utf8(0..chars)).boxed()
}

/// A frame of anything: any FIN, RSV, opcode, masked or not.
fn raw_frame() -> BoxedStrategy<Frame> {
    (
        any::<bool>(),
        prop_oneof![3 => Just(0u8), 1 => 0u8..8],
        0u8..16,
        any::<bool>(),
        vec(any::<u8>(), 0..130),
        style(),
    )
        .prop_map(|(fin, rsv, opcode, masked, payload, style)| {
            let mut frame = Frame::new(fin, opcode, payload, style);
            frame.rsv = rsv;
            if !masked {
                frame.mask = None;
            }
            frame
        })
        .boxed()
}

fn traffic(item: BoxedStrategy<Vec<Frame>>, items: usize) -> BoxedStrategy<Vec<Frame>> {
    vec(item, 0..items).prop_map(|f| f.concat()).boxed()
}

/// One fault put into a stream of frames.
#[derive(Clone, Debug)]
enum Mutation {
    Rsv(u8),
    Opcode(u8),
    Unmask,
    FlipFin,
    /// A 64-bit length with its most significant bit set; the stream ends in the frame.
    HighBit,
    /// The frame cut short after this many payload bytes (modulo); the stream ends there.
    CutShort(usize),
    /// A length announced far beyond the payload; the stream ends in the frame.
    Huge(u64),
    Drop,
    Swap,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (1u8..8).prop_map(Mutation::Rsv),
        2 => (0u8..16).prop_map(Mutation::Opcode),
        1 => Just(Mutation::Unmask),
        2 => Just(Mutation::FlipFin),
        1 => Just(Mutation::HighBit),
        1 => any::<usize>().prop_map(Mutation::CutShort),
        1 => prop_oneof![
            126u64..=70_000,
            65_536u64..=u64::from(u32::MAX),
            (1u64 << 32)..(1u64 << 63),
        ].prop_map(Mutation::Huge),
        1 => Just(Mutation::Drop),
        1 => Just(Mutation::Swap),
    ]
}

/// `frames` with each fault applied in turn.
fn with_faults(mut frames: Vec<Frame>, faults: &[(Index, Mutation)]) -> Vec<Frame> {
    for (at, fault) in faults {
        mutate(&mut frames, *at, fault);
    }
    frames
}

fn mutate(frames: &mut Vec<Frame>, at: Index, mutation: &Mutation) {
    if frames.is_empty() {
        return;
    }
    let i = at.index(frames.len());
    let frame = &mut frames[i];
    let len = frame.payload.len();
    match *mutation {
        Mutation::Rsv(rsv) => frame.rsv = rsv,
        Mutation::Opcode(opcode) => frame.opcode = opcode,
        Mutation::Unmask => frame.mask = None,
        Mutation::FlipFin => frame.fin = !frame.fin,
        Mutation::HighBit => {
            frame.declared = Some(len as u64 | 1 << 63);
            frames.truncate(i + 1);
        }
        Mutation::CutShort(keep) => {
            if len > 0 {
                frame.declared = Some(len as u64);
                frame.payload.truncate(keep % len);
                frames.truncate(i + 1);
            }
        }
        Mutation::Huge(declared) => {
            frame.declared = Some(declared.max(len as u64 + 1));
            frames.truncate(i + 1);
        }
        Mutation::Drop => {
            frames.remove(i);
        }
        Mutation::Swap => {
            if i + 1 < frames.len() {
                frames.swap(i, i + 1);
            }
        }
    }
    // A frame cut short ends the stream, wherever a later fault moved it.
    if let Some(short) = frames.iter().position(|f| !f.complete()) {
        frames.truncate(short + 1);
    }
}

/// Message bounds, small ones (and 125, 126) among them.
fn bound() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        1 => Just(1usize),
        2 => 2usize..=40,
        1 => Just(125usize),
        1 => Just(126usize),
        3 => 100usize..=600,
    ]
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    vec(any::<usize>(), 0..8)
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // This file's failures are reported, not kept in a file beside it.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(config(1024))]

    /// RFC 6455 §5.4: a fragmented message, its fragments cut anywhere (through UTF-8
    /// characters, empty ones too), with control frames between them, is one message with
    /// exactly its data, however its bytes arrive; lengths written with more bytes than
    /// needed read the same.
    #[test]
    fn rfc6455_5_4_fragments_deliver_one_message_whatever_the_split(
        frames in traffic(
            prop_oneof![
                4 => fragmented(good_message(120), good_control()),
                1 => good_control().prop_map(|f| vec![f]),
            ].boxed(),
            6,
        ),
        close in option::of((good_close_code(), utf8(0..12), style())),
        cuts in cuts(),
        budget in 0usize..300,
    ) {
        let mut frames = frames;
        frames.extend(close.map(|(code, reason, style)| {
            Frame::new(true, CLOSE, [&code.to_be_bytes()[..], &reason].concat(), style)
        }));
        let model = Model { max: 4096, deflate: false };
        let expect = verify(model, &frames, &cuts, budget)?;
        // All of it well-formed: every message and control frame is handed out.
        let handed = frames.iter().filter(|f| f.fin).count();
        prop_assert_eq!(expect.messages.len(), handed);
        let clean = matches!(expect.end, End::Closed | End::Open { idle: true, .. });
        prop_assert!(clean, "{:?}", expect);
    }

    /// RFC 6455 §5.2: RSV bits without an extension, unknown opcodes, unmasked client frames
    /// (RFC 6455 §5.1), 64-bit lengths with the top bit set, continuations out of place and
    /// messages inside messages (RFC 6455 §5.4) fail the connection with 1002.
    #[test]
    fn rfc6455_5_2_reserved_bits_opcodes_unmasked_frames_and_bad_lengths_fail_with_1002(
        frames in traffic(
            prop_oneof![
                3 => fragmented(good_message(60), good_control()),
                1 => good_control().prop_map(|f| vec![f]),
                1 => raw_frame().prop_map(|f| vec![f]),
            ].boxed(),
            5,
        ),
        faults in vec((any::<Index>(), mutation()), 1..3),
        cuts in cuts(),
        budget in 0usize..300,
    ) {
        let frames = with_faults(frames, &faults);
        verify(Model { max: 1024, deflate: false }, &frames, &cuts, budget)?;
    }

    /// RFC 6455 §5.5: control frames carry at most 125 bytes and are never fragmented, may
    /// come between a message's fragments, and are not held to the message bound; a
    /// message at the bound and a control frame beside it stay within `buffered()`'s bound.
    #[test]
    fn rfc6455_5_5_control_frames_hold_at_most_125_bytes_and_are_never_fragmented(
        max in bound(),
        frames in traffic(
            prop_oneof![
                3 => fragmented(good_message(150), edgy_control()),
                2 => edgy_control().prop_map(|f| vec![f]),
            ].boxed(),
            5,
        ),
        cuts in cuts(),
        budget in 0usize..300,
    ) {
        verify(Model { max, deflate: false }, &frames, &cuts, budget)?;
    }

    /// RFC 6455 §5.5.1: a close frame is empty or starts with a two-byte code a peer may
    /// send (RFC 6455 §7.4.1; 1012-1014 registered since), followed by a UTF-8 reason; a
    /// one-byte payload or another code is 1002, a reason that is not UTF-8 is 1007. The
    /// close is handed out after everything before it.
    #[test]
    fn rfc6455_5_5_1_close_frames_carry_a_code_a_peer_may_send_and_a_utf8_reason(
        before in traffic(fragmented(good_message(40), good_control()), 3),
        close in close_frame(),
        after in traffic(fragmented(good_message(20), good_control()), 2),
        cuts in cuts(),
        budget in 0usize..300,
    ) {
        let frames = [before, vec![close], after].concat();
        verify(Model { max: 1024, deflate: false }, &frames, &cuts, budget)?;
    }

    /// RFC 6455 §8.1: a text message must be UTF-8 once its fragments are joined, whatever
    /// characters the fragments split; one that is not fails with 1007 (as soon as it cannot
    /// be UTF-8, or when complete), and binary messages take any bytes.
    #[test]
    fn rfc6455_8_1_text_is_utf8_across_fragments_or_fails_with_1007(
        frames in traffic(fragmented(any_message(100), good_control()), 5),
        cuts in cuts(),
        budget in 0usize..300,
    ) {
        verify(Model { max: 2048, deflate: false }, &frames, &cuts, budget)?;
    }

    /// RFC 6455 §7.4.1: a message over the decoder's bound (all its fragments together) fails
    /// with 1009, from the header announcing it, before its payload is buffered (the limit
    /// RFC 6455 §10.4 asks for); one at the bound is delivered, and control frames between
    /// fragments do not count.
    #[test]
    fn rfc6455_7_4_1_messages_over_the_bound_fail_with_1009(
        (max, frames) in bound().prop_flat_map(|max| {
            let near = (-3i64..=3, any::<bool>()).prop_map(move |(delta, text)| {
                (text, vec![b'x'; (max as i64 + delta).max(0) as usize])
            });
            (Just(max), traffic(fragmented(near.boxed(), good_control()), 4))
        }),
        fault in option::weighted(0.3, (any::<Index>(), mutation())),
        cuts in cuts(),
        budget in 0usize..300,
    ) {
        let mut frames = frames;
        if let Some((at, fault)) = &fault {
            mutate(&mut frames, *at, fault);
        }
        verify(Model { max, deflate: false }, &frames, &cuts, budget)?;
    }
}

proptest! {
    #![proptest_config(config(4096))]

    /// RFC 6455 §5: any traffic, well-formed or with faults of every kind (RSV, opcodes,
    /// masking, lengths, fragmentation, control sizes, close payloads, UTF-8, the bound),
    /// decodes as the model reads it, whatever the split.
    #[test]
    fn rfc6455_5_any_traffic_decodes_as_the_model_reads_it(
        max in bound(),
        frames in traffic(
            prop_oneof![
                4 => fragmented(any_message(80), any_control()),
                2 => good_control().prop_map(|f| vec![f]),
                1 => edgy_control().prop_map(|f| vec![f]),
                1 => close_frame().prop_map(|f| vec![f]),
                1 => raw_frame().prop_map(|f| vec![f]),
            ].boxed(),
            6,
        ),
        faults in vec((any::<Index>(), mutation()), 0..2),
        cuts in cuts(),
        budget in 0usize..300,
    ) {
        let frames = with_faults(frames, &faults);
        verify(Model { max, deflate: false }, &frames, &cuts, budget)?;
    }
}

/// `data` compressed as RFC 7692 §7.2.1 says: raw DEFLATE, a sync flush, its tail removed.
fn compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::new(level));
    encoder.write_all(data).unwrap();
    encoder.flush().unwrap();
    let mut out = encoder.get_ref().clone();
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    out
}

/// A data message, compressed (RSV1 on its first frame) or not, or a compressed message
/// that does not inflate (block type 3, reserved).
fn deflate_message() -> BoxedStrategy<Vec<Frame>> {
    let content = prop_oneof![
        3 => text_bytes(80),
        1 => (1usize..3000).prop_map(|n| vec![b'a'; n]),
    ];
    let payload = prop_oneof![
        6 => (content, 0u32..=9).prop_map(|(data, level)| (true, compress(&data, level))),
        2 => utf8(0..60).prop_map(|data| (false, data)),
        1 => vec(any::<u8>(), 0..20).prop_map(|rest| (true, [&[0xffu8][..], &rest].concat())),
    ];
    (any::<bool>(), payload)
        .prop_flat_map(|(text, (compressed, data))| {
            fragmented(Just((text, data)).boxed(), good_control()).prop_map(move |mut frames| {
                if compressed {
                    frames[0].rsv = RSV1;
                }
                frames
            })
        })
        .boxed()
}

proptest! {
    #![proptest_config(config(768))]

    /// RFC 7692 §6.1: with permessage-deflate, RSV1 on a data message's first frame marks it
    /// compressed: it inflates to its data (bounded by its inflated size, 1009; 1007 if it
    /// does not inflate), while RSV1 on a control or continuation frame, and RSV2 and RSV3,
    /// still fail with 1002 (RFC 6455 §5.2).
    #[test]
    fn rfc7692_6_1_compressed_messages_decode_as_the_model_inflates_them(
        max in prop_oneof![bound(), 1000usize..=4000],
        frames in traffic(
            prop_oneof![
                4 => deflate_message(),
                1 => good_control().prop_map(|f| vec![f]),
            ].boxed(),
            4,
        ),
        fault in option::weighted(0.3, (any::<Index>(), mutation())),
        cuts in cuts(),
        budget in 0usize..300,
    ) {
        let mut frames = frames;
        if let Some((at, fault)) = &fault {
            mutate(&mut frames, *at, fault);
        }
        verify(Model { max, deflate: true }, &frames, &cuts, budget)?;
    }
}

// ---------------------------------------------------------------------------------------
// Examples.

fn check(model: Model, frames: &[Frame], cuts: &[usize]) -> Expect {
    match verify(model, frames, cuts, 100) {
        Ok(expect) => expect,
        Err(e) => panic!("{e}"),
    }
}

/// RFC 6455 §5.7: the model writes the RFC's example frames byte for byte, and the decoder
/// reads the masked ones as the model does.
#[test]
fn rfc6455_5_7_the_model_writes_the_rfc_examples_and_the_decoder_reads_them() {
    let unmasked = |fin, opcode, payload: &[u8]| Frame {
        mask: None,
        ..Frame::new(fin, opcode, payload.to_vec(), ([0; 4], Length::Minimal))
    };
    let hello = b"Hello";
    assert_eq!(
        serialise(&[unmasked(true, TEXT, hello)]),
        [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    let masked = Frame::new(
        true,
        TEXT,
        hello.to_vec(),
        ([0x37, 0xfa, 0x21, 0x3d], Length::Minimal),
    );
    assert_eq!(
        serialise(std::slice::from_ref(&masked)),
        [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
        ]
    );
    assert_eq!(
        serialise(&[
            unmasked(false, TEXT, b"Hel"),
            unmasked(true, CONTINUATION, b"lo")
        ]),
        [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
    );
    assert_eq!(
        serialise(&[unmasked(true, PING, hello)]),
        [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    assert_eq!(
        serialise(&[unmasked(true, BINARY, &[0; 256])])[..4],
        [0x82, 0x7E, 0x01, 0x00]
    );
    assert_eq!(
        serialise(&[unmasked(true, BINARY, &[0; 65536])])[..10],
        [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]
    );

    let model = Model {
        max: 1024,
        deflate: false,
    };
    let expect = check(model, &[masked.clone(), masked.clone()], &[3, 11]);
    assert_eq!(
        expect.messages,
        [Msg::Text("Hello".into()), Msg::Text("Hello".into())]
    );
    // The RFC's unmasked frames are server frames: from a client, 1002.
    let expect = check(model, &[unmasked(true, TEXT, hello)], &[]);
    assert!(matches!(expect.end, End::Fail(codes) if codes == BTreeSet::from([PROTOCOL_ERROR])));
}

/// RFC 6455 §5.2: 64-bit lengths (written minimally above 65535 bytes, or not) are read
/// whatever the split, and a message of them may be fragmented.
#[test]
fn rfc6455_5_2_64_bit_lengths_are_read_whatever_the_split() {
    let model = Model {
        max: 1 << 17,
        deflate: false,
    };
    let style = ([9, 8, 7, 6], Length::Minimal);
    let big: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let text = "é€𝄞x".repeat(7_000);
    let (a, b) = text.as_bytes().split_at(66_001);
    let frames = [
        Frame::new(true, BINARY, big.clone(), style),
        Frame::new(false, TEXT, a.to_vec(), (style.0, Length::SixtyFour)),
        Frame::new(
            true,
            PING,
            b"between".to_vec(),
            (style.0, Length::SixtyFour),
        ),
        Frame::new(true, CONTINUATION, b.to_vec(), (style.0, Length::Sixteen)),
    ];
    let expect = check(model, &frames, &[1, 2, 9, 14, 70_013, 70_015, 100_000]);
    assert_eq!(
        expect.messages,
        [
            Msg::Binary(big),
            Msg::Ping(b"between".to_vec()),
            Msg::Text(text)
        ]
    );
    assert!(matches!(expect.end, End::Open { idle: true, .. }));
}

/// RFC 6455 §10.4 (implementation limits): `Decoder::buffered` holds at most the message
/// bound and one control frame beside it after every feed that took all it was given;
/// while `feed_at_most` has stopped at its budget it also keeps the whole frames after the
/// stop (as both documentations say), at most the bytes that call was given, and the bound
/// holds again once a feed returns `Ok(false)`. Bytes: 25 empty masked binary frames
/// `82 80 00 00 00 00`, bound 0, budget 0.
#[test]
fn rfc6455_10_4_a_stopped_feed_keeps_at_most_its_input_and_the_bound_holds_after() {
    let max = 0;
    let mut input = [0x82, 0x80, 0, 0, 0, 0].repeat(25);
    let given = input.len();
    let mut decoder = Decoder::new(max);
    let mut messages = 0;
    assert_eq!(
        decoder.feed_at_most(&mut input, 0, &mut |_| messages += 1),
        Ok(true)
    );
    assert!(
        decoder.buffered() > max + 125 + 14,
        "the stop keeps the frames after it"
    );
    assert!(
        decoder.buffered() <= given,
        "holding {}",
        decoder.buffered()
    );
    while decoder.feed_at_most(&mut [], 0, &mut |_| messages += 1) == Ok(true) {
        assert!(decoder.buffered() <= given);
    }
    assert_eq!(messages, 25);
    assert!(decoder.buffered() <= max + 125 + 14);
    assert!(decoder.is_idle());
}
