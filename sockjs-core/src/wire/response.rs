//! HTTP/1.1 response encoder: complete responses, streaming bodies, 101 heads.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{Extensions, HeaderMap, HeaderName, Response, StatusCode, Version};

use super::date::HttpDate;
use super::tokens::has_token;

/// The complete interim response to an `Expect: 100-continue` request.
pub const CONTINUE_RESPONSE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A custom reason phrase for the status line.
///
/// Put it in the response's extensions to replace the canonical phrase, e.g.
/// hixie-76's `101 WebSocket Protocol Handshake`
/// ([`hixie76::HANDSHAKE_REASON`](super::hixie76::HANDSHAKE_REASON)). A phrase
/// with bytes not allowed in a reason phrase (CR, LF, other controls) is
/// ignored and the canonical phrase written instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReasonPhrase(Bytes);

impl ReasonPhrase {
    /// A reason phrase from a static string.
    pub const fn from_static(phrase: &'static str) -> Self {
        ReasonPhrase(Bytes::from_static(phrase.as_bytes()))
    }

    /// The phrase's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn is_valid(&self) -> bool {
        self.0
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
    }
}

/// What the connection does once a response has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AfterResponse {
    /// Read the next request on this connection.
    KeepAlive,
    /// Close the connection (after the end of the body, for streams).
    Close,
    /// A `101` was written: the connection now speaks the upgraded protocol.
    Upgrade,
}

impl AfterResponse {
    /// Whether the caller must close the connection.
    pub fn must_close(self) -> bool {
        self == AfterResponse::Close
    }
}

/// Serializes responses to one request, for that request's HTTP version and
/// keep-alive decision.
///
/// The status line is always `HTTP/1.1 <code> <reason>`, also for HTTP/1.0
/// clients. The encoder owns the framing fields: the caller's
/// `Transfer-Encoding` is always dropped, and outside 1xx heads its
/// `Connection` and `Content-Length` are replaced as described on each
/// method. Other fields are written in order as given; `HeaderMap` spells
/// their names in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseEncoder {
    http10: bool,
    keep_alive: bool,
    head_request: bool,
}

impl ResponseEncoder {
    /// An encoder for a request of `version` whose client wants the
    /// connection kept alive (`keep_alive`). HTTP/0.9 and 1.0 get 1.0
    /// handling; any other version gets 1.1 handling.
    pub fn new(version: Version, keep_alive: bool) -> Self {
        ResponseEncoder {
            http10: version <= Version::HTTP_10,
            keep_alive,
            head_request: false,
        }
    }

    fn put_date(dst: &mut BytesMut, headers: &HeaderMap, date: Option<&HttpDate>) {
        if let Some(date) = date {
            if !headers.contains_key(DATE) {
                dst.put_slice(b"Date: ");
                dst.put_slice(date.as_bytes());
                dst.put_slice(b"\r\n");
            }
        }
    }

    /// Set whether the request was `HEAD`: headers are written as for the
    /// full response, but no body bytes.
    pub fn with_head_request(mut self, head_request: bool) -> Self {
        self.head_request = head_request;
        self
    }

    /// Append a complete response (head and body) to `dst`.
    ///
    /// - 1xx (including `101`): status line and the caller's fields as given
    ///   (`Connection` and `Upgrade` included), except `Content-Length` and
    ///   `Transfer-Encoding`, which no 1xx may carry (RFC 9110 §8.6,
    ///   RFC 9112 §6.1); no body. Returns [`AfterResponse::Upgrade`] for `101`, else
    ///   `KeepAlive` (the final response is still to come). Sending a 1xx to an
    ///   HTTP/1.0 client is the caller's to avoid (RFC 9110 §15.2).
    /// - `204`, `304`: the caller's fields (minus `Connection`,
    ///   `Transfer-Encoding`, and on a `204` `Content-Length`), the encoder's
    ///   `Connection`, no body. A `304`'s `Content-Length` is the length of
    ///   the representation it stands for, so it is kept.
    /// - `205`: no content whatever the body (RFC 9110 §15.3.6):
    ///   `Content-Length: 0`.
    /// - anything else: `Content-Length` of the body (a caller's
    ///   `Content-Length` is replaced, except for `HEAD` requests where it is
    ///   kept as the length the body would have had), then the body.
    ///
    /// `Connection: close` is written when the connection will close (client
    /// asked, or the caller's fields list `close`); `Connection: keep-alive`
    /// for HTTP/1.0 clients otherwise.
    pub fn encode<B: AsRef<[u8]>>(
        &self,
        response: &Response<B>,
        dst: &mut BytesMut,
    ) -> AfterResponse {
        self.encode_dated(response, None, dst)
    }

