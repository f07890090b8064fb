//! permessage-deflate (RFC 7692): the server's settings, the parameters a handshake
//! negotiated, and the negotiation itself (pure: header values in, parameters and the
//! response header out). The compression lives in the RFC 6455 codec
//! ([`wire::rfc6455`](crate::wire::rfc6455), cargo feature `deflate`).
//!
//! ```
//! use sockjs_core::deflate::{DeflateOptions, negotiate};
//!
//! // What every Chromium offers.
//! let offer = http::HeaderValue::from_static("permessage-deflate; client_max_window_bits");
//! let (params, answer) = negotiate([&offer], &DeflateOptions::default()).expect("accepted");
//! assert_eq!(answer, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
//! assert!(params.server_no_context_takeover && params.client_no_context_takeover);
//! ```
//!
//! # What is negotiated (RFC 7692 §7.1)
//!
//! Offers are read from every `Sec-WebSocket-Extensions` header, in order; the first
//! `permessage-deflate` offer the server can honour is accepted, the others and every other
//! extension are ignored. A header that does not follow the grammar of RFC 6455 §9.1 means
//! no extension at all (the handshake itself goes on). An offer is declined when it has a
//! parameter RFC 7692 does not define, a parameter twice, a parameter with an invalid value
//! (window bits other than a decimal `8`..`15` without leading zeros, a value on a
//! `*_no_context_takeover`, no value on `server_max_window_bits`).
//!
//! The answer always holds `server_no_context_takeover` and `client_no_context_takeover`
//! unless [`DeflateOptions::server_context_takeover`] /
//! [`DeflateOptions::client_context_takeover`] allow the context to be kept and the
//! client did not ask for the `*_no_context_takeover` itself (nor, for the server's, for a
//! `server_max_window_bits` below 15); it repeats
//! `server_max_window_bits` with the offer's value when offered, and never names
//! `client_max_window_bits` (any client window fits the decompressor's 32 KiB).
//!
//! The compression is flate2 on its pure-Rust zlib-rs backend (no C, no build script),
//! which refuses a back-reference before the start of the stream (RFC 1951 §3.2.5): with no
//! context takeover each message is a stream of its own, so a message that refers back
//! past its own start is data that does not inflate (`1007`), never text made of a
//! cleared window (or of another connection's message inflated on the same thread before).
//! The server's compressor always uses a 32 KiB window. A `server_max_window_bits` below 15
//! is honoured all the same: the server then compresses each message on its own (it
//! answers `server_no_context_takeover`) and only messages no longer than the window
//! ([`DeflateParams::largest_compressed`]), which cannot refer back further than their own
//! length; longer ones go uncompressed. The client's own messages are compressed as usual.
//! No browser sends the parameter (Chromium and Firefox offer
//! `permessage-deflate; client_max_window_bits`).

use http::HeaderValue;

