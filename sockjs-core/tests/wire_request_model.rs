//! The request decoder (`wire::RequestDecoder`) against a reference reading of RFC 9112
//! written in this file, from the RFC's grammar and rules rather than from the decoder.
//!
//! Requests are generated as parts (request line, field lines in any order and case, bodies
//! framed by `Content-Length` or by the chunked coding with extensions and trailers,
//! `Expect`, `Connection`, `Upgrade`), pipelined one to three to a buffer, sometimes with one
//! or two faults injected into the last one, then serialised. The bytes are read by
//! `reference` (the model) and by the decoder, fed whole, one byte at a time and in random
//! pieces. Both must agree on every request (method, target, version, fields, body and the
//! connection flags), on where each one ends, on `100 Continue`, and on the error that stops
//! the connection; the decoder's outcome must not depend on how the bytes were split.
//!
//! Where the RFC lets the server choose, the model follows the decoder's documentation and
//! says so in a `DOC:` comment. Where the decoder departs from the RFC, the generators leave
//! those shapes out and the minimal bytes are kept as ignored tests at the end of the file.
//!
//! Error precedence is not set by the RFC; the model checks in the decoder's order: the head's
//! size; the request line then each field line, in order (a line past `max_headers` is 431
//! once it is read); the request-target; `Host`; the framing fields; the body.

use std::net::Ipv6Addr;

use bytes::BytesMut;
use http::{StatusCode, Version};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::string::string_regex;
use proptest::test_runner::Config;
use sockjs_core::wire::{Decoded, Limits, RequestDecoder, WireError};

// ---------------------------------------------------------------------------------------
// Byte classes: RFC 9110 §5.6.2 (token), RFC 9110 §5.5 (field values), RFC 3986 (URIs).
// ---------------------------------------------------------------------------------------

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

fn is_vchar(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// What a field value may hold: field-vchar (VCHAR, obs-text), SP and HTAB.
fn is_field_byte(b: u8) -> bool {
    is_vchar(b) || b >= 0x80 || is_ws(b)
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ws(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

fn is_sub_delim(b: u8) -> bool {
    b"!$&'()*+,;=".contains(&b)
}

fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || b == b':' || b == b'@'
}

/// Only `allowed` bytes and pct-encoded triplets (RFC 3986 §2.1).
fn uri_chars(s: &[u8], allowed: impl Fn(u8) -> bool) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if !s
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else if allowed(s[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// The model: a reading of a byte stream of pipelined requests.
// ---------------------------------------------------------------------------------------

/// One request, as the decoder should hand it out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Req {
    method: String,
    uri: String,
    version: Version,
    /// Lowercase name and value without its OWS. Compared after a stable sort by name:
    /// RFC 9110 §5.3 makes the order of lines with one name significant, not the order
    /// across names (which `http::HeaderMap` does not keep).
    fields: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    keep_alive: bool,
    upgrade: bool,
    expect_continue: bool,
}

impl Req {
    fn canonical(mut self) -> Req {
        self.fields.sort_by(|a, b| a.0.cmp(&b.0));
        self
    }
}

/// How the model's reading of a stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Between requests; the bytes the decoder keeps (none, or a lone CR of a line end).
    Idle(Vec<u8>),
    /// Inside a request: its head was read or not; if read, whether it expects 100-continue;
    /// the bytes the decoder holds, when known (a head's, or a Content-Length body's).
    Pending {
        head_read: bool,
        expects: bool,
        held: Option<Vec<u8>>,
    },
    /// The error that ends the connection, and the same about the request it is in.
    Error {
        err: WireError,
        head_read: bool,
        expects: bool,
    },
}

#[derive(Debug)]
struct Reading {
    /// Each request with the offsets just past its head and just past its body.
    requests: Vec<(Req, usize, usize)>,
    end: End,
}

/// The model's reading of `input`: requests one after another, each starting right where
/// the one before ended (RFC 9112 §9.3.2: pipelining).
fn reference(input: &[u8], limits: &Limits) -> Reading {
    let mut at = 0;
    let mut requests = Vec::new();
    loop {
        // RFC 9112 §2.2: empty lines (CRLF, or LF) before a request-line are ignored. DOC:
        // they count toward the head's `max_head_bytes`, so that a client sending nothing
        // else is refused (431) as one sending an endless head.
        let start = at;
        loop {
            if input[at..].starts_with(b"\r\n") {
                at += 2;
            } else if input[at..].starts_with(b"\n") {
                at += 1;
            } else {
                break;
            }
        }
        let room = limits.max_head_bytes.saturating_sub(at - start);
        if room == 0 {
            return Reading {
                requests,
                end: End::Error {
                    err: WireError::HeadTooLarge,
                    head_read: false,
                    expects: false,
                },
            };
        }
        let rest = &input[at..];
        if rest.is_empty() || rest == b"\r" {
            return Reading {
                requests,
                end: End::Idle(rest.to_vec()),
            };
        }
        match read_request(rest, room, limits) {
            Ok((req, head, len)) => {
                requests.push((req, at + head, at + len));
                at += len;
            }
            Err(end) => return Reading { requests, end },
        }
    }
}

/// What a head says once read.
struct Head {
    req: Req,
    framing: Framing,
}

enum Framing {
    Length(usize),
    Chunked,
}

/// One request at the start of `input`, whose head may take `head_room` bytes: the
/// request, its head's length and its whole length; or how the reading ends inside it.
fn read_request(
    input: &[u8],
    head_room: usize,
    limits: &Limits,
) -> Result<(Req, usize, usize), End> {
    let error = |err| End::Error {
        err,
        head_read: false,
        expects: false,
    };
    // RFC 9112 §2.1: the head is everything up to the first empty line. DOC: it is bounded by
    // `max_head_bytes` (less the empty lines before it), refused with 431 once that many
    // bytes came without its end (RFC 6585 §5 names 431 for header fields too large); with
    // 414 if those bytes are all of a request line past its method (RFC 9112 §3: a target
    // longer than the server parses).
    let (head_len, lines) = match head_lines(input) {
        Some((len, lines)) if len <= head_room => (len, lines),
        _ if input.len() >= head_room => {
            let window = &input[..head_room];
            let target = !window.contains(&b'\n') && window.contains(&b' ');
            return Err(error(if target {
                WireError::UriTooLong
            } else {
                WireError::HeadTooLarge
            }));
        }
        _ => {
            return Err(End::Pending {
                head_read: false,
                expects: false,
                held: Some(input.to_vec()),
            });
        }
    };
    let Head { mut req, framing } = read_head(&lines, limits).map_err(error)?;
    let (head_read, expects) = (true, req.expect_continue);
    let rest = &input[head_len..];
    let body_len = match framing {
        // RFC 9112 §6.2: that many bytes.
        Framing::Length(n) if rest.len() >= n => {
            req.body = rest[..n].to_vec();
            n
        }
        Framing::Length(_) => {
            return Err(End::Pending {
                head_read,
                expects,
                held: Some(rest.to_vec()),
            });
        }
        Framing::Chunked => match chunked(rest, limits) {
            Ok(Some((body, len))) => {
                req.body = body;
                len
            }
            Ok(None) => {
                return Err(End::Pending {
                    head_read,
                    expects,
                    held: None,
                });
            }
            Err(err) => {
                return Err(End::Error {
                    err,
                    head_read,
                    expects,
                });
            }
        },
    };
    Ok((req, head_len, head_len + body_len))
}

/// RFC 9112 §2.1, RFC 9112 §2.2: the lines of a head up to the first empty one, each ended
/// by LF with one CR before it dropped (a bare LF is accepted as a line end, as RFC 9112 §2.2
/// allows; DOC: the decoder does). The head's length and its lines; `None` without an empty
/// line yet.
fn head_lines(input: &[u8]) -> Option<(usize, Vec<&[u8]>)> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, &b) in input.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = &input[start..i];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Some((i + 1, lines));
        }
        lines.push(line);
        start = i + 1;
    }
    None
}

fn read_head(lines: &[&[u8]], limits: &Limits) -> Result<Head, WireError> {
    let (method, target, version) = request_line(lines[0])?;
    let mut fields = Vec::new();
    for (i, line) in lines[1..].iter().enumerate() {
        fields.push(field_line(line).ok_or(WireError::MalformedHead)?);
        if i >= limits.max_headers {
            // RFC 6585 §5: 431 for too many fields.
            return Err(WireError::TooManyHeaders);
        }
    }
    let uri = request_target(&method, target).ok_or(WireError::InvalidTarget)?;
    // RFC 9112 §3.2: 400 for more than one Host, an invalid one, or none in HTTP/1.1.
    let mut host = false;
    for (name, value) in &fields {
        if name == "host" {
            if host {
                return Err(WireError::DuplicateHost);
            }
            if host_port(value).is_none() {
                return Err(WireError::InvalidHost);
            }
            host = true;
        }
    }
    if version == Version::HTTP_11 && !host {
        return Err(WireError::MissingHost);
    }
    authority_as_host(&mut fields, &method, target);
    let framing = framing(&fields, version, limits)?;
    // RFC 9112 §9.3: persistence. RFC 9110 §7.8: Upgrade comes with the `upgrade` option,
    // and is ignored in an HTTP/1.0 request.
    // RFC 9110 §10.1.1: a 100-continue expectation in HTTP/1.0 is ignored.
    let close = lists(&fields, "connection", "close");
    let keep_alive =
        !close && (version == Version::HTTP_11 || lists(&fields, "connection", "keep-alive"));
    let upgrade = version == Version::HTTP_11
        && lists(&fields, "connection", "upgrade")
        && fields.iter().any(|(n, _)| n == "upgrade");
    let expect_continue = version == Version::HTTP_11 && lists(&fields, "expect", "100-continue");
    Ok(Head {
        req: Req {
            method,
            uri,
            version,
            fields,
            body: Vec::new(),
            keep_alive,
            upgrade,
            expect_continue,
        },
        framing,
    })
}

/// RFC 9112 §3: `method SP request-target SP HTTP-version` and nothing else (the decoder
/// does not take the leniency RFC 9112 §3 allows of other whitespace as separators).
fn request_line(line: &[u8]) -> Result<(String, &[u8], Version), WireError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WireError::MalformedHead);
    };
    if !is_token(method) || target.is_empty() || !target.iter().all(|&b| is_vchar(b)) {
        return Err(WireError::MalformedHead);
    }
    let version = match version {
        b"HTTP/1.1" => Version::HTTP_11,
        b"HTTP/1.0" => Version::HTTP_10,
        // RFC 9110 §2.5: a later minor version of a major version the server implements is
        // processed as the highest minor version it conforms to (a SHOULD, which it takes).
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => {
            Version::HTTP_11
        }
        // RFC 9112 §2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT. RFC 9110 §15.6.6: 505
        // for a version the server will not serve: every other major version.
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(WireError::UnsupportedVersion);
        }
        _ => return Err(WireError::MalformedHead),
    };
    Ok((
        String::from_utf8_lossy(method).into_owned(),
        target,
        version,
    ))
}

