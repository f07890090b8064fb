//! §8: HTTP transports (framing, preludes, limits, callbacks).

use super::ECHO;
use super::headers::{verify_cors, verify_not_cached};
use super::senders::expect_500;
use crate::check::{
    Check, Ctx, Failure, Outcome, Session, Step, Stream, ensure, expect_content_type, expect_eq,
    expect_head_status, expect_response, expect_status,
};
use crate::http::Request;
use crate::util::{diff, json_quote};

/// The htmlfile head with `CALLBACK` standing for the callback name (§8).
pub(crate) const HTMLFILE_HEAD: &str = r#"<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.CALLBACK;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"#;

/// The xhr_streaming prelude: 2048 `h` and a newline.
pub(crate) fn xhr_prelude() -> Vec<u8> {
    let mut p = vec![b'h'; 2048];
    p.push(b'\n');
    p
}

/// Fails unless the next chunk of `st`, a `transport` stream (`xhr_streaming`,
/// `eventsource` or `htmlfile` with callback `callback`), is that transport's prelude,
/// which §8 sends first, whole and in one chunk, on every stream (a 2010 answer included):
/// 2048 `h` and `\n`; `\r\n`; or the htmlfile head with the callback, padded past 1024
/// bytes (compared trimmed, as the suite does).
pub(crate) fn expect_prelude(
    st: &mut Stream,
    what: &str,
    transport: &str,
    callback: &str,
) -> Outcome {
    let what = format!("{what}: {transport} prelude");
    match transport {
        "xhr_streaming" => st.expect_chunk(&what, xhr_prelude()),
        "eventsource" => st.expect_chunk(&what, "\r\n"),
        "htmlfile" => {
            let head = st.chunk().step(&what)?;
            let want = HTMLFILE_HEAD.replace("CALLBACK", callback);
            let text = String::from_utf8_lossy(&head);
            let trimmed = text.trim();
            ensure(trimmed == want, || {
                format!(
                    "{what} (head chunk, trimmed): {}",
                    diff(want.as_bytes(), trimmed.as_bytes())
                )
            })?;
            ensure(head.len() > 1024, || {
                format!(
                    "{what}: head chunk must be more than 1024 bytes, got {}",
                    head.len()
                )
            })
        }
        other => Err(crate::check::fail(format!(
            "internal: no prelude for {other}"
        ))),
    }
}

/// Frame text `f` as the receiving `transport` writes it (§8), `callback` for jsonp.
pub(crate) fn wrap_frame(transport: &str, callback: &str, f: &str) -> String {
    match transport {
        "eventsource" => format!("data: {}\r\n\r\n", crate::util::pct_frame(f)),
        "htmlfile" => htmlfile_frame(f),
        "jsonp" => format!("/**/{callback}({});\r\n", json_quote(f)),
        _ => format!("{f}\n"),
    }
}

/// A receiving request of `transport` on session `s`, callback `cb` where one is needed.
pub(crate) fn receiver_request(s: &Session, transport: &str, cb: &str) -> Request {
    match transport {
        "xhr" | "xhr_streaming" => Request::new("POST", &s.url(transport)),
        "htmlfile" | "jsonp" => Request::new("GET", &s.url(&format!("{transport}?c={cb}"))),
        _ => Request::new("GET", &s.url(transport)),
    }
}

/// An htmlfile frame for frame text `f`.
fn htmlfile_frame(f: &str) -> String {
    format!("<script>\np({});\n</script>\r\n", json_quote(f))
}

