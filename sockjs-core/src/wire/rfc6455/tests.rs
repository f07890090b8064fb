//! Unit tests of the RFC 6455 codec.

use super::*;

/// A masked client frame.
fn frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

fn feed(decoder: &mut Decoder, input: &[u8]) -> Result<Vec<Seen>, Error> {
    let mut seen = Vec::new();
    let mut input = input.to_vec();
    decoder.feed(&mut input, &mut |m| {
        seen.push(match m {
            Message::Text(t) => Seen::Text(t.to_owned()),
            Message::Binary(b) => Seen::Binary(b.to_vec()),
            Message::Ping(p) => Seen::Ping(p.to_vec()),
            Message::Pong(p) => Seen::Pong(p.to_vec()),
            Message::Close(c) => Seen::Close(c.map(|(code, r)| (code, r.to_owned()))),
        })
    })?;
    Ok(seen)
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

#[test]
fn rfc_example_frames() {
    // RFC 6455 §5.7: a masked "Hello".
    let hello = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let mut d = Decoder::new(1024);
    assert_eq!(feed(&mut d, &hello), Ok(vec![Seen::Text("Hello".into())]));
    // Fragmented "Hel" + "lo", with a ping between the fragments.
    let mut input = frame(0x01, b"Hel", MASK);
    input.extend(frame(0x89, b"p", MASK));
    input.extend(frame(0x80, b"lo", MASK));
    assert_eq!(
        feed(&mut d, &input),
        Ok(vec![Seen::Ping(b"p".to_vec()), Seen::Text("Hello".into())])
    );
    assert!(d.is_idle());
}

#[test]
fn every_split_point_gives_the_same_messages() {
    let mut input = frame(0x81, "héllo".as_bytes(), MASK);
    input.extend(frame(0x82, &[0, 1, 2, 255], MASK));
    input.extend(frame(0x81, &vec![b'x'; 300], MASK));
    input.extend(frame(0x8A, b"", MASK));
    input.extend(frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e'], MASK));
    let whole = feed(&mut Decoder::new(1 << 20), &input).expect("decoded");
    assert_eq!(whole.len(), 5);
    for split in 0..input.len() {
        let mut d = Decoder::new(1 << 20);
        let mut seen = feed(&mut d, &input[..split]).expect("decoded");
        seen.extend(feed(&mut d, &input[split..]).expect("decoded"));
        assert_eq!(seen, whole, "split at {split}");
        assert!(d.is_idle());
    }
}

#[test]
fn lengths_of_every_encoding() {
    for len in [0, 125, 126, 65535, 65536] {
        let payload = vec![b'a'; len];
        let seen = feed(&mut Decoder::new(1 << 20), &frame(0x82, &payload, MASK)).expect("decoded");
        assert_eq!(seen, [Seen::Binary(payload)]);
    }
}

#[test]
fn protocol_errors_are_1002() {
    let cases: Vec<Vec<u8>> = vec![
        vec![0x81, 0x00],                                            // unmasked
        frame(0xC1, b"x", MASK),                                     // RSV1 without an extension
        frame(0x83, b"x", MASK),                                     // reserved data opcode
        frame(0x8B, b"x", MASK),                                     // reserved control opcode
        frame(0x09, b"x", MASK),                                     // fragmented ping
        frame(0x89, &[0; 126], MASK),                                // long ping
        frame(0x80, b"x", MASK), // continuation without a message
        [frame(0x01, b"a", MASK), frame(0x81, b"b", MASK)].concat(), // interleaved
        frame(0x88, &[3], MASK), // one-byte close payload
        frame(0x88, &[0x03, 0xed], MASK), // close code 1005
        frame(0x88, &[0x0b, 0xb7], MASK), // close code 2999
    ];
    for case in cases {
        let mut d = Decoder::new(1024);
        let error = feed(&mut d, &case).expect_err("refused");
        assert_eq!(error.close_code(), 1002, "{case:?}: {error}");
        // Refused for good.
        assert_eq!(feed(&mut d, &frame(0x81, b"x", MASK)), Err(error));
    }
    let mut huge = vec![0x82, 0xFF];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    huge.extend_from_slice(&MASK);
    assert_eq!(
        feed(&mut Decoder::new(1024), &huge).map_err(Error::close_code),
        Err(1002)
    );
}

#[test]
fn bad_utf8_is_1007_and_too_big_is_1009() {
    let bad = feed(&mut Decoder::new(64), &frame(0x81, &[0xff, 0xfe], MASK));
    assert_eq!(bad, Err(Error::InvalidUtf8));
    let reason = feed(
        &mut Decoder::new(64),
        &frame(0x88, &[0x03, 0xe8, 0xff], MASK),
    );
    assert_eq!(reason, Err(Error::InvalidUtf8));
    // Refused from the header alone: the payload never needs to arrive.
    let head = &frame(0x81, &[b'x'; 65], MASK)[..6];
    assert_eq!(feed(&mut Decoder::new(64), head), Err(Error::TooBig));
    // A fragmented message counts all its fragments.
    let mut d = Decoder::new(64);
    assert_eq!(feed(&mut d, &frame(0x01, &[b'x'; 40], MASK)), Ok(vec![]));
    assert_eq!(
        feed(&mut d, &frame(0x80, &[b'x'; 40], MASK)),
        Err(Error::TooBig)
    );
    assert_eq!(
        feed(&mut Decoder::new(64), &frame(0x81, &[b'x'; 64], MASK)).map(|s| s.len()),
        Ok(1)
    );
}

#[test]
fn close_frames() {
    let mut d = Decoder::new(64);
    assert_eq!(
        feed(&mut d, &frame(0x88, &[], MASK)),
        Ok(vec![Seen::Close(None)])
    );
    assert_eq!(
        feed(&mut d, &frame(0x88, &[0x0f, 0xa0, b'o', b'k'], MASK)),
        Ok(vec![Seen::Close(Some((4000, "ok".into())))])
    );
}

#[test]
fn rfc6455_s7_4_every_close_code_is_taken_or_refused_by_the_rule() {
    // RFC 6455 sections 7.4.1 and 7.4.2: a peer may send 1000-1003, 1007-1014 (IANA-registered
    // since) and 3000-4999; every other code breaks the protocol.
    for code in 0..=u16::MAX {
        let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        let seen = feed(
            &mut Decoder::new(64),
            &frame(0x88, &code.to_be_bytes(), MASK),
        );
        if allowed {
            assert_eq!(seen, Ok(vec![Seen::Close(Some((code, String::new())))]));
        } else {
            assert_eq!(seen.map_err(Error::close_code), Err(1002), "code {code}");
        }
    }
}

#[test]
fn rfc6455_s8_1_a_fragment_that_cannot_be_utf8_fails_before_the_message_ends() {
    // Autobahn 6.4.1: the second of three fragments holds a code point past U+10FFFF.
    let mut d = Decoder::new(64);
    assert_eq!(
        feed(&mut d, &frame(0x01, "κόσμε".as_bytes(), MASK)),
        Ok(vec![])
    );
    assert_eq!(
        feed(&mut d, &frame(0x00, &[0xf4, 0x90, 0x80, 0x80], MASK)),
        Err(Error::InvalidUtf8)
    );
    // Invalid in the first fragment, with a ping behind it: nothing more is handed out.
    let mut input = frame(0x01, &[b'a', 0xff], MASK);
    input.extend(frame(0x89, b"ping", MASK));
    assert_eq!(feed(&mut Decoder::new(64), &input), Err(Error::InvalidUtf8));
    // A character cut at a fragment's end is not a fault yet, however many fragments it
    // spans, nor is a fragment after it that finishes it.
    let bytes = "a😀b".as_bytes();
    let mut d = Decoder::new(64);
    let mut input = frame(0x01, &bytes[..2], MASK);
    input.extend(frame(0x00, &bytes[2..3], MASK));
    input.extend(frame(0x89, b"", MASK));
    input.extend(frame(0x00, &bytes[3..5], MASK));
    assert_eq!(feed(&mut d, &input), Ok(vec![Seen::Ping(vec![])]));
    assert_eq!(
        feed(&mut d, &frame(0x80, &bytes[5..], MASK)),
        Ok(vec![Seen::Text("a😀b".into())])
    );
    // A binary message is not text: the engine decides what its bytes are.
    let mut d = Decoder::new(64);
    assert_eq!(feed(&mut d, &frame(0x02, &[0xff], MASK)), Ok(vec![]));
    assert_eq!(
        feed(&mut d, &frame(0x80, &[0xfe], MASK)),
        Ok(vec![Seen::Binary(vec![0xff, 0xfe])])
    );
}

/// RFC 6455 §5.4: a new data frame inside a fragmented message is a protocol error (1002),
/// told from its header, also when the two together would be over the message bound
/// (which would otherwise read as 1009); a continuation with no message is one too.
#[test]
fn rfc6455_s5_4_a_new_message_inside_a_fragmented_one_is_a_protocol_error() {
    let mask = [1, 2, 3, 4];
    let mut decoder = Decoder::new(256);
    let start = frame(TEXT, &[b'a'; 200], mask);
    assert_eq!(feed(&mut decoder, &start), Ok(vec![]));
    // Only the new frame's header: refused before its payload arrives.
    let new = frame(0x80 | TEXT, &[b'b'; 100], mask);
    let refused = feed(&mut decoder, &new[..8]).map_err(Error::close_code);
    assert_eq!(refused, Err(1002));

    let mut decoder = Decoder::new(256);
    let orphan = frame(0x80 | CONTINUATION, b"x", mask);
    let refused = feed(&mut decoder, &orphan).map_err(Error::close_code);
    assert_eq!(refused, Err(1002));
}

#[test]
fn rfc6455_s5_4_fragments_split_characters_and_may_be_empty() {
    let text = "κόσμε";
    let bytes = text.as_bytes();
    let mut d = Decoder::new(64);
    let mut input = frame(0x01, &bytes[..1], MASK);
    input.extend(frame(0x00, &bytes[1..4], MASK));
    input.extend(frame(0x80, &bytes[4..], MASK));
    assert_eq!(feed(&mut d, &input), Ok(vec![Seen::Text(text.into())]));
    let mut input = frame(0x01, b"", MASK);
    input.extend(frame(0x00, b"middle", MASK));
    input.extend(frame(0x80, b"", MASK));
    assert_eq!(feed(&mut d, &input), Ok(vec![Seen::Text("middle".into())]));
    // A character left unfinished by the last fragment is not UTF-8 (RFC 6455 §8.1).
    let mut input = frame(0x01, &bytes[..2], MASK);
    input.extend(frame(0x80, &bytes[2..3], MASK));
    assert_eq!(feed(&mut d, &input), Err(Error::InvalidUtf8));
}

#[test]
fn server_frames() {
    let mut out = Vec::new();
    encode_text("hi", &mut out);
    assert_eq!(out, [0x81, 2, b'h', b'i']);
    out.clear();
    encode_text(&"x".repeat(126), &mut out);
    assert_eq!(out[..4], [0x81, 126, 0, 126]);
    out.clear();
    encode_text(&"x".repeat(70_000), &mut out);
    assert_eq!(out[..10], [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    out.clear();
    encode_ping(&mut out);
    encode_pong(b"p", &mut out);
    assert_eq!(out, [0x89, 0, 0x8A, 1, b'p']);
    out.clear();
    encode_close(1000, &"é".repeat(100), &mut out);
    assert_eq!(out[..4], [0x88, 124, 0x03, 0xe8]);
    assert!(std::str::from_utf8(&out[4..]).is_ok());
}

#[test]
fn unmasking_matches_the_bytewise_rule() {
    // Short payloads, and lengths around whole blocks and words.
    for len in 0..300 {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let mut fast = data.clone();
        unmask(&mut fast, MASK);
        let slow: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ MASK[i % 4])
            .collect();
        assert_eq!(fast, slow);
    }
}

/// RFC 6455 §5.5: control frames carry up to 125 bytes whatever the message size bound,
/// which is for messages: a long ping or close reason under a small bound is no 1009.
#[test]
fn rfc6455_s5_5_control_frames_are_not_bound_by_the_message_size() {
    let mut d = Decoder::new(16);
    let ping = [b'p'; 125];
    assert_eq!(
        feed(&mut d, &frame(0x89, &ping, MASK)),
        Ok(vec![Seen::Ping(ping.to_vec())])
    );
    // Between the fragments of a message, which the bound counts without them.
    assert_eq!(feed(&mut d, &frame(0x01, &[b'x'; 10], MASK)), Ok(vec![]));
    assert_eq!(
        feed(&mut d, &frame(0x8a, &ping, MASK)),
        Ok(vec![Seen::Pong(ping.to_vec())])
    );
    assert_eq!(
        feed(&mut d, &frame(0x80, &[b'y'; 6], MASK)),
        Ok(vec![Seen::Text("xxxxxxxxxxyyyyyy".to_owned())])
    );
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(&[b'r'; 100]);
    assert_eq!(
        feed(&mut d, &frame(0x88, &close, MASK)),
        Ok(vec![Seen::Close(Some((1000, "r".repeat(100))))])
    );
}

/// A frame's header alone (14 bytes announcing 256 KiB) buys no buffer for the whole
/// frame: what is held grows with what arrives.
#[test]
fn a_frame_header_alone_reserves_no_whole_message() {
    let max = 256 * 1024;
    let mut d = Decoder::new(max);
    let whole = frame(0x82, &vec![7u8; max], MASK);
    assert_eq!(feed(&mut d, &whole[..14]), Ok(vec![]));
    assert!(d.partial.capacity() < 1024, "{}", d.partial.capacity());
    // The rest, in pieces, still makes the message.
    let mut seen = Vec::new();
    for piece in whole[14..].chunks(16 * 1024) {
        seen.extend(feed(&mut d, piece).expect("a piece of a good frame"));
    }
    assert_eq!(seen, vec![Seen::Binary(vec![7u8; max])]);
    assert_eq!(d.partial.capacity(), 0);
}

/// What is left of the input after a message, the start of the next frame, is held in a
/// buffer of its own size: not in the one the message grew (by doubling, to twice the
/// bound), which would stay with the connection until that next frame ended.
#[test]
fn the_start_of_the_next_frame_does_not_keep_the_last_messages_buffer() {
    let max = 256 * 1024;
    let mut d = Decoder::new(max);
    let mut input = frame(0x82, &vec![7u8; max], MASK);
    let next = frame(0x82, b"next", MASK);
    input.push(next[0]);
    let mut seen = Vec::new();
    for piece in input.chunks(16 * 1024) {
        seen.extend(feed(&mut d, piece).expect("a piece of a good frame"));
    }
    assert_eq!(seen, vec![Seen::Binary(vec![7u8; max])]);
    assert_eq!(d.buffered(), 1);
    assert!(d.partial.capacity() <= 128, "{}", d.partial.capacity());
    assert_eq!(
        feed(&mut d, &next[1..]),
        Ok(vec![Seen::Binary(b"next".to_vec())])
    );
}

/// RFC 6455 §8.1 within one frame (Autobahn 6.4.3 and 6.4.4): a text frame that arrives in
/// pieces fails at the piece whose bytes can no longer be UTF-8, not once it is whole; a
/// character cut between pieces is no fault, and the frame's messages are the same
/// however it is cut.
#[test]
fn rfc6455_s8_1_a_frame_that_cannot_be_utf8_fails_before_it_has_all_arrived() {
    // 6.4.3: "κόσμε", a code point past U+10FFFF, "edited", in three pieces.
    let mut payload = "κόσμε".as_bytes().to_vec();
    let bad = payload.len();
    payload.extend([0xf4, 0x90, 0x80, 0x80]);
    payload.extend(b"edited");
    let input = frame(0x81, &payload, MASK);
    let header = input.len() - payload.len();
    let mut d = Decoder::new(1024);
    assert_eq!(feed(&mut d, &input[..header + bad]), Ok(vec![]));
    assert_eq!(
        feed(&mut d, &input[header + bad..header + bad + 4]),
        Err(Error::InvalidUtf8)
    );
    // 6.4.4: the first byte that cannot go on (0x90 after 0xf4) arrives alone.
    let mut d = Decoder::new(1024);
    assert_eq!(feed(&mut d, &input[..header + bad + 1]), Ok(vec![]));
    assert_eq!(
        feed(&mut d, &input[header + bad + 1..header + bad + 2]),
        Err(Error::InvalidUtf8)
    );
    // Not before: a character cut at a piece's end waits for the next piece.
    let text = "a😀bκ";
    let good = frame(0x81, text.as_bytes(), MASK);
    for split in 0..good.len() {
        for second in split..good.len() {
            let mut d = Decoder::new(1024);
            let mut seen = feed(&mut d, &good[..split]).expect("first piece");
            seen.extend(feed(&mut d, &good[split..second]).expect("second piece"));
            seen.extend(feed(&mut d, &good[second..]).expect("last piece"));
            assert_eq!(
                seen,
                [Seen::Text(text.into())],
                "cut at {split} and {second}"
            );
            assert!(d.is_idle());
        }
    }
    // A continuation finishing a character the fragment before it cut: checked together.
    let bytes = "a😀".as_bytes();
    let mut d = Decoder::new(1024);
    assert_eq!(feed(&mut d, &frame(0x01, &bytes[..2], MASK)), Ok(vec![]));
    let rest = frame(0x80, &[bytes[2], b'x', b'y'], MASK);
    assert_eq!(feed(&mut d, &rest[..rest.len() - 2]), Ok(vec![]));
    assert_eq!(
        feed(&mut d, &rest[rest.len() - 2..rest.len() - 1]),
        Err(Error::InvalidUtf8)
    );
    let mut d = Decoder::new(1024);
    assert_eq!(feed(&mut d, &frame(0x01, &bytes[..2], MASK)), Ok(vec![]));
    let mut rest_bytes = bytes[2..].to_vec();
    rest_bytes.extend(b"xy");
    let rest = frame(0x80, &rest_bytes, MASK);
    assert_eq!(feed(&mut d, &rest[..rest.len() - 3]), Ok(vec![]));
    assert_eq!(
        feed(&mut d, &rest[rest.len() - 3..]),
        Ok(vec![Seen::Text("a😀xy".into())])
    );
    // Binary is not text, whatever its bytes.
    let binary = frame(0x82, &[0xff, 0xfe, 0x00], MASK);
    let mut d = Decoder::new(1024);
    assert_eq!(feed(&mut d, &binary[..binary.len() - 1]), Ok(vec![]));
    assert_eq!(
        feed(&mut d, &binary[binary.len() - 1..]),
        Ok(vec![Seen::Binary(vec![0xff, 0xfe, 0x00])])
    );
}

/// The early check's state belongs to one unfinished frame: after a frame completes, a new
/// unfinished one in the same input starts afresh (also after a stop at the budget, and
/// after a ping in front of it), and the completed frame was unmasked exactly once.
#[test]
fn rfc6455_s8_1_each_unfinished_frame_is_checked_afresh() {
    let first = frame(0x81, "κόσμε".as_bytes(), MASK);
    let second = frame(0x81, "héllo wörld".as_bytes(), [9, 8, 7, 6]);
    for budget in [usize::MAX, 1] {
        for cut in 1..first.len() {
            // The first frame arrives in two pieces, the second piece bringing the start
            // of the next frame (after a ping) with it.
            let mut tail = first[cut..].to_vec();
            tail.extend(frame(0x89, b"p", MASK));
            tail.extend(&second[..second.len() - 3]);
            let mut d = Decoder::new(1024);
            let mut seen = Vec::new();
            for piece in [&first[..cut], &tail[..], &second[second.len() - 3..]] {
                let mut input = piece.to_vec();
                let mut on_message = |m: Message<'_>| {
                    seen.push(match m {
                        Message::Text(t) => Seen::Text(t.to_owned()),
                        Message::Ping(p) => Seen::Ping(p.to_vec()),
                        other => panic!("{other:?}"),
                    })
                };
                let mut more = d.feed_at_most(&mut input, budget, &mut on_message);
                while more == Ok(true) {
                    more = d.feed_at_most(&mut [], budget, &mut on_message);
                }
                assert_eq!(more, Ok(false), "cut at {cut}, budget {budget}");
            }
            assert_eq!(
                seen,
                [
                    Seen::Text("κόσμε".into()),
                    Seen::Ping(b"p".to_vec()),
                    Seen::Text("héllo wörld".into())
                ],
                "cut at {cut}, budget {budget}"
            );
            assert!(d.is_idle());
        }
    }
}