    /// [`encode`](Self::encode), writing `Date: date` on a final response
    /// (RFC 9110 §6.6.1) unless the caller's fields carry one. The codec reads no clock: the caller
    /// formats the time of writing.
    pub fn encode_dated<B: AsRef<[u8]>>(
        &self,
        response: &Response<B>,
        date: Option<&HttpDate>,
        dst: &mut BytesMut,
    ) -> AfterResponse {
        self.encode_full(
            response.status(),
            response.headers(),
            response.extensions(),
            response.body().as_ref(),
            date,
            dst,
        )
    }

    /// Append the head of a streaming response to `dst` and return the
    /// encoder for its body. The body of `response` is ignored.
    ///
    /// HTTP/1.1: `Transfer-Encoding: chunked`, no `Content-Length`; the
    /// connection is kept alive unless the client or the caller's fields
    /// asked for `close`. HTTP/1.0: no `Transfer-Encoding`, no
    /// `Content-Length`, `Connection: close`, raw body bytes, and the
    /// connection must be closed after the end. Statuses without a body (1xx,
    /// `204`, `205`, `304`) are written as by [`encode`](Self::encode) with an
    /// empty body, and the returned encoder writes nothing.
    pub fn start_stream<B>(&self, response: &Response<B>, dst: &mut BytesMut) -> StreamEncoder {
        self.start_stream_dated(response, None, dst)
    }

    /// [`start_stream`](Self::start_stream), with `Date` as
    /// [`encode_dated`](Self::encode_dated) writes it.
    pub fn start_stream_dated<B>(
        &self,
        response: &Response<B>,
        date: Option<&HttpDate>,
        dst: &mut BytesMut,
    ) -> StreamEncoder {
        let status = response.status();
        let headers = response.headers();
        if !has_body(status) || status == StatusCode::RESET_CONTENT {
            let after = self.encode_full(status, headers, response.extensions(), &[], date, dst);
            return StreamEncoder {
                mode: Mode::Empty,
                after,
            };
        }
        let close = self.http10 || !self.keep_alive || has_token(headers, CONNECTION, "close");
        put_status_line(dst, status, response.extensions());
        put_fields(dst, headers, |name| {
            is_framing(name) || name == CONTENT_LENGTH
        });
        Self::put_date(dst, headers, date);
        if !self.http10 {
            dst.put_slice(b"Transfer-Encoding: chunked\r\n");
        }
        if close {
            dst.put_slice(b"Connection: close\r\n");
        }
        dst.put_slice(b"\r\n");
        let mode = match (self.head_request, self.http10) {
            (true, _) => Mode::Empty,
            (false, true) => Mode::Raw,
            (false, false) => Mode::Chunked,
        };
        let after = if close {
            AfterResponse::Close
        } else {
            AfterResponse::KeepAlive
        };
        StreamEncoder { mode, after }
    }

    fn encode_full(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        extensions: &Extensions,
        body: &[u8],
        date: Option<&HttpDate>,
        dst: &mut BytesMut,
    ) -> AfterResponse {
        dst.reserve(256 + body.len());
        put_status_line(dst, status, extensions);
        if status.is_informational() {
            put_fields(dst, headers, |name| {
                name == CONTENT_LENGTH || name == TRANSFER_ENCODING
            });
            dst.put_slice(b"\r\n");
            return if status == StatusCode::SWITCHING_PROTOCOLS {
                AfterResponse::Upgrade
            } else {
                AfterResponse::KeepAlive
            };
        }
        let close = !self.keep_alive || has_token(headers, CONNECTION, "close");
        let body_allowed = has_body(status);
        // A 205 has no content, whatever the body given (RFC 9110 §15.3.6).
        let reset = status == StatusCode::RESET_CONTENT;
        let body: &[u8] = if reset { &[] } else { body };
        // A 304's length is the representation's; a HEAD answer's, the body's it would
        // have had (RFC 9110 §8.6). No 204 has one.
        let keep_caller_length = status == StatusCode::NOT_MODIFIED
            || (body_allowed
                && !reset
                && self.head_request
                && headers.contains_key(CONTENT_LENGTH));
        put_fields(dst, headers, |name| {
            is_framing(name) || (name == CONTENT_LENGTH && !keep_caller_length)
        });
        Self::put_date(dst, headers, date);
        if body_allowed && !keep_caller_length {
            dst.put_slice(b"Content-Length: ");
            put_decimal(dst, body.len() as u64);
            dst.put_slice(b"\r\n");
        }
        if close {
            dst.put_slice(b"Connection: close\r\n");
        } else if self.http10 {
            dst.put_slice(b"Connection: keep-alive\r\n");
        }
        dst.put_slice(b"\r\n");
        if body_allowed && !self.head_request {
            dst.put_slice(body);
        }
        if close {
            AfterResponse::Close
        } else {
            AfterResponse::KeepAlive
        }
    }
}

