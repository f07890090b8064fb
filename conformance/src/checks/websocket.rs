//! §9: WebSocket transports (handshake rules, hixie-76, SockJS framing, raw).

use super::{ECHO, verify_405};
use crate::check::{
    Check, Ctx, Failure, Outcome, Step, ensure, expect_eq, expect_head_status, expect_header,
    expect_no_header, expect_status, fail, service,
};
use crate::http::{Head, Request};
use crate::util::{esc, random_u64};
use crate::ws::{Ws, WsEvent, hixie76_answer};

const KEY1: &str = "4 @1  46546xW%0l 1 5";
const KEY2: &str = "12998 5 Y3 1  .P00";

pub(crate) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "s9_1_get_without_upgrade_400",
            "9.1",
            "a GET without Upgrade: websocket (absent, or h2c) to /S/I/websocket and /websocket is 400",
            |ctx: &Ctx| {
                for path in [
                    ctx.path(&format!("{ECHO}/0/0/websocket")),
                    ctx.path(&format!("{ECHO}/websocket")),
                ] {
                    let r = ctx.get(&path, &[]).step(&format!("GET {path}"))?;
                    expect_status(&format!("GET {path}"), &r, 400)?;
                    let what = format!("GET {path} with Upgrade: h2c");
                    let r = ctx
                        .get(&path, &[("Upgrade", "h2c"), ("Connection", "Upgrade")])
                        .step(&what)?;
                    expect_status(&what, &r, 400)?;
                }
                Ok(())
            },
        ),
        Check::new(
            "s9_1_connection_without_upgrade_400",
            "9.1",
            "Upgrade: WebSocket with Connection: close is 400 on /S/I/websocket and /websocket",
            |ctx: &Ctx| {
                for path in [
                    ctx.path(&format!("{ECHO}/0/0/websocket")),
                    ctx.path(&format!("{ECHO}/websocket")),
                ] {
                    let r = ctx
                        .get(&path, &[("Upgrade", "WebSocket"), ("Connection", "close")])
                        .step(&format!("GET {path}"))?;
                    expect_status(&format!("GET {path}"), &r, 400)?;
                }
                Ok(())
            },
        ),
        Check::new(
            "s9_1_raw_websocket_post_405",
            "9.1",
            "POST to the raw /websocket is a bare 405 with Allow: GET",
            |ctx: &Ctx| {
                let path = ctx.path(&format!("{ECHO}/websocket"));
                let r = ctx
                    .post(
                        &path,
                        "",
                        &[("Upgrade", "WebSocket"), ("Connection", "Upgrade")],
                    )
                    .step(&format!("POST {path}"))?;
                verify_405(&format!("POST {path}"), &r, &["GET"])
            },
        ),
        Check::new(
            "s9_1_version_not_13_refused",
            "9.1",
            "an upgrade with Sec-WebSocket-Version 7, 8 or 12, or none, is refused (400, or RFC 6455's 426) on /S/I/websocket and /websocket (a server speaking the 0.3.3 protocol accepts 7 and 8)",
            |ctx: &Ctx| {
                for path in [
                    ctx.session(ECHO).url("websocket"),
                    ctx.path(&format!("{ECHO}/websocket")),
                ] {
                    for version in [Some("7"), Some("8"), Some("12"), None] {
                        let what = format!(
                            "GET {path} with Sec-WebSocket-Version {}",
                            version.unwrap_or("absent")
                        );
                        let mut h = vec![
                            ("Upgrade", "websocket"),
                            ("Connection", "Upgrade"),
                            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                        ];
                        h.extend(version.map(|v| ("Sec-WebSocket-Version", v)));
                        let r = ctx.get(&path, &h).step(&what)?;
                        // RFC 6455 §4.4 names 426 Upgrade Required; sockjs-node and
                        // sockjs-rs answer 400. Either refuses the upgrade.
                        crate::check::ensure(matches!(r.status(), 400 | 426), || {
                            format!("{what}: expected 400 or 426, got {}", r.status())
                        })?;
                    }
                }
                Ok(())
            },
        ),
        Check::new(
            "s9_1_missing_key_400",
            "9.1",
            "a version-13 upgrade without Sec-WebSocket-Key is 400 on /S/I/websocket and /websocket",
            |ctx: &Ctx| {
                for path in [
                    ctx.session(ECHO).url("websocket"),
                    ctx.path(&format!("{ECHO}/websocket")),
                ] {
                    let what = format!("GET {path} without Sec-WebSocket-Key");
                    let h = [
                        ("Upgrade", "websocket"),
                        ("Connection", "Upgrade"),
                        ("Sec-WebSocket-Version", "13"),
                    ];
                    let r = ctx.get(&path, &h).step(&what)?;
                    expect_status(&what, &r, 400)?;
                }
                Ok(())
            },
        ),
        Check::new(
            "s9_1_accept_key_vector",
            "9.1",
            "101 with Sec-WebSocket-Accept HSmrc0sMlYUkAGmm5OPpG2HaGWk= for the RFC key, no Content-Length",
            |ctx: &Ctx| {
                let h = upgrade(ctx, "x3JJHMbDL1EzLkh9GBhXDw==", &[])?;
                expect_header(
                    "101",
                    &h,
                    "sec-websocket-accept",
                    "HSmrc0sMlYUkAGmm5OPpG2HaGWk=",
                )
            },
        ),
        Check::new(
            "s9_1_accept_key_random",
            "9.1",
            "Sec-WebSocket-Accept is derived from a random key",
            |ctx: &Ctx| {
                let key = random_key();
                let h = upgrade(ctx, &key, &[])?;
                let want = tungstenite::handshake::derive_accept_key(key.as_bytes());
                expect_header("101", &h, "sec-websocket-accept", &want)
            },
        ),
        Check::new(
            "s9_1_upgrade_token_case_insensitive",
            "9.1",
            "Upgrade: WebSocket (any case) is accepted",
            |ctx: &Ctx| upgrade(ctx, &random_key(), &[("Upgrade", "WebSocket")]).map(|_| ()),
        ),
        Check::new(
            "s9_1_connection_token_list",
            "9.1",
            "Connection is a token list: keep-alive, Upgrade is accepted",
            |ctx: &Ctx| {
                upgrade(ctx, &random_key(), &[("Connection", "keep-alive, Upgrade")]).map(|_| ())
            },
        ),
        Check::new(
            "s9_1_hixie76_handshake",
            "9.1",
            "hixie-76: 101 head before key3, exact Location/Origin, then the MD5 challenge answer",
            |ctx: &Ctx| hixie76(ctx, false),
        ),
        Check::new(
            "s9_1_hixie76_bad_key_refused",
            "9.1",
            "hixie-76: a key with no spaces, or whose number its spaces do not divide exactly, is refused with a 4xx, never a 101",
            hixie76_bad_keys,
        ),
        Check::new(
            "s9_1_hixie76_open_frame",
            "9.1",
            "hixie-76: after the challenge answer the first frame is 00 'o' FF",
            |ctx: &Ctx| hixie76(ctx, true),
        ),
        Check::new(
            "s9_2_open_and_echo",
            "9.2",
            "websocket: text o on open, [\"a\"] echoes as a[\"a\"]",
            |ctx: &Ctx| echo(ctx, &["[\"a\"]"], "echo", "a[\"a\"]"),
        ),
        Check::new(
            "s9_2_app_close",
            "9.2",
            "websocket: app close sends c[3000,\"Go away!\"] then closes the socket",
            |ctx: &Ctx| {
                let mut ws = sockjs_ws(ctx, service::CLOSE)?;
                ws.expect_text("close frame", "c[3000,\"Go away!\"]")?;
                ws.expect_closed("after the close frame")?;
                Ok(())
            },
        ),
        Check::new(
            "s9_2_empty_frame_ignored",
            "9.2",
            "websocket: an empty message and [] are ignored",
            |ctx: &Ctx| {
                let sent = ["", "[]", "[\"a\"]"];
                echo(ctx, &sent, "echo after empty frames", "a[\"a\"]")
            },
        ),
        Check::new(
            "s9_2_array_elements_in_order",
            "9.2",
            "websocket: each element of an array is one message, delivered in order",
            |ctx: &Ctx| {
                let mut ws = sockjs_ws(ctx, ECHO)?;
                ws.send("[\"a\",\"b\",\"c\"]")?;
                let mut got: Vec<String> = Vec::new();
                while got.len() < 3 {
                    match ws.recv()? {
                        WsEvent::Text(t) => {
                            let inner = t.strip_prefix('a').ok_or_else(|| {
                                fail(format!(
                                    "expected an a[...] frame, got \"{}\"",
                                    esc(t.as_bytes())
                                ))
                            })?;
                            got.extend(crate::json::parse_string_array(inner).map_err(|e| {
                                fail(format!("bad frame \"{}\": {e}", esc(t.as_bytes())))
                            })?);
                        }
                        other => {
                            return Err(fail(format!(
                                "expected a frames, got {}",
                                other.describe()
                            )));
                        }
                    }
                }
                ensure(got == ["a", "b", "c"], || {
                    format!("expected messages [\"a\",\"b\",\"c\"], got {got:?}")
                })?;
                ws.close();
                Ok(())
            },
        ),
        Check::new(
            "s9_2_non_array_json_is_one_message",
            "9.2",
            "websocket: a JSON value that is not an array is one message (\"x\" echoes as a[\"x\"])",
            |ctx: &Ctx| echo(ctx, &["\"x\""], "echo of a JSON string", "a[\"x\"]"),
        ),
        Check::new(
            "s9_2_broken_json_terminates",
            "9.2",
            "websocket: a message that is not JSON terminates the session: the socket closes (any close code, or none; one c[...] frame may come first), nothing is echoed",
            |ctx: &Ctx| {
                let mut ws = sockjs_ws(ctx, ECHO)?;
                ws.send("[\"a")?;
                expect_terminated(&mut ws, "after broken JSON")
            },
        ),
        Check::new(
            "s9_2_session_id_reuse",
            "9.2",
            "two websockets on the same /S/I/websocket are independent, and I can be reused",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let path = s.url("websocket");
                let mut ws1 = Ws::connect_sockjs(ctx, &path)?;
                ws1.expect_text("first socket open", "o")?;
                let mut ws2 = Ws::connect_sockjs(ctx, &path)?;
                ws2.expect_text("second socket open", "o")?;
                ws1.send("[\"a\"]")?;
                ws1.expect_text("first socket echo", "a[\"a\"]")?;
                ws2.send("[\"b\"]")?;
                ws2.expect_text("second socket echo", "a[\"b\"]")?;
                ws1.close();
                ws2.close();
                let mut ws3 = Ws::connect_sockjs(ctx, &path)?;
                ws3.expect_text("third socket open", "o")?;
                ws3.send("[\"a\"]")?;
                ws3.expect_text("third socket echo", "a[\"a\"]")?;
                ws3.close();
                Ok(())
            },
        ),
        Check::new(
            "s9_3_raw_echo",
            "9.3",
            "raw websocket: Hello world!\\uffff echoes verbatim, no SockJS framing",
            |ctx: &Ctx| {
                let mut ws = Ws::connect(ctx, &ctx.path(&format!("{ECHO}/websocket")))?;
                ws.send("Hello world!\u{ffff}")?;
                ws.expect_text("raw echo", "Hello world!\u{ffff}")?;
                ws.close();
                Ok(())
            },
        ),
        Check::new(
            "s9_3_raw_close_reason",
            "9.3",
            "raw websocket: app close is a close frame 3000 \"Go away!\"",
            |ctx: &Ctx| {
                let mut ws = Ws::connect(ctx, &ctx.path(&format!("{}/websocket", service::CLOSE)))?;
                match ws.recv()? {
                    WsEvent::Close(Some((code, reason))) => {
                        expect_eq("close reason", "Go away!", &reason)?;
                        ensure(code == 3000, || {
                            format!("close code: expected 3000, got {code}")
                        })
                    }
                    other => Err(fail(format!(
                        "expected a close frame 3000 \"Go away!\", got {}",
                        other.describe()
                    ))),
                }
            },
        ),
    ]
}

