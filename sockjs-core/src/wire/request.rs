//! Incremental HTTP/1.x request decoder.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};

use super::framing::{Body, Framing};
use super::names::field_name;
use super::tokens::{is_tchar, lists_token};
use super::{Limits, ResponseEncoder, WireError};
use crate::swar;

/// What [`RequestDecoder::decode`] produced.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "Request is the common case; boxing it would allocate per request"
)]
pub enum Decoded {
    /// The client sent `Expect: 100-continue` and the body has not fully
    /// arrived yet: write [`CONTINUE_RESPONSE`](super::CONTINUE_RESPONSE),
    /// then keep reading and decoding. Reported at most once per request.
    Continue,
    /// A complete request, body included.
    Request(DecodedRequest),
}

/// A complete request and what it means for the connection.
#[derive(Debug)]
pub struct DecodedRequest {
    /// Method, target, version (1.0 or 1.1), header fields and the whole body.
    pub request: Request<Bytes>,
    /// Whether the client wants the connection kept open after the response:
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive` (and no `close`).
    pub keep_alive: bool,
    /// Whether this is an upgrade request: an HTTP/1.1 request whose `Connection` lists
    /// `upgrade` and that has an `Upgrade` field (an HTTP/1.0 request's is ignored:
    /// RFC 9110 §7.8). Bytes after it stay in the buffer for the upgraded protocol.
    pub upgrade: bool,
    /// Whether an HTTP/1.1 client sent `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl DecodedRequest {
    /// The request's HTTP version ([`Version::HTTP_10`] or [`Version::HTTP_11`]; a later
    /// minor version of HTTP/1 reads as HTTP/1.1).
    pub fn version(&self) -> Version {
        self.request.version()
    }

    /// A [`ResponseEncoder`] set up for this request: its version, its
    /// keep-alive decision, and no body for `HEAD`. An upgrade request's answer other
    /// than `101` says `Connection: close`: the bytes after its head may belong to the
    /// protocol it asked for, so the connection cannot go on as HTTP.
    pub fn response_encoder(&self) -> ResponseEncoder {
        ResponseEncoder::new(self.version(), self.keep_alive && !self.upgrade)
            .with_head_request(self.request.method() == Method::HEAD)
    }
}

/// Decodes HTTP/1.0 and HTTP/1.1 requests from a byte buffer, one at a time.
///
/// Append received bytes to a [`BytesMut`] and call [`decode`](Self::decode)
/// until it returns `Ok(None)`. Each decoded request consumes exactly its own
/// bytes, so pipelined requests come out one per call and bytes after an
/// upgrade request are left untouched. Empty lines before a request line are
/// skipped.
///
/// Bodies are framed by `Content-Length` or `Transfer-Encoding: chunked`
/// (extensions and trailers accepted and ignored); with neither, the body is
/// empty. `Host` is required in HTTP/1.1 (an HTTP/1.0 request may leave it out), must be a
/// host and port, and may not come twice, as RFC 9112 §3.2 requires; an absolute-form
/// target's authority takes its place (RFC 9112 §3.2.2). Every error is final: answer it with
/// [`WireError::encode_refusal`] (with no content for a `HEAD` request:
/// [`asks_head`](RequestDecoder::asks_head)) and close the connection.
#[derive(Debug)]
pub struct RequestDecoder {
    limits: Limits,
    state: State,
    /// The target of a request whose body failed (see
    /// [`target`](RequestDecoder::target)); boxed, as it is rare.
    failed_target: Option<Box<Uri>>,
    /// Whether the request on which decoding failed asked for `HEAD` (see
    /// [`asks_head`](RequestDecoder::asks_head)).
    failed_head: bool,
}

#[derive(Debug)]
enum State {
    /// Looking for the end of a head; `scanned` bytes hold no terminator, and `skipped`
    /// bytes of empty lines came before it (they count toward `max_head_bytes`).
    Head { scanned: usize, skipped: usize },
    /// Head consumed, body being received, of at most `limit` bytes.
    Body {
        head: Box<Head>,
        body: Body,
        limit: usize,
        continue_reported: bool,
    },
    /// A fatal error was reported.
    Failed(WireError),
}

#[derive(Debug)]
struct Head {
    request: Request<()>,
    keep_alive: bool,
    upgrade: bool,
    expect_continue: bool,
}

impl Head {
    fn complete(self, body: Bytes) -> DecodedRequest {
        DecodedRequest {
            request: self.request.map(|()| body),
            keep_alive: self.keep_alive,
            upgrade: self.upgrade,
            expect_continue: self.expect_continue,
        }
    }
}

impl Default for RequestDecoder {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl RequestDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            state: State::Head {
                scanned: 0,
                skipped: 0,
            },
            failed_target: None,
            failed_head: false,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the decoder is between requests (no head consumed yet).
    ///
    /// At end of input, a connection is cleanly idle when this is true and
    /// the buffer is empty.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head { .. })
    }

