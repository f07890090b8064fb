//! §10: HTTP/1.0 and HTTP/1.1 behaviour.

use super::transports::{HTMLFILE_HEAD, wrap_frame, xhr_prelude};
use super::{ECHO, sessions::C3000};
use crate::check::{
    Check, Ctx, Outcome, Step, ensure, expect_eq, expect_head_status, expect_response,
    expect_status, fail, kind_name, service,
};
use crate::http::{BodyKind, Head, Request};
use crate::util::esc;

const GREETING: &[u8] = b"Welcome to SockJS!\n";

pub(crate) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "s10_http10_synchronous",
            "10",
            "HTTP/1.0 keep-alive GET: no Transfer-Encoding; Content-Length 19 + keep-alive or close",
            http10_sync,
        ),
        Check::new(
            "s10_http10_streaming",
            "10",
            "HTTP/1.0 xhr_streaming: no Transfer-Encoding or Content-Length, raw prelude/o/c bytes, then close",
            http10_streaming,
        ),
        Check::new(
            "s10_http10_every_transport",
            "10",
            "HTTP/1.0 on every other HTTP transport: a poll, a send and a jsonp poll self-delimited without Transfer-Encoding; eventsource and htmlfile raw bytes, then close",
            http10_transports,
        ),
        Check::new(
            "s10_http11_synchronous",
            "10",
            "HTTP/1.1 keep-alive GET: Content-Length 19 or chunked, and a second request works",
            http11_sync,
        ),
        Check::new(
            "s10_http11_streaming",
            "10",
            "HTTP/1.1 xhr_streaming on /close: chunks prelude, o\\n, c[3000...]\\n, then the last chunk",
            http11_streaming,
        ),
        Check::new(
            "s10_post_without_content_length",
            "10",
            "POST xhr without Content-Length opens the session (o\\n)",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let r = ctx
                    .request(&Request::new("POST", &s.url("xhr")).without_content_length())
                    .step("POST xhr without Content-Length")?;
                expect_response("POST xhr without Content-Length", &r, 200, b"o\n")
            },
        ),
        Check::new(
            "s10_keep_alive_reuse",
            "10",
            "one HTTP/1.1 connection carries many requests, errors included, all self-delimited",
            keep_alive_reuse,
        ),
    ]
}

fn http10_sync(ctx: &Ctx) -> Outcome {
    let mut c = ctx.connect()?;
    let req = Request::new("GET", &ctx.path(ECHO))
        .version("HTTP/1.0")
        .header("Connection", "Keep-Alive");
    c.send(&req).step("GET (HTTP/1.0)")?;
    let h = c.read_head().step("GET (HTTP/1.0)")?;
    expect_head_status("GET (HTTP/1.0)", &h, 200)?;
    ensure(h.version == "HTTP/1.0" || h.version == "HTTP/1.1", || {
        format!("unexpected version {}", h.version)
    })?;
    ensure(!h.has("transfer-encoding"), || {
        format!(
            "HTTP/1.0 response must not use Transfer-Encoding, got \"{}\"",
            h.header("transfer-encoding").unwrap_or_default()
        )
    })?;
    let connection = h
        .header("connection")
        .unwrap_or_default()
        .to_ascii_lowercase();
    match h.content_length() {
        None => {
            expect_eq("Connection without Content-Length", "close", &connection)?;
            let body = c.read_to_close().step("body until close")?;
            expect_eq("body", GREETING, body)
        }
        Some(n) => {
            let n = n?;
            ensure(n == GREETING.len(), || {
                format!("Content-Length: expected 19, got {n}")
            })?;
            expect_eq("body", GREETING, c.read_exact_bytes(n)?)?;
            if connection == "close" || connection.is_empty() {
                ensure(c.is_closed()?, || {
                    format!("Connection \"{connection}\": the server must close the socket")
                })
            } else {
                expect_eq("Connection", "keep-alive", &connection)?;
                c.send(&req).step("second GET (HTTP/1.0)")?;
                let r = c.read_response("GET").step("second GET (HTTP/1.0)")?;
                expect_status("second GET (HTTP/1.0)", &r, 200)
            }
        }
    }
}

