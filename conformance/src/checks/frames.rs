//! §5: frames and JSON string encoding.

use super::ECHO;
use super::transports::{expect_prelude, receiver_request, wrap_frame};
use crate::check::{
    Check, Ctx, Failure, Outcome, Step, expect_eq, expect_head_status, expect_response,
    expect_status, fail,
};
use crate::json;
use crate::util::{esc_short, json_quote, server_must_escape, sockjs_quote};
use crate::ws::Ws;

/// Code points the SockJS client `\u`-escapes before sending (the suite's
/// `escapable_by_client`), as inclusive ranges.
const CLIENT_ESCAPED: &[(u32, u32)] = &[
    (0x00, 0x1f),
    (0x22, 0x22),
    (0x5c, 0x5c),
    (0x7f, 0x9f),
    (0xad, 0xad),
    (0x300, 0x333),
    (0x33d, 0x346),
    (0x34a, 0x34c),
    (0x350, 0x352),
    (0x357, 0x358),
    (0x35c, 0x362),
    (0x374, 0x374),
    (0x37e, 0x37e),
    (0x387, 0x387),
    (0x591, 0x5af),
    (0x5c4, 0x5c4),
    (0x600, 0x604),
    (0x610, 0x617),
    (0x653, 0x654),
    (0x657, 0x65b),
    (0x65d, 0x65e),
    (0x6df, 0x6e2),
    (0x6eb, 0x6ec),
    (0x70f, 0x70f),
    (0x730, 0x730),
    (0x732, 0x733),
    (0x735, 0x736),
    (0x73a, 0x73a),
    (0x73d, 0x73d),
    (0x73f, 0x741),
    (0x743, 0x743),
    (0x745, 0x745),
    (0x747, 0x747),
    (0x7eb, 0x7f1),
    (0x951, 0x951),
    (0x958, 0x95f),
    (0x9dc, 0x9dd),
    (0x9df, 0x9df),
    (0xa33, 0xa33),
    (0xa36, 0xa36),
    (0xa59, 0xa5b),
    (0xa5e, 0xa5e),
    (0xb5c, 0xb5d),
    (0xe38, 0xe39),
    (0xf43, 0xf43),
    (0xf4d, 0xf4d),
    (0xf52, 0xf52),
    (0xf57, 0xf57),
    (0xf5c, 0xf5c),
    (0xf69, 0xf69),
    (0xf72, 0xf76),
    (0xf78, 0xf78),
    (0xf80, 0xf83),
    (0xf93, 0xf93),
    (0xf9d, 0xf9d),
    (0xfa2, 0xfa2),
    (0xfa7, 0xfa7),
    (0xfac, 0xfac),
    (0xfb9, 0xfb9),
    (0x17b4, 0x17b5),
    (0x1939, 0x193a),
    (0x1a17, 0x1a17),
    (0x1b6b, 0x1b6b),
    (0x1cda, 0x1cdb),
    (0x1dc0, 0x1dcf),
    (0x1dfc, 0x1dfc),
    (0x1dfe, 0x1dfe),
    (0x1f71, 0x1f71),
    (0x1f73, 0x1f73),
    (0x1f75, 0x1f75),
    (0x1f77, 0x1f77),
    (0x1f79, 0x1f79),
    (0x1f7b, 0x1f7b),
    (0x1f7d, 0x1f7d),
    (0x1fbb, 0x1fbb),
    (0x1fbe, 0x1fbe),
    (0x1fc9, 0x1fc9),
    (0x1fcb, 0x1fcb),
    (0x1fd3, 0x1fd3),
    (0x1fdb, 0x1fdb),
    (0x1fe3, 0x1fe3),
    (0x1feb, 0x1feb),
    (0x1fee, 0x1fef),
    (0x1ff9, 0x1ff9),
    (0x1ffb, 0x1ffb),
    (0x1ffd, 0x1ffd),
    (0x2000, 0x20ff),
    (0x2126, 0x2126),
    (0x212a, 0x212b),
    (0x2329, 0x232a),
    (0x2adc, 0x2adc),
    (0x302b, 0x302c),
    (0xaab2, 0xaab3),
    (0xf900, 0xfa0d),
    (0xfa10, 0xfa10),
    (0xfa12, 0xfa12),
    (0xfa15, 0xfa1e),
    (0xfa20, 0xfa20),
    (0xfa22, 0xfa22),
    (0xfa25, 0xfa26),
    (0xfa2a, 0xfa2d),
    (0xfa30, 0xfa6d),
    (0xfa70, 0xfad9),
    (0xfb1d, 0xfb1d),
    (0xfb1f, 0xfb1f),
    (0xfb2a, 0xfb36),
    (0xfb38, 0xfb3c),
    (0xfb3e, 0xfb3e),
    (0xfb40, 0xfb41),
    (0xfb43, 0xfb44),
    (0xfb46, 0xfb4e),
    (0xfeff, 0xfeff),
    (0xfff0, 0xffff),
];

