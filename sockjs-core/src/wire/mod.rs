//! Sans-IO HTTP/1.1 codec for embedders that own raw byte streams.
//!
//! Bytes in, bytes out: no sockets, no async, no clocks. The caller reads
//! from its connection into a [`BytesMut`](bytes::BytesMut), lets
//! [`RequestDecoder`] turn it into [`http::Request`]s, and writes what
//! [`ResponseEncoder`] / [`StreamEncoder`] put into an output buffer.
//!
//! - [`RequestDecoder`]: incremental, pipelining-safe request decoding with
//!   `Content-Length` and chunked bodies, `Expect: 100-continue`, upgrade
//!   detection and hard [`Limits`]; failures are a [`WireError`] that knows
//!   its status code and can encode its own response.
//! - [`ResponseEncoder`]: complete responses, streaming responses (chunked
//!   for HTTP/1.1, close-delimited for HTTP/1.0) and `101` heads, with the
//!   `Connection` decision reported as [`AfterResponse`].
//! - [`rfc6455`]: WebSocket framing (client frames in, server frames out).
//! - [`hixie76`]: the framing of the pre-RFC WebSocket protocol.
//!
//! # Example: the decode → respond loop
//!
//! ```
//! use bytes::BytesMut;
//! use http::Response;
//! use sockjs_core::wire::{CONTINUE_RESPONSE, Decoded, RequestDecoder};
//!
//! let mut decoder = RequestDecoder::default();
//! // Two pipelined requests, as read from a socket.
//! let mut input = BytesMut::from(
//!     &b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/info HTTP/1.1\r\nHost: x\r\n\r\n"[..],
//! );
//! let mut output = BytesMut::new();
//! let mut open = true;
//! while open {
//!     match decoder.decode(&mut input) {
//!         // Need more bytes: read from the socket into `input`, then decode again.
//!         Ok(None) => break,
//!         Ok(Some(Decoded::Continue)) => output.extend_from_slice(CONTINUE_RESPONSE),
//!         Ok(Some(Decoded::Request(req))) => {
//!             let encoder = req.response_encoder();
//!             if req.request.uri().path() == "/echo" {
//!                 let response = Response::new("Welcome to SockJS!\n");
//!                 open = !encoder.encode(&response, &mut output).must_close();
//!             } else {
//!                 // A streaming response: one chunk per piece, then the end.
//!                 let stream = encoder.start_stream(&Response::new(()), &mut output);
//!                 stream.encode_chunk(b"o\n", &mut output);
//!                 open = !stream.encode_end(&mut output).must_close();
//!             }
//!         }
//!         Err(err) => {
//!             err.encode_refusal(None, decoder.asks_head(), &mut output);
//!             open = false;
//!         }
//!     }
//!     // Write `output` to the socket here; close it if `!open`.
//! }
//! assert_eq!(
//!     &output[..],
//!     &b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\nWelcome to SockJS!\n\
//!        HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\no\n\r\n0\r\n\r\n"[..]
//! );
//! ```

mod chunked;
mod date;
mod error;
mod framing;
pub mod hixie76;
mod limits;
mod names;
mod request;
mod response;
pub mod rfc6455;
pub(crate) mod tokens;

pub use date::HttpDate;
pub use error::WireError;
pub use limits::Limits;
pub use request::{Decoded, DecodedRequest, RequestDecoder};
pub use response::{
    AfterResponse, CONTINUE_RESPONSE, ReasonPhrase, ResponseEncoder, StreamEncoder,
};