/// §10: an HTTP/1.0 stream's head is a 200 with neither `Transfer-Encoding` nor
/// `Content-Length` (its body ends with the connection).
fn expect_http10_stream_head(what: &str, h: &Head) -> Outcome {
    expect_head_status(what, h, 200)?;
    for name in ["transfer-encoding", "content-length"] {
        ensure(!h.has(name), || {
            format!(
                "{what}: an HTTP/1.0 stream must not have {name}, got \"{}\"",
                h.header(name).unwrap_or_default()
            )
        })?;
    }
    Ok(())
}

fn http10_streaming(ctx: &Ctx) -> Outcome {
    let s = ctx.session(service::CLOSE);
    let mut c = ctx.connect()?;
    c.send(
        &Request::new("POST", &s.url("xhr_streaming"))
            .version("HTTP/1.0")
            .header("Connection", "Keep-Alive"),
    )
    .step("POST xhr_streaming (HTTP/1.0)")?;
    let what = "POST xhr_streaming (HTTP/1.0)";
    let h = c.read_head().step(what)?;
    expect_http10_stream_head(what, &h)?;
    expect_eq("prelude bytes", xhr_prelude(), c.read_exact_bytes(2049)?)?;
    expect_eq("open frame bytes", "o\n", c.read_exact_bytes(2)?)?;
    expect_eq("close frame bytes", C3000, c.read_exact_bytes(C3000.len())?)?;
    ensure(c.is_closed()?, || {
        format!(
            "the server must close the socket after the stream (buffered: \"{}\")",
            esc(c.buffered())
        )
    })
}

/// A request sent as HTTP/1.0 with `Connection: Keep-Alive`, its answer read as §10 allows
/// it: no `Transfer-Encoding`; a `Content-Length` (or no body, for a 204), or none and
/// `Connection: close` with the body until the close.
fn http10_answer(ctx: &Ctx, what: &str, req: Request, status: u16, body: &[u8]) -> Outcome {
    let mut c = ctx.connect()?;
    let req = req.version("HTTP/1.0").header("Connection", "Keep-Alive");
    c.send(&req).step(what)?;
    let h = c.read_head().step(what)?;
    expect_head_status(what, &h, status)?;
    ensure(!h.has("transfer-encoding"), || {
        format!(
            "{what}: an HTTP/1.0 answer must not use Transfer-Encoding, got \"{}\"",
            h.header("transfer-encoding").unwrap_or_default()
        )
    })?;
    if status == 204 {
        return Ok(());
    }
    let got = match h.content_length() {
        Some(n) => c.read_exact_bytes(n?).step(what)?,
        None => {
            let connection = h.header("connection").unwrap_or_default();
            ensure(connection.eq_ignore_ascii_case("close"), || {
                format!(
                    "{what}: without Content-Length the answer must say Connection: close, got \"{connection}\""
                )
            })?;
            c.read_to_close().step(what)?
        }
    };
    expect_eq(&format!("{what}: body"), body, got)
}