/// permessage-deflate settings ([`Options::permessage_deflate`](crate::Options)).
///
/// The default compresses each message on its own (no context takeover either way), so a
/// connection keeps no compression state between messages: the compressor and the
/// decompressor are one per thread, reset for each message, and an idle compressed
/// connection costs what an uncompressed one does. Context takeover trades memory for ratio:
/// see the fields.
///
/// What it costs, measured (`tests/deflate_memory.rs` for the heap; `sockjs-load --idle
/// --echo-first --permessage-deflate` against the test servers for resident memory, 2000
/// sessions that each echoed one 1 KB JSON message first):
///
/// | mode | heap per connection | resident memory per idle session (smol / tokio) |
/// |---|---|---|
/// | off | 0 | 2.8 / 3.2 KiB |
/// | on, no context takeover (default) | 0 (plus 422 KiB once per thread) | 3.0 / 3.4 KiB |
/// | on, context takeover both ways | 418 KiB (371 KiB compressor, 47 KiB decompressor) | 335 / 335 KiB |
///
/// ```
/// use sockjs_core::{DeflateOptions, Options};
///
/// let options = Options {
///     permessage_deflate: Some(DeflateOptions { min_size: 512, ..DeflateOptions::default() }),
///     ..Options::default()
/// };
/// assert!(options.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateOptions {
    /// Messages shorter than this (in bytes, before compression) are sent uncompressed:
    /// compressing them costs CPU and saves little or nothing. Default 256.
    pub min_size: usize,
    /// Compression level, 0 (store) to 9 (best). Default 2: the fastest with Huffman codes
    /// fit to each message. Level 1 is faster still (its codes are the fixed ones), for
    /// about a fifth more bytes on JSON-like text: measured on 1 KB JSON records, 531 bytes
    /// a message at level 1 and 428 at level 2, from 1218, for 32 and 39 µs of server CPU
    /// a message (BENCHMARKS.md).
    pub level: u8,
    /// Keep the compressor's window between the messages the server sends, when the client
    /// allows it (no `server_no_context_takeover` in its offer, and no
    /// `server_max_window_bits` below 15, see
    /// [`DeflateParams::largest_compressed`]): a better ratio on series
    /// of similar messages, for a compressor of 371 KiB per connection, held from its
    /// first compressed message to its end. Default off.
    pub server_context_takeover: bool,
    /// Let the client keep its compressor's window between the messages it sends (answer
    /// without `client_no_context_takeover` unless the client offered it): a better ratio
    /// on the client's messages, for a decompressor of 47 KiB per connection, held from its
    /// first compressed message to its end. Default off.
    ///
    /// One limit: a client message that ends its DEFLATE stream with a final block
    /// (`BFINAL` set, RFC 7692 §7.2.3.4, where every browser and common client library
    /// flushes with an empty non-final block instead) starts the server's window afresh,
    /// so a later message of that client that refers back past it does not inflate and
    /// closes the socket with 1007. Keeping the window across a final block would cost
    /// every such socket a further 32 KiB of history.
    pub client_context_takeover: bool,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        DeflateOptions {
            min_size: 256,
            level: 2,
            server_context_takeover: false,
            client_context_takeover: false,
        }
    }
}

/// The permessage-deflate parameters a handshake agreed on (RFC 7692 §7.1), as the engine
/// tells the driver in [`Handshake::Rfc6455`](crate::Handshake::Rfc6455).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message, so the server may reset its
    /// decompressor too.
    pub client_no_context_takeover: bool,
    /// Most window bits of the server's compressor (15: 32 KiB). Below 15 the server
    /// compresses without context takeover and only messages that fit in the window
    /// ([`largest_compressed`](DeflateParams::largest_compressed)).
    pub server_max_window_bits: u8,
    /// Most window bits of the client's compressor, as far as the server knows (15 unless
    /// the client said less in its offer).
    pub client_max_window_bits: u8,
}

impl DeflateParams {
    /// The longest text message the server may send compressed: any length with a 32 KiB
    /// window, else the window's size (with [`DeflateOptions::min_size`]'s default of 256
    /// bytes, a window of 256 bytes then compresses only messages of exactly 256 bytes, and
    /// 512 bytes those from 256 to 512; the client's own messages compress as usual). The compressor's own window is always 32 KiB, but
    /// a message compressed on its own (no context takeover) refers back at most its own
    /// length, so one that fits in the client's smaller window never reaches past it
    /// (RFC 7692 §7.1.2.1); longer ones go uncompressed.
    ///
    /// ```
    /// use sockjs_core::deflate::{DeflateOptions, negotiate};
    ///
    /// let offer = http::HeaderValue::from_static("permessage-deflate; server_max_window_bits=10");
    /// let (params, answer) = negotiate([&offer], &DeflateOptions::default()).expect("accepted");
    /// assert!(answer.to_str()?.ends_with("; server_max_window_bits=10"));
    /// assert_eq!(params.largest_compressed(), 1024);
    /// # Ok::<(), http::header::ToStrError>(())
    /// ```
    pub fn largest_compressed(&self) -> usize {
        match self.server_max_window_bits {
            bits @ 0..15 => 1 << bits,
            _ => usize::MAX,
        }
    }
}

