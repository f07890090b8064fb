//! §9.2 and §9.3: RFC 6455 framing on the WebSocket transports, frame by frame: control
//! frames, fragmentation, UTF-8, the closing handshake, and how a server fails a connection
//! that breaks the protocol. The SockJS rules ride on these frames, so a server whose own
//! frame codec gets one of them wrong breaks real clients in ways the SockJS checks miss.
//!
//! Frames are written by hand (masked, as a client must) with [`DeflateWs`], offering no
//! extension, and the server's frames are checked as a strict client would.

use super::ECHO;
use crate::check::{Check, Ctx, Failure, Outcome, ensure, expect_eq, fail};
use crate::deflate::{DeflateWs, Frame};

const TEXT: u8 = 0x81;
const CLOSE: u8 = 0x88;
const PING: u8 = 0x89;
const PONG: u8 = 0x8A;
/// A text frame that does not end its message.
const TEXT_START: u8 = 0x01;
const CONTINUATION: u8 = 0x00;
const CONTINUATION_END: u8 = 0x80;

/// A frame to send: its first byte (FIN, RSV bits, opcode) and its payload.
type RawFrame = (u8, &'static [u8]);

/// Frames that break the protocol, what they break, and the close codes that fit.
struct Broken {
    what: &'static str,
    frames: &'static [RawFrame],
    codes: &'static [u16],
}

const LONG_PING: [u8; 126] = [b'p'; 126];

/// Protocol errors (RFC 6455 sections 5.2, 5.4, 5.5 and 7.4.1): each on its own connection,
/// after one echo.
const PROTOCOL_ERRORS: &[Broken] = &[
    Broken {
        what: "RSV1 set without permessage-deflate",
        frames: &[(0xC1, b"x")],
        codes: &[1002],
    },
    Broken {
        what: "RSV2 set",
        frames: &[(0xA1, b"x")],
        codes: &[1002],
    },
    Broken {
        what: "RSV3 set",
        frames: &[(0x91, b"x")],
        codes: &[1002],
    },
    Broken {
        what: "reserved data opcode 3",
        frames: &[(0x83, b"")],
        codes: &[1002],
    },
    Broken {
        what: "reserved control opcode 11",
        frames: &[(0x8B, b"")],
        codes: &[1002],
    },
    Broken {
        what: "continuation frame without a message",
        frames: &[(CONTINUATION_END, b"x")],
        codes: &[1002],
    },
    Broken {
        what: "a new text message inside a fragmented one",
        frames: &[(TEXT_START, b"a"), (TEXT, b"b")],
        codes: &[1002],
    },
    Broken {
        what: "a fragmented ping",
        frames: &[(0x09, b"a"), (CONTINUATION_END, b"b")],
        codes: &[1002],
    },
    Broken {
        what: "a close frame with a one-byte payload",
        frames: &[(CLOSE, b"\x03")],
        codes: &[1002],
    },
    Broken {
        what: "close code 0",
        frames: &[(CLOSE, b"\x00\x00")],
        codes: &[1002],
    },
    Broken {
        what: "close code 999",
        frames: &[(CLOSE, b"\x03\xe7")],
        codes: &[1002],
    },
    Broken {
        what: "close code 1004",
        frames: &[(CLOSE, b"\x03\xec")],
        codes: &[1002],
    },
    Broken {
        what: "close code 1005",
        frames: &[(CLOSE, b"\x03\xed")],
        codes: &[1002],
    },
    Broken {
        what: "close code 1006",
        frames: &[(CLOSE, b"\x03\xee")],
        codes: &[1002],
    },
    Broken {
        what: "close code 1016",
        frames: &[(CLOSE, b"\x03\xf8")],
        codes: &[1002],
    },
    Broken {
        what: "close code 1100",
        frames: &[(CLOSE, b"\x04\x4c")],
        codes: &[1002],
    },
    Broken {
        what: "close code 2000",
        frames: &[(CLOSE, b"\x07\xd0")],
        codes: &[1002],
    },
    Broken {
        what: "close code 2999",
        frames: &[(CLOSE, b"\x0b\xb7")],
        codes: &[1002],
    },
    Broken {
        what: "a 126-byte ping",
        frames: &[(PING, &LONG_PING)],
        codes: &[1002],
    },
];

/// Text that is not UTF-8 (RFC 6455 §8.1): each on its own connection, after one echo,
/// with the close codes that fit. A close reason is not a message, so 1002 fits it as well
/// as 1007 (sockjs-node's WebSocket driver sends 1002).
const INVALID_UTF8: &[Broken] = &[
    Broken {
        what: "a UTF-16 surrogate in a text message",
        frames: &[(
            TEXT,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        )],
        codes: &[1007],
    },
    Broken {
        what: "an overlong encoding of '/'",
        frames: &[(TEXT, b"\xc0\xaf")],
        codes: &[1007],
    },
    Broken {
        what: "an invalid byte in the last fragment",
        frames: &[(TEXT_START, b"\xce\xba"), (CONTINUATION_END, b"\xff")],
        codes: &[1007],
    },
    Broken {
        what: "a close reason that is not UTF-8",
        frames: &[(CLOSE, b"\x03\xe8\xce\xba\xed\xa0\x80")],
        codes: &[1007, 1002],
    },
];

pub(crate) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "s9_3_rfc6455_ping_gets_pong_with_its_payload",
            "9.3",
            "raw websocket (RFC 6455 sections 5.5.2 and 5.5.3): an empty ping and a 125-byte ping each get \
             a pong with the same payload; an unsolicited pong is ignored",
            |ctx: &Ctx| {
                let mut ws = raw(ctx)?;
                send(&mut ws, PING, b"")?;
                expect_pong(&mut ws, "pong to an empty ping", b"")?;
                let payload: Vec<u8> = (0..125u8).collect();
                send(&mut ws, PING, &payload)?;
                expect_pong(&mut ws, "pong to a 125-byte ping", &payload)?;
                send(&mut ws, PONG, b"unsolicited")?;
                send(&mut ws, TEXT, b"after the pong")?;
                expect_text(&mut ws, "echo after an unsolicited pong", "after the pong")?;
                close(ws)
            },
        ),
        Check::new(
            "s9_3_rfc6455_fragments_are_reassembled",
            "9.3",
            "raw websocket (RFC 6455 §5.4): a fragmented text message echoes whole, a ping \
             between its fragments is answered before the message ends, a character may be \
             split between fragments, fragments may be empty, and 16 KiB in 1300-byte fragments \
             echo",
            |ctx: &Ctx| {
                let mut ws = raw(ctx)?;
                send(&mut ws, TEXT_START, b"frag")?;
                send(&mut ws, PING, b"between")?;
                expect_pong(&mut ws, "pong to a ping between fragments", b"between")?;
                send(&mut ws, CONTINUATION, b"men")?;
                send(&mut ws, CONTINUATION_END, b"t")?;
                expect_text(&mut ws, "three fragments", "fragment")?;

                let text = "κόσμε";
                let bytes = text.as_bytes();
                send(&mut ws, TEXT_START, &bytes[..1])?;
                send(&mut ws, CONTINUATION, &bytes[1..4])?;
                send(&mut ws, CONTINUATION_END, &bytes[4..])?;
                expect_text(&mut ws, "characters split between fragments", text)?;

                send(&mut ws, TEXT_START, b"")?;
                send(&mut ws, CONTINUATION, b"middle")?;
                send(&mut ws, CONTINUATION_END, b"")?;
                expect_text(&mut ws, "empty first and last fragments", "middle")?;

                let long: String = (0..16 * 1024)
                    .map(|i| (b'a' + (i % 26) as u8) as char)
                    .collect();
                let pieces: Vec<&[u8]> = long.as_bytes().chunks(1300).collect();
                for (i, piece) in pieces.iter().enumerate() {
                    let first = match (i == 0, i + 1 == pieces.len()) {
                        (true, _) => TEXT_START,
                        (false, true) => CONTINUATION_END,
                        (false, false) => CONTINUATION,
                    };
                    send(&mut ws, first, piece)?;
                }
                expect_text(&mut ws, "16 KiB in 1300-byte fragments", &long)?;
                close(ws)
            },
        ),
        Check::new(
            "s9_3_rfc6455_protocol_errors_fail_with_1002",
            "9.3",
            "raw websocket (RFC 6455 sections 5.2, 5.4, 5.5, 7.4.1 and 7.1.7): reserved bits or \
             opcodes, a continuation out of place, a fragmented or 126-byte control frame, a \
             one-byte close payload or a close code a peer may not send close the connection \
             (with 1002 if a close frame is sent), and so does an unmasked frame (any code); \
             nothing after it is echoed",
            |ctx: &Ctx| {
                fails_each(ctx, PROTOCOL_ERRORS)?;
                // RFC 6455 §5.1: the server MUST close the connection, and MAY send 1002 first
                // (sockjs-node's WebSocket driver sends 1003): any close code will do.
                let what = "an unmasked text frame";
                let mut ws = raw(ctx)?;
                echo_once(&mut ws, what)?;
                let _ = ws.write(b"\x81\x05hello");
                expect_failed(&mut ws, what, &[])
            },
        ),
        Check::new(
            "s9_3_rfc6455_invalid_utf8_fails_with_1007",
            "9.3",
            "raw websocket (RFC 6455 sections 8.1 and 7.4.1): a text message or close reason that is not \
             UTF-8 (a surrogate, an overlong form, a bad byte in a later fragment) closes the \
             connection (with 1007 if a close frame is sent; 1007 or 1002 for a close reason)",
            |ctx: &Ctx| fails_each(ctx, INVALID_UTF8),
        ),
        Check::new(
            "s9_3_rfc6455_client_close_is_answered",
            "9.3",
            "raw websocket (RFC 6455 sections 5.5.1 and 7.4): a client's close frame with a valid code \
             (1000-1003, 1007-1011, 3000-4999), with a 123-byte reason, or with no payload gets \
             one close frame back (the same code, or 1000) and the connection ends; a message \
             sent after the close frame is not echoed",
            |ctx: &Ctx| {
                let reason = [b'r'; 123];
                let mut payloads: Vec<(String, Vec<u8>)> = [
                    1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
                ]
                .iter()
                .map(|code| (format!("close {code}"), code.to_be_bytes().to_vec()))
                .collect();
                payloads.push((
                    "close 1000 with a 123-byte reason".into(),
                    [&1000u16.to_be_bytes()[..], &reason].concat(),
                ));
                payloads.push(("close without a payload".into(), Vec::new()));
                for (what, payload) in &payloads {
                    let mut ws = raw(ctx)?;
                    echo_once(&mut ws, what)?;
                    send(&mut ws, CLOSE, payload)?;
                    send_late(&mut ws, TEXT, b"after the close");
                    let sent =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    match next(&mut ws, what)? {
                        Some(Frame::Close(code)) => {
                            let code = code.map(|(c, _)| c);
                            ensure(code.is_none_or(|c| c == 1000 || Some(c) == sent), || {
                                format!("{what}: the answer's code is {code:?}")
                            })?;
                        }
                        other => {
                            return Err(fail(format!(
                                "{what}: expected a close frame, got {}",
                                describe(&other)
                            )));
                        }
                    }
                    let after = next(&mut ws, what)?;
                    ensure(after.is_none(), || {
                        format!(
                            "{what}: expected the connection to end after the close frame, got {}",
                            describe(&after)
                        )
                    })?;
                }
                Ok(())
            },
        ),
        Check::new(
            "s9_2_rfc6455_sockjs_message_in_fragments",
            "9.2",
            "SockJS websocket (RFC 6455 §5.4): a [\"...\"] message in fragments, with a ping \
             between them answered at once, arrives whole: a[\"fragment\"]",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let mut ws = connect(ctx, &s.url("websocket"))?;
                expect_text(&mut ws, "open frame", "o")?;
                send(&mut ws, TEXT_START, b"[\"frag")?;
                send(&mut ws, PING, b"between")?;
                expect_pong(&mut ws, "pong to a ping between fragments", b"between")?;
                send(&mut ws, CONTINUATION_END, b"ment\"]")?;
                expect_text(&mut ws, "echo of the fragmented message", "a[\"fragment\"]")?;
                close(ws)
            },
        ),
    ]
}