fn random_key() -> String {
    // 16 bytes, base64 (24 characters with padding); random enough for a handshake.
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (a, b) = (random_u64(), random_u64());
    let bytes: Vec<u8> = a.to_be_bytes().into_iter().chain(b.to_be_bytes()).collect();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}

/// An RFC 6455 upgrade request written by hand (overrides replace default headers);
/// checks the 101 basics and returns its head.
fn upgrade(ctx: &Ctx, key: &str, overrides: &[(&str, &str)]) -> Result<Head, Failure> {
    let s = ctx.session(ECHO);
    let mut headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Origin", "http://asd"),
        ("Sec-WebSocket-Key", key),
    ];
    for (n, v) in overrides {
        if let Some(h) = headers
            .iter_mut()
            .find(|(hn, _)| hn.eq_ignore_ascii_case(n))
        {
            h.1 = v;
        }
    }
    let mut conn = ctx.connect()?;
    conn.send(&Request::new("GET", &s.url("websocket")).headers(&headers))
        .step("upgrade request")?;
    let h = conn.read_head().step("upgrade response")?;
    expect_head_status("upgrade response", &h, 101)?;
    expect_rfc6455_101(&h)?;
    Ok(h)
}

/// The 101's fields as an RFC 6455 client checks them (§4.1): `Upgrade` is `websocket` in
/// any case, and `Connection` holds an `Upgrade` token, in any case, in a comma-separated
/// list over one field or several (`Connection: Upgrade, keep-alive` is fine); and no
/// Content-Length (PROTOCOL.md §9.1).
fn expect_rfc6455_101(h: &Head) -> Outcome {
    let connection = h.header_all("connection");
    let upgrade_token = connection
        .iter()
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    ensure(upgrade_token, || {
        format!(
            "101: Connection must hold an Upgrade token (RFC 6455 §4.1), got {}",
            if connection.is_empty() {
                "none".to_string()
            } else {
                format!("\"{}\"", esc(connection.join(", ").as_bytes()))
            }
        )
    })?;
    let upgrade = h.header("upgrade").unwrap_or_default().to_ascii_lowercase();
    expect_eq("Upgrade (lowercased)", "websocket", upgrade)?;
    expect_no_header("101", h, "content-length")
}

