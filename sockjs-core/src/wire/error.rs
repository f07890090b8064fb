//! Errors the request decoder reports, and the response that answers them.

use std::fmt;

use bytes::{BufMut, BytesMut};
use http::StatusCode;

use super::date::HttpDate;
use super::response::put_decimal;

/// Why a request could not be decoded.
///
/// Every error is fatal for the connection: write the response from
/// [`encode_refusal`](WireError::encode_refusal) (with no content for a `HEAD` request,
/// [`RequestDecoder::asks_head`](super::RequestDecoder::asks_head)), then close the socket.
/// The decoder keeps returning the same error if it is called again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireError {
    /// The request line or a header field is not valid HTTP/1.x syntax. `400`.
    MalformedHead,
    /// The request target is not a valid URI, or carries a fragment (RFC 9112 §3.2). `400`.
    InvalidTarget,
    /// The request line names a version of HTTP other than 1, such as `HTTP/2.0` or
    /// `HTTP/0.9` (the version's grammar: RFC 9112 §2.3). A later minor version of HTTP/1,
    /// such as `HTTP/1.2`, is served as HTTP/1.1 (RFC 9110 §2.5). `505`.
    UnsupportedVersion,
    /// The head has more header fields than [`Limits::max_headers`](super::Limits::max_headers). `431`.
    TooManyHeaders,
    /// The head (or a chunked body's trailer section) is longer than
    /// [`Limits::max_head_bytes`](super::Limits::max_head_bytes). `431`.
    HeadTooLarge,
    /// The request line alone, its method read, is longer than
    /// [`Limits::max_head_bytes`](super::Limits::max_head_bytes): its target is longer than
    /// this server parses (RFC 9112 §3). `414`.
    UriTooLong,
    /// A `Content-Length` value is not a number, or several values disagree. `400`.
    InvalidContentLength,
    /// Both `Content-Length` and `Transfer-Encoding` are present, which is a
    /// request smuggling risk. `400`.
    AmbiguousBodyLength,
    /// `Transfer-Encoding` names a coding other than `chunked` before a final
    /// `chunked`. `501`.
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` is empty, does not end with `chunked` (the body's end
    /// cannot be known, RFC 9112 §6.3), repeats `chunked`, or comes in an
    /// HTTP/1.0 request. `400`.
    InvalidTransferEncoding,
    /// The chunked body is malformed (bad size line, missing CRLF after the
    /// data, bad trailer line). `400`.
    MalformedChunk,
    /// The body is longer than [`Limits::max_body_bytes`](super::Limits::max_body_bytes). `413`.
    BodyTooLarge,
    /// More than one `Host` field (RFC 9112 §3.2: a front end and this server could each
    /// take a different one). `400`.
    DuplicateHost,
    /// An HTTP/1.1 request without a `Host` field (RFC 9112 §3.2 requires `400`; HTTP/1.0
    /// requests may leave it out). `400`.
    MissingHost,
    /// A `Host` value that is not `uri-host [ ":" port ]` (RFC 9110 §7.2): white space,
    /// user information, a path, or a byte no host name has. `400`.
    InvalidHost,
}

impl WireError {
    /// The status code to answer this error with.
    pub fn status(self) -> StatusCode {
        match self {
            WireError::MalformedHead
            | WireError::InvalidTarget
            | WireError::InvalidContentLength
            | WireError::AmbiguousBodyLength
            | WireError::InvalidTransferEncoding
            | WireError::MalformedChunk
            | WireError::DuplicateHost
            | WireError::MissingHost
            | WireError::InvalidHost => StatusCode::BAD_REQUEST,
            WireError::UnsupportedVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            WireError::TooManyHeaders | WireError::HeadTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            WireError::UriTooLong => StatusCode::URI_TOO_LONG,
            WireError::UnsupportedTransferEncoding => StatusCode::NOT_IMPLEMENTED,
            WireError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// A short, human-readable description (also the error response body).
    pub fn message(self) -> &'static str {
        match self {
            WireError::MalformedHead => "Malformed request head",
            WireError::InvalidTarget => "Invalid request target",
            WireError::UnsupportedVersion => "HTTP version not supported",
            WireError::TooManyHeaders => "Too many header fields",
            WireError::HeadTooLarge => "Request head too large",
            WireError::UriTooLong => "Request target too long",
            WireError::InvalidContentLength => "Invalid Content-Length",
            WireError::AmbiguousBodyLength => "Both Content-Length and Transfer-Encoding",
            WireError::UnsupportedTransferEncoding => "Unsupported Transfer-Encoding",
            WireError::InvalidTransferEncoding => "Invalid Transfer-Encoding",
            WireError::MalformedChunk => "Malformed chunked body",
            WireError::BodyTooLarge => "Request body too large",
            WireError::DuplicateHost => "More than one Host field",
            WireError::MissingHost => "Missing Host field",
            WireError::InvalidHost => "Invalid Host field",
        }
    }

    /// Append a complete error response to `dst`: status line,
    /// `Content-Type: text/plain; charset=UTF-8`, `Content-Length`,
    /// `Connection: close` and the [`message`](WireError::message) as body.
    ///
    /// Write it, then close the connection.
    pub fn encode_response(self, dst: &mut BytesMut) {
        self.encode_response_dated(None, dst);
    }

    /// [`encode_response`](WireError::encode_response), with `Date: date` if given
    /// (RFC 9110 §6.6.1).
    pub fn encode_response_dated(self, date: Option<HttpDate>, dst: &mut BytesMut) {
        self.encode_refusal(date, false, dst);
    }

    /// [`encode_response_dated`](WireError::encode_response_dated), for a request that
    /// asked for `HEAD` when `head_request` ([`RequestDecoder::asks_head`]): the same head,
    /// its `Content-Length` the message's as a `GET` would get, and no content after it
    /// (RFC 9110 §9.3.2).
    ///
    /// [`RequestDecoder::asks_head`]: crate::wire::RequestDecoder::asks_head
    pub fn encode_refusal(self, date: Option<HttpDate>, head_request: bool, dst: &mut BytesMut) {
        let status = self.status();
        let body = self.message().as_bytes();
        dst.reserve(128 + body.len());
        dst.put_slice(b"HTTP/1.1 ");
        dst.put_slice(status.as_str().as_bytes());
        dst.put_u8(b' ');
        dst.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
        dst.put_slice(b"\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: ");
        put_decimal(dst, body.len() as u64);
        dst.put_slice(b"\r\nConnection: close\r\n");
        if let Some(date) = date {
            dst.put_slice(b"Date: ");
            dst.put_slice(date.as_bytes());
            dst.put_slice(b"\r\n");
        }
        dst.put_slice(b"\r\n");
        if !head_request {
            dst.put_slice(body);
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.status().as_u16())
    }
}

impl std::error::Error for WireError {}