/// RFC 9112 §5: `field-name ":" OWS field-value OWS`: the name lowercased and the value
/// without its OWS, or `None`. A name followed by whitespace is no token, so RFC 9112 §5.1's
/// 400 for whitespace before the colon follows; so does a line that starts with whitespace:
/// obs-fold (RFC 9112 §5.2 lets the server refuse it with 400) or whitespace right after
/// the start-line (RFC 9112 §2.2 lets it refuse the message).
fn field_line(line: &[u8]) -> Option<(String, Vec<u8>)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
    (is_token(name) && value.iter().all(|&b| is_field_byte(b))).then(|| {
        (
            String::from_utf8_lossy(name).to_ascii_lowercase(),
            value.to_vec(),
        )
    })
}

/// Whether a field named `name` lists `token` (RFC 9110 §5.6.1 lists; tokens compared
/// without regard to case).
fn lists(fields: &[(String, Vec<u8>)], name: &str, token: &str) -> bool {
    fields.iter().filter(|(n, _)| n == name).any(|(_, v)| {
        v.split(|&b| b == b',')
            .any(|t| trim_ows(t).eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// RFC 9112 §3.2: the request-target in the form its method allows, as the decoder's `Uri`
/// prints it (an absolute-form without a path gets "/", RFC 9110 §4.2.3).
fn request_target(method: &str, target: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(target).ok()?.to_owned();
    if method == "CONNECT" {
        // RFC 9112 §3.2.3: authority-form = uri-host ":" port, and only for CONNECT.
        return (host_port(target) == Some(true)).then_some(text);
    }
    if target == b"*" {
        // RFC 9112 §3.2.4: asterisk-form, only for a server-wide OPTIONS.
        return (method == "OPTIONS").then_some(text);
    }
    if target.first() == Some(&b'/') {
        // RFC 9112 §3.2.1: origin-form = absolute-path [ "?" query ].
        return path_and_query(target).then_some(text);
    }
    // RFC 9112 §3.2.2: absolute-form; the ones generated here are `scheme "://" authority
    // path-abempty [ "?" query ]`.
    let colon = target.iter().position(|&b| b == b':')?;
    let scheme = &target[..colon];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let rest = target[colon + 1..].strip_prefix(b"//")?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let tail_ok = tail.is_empty() || (tail[0] == b'/' && path_and_query(tail));
    // RFC 9110 §4.2.1: an http URI with an empty host is invalid.
    let host = !authority.is_empty() && !authority.starts_with(b":");
    (scheme_ok && host && host_port(authority).is_some() && tail_ok).then(|| {
        if tail.is_empty() {
            format!("{text}/")
        } else {
            text
        }
    })
}

/// RFC 9112 §3.2.2: the origin server ignores the Host field of an absolute-form request
/// (one `request_target` took) and uses the target's authority: what lies between `://` and
/// the path or query.
fn authority_as_host(fields: &mut Vec<(String, Vec<u8>)>, method: &str, target: &[u8]) {
    if method == "CONNECT" || target == b"*" || target.first() == Some(&b'/') {
        return;
    }
    let Some(colon) = target.iter().position(|&b| b == b':') else {
        return;
    };
    let Some(rest) = target[colon + 1..].strip_prefix(b"//") else {
        return;
    };
    let end = rest.iter().position(|&b| b == b'/' || b == b'?');
    fields.retain(|(name, _)| name != "host");
    fields.push((
        "host".to_owned(),
        rest[..end.unwrap_or(rest.len())].to_vec(),
    ));
}

/// RFC 3986 §3.3, RFC 3986 §3.4: `"/" *( segment "/" )` then maybe `"?" query`.
fn path_and_query(s: &[u8]) -> bool {
    let (path, query) = match s.iter().position(|&b| b == b'?') {
        Some(q) => (&s[..q], &s[q + 1..]),
        None => (s, &[][..]),
    };
    path.first() == Some(&b'/')
        && uri_chars(path, |b| is_pchar(b) || b == b'/')
        && uri_chars(query, |b| is_pchar(b) || b == b'/' || b == b'?')
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2, RFC 3986 §3.2.3): `Some(whether
/// a colon and port follow)`, or `None` if the value is not one.
fn host_port(value: &[u8]) -> Option<bool> {
    let (host_ok, rest) = if let Some(literal) = value.strip_prefix(b"[") {
        let close = literal.iter().position(|&b| b == b']')?;
        (ip_literal(&literal[..close]), &literal[close + 1..])
    } else {
        let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        // A reg-name (an IPv4address is one too).
        let name = &value[..end];
        (
            uri_chars(name, |b| is_unreserved(b) || is_sub_delim(b)),
            &value[end..],
        )
    };
    let port = match rest {
        [] => Some(false),
        [b':', digits @ ..] if digits.iter().all(u8::is_ascii_digit) => Some(true),
        _ => None,
    };
    port.filter(|_| host_ok)
}

/// What an IP-literal's brackets hold (RFC 3986 §3.2.2): an IPv6address, one with a zone
/// (RFC 6874 §2: `"%25" ZoneID`), or an IPvFuture.
fn ip_literal(inner: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = inner {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (hex, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !hex.is_empty()
            && hex.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    let (address, zone) = match inner.windows(3).position(|w| w == b"%25") {
        Some(at) => (&inner[..at], Some(&inner[at + 3..])),
        None => (inner, None),
    };
    let zone_ok = match zone {
        Some(zone) => !zone.is_empty() && uri_chars(zone, is_unreserved),
        None => true,
    };
    zone_ok && std::str::from_utf8(address).is_ok_and(|a| a.parse::<Ipv6Addr>().is_ok())
}

/// RFC 9112 §6.1, RFC 9112 §6.3: the body's length from the framing fields.
fn framing(
    fields: &[(String, Vec<u8>)],
    version: Version,
    limits: &Limits,
) -> Result<Framing, WireError> {
    // RFC 9112 §6.3 (5): Content-Length lines and list elements must all be valid and the
    // same. DOC: an empty list element is invalid (RFC 9110 §5.6.1.2 would let it be skipped).
    let mut length: Option<&[u8]> = None;
    for (_, value) in fields.iter().filter(|(n, _)| n == "content-length") {
        for element in value.split(|&b| b == b',') {
            let digits = trim_ows(element);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(WireError::InvalidContentLength);
            }
            let first = digits
                .iter()
                .position(|&b| b != b'0')
                .unwrap_or(digits.len() - 1);
            let number = &digits[first..];
            if length.is_some_and(|l| l != number) {
                return Err(WireError::InvalidContentLength);
            }
            length = Some(number);
        }
    }
    let mut coded = false;
    let mut codings = Vec::new();
    for (_, value) in fields.iter().filter(|(n, _)| n == "transfer-encoding") {
        coded = true;
        for coding in value.split(|&b| b == b',').map(trim_ows) {
            if !coding.is_empty() {
                codings.push(coding.to_ascii_lowercase());
            }
        }
    }
    if coded {
        // RFC 9112 §6.3 (3): both fields present: handled as an error (400).
        if length.is_some() {
            return Err(WireError::AmbiguousBodyLength);
        }
        // RFC 9112 §6.3 (4): chunked not last in a request: 400.
        if codings.last().map(Vec::as_slice) != Some(b"chunked") {
            return Err(WireError::InvalidTransferEncoding);
        }
        // RFC 9112 §6.1: a coding the server does not understand: 501.
        if codings.iter().any(|c| c != b"chunked") {
            return Err(WireError::UnsupportedTransferEncoding);
        }
        // RFC 9112 §6.1: chunked applied more than once; Transfer-Encoding in HTTP/1.0
        // ("MUST treat the message as if the framing is faulty").
        if codings.len() > 1 || version == Version::HTTP_10 {
            return Err(WireError::InvalidTransferEncoding);
        }
        return Ok(Framing::Chunked);
    }
    match length {
        // DOC: 413 for a body over `max_body_bytes`, from the head alone.
        Some(n) => match std::str::from_utf8(n)
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if n <= limits.max_body_bytes => Ok(Framing::Length(n)),
            _ => Err(WireError::BodyTooLarge),
        },
        // RFC 9112 §6.3 (6): no framing field: no body.
        None => Ok(Framing::Length(0)),
    }
}

/// The longest chunk-size line (its line end included) the decoder reads (DOC: 4096 bytes,
/// never more than `max_head_bytes`).
const SIZE_LINE: usize = 4096;

/// How many of a size line's leading hex digits count: all but its leading zeros, and at least
/// the last digit (`0` is a size). The rest of the line is ignored, and bounded as a whole.
fn significant_digits(line: &[u8]) -> usize {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let zeros = line
        .iter()
        .take(digits.saturating_sub(1))
        .take_while(|&&b| b == b'0')
        .count();
    digits - zeros
}

/// RFC 9112 §7.1: a chunked body at the start of `input`: the data and how many bytes it
/// took; `None` if it is not complete yet.
///
/// DOC choices: lines end with CRLF (a bare LF is refused, which RFC 9112 §7.1 permits as
/// its grammar says CRLF); a size line longer than `SIZE_LINE`, and chunk extensions and the
/// sizes' leading zeros (all but a last digit) over `max_head_bytes` in all, are 400 (RFC 9112 §7.1.1 asks for some bound and a 4xx); the
/// trailer section is bounded by `max_head_bytes` (431); the data by `max_body_bytes`
/// (413), checked at each size line.
fn chunked(input: &[u8], limits: &Limits) -> Result<Option<(Vec<u8>, usize)>, WireError> {
    let mut at = 0;
    let mut body = Vec::new();
    let mut ignored = 0usize;
    let bound = SIZE_LINE.min(limits.max_head_bytes);
    loop {
        let Some(line) = crlf_line(input, &mut at, bound, WireError::MalformedChunk)? else {
            return Ok(None);
        };
        // chunk-size = 1*HEXDIG, then chunk-ext.
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || !chunk_ext(&line[digits..]) {
            return Err(WireError::MalformedChunk);
        }
        ignored += line.len() - significant_digits(line);
        if ignored > limits.max_head_bytes {
            return Err(WireError::MalformedChunk);
        }
        // RFC 9112 §7.1: sizes may be large hexadecimal numerals: no overflow.
        let size = line[..digits].iter().fold(0u128, |acc, &b| {
            let digit = (b as char).to_digit(16).map_or(0, u128::from);
            acc.saturating_mul(16).saturating_add(digit)
        });
        if (body.len() as u128).saturating_add(size) > limits.max_body_bytes as u128 {
            return Err(WireError::BodyTooLarge);
        }
        if size == 0 {
            break;
        }
        // chunk-data CRLF.
        let size = usize::try_from(size).map_err(|_| WireError::BodyTooLarge)?;
        let Some(data) = input.get(at..at + size) else {
            return Ok(None);
        };
        body.extend_from_slice(data);
        at += size;
        match input.get(at..at + 2) {
            Some(b"\r\n") => at += 2,
            Some(_) => return Err(WireError::MalformedChunk),
            None if input.get(at).is_some_and(|&b| b != b'\r') => {
                return Err(WireError::MalformedChunk);
            }
            None => return Ok(None),
        }
    }
    // RFC 9112 §7.1.2: trailer-section = *( field-line CRLF ), then CRLF.
    let mut budget = limits.max_head_bytes;
    loop {
        let Some(line) = crlf_line(input, &mut at, budget, WireError::HeadTooLarge)? else {
            return Ok(None);
        };
        budget -= line.len() + 2;
        if line.is_empty() {
            return Ok(Some((body, at)));
        }
        if field_line(line).is_none() {
            return Err(WireError::MalformedChunk);
        }
    }
}

/// The next line of a chunked body, without its CRLF: at most `bound` bytes with its end
/// (`too_long` once that many came without one), a bare LF refused.
fn crlf_line<'a>(
    input: &'a [u8],
    at: &mut usize,
    bound: usize,
    too_long: WireError,
) -> Result<Option<&'a [u8]>, WireError> {
    let rest = &input[*at..];
    if rest.is_empty() {
        return Ok(None);
    }
    match rest.iter().position(|&b| b == b'\n') {
        Some(lf) if lf < bound => {
            if lf == 0 || rest[lf - 1] != b'\r' {
                return Err(WireError::MalformedChunk);
            }
            *at += lf + 1;
            Ok(Some(&rest[..lf - 1]))
        }
        _ if rest.len() >= bound => Err(too_long),
        _ => Ok(None),
    }
}

/// RFC 9112 §7.1.1: `*( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`, with
/// chunk-ext-val = token / quoted-string (RFC 9110 §5.6.4).
fn chunk_ext(ext: &[u8]) -> bool {
    let skip_ws = |mut i: usize| {
        while ext.get(i).copied().is_some_and(is_ws) {
            i += 1;
        }
        i
    };
    let token_end = |mut i: usize| {
        while ext.get(i).copied().is_some_and(is_tchar) {
            i += 1;
        }
        i
    };
    let mut i = 0;
    while i < ext.len() {
        i = skip_ws(i);
        if ext.get(i) != Some(&b';') {
            return false;
        }
        let name = skip_ws(i + 1);
        i = token_end(name);
        if i == name {
            return false;
        }
        let eq = skip_ws(i);
        if ext.get(eq) == Some(&b'=') {
            let value = skip_ws(eq + 1);
            i = if ext.get(value) == Some(&b'"') {
                match quoted_string_end(ext, value) {
                    Some(end) => end,
                    None => return false,
                }
            } else {
                token_end(value)
            };
            if i == value {
                return false;
            }
        } else if eq < ext.len() && ext[eq] != b';' {
            return false;
        }
    }
    true
}

/// Just past the quoted-string (RFC 9110 §5.6.4) that starts at `start`.
fn quoted_string_end(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *s.get(i + 1)?;
                if !is_field_byte(escaped) {
                    return None;
                }
                i += 2;
            }
            b if is_field_byte(b) => i += 1,
            _ => return None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The decoder, fed in pieces.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Continue,
    Request(Req),
}

#[derive(Debug)]
struct Run {
    events: Vec<Event>,
    error: Option<WireError>,
    leftover: Vec<u8>,
    idle: bool,
}

fn summary(decoded: sockjs_core::wire::DecodedRequest) -> Req {
    let request = &decoded.request;
    Req {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        version: request.version(),
        fields: request
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body: request.body().to_vec(),
        keep_alive: decoded.keep_alive,
        upgrade: decoded.upgrade,
        expect_continue: decoded.expect_continue,
    }
    .canonical()
}

/// Feed `input` up to each of `cuts` (increasing, the last one `input.len()`), decoding all
/// that can be after each.
fn run(limits: Limits, input: &[u8], cuts: &[usize]) -> Result<Run, TestCaseError> {
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut fed = 0;
    for &cut in cuts {
        buf.extend_from_slice(&input[fed..cut]);
        fed = cut;
        loop {
            match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(Decoded::Continue)) => {
                    prop_assert_ne!(events.last(), Some(&Event::Continue), "two 100s in a row");
                    events.push(Event::Continue);
                }
                Ok(Some(Decoded::Request(req))) => events.push(Event::Request(summary(req))),
                Err(err) => {
                    // Errors are final: the same one again, whatever comes next.
                    buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                    prop_assert_eq!(decoder.decode(&mut buf).err(), Some(err));
                    prop_assert!(!decoder.is_idle());
                    return Ok(Run {
                        events,
                        error: Some(err),
                        leftover: Vec::new(),
                        idle: false,
                    });
                }
            }
        }
    }
    Ok(Run {
        events,
        error: None,
        leftover: buf.to_vec(),
        idle: decoder.is_idle(),
    })
}