/// A SockJS websocket on a fresh session of `svc`, after its `o` frame.
fn sockjs_ws(ctx: &Ctx, svc: &str) -> Result<Ws, Failure> {
    let s = ctx.session(svc);
    let mut ws = Ws::connect_sockjs(ctx, &s.url("websocket"))?;
    ws.expect_text("open frame", "o")?;
    Ok(ws)
}

/// A SockJS WebSocket on the echo service that is sent each of `sent` answers with one
/// frame, `expected` (what comes first, `o`, is checked on the way in).
fn echo(ctx: &Ctx, sent: &[&str], what: &str, expected: &str) -> Outcome {
    let mut ws = sockjs_ws(ctx, ECHO)?;
    for text in sent {
        ws.send(text)?;
    }
    ws.expect_text(what, expected)?;
    ws.close();
    Ok(())
}

/// §9.2: the server terminates a SockJS websocket whose client sent text that is not
/// JSON. PROTOCOL.md says only "terminate" (node closes with 3000 "Broken framing." and no
/// `c` frame), so one `c[...]` frame may come first, and then the socket must close, with
/// any close code or none. An `a[...]` frame (the broken text taken as a message), any
/// other text, or a socket left open fails. Heartbeats are passed over.
fn expect_terminated(ws: &mut Ws, what: &str) -> Outcome {
    match ws.recv().step(what)? {
        WsEvent::Text(t) if t.starts_with("c[") => {
            ws.expect_closed(&format!(
                "{what}, after the close frame \"{}\"",
                esc(t.as_bytes())
            ))?;
        }
        WsEvent::Close(_) => {
            ws.expect_closed(&format!("{what}, after the WebSocket close frame"))?;
        }
        WsEvent::Closed(_) => {}
        WsEvent::Text(t) if t.starts_with("a[") => {
            return Err(fail(format!(
                "{what}: expected the socket to close, got the message frame \"{}\" (the broken text was taken as a message)",
                esc(t.as_bytes())
            )));
        }
        other => {
            return Err(fail(format!(
                "{what}: expected the socket to close (one c[...] frame may come first), got {}",
                other.describe()
            )));
        }
    }
    Ok(())
}

