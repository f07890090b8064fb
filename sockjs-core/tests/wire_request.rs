//! Request decoder: pipelining, keep-alive, bodies, limits, errors, upgrades.

mod wire_util;

use bytes::BytesMut;
use http::{StatusCode, Version};
use sockjs_core::wire::{Decoded, Limits, RequestDecoder, WireError};
use wire_util::{Event, error_of, feed, feed_bytewise, feed_pieces, feed_split};

const GET: &[u8] = b"GET /echo/info?t=1 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n";
const POST_CL: &[u8] =
    b"POST /echo/0/a/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n[\"abc\"]";
const POST_CHUNKED: &[u8] =
    b"POST /echo/0/b/xhr_send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
3;name=value\r\n[\"a\r\nA\r\nbcdefghij\"\r\n1\r\n]\r\n0\r\nX-Trailer: yes\r\n\r\n";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn decodes_a_simple_get() {
    let out = feed(GET);
    assert_eq!(out.error, None);
    let reqs = out.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.uri, "/echo/info?t=1");
    assert_eq!(r.version, Version::HTTP_11);
    assert_eq!(
        r.headers,
        vec![
            ("host".into(), b"localhost".to_vec()),
            ("accept".into(), b"*/*".to_vec())
        ]
    );
    assert!(r.body.is_empty());
    assert!(r.keep_alive && !r.upgrade && !r.expect_continue);
    assert!(out.leftover.is_empty());
}

#[test]
fn incomplete_head_needs_more_bytes_and_consumes_nothing() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&GET[..GET.len() - 1]);
    assert!(decoder.decode(&mut buf).expect("no error").is_none());
    assert_eq!(buf.len(), GET.len() - 1);
    assert!(decoder.is_idle());
}

#[test]
fn pipelined_two_requests_in_one_buffer() {
    let input = cat(&[GET, POST_CL]);
    let out = feed(&input);
    assert_eq!(out.error, None);
    let reqs = out.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[1].body, b"[\"abc\"]");
    assert!(out.leftover.is_empty());
}

#[test]
fn pipelined_decode_returns_one_request_per_call() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&cat(&[GET, GET])[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Decoded::Request(_)))
    ));
    assert_eq!(&buf[..], GET);
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Decoded::Request(_)))
    ));
    assert!(buf.is_empty());
    assert!(matches!(decoder.decode(&mut buf), Ok(None)));
}

#[test]
fn pipelined_three_requests_split_at_every_byte() {
    let input = cat(&[GET, POST_CL, POST_CHUNKED]);
    let whole = feed(&input);
    assert_eq!(whole.error, None);
    assert_eq!(whole.requests().len(), 3);
    assert_eq!(whole.requests()[2].body, b"[\"abcdefghij\"]");
    for at in 0..=input.len() {
        let split = feed_split(&input, at);
        assert_eq!(split.error, None, "split at {at}");
        assert_eq!(split.events, whole.events, "split at {at}");
        assert!(split.leftover.is_empty());
    }
    let bytewise = feed_bytewise(Limits::default(), &input);
    assert_eq!(bytewise.events, whole.events);
}

#[test]
fn empty_lines_before_a_request_are_skipped() {
    let input = cat(&[POST_CL, b"\r\n\r\n\n", GET]);
    let out = feed(&input);
    assert_eq!(out.error, None);
    assert_eq!(out.requests().len(), 2);
    let bytewise = feed_bytewise(Limits::default(), &input);
    assert_eq!(bytewise.events, out.events);
}

/// RFC 9112 §2.2 has a server ignore empty lines before a request line; they count toward
/// `max_head_bytes`, so that a client sending nothing else is refused (431) as one sending
/// an endless head, however they are cut, rather than read for ever.
#[test]
fn empty_lines_before_a_request_count_toward_the_head_bound() {
    let limits = small_limits();
    let flood = b"\r\n".repeat(64);
    assert_eq!(error_of(limits, &flood), WireError::HeadTooLarge);
    let bytewise = feed_bytewise(limits, &flood);
    assert_eq!(bytewise.error, Some(WireError::HeadTooLarge));
    // Fewer, and a head that fits beside them: served.
    let request = cat(&[&b"\n".repeat(60), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]);
    let out = feed_bytewise(limits, &request);
    assert_eq!((out.error, out.requests().len()), (None, 1));
    // The same head past the bound with them: refused.
    let request = cat(&[&b"\n".repeat(110), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]);
    assert_eq!(error_of(limits, &request), WireError::HeadTooLarge);
}

#[test]
fn bare_lf_line_endings_are_accepted_in_the_head() {
    let out = feed(b"GET / HTTP/1.1\nHost: x\n\n");
    assert_eq!(out.error, None);
    assert_eq!(
        out.requests()[0].headers,
        vec![("host".into(), b"x".to_vec())]
    );
}

#[test]
fn keep_alive_decisions() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE \r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
            true,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: foo,keep-alive\r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false),
    ];
    for (input, keep_alive) in cases {
        let out = feed(input);
        assert_eq!(out.error, None);
        assert_eq!(
            out.requests()[0].keep_alive,
            *keep_alive,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn http10_version_is_reported() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"GET / HTTP/1.0\r\n\r\n"[..]);
    let Ok(Some(Decoded::Request(req))) = decoder.decode(&mut buf) else {
        panic!("expected a request");
    };
    assert_eq!(req.version(), Version::HTTP_10);
}

