//! §7: session lifecycle.

use std::time::{Duration, Instant};

use super::ECHO;
use super::transports::{expect_prelude, receiver_request, wrap_frame};
use crate::check::{
    Check, Ctx, Failure, Outcome, Session, Step, ensure, expect_head_status, expect_response, fail,
    first_answered, patience, service, sleep,
};
use crate::http::{Conn, Request, Response};
use crate::tls::ClientStream;
use crate::util::esc;
use crate::ws::Ws;

pub(crate) const C2010: &str = "c[2010,\"Another connection still open\"]\n";
pub(crate) const C3000: &str = "c[3000,\"Go away!\"]\n";
const C1002: &str = "c[1002,\"Connection interrupted\"]\n";
/// How long a poll is left alone before a second comes, in the checks that need the server
/// to have attached it first.
const SETTLE: Duration = Duration::from_millis(250);

/// Sends two polls of session `s` at once: the server holds one and answers the other
/// `c[2010,...]` at once (§7.1.2), whichever it took second, so neither order is assumed
/// (a busy server may take a moment to register the first). Checks that answer; the held
/// poll's connection.
pub(crate) fn two_polls(ctx: &Ctx, s: &Session) -> Result<Conn<ClientStream>, Failure> {
    let req = Request::new("POST", &s.url("xhr"));
    let mut held = ctx.send_only(&req)?;
    let mut other = ctx.send_only(&req)?;
    first_answered(&mut held, &mut other, ctx.io_timeout)?;
    let r = other.read_response("POST").step("concurrent POST xhr")?;
    expect_response("concurrent POST xhr", &r, 200, C2010.as_bytes())?;
    Ok(held)
}

/// §7.1.2: a poll left attached a while before a second comes keeps its place; the second
/// gets the 2010. A run where the held poll's own heartbeat ends it first (a busy machine,
/// or a server that waits `abort_grace` before a 2010) proves nothing either way and is
/// run again, up to three times.
fn later_poll_gets_2010(ctx: &Ctx) -> Outcome {
    for _ in 0..3 {
        let s = ctx.session(ECHO);
        ctx.open_xhr(&s)?;
        let req = Request::new("POST", &s.url("xhr"));
        let held_since = Instant::now();
        let mut first = ctx.send_only(&req)?;
        // Long enough for any server to have attached it; well within a heartbeat delay,
        // so that it is not answered meanwhile.
        let settle = ctx.heartbeat.map_or(SETTLE, |h| SETTLE.min(h / 4));
        sleep(settle);
        ensure(!first.has_input().step("first POST xhr")?, || {
            format!(
                "the first poll was answered within {} ms",
                settle.as_millis()
            )
        })?;
        let mut later = ctx.send_only(&req)?;
        let r = later.read_response("POST").step("later POST xhr")?;
        if r.body != C2010.as_bytes() && first.has_input().step("first POST xhr")? {
            let answer = first.read_response("POST").step("first POST xhr")?;
            // Its own heartbeat, in its time: inconclusive. Sooner, the server let it go.
            if answer.body == b"h\n" && held_since.elapsed() >= earliest_heartbeat(ctx) {
                continue;
            }
        }
        expect_response("later POST xhr", &r, 200, C2010.as_bytes())?;
        ctx.send_ok(&s, "[\"z\"]")?;
        let r = first.read_response("POST").step("first POST xhr")?;
        let held = Held {
            since: held_since,
            again: &req,
            heartbeat: b"h\n",
        };
        let r = past_heartbeat_polls(ctx, "first POST xhr", r, held)?;
        return expect_response("first POST xhr", &r, 200, b"a[\"z\"]\n");
    }
    Err(fail(
        "three runs in a row, the held poll's heartbeat came before the later poll's answer",
    ))
}

