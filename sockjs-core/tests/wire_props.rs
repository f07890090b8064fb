//! Property tests for the wire codec: robustness, bounds, split invariance,
//! round trips.

mod wire_util;

use bytes::BytesMut;
use http::{Response, Version};
use proptest::collection::vec;
use proptest::prelude::*;
use sockjs_core::wire::hixie76::{self, Frame};
use sockjs_core::wire::{Limits, RequestDecoder, ResponseEncoder};
use wire_util::{feed_pieces, summarize};

const SMALL: Limits = Limits {
    max_headers: 8,
    max_head_bytes: 256,
    max_body_bytes: 512,
};

/// Pieces that are mostly HTTP-shaped, so random mixes reach deep states.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..64),
        Just(b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec()),
        Just(b"POST /x HTTP/1.0\r\n".to_vec()),
        Just(b"Content-Length: 5\r\n".to_vec()),
        Just(b"Content-Length: 100000\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"Expect: 100-continue\r\n".to_vec()),
        Just(b"Connection: Upgrade\r\nUpgrade: websocket\r\n".to_vec()),
        Just(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"5\r\nhello\r\n".to_vec()),
        Just(b"ff\r\n".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
        "[ -~]{0,40}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(pieces in vec(fragment(), 0..40)) {
        let mut decoder = RequestDecoder::new(SMALL);
        let mut buf = BytesMut::new();
        let bound = SMALL.max_head_bytes.max(SMALL.max_body_bytes);
        'feed: for piece in &pieces {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(None) => {
                        prop_assert!(buf.len() <= bound, "holding {} bytes", buf.len());
                        prop_assert!(decoder.buffered_body() <= SMALL.max_body_bytes);
                        break;
                    }
                    Ok(Some(decoded)) => {
                        if let wire_util::Event::Request(req) = summarize(decoded) {
                            prop_assert!(req.body.len() <= SMALL.max_body_bytes);
                            prop_assert!(req.headers.len() <= SMALL.max_headers);
                        }
                    }
                    Err(err) => {
                        // Errors are final and repeat.
                        prop_assert_eq!(decoder.decode(&mut buf).err(), Some(err));
                        break 'feed;
                    }
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048), cut in any::<prop::sample::Index>()) {
        let at = cut.index(bytes.len() + 1);
        let _ = feed_pieces(SMALL, &[&bytes[..at], &bytes[at..]]);
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoder = hixie76::Decoder::new(64);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
    }
}

/// One valid request as bytes, and the body it carries.
fn request() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let method = prop_oneof![
        Just("GET"),
        Just("POST"),
        Just("PUT"),
        Just("OPTIONS"),
        Just("DELETE")
    ];
    let path = "/[a-zA-Z0-9_.~-]{0,12}(\\?[a-z0-9=&]{0,8})?";
    let headers = vec(("x-[a-z0-9-]{1,10}", "[!-~]([ -~]{0,18}[!-~])?"), 0..5);
    let connection = prop_oneof![
        Just(None),
        Just(Some("close")),
        Just(Some("keep-alive")),
        Just(Some("Keep-Alive, foo"))
    ];
    let body = vec(any::<u8>(), 0..64);
    let framing = 0..3u8;
    let chunk_sizes = vec(1..20usize, 0..8);
    (
        method,
        path,
        any::<bool>(),
        headers,
        connection,
        body,
        framing,
        chunk_sizes,
        any::<bool>(),
    )
        .prop_map(
            |(method, path, http11, headers, connection, body, framing, sizes, expect)| {
                let mut out = format!(
                    "{method} {path} HTTP/1.{}\r\nHost: example\r\n",
                    u8::from(http11)
                )
                .into_bytes();
                for (name, value) in headers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                if let Some(c) = connection {
                    out.extend_from_slice(format!("Connection: {c}\r\n").as_bytes());
                }
                if expect {
                    out.extend_from_slice(b"Expect: 100-continue\r\n");
                }
                let chunked = framing == 2 && http11;
                if chunked {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    let mut rest = &body[..];
                    let mut sizes = sizes.into_iter().cycle();
                    while !rest.is_empty() {
                        let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
                        out.extend_from_slice(format!("{n:X};ext=1\r\n").as_bytes());
                        out.extend_from_slice(&rest[..n]);
                        out.extend_from_slice(b"\r\n");
                        rest = &rest[n..];
                    }
                    out.extend_from_slice(b"0\r\nx-trailer: t\r\n\r\n");
                    (out, body)
                } else if framing == 0 {
                    out.extend_from_slice(b"\r\n");
                    (out, Vec::new())
                } else {
                    out.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                    );
                    out.extend_from_slice(&body);
                    (out, body)
                }
            },
        )
}

proptest! {
    #[test]
    fn split_input_decodes_like_whole_input(
        requests in vec(request(), 1..4),
        cuts in vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let input: Vec<u8> = requests.iter().flat_map(|(bytes, _)| bytes.iter().copied()).collect();
        let whole = feed_pieces(Limits::default(), &[&input]);
        prop_assert_eq!(whole.error, None);
        let bodies: Vec<Vec<u8>> = whole.requests().into_iter().map(|r| r.body).collect();
        let expected: Vec<Vec<u8>> = requests.iter().map(|(_, body)| body.clone()).collect();
        prop_assert_eq!(bodies, expected);
        prop_assert!(whole.leftover.is_empty());

        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for p in points {
            pieces.push(&input[start..p]);
            start = p;
        }
        pieces.push(&input[start..]);
        let split = feed_pieces(Limits::default(), &pieces);
        prop_assert_eq!(split.error, None);
        prop_assert_eq!(split.requests(), whole.requests());
    }

    #[test]
    fn chunked_response_bodies_decode_back(pieces in vec(vec(any::<u8>(), 0..300), 0..10)) {
        let mut out = BytesMut::new();
        let stream = ResponseEncoder::new(Version::HTTP_11, true).start_stream(&Response::new(()), &mut out);
        let head_len = out.len();
        for piece in &pieces {
            stream.encode_chunk(piece, &mut out);
        }
        prop_assert!(!stream.encode_end(&mut out).must_close());
        let mut request = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(&out[head_len..]);
        let decoded = feed_pieces(Limits::default(), &[&request]);
        prop_assert_eq!(decoded.error, None);
        prop_assert_eq!(&decoded.requests()[0].body, &pieces.concat());
    }

    #[test]
    fn hixie76_round_trip(
        messages in vec(prop::option::weighted(0.9, ".{0,40}"), 0..10),
        cuts in vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let mut encoded = BytesMut::new();
        let mut expected = Vec::new();
        for message in &messages {
            match message {
                Some(text) => {
                    hixie76::encode_text(text, &mut encoded);
                    expected.push(Frame::Text(text.clone()));
                }
                None => {
                    hixie76::encode_close(&mut encoded);
                    expected.push(Frame::Close);
                }
            }
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(encoded.len() + 1)).collect();
        points.sort_unstable();
        points.push(encoded.len());
        let mut decoder = hixie76::Decoder::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut start = 0;
        for p in points {
            buf.extend_from_slice(&encoded[start..p]);
            start = p;
            while let Some(frame) = decoder.decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))? {
                frames.push(frame);
            }
        }
        prop_assert_eq!(frames, expected);
        prop_assert!(buf.is_empty());
    }
}