/// The parameters of an offer, once checked.
#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// Negotiates permessage-deflate over the request's `Sec-WebSocket-Extensions` values:
/// the parameters and the value of the response's `Sec-WebSocket-Extensions`, or `None`
/// (no extension; the handshake goes on without one).
pub fn negotiate<'a>(
    headers: impl IntoIterator<Item = &'a HeaderValue>,
    options: &DeflateOptions,
) -> Option<(DeflateParams, HeaderValue)> {
    let mut offers = Vec::new();
    for value in headers {
        // A malformed header: no extension at all, rather than a guess.
        if !parse_extensions(value.as_bytes(), &mut offers) {
            return None;
        }
    }
    offers
        .iter()
        .filter(|(name, _)| name == "permessage-deflate")
        .find_map(|(_, params)| check_offer(params))
        .map(|offer| accept(&offer, options))
}

/// The parameters of one offer as received: names and unquoted values.
type Params = Vec<(String, Option<String>)>;

/// Checks an offer against RFC 7692 §7.1; `None` declines it.
fn check_offer(params: &Params) -> Option<Offer> {
    let mut offer = Offer::default();
    let mut seen = Vec::with_capacity(params.len());
    for (name, value) in params {
        // RFC 7692 §7.1: multiple parameters with the same name decline the offer.
        if seen.contains(&name.as_str()) {
            return None;
        }
        seen.push(name.as_str());
        match (name.as_str(), value) {
            ("server_no_context_takeover", None) => offer.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => offer.client_no_context_takeover = true,
            ("server_max_window_bits", Some(value)) => {
                offer.server_max_window_bits = Some(window_bits(value)?);
            }
            ("client_max_window_bits", None) => offer.client_max_window_bits = Some(None),
            ("client_max_window_bits", Some(value)) => {
                offer.client_max_window_bits = Some(Some(window_bits(value)?));
            }
            // An unknown parameter, or a value where there must be none (or none where
            // there must be one).
            _ => return None,
        }
    }
    Some(offer)
}

/// A window-bits value: decimal 8 to 15 without leading zeros (RFC 7692 §7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [b'8'] => Some(8),
        [b'9'] => Some(9),
        [b'1', d @ b'0'..=b'5'] => Some(10 + (d - b'0')),
        _ => None,
    }
}

/// The parameters and the response to an acceptable offer.
fn accept(offer: &Offer, options: &DeflateOptions) -> (DeflateParams, HeaderValue) {
    let server_max_window_bits = offer.server_max_window_bits.unwrap_or(15);
    let params = DeflateParams {
        // A window below 32 KiB is kept by compressing each message on its own, and only
        // those no longer than the window (see `DeflateParams::largest_compressed`).
        server_no_context_takeover: offer.server_no_context_takeover
            || !options.server_context_takeover
            || server_max_window_bits < 15,
        client_no_context_takeover: offer.client_no_context_takeover
            || !options.client_context_takeover,
        server_max_window_bits,
        client_max_window_bits: offer.client_max_window_bits.flatten().unwrap_or(15),
    };
    let mut answer = String::from("permessage-deflate");
    if params.server_no_context_takeover {
        answer.push_str("; server_no_context_takeover");
    }
    if params.client_no_context_takeover {
        answer.push_str("; client_no_context_takeover");
    }
    // RFC 7692 §7.1.2.1: accepting the parameter means answering with it.
    if offer.server_max_window_bits.is_some() {
        answer.push_str("; server_max_window_bits=");
        answer.push_str(&server_max_window_bits.to_string());
    }
    // Built from fixed ASCII pieces and digits only, so always a valid value.
    let answer = HeaderValue::from_str(&answer)
        .unwrap_or_else(|_| HeaderValue::from_static("permessage-deflate"));
    (params, answer)
}