/// A stream on the `/close` service asked for as HTTP/1.0: no `Transfer-Encoding` or
/// `Content-Length`, the prelude and the frames `o` and `c[3000,...]` as raw bytes, then
/// the socket closes.
fn http10_stream(ctx: &Ctx, transport: &str) -> Outcome {
    let what = format!("GET {transport} (HTTP/1.0)");
    let s = ctx.session(service::CLOSE);
    let mut c = ctx.connect()?;
    let req = super::transports::receiver_request(&s, transport, "cb")
        .version("HTTP/1.0")
        .header("Connection", "Keep-Alive");
    c.send(&req).step(&what)?;
    let h = c.read_head().step(&what)?;
    expect_http10_stream_head(&what, &h)?;
    let body = c.read_to_close().step(&what)?;
    let frames = format!(
        "{}{}",
        wrap_frame(transport, "cb", "o"),
        wrap_frame(transport, "cb", C3000.trim_end())
    );
    ensure(body.ends_with(frames.as_bytes()), || {
        format!(
            "{what}: expected the stream to end with \"{}\" and close, got \"{}\"",
            esc(frames.as_bytes()),
            esc(&body)
        )
    })?;
    let prelude = &body[..body.len() - frames.len()];
    match transport {
        "eventsource" => expect_eq(&format!("{what}: prelude"), "\r\n", prelude),
        _ => {
            let want = HTMLFILE_HEAD.replace("CALLBACK", "cb");
            let text = String::from_utf8_lossy(prelude);
            ensure(text.trim() == want && prelude.len() > 1024, || {
                format!(
                    "{what}: expected the htmlfile head (trimmed), padded past 1024 bytes, got {} bytes: \"{}\"",
                    prelude.len(),
                    esc(prelude)
                )
            })
        }
    }
}

fn http10_transports(ctx: &Ctx) -> Outcome {
    let s = ctx.session(ECHO);
    let poll = Request::new("POST", &s.url("xhr"));
    http10_answer(ctx, "POST xhr (HTTP/1.0)", poll, 200, b"o\n")?;
    let send = Request::new("POST", &s.url("xhr_send")).body("[\"x\"]");
    http10_answer(ctx, "POST xhr_send (HTTP/1.0)", send, 204, b"")?;
    http10_stream(ctx, "eventsource")?;
    http10_stream(ctx, "htmlfile")?;
    let s = ctx.session(ECHO);
    let jsonp = super::transports::receiver_request(&s, "jsonp", "cb");
    let want = wrap_frame("jsonp", "cb", "o");
    http10_answer(ctx, "GET jsonp (HTTP/1.0)", jsonp, 200, want.as_bytes())
}

fn http11_sync(ctx: &Ctx) -> Outcome {
    let mut c = ctx.connect()?;
    let req = Request::new("GET", &ctx.path(ECHO)).header("Connection", "Keep-Alive");
    c.send(&req).step("first GET")?;
    let h = c.read_head().step("first GET")?;
    expect_head_status("first GET", &h, 200)?;
    let connection = h
        .header("connection")
        .unwrap_or_default()
        .to_ascii_lowercase();
    ensure(connection.is_empty() || connection == "keep-alive", || {
        format!(
            "HTTP/1.1 keep-alive: Connection must be keep-alive or absent, got \"{connection}\""
        )
    })?;
    match h.body_kind("GET")? {
        BodyKind::Length(n) => {
            ensure(n == GREETING.len(), || {
                format!("Content-Length: expected 19, got {n}")
            })?;
            expect_eq("body", GREETING, c.read_exact_bytes(n)?)?;
        }
        BodyKind::Chunked => {
            // §10: a synchronous body may be chunked any way; only its bytes count.
            let body = c.read_body(BodyKind::Chunked).step("chunked body")?;
            expect_eq("body (chunks joined)", GREETING, body)?;
        }
        other => {
            return Err(fail(format!(
                "HTTP/1.1 response must use Content-Length or chunked, got {}",
                kind_name(other)
            )));
        }
    }
    c.send(&req).step("second GET")?;
    let r = c.read_response("GET").step("second GET")?;
    expect_response("second GET", &r, 200, GREETING)
}

fn http11_streaming(ctx: &Ctx) -> Outcome {
    let s = ctx.session(service::CLOSE);
    let mut st = ctx
        .open(&Request::new("POST", &s.url("xhr_streaming")).header("Connection", "Keep-Alive"))?;
    expect_head_status("POST xhr_streaming", &st.head, 200)?;
    ensure(!st.head.has("content-length"), || {
        "streaming response must not have Content-Length".into()
    })?;
    st.expect_chunk("prelude chunk", xhr_prelude())?;
    st.expect_chunk("open frame chunk", "o\n")?;
    st.expect_chunk("close frame chunk", C3000)?;
    st.expect_end("after the close frame")
}

