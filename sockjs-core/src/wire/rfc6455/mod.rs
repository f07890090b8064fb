//! RFC 6455 WebSocket framing for the server side: a decoder of client frames and encoders
//! of server frames, sans I/O.
//!
//! The decoder works on the caller's buffer: a frame that arrived whole is unmasked in
//! place and handed out as a borrowed slice, so a connection whose messages fit in one read
//! needs no buffer of its own (read into a shared scratch buffer, feed it, done). Only the
//! bytes of an unfinished frame or fragmented message are kept, in the decoder.
//!
//! ```
//! use sockjs_core::wire::rfc6455::{Decoder, Message, encode_text};
//!
//! // A masked client text frame "hi" (mask 1 2 3 4).
//! let mut input = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
//! let mut decoder = Decoder::new(1024);
//! let mut seen = Vec::new();
//! decoder.feed(&mut input, &mut |message| {
//!     if let Message::Text(text) = message {
//!         seen.push(text.to_owned());
//!     }
//! })?;
//! assert_eq!(seen, ["hi"]);
//!
//! let mut out = Vec::new();
//! encode_text("a[\"hi\"]", &mut out);
//! assert_eq!(out[..2], [0x81, 7]);
//! # Ok::<(), sockjs_core::wire::rfc6455::Error>(())
//! ```
//!
//! # permessage-deflate
//!
//! With the `deflate` cargo feature, a decoder made by `Decoder::with_deflate` also takes
//! compressed messages (RFC 7692: RSV1 on the first frame of a data message), inflating
//! them after reassembly with the message bound applied to the *inflated* size, and a
//! `Deflater` compresses the server's text messages. Without context takeover (the
//! default, see [`DeflateOptions`](crate::DeflateOptions)) both use the thread's
//! compressor and decompressor, reset for each message, so a connection holds no
//! compression state; with it, the connection owns its own from its first compressed
//! message on. A decoder made by [`Decoder::new`] refuses RSV1 as before (1002), and the
//! uncompressed paths are unchanged.
//!
#![cfg_attr(feature = "deflate", doc = "```")]
#![cfg_attr(not(feature = "deflate"), doc = "```ignore")]
//! use sockjs_core::DeflateParams;
//! use sockjs_core::wire::rfc6455::{Decoder, Message};
//!
//! let params = DeflateParams {
//!     server_no_context_takeover: true,
//!     client_no_context_takeover: true,
//!     server_max_window_bits: 15,
//!     client_max_window_bits: 15,
//! };
//! // RFC 7692 §7.2.3.1: "Hello" compressed, in a masked frame with RSV1 (mask 0 0 0 0).
//! let mut input = [0xc1, 0x87, 0, 0, 0, 0, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
//! let mut seen = String::new();
//! Decoder::with_deflate(1024, &params).feed(&mut input, &mut |message| {
//!     if let Message::Text(text) = message {
//!         seen.push_str(text);
//!     }
//! })?;
//! assert_eq!(seen, "Hello");
//! # Ok::<(), sockjs_core::wire::rfc6455::Error>(())
//! ```

use std::fmt;

#[cfg(feature = "deflate")]
mod deflate;
#[cfg(feature = "deflate")]
#[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
pub use deflate::{Deflater, compress_message};