    /// Decode the next request, or the next step of one, from `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed. Consumes the bytes it
    /// decodes and nothing after them. Once it returns an error it returns
    /// the same error forever.
    ///
    /// Between calls, `buf` must hold what it held after the last one with the connection's
    /// next bytes appended: the decoder remembers how far it has searched a head or a line
    /// not ended yet, so that bytes arriving one at a time are each searched once.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, WireError> {
        self.decode_limited(buf, |_| usize::MAX)
    }

    /// [`decode`](Self::decode), with a body limit of each request's own within
    /// [`Limits::max_body_bytes`]: `body_limit` is asked, with the request's target, once
    /// for each request that has a body, when its head is in (a server with several
    /// services answers the bound of the one the target goes to), and a body declared or
    /// sent past it fails as one past the decoder's limit ([`WireError::BodyTooLarge`]). A
    /// declared length past it fails at the head, before any [`Decoded::Continue`] invites
    /// the client to send the body; a chunked body, as its chunks pass it.
    pub fn decode_limited(
        &mut self,
        buf: &mut BytesMut,
        body_limit: impl FnOnce(&Uri) -> usize,
    ) -> Result<Option<Decoded>, WireError> {
        if let State::Failed(err) = self.state {
            return Err(err);
        }
        // Read before the step consumes the head: a head it then refuses (no Host, too
        // long) was still a HEAD request, whose answer has no content.
        let head_line = matches!(self.state, State::Head { .. }) && starts_with_head(buf);
        let result = self.step(buf, body_limit);
        if let Err(err) = result {
            let failed = std::mem::replace(&mut self.state, State::Failed(err));
            self.failed_head = head_line;
            if let State::Body { head, .. } = failed {
                // Its body failed (its chunks, its size): the request went somewhere.
                self.failed_target = Some(Box::new(head.request.uri().clone()));
                self.failed_head = head.request.method() == Method::HEAD;
            }
        }
        result
    }

    fn step(
        &mut self,
        buf: &mut BytesMut,
        body_limit: impl FnOnce(&Uri) -> usize,
    ) -> Result<Option<Decoded>, WireError> {
        let limits = self.limits;
        if let State::Head { scanned, skipped } = &mut self.state {
            let Some(end) = find_head_end(buf, scanned, skipped, &limits)? else {
                return Ok(None);
            };
            *scanned = 0;
            *skipped = 0;
            let head = buf.split_to(end).freeze();
            // The head's faults first; its body's size is checked after them.
            let (head, body) = parse_head(&head, &limits)?;
            let limit = match body {
                Body::Length(0) => 0,
                _ => body_limit(head.request.uri()).min(limits.max_body_bytes),
            };
            if let Body::Length(len) = body {
                if len > limit {
                    self.failed_target = Some(Box::new(head.request.uri().clone()));
                    return Err(WireError::BodyTooLarge);
                }
                // Most requests arrive whole: hand them out without parking the head.
                if buf.len() >= len {
                    return Ok(Some(Decoded::Request(
                        head.complete(buf.split_to(len).freeze()),
                    )));
                }
            }
            self.state = State::Body {
                head: Box::new(head),
                body,
                limit,
                continue_reported: false,
            };
        }
        let State::Body {
            head,
            body,
            limit,
            continue_reported,
        } = &mut self.state
        else {
            return Ok(None);
        };
        let complete = match body {
            Body::Length(len) => buf.len() >= *len,
            Body::Chunked(chunked) => {
                let limits = Limits {
                    max_body_bytes: *limit,
                    ..limits
                };
                chunked.decode(buf, &limits)?
            }
        };
        if !complete {
            if head.expect_continue && !*continue_reported {
                *continue_reported = true;
                return Ok(Some(Decoded::Continue));
            }
            return Ok(None);
        }
        let State::Body { head, body, .. } = std::mem::replace(
            &mut self.state,
            State::Head {
                scanned: 0,
                skipped: 0,
            },
        ) else {
            return Ok(None);
        };
        let body = match body {
            Body::Length(len) => buf.split_to(len).freeze(),
            Body::Chunked(mut chunked) => chunked.take_body(),
        };
        Ok(Some(Decoded::Request(head.complete(body))))
    }

    /// The target of the request whose body is being read (its head in, its body still
    /// coming), or, once decoding has failed on a request's body (too large, malformed
    /// chunks), of that request: where a server counts its answer, as the request's
    /// service's rather than one that reached no service. `None` between requests, and
    /// after a failure before a head was read whole.
    pub fn target(&self) -> Option<&Uri> {
        match &self.state {
            State::Body { head, .. } => Some(head.request.uri()),
            State::Failed(_) => self.failed_target.as_deref(),
            State::Head { .. } => None,
        }
    }

    /// Whether the request whose body is being read, or the one decoding failed on, asked
    /// for `HEAD`: its answer, a refusal too, then carries no content (RFC 9110 §9.3.2).
    /// A refused head counts as `HEAD` when its request line begins with that method,
    /// whatever else is wrong with it.
    pub fn asks_head(&self) -> bool {
        match &self.state {
            State::Body { head, .. } => head.request.method() == Method::HEAD,
            State::Failed(_) => self.failed_head,
            State::Head { .. } => false,
        }
    }

    /// Bytes of request body the decoder itself holds (chunked bodies only;
    /// `Content-Length` bodies stay in the caller's buffer until complete).
    pub fn buffered_body(&self) -> usize {
        match &self.state {
            State::Body {
                body: Body::Chunked(chunked),
                ..
            } => chunked.buffered(),
            _ => 0,
        }
    }
}

