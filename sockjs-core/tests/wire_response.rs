//! Response encoder: byte-for-byte heads, bodies and connection decisions.

use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING, UPGRADE};
use http::{Response, StatusCode, Version};
use sockjs_core::wire::{AfterResponse, CONTINUE_RESPONSE, ReasonPhrase, ResponseEncoder, hixie76};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn response(status: u16, body: &'static str) -> Response<&'static str> {
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::from_u16(status).expect("valid status");
    res
}

fn encode(
    version: Version,
    keep_alive: bool,
    res: &Response<&'static str>,
) -> (String, AfterResponse) {
    let mut out = BytesMut::new();
    let after = ResponseEncoder::new(version, keep_alive).encode(res, &mut out);
    (text(&out), after)
}

#[test]
fn continue_response_bytes() {
    assert_eq!(CONTINUE_RESPONSE, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn s10_http11_keep_alive_full_response() {
    let mut res = response(200, "Welcome to SockJS!\n");
    res.headers_mut().insert(
        CONTENT_TYPE,
        "text/plain; charset=UTF-8".parse().expect("valid"),
    );
    let (out, after) = encode(Version::HTTP_11, true, &res);
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=UTF-8\r\nContent-Length: 19\r\n\r\nWelcome to SockJS!\n"
    );
    assert_eq!(after, AfterResponse::KeepAlive);
}

#[test]
fn s10_http11_close_full_response() {
    let (out, after) = encode(Version::HTTP_11, false, &response(404, "nope"));
    assert_eq!(
        out,
        "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"
    );
    assert_eq!(after, AfterResponse::Close);
    assert!(after.must_close());
}

#[test]
fn s10_http10_keep_alive_and_close() {
    let (out, after) = encode(Version::HTTP_10, true, &response(200, "ok"));
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
    );
    assert_eq!(after, AfterResponse::KeepAlive);
    let (out, after) = encode(Version::HTTP_10, false, &response(200, "ok"));
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    assert_eq!(after, AfterResponse::Close);
}

#[test]
fn caller_framing_fields_are_not_duplicated() {
    let mut res = response(200, "abc");
    res.headers_mut()
        .insert(CONTENT_LENGTH, "99".parse().expect("valid"));
    res.headers_mut()
        .insert(TRANSFER_ENCODING, "chunked".parse().expect("valid"));
    res.headers_mut()
        .insert(CONNECTION, "keep-alive".parse().expect("valid"));
    let (out, after) = encode(Version::HTTP_11, true, &res);
    assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(after, AfterResponse::KeepAlive);
}

#[test]
fn caller_connection_close_is_honoured_once() {
    let mut res = response(200, "");
    res.headers_mut()
        .insert(CONNECTION, "Close".parse().expect("valid"));
    let (out, after) = encode(Version::HTTP_10, true, &res);
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(after, AfterResponse::Close);
}

#[test]
fn s10_bodyless_statuses() {
    let mut res = response(204, "ignored");
    res.headers_mut()
        .insert("access-control-max-age", "31536000".parse().expect("valid"));
    let (out, after) = encode(Version::HTTP_11, true, &res);
    assert_eq!(
        out,
        "HTTP/1.1 204 No Content\r\naccess-control-max-age: 31536000\r\n\r\n"
    );
    assert_eq!(after, AfterResponse::KeepAlive);
    let (out, after) = encode(Version::HTTP_11, false, &response(304, ""));
    assert_eq!(
        out,
        "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(after, AfterResponse::Close);
    let (out, _) = encode(Version::HTTP_10, true, &response(204, ""));
    assert_eq!(
        out,
        "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"
    );
}

#[test]
fn switching_protocols_head_is_written_as_given() {
    let mut res = response(101, "");
    let h = res.headers_mut();
    h.insert(UPGRADE, "websocket".parse().expect("valid"));
    h.insert(CONNECTION, "Upgrade".parse().expect("valid"));
    h.insert(
        "sec-websocket-accept",
        "HSmrc0sMlYUkAGmm5OPpG2HaGWk=".parse().expect("valid"),
    );
    for (version, keep_alive) in [
        (Version::HTTP_11, true),
        (Version::HTTP_11, false),
        (Version::HTTP_10, false),
    ] {
        let (out, after) = encode(version, keep_alive, &res);
        assert_eq!(
            out,
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n\r\n"
        );
        assert_eq!(after, AfterResponse::Upgrade);
        assert!(!after.must_close());
    }
}

#[test]
fn hixie76_handshake_head_with_custom_reason() {
    let mut res = response(101, "");
    res.extensions_mut().insert(hixie76::HANDSHAKE_REASON);
    let h = res.headers_mut();
    h.insert("Upgrade", "WebSocket".parse().expect("valid"));
    h.insert("Connection", "Upgrade".parse().expect("valid"));
    h.insert(
        "Sec-WebSocket-Origin",
        "http://localhost".parse().expect("valid"),
    );
    h.insert(
        "Sec-WebSocket-Location",
        "ws://localhost/echo/0/0/websocket".parse().expect("valid"),
    );
    let (out, after) = encode(Version::HTTP_11, true, &res);
    assert_eq!(
        out,
        "HTTP/1.1 101 WebSocket Protocol Handshake\r\nupgrade: WebSocket\r\nconnection: Upgrade\r\n\
         sec-websocket-origin: http://localhost\r\nsec-websocket-location: ws://localhost/echo/0/0/websocket\r\n\r\n"
    );
    assert_eq!(after, AfterResponse::Upgrade);
}

#[test]
fn reason_phrases() {
    let mut res = response(200, "");
    res.extensions_mut()
        .insert(ReasonPhrase::from_static("Fine\r\nX-Injected: 1"));
    let (out, _) = encode(Version::HTTP_11, true, &res);
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        "{out}"
    );
    res.extensions_mut()
        .insert(ReasonPhrase::from_static("All Good"));
    let (out, _) = encode(Version::HTTP_11, true, &res);
    assert!(out.starts_with("HTTP/1.1 200 All Good\r\n"));
    let (out, _) = encode(Version::HTTP_11, true, &response(599, "x"));
    assert!(out.starts_with("HTTP/1.1 599 \r\n"));
    assert_eq!(ReasonPhrase::from_static("x").as_bytes(), b"x");
}

#[test]
fn other_informational_responses() {
    let (out, after) = encode(Version::HTTP_11, false, &response(103, "ignored"));
    assert_eq!(out, "HTTP/1.1 103 Early Hints\r\n\r\n");
    assert_eq!(after, AfterResponse::KeepAlive);
}

#[test]
fn head_requests_get_headers_but_no_body() {
    let encoder = ResponseEncoder::new(Version::HTTP_11, true).with_head_request(true);
    let mut out = BytesMut::new();
    encoder.encode(&response(200, "hello"), &mut out);
    assert_eq!(text(&out), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    let mut res = response(200, "");
    res.headers_mut()
        .insert(CONTENT_LENGTH, "1234".parse().expect("valid"));
    let mut out = BytesMut::new();
    encoder.encode(&res, &mut out);
    assert_eq!(
        text(&out),
        "HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"
    );
}

fn stream(version: Version, keep_alive: bool, pieces: &[&[u8]]) -> (String, AfterResponse, bool) {
    let mut res = Response::new(());
    res.headers_mut().insert(
        CONTENT_TYPE,
        "application/javascript; charset=UTF-8"
            .parse()
            .expect("valid"),
    );
    res.headers_mut()
        .insert(CONTENT_LENGTH, "5".parse().expect("valid"));
    let mut out = BytesMut::new();
    let encoder = ResponseEncoder::new(version, keep_alive).start_stream(&res, &mut out);
    let must_close = encoder.must_close();
    for piece in pieces {
        encoder.encode_chunk(piece, &mut out);
    }
    let after = encoder.encode_end(&mut out);
    assert_eq!(after.must_close(), must_close);
    (text(&out), after, must_close)
}

#[test]
fn s10_http11_streaming_is_one_chunk_per_piece() {
    let prelude = [b'h'; 2048];
    let prelude = [&prelude[..], b"\n"].concat();
    let (out, after, must_close) = stream(
        Version::HTTP_11,
        true,
        &[&prelude, b"", b"o\n", b"c[3000,\"Go away!\"]\n"],
    );
    let expected = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/javascript; charset=UTF-8\r\nTransfer-Encoding: chunked\r\n\r\n\
         801\r\n{}\n\r\n2\r\no\n\r\n13\r\nc[3000,\"Go away!\"]\n\r\n0\r\n\r\n",
        "h".repeat(2048)
    );
    assert_eq!(out, expected);
    assert_eq!(after, AfterResponse::KeepAlive);
    assert!(!must_close);
}

#[test]
fn s10_http11_streaming_to_a_closing_client() {
    let (out, after, must_close) = stream(Version::HTTP_11, false, &[b"o\n"]);
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: application/javascript; charset=UTF-8\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n2\r\no\n\r\n0\r\n\r\n"
    );
    assert_eq!(after, AfterResponse::Close);
    assert!(must_close);
}

#[test]
fn s10_http10_streaming_is_raw_and_closes() {
    for keep_alive in [true, false] {
        let (out, after, must_close) =
            stream(Version::HTTP_10, keep_alive, &[b"hhh\n", b"", b"o\n"]);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-type: application/javascript; charset=UTF-8\r\nConnection: close\r\n\r\nhhh\no\n"
        );
        assert_eq!(after, AfterResponse::Close);
        assert!(must_close);
    }
}