pub(crate) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "s7_1_simple_session",
            "7.1",
            "xhr opens (o), xhr_send is 204, the next poll gets a[\"a\"]",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                ctx.open_xhr(&s)?;
                ctx.send_ok(&s, "[\"a\"]")?;
                ctx.expect_xhr("second POST xhr", &s, "a[\"a\"]\n")
            },
        ),
        Check::new(
            "s7_1_2010_second_receiver",
            "7.1",
            "a second poll while one is pending gets c[2010,\"Another connection still open\"]",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                ctx.open_xhr(&s)?;
                drop(two_polls(ctx, &s)?);
                Ok(())
            },
        ),
        Check::new(
            "s7_1_2010_first_receiver_untouched",
            "7.1",
            "after a 2010 the first pending poll still receives the next message",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                ctx.open_xhr(&s)?;
                let held_since = Instant::now();
                let mut pending = two_polls(ctx, &s)?;
                ctx.send_ok(&s, "[\"z\"]")?;
                let r = pending.read_response("POST").step("first POST xhr")?;
                let poll = Request::new("POST", &s.url("xhr"));
                let held = Held {
                    since: held_since,
                    again: &poll,
                    heartbeat: b"h\n",
                };
                let r = past_heartbeat_polls(ctx, "first POST xhr", r, held)?;
                expect_response("first POST xhr", &r, 200, b"a[\"z\"]\n")
            },
        ),
        Check::new(
            "s7_1_2_2010_goes_to_the_later_poll",
            "7.1.2",
            "a poll held for a while keeps its place: the poll that comes after it gets the 2010, and the first the next message",
            later_poll_gets_2010,
        ),
        Check::new(
            "s7_1_2010_streaming",
            "7.1",
            "a second xhr_streaming gets its prelude, the 2010 frame and ends; the first still works",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let mut r1 = ctx.xhr_streaming(&s, &[])?;
                expect_head_status("first xhr_streaming", &r1.head, 200)?;
                expect_prelude(&mut r1, "first stream", "xhr_streaming", "")?;
                r1.expect_chunk("first stream open frame", "o\n")?;
                let mut r2 = ctx.xhr_streaming(&s, &[])?;
                expect_head_status("second xhr_streaming", &r2.head, 200)?;
                expect_prelude(&mut r2, "second stream", "xhr_streaming", "")?;
                r2.expect_chunk("second stream", C2010)?;
                r2.expect_end("second stream")?;
                ctx.send_ok(&s, "[\"x\"]")?;
                r1.expect_chunk("first stream after the 2010", "a[\"x\"]\n")
            },
        ),
        Check::new(
            "s7_1_2_2010_eventsource",
            "7.1.2",
            "a second eventsource gets its prelude, the 2010 frame and ends; the first still works",
            |ctx: &Ctx| second_stream_2010(ctx, "eventsource"),
        ),
        Check::new(
            "s7_1_2_2010_htmlfile",
            "7.1.2",
            "a second htmlfile gets its head, the 2010 frame and ends; the first still works",
            |ctx: &Ctx| second_stream_2010(ctx, "htmlfile"),
        ),
        Check::new(
            "s7_1_2_2010_jsonp",
            "7.1.2",
            "a second jsonp poll while one is held gets /**/cb(\"c[2010,...]\"); the held one gets the next message",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let req = receiver_request(&s, "jsonp", "cb");
                let r = ctx.request(&req)?;
                expect_response(
                    "opening GET jsonp",
                    &r,
                    200,
                    wrap_frame("jsonp", "cb", "o").as_bytes(),
                )?;
                let held_since = Instant::now();
                let mut held = ctx.send_only(&req)?;
                let mut other = ctx.send_only(&req)?;
                first_answered(&mut held, &mut other, ctx.io_timeout)?;
                let r = other.read_response("GET").step("concurrent GET jsonp")?;
                let c2010 = wrap_frame("jsonp", "cb", C2010.trim_end());
                expect_response("concurrent GET jsonp", &r, 200, c2010.as_bytes())?;
                ctx.send_ok(&s, "[\"z\"]")?;
                let r = held.read_response("GET").step("held GET jsonp")?;
                let heartbeat = wrap_frame("jsonp", "cb", "h");
                let again = Held {
                    since: held_since,
                    again: &req,
                    heartbeat: heartbeat.as_bytes(),
                };
                let r = past_heartbeat_polls(ctx, "held GET jsonp", r, again)?;
                let want = wrap_frame("jsonp", "cb", "a[\"z\"]");
                expect_response("held GET jsonp", &r, 200, want.as_bytes())
            },
        ),
        Check::new(
            "s7_1_close_frame_replay_xhr",
            "7.1",
            "after the app closes, every poll repeats c[3000,\"Go away!\"]",
            |ctx: &Ctx| {
                let s = ctx.session(service::CLOSE);
                ctx.open_xhr(&s)?;
                ctx.expect_xhr("second POST xhr", &s, C3000)?;
                ctx.expect_xhr("third POST xhr", &s, C3000)
            },
        ),
        Check::new(
            "s7_1_close_frame_replay_jsonp",
            "7.1",
            "the close frame is repeated on jsonp too",
            |ctx: &Ctx| {
                let s = ctx.session(service::CLOSE);
                for (i, body) in [
                    "/**/x(\"o\");\r\n",
                    "/**/x(\"c[3000,\\\"Go away!\\\"]\");\r\n",
                    "/**/x(\"c[3000,\\\"Go away!\\\"]\");\r\n",
                ]
                .iter()
                .enumerate()
                {
                    let what = format!("GET jsonp #{}", i + 1);
                    let r = ctx.get(&s.url("jsonp?c=x"), &[]).step(&what)?;
                    expect_response(&what, &r, 200, body.as_bytes())?;
                }
                Ok(())
            },
        ),
        Check::new(
            "s7_1_close_frame_streaming",
            "7.1",
            "app close on a stream: o, c[3000...], end; the next stream gets the close frame, not 2010",
            |ctx: &Ctx| {
                let s = ctx.session(service::CLOSE);
                let mut r1 = ctx.xhr_streaming(&s, &[])?;
                expect_head_status("first xhr_streaming", &r1.head, 200)?;
                expect_prelude(&mut r1, "first stream", "xhr_streaming", "")?;
                r1.expect_chunk("first stream", "o\n")?;
                r1.expect_chunk("first stream", C3000)?;
                let mut r2 = ctx.xhr_streaming(&s, &[])?;
                expect_head_status("second xhr_streaming", &r2.head, 200)?;
                expect_prelude(&mut r2, "second stream", "xhr_streaming", "")?;
                r2.expect_chunk("second stream", C3000)?;
                r1.expect_end("first stream")?;
                r2.expect_end("second stream")
            },
        ),
        Check::new(
            "s7_1_abort_xhr_streaming",
            "7.1",
            "after the pending stream's client aborts, the next stream gets o or c[1002...], never 2010",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let mut r1 = ctx.xhr_streaming(&s, &[])?;
                expect_head_status("first xhr_streaming", &r1.head, 200)?;
                expect_prelude(&mut r1, "first stream", "xhr_streaming", "")?;
                r1.expect_chunk("first stream", "o\n")?;
                let mut r2 = ctx.xhr_streaming(&s, &[])?;
                expect_head_status("second xhr_streaming", &r2.head, 200)?;
                expect_prelude(&mut r2, "second stream", "xhr_streaming", "")?;
                r2.expect_chunk("second stream", C2010)?;
                r2.expect_end("second stream")?;
                r1.conn.shutdown();
                drop(r1);
                sleep(Duration::from_millis(50));
                let mut r3 = ctx.xhr_streaming(&s, &[])?;
                expect_head_status("third xhr_streaming", &r3.head, 200)?;
                expect_prelude(&mut r3, "third stream", "xhr_streaming", "")?;
                let got = r3.chunk().step("third stream")?;
                after_abort("third stream", &got)
            },
        ),
        Check::new(
            "s7_1_abort_xhr_polling",
            "7.1",
            "after the pending poll's client aborts, the next poll gets o or c[1002...], never 2010",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                ctx.open_xhr(&s)?;
                let pending = two_polls(ctx, &s)?;
                pending.shutdown();
                drop(pending);
                sleep(Duration::from_millis(50));
                let r = ctx.xhr(&s).step("POST xhr after the abort")?;
                after_abort("POST xhr after the abort", &r.body)
            },
        ),
        Check::new(
            "s7_1_receivers_share_session",
            "7.1",
            "sessions are keyed by id, not transport: a message sent after an xhr open arrives on eventsource",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                ctx.open_xhr(&s)?;
                ctx.send_ok(&s, "[\"x\"]")?;
                let mut st = ctx.open(&Request::new("GET", &s.url("eventsource")))?;
                expect_head_status("GET eventsource", &st.head, 200)?;
                st.expect_chunk("eventsource prelude", "\r\n")?;
                st.expect_chunk("eventsource", "data: a[\"x\"]\r\n\r\n")
            },
        ),
        Check::new(
            "s7_2_websocket_not_registered",
            "7.2",
            "a SockJS websocket is not registered under its id: an xhr on the same id opens a new session",
            |ctx: &Ctx| {
                let s = ctx.session(ECHO);
                let mut ws = Ws::connect_sockjs(ctx, &s.url("websocket"))?;
                ws.expect_text("websocket open frame", "o")?;
                ctx.expect_xhr("POST xhr on the websocket's id", &s, "o\n")?;
                ws.send("[\"w\"]")?;
                ws.expect_text("websocket echo", "a[\"w\"]")?;
                ws.close();
                Ok(())
            },
        ),
    ]
}