/// Whether `buf`, past the empty lines [`find_head_end`] skips before a request line
/// (`CRLF` or `LF` each), begins with the method `HEAD` (methods are case-sensitive,
/// RFC 9110 §9.1).
fn starts_with_head(mut buf: &[u8]) -> bool {
    loop {
        if let Some(rest) = buf.strip_prefix(b"\r\n") {
            buf = rest;
        } else if let Some(rest) = buf.strip_prefix(b"\n") {
            buf = rest;
        } else {
            return buf.starts_with(b"HEAD ");
        }
    }
}

/// Find the end of the head (just past the empty line), skipping empty lines
/// before it (counted in `skipped`). Fails once `max_head_bytes` pass without one, the
/// empty lines before it included: a client sending nothing but empty lines is refused
/// as one sending an endless head, not read for ever.
fn find_head_end(
    buf: &mut BytesMut,
    scanned: &mut usize,
    skipped: &mut usize,
    limits: &Limits,
) -> Result<Option<usize>, WireError> {
    if *scanned == 0 {
        loop {
            if buf.starts_with(b"\r\n") {
                buf.advance(2);
                *skipped += 2;
            } else if buf.starts_with(b"\n") {
                buf.advance(1);
                *skipped += 1;
            } else {
                break;
            }
        }
    }
    let room = limits.max_head_bytes.saturating_sub(*skipped);
    if room == 0 {
        return Err(WireError::HeadTooLarge);
    }
    if *scanned == 0 && buf[..] == b"\r"[..] {
        return Ok(None);
    }
    let window = &buf[..buf.len().min(room)];
    let mut from = scanned.saturating_sub(2);
    while let Some(i) = next_newline(window, from) {
        match window.get(i + 1..) {
            Some([b'\n', ..]) => return Ok(Some(i + 2)),
            Some([b'\r', b'\n', ..]) => return Ok(Some(i + 3)),
            _ => {}
        }
        from = i + 1;
    }
    if buf.len() >= room {
        // RFC 9112 §3: a request line that alone fills the bound, after its method, is a
        // target longer than this server parses: 414, where the fields' excess is 431.
        let request_line = !window.contains(&b'\n') && window.contains(&b' ');
        return Err(if request_line {
            WireError::UriTooLong
        } else {
            WireError::HeadTooLarge
        });
    }
    *scanned = window.len();
    Ok(None)
}