/// The events the model predicts when the bytes arrive up to each of `cuts`: a request with
/// `Expect: 100-continue` is preceded by `Continue` when its head was whole at a cut where
/// its body was not.
fn expected_events(reading: &Reading, cuts: &[usize]) -> Vec<Event> {
    let mut events = Vec::new();
    for (req, head_end, end) in &reading.requests {
        let first = cuts.iter().copied().find(|&c| c >= *head_end);
        if req.expect_continue && first.is_some_and(|c| c < *end) {
            events.push(Event::Continue);
        }
        events.push(Event::Request(req.clone().canonical()));
    }
    if let End::Pending {
        head_read: true,
        expects: true,
        ..
    } = reading.end
    {
        events.push(Event::Continue);
    }
    events
}

/// Sorted cut points from proptest's indices, ending with `len`.
fn cut_points(indices: &[Index], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = indices.iter().map(|i| i.index(len + 1)).collect();
    cuts.push(len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Decode `input` whole, one byte at a time and cut at `indices`; each must be what the
/// model reads. Returns the model's reading.
fn check(input: &[u8], limits: Limits, indices: &[Index]) -> Result<Reading, TestCaseError> {
    let reading = reference(input, &limits);
    let len = input.len();
    // One byte at a time; in 13-byte steps for the few long inputs, to keep the time down.
    let step = if len > 4096 { 13 } else { 1 };
    let mut steps: Vec<usize> = (step..len).step_by(step).collect();
    steps.push(len);
    let splits = [vec![len], steps, cut_points(indices, len)];
    let mut pending_leftover = None;
    for cuts in &splits {
        let got = run(limits, input, cuts)?;
        let mut events = got.events.clone();
        let expected = expected_events(&reading, cuts);
        match &reading.end {
            End::Error {
                err,
                head_read,
                expects,
            } => {
                prop_assert_eq!(got.error, Some(*err), "error; {} cuts", cuts.len());
                prop_assert_eq!(got.error.map(WireError::status), Some(err.status()));
                // An error in a body may come before or after the point where the 100 is due.
                if *head_read && *expects && events.last() == Some(&Event::Continue) {
                    events.pop();
                }
                prop_assert_eq!(events, expected, "events; {} cuts", cuts.len());
            }
            End::Pending {
                head_read, held, ..
            } => {
                prop_assert_eq!(got.error, None, "no error; {} cuts", cuts.len());
                prop_assert_eq!(events, expected, "events; {} cuts", cuts.len());
                prop_assert_eq!(got.idle, !head_read);
                // Nothing after the request is consumed, and what is held back does not
                // depend on the split either.
                if let Some(held) = held {
                    prop_assert_eq!(&got.leftover, held);
                }
                match &pending_leftover {
                    None => pending_leftover = Some(got.leftover),
                    Some(first) => prop_assert_eq!(first, &got.leftover),
                }
            }
            End::Idle(rest) => {
                prop_assert_eq!(got.error, None, "no error; {} cuts", cuts.len());
                prop_assert_eq!(events, expected, "events; {} cuts", cuts.len());
                prop_assert!(got.idle, "idle after the last request");
                prop_assert_eq!(&got.leftover, rest);
            }
        }
    }
    Ok(reading)
}

// ---------------------------------------------------------------------------------------
// Generated requests.
// ---------------------------------------------------------------------------------------

const CRLF: &[u8] = b"\r\n";
const LF: &[u8] = b"\n";

/// A field line as written: `name colon value eol`, the value with its OWS.
#[derive(Debug, Clone)]
struct Line {
    name: Vec<u8>,
    colon: Vec<u8>,
    value: Vec<u8>,
    eol: &'static [u8],
}

impl Line {
    fn new(name: &str, value: &[u8]) -> Line {
        Line {
            name: name.as_bytes().to_vec(),
            colon: b":".to_vec(),
            value: [b" ", value].concat(),
            eol: CRLF,
        }
    }

    fn is(&self, name: &str) -> bool {
        self.colon == b":" && self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.name);
        out.extend_from_slice(&self.colon);
        out.extend_from_slice(&self.value);
        out.extend_from_slice(self.eol);
    }
}

#[derive(Debug, Clone)]
struct Chunk {
    size: Vec<u8>,
    ext: Vec<u8>,
    size_eol: &'static [u8],
    data: Vec<u8>,
    data_end: Vec<u8>,
}

impl Chunk {
    fn new(data: &[u8]) -> Chunk {
        Chunk {
            size: format!("{:x}", data.len()).into_bytes(),
            ext: Vec::new(),
            size_eol: CRLF,
            data: data.to_vec(),
            data_end: CRLF.to_vec(),
        }
    }
}

#[derive(Debug, Clone)]
struct Chunked {
    chunks: Vec<Chunk>,
    /// The last-chunk's line: zeros and extensions.
    last: Vec<u8>,
    trailers: Vec<Line>,
    end: Vec<u8>,
}

impl Chunked {
    fn write(&self, out: &mut Vec<u8>) {
        for chunk in &self.chunks {
            out.extend_from_slice(&chunk.size);
            out.extend_from_slice(&chunk.ext);
            out.extend_from_slice(chunk.size_eol);
            out.extend_from_slice(&chunk.data);
            out.extend_from_slice(&chunk.data_end);
        }
        out.extend_from_slice(&self.last);
        out.extend_from_slice(CRLF);
        for line in &self.trailers {
            line.write(out);
        }
        out.extend_from_slice(&self.end);
    }
}

#[derive(Debug, Clone)]
enum Body {
    /// The bytes after the head (a Content-Length body, or nothing).
    Plain(Vec<u8>),
    Chunked(Chunked),
}

#[derive(Debug, Clone)]
struct Msg {
    leading: Vec<u8>,
    method: Vec<u8>,
    sp1: Vec<u8>,
    target: Vec<u8>,
    sp2: Vec<u8>,
    version: Vec<u8>,
    line_eol: &'static [u8],
    fields: Vec<Line>,
    end_eol: &'static [u8],
    body: Body,
    /// How the decoder's `Uri` prints the target.
    uri: String,
}

impl Msg {
    fn head(&self) -> Vec<u8> {
        let mut out = [
            &self.method[..],
            &self.sp1,
            &self.target,
            &self.sp2,
            &self.version,
            self.line_eol,
        ]
        .concat();
        for line in &self.fields {
            line.write(&mut out);
        }
        out.extend_from_slice(self.end_eol);
        out
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = [&self.leading[..], &self.head()].concat();
        match &self.body {
            Body::Plain(bytes) => out.extend_from_slice(bytes),
            Body::Chunked(chunked) => chunked.write(&mut out),
        }
        out
    }

    fn data(&self) -> Vec<u8> {
        match &self.body {
            Body::Plain(bytes) => bytes.clone(),
            Body::Chunked(chunked) => chunked.chunks.iter().flat_map(|c| c.data.clone()).collect(),
        }
    }

    fn http10(&self) -> bool {
        self.version == b"HTTP/1.0"
    }

    /// What the generator meant, read off the parts rather than the bytes.
    fn intent(&self) -> Req {
        let mut fields: Vec<(String, Vec<u8>)> = self
            .fields
            .iter()
            .map(|l| {
                let name = String::from_utf8_lossy(&l.name).to_ascii_lowercase();
                (name, trim_ows(&l.value).to_vec())
            })
            .collect();
        let method = String::from_utf8_lossy(&self.method).into_owned();
        authority_as_host(&mut fields, &method, &self.target);
        let version = if self.http10() {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let close = lists(&fields, "connection", "close");
        Req {
            method,
            uri: self.uri.clone(),
            version,
            keep_alive: !close && (!self.http10() || lists(&fields, "connection", "keep-alive")),
            upgrade: !self.http10()
                && lists(&fields, "connection", "upgrade")
                && fields.iter().any(|(n, _)| n == "upgrade"),
            expect_continue: !self.http10() && lists(&fields, "expect", "100-continue"),
            fields,
            body: self.data(),
        }
    }

    /// The limits this request needs: head bytes (or chunk-line, extension and trailer
    /// bytes, bounded alike), field lines, body bytes.
    fn needs(&self) -> [usize; 3] {
        // The empty lines before the request line count toward its head's bound.
        let mut head = self.leading.len() + self.head().len();
        if let Body::Chunked(chunked) = &self.body {
            let mut ignored = 0;
            let lines = chunked
                .chunks
                .iter()
                .map(|c| ([&c.size[..], &c.ext].concat(), c.size_eol.len()))
                .chain([(chunked.last.clone(), 2)]);
            for (line, eol) in lines {
                head = head.max(line.len() + eol);
                ignored += line.len() - significant_digits(&line);
            }
            let mut trailers = chunked.end.len();
            for line in &chunked.trailers {
                let mut out = Vec::new();
                line.write(&mut out);
                trailers += out.len();
            }
            head = head.max(ignored).max(trailers);
        }
        [head, self.fields.len(), self.data().len()]
    }

    fn lines_named(&self, name: &str) -> Vec<usize> {
        (0..self.fields.len())
            .filter(|&i| self.fields[i].is(name))
            .collect()
    }

    fn set_or_add(&mut self, name: &str, value: &[u8]) {
        let line = Line::new(name, value);
        match self.lines_named(name).first() {
            Some(&i) => self.fields[i] = line,
            None => self.fields.push(line),
        }
    }

    fn remove(&mut self, name: &str) {
        self.fields.retain(|l| !l.is(name));
    }

    /// Make the body chunked (an HTTP/1.1 request with a Host, if it was HTTP/1.0).
    fn make_chunked(&mut self) {
        if let Body::Plain(data) = &self.body {
            let data = data.clone();
            self.remove("content-length");
            if self.lines_named("transfer-encoding").is_empty() {
                self.fields.push(Line::new("Transfer-Encoding", b"chunked"));
            }
            if self.http10() {
                self.version = b"HTTP/1.1".to_vec();
                if self.lines_named("host").is_empty() {
                    self.fields.push(Line::new("Host", b"example.com"));
                }
            }
            self.body = Body::Chunked(Chunked {
                chunks: if data.is_empty() {
                    Vec::new()
                } else {
                    vec![Chunk::new(&data)]
                },
                last: b"0".to_vec(),
                trailers: Vec::new(),
                end: CRLF.to_vec(),
            });
        }
    }

    /// Chunked, with at least `n` chunks of data.
    fn chunks(&mut self, n: usize) -> &mut Vec<Chunk> {
        self.make_chunked();
        let Body::Chunked(chunked) = &mut self.body else {
            unreachable!("made chunked")
        };
        while chunked.chunks.len() < n {
            chunked.chunks.push(Chunk::new(b"xyz"));
        }
        &mut chunked.chunks
    }

    fn chunked(&mut self) -> &mut Chunked {
        self.make_chunked();
        let Body::Chunked(chunked) = &mut self.body else {
            unreachable!("made chunked")
        };
        chunked
    }

    /// A body framed by Content-Length (the chunked data, if it was chunked); its length.
    fn make_length(&mut self) -> usize {
        let data = self.data();
        if matches!(self.body, Body::Chunked(_)) {
            self.remove("transfer-encoding");
        }
        self.body = Body::Plain(data.clone());
        if self.lines_named("content-length").is_empty() {
            self.fields.push(Line::new(
                "Content-Length",
                data.len().to_string().as_bytes(),
            ));
        }
        data.len()
    }
}

fn eol() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![6 => Just(CRLF), 1 => Just(LF)]
}

fn ows() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(Vec::new()),
        2 => Just(b" ".to_vec()),
        1 => "[ \t]{1,3}".prop_map(String::into_bytes),
    ]
}