fn hixie76_bad_keys(ctx: &Ctx) -> Outcome {
    let origin = format!("http://{}", ctx.host);
    for (what, key1) in [("no spaces", "123"), ("13 over 2 spaces", "1  3")] {
        let s = ctx.session(ECHO);
        let mut conn = ctx.connect()?;
        conn.send(&Request::new("GET", &s.url("websocket")).headers(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "WebSocket"),
            ("Origin", &origin),
            ("Sec-WebSocket-Key1", key1),
            ("Sec-WebSocket-Key2", KEY2),
        ]))
        .step("hixie-76 request")?;
        conn.write_raw(b"aaaaaaaa").step("sending key3")?;
        let h = conn.read_head().step("hixie-76 response head")?;
        ensure((400..500).contains(&h.status), || {
            format!(
                "hixie-76 key1 with {what}: expected a 4xx, got {}",
                h.status
            )
        })?;
    }
    Ok(())
}

fn hixie76(ctx: &Ctx, open_frame: bool) -> Outcome {
    let s = ctx.session(ECHO);
    let path = s.url("websocket");
    let origin = format!("http://{}", ctx.host);
    let mut conn = ctx.connect()?;
    conn.send(&Request::new("GET", &path).headers(&[
        ("Connection", "Upgrade"),
        ("Upgrade", "WebSocket"),
        ("Origin", &origin),
        ("Sec-WebSocket-Key1", KEY1),
        ("Sec-WebSocket-Key2", KEY2),
    ]))
    .step("hixie-76 request")?;
    let h = conn
        .read_head()
        .step("hixie-76 response head (must come before key3 is sent)")?;
    expect_head_status("hixie-76", &h, 101)?;
    // Not a token list here: a hixie-76 client fails a Connection value that, lowercased,
    // is not exactly `upgrade` (draft-hixie-thewebsocketprotocol-76 §4.1).
    let lower = |n: &str| h.header(n).unwrap_or_default().to_ascii_lowercase();
    expect_eq("Connection (lowercased)", "upgrade", lower("connection"))?;
    expect_eq("Upgrade (lowercased)", "websocket", lower("upgrade"))?;
    expect_header(
        "hixie-76",
        &h,
        "sec-websocket-location",
        &format!("{}://{}{path}", ctx.ws_scheme(), ctx.host),
    )?;
    expect_header("hixie-76", &h, "sec-websocket-origin", &origin)?;
    expect_no_header("hixie-76", &h, "content-length")?;
    conn.write_raw(b"aaaaaaaa").step("sending key3")?;
    let answer = hixie76_answer(KEY1, KEY2, b"aaaaaaaa").ok_or_else(|| fail("internal: keys"))?;
    let got = conn.read_exact_bytes(16).step("challenge answer")?;
    expect_eq("challenge answer", answer, &got)?;
    if open_frame {
        let got = conn.read_exact_bytes(3).step("first frame")?;
        expect_eq("first frame", b"\x00o\xff", &got)?;
    }
    Ok(())
}