/// A complete message or control frame from the client, borrowed from the input (or from
/// the decoder, for a fragmented message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (valid UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
    /// A ping: answer with a pong carrying the same payload ([`encode_pong`]).
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The client's close frame, with its code and reason if it has them: answer with a
    /// close frame ([`encode_close`]) and close the connection.
    Close(Option<(u16, &'a str)>),
}

/// Why the client's frames are refused. Each maps to the close code the server answers
/// with ([`Error::close_code`]) before closing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// A frame the protocol forbids: unmasked, reserved bits or opcodes, a fragmented or
    /// oversized control frame, a continuation out of place, a bad close payload (1002).
    Protocol(&'static str),
    /// A text message or close reason that is not UTF-8 (1007).
    InvalidUtf8,
    /// A message over the decoder's bound (1009); for a compressed message, its inflated
    /// size.
    TooBig,
    /// A compressed message that does not inflate (1007).
    InvalidDeflate,
}

impl Error {
    /// The close code to answer with.
    pub fn close_code(self) -> u16 {
        match self {
            Error::Protocol(_) => 1002,
            Error::InvalidUtf8 | Error::InvalidDeflate => 1007,
            Error::TooBig => 1009,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(what) => write!(f, "websocket protocol error: {what}"),
            Error::InvalidUtf8 => f.write_str("websocket text is not valid UTF-8"),
            Error::TooBig => f.write_str("websocket message too big"),
            Error::InvalidDeflate => f.write_str("websocket message does not inflate"),
        }
    }
}

impl std::error::Error for Error {}

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
/// RSV1: a compressed message (permessage-deflate). Also kept with a fragmented message's
/// opcode.
const RSV1: u8 = 0x40;

/// A frame header, once all of it is there.
struct Header {
    fin: bool,
    /// The first frame of a compressed message.
    compressed: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Bytes of header.
    size: usize,
    len: usize,
}

/// What a [`Decoder`] does with what it is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Decodes every frame.
    Decoding,
    /// Only frames data frames ([`discard_messages`](Decoder::discard_messages)).
    Discarding,
    /// Failed with this error, for good.
    Failed(Error),
}

/// Decodes the frames a client sends: checks them as RFC 6455 §5 requires, unmasks them,
/// reassembles fragmented messages, and bounds messages by size.
///
/// After an error the connection must be closed: the decoder refuses everything else.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    /// The start of a frame that has not all arrived.
    partial: Vec<u8>,
    /// A fragmented message being reassembled: its opcode (with [`RSV1`] when it is
    /// compressed), the payload so far, and for uncompressed text how much of it is known
    /// to be UTF-8 (up to a character that the next fragment may finish).
    fragments: Option<(u8, Vec<u8>, usize)>,
    mode: Mode,
    /// permessage-deflate was negotiated.
    #[cfg(feature = "deflate")]
    inflate: Option<deflate::Inflate>,
}

