//! The response side of the wire codec (`ResponseEncoder`, `StreamEncoder`) against a
//! reference reading of RFC 9112 and RFC 9110, written here from the RFCs alone.
//!
//! Generated responses (any status 100..=999, custom reason phrases valid or not, repeated
//! fields of any token names and any field-value bytes including obs-text, the framing
//! fields `Content-Length`, `Transfer-Encoding`, `Connection` and `Date` set by the
//! application, bodies of any bytes and sizes, streams of any pieces including empty ones,
//! HTTP/1.0 and HTTP/1.1, keep-alive or not, `HEAD` or not, with a `Date` or without) are
//! encoded, then read back the way a client reads a response: the head with `httparse`
//! (a normal dependency of `sockjs-core`, so reachable here) plus strict checks of its own
//! (CRLF only, the status-line grammar of RFC 9112 §4), the body by RFC 9112 §6.3's rules
//! (strict chunked coding of §7.1, one `Content-Length`, or close-delimited).
//!
//! The model of the head follows the encoder's documented ownership of the framing fields
//! (`ResponseEncoder`): 1xx heads carry the application's fields as given but for
//! `Content-Length` and `Transfer-Encoding` (RFC 9110 §8.6, RFC 9112 §6.1); other
//! responses drop the application's `Transfer-Encoding` and `Connection`, drop its
//! `Content-Length` except on 304 and on `HEAD` answers of `encode`, keep its `Date`
//! (adding none), and then append the encoder's own `Date`, `Content-Length` or
//! `Transfer-Encoding: chunked`, and `Connection`; a 205 has no content whatever the
//! application gave (RFC 9110 §15.3.6), so it is written as a response of length 0. Field values read back without the
//! optional whitespace around them (RFC 9112 §5.1, RFC 9110 §5.5), so a value the
//! application gave with leading or trailing SP/HTAB (which `HeaderValue` allows) reads back
//! trimmed.
//!
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Response, StatusCode, Version};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;
use sockjs_core::wire::{AfterResponse, HttpDate, ReasonPhrase, ResponseEncoder};

// ---------------------------------------------------------------------------------------
// Generated responses
// ---------------------------------------------------------------------------------------

/// The body of a generated response: complete (`encode`) or streamed piece by piece
/// (`start_stream`, `encode_chunk`, `encode_end`).
#[derive(Debug, Clone)]
enum Body {
    Full(Vec<u8>),
    Stream(Vec<Vec<u8>>),
}

#[derive(Debug, Clone)]
struct Case {
    status: u16,
    /// A custom reason phrase (`ReasonPhrase` in the extensions), valid or not.
    reason: Option<String>,
    /// Appended to the `HeaderMap` in this order.
    fields: Vec<(HeaderName, HeaderValue)>,
    http10: bool,
    keep_alive: bool,
    head: bool,
    /// Seconds from the epoch (negative: before it) and nanoseconds, for `*_dated`.
    date: Option<(i64, u32)>,
    body: Body,
}

impl Case {
    fn encoder(&self) -> ResponseEncoder {
        let version = if self.http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        ResponseEncoder::new(version, self.keep_alive).with_head_request(self.head)
    }

    fn response(&self) -> Response<Vec<u8>> {
        let body = match &self.body {
            Body::Full(body) => body.clone(),
            // `start_stream` ignores the response's body.
            Body::Stream(_) => b"IGNORED BODY".to_vec(),
        };
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap();
        for (name, value) in &self.fields {
            response.headers_mut().append(name.clone(), value.clone());
        }
        if let Some(reason) = &self.reason {
            let phrase: &'static str = Box::leak(reason.clone().into_boxed_str());
            response
                .extensions_mut()
                .insert(ReasonPhrase::from_static(phrase));
        }
        response
    }

    fn http_date(&self) -> Option<HttpDate> {
        self.date
            .map(|(secs, nanos)| HttpDate::from(system_time(secs, nanos)))
    }

    fn is_stream(&self) -> bool {
        matches!(self.body, Body::Stream(_))
    }

    /// The body the application meant, before any rule takes it away.
    fn content(&self) -> Vec<u8> {
        match &self.body {
            Body::Full(body) => body.clone(),
            Body::Stream(pieces) => pieces.concat(),
        }
    }
}

fn system_time(secs: i64, nanos: u32) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nanos.into())
    }
}

/// 9999-12-31 23:59:59, the last second an IMF-fixdate's four-digit year can show.
const LAST_SECOND: u64 = 253_402_300_799;