/// An RFC 6455 connection to `path`, offering no extension.
fn connect(ctx: &Ctx, path: &str) -> Result<DeflateWs, Failure> {
    let (stream, leftover) = ctx.connect()?.into_stream();
    ensure(leftover.is_empty(), || {
        "unexpected bytes before the handshake".into()
    })?;
    let mut ws = DeflateWs::over(stream, &ctx.host, path, None)
        .map_err(|e| fail(format!("WebSocket upgrade of {path}: {e}")))?;
    ws.heartbeat = ctx.heartbeat;
    Ok(ws)
}

/// The echo service's raw WebSocket (§9.3): every text it sends is a message, `h` too.
fn raw(ctx: &Ctx) -> Result<DeflateWs, Failure> {
    let mut ws = connect(ctx, &ctx.path(&format!("{ECHO}/websocket")))?;
    ws.sockjs = false;
    Ok(ws)
}

fn send(ws: &mut DeflateWs, first: u8, payload: &[u8]) -> Outcome {
    ws.send_frame(first, payload)
        .map_err(|e| fail(format!("sending a frame {first:#04x}: {e}")))
}

/// Sends a frame the server may no longer read: it may have failed or closed the
/// connection already (a broken pipe or a reset is then no failure; what it answered is
/// read next).
fn send_late(ws: &mut DeflateWs, first: u8, payload: &[u8]) {
    let _ = ws.send_frame(first, payload);
}