/// §7.1.2 on `transport` (eventsource or htmlfile): with one stream attached, a second
/// gets the whole prelude, the 2010 frame and its end; the first is untouched and
/// receives the next message.
fn second_stream_2010(ctx: &Ctx, transport: &str) -> Outcome {
    let s = ctx.session(ECHO);
    let req = receiver_request(&s, transport, "cb");
    let mut r1 = ctx.open(&req)?;
    expect_head_status("first stream", &r1.head, 200)?;
    expect_prelude(&mut r1, "first stream", transport, "cb")?;
    r1.expect_chunk("first stream open frame", wrap_frame(transport, "cb", "o"))?;
    let mut r2 = ctx.open(&req)?;
    expect_head_status("second stream", &r2.head, 200)?;
    expect_prelude(&mut r2, "second stream", transport, "cb")?;
    r2.expect_chunk(
        "second stream",
        wrap_frame(transport, "cb", C2010.trim_end()),
    )?;
    r2.expect_end("second stream")?;
    ctx.send_ok(&s, "[\"x\"]")?;
    r1.expect_chunk(
        "first stream after the 2010",
        wrap_frame(transport, "cb", "a[\"x\"]"),
    )
}

/// A poll held since `since`, to be made `again` while it is answered with the
/// transport's `heartbeat` frame.
struct Held<'a> {
    since: Instant,
    again: &'a Request,
    heartbeat: &'a [u8],
}

