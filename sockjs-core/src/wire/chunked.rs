//! Incremental decoder for `Transfer-Encoding: chunked` request bodies.

use bytes::{Buf, Bytes, BytesMut};

use super::tokens::is_tchar;
use super::{Limits, WireError};

/// Longest chunk-size line accepted, extensions included (and never more
/// than `max_head_bytes`).
const MAX_SIZE_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a `<hex size>[;ext]\r\n` line.
    Size,
    /// Inside a chunk's data, with this many bytes still to come.
    Data(u64),
    /// After a chunk's data, waiting for its `\r\n`.
    DataEnd,
    /// After the last chunk, reading trailer lines up to an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

/// Decodes a chunked body, consuming its bytes as they arrive.
///
/// Chunk extensions are checked against their grammar and ignored; they and the sizes' leading
/// zeros, which carry nothing either, are bounded over the whole body by `max_head_bytes`. Trailer fields are accepted (bounded by `max_head_bytes`) and
/// discarded. Lines must end with CRLF.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    body: BytesMut,
    trailer_bytes: usize,
    /// Bytes of size lines that carry nothing (chunk extensions, leading zeros) so far, over
    /// every size line.
    ignored_bytes: usize,
    /// Bytes at the front of the buffer, of a size or trailer line not ended yet, already
    /// searched for its end: a line that arrives a byte at a time is searched once, not
    /// again from its start at each byte (128 Mi comparisons for a 16 KiB trailer).
    scanned: usize,
}

impl ChunkedDecoder {
    pub(crate) fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            body: BytesMut::new(),
            trailer_bytes: 0,
            ignored_bytes: 0,
            scanned: 0,
        }
    }

    /// Consume as much of `buf` as belongs to the body.
    ///
    /// Returns `Ok(true)` once the body is complete (then [`take_body`](Self::take_body)),
    /// `Ok(false)` when more bytes are needed. Never consumes bytes after the body.
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<bool, WireError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = take_line(
                        buf,
                        &mut self.scanned,
                        MAX_SIZE_LINE.min(limits.max_head_bytes),
                        WireError::MalformedChunk,
                    )?
                    else {
                        return Ok(false);
                    };
                    let (size, ignored) = parse_size_line(&line)?;
                    // Extensions and leading zeros are ignored, so they are bounded as a
                    // whole, by the head's bound: else each of a body's one-byte chunks could
                    // bring 4 KiB of them, a gigabyte on the wire for a 256 KiB body.
                    self.ignored_bytes += ignored;
                    if self.ignored_bytes > limits.max_head_bytes {
                        return Err(WireError::MalformedChunk);
                    }
                    let total = (self.body.len() as u64).saturating_add(size);
                    if total > limits.max_body_bytes as u64 {
                        return Err(WireError::BodyTooLarge);
                    }
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(remaining) => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    self.body.extend_from_slice(&buf[..n]);
                    buf.advance(n);
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => match buf.get(..2) {
                    Some(b"\r\n") => {
                        buf.advance(2);
                        self.state = State::Size;
                    }
                    Some(_) => return Err(WireError::MalformedChunk),
                    None if buf.first().is_some_and(|&b| b != b'\r') => {
                        return Err(WireError::MalformedChunk);
                    }
                    None => return Ok(false),
                },
                State::Trailers => {
                    let budget = limits.max_head_bytes.saturating_sub(self.trailer_bytes);
                    let Some(line) =
                        take_line(buf, &mut self.scanned, budget, WireError::HeadTooLarge)?
                    else {
                        return Ok(false);
                    };
                    self.trailer_bytes += line.len() + 2;
                    if line.is_empty() {
                        self.state = State::Done;
                    } else if !is_trailer_field(&line) {
                        return Err(WireError::MalformedChunk);
                    }
                }
                State::Done => return Ok(true),
            }
        }
    }

    /// The decoded body; call once [`decode`](Self::decode) returned `Ok(true)`.
    pub(crate) fn take_body(&mut self) -> Bytes {
        std::mem::take(&mut self.body).freeze()
    }

    /// Bytes of decoded body held so far.
    pub(crate) fn buffered(&self) -> usize {
        self.body.len()
    }
}