/// The code points U+00FF..U+FFFF the server must escape (§5.1), raw.
pub(crate) fn server_killer() -> String {
    (0xff..=0xffffu32)
        .filter_map(char::from_u32)
        .filter(|c| server_must_escape(*c))
        .collect()
}

/// The same, as the server must encode them: `"\u200c…"` with lowercase hex.
pub(crate) fn server_killer_escaped() -> String {
    let mut s = String::from("\"");
    for c in server_killer().chars() {
        s.push_str(&format!("\\u{:04x}", c as u32));
    }
    s.push('"');
    s
}

/// The client-escaped code points, as a JSON string literal of `\uXXXX` escapes, and the
/// string it denotes.
pub(crate) fn client_killer() -> (String, String) {
    let mut lit = String::from("\"");
    let mut raw = String::new();
    for &(a, b) in CLIENT_ESCAPED {
        for cp in a..=b {
            if let Some(c) = char::from_u32(cp) {
                lit.push_str(&format!("\\u{cp:04x}"));
                raw.push(c);
            }
        }
    }
    lit.push('"');
    (lit, raw)
}

pub(crate) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "s5_1_escape_lowercase_hex",
            "5.1",
            "U+200C-200F, U+2028-202F, U+2060-206F, U+FFF0-FFFF go out as \\uxxxx, lowercase (xhr)",
            |ctx: &Ctx| {
                let got = xhr_roundtrip(ctx, &format!("[\"{}\"]", server_killer()))?;
                expect_eq(
                    "echoed frame",
                    format!("a[{}]\n", server_killer_escaped()),
                    got,
                )
            },
        ),
        Check::new(
            "s5_1_escape_lowercase_hex_websocket",
            "5.1",
            "the §5.1 code points are escaped in lowercase on the websocket transport too",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let mut ws = Ws::connect_sockjs(ctx, &s.url("websocket"))?;
                ws.expect_text("open frame", "o")?;
                ws.send(&format!("[\"{}\"]", server_killer()))?;
                ws.expect_text("echoed frame", &format!("a[{}]", server_killer_escaped()))?;
                ws.close();
                Ok(())
            },
        ),
        Check::new(
            "s5_1_escape_lowercase_hex_xhr_streaming",
            "5.1",
            "the §5.1 code points are escaped in lowercase on xhr_streaming",
            |ctx: &Ctx| escape_on_stream(ctx, "xhr_streaming"),
        ),
        Check::new(
            "s5_1_escape_lowercase_hex_eventsource",
            "5.1",
            "the §5.1 code points are escaped in lowercase on eventsource (data: + the frame)",
            |ctx: &Ctx| escape_on_stream(ctx, "eventsource"),
        ),
        Check::new(
            "s5_1_escape_lowercase_hex_htmlfile",
            "5.1",
            "the §5.1 code points are escaped in lowercase on htmlfile, inside its second JSON string",
            |ctx: &Ctx| escape_on_stream(ctx, "htmlfile"),
        ),
        Check::new(
            "s5_1_escape_lowercase_hex_jsonp",
            "5.1",
            "the §5.1 code points are escaped in lowercase on jsonp, inside its second JSON string",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let poll = || {
                    ctx.request(&receiver_request(&s, "jsonp", "cb"))
                        .step("GET jsonp")
                };
                let r = poll()?;
                expect_response(
                    "GET jsonp",
                    &r,
                    200,
                    wrap_frame("jsonp", "cb", "o").as_bytes(),
                )?;
                ctx.send_ok(&s, &format!("[\"{}\"]", server_killer()))?;
                let r = poll()?;
                let frame = format!("a[{}]", server_killer_escaped());
                expect_response(
                    "GET jsonp",
                    &r,
                    200,
                    wrap_frame("jsonp", "cb", &frame).as_bytes(),
                )
            },
        ),
        Check::new(
            "s5_1_escape_standard_json",
            "5.1",
            "quote, backslash and U+0000-001F use standard JSON escapes (\\\" \\\\ \\b \\t \\n \\f \\r, other controls \\u00XX, hex in either case), exactly",
            |ctx: &Ctx| {
                let got = xhr_roundtrip(ctx, &format!("[{}]", json_quote(&c0_message())))?;
                expect_standard_json(&got)
            },
        ),
        Check::new(
            "s5_1_other_characters_roundtrip",
            "5.1",
            "characters outside the §5.1 set round-trip (raw or escaped), astral ones included",
            |ctx: &Ctx| {
                let msg = "x/<>&\u{7f}\u{ad}é\u{1f600}\u{10ffff}y";
                let got = xhr_roundtrip(ctx, &format!("[\"{msg}\"]"))?;
                expect_messages(&got, &[msg])
            },
        ),
        Check::new(
            "s5_2_decode_client_escapes",
            "5.2",
            "every \\uXXXX escape the client produces is decoded losslessly",
            |ctx: &Ctx| {
                let (lit, raw) = client_killer();
                let got = xhr_roundtrip(ctx, &format!("[{lit}]"))?;
                expect_messages(&got, &[&raw])
            },
        ),
        Check::new(
            "s5_2_decode_surrogate_pairs",
            "5.2",
            "escaped surrogate pairs (\\ud83d\\ude00) decode to one character",
            |ctx: &Ctx| {
                let got = xhr_roundtrip(ctx, "[\"\\ud83d\\ude00\"]")?;
                expect_messages(&got, &["\u{1f600}"])
            },
        ),
        Check::new(
            "s5_queued_messages_one_frame",
            "5",
            "messages queued between polls go out in one a[...] frame, in order",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                ctx.open_xhr(&s)?;
                ctx.send_ok(&s, "[\"1\"]")?;
                ctx.send_ok(&s, "[\"2\",\"3\"]")?;
                ctx.send_ok(&s, "[\"4\"]")?;
                ctx.expect_xhr("POST xhr", &s, "a[\"1\",\"2\",\"3\",\"4\"]\n")
            },
        ),
    ]
}

