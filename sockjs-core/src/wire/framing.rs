//! How a request's body is delimited (RFC 9112 §6): `Content-Length` or
//! `Transfer-Encoding: chunked`, read from the head's fields as they are parsed, and
//! checked against smuggling (the body's size is checked against its limit by the
//! decoder, once it knows the request's).

use http::Version;

use super::WireError;
use super::chunked::ChunkedDecoder;
use super::tokens::{trim, value_tokens};

/// A request body's delimitation.
#[derive(Debug)]
pub(super) enum Body {
    /// This many bytes, still in the caller's buffer.
    Length(usize),
    Chunked(ChunkedDecoder),
}

/// The framing fields of one head, collected field by field: no map lookup after the
/// parse. Errors wait for [`body`](Framing::body), so that they are reported in the same
/// order whatever the order of fields of different names (the order of `Transfer-Encoding`
/// fields is their codings' order, RFC 9110 §5.3, and decides whether `chunked` is last).
#[derive(Debug, Default)]
pub(super) struct Framing<'h> {
    /// The length every `Content-Length` element agreed on so far, as its digits without
    /// leading zeros: values are compared whole, however long, and read as a number once.
    length: Option<&'h [u8]>,
    /// An element was not a number, or two disagreed.
    invalid_length: bool,
    /// A `Transfer-Encoding` field was present.
    transfer_encoding: bool,
    /// Its codings, all of them `chunked` unless `unsupported_coding`.
    codings: usize,
    unsupported_coding: bool,
    /// Whether the last coding so far is `chunked`: the body's length is known only when
    /// it is the final one (RFC 9112 §6.3).
    last_chunked: bool,
}

impl<'h> Framing<'h> {
    /// One `Content-Length` field's value. Several fields or list elements must agree
    /// (RFC 9112 §6.3: otherwise 400, whatever their size); a number too large for `u64`
    /// fails the body limit.
    pub(super) fn content_length(&mut self, value: &'h [u8]) {
        for element in value.split(|&b| b == b',') {
            let digits = trim(element);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                self.invalid_length = true;
                return;
            }
            let zeros = digits.iter().take_while(|&&d| d == b'0').count();
            let digits = &digits[zeros..];
            if self.length.is_some_and(|prev| prev != digits) {
                self.invalid_length = true;
                return;
            }
            self.length = Some(digits);
        }
    }

    /// One `Transfer-Encoding` field's value.
    pub(super) fn transfer_encoding(&mut self, value: &[u8]) {
        self.transfer_encoding = true;
        for coding in value_tokens(value) {
            let chunked = coding.eq_ignore_ascii_case(b"chunked");
            self.unsupported_coding |= !chunked;
            self.last_chunked = chunked;
            self.codings += 1;
        }
    }

    /// The body's delimitation once every field is in. Its length is checked against a
    /// limit by the caller, once it knows the request's (a length past `usize` reads as
    /// `usize::MAX`, past every limit).
    pub(super) fn body(self, version: Version) -> Result<Body, WireError> {
        if self.invalid_length {
            return Err(WireError::InvalidContentLength);
        }
        if self.transfer_encoding {
            if self.length.is_some() {
                return Err(WireError::AmbiguousBodyLength);
            }
            // Without `chunked` last the body's end cannot be known: 400 and close, a MUST
            // (RFC 9112 §6.3), before a coding not understood (501, RFC 9112 §6.1, a SHOULD).
            if !self.last_chunked {
                return Err(WireError::InvalidTransferEncoding);
            }
            if self.unsupported_coding {
                return Err(WireError::UnsupportedTransferEncoding);
            }
            if self.codings != 1 || version == Version::HTTP_10 {
                return Err(WireError::InvalidTransferEncoding);
            }
            return Ok(Body::Chunked(ChunkedDecoder::new()));
        }
        let Some(digits) = self.length else {
            return Ok(Body::Length(0));
        };
        // A number past `u64` stops the fold early, and reads as past every limit.
        let len = digits.iter().try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        Ok(Body::Length(
            len.and_then(|len| usize::try_from(len).ok())
                .unwrap_or(usize::MAX),
        ))
    }
}