/// Split a CRLF-terminated line (without the CRLF) off the front of `buf`, whose first
/// `scanned` bytes are known to hold no line end (updated: what was searched, or 0 once a
/// line is taken).
///
/// `Ok(None)` if the line is incomplete; `too_long` if no line end appears
/// within `max` bytes (CRLF included); `MalformedChunk` for a bare LF.
fn take_line(
    buf: &mut BytesMut,
    scanned: &mut usize,
    max: usize,
    too_long: WireError,
) -> Result<Option<BytesMut>, WireError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let window = &buf[..buf.len().min(max)];
    let from = (*scanned).min(window.len());
    match window[from..].iter().position(|&b| b == b'\n') {
        Some(at) => {
            *scanned = 0;
            let lf = from + at;
            if lf == 0 || buf[lf - 1] != b'\r' {
                return Err(WireError::MalformedChunk);
            }
            let mut line = buf.split_to(lf + 1);
            line.truncate(lf - 1);
            Ok(Some(line))
        }
        None if buf.len() >= max => Err(too_long),
        None => {
            *scanned = window.len();
            Ok(None)
        }
    }
}

/// Parse `1*HEXDIG [ BWS ";" chunk-ext ]`; an oversized number saturates.
/// A chunk's size, and how many bytes its line held that carry nothing: the size's leading
/// zeros (all but a last digit) and the extensions, whitespace included.
fn parse_size_line(line: &[u8]) -> Result<(u64, usize), WireError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(WireError::MalformedChunk);
    }
    let zeros = line[..digits - 1]
        .iter()
        .take_while(|&&b| b == b'0')
        .count();
    let size = line[..digits].iter().fold(0u64, |acc, &b| {
        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
        acc.saturating_mul(16).saturating_add(d)
    });
    let rest = &line[digits..];
    if is_chunk_ext(rest) {
        Ok((size, zeros + rest.len()))
    } else {
        Err(WireError::MalformedChunk)
    }
}

/// RFC 9112 §7.1.1: `*( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`, names
/// tokens, values tokens or quoted strings (RFC 9110 §5.6.4). Whitespace only where BWS
/// stands: `5 ` is no size, and nothing follows the last name or value.
fn is_chunk_ext(mut ext: &[u8]) -> bool {
    fn bws(s: &[u8]) -> &[u8] {
        let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        &s[n..]
    }
    fn token(s: &[u8]) -> Option<&[u8]> {
        let n = s.iter().take_while(|&&b| is_tchar(b)).count();
        (n > 0).then(|| &s[n..])
    }
    /// What follows the quoted string `s` starts with, if it is one.
    fn quoted(s: &[u8]) -> Option<&[u8]> {
        let mut i = 1;
        loop {
            match *s.get(i)? {
                b'"' => return s.get(i + 1..),
                b'\\' if is_field_byte(*s.get(i + 1)?) => i += 2,
                b'\\' => return None,
                b if is_field_byte(b) => i += 1,
                _ => return None,
            }
        }
    }
    while !ext.is_empty() {
        let Some(after) = bws(ext).strip_prefix(b";") else {
            return false;
        };
        let Some(after) = token(bws(after)) else {
            return false;
        };
        ext = match bws(after).strip_prefix(b"=").map(bws) {
            Some(value) if value.first() == Some(&b'"') => match quoted(value) {
                Some(rest) => rest,
                None => return false,
            },
            Some(value) => match token(value) {
                Some(rest) => rest,
                None => return false,
            },
            None => after,
        };
    }
    true
}

/// A trailer line: `name ":" value`, with a token name and no control bytes.
fn is_trailer_field(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => {
            line[..colon].iter().all(|&b| is_tchar(b))
                && line[colon + 1..].iter().all(|&b| is_field_byte(b))
        }
        _ => false,
    }
}

/// HTAB, visible ASCII, space or obs-text.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}