#[test]
fn stream_encoder_reports_chunking() {
    let mut out = BytesMut::new();
    let res = Response::new(());
    assert!(
        ResponseEncoder::new(Version::HTTP_11, true)
            .start_stream(&res, &mut out)
            .is_chunked()
    );
    assert!(
        !ResponseEncoder::new(Version::HTTP_10, true)
            .start_stream(&res, &mut out)
            .is_chunked()
    );
}

#[test]
fn streaming_head_request_writes_no_body() {
    let mut out = BytesMut::new();
    let encoder = ResponseEncoder::new(Version::HTTP_11, true)
        .with_head_request(true)
        .start_stream(&Response::new(()), &mut out);
    encoder.encode_chunk(b"data", &mut out);
    assert_eq!(encoder.encode_end(&mut out), AfterResponse::KeepAlive);
    assert_eq!(
        text(&out),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
}

#[test]
fn streaming_a_bodyless_status_writes_no_body() {
    let mut out = BytesMut::new();
    let mut res = Response::new(());
    *res.status_mut() = StatusCode::NO_CONTENT;
    let encoder = ResponseEncoder::new(Version::HTTP_11, true).start_stream(&res, &mut out);
    assert!(!encoder.is_chunked());
    encoder.encode_chunk(b"data", &mut out);
    assert_eq!(encoder.encode_end(&mut out), AfterResponse::KeepAlive);
    assert_eq!(text(&out), "HTTP/1.1 204 No Content\r\n\r\n");
}

#[test]
fn encoded_responses_parse_back() {
    for version in [Version::HTTP_10, Version::HTTP_11] {
        for keep_alive in [true, false] {
            for status in [200, 204, 304, 404, 500] {
                let mut out = BytesMut::new();
                ResponseEncoder::new(version, keep_alive)
                    .encode(&response(status, "body"), &mut out);
                let mut fields = [httparse::EMPTY_HEADER; 8];
                let mut parsed = httparse::Response::new(&mut fields);
                let Ok(httparse::Status::Complete(len)) = parsed.parse(&out) else {
                    panic!("unparsable: {}", text(&out));
                };
                assert_eq!(parsed.code, Some(status));
                let lengths = parsed
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .count();
                let has_body = status != 204 && status != 304;
                assert_eq!(lengths, usize::from(has_body));
                assert_eq!(out.len() - len, if has_body { 4 } else { 0 });
            }
        }
    }
}

/// RFC 9110 §6.6.1: with a date, every final response (full or streamed) carries it once;
/// a caller's own `Date` wins; an interim response carries none.
#[test]
fn rfc9110_s6_6_1_date_on_final_responses() {
    use std::time::{Duration, UNIX_EPOCH};
    let date = sockjs_core::wire::HttpDate::from(UNIX_EPOCH + Duration::from_secs(784_111_777));
    let encoder = ResponseEncoder::new(Version::HTTP_11, true);
    let date = Some(&date);
    let mut out = BytesMut::new();
    encoder.encode_dated(&response(200, "hi"), date, &mut out);
    let full = text(&out);
    assert_eq!(
        full.matches("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n")
            .count(),
        1,
        "{full}"
    );
    out.clear();
    encoder.start_stream_dated(&response(200, ""), date, &mut out);
    assert!(text(&out).contains("\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
    out.clear();
    let own = Response::builder()
        .status(204)
        .header(http::header::DATE, "Mon, 07 Nov 1994 00:00:00 GMT")
        .body("")
        .expect("response");
    encoder.encode_dated(&own, date, &mut out);
    let own = text(&out);
    let dates = own
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("date:"));
    assert_eq!(dates.count(), 1, "{own}");
    assert!(own.contains("Mon, 07 Nov 1994"), "{own}");
    out.clear();
    encoder.encode_dated(&response(100, ""), date, &mut out);
    assert!(!text(&out).contains("Date"));
}
