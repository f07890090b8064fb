//! permessage-deflate in the RFC 6455 codec (RFC 7692): compressed client messages are
//! accepted only where negotiated and only on the first frame of a data message, inflate
//! to what was compressed however they are fragmented and split, and are bounded by their
//! inflated size; the server's compressed frames inflate back to the text.

use flate2::{Decompress, FlushDecompress};
use proptest::collection::vec;
use proptest::prelude::*;
use sockjs_core::wire::rfc6455::{Decoder, Deflater, Error, Message, compress_message};
use sockjs_core::{DeflateOptions, DeflateParams};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn params(takeover: bool) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: !takeover,
        client_no_context_takeover: !takeover,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    }
}

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

/// A compressed text message in `parts` frames (RSV1 on the first only).
fn compressed(text: &str, parts: usize) -> Vec<u8> {
    compressed_at(text, parts, 6)
}

/// [`compressed`] at compression `level`.
fn compressed_at(text: &str, parts: usize, level: u8) -> Vec<u8> {
    let data = compress_message(text.as_bytes(), level);
    let chunk = data.len().div_ceil(parts.max(1)).max(1);
    let pieces: Vec<&[u8]> = data.chunks(chunk).collect();
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let fin = if i + 1 == pieces.len() { 0x80 } else { 0 };
        let first = if i == 0 { 0x40 | 0x01 } else { 0x00 };
        out.extend(frame(fin | first, piece, MASK));
    }
    out
}

fn feed(decoder: &mut Decoder, input: &[u8]) -> Result<Vec<String>, Error> {
    let mut seen = Vec::new();
    let mut input = input.to_vec();
    decoder.feed(&mut input, &mut |m| {
        seen.push(match m {
            Message::Text(t) => t.to_owned(),
            other => format!("{other:?}"),
        })
    })?;
    Ok(seen)
}

