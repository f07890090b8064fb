//! Replays the committed fuzz seeds (`fuzz/seeds/{route,payload,wire}`) through the same
//! invariants as the fuzz targets, so the corpus is exercised by a plain `cargo test` on a
//! stable toolchain. Inputs that once crashed a target belong in these seed directories
//! (and, for engine scripts, as a test below).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use bytes::BytesMut;
use sockjs_core::frame::MessageBatch;
use sockjs_core::payload::{decode_messages, decode_ws_message, form_decode, jsonp_payload};
use sockjs_core::route::Route;
use sockjs_core::wire::{Decoded, Limits, RequestDecoder};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn round_trip(messages: &[String]) {
    let mut batch = MessageBatch::default();
    for m in messages {
        batch.push(m);
    }
    let mut frame = Vec::new();
    batch.write_frame(&mut frame);
    assert_eq!(frame.len(), batch.frame_len());
    let json = std::str::from_utf8(&frame)
        .unwrap()
        .strip_prefix('a')
        .unwrap();
    let back: Vec<String> = serde_json::from_str(json).unwrap();
    assert_eq!(back, messages);
}

#[test]
fn payload_seeds() {
    for (name, data) in seeds("payload") {
        // A refusal hands nothing over; a JSON array of strings reads as serde_json reads it.
        let mut handed = 0;
        if sockjs_core::payload::decode_messages_each(&data, |_| handed += 1).is_err() {
            assert_eq!(handed, 0, "{name}");
        }
        if let Ok(expected) = serde_json::from_slice::<Vec<String>>(&data) {
            assert_eq!(decode_messages(&data).as_ref(), Ok(&expected), "{name}");
        }
        if let Ok(messages) = decode_messages(&data) {
            round_trip(&messages);
        }
        if let Ok(text) = std::str::from_utf8(&data) {
            if let Ok(messages) = decode_ws_message(text) {
                round_trip(&messages);
            }
            round_trip(&[text.to_owned()]);
        }
        let payload = jsonp_payload(Some("application/x-www-form-urlencoded"), &data);
        assert!(payload.len() <= data.len(), "{name}");
        assert!(form_decode(&data).len() <= data.len(), "{name}");
    }
}

#[test]
fn hostile_payloads_are_refused_not_crashed() {
    // Deep nesting, invalid UTF-8 and lone surrogates: refused or taken, never a panic or
    // a stack overflow. An array nested deep is one element, delivered as its JSON text
    // like any element that is not a string.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let inner = format!("{}{}", "[".repeat(99_999), "]".repeat(99_999));
    assert_eq!(decode_messages(deep.as_bytes()), Ok(vec![inner.clone()]));
    assert_eq!(decode_ws_message(&deep), Ok(vec![inner]));
    let unclosed = "[".repeat(100_000);
    assert!(decode_messages(unclosed.as_bytes()).is_err());
    assert!(decode_messages(b"[\"\xff\xfe\"]").is_err());
    let _ = decode_messages(br#"["\ud800"]"#);
    assert_eq!(
        decode_messages(b"[1,[\"x\"],null]").unwrap(),
        vec!["1", "[\"x\"]", "null"]
    );
}

#[test]
fn route_seeds() {
    for (name, data) in seeds("route") {
        let Ok(path) = std::str::from_utf8(&data) else {
            continue;
        };
        if let Some(Route::Session {
            server, session, ..
        }) = Route::parse(path)
        {
            for segment in [server, session] {
                assert!(
                    !segment.is_empty() && !segment.contains(['/', '.']),
                    "{name}"
                );
            }
        }
    }
    for path in [
        "/000/a.b/xhr",
        "/000//xhr_send",
        "/../../etc/passwd",
        "/a/b/xhr/x",
    ] {
        assert!(
            !matches!(Route::parse(path), Some(Route::Session { .. })),
            "{path}"
        );
    }
}

/// What each wire seed must come to: the requests decoded before it ends (and their
/// bodies), and the status of the error that ends it, if one does. A seed without an entry
/// fails the test: each says what it proves.
fn wire_seed_outcome(name: &str) -> (Vec<&'static [u8]>, Option<u16>) {
    match name {
        // Bytes no target may hold (and HTTP/9.9): refused at the request line, never routed.
        "binary_target" => (vec![], Some(400)),
        // A chunk size past u64: too large (413), never a wrapped, small length.
        "chunk_overflow" => (vec![], Some(413)),
        "chunked" => (vec![b"abc"], None),
        // An obsolete line folding (before two lengths that disagree): refused at the head.
        "obs_fold_two_lengths" => (vec![], Some(400)),
        // The body ends where Content-Length says; the next request follows.
        "pipelined" => (vec![br#"["a"]"#, b""], None),
        // Content-Length beside Transfer-Encoding: a smuggling shape, refused (RFC 9112 §6.3).
        "te_and_cl" => (vec![], Some(400)),
        // Odd Upgrade and Connection fields are the engine's to judge: decoded.
        "upgrade_shapes" => (vec![b""], None),
        other => panic!("wire seed {other} says nothing of its outcome: add it here"),
    }
}

#[test]
fn wire_seeds_whole_and_byte_by_byte() {
    for (name, data) in seeds("wire") {
        let (bodies, error) = wire_seed_outcome(&name);
        for piece in [data.len().max(1), 1] {
            let mut seen: Vec<Vec<u8>> = Vec::new();
            let mut failed = None;
            let limits = Limits::default();
            let mut decoder = RequestDecoder::new(limits);
            let mut buf = BytesMut::new();
            'feed: for chunk in data.chunks(piece) {
                buf.extend_from_slice(chunk);
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(Decoded::Request(req))) => {
                            assert!(req.request.body().len() <= limits.max_body_bytes);
                            assert!(req.request.headers().len() <= limits.max_headers);
                            seen.push(req.request.body().to_vec());
                        }
                        Ok(Some(Decoded::Continue)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            failed = Some(e.status().as_u16());
                            break 'feed;
                        }
                    }
                }
            }
            assert_eq!(seen, bodies, "{name} in pieces of {piece}");
            assert_eq!(failed, error, "{name} in pieces of {piece}");
        }
    }
}
