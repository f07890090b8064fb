//! permessage-deflate (RFC 7692): the `Sec-WebSocket-Extensions` negotiation over arbitrary
//! header values, and the RFC 6455 decoder with it negotiated over arbitrary frames whose
//! payloads the compressed ones inflate from. Never panics; an accepted offer's answer is
//! itself a well-formed value; inflated messages stay within the bound, and the decoder
//! never holds more than `Decoder::buffered` documents; and what the server's compressor
//! sends, masked as a client would, decodes back to the same texts.
#![no_main]

use arbitrary::Arbitrary;
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use sockjs_core::deflate::negotiate;
use sockjs_core::wire::rfc6455::{Decoder, Deflater, Error, Message};
use sockjs_core::{DeflateOptions, DeflateParams};

#[derive(Debug, Arbitrary)]
struct Frame {
    /// FIN, RSV1-3 and the opcode, as they go on the wire.
    first: u8,
    mask: [u8; 4],
    payload: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    offers: Vec<Vec<u8>>,
    frames: Vec<Frame>,
    /// Where the frames' bytes are cut into reads.
    cuts: Vec<u16>,
    texts: Vec<String>,
    max_message: u16,
    takeover: bool,
    /// The server's window bits, 8 + this mod 8.
    window: u8,
    level: u8,
    min_size: u8,
}

/// A client frame: masked, with the shortest length encoding.
fn encode(frame: &Frame, out: &mut Vec<u8>) {
    out.push(frame.first);
    let len = frame.payload.len();
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&frame.mask);
    out.extend(
        frame
            .payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ frame.mask[i % 4]),
    );
}

/// A server frame (unmasked, as the server's encoder writes them) as a client sends it:
/// the mask bit set and a zero mask after the length.
fn as_client_frames(mut server: &[u8], out: &mut Vec<u8>) {
    while server.len() >= 2 {
        let header = match server[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        let len = match server[1] {
            126 => usize::from(u16::from_be_bytes([server[2], server[3]])),
            127 => usize::try_from(u64::from_be_bytes(
                server[2..10].try_into().expect("eight bytes"),
            ))
            .expect("a length that was a usize"),
            n => usize::from(n),
        };
        out.push(server[0]);
        out.push(server[1] | 0x80);
        out.extend_from_slice(&server[2..header]);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&server[header..header + len]);
        server = &server[header + len..];
    }
    assert!(server.is_empty(), "the encoder wrote a whole frame");
}

fuzz_target!(|input: Input| {
    let options = DeflateOptions {
        min_size: usize::from(input.min_size),
        level: input.level % 10,
        server_context_takeover: input.takeover,
        client_context_takeover: input.takeover,
    };

    // Negotiation: any header values, never a panic; an answer that is itself well-formed.
    let values: Vec<HeaderValue> = input
        .offers
        .iter()
        .filter_map(|bytes| HeaderValue::from_bytes(bytes).ok())
        .collect();
    if let Some((params, answer)) = negotiate(&values, &options) {
        assert!((8..=15).contains(&params.client_max_window_bits));
        assert!((8..=15).contains(&params.server_max_window_bits));
        // A window below 32 KiB: each message on its own, so none refers back past it.
        assert!(params.server_max_window_bits == 15 || params.server_no_context_takeover);
        let (again, _) = negotiate([&answer], &options).expect("an answer reads as an offer");
        assert_eq!(
            again.server_no_context_takeover,
            params.server_no_context_takeover
        );
        assert_eq!(
            again.client_no_context_takeover,
            params.client_no_context_takeover
        );
        assert_eq!(again.server_max_window_bits, params.server_max_window_bits);
    }

    let max = usize::from(input.max_message).max(1);
    let server_max_window_bits = 8 + input.window % 8;
    let params = DeflateParams {
        server_no_context_takeover: !input.takeover || server_max_window_bits < 15,
        client_no_context_takeover: !input.takeover,
        server_max_window_bits,
        client_max_window_bits: 15,
    };

    // Arbitrary frames, compressed or not, cut into arbitrary reads.
    let mut wire = Vec::new();
    for frame in &input.frames {
        encode(frame, &mut wire);
    }
    let hold = max + max / 4096 + 64 + 125 + 14;
    let mut decoder = Decoder::with_deflate(max, &params);
    let mut at = 0usize;
    for cut in input
        .cuts
        .iter()
        .map(|&c| usize::from(c))
        .chain([usize::MAX])
    {
        let end = at.saturating_add(cut).min(wire.len());
        let result = decoder.feed(&mut wire[at..end], &mut |message| {
            if let Message::Text(text) = message {
                assert!(text.len() <= max);
            }
            if let Message::Binary(data) = message {
                assert!(data.len() <= max);
            }
        });
        assert!(decoder.buffered() <= hold);
        if result.is_err() {
            // A failed decoder refuses everything after.
            assert!(
                decoder
                    .feed(&mut [0x81, 0x80, 0, 0, 0, 0], &mut |_| {})
                    .is_err()
            );
            break;
        }
        at = end;
        if at == wire.len() {
            break;
        }
    }

    // The server's compressor, read back by the decoder.
    let mut deflater = Deflater::new(&params, &options);
    let mut sent = Vec::new();
    for text in &input.texts {
        let start = sent.len();
        deflater.encode_text(text, &mut sent);
        if sent[start] & 0x40 != 0 {
            // Compressed: long enough to be worth it, short enough for the client's window.
            assert!(text.len() >= options.min_size);
            assert!(text.len() <= params.largest_compressed());
        }
    }
    let mut frames = Vec::new();
    as_client_frames(&sent, &mut frames);
    // Read as the client reads the server's frames: its context is the server's.
    let reader = DeflateParams {
        client_no_context_takeover: params.server_no_context_takeover,
        ..params
    };
    let mut decoder = Decoder::with_deflate(max, &reader);
    let mut read = Vec::new();
    let result = decoder.feed(&mut frames, &mut |message| match message {
        Message::Text(text) => read.push(text.to_owned()),
        other => panic!("the encoder wrote text only, read {other:?}"),
    });
    match result {
        Ok(()) => assert_eq!(read, input.texts),
        Err(Error::TooBig) => {
            // Read up to the first text over the bound.
            let first_big = input.texts.iter().position(|t| t.len() > max);
            assert_eq!(Some(read.len()), first_big);
            assert_eq!(read[..], input.texts[..read.len()]);
        }
        Err(other) => panic!("the server's own frames refused: {other}"),
    }
});