/// permessage-deflate, when the server offers it (RFC 7692; PROTOCOL.md §9.1).
pub(crate) fn permessage_deflate() -> Check {
    Check::new(
        "s9_1_permessage_deflate_when_offered",
        "9.1",
        "offered permessage-deflate as Chromium offers it, the server answers without an \
         extension (skip) or with a valid RFC 7692 answer; then compressed, fragmented and \
         plain messages echo, and a 2 KB JSON echo comes back compressed",
        |ctx: &Ctx| {
            use crate::deflate::{CHROMIUM_OFFER, DeflateWs};
            let s = ctx.session(ECHO);
            let path = s.url("websocket");
            let (stream, _) = ctx.connect()?.into_stream();
            let mut ws = DeflateWs::over(stream, &ctx.host, &path, Some(CHROMIUM_OFFER))
                .map_err(|e| fail(format!("upgrade with an offer: {e}")))?;
            ws.heartbeat = ctx.heartbeat;
            let text = |ws: &mut DeflateWs, what: &str| {
                ws.recv_text().map_err(|e| fail(format!("{what}: {e}")))
            };
            expect_eq("open frame", "o", text(&mut ws, "open frame")?.0)?;
            let send = |ws: &mut DeflateWs, body: &str, compress: bool| {
                ws.send(body, compress)
                    .map_err(|e| fail(format!("send: {e}")))
            };
            send(&mut ws, r#"["plain"]"#, false)?;
            expect_eq(
                "plain echo",
                r#"a["plain"]"#,
                text(&mut ws, "plain echo")?.0,
            )?;
            let Some(agreed) = ws.agreed() else {
                let _ = ws.close(1000);
                return Err(crate::check::skip(
                    "the server does not offer permessage-deflate (the offer did not hurt: the \
                     socket echoes)",
                ));
            };
            ensure(agreed.client_max_window_bits.is_none_or(|b| b >= 8), || {
                format!("answer {:?}", ws.answer)
            })?;
            let item = r#"{\"id\":12345,\"user\":\"ann\",\"tags\":[\"a\",\"b\"],\"ok\":true}"#;
            let big: Vec<&str> = std::iter::repeat_n(item, 40).collect();
            let big = format!("\"{}\"", big.join(","));
            send(&mut ws, &format!("[{big}]"), true)?;
            let (echo, compressed) = text(&mut ws, "compressed 2 KB echo")?;
            expect_eq("compressed 2 KB echo", format!("a[{big}]"), echo)?;
            ensure(compressed, || "the 2 KB JSON echo came uncompressed".into())?;
            send(&mut ws, r#"["tiny"]"#, true)?;
            expect_eq(
                "compressed tiny echo",
                r#"a["tiny"]"#,
                text(&mut ws, "tiny echo")?.0,
            )?;
            // One compressed message in three frames, RSV1 on the first only.
            let mut codec = crate::deflate::Codec::new(Some(agreed));
            let payload = codec.compress(br#"["in pieces"]"#);
            let third = payload.len().div_ceil(3);
            let mut frames = Vec::new();
            for (i, piece) in payload.chunks(third).enumerate() {
                let first = if i == 0 { 0x41 } else { 0x00 };
                let fin = if (i + 1) * third >= payload.len() {
                    0x80
                } else {
                    0
                };
                codec.encode_frame(first | fin, piece, &mut frames);
            }
            ws.write(&frames)
                .map_err(|e| fail(format!("send fragments: {e}")))?;
            expect_eq(
                "fragmented echo",
                r#"a["in pieces"]"#,
                text(&mut ws, "fragmented echo")?.0,
            )?;
            let _ = ws.close(1000);
            Ok(())
        },
    )
}

/// permessage-deflate offered with a server window below 32 KiB (RFC 7692 §7.1.2.1;
/// PROTOCOL.md §9.1).
pub(crate) fn permessage_deflate_small_server_window() -> Check {
    Check::new(
        "s9_1_permessage_deflate_small_server_window",
        "9.1",
        "offered permessage-deflate with server_max_window_bits=9, the server declines it \
         (skip) or answers with server_max_window_bits of at most 9; then compressed messages \
         shorter and longer than the 512-byte window echo, and what the server compresses \
         inflates within that window",
        |ctx: &Ctx| {
            use crate::deflate::DeflateWs;
            const OFFER: &str = "permessage-deflate; server_max_window_bits=9";
            let s = ctx.session(ECHO);
            let path = s.url("websocket");
            let (stream, _) = ctx.connect()?.into_stream();
            let mut ws = DeflateWs::over(stream, &ctx.host, &path, Some(OFFER))
                .map_err(|e| fail(format!("upgrade with an offer: {e}")))?;
            ws.heartbeat = ctx.heartbeat;
            let text = |ws: &mut DeflateWs, body: &str, what: &str| {
                ws.send(body, true)
                    .map_err(|e| fail(format!("send: {e}")))?;
                ws.recv_text()
                    .map(|(echo, _)| echo)
                    .map_err(|e| fail(format!("{what}: {e}")))
            };
            let open = ws
                .recv_text()
                .map_err(|e| fail(format!("open frame: {e}")))?;
            expect_eq("open frame", "o", open.0)?;
            let Some(agreed) = ws.agreed() else {
                let _ = ws.close(1000);
                return Err(crate::check::skip(
                    "the server declines the offer (RFC 7692 §7.1.2.1 allows it) or does not \
                     offer permessage-deflate",
                ));
            };
            ensure(
                agreed.server_max_window_bits.is_some_and(|b| b <= 9),
                || {
                    format!(
                        "accepted server_max_window_bits=9 without answering it with 9 or less: {:?}",
                        ws.answer
                    )
                },
            )?;
            // Letters that do not repeat within a block, the block twice: a compressor
            // finds the second copy only as far back as the block is long. The client
            // inflates within the 512-byte window, so a server that compresses as if it
            // had 32 KiB fails the 2 KB echo.
            let mut seed = 0x2545_f491u32;
            let block: String = (0..1000)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    char::from(b'a' + (seed >> 16) as u8 % 26)
                })
                .collect();
            for (len, body) in [(300, block[..150].repeat(2)), (2000, block.repeat(2))] {
                let echo = text(&mut ws, &format!("[\"{body}\"]"), "echo")?;
                expect_eq(&format!("{len}-byte echo"), format!("a[\"{body}\"]"), echo)?;
            }
            let _ = ws.close(1000);
            Ok(())
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// [`expect_terminated`] on a SockJS websocket whose server runs `script`.
    fn terminated(
        script: impl FnOnce(&mut tungstenite::WebSocket<std::net::TcpStream>) + Send + 'static,
    ) -> Outcome {
        let ctx = crate::ws::test_server::serve(script);
        let mut ws = Ws::connect_sockjs(&ctx, "/echo/0/0/websocket").unwrap();
        expect_terminated(&mut ws, "after broken JSON")
    }

    /// Closes with `code` and reason `reason`, and waits for the client's answer.
    fn close(ws: &mut tungstenite::WebSocket<std::net::TcpStream>, code: u16, reason: &str) {
        use tungstenite::protocol::CloseFrame;
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.to_string().into(),
        };
        let _ = ws.close(Some(frame));
        while ws.read().is_ok() {}
    }

    fn text(ws: &mut tungstenite::WebSocket<std::net::TcpStream>, t: &str) {
        ws.send(tungstenite::Message::text(t)).unwrap();
    }

    #[test]
    fn broken_json_may_close_in_any_way() {
        terminated(|ws| close(ws, 3000, "Broken framing.")).unwrap();
        terminated(|ws| close(ws, 1002, "")).unwrap();
        terminated(|ws| {
            text(ws, "c[3000,\"Broken framing.\"]");
            close(ws, 1000, "Normal closure");
        })
        .unwrap();
        terminated(|ws| {
            text(ws, "h");
            close(ws, 3000, "Broken framing.");
        })
        .unwrap();
        // The TCP connection closed without a close frame.
        terminated(|_| {}).unwrap();
    }

    #[test]
    fn broken_json_must_not_echo_or_stay_open() {
        let echoed = terminated(|ws| {
            text(ws, "a[\"a\"]");
            close(ws, 3000, "Broken framing.");
        });
        assert!(echoed.unwrap_err().reason.contains("message frame"));
        let other = terminated(|ws| {
            text(ws, "x");
            close(ws, 3000, "Broken framing.");
        });
        assert!(other.is_err());
        let two = terminated(|ws| {
            text(ws, "c[3000,\"Broken framing.\"]");
            text(ws, "c[3000,\"Broken framing.\"]");
            close(ws, 1000, "");
        });
        assert!(two.is_err());
        let open = terminated(|_| std::thread::sleep(Duration::from_secs(1)));
        assert!(open.unwrap_err().reason.contains("timed out"));
    }

    #[test]
    fn rfc6455_s4_1_the_101_connection_is_a_token_list() {
        let head = |fields: &str| {
            crate::http::parse_head(
                format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n{fields}")
                    .as_bytes(),
            )
            .unwrap()
        };
        for ok in [
            "Connection: Upgrade",
            "Connection: upgrade",
            "Connection: Upgrade, keep-alive",
            "Connection: keep-alive,UPGRADE",
            "Connection: keep-alive\r\nConnection: Upgrade",
        ] {
            assert_eq!(expect_rfc6455_101(&head(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Connection: keep-alive",
            "Connection: Upgraded",
            "Connection: Upgrade\r\nContent-Length: 0",
        ] {
            assert!(expect_rfc6455_101(&head(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_keys_are_base64_of_16_bytes() {
        let k = random_key();
        assert_eq!(k.len(), 24, "{k}");
        assert!(k.ends_with("=="), "{k}");
        assert_ne!(k, random_key());
    }
}
