//! Property tests for the RFC 6455 decoder: arbitrary bytes in arbitrary pieces never panic
//! and never make it hold more than its bound; well-formed traffic decodes to the same
//! messages however it is split.

use proptest::collection::vec;
use proptest::prelude::*;
use sockjs_core::wire::rfc6455::{Decoder, Message};

const MAX: usize = 300;

/// A masked client frame.
fn frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Feeds `pieces` in turn; the messages seen (as debug strings), or the error.
fn run(pieces: &[Vec<u8>]) -> Result<Vec<String>, String> {
    let mut decoder = Decoder::new(MAX);
    let mut seen = Vec::new();
    for piece in pieces {
        let mut piece = piece.clone();
        decoder
            .feed(&mut piece, &mut |m: Message<'_>| {
                seen.push(format!("{m:?}"))
            })
            .map_err(|e| e.to_string())?;
        // The bound, and a control frame (at most 125 bytes and its header), which may
        // come between fragments whatever the bound.
        assert!(
            decoder.buffered() <= MAX + 125 + 14,
            "holding {}",
            decoder.buffered()
        );
    }
    Ok(seen)
}

/// Text and binary messages up to the bound, maybe fragmented, with pings of any size
/// between fragments.
fn traffic() -> impl Strategy<Value = (Vec<u8>, usize)> {
    vec(
        (
            any::<bool>(),
            "[a-zé€ ]{0,100}",
            1usize..4,
            any::<[u8; 4]>(),
            vec(any::<u8>(), 0..=125),
        ),
        0..8,
    )
    .prop_map(|messages| {
        let mut bytes = Vec::new();
        for (binary, text, parts, mask, ping) in &messages {
            let data = text.as_bytes();
            let chunk = data.len().div_ceil(*parts).max(1);
            let pieces: Vec<&[u8]> = if data.is_empty() {
                vec![&[][..]]
            } else {
                data.chunks(chunk).collect()
            };
            for (i, piece) in pieces.iter().enumerate() {
                let opcode = if i > 0 {
                    0
                } else if *binary {
                    2
                } else {
                    1
                };
                let fin = if i + 1 == pieces.len() { 0x80 } else { 0 };
                bytes.extend(frame(fin | opcode, piece, *mask));
                if fin == 0 {
                    bytes.extend(frame(0x89, ping, *mask));
                }
            }
        }
        (bytes, messages.len())
    })
}

/// `bytes` cut at the places `cuts` picks (taken modulo its length).
fn cut(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut last = 0;
    for cut in at {
        pieces.push(bytes[last..cut].to_vec());
        last = cut;
    }
    pieces.push(bytes[last..].to_vec());
    pieces
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(pieces in vec(vec(any::<u8>(), 0..200), 0..20)) {
        let _ = run(&pieces);
    }

    #[test]
    fn splits_do_not_change_the_messages((bytes, count) in traffic(), cuts in vec(any::<usize>(), 0..6)) {
        let whole = run(std::slice::from_ref(&bytes)).expect("well-formed");
        let data = whole.iter().filter(|m| !m.starts_with("Ping")).count();
        prop_assert_eq!(data, count);
        let pieces = cut(&bytes, &cuts);
        prop_assert_eq!(run(&pieces).expect("well-formed"), whole);
    }

    /// `feed_at_most` hands out the same messages in the same order as `feed`, never
    /// more than the budget and one message per call, and stops only with whole frames
    /// left (which feeds of no new bytes then hand out).
    #[test]
    fn a_budget_only_spreads_the_messages_over_more_calls(
        (bytes, _) in traffic(),
        budget in 0usize..200,
        cuts in vec(any::<usize>(), 0..4),
    ) {
        let whole = run(std::slice::from_ref(&bytes)).expect("well-formed");
        let pieces = cut(&bytes, &cuts);
        let mut decoder = Decoder::new(MAX);
        let mut seen = Vec::new();
        for piece in pieces {
            let mut piece = piece;
            let mut input: &mut [u8] = &mut piece;
            loop {
                let mut handed = Vec::new();
                let stopped = decoder
                    .feed_at_most(input, budget, &mut |m: Message<'_>| {
                        handed.push((format!("{m:?}"), match m {
                            Message::Text(t) => t.len(),
                            Message::Binary(b) => b.len(),
                            _ => 0,
                        }));
                    })
                    .expect("well-formed");
                let sizes: Vec<usize> = handed.iter().map(|(_, n)| *n).collect();
                let before_last: usize = sizes.iter().rev().skip(1).sum();
                prop_assert!(before_last < budget.max(1), "{:?} over {}", sizes, budget);
                seen.extend(handed.into_iter().map(|(m, _)| m));
                if !stopped {
                    break;
                }
                input = &mut [];
            }
        }
        prop_assert_eq!(seen, whole);
    }
}

/// RFC 6455 §5.4: a control frame may come between a message's fragments. With the
/// message's fragments at the bound, the decoder holds them and the unfinished ping beside
/// them (the ping is no message, so the bound is not its), then hands out both.
#[test]
fn rfc6455_s5_4_a_ping_between_fragments_at_the_bound_is_held_beside_them() {
    let mask = [1, 2, 3, 4];
    let first = frame(0x01, &[b'a'; MAX], mask);
    let ping = frame(0x89, &[b'p'; 125], mask);
    let last = frame(0x80, b"", mask);
    let (ping_head, ping_rest) = ping.split_at(ping.len() - 1);
    let mut decoder = Decoder::new(MAX);
    let mut seen = Vec::new();
    let mut on = |m: Message<'_>| {
        seen.push(match m {
            Message::Ping(p) => format!("ping {}", p.len()),
            Message::Text(t) => format!("text {}", t.len()),
            other => format!("{other:?}"),
        })
    };
    let mut input = [first, ping_head.to_vec()].concat();
    decoder
        .feed(&mut input, &mut on)
        .expect("fragment and part of a ping");
    assert_eq!(decoder.buffered(), MAX + ping.len() - 1);
    assert!(decoder.buffered() <= MAX + 125 + 14);
    let mut input = [ping_rest, &last[..]].concat();
    decoder.feed(&mut input, &mut on).expect("the rest");
    assert_eq!(seen, ["ping 125".to_owned(), format!("text {MAX}")]);
    assert!(decoder.is_idle());
}