fn keep_alive_reuse(ctx: &Ctx) -> Outcome {
    let s = ctx.session(ECHO);
    let mut c = ctx.connect()?;
    let steps: Vec<(Request, u16, Option<&[u8]>)> = vec![
        (Request::new("GET", &ctx.path(ECHO)), 200, Some(GREETING)),
        (
            Request::new("GET", &ctx.path(&format!("{ECHO}/info"))),
            200,
            None,
        ),
        (Request::new("POST", &s.url("xhr")), 200, Some(b"o\n")),
        (
            Request::new("POST", &s.url("xhr_send")).body("[\"k\"]"),
            204,
            Some(b""),
        ),
        (
            Request::new("POST", &s.url("xhr_send")).body("[\"k"),
            500,
            None,
        ),
        (
            Request::new("GET", &ctx.path(&format!("{ECHO}/a/a"))),
            404,
            None,
        ),
        (
            Request::new("POST", &ctx.path(&format!("{ECHO}/0/0/websocket"))),
            405,
            Some(b""),
        ),
        (
            Request::new("GET", &ctx.path(&format!("{ECHO}/a/a/jsonp"))),
            500,
            None,
        ),
        (
            Request::new("OPTIONS", &s.url("xhr")).header("Access-Control-Request-Method", "POST"),
            204,
            Some(b""),
        ),
        (
            Request::new("POST", &s.url("xhr")),
            200,
            Some(b"a[\"k\"]\n"),
        ),
        (Request::new("GET", &ctx.path(ECHO)), 200, Some(GREETING)),
    ];
    for (i, (req, status, body)) in steps.iter().enumerate() {
        let what = format!(
            "request #{} on the same connection: {} {}",
            i + 1,
            req.method,
            req.path
        );
        c.send(req).step(&what)?;
        let h = c.read_head().step(&what)?;
        let kind = h.body_kind(&req.method)?;
        let connection = h
            .header("connection")
            .unwrap_or_default()
            .to_ascii_lowercase();
        ensure(kind != BodyKind::Close && connection != "close", || {
            format!(
                "{what}: HTTP/1.1 keep-alive response must be self-delimited and keep the connection ({}, Connection \"{connection}\")",
                kind_name(kind)
            )
        })?;
        let got = c.read_body(kind).step(&what)?;
        let ok_status =
            h.status == *status || (*status == 204 && req.method == "OPTIONS" && h.status == 200);
        ensure(ok_status, || {
            format!("{what}: expected status {status}, got {}", h.summary())
        })?;
        if let Some(b) = body {
            expect_eq(&format!("{what}: body"), b, &got)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    /// A server that answers each request on one connection with the next of `answers`.
    fn serve(answers: Vec<&'static [u8]>) -> (Ctx, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            for answer in answers {
                while seen.windows(4).filter(|w| *w == b"\r\n\r\n").count() == 0 {
                    let mut buf = [0u8; 1024];
                    match tcp.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                seen.drain(..end + 4);
                tcp.write_all(answer).unwrap();
            }
        });
        let ctx = Ctx {
            host,
            prefix: String::new(),
            tls: None,
            io_timeout: Duration::from_secs(2),
            heartbeat: None,
            disconnect: None,
            abort_rounds: 0,
        };
        (ctx, server)
    }

    #[test]
    fn a_chunked_greeting_may_come_in_any_chunks() {
        let split: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            8\r\nWelcome \r\nb\r\nto SockJS!\n\r\n0\r\n\r\n";
        let (ctx, server) = serve(vec![split, split]);
        assert_eq!(http11_sync(&ctx), Ok(()));
        server.join().unwrap();
        let wrong: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            8\r\nWelcome \r\na\r\nto SockJS!\r\n0\r\n\r\n";
        let (ctx, server) = serve(vec![wrong]);
        let e = http11_sync(&ctx).unwrap_err();
        assert!(e.reason.starts_with("body (chunks joined)"), "{e}");
        server.join().unwrap();
    }
}
