//! Hixie-76 (draft-hixie-thewebsocketprotocol-76) framing.
//!
//! A text message is `0x00`, UTF-8 text, `0xFF`; the close frame is
//! `0xFF 0x00`. Nothing else is accepted. The handshake head is written with
//! [`ResponseEncoder`](super::ResponseEncoder) and
//! [`HANDSHAKE_REASON`]; the key arithmetic lives elsewhere.

use std::fmt;

use bytes::{Buf, BufMut, BytesMut};

use super::ReasonPhrase;

/// The reason phrase of the hixie-76 handshake:
/// `HTTP/1.1 101 WebSocket Protocol Handshake`.
pub const HANDSHAKE_REASON: ReasonPhrase =
    ReasonPhrase::from_static("WebSocket Protocol Handshake");

/// Default bound on one message's UTF-8 payload: 256 KiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The close frame.
pub const CLOSE_FRAME: &[u8] = &[0xFF, 0x00];

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message.
    Text(String),
    /// The close frame: answer with [`CLOSE_FRAME`] and close.
    Close,
}

/// A framing error; the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// A text message is not valid UTF-8.
    InvalidUtf8,
    /// A frame starts with an unsupported type byte (the byte is given;
    /// `0xFF` means a length-prefixed frame other than close).
    UnknownFrame(u8),
    /// A text message is longer than the decoder's bound.
    MessageTooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUtf8 => f.write_str("hixie-76 text frame is not valid UTF-8"),
            Error::UnknownFrame(b) => write!(f, "unsupported hixie-76 frame type 0x{b:02x}"),
            Error::MessageTooLarge => f.write_str("hixie-76 message too large"),
        }
    }
}

impl std::error::Error for Error {}

/// Decodes hixie-76 frames from a byte buffer.
///
/// Call [`decode`](Self::decode) until it returns `Ok(None)`, then read more.
/// It holds at most one message's bytes plus its two markers; an unfinished
/// message over the bound fails as soon as it is detected.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_message_bytes: usize,
    scanned: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

impl Decoder {
    /// A decoder accepting text messages of up to `max_message_bytes` bytes.
    pub fn new(max_message_bytes: usize) -> Self {
        Decoder {
            max_message_bytes,
            scanned: 0,
        }
    }

    /// Decode the next frame from `buf`, consuming exactly its bytes.
    /// Returns `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        match buf.first() {
            None => Ok(None),
            Some(0x00) => self.decode_text(buf),
            Some(0xFF) => match buf.get(1) {
                None => Ok(None),
                Some(0x00) => {
                    buf.advance(2);
                    Ok(Some(Frame::Close))
                }
                Some(_) => Err(Error::UnknownFrame(0xFF)),
            },
            Some(&other) => Err(Error::UnknownFrame(other)),
        }
    }

    fn decode_text(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        let frame_max = self.max_message_bytes.saturating_add(2);
        let window = &buf[..buf.len().min(frame_max)];
        let from = self.scanned.max(1);
        match window
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
        {
            Some(i) => {
                let end = from + i;
                let frame = buf.split_to(end + 1);
                self.scanned = 0;
                let text = std::str::from_utf8(&frame[1..end]).map_err(|_| Error::InvalidUtf8)?;
                Ok(Some(Frame::Text(text.to_owned())))
            }
            None if buf.len() >= frame_max => Err(Error::MessageTooLarge),
            None => {
                self.scanned = window.len();
                Ok(None)
            }
        }
    }
}

/// Append a text message frame to `dst`.
pub fn encode_text(text: &str, dst: &mut BytesMut) {
    dst.reserve(text.len() + 2);
    dst.put_u8(0x00);
    dst.put_slice(text.as_bytes());
    dst.put_u8(0xFF);
}

/// Append the close frame to `dst`.
pub fn encode_close(dst: &mut BytesMut) {
    dst.put_slice(CLOSE_FRAME);
}
