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
            "eventsource counts what it writes (wrapping and heartbeats in, prelude out): open at 4095 bytes, ended as soon as 4096 or more",
            |ctx: &Ctx| {
                let frame = |f: &str| wrap_frame("eventsource", "", f);
                limit_bookkeeping(ctx, eventsource_opened, frame)
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
            "htmlfile counts what it writes (wrapping and heartbeats in, head out): open at 4095 bytes, ended as soon as 4096 or more",
            |ctx: &Ctx| {
                limit_bookkeeping(ctx, |ctx| htmlfile_opened(ctx, "callback"), htmlfile_frame)
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

/// The echo service's response limit (§1).
const RESPONSE_LIMIT: usize = 4096;

/// Rounds [`limit_bookkeeping`] makes at most, while heartbeats come into them.
const LIMIT_ROUNDS: usize = 3;

/// §7.1.4 and §8's limit bookkeeping on streams that `open` opens on a fresh session, just
/// past the open frame, and whose frames `frame` wraps: see [`limit_round`]. A round with
/// a heartbeat in it is less exact: the total then steps past 4095 bytes by a heartbeat's
/// length, so a server whose count is off by fewer bytes than that ends where the check's
/// count says too. Such a round is made again on a fresh session, up to [`LIMIT_ROUNDS`]
/// rounds; if each one had a heartbeat, each still ended exactly where the count said,
/// and the check passes.
fn limit_bookkeeping(
    ctx: &Ctx,
    open: impl Fn(&Ctx) -> Result<(Session, Stream), Failure>,
    frame: impl Fn(&str) -> String,
) -> Outcome {
    for round in 1..=LIMIT_ROUNDS {
        let (s, mut st) = open(ctx)?;
        let heartbeats = limit_round(&mut st, &frame, &mut |body| ctx.send_ok(&s, body))
            .step(&format!("round {round}"))?;
        if heartbeats == 0 {
            break;
        }
    }
    Ok(())
}

/// One round of the limit bookkeeping on `st`, a stream just past its open frame:
/// `send` sends a message whose frame brings the frames written to 4095 bytes (the open
/// frame and its own, wrapping included, the prelude not), which must leave the stream
/// open; then one more, which takes the total to 4096 or more and must end it. Every chunk
/// the server writes counts, heartbeats included (a correct server counts what it writes,
/// §7.1.4), and the stream must end exactly when the total first reaches the limit: a
/// server that counts the prelude ends it too early, one that counts only the payload (or
/// leaves out its heartbeats) too late. Returns the count of heartbeats that came.
fn limit_round(
    st: &mut Stream,
    frame: &impl Fn(&str) -> String,
    send: &mut dyn FnMut(&str) -> Outcome,
) -> Result<usize, Failure> {
    let mut written = Written {
        total: frame("o").len(),
        limit: RESPONSE_LIMIT,
    };
    let text = "x".repeat(filler_len(frame, written.total));
    send(&format!("[\"{text}\"]"))?;
    let first = frame(&format!("a[\"{text}\"]"));
    let mut heartbeats =
        counted_frame(st, &mut written, "the frame that makes 4095 bytes", &first)?;
    if !written.reached() {
        send("[\"y\"]")?;
        let what = format!("the next frame (still open at {} bytes)", written.total);
        heartbeats += counted_frame(st, &mut written, &what, &frame("a[\"y\"]"))?;
    }
    let got = st.chunk().step("the stream past the limit")?;
    ensure(got.is_empty(), || {
        format!(
            "the stream past the limit: {} bytes written ({} heartbeats), at least the limit {}, so it must end, but another chunk came: \"{}\"",
            written.total,
            heartbeats,
            written.limit,
            crate::util::esc_short(&got, 120)
        )
    })?;
    Ok(heartbeats)
}

/// How many one-byte letters a message needs for its frame, wrapped by `frame`, to bring
/// `written` bytes to one short of the limit (an ASCII letter adds one byte to a frame,
/// wrapped or not).
fn filler_len(frame: &impl Fn(&str) -> String, written: usize) -> usize {
    (RESPONSE_LIMIT - 1).saturating_sub(written + frame("a[\"\"]").len())
}

/// The bytes a stream has written toward its response limit (§7.1.4, §8): every chunk
/// after the prelude, heartbeats included.
#[derive(Debug)]
struct Written {
    total: usize,
    limit: usize,
}

impl Written {
    /// Counts one chunk.
    fn add(&mut self, chunk: &[u8]) {
        self.total += chunk.len();
    }

    /// Whether the total has reached the limit, so the stream must end now.
    fn reached(&self) -> bool {
        self.total >= self.limit
    }
}

/// Reads chunks of `st` into `written` until the frame `expected` comes, or until a
/// heartbeat takes the total to the limit (the stream must then end, and the frame waits
/// for the next receiver); any other chunk, or the end of the stream before the limit,
/// fails. Heartbeats alone are read for at most [`patience`](crate::check::patience).
/// Returns the count of heartbeats.
fn counted_frame(
    st: &mut Stream,
    written: &mut Written,
    what: &str,
    expected: &str,
) -> Result<usize, Failure> {
    let start = std::time::Instant::now();
    let limit = crate::check::patience(st.conn.read_timeout(), st.heartbeat_delay);
    let mut heartbeats = 0;
    loop {
        let got = st.chunk().step(what)?;
        ensure(!got.is_empty(), || {
            format!(
                "{what}: the stream ended at {} bytes written ({heartbeats} heartbeats), below the limit {}",
                written.total, written.limit
            )
        })?;
        written.add(&got);
        if st.heartbeat.as_deref() != Some(got.as_slice()) {
            expect_eq(what, expected, &got)?;
            return Ok(heartbeats);
        }
        heartbeats += 1;
        if written.reached() {
            return Ok(heartbeats);
        }
        ensure(start.elapsed() <= limit, || {
            format!(
                "{what}: only heartbeats ({heartbeats}) for {} ms",
                start.elapsed().as_millis()
            )
        })?;
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::check::heartbeat_chunk;
    use crate::http::Conn;
    use crate::tls::ClientStream;
    use std::io::Write;
    use std::time::Duration;

    fn es(f: &str) -> String {
        wrap_frame("eventsource", "", f)
    }

    #[test]
    fn the_filler_brings_the_frames_to_one_short_of_the_limit() {
        for frame in [&es as &dyn Fn(&str) -> String, &htmlfile_frame] {
            let written = frame("o").len();
            let text = "x".repeat(filler_len(&frame, written));
            assert_eq!(
                written + frame(&format!("a[\"{text}\"]")).len(),
                RESPONSE_LIMIT - 1
            );
        }
        let mut w = Written {
            total: 4094,
            limit: 4096,
        };
        w.add(b"x");
        assert!(!w.reached());
        w.add(b"x");
        assert!(w.reached());
    }

    /// One round of the eventsource limit bookkeeping against a stream whose server
    /// writes the open frame's successors `chunks` (`big`: the 4095-byte frame, `y`,
    /// `h`: a heartbeat), then ends it.
    fn round(chunks: &[&str]) -> Result<usize, Failure> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let text = "x".repeat(filler_len(&es, es("o").len()));
        let body: Vec<u8> = chunks
            .iter()
            .map(|c| match *c {
                "big" => es(&format!("a[\"{text}\"]")),
                "y" => es("a[\"y\"]"),
                _ => es("h"),
            })
            .chain([String::new()])
            .flat_map(|c| format!("{:x}\r\n{c}\r\n", c.len()).into_bytes())
            .collect();
        let server = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let _ = tcp.write_all(&body);
        });
        let tcp = std::net::TcpStream::connect(&host).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut conn = Conn::new(ClientStream::Plain(tcp), &host);
        let head = conn.read_head().unwrap();
        let mut st = Stream {
            conn,
            head,
            heartbeat: heartbeat_chunk("/x/eventsource"),
            heartbeat_delay: Some(Duration::from_millis(100)),
        };
        let got = limit_round(&mut st, &es, &mut |_| Ok(()));
        server.join().unwrap();
        got
    }

    #[test]
    fn the_stream_must_end_where_every_chunk_counted_reaches_the_limit() {
        assert_eq!(round(&["big", "y"]).unwrap(), 0);
        assert_eq!(round(&["big", "h"]).unwrap(), 1);
        assert_eq!(round(&["h", "big"]).unwrap(), 1);
        let refused = |chunks: &[&str]| round(chunks).unwrap_err().reason;
        assert!(refused(&["h", "big", "h"]).contains("must end"));
        // Too early (the prelude counted), too late (the payload only, or heartbeats left
        // out of the count).
        assert!(refused(&["big"]).contains("below the limit"));
        assert!(refused(&["big", "y", "y"]).contains("must end"));
        assert!(refused(&["big", "h", "y"]).contains("must end"));
        assert!(refused(&["h", "big", "y"]).contains("must end"));
        assert!(round(&["y"]).is_err());
    }
}