/// §5.1 on a stream of `transport`: the 44 code points sent raw come back as one frame
/// `a["\u200c…\uffff"]` (lowercase), wrapped as the transport wraps frames (§8).
fn escape_on_stream(ctx: &Ctx, transport: &str) -> Outcome {
    let s = ctx.session(ECHO);
    let mut st = ctx.open(&receiver_request(&s, transport, "cb"))?;
    expect_head_status(transport, &st.head, 200)?;
    expect_prelude(&mut st, transport, transport, "cb")?;
    st.expect_chunk("open frame", wrap_frame(transport, "cb", "o"))?;
    ctx.send_ok(&s, &format!("[\"{}\"]", server_killer()))?;
    let frame = format!("a[{}]", server_killer_escaped());
    st.expect_chunk("echoed frame", wrap_frame(transport, "cb", &frame))
}

/// U+0000-U+001F, the quote and the backslash: the characters standard JSON escapes.
fn c0_message() -> String {
    (0u32..0x20)
        .filter_map(char::from_u32)
        .chain("\"\\".chars())
        .collect()
}

/// §5.1 layer 1 on the echo of [`c0_message`], byte for byte: `\"`, `\\`, the short
/// escapes `\b \t \n \f \r`, and every other control as `\u00XX` (its hex digits in either
/// case: standard JSON; only the extra ranges must be lowercase).
fn expect_standard_json(got: &[u8]) -> Outcome {
    let want = format!("a[{}]\n", sockjs_quote(&c0_message()));
    expect_eq(
        "echoed frame (exact bytes, \\u escapes' hex in any case)",
        want,
        lower_unicode_escapes(got),
    )
}