impl Decoder {
    /// A decoder refusing messages (and fragmented messages in all) over `max_message`
    /// bytes.
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            max_message,
            partial: Vec::new(),
            fragments: None,
            mode: Mode::Decoding,
            #[cfg(feature = "deflate")]
            inflate: None,
        }
    }

    /// From now on, data frames are only framed: not unmasked, reassembled, inflated,
    /// checked nor handed out (what fragments were held is dropped); control frames are
    /// decoded as before, and the framing rules still hold (a data frame is still held
    /// until it is whole, and one over the message bound still fails). For a socket whose
    /// close is on its way, which has only the peer's close frame left to watch for
    /// (RFC 6455 §5.5.1): what the peer sends meanwhile costs no inflating, however well
    /// it compresses.
    ///
    /// ```
    /// use sockjs_core::wire::rfc6455::{Decoder, Message};
    ///
    /// // A masked text frame "ab", then a masked close frame with code 1000 (mask 0).
    /// let mut input = [0x81, 0x82, 0, 0, 0, 0, b'a', b'b', 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8];
    /// let mut decoder = Decoder::new(1024);
    /// decoder.discard_messages();
    /// let mut seen = Vec::new();
    /// decoder.feed(&mut input, &mut |message| seen.push(matches!(message, Message::Close(_))))?;
    /// assert_eq!(seen, [true]);
    /// # Ok::<(), sockjs_core::wire::rfc6455::Error>(())
    /// ```
    pub fn discard_messages(&mut self) {
        if self.mode == Mode::Decoding {
            self.mode = Mode::Discarding;
        }
        if let Some((_, data, utf8)) = &mut self.fragments {
            *data = Vec::new();
            *utf8 = 0;
        }
    }

    /// A decoder that also takes messages compressed with the negotiated permessage-deflate
    /// `params` (RFC 7692), bounding their inflated size by `max_message`.
    #[cfg(feature = "deflate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
    pub fn with_deflate(max_message: usize, params: &crate::DeflateParams) -> Decoder {
        Decoder {
            inflate: Some(deflate::Inflate::new(params.client_no_context_takeover)),
            ..Decoder::new(max_message)
        }
    }

    /// Whether compressed messages are accepted.
    fn deflate(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.inflate.is_some();
        #[cfg(not(feature = "deflate"))]
        return false;
    }

    /// Whether the decoder holds bytes of an unfinished frame or message (and so memory).
    pub fn is_idle(&self) -> bool {
        self.partial.is_empty() && self.fragments.is_none()
    }

    /// Whether a fragmented message has begun and not ended (control frames fed now come
    /// between its fragments).
    pub fn in_fragmented_message(&self) -> bool {
        self.fragments.is_some()
    }

    /// Bytes held for an unfinished frame and message: at most the message bound, and one
    /// frame of the largest control frame's size (125 bytes and a 14-byte header) beyond
    /// it, as a ping may come between a message's fragments and is no message, whatever
    /// the bound; for a compressed message, whose frames may be a little larger than what
    /// they inflate to, 64 bytes and 1/4096 of the bound more. (Inflating uses the thread's
    /// buffer, also bounded by the message bound.) That holds after every feed that took
    /// all it was given; after a [`feed_at_most`](Decoder::feed_at_most) that stopped at its
    /// budget (`Ok(true)`), the frames it has not decoded yet are kept too, until the feeds
    /// that go on from there: at most the bytes that call was given.
    pub fn buffered(&self) -> usize {
        self.partial.len() + self.fragments.as_ref().map_or(0, |(_, data, _)| data.len())
    }

    /// Decodes every whole frame in `input` (as read from the socket, after what was fed
    /// before), calling `on_message` for each message and control frame in order; keeps
    /// the bytes of an unfinished frame. `input` is unmasked in place.
    pub fn feed(
        &mut self,
        input: &mut [u8],
        on_message: &mut impl FnMut(Message<'_>),
    ) -> Result<(), Error> {
        self.feed_at_most(input, usize::MAX, on_message).map(drop)
    }

    /// As [`feed`](Decoder::feed), but stops once the messages handed out hold `budget`
    /// bytes or more, keeping the frames after them: `Ok(true)` then, and a feed of no new
    /// bytes goes on from there. Compressed messages inflate to far more than they take
    /// on the wire: this keeps what one call hands out near the budget whatever the
    /// compression ratio (at most the budget and one message beyond it).
    ///
    /// ```
    /// use sockjs_core::wire::rfc6455::{Decoder, Message};
    ///
    /// // Two masked text frames, "ab" and "cd" (mask 0 0 0 0).
    /// let mut input = [0x81, 0x82, 0, 0, 0, 0, b'a', b'b', 0x81, 0x82, 0, 0, 0, 0, b'c', b'd'];
    /// let mut decoder = Decoder::new(1024);
    /// let mut seen = Vec::new();
    /// let mut on_message = |message: Message<'_>| {
    ///     if let Message::Text(text) = message {
    ///         seen.push(text.to_owned());
    ///     }
    /// };
    /// assert!(decoder.feed_at_most(&mut input, 2, &mut on_message)?);
    /// assert!(!decoder.feed_at_most(&mut [], 2, &mut on_message)?);
    /// assert_eq!(seen, ["ab", "cd"]);
    /// # Ok::<(), sockjs_core::wire::rfc6455::Error>(())
    /// ```
    pub fn feed_at_most(
        &mut self,
        input: &mut [u8],
        budget: usize,
        on_message: &mut impl FnMut(Message<'_>),
    ) -> Result<bool, Error> {
        if let Mode::Failed(error) = self.mode {
            return Err(error);
        }
        let handed = std::cell::Cell::new(0usize);
        let mut counted = |message: Message<'_>| {
            let len = match &message {
                Message::Text(text) => text.len(),
                Message::Binary(data) => data.len(),
                _ => 0,
            };
            handed.set(handed.get().saturating_add(len));
            on_message(message);
        };
        let full = || handed.get() >= budget;
        let mut stopped = false;
        let result = if self.partial.is_empty() {
            self.decode(input, &mut counted, &full, 0)
                .and_then(|(used, full)| {
                    stopped = full;
                    let rest = &input[used..];
                    if rest.is_empty() {
                        return Ok(());
                    }
                    self.partial = self.holding(rest);
                    if full {
                        Ok(())
                    } else {
                        self.check_unfinished(0)
                    }
                })
        } else {
            let unmasked = self.unmasked_so_far(&self.partial);
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(input);
            self.decode(&mut joined, &mut counted, &full, unmasked)
                .and_then(|(used, full)| {
                    stopped = full;
                    joined.drain(..used);
                    // An idle connection keeps no buffer.
                    if joined.is_empty() {
                        return Ok(());
                    }
                    // The start of the next frame is kept in a buffer of its own, not in
                    // the one the last message grew (by doubling, up to twice the bound).
                    self.partial = if used > 0 && joined.capacity() > joined.len().max(64) * 2 {
                        self.holding(&joined)
                    } else {
                        joined
                    };
                    if full {
                        Ok(())
                    } else {
                        // The frame checked before, if it is still unfinished.
                        self.check_unfinished(if used == 0 { unmasked } else { 0 })
                    }
                })
        };
        if let Err(error) = result {
            self.mode = Mode::Failed(error);
            self.partial = Vec::new();
            self.fragments = None;
        }
        result.map(|()| stopped)
    }

    /// A buffer holding `rest`, the start of a frame: with room for that frame, but never
    /// far beyond what arrived (a header alone reserves no whole message).
    fn holding(&self, rest: &[u8]) -> Vec<u8> {
        let mut buffer = Vec::new();
        if let Ok(Some(header)) = self.header(rest) {
            let frame = header.size.saturating_add(header.len);
            buffer.reserve(frame.min(rest.len().saturating_mul(2)));
        }
        buffer.extend_from_slice(rest);
        buffer
    }

    /// Decodes whole frames from the start of `input`, asking `full` before each one after
    /// the first whether to stop there; returns the bytes they took, and whether it stopped
    /// so (with whole frames left). The first `unmasked` bytes of the first frame's
    /// payload are unmasked already ([`check_unfinished`](Decoder::check_unfinished)).
    fn decode(
        &mut self,
        input: &mut [u8],
        on_message: &mut impl FnMut(Message<'_>),
        full: &impl Fn() -> bool,
        mut unmasked: usize,
    ) -> Result<(usize, bool), Error> {
        let mut used = 0;
        loop {
            let rest = &mut input[used..];
            let Some(header) = self.header(rest)? else {
                return Ok((used, false));
            };
            let total = header.size.saturating_add(header.len);
            if rest.len() < total {
                return Ok((used, false));
            }
            if used > 0 && full() {
                return Ok((used, true));
            }
            let payload = &mut rest[header.size..total];
            match payload.get_mut(unmasked..) {
                _ if self.mode == Mode::Discarding && header.opcode & 0x08 == 0 => {}
                Some(rest) if unmasked > 0 => unmask(rest, rotated(header.mask, unmasked)),
                _ => unmask(payload, header.mask),
            }
            unmasked = 0;
            self.frame(&header, payload, on_message)?;
            used += total;
        }
    }

    /// The header of the frame at the start of `partial` if it is uncompressed text (a text
    /// frame, or a continuation of a text message) that has not all arrived: the frame
    /// [`check_unfinished`](Decoder::check_unfinished) checks.
    fn unfinished_text(&self, partial: &[u8]) -> Option<Header> {
        let header = self.header(partial).ok()??;
        let text = !header.compressed
            && match header.opcode {
                TEXT => true,
                CONTINUATION => matches!(self.fragments, Some((TEXT, ..))),
                _ => false,
            };
        let whole = partial.len() >= header.size.saturating_add(header.len);
        (text && !whole).then_some(header)
    }

    /// How much of the payload of the frame at the start of `partial` the feeds before
    /// have unmasked in place: all that had come of an unfinished text frame, which each
    /// of them checked ([`check_unfinished`](Decoder::check_unfinished)); nothing of any
    /// other. (Told from the frame, not kept: an idle connection's decoder is no larger
    /// for it. A feed stopped at its budget leaves whole frames first, which no check
    /// touched, and `unfinished_text` sees only unfinished ones.)
    fn unmasked_so_far(&self, partial: &[u8]) -> usize {
        self.unfinished_text(partial)
            .map_or(0, |header| partial.len().saturating_sub(header.size))
    }

    /// Checks the text of the unfinished frame at the start of `partial` as far as it has
    /// arrived (RFC 6455 §8.1, Autobahn's "fail fast"): a text message whose bytes so far
    /// cannot be UTF-8, whatever follows, fails now, not once the frame is whole. The
    /// first `unmasked` bytes of the payload were unmasked and checked by the feeds before;
    /// the new ones are unmasked in place and checked from the last character boundary
    /// before them. Uncompressed text only (a compressed message is checked once inflated,
    /// binary by the engine). The whole text is checked again once complete, as any
    /// message's is.
    fn check_unfinished(&mut self, unmasked: usize) -> Result<(), Error> {
        if self.mode == Mode::Discarding {
            return Ok(());
        }
        let Some(header) = self.unfinished_text(&self.partial) else {
            return Ok(());
        };
        let Some(payload) = self.partial.get_mut(header.size..) else {
            return Ok(());
        };
        if let Some(rest) = payload.get_mut(unmasked..) {
            unmask(rest, rotated(header.mask, unmasked));
        }
        let from = boundary_before(payload, unmasked);
        // A character the message's earlier fragments left cut, which this frame finishes.
        let cut = match (&self.fragments, from) {
            (Some((_, data, utf8)), 0) => data.get(*utf8..).unwrap_or_default(),
            _ => &[],
        };
        text_so_far(cut, payload, from).map(drop)
    }

    /// Parses and checks a header, or `None` if not all of it is there.
    fn header(&self, input: &[u8]) -> Result<Option<Header>, Error> {
        let [first, second, ..] = *input else {
            return Ok(None);
        };
        let fin = first & 0x80 != 0;
        let compressed = first & 0x70 == RSV1 && self.deflate();
        if first & 0x70 != 0 && !compressed {
            return Err(Error::Protocol("reserved bits set"));
        }
        let opcode = first & 0x0F;
        let control = opcode & 0x08 != 0;
        match opcode {
            CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG => {}
            _ => return Err(Error::Protocol("reserved opcode")),
        }
        // RFC 7692 §6.1: RSV1 marks the first frame of a data message, and no other.
        if compressed && (control || opcode == CONTINUATION) {
            return Err(Error::Protocol("RSV1 on a control or continuation frame"));
        }
        if second & 0x80 == 0 {
            return Err(Error::Protocol("unmasked client frame"));
        }
        let (len, at) = match second & 0x7F {
            126 => match input.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match input.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(b) => (u64::from_be_bytes(b), 10),
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        if len >> 63 != 0 {
            return Err(Error::Protocol("length with the high bit set"));
        }
        if control && (!fin || len > 125) {
            return Err(Error::Protocol("fragmented or long control frame"));
        }
        // RFC 6455 §5.4: a data frame inside a fragmented message must continue it, and a
        // continuation must have a message to continue. Known from the header: refused
        // before the payload is buffered, and as what it is (1002), not as a message too
        // big for what the fragments already hold.
        if !control {
            match (&self.fragments, opcode) {
                (Some(_), TEXT | BINARY) => {
                    return Err(Error::Protocol("new message inside a fragmented one"));
                }
                (None, CONTINUATION) => {
                    return Err(Error::Protocol("continuation without a message"));
                }
                _ => {}
            }
        }
        // Refuse an oversized message before its payload is buffered (a compressed one may
        // be a little larger than it inflates to, when it does not compress).
        let (held, deflated) = match &self.fragments {
            Some((opcode, data, _)) if !control => (data.len(), opcode & RSV1 != 0),
            _ => (0, compressed),
        };
        let bound = if deflated {
            self.max_message
                .saturating_add(self.max_message / 4096)
                .saturating_add(64)
        } else {
            self.max_message
        };
        let len = usize::try_from(len).map_err(|_| Error::TooBig)?;
        // Control frames (at most 125 bytes) are no messages: the bound is not theirs.
        if !control && held.saturating_add(len) > bound {
            return Err(Error::TooBig);
        }
        let Some(mask) = input
            .get(at..at + 4)
            .and_then(|m| <[u8; 4]>::try_from(m).ok())
        else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            compressed,
            opcode,
            mask,
            size: at + 4,
            len,
        }))
    }

    fn frame(
        &mut self,
        header: &Header,
        payload: &[u8],
        on_message: &mut impl FnMut(Message<'_>),
    ) -> Result<(), Error> {
        if self.mode == Mode::Discarding && header.opcode & 0x08 == 0 {
            // Only where a fragmented message begins and ends is kept, for the framing
            // rules (the header checked that a continuation has a message to continue).
            match header.opcode {
                CONTINUATION if header.fin => self.fragments = None,
                CONTINUATION => {}
                opcode if !header.fin => self.fragments = Some((opcode, Vec::new(), 0)),
                _ => {}
            }
            return Ok(());
        }
        match header.opcode {
            PING => on_message(Message::Ping(payload)),
            PONG => on_message(Message::Pong(payload)),
            CLOSE => on_message(Message::Close(close_payload(payload)?)),
            CONTINUATION => {
                let Some((opcode, mut data, utf8)) = self.fragments.take() else {
                    return Err(Error::Protocol("continuation without a message"));
                };
                data.extend_from_slice(payload);
                if !header.fin {
                    let utf8 = utf8_so_far(opcode, &data, utf8)?;
                    self.fragments = Some((opcode, data, utf8));
                    return Ok(());
                }
                self.deliver(opcode, &data, on_message)?;
            }
            opcode => {
                if self.fragments.is_some() {
                    return Err(Error::Protocol("new message inside a fragmented one"));
                }
                let opcode = if header.compressed {
                    opcode | RSV1
                } else {
                    opcode
                };
                if !header.fin {
                    let utf8 = utf8_so_far(opcode, payload, 0)?;
                    self.fragments = Some((opcode, payload.to_vec(), utf8));
                    return Ok(());
                }
                self.deliver(opcode, payload, on_message)?;
            }
        }
        Ok(())
    }

    /// Hands over a whole message, inflated first if it is compressed.
    fn deliver(
        &mut self,
        opcode: u8,
        payload: &[u8],
        on_message: &mut impl FnMut(Message<'_>),
    ) -> Result<(), Error> {
        if opcode & RSV1 == 0 {
            return deliver(opcode, payload, on_message);
        }
        #[cfg(feature = "deflate")]
        if let Some(inflate) = &mut self.inflate {
            return inflate.message(payload, self.max_message, |data| {
                deliver(opcode & !RSV1, data, on_message)
            });
        }
        // Never reached: the header check admits RSV1 only with deflate.
        Err(Error::Protocol("reserved bits set"))
    }
}

/// How much of an unfinished message is known to be UTF-8, checking on from `from` (a
/// character boundary): fails as soon as the text so far cannot be UTF-8, whatever follows
/// (RFC 6455 §8.1; Autobahn's "fail fast"), rather than once the whole message is in. Only
/// for uncompressed text: compressed data is checked once inflated, binary by the engine.
fn utf8_so_far(opcode: u8, data: &[u8], from: usize) -> Result<usize, Error> {
    if opcode != TEXT {
        return Ok(0);
    }
    text_so_far(&[], data, from)
}

/// Where the last character of `text[..at]` begins if it is cut at `at` (else `at`), when
/// `text[..at]` is known to be whole characters but perhaps the last: the boundary to go
/// on checking from. 0 if no character begins in its last four bytes (they finish a
/// character that earlier fragments cut, or there are none).
fn boundary_before(text: &[u8], at: usize) -> usize {
    let at = at.min(text.len());
    for i in (at.saturating_sub(4)..at).rev() {
        let byte = text.get(i).copied().unwrap_or_default();
        // Not a continuation byte (10xxxxxx): a character begins here.
        if byte & 0xc0 != 0x80 {
            let width = match byte {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            return if i + width > at { i } else { at };
        }
    }
    0
}

/// How much of `data` (the text of a frame so far, after `cut`, a character that earlier
/// fragments left unfinished) is known to be UTF-8, checking on from `from` (a character
/// boundary, where `cut` is finished already if `from > 0`): a character boundary,
/// possibly followed by a character this data cuts; or the error as soon as no more bytes
/// could make it UTF-8.
fn text_so_far(cut: &[u8], data: &[u8], mut from: usize) -> Result<usize, Error> {
    if from == 0 && !cut.is_empty() {
        // At most four bytes make a character: finish the cut one on a copy.
        let take = 4usize.saturating_sub(cut.len()).min(data.len());
        let mut joined = [0u8; 8];
        joined[..cut.len()].copy_from_slice(cut);
        joined[cut.len()..cut.len() + take].copy_from_slice(&data[..take]);
        match std::str::from_utf8(&joined[..cut.len() + take]) {
            Ok(_) => from = take,
            Err(e) if e.error_len().is_some() => return Err(Error::InvalidUtf8),
            // Still cut: `data` holds less than the character needs.
            Err(e) if e.valid_up_to() == 0 => return Ok(0),
            Err(e) => from = e.valid_up_to().saturating_sub(cut.len()),
        }
    }
    match std::str::from_utf8(data.get(from..).unwrap_or_default()) {
        Ok(_) => Ok(data.len()),
        Err(e) if e.error_len().is_none() => Ok(from + e.valid_up_to()),
        Err(_) => Err(Error::InvalidUtf8),
    }
}

fn deliver(
    opcode: u8,
    payload: &[u8],
    on_message: &mut impl FnMut(Message<'_>),
) -> Result<(), Error> {
    if opcode == TEXT {
        let text = std::str::from_utf8(payload).map_err(|_| Error::InvalidUtf8)?;
        on_message(Message::Text(text));
    } else {
        on_message(Message::Binary(payload));
    }
    Ok(())
}

/// A close frame's code and reason (RFC 6455 §5.5.1; its codes: RFC 6455 §7.4).
fn close_payload(payload: &[u8]) -> Result<Option<(u16, &str)>, Error> {
    match payload {
        [] => Ok(None),
        [_] => Err(Error::Protocol("one-byte close payload")),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Err(Error::Protocol("close code a peer may not send"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| Error::InvalidUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

/// XORs the payload with the client's mask, four bytes at a time where it can.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let value = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask) {
        *byte ^= m;
    }
}

/// The mask for a payload that starts `offset` bytes into the frame's.
fn rotated(mask: [u8; 4], offset: usize) -> [u8; 4] {
    let mut mask = mask;
    mask.rotate_left(offset % 4);
    mask
}

/// Appends one unmasked, unfragmented server frame.
fn encode(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    encode_first(0x80 | opcode, payload, out);
}

/// Appends one unmasked server frame whose first byte is `first`.
fn encode_first(first: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len() + 10);
    out.push(first);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Appends a text message.
pub fn encode_text(text: &str, out: &mut Vec<u8>) {
    encode(TEXT, text.as_bytes(), out);
}

/// Appends a ping with an empty payload.
pub fn encode_ping(out: &mut Vec<u8>) {
    encode(PING, &[], out);
}

/// Appends the pong answering a ping with this payload.
pub fn encode_pong(payload: &[u8], out: &mut Vec<u8>) {
    encode(PONG, payload, out);
}

/// Appends a close frame with this code and reason (cut to the 123 bytes a control frame
/// holds, at a character boundary).
pub fn encode_close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0u8; 125];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    encode(CLOSE, &payload[..2 + end], out);
}

#[cfg(test)]
mod tests;
