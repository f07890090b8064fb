//! The HTTP/1.1 request decoder, and the hixie-76 and RFC 6455 frame decoders, over
//! arbitrary bytes fed in arbitrary pieces: never panics, never holds more than their
//! limits, and decoded requests respect them (and a body limit of each request's own, by
//! its target, where one is given: a body refused for its size names its target). A second RFC 6455 decoder fed with a budget
//! (`feed_at_most`, then feeds of no new bytes until it has nothing left) hands out the
//! same messages and fails at the same point; so does a second hixie-76 decoder fed the
//! same bytes at once, and the hixie-76 decoder holds less than one message and its two
//! markers while it waits for more.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sockjs_core::wire::{Decoded, Limits, RequestDecoder, hixie76, rfc6455};

#[derive(Debug, Arbitrary)]
struct Input {
    pieces: Vec<Vec<u8>>,
    max_headers: u8,
    max_head_bytes: u16,
    max_body_bytes: u16,
    /// A body limit for targets whose path is longer than 4 bytes, `None`: the decoder's.
    own_limit: Option<u16>,
    budget: u8,
}

fuzz_target!(|input: Input| {
    let limits = Limits {
        max_headers: usize::from(input.max_headers).max(1),
        max_head_bytes: usize::from(input.max_head_bytes).max(16),
        max_body_bytes: usize::from(input.max_body_bytes),
    };
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut hixie = hixie76::Decoder::new(usize::from(input.max_body_bytes).max(1));
    let mut hixie_buf = BytesMut::new();
    let mut hixie_fed = Vec::new();
    let mut hixie_frames = Vec::new();
    let mut hixie_failed = None;
    let max_message = usize::from(input.max_body_bytes).max(1);
    let mut websocket = rfc6455::Decoder::new(max_message);
    let mut websocket_failed = false;
    let mut budgeted = rfc6455::Decoder::new(max_message);
    let budget = usize::from(input.budget);
    'feed: for piece in &input.pieces {
        buf.extend_from_slice(piece);
        if hixie_failed.is_none() {
            hixie_buf.extend_from_slice(piece);
            hixie_fed.extend_from_slice(piece);
        }
        // Before the request decoder, which may end the feed.
        while hixie_failed.is_none() {
            match hixie.decode(&mut hixie_buf) {
                Ok(Some(frame)) => hixie_frames.push(frame),
                Ok(None) => {
                    assert!(hixie_buf.len() < max_message + 2);
                    break;
                }
                Err(e) => hixie_failed = Some(e),
            }
        }
        loop {
            let own = |target: &http::Uri| match input.own_limit {
                Some(limit) if target.path().len() > 4 => usize::from(limit),
                _ => usize::MAX,
            };
            match decoder.decode_limited(&mut buf, own) {
                Ok(Some(Decoded::Request(req))) => {
                    assert!(req.request.body().len() <= limits.max_body_bytes);
                    assert!(req.request.body().len() <= own(req.request.uri()));
                    assert!(req.request.headers().len() <= limits.max_headers);
                    let mut out = BytesMut::new();
                    let encoder = req.response_encoder();
                    let _ = encoder.encode(&http::Response::new(&b"ok"[..]), &mut out);
                    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
                }
                Ok(Some(Decoded::Continue)) => {}
                Ok(None) => break,
                Err(e) => {
                    assert!(e.status().is_client_error() || e.status().is_server_error());
                    // A body refused for its size had its head read: its target is told.
                    if e == sockjs_core::wire::WireError::BodyTooLarge {
                        assert!(decoder.target().is_some());
                    }
                    // A refusal to a HEAD request has no content (RFC 9110 §9.3.2).
                    let mut out = BytesMut::new();
                    e.encode_refusal(None, decoder.asks_head(), &mut out);
                    let content = if decoder.asks_head() { "" } else { e.message() };
                    let ending = format!("\r\n\r\n{content}");
                    assert!(out.ends_with(ending.as_bytes()));
                    break 'feed;
                }
            }
            // The decoder's own buffering stays bounded by its limits.
            assert!(decoder.buffered_body() <= limits.max_body_bytes);
        }
        if !websocket_failed {
            let mut whole = Vec::new();
            let mut piece_copy = piece.clone();
            websocket_failed = websocket
                .feed(&mut piece_copy, &mut |m| whole.push(format!("{m:?}")))
                .is_err();
            // One unfinished frame at most: the message bound, and a control frame (which
            // may come between fragments, whatever the bound) with its header.
            assert!(websocket.buffered() <= max_message + 125 + 14);

            let mut spread = Vec::new();
            let mut piece_copy = piece.clone();
            let mut input: &mut [u8] = &mut piece_copy;
            let budgeted_failed = loop {
                match budgeted.feed_at_most(input, budget, &mut |m| spread.push(format!("{m:?}"))) {
                    Ok(true) => input = &mut [],
                    Ok(false) => break false,
                    Err(_) => break true,
                }
            };
            assert_eq!(spread, whole);
            assert_eq!(budgeted_failed, websocket_failed);
            assert!(budgeted.buffered() <= max_message + 125 + 14);
        }
    }
    let mut whole = hixie76::Decoder::new(max_message);
    let mut all = BytesMut::from(&hixie_fed[..]);
    let mut frames = Vec::new();
    let failed = loop {
        match whole.decode(&mut all) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert_eq!(frames, hixie_frames);
    assert_eq!(failed, hixie_failed);
});