/// The first `\n` in `bytes` at or after `from`. A head has a line break every few dozen
/// bytes, so the scan goes eight bytes at a time rather than a vector block at a time.
fn next_newline(bytes: &[u8], from: usize) -> Option<usize> {
    swar::position(bytes, from, |word| swar::equal(word, b'\n'), |b| b == b'\n')
}

/// Header fields a head is parsed into on the stack. A head with more (allowed when
/// [`Limits::max_headers`] is higher) is parsed again into a heap buffer: rare, and bounded
/// by the head's own size.
const INLINE_FIELDS: usize = 64;

/// Parse a complete head (ending with its empty line) into a request and
/// its body framing.
///
/// httparse takes only `HTTP/1.0` and `HTTP/1.1`; a head it refuses for its version is
/// read again here, to answer as RFC 9112 §3 and RFC 9110 §2.5 ask: a later minor version
/// of HTTP/1 is served as HTTP/1.1, another version in the grammar of RFC 9112 §2.3 gets
/// 505, and a request line that names no version in that grammar gets 400.
fn parse_head(head: &Bytes, limits: &Limits) -> Result<(Head, Body), WireError> {
    match parse_fields(head, limits) {
        Err(WireError::UnsupportedVersion) => match request_line_version(head) {
            LineVersion::LaterMinor(at) => {
                let mut as_http_11 = BytesMut::from(&head[..]);
                as_http_11[at] = b'1';
                parse_fields(&as_http_11.freeze(), limits)
            }
            LineVersion::Other => Err(WireError::UnsupportedVersion),
            LineVersion::Malformed => Err(WireError::MalformedHead),
        },
        parsed => parsed,
    }
}

/// What a request line httparse refused for its version names.
#[derive(Debug, PartialEq, Eq)]
enum LineVersion {
    /// `HTTP/1.`DIGIT past `1.1`: the index of its minor digit in the head.
    LaterMinor(usize),
    /// `HTTP/`DIGIT`.`DIGIT of another major version.
    Other,
    /// No `method SP request-target SP HTTP-version` at all.
    Malformed,
}

/// Reads the request line's version (RFC 9112 §3: `method SP request-target SP
/// HTTP-version`, single spaces; RFC 9112 §2.3: `HTTP-version = HTTP-name "/" DIGIT "."
/// DIGIT`).
fn request_line_version(head: &[u8]) -> LineVersion {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return LineVersion::Malformed;
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) || target.is_empty() {
        return LineVersion::Malformed;
    }
    match *version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9'] => {
            // Past the method, the target and their two spaces, then `HTTP/1.`.
            LineVersion::LaterMinor(method.len() + target.len() + 2 + 7)
        }
        // httparse refused this `HTTP/1.0` or `HTTP/1.1` for what came before it.
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', _] => LineVersion::Malformed,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            LineVersion::Other
        }
        _ => LineVersion::Malformed,
    }
}

/// [`parse_head`] for the versions httparse takes.
fn parse_fields(head: &Bytes, limits: &Limits) -> Result<(Head, Body), WireError> {
    let mut inline = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; INLINE_FIELDS];
    let room = limits.max_headers.min(INLINE_FIELDS);
    match parse_head_into(head, &mut inline[..room]) {
        Err(WireError::TooManyHeaders) if limits.max_headers > INLINE_FIELDS => {
            // A field line takes at least three bytes (`a:` and its line end).
            let most = limits.max_headers.min(head.len() / 3 + 1);
            let mut fields = Vec::new();
            fields.resize_with(most, MaybeUninit::uninit);
            parse_head_into(head, &mut fields)
        }
        parsed => parsed,
    }
}