/// Writes the body of a streaming response started by
/// [`ResponseEncoder::start_stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEncoder {
    mode: Mode,
    after: AfterResponse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// HTTP/1.1: each piece is one chunk.
    Chunked,
    /// HTTP/1.0: raw bytes, delimited by closing the connection.
    Raw,
    /// No body may be sent (HEAD request, or a status without a body).
    Empty,
}

impl StreamEncoder {
    /// Append one piece of body to `dst`: one HTTP chunk (hex size, CRLF,
    /// data, CRLF) for HTTP/1.1, the raw bytes for HTTP/1.0. Empty `data`
    /// writes nothing (an empty chunk would end the stream).
    pub fn encode_chunk(&self, data: &[u8], dst: &mut BytesMut) {
        match self.mode {
            Mode::Chunked if !data.is_empty() => {
                dst.reserve(data.len() + 20);
                put_hex(dst, data.len() as u64);
                dst.put_slice(b"\r\n");
                dst.put_slice(data);
                dst.put_slice(b"\r\n");
            }
            Mode::Raw => dst.put_slice(data),
            Mode::Chunked | Mode::Empty => {}
        }
    }

    /// Append the end of the body to `dst` (`0\r\n\r\n` for chunked, nothing
    /// otherwise) and say what the connection does next.
    pub fn encode_end(self, dst: &mut BytesMut) -> AfterResponse {
        if self.mode == Mode::Chunked {
            dst.put_slice(b"0\r\n\r\n");
        }
        self.after
    }

    /// Whether the connection must be closed after the end of this body
    /// (always for HTTP/1.0 streams).
    pub fn must_close(&self) -> bool {
        self.after.must_close()
    }

    /// Whether the body is written with chunked transfer coding.
    pub fn is_chunked(&self) -> bool {
        self.mode == Mode::Chunked
    }
}

/// Fields the encoder always writes itself (in 1xx heads: `Transfer-Encoding` only).
fn is_framing(name: &HeaderName) -> bool {
    name == CONNECTION || name == TRANSFER_ENCODING
}

/// Whether a response with this status carries a body.
fn has_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

fn put_status_line(dst: &mut BytesMut, status: StatusCode, extensions: &Extensions) {
    dst.put_slice(b"HTTP/1.1 ");
    dst.put_slice(status.as_str().as_bytes());
    dst.put_u8(b' ');
    match extensions.get::<ReasonPhrase>() {
        Some(reason) if reason.is_valid() => dst.put_slice(reason.as_bytes()),
        _ => dst.put_slice(status.canonical_reason().unwrap_or("").as_bytes()),
    }
    dst.put_slice(b"\r\n");
}

/// Write every field of `headers` that `skip` does not name.
fn put_fields(dst: &mut BytesMut, headers: &HeaderMap, skip: impl Fn(&HeaderName) -> bool) {
    for (name, value) in headers {
        if skip(name) {
            continue;
        }
        dst.put_slice(name.as_str().as_bytes());
        dst.put_slice(b": ");
        dst.put_slice(value.as_bytes());
        dst.put_slice(b"\r\n");
    }
}

/// Append `n` in decimal.
pub(crate) fn put_decimal(dst: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&digits[i..]);
}

/// Append `n` in lowercase hexadecimal.
fn put_hex(dst: &mut BytesMut, mut n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&digits[i..]);
}