/// `text` with the hex digits of every `\uXXXX` escape in lowercase (other bytes, and
/// escaped backslashes, as they are).
fn lower_unicode_escapes(text: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    let mut i = 0;
    while i < out.len() {
        if out[i] != b'\\' {
            i += 1;
            continue;
        }
        if out.get(i + 1) == Some(&b'u') {
            for b in out.iter_mut().skip(i + 2).take(4) {
                b.make_ascii_lowercase();
            }
            i += 6;
        } else {
            i += 2;
        }
    }
    out
}

/// Opens an echo session over xhr, sends `payload`, and returns the next poll's body.
fn xhr_roundtrip(ctx: &Ctx, payload: &str) -> Result<Vec<u8>, Failure> {
    let s = ctx.session(ECHO);
    ctx.open_xhr(&s)?;
    ctx.send_ok(&s, payload)?;
    let r = ctx.xhr(&s).step("POST xhr")?;
    expect_status("POST xhr", &r, 200)?;
    Ok(r.body)
}

/// Parses an xhr `a[...]\n` body and compares its messages.
fn expect_messages(body: &[u8], want: &[&str]) -> Outcome {
    let text = std::str::from_utf8(body).map_err(|_| fail("frame is not UTF-8"))?;
    let inner = text
        .strip_prefix('a')
        .and_then(|t| t.strip_suffix('\n'))
        .ok_or_else(|| {
            fail(format!(
                "expected an a[...]\\n frame, got \"{}\"",
                esc_short(body, 160)
            ))
        })?;
    let got = json::parse_string_array(inner).map_err(|e| {
        fail(format!(
            "frame payload is not a JSON array of strings ({e}): \"{}\"",
            esc_short(body, 160)
        ))
    })?;
    if got.len() != want.len() {
        return Err(fail(format!(
            "expected {} message(s), got {}",
            want.len(),
            got.len()
        )));
    }
    for (g, w) in got.iter().zip(want) {
        if g != w {
            let pos = g
                .chars()
                .zip(w.chars())
                .position(|(a, b)| a != b)
                .unwrap_or(g.chars().count().min(w.chars().count()));
            let e = w.chars().nth(pos).map(|c| format!("U+{:04X}", c as u32));
            let h = g.chars().nth(pos).map(|c| format!("U+{:04X}", c as u32));
            return Err(fail(format!(
                "decoded message differs at character {pos}: expected {}, got {} ({} vs {} characters)",
                e.unwrap_or_else(|| "end".into()),
                h.unwrap_or_else(|| "end".into()),
                w.chars().count(),
                g.chars().count()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn c0_escapes_are_compared_exactly() {
        let lower = "a[\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\
                     \\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\
                     \\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\\"\\\\\"]\n";
        assert_eq!(expect_standard_json(lower.as_bytes()), Ok(()));
        // Standard JSON: a control's hex digits in either case.
        let upper = lower
            .replace("\\u001f", "\\u001F")
            .replace("\\u000b", "\\u000B");
        assert_eq!(expect_standard_json(upper.as_bytes()), Ok(()));
        // A letter that is not an escape's is compared as it is.
        let other = lower.replace("a[", "A[");
        assert!(expect_standard_json(other.as_bytes()).is_err());
        let unescaped = lower.replace("\\t", "\\u0009");
        assert!(expect_standard_json(unescaped.as_bytes()).is_err());
    }

    #[test]
    fn killer_strings() {
        assert_eq!(server_killer().chars().count(), 44);
        let esc = server_killer_escaped();
        assert!(esc.starts_with("\"\\u200c\\u200d"));
        assert!(esc.ends_with("\\ufffe\\uffff\""));
        let (lit, raw) = client_killer();
        assert_eq!(json::parse(&lit).unwrap(), json::Json::String(raw));
    }
}