/// Encode `case` into `dst` with the project's API.
fn encode_into(case: &Case, response: &Response<Vec<u8>>, dst: &mut BytesMut) -> AfterResponse {
    let encoder = case.encoder();
    let date = case.http_date();
    match &case.body {
        Body::Full(_) => match &date {
            Some(date) => encoder.encode_dated(response, Some(date), dst),
            None => encoder.encode(response, dst),
        },
        Body::Stream(pieces) => {
            let stream = match &date {
                Some(date) => encoder.start_stream_dated(response, Some(date), dst),
                None => encoder.start_stream(response, dst),
            };
            let must_close = stream.must_close();
            let chunked = stream.is_chunked();
            for piece in pieces {
                stream.encode_chunk(piece, dst);
            }
            let after = stream.encode_end(dst);
            assert_eq!(must_close, after.must_close(), "StreamEncoder::must_close");
            // A 205 streams nothing: it is written as a response of length 0.
            let expect_chunked =
                has_content(case.status) && case.status != 205 && !case.http10 && !case.head;
            assert_eq!(chunked, expect_chunked, "StreamEncoder::is_chunked");
            after
        }
    }
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        2 => select(vec![100u16, 101, 102, 103, 204, 304]),
        2 => select(vec![200u16, 201, 205, 206, 301, 400, 404, 500, 503]),
        3 => 100u16..=999,
    ]
}

/// Any reason phrase: mostly RFC 9112 §4's bytes (HTAB, SP, VCHAR, obs-text through
/// UTF-8), sometimes with controls that make it invalid.
fn reason() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        8 => 0x20u32..0x7f,
        1 => Just(0x09u32),
        2 => 0x80u32..0x800,
        1 => 0u32..0x20,
        1 => Just(0x7fu32),
    ]
    .prop_filter_map("a char", char::from_u32);
    vec(ch, 0..16).prop_map(String::from_iter)
}

/// A field name: the framing fields and common ones, or any token (RFC 9110 §5.6.2).
fn field_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        3 => select(vec![
            CONTENT_LENGTH,
            TRANSFER_ENCODING,
            CONNECTION,
            DATE,
            HeaderName::from_static("set-cookie"),
            HeaderName::from_static("keep-alive"),
            HeaderName::from_static("upgrade"),
            HeaderName::from_static("content-type"),
            HeaderName::from_static("x-a"),
        ]),
        2 => "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}"
            .prop_filter_map("a token", |name| HeaderName::from_bytes(name.as_bytes()).ok()),
    ]
}

/// A field value: values that mean something to the framing fields, or any bytes a field
/// value may hold (HTAB, SP, VCHAR, obs-text; RFC 9110 §5.5).
fn field_value() -> impl Strategy<Value = HeaderValue> {
    let byte = prop_oneof![
        1 => Just(b'\t'),
        1 => Just(b' '),
        8 => 0x21u8..=0x7e,
        3 => 0x80u8..=0xff,
    ];
    prop_oneof![
        2 => select(vec![
            "close",
            "Close",
            "keep-alive",
            "Keep-Alive, CLOSE",
            "upgrade",
            "foo,close ,bar",
            "chunked",
            "gzip, chunked",
            "0",
            "5",
            "abc",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "",
        ])
        .prop_map(|value| value.as_bytes().to_vec()),
        3 => vec(byte, 0..24),
    ]
    .prop_map(|value| HeaderValue::from_bytes(&value).unwrap())
}

/// Body bytes: small and random, tricky for a reader, or large (5 hex digits of size).
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => vec(any::<u8>(), 0..48),
        2 => select(vec![
            &b""[..],
            b"0\r\n\r\n",
            b"\r\n",
            b"\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ])
        .prop_map(<[u8]>::to_vec),
        1 => (0usize..70_000, any::<u8>()).prop_map(|(len, seed)| {
            (0..len)
                .map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed))
                .collect()
        }),
    ]
}

fn body(stream: impl Strategy<Value = bool>) -> impl Strategy<Value = Body> {
    let piece = prop_oneof![3 => bytes(), 1 => Just(Vec::new())];
    (stream, bytes(), vec(piece, 0..8)).prop_map(|(stream, full, pieces)| {
        if stream {
            Body::Stream(pieces)
        } else {
            Body::Full(full)
        }
    })
}

fn date() -> impl Strategy<Value = (i64, u32)> {
    let secs = prop_oneof![
        1 => -1_000_000i64..0,
        6 => 0i64..=LAST_SECOND as i64,
        1 => LAST_SECOND as i64 - 10..LAST_SECOND as i64 + 1_000_000,
    ];
    (secs, 0u32..1_000_000_000)
}

fn case_of(
    status: impl Strategy<Value = u16>,
    http10: impl Strategy<Value = bool>,
    head: impl Strategy<Value = bool>,
    stream: impl Strategy<Value = bool>,
) -> impl Strategy<Value = Case> {
    (
        status,
        option::weighted(0.25, reason()),
        vec((field_name(), field_value()), 0..10),
        http10,
        any::<bool>(),
        head,
        option::weighted(0.6, date()),
        body(stream),
    )
        .prop_map(
            |(status, reason, fields, http10, keep_alive, head, date, body)| Case {
                status,
                reason,
                fields,
                http10,
                keep_alive,
                head,
                date,
                body,
            },
        )
}