fn parse_head_into<'b>(
    head: &'b Bytes,
    fields: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<(Head, Body), WireError> {
    let mut parsed = httparse::Request::new(&mut []);
    match parsed.parse_with_uninit_headers(head, fields) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        Ok(_) => return Err(WireError::MalformedHead),
        Err(httparse::Error::TooManyHeaders) => return Err(WireError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(WireError::UnsupportedVersion),
        Err(_) => return Err(WireError::MalformedHead),
    }
    let method = parsed
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(WireError::MalformedHead)?;
    let target = parsed.path.ok_or(WireError::MalformedHead)?;
    // A fragment is no part of a request-target (RFC 9112 §3.2): the URI parser would drop
    // it, and the path routed on would not be the one sent.
    if target.contains('#') {
        return Err(WireError::InvalidTarget);
    }
    let uri = Uri::from_maybe_shared(head.slice_ref(target.as_bytes()))
        .map_err(|_| WireError::InvalidTarget)?;
    // RFC 9112 §3.2.3-3.2.4: the authority form is CONNECT's, and its only one, and `*` is
    // OPTIONS's; another method's would be routed on an empty path (a root-mounted
    // service's greeting).
    let authority_form = uri.scheme().is_none() && !target.starts_with('/') && target != "*";
    let fits = if method == Method::CONNECT {
        authority_form
    } else if target == "*" {
        method == Method::OPTIONS
    } else {
        !authority_form
    };
    if !fits {
        return Err(WireError::InvalidTarget);
    }
    // RFC 9112 §3.2.2: an absolute-form target's authority is the request's host, in place of
    // the Host field, so that what a proxy routed on is what the application reads.
    // RFC 9110 §4.2.1: an empty host is invalid; user information is no host either.
    let authority = match (uri.scheme(), uri.authority()) {
        (Some(_), Some(authority)) => {
            let authority = authority.as_str();
            let no_host = authority.is_empty() || authority.starts_with(':');
            if no_host || !is_host_value(authority.as_bytes()) {
                return Err(WireError::InvalidTarget);
            }
            Some(HeaderValue::from_str(authority).map_err(|_| WireError::InvalidTarget)?)
        }
        _ => None,
    };
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(WireError::UnsupportedVersion),
    };
    let mut headers = HeaderMap::try_with_capacity(parsed.headers.len())
        .map_err(|_| WireError::TooManyHeaders)?;
    // The connection's tokens, read as the fields go by rather than looked up after.
    let (mut close, mut keep_alive_token, mut upgrade_token) = (false, false, false);
    let (mut upgrade_field, mut expect_continue) = (false, false);
    let mut framing = Framing::default();
    let mut host = false;
    for field in parsed.headers.iter() {
        let name = field_name(field.name.as_bytes()).map_err(|_| WireError::MalformedHead)?;
        if name == CONNECTION {
            close |= lists_token(field.value, "close");
            keep_alive_token |= lists_token(field.value, "keep-alive");
            upgrade_token |= lists_token(field.value, "upgrade");
        } else if name == EXPECT {
            expect_continue |= lists_token(field.value, "100-continue");
        } else if name == UPGRADE {
            upgrade_field = true;
        } else if name == CONTENT_LENGTH {
            framing.content_length(field.value);
        } else if name == TRANSFER_ENCODING {
            framing.transfer_encoding(field.value);
        } else if name == HOST {
            if host {
                return Err(WireError::DuplicateHost);
            }
            if !is_host_value(field.value) {
                return Err(WireError::InvalidHost);
            }
            host = true;
        }
        let value = HeaderValue::from_maybe_shared(head.slice_ref(field.value))
            .map_err(|_| WireError::MalformedHead)?;
        headers
            .try_append(name, value)
            .map_err(|_| WireError::TooManyHeaders)?;
    }

    if version == Version::HTTP_11 && !host {
        return Err(WireError::MissingHost);
    }
    if let Some(authority) = authority {
        headers
            .try_insert(HOST, authority)
            .map_err(|_| WireError::TooManyHeaders)?;
    }
    let body = framing.body(version)?;
    let keep_alive = match version {
        Version::HTTP_10 => !close && keep_alive_token,
        _ => !close,
    };
    // RFC 9110 §7.8: an `Upgrade` in an HTTP/1.0 request is ignored (a proxy may have
    // passed it on from a later hop's request); the connection goes on as HTTP.
    let upgrade = version == Version::HTTP_11 && upgrade_token && upgrade_field;
    let expect_continue = version == Version::HTTP_11 && expect_continue;

    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    let head = Head {
        request,
        keep_alive,
        upgrade,
        expect_continue,
    };
    Ok((head, body))
}

