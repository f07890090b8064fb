//! What a permessage-deflate connection keeps on the heap (its own test binary, alone, so
//! that the global heap counters see nothing else): nothing without context takeover, where
//! the thread's compressor and decompressor do the work; its own compressor and
//! decompressor with it.

use std::alloc::System;

use sockjs_core::wire::rfc6455::{Decoder, Deflater, Message, compress_message};
use sockjs_core::{DeflateOptions, DeflateParams};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn params(takeover: bool) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: !takeover,
        client_no_context_takeover: !takeover,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    }
}

/// A masked client frame with RSV1 (mask 0).
fn compressed_frame(text: &str) -> Vec<u8> {
    let payload = compress_message(text.as_bytes(), 6);
    let mut out = vec![0xC1, 0x80 | 126];
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&payload);
    out
}

/// Heap bytes a connection (decoder and deflater) still holds after it received one
/// compressed message and sent one.
fn held_after_one_message(takeover: bool) -> isize {
    let json = format!(
        "a[{}]",
        r#""{\"user\":\"ann\",\"text\":\"hello\"}","#.repeat(40)
    );
    let mut input = compressed_frame(&json);
    let mut out = Vec::with_capacity(4096);
    let region = Region::new(HEAP);
    let mut decoder = Decoder::with_deflate(1 << 20, &params(takeover));
    let mut deflater = Deflater::new(&params(takeover), &DeflateOptions::default());
    let mut seen = 0;
    decoder
        .feed(&mut input, &mut |m| {
            if let Message::Text(t) = m {
                seen = t.len();
            }
        })
        .expect("decoded");
    assert_eq!(seen, json.len());
    deflater.encode_text(&json, &mut out);
    assert!(out.len() < json.len() / 3);
    let change = region.change();
    drop((decoder, deflater));
    change.bytes_allocated as isize - change.bytes_deallocated as isize
}

#[test]
fn a_connection_without_context_takeover_holds_no_compression_state() {
    // The first connection on the thread makes the thread's compressor, decompressor and
    // scratch buffer; later ones hold nothing of their own.
    let thread = held_after_one_message(false);
    // The counters are process-wide, and the test harness's own thread may allocate now
    // and then: the least of a few measurements is the connection's.
    let reset = (0..5)
        .map(|_| held_after_one_message(false))
        .min()
        .unwrap_or_default();
    let takeover = (0..3)
        .map(|_| held_after_one_message(true))
        .min()
        .unwrap_or_default();
    println!(
        "heap: {thread} B for the thread's compressor, decompressor and buffer (once per \
         thread); per connection {reset} B without context takeover, {takeover} B with it"
    );
    assert_eq!(reset, 0);
    assert!(thread > 100_000, "{thread}");
    assert!(takeover > 100_000, "{takeover}");
}