pub(crate) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "s8_xhr_transport",
            "8",
            "xhr: o\\n with type, CORS and NO-CACHE; xhr_send 204; next poll a[\"x\"]\\n",
            xhr_transport,
        ),
        Check::new(
            "s8_xhr_streaming_transport",
            "8",
            "xhr_streaming: 2048 h + \\n prelude, o\\n and a[\"x\"]\\n each in its own chunk",
            xhr_streaming_transport,
        ),
        Check::new(
            "s8_xhr_streaming_response_limit",
            "8",
            "xhr_streaming at limit 4096 ends right after the 31st 134-byte frame (prelude not counted)",
            xhr_streaming_limit,
        ),
        Check::new(
            "s8_eventsource_transport",
            "8",
            "eventsource: \\r\\n prelude, data: frames each in its own chunk, controls stay JSON-escaped",
            eventsource_transport,
        ),
        Check::new(
            "s8_eventsource_percent_encoding",
            "8",
            "eventsource percent-encodes % as %25 in data lines",
            |ctx: &Ctx| {
                let (s, mut st) = eventsource_opened(ctx)?;
                ctx.send_ok(&s, "[\"50% a%25\"]")?;
                st.expect_chunk("eventsource frame", "data: a[\"50%25 a%2525\"]\r\n\r\n")
            },
        ),
        Check::new(
            "s8_eventsource_response_limit",
            "8",
            "eventsource counts its frames as written (wrapping in, prelude out): open at 4095 bytes, ended at 4096 or more",
            |ctx: &Ctx| {
                let (s, st) = eventsource_opened(ctx)?;
                let frame = |f: &str| format!("data: {f}\r\n\r\n");
                limit_bookkeeping(ctx, &s, st, frame)
            },
        ),
        Check::new(
            "s8_htmlfile_transport",
            "8",
            "htmlfile: head chunk (> 1024 bytes, exact when trimmed), then <script> frames each in a chunk",
            htmlfile_transport,
        ),
        Check::new(
            "s8_htmlfile_frame_encoding",
            "8",
            "htmlfile frames JSON-encode the frame text a second time (`<` raw or as \\u003c)",
            |ctx: &Ctx| {
                let (s, mut st) = htmlfile_opened(ctx, "callback")?;
                ctx.send_ok(&s, "[\"\\\"\\\\</\"]")?;
                let expected = htmlfile_frame("a[\"\\\"\\\\</\"]");
                let got = st.chunk_past_heartbeats("htmlfile frame", expected.as_bytes())?;
                // §8 hardening: servers may escape `<` so a message cannot end the script.
                let hardened = expected.replacen("</", "\\u003c/", 1);
                if got == hardened.as_bytes() {
                    return Ok(());
                }
                expect_eq("htmlfile frame", expected, got)
            },
        ),
        Check::new(
            "s8_htmlfile_response_limit",
            "8",
            "htmlfile counts its frames as written (wrapping in, head out): open at 4095 bytes, ended at 4096 or more",
            |ctx: &Ctx| {
                let (s, st) = htmlfile_opened(ctx, "callback")?;
                limit_bookkeeping(ctx, &s, st, htmlfile_frame)
            },
        ),
        Check::new(
            "s8_htmlfile_no_callback",
            "8",
            "htmlfile without c= is 500 \"\\\"callback\\\" parameter required\"",
            |ctx: &Ctx| no_callback(ctx, "htmlfile"),
        ),
        Check::new(
            "s8_htmlfile_invalid_callback",
            "8",
            "htmlfile with a callback outside [A-Za-z0-9_.-] is 500 \"invalid \\\"callback\\\" parameter\"",
            |ctx: &Ctx| invalid_callback(ctx, "htmlfile"),
        ),
        Check::new(
            "s8_jsonp_transport",
            "8",
            "jsonp: /**/cb(\"o\");\\r\\n with type and NO-CACHE, callback URL-decoded; then the a frame",
            jsonp_transport,
        ),
        Check::new(
            "s8_jsonp_frame_encoding",
            "8",
            "jsonp frames JSON-encode the frame text a second time",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                super::senders::expect_jsonp(ctx, &s, "/**/x(\"o\");\r\n")?;
                let r = ctx
                    .post(
                        &s.url("jsonp_send"),
                        "[\"\\\"\\\\\"]",
                        &[("Content-Type", "text/plain")],
                    )
                    .step("POST jsonp_send")?;
                expect_response("POST jsonp_send", &r, 200, b"ok")?;
                let frame = "a[\"\\\"\\\\\"]";
                super::senders::expect_jsonp(ctx, &s, &format!("/**/x({});\r\n", json_quote(frame)))
            },
        ),
        Check::new(
            "s8_jsonp_callback_characters",
            "8",
            "callbacks of [A-Za-z0-9_.-] are accepted as given (e.g. _jp.a1b2c3d-X_9)",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let r = ctx
                    .get(&s.url("jsonp?c=_jp.a1b2c3d-X_9"), &[])
                    .step("GET jsonp")?;
                expect_response("GET jsonp", &r, 200, b"/**/_jp.a1b2c3d-X_9(\"o\");\r\n")
            },
        ),
        Check::new(
            "s8_jsonp_no_callback",
            "8",
            "jsonp without c= is 500 \"\\\"callback\\\" parameter required\"",
            |ctx: &Ctx| no_callback(ctx, "jsonp"),
        ),
        Check::new(
            "s8_jsonp_invalid_callback",
            "8",
            "jsonp with a callback outside [A-Za-z0-9_.-] is 500 \"invalid \\\"callback\\\" parameter\"",
            |ctx: &Ctx| invalid_callback(ctx, "jsonp"),
        ),
        Check::new(
            "s8_callback_error_creates_no_session",
            "8",
            "a rejected callback creates no session (a later send is 404)",
            |ctx: &Ctx| {
                for t in ["jsonp", "htmlfile"] {
                    let s = ctx.session(ECHO);
                    for q in ["", "?c=abc("] {
                        let what = format!("GET {t}{q}");
                        let r = ctx.get(&s.url(&format!("{t}{q}")), &[]).step(&what)?;
                        expect_status(&what, &r, 500)?;
                    }
                    let r = ctx.xhr_send(&s, "[\"x\"]").step("POST xhr_send")?;
                    expect_status(&format!("POST xhr_send after the rejected {t}"), &r, 404)?;
                }
                Ok(())
            },
        ),
    ]
}