#[test]
fn post_without_length_has_an_empty_body() {
    let out = feed(b"POST /x HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(out.error, None);
    let reqs = out.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].body.is_empty());
}

/// RFC 9112 §3.2: more than one `Host` field gets 400; so does an HTTP/1.1 request without
/// one, or with an invalid value; one valid field is fine, and HTTP/1.0 may leave it out.
#[test]
fn rfc9112_3_2_host_once_valid_and_required_in_http_1_1() {
    let refused: &[(&[u8], WireError)] = &[
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            WireError::DuplicateHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            WireError::DuplicateHost,
        ),
        (
            b"GET / HTTP/1.0\r\nhost: a\r\nX: y\r\nHOST: b\r\n\r\n",
            WireError::DuplicateHost,
        ),
        (b"GET / HTTP/1.1\r\n\r\n", WireError::MissingHost),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab",
            WireError::MissingHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            WireError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n",
            WireError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: example.com/x\r\n\r\n",
            WireError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: example.com?x\r\n\r\n",
            WireError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: \"a\"\r\n\r\n",
            WireError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: ex\xc3\xa4mple.com\r\n\r\n",
            WireError::InvalidHost,
        ),
        (
            b"GET / HTTP/1.0\r\nHost: a\tb\r\n\r\n",
            WireError::InvalidHost,
        ),
    ];
    // Not the shape of a host and port, though every byte could be in one.
    let misshapen: &[&[u8]] = &[
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
        // IP literals that hold no IP address (RFC 3986 §3.2.2, RFC 6874).
        b"[zz]",
        b"[1::2::3]",
        b"[::1%eth0]",
        b"[::1%25]",
        b"[v.x]",
        b"[v1.]",
        b"[:]",
        b"[127.0.0.1]",
    ];
    for host in misshapen {
        let input = [&b"GET / HTTP/1.1\r\nHost: "[..], host, b"\r\n\r\n"].concat();
        let err = error_of(Limits::default(), &input);
        assert_eq!(
            err,
            WireError::InvalidHost,
            "{}",
            String::from_utf8_lossy(host)
        );
    }
    for &(input, expected) in refused {
        let err = error_of(Limits::default(), input);
        assert_eq!(err, expected, "{}", String::from_utf8_lossy(input));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
    for input in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: Example.COM:8080\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: xn--exmple-cua.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a_b-c~d%41\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:  a \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]:443\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [v1.x]\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::ffff:127.0.0.1]\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [2001:db8::7]:8080\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: caf%C3%A9.example.:\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    ] {
        let out = feed(input);
        assert_eq!(out.error, None, "{}", String::from_utf8_lossy(input));
        assert_eq!(out.requests().len(), 1);
    }
}

#[test]
fn content_length_variants() {
    let ok: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 003\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
    ];
    for input in ok {
        let out = feed(input);
        assert_eq!(out.error, None, "{}", String::from_utf8_lossy(input));
        assert_eq!(out.requests()[0].body, b"abc");
    }
    let bad: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3,\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n",
    ];
    for input in bad {
        let err = error_of(Limits::default(), input);
        assert_eq!(
            err,
            WireError::InvalidContentLength,
            "{}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn content_length_body_stays_in_buffer_until_complete() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&POST_CL[..POST_CL.len() - 2]);
    assert!(matches!(decoder.decode(&mut buf), Ok(None)));
    assert!(!decoder.is_idle());
    assert_eq!(&buf[..], b"[\"abc");
    buf.extend_from_slice(b"\"]GET");
    let Ok(Some(Decoded::Request(req))) = decoder.decode(&mut buf) else {
        panic!("expected a request");
    };
    assert_eq!(&req.request.body()[..], b"[\"abc\"]");
    assert_eq!(&buf[..], b"GET");
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let out = feed(POST_CHUNKED);
    assert_eq!(out.error, None);
    assert_eq!(out.requests()[0].body, b"[\"abcdefghij\"]");
    let trailer_ok = feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\nA ; a=1;b\r\n0123456789\r\n0\r\n\r\n",
    );
    assert_eq!(trailer_ok.error, None);
    assert_eq!(trailer_ok.requests()[0].body, b"0123456789");
}

#[test]
fn chunked_body_split_at_every_byte() {
    let input = cat(&[POST_CHUNKED, GET]);
    let whole = feed(&input);
    assert_eq!(whole.requests().len(), 2);
    for at in 0..=input.len() {
        assert_eq!(feed_split(&input, at).events, whole.events, "split at {at}");
    }
    assert_eq!(
        feed_bytewise(Limits::default(), &input).events,
        whole.events
    );
}

#[test]
fn empty_chunked_body() {
    let out = feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(out.error, None);
    assert!(out.requests()[0].body.is_empty());
}