fn field_value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => 0x21u8..=0x7e,
        1 => Just(b' '),
        1 => Just(b'\t'),
        1 => 0x80u8..=0xff,
    ];
    (ows(), vec(byte, 0..16), ows()).prop_map(|(a, v, b)| [a, v, b].concat())
}

fn regex(pattern: &str) -> BoxedStrategy<String> {
    string_regex(pattern).expect("a valid pattern").boxed()
}

const SEGMENT: &str = "([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2}){0,6}";

fn origin() -> BoxedStrategy<String> {
    regex(&format!(
        "(/{SEGMENT}){{1,3}}(\\?([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{{2}}){{0,8}})?"
    ))
}

/// Hosts for targets: names, an IPv4 and an IPv6 address.
fn simple_host() -> BoxedStrategy<String> {
    prop_oneof![
        4 => regex("[a-z][a-z0-9-]{0,8}(\\.[a-z0-9]{1,5}){0,2}"),
        1 => Just("127.0.0.1".to_owned()),
        1 => Just("[::1]".to_owned()),
    ]
    .boxed()
}

/// Host field values: every shape of `uri-host [ ":" port ]`, the empty one too.
fn host_value() -> BoxedStrategy<String> {
    let host = prop_oneof![
        4 => regex("[a-z0-9]([a-z0-9.-]{0,10}[a-z0-9])?"),
        2 => regex("([A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2}){0,8}"),
        1 => Just("192.0.2.1".to_owned()),
        2 => select(vec![
            "[::1]",
            "[2001:db8::7]",
            "[fe80::1%25eth0]",
            "[v1.x]",
            "[::ffff:192.0.2.1]",
        ])
            .prop_map(str::to_owned),
    ];
    (host, option::of(regex("[0-9]{0,5}")))
        .prop_map(|(host, port)| match port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
        .boxed()
}

/// The method, its request-target and how `Uri` prints it.
fn request_target_for() -> BoxedStrategy<(String, String, String)> {
    let method = prop_oneof![
        6 => select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]).prop_map(str::to_owned),
        1 => Just("OPTIONS".to_owned()),
        1 => Just("CONNECT".to_owned()),
        2 => regex("[-!#$%&'*+.^_`|~0-9A-Za-z]{1,12}")
            .prop_filter("not CONNECT or OPTIONS", |m| m != "CONNECT" && m != "OPTIONS"),
    ];
    method
        .prop_flat_map(|method| {
            let target = match method.as_str() {
                "CONNECT" => (simple_host(), 1u32..=65535)
                    .prop_map(|(h, p)| {
                        let t = format!("{h}:{p}");
                        (t.clone(), t)
                    })
                    .boxed(),
                _ => {
                    let absolute = (
                        select(vec!["http", "https"]),
                        simple_host(),
                        option::of(1u32..=65535),
                        option::of(origin()),
                    )
                        .prop_map(|(scheme, host, port, path)| {
                            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                            let t = format!(
                                "{scheme}://{host}{port}{}",
                                path.clone().unwrap_or_default()
                            );
                            let uri = if path.is_some() {
                                t.clone()
                            } else {
                                format!("{t}/")
                            };
                            (t, uri)
                        });
                    let usual = prop_oneof![
                        8 => origin().prop_map(|t| (t.clone(), t)),
                        2 => absolute,
                    ];
                    if method == "OPTIONS" {
                        prop_oneof![usual, Just(("*".to_owned(), "*".to_owned()))].boxed()
                    } else {
                        usual.boxed()
                    }
                }
            };
            (Just(method), target)
        })
        .prop_map(|(method, (target, uri))| (method, target, uri))
        .boxed()
}

fn token_list(tokens: Vec<&'static str>) -> impl Strategy<Value = Vec<u8>> {
    (
        vec(select(tokens), 1..4),
        select(vec![",", ", ", " ,\t", ",,"]),
    )
        .prop_map(|(tokens, sep)| tokens.join(sep).into_bytes())
}

fn extensions() -> BoxedStrategy<Vec<u8>> {
    let bws = || prop_oneof![6 => Just(Vec::new()), 1 => "[ \t]{1,2}".prop_map(String::into_bytes)];
    let qd = prop_oneof![
        6 => prop_oneof![
            Just(0x21u8),
            0x23u8..=0x5b,
            0x5du8..=0x7e,
            Just(b' '),
            Just(b'\t'),
            0x80u8..=0xff,
        ]
            .prop_map(|b| vec![b]),
        1 => prop_oneof![0x21u8..=0x7e, Just(b' '), Just(b'\t'), 0x80u8..=0xff]
            .prop_map(|b| vec![b'\\', b]),
    ];
    let quoted = vec(qd, 0..6).prop_map(|parts| [&b"\""[..], &parts.concat(), b"\""].concat());
    let value = prop_oneof![
        regex("[-!#$%&'*+.^_`|~0-9A-Za-z]{1,6}").prop_map(String::into_bytes),
        quoted
    ];
    let one = (
        bws(),
        bws(),
        regex("[-!#$%&'*+.^_`|~0-9A-Za-z]{1,6}"),
        option::of((bws(), bws(), value)),
    )
        .prop_map(|(a, b, name, value)| {
            let mut out = [a, b";".to_vec(), b, name.into_bytes()].concat();
            if let Some((c, d, value)) = value {
                out.extend([c, b"=".to_vec(), d, value].concat());
            }
            out
        });
    prop_oneof![3 => Just(Vec::new()), 1 => vec(one, 1..3).prop_map(|e| e.concat())].boxed()
}

fn trailer() -> impl Strategy<Value = Line> {
    (
        regex("[xX]-[Tt][-!#$%&'*+.^_`|~0-9A-Za-z]{0,6}"),
        field_value(),
    )
        .prop_map(|(name, value)| Line {
            name: name.into_bytes(),
            colon: b":".to_vec(),
            value,
            eol: CRLF,
        })
}