fn any_case() -> impl Strategy<Value = Case> {
    case_of(
        status(),
        any::<bool>(),
        prop::bool::weighted(0.2),
        any::<bool>(),
    )
}

// ---------------------------------------------------------------------------------------
// The model: what the bytes must say
// ---------------------------------------------------------------------------------------

/// RFC 9110 §15.2, RFC 9110 §15.3.5, RFC 9110 §15.4.5 (and RFC 9112 §6.3 rule 1): 1xx, 204 and 304 have no
/// content.
fn has_content(status: u16) -> bool {
    !((100..200).contains(&status) || status == 204 || status == 304)
}

/// RFC 9112 §4: `reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )`.
fn is_reason_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// RFC 9112 §5.1 / RFC 9110 §5.5: a field value without the OWS around it.
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Whether a `#token` list value (RFC 9110 §5.6.1) lists `token`, case-insensitively.
fn value_lists(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|element| trim_ows(element).eq_ignore_ascii_case(token.as_bytes()))
}

type Fields = Vec<(String, Vec<u8>)>;

fn lists(fields: &Fields, name: &str, token: &str) -> bool {
    fields
        .iter()
        .any(|(n, v)| n == name && value_lists(v, token))
}

fn has_field(fields: &Fields, name: &str) -> bool {
    fields.iter().any(|(n, _)| n == name)
}

/// What the encoder should write for `case`.
#[derive(Debug)]
struct Expected {
    status_line: Vec<u8>,
    fields: Fields,
    body: Vec<u8>,
    framing: FramingKind,
    after: AfterResponse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FramingKind {
    /// The message ends after its header section (RFC 9112 §6.3 rule 1).
    None,
    Length,
    Chunked,
    Close,
}

fn model(case: &Case, response: &Response<Vec<u8>>) -> Expected {
    let status = case.status;
    let mut status_line = format!("HTTP/1.1 {status:03} ").into_bytes();
    match &case.reason {
        Some(reason) if reason.bytes().all(is_reason_byte) => {
            status_line.extend_from_slice(reason.as_bytes());
        }
        _ => status_line.extend_from_slice(
            StatusCode::from_u16(status)
                .unwrap()
                .canonical_reason()
                .unwrap_or("")
                .as_bytes(),
        ),
    }
    status_line.extend_from_slice(b"\r\n");

    let given: Fields = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), trim_ows(v.as_bytes()).to_vec()))
        .collect();
    let content = has_content(status);
    let stream = case.is_stream();
    let mut fields = Fields::new();
    let (after, framing);
    if (100..200).contains(&status) {
        // 1xx: the caller's fields as given but for the framing ones no 1xx may carry, no
        // Date, no framing of the encoder's.
        fields = given
            .into_iter()
            .filter(|(name, _)| name != "content-length" && name != "transfer-encoding")
            .collect();
        after = if status == 101 {
            AfterResponse::Upgrade
        } else {
            AfterResponse::KeepAlive
        };
        framing = FramingKind::None;
    } else {
        // A 205 carries no content: a stream or a body given is written as length 0.
        let reset = status == 205;
        let stream = stream && !reset;
        let close = !case.keep_alive
            || lists(&given, "connection", "close")
            || (stream && content && case.http10);
        let keep_caller_length = status == 304
            || (content && !reset && !stream && case.head && has_field(&given, "content-length"));
        for (name, value) in &given {
            let dropped = name == "connection"
                || name == "transfer-encoding"
                || (name == "content-length" && !keep_caller_length);
            if !dropped {
                fields.push((name.clone(), value.clone()));
            }
        }
        if let Some(date) = case.http_date() {
            if !has_field(&given, "date") {
                fields.push(("date".into(), date.as_bytes().to_vec()));
            }
        }
        if content && !stream && !keep_caller_length {
            let length = if reset { 0 } else { case.content().len() };
            let length = length.to_string().into_bytes();
            fields.push(("content-length".into(), length));
        }
        if content && stream && !case.http10 {
            fields.push(("transfer-encoding".into(), b"chunked".to_vec()));
        }
        if close {
            fields.push(("connection".into(), b"close".to_vec()));
        } else if case.http10 {
            fields.push(("connection".into(), b"keep-alive".to_vec()));
        }
        after = if close {
            AfterResponse::Close
        } else {
            AfterResponse::KeepAlive
        };
        framing = match (content && !case.head, stream, case.http10) {
            (false, _, _) => FramingKind::None,
            (true, false, _) => FramingKind::Length,
            (true, true, false) => FramingKind::Chunked,
            (true, true, true) => FramingKind::Close,
        };
    }
    let body = if content && !case.head && status != 205 {
        case.content()
    } else {
        Vec::new()
    };
    Expected {
        status_line,
        fields,
        body,
        framing,
        after,
    }
}

