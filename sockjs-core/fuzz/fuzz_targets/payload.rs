//! Payload decoding and frame encoding: never panics, a payload refused hands nothing
//! over, a JSON array of strings decodes as serde_json reads it, and what decodes
//! re-encodes (through the SockJS escaper) into JSON that decodes to the same messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjs_core::frame::MessageBatch;
use sockjs_core::payload::{
    decode_messages, decode_messages_each, decode_ws_message, decode_ws_message_each, form_decode,
    jsonp_payload,
};

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

/// What the engine relies on: a refusal hands nothing over, and what a JSON parser reads
/// as an array of strings decodes to those strings.
fn agrees(data: &[u8]) {
    let mut handed = 0;
    if decode_messages_each(data, |_| handed += 1).is_err() {
        assert_eq!(handed, 0, "a refused body handed messages over");
    }
    let text = std::str::from_utf8(data).ok();
    if let Some(text) = text {
        let mut handed = 0;
        if decode_ws_message_each(text, |_| handed += 1).is_err() {
            assert_eq!(
                handed, 0,
                "a refused WebSocket message handed messages over"
            );
        }
    }
    if let Ok(expected) = serde_json::from_slice::<Vec<String>>(data) {
        assert_eq!(decode_messages(data).as_ref(), Ok(&expected));
        if let Some(text) = text {
            assert_eq!(decode_ws_message(text).as_ref(), Ok(&expected));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    agrees(data);
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