/// RFC 3986 §2.3: unreserved characters.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §2.2: sub-delims.
fn sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Whether `bytes` is made of bytes `allowed` takes and percent-encoded octets
/// (RFC 3986 §2.1).
fn pct_encoded_or(bytes: &[u8], allowed: impl Fn(u8) -> bool) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) =>
            {
                i += 3;
            }
            b if allowed(b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// What may stand between an IP-literal's brackets: an IPv6 address, one with a zone id
/// (RFC 6874: `%25` and unreserved or percent-encoded bytes), or an IPvFuture
/// (RFC 3986 §3.2.2: `v`, hex digits, `.`, then unreserved, sub-delims or `:`).
fn is_ip_literal(inside: &[u8]) -> bool {
    if let Some(future) = inside
        .strip_prefix(b"v")
        .or_else(|| inside.strip_prefix(b"V"))
    {
        let Some(dot) = future.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, rest) = (&future[..dot], &future[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !rest.is_empty()
            && rest
                .iter()
                .all(|&b| unreserved(b) || sub_delim(b) || b == b':');
    }
    let (address, zone) = match inside.windows(3).position(|w| w == b"%25") {
        Some(at) => (&inside[..at], Some(&inside[at + 3..])),
        None => (inside, None),
    };
    let zone_ok = zone.is_none_or(|zone| !zone.is_empty() && pct_encoded_or(zone, unreserved));
    zone_ok && std::str::from_utf8(address).is_ok_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
}

/// Whether `value` is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP
/// literal in brackets (IPv6, with RFC 6874's zone id, or IPvFuture) or a registered name
/// or IPv4 address (letters, digits, `-._~`, sub-delimiters, `%` with two hex digits),
/// then maybe a colon and digits. Empty is allowed (a target without an authority). What a
/// proxy or a log could read differently is not: white space, `@`, `/`, `?`, `#`, quotes,
/// a second colon, a bracket out of place, controls, non-ASCII bytes.
fn is_host_value(value: &[u8]) -> bool {
    let port_ok = |rest: &[u8]| match rest {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if let Some(literal) = value.strip_prefix(b"[") {
        let Some(end) = literal.iter().position(|&b| b == b']') else {
            return false;
        };
        let (inside, rest) = (&literal[..end], &literal[end + 1..]);
        return is_ip_literal(inside) && port_ok(rest);
    }
    let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
    let (name, rest) = value.split_at(end);
    pct_encoded_or(name, |b| unreserved(b) || sub_delim(b)) && port_ok(rest)
}

#[cfg(test)]
mod tests {
    use super::next_newline;

    /// The word-at-a-time scan against a byte-by-byte one: every start, every place of one or
    /// two line breaks, every length around the word size, beside bytes that could disturb
    /// the borrow (`\t` and `\v` are 0x09 and 0x0b, `\x8a` has 0x0a in its low bits).
    #[test]
    fn next_newline_finds_the_first_line_break_exactly() {
        for filler in [b'a', b'\t', 0x0b, 0x8a, 0x00, 0xff] {
            for len in 0..=24 {
                for first in 0..=len {
                    for second in first..=len {
                        let mut bytes = vec![filler; len];
                        for at in [first, second] {
                            if let Some(b) = bytes.get_mut(at) {
                                *b = b'\n';
                            }
                        }
                        for from in 0..=len + 1 {
                            let expected = bytes
                                .iter()
                                .enumerate()
                                .skip(from)
                                .find(|&(_, &b)| b == b'\n')
                                .map(|(i, _)| i);
                            assert_eq!(next_newline(&bytes, from), expected, "{bytes:?} {from}");
                        }
                    }
                }
            }
        }
    }
}