/// The next frame that is not a ping (which the client answers) or, on a SockJS
/// WebSocket, a heartbeat; `None` once the server ended the connection.
fn next(ws: &mut DeflateWs, what: &str) -> Result<Option<Frame>, Failure> {
    let mut skipped = ws.skipping();
    loop {
        match ws.recv() {
            Ok(Some(Frame::Ping(_))) => skipped.one().map_err(|e| fail(format!("{what}: {e}")))?,
            Ok(Some(Frame::Text(t, _))) if ws.sockjs && t == "h" => {
                skipped.one().map_err(|e| fail(format!("{what}: {e}")))?;
            }
            Ok(other) => return Ok(other),
            Err(e) => return Err(fail(format!("{what}: {e}"))),
        }
    }
}

fn describe(frame: &Option<Frame>) -> String {
    match frame {
        None => "the end of the connection".into(),
        Some(Frame::Text(t, _)) => {
            format!("text \"{}\"", crate::util::esc_short(t.as_bytes(), 80))
        }
        Some(Frame::Close(Some((code, _)))) => format!("a close frame {code}"),
        Some(Frame::Close(None)) => "a close frame without a code".into(),
        Some(other) => format!("{other:?}"),
    }
}

fn expect_text(ws: &mut DeflateWs, what: &str, expected: &str) -> Outcome {
    match next(ws, what)? {
        Some(Frame::Text(t, _)) => expect_eq(what, expected, t),
        other => Err(fail(format!(
            "{what}: expected a text message, got {}",
            describe(&other)
        ))),
    }
}