fn xhr_transport(ctx: &Ctx) -> Outcome {
    let s = ctx.session(ECHO);
    let r = ctx
        .post(&s.url("xhr"), "", &[("Origin", "test")])
        .step("POST xhr")?;
    expect_response("POST xhr", &r, 200, b"o\n")?;
    expect_content_type("POST xhr", &r.head, "application/javascript;charset=UTF-8")?;
    verify_cors("POST xhr", &r.head, Some("test"))?;
    verify_not_cached("POST xhr", &r.head)?;
    let r = ctx
        .post(&s.url("xhr_send"), "[\"x\"]", &[("Origin", "test")])
        .step("POST xhr_send")?;
    expect_response("POST xhr_send", &r, 204, b"")?;
    expect_content_type("POST xhr_send", &r.head, "text/plain;charset=UTF-8")?;
    verify_cors("POST xhr_send", &r.head, Some("test"))?;
    verify_not_cached("POST xhr_send", &r.head)?;
    ctx.expect_xhr("second POST xhr", &s, "a[\"x\"]\n")
}

fn xhr_streaming_transport(ctx: &Ctx) -> Outcome {
    let s = ctx.session(ECHO);
    let mut st = ctx.xhr_streaming(&s, &[("Origin", "test")])?;
    expect_head_status("POST xhr_streaming", &st.head, 200)?;
    expect_content_type(
        "POST xhr_streaming",
        &st.head,
        "application/javascript;charset=UTF-8",
    )?;
    verify_cors("POST xhr_streaming", &st.head, Some("test"))?;
    verify_not_cached("POST xhr_streaming", &st.head)?;
    st.expect_chunk("prelude chunk", xhr_prelude())?;
    st.expect_chunk("open frame chunk", "o\n")?;
    ctx.send_ok(&s, "[\"x\"]")?;
    st.expect_chunk("message frame chunk", "a[\"x\"]\n")
}

fn xhr_streaming_limit(ctx: &Ctx) -> Outcome {
    let s = ctx.session(ECHO);
    let mut st = ctx.xhr_streaming(&s, &[])?;
    expect_head_status("POST xhr_streaming", &st.head, 200)?;
    expect_prelude(&mut st, "POST xhr_streaming", "xhr_streaming", "")?;
    st.expect_chunk("open frame", "o\n")?;
    let msg = format!("\"{}\"", "x".repeat(128));
    for i in 1..=31 {
        ctx.send_ok(&s, &format!("[{msg}]"))
            .step(&format!("send #{i}"))?;
        st.expect_chunk(
            &format!("frame #{i} (stream must stay open until #31)"),
            format!("a[{msg}]\n"),
        )?;
    }
    st.expect_end("after frame #31 (2 + 31 x 134 = 4156 >= 4096)")
}

/// §7.1.4 and §8's limit bookkeeping on a stream just past its open frame, whose frames
/// `frame` wraps: a message that brings the frames written to 4095 bytes (the open frame
/// and its own, wrapping included, the prelude not) leaves the stream open; one more
/// frame takes it to 4096 or more and ends it. A server that counts the prelude ends it
/// too early, one that counts only the payload too late.
fn limit_bookkeeping(
    ctx: &Ctx,
    s: &Session,
    mut st: Stream,
    frame: impl Fn(&str) -> String,
) -> Outcome {
    const LIMIT: usize = 4096;
    let written = frame("o").len();
    // An ASCII letter adds one byte to the frame, wrapped or not.
    let fill = LIMIT - 1 - written - frame("a[\"\"]").len();
    let text = "x".repeat(fill);
    let first = frame(&format!("a[\"{text}\"]"));
    debug_assert_eq!(written + first.len(), LIMIT - 1);
    ctx.send_ok(s, &format!("[\"{text}\"]"))?;
    st.expect_chunk("the frame that makes 4095 bytes", first)?;
    ctx.send_ok(s, "[\"y\"]")?;
    st.expect_chunk("the next frame: still open at 4095", frame("a[\"y\"]"))?;
    st.expect_end("the stream past the limit")
}

