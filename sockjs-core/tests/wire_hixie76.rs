//! Hixie-76 framing: text and close frames, errors, bounds.

use bytes::BytesMut;
use sockjs_core::wire::hixie76::{self, CLOSE_FRAME, Decoder, Error, Frame};

fn decode_all(decoder: &mut Decoder, buf: &mut BytesMut) -> Result<Vec<Frame>, Error> {
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

#[test]
fn decodes_text_and_close_frames() {
    let mut buf = BytesMut::from(&b"\x00o\xff\x00\xff\x00[\"h\xc3\xa9\"]\xff\xff\x00"[..]);
    let frames = decode_all(&mut Decoder::default(), &mut buf).expect("valid frames");
    assert_eq!(
        frames,
        vec![
            Frame::Text("o".into()),
            Frame::Text(String::new()),
            Frame::Text("[\"hé\"]".into()),
            Frame::Close
        ]
    );
    assert!(buf.is_empty());
}

#[test]
fn frames_split_at_every_byte() {
    let input = b"\x00a[\"x\"]\xff\x00\xe2\x82\xac\xff\xff\x00\x00tail";
    let expected = vec![
        Frame::Text("a[\"x\"]".into()),
        Frame::Text("\u{20ac}".into()),
        Frame::Close,
    ];
    for at in 0..=input.len() {
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::from(&input[..at]);
        let mut frames = decode_all(&mut decoder, &mut buf).expect("valid prefix");
        buf.extend_from_slice(&input[at..]);
        frames.extend(decode_all(&mut decoder, &mut buf).expect("valid rest"));
        assert_eq!(frames, expected, "split at {at}");
        assert_eq!(&buf[..], b"\x00tail");
    }
}

#[test]
fn invalid_utf8_is_an_error() {
    let mut buf = BytesMut::from(&b"\x00\xc3\x28\xff"[..]);
    assert_eq!(Decoder::default().decode(&mut buf), Err(Error::InvalidUtf8));
}

#[test]
fn unknown_frame_types_are_errors() {
    for (input, byte) in [
        (&b"\x80\x05hello"[..], 0x80),
        (b"A", b'A'),
        (b"\xff\x05hello", 0xff),
    ] {
        let mut buf = BytesMut::from(input);
        assert_eq!(
            Decoder::default().decode(&mut buf),
            Err(Error::UnknownFrame(byte))
        );
    }
    let mut partial = BytesMut::from(&b"\xff"[..]);
    assert_eq!(Decoder::default().decode(&mut partial), Ok(None));
}

#[test]
fn oversized_message_fails_while_trickling() {
    let mut decoder = Decoder::new(8);
    let mut buf = BytesMut::from(&b"\x00"[..]);
    let mut fed = 1;
    let err = loop {
        match decoder.decode(&mut buf) {
            Ok(None) => {
                assert!(buf.len() < 10);
                buf.extend_from_slice(b"x");
                fed += 1;
            }
            Ok(Some(frame)) => panic!("unexpected {frame:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, Error::MessageTooLarge);
    assert_eq!(fed, 10);
    let mut exact = BytesMut::from(&b"\x0012345678\xff"[..]);
    assert_eq!(
        Decoder::new(8).decode(&mut exact),
        Ok(Some(Frame::Text("12345678".into())))
    );
}

#[test]
fn encodes_frames() {
    let mut out = BytesMut::new();
    hixie76::encode_text("o", &mut out);
    hixie76::encode_text("", &mut out);
    hixie76::encode_close(&mut out);
    assert_eq!(&out[..], b"\x00o\xff\x00\xff\xff\x00");
    assert_eq!(CLOSE_FRAME, b"\xff\x00");
    assert_eq!(
        hixie76::HANDSHAKE_REASON.as_bytes(),
        b"WebSocket Protocol Handshake"
    );
    assert!(Error::UnknownFrame(0x80).to_string().contains("0x80"));
}