// ---------------------------------------------------------------------------------------
// The reference reader: RFC 9112 from the client's side
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    /// The chunk-size lines as written, the last one included.
    Chunked(Vec<Vec<u8>>),
    Close,
}

impl Framing {
    fn kind(&self) -> FramingKind {
        match self {
            Framing::None => FramingKind::None,
            Framing::Length(_) => FramingKind::Length,
            Framing::Chunked(_) => FramingKind::Chunked,
            Framing::Close => FramingKind::Close,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    status_line: Vec<u8>,
    code: u16,
    /// Names lowercased (RFC 9110 §5.1: case-insensitive), values without OWS.
    fields: Fields,
    head_len: usize,
    framing: Framing,
    body: Vec<u8>,
    /// Bytes of the whole message.
    len: usize,
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// Read one response from the start of `buf`, the answer to a request that was `HEAD` or
/// not. A close-delimited body runs to the end of `buf` (the connection's close).
fn read_message(buf: &[u8], head_request: bool) -> Result<Message, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        other => return Err(format!("head does not parse: {other:?}")),
    };
    if parsed.version != Some(1) {
        return Err(format!("version {:?}, not HTTP/1.1", parsed.version));
    }
    let code = parsed.code.ok_or("no status code")?;
    let head = &buf[..head_len];

    // RFC 9112 §2.2: lines end with CRLF; a sender never writes a bare CR or LF.
    for (i, &b) in head.iter().enumerate() {
        let ok = match b {
            b'\n' => i > 0 && head[i - 1] == b'\r',
            b'\r' => head.get(i + 1) == Some(&b'\n'),
            _ => true,
        };
        if !ok {
            return Err(format!("bare CR or LF at {i} in the head"));
        }
    }
    if !head.ends_with(b"\r\n\r\n") {
        return Err("head does not end with an empty line".into());
    }

    // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF.
    let line_end = find_crlf(head, 0).ok_or("no status line")?;
    let line = &head[..line_end];
    let well_formed = line.len() >= 13
        && line.starts_with(b"HTTP/1.1 ")
        && line[9..12].iter().all(u8::is_ascii_digit)
        && line[12] == b' '
        && line[13..].iter().all(|&b| is_reason_byte(b));
    if !well_formed {
        return Err(format!("status line {:?}", String::from_utf8_lossy(line)));
    }
    let status_line = head[..line_end + 2].to_vec();

    let fields: Fields = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), trim_ows(h.value).to_vec()))
        .collect();

    // RFC 9112 §6.3, in order.
    let rest = &buf[head_len..];
    let te = has_field(&fields, "transfer-encoding");
    let cl = has_field(&fields, "content-length");
    let (framing, body, body_len) = if head_request || !has_content(code) {
        // Rule 1: a response to HEAD, and any 1xx, 204 or 304, ends with its head.
        (Framing::None, Vec::new(), 0)
    } else if te {
        // RFC 9112 §6.2: "A sender MUST NOT send a Content-Length header field in any
        // message that contains a Transfer-Encoding header field."
        if cl {
            return Err("Transfer-Encoding and Content-Length together".into());
        }
        let last_coding = fields
            .iter()
            .filter(|(n, _)| n == "transfer-encoding")
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .map(trim_ows)
            .rfind(|c| !c.is_empty())
            .unwrap_or(b"");
        if last_coding.eq_ignore_ascii_case(b"chunked") {
            // Rule 4 (chunked last): read the chunked coding.
            let (sizes, body, len) = read_chunked(rest)?;
            (Framing::Chunked(sizes), body, len)
        } else {
            // Rule 4, for a response: read until the connection closes.
            (Framing::Close, rest.to_vec(), rest.len())
        }
    } else if cl {
        // Rules 5 and 6: exactly one valid Content-Length gives the length.
        let values: Vec<&[u8]> = fields
            .iter()
            .filter(|(n, _)| n == "content-length")
            .map(|(_, v)| v.as_slice())
            .collect();
        let [value] = values[..] else {
            return Err(format!("{} Content-Length fields", values.len()));
        };
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) || value.len() > 18 {
            return Err(format!(
                "Content-Length {:?}",
                String::from_utf8_lossy(value)
            ));
        }
        let len: usize = std::str::from_utf8(value).unwrap().parse().unwrap();
        let body = rest
            .get(..len)
            .ok_or_else(|| format!("body of {len} bytes, {} there", rest.len()))?;
        (Framing::Length(len), body.to_vec(), len)
    } else {
        // Rule 8: a response without either is delimited by the connection's close.
        (Framing::Close, rest.to_vec(), rest.len())
    };
    Ok(Message {
        status_line,
        code,
        fields,
        head_len,
        framing,
        body,
        len: head_len + body_len,
    })
}