fn eventsource_opened(ctx: &Ctx) -> Result<(Session, Stream), Failure> {
    let s = ctx.session(ECHO);
    let mut st = ctx.open(&Request::new("GET", &s.url("eventsource")))?;
    expect_head_status("GET eventsource", &st.head, 200)?;
    st.expect_chunk("prelude chunk", "\r\n")?;
    st.expect_chunk("open frame chunk", "data: o\r\n\r\n")?;
    Ok((s, st))
}

fn eventsource_transport(ctx: &Ctx) -> Outcome {
    let s = ctx.session(ECHO);
    let mut st = ctx.open(&Request::new("GET", &s.url("eventsource")))?;
    expect_head_status("GET eventsource", &st.head, 200)?;
    expect_content_type("GET eventsource", &st.head, "text/event-stream")?;
    verify_not_cached("GET eventsource", &st.head)?;
    st.expect_chunk("prelude chunk", "\r\n")?;
    st.expect_chunk("open frame chunk", "data: o\r\n\r\n")?;
    ctx.send_ok(&s, "[\"x\"]")?;
    st.expect_chunk("message frame chunk", "data: a[\"x\"]\r\n\r\n")?;
    ctx.send_ok(&s, "[\"  \\u0000\\n\\r \"]")?;
    st.expect_chunk(
        "message frame chunk",
        "data: a[\"  \\u0000\\n\\r \"]\r\n\r\n",
    )
}

fn htmlfile_opened(ctx: &Ctx, cb: &str) -> Result<(Session, Stream), Failure> {
    let s = ctx.session(ECHO);
    let mut st = ctx.open(&Request::new("GET", &s.url(&format!("htmlfile?c={cb}"))))?;
    expect_head_status("GET htmlfile", &st.head, 200)?;
    expect_prelude(&mut st, "GET htmlfile", "htmlfile", cb)?;
    st.expect_chunk("open frame chunk", htmlfile_frame("o"))?;
    Ok((s, st))
}

fn htmlfile_transport(ctx: &Ctx) -> Outcome {
    let s = ctx.session(ECHO);
    let mut st = ctx.open(&Request::new("GET", &s.url("htmlfile?c=%63allback")))?;
    expect_head_status("GET htmlfile", &st.head, 200)?;
    expect_content_type("GET htmlfile", &st.head, "text/html;charset=UTF-8")?;
    verify_not_cached("GET htmlfile", &st.head)?;
    expect_prelude(&mut st, "GET htmlfile", "htmlfile", "callback")?;
    st.expect_chunk("open frame chunk", htmlfile_frame("o"))?;
    ctx.send_ok(&s, "[\"x\"]")?;
    st.expect_chunk(
        "message frame chunk",
        "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n",
    )
}

fn jsonp_transport(ctx: &Ctx) -> Outcome {
    let s = ctx.session(ECHO);
    let r = ctx
        .get(&s.url("jsonp?c=%63allback"), &[])
        .step("GET jsonp")?;
    expect_response("GET jsonp", &r, 200, b"/**/callback(\"o\");\r\n")?;
    expect_content_type("GET jsonp", &r.head, "application/javascript;charset=UTF-8")?;
    verify_not_cached("GET jsonp", &r.head)?;
    let r = ctx
        .post(
            &s.url("jsonp_send"),
            "d=%5B%22x%22%5D",
            &[("Content-Type", "application/x-www-form-urlencoded")],
        )
        .step("POST jsonp_send")?;
    expect_response("POST jsonp_send", &r, 200, b"ok")?;
    let r = ctx
        .get(&s.url("jsonp?c=%63allback"), &[])
        .step("second GET jsonp")?;
    expect_response(
        "second GET jsonp",
        &r,
        200,
        b"/**/callback(\"a[\\\"x\\\"]\");\r\n",
    )
}

fn no_callback(ctx: &Ctx, t: &str) -> Outcome {
    let path = ctx.path(&format!("{ECHO}/a/a/{t}"));
    let r = ctx.get(&path, &[]).step(&format!("GET {path}"))?;
    expect_500(&r, "\"callback\" parameter required")
}

fn invalid_callback(ctx: &Ctx, t: &str) -> Outcome {
    for cb in ["%20", "*", "abc(", "abc%28"] {
        let path = ctx.path(&format!("{ECHO}/a/a/{t}?c={cb}"));
        let r = ctx.get(&path, &[]).step(&format!("GET {path}"))?;
        expect_500(&r, "invalid \"callback\" parameter").step(&format!("c={cb}"))?;
    }
    Ok(())
}