/// A body and the framing fields for it.
fn body(http11: bool) -> BoxedStrategy<(Body, Vec<Line>)> {
    let data = || vec(any::<u8>(), 0..48);
    let none = Just((Body::Plain(Vec::new()), Vec::new()));
    let length = (data(), 0u8..4, 0usize..3).prop_map(|(data, form, zeros)| {
        let n = format!("{}{}", "0".repeat(zeros), data.len());
        let lines = match form {
            0 | 1 => vec![Line::new("Content-Length", n.as_bytes())],
            2 => vec![Line::new(
                "content-length",
                format!("{n} ,{}", data.len()).as_bytes(),
            )],
            _ => vec![
                Line::new("Content-Length", n.as_bytes()),
                Line::new("CONTENT-LENGTH", data.len().to_string().as_bytes()),
            ],
        };
        (Body::Plain(data), lines)
    });
    let chunk = (
        vec(any::<u8>(), 1..24),
        any::<bool>(),
        0usize..3,
        extensions(),
    )
        .prop_map(|(data, upper, zeros, ext)| {
            let size = if upper {
                format!("{}{:X}", "0".repeat(zeros), data.len())
            } else {
                format!("{}{:x}", "0".repeat(zeros), data.len())
            };
            Chunk {
                size: size.into_bytes(),
                ext,
                size_eol: CRLF,
                data,
                data_end: CRLF.to_vec(),
            }
        });
    let chunked = (
        vec(chunk, 0..4),
        1usize..4,
        extensions(),
        vec(trailer(), 0..3),
        select(vec![
            &b"chunked"[..],
            b"Chunked",
            b"CHUNKED",
            b" chunked ",
            b", chunked",
            b"chunked,",
        ]),
    )
        .prop_map(|(chunks, zeros, ext, trailers, te)| {
            let body = Body::Chunked(Chunked {
                chunks,
                last: [&"0".repeat(zeros).into_bytes()[..], &ext].concat(),
                trailers,
                end: CRLF.to_vec(),
            });
            (body, vec![Line::new("Transfer-Encoding", te)])
        });
    if http11 {
        prop_oneof![2 => none, 2 => length, 3 => chunked].boxed()
    } else {
        prop_oneof![1 => none, 1 => length].boxed()
    }
}