/// The chunk-size lines, the body and the bytes read.
type Chunked = (Vec<Vec<u8>>, Vec<u8>, usize);

/// RFC 9112 §7.1, strictly as a server should write it: each `chunk-size` bare hex (either
/// case) without leading zeros, no chunk extensions, no trailer fields, so the last chunk
/// and the end are exactly `0\r\n\r\n`.
fn read_chunked(buf: &[u8]) -> Result<Chunked, String> {
    let mut sizes = Vec::new();
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let end = find_crlf(buf, pos).ok_or("unterminated chunk-size line")?;
        let line = &buf[pos..end];
        sizes.push(line.to_vec());
        let bare_hex = !line.is_empty()
            && line.len() <= 15
            && line.iter().all(u8::is_ascii_hexdigit)
            && (line == b"0" || line[0] != b'0');
        if !bare_hex {
            return Err(format!(
                "chunk-size line {:?}",
                String::from_utf8_lossy(line)
            ));
        }
        let size = usize::from_str_radix(std::str::from_utf8(line).unwrap(), 16).unwrap();
        pos = end + 2;
        if size == 0 {
            if buf.get(pos..pos + 2) != Some(b"\r\n") {
                return Err("last-chunk not followed by an empty line".into());
            }
            return Ok((sizes, body, pos + 2));
        }
        let data = buf
            .get(pos..pos + size)
            .ok_or_else(|| format!("chunk of {size} bytes cut short"))?;
        body.extend_from_slice(data);
        pos += size;
        if buf.get(pos..pos + 2) != Some(b"\r\n") {
            return Err("chunk-data not followed by CRLF".into());
        }
        pos += 2;
    }
}

/// RFC 9112 §9.3 from the client's side: whether the connection persists after this
/// (final) response. A close-delimited body ends only with the close; `close` ends it; an
/// HTTP/1.0 client keeps it only on `keep-alive` (RFC 9112 §9.3, Appendix C.2.2).
fn persists(message: &Message, http10_client: bool) -> bool {
    if message.framing == Framing::Close || lists(&message.fields, "connection", "close") {
        return false;
    }
    !http10_client || lists(&message.fields, "connection", "keep-alive")
}