/// Parses one `Sec-WebSocket-Extensions` value (RFC 6455 §9.1) onto `out`; `false` if it
/// is malformed. Empty list elements are allowed (RFC 9110 §5.6.1).
fn parse_extensions(input: &[u8], out: &mut Vec<(String, Params)>) -> bool {
    let mut p = Parser { input, at: 0 };
    loop {
        p.skip_ows();
        if p.eat(b',') {
            continue;
        }
        if p.done() {
            return true;
        }
        let Some(name) = p.token() else {
            return false;
        };
        let mut params = Vec::new();
        loop {
            p.skip_ows();
            if p.done() || p.eat(b',') {
                break;
            }
            if !p.eat(b';') {
                return false;
            }
            p.skip_ows();
            let Some(param) = p.token() else {
                return false;
            };
            p.skip_ows();
            let value = if p.eat(b'=') {
                p.skip_ows();
                let value = if p.peek() == Some(b'"') {
                    // RFC 6455 §9.1: unescaped, a quoted value must still be a token.
                    match p.quoted() {
                        Some(v) if !v.is_empty() && v.bytes().all(is_tchar) => v,
                        _ => return false,
                    }
                } else {
                    match p.token() {
                        Some(v) => v,
                        None => return false,
                    }
                };
                Some(value)
            } else {
                None
            };
            params.push((param, value));
        }
        out.push((name, params));
    }
}

struct Parser<'a> {
    input: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.at >= self.input.len()
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.at += usize::from(hit);
        hit
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        (self.at > start).then(|| String::from_utf8_lossy(&self.input[start..self.at]).into_owned())
    }

    /// A quoted-string (RFC 9110 §5.6.4), unescaped.
    fn quoted(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    self.at += 1;
                    let escaped = self.peek()?;
                    if !(escaped == b'\t' || (0x20..0x7f).contains(&escaped) || escaped >= 0x80) {
                        return None;
                    }
                    out.push(escaped);
                    self.at += 1;
                }
                b @ (b'\t' | 0x20..=0x7e | 0x80..=0xff) => {
                    out.push(b);
                    self.at += 1;
                }
                _ => return None,
            }
        }
    }
}

/// A `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(value: &str) -> Option<Vec<(String, Params)>> {
        let mut out = Vec::new();
        parse_extensions(value.as_bytes(), &mut out).then_some(out)
    }

    #[test]
    fn grammar() {
        let parsed = offers(r#"a; b=1 ; c = "x" ,, d;e"#).expect("valid");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0, "a");
        assert_eq!(
            parsed[0].1,
            [
                ("b".to_owned(), Some("1".to_owned())),
                ("c".to_owned(), Some("x".to_owned()))
            ]
        );
        assert_eq!(parsed[1], ("d".to_owned(), vec![("e".to_owned(), None)]));
        assert_eq!(offers("").map(|o| o.len()), Some(0));
        for bad in [
            "a;",
            "a b",
            ";a",
            "a; b=",
            r#"a; b="x"#,
            r#"a; b="x y""#,
            r#"a; b="""#,
            "a=1",
            "a; b=c=d",
            "a;;b",
        ] {
            assert_eq!(offers(bad), None, "{bad:?}");
        }
        assert_eq!(
            offers(r#"a; b="1\5""#).expect("valid")[0].1,
            [("b".to_owned(), Some("15".to_owned()))]
        );
    }

    #[test]
    fn window_bit_values() {
        assert_eq!(window_bits("8"), Some(8));
        assert_eq!(window_bits("15"), Some(15));
        for bad in ["7", "16", "08", "015", "", "1", "+9", "10 "] {
            assert_eq!(window_bits(bad), None, "{bad:?}");
        }
    }
}