/// One valid request.
fn msg() -> BoxedStrategy<Msg> {
    let fields = |http11: bool| {
        (
            // Host: required in HTTP/1.1 (RFC 9112 §3.2), optional in HTTP/1.0.
            (
                select(vec!["Host", "host", "HOST"]),
                host_value(),
                ows(),
                prop::bool::weighted(if http11 { 1.0 } else { 0.5 }),
            ),
            prop_oneof![
                12 => vec((regex("[xX]-[-!#$%&'*+.^_`|~0-9A-Za-z]{1,10}"), field_value()), 0..5),
                // Past the 64 fields the decoder parses on the stack.
                1 => vec((regex("[xX]-[a-z0-9]{1,4}"), field_value()), 58..72),
            ],
            any::<bool>(),
            option::of(token_list(vec![
                "close",
                "keep-alive",
                "Keep-Alive",
                "upgrade",
                "Upgrade",
                "foo",
                "CLOSE",
            ])),
            any::<bool>(),
            option::of(select(vec![
                &b"100-continue"[..],
                b"100-Continue",
                b"foo, 100-continue",
            ])),
        )
            .prop_map(
                |(
                    (host_name, host, trail, with_host),
                    extra,
                    repeat,
                    connection,
                    upgrade,
                    expect,
                )| {
                    let mut lines = Vec::new();
                    if with_host {
                        lines.push(Line {
                            name: host_name.as_bytes().to_vec(),
                            colon: b":".to_vec(),
                            value: [b" ", host.as_bytes(), &trail].concat(),
                            eol: CRLF,
                        });
                    }
                    for (name, value) in &extra {
                        lines.push(Line {
                            name: name.clone().into_bytes(),
                            colon: b":".to_vec(),
                            value: value.clone(),
                            eol: CRLF,
                        });
                    }
                    // The same name again, in another case: its values keep their order.
                    if let (true, Some((name, _))) = (repeat, extra.first()) {
                        lines.push(Line::new(&name.to_ascii_uppercase(), b"again"));
                    }
                    if let Some(connection) = connection {
                        lines.push(Line::new("Connection", &connection));
                    }
                    if upgrade {
                        lines.push(Line::new("Upgrade", b"websocket"));
                    }
                    if let Some(expect) = expect {
                        lines.push(Line::new("Expect", expect));
                    }
                    lines
                },
            )
    };
    (
        request_target_for(),
        any::<bool>(),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => vec(select(vec![CRLF, LF]), 1..3).prop_map(|v| v.concat()),
        ],
    )
        .prop_flat_map(move |((method, target, uri), http11, leading)| {
            let http11 = http11 || method == "CONNECT";
            (
                Just((method, target, uri, leading, http11)),
                body(http11),
                fields(http11),
                vec(eol(), 12),
            )
                .prop_flat_map(|(start, (body, framing), mut lines, eols)| {
                    lines.extend(framing);
                    (Just((start, body, eols)), Just(lines).prop_shuffle())
                })
                .prop_map(
                    |(((method, target, uri, leading, http11), body, eols), mut lines)| {
                        for (line, eol) in lines.iter_mut().zip(eols.iter().skip(2)) {
                            line.eol = eol;
                        }
                        Msg {
                            leading,
                            method: method.into_bytes(),
                            sp1: b" ".to_vec(),
                            target: target.into_bytes(),
                            sp2: b" ".to_vec(),
                            version: if http11 {
                                b"HTTP/1.1".to_vec()
                            } else {
                                b"HTTP/1.0".to_vec()
                            },
                            line_eol: eols[0],
                            fields: lines,
                            end_eol: eols[1],
                            body,
                            uri,
                        }
                    },
                )
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------
// Faults, injected into the last request of a pipeline.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Fault {
    // Request line (RFC 9112 §3).
    MethodByte(Index, u8),
    EmptyMethod,
    TabSeparator(bool),
    DoubleSpaceBeforeTarget,
    RequestLineCtl(bool, Index, u8),
    Version(&'static str),
    BadTarget(u8, Index),
    // Field lines (RFC 9112 §5) and the head's limits.
    SpaceBeforeColon(Index, bool),
    ObsFold(Index, bool),
    ValueCtl(Index, Index, u8),
    NameByte(Index, Index, u8),
    EmptyName(Index),
    NoColon(Index),
    SqueezeFields,
    SqueezeHead,
    SqueezeRequestLine,
    // Host (RFC 9112 §3.2).
    DropHost,
    DuplicateHost(Index, bool, bool),
    InvalidHost(&'static [u8]),
    // Framing (RFC 9112 §6).
    BadContentLength(&'static [u8]),
    DifferingContentLength(bool),
    BothLengths,
    TeNotUnderstood(bool),
    TeChunkedTwice(bool),
    TeEmpty(bool),
    Http10Chunked,
    SqueezeBody,
    LengthBeyondEnd(usize),
    Truncate(Index),
    // Chunked coding (RFC 9112 §7.1).
    BadChunkSize(Index, &'static [u8]),
    SizeThenBws(Index, bool),
    ExtCtl(Index, u8),
    ChunkBareLf(Index, bool),
    DataEnd(Index, &'static [u8]),
    SizeOff(Index, bool),
    SizeOverflow(Index, usize),
    ExtTooLong(Index),
    ExtTotal(bool),
    SizeLine(Index, bool),
    Trailer(u8, Index),
    Trailers(bool),
}

/// Controls a field value cannot hold (HTAB can), LF aside: it would end the line.
fn ctl() -> impl Strategy<Value = u8> {
    prop_oneof![0u8..=8, 0x0bu8..=0x1f, Just(0x7f)]
}

/// Bytes that are no tchar, but for SP (it would split the request line), LF and CR.
fn non_tchar() -> impl Strategy<Value = u8> {
    select(b"\"(),/;<=>?@[\\]{}\t\x00\x01\x7f\x80\xff".to_vec())
}

fn request_line_fault() -> BoxedStrategy<Fault> {
    prop_oneof![
        (any::<Index>(), non_tchar()).prop_map(|(i, b)| Fault::MethodByte(i, b)),
        Just(Fault::EmptyMethod),
        any::<bool>().prop_map(Fault::TabSeparator),
        Just(Fault::DoubleSpaceBeforeTarget),
        (
            any::<bool>(),
            any::<Index>(),
            prop_oneof![ctl(), Just(b'\t'), Just(b'\r')]
        )
            .prop_map(|(t, i, b)| Fault::RequestLineCtl(t, i, b)),
        select(vec![
            "HTTP/2.0",
            "HTTP/0.9",
            "HTTP/3.0",
            "HTTP/1.2",
            "HTTP/1.9",
            "HTTP/9.9",
            "HTTP/1.1x",
            "HTTP/1.10",
            "HTTP/1.01",
            "HTTP/1.1 ",
            "HTTP/1.0\t",
            ""
        ])
        .prop_map(Fault::Version),
        (0u8..6, any::<Index>()).prop_map(|(k, i)| Fault::BadTarget(k, i)),
    ]
    .boxed()
}

fn field_fault() -> BoxedStrategy<Fault> {
    prop_oneof![
        (any::<Index>(), any::<bool>()).prop_map(|(i, t)| Fault::SpaceBeforeColon(i, t)),
        (any::<Index>(), any::<bool>()).prop_map(|(i, t)| Fault::ObsFold(i, t)),
        (
            any::<Index>(),
            any::<Index>(),
            prop_oneof![ctl(), Just(b'\r')]
        )
            .prop_map(|(i, j, b)| Fault::ValueCtl(i, j, b)),
        (
            any::<Index>(),
            any::<Index>(),
            prop_oneof![non_tchar(), Just(b' '), Just(b'\r')]
        )
            .prop_map(|(i, j, b)| Fault::NameByte(i, j, b)),
        any::<Index>().prop_map(Fault::EmptyName),
        any::<Index>().prop_map(Fault::NoColon),
        Just(Fault::SqueezeFields),
        Just(Fault::SqueezeHead),
        Just(Fault::SqueezeRequestLine),
    ]
    .boxed()
}

const INVALID_HOSTS: &[&[u8]] = &[
    b"a b",
    b"user@example.com",
    b"example.com/x",
    b"x?y",
    b"x#y",
    b"\"a\"",
    b"a:b:c",
    b"a:80x",
    b"[::1",
    b"x]",
    b"[::1]x",
    b"[::1]:8o",
    b"[]",
    b"::::",
    b"%zz",
    b"a%4",
    b"h:abc",
    b"[::1]]",
    b"ex\xc3\xa4mple.com",
    b"a\tb",
    b"a\\b",
    b"<a>",
];

fn host_fault() -> BoxedStrategy<Fault> {
    prop_oneof![
        Just(Fault::DropHost),
        (any::<Index>(), any::<bool>(), any::<bool>())
            .prop_map(|(i, same, upper)| Fault::DuplicateHost(i, same, upper)),
        select(INVALID_HOSTS.to_vec()).prop_map(Fault::InvalidHost),
    ]
    .boxed()
}

fn length_fault() -> BoxedStrategy<Fault> {
    prop_oneof![
        select(vec![
            &b"abc"[..],
            b"-1",
            b"+3",
            b"1 2",
            b"0x10",
            b"",
            b"3,",
            b",3",
            b"3,,3",
            b"1.0",
            b"\xd9\xa1",
            b"1e3"
        ])
        .prop_map(Fault::BadContentLength),
        any::<bool>().prop_map(Fault::DifferingContentLength),
        Just(Fault::BothLengths),
        any::<bool>().prop_map(Fault::TeNotUnderstood),
        any::<bool>().prop_map(Fault::TeChunkedTwice),
        any::<bool>().prop_map(Fault::TeEmpty),
        Just(Fault::Http10Chunked),
        Just(Fault::SqueezeBody),
        (1usize..20).prop_map(Fault::LengthBeyondEnd),
        any::<Index>().prop_map(Fault::Truncate),
    ]
    .boxed()
}

fn chunk_fault() -> BoxedStrategy<Fault> {
    prop_oneof![
        (
            any::<Index>(),
            select(vec![
                &b"zz"[..],
                b"-1",
                b"0x5",
                b"",
                b"+5",
                b" 5",
                b"g",
                b"5z"
            ])
        )
            .prop_map(|(i, s)| Fault::BadChunkSize(i, s)),
        (any::<Index>(), any::<bool>()).prop_map(|(i, t)| Fault::SizeThenBws(i, t)),
        (any::<Index>(), prop_oneof![ctl(), Just(b'\r')]).prop_map(|(i, b)| Fault::ExtCtl(i, b)),
        (any::<Index>(), any::<bool>()).prop_map(|(i, s)| Fault::ChunkBareLf(i, s)),
        (
            any::<Index>(),
            select(vec![&b"XX"[..], b"\r", b"\rX", b"", b" \r\n", b"\n\r"])
        )
            .prop_map(|(i, s)| Fault::DataEnd(i, s)),
        (any::<Index>(), any::<bool>()).prop_map(|(i, p)| Fault::SizeOff(i, p)),
        (any::<Index>(), 17usize..40).prop_map(|(i, n)| Fault::SizeOverflow(i, n)),
        any::<Index>().prop_map(Fault::ExtTooLong),
        any::<bool>().prop_map(Fault::ExtTotal),
        (any::<Index>(), any::<bool>()).prop_map(|(i, over)| Fault::SizeLine(i, over)),
        (0u8..8, any::<Index>()).prop_map(|(k, i)| Fault::Trailer(k, i)),
        any::<bool>().prop_map(Fault::Trailers),
        Just(Fault::SqueezeBody),
        any::<Index>().prop_map(Fault::Truncate),
    ]
    .boxed()
}

fn any_fault() -> BoxedStrategy<Fault> {
    prop_oneof![
        request_line_fault(),
        field_fault(),
        host_fault(),
        length_fault(),
        chunk_fault(),
    ]
    .boxed()
}

fn insert(v: &mut Vec<u8>, at: &Index, bytes: &[u8]) {
    let at = at.index(v.len() + 1);
    v.splice(at..at, bytes.iter().copied());
}

/// The index of one of the field lines (one added if there is none).
fn some_line(msg: &mut Msg, i: &Index) -> usize {
    if msg.fields.is_empty() {
        msg.fields.push(Line::new("X-Added", b"value"));
    }
    i.index(msg.fields.len())
}

/// Faults on the request's parts.
fn apply(msg: &mut Msg, fault: &Fault) {
    match fault {
        Fault::MethodByte(i, b) => insert(&mut msg.method, i, &[*b]),
        Fault::EmptyMethod => msg.method.clear(),
        Fault::TabSeparator(first) => {
            *(if *first { &mut msg.sp1 } else { &mut msg.sp2 }) = b"\t".to_vec()
        }
        Fault::DoubleSpaceBeforeTarget => msg.sp1 = b"  ".to_vec(),
        Fault::RequestLineCtl(in_target, i, b) => {
            insert(
                if *in_target {
                    &mut msg.target
                } else {
                    &mut msg.method
                },
                i,
                &[*b],
            );
        }
        Fault::Version(v) => {
            msg.version = v.as_bytes().to_vec();
            if v.is_empty() {
                msg.sp2.clear();
            }
        }
        Fault::BadTarget(kind, i) => {
            if msg.target.first() != Some(&b'/') {
                msg.target = b"/x".to_vec();
            }
            let query = msg.target.iter().position(|&b| b == b'?');
            match kind {
                0 | 1 => {
                    let at = 1 + i.index(msg.target.len());
                    msg.target.insert(at, if *kind == 0 { b'<' } else { b'>' });
                }
                2 => {
                    let at = 1 + i.index(query.unwrap_or(msg.target.len()));
                    msg.target.insert(at, b'`');
                }
                3 => {
                    let q = query.unwrap_or_else(|| {
                        msg.target.push(b'?');
                        msg.target.len() - 1
                    });
                    let at = q + 1 + i.index(msg.target.len() - q);
                    msg.target.insert(at, b'"');
                }
                4 => {
                    let at = 1 + i.index(msg.target.len());
                    msg.target.insert(at, b'#');
                }
                _ => msg.target[0] = b'?',
            }
        }
        Fault::SpaceBeforeColon(i, tab) => {
            let i = some_line(msg, i);
            msg.fields[i].colon = if *tab {
                b"\t:".to_vec()
            } else {
                b" :".to_vec()
            };
        }
        Fault::ObsFold(i, tab) => {
            let at = i.index(msg.fields.len() + 1);
            let value = if *tab {
                b"\tfolded".to_vec()
            } else {
                b" folded".to_vec()
            };
            msg.fields.insert(
                at,
                Line {
                    name: Vec::new(),
                    colon: Vec::new(),
                    value,
                    eol: CRLF,
                },
            );
        }
        Fault::ValueCtl(i, j, b) => {
            let i = some_line(msg, i);
            insert(&mut msg.fields[i].value, j, &[*b, b'x']);
        }
        Fault::NameByte(i, j, b) => {
            let i = some_line(msg, i);
            insert(&mut msg.fields[i].name, j, &[*b]);
        }
        Fault::EmptyName(i) => {
            let i = some_line(msg, i);
            msg.fields[i].name.clear();
        }
        Fault::NoColon(i) => {
            let at = i.index(msg.fields.len() + 1);
            msg.fields.insert(
                at,
                Line {
                    name: b"X-No-Colon".to_vec(),
                    colon: Vec::new(),
                    value: Vec::new(),
                    eol: CRLF,
                },
            );
        }
        Fault::DropHost => msg.remove("host"),
        Fault::DuplicateHost(i, same, upper) => {
            let value = match msg.lines_named("host").first() {
                Some(&h) if *same => msg.fields[h].value.clone(),
                _ => b" other.example".to_vec(),
            };
            let at = i.index(msg.fields.len() + 1);
            let name = if *upper { "HOST" } else { "host" };
            msg.fields.insert(
                at,
                Line {
                    value,
                    ..Line::new(name, b"")
                },
            );
        }
        Fault::InvalidHost(v) => msg.set_or_add("Host", v),
        Fault::BadContentLength(v) => msg.set_or_add("Content-Length", v),
        Fault::DifferingContentLength(list) => {
            let n = msg.make_length();
            if *list {
                msg.set_or_add("Content-Length", format!("{n}, {}", n + 1).as_bytes());
            } else {
                msg.fields
                    .push(Line::new("Content-Length", (n + 1).to_string().as_bytes()));
            }
        }
        Fault::BothLengths => {
            if matches!(msg.body, Body::Chunked(_)) {
                let n = msg.data().len();
                msg.fields
                    .push(Line::new("Content-Length", n.to_string().as_bytes()));
            } else {
                msg.make_length();
                msg.fields.push(Line::new("Transfer-Encoding", b"chunked"));
            }
        }
        Fault::TeNotUnderstood(alt) => {
            msg.make_chunked();
            let value: &[u8] = if *alt {
                b"x-custom ,Chunked"
            } else {
                b"gzip, chunked"
            };
            msg.set_or_add("Transfer-Encoding", value);
        }
        Fault::TeChunkedTwice(two) => {
            msg.make_chunked();
            if *two {
                msg.fields.push(Line::new("transfer-encoding", b"chunked"));
            } else {
                msg.set_or_add("Transfer-Encoding", b"chunked, chunked");
            }
        }
        Fault::TeEmpty(blank) => {
            msg.make_chunked();
            msg.set_or_add("Transfer-Encoding", if *blank { b"" } else { b" , " });
        }
        Fault::Http10Chunked => {
            msg.make_chunked();
            msg.version = b"HTTP/1.0".to_vec();
        }
        Fault::SqueezeBody => {
            if msg.data().is_empty() {
                match &mut msg.body {
                    Body::Chunked(chunked) => chunked.chunks.push(Chunk::new(b"abc")),
                    Body::Plain(_) => {
                        msg.remove("content-length");
                        msg.body = Body::Plain(b"abc".to_vec());
                        msg.fields.push(Line::new("Content-Length", b"3"));
                    }
                }
            }
        }
        Fault::LengthBeyondEnd(extra) => {
            let n = msg.make_length();
            msg.set_or_add("Content-Length", (n + extra).to_string().as_bytes());
        }
        Fault::BadChunkSize(i, s) => {
            let chunks = msg.chunks(1);
            let i = i.index(chunks.len());
            chunks[i].size = s.to_vec();
        }
        Fault::SizeThenBws(i, tab) => {
            let chunks = msg.chunks(1);
            let i = i.index(chunks.len());
            chunks[i].ext = if *tab { b"\t".to_vec() } else { b" ".to_vec() };
        }
        Fault::ExtCtl(i, b) => {
            let chunks = msg.chunks(1);
            let i = i.index(chunks.len());
            chunks[i].ext = [&b";a="[..], &[*b], b"b"].concat();
        }
        Fault::ChunkBareLf(i, size_line) => {
            let chunks = msg.chunks(1);
            let i = i.index(chunks.len());
            if *size_line {
                chunks[i].size_eol = LF;
            } else {
                chunks[i].data_end = LF.to_vec();
            }
        }
        Fault::DataEnd(i, s) => {
            let chunks = msg.chunks(1);
            let i = i.index(chunks.len());
            chunks[i].data_end = s.to_vec();
        }
        Fault::SizeOff(i, plus) => {
            let chunks = msg.chunks(1);
            let i = i.index(chunks.len());
            let len = chunks[i].data.len();
            let size = if *plus || len < 2 { len + 1 } else { len - 1 };
            chunks[i].size = format!("{size:x}").into_bytes();
        }
        Fault::SizeOverflow(i, n) => {
            let chunks = msg.chunks(1);
            let i = i.index(chunks.len());
            chunks[i].size = vec![b'f'; *n];
        }
        Fault::Trailer(kind, i) => {
            let chunked = msg.chunked();
            let mut line = Line::new("X-T", b"v");
            match kind {
                0 => {
                    line = Line {
                        colon: Vec::new(),
                        value: Vec::new(),
                        ..line
                    }
                }
                1 => line.name.clear(),
                2 => line.colon = b" :".to_vec(),
                3 => line.name.insert(0, b' '),
                4 => line.value = b" a\x01b".to_vec(),
                5 => line.eol = LF,
                6 => chunked.end = LF.to_vec(),
                _ => line.value = b" a\rb".to_vec(),
            }
            if *kind != 6 {
                let at = i.index(chunked.trailers.len() + 1);
                chunked.trailers.insert(at, line);
            }
        }
        Fault::ExtTooLong(_)
        | Fault::ExtTotal(_)
        | Fault::SizeLine(..)
        | Fault::Trailers(_)
        | Fault::SqueezeFields
        | Fault::SqueezeHead
        | Fault::SqueezeRequestLine
        | Fault::Truncate(_) => {}
    }
}

/// Faults measured against the limits the pipeline was given.
fn apply_limited(msg: &mut Msg, fault: &Fault, limits: &mut Limits) {
    let bound = SIZE_LINE.min(limits.max_head_bytes);
    match fault {
        Fault::SqueezeFields => limits.max_headers = msg.fields.len().saturating_sub(1),
        Fault::SqueezeHead => limits.max_head_bytes = msg.head().len() - 1,
        Fault::SqueezeRequestLine => {
            // The bound ends just before the request line's LF.
            let head = msg.head();
            let line = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
            limits.max_head_bytes = (msg.leading.len() + line).max(1);
        }
        Fault::SqueezeBody => limits.max_body_bytes = msg.data().len().saturating_sub(1),
        Fault::ExtTooLong(i) => {
            let chunks = msg.chunks(1);
            let i = i.index(chunks.len());
            chunks[i].ext = [&b";"[..], &vec![b'a'; limits.max_head_bytes]].concat();
        }
        Fault::ExtTotal(over) => {
            // Extensions on three chunks, each line within its bound, adding up to the limit
            // exactly, or one byte more.
            let total = limits.max_head_bytes + usize::from(*over);
            msg.chunked().last.truncate(1);
            let chunks = msg.chunks(3);
            let n = chunks.len();
            if total >= 2 * n {
                for (k, chunk) in chunks.iter_mut().enumerate() {
                    let each = total / n + usize::from(k < total % n);
                    chunk.ext = [&b";"[..], &vec![b'e'; each - 1]].concat();
                }
            }
        }
        Fault::SizeLine(i, over) => {
            // A size line of exactly its bound (leading zeros), or one byte more.
            let chunks = msg.chunks(1);
            let i = i.index(chunks.len());
            let hex = format!("{:x}", chunks[i].data.len());
            let taken = hex.len() + chunks[i].ext.len() + 2;
            let zeros = (bound + usize::from(*over)).saturating_sub(taken);
            chunks[i].size = format!("{}{hex}", "0".repeat(zeros)).into_bytes();
        }
        Fault::Trailers(over) => {
            // Trailer fields of exactly the limit, or one byte more.
            let chunked = msg.chunked();
            let mut taken = chunked.end.len();
            for line in &chunked.trailers {
                let mut out = Vec::new();
                line.write(&mut out);
                taken += out.len();
            }
            let room = (limits.max_head_bytes + usize::from(*over)).saturating_sub(taken + 9);
            chunked.trailers.push(Line::new("X-Pad", &vec![b'p'; room]));
        }
        _ => {}
    }
}

/// How much room the limits leave over what the requests need.
#[derive(Debug, Clone, Copy)]
enum Room {
    Exact,
    Slack(usize),
    Default,
}

fn room() -> impl Strategy<Value = Room> {
    prop_oneof![
        2 => Just(Room::Exact),
        4 => (1usize..300).prop_map(Room::Slack),
        1 => Just(Room::Default),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    msgs: Vec<Msg>,
    faults: Vec<Fault>,
    room: [Room; 3],
    cuts: Vec<Index>,
}

impl Case {
    /// The faults applied, the limits set, and the bytes.
    fn build(&self) -> (Vec<u8>, Limits, Vec<Msg>) {
        let mut msgs = self.msgs.clone();
        let last = msgs.len() - 1;
        for fault in &self.faults {
            apply(&mut msgs[last], fault);
        }
        let default = [
            Limits::DEFAULT.max_head_bytes,
            Limits::DEFAULT.max_headers,
            Limits::DEFAULT.max_body_bytes,
        ];
        let mut limit = [0; 3];
        for (k, slot) in limit.iter_mut().enumerate() {
            let need = msgs.iter().map(|m| m.needs()[k]).max().unwrap_or(0);
            *slot = match self.room[k] {
                Room::Exact => need,
                Room::Slack(s) => need + s,
                Room::Default => need.max(default[k]),
            };
        }
        let mut limits = Limits {
            max_head_bytes: limit[0].max(1),
            max_headers: limit[1],
            max_body_bytes: limit[2],
        };
        for fault in &self.faults {
            apply_limited(&mut msgs[last], fault, &mut limits);
        }
        let mut bytes: Vec<u8> = msgs.iter().flat_map(Msg::bytes).collect();
        let own = msgs[last].bytes().len();
        let start = bytes.len() - own;
        for fault in &self.faults {
            if let Fault::Truncate(at) = fault {
                bytes.truncate(bytes.len().min(start + at.index(own)));
            }
        }
        (bytes, limits, msgs)
    }
}

/// A pipeline of one to three requests, and `faults` faults in the last one.
fn case(faults: BoxedStrategy<Vec<Fault>>) -> impl Strategy<Value = Case> {
    (
        vec(msg(), 1..4),
        faults,
        [room(), room(), room()],
        vec(any::<Index>(), 0..6),
    )
        .prop_map(|(msgs, faults, room, cuts)| Case {
            msgs,
            faults,
            room,
            cuts,
        })
}

/// Faults from `pool`: one or two.
fn faults(pool: fn() -> BoxedStrategy<Fault>) -> BoxedStrategy<Vec<Fault>> {
    vec(pool(), 1..3).boxed()
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // This file's failures are reported, not kept in a file beside it.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// RFC 9112 §2.1, RFC 9112 §9.3.2: valid pipelined requests decode to exactly their
    /// method, target, version, fields and body, one after the other, whatever the split.
    #[test]
    fn rfc9112_2_1_valid_pipelined_requests_decode_exactly(
        case in case(Just(Vec::new()).boxed())
    ) {
        let (input, limits, msgs) = case.build();
        let reading = check(&input, limits, &case.cuts)?;
        prop_assert_eq!(&reading.end, &End::Idle(Vec::new()));
        let read: Vec<Req> = reading.requests.iter().map(|(r, _, _)| r.clone()).collect();
        let meant: Vec<Req> = msgs.iter().map(Msg::intent).collect();
        prop_assert_eq!(read, meant);
    }

    /// RFC 9112 §3: a faulty request line (method, separators, target, version) gets the
    /// model's 400 or 505 after the requests before it.
    #[test]
    fn rfc9112_3_request_line_faults_get_the_modelled_status(
        case in case(faults(request_line_fault))
    ) {
        let (input, limits, _) = case.build();
        check(&input, limits, &case.cuts)?;
    }

    /// RFC 9112 §5: faulty field lines (whitespace before the colon, obs-fold, controls,
    /// bad names) get 400; too many or too long, 431.
    #[test]
    fn rfc9112_5_field_line_faults_get_the_modelled_status(
        case in case(faults(field_fault))
    ) {
        let (input, limits, _) = case.build();
        check(&input, limits, &case.cuts)?;
    }

    /// RFC 9112 §3.2: no Host in HTTP/1.1, two of them, or an invalid one: 400.
    #[test]
    fn rfc9112_3_2_host_faults_get_400(case in case(faults(host_fault))) {
        let (input, limits, _) = case.build();
        check(&input, limits, &case.cuts)?;
    }

    /// RFC 9112 §6.3: invalid or conflicting Content-Length, Transfer-Encoding without
    /// chunked once and last, both fields, HTTP/1.0 with Transfer-Encoding, too long a body,
    /// and bodies cut short.
    #[test]
    fn rfc9112_6_3_body_length_faults_get_the_modelled_status(
        case in case(faults(length_fault))
    ) {
        let (input, limits, _) = case.build();
        check(&input, limits, &case.cuts)?;
    }

    /// RFC 9112 §7.1: faulty chunk sizes, extensions, data ends, trailers and bounds.
    #[test]
    fn rfc9112_7_1_chunked_faults_get_the_modelled_status(
        case in case(faults(chunk_fault))
    ) {
        let (input, limits, _) = case.build();
        check(&input, limits, &case.cuts)?;
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// RFC 9112 §2.2, RFC 9112 §6.3: one or two faults of any kind (request line, fields,
    /// Host, framing, chunked coding, limits, truncation) get the error the model meets first.
    #[test]
    fn rfc9112_6_3_two_faults_get_the_first_modelled_error(
        case in case(faults(any_fault))
    ) {
        let (input, limits, _) = case.build();
        check(&input, limits, &case.cuts)?;
    }
}

proptest! {
    #![proptest_config(config(160))]

    /// RFC 9112 §2.2: requests with random bytes changed, added or taken out decode to the
    /// same requests, error and leftover whatever the split, and never panic.
    #[test]
    fn rfc9112_2_2_mangled_requests_decode_the_same_whatever_the_split(
        msgs in vec(msg(), 1..3),
        edits in vec((any::<Index>(), any::<u8>(), 0u8..3), 1..4),
        cuts in vec(any::<Index>(), 0..6),
        small in any::<bool>(),
    ) {
        let mut input: Vec<u8> = msgs.iter().flat_map(Msg::bytes).collect();
        for (at, byte, op) in &edits {
            let at = at.index(input.len() + 1);
            match op {
                0 if at < input.len() => input[at] = *byte,
                2 if at < input.len() => {
                    input.remove(at);
                }
                _ => input.insert(at, *byte),
            }
        }
        let limits = if small {
            Limits { max_headers: 6, max_head_bytes: 160, max_body_bytes: 40 }
        } else {
            Limits::DEFAULT
        };
        let len = input.len();
        let requests = |run: &Run| -> Vec<Event> {
            run.events.iter().filter(|e| **e != Event::Continue).cloned().collect()
        };
        let whole = run(limits, &input, &[len])?;
        for cuts in [(1..=len).collect(), cut_points(&cuts, len)] {
            let split = run(limits, &input, &cuts)?;
            prop_assert_eq!(requests(&split), requests(&whole));
            prop_assert_eq!(split.error, whole.error);
            if whole.error.is_none() {
                prop_assert_eq!(&split.leftover, &whole.leftover);
                prop_assert_eq!(split.idle, whole.idle);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rules on their minimal bytes: each test checks the model's reading, then the decoder's.
// Where the decoder departs from the RFC, the test is ignored and says why.
// ---------------------------------------------------------------------------------------

/// Requests and the error that ends them.
type Outcome = (Vec<Req>, Option<WireError>);

/// The model's requests and error for `input` fed whole with the default limits, and the
/// decoder's.
fn both_readings(input: &[u8]) -> (Outcome, Outcome) {
    let limits = Limits::DEFAULT;
    let reading = reference(input, &limits);
    let model_error = match reading.end {
        End::Error { err, .. } => Some(err),
        _ => None,
    };
    let model = reading
        .requests
        .into_iter()
        .map(|(r, _, _)| r.canonical())
        .collect();
    let got = run(limits, input, &[input.len()]).expect("the decoder ran");
    let requests = got
        .events
        .into_iter()
        .filter_map(|e| match e {
            Event::Request(r) => Some(r),
            Event::Continue => None,
        })
        .collect();
    ((model, model_error), (requests, got.error))
}

/// Asserts that the model refuses `input` with `status`, then that the decoder does too.
fn assert_refused(input: &[u8], status: StatusCode) {
    let ((_, model), (requests, decoder)) = both_readings(input);
    let shown = String::from_utf8_lossy(input);
    assert_eq!(
        model.map(WireError::status),
        Some(status),
        "model: {shown:?}"
    );
    assert_eq!(
        decoder.map(WireError::status),
        Some(status),
        "decoder: {shown:?} gave {requests:?}"
    );
}

/// RFC 9112 §6.3: Transfer-Encoding without chunked as the final coding gets 400.
///
/// RFC 9112 §6.3 (4): "If a Transfer-Encoding header field is present in a request and the
/// chunked transfer coding is not the final encoding, the message body length cannot be
/// determined reliably; the server MUST respond with the 400 (Bad Request) status code and
/// then close the connection." Only a coding not understood before a final chunked gets
/// RFC 9112 §6.1's SHOULD 501 (`gzip, chunked`).
#[test]
fn rfc9112_6_3_transfer_encoding_not_ending_in_chunked_is_400() {
    for coding in ["chunked, gzip", "gzip", "identity"] {
        let input = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {coding}\r\n\r\n");
        assert_refused(input.as_bytes(), StatusCode::BAD_REQUEST);
    }
}

/// RFC 9110 §2.5: a request of a higher minor version of HTTP/1 is served as HTTP/1.1.
///
/// "A recipient that receives a message with a major version number that it implements and
/// a minor version number higher than what it implements SHOULD process the message as if it
/// were in the highest minor version within that major version to which the recipient is
/// conformant." As HTTP/1.1 it needs its `Host` (RFC 9112 §3.2) and keeps the connection
/// open unless told otherwise; another major version gets 505 (RFC 9110 §15.6.6).
#[test]
fn rfc9110_2_5_a_higher_minor_version_is_served_as_http_1_1() {
    for version in ["HTTP/1.2", "HTTP/1.9"] {
        let input = format!(
            "GET /a?b HTTP/1.1\r\nHost: a\r\n\r\nPUT /c {version}\r\nHost: b\r\nContent-Length: 2\r\n\r\nxyGET /d HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        let ((model, model_error), (requests, error)) = both_readings(input.as_bytes());
        assert_eq!((error, model_error), (None, None));
        assert_eq!(requests, model);
        let read: Vec<_> = requests
            .iter()
            .map(|r| (r.uri.as_str(), r.version))
            .collect();
        assert_eq!(
            read,
            [
                ("/a?b", Version::HTTP_11),
                ("/c", Version::HTTP_11),
                ("/d", Version::HTTP_11)
            ]
        );
        assert!(requests[1].keep_alive);
        assert_eq!(requests[1].body, b"xy");
    }
    assert_refused(b"GET / HTTP/1.2\r\n\r\n", StatusCode::BAD_REQUEST);
    for version in ["HTTP/2.0", "HTTP/0.9", "HTTP/3.1", "HTTP/9.9"] {
        let input = format!("GET / {version}\r\nHost: a\r\n\r\n");
        assert_refused(input.as_bytes(), StatusCode::HTTP_VERSION_NOT_SUPPORTED);
    }
}

/// RFC 9112 §3: a request-line that is not `method SP request-target SP HTTP-version` gets
/// 400, not 505.
///
/// RFC 9112 §3: "Recipients of an invalid request-line SHOULD respond with either a 400 (Bad
/// Request) error or a 301 (Moved Permanently) redirect"; 505 is for a version the server
/// does not support (RFC 9110 §15.6.6), and none of these lines names a version in the
/// grammar of RFC 9112 §2.3. httparse takes whatever follows the second space as the version
/// and refuses it when its first 8 bytes are not `HTTP/1.0` or `HTTP/1.1` (a space inside the
/// target, two before the version, a lowercase or misspelt name, a version cut short, or a
/// space after a version it does not serve), which the decoder answered with 505 before it
/// read such a line again for its version.
#[test]
fn rfc9112_3_a_request_line_without_a_valid_version_is_400() {
    for line in [
        &b"GET /a b HTTP/1.1"[..],
        b"GET /  HTTP/1.1",
        b"GET / http/1.1",
        b"GET / XTTP/1.1",
        b"GET / HTTP/1.",
        b"GET / HTTP/2.0 ",
    ] {
        let input = [line, b"\r\nHost: a\r\n\r\n"].concat();
        assert_refused(&input, StatusCode::BAD_REQUEST);
    }
}

/// RFC 9112 §3.2: a request-target outside the grammar of RFC 3986 gets 400.
///
/// RFC 9112 §3.2: origin-form = absolute-path [ "?" query ], made of pchar and `/` `?`
/// (RFC 3986 §3.3, RFC 3986 §3.4), with no fragment; "Recipients of an invalid request-line
/// SHOULD respond with either a 400 (Bad Request) error or a 301". `WireError::InvalidTarget`
/// says "not a valid URI. `400`", but the `http` crate's `Uri` lets through `"{}|\^[]` in a
/// path, `` ` `` and `{}|\^[]` in a query, non-ASCII UTF-8 and bad percent escapes, and the
/// decoder takes what it lets through (a fragment it refuses: see the test below). Low
/// severity: no framing is involved, and the path routed on is the one sent.
#[test]
#[ignore = "targets outside RFC 9112 §3.2 / RFC 3986 are accepted"]
fn rfc9112_3_2_a_target_outside_its_grammar_is_400() {
    for target in [
        &b"/{x}"[..],
        b"/a|b",
        b"/a\\b",
        b"/a^b",
        b"/a\"b",
        b"/[x]",
        b"/a?`",
        b"/a?{}",
        b"/caf\xc3\xa9",
        b"/%zz",
    ] {
        let input = [&b"GET "[..], target, b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
        assert_refused(&input, StatusCode::BAD_REQUEST);
    }
}

/// RFC 9112 §3.2: a request-target with a fragment gets 400.
///
/// A fragment is no part of any request-target form (RFC 9112 §3.2; RFC 3986 §3.5 keeps it
/// to the client). The `http` crate's `Uri` drops it without a word, so `GET /a#b` would
/// reach the application as `/a`: what it routed on would not be the target that was sent.
#[test]
fn rfc9112_3_2_a_target_with_a_fragment_is_400() {
    for target in [&b"/a#b"[..], b"/a?b#c", b"/#", b"http://a/b#c"] {
        let input = [&b"GET "[..], target, b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
        assert_refused(&input, StatusCode::BAD_REQUEST);
    }
}

/// RFC 9112 §3.2.3, RFC 9112 §3.2.4: authority-form only for CONNECT, asterisk-form only for
/// OPTIONS, and CONNECT only with authority-form.
///
/// RFC 9112 §3.2.3: "The authority-form of request-target is only used for CONNECT
/// requests"; RFC 9112 §3.2.4: "The asterisk-form of request-target is only used for a
/// server-wide OPTIONS request"; RFC 9110 §9.3.6: CONNECT's target is "only the host and
/// port number". `GET example.com:80` would be routed on an empty path.
#[test]
fn rfc9112_3_2_3_target_forms_fit_their_methods() {
    for line in [
        &b"GET example.com:80"[..],
        b"GET *",
        b"POST *",
        b"OPTIONS example.com:80",
        b"CONNECT /x",
        b"CONNECT *",
        b"CONNECT http://a/",
    ] {
        let input = [line, b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
        assert_refused(&input, StatusCode::BAD_REQUEST);
    }
}

/// RFC 9112 §3.2: a Host whose IP-literal holds no IP address gets 400.
///
/// "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request
/// message that lacks a Host header field and to any request message that contains more than
/// one Host header field line or a Host header field with an invalid field value." An
/// IP-literal holds an IPv6address, one with a `%25` zone (RFC 6874 §2), or `v` HEXDIG "."
/// (RFC 3986 §3.2.2); the decoder parses what is inside the brackets.
#[test]
fn rfc9112_3_2_a_host_ip_literal_holds_an_ip_address() {
    for host in [&b"[zz]"[..], b"[1::2::3]", b"[::1%eth0]", b"[v.x]", b"[:]"] {
        let input = [&b"GET / HTTP/1.1\r\nHost: "[..], host, b"\r\n\r\n"].concat();
        assert_refused(&input, StatusCode::BAD_REQUEST);
    }
}

/// RFC 9112 §6.3: Content-Length values that differ get 400, however long they are.
///
/// RFC 9112 §6.3 (5): an invalid Content-Length is an unrecoverable error "unless ... all
/// values in the list are the same"; "If the unrecoverable error is in a request message, the
/// server MUST respond with a 400 (Bad Request)". The decoder saturates each number at
/// `u64::MAX`, so two different numbers past it compare equal and the request gets 413 for
/// its size. It is refused and closed either way: a status code only.
#[test]
fn rfc9112_6_3_differing_content_lengths_past_u64_are_400() {
    let input = b"POST / HTTP/1.1\r\nHost: a\r\n\
        Content-Length: 99999999999999999999, 99999999999999999998\r\n\r\n";
    assert_refused(input, StatusCode::BAD_REQUEST);
}

/// RFC 9112 §7.1.2: a trailer field's name is a token.
///
/// trailer-section = *( field-line CRLF ) with field-name = token (RFC 9110 §5.1), as the
/// decoder's `ChunkedDecoder` documents (trailer fields are discarded).
#[test]
fn rfc9112_7_1_2_a_trailer_field_name_is_a_token() {
    for trailer in [&b"X(y: 1"[..], b"a/b: 1", b"\"q\": 1", b"a@b: 1"] {
        let input = [
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"[..],
            trailer,
            b"\r\n\r\n",
        ]
        .concat();
        assert_refused(&input, StatusCode::BAD_REQUEST);
    }
}

/// RFC 9112 §7.1.1: a chunk extension follows its grammar, or the request gets 400.
///
/// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), the value a
/// token or a quoted-string. RFC 9112 §7.1.1 sets no status for malformed ones; a request
/// whose framing bytes do not parse is refused as a whole (400), as every other malformed
/// chunk line is. Well-formed extensions are ignored, with any amount of BWS.
#[test]
fn rfc9112_7_1_1_a_chunk_extension_follows_its_grammar() {
    let with = |ext: &[u8]| {
        [
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1"[..],
            ext,
            b"\r\nz\r\n0\r\n\r\n",
        ]
        .concat()
    };
    for ext in [
        &b";"[..],
        b";=x",
        b"; a b",
        b";a=\"open",
        b";a=b=c",
        b";a,b",
        b";a ",
        b" ",
        b";a=\"\x7f\"",
        b";a=\"\\\n\"",
    ] {
        assert_refused(&with(ext), StatusCode::BAD_REQUEST);
    }
    for ext in [
        &b";a"[..],
        b" ;a",
        b"\t; a = b ;c",
        b";a=\"\"",
        b";a=\"x;y\\\"z \xc3\xa9\";b=c",
        b";a;b;c=d",
    ] {
        let ((model, model_error), (requests, error)) = both_readings(&with(ext));
        assert_eq!((error, model_error), (None, None), "{ext:?}");
        assert_eq!(requests, model);
        assert_eq!(requests.first().map(|r| r.body.as_slice()), Some(&b"z"[..]));
    }
}