/// The soonest a held poll's heartbeat may come: half the delay (200 ms when it is not
/// known); sooner, the server let the poll go rather than held it.
fn earliest_heartbeat(ctx: &Ctx) -> Duration {
    ctx.heartbeat
        .map_or(Duration::from_millis(200), |delay| delay / 2)
}

/// The answer `first` to a held poll, or, while that answer is the transport's heartbeat
/// frame, the answer to polling again. A poll held while the heartbeat delay passes is
/// answered with the heartbeat (§7.1.3), which also shows it was still attached, and a
/// message sent meanwhile waits for the next poll; but a heartbeat well before the delay
/// (half of it, or 200 ms when the delay is not known) is a poll the server let go, not
/// one it held. Polls for at most [`patience`], so a server that only ever heartbeats fails.
fn past_heartbeat_polls(
    ctx: &Ctx,
    what: &str,
    first: Response,
    held: Held<'_>,
) -> Result<Response, Failure> {
    let (start, limit) = (
        Instant::now(),
        patience(Some(ctx.io_timeout), ctx.heartbeat),
    );
    let earliest = earliest_heartbeat(ctx);
    if first.status() == 200 && first.body == held.heartbeat && held.since.elapsed() < earliest {
        return Err(fail(format!(
            "{what}: the held poll was answered with a heartbeat {} ms after it was sent \
             (heartbeat delay {}): it was not held",
            held.since.elapsed().as_millis(),
            ctx.heartbeat
                .map_or("not given".to_owned(), |d| format!("{} ms", d.as_millis()))
        )));
    }
    let (mut r, mut heartbeats) = (first, 0usize);
    while r.status() == 200 && r.body == held.heartbeat {
        heartbeats += 1;
        if start.elapsed() > limit {
            return Err(fail(format!(
                "{what}: only heartbeats ({heartbeats} polls) for {} ms, never the message",
                start.elapsed().as_millis()
            )));
        }
        let again = format!("{what}: poll after heartbeat #{heartbeats}");
        r = ctx.request(held.again).step(&again)?;
    }
    Ok(r)
}

fn after_abort(what: &str, got: &[u8]) -> Outcome {
    ensure(got == b"o\n" || got == C1002.as_bytes(), || {
        if got == C2010.as_bytes() {
            format!("{what}: got 2010 after the first receiver aborted (abort not detected)")
        } else {
            format!(
                "{what}: expected \"o\\n\" or \"{}\", got \"{}\"",
                esc(C1002.as_bytes()),
                esc(got)
            )
        }
    })?;
    Ok(())
}