#[test]
fn malformed_chunked_bodies_are_400() {
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let bodies: &[&[u8]] = &[
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"\r\n",
        b"3\r\nabcX\r\n0\r\n\r\n",
        b"3\r\nabc\rX",
        b"3\nabc\r\n0\r\n\r\n",
        b"3 x\r\nabc\r\n0\r\n\r\n",
        b"3;\x01\r\nabc\r\n0\r\n\r\n",
        b"0\r\nno colon\r\n\r\n",
        b"0\r\n: empty name\r\n\r\n",
        b"-3\r\nabc\r\n0\r\n\r\n",
        // RFC 9112 §7.1.1: whitespace only before an extension's `;`.
        b"3 \r\nabc\r\n0\r\n\r\n",
    ];
    for body in bodies {
        let err = error_of(Limits::default(), &cat(&[head, body]));
        assert_eq!(
            err,
            WireError::MalformedChunk,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn chunk_extensions_are_bounded_over_the_whole_body() {
    // Each size line is short, but together their ignored extensions would be unbounded:
    // one-byte chunks each bringing 1 KiB of them.
    let limits = Limits::default();
    let ext = format!(";{}", "x".repeat(1023));
    let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let chunks = limits.max_head_bytes / ext.len() + 1;
    for _ in 0..chunks {
        input.extend_from_slice(format!("1{ext}\r\na\r\n").as_bytes());
    }
    input.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(error_of(limits, &input), WireError::MalformedChunk);
    // Under the bound, they are ignored.
    let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    input.extend_from_slice(b"1 ;a=b\r\nx\r\n1;c\r\ny\r\n0\r\n\r\n");
    let out = feed(&input);
    assert_eq!(out.error, None);
    assert_eq!(&out.requests()[0].body[..], b"xy");
}

#[test]
fn chunk_sizes_leading_zeros_are_bounded_over_the_whole_body() {
    // Leading zeros carry nothing either: one-byte chunks with a size line of 4 KiB of zeros
    // each would be a gigabyte on the wire for a 256 KiB body, so they count with extensions.
    let limits = Limits::default();
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let zeros = "0".repeat(1023);
    let mut input = head.to_vec();
    for _ in 0..limits.max_head_bytes / zeros.len() + 1 {
        input.extend_from_slice(format!("{zeros}1\r\na\r\n").as_bytes());
    }
    input.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(error_of(limits, &input), WireError::MalformedChunk);
    // Zeros and extensions share the bound: each under it alone, over it together.
    let piece = limits.max_head_bytes / 5;
    let padded = format!("{}1\r\na\r\n", "0".repeat(piece));
    let extended = format!("1;{}\r\nb\r\n", "x".repeat(piece - 1));
    for (zeros, extensions, fails) in [(5, 0, false), (0, 5, false), (3, 3, true)] {
        let mut input = head.to_vec();
        for line in [&padded]
            .repeat(zeros)
            .into_iter()
            .chain([&extended].repeat(extensions))
        {
            input.extend_from_slice(line.as_bytes());
        }
        input.extend_from_slice(b"0\r\n\r\n");
        let error = feed(&input).error;
        let expected = fails.then_some(WireError::MalformedChunk);
        assert_eq!(error, expected, "{zeros} padded, {extensions} extended");
    }
    // A size's own digits and the last chunk's `0` are not padding; a few zeros are ignored.
    let mut input = head.to_vec();
    input.extend_from_slice(b"00000005\r\nhello\r\n10\r\n0123456789abcdef\r\n000\r\n\r\n");
    let out = feed(&input);
    assert_eq!(out.error, None);
    assert_eq!(&out.requests()[0].body[..], b"hello0123456789abcdef");
}

#[test]
fn chunk_size_line_without_end_fails_at_bound() {
    let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    assert_eq!(
        error_of(Limits::default(), &input),
        WireError::MalformedChunk
    );
}

#[test]
fn transfer_encoding_rules() {
    let cases: &[(&[u8], WireError)] = &[
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            WireError::AmbiguousBodyLength,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            WireError::AmbiguousBodyLength,
        ),
        // Without `chunked` last the body's end cannot be known: 400 (RFC 9112 §6.3).
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            WireError::InvalidTransferEncoding,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            WireError::InvalidTransferEncoding,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            WireError::UnsupportedTransferEncoding,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            WireError::InvalidTransferEncoding,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            WireError::InvalidTransferEncoding,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n",
            WireError::InvalidTransferEncoding,
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            WireError::InvalidTransferEncoding,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            error_of(Limits::default(), input),
            *expected,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(
        WireError::AmbiguousBodyLength.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        WireError::UnsupportedTransferEncoding.status(),
        StatusCode::NOT_IMPLEMENTED
    );
    assert_eq!(
        WireError::InvalidTransferEncoding.status(),
        StatusCode::BAD_REQUEST
    );
}

fn small_limits() -> Limits {
    Limits {
        max_headers: 4,
        max_head_bytes: 128,
        max_body_bytes: 16,
    }
}

#[test]
fn too_many_headers_is_431() {
    let input = b"GET / HTTP/1.1\r\nHost: a\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n";
    let err = error_of(small_limits(), input);
    assert_eq!(err, WireError::TooManyHeaders);
    assert_eq!(err.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let four = b"GET / HTTP/1.1\r\nHost: a\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
    assert_eq!(feed_pieces(small_limits(), &[four]).error, None);
    assert_eq!(
        error_of(
            Limits::default(),
            &cat(&[
                b"GET / HTTP/1.1\r\nHost: a\r\n",
                &b"a: b\r\n".repeat(101),
                b"\r\n"
            ])
        ),
        WireError::TooManyHeaders
    );
}

#[test]
fn a_head_that_arrived_in_pieces_leaves_no_trace_for_the_next_request() {
    // The first head is scanned twice (its end arrives late) and its request is whole
    // once it does; the next request must be scanned from its own start.
    let long = cat(&[
        b"GET /a HTTP/1.1\r\nHost: a\r\nX-Long: ",
        &[b'x'; 200],
        b"\r\n\r\n",
    ]);
    let (first, rest) = long.split_at(long.len() - 3);
    let short = b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
    let out = feed_pieces(Limits::default(), &[first, &cat(&[rest, short])]);
    assert_eq!(out.error, None);
    let reqs = out.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].uri, "/b");
}

#[test]
fn every_field_up_to_the_limit_is_kept_in_order() {
    // Past the fields a head is parsed into without the heap, and up to the limit.
    for n in [62, 63, 64, 99] {
        let fields: Vec<u8> = (0..n)
            .flat_map(|i| format!("x-{i}: {i}\r\n").into_bytes())
            .collect();
        let out = feed(&cat(&[b"GET / HTTP/1.1\r\nHost: a\r\n", &fields, b"\r\n"]));
        assert_eq!(out.error, None, "{n} fields");
        let headers = &out.requests()[0].headers;
        assert_eq!(headers.len(), n + 1);
        assert_eq!(headers[0], ("host".into(), b"a".to_vec()));
        for (i, (name, value)) in headers[1..].iter().enumerate() {
            assert_eq!(
                (name.as_str(), value.as_slice()),
                (&*format!("x-{i}"), format!("{i}").as_bytes())
            );
        }
    }
    // A limit far above any head: bounded by the head's own bytes, not the limit.
    let huge = Limits {
        max_headers: usize::MAX,
        ..Limits::default()
    };
    let fields = b"a:\r\n".repeat(1000);
    let out = feed_pieces(
        huge,
        &[&cat(&[b"GET / HTTP/1.1\r\nHost: a\r\n", &fields, b"\r\n"])],
    );
    assert_eq!(out.error, None);
    assert_eq!(out.requests()[0].headers.len(), 1001);
    let none = Limits {
        max_headers: 0,
        ..Limits::default()
    };
    assert_eq!(
        error_of(none, b"GET / HTTP/1.1\r\nHost: a\r\na: 1\r\n\r\n"),
        WireError::TooManyHeaders
    );
    assert_eq!(feed_pieces(none, &[b"GET / HTTP/1.0\r\n\r\n"]).error, None);
}

#[test]
fn head_over_limit_is_431_even_when_complete() {
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    input.extend(std::iter::repeat_n(b'v', 200));
    input.extend_from_slice(b"\r\n\r\n");
    let err = error_of(small_limits(), &input);
    assert_eq!(err, WireError::HeadTooLarge);
    assert_eq!(err.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[test]
fn rfc9112_3_a_request_line_over_the_head_bound_is_414() {
    let limits = small_limits();
    let long = cat(&[b"GET /", &[b'a'; 200], b" HTTP/1.1\r\nHost: a\r\n\r\n"]);
    let err = error_of(limits, &long);
    assert_eq!(err, WireError::UriTooLong);
    assert_eq!(err.status(), StatusCode::URI_TOO_LONG);
    assert_eq!(
        feed_bytewise(limits, &long).error,
        Some(WireError::UriTooLong)
    );
    // The request line's end (LF) just past the bound: 414; within it, the fields' excess
    // is 431.
    let line = |n: usize| cat(&[b"GET /", &vec![b'a'; n], b" HTTP/1.1\r\n"]);
    let at_bound = line(limits.max_head_bytes - 15);
    assert_eq!(at_bound.len(), limits.max_head_bytes + 1);
    assert_eq!(error_of(limits, &at_bound), WireError::UriTooLong);
    let within = cat(&[&line(limits.max_head_bytes - 16), b"Host: a\r\n\r\n"]);
    assert_eq!(error_of(limits, &within), WireError::HeadTooLarge);
    // Bytes with no space, no method read: the head's bound, 431.
    assert_eq!(error_of(limits, &[b'x'; 200]), WireError::HeadTooLarge);
}

#[test]
fn rfc9112_3_2_2_an_absolute_form_targets_authority_is_the_host() {
    let host = |input: &[u8]| -> Vec<Vec<u8>> {
        let out = feed(input);
        assert_eq!(out.error, None, "{}", String::from_utf8_lossy(input));
        let request = &out.requests()[0];
        let hosts = request.headers.iter().filter(|(name, _)| name == "host");
        hosts.map(|(_, value)| value.clone()).collect()
    };
    // The Host field is ignored for the target's authority, which is what a proxy routed on.
    let other = b"GET http://good.example:8080/echo/info HTTP/1.1\r\nHost: evil.example\r\n\r\n";
    assert_eq!(host(other), [b"good.example:8080".to_vec()]);
    assert_eq!(
        feed(other).requests()[0].uri,
        "http://good.example:8080/echo/info"
    );
    // HTTP/1.0 may leave the field out; the authority is still the host.
    assert_eq!(
        host(b"GET http://[::1]/x HTTP/1.0\r\n\r\n"),
        [b"[::1]".to_vec()]
    );
    // An origin-form target keeps its field.
    assert_eq!(host(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"), [b"a".to_vec()]);
    // Still required and checked as a field (RFC 9112 §3.2).
    let missing = b"GET http://a/x HTTP/1.1\r\n\r\n";
    assert_eq!(error_of(Limits::default(), missing), WireError::MissingHost);
    // No host, or user information, is no authority to take (RFC 9110 §4.2.1, RFC 9110 §4.2.4).
    for target in [
        "http://user@a/x",
        "http://user:pw@a/x",
        "http:///x",
        "http://:8080/x",
        "http://a%/x",
    ] {
        let input = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let error = feed(input.as_bytes()).error;
        assert!(
            error.is_some_and(|e| e.status() == 400),
            "{target}: {error:?}"
        );
    }
}

#[test]
fn head_exactly_at_limit_is_accepted() {
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    input.extend(std::iter::repeat_n(b'v', 128 - input.len() - 4));
    input.extend_from_slice(b"\r\n\r\n");
    assert_eq!(input.len(), 128);
    assert_eq!(feed_pieces(small_limits(), &[&input]).error, None);
    input.insert(20, b'v');
    assert_eq!(error_of(small_limits(), &input), WireError::HeadTooLarge);
}

#[test]
fn endless_head_fails_at_the_limit_while_trickling() {
    let limits = small_limits();
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\nX: ");
    let mut fed = buf.len();
    let err = loop {
        match decoder.decode(&mut buf) {
            Ok(None) => {
                assert!(buf.len() < limits.max_head_bytes);
                buf.extend_from_slice(b"y");
                fed += 1;
            }
            Ok(Some(_)) => panic!("no request expected"),
            Err(e) => break e,
        }
        assert!(fed <= limits.max_head_bytes, "limit not enforced");
    };
    assert_eq!(err, WireError::HeadTooLarge);
    assert_eq!(fed, limits.max_head_bytes);
}

#[test]
fn body_over_limit_is_413_before_the_body_arrives() {
    let err = error_of(
        small_limits(),
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n",
    );
    assert_eq!(err, WireError::BodyTooLarge);
    assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        error_of(
            Limits::default(),
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999\r\n\r\n"
        ),
        WireError::BodyTooLarge
    );
    let at_limit = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n0123456789abcdef";
    assert_eq!(feed_pieces(small_limits(), &[at_limit]).error, None);
}

#[test]
fn chunked_body_over_limit_is_413_from_the_size_line() {
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    // A single chunk larger than the limit fails before any of its data.
    assert_eq!(
        error_of(small_limits(), &cat(&[head, b"11\r\n"])),
        WireError::BodyTooLarge
    );
    // Chunks that add up past the limit fail at the size line that crosses it.
    let input = cat(&[head, b"8\r\n01234567\r\n8\r\n01234567\r\n1\r\n"]);
    assert_eq!(error_of(small_limits(), &input), WireError::BodyTooLarge);
    assert_eq!(
        error_of(
            small_limits(),
            &cat(&[head, b"ffffffffffffffffffffffff\r\n"])
        ),
        WireError::BodyTooLarge
    );
    let at_limit = cat(&[head, b"8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n"]);
    assert_eq!(
        feed_pieces(small_limits(), &[&at_limit]).requests()[0]
            .body
            .len(),
        16
    );
}

#[test]
fn chunked_trailers_over_limit_are_431() {
    let mut input =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
    for _ in 0..20 {
        input.extend_from_slice(b"X-T: 0123456789\r\n");
    }
    input.extend_from_slice(b"\r\n");
    assert_eq!(error_of(small_limits(), &input), WireError::HeadTooLarge);
}

#[test]
fn malformed_heads_are_400() {
    let cases: &[&[u8]] = &[
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\r\n\r\n",
    ];
    for input in cases {
        let err = error_of(Limits::default(), input);
        assert_eq!(
            err,
            WireError::MalformedHead,
            "{}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        error_of(Limits::default(), b"GET /a<b HTTP/1.1\r\nHost: a\r\n\r\n"),
        WireError::InvalidTarget
    );
}

/// RFC 9112 §3.2.3-3.2.4: each target form with its method is accepted
/// (`wire_request_model.rs` has the refusals).
#[test]
fn rfc9112_3_2_target_forms_with_their_methods_are_accepted() {
    for (input, target) in [
        (&b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"[..], "*"),
        (
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n",
            "example.com:443",
        ),
        (
            b"GET http://a/echo HTTP/1.1\r\nHost: a\r\n\r\n",
            "http://a/echo",
        ),
    ] {
        let out = feed(input);
        assert_eq!(out.error, None, "{}", String::from_utf8_lossy(input));
        assert_eq!(out.requests()[0].uri, target);
    }
}

/// Other major versions get 505; a later minor version of HTTP/1 is served as HTTP/1.1
/// (`wire_request_model.rs`).
#[test]
fn unsupported_versions_are_505() {
    for input in [
        &b"GET / HTTP/2.0\r\n\r\n"[..],
        b"GET / HTTP/3.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/0.9\r\n\r\n",
    ] {
        let err = error_of(Limits::default(), input);
        assert_eq!(err, WireError::UnsupportedVersion);
        assert_eq!(err.status(), StatusCode::HTTP_VERSION_NOT_SUPPORTED);
    }
}

#[test]
fn errors_are_sticky() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"GET / HTTP/9.9\r\n\r\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf).err(),
        Some(WireError::UnsupportedVersion)
    );
    buf.extend_from_slice(GET);
    assert_eq!(
        decoder.decode(&mut buf).err(),
        Some(WireError::UnsupportedVersion)
    );
    assert!(!decoder.is_idle());
}

#[test]
fn error_response_bytes() {
    let mut out = BytesMut::new();
    WireError::HeadTooLarge.encode_response(&mut out);
    assert_eq!(
        &out[..],
        &b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=UTF-8\r\n\
           Content-Length: 22\r\nConnection: close\r\n\r\nRequest head too large"[..]
    );
    for err in [
        WireError::MalformedHead,
        WireError::InvalidTarget,
        WireError::UnsupportedVersion,
        WireError::TooManyHeaders,
        WireError::HeadTooLarge,
        WireError::UriTooLong,
        WireError::InvalidContentLength,
        WireError::AmbiguousBodyLength,
        WireError::UnsupportedTransferEncoding,
        WireError::InvalidTransferEncoding,
        WireError::MalformedChunk,
        WireError::BodyTooLarge,
    ] {
        let mut out = BytesMut::new();
        err.encode_response(&mut out);
        let mut fields = [httparse::EMPTY_HEADER; 8];
        let mut parsed = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(head_len)) = parsed.parse(&out) else {
            panic!("unparsable error response for {err:?}");
        };
        assert_eq!(parsed.code, Some(err.status().as_u16()));
        assert_eq!(&out[head_len..], err.message().as_bytes());
        assert!(err.to_string().contains(&err.status().as_u16().to_string()));
    }
}

#[test]
fn expect_continue_is_reported_once_before_the_body() {
    let head = b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&head[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Decoded::Continue))
    ));
    assert!(matches!(decoder.decode(&mut buf), Ok(None)));
    buf.extend_from_slice(b"he");
    assert!(matches!(decoder.decode(&mut buf), Ok(None)));
    buf.extend_from_slice(b"llo");
    let Ok(Some(Decoded::Request(req))) = decoder.decode(&mut buf) else {
        panic!("expected a request");
    };
    assert!(req.expect_continue);
    assert_eq!(&req.request.body()[..], b"hello");
}

#[test]
fn expect_continue_not_reported_when_body_already_here() {
    let input =
        b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\nhello";
    let out = feed(input);
    assert_eq!(out.events.len(), 1);
    assert!(out.requests()[0].expect_continue);
    let empty = feed(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(empty.events.len(), 1);
}

#[test]
fn expect_continue_with_chunked_body_and_split_input() {
    let input = b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let head_len = input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| p + 4);
    for at in head_len..input.len() {
        let out = feed_split(input, at);
        assert_eq!(out.error, None);
        assert_eq!(out.events.first(), Some(&Event::Continue), "split at {at}");
        assert_eq!(out.requests()[0].body, b"hello");
    }
}

#[test]
fn expect_continue_ignored_for_http10() {
    let input = b"POST /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    let out = feed(input);
    assert!(out.events.is_empty());
    let done = feed_pieces(Limits::default(), &[input, b"hello"]);
    assert!(!done.requests()[0].expect_continue);
}

/// A body limit of each request's own (a server's bound for the service the target goes to),
/// within the decoder's: a declared length past it fails at the head, before any
/// `100 Continue` asks for the body; a chunked body past it fails as its chunks come; a
/// body within it decodes; and the decoder's own limit still caps a larger one. A body that
/// fails names its request's target, wherever its size was refused.
#[test]
fn a_requests_own_body_limit_holds_at_the_head_and_as_chunks_come() {
    let own = |target: &http::Uri| {
        if target.path().starts_with("/small") {
            4
        } else {
            usize::MAX
        }
    };
    let decode = |input: &[u8]| {
        let mut decoder = RequestDecoder::new(Limits {
            max_body_bytes: 16,
            ..Limits::default()
        });
        let mut buf = BytesMut::from(input);
        let mut events = Vec::new();
        loop {
            match decoder.decode_limited(&mut buf, own) {
                Ok(Some(Decoded::Continue)) => events.push("continue".to_string()),
                Ok(Some(Decoded::Request(req))) => events.push(format!(
                    "{} {:?}",
                    req.request.uri(),
                    String::from_utf8_lossy(req.request.body())
                )),
                Ok(None) => {
                    let pending = decoder.target().map(ToString::to_string);
                    return (events, Err(pending));
                }
                Err(e) => {
                    let target = decoder.target().map(ToString::to_string);
                    // Sticky, and so is the target.
                    assert_eq!(decoder.decode_limited(&mut buf, own).err(), Some(e));
                    assert_eq!(decoder.target().map(ToString::to_string), target);
                    return (events, Ok((e, target)));
                }
            }
        }
    };
    let too_large = |target: &str| Ok((WireError::BodyTooLarge, Some(target.to_string())));
    // Declared past its own limit, with the body still to come: no 100 Continue.
    let (events, end) = decode(
        b"POST /small HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(end, too_large("/small"));
    // Declared past it, the body there already; past the decoder's limit too.
    let (_, end) = decode(b"POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(end, too_large("/small"));
    let (_, end) = decode(b"POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 300\r\n\r\n");
    assert_eq!(end, too_large("/small"));
    // Chunked past it: as the chunks come; while they come, the target is known.
    let (_, end) = decode(
        b"POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    );
    assert_eq!(end, Err(Some("/small".to_string())));
    let (_, end) = decode(
        b"POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n",
    );
    assert_eq!(end, too_large("/small"));
    // Malformed chunks name their request too.
    let (_, end) =
        decode(b"POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    let Ok((_, target)) = end else {
        panic!("a malformed chunk fails: {end:?}");
    };
    assert_eq!(target.as_deref(), Some("/small"));
    // Within it, and on other targets up to the decoder's limit (not past it).
    let (events, end) = decode(
        b"POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd\
POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n\
POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n0123456789abcdef",
    );
    assert_eq!(end, Err(None), "between requests, no target");
    assert_eq!(
        events,
        [
            "/small \"abcd\"",
            "/small \"abcd\"",
            "/big \"0123456789abcdef\""
        ]
    );
    let (_, end) = decode(b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n");
    assert_eq!(end, too_large("/big"));
    // A length past any number: past every limit.
    let (_, end) =
        decode(b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n");
    assert_eq!(end, too_large("/big"));
    // A head that fails names nothing.
    let (_, end) = decode(b"POST /big HTTP/1.1\r\nContent-Length: 1\r\n\r\n");
    assert_eq!(end, Ok((WireError::MissingHost, None)));
}

#[test]
fn expect_continue_with_oversized_body_is_413_not_continue() {
    let input =
        b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n";
    let out = feed_pieces(small_limits(), &[input]);
    assert!(out.events.is_empty());
    assert_eq!(out.error, Some(WireError::BodyTooLarge));
}

#[test]
fn upgrade_request_leaves_following_bytes_untouched() {
    let head = b"GET /echo/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    let input = cat(&[head, frame]);
    for at in 0..=input.len() {
        let out = feed_split(&input, at);
        assert_eq!(out.error, None);
        let reqs = out.requests();
        assert_eq!(reqs.len(), 1, "split at {at}");
        assert!(reqs[0].upgrade);
        assert_eq!(&out.leftover[..], &input[head.len()..]);
    }
}

#[test]
fn hixie76_key3_stays_in_the_buffer() {
    let head = b"GET /echo/0/0/websocket HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nHost: localhost\r\n\
Origin: http://localhost\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n";
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&cat(&[head, b"aaaaaaaa"])[..]);
    let Ok(Some(Decoded::Request(req))) = decoder.decode(&mut buf) else {
        panic!("expected a request");
    };
    assert!(req.upgrade);
    assert!(req.request.body().is_empty());
    assert_eq!(&buf[..], b"aaaaaaaa");
}

#[test]
fn upgrade_needs_both_connection_token_and_upgrade_field() {
    let no_token =
        feed(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n");
    assert!(!no_token.requests()[0].upgrade);
    let no_field = feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n");
    assert!(!no_field.requests()[0].upgrade);
    let both = feed(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: foo\r\nConnection: upgrade\r\n\r\n",
    );
    assert!(both.requests()[0].upgrade);
}

/// RFC 9110 §7.8: a server MUST ignore an `Upgrade` in an HTTP/1.0 request: the request
/// is plain HTTP, its keep-alive holds, and what follows it is the next request.
#[test]
fn rfc9110_s7_8_an_http10_upgrade_is_ignored() {
    let first =
        b"GET /echo/info HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let next = b"GET /echo/info HTTP/1.0\r\n\r\n";
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&cat(&[first, next])[..]);
    let Ok(Some(Decoded::Request(req))) = decoder.decode(&mut buf) else {
        panic!("expected a request");
    };
    assert!(!req.upgrade);
    assert!(req.keep_alive);
    let mut encoded = BytesMut::new();
    let after = req
        .response_encoder()
        .encode(&http::Response::new(Vec::<u8>::new()), &mut encoded);
    assert!(!after.must_close(), "the answer keeps the connection");
    let head = String::from_utf8_lossy(&encoded);
    assert!(head.contains("Connection: keep-alive"), "{head}");
    // What follows it is the next request, not another protocol's bytes.
    let Ok(Some(Decoded::Request(req))) = decoder.decode(&mut buf) else {
        panic!("expected the next request");
    };
    assert_eq!(req.request.uri(), "/echo/info");
}

#[test]
fn head_request_gets_a_bodyless_encoder() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(&b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"[..]);
    let Ok(Some(Decoded::Request(req))) = decoder.decode(&mut buf) else {
        panic!("expected a request");
    };
    let mut out = BytesMut::new();
    let after = req
        .response_encoder()
        .encode(&http::Response::new("hello"), &mut out);
    assert!(!after.must_close());
    assert_eq!(
        &out[..],
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"[..]
    );
}

#[test]
fn buffered_body_tracks_chunked_progress() {
    let mut decoder = RequestDecoder::default();
    let mut buf = BytesMut::from(
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"[..],
    );
    assert!(matches!(decoder.decode(&mut buf), Ok(None)));
    assert_eq!(decoder.buffered_body(), 3);
    assert!(buf.is_empty());
    assert_eq!(*decoder.limits(), Limits::default());
}

/// The framing fields are read as the head is parsed, field by field: which error a head
/// gets must not depend on the order its fields come in.
#[test]
fn framing_errors_do_not_depend_on_field_order() {
    let cases: &[(&[&str], WireError)] = &[
        (
            &["Content-Length: x", "Transfer-Encoding: chunked"],
            WireError::InvalidContentLength,
        ),
        (
            &[
                "Content-Length: 3",
                "Content-Length: 4",
                "Transfer-Encoding: gzip",
            ],
            WireError::InvalidContentLength,
        ),
        (
            &["Content-Length: 3", "Transfer-Encoding: gzip"],
            WireError::AmbiguousBodyLength,
        ),
        // The codings' order is the fields' (RFC 9110 §5.3), and decides whether `chunked`
        // is last: here it is either way.
        (
            &[
                "Transfer-Encoding: gzip, chunked",
                "Transfer-Encoding: chunked",
            ],
            WireError::UnsupportedTransferEncoding,
        ),
        (
            &[
                "Transfer-Encoding: chunked",
                "Transfer-Encoding: chunked",
                "X-Other: a",
            ],
            WireError::InvalidTransferEncoding,
        ),
    ];
    for (fields, expected) in cases {
        // Every rotation, forwards and backwards: every order for up to three fields.
        let mut backwards: Vec<&str> = fields.to_vec();
        backwards.reverse();
        for mut order in [fields.to_vec(), backwards] {
            for _ in 0..order.len() {
                order.rotate_left(1);
                let mut input = b"POST / HTTP/1.1\r\nHost: a\r\n".to_vec();
                for field in &order {
                    input.extend_from_slice(field.as_bytes());
                    input.extend_from_slice(b"\r\n");
                }
                input.extend_from_slice(b"\r\n");
                assert_eq!(error_of(Limits::default(), &input), *expected, "{order:?}");
            }
        }
    }
}

/// RFC 9110 §9.3.2: the answer to a `HEAD` request carries no content, a refusal's too,
/// whether the head itself is refused (no Host, a bad length, too long) or its body is
/// (too large, malformed chunks); the length a `GET` would get still heads it.
#[test]
fn rfc9110_s9_3_2_a_refused_head_request_gets_no_content() {
    let limits = Limits {
        max_head_bytes: 256,
        max_body_bytes: 8,
        ..Limits::default()
    };
    let refused = |input: &[u8]| {
        let mut decoder = RequestDecoder::new(limits);
        let mut buf = BytesMut::from(input);
        let mut error = None;
        for _ in 0..4 {
            match decoder.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let error = error.unwrap_or_else(|| panic!("refused: {input:?}"));
        let mut out = BytesMut::new();
        error.encode_refusal(None, decoder.asks_head(), &mut out);
        (
            error,
            decoder.asks_head(),
            String::from_utf8_lossy(&out).into_owned(),
        )
    };
    let long_target = format!("HEAD /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(300));
    let long_field = format!(
        "HEAD / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "x".repeat(300)
    );
    for (input, error) in [
        (&b"HEAD / HTTP/1.1\r\n\r\n"[..], WireError::MissingHost),
        (
            b"\r\nHEAD / HTTP/1.1\r\nHost: a b\r\n\r\n",
            WireError::InvalidHost,
        ),
        (
            b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 99\r\n\r\n",
            WireError::BodyTooLarge,
        ),
        (
            b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
            WireError::MalformedChunk,
        ),
        (long_target.as_bytes(), WireError::UriTooLong),
        (long_field.as_bytes(), WireError::HeadTooLarge),
    ] {
        let (got, head, answer) = refused(input);
        let what = String::from_utf8_lossy(&input[..input.len().min(60)]);
        assert_eq!((got, head), (error, true), "{what:?}");
        let length = format!("Content-Length: {}\r\n", error.message().len());
        assert!(answer.contains(&length), "{answer:?}");
        assert!(
            answer.ends_with("\r\n\r\n"),
            "content after the head: {answer:?}"
        );
    }
    // A GET (or a method only beginning so) gets the message as content.
    for input in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"HEADER / HTTP/1.1\r\n\r\n"] {
        let (got, head, answer) = refused(input);
        assert_eq!((got, head), (WireError::MissingHost, false), "{input:?}");
        assert!(answer.ends_with("\r\n\r\nMissing Host field"), "{answer:?}");
    }
    // A lone CR is no empty line before a request line (RFC 9112 §2.2): no HEAD there.
    let (got, head, answer) = refused(b"\rHEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((got.status().as_u16(), head), (400, false), "{answer:?}");
    // A HEAD answered in full leaves nothing behind for the next request.
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::from(&b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n"[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Decoded::Request(_)))
    ));
    assert_eq!(decoder.decode(&mut buf).err(), Some(WireError::MissingHost));
    assert!(!decoder.asks_head());
}