fn expect_pong(ws: &mut DeflateWs, what: &str, payload: &[u8]) -> Outcome {
    match next(ws, what)? {
        Some(Frame::Pong(got)) => expect_eq(what, payload, got),
        other => Err(fail(format!(
            "{what}: expected a pong, got {}",
            describe(&other)
        ))),
    }
}

/// One text echo, so that what follows runs on an open connection.
fn echo_once(ws: &mut DeflateWs, what: &str) -> Outcome {
    send(ws, TEXT, b"ok")?;
    expect_text(ws, &format!("{what}: echo before it"), "ok")
}

/// Each case on its own connection, after one echo: its frames, then a message that must
/// not be echoed, and the server fails the connection.
fn fails_each(ctx: &Ctx, cases: &[Broken]) -> Outcome {
    for case in cases {
        let mut ws = raw(ctx)?;
        echo_once(&mut ws, case.what)?;
        for &(first, payload) in case.frames {
            send_late(&mut ws, first, payload);
        }
        send_late(&mut ws, TEXT, b"after");
        expect_failed(&mut ws, case.what, case.codes)?;
    }
    Ok(())
}

/// The server fails the connection (RFC 6455 §7.1.7): it ends it, after a close frame
/// with one of `codes` (any, if empty) if it sends one (answered, in case it waits for the
/// answer), and echoes nothing more.
fn expect_failed(ws: &mut DeflateWs, what: &str, codes: &[u16]) -> Outcome {
    loop {
        match next(ws, what)? {
            None => return Ok(()),
            Some(Frame::Close(Some((got, _)))) if codes.is_empty() || codes.contains(&got) => {
                let _ = ws.close(got);
            }
            other => {
                return Err(fail(format!(
                    "{what}: expected the connection to fail with {codes:?}, got {}",
                    describe(&other)
                )));
            }
        }
    }
}

/// Ends a connection that passed with the closing handshake.
fn close(mut ws: DeflateWs) -> Outcome {
    ws.close(1000)
        .map_err(|e| fail(format!("sending a close frame: {e}")))?;
    match next(&mut ws, "closing handshake")? {
        Some(Frame::Close(_)) | None => Ok(()),
        other => Err(fail(format!(
            "closing handshake: expected a close frame, got {}",
            describe(&other)
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ws::test_server;
    use tungstenite::Message;

    /// A server that sends a text `h`, then `x`, and waits for the client to go.
    fn heartbeat_then_x() -> Ctx {
        test_server::serve(|ws| {
            ws.send(Message::text("h")).unwrap();
            ws.send(Message::text("x")).unwrap();
            while ws.read().is_ok() {}
        })
    }

    #[test]
    fn s9_3_a_text_h_on_a_raw_websocket_is_a_message_the_checks_see() {
        let mut ws = raw(&heartbeat_then_x()).unwrap();
        let failure = expect_text(&mut ws, "echo", "x").unwrap_err();
        assert!(failure.reason.contains("\"h\""), "{}", failure.reason);
        // On a SockJS WebSocket the same `h` is a heartbeat, passed over.
        let mut ws = connect(&heartbeat_then_x(), "/s/websocket").unwrap();
        expect_text(&mut ws, "message", "x").unwrap();
    }
}