/// What a client does with a server frame: the text, inflated if RSV1 is set.
fn client_read(frame: &[u8], inflater: &mut Decompress) -> (bool, String) {
    assert_eq!(frame[0] & 0x0F, 0x1, "a text frame");
    let (len, at) = match frame[1] {
        126 => (u16::from_be_bytes([frame[2], frame[3]]) as usize, 4),
        127 => (
            u64::from_be_bytes(frame[2..10].try_into().expect("8 bytes")) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = &frame[at..];
    assert_eq!(payload.len(), len, "one whole frame");
    if frame[0] & 0x40 == 0 {
        return (false, String::from_utf8(payload.to_vec()).expect("utf-8"));
    }
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(len * 20 + 1024);
    inflater
        .decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .expect("inflates");
    (true, String::from_utf8(out).expect("utf-8"))
}

#[test]
fn rfc7692_s6_rsv1_needs_negotiation() {
    let hello = compressed("Hello", 1);
    let refused = feed(&mut Decoder::new(1024), &hello).map_err(Error::close_code);
    assert_eq!(refused, Err(1002));
    let accepted = feed(&mut Decoder::with_deflate(1024, &params(false)), &hello);
    assert_eq!(accepted, Ok(vec!["Hello".to_owned()]));
}

#[test]
fn rfc7692_s6_rsv1_only_on_the_first_frame_of_a_data_message() {
    let cases = [
        frame(0xC9, b"", MASK),           // ping with RSV1
        frame(0xC8, &[0x03, 0xe8], MASK), // close with RSV1
        [frame(0x41, b"\xf2", MASK), frame(0xC0, b"", MASK)].concat(), // continuation
        frame(0xA1, b"x", MASK),          // RSV2
        frame(0x91, b"x", MASK),          // RSV3
        frame(0xE1, b"x", MASK),          // RSV1 and RSV2
    ];
    for case in cases {
        let mut d = Decoder::with_deflate(1024, &params(false));
        let result = feed(&mut d, &case).map_err(Error::close_code);
        assert_eq!(result, Err(1002), "{case:02x?}");
    }
    // Uncompressed messages still pass on a deflate connection, in any mix.
    let mut d = Decoder::with_deflate(1024, &params(false));
    let mixed = [
        frame(0x81, b"plain", MASK),
        compressed("squeezed", 3),
        frame(0x89, b"p", MASK),
    ]
    .concat();
    assert_eq!(
        feed(&mut d, &mixed),
        Ok(vec![
            "plain".to_owned(),
            "squeezed".to_owned(),
            "Ping([112])".to_owned()
        ])
    );
}

#[test]
fn rfc7692_s7_2_2_bad_data_is_1007_and_the_bound_is_on_the_inflated_size() {
    let mut d = Decoder::with_deflate(1024, &params(false));
    let garbage = frame(0xC1, &[0xff, 0xff, 0xff, 0xff], MASK);
    assert_eq!(feed(&mut d, &garbage), Err(Error::InvalidDeflate));
    assert_eq!(Error::InvalidDeflate.close_code(), 1007);
    // 1 MiB of spaces compresses to about a kilobyte; the bound is 64 KiB.
    let bomb = compressed(&" ".repeat(1 << 20), 1);
    assert!(bomb.len() < 4096, "{}", bomb.len());
    let mut d = Decoder::with_deflate(64 * 1024, &params(false));
    assert_eq!(feed(&mut d, &bomb), Err(Error::TooBig));
    // Exactly at the bound is fine.
    let mut d = Decoder::with_deflate(64 * 1024, &params(false));
    let full = feed(&mut d, &compressed(&"y".repeat(64 * 1024), 2)).expect("at the bound");
    assert_eq!(full[0].len(), 64 * 1024);
    // Inflated text must be UTF-8.
    let bytes = compress_message(&[0xff, 0xfe], 6);
    let mut d = Decoder::with_deflate(64, &params(false));
    assert_eq!(
        feed(&mut d, &frame(0xC1, &bytes, MASK)),
        Err(Error::InvalidUtf8)
    );
}

#[test]
fn rfc7692_s7_2_3_2_client_context_takeover_keeps_the_window() {
    // RFC 7692 §7.2.3.2: the second "Hello" refers back into the first.
    let first = frame(0xC1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], MASK);
    let second = frame(0xC1, &[0xf2, 0x00, 0x11, 0x00, 0x00], MASK);
    let mut d = Decoder::with_deflate(1024, &params(true));
    let both = [first.clone(), second.clone()].concat();
    assert_eq!(
        feed(&mut d, &both),
        Ok(vec!["Hello".into(), "Hello".into()])
    );
    // Without takeover every message starts on a zeroed window (the thread's decompressor
    // is reset for each): the back-reference reaches nothing of the earlier message, nor
    // of another connection's message inflated on the same thread just before.
    let mut d = Decoder::with_deflate(1024, &params(false));
    let seen = feed(&mut d, &both).unwrap_or_default();
    assert_ne!(seen.get(1).map(String::as_str), Some("Hello"), "{seen:?}");
    let mut other = Decoder::with_deflate(1024, &params(false));
    assert_eq!(feed(&mut other, &first), Ok(vec!["Hello".into()]));
    // RFC 1951 §3.2.5: a distance cannot reach before the start of the stream; with no
    // context takeover each message is a stream of its own, so the second "Hello" alone is
    // data that does not inflate (1007), not text (zeros from a cleared window).
    let mut d = Decoder::with_deflate(1024, &params(false));
    assert_eq!(feed(&mut d, &second), Err(Error::InvalidDeflate));
    // With takeover, the same on a connection's first message.
    let mut d = Decoder::with_deflate(1024, &params(true));
    assert_eq!(feed(&mut d, &second), Err(Error::InvalidDeflate));
}

#[test]
fn server_frames_compress_from_min_size_and_inflate_back() {
    let options = DeflateOptions {
        min_size: 64,
        ..DeflateOptions::default()
    };
    let json = format!(
        "a[{}]",
        r#""{\"user\":\"ann\",\"text\":\"hello\"}","#.repeat(20)
    );
    for takeover in [false, true] {
        let mut deflater = Deflater::new(&params(takeover), &options);
        let mut inflater = Decompress::new(false);
        for _ in 0..3 {
            let mut out = Vec::new();
            deflater.encode_text(&json, &mut out);
            assert!(
                out.len() < json.len() / 3,
                "{} of {}",
                out.len(),
                json.len()
            );
            assert_eq!(client_read(&out, &mut inflater), (true, json.clone()));
            if !takeover {
                inflater.reset(false);
            }
        }
        assert_eq!(deflater.holds_state(), takeover);
        // Short messages go as they are.
        let mut out = Vec::new();
        deflater.encode_text("a[\"hi\"]", &mut out);
        assert_eq!(out, [&[0x81, 7][..], b"a[\"hi\"]"].concat());
    }
    // Incompressible text without takeover goes uncompressed, since that is shorter.
    let mut deflater = Deflater::new(&params(false), &options);
    let noise: String = (0..400u32)
        .map(|i| char::from_u32(0x4e00 + (i * 7919 % 20000)).unwrap_or('x'))
        .collect();
    let mut out = Vec::new();
    deflater.encode_text(&noise, &mut out);
    let (was_compressed, text) = client_read(&out, &mut Decompress::new(false));
    assert_eq!(text, noise);
    assert!(!was_compressed || out.len() < noise.len());
}

#[test]
fn rfc7692_s7_1_2_1_a_smaller_server_window_compresses_only_what_fits_in_it() {
    let options = DeflateOptions {
        min_size: 64,
        server_context_takeover: true,
        ..DeflateOptions::default()
    };
    let json = |len: usize| {
        // Compressible, but not so much that it inflates past `client_read`'s room.
        let mut text = String::from("a[\"");
        for i in 0.. {
            if text.len() >= len - 2 {
                break;
            }
            text.push_str(&format!("ann says {i} "));
        }
        text.truncate(len - 2);
        text.push_str("\"]");
        text
    };
    for bits in 8..15u8 {
        let window = 1usize << bits;
        // Context takeover asked for by the options but not by the parameters: each message
        // must stand alone all the same, or it could refer back past the window.
        let params = DeflateParams {
            server_max_window_bits: bits,
            ..params(true)
        };
        assert_eq!(params.largest_compressed(), window);
        let mut deflater = Deflater::new(&params, &options);
        for len in [window - 1, window] {
            let text = json(len);
            let mut out = Vec::new();
            deflater.encode_text(&text, &mut out);
            // Inflated on a fresh decompressor: nothing is kept from the message before.
            assert_eq!(client_read(&out, &mut Decompress::new(false)), (true, text));
        }
        assert!(!deflater.holds_state(), "{bits} bits: no context kept");
        let text = json(window + 1);
        let mut out = Vec::new();
        deflater.encode_text(&text, &mut out);
        assert_eq!(
            client_read(&out, &mut Decompress::new(false)),
            (false, text)
        );
    }
    assert_eq!(params(true).largest_compressed(), usize::MAX);
}

proptest! {
    /// Whatever is compressed, in however many frames, and however the bytes are split,
    /// the same texts come out.
    #[test]
    fn roundtrip_and_split_invariance(
        texts in vec(("[a-zé€ {}\":,0-9]{0,300}", 1usize..4), 1..5),
        split in any::<prop::sample::Index>(),
    ) {
        let mut input = Vec::new();
        for (text, parts) in &texts {
            input.extend(compressed(text, *parts));
        }
        let want: Vec<String> = texts.iter().map(|(t, _)| t.clone()).collect();
        let mut d = Decoder::with_deflate(4096, &params(false));
        prop_assert_eq!(feed(&mut d, &input), Ok(want.clone()));
        let at = split.index(input.len() + 1);
        let mut d = Decoder::with_deflate(4096, &params(false));
        let mut seen = feed(&mut d, &input[..at]).expect("first part");
        seen.extend(feed(&mut d, &input[at..]).expect("second part"));
        prop_assert_eq!(seen, want);
        prop_assert!(d.is_idle());
    }

    /// A message that inflates past the bound is refused with 1009, whatever its
    /// compressed size, and the decoder holds no more than the bound meanwhile.
    #[test]
    fn bombs_are_refused(len in 1usize..200_000, max in 1usize..50_000, parts in 1usize..4) {
        let text = "ab".repeat(len / 2 + 1);
        let input = compressed(&text, parts);
        let mut d = Decoder::with_deflate(max, &params(false));
        let result = feed(&mut d, &input);
        if text.len() > max {
            prop_assert_eq!(result, Err(Error::TooBig));
        } else {
            prop_assert_eq!(result.map(|s| s.len()), Ok(1));
        }
        prop_assert!(d.buffered() <= max + max / 4096 + 64 + 14);
    }

    /// Hostile compressed payloads (any bytes with RSV1): never a panic, never more held
    /// than the bound allows, and a message that is accepted is exactly what a reference
    /// inflater (flate2) makes of the payload.
    #[test]
    fn arbitrary_compressed_payloads_are_bounded_and_read_as_inflate_reads_them(
        payload in vec(any::<u8>(), 0..2048),
        max in 1usize..8192,
        takeover in any::<bool>(),
    ) {
        let mut d = Decoder::with_deflate(max, &params(takeover));
        let result = feed(&mut d, &frame(0xC1, &payload, MASK));
        prop_assert!(d.buffered() <= max + max / 4096 + 64 + 14);
        if let Ok(messages) = result {
            prop_assert_eq!(messages.len(), 1);
            let mut input = payload.clone();
            input.extend_from_slice(&[0, 0, 0xff, 0xff]);
            let mut out = Vec::with_capacity(max + 1);
            let inflated = Decompress::new(false).decompress_vec(&input, &mut out, FlushDecompress::Sync);
            prop_assert!(inflated.is_ok(), "accepted what inflate refuses: {:?}", inflated);
            prop_assert_eq!(messages[0].as_bytes(), &out[..]);
        }
    }

    /// Any text within the bound is accepted, compressed at any level (incompressible text
    /// grows a little: the bound on compressed bytes must leave room for it), and any text
    /// past it refused with 1009.
    #[test]
    fn any_text_is_accepted_exactly_when_it_fits_the_bound(
        text in vec(any::<char>(), 0..400).prop_map(|c| c.into_iter().collect::<String>()),
        level in 0u8..=9,
        slack in -2i64..=2,
        parts in 1usize..4,
        takeover in any::<bool>(),
    ) {
        let max = usize::try_from((text.len() as i64 + slack).max(1)).expect("positive");
        let input = compressed_at(&text, parts, level);
        let mut d = Decoder::with_deflate(max, &params(takeover));
        let result = feed(&mut d, &input);
        if text.len() <= max {
            prop_assert_eq!(result, Ok(vec![text]));
        } else {
            prop_assert_eq!(result, Err(Error::TooBig));
        }
    }

    /// The server's frames inflate back to the text, in both modes.
    #[test]
    fn server_roundtrip(texts in vec("[a-z\":,{}é ]{0,2000}", 1..6), takeover in any::<bool>()) {
        let options = DeflateOptions { min_size: 1, ..DeflateOptions::default() };
        let mut deflater = Deflater::new(&params(takeover), &options);
        let mut inflater = Decompress::new(false);
        for text in &texts {
            let mut out = Vec::new();
            deflater.encode_text(text, &mut out);
            let (_, got) = client_read(&out, &mut inflater);
            prop_assert_eq!(&got, text);
            if !takeover {
                inflater.reset(false);
            }
        }
    }
}

/// RFC 6455 §5.5.1: once a socket's close is on its way only the peer's close is looked
/// for. A discarding decoder inflates nothing (garbage and a bomb fail nothing and cost
/// nothing), checks no text, drops a fragmented message begun before, and still holds the
/// framing rules and hands out control frames, the client's close among them.
#[test]
fn rfc6455_s5_5_1_a_discarding_decoder_inflates_nothing_and_still_sees_the_close() {
    let kinds = |decoder: &mut Decoder, input: &[u8]| {
        let mut seen = Vec::new();
        let mut input = input.to_vec();
        decoder
            .feed(&mut input, &mut |m| {
                seen.push(match m {
                    Message::Text(_) => "text",
                    Message::Binary(_) => "binary",
                    Message::Ping(_) => "ping",
                    Message::Pong(_) => "pong",
                    Message::Close(_) => "close",
                })
            })
            .map(|()| seen)
    };
    let mut d = Decoder::with_deflate(64 * 1024, &params(true));
    // A compressed message begun, in three frames: the first one only, then discarding.
    let begun = compressed(&"z".repeat(5000), 3);
    let first = 6 + usize::from(begun[1] & 0x7f);
    assert_eq!(kinds(&mut d, &begun[..first]), Ok(vec![]));
    d.discard_messages();
    assert_eq!(d.buffered(), 0, "the fragment held is dropped");
    let mut input = begun[first..].to_vec();
    input.extend(frame(0xC1, &[0xff, 0xff, 0xff, 0xff], MASK));
    input.extend(compressed(&" ".repeat(1 << 20), 1));
    input.extend(frame(0x81, &[0xff, 0xfe], MASK));
    input.extend(frame(0x89, b"hi", MASK));
    input.extend(frame(0x88, &1000u16.to_be_bytes(), MASK));
    assert_eq!(kinds(&mut d, &input), Ok(vec!["ping", "close"]));
    // The framing rules still hold.
    assert_eq!(
        kinds(&mut d, &frame(0x80, b"x", MASK)),
        Err(Error::Protocol("continuation without a message"))
    );
}