/// The second an IMF-fixdate (RFC 9110 §5.6.7) denotes, checking its grammar, that its day
/// exists and that its day-name is that day's.
fn imf_fixdate_second(value: &[u8]) -> Result<u64, String> {
    const DAY_NAMES: [&[u8]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let bad = || format!("not an IMF-fixdate: {:?}", String::from_utf8_lossy(value));
    let number = |range: std::ops::Range<usize>| -> Result<u64, String> {
        let digits = value.get(range).ok_or_else(bad)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        Ok(digits.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
    };
    // day-name "," SP day SP month SP year SP hour ":" minute ":" second SP "GMT"
    if value.len() != 29
        || &value[3..5] != b", "
        || value[7] != b' '
        || value[11] != b' '
        || value[16] != b' '
        || value[19] != b':'
        || value[22] != b':'
        || &value[25..] != b" GMT"
    {
        return Err(bad());
    }
    let day_name = DAY_NAMES
        .iter()
        .position(|&d| d == &value[..3])
        .ok_or_else(bad)?;
    let (day, year) = (number(5..7)?, number(12..16)?);
    let month = MONTHS
        .iter()
        .position(|&m| m == &value[8..11])
        .ok_or_else(bad)? as u64
        + 1;
    let (hour, minute, second) = (number(17..19)?, number(20..22)?, number(23..25)?);
    let leap = |y: u64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = |y: u64, m: u64| match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if year < 1970 || day == 0 || day > month_days(year, month) || hour > 23 || minute > 59 {
        return Err(bad());
    }
    // The grammar allows second 60 (a leap second), which no POSIX time shows.
    if second > 59 {
        return Err(bad());
    }
    let days: u64 = (1970..year)
        .map(|y| if leap(y) { 366 } else { 365 })
        .sum::<u64>()
        + (1..month).map(|m| month_days(year, m)).sum::<u64>()
        + (day - 1);
    // 1970-01-01 was a Thursday.
    if (days + 4) % 7 != day_name as u64 {
        return Err(format!(
            "wrong day-name: {}",
            String::from_utf8_lossy(value)
        ));
    }
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Encode `case` once and read it back.
struct Run {
    bytes: Vec<u8>,
    after: AfterResponse,
    message: Message,
    expected: Expected,
}

fn run(case: &Case) -> Result<Run, TestCaseError> {
    let response = case.response();
    let mut dst = BytesMut::new();
    let after = encode_into(case, &response, &mut dst);
    let message = read_message(&dst, case.head).map_err(|e| {
        TestCaseError::fail(format!(
            "{e}\nbytes: {:?}",
            String::from_utf8_lossy(&dst[..dst.len().min(600)])
        ))
    })?;
    Ok(Run {
        bytes: dst.to_vec(),
        after,
        message,
        expected: model(case, &response),
    })
}

fn config() -> Config {
    Config {
        cases: 256,
        // This file's failures are reported, not kept in a file beside it.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// RFC 9112 §4: `HTTP-version SP status-code SP [ reason-phrase ] CRLF`, with the valid custom phrase or the canonical one.
    #[test]
    fn rfc9112_4_status_line_is_exact(case in any_case()) {
        let r = run(&case)?;
        prop_assert_eq!(
            String::from_utf8_lossy(&r.message.status_line),
            String::from_utf8_lossy(&r.expected.status_line)
        );
        prop_assert_eq!(r.message.code, case.status);
    }

    /// RFC 9112 §5 (RFC 9110 §5.2, RFC 9110 §5.3): every field the application set comes back in order with its exact value, framing fields as the encoder documents.
    #[test]
    fn rfc9112_5_fields_come_back_in_order_with_exact_values(case in any_case()) {
        let r = run(&case)?;
        prop_assert_eq!(&r.message.fields, &r.expected.fields);
    }

    /// RFC 9112 §6.3: every body reads back whole by the RFC 9112 §6.3 rules, and nothing follows the message.
    #[test]
    fn rfc9112_6_3_every_body_reads_back_whole_and_nothing_after(case in any_case()) {
        let r = run(&case)?;
        prop_assert_eq!(r.message.framing.kind(), r.expected.framing);
        prop_assert!(r.message.body == r.expected.body, "body differs");
        if r.message.framing == Framing::Close {
            // Rule 8: the close ends the body, so the connection must close.
            prop_assert_eq!(r.after, AfterResponse::Close);
        } else {
            prop_assert_eq!(r.message.len, r.bytes.len(), "bytes after the message");
        }
        if let Framing::Length(len) = r.message.framing {
            prop_assert_eq!(len, r.expected.body.len());
        }
    }

    /// RFC 9110 §15.2, RFC 9110 §15.3.5, RFC 9110 §15.4.5: 1xx, 204 and 304 carry no content and the encoder adds no body framing.
    #[test]
    fn rfc9110_15_1xx_204_304_carry_no_content_or_framing(
        case in case_of(
            prop_oneof![100u16..200, Just(204), Just(304)],
            any::<bool>(),
            prop::bool::weighted(0.2),
            any::<bool>(),
        )
    ) {
        let r = run(&case)?;
        prop_assert_eq!(r.message.head_len, r.bytes.len(), "bytes after the head");
        let given = |name: &HeaderName| case.fields.iter().any(|(n, _)| n == name);
        let informational = case.status < 200;
        // Only what the application itself set (kept by the documented rules) appears.
        // No 1xx or 204 carries Content-Length or Transfer-Encoding (RFC 9110 §8.6,
        // RFC 9112 §6.1); a 304 only the application's own Content-Length.
        prop_assert!(!has_field(&r.message.fields, "transfer-encoding"));
        let cl = has_field(&r.message.fields, "content-length");
        prop_assert!(!cl || (case.status == 304 && given(&CONTENT_LENGTH)));
        prop_assert!(!informational || !cl);
        prop_assert_eq!(r.after, r.expected.after);
    }

    /// RFC 9112 §7.1: chunk sizes are bare hex, one chunk per non-empty piece, and the body ends with exactly `0\r\n\r\n`.
    #[test]
    fn rfc9112_7_1_chunk_sizes_are_bare_hex_and_the_last_chunk_ends_it(
        case in case_of(200u16..=599, Just(false), Just(false), Just(true))
            .prop_filter("has content", |c| has_content(c.status) && c.status != 205)
    ) {
        let r = run(&case)?;
        let Framing::Chunked(sizes) = &r.message.framing else {
            return Err(TestCaseError::fail(format!("not chunked: {:?}", r.message.framing)));
        };
        let Body::Stream(pieces) = &case.body else { unreachable!() };
        let mut want: Vec<Vec<u8>> = pieces
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| format!("{:x}", p.len()).into_bytes())
            .collect();
        want.push(b"0".to_vec());
        let sizes: Vec<Vec<u8>> = sizes.iter().map(|s| s.to_ascii_lowercase()).collect();
        prop_assert_eq!(sizes, want);
        prop_assert!(r.bytes.ends_with(b"\r\n0\r\n\r\n"));
        prop_assert_eq!(r.message.len, r.bytes.len());
    }

    /// RFC 9110 §5.6.7, RFC 9110 §6.6.1: the encoder's Date is the IMF-fixdate of the time given, once, only on final responses without the application's own.
    #[test]
    fn rfc9110_5_6_7_date_is_the_imf_fixdate_of_the_time_given(case in any_case()) {
        let r = run(&case)?;
        let dates: Vec<&Vec<u8>> = r.message.fields.iter()
            .filter(|(n, _)| n == "date").map(|(_, v)| v).collect();
        let given: Vec<Vec<u8>> = case.fields.iter().filter(|(n, _)| n == DATE)
            .map(|(_, v)| trim_ows(v.as_bytes()).to_vec()).collect();
        match case.date {
            Some((secs, nanos)) if case.status >= 200 && given.is_empty() => {
                prop_assert_eq!(dates.len(), 1);
                let want = u64::try_from(secs).unwrap_or(0).min(LAST_SECOND);
                let shown = imf_fixdate_second(dates[0]).map_err(TestCaseError::fail)?;
                prop_assert_eq!(shown, want, "{:?}", (secs, nanos));
                prop_assert_eq!(case.http_date().unwrap().second(), want);
            }
            _ => {
                let dates: Vec<Vec<u8>> = dates.into_iter().cloned().collect();
                prop_assert_eq!(dates, given);
            }
        }
    }

    /// RFC 9112 §9.3, RFC 9112 §9.6: the Connection field tells the client exactly what the connection does next.
    #[test]
    fn rfc9112_9_3_connection_field_matches_what_the_connection_does(case in any_case()) {
        let r = run(&case)?;
        prop_assert_eq!(r.after, r.expected.after);
        if case.status < 200 {
            prop_assert_eq!(r.after == AfterResponse::Upgrade, case.status == 101);
        } else {
            prop_assert_eq!(persists(&r.message, case.http10), r.after == AfterResponse::KeepAlive);
            // RFC 9112 §9.6: a server that sends `close` must close after the response.
            if lists(&r.message.fields, "connection", "close") {
                prop_assert!(r.after.must_close());
            }
            let connections = r.message.fields.iter().filter(|(n, _)| n == "connection").count();
            prop_assert!(connections <= 1, "{} Connection fields", connections);
        }
    }

    /// RFC 9112 §6.1, RFC 9112 §6.2: no Transfer-Encoding to an HTTP/1.0 client, never with Content-Length, in final responses.
    #[test]
    fn rfc9112_6_1_no_transfer_encoding_for_http10_or_beside_content_length(case in any_case()) {
        let r = run(&case)?;
        if case.status >= 200 {
            let te = has_field(&r.message.fields, "transfer-encoding");
            let cl = has_field(&r.message.fields, "content-length");
            prop_assert!(!(te && case.http10), "Transfer-Encoding to an HTTP/1.0 client");
            prop_assert!(!(te && cl), "Transfer-Encoding with Content-Length");
            if te {
                let values: Vec<Vec<u8>> = r.message.fields.iter()
                    .filter(|(n, _)| n == "transfer-encoding").map(|(_, v)| v.clone()).collect();
                prop_assert_eq!(values, vec![b"chunked".to_vec()]);
            }
        }
    }

    /// RFC 9112 §9.3 (RFC 9112 §9.3.2 pipelining): the same response encoded twice into one buffer reads back as two messages in sequence.
    #[test]
    fn rfc9112_9_3_two_responses_in_one_buffer_read_back_in_sequence(case in any_case()) {
        let response = case.response();
        let mut dst = BytesMut::new();
        let first_after = encode_into(&case, &response, &mut dst);
        let one = dst.len();
        let second_after = encode_into(&case, &response, &mut dst);
        prop_assert_eq!(first_after, second_after);
        let first = read_message(&dst, case.head).map_err(TestCaseError::fail)?;
        if first.framing == Framing::Close {
            // A close-delimited body takes the rest of the connection: nothing can follow.
            prop_assert_eq!(first_after, AfterResponse::Close);
            return Ok(());
        }
        prop_assert_eq!(first.len, one);
        let second = read_message(&dst[first.len..], case.head).map_err(TestCaseError::fail)?;
        prop_assert!(first == second, "the second message differs");
        prop_assert_eq!(first.len + second.len, dst.len());
    }

    /// RFC 9110 §9.3.2, RFC 9110 §8.6: a HEAD answer has the GET answer's head (or the application's Content-Length) and no body.
    #[test]
    fn rfc9110_9_3_2_head_answer_has_the_get_head_and_no_body(
        case in case_of(status(), any::<bool>(), Just(true), any::<bool>())
    ) {
        let head = run(&case)?;
        let get = run(&Case { head: false, ..case.clone() })?;
        prop_assert_eq!(head.message.head_len, head.bytes.len(), "body bytes after a HEAD head");
        prop_assert_eq!(head.after, get.after);
        let caller_length = case.fields.iter().any(|(n, _)| n == CONTENT_LENGTH);
        if case.is_stream() || !caller_length || !has_content(case.status) || case.status == 205 {
            prop_assert_eq!(
                String::from_utf8_lossy(&head.bytes),
                String::from_utf8_lossy(&get.bytes[..get.message.head_len])
            );
        } else {
            let without_length = |fields: &Fields| -> Fields {
                fields.iter().filter(|(n, _)| n != "content-length").cloned().collect()
            };
            prop_assert_eq!(without_length(&head.message.fields), without_length(&get.message.fields));
            let kept: Vec<Vec<u8>> = case.fields.iter().filter(|(n, _)| n == CONTENT_LENGTH)
                .map(|(_, v)| trim_ows(v.as_bytes()).to_vec()).collect();
            let sent: Vec<Vec<u8>> = head.message.fields.iter()
                .filter(|(n, _)| n == "content-length").map(|(_, v)| v.clone()).collect();
            prop_assert_eq!(sent, kept);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fixed cases and disagreements
// ---------------------------------------------------------------------------------------

fn encode_bytes(version: Version, keep_alive: bool, response: &Response<Vec<u8>>) -> Vec<u8> {
    let mut dst = BytesMut::new();
    ResponseEncoder::new(version, keep_alive).encode(response, &mut dst);
    dst.to_vec()
}

fn response_of(
    status: u16,
    fields: &[(&'static str, &'static str)],
    body: &[u8],
) -> Response<Vec<u8>> {
    let mut response = Response::new(body.to_vec());
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for &(name, value) in fields {
        response
            .headers_mut()
            .append(name, HeaderValue::from_static(value));
    }
    response
}

/// RFC 9110 §5.6.7: the encoder's Date at the edges of its range is a valid IMF-fixdate.
#[test]
fn rfc9110_5_6_7_date_edges_are_imf_fixdates() {
    for (secs, want) in [
        (0, 0),
        (-1, 0),
        (784_111_777, 784_111_777),
        (951_782_400, 951_782_400),
        (4_107_542_399, 4_107_542_399),
        (LAST_SECOND as i64, LAST_SECOND),
        (LAST_SECOND as i64 + 1, LAST_SECOND),
    ] {
        let date = HttpDate::from(system_time(secs, 999_999_999));
        assert_eq!(imf_fixdate_second(date.as_bytes()), Ok(want), "{date:?}");
    }
    assert_eq!(
        imf_fixdate_second(b"Sun, 06 Nov 1994 08:49:37 GMT"),
        Ok(784_111_777)
    );
    assert!(imf_fixdate_second(b"Mon, 06 Nov 1994 08:49:37 GMT").is_err());
    assert!(imf_fixdate_second(b"Tue, 29 Feb 2100 00:00:00 GMT").is_err());
}

/// RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in any response with a status code of 1xx (Informational) or 204 (No Content)."
#[test]
fn rfc9110_8_6_no_content_length_in_a_204() {
    let bytes = encode_bytes(
        Version::HTTP_11,
        true,
        &response_of(204, &[("content-length", "0")], b""),
    );
    let message = read_message(&bytes, false).unwrap();
    assert!(
        !has_field(&message.fields, "content-length"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
}

/// RFC 9112 §6.1: "A server MUST NOT send a Transfer-Encoding header field in any response with a status code in the range of 1xx (Informational) or of 204 (No Content)."
#[test]
fn rfc9112_6_1_no_transfer_encoding_or_content_length_in_a_1xx() {
    let bytes = encode_bytes(
        Version::HTTP_11,
        true,
        &response_of(
            103,
            &[("transfer-encoding", "chunked"), ("content-length", "5")],
            b"",
        ),
    );
    let message = read_message(&bytes, false).unwrap();
    assert!(
        !has_field(&message.fields, "transfer-encoding")
            && !has_field(&message.fields, "content-length"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
}

/// RFC 9110 §15.3.6: "a server MUST NOT generate content in a 205 response."
#[test]
fn rfc9110_15_3_6_no_content_in_a_205() {
    let bytes = encode_bytes(Version::HTTP_11, true, &response_of(205, &[], b"x"));
    let message = read_message(&bytes, false).unwrap();
    assert!(
        message.body.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
}

/// RFC 9112 §2.2, RFC 9112 §6.2, RFC 9112 §6.3, RFC 9112 §7.1: the reference reader itself refuses what a server must not write.
#[test]
fn rfc9112_6_3_reference_reader_refuses_what_a_server_must_not_write() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
    let message = read_message(ok, false).unwrap();
    assert_eq!(message.body, b"abcdefghijklmnopqrstuvwxyz");
    assert_eq!(message.len, ok.len());
    let refused: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n01\r\nx\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 1\r\nx\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\r\nx\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n00\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nA: b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n",
    ];
    for bytes in refused {
        assert!(
            read_message(bytes, false).is_err(),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    // RFC 9112 §6.3 rule 1: a HEAD answer ends with its head whatever its fields say.
    let head = read_message(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true).unwrap();
    assert_eq!((head.framing, head.len), (Framing::None, 38));
}
