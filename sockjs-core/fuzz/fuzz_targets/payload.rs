//! Payload decoding and frame encoding: never panics, and what decodes re-encodes (through
//! the SockJS escaper) into JSON that decodes to the same messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjs_core::frame::MessageBatch;
use sockjs_core::payload::{decode_messages, decode_ws_message, form_decode, jsonp_payload};

fn round_trip(messages: &[String]) {
    let mut batch = MessageBatch::default();
    for m in messages {
        batch.push(m);
    }
    let mut frame = Vec::new();
    batch.write_frame(&mut frame);
    assert_eq!(frame.len(), batch.frame_len());
    let text = std::str::from_utf8(&frame).expect("frames are UTF-8");
    let json = text.strip_prefix('a').expect("a frame");
    let back: Vec<String> = serde_json::from_str(json).expect("frames are JSON");
    assert_eq!(back, messages);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(messages) = decode_messages(data) {
        round_trip(&messages);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(messages) = decode_ws_message(text) {
            round_trip(&messages);
        }
        round_trip(&[text.to_owned()]);
    }
    let payload = jsonp_payload(Some("application/x-www-form-urlencoded"), data);
    assert!(payload.len() <= data.len());
    assert!(form_decode(data).len() <= data.len());
});
